// The peer transport contract between the node runtime and an implementation
// such as TcpTransport.

import type { Logger } from "../log.ts";
import type { PeerMessage } from "../raft/types.ts";

/**
 * Default maximum frame body, 64 MiB.
 * NOTE: an InstallSnapshot message carries the whole snapshot in one frame,
 * so a snapshot larger than maxFrameBytes cannot be sent.
 */
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;
/** Default cap on bytes queued for one peer. Beyond it, `send` drops messages. */
export const DEFAULT_MAX_PEER_BUFFERED_BYTES = 64 * 1024 * 1024;
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000;
export const DEFAULT_RECONNECT_INITIAL_MS = 50;
export const DEFAULT_RECONNECT_MAX_MS = 2000;
export const DEFAULT_PLANNED_STOP_WARN_MS = 60_000;

export interface TransportOptions {
  nodeId: string;
  /** "host:port" to listen on. Port 0 binds a free port, for tests. */
  listenAddr: string;
  /**
   * Cluster id this node belongs to, or null while a joining node has not
   * learned it. While null, inbound handshakes are rejected with "not ready"
   * and no peer is dialed.
   */
  clusterId: () => string | null;
  /** Maximum CBOR body of one frame, in bytes. Larger frames are neither sent nor accepted. */
  maxFrameBytes: number;
  logger: Logger;
  /** Receives each validated message from a peer. */
  onMessage: (msg: PeerMessage) => void;
  /** Called when a peer rejects this node's handshake because this node was removed from the cluster. */
  onRemoved?: (peer: string) => void;
  /** Bytes queued for one peer beyond which `send` drops messages. Default 64 MiB. */
  maxPeerBufferedBytes?: number;
  /** Time a new connection has to complete the handshake. Default 5000 ms. */
  handshakeTimeoutMs?: number;
  /** First reconnect delay, doubled per failure up to `reconnectMaxMs`. Default 50 ms. */
  reconnectInitialMs?: number;
  /** Maximum reconnect delay. Default 2000 ms. */
  reconnectMaxMs?: number;
  /**
   * Time after a peer's goodbye (a planned stop) before this node warns
   * that the peer is still down. Default 60,000 ms.
   */
  plannedStopWarnMs?: number;
}

export interface PeerAddress {
  id: string;
  /** "host:port" of the peer's transport listener. */
  raftAddr: string;
}

export interface Transport {
  /** Starts listening and resolves once the port is bound. */
  start(): Promise<void>;
  /** Port the listener is bound to. Reading it before `start()` resolves throws. */
  readonly boundPort: number;
  /** Dials new peers, closes removed ones and re-dials peers whose address changed. */
  setPeers(peers: PeerAddress[]): void;
  /**
   * Names the nodes removed from the cluster. Their connections to this node
   * are closed, and their handshakes are rejected with the reason, so that
   * a removed node that keeps running learns why.
   */
  setRemovedNodes(ids: string[]): void;
  /**
   * Queues `msg` for `msg.to`. Never throws: the message is dropped when the
   * peer is unknown, not connected or over its buffered-bytes cap, because
   * Raft retries.
   */
  send(msg: PeerMessage): void;
  /** Returns whether this node's connection to peer `id` is open and past its handshake. */
  isConnected(id: string): boolean;
  /**
   * Writes every queued frame to its socket now. Sends are otherwise
   * coalesced until the end of the tick; a caller about to block (on an
   * fsync) flushes first so the frames travel meanwhile.
   */
  flush(): void;
  /** Closes the listener and every connection. */
  stop(): Promise<void>;
}
