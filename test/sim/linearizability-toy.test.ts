// The simulator trusts checkLinearizable to reject the histories a broken
// cluster produces. These toy histories are shaped like the simulator's:
// times in simulated milliseconds, acknowledged SETs with output "OK", DELs
// with the number of keys removed, and unknown outcomes as `ret: null`.

import { describe, expect, test } from "bun:test";

import { checkLinearizable, type Operation } from "../support/linearizability.ts";

let nextId = 1;

function set(client: number, key: string, value: string, call: number, ret: number | null): Operation {
  return { id: nextId++, client, op: { kind: "set", key, value }, call, ret, output: "OK" };
}

function get(client: number, key: string, output: string | null, call: number, ret: number): Operation {
  return { id: nextId++, client, op: { kind: "get", key }, call, ret, output };
}

function del(client: number, key: string, output: 0 | 1, call: number, ret: number): Operation {
  return { id: nextId++, client, op: { kind: "del", key }, call, ret, output };
}

describe("linearizability checker on simulator histories", () => {
  test("stale read after acknowledged write is rejected", () => {
    const staleRead = get(1, "k0", "a", 40, 45);
    const history = [set(1, "k0", "a", 0, 10), set(2, "k0", "b", 20, 30), staleRead];

    const result = checkLinearizable(history);

    expect(result.ok).toBe(false);
    expect(result.timedOut).toBeUndefined();
    expect(result.key).toBe("k0");
    expect(result.counterexample?.map((op) => op.id)).toContain(staleRead.id);
  });

  test("lost acknowledged write is rejected", () => {
    const history = [set(1, "k1", "x", 0, 5), get(2, "k1", null, 10, 12)];

    const result = checkLinearizable(history);

    expect(result.ok).toBe(false);
    expect(result.key).toBe("k1");
  });

  test("wrong DEL count is rejected", () => {
    const history = [set(1, "k0", "a", 0, 5), del(2, "k0", 0, 10, 12)];

    expect(checkLinearizable(history).ok).toBe(false);
  });

  test("read of a value never written is rejected", () => {
    expect(checkLinearizable([get(1, "k0", "ghost", 0, 3)]).ok).toBe(false);
  });

  test("timed-out write may apply later or never", () => {
    const appliedLate = [set(1, "k0", "a", 0, 5), set(2, "k0", "b", 6, null), get(1, "k0", "a", 20, 25), get(1, "k0", "b", 30, 35)];
    const neverApplied = [set(1, "k0", "a", 0, 5), set(2, "k0", "b", 6, null), get(1, "k0", "a", 20, 25)];

    expect(checkLinearizable(appliedLate).ok).toBe(true);
    expect(checkLinearizable(neverApplied).ok).toBe(true);
  });

  test("timed-out write cannot be undone once read", () => {
    const history = [set(1, "k0", "a", 0, 5), set(2, "k0", "b", 6, null), get(1, "k0", "b", 20, 25), get(1, "k0", "a", 30, 35)];

    expect(checkLinearizable(history).ok).toBe(false);
  });

  test("concurrent writes may take effect in either order", () => {
    const history = [set(1, "k0", "a", 0, 20), set(2, "k0", "b", 5, 15), get(3, "k0", "a", 25, 30)];

    expect(checkLinearizable(history).ok).toBe(true);
  });
});
