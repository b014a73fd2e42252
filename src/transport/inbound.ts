// Accepted peer connections: check the hello, then read messages, validate
// them and hand them to the Raft runtime. Inbound connections never carry
// messages to the peer.

import type { Socket, SocketHandler } from "bun";
import { errorMessage } from "../log.ts";
import type { Logger } from "../log.ts";
import type { PeerMessage } from "../raft/types.ts";
import { encodeFrame, FrameDecoder } from "./frame.ts";
import { checkHello, parseHello, rejectionLogLevel } from "./handshake.ts";
import type { Goodbye, Reject, Welcome } from "./handshake.ts";
import { LogLimiter } from "./log-limiter.ts";
import { validateMessage } from "./messages.ts";

/** Minimum time between two warn lines with the same cause and remote. */
const LOG_INTERVAL_MS = 60_000;

export interface AcceptorSettings {
  nodeId: string;
  clusterId: () => string | null;
  maxFrameBytes: number;
  handshakeTimeoutMs: number;
  logger: Logger;
  onMessage: (msg: PeerMessage) => void;
  /** Called when a peer's handshake is accepted: the peer is up. */
  onPeerAccepted?: (peer: string) => void;
}

export interface InboundState {
  decoder: FrameDecoder;
  /** Node id from the accepted hello; null until then. */
  peerId: string | null;
  handshakeTimer: Timer | null;
  /** Set once the connection is being closed; later input is ignored. */
  closing: boolean;
}

type InboundSocket = Socket<InboundState>;

export class Acceptor {
  readonly #settings: AcceptorSettings;
  readonly #logger: Logger;
  readonly #limiter = new LogLimiter(LOG_INTERVAL_MS);
  readonly #sockets = new Set<InboundSocket>();
  /** The newest accepted connection of each peer. */
  readonly #byPeer = new Map<string, InboundSocket>();
  /** Nodes removed from the cluster, whose handshakes are rejected as such. */
  #removed = new Set<string>();

  constructor(settings: AcceptorSettings) {
    this.#settings = settings;
    this.#logger = settings.logger;
  }

  /** Socket handlers for Bun.listen. */
  get handlers(): SocketHandler<InboundState> {
    return {
      binaryType: "uint8array",
      open: (socket) => this.#onOpen(socket),
      data: (socket, chunk) => this.#onData(socket, chunk),
      close: (socket) => this.#onClose(socket),
      error: (socket, err) => {
        this.#logger.error("peer connection error", { ...this.#describe(socket), error: errorMessage(err) });
        this.#close(socket);
      },
    };
  }

  /** Rejects handshakes from `ids` as removed nodes, and closes their connections. */
  setRemoved(ids: string[]): void {
    this.#removed = new Set(ids);
    for (const socket of this.#sockets) {
      const peer = socket.data.peerId;
      // The node redials, and its next handshake is rejected with the reason.
      if (peer !== null && this.#removed.has(peer)) this.#close(socket);
    }
  }

  /** Closes every connection, first writing a goodbye on each accepted one, so that its peer expects the close. */
  closeAll(): void {
    const goodbye: Goodbye = { type: "goodbye" };
    const frame = encodeFrame(goodbye);
    for (const socket of this.#sockets) this.#close(socket, socket.data.peerId === null ? undefined : frame);
    this.#sockets.clear();
    this.#byPeer.clear();
  }

  #onOpen(socket: InboundSocket): void {
    const timeoutMs = this.#settings.handshakeTimeoutMs;
    socket.data = {
      decoder: new FrameDecoder(this.#settings.maxFrameBytes),
      peerId: null,
      handshakeTimer: setTimeout(() => {
        socket.data.handshakeTimer = null;
        this.#closeInvalid(socket, `timed out after ${timeoutMs} ms waiting for hello`);
      }, timeoutMs),
      closing: false,
    };
    this.#sockets.add(socket);
  }

  #onData(socket: InboundSocket, chunk: Uint8Array): void {
    const state = socket.data;
    if (state.closing) return;

    state.decoder.push(chunk);
    while (!state.closing) {
      const result = state.decoder.next();
      if (result.kind === "incomplete") return;
      if (result.kind === "error") {
        this.#closeInvalid(socket, result.message);
        return;
      }

      if (state.peerId === null) {
        this.#onHello(socket, result.value);
      } else {
        this.#onFrame(socket, state.peerId, result.value);
      }
    }
  }

  #onHello(socket: InboundSocket, value: unknown): void {
    const hello = parseHello(value);
    if (typeof hello === "string") {
      this.#closeInvalid(socket, hello);
      return;
    }

    const { nodeId, clusterId } = this.#settings;
    let reason = checkHello(hello, nodeId, clusterId());
    const removed = reason === null && this.#removed.has(hello.from);
    if (removed) reason = `node ${hello.from} was removed from the cluster`;
    if (reason !== null) {
      const suppressed = this.#limiter.check(`reject ${hello.from} ${reason}`);
      if (suppressed !== null) {
        this.#logger[rejectionLogLevel(reason)]("rejected peer handshake", {
          peer: hello.from,
          remote: socket.remoteAddress,
          reason,
          suppressed: suppressed > 0 ? suppressed : undefined,
        });
      }
      const reject: Reject = { type: "reject", reason };
      if (removed) reject.removed = true;
      this.#close(socket, encodeFrame(reject));
      return;
    }

    const state = socket.data;
    if (state.handshakeTimer !== null) clearTimeout(state.handshakeTimer);
    state.handshakeTimer = null;
    state.peerId = hello.from;

    const welcome: Welcome = { type: "welcome" };
    const frame = encodeFrame(welcome);
    if (socket.write(frame) !== frame.length) {
      this.#logger.warn("failed to send welcome to peer", { peer: hello.from, remote: socket.remoteAddress });
      this.#close(socket);
      return;
    }

    // A peer that reconnects leaves its old connection behind, possibly
    // half-open, so the older one is closed.
    const previous = this.#byPeer.get(hello.from);
    this.#byPeer.set(hello.from, socket);
    if (previous !== undefined && previous !== socket) {
      this.#logger.debug("closing replaced peer connection", { peer: hello.from });
      this.#close(previous);
    }
    this.#logger.debug("accepted peer connection", { peer: hello.from, remote: socket.remoteAddress });
    this.#settings.onPeerAccepted?.(hello.from);
  }

  #onFrame(socket: InboundSocket, peerId: string, value: unknown): void {
    const msg = validateMessage(value);
    if (typeof msg === "string") {
      this.#closeInvalid(socket, msg);
      return;
    }

    if (msg.from !== peerId || msg.to !== this.#settings.nodeId) {
      const suppressed = this.#limiter.check(`misaddressed ${peerId}`);
      if (suppressed !== null) {
        this.#logger.warn("dropped peer message with wrong sender or recipient", {
          peer: peerId,
          type: msg.type,
          from: msg.from,
          to: msg.to,
          suppressed: suppressed > 0 ? suppressed : undefined,
        });
      }
      return;
    }

    try {
      this.#settings.onMessage(msg);
    } catch (err) {
      this.#logger.error("message handler failed", { peer: peerId, type: msg.type, error: errorMessage(err) });
    }
  }

  /** Closes a connection that broke the protocol, with a rate-limited warn line. */
  #closeInvalid(socket: InboundSocket, reason: string): void {
    const suppressed = this.#limiter.check(`invalid ${socket.remoteAddress}`);
    if (suppressed !== null) {
      this.#logger.warn("closed peer connection: protocol error", {
        ...this.#describe(socket),
        reason,
        suppressed: suppressed > 0 ? suppressed : undefined,
      });
    }
    this.#close(socket);
  }

  /** Ends the connection after writing `lastFrame`, if given. */
  #close(socket: InboundSocket, lastFrame?: Uint8Array): void {
    const state = socket.data;
    if (state.closing) return;
    state.closing = true;
    if (state.handshakeTimer !== null) clearTimeout(state.handshakeTimer);
    state.handshakeTimer = null;

    if (lastFrame === undefined) {
      socket.end();
    } else {
      socket.end(lastFrame);
    }
  }

  #onClose(socket: InboundSocket): void {
    const state = socket.data;
    if (state.handshakeTimer !== null) clearTimeout(state.handshakeTimer);
    state.handshakeTimer = null;
    state.closing = true;

    this.#sockets.delete(socket);
    if (state.peerId !== null && this.#byPeer.get(state.peerId) === socket) this.#byPeer.delete(state.peerId);
  }

  #describe(socket: InboundSocket): { peer: string | undefined; remote: string } {
    return { peer: socket.data.peerId ?? undefined, remote: `${socket.remoteAddress}:${socket.remotePort}` };
  }
}
