// The runtime around one Raft core: real clock ticks, SQLite persistence,
// TCP transport and the key-value state machine. Each ready batch is handled
// in a fixed order:
//   1. a leader's AppendEntries and heartbeats leave at once, because a leader
//      may replicate before its own write finishes (thesis 10.2.1) and it only
//      counts itself once advance() reports its entries durable;
//   2. hard state, truncation and entries go to the log writer thread, which
//      commits them in one transaction, together with any batch that
//      arrives while the previous one is being written;
//   3. every other message (votes, acknowledgements) waits until that write
//      and every earlier one are durable, then leaves in order;
//   4. committed entries are applied and waiting clients get their replies:
//      a majority has them on disk, whether or not this node has yet;
//   5. advance() reports the batch durable to the core, once it is.

import { randomUUID } from "node:crypto";
import { encodeCommand, type KvCommand } from "../kv/command.ts";
import { KvStore, type ApplyResult } from "../kv/store.ts";
import { errorMessage, type Logger } from "../log.ts";
import { InvariantError } from "../raft/assert.ts";
import type { RaftConfig } from "../raft/config.ts";
import { RaftCore, type RaftStatus } from "../raft/core.ts";
import type {
  ConfChange,
  Entry,
  HardState,
  Member,
  Message,
  NodeId,
  PeerMessage,
  ProposeResult,
  Ready,
  Role,
  SnapshotMeta,
} from "../raft/types.ts";
import { LogWriter } from "../storage/log-writer.ts";
import { StorageError, type PersistedState, type SnapshotRecord, type SqliteStorage, type StorageWrite } from "../storage/sqlite.ts";
import type { Transport, TransportOptions } from "../transport/tcp.ts";
import { rmSync } from "node:fs";
import { SnapshotStore, SnapshotTransfers, type LoadedSnapshot } from "./snapshots.ts";
import { NodeError } from "./errors.ts";
import { memberAddressProblem, NODE_ID_PATTERN, NODE_ID_RULE } from "./member-rules.ts";

/** Maximum time a commit-index-only change of the hard state waits before it is written. */
const COMMIT_PERSIST_DELAY_MS = 200;
/**
 * Time a leader waits for an append to carry a new commit index to a
 * follower before it sends a heartbeat for it alone. Announcing each commit
 * at once woke both followers just before the leader replied, which cost
 * about 12% of sequential SET throughput on a 2-core VM.
 */
export const COMMIT_ANNOUNCE_DELAY_MS = 5;
/**
 * Spread of the snapshot limits. Each snapshot starts at a random 75% to
 * 125% of them, so that the members of a cluster do not all pause for a
 * snapshot at once and a quorum keeps committing.
 */
const SNAPSHOT_LIMIT_SPREAD = 0.25;
/** A log write slower than this is logged. */
const SLOW_WRITE_MS = 500;
/** Interval between snapshot requests from a node without its key-value state, until one arrives. */
const MISSING_STATE_RETRY_MS = 1000;

export interface NodeOptions {
  nodeId: NodeId;
  /** Advertised peer address, stored in the configuration. */
  raftAddr: string;
  /** Advertised client address, stored in the configuration. */
  clientAddr: string;
  storage: SqliteStorage;
  raftConfig: RaftConfig;
  /** Wall-clock length of one Raft tick. */
  tickMs: number;
  /** How long a write or read may wait before failing with TIMEOUT. */
  requestTimeoutMs: number;
  logger: Logger;
  createTransport: (options: Omit<TransportOptions, "maxFrameBytes">) => Transport;
  /** Called once when the node hits a broken invariant and must stop. */
  onFatal: (err: Error) => void;
  /** Directory of the database; snapshot files go to its snapshots/ folder. */
  dataDir: string;
  /** Take a snapshot once this many entries were applied since the last one. */
  snapshotEntries: number;
  /** Take a snapshot once this many bytes of log were applied since the last one. */
  snapshotLogBytes: number;
}

/** Receiver of a proposal's outcome: its result once applied, or the error that ended it. */
export interface ProposalWaiter {
  applied(result: ApplyResult): void;
  failed(err: NodeError): void;
}

interface PendingProposal {
  term: number;
  deadline: number;
  waiter: ProposalWaiter;
  /** The outcome, set when the entry is applied and reported after the ready batches. */
  outcome: ApplyResult | NodeError | null;
}

interface PendingRead {
  deadline: number;
  /** Called with the read index once the state machine has applied it. */
  resolve: (index: number) => void;
  reject: (err: NodeError) => void;
}

interface ReadWaitingForApply {
  index: number;
  read: PendingRead;
}

/** A change an operator wants to see live; pushed to SUBSCRIBE cluster-events clients. */
export interface ClusterEvent {
  time: string;
  node: NodeId;
  term: number;
  type: "node_started" | "node_stopping" | "role_changed" | "leader_changed" | "membership_changed" | "snapshot_taken" | "snapshot_installed";
  message: string;
  [field: string]: string | number | boolean | null;
}

export interface NodeStatus extends RaftStatus {
  /** Milliseconds since the last message from each peer; absent when none arrived yet. */
  lastContactMs: Record<NodeId, number>;
  /**
   * Other members that this node has an open connection to and heard from
   * within an election timeout. A follower hears from the leader only.
   */
  linkedPeers: NodeId[];
  clusterId: string | null;
  clientAddr: string;
  raftAddr: string;
  keys: number;
  /** Whether the key-value state is being restored from a peer (reads fail with LOADING). */
  loading: boolean;
  /** Whether this node has learned that it was removed from the cluster (writes fail with REMOVED). */
  removed: boolean;
  memory: {
    /** Bytes of the store's pages and index. */
    storeBytes: number;
    /** Bytes of the current keys and values. */
    storeLiveBytes: number;
  };
}

export class EchoNode {
  readonly id: NodeId;
  readonly store = new KvStore();
  readonly #options: NodeOptions;
  readonly #logger: Logger;
  readonly #storage: SqliteStorage;
  #core: RaftCore;
  #transport: Transport | null = null;
  #clusterId: string | null;

  #ticker: ReturnType<typeof setInterval> | null = null;
  #processScheduled = false;
  /** Timer for a commit announcement that no append made unnecessary yet. */
  #announceTimer: ReturnType<typeof setTimeout> | null = null;
  /** performance.now() of the last tick, to detect pauses. */
  #lastTickAt = performance.now();
  /** Index of the last entry applied to the map. */
  #appliedIndex: number;
  #stopped = false;
  #failed = false;

  #proposals = new Map<number, PendingProposal>();
  /** Proposals applied during the current ready batches, reported once they are handled. */
  #settledProposals: PendingProposal[] = [];
  #nextReadId = 1;
  #reads = new Map<number, PendingRead>();
  #readsWaitingForApply: ReadWaitingForApply[] = [];
  #leaderWaiters: Array<{ deadline: number; resolve: (leader: Member | null) => void }> = [];

  #lastRole: Role = "follower";
  #lastLeader: NodeId | null = null;
  #lastTerm = 0;
  #lastPeers = "";
  #lastConfigIndex = -1;
  #lastPeerAddrs = "";
  /** Whether the newest configuration was committed when peers were last computed. */
  #lastConfigCommitted = false;
  #persistedTerm = 0;
  /** Hard state as last written to SQLite. */
  #persistedHardState: HardState;
  /** Newer hard state whose only change is the commit index, not yet written. */
  #unpersistedHardState: HardState | null = null;
  #lastHardStateWrite = 0;
  /** Writes the log off the event loop once the node has started; until then writes are synchronous. */
  #writer: LogWriter | null = null;
  /** Sequence number of the writer batch carrying the newest write (0 before the first). */
  #lastWriteSeq = 0;
  /** Writer batch carrying the newest change of term or vote. */
  #electionStateWriteSeq = 0;
  /**
   * Ready batches whose write, or an earlier one, is still in progress:
   * their messages leave and advance() runs once batch `seq` is durable.
   */
  #awaitingWrite: Array<{ seq: number; ready: Ready | null; messages: Message[] }> = [];
  #removedLogged = false;
  /** Every other node this one has counted as a peer since it started. */
  #formerPeers = new Set<NodeId>();
  /**
   * Whether a configuration from the log or a snapshot has listed this node
   * since it started. A node that joined may first install a snapshot taken
   * before it was added. Until its own addition arrives, a configuration
   * without it does not mean that it was removed.
   */
  #listedInConfig = false;
  /** Set when a peer rejected this node as removed; cleared by the next message from a leader. */
  #toldRemoved = false;
  readonly #snapshots: SnapshotStore;
  readonly #transfers: SnapshotTransfers;
  /** Index of the newest local snapshot (or of the loaded state at start). */
  #lastSnapshotIndex = 0;
  /** Bytes of entries applied since the newest snapshot. */
  #logBytesSinceSnapshot = 0;
  /** Factor of the snapshot limits for the next snapshot (see SNAPSHOT_LIMIT_SPREAD). */
  #snapshotLimitScale = drawSnapshotLimitScale();
  #snapshotInProgress: Promise<SnapshotRecord> | null = null;
  /** A verified snapshot from the leader, waiting for the core to accept it. */
  #receivedSnapshot: LoadedSnapshot | null = null;
  /**
   * Set while the key-value state is missing: every snapshot file was
   * unusable at start, and the log begins after `coveredIndex`. The node
   * keeps its log and votes, applies nothing, serves no reads, and requests
   * a peer's snapshot that covers `coveredIndex`.
   */
  #missingState: { coveredIndex: number; committed: number; requestedAt: number; snapshot: LoadedSnapshot | null } | null = null;
  #eventListeners = new Set<(event: ClusterEvent) => void>();
  /** Wall-clock time of the last message received from each peer. */
  #lastContact = new Map<NodeId, number>();

  private constructor(options: NodeOptions, state: PersistedState, snapshots: SnapshotStore, loaded: LoadedSnapshot | null, missing: boolean) {
    this.id = options.nodeId;
    this.#options = options;
    this.#storage = options.storage;
    this.#clusterId = options.storage.clusterId();
    this.#logger = options.logger.with(() => ({ node: this.id, term: this.#core?.term ?? 0 }));
    this.#snapshots = snapshots;

    if (loaded) this.store.replaceWith(loaded.store);
    const appliedIndex = loaded?.record.meta.lastIndex ?? state.logBase?.lastIndex ?? 0;
    this.#appliedIndex = appliedIndex;
    this.#lastSnapshotIndex = appliedIndex;
    this.#persistedTerm = state.hardState.term;
    this.#persistedHardState = { ...state.hardState };
    this.#core = new RaftCore({
      id: options.nodeId,
      config: options.raftConfig,
      random: Math.random,
      hardState: state.hardState,
      snapshot: state.logBase,
      entries: state.entries,
      appliedIndex,
    });
    this.#lastTerm = this.#core.term;
    if (missing) this.#missingState = { coveredIndex: appliedIndex, committed: appliedIndex, requestedAt: 0, snapshot: null };
    // The stored log reaches back to the previous snapshot; memory needs only what follows the loaded one.
    if (loaded && loaded.record.meta.lastIndex > (state.logBase?.lastIndex ?? 0)) this.#core.compact(loaded.record.meta.lastIndex);
    this.#transfers = new SnapshotTransfers(this.id, snapshots, this.#logger, {
      send: (message) => this.#transport?.send(message),
      onSendDone: (to, ok) => {
        this.#core.reportSnapshot(to, ok);
        this.#schedule();
      },
      onReceived: (from, term, received) => this.#onSnapshotReceived(from, term, received),
      currentTerm: () => this.#core.term,
      snapshotNotNeeded: (meta) => this.#snapshotNotNeeded(meta),
    });
  }

  /** Opens a node from its storage: loads the newest intact snapshot, then the log after it. */
  static async open(options: NodeOptions): Promise<EchoNode> {
    const state = options.storage.load();
    const holder: { node: EchoNode | null } = { node: null };
    const logger = options.logger.with(() => ({ node: options.nodeId, term: holder.node?.term ?? state.hardState.term }));
    const snapshots = new SnapshotStore(options.dataDir, options.storage, logger);
    const logBase = state.logBase?.lastIndex ?? 0;
    const loaded = await snapshots.loadNewestValid(logBase);
    const missing = loaded === null && logBase > 0;
    const node = new EchoNode(options, state, snapshots, loaded, missing);
    if (missing && !node.#core.members.some((member) => member.voter && member.id !== options.nodeId)) {
      throw new StorageError(
        `no intact snapshot covers the log compacted up to index ${logBase}, and no other member holds the data; restore the cluster from a backup with serve --restore FILE`,
      );
    }
    if (missing) node.#logger.info("the data will be fetched from a peer's snapshot; reads fail with LOADING until then", { log_base: logBase });
    holder.node = node;
    return node;
  }

  /** Creates the single-member configuration of a new cluster in an empty data directory. */
  static bootstrap(storage: SqliteStorage, self: Member): string {
    const clusterId = randomUUID();
    const entry: Entry = { index: 1, term: 1, kind: "config", data: new Uint8Array(0), members: [{ ...self, voter: true }] };
    storage.bootstrap(clusterId, entry, { term: 1, votedFor: null, commitIndex: 1 });
    return clusterId;
  }

  get clusterId(): string | null {
    return this.#clusterId;
  }

  /** Whether the log or a snapshot of this node contains a configuration. */
  get hasConfiguration(): boolean {
    return this.#core.members.length > 0;
  }

  /** Random id of this node's data directory, sent with JOIN. */
  get incarnation(): string {
    return this.#storage.incarnation();
  }

  /**
   * Records the cluster id and members learned from a successful join. Peers
   * are accepted from then on, and the members stay reachable until this
   * node's own log carries the configuration.
   */
  setClusterId(clusterId: string, members: Member[]): void {
    this.#storage.setClusterId(clusterId);
    this.#clusterId = clusterId;
    for (const member of members) {
      if (member.id !== this.id) this.#joinMembers.set(member.id, member);
    }
    this.#updatePeers(true);
  }

  /**
   * Members learned from the join reply. They replace the configuration while
   * it is empty, and remain peers until a configuration lists this node.
   */
  #joinMembers = new Map<NodeId, Member>();

  /** The configuration, or the members learned at join time while the log has none yet. */
  #knownMembers(): readonly Member[] {
    const members = this.#core.members;
    if (members.length > 0 || this.#joinMembers.size === 0) return members;
    return [...this.#joinMembers.values()];
  }

  async start(): Promise<void> {
    const replay = this.#core.commitIndex;
    this.#transport = this.#options.createTransport({
      nodeId: this.id,
      listenAddr: this.#options.raftAddr,
      clusterId: () => this.#clusterId,
      logger: this.#options.logger.with(() => ({ node: this.id, term: this.#core.term })),
      onMessage: (message) => this.#onMessage(message),
      onRemoved: (peer) => this.#onToldRemoved(peer),
    });
    await this.#transport.start();

    this.#writer = new LogWriter(this.#storage.path, {
      onDone: (seq, ms) => this.#onWriteDone(seq, ms),
      onCompacted: (index) => this.#logger.info("stored log compacted", { to: index }),
      onError: (err) => this.#fail(err),
      writeInline: (write) => this.#storage.write(write),
      onInlineWrite: (ms) => this.#warnIfSlow(ms),
    });
    // Writes on the node's own connection (snapshots, cluster id) first wait
    // for the writer, so the two connections never interleave.
    this.#storage.beforeWrite = () => this.#writer?.drain();
    this.#storage.compactor = (meta) => this.#writer?.compact(meta);
    this.#process();
    this.#logger.info("node started", {
      cluster: this.#clusterId ?? "none",
      last_index: this.#core.log.lastIndex(),
      applied_index: this.#appliedIndex,
      commit_index: replay,
      loading: this.#missingState !== null,
      members: this.#core.members.map((member) => member.id).join(",") || "none",
    });
    this.#updatePeers(true);
    this.#ticker = setInterval(() => this.#tick(), this.#options.tickMs);
  }

  /**
   * Stops timers and sockets. Waiting reads fail with SHUTDOWN. Waiting
   * writes fail with TIMEOUT, because they are in the log and another leader
   * may still commit them, so retrying one could apply it twice.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#emit("node_stopping", `${this.id} is shutting down`);
    this.#stopped = true;
    if (this.#ticker) clearInterval(this.#ticker);
    if (this.#announceTimer) clearTimeout(this.#announceTimer);
    const err = new NodeError("SHUTDOWN", "the node is shutting down");
    this.#notifySettled();
    const proposals = [...this.#proposals.values()];
    this.#proposals.clear();
    const unknown = new NodeError("TIMEOUT", "the node shut down before the write was applied; the outcome is unknown");
    for (const proposal of proposals) this.#notify(proposal.waiter, unknown);
    for (const read of this.#reads.values()) read.reject(err);
    for (const waiting of this.#readsWaitingForApply) waiting.read.reject(err);
    this.#reads.clear();
    this.#readsWaitingForApply = [];
    this.#transfers.close();
    await this.#snapshotInProgress?.catch(() => {});
    await this.#transport?.stop();
    if (!this.#failed) {
      try {
        this.#writer?.close();
      } catch (err) {
        this.#logger.error("could not finish the last log writes", { error: errorMessage(err) });
      }
    }
    this.#writer = null;
    if (this.#unpersistedHardState !== null && !this.#failed) {
      this.#storage.write({ hardState: this.#unpersistedHardState, truncateFrom: null, entries: [] });
    }
    this.#storage.close();
    this.#logger.info("node stopped");
  }

  // ------------------------------------------------------------- client API

  /** Registers a listener for cluster events; returns the function that removes it. */
  onEvent(listener: (event: ClusterEvent) => void): () => void {
    this.#eventListeners.add(listener);
    return () => this.#eventListeners.delete(listener);
  }

  #emit(type: ClusterEvent["type"], message: string, fields: Record<string, string | number | boolean | null> = {}): void {
    if (this.#eventListeners.size === 0) return;
    const event: ClusterEvent = { time: new Date().toISOString(), node: this.id, term: this.#core.term, type, message, ...fields };
    for (const listener of this.#eventListeners) listener(event);
  }

  status(): NodeStatus {
    const now = Date.now();
    const lastContactMs: Record<NodeId, number> = {};
    for (const [id, at] of this.#lastContact) lastContactMs[id] = now - at;
    const electionTimeoutMs = this.#options.tickMs * this.#options.raftConfig.electionTicks;
    const linkedPeers = this.#core.members
      .map((member) => member.id)
      .filter((id) => id !== this.id && this.#transport?.isConnected(id) === true && (lastContactMs[id] ?? Infinity) < electionTimeoutMs);
    return {
      ...this.#core.status(),
      // The core counts entries as applied once handed out, even those held back while the data is missing.
      appliedIndex: this.#appliedIndex,
      lastContactMs,
      linkedPeers,
      clusterId: this.#clusterId,
      clientAddr: this.#options.clientAddr,
      raftAddr: this.#options.raftAddr,
      keys: this.store.size,
      loading: this.#missingState !== null,
      removed: this.removed,
      memory: {
        storeBytes: this.store.memoryBytes,
        storeLiveBytes: this.store.liveBytes,
      },
    };
  }

  get role(): Role {
    return this.#core.role;
  }

  get term(): number {
    return this.#core.term;
  }

  /** Number of proposals (writes and membership changes) waiting to be applied. */
  get pendingProposals(): number {
    return this.#proposals.size;
  }

  /**
   * Whether this node was removed: its newest configuration leaves it out, or
   * a peer rejected it as removed. A running follower learns it only from its
   * peers, because the leader stops replicating to it before it could learn.
   */
  get removed(): boolean {
    if (this.#toldRemoved) return true;
    const members = this.#core.members;
    return members.length > 0 && !members.some((member) => member.id === this.id) && !this.#awaitingOwnAddition();
  }

  /** Whether this node joined and has not yet seen a configuration that lists it. */
  #awaitingOwnAddition(): boolean {
    return this.#joinMembers.size > 0 && !this.#listedInConfig;
  }

  /** Returns the leader this node currently follows, or null during an election. */
  leader(): Member | null {
    const leaderId = this.#core.leaderId;
    if (leaderId === null) return null;
    return this.#knownMembers().find((member) => member.id === leaderId) ?? null;
  }

  member(id: NodeId): Member | undefined {
    return this.#core.members.find((member) => member.id === id);
  }

  /** Resolves with the leader once one is known, or with null after `timeoutMs`. */
  waitForLeader(timeoutMs: number): Promise<Member | null> {
    const leader = this.leader();
    if (leader || timeoutMs <= 0) return Promise.resolve(leader);
    return new Promise((resolve) => {
      this.#leaderWaiters.push({ deadline: Date.now() + timeoutMs, resolve });
    });
  }

  /** Replicates a write; resolves once a majority committed it and it was applied here. */
  propose(command: KvCommand): Promise<ApplyResult> {
    this.#checkServing();
    return new Promise((resolve, reject) => this.submit(command, { applied: resolve, failed: reject }));
  }

  /**
   * Proposes `command` and reports its outcome to `waiter`, without a
   * promise. Throws at once when this node cannot take the proposal.
   */
  submit(command: KvCommand, waiter: ProposalWaiter): void {
    this.#checkServing();
    this.#track(this.#core.propose(encodeCommand(command)), waiter);
  }

  /**
   * Adds a member as a learner; it is promoted to voter once caught up.
   * Repeating a join is a no-op, and no two members may share a raft address.
   *
   * A known id joining from new addresses with the incarnation of its
   * recorded data directory has moved, so the configuration records the new
   * addresses. Any other join of a known id from new addresses is rejected.
   *
   * A known id joining from its addresses with a new data directory lost its
   * log, so its old membership is removed first. Otherwise the leader would
   * count it as storing entries it no longer has, and its empty log could
   * help elect a leader that lacks committed entries.
   */
  async addMember(member: Omit<Member, "voter">): Promise<void> {
    this.#checkServing();
    if (!NODE_ID_PATTERN.test(member.id)) throw new NodeError("INVALID", `invalid node id "${member.id}": ${NODE_ID_RULE}`);
    for (const [kind, address] of [["raft", member.raftAddr], ["client", member.clientAddr]]) {
      const problem = memberAddressProblem(address);
      if (problem !== null) throw new NodeError("INVALID", `invalid ${kind} address for ${member.id}: ${problem}`);
    }
    const existing = this.member(member.id);
    const sameAddresses = existing?.raftAddr === member.raftAddr && existing?.clientAddr === member.clientAddr;
    const sameData = member.incarnation === undefined || existing?.incarnation === member.incarnation;
    if (existing && sameAddresses && sameData) return;
    const holder = this.#core.members.find((other) => other.id !== member.id && other.raftAddr === member.raftAddr);
    if (holder) {
      throw new NodeError("INVALID", `raft address ${member.raftAddr} is in use by node ${holder.id}; REMOVE ${holder.id} first`);
    }
    if (!existing) {
      await this.#changeMembers({ type: "add", member });
      return;
    }
    const moved = !sameAddresses && member.incarnation !== undefined && member.incarnation === existing.incarnation;
    if (!sameAddresses && !moved) {
      throw new NodeError(
        "INVALID",
        `node ${member.id} is already a member with raft address ${existing.raftAddr} and client address ${existing.clientAddr}; REMOVE ${member.id} first to re-add it with new addresses`,
      );
    }
    if (moved) {
      this.#logger.info("member moved to new addresses", {
        target: member.id,
        raft_addr: member.raftAddr,
        client_addr: member.clientAddr,
        previous_raft_addr: existing.raftAddr,
      });
      await this.#changeMembers({ type: "update", member });
      return;
    }
    this.#logger.warn("member rejoined with a new data directory; replacing its membership", { target: member.id });
    await this.#changeMembers({ type: "remove", id: member.id });
    await this.#changeMembers({ type: "add", member });
  }

  async removeMember(id: NodeId): Promise<void> {
    this.#checkServing();
    if (!this.member(id)) throw new NodeError("INVALID", `node ${id} is not a member of this cluster`);
    await this.#changeMembers({ type: "remove", id });
  }

  /**
   * Confirms this node is still the leader and waits until it has applied
   * everything committed before the call (read-index, thesis 6.4). Resolves
   * with that index, which a follower can wait for before a local read.
   */
  readIndex(): Promise<number> {
    this.#checkServing();
    if (this.#core.role !== "leader") {
      return Promise.reject(this.#notLeaderError());
    }
    const id = this.#nextReadId++;
    const promise = new Promise<number>((resolve, reject) => {
      this.#reads.set(id, { deadline: Date.now() + this.#options.requestTimeoutMs, resolve, reject });
    });
    this.#core.readIndex(id);
    this.#schedule();
    return promise;
  }

  /**
   * Sends the commit index at once to followers that have not heard it yet.
   * Without this, they hear it with the next append, or
   * COMMIT_ANNOUNCE_DELAY_MS after the commit. A follower that forwarded the
   * write at `awaited` waits to apply it, so it also gets the commit index as
   * soon as it acknowledges that write, if it has not yet.
   */
  announceCommit(awaited = 0): void {
    if (this.#stopped || this.#failed || this.#core.role !== "leader") return;
    this.#core.announceCommit(awaited);
    this.#schedule();
  }

  /**
   * Hands leadership to `target`, or to the most up-to-date responsive voter
   * when null (thesis 3.10). Resolves with the new leader's id once this node
   * has stepped down and heard from it, usually the chosen one.
   */
  async transferLeadership(target: NodeId | null): Promise<NodeId> {
    this.#checkServing();
    if (this.#core.role !== "leader") throw this.#notLeaderError();
    if (target === this.id) return this.id;
    const inProgress = this.#core.transferTarget;
    if (inProgress !== null) throw new NodeError("BUSY", `a leadership transfer to ${inProgress} is under way; retry once it ends`);
    const transport = this.#transport;
    const chosen = target ?? this.#core.bestTransferTarget((id) => transport?.isConnected(id) ?? true);
    if (chosen === null) throw new NodeError("INVALID", "no other voter responded recently, so none can take over leadership");
    const problem = this.#core.transferLeadership(chosen);
    if (problem) throw new NodeError("INVALID", `cannot transfer leadership to ${chosen}: ${problem}`);
    this.#logger.info("leadership transfer started", { target: chosen });
    this.#schedule();

    const deadline = Date.now() + this.#options.tickMs * this.#options.raftConfig.electionTicks * 2;
    while (Date.now() < deadline) {
      await Bun.sleep(Math.max(1, Math.floor(this.#options.tickMs / 5)));
      const leaderId = this.#core.leaderId;
      if (this.#core.role !== "leader" && leaderId !== null && leaderId !== this.id) return leaderId;
    }
    if (this.#core.role === "leader") {
      throw new NodeError("TIMEOUT", `leadership transfer to ${chosen} did not finish in time; this node is still the leader`);
    }
    throw new NodeError("TIMEOUT", `this node stepped down, but no new leader was heard from after the transfer to ${chosen}`);
  }

  /** Returns whether this leader's lease lets it serve a read from its own map right now. */
  hasLease(): boolean {
    // After a pause the core's tick count lags real time until the next tick catches it up.
    if (performance.now() - this.#lastTickAt > this.#options.tickMs * 2) return false;
    return this.#core.hasLease();
  }

  get appliedIndex(): number {
    return this.#appliedIndex;
  }

  /** Resolves once this node has applied `index`, or fails with TIMEOUT. */
  waitForApplied(index: number): Promise<number> {
    if (index <= this.#appliedIndex) return Promise.resolve(index);
    this.#checkServing();
    return new Promise<number>((resolve, reject) => {
      const read: PendingRead = { deadline: Date.now() + this.#options.requestTimeoutMs, resolve, reject };
      this.#readsWaitingForApply.push({ index, read });
    });
  }

  // ------------------------------------------------------------- internals

  #checkServing(): void {
    if (this.#stopped) throw new NodeError("SHUTDOWN", "the node is shutting down");
  }

  /** Throws LOADING while the key-value state is missing; call before reading the store. */
  checkReadable(): void {
    if (this.#missingState) {
      throw new NodeError("LOADING", `node ${this.id} is restoring its data from a peer's snapshot; read from another member or retry shortly`);
    }
  }

  #notLeaderError(): NodeError {
    const leader = this.leader();
    if (leader) return new NodeError("NOTLEADER", `node ${this.id} is not the leader; the leader is ${leader.id} at ${leader.clientAddr}`);
    return new NodeError("NOLEADER", "no leader is known right now (election in progress or no quorum); retry shortly");
  }

  async #changeMembers(change: ConfChange): Promise<void> {
    // A change waits while an earlier one is uncommitted or the leader is new.
    const deadline = Date.now() + this.#options.requestTimeoutMs;
    for (;;) {
      const result = this.#core.proposeConfChange(change);
      if (result.ok || result.code !== "BUSY" || Date.now() >= deadline) {
        await new Promise((resolve, reject) => this.#track(result, { applied: resolve, failed: reject }));
        const target = change.type === "remove" ? change.id : change.member.id;
        this.#logger.info("membership change committed", { change: change.type, target });
        return;
      }
      await Bun.sleep(this.#options.tickMs);
      this.#checkServing();
    }
  }

  /** Registers `waiter` for the proposal that `result` names, or throws the error for a rejected proposal. */
  #track(result: ProposeResult, waiter: ProposalWaiter): void {
    if (!result.ok) {
      switch (result.code) {
        case "NOTLEADER":
          throw this.#notLeaderError();
        case "BUSY":
          throw new NodeError("BUSY", result.reason);
        case "INVALID":
          throw new NodeError("INVALID", result.reason);
        default: {
          const unreachable: never = result;
          throw new Error(`unknown propose result ${JSON.stringify(unreachable)}`);
        }
      }
    }
    const replaced = this.#proposals.get(result.index);
    this.#proposals.set(result.index, {
      term: result.term,
      deadline: Date.now() + this.#options.requestTimeoutMs,
      waiter,
      outcome: null,
    });
    this.#schedule();
    // An older proposal waiting on this index lost its slot when the log was truncated.
    if (replaced) this.#notify(replaced.waiter, notAppliedError());
  }

  /** Reports `outcome` to `waiter`. A waiter that throws is a bug of its own, so it is logged and the node goes on. */
  #notify(waiter: ProposalWaiter, outcome: ApplyResult | NodeError): void {
    try {
      if (outcome instanceof NodeError) waiter.failed(outcome);
      else waiter.applied(outcome);
    } catch (err) {
      this.#logger.error("proposal waiter failed", { error: errorMessage(err) });
    }
  }

  /** Reports the proposals applied by the ready batches just handled. */
  #notifySettled(): void {
    const settled = this.#settledProposals;
    if (settled.length === 0) return;
    this.#settledProposals = [];
    for (const proposal of settled) this.#notify(proposal.waiter, proposal.outcome!);
  }

  #onMessage(message: PeerMessage): void {
    if (this.#stopped || this.#failed) return;
    this.#lastContact.set(message.from, Date.now());
    // Only a leader sends these, and it sends them only to members.
    if (this.#toldRemoved && (message.type === "append" || message.type === "heartbeat" || message.type === "snapshot")) {
      this.#toldRemoved = false;
      this.#logger.info("a leader replicates to this node again, so it is a member", { leader: message.from, term: message.term });
    }
    if (message.type === "snapshotChunk") {
      this.#transfers.onChunk(message).catch((err) => this.#fail(err));
      return;
    }
    if (message.type === "snapshotChunkAck") {
      this.#transfers.onAck(message);
      return;
    }
    if (message.type === "snapshotRequest") {
      this.#serveSnapshotRequest(message.from, message.minIndex);
      return;
    }
    try {
      this.#core.step(message);
    } catch (err) {
      this.#fail(err);
      return;
    }
    this.#schedule();
  }

  #tick(): void {
    if (this.#stopped || this.#failed) return;
    // Timers stop while the process is paused (SIGSTOP, a long GC, a long
    // fsync), so the core's tick count falls behind real time. A lease
    // measured in those ticks would outlive the real one, so a pause ends it.
    // Missed ticks are not replayed: that would only turn a slow disk into
    // spurious elections, and a slower clock is the safe direction for
    // election timers.
    const now = performance.now();
    if (now - this.#lastTickAt > this.#options.tickMs * 2) this.#core.expireLease();
    this.#lastTickAt = now;
    try {
      this.#core.tick();
    } catch (err) {
      this.#fail(err);
      return;
    }
    this.#expireRequests();
    this.#transfers.tick();
    this.#requestMissingState();
    try {
      this.#persistPendingCommit();
    } catch (err) {
      this.#fail(err);
      return;
    }
    this.#schedule();
  }

  #schedule(): void {
    if (this.#processScheduled) return;
    this.#processScheduled = true;
    // setImmediate runs after pending socket reads, so every proposal that
    // arrives in this turn of the event loop joins the same SQLite transaction.
    setImmediate(() => this.#process());
  }

  #process(): void {
    this.#processScheduled = false;
    if (this.#stopped || this.#failed) return;
    try {
      while (this.#core.hasReady()) this.#handleReady(this.#core.ready());
    } catch (err) {
      this.#fail(err);
      return;
    } finally {
      // After the loop, so that a waiter's reply cannot start a command while a batch is half handled.
      this.#notifySettled();
    }
    if (this.#announceTimer === null && this.#core.commitAnnouncementDue) {
      this.#announceTimer = setTimeout(() => {
        this.#announceTimer = null;
        this.announceCommit();
      }, COMMIT_ANNOUNCE_DELAY_MS);
    }
    this.#observeChanges();
  }

  #handleReady(ready: Ready): void {
    const transport = this.#transport;
    const leaderMessages: Message[] = [];
    const otherMessages: Message[] = [];
    // A leader's messages may leave before this batch is written, but never
    // before the term they carry is durable.
    const termUnchanged =
      (ready.hardState === null || ready.hardState.term === this.#persistedTerm) &&
      (this.#writer === null || this.#writer.isDone(this.#electionStateWriteSeq));
    for (const message of ready.messages) {
      const replication = message.type === "append" || message.type === "heartbeat";
      if (replication && termUnchanged) leaderMessages.push(message);
      else otherMessages.push(message);
    }
    for (const message of leaderMessages) transport?.send(message);
    // Let the appends travel to the followers while this node's fsync runs.
    if (leaderMessages.length > 0) transport?.flush();

    if (ready.snapshot) this.#installSnapshot(ready);

    const wrote = this.#persist(ready);
    const writer = this.#writer;
    const waiting = writer !== null && !writer.isDone(this.#lastWriteSeq);
    if (waiting) {
      this.#awaitingWrite.push({ seq: this.#lastWriteSeq, ready: wrote ? ready : null, messages: otherMessages });
    } else {
      for (const message of otherMessages) transport?.send(message);
    }

    const missing = this.#missingState;
    if (missing) {
      // Nothing to apply to: the entries stay in the log until a peer's snapshot arrives.
      for (const entry of ready.committed) missing.committed = entry.index;
      if (missing.snapshot) this.#restoreMissingState();
    } else {
      for (const entry of ready.committed) this.#apply(entry);
    }
    for (const read of ready.reads) this.#onReadIndex(read.id, read.index);
    for (const id of ready.failedReads) {
      const read = this.#reads.get(id);
      this.#reads.delete(id);
      read?.reject(this.#notLeaderError());
    }
    this.#resolveAppliedReads();
    for (const to of ready.snapshotsToSend) this.#transfers.start(to);

    if (!(waiting && wrote)) this.#core.advance(ready);
    this.#maybeSnapshot();
  }

  /** Sends the messages and advances the batches that waited for writer batch `seq`. */
  #onWriteDone(seq: number, ms: number): void {
    this.#warnIfSlow(ms);
    if (this.#failed) return;
    try {
      while (this.#awaitingWrite.length > 0 && this.#awaitingWrite[0].seq <= seq) {
        const batch = this.#awaitingWrite.shift()!;
        for (const message of batch.messages) this.#transport?.send(message);
        if (batch.ready) this.#core.advance(batch.ready);
      }
    } catch (err) {
      this.#fail(err);
      return;
    }
    this.#schedule();
  }

  /**
   * Writes the batch's hard state and entries in one transaction. A change of
   * the commit index alone waits COMMIT_PERSIST_DELAY_MS after the last hard
   * state write, then goes with the next batch or the tick. Writing it with
   * every batch cost two more 4 KiB pages per commit: 6.4 pwrite calls per
   * sequential SET on each node instead of 2.4. A stored commit index that
   * lags is safe, because a restarted node applies the tail once the leader
   * sends the commit index again.
   */
  #persist(ready: Ready): boolean {
    let hardState = ready.hardState;
    const commitOnly =
      hardState !== null &&
      hardState.term === this.#persistedHardState.term &&
      hardState.votedFor === this.#persistedHardState.votedFor;
    if (commitOnly) {
      this.#unpersistedHardState = hardState;
      hardState = null;
    }
    const commitWaiting = hardState === null && this.#unpersistedHardState !== null && ready.entries.length > 0;
    if (commitWaiting && Date.now() - this.#lastHardStateWrite >= COMMIT_PERSIST_DELAY_MS) {
      hardState = this.#unpersistedHardState;
    }
    if (hardState === null && ready.entries.length === 0 && ready.truncateFrom === null) return false;

    const electionStateChanged =
      hardState !== null && (hardState.term !== this.#persistedHardState.term || hardState.votedFor !== this.#persistedHardState.votedFor);
    this.#write({ hardState, truncateFrom: ready.truncateFrom, entries: ready.entries });
    if (electionStateChanged) this.#electionStateWriteSeq = this.#lastWriteSeq;
    if (hardState) {
      this.#persistedHardState = hardState;
      this.#persistedTerm = hardState.term;
      this.#unpersistedHardState = null;
      this.#lastHardStateWrite = Date.now();
    }
    return true;
  }

  /**
   * Hands `write` to the log writer, or writes it at once before the node
   * has started. A follower, which waits for the write anyway, and a leader
   * with a single entry (no other request arrived this turn) let the writer
   * make it at once. A leader's larger batch goes to the thread, so that the
   * leader takes requests and acknowledgements during its fsync: writing
   * those at once too cost about 4% of throughput at 64 SETs in flight.
   */
  #write(write: StorageWrite): void {
    const inline = this.#core.role !== "leader" || write.entries.length <= 1;
    if (this.#writer) this.#lastWriteSeq = this.#writer.write(write, inline);
    else this.#storage.write(write);
  }

  /** Writes a commit index that #persist held back, once it has waited long enough. */
  #persistPendingCommit(): void {
    const pending = this.#unpersistedHardState;
    if (pending === null || Date.now() - this.#lastHardStateWrite < COMMIT_PERSIST_DELAY_MS) return;
    this.#write({ hardState: pending, truncateFrom: null, entries: [] });
    this.#persistedHardState = pending;
    this.#unpersistedHardState = null;
    this.#lastHardStateWrite = Date.now();
  }

  #apply(entry: Entry): void {
    let result: ApplyResult = "OK";
    if (entry.kind === "command") result = this.store.apply(entry.data);
    this.#appliedIndex = entry.index;
    this.#logBytesSinceSnapshot += entry.data.byteLength + 32;

    const proposal = this.#proposals.get(entry.index);
    if (!proposal) return;
    this.#proposals.delete(entry.index);
    proposal.outcome = proposal.term === entry.term ? result : notAppliedError();
    this.#settledProposals.push(proposal);
  }

  // ------------------------------------------------------------ snapshots

  /** Starts a snapshot when enough was applied since the last one. */
  #maybeSnapshot(): void {
    if (this.#snapshotInProgress || this.#missingState) return;
    const entries = this.#appliedIndex - this.#lastSnapshotIndex;
    const scale = this.#snapshotLimitScale;
    if (entries < this.#options.snapshotEntries * scale && this.#logBytesSinceSnapshot < this.#options.snapshotLogBytes * scale) return;
    if (entries <= 0) return;
    this.snapshot().catch((err) => this.#logger.error("snapshot failed", { error: errorMessage(err) }));
  }

  /**
   * Writes a snapshot of the map at the current applied index, then drops the
   * log up to the previous snapshot. Writes go on while the file is written.
   * Resolves with the new snapshot's record, or the newest one if nothing
   * was applied since.
   */
  snapshot(): Promise<SnapshotRecord> {
    this.#checkServing();
    this.checkReadable();
    if (this.#snapshotInProgress) return this.#snapshotInProgress;
    const newest = this.#snapshots.newest();
    if (newest && newest.meta.lastIndex === this.#appliedIndex) return Promise.resolve(newest);
    const index = this.#appliedIndex;
    const term = this.#core.log.term(index);
    if (term === undefined || index === 0) return Promise.reject(new NodeError("BUSY", "nothing to snapshot yet"));

    const meta: SnapshotMeta = { lastIndex: index, lastTerm: term, members: this.#core.membersAt(index) };
    const started = performance.now();
    this.#lastSnapshotIndex = index;
    this.#logBytesSinceSnapshot = 0;
    this.#snapshotLimitScale = drawSnapshotLimitScale();
    const work = this.#snapshots.take(meta, this.store, this.#clusterId ?? "").then(({ record, compactedTo }) => {
      // SQLite keeps the log back to the previous snapshot, in case this file
      // turns out damaged at the next start. Memory keeps only what follows
      // the new one, and a follower that needs older entries gets this snapshot.
      if (!this.#stopped) this.#core.compact(index);
      this.#logger.info("snapshot taken", {
        index,
        keys: this.store.size,
        bytes: record.bytes,
        ms: Math.round(performance.now() - started),
        log_compacted_to: compactedTo?.lastIndex ?? 0,
      });
      this.#emit("snapshot_taken", `${this.id} took a snapshot at index ${index} (${record.bytes} bytes)`, { index, bytes: record.bytes });
      return record;
    });
    this.#snapshotInProgress = work;
    work.finally(() => {
      this.#snapshotInProgress = null;
    }).catch(() => {});
    return work;
  }

  /** Returns the newest snapshot on disk, for backups. */
  newestSnapshot(): SnapshotRecord | null {
    return this.#snapshots.newest();
  }

  readSnapshot(record: SnapshotRecord, offset: number, length: number): Buffer {
    return this.#snapshots.read(record, offset, length);
  }

  /** Returns why an incoming snapshot ending at `meta` is not needed here, or null when it is. */
  #snapshotNotNeeded(meta: SnapshotMeta): string | null {
    const missing = this.#missingState;
    if (missing && !missing.snapshot) return null;
    if (this.#snapshots.newest()?.meta.lastIndex === meta.lastIndex) {
      return `the follower already stores a snapshot at index ${meta.lastIndex}`;
    }
    if (meta.lastIndex <= this.#appliedIndex) return `the follower already applied index ${this.#appliedIndex}`;
    return null;
  }

  #onSnapshotReceived(from: NodeId, term: number, received: LoadedSnapshot): void {
    if (this.#stopped || this.#failed) return;
    const missing = this.#missingState;
    const lastIndex = received.record.meta.lastIndex;
    // A snapshot this node's log already reaches past fills the missing state
    // without involving the core. One beyond the log is the leader's ordinary
    // InstallSnapshot, which the core handles and which also ends the missing state.
    if (missing && lastIndex <= this.#core.log.lastIndex()) {
      if (lastIndex < missing.coveredIndex) {
        this.#logger.warn("peer snapshot is older than the log; asking again", { peer: from, index: lastIndex, needed: missing.coveredIndex });
        rmSync(this.#snapshots.path(received.record.file), { force: true });
        return;
      }
      missing.snapshot = received;
      this.#restoreMissingState();
      return;
    }
    this.#receivedSnapshot = received;
    const message: Message = {
      type: "snapshot",
      from,
      to: this.id,
      term,
      snapshot: { meta: received.record.meta, data: new Uint8Array(0) },
    };
    try {
      this.#core.step(message);
    } catch (err) {
      this.#fail(err);
      return;
    }
    this.#process();
    // The core kept its log (it already had the entries): the file is not needed.
    if (this.#receivedSnapshot === received) {
      this.#receivedSnapshot = null;
      if (this.#snapshots.newest()?.file !== received.record.file) rmSync(this.#snapshots.path(received.record.file), { force: true });
    }
  }

  /**
   * While the key-value state is missing, requests the snapshot of the leader
   * (or, with no leader known, of another member), and hands leadership away if
   * this node won an election: it cannot apply, so it cannot acknowledge writes.
   */
  #requestMissingState(): void {
    const missing = this.#missingState;
    if (!missing || missing.snapshot) return;
    const now = Date.now();
    if (now - missing.requestedAt < MISSING_STATE_RETRY_MS) return;
    missing.requestedAt = now;
    if (this.#core.role === "leader") {
      const target = this.#core.bestTransferTarget();
      if (target !== null && this.#core.transferLeadership(target) === null) {
        this.#logger.info("handing leadership over while the data is missing", { target });
        this.#schedule();
      }
      return;
    }
    const leaderId = this.#core.leaderId;
    const others = this.#knownMembers().filter((member) => member.id !== this.id);
    const target = leaderId !== null && leaderId !== this.id ? leaderId : others[Math.floor(Math.random() * others.length)]?.id;
    if (target === undefined) return;
    this.#transport?.send({ type: "snapshotRequest", from: this.id, to: target, term: this.#core.term, minIndex: missing.coveredIndex });
  }

  /** Streams this node's newest snapshot to a member that lost its own, taking a new one if the newest is too old. */
  #serveSnapshotRequest(from: NodeId, minIndex: number): void {
    if (this.#missingState || this.#stopped) return;
    const newest = this.#snapshots.newest();
    if (newest && newest.meta.lastIndex >= minIndex) {
      this.#transfers.start(from);
      return;
    }
    // Behind the requester: it will ask again, and the leader can serve it.
    if (this.#appliedIndex < minIndex) return;
    this.snapshot()
      .then(() => this.#transfers.start(from))
      .catch((err) => this.#logger.error("could not take a snapshot for a peer", { peer: from, error: errorMessage(err) }));
  }

  /**
   * Installs a peer's snapshot as the missing key-value state once the
   * commit index reaches it, then applies the committed entries after it.
   */
  #restoreMissingState(): void {
    const missing = this.#missingState;
    const received = missing?.snapshot;
    if (!missing || !received) return;
    const snapshotIndex = received.record.meta.lastIndex;
    // Entries up to the snapshot's index are committed on the peer; wait until this node has that commit index too.
    if (snapshotIndex > missing.committed) return;
    this.store.replaceWith(received.store);
    this.#snapshots.record(received.record);
    this.#missingState = null;
    this.#appliedIndex = snapshotIndex;
    this.#lastSnapshotIndex = snapshotIndex;
    this.#logBytesSinceSnapshot = 0;
    for (let index = snapshotIndex + 1; index <= missing.committed; index++) {
      const entry = this.#core.log.entry(index);
      if (!entry) throw new Error(`entry ${index} after the peer's snapshot at ${snapshotIndex} is missing from the log`);
      this.#apply(entry);
    }
    this.#logger.info("data restored from a peer's snapshot", {
      index: snapshotIndex,
      keys: this.store.size,
      replayed: missing.committed - snapshotIndex,
    });
    this.#emit("snapshot_installed", `${this.id} restored its data from a peer's snapshot at index ${snapshotIndex}`, { index: snapshotIndex });
  }

  /** Replaces the map and the stored log with the snapshot the core accepted. */
  #installSnapshot(ready: Ready): void {
    const received = this.#receivedSnapshot;
    const meta = ready.snapshot!.meta;
    if (!received || received.record.meta.lastIndex !== meta.lastIndex) {
      throw new Error(`the core installed snapshot ${meta.lastIndex} but no verified body for it was received`);
    }
    this.#receivedSnapshot = null;
    if (this.#missingState) {
      this.#logger.info("data restored from the leader's snapshot", { index: meta.lastIndex });
      this.#missingState = null;
    }
    this.store.replaceWith(received.store);
    const hardState = ready.hardState ?? { term: this.#core.term, votedFor: null, commitIndex: meta.lastIndex };
    this.#snapshots.install(received.record, { ...hardState, commitIndex: Math.max(hardState.commitIndex, meta.lastIndex) });
    this.#appliedIndex = meta.lastIndex;
    this.#lastSnapshotIndex = meta.lastIndex;
    this.#logBytesSinceSnapshot = 0;
    this.#logger.info("installed snapshot from the leader", { index: meta.lastIndex, keys: this.store.size, bytes: received.record.bytes });
    this.#emit("snapshot_installed", `${this.id} installed the leader's snapshot at index ${meta.lastIndex}`, { index: meta.lastIndex });
  }

  #onReadIndex(id: number, index: number): void {
    const read = this.#reads.get(id);
    if (!read) return;
    this.#reads.delete(id);
    this.#readsWaitingForApply.push({ index, read });
  }

  #resolveAppliedReads(): void {
    if (this.#readsWaitingForApply.length === 0) return;
    const still: ReadWaitingForApply[] = [];
    for (const waiting of this.#readsWaitingForApply) {
      if (waiting.index <= this.#appliedIndex) waiting.read.resolve(waiting.index);
      else still.push(waiting);
    }
    this.#readsWaitingForApply = still;
  }

  /** Fails requests whose deadline passed; a timed-out write may still commit. */
  #expireRequests(): void {
    const now = Date.now();
    const expired: PendingProposal[] = [];
    for (const [index, proposal] of this.#proposals) {
      if (proposal.deadline > now) continue;
      this.#proposals.delete(index);
      expired.push(proposal);
    }
    for (const proposal of expired) {
      this.#notify(proposal.waiter, new NodeError("TIMEOUT", "the write timed out; its outcome is unknown and it may still be applied"));
    }
    for (const [id, read] of this.#reads) {
      if (read.deadline > now) continue;
      this.#reads.delete(id);
      read.reject(new NodeError("TIMEOUT", "the read timed out waiting for the leader to confirm its leadership"));
    }
    if (this.#readsWaitingForApply.some((waiting) => waiting.read.deadline <= now)) {
      this.#readsWaitingForApply = this.#readsWaitingForApply.filter((waiting) => {
        if (waiting.read.deadline > now) return true;
        waiting.read.reject(new NodeError("TIMEOUT", `the read timed out waiting for this node to apply index ${waiting.index}`));
        return false;
      });
    }
    if (this.#leaderWaiters.length > 0) {
      const leader = this.leader();
      // A removed node will not hear of a leader again, so its waiters end now.
      const removed = this.removed;
      this.#leaderWaiters = this.#leaderWaiters.filter((waiter) => {
        if (leader || removed || waiter.deadline <= now) {
          waiter.resolve(leader);
          return false;
        }
        return true;
      });
    }
  }

  /** Logs role, leader, term and membership changes, and re-points the transport. */
  #observeChanges(): void {
    const role = this.#core.role;
    const leaderId = this.#core.leaderId;
    const term = this.#core.term;
    if (role !== this.#lastRole || leaderId !== this.#lastLeader || term !== this.#lastTerm) {
      if (role === "leader" && this.#lastRole !== "leader") {
        this.#logger.info("became leader", { voters: this.#core.members.filter((member) => member.voter).length });
        this.#emit("role_changed", `${this.id} became leader in term ${term}`, { role, previous_role: this.#lastRole });
      } else if (role !== this.#lastRole && role !== "leader") {
        this.#logger.info(`became ${role}`, { leader: leaderId ?? "none", previous_role: this.#lastRole });
        const reason = role === "follower" ? "" : " and started an election";
        this.#emit("role_changed", `${this.id} became ${role}${reason} in term ${term}`, { role, previous_role: this.#lastRole });
      }
      if (leaderId !== this.#lastLeader) {
        if (role !== "leader") {
          this.#logger.info("leader changed", { leader: leaderId ?? "none", previous_leader: this.#lastLeader ?? "none" });
        }
        const text = leaderId === null ? `${this.id} has no leader; the last one was ${this.#lastLeader}` : `leader is now ${leaderId}`;
        this.#emit("leader_changed", text, { leader: leaderId, previous_leader: this.#lastLeader });
      }
      this.#lastRole = role;
      this.#lastLeader = leaderId;
      this.#lastTerm = term;
    }
    if (leaderId !== null && this.#leaderWaiters.length > 0) this.#expireRequests();
    const configCommitted = this.#core.commitIndex >= this.#core.configIndex;
    if (this.#core.configIndex !== this.#lastConfigIndex || configCommitted !== this.#lastConfigCommitted) {
      this.#lastConfigIndex = this.#core.configIndex;
      this.#lastConfigCommitted = configCommitted;
      this.#updatePeers(false);
    }
  }

  #updatePeers(force: boolean): void {
    const members = this.#knownMembers();
    // Until a change is committed, keep talking to members it removes: a
    // leader that removes itself still needs the acknowledgements that
    // commit its removal.
    const committedConfig = this.#core.members.length > 0 ? this.#core.membersAt(Math.max(this.#core.commitIndex, this.#core.log.snapshotIndex)) : [];
    const peers = new Map<NodeId, string>();
    for (const member of [...committedConfig, ...members]) {
      if (member.id !== this.id) peers.set(member.id, member.raftAddr);
    }
    // A snapshot from before this node's addition may leave out the leader
    // that sends it, which still needs this node's acknowledgements to send
    // the rest of the log. So a joining node keeps the members from its JOIN
    // reply until a configuration lists it.
    if (this.#awaitingOwnAddition()) {
      for (const member of this.#joinMembers.values()) {
        if (!peers.has(member.id)) peers.set(member.id, member.raftAddr);
      }
    }
    const key = members.map((member) => `${member.id}=${member.raftAddr}/${member.clientAddr}/${member.voter}`).join(",");
    const peersKey = [...peers].map(([id, addr]) => `${id}=${addr}`).join(",");
    if (!force && key === this.#lastPeers && peersKey === this.#lastPeerAddrs) return;
    // Members known only from the JOIN reply are not former peers: a snapshot
    // installed before this node's addition may leave them out for a moment.
    if (this.#core.members.length > 0) for (const id of peers.keys()) this.#formerPeers.add(id);
    this.#transport?.setRemovedNodes([...this.#formerPeers].filter((id) => !peers.has(id)));
    this.#lastPeerAddrs = peersKey;
    if (key !== this.#lastPeers && this.#lastPeers !== "") {
      const list = members.map((member) => `${member.id}${member.voter ? "" : "(learner)"}`).join(",");
      this.#logger.info("membership changed", { members: list });
      this.#emit("membership_changed", `members are now ${list}`, { members: list });
    }
    this.#lastPeers = key;
    const isMember = members.some((member) => member.id === this.id);
    if (isMember) this.#listedInConfig = true;
    // A joining node learns the members from the JOIN reply, or from a
    // snapshot older than its addition, before a configuration lists it. That
    // is no removal.
    if (!isMember && members.length > 0 && !this.#removedLogged && !this.#awaitingOwnAddition()) {
      this.#removedLogged = true;
      this.#logger.warn("this node is not in the cluster configuration; it will not campaign or serve writes", { rejoin: this.#rejoinHint() });
    }
    if (isMember) this.#removedLogged = false;
    this.#transport?.setPeers([...peers].map(([id, raftAddr]) => ({ id, raftAddr })));
  }

  #warnIfSlow(writeMs: number): void {
    // A stopped process (SIGSTOP, a paused VM) times its writes as slow too,
    // and the node cannot distinguish the two, so the message names both.
    if (writeMs > SLOW_WRITE_MS) this.#logger.warn("slow log write: a slow disk, or the process was paused", { ms: Math.round(writeMs) });
  }

  /** Tells the operator how to add this node back: the JOIN to send to a member. */
  #rejoinHint(): string {
    return `send JOIN ${this.id} ${this.#options.raftAddr} ${this.#options.clientAddr} to a member`;
  }

  /** Records that `peer` rejected this node as removed from the cluster. */
  #onToldRemoved(peer: NodeId): void {
    if (this.#toldRemoved || this.#stopped) return;
    // A node joining again under a removed id has no configuration yet, and
    // a peer that has not seen it added back still reports it removed.
    if (this.#core.members.length === 0 || this.#awaitingOwnAddition()) return;
    this.#toldRemoved = true;
    this.#expireRequests();
    this.#logger.warn("a peer reports that this node was removed from the cluster, so writes here fail with REMOVED", {
      peer,
      term: this.#core.term,
      rejoin: this.#rejoinHint(),
    });
  }

  #fail(err: unknown): void {
    if (this.#failed) return;
    this.#failed = true;
    const error = err instanceof Error ? err : new Error(String(err));
    const kind = err instanceof InvariantError ? "Raft invariant broken" : "storage or runtime failure";
    this.#logger.error(`${kind}; stopping the node`, { error: errorMessage(err) });
    this.#options.onFatal(error);
  }
}

function notAppliedError(): NodeError {
  return new NodeError("NOTAPPLIED", "the write was not applied: leadership changed before it committed; retry it");
}

function drawSnapshotLimitScale(): number {
  return 1 - SNAPSHOT_LIMIT_SPREAD + Math.random() * 2 * SNAPSHOT_LIMIT_SPREAD;
}
