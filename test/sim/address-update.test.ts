// Scripted scenario for a membership change that only moves a member to new
// addresses: it commits with the other voters while the moved node is cut
// off, keeps the node a voter, and follows the one-change-at-a-time rule.

import { describe, expect, test } from "bun:test";

import type { Message } from "../../src/raft/types.ts";
import { electFirst, exchange } from "./scripted.ts";

describe("address update", () => {
  test("commits without the moved node", () => {
    const cores = electFirst(["n1", "n2", "n3"]);
    const n1 = cores.get("n1")!;
    expect(n1.role).toBe("leader");
    // A leader commits an entry of its own term before it accepts membership changes.
    expect(n1.propose(new Uint8Array([1])).ok).toBe(true);
    exchange(cores);

    const moved = { id: "n3", raftAddr: "raft-n3-new", clientAddr: "client-n3-new", incarnation: "same-data" };
    expect(n1.proposeConfChange({ type: "update", member: { id: "n9", raftAddr: "x", clientAddr: "y" } })).toMatchObject({
      ok: false,
      code: "INVALID",
    });
    const update = n1.proposeConfChange({ type: "update", member: moved });
    expect(update.ok).toBe(true);
    // A second change waits for the first to commit.
    expect(n1.proposeConfChange({ type: "remove", id: "n2" })).toMatchObject({ ok: false, code: "BUSY" });

    // n3 is unreachable at its old address: nothing reaches it or comes from it.
    const withoutN3 = (message: Message) => message.to !== "n3" && message.from !== "n3";
    const updateIndex = update.ok ? update.index : -1;
    for (let round = 0; round < 20 && n1.commitIndex < updateIndex; round++) {
      n1.tick();
      exchange(cores, { deliver: withoutN3 });
    }
    expect(n1.commitIndex).toBeGreaterThanOrEqual(updateIndex);
    expect(n1.members.find((member) => member.id === "n3")).toEqual({ ...moved, voter: true });
    expect(n1.members.filter((member) => member.voter).map((member) => member.id)).toEqual(["n1", "n2", "n3"]);

    // Once n3 is reachable again it receives the new configuration.
    const n3 = cores.get("n3")!;
    for (let round = 0; round < 20 && n3.commitIndex < updateIndex; round++) {
      n1.tick();
      exchange(cores);
    }
    expect(n3.members.find((member) => member.id === "n3")?.raftAddr).toBe("raft-n3-new");
  });
});
