// Scripted scenarios for the commit index reaching every follower promptly.
// The leader commits an entry as soon as one follower acknowledges it. The
// other followers learn the commit index from the next append, or from an
// announcement that the runtime asks for when no append came soon. Neither
// waits for the next heartbeat tick.

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

    // n2's acknowledgement commits the entry; n3's is still on its way. The
    // leader sends nothing until the runtime asks for an announcement, which
    // goes to n2 alone, because n3 is not known to hold the entry.
    for (const message of fromN2) n1.step(message);
    expect(n1.commitIndex).toBe(index);
    expect(drain(n1)).toEqual([]);
    expect(n1.commitAnnouncementDue).toBe(true);
    n1.announceCommit();
    const toN2 = drain(n1);
    expect(toN2.map((message) => `${message.type} to ${message.to}`)).toEqual(["heartbeat to n2"]);
    for (const message of toN2) n2.step(message);
    drain(n2);
    expect(n2.commitIndex).toBe(index);
    expect(n3.commitIndex).toBeLessThan(index);
    expect(n1.commitAnnouncementDue).toBe(false);

    // n3's acknowledgement arrives, and the next announcement goes to n3 alone.
    for (const message of fromN3) n1.step(message);
    expect(drain(n1)).toEqual([]);
    expect(n1.commitAnnouncementDue).toBe(true);
    n1.announceCommit();
    const toN3 = drain(n1);
    expect(toN3.map((message) => `${message.type} to ${message.to}`)).toEqual(["heartbeat to n3"]);
    for (const message of toN3) n3.step(message);
    // An announcement gets no response: the next periodic heartbeat gets one.
    expect(drain(n3)).toEqual([]);
    expect(n3.commitIndex).toBe(index);
    expect(n1.commitAnnouncementDue).toBe(false);
  });

  test("rides on the next append", () => {
    const cores = electFirst(["n1", "n2", "n3"]);
    const [n1, n2, n3] = ["n1", "n2", "n3"].map((id) => cores.get(id)!);
    expect(n1.propose(new Uint8Array([1])).ok).toBe(true);
    exchange(cores);

    const first = n1.propose(new Uint8Array([2]));
    const index = first.ok ? first.index : -1;
    for (const message of drain(n1)) cores.get(message.to)!.step(message);
    for (const message of [...drain(n2), ...drain(n3)]) n1.step(message);
    expect(n1.commitIndex).toBe(index);
    expect(drain(n1)).toEqual([]);
    expect(n1.commitAnnouncementDue).toBe(true);

    // The next write's append carries the commit index, so nothing is left to announce.
    expect(n1.propose(new Uint8Array([3])).ok).toBe(true);
    const appends = drain(n1);
    expect(appends.map((message) => message.type)).toEqual(["append", "append"]);
    expect(n1.commitAnnouncementDue).toBe(false);
    n1.announceCommit();
    expect(drain(n1)).toEqual([]);
    for (const message of appends) cores.get(message.to)!.step(message);
    expect(n2.commitIndex).toBe(index);
    expect(n3.commitIndex).toBe(index);
  });

  test("forwarding follower hears on acknowledging", () => {
    const cores = electFirst(["n1", "n2", "n3"]);
    const [n1, n2, n3] = ["n1", "n2", "n3"].map((id) => cores.get(id)!);
    expect(n1.propose(new Uint8Array([1])).ok).toBe(true);
    exchange(cores);

    // n3 forwarded this write. n2's acknowledgement commits it, and the
    // leader announces it, naming the index that n3 waits for.
    const proposal = n1.propose(new Uint8Array([2]));
    const index = proposal.ok ? proposal.index : -1;
    for (const message of drain(n1)) cores.get(message.to)!.step(message);
    const fromN3 = drain(n3);
    for (const message of drain(n2)) n1.step(message);
    expect(n1.commitIndex).toBe(index);
    n1.announceCommit(index);
    expect(drain(n1).map((message) => `${message.type} to ${message.to}`)).toEqual(["heartbeat to n2"]);

    // n3's acknowledgement gets the commit index at once, with no other call.
    for (const message of fromN3) n1.step(message);
    const toN3 = drain(n1);
    expect(toN3.map((message) => `${message.type} to ${message.to}`)).toEqual(["heartbeat to n3"]);
    for (const message of toN3) n3.step(message);
    expect(n3.commitIndex).toBe(index);

    // Once every follower heard it, later commits wait for the runtime again.
    const next = n1.propose(new Uint8Array([3]));
    const nextIndex = next.ok ? next.index : -1;
    for (const message of drain(n1)) cores.get(message.to)!.step(message);
    for (const message of [...drain(n2), ...drain(n3)]) n1.step(message);
    expect(n1.commitIndex).toBe(nextIndex);
    expect(drain(n1)).toEqual([]);
    expect(n1.commitAnnouncementDue).toBe(true);
  });
});
