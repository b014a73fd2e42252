import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Readable, Writable } from "node:stream";
import type { Socket, TCPSocketListener } from "bun";
import { runOneShot, runShell } from "../../src/cli/shell.ts";
import { formatReply, parseHostPort, RespClient, RespClientError } from "../../src/client/client.ts";
import { array, bulk, DEFAULT_RESP_LIMITS, error, integer, RespParser, simpleString } from "../../src/protocol/resp.ts";
import type { RespValue } from "../../src/protocol/resp.ts";

// ---------------------------------------------------------------------------
// A small RESP server on 127.0.0.1 that replies in request order:
//   PING -> +PONG            ECHO x -> $x          DELAY ms x -> $x after ms
//   INT n -> :n              NIL -> $-1            ARR a b ... -> array of bulks
//   FAIL -> -ERR failure     CLOSE -> closes the connection without replying
//   GARBAGE -> bytes that are not RESP
//   CONSISTENCY level -> +OK for "linearizable", an error otherwise

interface Connection {
  parser: RespParser;
  /** Replies are chained so that a DELAY holds back the replies after it. */
  chain: Promise<void>;
  unsent: Buffer[];
}

function writeReply(socket: Socket<Connection>, reply: Buffer): void {
  const state = socket.data;
  if (state.unsent.length > 0) {
    state.unsent.push(reply);
    return;
  }
  const written = socket.write(reply);
  if (written >= 0 && written < reply.length) state.unsent.push(reply.subarray(written));
}

function flushUnsent(socket: Socket<Connection>): void {
  const state = socket.data;
  if (state.unsent.length === 0) return;
  const data = Buffer.concat(state.unsent);
  state.unsent = [];
  const written = socket.write(data);
  if (written >= 0 && written < data.length) state.unsent.push(data.subarray(written));
}

async function handleCommand(socket: Socket<Connection>, args: Buffer[], log: string[][]): Promise<void> {
  const words = args.map((arg) => arg.toString("utf8"));
  log.push(words);
  const name = words[0]?.toUpperCase();
  switch (name) {
    case "PING":
      return writeReply(socket, simpleString("PONG"));
    case "ECHO":
      return writeReply(socket, bulk(args[1] ?? null));
    case "DELAY":
      await Bun.sleep(Number(words[1]));
      return writeReply(socket, bulk(args[2] ?? null));
    case "INT":
      return writeReply(socket, integer(Number(words[1])));
    case "NIL":
      return writeReply(socket, bulk(null));
    case "ARR":
      return writeReply(socket, array(args.slice(1).map((arg) => bulk(arg))));
    case "FAIL":
      return writeReply(socket, error("ERR failure"));
    case "CLOSE":
      socket.end();
      return;
    case "GARBAGE":
      return writeReply(socket, Buffer.from("?garbage\r\n"));
    case "SUBSCRIBE":
      // A confirmation and two messages, then the server ends the subscription.
      writeReply(socket, array([bulk("subscribe"), bulk(words[1]), integer(1)]));
      writeReply(socket, array([bulk("message"), bulk(words[1]), bulk("first")]));
      writeReply(socket, array([bulk("message"), bulk(words[1]), bulk("second")]));
      socket.end();
      return;
    case "CONSISTENCY":
      return writeReply(socket, words[1] === "linearizable" ? simpleString("OK") : error("ERR unknown consistency level"));
    default:
      return writeReply(socket, error(`ERR unknown command '${name}'`));
  }
}

interface TestServer {
  listener: TCPSocketListener<Connection>;
  addr: string;
  /** Every command the server received, in order. */
  log: string[][];
}

function startServer(): TestServer {
  const log: string[][] = [];
  const listener = Bun.listen<Connection>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(socket) {
        socket.data = { parser: new RespParser(DEFAULT_RESP_LIMITS), chain: Promise.resolve(), unsent: [] };
      },
      data(socket, data) {
        const state = socket.data;
        state.parser.push(data);
        for (let result = state.parser.next(); result.kind !== "incomplete"; result = state.parser.next()) {
          if (result.kind === "error") {
            socket.end(error(`ERR Protocol error: ${result.message}`));
            return;
          }
          const args = result.args;
          state.chain = state.chain.then(() => handleCommand(socket, args, log));
        }
      },
      drain(socket) {
        flushUnsent(socket);
      },
    },
  });
  return { listener, addr: `127.0.0.1:${listener.port}`, log };
}

/** Returns an address on 127.0.0.1 where nothing listens: a port that was just in use and is now closed. */
function closedPortAddr(): string {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return `127.0.0.1:${port}`;
}

async function expectClientError(promise: Promise<unknown>): Promise<RespClientError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(RespClientError);
    return err as RespClientError;
  }
  throw new Error("expected a RespClientError, but the promise resolved");
}

let server: TestServer;

beforeAll(() => {
  server = startServer();
});

afterAll(() => {
  server.listener.stop(true);
});

// ---------------------------------------------------------------------------

describe("RespClient", () => {
  test("returns bulk reply", async () => {
    const client = await RespClient.connect(server.addr);
    expect(await client.command(["ECHO", "hello"])).toEqual({ type: "bulk", value: Buffer.from("hello") });
    expect(await client.command(["PING"])).toEqual({ type: "simple", value: "PONG" });
    client.close();
  });

  test("error reply resolves", async () => {
    const client = await RespClient.connect(server.addr);
    expect(await client.command(["FAIL"])).toEqual({ type: "error", message: "ERR failure" });
    client.close();
  });

  test("pipelined replies keep order", async () => {
    const client = await RespClient.connect(server.addr);
    const replies: Promise<RespValue>[] = [];
    for (let i = 0; i < 2_000; i++) {
      replies.push(i % 500 === 0 ? client.command(["DELAY", "5", `v${i}`]) : client.command(["ECHO", `v${i}`]));
    }
    expect(client.inFlight).toBe(2_000);

    const values = await Promise.all(replies);
    values.forEach((value, i) => {
      if (value.type !== "bulk" || value.value?.toString() !== `v${i}`) {
        throw new Error(`reply ${i} is ${JSON.stringify(value)}`);
      }
    });
    expect(client.inFlight).toBe(0);
    client.close();
  });

  test("binary 4 MiB value round-trips", async () => {
    const client = await RespClient.connect(server.addr);
    const value = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < value.length; i++) value[i] = (i * 31) & 0xff;
    const reply = await client.command([Buffer.from("ECHO"), value], { timeoutMs: 20_000 });
    expect(reply.type).toBe("bulk");
    if (reply.type === "bulk") expect(reply.value?.equals(value)).toBe(true);
    client.close();
  });

  test("timeout rejects, outcome unknown", async () => {
    const client = await RespClient.connect(server.addr);
    const slow = client.command(["DELAY", "300", "late"], { timeoutMs: 50 });
    const next = client.command(["ECHO", "after"]);

    const err = await expectClientError(slow);
    expect(err.code).toBe("TIMEOUT");
    expect(err.message).toContain("timed out after 50 ms");
    expect(err.message).toContain("outcome is unknown");
    // The late reply to DELAY is discarded, so the next command still gets its own reply.
    expect(await next).toEqual({ type: "bulk", value: Buffer.from("after") });
    client.close();
  });

  test("read timeout has no outcome warning", async () => {
    const client = await RespClient.connect(server.addr);
    const slow = client.command(["DELAY", "300", "late"], { timeoutMs: 2_000 });
    const ping = client.command(["PING"], { timeoutMs: 50 });

    const err = await expectClientError(ping);
    expect(err.code).toBe("TIMEOUT");
    expect(err.message).toBe(`PING to ${server.addr} timed out after 50 ms`);
    expect(await slow).toEqual({ type: "bulk", value: Buffer.from("late") });
    client.close();
  });

  test("connection refused on closed port", async () => {
    const addr = closedPortAddr();
    const err = await expectClientError(RespClient.connect(addr, { timeoutMs: 2_000 }));
    expect(err.code).toBe("CONNECT");
    expect(err.message).toContain(addr);
    expect(err.message).toContain("connection refused");
  });

  test("server close fails in-flight commands", async () => {
    const client = await RespClient.connect(server.addr);
    const closing = client.command(["CLOSE"]);
    const queued = client.command(["DELAY", "100", "x"]);

    const closeError = await expectClientError(closing);
    expect(closeError.code).toBe("CLOSED");
    expect(closeError.message).toContain("outcome is unknown");
    expect((await expectClientError(queued)).code).toBe("CLOSED");
    expect(client.closed).toBe(true);

    const afterClose = await expectClientError(client.command(["PING"]));
    expect(afterClose.code).toBe("NOTCONNECTED");
    expect(afterClose.message).toContain("is closed");
  });

  test("invalid reply closes connection", async () => {
    const client = await RespClient.connect(server.addr);
    const garbage = client.command(["GARBAGE"]);
    const queued = client.command(["PING"]);

    const err = await expectClientError(garbage);
    expect(err.code).toBe("PROTOCOL");
    expect(err.message).toContain("unknown reply type '?'");
    expect((await expectClientError(queued)).code).toBe("PROTOCOL");
    expect(client.closed).toBe(true);
  });

  test("close rejects pending commands", async () => {
    const client = await RespClient.connect(server.addr);
    const pending = client.command(["DELAY", "200", "x"]);
    client.close();
    const err = await expectClientError(pending);
    expect(err.code).toBe("CLOSED");
    expect(err.message).toContain("closed by the client");
  });

  test("invalid timeout throws", async () => {
    const client = await RespClient.connect(server.addr);
    expect(() => client.command(["PING"], { timeoutMs: -1 })).toThrow("timeoutMs must be");
    client.close();
  });
});

describe("parseHostPort", () => {
  const valid: [string, { host: string; port: number }][] = [
    [":5379", { host: "127.0.0.1", port: 5379 }],
    ["localhost:5379", { host: "localhost", port: 5379 }],
    ["127.0.0.1:7001", { host: "127.0.0.1", port: 7001 }],
    ["[::1]:6379", { host: "::1", port: 6379 }],
    ["db.example:65535", { host: "db.example", port: 65535 }],
  ];
  for (const [addr, expected] of valid) {
    test(`parses ${addr}`, () => {
      expect(parseHostPort(addr)).toEqual(expected);
    });
  }

  const invalid: [string, string][] = [
    ["5379", 'invalid address "5379"'],
    ["localhost", 'invalid address "localhost"'],
    ["localhost:", 'invalid port "" in address "localhost:"'],
    ["localhost:0", 'invalid port "0"'],
    ["localhost:65536", 'invalid port "65536"'],
    ["localhost:12ab", 'invalid port "12ab"'],
    ["::1:5379", "write an IPv6 host in brackets"],
  ];
  for (const [addr, message] of invalid) {
    test(`rejects ${JSON.stringify(addr)}`, () => {
      expect(() => parseHostPort(addr)).toThrow(message);
    });
  }
});

describe("formatReply", () => {
  const cases: [string, RespValue, string][] = [
    ["simple string", { type: "simple", value: "OK" }, "OK"],
    ["error", { type: "error", message: "ERR unknown command" }, "(error) ERR unknown command"],
    ["integer", { type: "integer", value: 5 }, "(integer) 5"],
    ["bulk", { type: "bulk", value: Buffer.from("hello world") }, "hello world"],
    ["empty bulk", { type: "bulk", value: Buffer.alloc(0) }, ""],
    ["null bulk", { type: "bulk", value: null }, "(nil)"],
    ["null array", { type: "array", value: null }, "(nil)"],
    ["empty array", { type: "array", value: [] }, "(empty array)"],
    [
      "flat array",
      {
        type: "array",
        value: [
          { type: "bulk", value: Buffer.from("a") },
          { type: "bulk", value: Buffer.from('q"\n\xff', "latin1") },
          { type: "integer", value: 3 },
          { type: "bulk", value: null },
        ],
      },
      '1) "a"\n2) "q\\"\\n\\xff"\n3) (integer) 3\n4) (nil)',
    ],
    [
      "nested array",
      {
        type: "array",
        value: [
          { type: "array", value: [{ type: "bulk", value: Buffer.from("x") }, { type: "simple", value: "OK" }] },
          { type: "array", value: [] },
        ],
      },
      '1) 1) "x"\n   2) OK\n2) (empty array)',
    ],
  ];
  for (const [name, value, expected] of cases) {
    test(`formats ${name}`, () => {
      expect(formatReply(value)).toBe(expected);
    });
  }

  test("pads indexes of long arrays", () => {
    const items: RespValue[] = Array.from({ length: 10 }, (_, i) => ({ type: "integer", value: i }));
    const lines = formatReply({ type: "array", value: items }).split("\n");
    expect(lines[0]).toBe(" 1) (integer) 0");
    expect(lines[9]).toBe("10) (integer) 9");
  });
});

// ---------------------------------------------------------------------------

/** Collects everything written to it as one string. */
class Capture extends Writable {
  text = "";

  override _write(chunk: Buffer | string, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.text += chunk.toString();
    callback();
  }
}

function shellStreams(lines: string[]): { input: Readable; output: Capture; errorOutput: Capture } {
  return { input: Readable.from([lines.join("\n") + "\n"]), output: new Capture(), errorOutput: new Capture() };
}

describe("shell", () => {
  test("runs piped lines in order", async () => {
    const streams = shellStreams(["PING", 'ECHO "hello world"', "", "ARR a ''", "INT 7", "FAIL", "ECHO 'x'y", "NIL"]);
    // Piped input with failed lines (FAIL, the unbalanced quote) exits 1 once every line ran.
    expect(await runShell(server.addr, { streams })).toBe(1);
    expect(streams.output.text).toBe('PONG\nhello world\n1) "a"\n2) ""\n(integer) 7\n(error) ERR failure\n(nil)\n');
    expect(streams.errorOutput.text).toBe("Invalid argument(s): unbalanced quotes\n");
  });

  test("quit ends the shell", async () => {
    const streams = shellStreams(["ECHO before", "quit", "ECHO after"]);
    expect(await runShell(server.addr, { streams })).toBe(0);
    expect(streams.output.text).toBe("before\n");
  });

  test("reconnects after connection loss", async () => {
    const streams = shellStreams(["ECHO one", "CLOSE", "ECHO two"]);
    // The lost connection failed one line, so piped input exits 1.
    expect(await runShell(server.addr, { streams })).toBe(1);
    expect(streams.output.text).toBe("one\ntwo\n");
    expect(streams.errorOutput.text).toContain("closed before the reply to CLOSE arrived");
    expect(streams.errorOutput.text).toContain("reconnects on the next command");
  });

  test("reports refused connection", async () => {
    const addr = closedPortAddr();
    const streams = shellStreams(["PING"]);
    // The only line failed, so piped input exits 1.
    expect(await runShell(addr, { streams, timeoutMs: 2_000 })).toBe(1);
    expect(streams.output.text).toBe("");
    expect(streams.errorOutput.text).toContain(`could not connect to ${addr}: connection refused`);
  });

  test("sends consistency after connect", async () => {
    const streams = shellStreams(["ECHO consistent"]);
    expect(await runShell(server.addr, { streams, consistency: "linearizable" })).toBe(0);
    expect(streams.output.text).toBe("consistent\n");
    const index = server.log.findIndex((words) => words[0] === "ECHO" && words[1] === "consistent");
    expect(server.log[index - 1]).toEqual(["CONSISTENCY", "linearizable"]);
  });

  test("rejected consistency exits 1", async () => {
    const streams = shellStreams(["PING"]);
    expect(await runShell(server.addr, { streams, consistency: "bogus" })).toBe(1);
    expect(streams.errorOutput.text).toContain('rejected consistency level "bogus"');
  });

  test("prints subscription messages", async () => {
    const streams = shellStreams(["SUBSCRIBE news", "ECHO after"]);
    expect(await runShell(server.addr, { streams })).toBe(0);
    const confirmation = '1) "subscribe"\n2) "news"\n3) (integer) 1\n';
    const messages = '1) "message"\n2) "news"\n3) "first"\n1) "message"\n2) "news"\n3) "second"\n';
    expect(streams.output.text).toBe(`${confirmation}${messages}after\n`);
    expect(streams.errorOutput.text).toBe(`${server.addr} closed the subscription\n`);
  });

  test("rejected subscription fails line", async () => {
    const streams = shellStreams(["PSUBSCRIBE news*", "ECHO after"]);
    expect(await runShell(server.addr, { streams })).toBe(1);
    expect(streams.output.text).toBe("after\n");
    expect(streams.errorOutput.text).toBe("(error) ERR unknown command 'PSUBSCRIBE'\n");
  });

  test("invalid address exits 1", async () => {
    const streams = shellStreams(["PING"]);
    expect(await runShell("nowhere", { streams })).toBe(1);
    expect(streams.errorOutput.text).toContain('invalid address "nowhere"');
  });
});

describe("runOneShot", () => {
  test("prints reply, exits 0", async () => {
    const output = new Capture();
    const errorOutput = new Capture();
    expect(await runOneShot(server.addr, ["ECHO", "hi there"], { output, errorOutput })).toBe(0);
    expect(output.text).toBe("hi there\n");
    expect(errorOutput.text).toBe("");
  });

  test("error reply exits 1", async () => {
    const output = new Capture();
    const errorOutput = new Capture();
    expect(await runOneShot(server.addr, ["FAIL"], { output, errorOutput })).toBe(1);
    expect(output.text).toBe("");
    expect(errorOutput.text).toBe("(error) ERR failure\n");
  });

  test("refused connection exits 1", async () => {
    const addr = closedPortAddr();
    const errorOutput = new Capture();
    expect(await runOneShot(addr, ["PING"], { errorOutput })).toBe(1);
    expect(errorOutput.text).toContain("connection refused");
  });

  test("missing command exits 1", async () => {
    const errorOutput = new Capture();
    expect(await runOneShot(server.addr, [], { errorOutput })).toBe(1);
    expect(errorOutput.text).toContain("missing command");
  });
});
