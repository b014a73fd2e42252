// Scripted scenario for the leader's in-flight window: a follower that stops
// acknowledging is sent appends only until the bytes in flight to it reach
// maxInflightBytes, while a follower that keeps up gets every entry.

import { describe, expect, test } from "bun:test";

import { DEFAULT_RAFT_CONFIG } from "../../src/raft/config.ts";
import type { Message } from "../../src/raft/types.ts";
import { electFirst, exchange } from "./scripted.ts";

const ENTRY_BYTES = 300 * 1024;
const WINDOW_BYTES = 4 << 20;

describe("in-flight window", () => {
  test("bounds bytes to a silent follower", () => {
    const cores = electFirst(["n1", "n2", "n3"], { ...DEFAULT_RAFT_CONFIG, maxInflightBytes: WINDOW_BYTES });
    const n1 = cores.get("n1")!;
    expect(n1.role).toBe("leader");
    // One committed entry with everyone connected puts both followers in the replicating state.
    expect(n1.propose(new Uint8Array([1])).ok).toBe(true);
    exchange(cores);

    // n2 receives appends but its acknowledgements are lost.
    let sentToN2 = 0;
    let bytesToN2 = 0;
    const countAndDrop = (message: Message) => {
      if (message.type === "append" && message.to === "n2") {
        sentToN2++;
        for (const entry of message.entries) bytesToN2 += entry.data.byteLength;
      }
      return message.from !== "n2";
    };
    for (let i = 0; i < 40; i++) {
      expect(n1.propose(new Uint8Array(ENTRY_BYTES).fill(i)).ok).toBe(true);
      exchange(cores, { deliver: countAndDrop, rounds: 4 });
    }
    // One append per entry until 4 MiB are in flight: the 14th crosses that.
    expect(sentToN2).toBe(Math.ceil(WINDOW_BYTES / (ENTRY_BYTES + 24)));
    expect(bytesToN2).toBeLessThan(WINDOW_BYTES + ENTRY_BYTES);
    // n3 acknowledged everything, so the leader and n3 commit all 40 entries.
    expect(n1.commitIndex).toBe(n1.log.lastIndex());
    expect(cores.get("n3")!.log.lastIndex()).toBe(n1.log.lastIndex());

    // Once n2's acknowledgements arrive again, the rest reaches it.
    exchange(cores, { rounds: 50 });
    for (let tick = 0; tick < 5 && cores.get("n2")!.log.lastIndex() < n1.log.lastIndex(); tick++) {
      n1.tick();
      exchange(cores, { rounds: 50 });
    }
    expect(cores.get("n2")!.log.lastIndex()).toBe(n1.log.lastIndex());
  });
});
