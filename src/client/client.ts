// RESP client over one TCP connection, with pipelining: commands are written
// as soon as they are issued, and replies are matched to them in order.

import type { Socket } from "bun";
import { encodeCommand, RespReplyParser } from "../protocol/resp.ts";
import type { RespValue } from "../protocol/resp.ts";

/** Default time in ms that `connect` and each command wait before failing with TIMEOUT or CONNECT. */
export const DEFAULT_TIMEOUT_MS = 5000;

/**
 * Stable codes of client failures.
 * CONNECT: the connection could not be opened (refused, unreachable or timed out).
 * TIMEOUT: no reply within the timeout, so the command may or may not have taken effect.
 * CLOSED: the connection closed before the reply arrived, so the outcome is unknown.
 * NOTCONNECTED: the command was issued after the connection had closed and was never sent.
 * PROTOCOL: the server sent bytes that are not valid RESP2, and the client closed the connection.
 */
export type ClientErrorCode = "CONNECT" | "TIMEOUT" | "CLOSED" | "NOTCONNECTED" | "PROTOCOL";

export class RespClientError extends Error {
  override name = "RespClientError";
  readonly code: ClientErrorCode;
  /** For CLOSED, why the connection closed, such as "connection reset by the server"; null otherwise. */
  readonly closeReason: string | null;

  constructor(code: ClientErrorCode, message: string, options?: ErrorOptions & { closeReason?: string }) {
    super(message, options);
    this.code = code;
    this.closeReason = options?.closeReason ?? null;
  }
}

export interface ClientOptions {
  /** Maximum time in ms to open the connection, and the default per-command timeout. 0 disables both. */
  timeoutMs?: number;
}

export interface CommandOptions {
  /** Maximum time in ms to wait for this command's reply. 0 disables the timeout. */
  timeoutMs?: number;
}

/**
 * Parses `host:port`. An empty host (`:5379`) means 127.0.0.1, and an IPv6
 * host is written in brackets (`[::1]:5379`). Throws an Error naming `addr`.
 */
export function parseHostPort(addr: string): { host: string; port: number } {
  const example = "expected host:port, for example 127.0.0.1:5379 or :5379";
  const colon = addr.lastIndexOf(":");
  if (colon < 0) throw new Error(`invalid address ${JSON.stringify(addr)}: ${example}`);

  let host = addr.slice(0, colon);
  const portText = addr.slice(colon + 1);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  if (host === "") host = "127.0.0.1";
  if (host.includes(":") && !addr.startsWith("[")) {
    throw new Error(`invalid address ${JSON.stringify(addr)}: write an IPv6 host in brackets, for example [::1]:5379`);
  }
  if (/\s/.test(host)) throw new Error(`invalid address ${JSON.stringify(addr)}: ${example}`);

  const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 1 && port <= 65535)) {
    throw new Error(`invalid port ${JSON.stringify(portText)} in address ${JSON.stringify(addr)}: expected an integer from 1 to 65535`);
  }
  return { host, port };
}

function validateTimeout(timeoutMs: number): number {
  if (!Number.isFinite(timeoutMs) || timeoutMs < 0) {
    throw new RangeError(`timeoutMs must be a finite number of milliseconds >= 0, got ${timeoutMs}`);
  }
  return timeoutMs;
}

/** Describes a socket error in the usual words, such as "connection refused". */
function describeSocketError(err: unknown): string {
  const code = typeof err === "object" && err !== null && "code" in err ? String(err.code) : "";
  switch (code) {
    case "ECONNREFUSED":
      return "connection refused (is the server running on that port?)";
    case "ECONNRESET":
      return "connection reset by the server";
    case "ETIMEDOUT":
      return "connection timed out";
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return "host unreachable";
    case "ENOTFOUND":
      return "host not found";
    default:
      return err instanceof Error ? err.message : String(err);
  }
}

/** Commands that change nothing, so a timeout of one needs no warning that it may still take effect. */
const READ_ONLY_COMMANDS = new Set(["GET", "EXISTS", "DBSIZE", "PING", "ECHO", "INFO", "MEMBERS", "LEADER", "READINDEX", "MEMORY"]);

function commandName(args: readonly (string | Uint8Array)[]): string {
  const first = args[0];
  if (first === undefined) return "(empty command)";
  const name = (typeof first === "string" ? first : Buffer.from(first).toString("utf8")).toUpperCase();
  // Only the command name is shown, never its arguments, which may be user data.
  return name.length > 32 ? `${name.slice(0, 32)}...` : name;
}

interface PendingCommand {
  name: string;
  resolve: (value: RespValue) => void;
  reject: (err: RespClientError) => void;
  timer: ReturnType<typeof setTimeout> | null;
  /** Set when the command timed out. Its slot stays queued, so later replies still match in order. */
  settled: boolean;
}

/**
 * A RESP2 client on one TCP connection. Replies that are RESP errors resolve
 * as `{type: "error"}` values. Only transport failures reject, with a
 * `RespClientError`. Its `code` distinguishes a command that was never sent
 * (NOTCONNECTED) from one whose outcome is unknown (TIMEOUT, CLOSED, PROTOCOL).
 */
export class RespClient {
  readonly addr: string;
  readonly #defaultTimeoutMs: number;
  readonly #parser = new RespReplyParser();
  #socket: Socket<undefined> | null = null;
  /** Commands awaiting replies, oldest first, from index #pendingHead. */
  #pending: PendingCommand[] = [];
  #pendingHead = 0;
  /** Encoded commands not yet accepted by the socket, written together on the next microtask or drain. */
  #outgoing: Uint8Array[] = [];
  #flushScheduled = false;
  #closed = false;
  #closeReason = "";

  private constructor(addr: string, timeoutMs: number) {
    this.addr = addr;
    this.#defaultTimeoutMs = timeoutMs;
  }

  /** Opens a connection to `addr` (`host:port`). Rejects with code CONNECT when it cannot be opened. */
  static async connect(addr: string, opts: ClientOptions = {}): Promise<RespClient> {
    const { host, port } = parseHostPort(addr);
    const timeoutMs = validateTimeout(opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    const client = new RespClient(addr, timeoutMs);
    await client.#open(host, port, timeoutMs);
    return client;
  }

  /** Whether the connection has closed, by either side. A closed client does not reconnect. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Number of commands sent and still waiting for a reply, including timed-out ones. */
  get inFlight(): number {
    return this.#pending.length - this.#pendingHead;
  }

  async #open(host: string, port: number, timeoutMs: number): Promise<void> {
    const connecting = Bun.connect({
      hostname: host,
      port,
      socket: {
        data: (_socket, data) => this.#onData(data),
        drain: () => this.#flush(),
        close: (_socket, err) => this.#onClose(err === undefined ? "closed by the server" : describeSocketError(err)),
        error: (_socket, err) => this.#onClose(describeSocketError(err)),
        // Handled by the rejected promise below, so the rejection is not reported as unhandled.
        connectError: () => {},
      },
    });

    let timer: ReturnType<typeof setTimeout> | null = null;
    const timedOut = new Promise<"timeout">((resolve) => {
      if (timeoutMs > 0) timer = setTimeout(() => resolve("timeout"), timeoutMs);
    });
    try {
      const winner = await Promise.race([connecting, timedOut]);
      if (winner === "timeout") {
        // A connection that opens after the deadline is closed at once.
        connecting.then((late) => late.end(), () => {});
        throw new RespClientError("CONNECT", `could not connect to ${this.addr}: timed out after ${timeoutMs} ms`);
      }
      this.#socket = winner;
    } catch (err) {
      this.#closed = true;
      if (err instanceof RespClientError) throw err;
      throw new RespClientError("CONNECT", `could not connect to ${this.addr}: ${describeSocketError(err)}`, { cause: err });
    } finally {
      if (timer !== null) clearTimeout(timer);
    }
  }

  /**
   * Sends one command and resolves with its reply. Many commands may be in
   * flight at once. Rejects with TIMEOUT, CLOSED or PROTOCOL when the outcome
   * is unknown, and with NOTCONNECTED when the connection had already closed.
   */
  command(args: readonly (string | Uint8Array)[], opts: CommandOptions = {}): Promise<RespValue> {
    const name = commandName(args);
    if (this.#closed) {
      return Promise.reject(
        new RespClientError("NOTCONNECTED", `cannot send ${name}: the connection to ${this.addr} is closed (${this.#closeReason})`),
      );
    }
    const timeoutMs = validateTimeout(opts.timeoutMs ?? this.#defaultTimeoutMs);

    return new Promise<RespValue>((resolve, reject) => {
      const pending: PendingCommand = { name, resolve, reject, timer: null, settled: false };
      if (timeoutMs > 0) {
        pending.timer = setTimeout(() => {
          pending.settled = true;
          reject(
            new RespClientError(
              "TIMEOUT",
              READ_ONLY_COMMANDS.has(name)
                ? `${name} to ${this.addr} timed out after ${timeoutMs} ms`
                : `${name} to ${this.addr} timed out after ${timeoutMs} ms; the outcome is unknown, the command may still take effect`,
            ),
          );
        }, timeoutMs);
      }
      this.#pending.push(pending);
      this.#outgoing.push(encodeCommand(args));
      this.#scheduleFlush();
    });
  }

  /** Closes the connection. Commands still in flight reject with CLOSED. */
  close(): void {
    if (this.#closed) return;
    this.#flush();
    // Mark the client closed first, because end() may run the close handler synchronously.
    this.#onClose("closed by the client");
    this.#socket?.end();
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    queueMicrotask(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
  }

  /** Writes queued commands in one call. Bytes the socket does not accept wait for the drain event. */
  #flush(): void {
    const socket = this.#socket;
    if (socket === null || this.#closed || this.#outgoing.length === 0) return;

    const data = this.#outgoing.length === 1 ? this.#outgoing[0] : Buffer.concat(this.#outgoing);
    const written = socket.write(data);
    if (written < 0) {
      this.#outgoing = [];
      return; // The close handler rejects the pending commands.
    }
    this.#outgoing = written < data.byteLength ? [data.subarray(written)] : [];
  }

  #onData(data: Uint8Array): void {
    this.#parser.push(data);
    while (!this.#closed) {
      const result = this.#parser.next();
      switch (result.kind) {
        case "incomplete":
          return;
        case "error":
          this.#onClose(`invalid reply from the server: ${result.message}`, "PROTOCOL");
          this.#socket?.terminate();
          return;
        case "reply":
          this.#deliver(result.value);
          break;
        default: {
          const unexpected: never = result;
          throw new Error(`unexpected parse result ${JSON.stringify(unexpected)}`);
        }
      }
    }
  }

  #deliver(value: RespValue): void {
    const pending = this.#pending[this.#pendingHead];
    if (pending === undefined) {
      this.#onClose("the server sent a reply with no command waiting for it", "PROTOCOL");
      this.#socket?.terminate();
      return;
    }

    this.#pendingHead++;
    if (this.#pendingHead > 1024 && this.#pendingHead * 2 > this.#pending.length) {
      this.#pending = this.#pending.slice(this.#pendingHead);
      this.#pendingHead = 0;
    }
    if (pending.settled) return;
    pending.settled = true;
    if (pending.timer !== null) clearTimeout(pending.timer);
    pending.resolve(value);
  }

  /** Marks the client closed and rejects every command still waiting for a reply. */
  #onClose(reason: string, code: ClientErrorCode = "CLOSED"): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeReason = reason;
    this.#outgoing = [];

    const waiting = this.#pending.slice(this.#pendingHead);
    this.#pending = [];
    this.#pendingHead = 0;
    for (const pending of waiting) {
      if (pending.settled) continue;
      pending.settled = true;
      if (pending.timer !== null) clearTimeout(pending.timer);
      pending.reject(
        new RespClientError(
          code,
          `connection to ${this.addr} closed before the reply to ${pending.name} arrived (${reason}); the outcome is unknown`,
          { closeReason: reason },
        ),
      );
    }
  }
}

// ---------------------------------------------------------------------------
// Formatting for a terminal

/** Quotes bytes as `redis-cli` does: printable ASCII as is, `\n \r \t \a \b` escaped, other bytes as `\xHH`. */
function quoteBytes(bytes: Uint8Array): string {
  let out = '"';
  for (const byte of bytes) {
    switch (byte) {
      case 0x5c:
        out += "\\\\";
        break;
      case 0x22:
        out += '\\"';
        break;
      case 0x0a:
        out += "\\n";
        break;
      case 0x0d:
        out += "\\r";
        break;
      case 0x09:
        out += "\\t";
        break;
      case 0x07:
        out += "\\a";
        break;
      case 0x08:
        out += "\\b";
        break;
      default:
        out += byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, "0")}`;
    }
  }
  return out + '"';
}

function formatValue(value: RespValue, nested: boolean): string {
  switch (value.type) {
    case "simple":
      return value.value;
    case "error":
      return `(error) ${value.message}`;
    case "integer":
      return `(integer) ${value.value}`;
    case "bulk":
      if (value.value === null) return "(nil)";
      return nested ? quoteBytes(value.value) : value.value.toString("utf8");
    case "array":
      return formatArray(value.value);
    default: {
      const unexpected: never = value;
      throw new Error(`unexpected RESP value ${JSON.stringify(unexpected)}`);
    }
  }
}

/** Numbers the elements `1) ...`, right-aligned, and indents continuation lines of nested arrays under their element. */
function formatArray(items: RespValue[] | null): string {
  if (items === null) return "(nil)";
  if (items.length === 0) return "(empty array)";

  const width = String(items.length).length;
  const lines: string[] = [];
  items.forEach((item, i) => {
    const prefix = `${String(i + 1).padStart(width)}) `;
    const indent = " ".repeat(prefix.length);
    const [first, ...rest] = formatValue(item, true).split("\n");
    lines.push(prefix + first, ...rest.map((line) => indent + line));
  });
  return lines.join("\n");
}

/**
 * Formats a reply for a terminal as `redis-cli` does: `OK`, `(integer) 5`,
 * `(nil)`, `(error) ERR ...`, `(empty array)`, and arrays as numbered lines with
 * quoted strings. A top-level bulk string is printed bare, decoded as UTF-8.
 */
export function formatReply(value: RespValue): string {
  return formatValue(value, false);
}
