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
// next batch, as in EchoKV. It reads commands with EchoKV's RESP parser and
// stores the log entry EchoKV would store. It has none of Raft's terms,
// elections, log matching or membership, and no key-value map. So its
// throughput and CPU per SET bound what EchoKV can reach with Bun and SQLite
// on the same machine.

import { Database } from "bun:sqlite";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { Socket, SocketHandler } from "bun";
import { encodeCommand } from "../../src/kv/command.ts";
import { argText, array, bulk, DEFAULT_RESP_LIMITS, error, RespParser, simpleString } from "../../src/protocol/resp.ts";

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

const OK_REPLY = simpleString("OK");

/** Replies to a command other than SET: PING, and CONFIG GET as redis-benchmark sends it on connect. */
function replyTo(args: Buffer[]): Uint8Array {
  const name = argText(args[0]).toUpperCase();
  if (name === "PING") return simpleString("PONG");
  if (name === "CONFIG" && args.length === 3 && argText(args[1]).toUpperCase() === "GET") {
    return array([bulk(args[2]), bulk("")]);
  }
  return error(`ERR the floor runs SET only, not ${name}`);
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

/** A reply in a client's queue; a SET's bytes stay null until its batch commits. */
interface Reply {
  bytes: Uint8Array | null;
}

interface Client {
  parser: RespParser;
  /** Replies in command order. */
  replies: Reply[];
}

/** A SET of the batch being gathered: its log entry, its client and its reply. */
interface PendingSet {
  entry: Uint8Array;
  client: Socket<Client>;
  reply: Reply;
}

async function runLeader(port: number, followerPorts: number[], log: BatchLog): Promise<void> {
  let nextBatch = 0;
  let durableBatch = -1;
  const acked = followerPorts.map(() => -1);
  let gathering: PendingSet[] = [];
  /** Batches sent but not yet committed, oldest first. */
  const inFlight: { batch: number; sets: PendingSet[] }[] = [];
  let flushScheduled = false;

  const deliver = (client: Socket<Client>): void => {
    const replies = client.data.replies;
    let ready = 0;
    while (ready < replies.length && replies[ready].bytes !== null) ready++;
    if (ready === 0) return;
    const done = replies.splice(0, ready).map((reply) => reply.bytes!);
    client.write(done.length === 1 ? done[0] : Buffer.concat(done));
  };

  const settle = (): void => {
    const committed = Math.min(durableBatch, Math.max(...acked));
    const touched = new Set<Socket<Client>>();
    while (inFlight.length > 0 && inFlight[0].batch <= committed) {
      for (const { client, reply } of inFlight.shift()!.sets) {
        reply.bytes = OK_REPLY;
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
    const entries = gathering.map((set) => set.entry);
    inFlight.push({ batch, sets: gathering });
    gathering = [];
    let bodyBytes = 0;
    for (const entry of entries) bodyBytes += 4 + entry.length;
    const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + bodyBytes);
    frame.writeUInt32BE(bodyBytes, 0);
    frame.writeUInt32BE(batch, 4);
    let offset = FRAME_HEADER_BYTES;
    for (const entry of entries) {
      frame.writeUInt32BE(entry.length, offset);
      frame.set(entry, offset + 4);
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
        socket.data = { parser: new RespParser(DEFAULT_RESP_LIMITS), replies: [] };
      },
      data(socket, chunk) {
        const client = socket.data;
        client.parser.push(chunk);
        for (;;) {
          const parsed = client.parser.next();
          if (parsed.kind === "incomplete") break;
          if (parsed.kind === "error") {
            socket.end(error(`ERR Protocol error: ${parsed.message}`));
            return;
          }
          const { args } = parsed;
          if (args.length === 3 && argText(args[0]).toUpperCase() === "SET") {
            const reply: Reply = { bytes: null };
            gathering.push({ entry: encodeCommand({ op: "set", key: args[1], value: args[2] }), client: socket, reply });
            client.replies.push(reply);
          } else if (args.length > 0) {
            client.replies.push({ bytes: replyTo(args) });
          }
        }
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
