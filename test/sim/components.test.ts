// Unit tests of the simulator's building blocks: the random source, the
// event queue, the storage model and the network model.

import { describe, expect, test } from "bun:test";

import type { Entry, Message } from "../../src/raft/types.ts";
import { cloneEntry, cloneMessage, originOf } from "./entries.ts";
import { EventQueue } from "./event-queue.ts";
import { SimNetwork } from "./network.ts";
import { SimRandom } from "./random.ts";
import { SimStorage, StorageContractError } from "./storage.ts";

function entry(index: number, term: number): Entry {
  return { index, term, kind: "command", data: new Uint8Array([index]) };
}

function heartbeat(from: string, to: string): Message {
  return { type: "heartbeat", from, to, term: 1, commitIndex: 0, readRound: 0 };
}

describe("SimRandom", () => {
  test("same seed gives same stream", () => {
    const a = new SimRandom(42);
    const b = new SimRandom(42);
    for (let i = 0; i < 100; i++) expect(a.nextUint32()).toBe(b.nextUint32());
  });

  test("nearby seeds give different streams", () => {
    expect(new SimRandom(1).nextUint32()).not.toBe(new SimRandom(2).nextUint32());
  });

  test("int stays within bounds", () => {
    const random = new SimRandom(7);
    const seen = new Set<number>();
    for (let i = 0; i < 1000; i++) {
      const value = random.int(3, 6);
      expect(value).toBeGreaterThanOrEqual(3);
      expect(value).toBeLessThanOrEqual(6);
      seen.add(value);
    }
    expect(seen.size).toBe(4);
  });

  test("next stays in [0, 1)", () => {
    const random = new SimRandom(9);
    for (let i = 0; i < 1000; i++) {
      const value = random.next();
      expect(value).toBeGreaterThanOrEqual(0);
      expect(value).toBeLessThan(1);
    }
  });
});

describe("EventQueue", () => {
  test("pops by time, then by scheduling order", () => {
    const queue = new EventQueue();
    const order: string[] = [];
    const label = { kind: "test", node: null };
    queue.push(5, label, () => order.push("c"));
    queue.push(1, label, () => order.push("a"));
    queue.push(5, label, () => order.push("d"));
    queue.push(3, label, () => order.push("b"));
    for (let event = queue.pop(); event; event = queue.pop()) event.run();
    expect(order).toEqual(["a", "b", "c", "d"]);
  });
});

describe("SimStorage", () => {
  test("torn write keeps hard state, truncation and an entry prefix", () => {
    const storage = new SimStorage({ term: 1, votedFor: null, commitIndex: 0 }, [entry(1, 1), entry(2, 1), entry(3, 1)]);
    storage.write({ hardState: { term: 2, votedFor: "n2", commitIndex: 1 }, truncateFrom: 2, entries: [entry(2, 2), entry(3, 2), entry(4, 2)] }, 1);

    const loaded = storage.load();
    expect(loaded.hardState).toEqual({ term: 2, votedFor: "n2", commitIndex: 1 });
    expect(loaded.entries.map((e) => [e.index, e.term])).toEqual([
      [1, 1],
      [2, 2],
    ]);
  });

  test("write leaving a gap is rejected", () => {
    const storage = new SimStorage();
    expect(() => storage.write({ hardState: null, truncateFrom: null, entries: [entry(2, 1)] })).toThrow(StorageContractError);
  });

  test("overwrite without truncation is rejected", () => {
    const storage = new SimStorage({ term: 1, votedFor: null, commitIndex: 0 }, [entry(1, 1), entry(2, 1)]);
    expect(() => storage.write({ hardState: null, truncateFrom: null, entries: [entry(1, 2)] })).toThrow(StorageContractError);
  });

  test("write lowering the term is rejected", () => {
    const storage = new SimStorage({ term: 3, votedFor: null, commitIndex: 0 });
    expect(() => storage.write({ hardState: { term: 2, votedFor: null, commitIndex: 0 }, truncateFrom: null, entries: [] })).toThrow(
      StorageContractError,
    );
  });

  test("write changing a cast vote is rejected", () => {
    const storage = new SimStorage({ term: 3, votedFor: "n1", commitIndex: 0 });
    expect(() => storage.write({ hardState: { term: 3, votedFor: "n2", commitIndex: 0 }, truncateFrom: null, entries: [] })).toThrow(
      StorageContractError,
    );
  });

  test("rewriting the same entries is allowed", () => {
    const storage = new SimStorage({ term: 1, votedFor: null, commitIndex: 0 }, [entry(1, 1), entry(2, 1)]);
    storage.write({ hardState: null, truncateFrom: null, entries: [entry(1, 1), entry(2, 1), entry(3, 1)] });
    expect(storage.lastIndex).toBe(3);
  });

  test("load returns copies with the same origin", () => {
    const original = entry(1, 1);
    const storage = new SimStorage({ term: 1, votedFor: null, commitIndex: 0 }, [original]);
    const loaded = storage.load().entries[0];
    expect(loaded).not.toBe(original);
    expect(originOf(loaded)).toBe(originOf(original));
  });
});

describe("entry copies", () => {
  test("copies keep the origin, entries with other content get another", () => {
    const a = entry(1, 1);
    const copy = cloneEntry(a);
    expect(copy.data).not.toBe(a.data);
    expect(originOf(copy)).toBe(originOf(a));
    const other = { ...a, data: new Uint8Array([...a.data, 0]) };
    expect(originOf(other)).not.toBe(originOf(a));
    expect(originOf({ ...a, kind: "noop" })).not.toBe(originOf(a));
  });

  test("append messages are copied entry by entry", () => {
    const message: Message = { type: "append", from: "n1", to: "n2", term: 1, prevIndex: 0, prevTerm: 0, entries: [entry(1, 1)], commitIndex: 0 };
    const copy = cloneMessage(message);
    expect(copy).not.toBe(message);
    if (copy.type !== "append") throw new Error("copy changed the message type");
    expect(copy.entries[0]).not.toBe(message.entries[0]);
    expect(originOf(copy.entries[0])).toBe(originOf(message.entries[0]));
  });
});

describe("SimNetwork", () => {
  const nodes = ["n1", "n2", "n3", "n4"];

  test("split cuts both directions between groups only", () => {
    const network = new SimNetwork(new SimRandom(1));
    network.split(["n1", "n2"], ["n3", "n4"]);
    expect(network.canPass("n1", "n3")).toBe(false);
    expect(network.canPass("n3", "n1")).toBe(false);
    expect(network.canPass("n1", "n2")).toBe(true);
    expect(network.canPass("n3", "n4")).toBe(true);
  });

  test("one-way partition blocks one direction", () => {
    const network = new SimNetwork(new SimRandom(1));
    network.oneWay(["n1"], ["n2", "n3"]);
    expect(network.canPass("n1", "n2")).toBe(false);
    expect(network.canPass("n2", "n1")).toBe(true);
  });

  test("bridge keeps one peer reachable", () => {
    const network = new SimNetwork(new SimRandom(1));
    network.bridge("n1", "n2", nodes);
    expect(network.canPass("n1", "n2")).toBe(true);
    expect(network.canPass("n2", "n1")).toBe(true);
    expect(network.canPass("n1", "n3")).toBe(false);
    expect(network.canPass("n4", "n1")).toBe(false);
    expect(network.canPass("n2", "n3")).toBe(true);
  });

  test("heal removes every block", () => {
    const network = new SimNetwork(new SimRandom(1));
    network.split(["n1"], ["n2", "n3", "n4"]);
    network.heal();
    for (const a of nodes) for (const b of nodes) expect(network.canPass(a, b)).toBe(true);
  });

  test("loss, duplication and delay follow the conditions", () => {
    const network = new SimNetwork(new SimRandom(3));
    network.conditions = { ...network.conditions, dropRate: 1 };
    expect(network.route(heartbeat("n1", "n2"))).toEqual([]);
    network.conditions = { ...network.conditions, dropRate: 0, duplicateRate: 1, minDelayMs: 2, maxDelayMs: 2 };
    expect(network.route(heartbeat("n1", "n2"))).toEqual([2, 2]);
    expect(network.stats.dropped).toBe(1);
    expect(network.stats.duplicated).toBe(1);
  });

  test("blocked link drops the message", () => {
    const network = new SimNetwork(new SimRandom(3));
    network.oneWay(["n1"], ["n2"]);
    expect(network.route(heartbeat("n1", "n2"))).toEqual([]);
    expect(network.stats.blocked).toBe(1);
  });
});
