// Scripted scenario for the commit index reaching every follower promptly.
// The leader commits an entry as soon as one follower acknowledges it. The
// other follower's acknowledgement arrives later, and it must then learn
// the commit index too, without waiting for the next heartbeat tick.

import { describe, expect, test } from "bun:test";

import type { RaftCore } from "../../src/raft/core.ts";
import type { Message } from "../../src/raft/types.ts";
import { electFirst, exchange } from "./scripted.ts";

/** Takes every ready batch of `core` as if its writes finished at once, and returns the messages. */
function drain(core: RaftCore): Message[] {
  const messages: Message[] = [];
  while (core.hasReady()) {
    const ready = core.ready();
    messages.push(...ready.messages);
    core.advance(ready);
  }
  return messages;
}

describe("commit announcement", () => {
  test("reaches a follower that acknowledged late", () => {
    const cores = electFirst(["n1", "n2", "n3"]);
    const [n1, n2, n3] = ["n1", "n2", "n3"].map((id) => cores.get(id)!);
    expect(n1.role).toBe("leader");
    expect(n1.propose(new Uint8Array([1])).ok).toBe(true);
    exchange(cores);

    const proposal = n1.propose(new Uint8Array([2]));
    expect(proposal.ok).toBe(true);
    const index = proposal.ok ? proposal.index : -1;
    for (const message of drain(n1)) cores.get(message.to)!.step(message);
    const fromN2 = drain(n2);
    const fromN3 = drain(n3);

    // n2's acknowledgement commits the entry; n3's is still on its way.
    for (const message of fromN2) n1.step(message);
    expect(n1.commitIndex).toBe(index);
    for (const message of drain(n1)) cores.get(message.to)!.step(message);
    drain(n2);
    expect(n2.commitIndex).toBe(index);
    expect(n3.commitIndex).toBeLessThan(index);

    // n3's acknowledgement arrives, and the leader sends it the commit index.
    for (const message of fromN3) n1.step(message);
    const toN3 = drain(n1).filter((message) => message.to === "n3");
    expect(toN3.map((message) => message.type)).toEqual(["heartbeat"]);
    for (const message of toN3) n3.step(message);
    // An announcement gets no response: the next periodic heartbeat gets one.
    expect(drain(n3)).toEqual([]);
    expect(n3.commitIndex).toBe(index);
  });
});
