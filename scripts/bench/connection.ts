// A TCP connection to 127.0.0.1 with at most one request in flight: write a
// request, wait for one complete reply, classify it. No pipelining, so the
// latency of each request is the round trip the server gives it.

import type { Socket } from "bun";

/** Result of one request: what the classifier made of the reply, or why no reply arrived. */
export type Exchange<T> = { result: T } | { failure: "timeout" | "closed" };

/**
 * Returns the length of the first complete reply in `buffer`, or 0 while it is
 * incomplete. Each protocol supplies its own.
 */
export type ReplyLength = (buffer: Uint8Array) => number;

interface Pending {
  classify: (reply: Uint8Array) => unknown;
  resolve: (exchange: Exchange<unknown>) => void;
  sentAt: number;
  timeoutMs: number;
}

/** Open connections, checked by one shared timer for requests past their timeout. */
const openConnections = new Set<SingleRequestConnection>();
let watchdog: Timer | null = null;
const WATCHDOG_INTERVAL_MS = 100;

function checkTimeouts(): void {
  const now = performance.now();
  for (const connection of openConnections) connection.expireIfOverdue(now);
}

export class SingleRequestConnection {
  #socket: Socket<undefined>;
  #replyLength: ReplyLength;
  #received: Uint8Array = new Uint8Array(0);
  #unsent: Uint8Array | null = null;
  #pending: Pending | null = null;
  #closed = false;

  private constructor(socket: Socket<undefined>, replyLength: ReplyLength) {
    this.#socket = socket;
    this.#replyLength = replyLength;
  }

  /** Connects to 127.0.0.1:`port`, failing after `timeoutMs`. */
  static async open(port: number, replyLength: ReplyLength, timeoutMs: number): Promise<SingleRequestConnection> {
    let connection: SingleRequestConnection | null = null;
    const connecting = Bun.connect<undefined>({
      hostname: "127.0.0.1",
      port,
      socket: {
        data: (_socket, chunk) => {
          if (connection) connection.#onData(chunk);
        },
        drain: () => {
          if (connection) connection.#flush();
        },
        close: () => {
          if (connection) connection.#onClose();
        },
        error: () => {
          if (connection) connection.#onClose();
        },
      },
    });
    let timer: Timer | undefined;
    const timeout = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), timeoutMs);
    });
    const socket = await Promise.race([connecting, timeout]);
    clearTimeout(timer);
    if (socket === null) {
      // A connection that completes after the timeout is closed as soon as it opens.
      void connecting.then((late) => late.end(), () => {});
      throw new Error(`connecting to 127.0.0.1:${port} timed out after ${timeoutMs} ms`);
    }
    socket.setNoDelay(true);
    connection = new SingleRequestConnection(socket, replyLength);
    openConnections.add(connection);
    watchdog ??= setInterval(checkTimeouts, WATCHDOG_INTERVAL_MS);
    return connection;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sends one request and waits for its reply, for at most `timeoutMs` (checked
   * every 100 ms). `classify` turns the reply into the result while the
   * receive buffer is still valid.
   */
  request<T>(bytes: Uint8Array | string, timeoutMs: number, classify: (reply: Uint8Array) => T): Promise<Exchange<T>> {
    if (this.#closed) return Promise.resolve({ failure: "closed" });
    if (this.#pending) throw new Error("a request is already in flight on this connection");
    return new Promise<Exchange<T>>((resolve) => {
      this.#pending = { classify, resolve: resolve as (exchange: Exchange<unknown>) => void, sentAt: performance.now(), timeoutMs };
      this.#unsent = typeof bytes === "string" ? Buffer.from(bytes) : bytes;
      this.#flush();
    });
  }

  /** Fails the request in flight with "timeout" if it is older than its timeout, and closes the connection. */
  expireIfOverdue(now: number): void {
    const pending = this.#pending;
    if (!pending || now - pending.sentAt < pending.timeoutMs) return;
    // A late reply would be taken as the reply to the next request, so the
    // connection cannot be used again.
    this.#finish({ failure: "timeout" });
    this.close();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.end();
    this.#forget();
    this.#finish({ failure: "closed" });
  }

  #flush(): void {
    if (!this.#unsent) return;
    const written = this.#socket.write(this.#unsent);
    this.#unsent = written < this.#unsent.length ? this.#unsent.subarray(Math.max(written, 0)) : null;
  }

  #onData(chunk: Uint8Array): void {
    // Copy only a partial reply that must outlive this callback.
    const buffer = this.#received.length === 0 ? chunk : Buffer.concat([this.#received, chunk]);
    const length = this.#replyLength(buffer);
    if (length === 0) {
      this.#received = buffer === chunk ? Uint8Array.from(chunk) : buffer;
      return;
    }
    const pending = this.#pending;
    this.#received = length < buffer.length ? Uint8Array.from(buffer.subarray(length)) : new Uint8Array(0);
    if (pending) this.#finish({ result: pending.classify(buffer.subarray(0, length)) });
  }

  #onClose(): void {
    this.#closed = true;
    this.#forget();
    this.#finish({ failure: "closed" });
  }

  #forget(): void {
    openConnections.delete(this);
    if (openConnections.size === 0 && watchdog !== null) {
      clearInterval(watchdog);
      watchdog = null;
    }
  }

  #finish(exchange: Exchange<unknown>): void {
    const pending = this.#pending;
    if (!pending) return;
    this.#pending = null;
    pending.resolve(exchange);
  }
}
