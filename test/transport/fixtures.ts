// Sample messages and polling helpers shared by the transport tests.

import type { Member, Message } from "../../src/raft/types.ts";

export const MEMBERS: Member[] = [
  { id: "n1", raftAddr: "127.0.0.1:7001", clientAddr: "127.0.0.1:6001", voter: true },
  { id: "n2", raftAddr: "127.0.0.1:7002", clientAddr: "127.0.0.1:6002", voter: false },
];

/** Returns one message of every type in the Message union, from n1 to n2. */
export function sampleMessages(): Message[] {
  const envelope = { from: "n1", to: "n2", term: 3 };
  return [
    {
      ...envelope,
      type: "append",
      prevIndex: 4,
      prevTerm: 2,
      commitIndex: 4,
      entries: [
        { index: 5, term: 3, kind: "command", data: new Uint8Array([1, 2, 3]) },
        { index: 6, term: 3, kind: "config", data: new Uint8Array(0), members: MEMBERS },
        { index: 7, term: 3, kind: "noop", data: new Uint8Array(0) },
      ],
    },
    { ...envelope, type: "appendResponse", success: false, matchIndex: 0, lastIndex: 9 },
    { ...envelope, type: "vote", lastIndex: 9, lastTerm: 2, preVote: true, transfer: false },
    { ...envelope, type: "voteResponse", granted: true, preVote: false },
    {
      ...envelope,
      type: "snapshot",
      snapshot: { meta: { lastIndex: 100, lastTerm: 3, members: MEMBERS }, data: new Uint8Array([9, 8, 7]) },
    },
    { ...envelope, type: "timeoutNow" },
    { ...envelope, type: "heartbeat", commitIndex: 12, readRound: 5 },
    { ...envelope, type: "heartbeatResponse", readRound: 5 },
  ];
}

/**
 * Polls `condition` every 10 ms until it returns true. Throws, naming `what`,
 * once `timeoutMs` has passed.
 */
export async function waitUntil(what: string, condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(10);
  }
}
