// Scripted scenarios for the voter a leader hands over to when no target is
// named (TRANSFER without an id, a graceful stop): the most up-to-date one
// among those that responded recently, never a peer that stopped responding
// or that the caller knows is down.

import { describe, expect, test } from "bun:test";
import { electFirst, exchange } from "./scripted.ts";

describe("transfer target", () => {
  test("skips a voter that stopped responding", () => {
    const cores = electFirst(["n1", "n2", "n3"]);
    const n1 = cores.get("n1")!;
    expect(n1.role).toBe("leader");
    expect(n1.propose(new Uint8Array([1])).ok).toBe(true);
    exchange(cores);
    // Both followers have every entry, so only responsiveness distinguishes them.
    expect(n1.bestTransferTarget()).not.toBeNull();

    // n2 goes silent: its messages are lost for four heartbeat intervals.
    for (let tick = 0; tick < 4; tick++) {
      n1.tick();
      exchange(cores, { deliver: (message) => message.from !== "n2" && message.to !== "n2" });
    }
    expect(n1.role).toBe("leader");
    expect(n1.bestTransferTarget()).toBe("n3");
  });

  test("skips a voter the caller rules out", () => {
    const cores = electFirst(["n1", "n2", "n3"]);
    const n1 = cores.get("n1")!;
    expect(n1.propose(new Uint8Array([1])).ok).toBe(true);
    exchange(cores);
    expect(n1.bestTransferTarget((id) => id !== "n2")).toBe("n3");
    expect(n1.bestTransferTarget((id) => id !== "n3")).toBe("n2");
    expect(n1.bestTransferTarget(() => false)).toBeNull();
  });

  test("returns null when no voter responds", () => {
    const cores = electFirst(["n1", "n2", "n3"]);
    const n1 = cores.get("n1")!;
    exchange(cores);
    for (let tick = 0; tick < 4; tick++) {
      n1.tick();
      exchange(cores, { deliver: (message) => message.from === "n1" && message.to === "n1" });
    }
    expect(n1.bestTransferTarget()).toBeNull();
  });
});
