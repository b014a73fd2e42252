// HELLO, COMMAND, CONFIG and CLIENT: the commands that Redis tools and client
// libraries send to learn about a server or to set up their connection.

import { describe, expect, test } from "bun:test";
import { RespReplyParser } from "../../src/protocol/resp.ts";
import { clientReply, commandReply, configReply, globMatcher, helloReply, type ClientSession, type CommandDescription } from "../../src/server/introspection.ts";
import { describeReply } from "../support/cluster.ts";

/** Decodes one encoded reply into describeReply's text form. */
function decode(reply: Buffer): string {
  const parser = new RespReplyParser();
  parser.push(reply);
  const result = parser.next();
  if (result.kind !== "reply") throw new Error(`not one complete reply: ${result.kind}`);
  return describeReply(result.value);
}

const args = (...words: string[]): Buffer[] => words.map((word) => Buffer.from(word));

const COMMANDS: Record<string, CommandDescription> = {
  GET: { minArgs: 1, maxArgs: 2, flags: ["readonly"], keys: [1, 1, 1] },
  DEL: { minArgs: 1, maxArgs: Infinity, flags: ["write"], keys: [1, -1, 1] },
  PING: { minArgs: 0, maxArgs: 1, flags: [] },
  DBSIZE: { minArgs: 0, maxArgs: 0, flags: [] },
};

const SETTINGS: Array<readonly [string, string]> = [
  ["max-key-bytes", "65536"],
  ["max-value-bytes", "16777216"],
  ["tick-ms", "50"],
  ["save", ""],
  ["appendonly", "yes"],
];

describe("glob patterns", () => {
  const cases: Array<[pattern: string, name: string, matches: boolean]> = [
    ["*", "anything", true],
    ["max-*", "max-key-bytes", true],
    ["max-*", "tick-ms", false],
    ["MAX-KEY-BYTES", "max-key-bytes", true],
    ["tick-m?", "tick-ms", true],
    ["tick-m?", "tick-m", false],
    ["[st]ave", "save", true],
    ["[^st]ave", "save", false],
    ["a\\*b", "a*b", true],
    ["a\\*b", "axb", false],
    ["a.b", "axb", false],
    ["[unclosed", "[unclosed", true],
  ];
  for (const [pattern, name, matches] of cases) {
    test(`${pattern} against ${name}`, () => {
      expect(globMatcher(pattern)(name)).toBe(matches);
    });
  }
});

describe("COMMAND", () => {
  test("lists every command", () => {
    expect(decode(commandReply(COMMANDS, [], 2))).toStartWith('[["get", :-2, ["readonly"], :1, :1, :1, [], [], [], []], ');
    expect(decode(commandReply(COMMANDS, args("COUNT"), 2))).toBe(":4");
    expect(decode(commandReply(COMMANDS, args("list"), 2))).toBe('["get", "del", "ping", "dbsize"]');
  });

  test("INFO gives arity and key positions", () => {
    expect(decode(commandReply(COMMANDS, args("INFO", "del", "dbsize", "flushall"), 2))).toBe(
      '[["del", :-2, ["write"], :1, :-1, :1, [], [], [], []], ["dbsize", :1, [], :0, :0, :0, [], [], [], []], nil]',
    );
  });

  test("unknown subcommand is an error", () => {
    expect(decode(commandReply(COMMANDS, args("GETKEYS", "get", "k"), 2))).toStartWith("-ERR unknown subcommand");
    expect(decode(commandReply(COMMANDS, args("COUNT", "extra"), 2))).toStartWith("-ERR unknown subcommand");
    expect(decode(commandReply(COMMANDS, args("DOCS"), 2))).toBe("[]");
  });
});

describe("CONFIG", () => {
  test("GET returns matching pairs", () => {
    expect(decode(configReply(SETTINGS, args("GET", "max-*"), 2))).toBe('["max-key-bytes", "65536", "max-value-bytes", "16777216"]');
    expect(decode(configReply(SETTINGS, args("get", "save", "appendonly"), 2))).toBe('["save", "", "appendonly", "yes"]');
    expect(decode(configReply(SETTINGS, args("GET", "nothing*"), 2))).toBe("[]");
  });

  test("changes are rejected", () => {
    expect(decode(configReply(SETTINGS, args("SET", "tick-ms", "10"), 2))).toStartWith("-ERR CONFIG SET is not supported");
    expect(decode(configReply(SETTINGS, args("GET"), 2))).toStartWith("-ERR wrong number of arguments");
    expect(decode(configReply(SETTINGS, args("HELLO"), 2))).toStartWith("-ERR unknown subcommand 'HELLO'");
  });
});

describe("CLIENT", () => {
  test("SETNAME and GETNAME", () => {
    const session: ClientSession = { id: 7, name: null, protocol: 2 };
    expect(decode(clientReply(session, args("GETNAME")))).toBe("nil");
    expect(decode(clientReply(session, args("SETNAME", "worker-1")))).toBe("OK");
    expect(decode(clientReply(session, args("getname")))).toBe('"worker-1"');
    expect(decode(clientReply(session, args("SETNAME", "has space")))).toStartWith("-ERR Client names cannot contain spaces");
    expect(decode(clientReply(session, args("GETNAME")))).toBe('"worker-1"');
    expect(decode(clientReply(session, args("SETNAME", "")))).toBe("OK");
    expect(decode(clientReply(session, args("GETNAME")))).toBe("nil");
  });

  test("ID, SETINFO and unsupported subcommands", () => {
    const session: ClientSession = { id: 7, name: null, protocol: 2 };
    expect(decode(clientReply(session, args("ID")))).toBe(":7");
    expect(decode(clientReply(session, args("SETINFO", "LIB-NAME", "ioredis")))).toBe("OK");
    expect(decode(clientReply(session, args("LIST")))).toStartWith("-ERR unknown subcommand");
    expect(decode(clientReply(session, args("KILL", "127.0.0.1:1")))).toStartWith("-ERR unknown subcommand");
  });
});

describe("HELLO", () => {
  test("3 switches to RESP3", () => {
    const session: ClientSession = { id: 7, name: null, protocol: 2 };
    const reply = helloReply(session, args("3", "SETNAME", "app-1"));
    expect(session.protocol).toBe(3);
    expect(session.name).toBe("app-1");
    expect(reply.toString("latin1")).toStartWith("%7\r\n$6\r\nserver\r\n$6\r\nechokv\r\n");
    expect(decode(reply)).toContain('"proto", :3, "id", :7, "mode", "standalone", "role", "master", "modules", []');
  });

  test("2 and no version", () => {
    const session: ClientSession = { id: 7, name: null, protocol: 3 };
    expect(helloReply(session, []).toString("latin1")).toStartWith("%7\r\n");
    expect(session.protocol).toBe(3);
    expect(helloReply(session, args("2")).toString("latin1")).toStartWith("*14\r\n");
    expect(session.protocol).toBe(2);
  });

  test("invalid requests leave the protocol", () => {
    const session: ClientSession = { id: 7, name: null, protocol: 2 };
    expect(decode(helloReply(session, args("4")))).toBe("-NOPROTO unsupported protocol version");
    expect(decode(helloReply(session, args("three")))).toStartWith("-ERR Protocol version is not an integer");
    expect(decode(helloReply(session, args("3", "AUTH", "default", "secret")))).toStartWith("-ERR EchoKV has no authentication");
    expect(decode(helloReply(session, args("3", "SETNAME", "has space")))).toStartWith("-ERR Client names cannot contain spaces");
    expect(decode(helloReply(session, args("3", "NOSUCH")))).toStartWith("-ERR Syntax error in HELLO option 'NOSUCH'");
    expect(session.protocol).toBe(2);
    expect(session.name).toBeNull();
  });

  test("RESP3 nulls and maps", () => {
    const session: ClientSession = { id: 7, name: null, protocol: 3 };
    expect(clientReply(session, args("GETNAME")).toString("latin1")).toBe("_\r\n");
    expect(configReply(SETTINGS, args("GET", "save"), 3).toString("latin1")).toBe("%1\r\n$4\r\nsave\r\n$0\r\n\r\n");
    expect(commandReply(COMMANDS, args("INFO", "nosuch"), 3).toString("latin1")).toBe("*1\r\n_\r\n");
  });
});
