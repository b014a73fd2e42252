// The RESP listener of the client port. Replies to the commands of one
// connection go out in the order the commands arrived. Writes start as soon as they are
// parsed, so a pipelining client fills the replication pipeline; a read or
// admin command waits until every earlier command of its connection has
// finished, so it observes that connection's own writes.

import type { Socket, TCPSocketListener } from "bun";
import { errorMessage, type Logger } from "../log.ts";
import type { KvCommand } from "../kv/command.ts";
import type { ApplyResult } from "../kv/store.ts";
import type { EchoNode, ProposalWaiter } from "../node/node.ts";
import { array, bulk, error, integer, push, RespParser, simpleString, type RespLimits } from "../protocol/resp.ts";
import { listenFailure, parseHostPort } from "../transport/address.ts";
import {
  dispatch,
  leaderWrite,
  leaderWriteFailed,
  lookupCommand,
  type CommandContext,
  type CommandKind,
  type Consistency,
  type LeaderWrite,
  type Reply,
  type ServerLimits,
} from "./commands.ts";
import { errorReply } from "./replies.ts";
import { LeaderForwarder } from "./forward.ts";

export interface ServerOptions {
  listenAddr: string;
  node: EchoNode;
  limits: ServerLimits;
  logger: Logger;
  /** Time a forwarded command may take before it fails with TIMEOUT. */
  requestTimeoutMs: number;
  retryDelayMs: number;
  /** Connections beyond this are refused with an error. */
  maxClients: number;
  /** GET consistency of a new connection until it sends CONSISTENCY. */
  defaultConsistency: Consistency;
  /** Settings that CONFIG GET reports, as name and value pairs. */
  settings: ReadonlyArray<readonly [string, string]>;
}

/** Time that stop() gives the replies of failed commands to reach their sockets. */
const REPLY_GRACE_MS = 20;

/** Output bytes a slow reader may leave unread before its connection is closed. */
const MAX_OUTPUT_BUFFER_BYTES = 256 * 1024 * 1024;

interface Slot {
  reply: Buffer | null;
}

type FinishWrite = (socket: Socket<Connection>, slot: Slot, reply: Buffer) => void;

/**
 * A write proposed on this leader: the slot of its reply, and the waiter of
 * its proposal. It takes the place of the promises and closures that
 * dispatch() would create for the write.
 */
class PendingWrite implements Slot, ProposalWaiter {
  reply: Buffer | null = null;
  readonly #socket: Socket<Connection>;
  readonly #write: LeaderWrite;
  readonly #args: Buffer[];
  readonly #name: string;
  readonly #finish: FinishWrite;

  constructor(socket: Socket<Connection>, write: LeaderWrite, args: Buffer[], name: string, finish: FinishWrite) {
    this.#socket = socket;
    this.#write = write;
    this.#args = args;
    this.#name = name;
    this.#finish = finish;
  }

  applied(result: ApplyResult): void {
    this.#finish(this.#socket, this, this.#write.reply(result));
  }

  failed(err: Error): void {
    const reply = leaderWriteFailed(this.#socket.data.context, this.#args, this.#name, err);
    if (reply instanceof Promise) reply.then((buffer) => this.#finish(this.#socket, this, buffer));
    else this.#finish(this.#socket, this, reply);
  }
}

/** A command that waits for earlier commands of its connection before it starts. */
interface Waiting {
  kind: CommandKind;
  reply: () => Reply;
  slot: Slot;
}

interface Connection {
  parser: RespParser;
  context: CommandContext;
  slots: Slot[];
  /** Commands not started yet, in arrival order. */
  waiting: Waiting[];
  /** Started commands without a reply yet. */
  pending: number;
  /** Unfinished reads and admin commands; a write must wait behind them. */
  pendingNonWrites: number;
  output: Buffer[];
  outputBytes: number;
  closing: boolean;
  closed: boolean;
  /** Channels this connection subscribed to; while any, only (UN)SUBSCRIBE, PING and QUIT are accepted. */
  channels: Set<string>;
  /** Set by MULTI, which EchoKV does not support: every command is rejected until EXEC or DISCARD. */
  afterMulti: boolean;
  unsubscribe: (() => void) | null;
}

/** The one channel with messages: cluster events as JSON. */
export const EVENTS_CHANNEL = "cluster-events";

/**
 * Returns whether a command of `kind` must wait for the connection's
 * started commands. A read or admin command waits for all of them, so it
 * observes the connection's own writes. A write waits for unfinished reads
 * and admin commands, so they do not observe it.
 */
function mustWait(conn: Connection, kind: CommandKind): boolean {
  return kind === "write" ? conn.pendingNonWrites > 0 : conn.pending > 0;
}

export class RespServer {
  readonly #options: ServerOptions;
  readonly #logger: Logger;
  readonly #forwarder: LeaderForwarder;
  readonly #context: Omit<CommandContext, "session">;
  /** Connections accepted so far; the newest one's CLIENT ID. */
  #connectionCount = 0;
  readonly #parserLimits: RespLimits;
  #listener: TCPSocketListener<Connection> | null = null;
  #clients = 0;
  #connectionsRejected = 0;
  #commandsProcessed = 0;
  readonly #finishWrite: FinishWrite = (socket, slot, reply) => this.#finish(socket, "write", slot, reply);

  constructor(options: ServerOptions) {
    this.#options = options;
    this.#logger = options.logger;
    this.#forwarder = new LeaderForwarder(options.node, options.logger, options.requestTimeoutMs, options.retryDelayMs);
    this.#context = {
      node: options.node,
      forwarder: this.#forwarder,
      limits: options.limits,
      settings: options.settings,
      forwarded: false,
      clientStats: () => ({
        connected: this.#clients,
        maxClients: this.#options.maxClients,
        connectionsReceived: this.#connectionCount,
        connectionsRejected: this.#connectionsRejected,
        commandsProcessed: this.#commandsProcessed,
      }),
    };
    // The parser accepts bulk strings up to twice the value limit, so that a
    // moderately oversized value gets a TOOLARGE error naming the limit. A
    // larger announced length is a protocol error and closes the connection.
    this.#parserLimits = {
      maxBulkBytes: Math.max(options.limits.maxValueBytes, options.limits.maxKeyBytes) * 2,
      maxArgs: 1024 * 1024,
      maxInlineBytes: 64 * 1024,
      maxCommandBytes: options.limits.maxValueBytes * 2 + options.limits.maxKeyBytes * 2 + 1024 * 1024,
    };
  }

  get port(): number {
    if (!this.#listener) throw new Error("server is not listening");
    return this.#listener.port;
  }

  start(): void {
    const { host, port } = parseHostPort(this.#options.listenAddr);
    try {
      this.#listener = Bun.listen<Connection>({
        hostname: host,
        port,
        socket: {
          open: (socket) => this.#onOpen(socket),
          data: (socket, chunk) => this.#onData(socket, chunk),
          drain: (socket) => this.#flush(socket),
          close: (socket) => this.#onClose(socket),
          error: (socket, err) => {
            this.#logger.warn("client connection error", { error: errorMessage(err) });
            this.#onClose(socket);
          },
        },
      });
    } catch (err) {
      throw new Error(listenFailure(this.#options.listenAddr, err));
    }
    this.#logger.info("client listener started", { addr: `${host}:${this.#listener.port}` });
  }

  /** Stops accepting connections; open ones keep being served until stop(). */
  stopAccepting(): void {
    this.#listener?.stop(false);
  }

  /**
   * Fails the forwarded commands still waiting for the leader, lets their
   * error replies reach the sockets, and closes every connection.
   */
  async stop(): Promise<void> {
    this.#forwarder.close();
    await Bun.sleep(REPLY_GRACE_MS);
    this.#listener?.stop(true);
    this.#listener = null;
  }

  #onOpen(socket: Socket<Connection>): void {
    socket.data = {
      parser: new RespParser(this.#parserLimits),
      context: { ...this.#context, session: { id: ++this.#connectionCount, name: null, protocol: 2, consistency: this.#options.defaultConsistency } },
      slots: [],
      waiting: [],
      pending: 0,
      pendingNonWrites: 0,
      output: [],
      outputBytes: 0,
      closing: false,
      closed: false,
      channels: new Set(),
      unsubscribe: null,
      afterMulti: false,
    };
    this.#clients++;
    if (this.#clients > this.#options.maxClients) {
      this.#connectionsRejected++;
      socket.data.closing = true;
      socket.end(error(`ERR max number of clients reached (${this.#options.maxClients}, --max-clients)`));
    }
  }

  #onClose(socket: Socket<Connection>): void {
    const conn = socket.data;
    if (!conn || conn.closed) return;
    conn.closed = true;
    conn.unsubscribe?.();
    this.#clients--;
  }

  #onData(socket: Socket<Connection>, chunk: Buffer): void {
    const conn = socket.data;
    if (conn.closing) return;
    conn.parser.push(chunk);
    for (;;) {
      const parsed = conn.parser.next();
      if (parsed.kind === "incomplete") break;
      if (parsed.kind === "error") {
        this.#logger.warn("closing client connection after a protocol error", { remote: socket.remoteAddress, error: parsed.message });
        this.#enqueue(socket, error(`ERR Protocol error: ${parsed.message}`));
        conn.closing = true;
        break;
      }
      if (parsed.args.length === 0) continue;
      this.#commandsProcessed++;
      const name = parsed.args[0].toString("latin1").toUpperCase();
      if (name === "QUIT") {
        this.#enqueue(socket, Buffer.from("+OK\r\n"));
        conn.closing = true;
        break;
      }
      if (name === "MULTI" || name === "EXEC" || name === "DISCARD" || conn.afterMulti) {
        this.#transaction(socket, name);
        continue;
      }
      // In RESP2 a subscribed connection takes pub/sub commands only, and RESP3 lifts that limit.
      if (name === "SUBSCRIBE" || name === "UNSUBSCRIBE" || (conn.channels.size > 0 && conn.context.session.protocol === 2)) {
        this.#pubsub(socket, name, parsed.args.slice(1));
        continue;
      }
      this.#execute(socket, parsed.args, name);
    }
    this.#flush(socket);
  }

  #execute(socket: Socket<Connection>, args: Buffer[], name: string): void {
    const conn = socket.data;
    if (conn.waiting.length === 0 && !mustWait(conn, "write")) {
      const write = leaderWrite(conn.context, args, name);
      if (write !== null) {
        this.#proposeWrite(socket, write, args, name);
        return;
      }
    }
    const { kind, reply } = dispatch(conn.context, args, name);
    if (conn.waiting.length > 0 || mustWait(conn, kind)) {
      const slot: Slot = { reply: null };
      conn.slots.push(slot);
      conn.waiting.push({ kind, reply, slot });
      return;
    }
    this.#start(socket, kind, reply, null);
  }

  /** Proposes a write on this leader, the common case, without the promises of dispatch(). */
  #proposeWrite(socket: Socket<Connection>, write: LeaderWrite, args: Buffer[], name: string): void {
    const conn = socket.data;
    let command: KvCommand;
    try {
      command = write.command(conn.context, args.slice(1));
    } catch (err) {
      this.#enqueue(socket, errorReply(err));
      return;
    }
    const pending = new PendingWrite(socket, write, args, name, this.#finishWrite);
    conn.slots.push(pending);
    conn.pending++;
    try {
      this.#options.node.submit(command, pending);
    } catch (err) {
      pending.failed(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** Runs a command; its reply goes to `slot`, or to the end of the queue when null. */
  #start(socket: Socket<Connection>, kind: CommandKind, reply: () => Reply, slot: Slot | null): void {
    const conn = socket.data;
    const result = reply();
    if (!(result instanceof Promise)) {
      if (slot) slot.reply = result;
      else this.#enqueue(socket, result);
      return;
    }
    const target: Slot = slot ?? { reply: null };
    if (!slot) conn.slots.push(target);
    conn.pending++;
    if (kind !== "write") conn.pendingNonWrites++;
    result.then(
      (buffer) => this.#finish(socket, kind, target, buffer),
      (err: unknown) => this.#finish(socket, kind, target, error(`ERR internal error: ${errorMessage(err)}`)),
    );
  }

  #finish(socket: Socket<Connection>, kind: CommandKind, slot: Slot, reply: Buffer): void {
    const conn = socket.data;
    slot.reply = reply;
    conn.pending--;
    if (kind !== "write") conn.pendingNonWrites--;
    while (conn.waiting.length > 0 && !mustWait(conn, conn.waiting[0].kind)) {
      const next = conn.waiting.shift()!;
      this.#start(socket, next.kind, next.reply, next.slot);
    }
    this.#flush(socket);
  }

  /**
   * MULTI, EXEC and DISCARD. EchoKV has no transactions, but a client that
   * sends MULTI expects the commands after it to run together or not at
   * all. So MULTI fails, and every command after it fails too until EXEC
   * (which then fails) or DISCARD: none of the transaction is applied.
   */
  #transaction(socket: Socket<Connection>, name: string): void {
    const conn = socket.data;
    if (name === "MULTI") {
      const reply = conn.afterMulti
        ? "ERR MULTI calls can not be nested"
        : "ERR MULTI is not supported: EchoKV applies each command on its own, so the commands up to EXEC or DISCARD are rejected";
      conn.afterMulti = true;
      this.#enqueue(socket, error(reply));
    } else if (name === "EXEC") {
      this.#enqueue(socket, error(conn.afterMulti ? "EXECABORT Transaction discarded: MULTI is not supported, and none of its commands was applied" : "ERR EXEC without MULTI"));
      conn.afterMulti = false;
    } else if (name === "DISCARD") {
      this.#enqueue(socket, conn.afterMulti ? simpleString("OK") : error("ERR DISCARD without MULTI"));
      conn.afterMulti = false;
    } else {
      this.#enqueue(socket, error(`ERR ${name} rejected: it follows MULTI, which EchoKV does not support; send EXEC or DISCARD to end it`));
    }
  }

  /**
   * Redis pub/sub semantics for SUBSCRIBE cluster-events, the event stream of
   * this node. Confirmations and messages are RESP3 pushes on a RESP3
   * connection. EchoKV has no PUBLISH, so other channels are rejected.
   */
  #pubsub(socket: Socket<Connection>, name: string, channels: Buffer[]): void {
    const conn = socket.data;
    const session = conn.context.session;
    const confirm = (kind: string, channel: string | null) =>
      push([bulk(kind), bulk(channel), integer(conn.channels.size)], session.protocol);

    if (name === "SUBSCRIBE") {
      if (channels.length === 0) {
        this.#enqueue(socket, error("ERR wrong number of arguments for 'subscribe' command"));
        return;
      }
      const names = channels.map((raw) => raw.toString("utf8"));
      const unknown = names.find((channel) => channel !== EVENTS_CHANNEL);
      if (unknown !== undefined) {
        this.#enqueue(socket, error(`ERR no such channel '${unknown.slice(0, 64)}': EchoKV publishes on ${EVENTS_CHANNEL} only, and has no PUBLISH`));
        return;
      }
      for (const channel of names) {
        conn.channels.add(channel);
        this.#enqueue(socket, confirm("subscribe", channel));
      }
      if (!conn.unsubscribe) {
        conn.unsubscribe = this.#options.node.onEvent((event) => {
          if (conn.closed) return;
          this.#enqueue(socket, push([bulk("message"), bulk(EVENTS_CHANNEL), bulk(JSON.stringify(event))], session.protocol));
          this.#flush(socket);
        });
      }
    } else if (name === "UNSUBSCRIBE") {
      const names = channels.length > 0 ? channels.map((raw) => raw.toString("utf8")) : [...conn.channels];
      if (names.length === 0) this.#enqueue(socket, confirm("unsubscribe", null));
      for (const channel of names) {
        conn.channels.delete(channel);
        this.#enqueue(socket, confirm("unsubscribe", channel));
      }
      if (!conn.channels.has(EVENTS_CHANNEL)) {
        conn.unsubscribe?.();
        conn.unsubscribe = null;
      }
    } else if (name === "PING") {
      this.#enqueue(socket, array([bulk("pong"), bulk("")]));
    } else if (lookupCommand(name) === undefined) {
      this.#enqueue(socket, error(`ERR unknown command '${name.toLowerCase().slice(0, 64)}'`));
    } else {
      this.#enqueue(socket, error(`ERR Can't execute '${name.toLowerCase()}': only (UN)SUBSCRIBE / PING / QUIT are allowed in this context`));
    }
  }

  #enqueue(socket: Socket<Connection>, reply: Buffer): void {
    const conn = socket.data;
    if (conn.slots.length === 0) {
      conn.output.push(reply);
      conn.outputBytes += reply.byteLength;
    } else {
      conn.slots.push({ reply });
    }
  }

  /** Moves finished replies at the head of the queue to the output, keeping order. */
  #drainSlots(socket: Socket<Connection>): void {
    const conn = socket.data;
    let done = 0;
    while (done < conn.slots.length && conn.slots[done].reply !== null) {
      const reply = conn.slots[done].reply!;
      conn.output.push(reply);
      conn.outputBytes += reply.byteLength;
      done++;
    }
    if (done > 0) conn.slots.splice(0, done);
  }

  #flush(socket: Socket<Connection>): void {
    const conn = socket.data;
    if (conn.closed) return;
    this.#drainSlots(socket);
    if (conn.output.length > 0) {
      const data = conn.output.length === 1 ? conn.output[0] : Buffer.concat(conn.output);
      const written = socket.write(data);
      if (written < data.byteLength) {
        const rest = data.subarray(Math.max(0, written));
        conn.output = [rest];
        conn.outputBytes = rest.byteLength;
      } else {
        conn.output = [];
        conn.outputBytes = 0;
      }
      if (conn.outputBytes > MAX_OUTPUT_BUFFER_BYTES) {
        this.#logger.warn("closing client that does not read its replies", { buffered_bytes: conn.outputBytes });
        socket.terminate();
        return;
      }
    }
    if (conn.closing && conn.output.length === 0 && conn.slots.length === 0) socket.end();
  }
}
