// Scripted scenario for the rule of Raft thesis section 3.6.2 (figure 3.7):
// a leader must not commit an entry of an earlier term by counting the
// replicas that store it. In random simulation this breakage needs a long
// chain of faults and is rarely caught, so this test pins the schedule.
//
// n1 has an uncommitted entry X at index 2 from term 2. n3 has a
// conflicting entry Y at index 2 from term 3. n1 wins term 4 with n2's vote
// while n3 is cut off. n2 then stores X and n1's no-op, but n1's own no-op
// write has not finished. X is now on n1 and n2, a majority, yet n1 must
// not commit it: if n1 crashed and lost its no-op, n3 could win term 5 with
// n1's vote and overwrite X.

import { describe, expect, test } from "bun:test";

import type { Message } from "../../src/raft/types.ts";
import { commandEntry, configEntry, createCore, exchange, voters } from "./scripted.ts";

describe("commit of earlier-term entries", () => {
  test("replica count alone does not commit", () => {
    const members = voters(["n1", "n2", "n3"]);
    const config = configEntry(members);
    const n1 = createCore("n1", [config, commandEntry(2, 2, 0x58)], { term: 3, votedFor: null, commitIndex: 1 }, 1);
    const n2 = createCore("n2", [config], { term: 3, votedFor: null, commitIndex: 1 }, 2);
    const n3 = createCore("n3", [config, commandEntry(2, 3, 0x59)], { term: 3, votedFor: "n3", commitIndex: 1 }, 3);
    const cores = new Map([
      ["n1", n1],
      ["n2", n2],
      ["n3", n3],
    ]);
    const withoutN3 = (message: Message) => message.to !== "n3" && message.from !== "n3";

    for (let tick = 0; tick < 100 && n1.role !== "leader"; tick++) {
      n1.tick();
      exchange(cores, { deliver: withoutN3, until: () => n1.role === "leader" });
    }
    expect(n1.role).toBe("leader");
    expect(n1.term).toBe(4);

    // n1 sends its appends but its write of the no-op never finishes here:
    // it takes batches for their messages and calls advance() on none.
    const noopBatch = n1.ready();
    expect(noopBatch.entries.map((entry) => [entry.index, entry.term])).toEqual([[3, 4]]);
    let outgoing = noopBatch.messages;
    for (let round = 0; round < 10 && outgoing.length > 0; round++) {
      for (const message of outgoing) {
        if (message.to === "n2") n2.step(message);
      }
      while (n2.hasReady()) {
        const followerBatch = n2.ready();
        n2.advance(followerBatch);
        for (const message of followerBatch.messages) n1.step(message);
      }
      outgoing = n1.ready().messages;
    }

    expect(n2.log.lastIndex()).toBe(3);
    expect(n2.log.term(2)).toBe(2);
    expect(n1.commitIndex).toBe(1);

    // Once n1's own no-op is durable, X commits together with it.
    n1.advance(noopBatch);

    expect(n1.commitIndex).toBe(3);
  });
});
