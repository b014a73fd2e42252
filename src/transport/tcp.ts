// Peer transport over TCP: length-prefixed CBOR frames on Bun.listen and
// Bun.connect. Each node dials every peer and sends only on that outbound
// connection, while accepted connections only receive.

import type { TCPSocketListener } from "bun";
import { errorMessage } from "../log.ts";
import type { Logger } from "../log.ts";
import type { PeerMessage } from "../raft/types.ts";
import { listenFailure, parseHostPort } from "./address.ts";
import { encodeFrame, FRAME_HEADER_BYTES } from "./frame.ts";
import { Acceptor } from "./inbound.ts";
import type { InboundState } from "./inbound.ts";
import { LogLimiter } from "./log-limiter.ts";
import { toWireMessage } from "./messages.ts";
import { OutboundPeer } from "./peer.ts";
import type { PeerSettings } from "./peer.ts";
import {
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_MAX_PEER_BUFFERED_BYTES,
  DEFAULT_PLANNED_STOP_WARN_MS,
  DEFAULT_RECONNECT_INITIAL_MS,
  DEFAULT_RECONNECT_MAX_MS,
} from "./transport.ts";
import type { PeerAddress, Transport, TransportOptions } from "./transport.ts";

export { DEFAULT_MAX_FRAME_BYTES } from "./transport.ts";
export type { PeerAddress, Transport, TransportOptions } from "./transport.ts";

/** Minimum time between two log lines about dropped messages of one kind and peer. */
const DROP_LOG_INTERVAL_MS = 60_000;

export class TcpTransport implements Transport {
  readonly #options: TransportOptions;
  readonly #logger: Logger;
  readonly #peerSettings: PeerSettings;
  readonly #acceptor: Acceptor;
  readonly #dropLimiter = new LogLimiter(DROP_LOG_INTERVAL_MS);
  readonly #peers = new Map<string, OutboundPeer>();
  #listener: TCPSocketListener<InboundState> | null = null;
  #stopped = false;

  /** Throws if a numeric option is not a positive integer. */
  constructor(options: TransportOptions) {
    const settings = {
      maxFrameBytes: options.maxFrameBytes,
      maxPeerBufferedBytes: options.maxPeerBufferedBytes ?? DEFAULT_MAX_PEER_BUFFERED_BYTES,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
      reconnectInitialMs: options.reconnectInitialMs ?? DEFAULT_RECONNECT_INITIAL_MS,
      reconnectMaxMs: options.reconnectMaxMs ?? DEFAULT_RECONNECT_MAX_MS,
      plannedStopWarnMs: options.plannedStopWarnMs ?? DEFAULT_PLANNED_STOP_WARN_MS,
    };
    for (const [name, value] of Object.entries(settings)) {
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new RangeError(`transport option ${name} must be a positive integer, got ${value}`);
      }
    }
    if (settings.reconnectMaxMs < settings.reconnectInitialMs) {
      throw new RangeError(
        `transport option reconnectMaxMs (${settings.reconnectMaxMs}) must be at least reconnectInitialMs (${settings.reconnectInitialMs})`,
      );
    }

    this.#options = options;
    this.#logger = options.logger;
    this.#peerSettings = {
      nodeId: options.nodeId,
      clusterId: options.clusterId,
      maxFrameBytes: settings.maxFrameBytes,
      maxBufferedBytes: settings.maxPeerBufferedBytes,
      handshakeTimeoutMs: settings.handshakeTimeoutMs,
      reconnectInitialMs: settings.reconnectInitialMs,
      reconnectMaxMs: settings.reconnectMaxMs,
      plannedStopWarnMs: settings.plannedStopWarnMs,
      logger: options.logger,
      onRemoved: options.onRemoved,
    };
    this.#acceptor = new Acceptor({
      nodeId: options.nodeId,
      clusterId: options.clusterId,
      maxFrameBytes: settings.maxFrameBytes,
      handshakeTimeoutMs: settings.handshakeTimeoutMs,
      logger: options.logger,
      onMessage: options.onMessage,
      // A peer that dials this node is up, so waiting out the backoff of a
      // connection to it only delays its messages: a restarted follower
      // heard nothing for up to a second.
      onPeerAccepted: (peer) => this.#peers.get(peer)?.redialNow(),
    });
  }

  get boundPort(): number {
    if (this.#listener === null) throw new Error("transport is not listening: call start() first");
    return this.#listener.port;
  }

  /** Rejects if listenAddr is invalid or cannot be bound, or the transport was stopped. */
  async start(): Promise<void> {
    if (this.#stopped) throw new Error("transport was stopped and cannot be restarted");
    if (this.#listener !== null) return;

    const { listenAddr } = this.#options;
    const { host, port } = parseHostPort(listenAddr);
    try {
      this.#listener = Bun.listen<InboundState>({ hostname: host, port, socket: this.#acceptor.handlers });
    } catch (err) {
      throw new Error(listenFailure(listenAddr, err));
    }
    this.#logger.info("transport listening", { addr: listenAddr, port: this.#listener.port });
  }

  setPeers(peers: PeerAddress[]): void {
    if (this.#stopped) return;

    const targetPeers = new Map<string, string>();
    for (const { id, raftAddr } of peers) {
      if (id !== this.#options.nodeId) targetPeers.set(id, raftAddr);
    }

    for (const [id, peer] of this.#peers) {
      if (targetPeers.get(id) === peer.raftAddr) continue;
      peer.close();
      this.#peers.delete(id);
      const newRaftAddr = targetPeers.get(id);
      if (newRaftAddr === undefined) {
        this.#logger.info("peer removed", { peer: id, addr: peer.raftAddr });
      } else {
        this.#logger.info("peer address changed", { peer: id, addr: newRaftAddr, previous_addr: peer.raftAddr });
      }
    }

    for (const [id, raftAddr] of targetPeers) {
      if (this.#peers.has(id)) continue;
      let peer: OutboundPeer;
      try {
        peer = new OutboundPeer(id, raftAddr, this.#peerSettings);
      } catch (err) {
        this.#logger.error("invalid peer address, not dialing", { peer: id, addr: raftAddr, error: errorMessage(err) });
        continue;
      }
      this.#peers.set(id, peer);
      this.#logger.info("peer added", { peer: id, addr: raftAddr });
      peer.start();
    }
  }

  setRemovedNodes(ids: string[]): void {
    this.#acceptor.setRemoved(ids);
  }

  flush(): void {
    for (const peer of this.#peers.values()) peer.flush();
  }

  isConnected(id: string): boolean {
    return this.#peers.get(id)?.connected === true;
  }

  send(msg: PeerMessage): void {
    // Raft retries lost messages, so a failure here is logged and the message
    // dropped, never thrown into the caller's loop.
    try {
      this.#send(msg);
    } catch (err) {
      this.#logDrop("error", "send failed", msg, { error: errorMessage(err) });
    }
  }

  #send(msg: PeerMessage): void {
    const peer = this.#peers.get(msg.to);
    if (peer === undefined || !peer.connected) return;

    const frame = encodeFrame(toWireMessage(msg));
    const bodyBytes = frame.length - FRAME_HEADER_BYTES;
    if (bodyBytes > this.#options.maxFrameBytes) {
      // The receiver would close the connection on this frame, and Raft would
      // resend it, so it is dropped here instead.
      this.#logDrop("warn", "frame too large", msg, { bytes: bodyBytes, max_frame_bytes: this.#options.maxFrameBytes });
      return;
    }

    if (!peer.send(frame)) {
      this.#logDrop("warn", "send buffer full", msg, { bytes: frame.length, buffered_bytes: peer.bufferedBytes });
    }
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;

    for (const peer of this.#peers.values()) peer.close();
    this.#peers.clear();
    // The goodbyes go out first: stopping the listener with force would
    // close the accepted connections without them.
    this.#acceptor.closeAll();
    this.#listener?.stop(false);
    this.#listener = null;
    this.#logger.info("transport stopped");
  }

  #logDrop(level: "warn" | "error", cause: string, msg: PeerMessage, fields: Record<string, string | number>): void {
    const suppressed = this.#dropLimiter.check(`${cause} ${msg.to}`);
    if (suppressed === null) return;
    this.#logger[level](`dropped message to peer: ${cause}`, {
      peer: msg.to,
      type: msg.type,
      ...fields,
      suppressed: suppressed > 0 ? suppressed : undefined,
    });
  }
}
