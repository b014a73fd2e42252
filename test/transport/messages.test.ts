import { describe, expect, test } from "bun:test";
import { toWireMessage, validateMessage } from "../../src/transport/messages.ts";
import { sampleMessages } from "./fixtures.ts";

type Path = (string | number)[];

/** A marker value that deletes the field at a path instead of setting it. */
const REMOVE = Symbol("remove");

/**
 * Returns a deep copy of the sample message of `type`, in its wire form,
 * whose field at `path` is set to `value`, or deleted when `value` is REMOVE.
 */
function mutated(type: string, path: Path, value: unknown): unknown {
  const original = sampleMessages().find((msg) => msg.type === type);
  if (original === undefined) throw new Error(`no sample message of type ${type}`);

  const copy: unknown = structuredClone(toWireMessage(original));
  let parent = copy as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>;
  const last = path[path.length - 1];
  if (value === REMOVE) {
    delete parent[last];
  } else {
    parent[last] = value;
  }
  return copy;
}

describe("validateMessage", () => {
  test("accepts each message type", () => {
    for (const msg of sampleMessages()) {
      expect(validateMessage(structuredClone(toWireMessage(msg)))).toEqual(msg);
    }
  });

  test("frames entries as arrays", () => {
    const append = sampleMessages().find((msg) => msg.type === "append")!;
    const wire = toWireMessage(append) as { entries: unknown[] };
    expect(wire.entries[0]).toEqual([5, 3, 0, new Uint8Array([1, 2, 3])]);
    expect(wire.entries[1]).toHaveLength(5);
    expect(wire.entries[2]).toEqual([7, 3, 2, new Uint8Array(0)]);
  });

  test("keeps a quiet heartbeat's flag", () => {
    const value = mutated("heartbeat", ["quiet"], true);
    expect(validateMessage(value)).toMatchObject({ type: "heartbeat", quiet: true });
  });

  test("drops unknown fields", () => {
    const value = mutated("heartbeat", ["extra"], "x");

    const result = validateMessage(value);
    expect(typeof result).toBe("object");
    expect(result).not.toHaveProperty("extra");
  });

  test("accepts entries without members", () => {
    const value = mutated("append", ["entries", 1], [6, 3, 1, new Uint8Array(0)]);

    expect(validateMessage(value)).toMatchObject({ entries: [{}, { index: 6, kind: "config" }, {}] });
    expect((validateMessage(value) as { entries: object[] }).entries[1]).not.toHaveProperty("members");
  });

  test("rejects values that are not maps", () => {
    for (const value of [null, 3, "append", [1, 2], new Uint8Array([1])]) {
      expect(validateMessage(value)).toStartWith("invalid message: expected a map");
    }
  });

  test("rejects unknown or missing type", () => {
    expect(validateMessage({ type: "hello", from: "n1", to: "n2", term: 1 })).toBe(
      'invalid message: unknown type "hello"',
    );
    expect(validateMessage({ from: "n1", to: "n2", term: 1 })).toBe("invalid message: unknown type undefined");
    expect(validateMessage({ type: 7 })).toBe("invalid message: unknown type 7");
  });

  test("ignores inherited fields", () => {
    const [, , , , , timeoutNow] = sampleMessages();
    const value = Object.create(timeoutNow) as object;

    expect(validateMessage(value)).toBe("invalid message: unknown type undefined");
  });

  const cases: { name: string; type: string; path: Path; value: unknown; error: string }[] = [
    {
      name: "missing from",
      type: "vote",
      path: ["from"],
      value: REMOVE,
      error: "invalid vote message: from is missing, expected a non-empty node id",
    },
    {
      name: "empty to",
      type: "vote",
      path: ["to"],
      value: "",
      error: 'invalid vote message: to must be a non-empty node id, got ""',
    },
    {
      name: "negative term",
      type: "timeoutNow",
      path: ["term"],
      value: -1,
      error: "invalid timeoutNow message: term must be a non-negative integer, got -1",
    },
    {
      name: "fractional index",
      type: "appendResponse",
      path: ["matchIndex"],
      value: 1.5,
      error: "invalid appendResponse message: matchIndex must be a non-negative integer, got 1.5",
    },
    {
      name: "unsafe integer",
      type: "heartbeat",
      path: ["commitIndex"],
      value: 2 ** 53,
      error: "invalid heartbeat message: commitIndex must be a non-negative integer, got 9007199254740992",
    },
    {
      name: "string boolean",
      type: "vote",
      path: ["preVote"],
      value: "true",
      error: 'invalid vote message: preVote must be a boolean, got "true"',
    },
    {
      name: "numeric quiet flag",
      type: "heartbeat",
      path: ["quiet"],
      value: 1,
      error: "invalid heartbeat message: quiet must be a boolean, got 1",
    },
    {
      name: "missing granted",
      type: "voteResponse",
      path: ["granted"],
      value: REMOVE,
      error: "invalid voteResponse message: granted is missing, expected a boolean",
    },
    {
      name: "entries not an array",
      type: "append",
      path: ["entries"],
      value: { index: 5 },
      error: "invalid append message: entries must be an array, got a map",
    },
    {
      name: "entry not an array",
      type: "append",
      path: ["entries", 2],
      value: 7,
      error: "invalid append message: entries[2] must be an array of 4 or 5 fields, got 7",
    },
    {
      name: "entry with three fields",
      type: "append",
      path: ["entries", 2],
      value: [7, 3, 2],
      error: "invalid append message: entries[2] must be an array of 4 or 5 fields, got an array",
    },
    {
      name: "unknown entry kind",
      type: "append",
      path: ["entries", 0, 2],
      value: 3,
      error: "invalid append message: entries[0].kind must be one of 0 (command), 1 (config), 2 (noop), got 3",
    },
    {
      name: "entry kind as text",
      type: "append",
      path: ["entries", 0, 2],
      value: "command",
      error: 'invalid append message: entries[0].kind must be one of 0 (command), 1 (config), 2 (noop), got "command"',
    },
    {
      name: "negative entry index",
      type: "append",
      path: ["entries", 0, 0],
      value: -1,
      error: "invalid append message: entries[0].index must be a non-negative integer, got -1",
    },
    {
      name: "entry data as text",
      type: "append",
      path: ["entries", 0, 3],
      value: "abc",
      error: 'invalid append message: entries[0].data must be bytes, got "abc"',
    },
    {
      name: "entry data as array",
      type: "append",
      path: ["entries", 0, 3],
      value: [1, 2, 3],
      error: "invalid append message: entries[0].data must be bytes, got an array",
    },
    {
      name: "member without voter",
      type: "append",
      path: ["entries", 1, 4, 1, "voter"],
      value: REMOVE,
      error: "invalid append message: entries[1].members[1].voter is missing, expected a boolean",
    },
    {
      name: "members not an array",
      type: "append",
      path: ["entries", 1, 4],
      value: null,
      error: "invalid append message: entries[1].members must be an array, got null",
    },
    {
      name: "snapshot without meta",
      type: "snapshot",
      path: ["snapshot", "meta"],
      value: REMOVE,
      error: "invalid snapshot message: snapshot.meta is missing, expected a map",
    },
    {
      name: "snapshot member with numeric id",
      type: "snapshot",
      path: ["snapshot", "meta", "members", 0, "id"],
      value: 1,
      error: "invalid snapshot message: snapshot.meta.members[0].id must be a non-empty node id, got 1",
    },
    {
      name: "snapshot data missing",
      type: "snapshot",
      path: ["snapshot", "data"],
      value: REMOVE,
      error: "invalid snapshot message: snapshot.data is missing, expected bytes",
    },
    {
      name: "missing readRound",
      type: "heartbeatResponse",
      path: ["readRound"],
      value: REMOVE,
      error: "invalid heartbeatResponse message: readRound is missing, expected a non-negative integer",
    },
  ];

  for (const { name, type, path, value, error } of cases) {
    test(`rejects ${name}`, () => {
      expect(validateMessage(mutated(type, path, value))).toBe(error);
    });
  }
});
