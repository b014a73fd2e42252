// Scripted scenario for a liveness bug the simulator found (Raft thesis
// section 4.2.2, figure 4.6). Leader n1 of {n1, n2} appends the
// configuration {n2} that removes itself, but cannot replicate it. It steps
// down with the entry uncommitted. n2 still uses {n1, n2} and needs n1's
// vote, which n1 refuses because n2's log lacks the newer entry. If n1 never
// campaigns because its newest configuration leaves it out, no leader is
// ever elected again.

import { describe, expect, test } from "bun:test";

import type { RaftCore } from "../../src/raft/core.ts";
import type { Message } from "../../src/raft/types.ts";
import { configEntry, createCore, exchange, voters } from "./scripted.ts";

describe("leader removing itself", () => {
  test("cluster recovers after uncommitted removal", () => {
    const config = configEntry(voters(["n1", "n2"]));
    const n1 = createCore("n1", [config], { term: 1, votedFor: null, commitIndex: 1 }, 1);
    const n2 = createCore("n2", [config], { term: 1, votedFor: null, commitIndex: 1 }, 2);
    const cores = new Map<string, RaftCore>([
      ["n1", n1],
      ["n2", n2],
    ]);

    for (let tick = 0; tick < 100 && n1.role !== "leader"; tick++) {
      n1.tick();
      exchange(cores);
    }
    expect(n1.role).toBe("leader");

    // n1 is cut off: nothing it sends arrives, so the removal stays on n1.
    const fromN1Lost = (message: Message) => message.from !== "n1";
    const removal = n1.proposeConfChange({ type: "remove", id: "n1" });
    expect(removal.ok).toBe(true);
    for (let tick = 0; tick < 100 && n1.role === "leader"; tick++) {
      n1.tick();
      exchange(cores, { deliver: fromN1Lost });
    }
    expect(n1.role).toBe("follower");
    expect(n1.isVoter()).toBe(false);
    expect(n2.log.lastIndex()).toBeLessThan(n1.log.lastIndex());

    // The network heals. Someone must become leader and commit the removal.
    const removalIndex = removal.ok ? removal.index : -1;
    for (let tick = 0; tick < 400 && !(n2.role === "leader" && n2.commitIndex >= removalIndex); tick++) {
      n1.tick();
      n2.tick();
      exchange(cores);
    }

    expect(n2.role).toBe("leader");
    expect(n2.commitIndex).toBeGreaterThanOrEqual(removalIndex);
    expect(n2.members.map((member) => member.id)).toEqual(["n2"]);
    expect(n1.role).not.toBe("leader");
  });
});
