// Types shared by the Raft core and the layers that drive it. Nothing here
// performs I/O; the runtime (src/node/) persists, sends and applies.

export type NodeId = string;

/** One server of the cluster configuration. */
export interface Member {
  id: NodeId;
  /** host:port of the peer (Raft) listener. */
  raftAddr: string;
  /** host:port of the RESP client listener. */
  clientAddr: string;
  /** Voters count for elections and commit quorums; learners only replicate. */
  voter: boolean;
  /**
   * Random id of the member's data directory, created with it. A JOIN under
   * a known id with another incarnation means the data was wiped.
   */
  incarnation?: string;
}

export type EntryKind = "command" | "config" | "noop";

/** Code of each entry kind in the log table, in log writer batches and in peer frames. */
export const KIND_CODES: Record<EntryKind, number> = { command: 0, config: 1, noop: 2 };
/** Entry kinds by their number in KIND_CODES. */
export const KINDS_BY_CODE: readonly EntryKind[] = ["command", "config", "noop"];

/**
 * One log entry. `data` is opaque to the core for commands. A config entry
 * carries the complete new member list, which takes effect as soon as the
 * entry is appended (single-server changes, Raft thesis section 4.1).
 */
export interface Entry {
  index: number;
  term: number;
  kind: EntryKind;
  data: Uint8Array;
  members?: Member[];
}

/** State that must be on disk before any message that depends on it leaves. */
export interface HardState {
  term: number;
  votedFor: NodeId | null;
  /** Persisted lazily: it may lag the real commit index, never lead it. */
  commitIndex: number;
}

/** Metadata of the state-machine snapshot that replaces the log prefix. */
export interface SnapshotMeta {
  lastIndex: number;
  lastTerm: number;
  members: Member[];
}

export interface Snapshot {
  meta: SnapshotMeta;
  data: Uint8Array;
}

export type Role = "follower" | "candidate" | "precandidate" | "leader";

interface Envelope {
  from: NodeId;
  to: NodeId;
  term: number;
}

export interface AppendEntriesRequest extends Envelope {
  type: "append";
  prevIndex: number;
  prevTerm: number;
  entries: Entry[];
  commitIndex: number;
}

export interface AppendEntriesResponse extends Envelope {
  type: "appendResponse";
  success: boolean;
  /** On success: the index the follower now matches. On failure: a hint for nextIndex. */
  matchIndex: number;
  /** Last index of the follower's log, used to skip back quickly on a mismatch. */
  lastIndex: number;
}

export interface VoteRequest extends Envelope {
  type: "vote";
  lastIndex: number;
  lastTerm: number;
  /** Pre-vote (thesis 9.6): requests whether a vote would be granted at `term`, and changes nothing. */
  preVote: boolean;
  /** Set by a leadership transfer so that voters skip the leader-stickiness check. */
  transfer: boolean;
}

export interface VoteResponse extends Envelope {
  type: "voteResponse";
  granted: boolean;
  preVote: boolean;
}

/**
 * Tells a follower that the state machine snapshot described by `meta` is
 * ready to install. The runtime streams the snapshot body in chunks outside
 * the core and delivers this message locally once the body is complete and
 * verified, so `data` is empty here.
 */
export interface InstallSnapshotRequest extends Envelope {
  type: "snapshot";
  snapshot: Snapshot;
}

/** Sent by a leader that hands leadership over: the target campaigns at once. */
export interface TimeoutNow extends Envelope {
  type: "timeoutNow";
}

/** Heartbeat round used to confirm leadership for read-index requests. */
export interface HeartbeatRequest extends Envelope {
  type: "heartbeat";
  commitIndex: number;
  /** Read-index round this heartbeat confirms; 0 when none is pending. */
  readRound: number;
  /**
   * Set on a heartbeat that only announces a new commit index. The follower
   * sends no response to it, because the next periodic heartbeat gets one.
   */
  quiet?: boolean;
}

export interface HeartbeatResponse extends Envelope {
  type: "heartbeatResponse";
  readRound: number;
}

export type Message =
  | AppendEntriesRequest
  | AppendEntriesResponse
  | VoteRequest
  | VoteResponse
  | InstallSnapshotRequest
  | TimeoutNow
  | HeartbeatRequest
  | HeartbeatResponse;

export type MessageType = Message["type"];

/**
 * One piece of a snapshot body streamed from the leader's runtime to a
 * follower's. The core never receives these, because the follower's runtime delivers an
 * InstallSnapshotRequest to its core once the body is complete and verified.
 */
export interface SnapshotChunk extends Envelope {
  type: "snapshotChunk";
  /** Identifies one transfer, so chunks of an abandoned one are ignored. */
  transfer: number;
  meta: SnapshotMeta;
  /** Byte offset of `data` in the snapshot file. */
  offset: number;
  /** Size of the whole snapshot file in bytes. */
  total: number;
  data: Uint8Array;
}

/** Acknowledges the snapshot bytes received so far, or reports a failed transfer. */
export interface SnapshotChunkAck extends Envelope {
  type: "snapshotChunkAck";
  transfer: number;
  /** Bytes received and written so far; the next chunk must start here. */
  received: number;
  ok: boolean;
  reason: string;
}

/**
 * Asks a peer to stream its newest snapshot. Sent by a node whose own
 * snapshot files are all unusable, so it cannot rebuild its key-value state.
 */
export interface SnapshotRequest extends Envelope {
  type: "snapshotRequest";
  /** The snapshot must cover at least this index, where the requester's log begins. */
  minIndex: number;
}

/** Everything that travels between peers: Raft messages and snapshot transfer messages. */
export type PeerMessage = Message | SnapshotChunk | SnapshotChunkAck | SnapshotRequest;

/** A read-index request that became safe to serve once `index` is applied. */
export interface ReadState {
  id: number;
  index: number;
}

/**
 * Work the runtime must do, in this order: persist `hardState`, `truncateFrom`
 * and `entries` (and `snapshot`) in one transaction; then send `messages`;
 * then apply `committed`; then serve `reads` once applied reaches their index.
 */
export interface Ready {
  hardState: HardState | null;
  /** Delete every persisted entry with index >= this before appending `entries`. */
  truncateFrom: number | null;
  entries: Entry[];
  snapshot: Snapshot | null;
  messages: Message[];
  committed: Entry[];
  reads: ReadState[];
  /** Read-index requests that cannot be served (lost leadership); retry elsewhere. */
  failedReads: number[];
  /** Peers that are behind the compaction point: stream them the newest snapshot, then call reportSnapshot. */
  snapshotsToSend: NodeId[];
}

export type ProposeResult =
  | { ok: true; index: number; term: number }
  | { ok: false; code: "NOTLEADER"; leaderId: NodeId | null }
  | { ok: false; code: "BUSY"; reason: string }
  | { ok: false; code: "INVALID"; reason: string };

export type ConfChange =
  | { type: "add"; member: Omit<Member, "voter"> }
  | { type: "remove"; id: NodeId }
  /** New addresses (and data incarnation) for a member, keeping its voter state. */
  | { type: "update"; member: Omit<Member, "voter"> };
