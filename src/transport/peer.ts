// The outbound connection to one peer: dial, handshake, send, and reconnect
// with exponential backoff after a failure.

import type { Socket } from "bun";
import { errorMessage } from "../log.ts";
import type { Logger } from "../log.ts";
import { parseHostPort } from "./address.ts";
import { encodeFrame, FrameDecoder } from "./frame.ts";
import { PROTOCOL_VERSION, isGoodbye, parseReply, rejectionLogLevel } from "./handshake.ts";
import type { Hello } from "./handshake.ts";
import { WriteQueue } from "./write-queue.ts";

/** Idle time before the first TCP keepalive probe on an outbound connection. */
const KEEPALIVE_IDLE_MS = 10_000;

/** Interval at which a node that has no cluster id yet checks again before dialing. */
const CLUSTER_ID_POLL_MS = 100;

export interface PeerSettings {
  nodeId: string;
  clusterId: () => string | null;
  maxFrameBytes: number;
  maxBufferedBytes: number;
  handshakeTimeoutMs: number;
  reconnectInitialMs: number;
  reconnectMaxMs: number;
  /** Time after the peer's goodbye before a failed dial warns that it is still down. */
  plannedStopWarnMs: number;
  logger: Logger;
  /** Called when this peer rejects the handshake because this node was removed from the cluster. */
  onRemoved?: (peer: string) => void;
}

/** State of one connection attempt. Callbacks from an attempt that is no longer current are ignored. */
interface Attempt {
  socket: Socket<undefined> | null;
  queue: WriteQueue | null;
  decoder: FrameDecoder;
  handshakeTimer: Timer | null;
  welcomed: boolean;
}

export class OutboundPeer {
  readonly id: string;
  readonly raftAddr: string;
  readonly #host: string;
  readonly #port: number;
  readonly #settings: PeerSettings;
  readonly #logger: Logger;

  #attempt: Attempt | null = null;
  #retryTimer: Timer | null = null;
  #stopped = false;
  /** Failed attempts since the last welcome. */
  #failures = 0;
  /** Whether the current run of failures has been logged. */
  #failureLogged = false;
  #lastRejectReason: string | null = null;
  /** Date.now() of the peer's goodbye while it is down after a planned stop, or null. */
  #goodbyeAt: number | null = null;
  #waitingForClusterIdLogged = false;

  /** Throws if `raftAddr` is not a valid "host:port". */
  constructor(id: string, raftAddr: string, settings: PeerSettings) {
    const { host, port } = parseHostPort(raftAddr);
    this.id = id;
    this.raftAddr = raftAddr;
    this.#host = host;
    this.#port = port;
    this.#settings = settings;
    this.#logger = settings.logger.with(() => ({ peer: id, addr: raftAddr }));
  }

  /** Whether the handshake completed and messages can be sent. */
  get connected(): boolean {
    return this.#attempt?.welcomed === true;
  }

  /** Bytes queued on the current connection that the socket has not accepted yet. */
  get bufferedBytes(): number {
    return this.#attempt?.queue?.bufferedBytes ?? 0;
  }

  start(): void {
    this.#dial();
  }

  /** Queues a frame. Returns false when not connected or over the buffered-bytes cap. */
  send(frame: Uint8Array): boolean {
    const attempt = this.#attempt;
    if (attempt === null || !attempt.welcomed || attempt.queue === null) return false;
    return attempt.queue.enqueue(frame);
  }

  /** Writes the queued frames now instead of at the end of the tick. */
  flush(): void {
    this.#attempt?.queue?.flush();
  }

  /** Dials at once, without waiting for the backoff, when a retry is pending. */
  redialNow(): void {
    if (this.#stopped || this.#retryTimer === null) return;
    clearTimeout(this.#retryTimer);
    this.#dial();
  }

  /** Closes the connection and stops reconnecting. */
  close(): void {
    this.#stopped = true;
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    if (this.#attempt !== null) this.#teardown(this.#attempt);
    this.#attempt = null;
  }

  #dial(): void {
    this.#retryTimer = null;
    if (this.#stopped) return;

    const clusterId = this.#settings.clusterId();
    if (clusterId === null) {
      if (!this.#waitingForClusterIdLogged) {
        this.#waitingForClusterIdLogged = true;
        this.#logger.debug("waiting for the cluster id before dialing peer");
      }
      this.#retryTimer = setTimeout(() => this.#dial(), CLUSTER_ID_POLL_MS);
      return;
    }

    const attempt: Attempt = {
      socket: null,
      queue: null,
      decoder: new FrameDecoder(this.#settings.maxFrameBytes),
      handshakeTimer: null,
      welcomed: false,
    };
    this.#attempt = attempt;
    const isCurrent = () => this.#attempt === attempt;

    // The timer covers both the TCP connect and the handshake, because a
    // connect to an unreachable host can otherwise hang for minutes.
    const timeoutMs = this.#settings.handshakeTimeoutMs;
    attempt.handshakeTimer = setTimeout(() => {
      attempt.handshakeTimer = null;
      if (isCurrent()) this.#fail(attempt, `connect and handshake timed out after ${timeoutMs} ms`);
    }, timeoutMs);

    try {
      Bun.connect({
        hostname: this.#host,
        port: this.#port,
        socket: {
          binaryType: "uint8array",
          open: (socket) => {
            if (!isCurrent()) {
              socket.end();
              return;
            }
            this.#onOpen(attempt, socket, clusterId);
          },
          data: (_socket, chunk) => {
            if (isCurrent()) this.#onData(attempt, chunk);
          },
          drain: () => {
            if (isCurrent()) attempt.queue?.drain();
          },
          close: (_socket, err) => {
            if (!isCurrent()) return;
            const detail = err === undefined ? "" : `: ${errorMessage(err)}`;
            this.#fail(attempt, attempt.welcomed ? `connection closed${detail}` : `closed during handshake${detail}`);
          },
          error: (_socket, err) => {
            if (isCurrent()) this.#fail(attempt, `socket error: ${errorMessage(err)}`);
          },
          // A failed connect also rejects the promise below, which handles it.
          connectError: () => {},
        },
      }).catch((err: unknown) => {
        if (isCurrent()) this.#fail(attempt, `connect failed: ${errorMessage(err)}`);
      });
    } catch (err) {
      this.#fail(attempt, `connect failed: ${errorMessage(err)}`);
    }
  }

  #onOpen(attempt: Attempt, socket: Socket<undefined>, clusterId: string): void {
    attempt.socket = socket;
    attempt.queue = new WriteQueue(socket, this.#settings.maxBufferedBytes);
    // Raft messages are small and latency-bound, so Nagle's algorithm is off.
    // NOTE: a peer host that vanishes without closing the connection is only
    // noticed by TCP keepalive or retransmission timeouts. Until then, sends
    // queue up to maxBufferedBytes and are then dropped.
    socket.setNoDelay(true);
    socket.setKeepAlive(true, KEEPALIVE_IDLE_MS);

    const hello: Hello = {
      type: "hello",
      version: PROTOCOL_VERSION,
      clusterId,
      from: this.#settings.nodeId,
      to: this.id,
    };
    attempt.queue.enqueue(encodeFrame(hello));
  }

  #onData(attempt: Attempt, chunk: Uint8Array): void {
    attempt.decoder.push(chunk);
    while (this.#attempt === attempt) {
      const result = attempt.decoder.next();
      if (result.kind === "incomplete") return;
      if (result.kind === "error") {
        this.#fail(attempt, result.message);
        return;
      }

      // After its reply, the acceptor only reads, until it sends a goodbye.
      if (attempt.welcomed) {
        if (isGoodbye(result.value)) this.#onGoodbye(attempt);
        else this.#fail(attempt, "unexpected frame after welcome");
        return;
      }
      const reply = parseReply(result.value);
      if (typeof reply === "string") {
        this.#fail(attempt, reply);
        return;
      }
      if (reply.type === "reject") {
        if (reply.removed) this.#settings.onRemoved?.(this.id);
        this.#onReject(attempt, reply.reason);
        return;
      }
      this.#onWelcome(attempt);
    }
  }

  #onWelcome(attempt: Attempt): void {
    attempt.welcomed = true;
    if (attempt.handshakeTimer !== null) clearTimeout(attempt.handshakeTimer);
    attempt.handshakeTimer = null;

    if (this.#failureLogged) {
      this.#logger.info("peer connection recovered", { failed_attempts: this.#failures });
    } else {
      this.#logger.info("connected to peer");
    }
    this.#failures = 0;
    this.#failureLogged = false;
    this.#lastRejectReason = null;
    this.#goodbyeAt = null;
  }

  /** Logs a peer that shuts down on purpose at info level, because its close is expected, and ends the attempt. */
  #onGoodbye(attempt: Attempt): void {
    this.#logger.info("peer is shutting down");
    // This line covers the close and the failed dials until the peer is
    // back, unless it stays down for plannedStopWarnMs.
    this.#failureLogged = true;
    this.#goodbyeAt = Date.now();
    this.#fail(attempt, "the peer is shutting down");
  }

  #onReject(attempt: Attempt, reason: string): void {
    if (reason !== this.#lastRejectReason) {
      this.#lastRejectReason = reason;
      this.#logger[rejectionLogLevel(reason)]("peer rejected handshake", { reason });
      // The reject line replaces the warn line for the first failure of this run.
      this.#failureLogged = true;
    }
    this.#fail(attempt, `handshake rejected: ${reason}`);
  }

  /** Ends the attempt and schedules the next one after the backoff delay. */
  #fail(attempt: Attempt, reason: string): void {
    if (this.#attempt !== attempt) return;
    // Cleared first: ending the socket may run its close callback at once,
    // which must not fail the same attempt again and start a second retry.
    this.#attempt = null;
    this.#teardown(attempt);
    if (this.#stopped) return;

    this.#failures += 1;
    const delayMs = this.#backoffMs();
    if (!this.#failureLogged) {
      this.#failureLogged = true;
      this.#logger.warn(attempt.welcomed ? "peer connection lost" : "peer connection failed", {
        reason,
        retry_ms: delayMs,
      });
    } else if (this.#goodbyeAt !== null && Date.now() - this.#goodbyeAt >= this.#settings.plannedStopWarnMs) {
      const downMs = Date.now() - this.#goodbyeAt;
      this.#logger.warn("peer still down after a planned stop", { down_ms: downMs, reason, retry_ms: delayMs });
      // The warning comes once, and later failures of this run are debug lines again.
      this.#goodbyeAt = null;
    } else {
      this.#logger.debug("peer connection attempt failed", { reason, failed_attempts: this.#failures, retry_ms: delayMs });
    }
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => this.#dial(), delayMs);
  }

  #teardown(attempt: Attempt): void {
    if (attempt.handshakeTimer !== null) clearTimeout(attempt.handshakeTimer);
    attempt.handshakeTimer = null;
    attempt.queue?.close();
    attempt.socket?.end();
  }

  /**
   * Returns the delay before the next dial: reconnectInitialMs doubled per
   * consecutive failure, capped at reconnectMaxMs, then scaled by a random
   * factor in [0.5, 1) so that peers do not retry in lockstep.
   */
  #backoffMs(): number {
    const { reconnectInitialMs, reconnectMaxMs } = this.#settings;
    const exponent = Math.min(this.#failures - 1, 30);
    const capped = Math.min(reconnectMaxMs, reconnectInitialMs * 2 ** exponent);
    return Math.round(capped * (0.5 + Math.random() / 2));
  }
}
