// Scripted scenarios for the commit index reaching every follower promptly.
// The leader commits an entry as soon as one follower acknowledges it. The
// other followers learn the commit index from the next append, or from an
// announcement that the runtime requests when no append came soon. Neither
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

/** Three cores with n1 elected leader and a first entry committed everywhere. */
function threeNodes(): { cores: Map<string, RaftCore>; n1: RaftCore; n2: RaftCore; n3: RaftCore } {
  const cores = electFirst(["n1", "n2", "n3"]);
  const [n1, n2, n3] = ["n1", "n2", "n3"].map((id) => cores.get(id)!);
  expect(n1.role).toBe("leader");
  expect(n1.propose(new Uint8Array([1])).ok).toBe(true);
  exchange(cores);
  return { cores, n1, n2, n3 };
}

/** Proposes one entry on `leader` and returns its index. */
function proposeOne(leader: RaftCore, value: number): number {
  const proposal = leader.propose(new Uint8Array([value]));
  expect(proposal.ok).toBe(true);
  return proposal.ok ? proposal.index : -1;
}

/** Steps each message on the core it is addressed to. */
function deliver(cores: Map<string, RaftCore>, messages: Message[]): void {
  for (const message of messages) cores.get(message.to)!.step(message);
}

function describeMessages(messages: Message[]): string[] {
  return messages.map((message) => `${message.type} to ${message.to}`);
}

describe("commit announcement", () => {
  test("reaches a follower that acknowledged late", () => {
    const { cores, n1, n2, n3 } = threeNodes();
    const index = proposeOne(n1, 2);
    deliver(cores, drain(n1));
    const fromN2 = drain(n2);
    const fromN3 = drain(n3);

    // n2's acknowledgement commits the entry, and n3's is still on its way.
    // The leader sends nothing until the runtime requests an announcement,
    // which goes to n2 alone, because n3 is not known to store the entry.
    deliver(cores, fromN2);
    expect(n1.commitIndex).toBe(index);
    expect(drain(n1)).toEqual([]);
    expect(n1.commitAnnouncementDue).toBe(true);
    n1.announceCommit();
    const toN2 = drain(n1);
    expect(describeMessages(toN2)).toEqual(["heartbeat to n2"]);
    deliver(cores, toN2);
    drain(n2);
    expect(n2.commitIndex).toBe(index);
    expect(n3.commitIndex).toBeLessThan(index);
    expect(n1.commitAnnouncementDue).toBe(false);

    // n3's acknowledgement arrives, and the next announcement goes to n3 alone.
    deliver(cores, fromN3);
    expect(drain(n1)).toEqual([]);
    expect(n1.commitAnnouncementDue).toBe(true);
    n1.announceCommit();
    const toN3 = drain(n1);
    expect(describeMessages(toN3)).toEqual(["heartbeat to n3"]);
    deliver(cores, toN3);
    // An announcement gets no response: the next periodic heartbeat gets one.
    expect(drain(n3)).toEqual([]);
    expect(n3.commitIndex).toBe(index);
    expect(n1.commitAnnouncementDue).toBe(false);
  });

  test("rides on the next append", () => {
    const { cores, n1, n2, n3 } = threeNodes();
    const index = proposeOne(n1, 2);
    deliver(cores, drain(n1));
    deliver(cores, [...drain(n2), ...drain(n3)]);
    expect(n1.commitIndex).toBe(index);
    expect(drain(n1)).toEqual([]);
    expect(n1.commitAnnouncementDue).toBe(true);

    // The next write's append carries the commit index, so nothing is left to announce.
    proposeOne(n1, 3);
    const appends = drain(n1);
    expect(appends.map((message) => message.type)).toEqual(["append", "append"]);
    expect(n1.commitAnnouncementDue).toBe(false);
    n1.announceCommit();
    expect(drain(n1)).toEqual([]);
    deliver(cores, appends);
    expect(n2.commitIndex).toBe(index);
    expect(n3.commitIndex).toBe(index);
  });

  test("forwarding follower hears on acknowledging", () => {
    const { cores, n1, n2, n3 } = threeNodes();

    // n3 forwarded this write. n2's acknowledgement commits it, and the
    // leader announces it, naming the index that n3 waits for.
    const index = proposeOne(n1, 2);
    deliver(cores, drain(n1));
    const fromN3 = drain(n3);
    deliver(cores, drain(n2));
    expect(n1.commitIndex).toBe(index);
    n1.announceCommit(index);
    expect(describeMessages(drain(n1))).toEqual(["heartbeat to n2"]);

    // n3's acknowledgement gets the commit index at once, with no other call.
    deliver(cores, fromN3);
    const toN3 = drain(n1);
    expect(describeMessages(toN3)).toEqual(["heartbeat to n3"]);
    deliver(cores, toN3);
    expect(n3.commitIndex).toBe(index);

    // Once every follower heard it, later commits wait for the runtime again.
    const nextIndex = proposeOne(n1, 3);
    deliver(cores, drain(n1));
    deliver(cores, [...drain(n2), ...drain(n3)]);
    expect(n1.commitIndex).toBe(nextIndex);
    expect(drain(n1)).toEqual([]);
    expect(n1.commitAnnouncementDue).toBe(true);
  });
});
