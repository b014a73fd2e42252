import { describe, expect, test } from "bun:test";

import { checkLinearizable } from "./linearizability.ts";
import type { CheckResult, KvOp, Operation } from "./linearizability.ts";

// ---------------------------------------------------------------------------
// History builders. Times are small integers, and `ret: null` means the outcome is unknown.

let nextId = 1;

function record(client: number, op: KvOp, call: number, ret: number | null, output?: Operation["output"]): Operation {
  const operation: Operation = { id: nextId++, client, op, call, ret };
  if (output !== undefined) {
    operation.output = output;
  }
  return operation;
}

function set(key: string, value: string, call: number, ret: number | null, client = 0): Operation {
  return record(client, { kind: "set", key, value }, call, ret, "OK");
}

function get(key: string, output: string | null, call: number, ret: number | null, client = 0): Operation {
  return record(client, { kind: "get", key }, call, ret, ret === null ? undefined : output);
}

function del(key: string, output: 0 | 1 | undefined, call: number, ret: number | null, client = 0): Operation {
  return record(client, { kind: "del", key }, call, ret, output);
}

function cas(
  key: string,
  expected: string | null,
  value: string,
  output: boolean | undefined,
  call: number,
  ret: number | null,
  client = 0,
): Operation {
  return record(client, { kind: "cas", key, expected, value }, call, ret, output);
}

function describeResult(result: CheckResult): string {
  return JSON.stringify(result, null, 1);
}

/** Asserts a violation whose counterexample fails on its own and contains every op in `offending`. */
function expectViolation(history: Operation[], offending: Operation[], maxSize: number): Operation[] {
  const result = checkLinearizable(history);
  const counterexample = result.counterexample ?? [];
  const ids = counterexample.map((o) => o.id);

  expect(result.ok).toBe(false);
  expect(result.timedOut).toBeUndefined();
  expect(result.message).toContain("not linearizable");
  expect(counterexample.length).toBeGreaterThan(0);
  expect(counterexample.length).toBeLessThanOrEqual(maxSize);
  for (const operation of offending) {
    expect(ids).toContain(operation.id);
  }
  expect(checkLinearizable(counterexample).ok).toBe(false);
  return counterexample;
}

// ---------------------------------------------------------------------------
// Histories that must pass

describe("accepts", () => {
  test("empty history", () => {
    expect(checkLinearizable([])).toEqual({ ok: true, explored: 0 });
  });

  test("sequential history", () => {
    const history = [
      get("x", null, 0, 1),
      set("x", "a", 2, 3),
      get("x", "a", 4, 5),
      cas("x", "a", "b", true, 6, 7),
      cas("x", "a", "c", false, 8, 9),
      get("x", "b", 10, 11),
      del("x", 1, 12, 13),
      del("x", 0, 14, 15),
      get("x", null, 16, 17),
    ];
    const result = checkLinearizable(history);
    expect(result.ok).toBe(true);
    expect(result.explored).toBe(history.length);
  });

  test("overlapping writes in either order", () => {
    // Both sets overlap, so either may take effect last. The reads show b, then a.
    const history = [
      set("x", "a", 0, 10, 1),
      set("x", "b", 1, 9, 2),
      get("x", "b", 2, 3, 3),
      get("x", "a", 11, 12, 3),
    ];
    expect(checkLinearizable(history).ok).toBe(true);
  });

  test("read concurrent with write", () => {
    const history = [
      set("x", "a", 0, 1, 1),
      set("x", "b", 2, 10, 1),
      get("x", "a", 3, 4, 2),
      get("x", "b", 5, 6, 3),
      get("x", "b", 7, 8, 2),
    ];
    expect(checkLinearizable(history).ok).toBe(true);
  });

  test("equal times as concurrent", () => {
    const history = [set("x", "a", 0, 5, 1), get("x", null, 5, 6, 2)];
    expect(checkLinearizable(history).ok).toBe(true);
  });

  test("unknown set that took effect", () => {
    const history = [set("x", "a", 0, 1), set("x", "b", 2, null, 1), get("x", "b", 3, 4, 2)];
    expect(checkLinearizable(history).ok).toBe(true);
  });

  test("unknown set never applied", () => {
    const history = [set("x", "a", 0, 1), set("x", "b", 2, null, 1), get("x", "a", 3, 4, 2), get("x", "a", 5, 6, 2)];
    expect(checkLinearizable(history).ok).toBe(true);
  });

  test("unknown set applied late", () => {
    const history = [
      set("x", "a", 0, 1),
      set("x", "b", 2, null, 1),
      get("x", "a", 10, 11, 2),
      get("x", "b", 20, 21, 2),
      get("x", "b", 30, 31, 3),
    ];
    expect(checkLinearizable(history).ok).toBe(true);
  });

  test("unknown cas, del and get", () => {
    const history = [
      set("x", "a", 0, 1),
      cas("x", "a", "b", undefined, 2, null, 1),
      get("x", "zzz", 3, null, 2),
      get("x", "b", 4, 5, 2),
      del("x", undefined, 6, null, 1),
      get("x", null, 7, 8, 2),
    ];
    expect(checkLinearizable(history).ok).toBe(true);
  });

  test("del with unknown count", () => {
    const history = [del("x", undefined, 0, 1), set("x", "a", 2, 3), del("x", undefined, 4, 5), get("x", null, 6, 7)];
    expect(checkLinearizable(history).ok).toBe(true);
  });

  test("independent keys", () => {
    const history = [
      set("x", "a", 0, 10, 1),
      set("y", "b", 0, 10, 2),
      get("x", "a", 1, 2, 3),
      get("y", null, 3, 4, 3),
      get("y", "b", 11, 12, 3),
    ];
    expect(checkLinearizable(history).ok).toBe(true);
  });
});

// ---------------------------------------------------------------------------
// Histories that must fail

describe("rejects", () => {
  test("stale read", () => {
    const stale = get("x", "a", 20, 21, 3);
    const history = [
      set("x", "a", 0, 1, 1),
      get("x", "a", 2, 3, 2),
      set("x", "b", 4, 5, 1),
      get("x", "b", 6, 7, 2),
      set("y", "c", 8, 9, 2),
      get("x", "b", 10, 11, 2),
      stale,
      get("x", "b", 22, 23, 1),
    ];
    const counterexample = expectViolation(history, [stale], 3);
    expect(counterexample.every((o) => o.op.key === "x")).toBe(true);
  });

  test("lost write", () => {
    const lost = set("x", "b", 4, 5, 2);
    const history = [
      set("x", "a", 0, 1, 1),
      lost,
      get("x", "a", 10, 11, 3),
      get("x", "a", 12, 13, 1),
      get("x", "a", 14, 15, 2),
    ];
    expectViolation(history, [lost], 3);
  });

  test("read of never-written value", () => {
    const ghost = get("x", "never", 4, 5, 2);
    const history = [set("x", "a", 0, 1, 1), get("x", "a", 2, 3, 2), ghost];
    const counterexample = expectViolation(history, [ghost], 1);
    expect(counterexample).toEqual([ghost]);
  });

  test("read-your-write violation", () => {
    const read = get("x", null, 2, 3, 1);
    const history = [set("x", "a", 0, 1, 1), read];
    expectViolation(history, [read], 2);
  });

  test("non-monotonic reads across clients", () => {
    const newer = get("x", "b", 3, 4, 2);
    const older = get("x", "a", 5, 6, 3);
    const history = [set("x", "a", 0, 1, 1), set("x", "b", 2, 20, 1), newer, older];
    expectViolation(history, [newer, older], 4);
  });

  test("cas that should fail", () => {
    const swap = cas("x", "b", "c", true, 2, 3, 2);
    const history = [set("x", "a", 0, 1, 1), swap, get("x", "c", 4, 5, 1)];
    expectViolation(history, [swap], 2);
  });

  test("cas that should succeed", () => {
    const swap = cas("x", "a", "c", false, 2, 3, 2);
    const history = [set("x", "a", 0, 1, 1), swap];
    expectViolation(history, [swap], 2);
  });

  test("del count on missing key", () => {
    const removal = del("x", 1, 0, 1);
    expectViolation([removal], [removal], 1);
  });

  test("unknown set before its call", () => {
    const early = get("x", "b", 0, 1, 2);
    const history = [early, set("x", "b", 2, null, 1)];
    expectViolation(history, [early], 2);
  });

  test("violation on the right key", () => {
    const bad = get("y", "old", 20, 21, 3);
    const history = [
      set("x", "1", 0, 1, 1),
      set("y", "old", 0, 1, 2),
      set("z", "2", 2, 3, 1),
      set("y", "new", 4, 5, 2),
      get("x", "1", 6, 7, 3),
      bad,
      get("z", "2", 22, 23, 1),
    ];
    const result = checkLinearizable(history);
    expect(result.ok).toBe(false);
    expect(result.key).toBe("y");
    expect(result.counterexample?.every((o) => o.op.key === "y")).toBe(true);
    expect(result.counterexample?.map((o) => o.id)).toContain(bad.id);
  });
});

// ---------------------------------------------------------------------------
// Search budget and input validation

describe("budget", () => {
  test("timeout is not a pass", () => {
    const history = Array.from({ length: 10 }, (_, i) => set("x", `v${i}`, 2 * i, 2 * i + 1));
    const result = checkLinearizable(history, { maxStatesPerKey: 5 });
    expect(result.ok).toBe(false);
    expect(result.timedOut).toBe(true);
    expect(result.key).toBe("x");
    expect(result.message).toContain("maxStatesPerKey");
    expect(result.counterexample).toBeUndefined();
  });

  test("violation wins over timeout", () => {
    const slow = Array.from({ length: 10 }, (_, i) => set("x", `v${i}`, 2 * i, 2 * i + 1));
    const bad = get("y", "never", 0, 1);
    const result = checkLinearizable([...slow, bad], { maxStatesPerKey: 5 });
    expect(result.ok).toBe(false);
    expect(result.timedOut).toBeUndefined();
    expect(result.key).toBe("y");
  });
});

describe("invalid history", () => {
  test("ret before call throws", () => {
    expect(() => checkLinearizable([set("x", "a", 5, 4)])).toThrow("expected a finite time at or after the call");
  });

  test("completed get without output throws", () => {
    const operation: Operation = { id: nextId++, client: 0, op: { kind: "get", key: "x" }, call: 0, ret: 1 };
    expect(() => checkLinearizable([operation])).toThrow("expected a string or null");
  });

  test("completed cas without boolean throws", () => {
    expect(() => checkLinearizable([cas("x", null, "a", undefined, 0, 1)])).toThrow("expected a boolean");
  });

  test("duplicate id throws", () => {
    const first = set("x", "a", 0, 1);
    expect(() => checkLinearizable([first, { ...first }])).toThrow("duplicate id");
  });

  test("zero state budget throws", () => {
    expect(() => checkLinearizable([], { maxStatesPerKey: 0 })).toThrow("maxStatesPerKey");
  });
});

// ---------------------------------------------------------------------------
// Randomized histories from a sequential model

/** Returns a seeded xorshift32 generator of floats in [0, 1). */
function createRandom(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 2 ** 32;
  };
}

interface GeneratorOptions {
  seed: number;
  operations: number;
  clients: number;
  keys: number;
  /** Chance that an operation in flight times out at a given step. */
  unknownRate: number;
}

interface InFlight {
  operation: Operation;
  applied: boolean;
  output: Operation["output"];
}

/** Applies `op` to the model store and returns what the server would reply. */
function applyToStore(store: Map<string, string>, op: KvOp): Operation["output"] {
  const current = store.get(op.key) ?? null;
  switch (op.kind) {
    case "set":
      store.set(op.key, op.value);
      return "OK";
    case "get":
      return current;
    case "del":
      store.delete(op.key);
      return current === null ? 0 : 1;
    case "cas":
      if (current !== op.expected) {
        return false;
      }
      store.set(op.key, op.value);
      return true;
    default: {
      const unknown: never = op;
      throw new Error(`unknown operation ${JSON.stringify(unknown)}`);
    }
  }
}

/**
 * Generates a linearizable history: each operation takes effect on a
 * sequential model at a step between its call and return. An operation that
 * times out before taking effect may still take effect at any later step, or
 * never. Set and cas write unique values, so a stale read is always detectable.
 */
function generateHistory(options: GeneratorOptions): Operation[] {
  const random = createRandom(options.seed);
  const randomInt = (bound: number): number => Math.floor(random() * bound);
  const store = new Map<string, string>();
  const history: Operation[] = [];
  const inFlight: (InFlight | null)[] = Array.from({ length: options.clients }, () => null);
  const unapplied: Operation[] = [];
  const writtenValues: string[] = [];
  let time = 0;

  const startOperation = (client: number): Operation => {
    const id = history.length + 1;
    const key = `k${randomInt(options.keys)}`;
    const roll = random();
    let op: KvOp;
    if (roll < 0.4) {
      op = { kind: "get", key };
    } else if (roll < 0.7) {
      op = { kind: "set", key, value: `v${id}` };
    } else if (roll < 0.85) {
      // Expect the current value half of the time, else null or any value written so far.
      const guess = random();
      let expected: string | null = null;
      if (guess < 0.5) {
        expected = store.get(key) ?? null;
      } else if (guess >= 0.7 && writtenValues.length > 0) {
        expected = writtenValues[randomInt(writtenValues.length)];
      }
      op = { kind: "cas", key, expected, value: `v${id}` };
    } else {
      op = { kind: "del", key };
    }
    if (op.kind === "set" || op.kind === "cas") {
      writtenValues.push(op.value);
    }
    const operation: Operation = { id, client, op, call: time, ret: null };
    history.push(operation);
    return operation;
  };

  // Bounded by maxSteps. Operations still in flight at the end keep an unknown outcome.
  const maxSteps = options.operations * 50;
  for (let step = 0; step < maxSteps; step++) {
    const busy = inFlight.some((flight) => flight !== null);
    if (history.length >= options.operations && !busy) {
      break;
    }
    time++;

    if (unapplied.length > 0 && random() < 0.02) {
      const late = unapplied.splice(randomInt(unapplied.length), 1)[0];
      applyToStore(store, late.op);
      continue;
    }

    const client = randomInt(options.clients);
    const flight = inFlight[client];
    if (flight === null) {
      if (history.length < options.operations) {
        inFlight[client] = { operation: startOperation(client), applied: false, output: undefined };
      }
      continue;
    }

    if (!flight.applied) {
      if (random() < options.unknownRate) {
        if (flight.operation.op.kind !== "get" && random() < 0.5) {
          unapplied.push(flight.operation);
        }
        inFlight[client] = null;
        continue;
      }
      flight.output = applyToStore(store, flight.operation.op);
      flight.applied = true;
      continue;
    }

    if (random() >= options.unknownRate) {
      flight.operation.ret = time;
      const hideCount = flight.operation.op.kind === "del" && random() < 0.2;
      if (!hideCount) {
        flight.operation.output = flight.output;
      }
    }
    inFlight[client] = null;
  }
  return history;
}

function writtenValue(operation: Operation): string | null {
  const op = operation.op;
  if (op.kind === "set" || (op.kind === "cas" && operation.output === true)) {
    return op.value;
  }
  return null;
}

/**
 * Changes one completed get to return a value that was overwritten before the
 * get started, and returns that get. Values are unique and both writes
 * completed, so the result is certainly not linearizable. Returns null when
 * the history has no such get.
 */
function corruptOneRead(history: Operation[], random: () => number): Operation | null {
  const gets = history.filter((o) => o.op.kind === "get" && o.ret !== null);
  const offset = Math.floor(random() * gets.length);
  for (let n = 0; n < gets.length; n++) {
    const read = gets[(offset + n) % gets.length];
    const definiteWrites = history.filter(
      (o) => o.op.key === read.op.key && o.ret !== null && (o.op.kind === "del" || writtenValue(o) !== null),
    );
    for (const overwrite of definiteWrites) {
      if ((overwrite.ret as number) >= read.call) {
        continue;
      }
      const stale = definiteWrites.find((o) => writtenValue(o) !== null && (o.ret as number) < overwrite.call);
      if (stale !== undefined) {
        read.output = writtenValue(stale);
        return read;
      }
    }
  }
  return null;
}

const SEEDS = Array.from({ length: 30 }, (_, i) => 1000 + i);
const SMALL_HISTORY = { operations: 300, clients: 5, keys: 3, unknownRate: 0.05 };

describe("random histories", () => {
  test.each(SEEDS)("accepts model history, seed %d", (seed) => {
    const history = generateHistory({ seed, ...SMALL_HISTORY });
    const result = checkLinearizable(history);
    expect(result.ok, describeResult(result)).toBe(true);
  });

  test.each(SEEDS)("rejects corrupted read, seed %d", (seed) => {
    const history = generateHistory({ seed, ...SMALL_HISTORY });
    const corrupted = corruptOneRead(history, createRandom(seed + 1));
    expect(corrupted).not.toBeNull();

    const result = checkLinearizable(history);
    const ids = (result.counterexample ?? []).map((o) => o.id);
    expect(result.ok).toBe(false);
    expect(result.timedOut).toBeUndefined();
    expect(result.key).toBe(corrupted?.op.key);
    expect(corrupted).toBeDefined();
    expect(ids).toContain(corrupted!.id);
    expect(ids.length).toBeLessThanOrEqual(4);
  });

  test("checks 2,000 operations quickly", () => {
    const history = generateHistory({ seed: 7, operations: 2000, clients: 5, keys: 20, unknownRate: 0.02 });
    const started = performance.now();
    const result = checkLinearizable(history);
    const elapsedMs = performance.now() - started;

    expect(result.ok, describeResult(result)).toBe(true);
    expect(history.length).toBe(2000);
    // The suite's performance target is well under a second for this shape.
    expect(elapsedMs).toBeLessThan(1000);
  });
});
