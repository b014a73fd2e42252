// The replication floor: the least a Bun program must do before it acknowledges
// a SET that two of three nodes store durably. The benchmark runs it beside EchoKV.
//
//   bun scripts/bench/floor.ts follower --port P --data-dir DIR
//   bun scripts/bench/floor.ts leader --port P --followers P1,P2 --data-dir DIR
//
// The leader takes SET commands over RESP, sends each batch of them to both
// followers, inserts it into its own SQLite database (WAL, synchronous=FULL)
// in one transaction, and replies +OK once its own write and one follower's
// are done. A follower inserts each batch it receives in one transaction and
// acknowledges it. Commands that arrive while a batch is written form the
// next batch, as in EchoKV. It has none of Raft's terms, elections, log
// matching or membership, no key-value map and no checks of its input beyond
// what framing needs, so its throughput and CPU per SET bound what EchoKV
// can reach with Bun and SQLite on the same machine.

import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { Socket, SocketHandler } from "bun";

/** Bytes before each peer frame: its length, then its batch number. */
const FRAME_HEADER_BYTES = 8;
/** How long the leader keeps trying to reach a follower that is starting. */
const FOLLOWER_CONNECT_TIMEOUT_MS = 10_000;

/** An ordered log in one SQLite database, written one transaction per batch. */
class BatchLog {
  readonly #begin;
  readonly #insert;
  readonly #commit;
  #lastIndex = 0;

  constructor(directory: string) {
    mkdirSync(directory, { recursive: true });
    const db = new Database(join(directory, "floor.db"), { create: true, strict: true });
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = FULL");
    db.exec("CREATE TABLE IF NOT EXISTS log (idx INTEGER PRIMARY KEY, data BLOB NOT NULL)");
    this.#lastIndex = db.query<{ last: number | null }, []>("SELECT max(idx) AS last FROM log").get()?.last ?? 0;
    this.#begin = db.prepare("BEGIN IMMEDIATE");
    this.#insert = db.prepare("INSERT INTO log (idx, data) VALUES (?, ?)");
    this.#commit = db.prepare("COMMIT");
  }

  /** Appends `entries` durably in one transaction. */
  append(entries: Uint8Array[]): void {
    this.#begin.run();
    for (const entry of entries) this.#insert.run(++this.#lastIndex, entry);
    this.#commit.run();
  }
}

/** Returns the length of the first complete RESP array of bulk strings in `buffer` from `start`, 0 if it is incomplete, -1 if it is not one. */
function commandLength(buffer: Buffer, start: number): number {
  if (start >= buffer.length) return 0;
  if (buffer[start] !== 0x2a) return -1;
  let position = start;
  const readNumber = (): number => {
    const end = buffer.indexOf("\r\n", position + 1);
    if (end < 0) return Number.NaN;
    const value = Number(buffer.toString("latin1", position + 1, end));
    position = end + 2;
    return value;
  };
  const count = readNumber();
  if (Number.isNaN(count)) return 0;
  if (!Number.isSafeInteger(count) || count < 1) return -1;
  for (let i = 0; i < count; i++) {
    if (position >= buffer.length) return 0;
    if (buffer[position] !== 0x24) return -1;
    const length = readNumber();
    if (Number.isNaN(length)) return 0;
    if (!Number.isSafeInteger(length) || length < 0) return -1;
    position += length + 2;
    if (position > buffer.length) return 0;
  }
  return position - start;
}

/** Returns whether the complete command at `start` is a SET, without decoding it. */
function isSet(buffer: Buffer, start: number): boolean {
  const countEnd = buffer.indexOf("\r\n", start);
  const nameEnd = buffer.indexOf("\r\n", countEnd + 2);
  return (
    nameEnd - countEnd === 4 &&
    buffer[countEnd + 3] === 0x33 &&
    (buffer[nameEnd + 2] | 0x20) === 0x73 &&
    (buffer[nameEnd + 3] | 0x20) === 0x65 &&
    (buffer[nameEnd + 4] | 0x20) === 0x74 &&
    buffer[nameEnd + 5] === 0x0d
  );
}

/** Returns the arguments of the complete command at `start` as Latin-1 strings. */
function commandArguments(buffer: Buffer, start: number): string[] {
  const args: string[] = [];
  let lineEnd = buffer.indexOf("\r\n", start);
  const count = Number(buffer.toString("latin1", start + 1, lineEnd));
  let position = lineEnd + 2;
  for (let i = 0; i < count; i++) {
    lineEnd = buffer.indexOf("\r\n", position);
    const length = Number(buffer.toString("latin1", position + 1, lineEnd));
    args.push(buffer.toString("latin1", lineEnd + 2, lineEnd + 2 + length));
    position = lineEnd + 2 + length + 2;
  }
  return args;
}

/** Replies to a command other than SET: PING, and CONFIG GET as redis-benchmark sends it on connect. */
function replyTo(args: string[]): string {
  const name = args[0].toUpperCase();
  if (name === "PING") return "+PONG\r\n";
  if (name === "CONFIG" && args.length === 3 && args[1].toUpperCase() === "GET") {
    return `*2\r\n$${args[2].length}\r\n${args[2]}\r\n$0\r\n\r\n`;
  }
  return `-ERR the floor runs SET only, not ${name}\r\n`;
}

/** Splits a byte stream into length-prefixed frames. */
class FrameReader {
  #buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer, onFrame: (batch: number, body: Buffer) => void): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    let offset = 0;
    while (this.#buffer.length - offset >= FRAME_HEADER_BYTES) {
      const length = this.#buffer.readUInt32BE(offset);
      if (this.#buffer.length - offset < FRAME_HEADER_BYTES + length) break;
      onFrame(this.#buffer.readUInt32BE(offset + 4), this.#buffer.subarray(offset + FRAME_HEADER_BYTES, offset + FRAME_HEADER_BYTES + length));
      offset += FRAME_HEADER_BYTES + length;
    }
    this.#buffer = Buffer.from(this.#buffer.subarray(offset));
  }
}

function runFollower(port: number, log: BatchLog): void {
  Bun.listen<FrameReader>({
    hostname: "127.0.0.1",
    port,
    socket: {
      open(socket) {
        socket.setNoDelay(true);
        socket.data = new FrameReader();
      },
      data(socket, chunk) {
        const entries: Uint8Array[] = [];
        let lastBatch = -1;
        socket.data.push(chunk, (batch, body) => {
          let offset = 0;
          while (offset < body.length) {
            const length = body.readUInt32BE(offset);
            entries.push(body.subarray(offset + 4, offset + 4 + length));
            offset += 4 + length;
          }
          lastBatch = batch;
        });
        if (lastBatch < 0) return;
        log.append(entries);
        const ack = Buffer.alloc(4);
        ack.writeUInt32BE(lastBatch);
        socket.write(ack);
      },
    },
  });
}

/** Connects to a follower, retrying for a few seconds while it starts. */
async function connectWithRetry(port: number, handlers: Pick<SocketHandler<undefined>, "data" | "close">): Promise<Socket<undefined>> {
  const deadline = Date.now() + FOLLOWER_CONNECT_TIMEOUT_MS;
  for (;;) {
    try {
      const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: handlers });
      socket.setNoDelay(true);
      return socket;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`failed to connect to the follower on port ${port} within ${FOLLOWER_CONNECT_TIMEOUT_MS} ms: ${(err as Error).message}`);
      await Bun.sleep(50);
    }
  }
}

/** A reply in a client's queue; a SET's text stays null until its batch commits. */
interface Reply {
  text: string | null;
}

interface Client {
  buffer: Buffer;
  /** Replies in command order. */
  replies: Reply[];
}

async function runLeader(port: number, followerPorts: number[], log: BatchLog): Promise<void> {
  let nextBatch = 0;
  let durableBatch = -1;
  const acked = followerPorts.map(() => -1);
  /** Commands of the batch being gathered: the client and its reply. */
  let gathering: { client: Socket<Client>; reply: Reply }[] = [];
  let gatheringEntries: Buffer[] = [];
  /** Batches sent but not yet committed, oldest first. */
  const inFlight: { batch: number; commands: { client: Socket<Client>; reply: Reply }[] }[] = [];
  let flushScheduled = false;

  const deliver = (client: Socket<Client>): void => {
    const replies = client.data.replies;
    let ready = 0;
    let text = "";
    while (ready < replies.length && replies[ready].text !== null) text += replies[ready++].text;
    if (ready === 0) return;
    client.write(text);
    replies.splice(0, ready);
  };

  const settle = (): void => {
    const committed = Math.min(durableBatch, Math.max(...acked));
    const touched = new Set<Socket<Client>>();
    while (inFlight.length > 0 && inFlight[0].batch <= committed) {
      for (const { client, reply } of inFlight.shift()!.commands) {
        reply.text = "+OK\r\n";
        touched.add(client);
      }
    }
    for (const client of touched) deliver(client);
  };

  const followers: Socket<undefined>[] = [];
  for (const [index, followerPort] of followerPorts.entries()) {
    let pending: Buffer = Buffer.alloc(0);
    followers.push(
      await connectWithRetry(followerPort, {
        data(_socket, chunk) {
          pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
          const whole = pending.length - (pending.length % 4);
          if (whole === 0) return;
          acked[index] = pending.readUInt32BE(whole - 4);
          pending = Buffer.from(pending.subarray(whole));
          settle();
        },
        close() {
          console.error(`floor leader: the follower on port ${followerPort} closed its connection`);
          process.exit(1);
        },
      }),
    );
  }

  const flush = (): void => {
    flushScheduled = false;
    if (gathering.length === 0) return;
    const batch = nextBatch++;
    const entries = gatheringEntries;
    inFlight.push({ batch, commands: gathering });
    gathering = [];
    gatheringEntries = [];
    let bodyBytes = 0;
    for (const entry of entries) bodyBytes += 4 + entry.length;
    const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + bodyBytes);
    frame.writeUInt32BE(bodyBytes, 0);
    frame.writeUInt32BE(batch, 4);
    let offset = FRAME_HEADER_BYTES;
    for (const entry of entries) {
      frame.writeUInt32BE(entry.length, offset);
      entry.copy(frame, offset + 4);
      offset += 4 + entry.length;
    }
    // The followers start their writes while this one runs.
    for (const follower of followers) follower.write(frame);
    log.append(entries);
    durableBatch = batch;
    settle();
  };

  Bun.listen<Client>({
    hostname: "127.0.0.1",
    port,
    socket: {
      open(socket) {
        socket.setNoDelay(true);
        socket.data = { buffer: Buffer.alloc(0), replies: [] };
      },
      data(socket, chunk) {
        const client = socket.data;
        client.buffer = client.buffer.length === 0 ? chunk : Buffer.concat([client.buffer, chunk]);
        let offset = 0;
        for (;;) {
          const length = commandLength(client.buffer, offset);
          if (length === 0) break;
          if (length < 0) {
            socket.end("-ERR Protocol error: the floor reads RESP arrays of bulk strings only\r\n");
            return;
          }
          if (isSet(client.buffer, offset)) {
            const reply: Reply = { text: null };
            gathering.push({ client: socket, reply });
            gatheringEntries.push(Buffer.from(client.buffer.subarray(offset, offset + length)));
            client.replies.push(reply);
          } else {
            client.replies.push({ text: replyTo(commandArguments(client.buffer, offset)) });
          }
          offset += length;
        }
        client.buffer = Buffer.from(client.buffer.subarray(offset));
        deliver(socket);
        if (gathering.length > 0 && !flushScheduled) {
          flushScheduled = true;
          // After this turn's other reads, as EchoKV batches a turn's proposals.
          setImmediate(flush);
        }
      },
    },
  });
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      port: { type: "string" },
      followers: { type: "string" },
      "data-dir": { type: "string" },
    },
    strict: true,
  });
  const role = positionals[0];
  const port = Number(values.port);
  const directory = values["data-dir"];
  if ((role !== "leader" && role !== "follower") || !Number.isSafeInteger(port) || !directory) {
    console.error("usage: bun scripts/bench/floor.ts leader|follower --port P [--followers P1,P2] --data-dir DIR");
    process.exit(2);
  }
  const log = new BatchLog(directory);
  if (role === "follower") {
    runFollower(port, log);
    return;
  }
  const followerPorts = (values.followers ?? "").split(",").map(Number);
  if (followerPorts.length !== 2 || !followerPorts.every(Number.isSafeInteger)) {
    console.error("floor leader: --followers needs two ports, such as 7001,7002");
    process.exit(2);
  }
  runLeader(port, followerPorts, log).catch((err: unknown) => {
    console.error(`floor leader: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}

main();
