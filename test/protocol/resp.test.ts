import { describe, expect, test } from "bun:test";
import {
  array,
  bulk,
  DEFAULT_RESP_LIMITS,
  encodeCommand,
  error,
  integer,
  map,
  nullReply,
  push,
  RespParser,
  RespReplyParser,
  simpleString,
  splitCommandLine,
} from "../../src/protocol/resp.ts";
import type { ParseResult, RespLimits, RespValue } from "../../src/protocol/resp.ts";

const bytes = (text: string): Buffer => Buffer.from(text, "latin1");

/** Outcome of draining a parser: the commands as latin1 strings, then "incomplete" or the error message. */
interface Drained {
  commands: string[][];
  end: string;
}

function drain(parser: RespParser): Drained {
  const commands: string[][] = [];
  for (let i = 0; i < 1_000_000; i++) {
    const result: ParseResult = parser.next();
    if (result.kind === "command") {
      commands.push(result.args.map((arg) => arg.toString("latin1")));
      continue;
    }
    return { commands, end: result.kind === "error" ? result.message : "incomplete" };
  }
  throw new Error("parser returned more than 1,000,000 commands");
}

function parse(input: string, limits: RespLimits = DEFAULT_RESP_LIMITS): Drained {
  const parser = new RespParser(limits);
  parser.push(bytes(input));
  return drain(parser);
}

function parseByteByByte(input: Buffer): Drained {
  const parser = new RespParser(DEFAULT_RESP_LIMITS);
  const result: Drained = { commands: [], end: "incomplete" };
  for (let i = 0; i < input.length; i++) {
    parser.push(input.subarray(i, i + 1));
    const step = drain(parser);
    result.commands.push(...step.commands);
    result.end = step.end;
  }
  return result;
}

describe("inline quoting", () => {
  // [inline line, expected arguments, or null for "unbalanced quotes in request"]
  const cases: [string, string[] | null][] = [
    ['SET k1 "hello world"', ["SET", "k1", "hello world"]],
    ["SET k2 'it\\'s'", ["SET", "k2", "it's"]],
    ['SET k3 "a\\"b"', ["SET", "k3", 'a"b']],
    ['SET k4 "tab\\there\\x41"', ["SET", "k4", "tab\there" + "A"]],
    ['"\\n\\r\\t\\b\\a\\\\"', ["\n\r\t\b\x07\\"]],
    ['"\\xff\\x00\\xAb"', ["\xff\x00\xab"]],
    ['"\\xZZ"', ["xZZ"]],
    ['"\\q"', ["q"]],
    ["'a\\nb'", ["a\\nb"]],
    ["'a\\\\b'", ["a\\\\b"]],
    ["'say \"hi\"'", ['say "hi"']],
    ['"it\'s"', ["it's"]],
    ['SET "" emptykey', ["SET", "", "emptykey"]],
    ['SET k6 ""', ["SET", "k6", ""]],
    ["SET k ''", ["SET", "k", ""]],
    ['"" ""', ["", ""]],
    ['a"b c"', ["ab c"]],
    ["a'b c'", ["ab c"]],
    ["  GET \t k  ", ["GET", "k"]],
    ['"a"\tb', ["a", "b"]],
    ["x\x0by", ["x\x0by"]],
    ["SET k4b 'x'y", null],
    ['SET k "x"y', null],
    ['SET k5 "unbalanced', null],
    ["SET k 'unbalanced", null],
    ['SET k "ends with backslash\\', null],
    ['SET k "a""b"', null],
  ];

  for (const [line, expected] of cases) {
    test(`parser splits ${JSON.stringify(line)}`, () => {
      const result = parse(`${line}\r\n`);
      if (expected === null) {
        expect(result.commands).toEqual([]);
        expect(result.end).toBe("unbalanced quotes in request");
      } else {
        expect(result.commands).toEqual([expected]);
        expect(result.end).toBe("incomplete");
      }
    });

    test(`splitCommandLine splits ${JSON.stringify(line)}`, () => {
      const args = splitCommandLine(bytes(line));
      expect(args === null ? null : args.map((arg) => arg.toString("latin1"))).toEqual(expected);
    });
  }

  test("splitCommandLine encodes strings as UTF-8", () => {
    const args = splitCommandLine('SET clé "\\xc3\\xa9"');
    expect(args?.map((arg) => arg.toString("utf8"))).toEqual(["SET", "clé", "é"]);
  });
});

describe("inline lines", () => {
  test("bare LF ends a line", () => {
    expect(parse("PING\nGET k\n")).toEqual({ commands: [["PING"], ["GET", "k"]], end: "incomplete" });
  });

  test("empty lines are ignored", () => {
    expect(parse("\r\n\n   \r\nPING\r\n\t\n")).toEqual({ commands: [["PING"]], end: "incomplete" });
  });

  test("line without LF waits", () => {
    expect(parse("GET k")).toEqual({ commands: [], end: "incomplete" });
  });

  test("inline at maximum size is accepted", () => {
    const limits = { ...DEFAULT_RESP_LIMITS, maxInlineBytes: 100 };
    const line = `SET k ${"v".repeat(94)}`;
    expect(line.length).toBe(100);
    expect(parse(`${line}\r\n`, limits).commands).toEqual([["SET", "k", "v".repeat(94)]]);
  });

  test("oversized inline with LF rejected", () => {
    const limits = { ...DEFAULT_RESP_LIMITS, maxInlineBytes: 100 };
    const result = parse(`SET k ${"v".repeat(95)}\r\n`, limits);
    expect(result.end).toBe("too big inline request");
  });

  test("oversized inline without LF rejected", () => {
    const result = parse("x".repeat(64 * 1024 + 2));
    expect(result.end).toBe("too big inline request");
  });

  test("inline just under limit waits", () => {
    const result = parse("x".repeat(64 * 1024 + 1));
    expect(result.end).toBe("incomplete");
  });
});

describe("multibulk requests", () => {
  test("parses a simple command", () => {
    expect(parse("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")).toEqual({ commands: [["GET", "k"]], end: "incomplete" });
  });

  test("keeps empty and binary arguments", () => {
    const result = parse("*3\r\n$3\r\nSET\r\n$0\r\n\r\n$6\r\na\r\n\x00\xffb\r\n");
    expect(result.commands).toEqual([["SET", "", "a\r\n\x00\xffb"]]);
  });

  test("zero and null counts are skipped", () => {
    expect(parse("*0\r\n*-1\r\nPING\r\n")).toEqual({ commands: [["PING"]], end: "incomplete" });
  });

  test("mixes inline and multibulk", () => {
    const result = parse('PING\r\n*1\r\n$4\r\nPING\r\nECHO "a b"\n');
    expect(result.commands).toEqual([["PING"], ["PING"], ["ECHO", "a b"]]);
  });

  test("returned arguments are copies", () => {
    const parser = new RespParser(DEFAULT_RESP_LIMITS);
    const chunk = bytes("*1\r\n$3\r\nabc\r\n");
    parser.push(chunk);
    chunk.fill(0x7a);
    const result = parser.next();
    expect(result.kind).toBe("command");
    if (result.kind === "command") expect(result.args[0].toString()).toBe("abc");
  });

  // [input, expected protocol error]
  const errors: [string, string][] = [
    ["*abc\r\n", "invalid multibulk length"],
    ["*\r\n", "invalid multibulk length"],
    ["*01\r\n", "invalid multibulk length"],
    ["*+1\r\n", "invalid multibulk length"],
    ["*-2\r\n", "invalid multibulk length"],
    ["*1 \r\n", "invalid multibulk length"],
    ["*3\n", "invalid multibulk length"],
    ["*1048577\r\n", "invalid multibulk length"],
    [`*${"9".repeat(40)}`, "too big mbulk count string"],
    ["*2\r\n$-5\r\n", "invalid bulk length"],
    ["*2\r\n$-1\r\n", "invalid bulk length"],
    ["*1\r\n$abc\r\n", "invalid bulk length"],
    ["*1\r\n$-0\r\n", "invalid bulk length"],
    ["*1\r\n$4294967296\r\n", "bulk string of 4294967296 bytes exceeds the maximum of 536870912 bytes"],
    [`*1\r\n$${"1".repeat(40)}`, "too big bulk count string"],
    ["*1\r\nfoo\r\n", "expected '$', got 'f'"],
    ["*1\r\n\x01", "expected '$', got '\\x01'"],
    ["*1\r\n$3\r\nfooXY", "missing CRLF after bulk argument"],
  ];

  for (const [input, message] of errors) {
    test(`rejects ${JSON.stringify(input).slice(0, 40)}`, () => {
      const result = parse(input);
      expect(result.commands).toEqual([]);
      expect(result.end).toBe(message);
    });
  }

  test("error is sticky", () => {
    const parser = new RespParser(DEFAULT_RESP_LIMITS);
    parser.push(bytes("*abc\r\n"));
    expect(parser.next()).toEqual({ kind: "error", message: "invalid multibulk length" });
    parser.push(bytes("PING\r\n"));
    expect(parser.next()).toEqual({ kind: "error", message: "invalid multibulk length" });
  });

  test("arg count above maxArgs rejected", () => {
    const limits = { ...DEFAULT_RESP_LIMITS, maxArgs: 3 };
    expect(parse("*3\r\n", limits).end).toBe("incomplete");
    expect(parse("*4\r\n", limits).end).toBe("invalid multibulk length");
  });

  test("oversized bulk rejected before data", () => {
    const limits = { ...DEFAULT_RESP_LIMITS, maxBulkBytes: 1024 };
    expect(parse("*1\r\n$1024\r\n", limits).end).toBe("incomplete");
    expect(parse("*1\r\n$1025\r\n", limits).end).toBe("bulk string of 1025 bytes exceeds the maximum of 1024 bytes");
  });

  test("announced bulk is not preallocated", () => {
    const parser = new RespParser(DEFAULT_RESP_LIMITS);
    const before = process.memoryUsage().rss;
    parser.push(bytes("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\nabc"));
    expect(parser.next()).toEqual({ kind: "incomplete" });
    const grownBytes = process.memoryUsage().rss - before;
    expect(grownBytes).toBeLessThan(64 * 1024 * 1024);
  });

  test("command above maxCommandBytes rejected", () => {
    const limits = { ...DEFAULT_RESP_LIMITS, maxCommandBytes: 10 };
    expect(parse("*2\r\n$5\r\nabcde\r\n$5\r\nabcde\r\n", limits).commands).toHaveLength(1);
    const result = parse("*2\r\n$5\r\nabcde\r\n$6\r\n", limits);
    expect(result.end).toBe("command exceeds the maximum size of 10 bytes");
  });

  test("invalid limits throw", () => {
    expect(() => new RespParser({ ...DEFAULT_RESP_LIMITS, maxArgs: 0 })).toThrow("maxArgs must be a positive integer");
  });
});

describe("chunked input", () => {
  const sample = Buffer.concat([
    encodeCommand(["SET", "key:1", "hello\r\nworld"]),
    bytes("SET k2 'it\\'s' \"\\x41\"\r\n"),
    encodeCommand(["GET", ""]),
    bytes("PING\n"),
  ]);
  const expected = [["SET", "key:1", "hello\r\nworld"], ["SET", "k2", "it's", "A"], ["GET", ""], ["PING"]];

  test("whole sample parses", () => {
    const parser = new RespParser(DEFAULT_RESP_LIMITS);
    parser.push(sample);
    expect(drain(parser)).toEqual({ commands: expected, end: "incomplete" });
  });

  test("one byte at a time", () => {
    expect(parseByteByByte(sample)).toEqual({ commands: expected, end: "incomplete" });
  });

  /** Checks that `input` parses to `commands` when it arrives in two chunks split at any offset. */
  function expectEverySplit(input: Buffer, commands: string[][]): void {
    for (let split = 0; split <= input.length; split++) {
      const parser = new RespParser(DEFAULT_RESP_LIMITS);
      parser.push(input.subarray(0, split));
      const first = drain(parser);
      parser.push(input.subarray(split));
      const second = drain(parser);
      expect({ split, commands: [...first.commands, ...second.commands] }).toEqual({ split, commands });
    }
  }

  test("split at every offset", () => {
    expectEverySplit(sample, expected);
  });

  test("long inline line split at every offset", () => {
    // Past the first 32 bytes the search for LF takes another path.
    const value = "v".repeat(70);
    expectEverySplit(bytes(`SET key ${value}\r\nPING\r\n`), [["SET", "key", value], ["PING"]]);
  });

  test("split inside length line", () => {
    const input = bytes("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n");
    const splitAt = input.indexOf("$4") + 1;
    const parser = new RespParser(DEFAULT_RESP_LIMITS);
    parser.push(input.subarray(0, splitAt));
    expect(drain(parser)).toEqual({ commands: [["GET", "k"]], end: "incomplete" });
    parser.push(input.subarray(splitAt));
    expect(drain(parser)).toEqual({ commands: [["PING"]], end: "incomplete" });
  });

  test("pipelined 10,000 commands in one chunk", () => {
    const parts: Buffer[] = [];
    for (let i = 0; i < 10_000; i++) parts.push(encodeCommand(["SET", `p${i}`, String(i)]));
    for (let i = 0; i < 10_000; i++) parts.push(bytes(`GET p${i}\r\n`));
    const parser = new RespParser(DEFAULT_RESP_LIMITS);
    parser.push(Buffer.concat(parts));

    const result = drain(parser);
    expect(result.end).toBe("incomplete");
    expect(result.commands).toHaveLength(20_000);
    expect(result.commands[0]).toEqual(["SET", "p0", "0"]);
    expect(result.commands[9_999]).toEqual(["SET", "p9999", "9999"]);
    expect(result.commands[19_999]).toEqual(["GET", "p9999"]);
    for (let i = 0; i < 10_000; i++) {
      if (result.commands[i][1] !== `p${i}` || result.commands[10_000 + i][1] !== `p${i}`) {
        throw new Error(`command ${i} out of order`);
      }
    }
  });

  test("large bulk in many chunks", () => {
    const value = Buffer.alloc(3 * 1024 * 1024, 0x61);
    const input = encodeCommand(["SET", "big", value]);
    const parser = new RespParser(DEFAULT_RESP_LIMITS);
    let commands = 0;
    for (let offset = 0; offset < input.length; offset += 65_536) {
      parser.push(input.subarray(offset, offset + 65_536));
      const result = parser.next();
      if (result.kind === "command") {
        commands++;
        expect(result.args[2].equals(value)).toBe(true);
      } else {
        expect(result.kind).toBe("incomplete");
      }
    }
    expect(commands).toBe(1);
  });
});

describe("encoders", () => {
  // [encoded, expected wire bytes]
  const cases: [string, Buffer, string][] = [
    ["simple string", simpleString("OK"), "+OK\r\n"],
    ["empty simple string", simpleString(""), "+\r\n"],
    ["error", error("ERR unknown command"), "-ERR unknown command\r\n"],
    ["error with newlines", error("ERR bad\r\nline\n"), "-ERR bad  line \r\n"],
    ["integer", integer(42), ":42\r\n"],
    ["negative integer", integer(-7), ":-7\r\n"],
    ["zero integer", integer(0), ":0\r\n"],
    ["bulk from string", bulk("héllo"), "$6\r\nhéllo\r\n"],
    ["bulk from bytes", bulk(bytes("a\r\nb")), "$4\r\na\r\nb\r\n"],
    ["empty bulk", bulk(Buffer.alloc(0)), "$0\r\n\r\n"],
    ["null bulk", bulk(null), "$-1\r\n"],
    ["array", array([bulk("a"), integer(1)]), "*2\r\n$1\r\na\r\n:1\r\n"],
    ["empty array", array([]), "*0\r\n"],
    ["null array", array(null), "*-1\r\n"],
    ["command", encodeCommand(["SET", "k", ""]), "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"],
    ["RESP2 null", nullReply(2), "$-1\r\n"],
    ["RESP3 null", nullReply(3), "_\r\n"],
    ["RESP2 map", map([bulk("a"), integer(1)], 2), "*2\r\n$1\r\na\r\n:1\r\n"],
    ["RESP3 map", map([bulk("a"), integer(1)], 3), "%1\r\n$1\r\na\r\n:1\r\n"],
    ["RESP2 push", push([bulk("a")], 2), "*1\r\n$1\r\na\r\n"],
    ["RESP3 push", push([bulk("a")], 3), ">1\r\n$1\r\na\r\n"],
  ];

  for (const [name, encoded, wire] of cases) {
    test(`encodes ${name}`, () => {
      expect(Buffer.isBuffer(encoded)).toBe(true);
      expect(encoded.toString("utf8")).toBe(wire);
    });
  }

  test("simple string rejects CRLF", () => {
    expect(() => simpleString("a\r\nb")).toThrow("must not contain CR or LF");
  });

  test("integer rejects fractions", () => {
    expect(() => integer(1.5)).toThrow("must be an integer");
  });

  test("command round-trips through parser", () => {
    const args = [bytes("SET"), Buffer.from([0, 1, 2, 13, 10]), Buffer.alloc(0)];
    const parser = new RespParser(DEFAULT_RESP_LIMITS);
    parser.push(encodeCommand(args));
    expect(parser.next()).toEqual({ kind: "command", args });
  });
});

describe("reply parser", () => {
  function parseReplies(input: Buffer | string): (RespValue | string)[] {
    const parser = new RespReplyParser();
    parser.push(typeof input === "string" ? bytes(input) : input);
    const out: (RespValue | string)[] = [];
    for (let i = 0; i < 100_000; i++) {
      const result = parser.next();
      if (result.kind === "reply") {
        out.push(result.value);
        continue;
      }
      if (result.kind === "error") out.push(`error: ${result.message}`);
      return out;
    }
    throw new Error("reply parser returned more than 100,000 replies");
  }

  // [input, expected replies or trailing "error: ..." string]
  const cases: [string, string, (RespValue | string)[]][] = [
    ["simple string", "+OK\r\n", [{ type: "simple", value: "OK" }]],
    ["error", "-ERR no such key\r\n", [{ type: "error", message: "ERR no such key" }]],
    ["integer", ":42\r\n", [{ type: "integer", value: 42 }]],
    ["negative integer", ":-3\r\n", [{ type: "integer", value: -3 }]],
    ["bulk", "$5\r\nhe\r\no\r\n", [{ type: "bulk", value: bytes("he\r\no") }]],
    ["empty bulk", "$0\r\n\r\n", [{ type: "bulk", value: Buffer.alloc(0) }]],
    ["null bulk", "$-1\r\n", [{ type: "bulk", value: null }]],
    ["null array", "*-1\r\n", [{ type: "array", value: null }]],
    ["empty array", "*0\r\n", [{ type: "array", value: [] }]],
    ["RESP3 null", "_\r\n", [{ type: "bulk", value: null }]],
    ["RESP3 map", "%1\r\n+a\r\n:1\r\n", [{ type: "array", value: [{ type: "simple", value: "a" }, { type: "integer", value: 1 }] }]],
    ["RESP3 push", ">1\r\n:1\r\n", [{ type: "array", value: [{ type: "integer", value: 1 }] }]],
    ["RESP3 null map", "%-1\r\n", ["error: invalid array length"]],
    [
      "nested array",
      "*3\r\n$1\r\na\r\n*2\r\n:1\r\n*0\r\n+OK\r\n",
      [
        {
          type: "array",
          value: [
            { type: "bulk", value: bytes("a") },
            { type: "array", value: [{ type: "integer", value: 1 }, { type: "array", value: [] }] },
            { type: "simple", value: "OK" },
          ],
        },
      ],
    ],
    ["pipelined replies", "+OK\r\n:1\r\n$-1\r\n", [{ type: "simple", value: "OK" }, { type: "integer", value: 1 }, { type: "bulk", value: null }]],
    ["unknown type", "?1\r\n", ["error: unknown reply type '?'"]],
    ["bad integer", ":1x\r\n", ["error: invalid integer reply"]],
    ["bad bulk length", "$-2\r\n", ["error: invalid bulk length"]],
    ["bad array length", "*x\r\n", ["error: invalid array length"]],
    ["missing bulk CRLF", "$1\r\nabc", ["error: missing CRLF after bulk string"]],
    ["LF without CR", "+OK\n", ["error: reply line does not end with CRLF"]],
  ];

  for (const [name, input, expected] of cases) {
    test(`parses ${name}`, () => {
      expect(parseReplies(input)).toEqual(expected);
    });
  }

  test("one byte at a time", () => {
    const input = bytes("*2\r\n$5\r\nhello\r\n*1\r\n-ERR x\r\n:7\r\n");
    const parser = new RespReplyParser();
    const replies: RespValue[] = [];
    for (let i = 0; i < input.length; i++) {
      parser.push(input.subarray(i, i + 1));
      for (let result = parser.next(); result.kind !== "incomplete"; result = parser.next()) {
        if (result.kind === "error") throw new Error(result.message);
        replies.push(result.value);
      }
    }
    expect(replies).toEqual([
      { type: "array", value: [{ type: "bulk", value: bytes("hello") }, { type: "array", value: [{ type: "error", message: "ERR x" }] }] },
      { type: "integer", value: 7 },
    ]);
  });

  test("10,000 pipelined replies", () => {
    const parts: Buffer[] = [];
    for (let i = 0; i < 10_000; i++) parts.push(bulk(String(i)));
    const replies = parseReplies(Buffer.concat(parts));
    expect(replies).toHaveLength(10_000);
    expect(replies[9_999]).toEqual({ type: "bulk", value: bytes("9999") });
  });
});
