// The Raft core: a deterministic state machine with no I/O, clock or
// randomness of its own. The runtime calls tick(), step(), propose() and the
// other inputs, then drains the resulting work with ready() and reports that
// it persisted the batch with advance(). Section numbers refer to Diego
// Ongaro's thesis "Consensus: Bridging Theory and Practice" (2014).

import { assert } from "./assert.ts";
import type { RaftConfig } from "./config.ts";
import { validateRaftConfig } from "./config.ts";
import { entrySize, RaftLog } from "./log.ts";
import type {
  AppendEntriesRequest,
  AppendEntriesResponse,
  ConfChange,
  Entry,
  HardState,
  HeartbeatRequest,
  HeartbeatResponse,
  Member,
  Message,
  NodeId,
  ProposeResult,
  ReadState,
  Ready,
  Role,
  Snapshot,
  SnapshotMeta,
  VoteRequest,
  VoteResponse,
} from "./types.ts";

/** Replication state of one peer, kept by the leader. */
interface Progress {
  /** Highest index known to match the leader's log. */
  match: number;
  /** Next index to send; always > match. */
  next: number;
  /**
   * probe: one append at a time until the match point is found; replicate:
   * pipelined; snapshot: the runtime is streaming a snapshot, appends wait.
   */
  state: "probe" | "replicate" | "snapshot";
  /** In snapshot state, the lowest snapshot index that brings the peer back into the log. */
  pendingSnapshot: number;
  /** In probe state, whether an append is outstanding. */
  probeSent: boolean;
  /** Appends sent and not yet acknowledged, oldest first: last index and bytes of entries. */
  inflight: Array<{ last: number; bytes: number }>;
  /** Sum of `bytes` over `inflight`. */
  inflightBytes: number;
  /** Highest commit index the peer can have learned from this leader's appends and heartbeats. */
  commitSent: number;
  /** Whether any response from the peer arrived since the last quorum check. */
  recentActive: boolean;
  /** Tick of the peer's latest response, or the tick this entry was created when none arrived yet. */
  lastResponseAt: number;
  /** Highest read-index round the peer acknowledged. */
  readRound: number;
}

interface PendingRead {
  id: number;
  index: number;
  round: number;
}

export interface RaftStatus {
  id: NodeId;
  role: Role;
  term: number;
  votedFor: NodeId | null;
  leaderId: NodeId | null;
  commitIndex: number;
  appliedIndex: number;
  lastIndex: number;
  lastTerm: number;
  snapshotIndex: number;
  members: Member[];
  /** Per-peer replication state; only filled on the leader. */
  progress: Record<NodeId, { match: number; next: number; state: string; recentActive: boolean }>;
  transferTarget: NodeId | null;
}

export interface RaftCoreOptions {
  id: NodeId;
  config: RaftConfig;
  /** Seeded source of numbers in [0, 1); the core never calls Math.random. */
  random: () => number;
  hardState: HardState;
  snapshot: SnapshotMeta | null;
  /** Every persisted entry after the snapshot, in order. */
  entries: Entry[];
  /** Index the state machine already reflects (the snapshot's index after a restart). */
  appliedIndex: number;
}

function clearInflight(pr: Progress): void {
  pr.inflight = [];
  pr.inflightBytes = 0;
}

export class RaftCore {
  readonly id: NodeId;
  readonly #config: RaftConfig;
  readonly #random: () => number;
  readonly log: RaftLog;

  #term: number;
  #votedFor: NodeId | null;
  #role: Role = "follower";
  #leaderId: NodeId | null = null;
  /** Highest index known committed; never decreases, never above lastIndex. */
  #commitIndex: number;
  /** Highest index handed to the runtime for applying. */
  #appliedIndex: number;
  #persisted: HardState;

  #members: Member[] = [];
  /** Index of the entry (or snapshot) the current configuration comes from. */
  #configIndex = 0;

  #electionElapsed = 0;
  #heartbeatElapsed = 0;
  #randomizedElectionTicks = 0;
  #votes = new Map<NodeId, boolean>();
  #progress = new Map<NodeId, Progress>();
  #transferTarget: NodeId | null = null;
  #transferElapsed = 0;
  #broadcastPending = false;
  /**
   * Highest index that a follower waits to hear committed, from
   * announceCommit(). Until a follower has heard it, the leader sends it
   * the commit index at once after each acknowledgement that leaves it
   * behind.
   */
  #awaitedCommit = 0;

  /** Number of heartbeat rounds sent. Each response echoes the round it replies to. */
  #readRound = 0;
  /** Set when reads wait for a heartbeat round that ready() has not sent yet. */
  #readRoundPending = false;
  /** Logical time, in ticks since start. */
  #ticks = 0;
  /** Tick at which each unconfirmed heartbeat round was sent, for leader leases. */
  #roundSentAt = new Map<number, number>();
  #pendingReads: PendingRead[] = [];
  #readsBeforeCommit: number[] = [];
  #readyReads: ReadState[] = [];
  #failedReads: number[] = [];

  #messages: Message[] = [];
  #pendingSnapshot: Snapshot | null = null;
  #snapshotsToSend: NodeId[] = [];

  constructor(options: RaftCoreOptions) {
    const problem = validateRaftConfig(options.config);
    if (problem) throw new Error(`invalid Raft config: ${problem}`);
    this.id = options.id;
    this.#config = options.config;
    this.#random = options.random;
    this.log = new RaftLog(options.snapshot, options.entries);
    this.#term = options.hardState.term;
    this.#votedFor = options.hardState.votedFor;
    this.#commitIndex = Math.min(options.hardState.commitIndex, this.log.lastIndex());
    this.#appliedIndex = options.appliedIndex;
    // Only committed entries are ever applied, and the persisted commit index
    // may lag (it is written lazily), so the applied index raises it.
    assert(
      this.#appliedIndex <= this.log.lastIndex(),
      `applied index ${this.#appliedIndex} at start is beyond the last log index ${this.log.lastIndex()}`,
    );
    this.#commitIndex = Math.max(this.#commitIndex, this.#appliedIndex);
    this.#persisted = { ...options.hardState };
    this.#snapshotMembers = options.snapshot?.members ?? [];
    this.#loadConfig(this.#snapshotMembers);
    this.#resetElectionTimer();
  }

  // ---------------------------------------------------------------- queries

  get term(): number {
    return this.#term;
  }

  get role(): Role {
    return this.#role;
  }

  get leaderId(): NodeId | null {
    return this.#leaderId;
  }

  get commitIndex(): number {
    return this.#commitIndex;
  }

  get members(): readonly Member[] {
    return this.#members;
  }

  /** Index of the entry the current configuration comes from; it changes with every membership change. */
  get configIndex(): number {
    return this.#configIndex;
  }

  isVoter(id: NodeId = this.id): boolean {
    return this.#members.some((member) => member.id === id && member.voter);
  }

  isMember(id: NodeId = this.id): boolean {
    return this.#members.some((member) => member.id === id);
  }

  /** Returns the configuration in force at `index`, which must not be below the compaction point. */
  membersAt(index: number): Member[] {
    assert(index >= this.log.snapshotIndex, `configuration at ${index} is below the compaction point ${this.log.snapshotIndex}`);
    const entry = this.log.lastConfigEntry(index);
    return (entry?.members ?? this.#snapshotMembers).map((member) => ({ ...member }));
  }

  status(): RaftStatus {
    const progress: RaftStatus["progress"] = {};
    for (const [id, pr] of this.#progress) {
      progress[id] = { match: pr.match, next: pr.next, state: pr.state, recentActive: pr.recentActive };
    }
    return {
      id: this.id,
      role: this.#role,
      term: this.#term,
      votedFor: this.#votedFor,
      leaderId: this.#leaderId,
      commitIndex: this.#commitIndex,
      appliedIndex: this.#appliedIndex,
      lastIndex: this.log.lastIndex(),
      lastTerm: this.log.lastTerm(),
      snapshotIndex: this.log.snapshotIndex,
      members: this.#members.map((member) => ({ ...member })),
      progress,
      transferTarget: this.#transferTarget,
    };
  }

  // ----------------------------------------------------------------- inputs

  /** Advances the logical clock by one step. */
  tick(): void {
    this.#ticks++;
    if (this.#role === "leader") {
      this.#tickLeader();
      return;
    }
    this.#electionElapsed++;
    if (this.#electionElapsed >= this.#randomizedElectionTicks && this.#mayCampaign()) {
      this.#campaign(this.#config.preVote ? "pre" : "real", false);
    }
  }

  /**
   * Returns whether this node may start an election. A node that its newest
   * configuration leaves out still campaigns while that configuration is
   * uncommitted and the one before it lists the node as a voter. The voters
   * of the older configuration may need it to elect anyone, and it refuses
   * them its vote while their logs lack the newer entry (thesis 4.2.2,
   * figure 4.6). #countVotes still counts only the newest configuration's
   * voters, so its own vote does not count.
   */
  #mayCampaign(): boolean {
    if (this.isVoter()) return true;
    if (this.#configIndex <= this.#commitIndex) return false;
    const previous = this.log.lastConfigEntry(this.#configIndex - 1)?.members ?? this.#snapshotMembers;
    return previous.some((member) => member.id === this.id && member.voter);
  }

  /** Feeds one message received from a peer. */
  step(message: Message): void {
    if (message.to !== this.id) return;

    if (message.term > this.#term) {
      if (!this.#acceptHigherTerm(message)) return;
    } else if (message.term < this.#term) {
      this.#answerStaleTerm(message);
      return;
    }

    switch (message.type) {
      case "append":
        this.#handleAppend(message);
        return;
      case "appendResponse":
        this.#handleAppendResponse(message);
        return;
      case "vote":
        this.#handleVote(message);
        return;
      case "voteResponse":
        this.#handleVoteResponse(message);
        return;
      case "snapshot":
        this.#handleSnapshot(message.from, message.snapshot);
        return;
      case "timeoutNow":
        if (this.#mayCampaign()) this.#campaign("real", true);
        return;
      case "heartbeat":
        this.#handleHeartbeat(message);
        return;
      case "heartbeatResponse":
        this.#handleHeartbeatResponse(message);
        return;
      default: {
        const unreachable: never = message;
        throw new Error(`unknown message ${JSON.stringify(unreachable)}`);
      }
    }
  }

  /** Appends a command to the leader's log; the runtime tracks it by (index, term). */
  propose(data: Uint8Array): ProposeResult {
    if (this.#role !== "leader") return { ok: false, code: "NOTLEADER", leaderId: this.#leaderId };
    // During a transfer the target is about to lead; callers retry there.
    if (this.#transferTarget !== null) return { ok: false, code: "NOTLEADER", leaderId: this.#transferTarget };
    const entry = this.#appendOwn("command", data);
    return { ok: true, index: entry.index, term: entry.term };
  }

  /**
   * Proposes a single-server membership change (thesis 4.1). Only one change
   * may be uncommitted at a time, and only after the leader has committed an
   * entry of its own term (the fix for the bug described in 4.1's addendum).
   */
  proposeConfChange(change: ConfChange): ProposeResult {
    if (this.#role !== "leader") return { ok: false, code: "NOTLEADER", leaderId: this.#leaderId };
    // During a transfer the target is about to lead; callers retry there.
    if (this.#transferTarget !== null) return { ok: false, code: "NOTLEADER", leaderId: this.#transferTarget };
    if (this.#configIndex > this.#commitIndex) {
      return { ok: false, code: "BUSY", reason: `membership change at index ${this.#configIndex} is not committed yet` };
    }
    if (this.log.term(this.#commitIndex) !== this.#term) {
      return { ok: false, code: "BUSY", reason: "the new leader has not committed an entry of its term yet" };
    }

    let members: Member[];
    switch (change.type) {
      case "add":
        if (this.isMember(change.member.id)) {
          return { ok: false, code: "INVALID", reason: `node ${change.member.id} is already a member` };
        }
        members = [...this.#members, { ...change.member, voter: false }];
        break;
      case "update":
        if (!this.isMember(change.member.id)) {
          return { ok: false, code: "INVALID", reason: `node ${change.member.id} is not a member` };
        }
        // The same voters either way, so quorums of the old and new configuration are identical.
        members = this.#members.map((member) => (member.id === change.member.id ? { ...change.member, voter: member.voter } : member));
        break;
      case "remove":
        if (!this.isMember(change.id)) return { ok: false, code: "INVALID", reason: `node ${change.id} is not a member` };
        members = this.#members.filter((member) => member.id !== change.id);
        if (!members.some((member) => member.voter)) {
          return { ok: false, code: "INVALID", reason: `removing ${change.id} would leave no voter` };
        }
        break;
    }
    const entry = this.#appendOwn("config", new Uint8Array(0), members);
    return { ok: true, index: entry.index, term: entry.term };
  }

  /**
   * Requests a linearizable read point (thesis 6.4). The read becomes a
   * ReadState in a later ready() once a heartbeat round confirms leadership,
   * or lands in `failedReads` if this node is not or stops being leader.
   */
  readIndex(id: number): void {
    if (this.#role !== "leader") {
      this.#failedReads.push(id);
      return;
    }
    if (this.log.term(this.#commitIndex) !== this.#term) {
      this.#readsBeforeCommit.push(id);
      return;
    }
    this.#startRead(id);
  }

  /** The voter a leadership transfer is under way to, or null. */
  get transferTarget(): NodeId | null {
    return this.#transferTarget;
  }

  /** Hands leadership to `target` once its log is caught up (thesis 3.10). */
  transferLeadership(target: NodeId): string | null {
    if (this.#role !== "leader") return "this node is not the leader";
    if (target === this.id) return "this node is already the leader";
    if (!this.isMember(target)) return `node ${target} is not a member of this cluster`;
    if (!this.isVoter(target)) return `node ${target} is not a voter`;
    this.#transferTarget = target;
    this.#transferElapsed = 0;
    const pr = this.#progress.get(target);
    if (pr && pr.match === this.log.lastIndex()) {
      this.#send({ type: "timeoutNow", from: this.id, to: target, term: this.#term });
    } else {
      this.#sendAppend(target, true);
    }
    return null;
  }

  /**
   * Picks the most up-to-date voter other than this node among those that
   * responded within the last three heartbeat intervals, or returns null when
   * there is none. A peer that stopped responding would never take over.
   * `reachable` lets the caller rule out peers that are down, such as one
   * whose connection just closed.
   */
  bestTransferTarget(reachable: (id: NodeId) => boolean = () => true): NodeId | null {
    let best: NodeId | null = null;
    let bestMatch = -1;
    const respondedSince = this.#ticks - 3 * this.#config.heartbeatTicks;
    for (const [id, pr] of this.#progress) {
      if (id === this.id || !this.isVoter(id) || pr.lastResponseAt < respondedSince || !reachable(id)) continue;
      if (pr.match > bestMatch) {
        best = id;
        bestMatch = pr.match;
      }
    }
    return best;
  }

  /**
   * Reports the end of a snapshot transfer to `to`. On failure the peer goes
   * back to probing, which requests a snapshot again on the next heartbeat.
   */
  reportSnapshot(to: NodeId, ok: boolean): void {
    const pr = this.#progress.get(to);
    if (!pr || pr.state !== "snapshot" || ok) return;
    pr.state = "probe";
    pr.probeSent = false;
  }

  /** Folds the log up to `index` into a snapshot the runtime has durably written. */
  compact(index: number): void {
    assert(index <= this.#appliedIndex, `compact at ${index} above applied index ${this.#appliedIndex}`);
    const term = this.log.term(index);
    if (term === undefined || index <= this.log.snapshotIndex) return;
    this.#snapshotMembers = this.membersAt(index);
    this.log.compact(index, term);
  }

  // ------------------------------------------------------------ ready cycle

  hasReady(): boolean {
    return (
      this.#broadcastPending ||
      this.#readRoundPending ||
      this.#messages.length > 0 ||
      this.#hardStateChanged() ||
      this.log.hasEntriesToHandOut() ||
      this.log.pendingTruncateFrom !== null ||
      this.#pendingSnapshot !== null ||
      this.#appliedIndex < this.#commitIndex ||
      this.#readyReads.length > 0 ||
      this.#failedReads.length > 0 ||
      this.#snapshotsToSend.length > 0
    );
  }

  /** Collects the work produced since the previous call. Call advance() once it is persisted. */
  ready(): Ready {
    if (this.#broadcastPending && this.#role === "leader") {
      for (const id of this.#progress.keys()) {
        if (id !== this.id) this.#sendAppend(id, false);
      }
    }
    this.#broadcastPending = false;
    if (this.#readRoundPending && this.#role === "leader") this.#broadcastHeartbeat();
    this.#readRoundPending = false;

    const hardState = this.#hardStateChanged() ? this.#hardState() : null;
    const committedTo = Math.min(this.#commitIndex, this.log.lastIndex());
    const committed = this.#appliedIndex < committedTo ? this.log.slice(this.#appliedIndex + 1, committedTo) : [];
    const ready: Ready = {
      hardState,
      truncateFrom: this.log.pendingTruncateFrom,
      entries: this.log.unstableEntries(),
      snapshot: this.#pendingSnapshot,
      messages: this.#messages,
      committed,
      reads: this.#readyReads,
      failedReads: this.#failedReads,
      snapshotsToSend: this.#snapshotsToSend,
    };

    if (hardState) this.#persisted = hardState;
    if (committed.length > 0) this.#appliedIndex = committed[committed.length - 1].index;
    this.log.pendingTruncateFrom = null;
    this.#pendingSnapshot = null;
    this.#messages = [];
    this.#readyReads = [];
    this.#failedReads = [];
    this.#snapshotsToSend = [];
    return ready;
  }

  /** Records that the runtime persisted `ready`; the leader may now count its own copy. */
  advance(ready: Ready): void {
    if (ready.entries.length > 0) {
      const last = ready.entries[ready.entries.length - 1];
      // Entries may have been truncated again since ready(): only count what is still there.
      if (this.log.term(last.index) === last.term) {
        this.log.stableIndex = Math.max(this.log.stableIndex, last.index);
      }
    }
    if (this.#role === "leader") {
      const self = this.#progress.get(this.id);
      if (self) self.match = this.log.stableIndex;
      this.#maybeCommit();
    }
  }

  // ----------------------------------------------------------------- leader

  #tickLeader(): void {
    this.#heartbeatElapsed++;
    this.#electionElapsed++;

    if (this.#electionElapsed >= this.#config.electionTicks) {
      this.#electionElapsed = 0;
      if (this.#config.checkQuorum && !this.#quorumActive()) {
        this.#becomeFollower(this.#term, null);
        return;
      }
    }

    if (this.#transferTarget !== null) {
      this.#transferElapsed++;
      if (this.#transferElapsed >= this.#config.electionTicks) this.#transferTarget = null;
    }

    if (this.#heartbeatElapsed >= this.#config.heartbeatTicks) {
      this.#heartbeatElapsed = 0;
      this.#broadcastHeartbeat();
    }

    this.#maybePromoteLearner();
  }

  #quorumActive(): boolean {
    let active = 0;
    for (const member of this.#members) {
      if (!member.voter) continue;
      const pr = this.#progress.get(member.id);
      if (member.id === this.id || pr?.recentActive) active++;
      if (pr) pr.recentActive = false;
    }
    return active >= this.#quorum();
  }

  /** Promotes the first learner whose log has caught up to the commit index. */
  #maybePromoteLearner(): void {
    if (this.#configIndex > this.#commitIndex || this.log.term(this.#commitIndex) !== this.#term) return;
    const learner = this.#members.find((member) => {
      if (member.voter) return false;
      const pr = this.#progress.get(member.id);
      return pr !== undefined && pr.match >= this.#commitIndex;
    });
    if (!learner) return;
    const members = this.#members.map((member) => (member.id === learner.id ? { ...member, voter: true } : member));
    this.#appendOwn("config", new Uint8Array(0), members);
  }

  #appendOwn(kind: Entry["kind"], data: Uint8Array, members?: Member[]): Entry {
    const entry: Entry = { index: this.log.lastIndex() + 1, term: this.#term, kind, data };
    if (members) entry.members = members;
    this.log.append(entry);
    if (kind === "config") this.#applyConfigEntry(entry);
    this.#broadcastPending = true;
    return entry;
  }

  #broadcastHeartbeat(): void {
    this.#readRound++;
    this.#roundSentAt.set(this.#readRound, this.#ticks);
    for (const id of this.#progress.keys()) {
      if (id === this.id) continue;
      this.#sendHeartbeat(id);
    }
  }

  #sendHeartbeat(to: NodeId, quiet = false): void {
    const pr = this.#progress.get(to);
    if (!pr) return;
    const message: HeartbeatRequest = {
      type: "heartbeat",
      from: this.id,
      to,
      term: this.#term,
      // A follower must not learn a commit index beyond what it is known to hold.
      commitIndex: Math.min(pr.match, this.#commitIndex),
      readRound: this.#readRound,
    };
    if (quiet) message.quiet = true;
    pr.commitSent = Math.max(pr.commitSent, message.commitIndex);
    this.#send(message);
  }

  /** Returns whether `pr` has as many appends or bytes in flight as the configuration allows. */
  #windowFull(pr: Progress): boolean {
    return pr.inflight.length >= this.#config.maxInflightAppends || (pr.inflight.length > 0 && pr.inflightBytes >= this.#config.maxInflightBytes);
  }

  /** Sends the next batch of entries to `to`, respecting probe and in-flight limits. */
  #sendAppend(to: NodeId, sendIfEmpty: boolean): void {
    const pr = this.#progress.get(to);
    if (!pr) return;
    if (pr.state === "snapshot") return;
    if (pr.state === "probe" && pr.probeSent) return;
    if (pr.state === "replicate" && this.#windowFull(pr)) return;

    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined) {
      // The entries this peer needs were compacted away: it needs a snapshot.
      pr.state = "snapshot";
      pr.pendingSnapshot = this.log.snapshotIndex;
      clearInflight(pr);
      this.#snapshotsToSend.push(to);
      return;
    }

    const entries = this.log.slice(pr.next, this.log.lastIndex(), this.#config.maxAppendBytes);
    if (entries.length === 0 && !sendIfEmpty) return;

    const message: AppendEntriesRequest = {
      type: "append",
      from: this.id,
      to,
      term: this.#term,
      prevIndex,
      prevTerm,
      entries,
      commitIndex: this.#commitIndex,
    };
    pr.commitSent = Math.max(pr.commitSent, Math.min(this.#commitIndex, prevIndex + entries.length));
    this.#send(message);

    if (pr.state === "probe") {
      pr.probeSent = true;
    } else if (entries.length > 0) {
      const last = entries[entries.length - 1].index;
      let bytes = 0;
      for (const entry of entries) bytes += entrySize(entry);
      pr.next = last + 1;
      pr.inflight.push({ last, bytes });
      pr.inflightBytes += bytes;
      // Keep the pipeline full: send the rest while the window allows.
      if (pr.next <= this.log.lastIndex()) this.#sendAppend(to, false);
    }
  }

  #handleAppendResponse(message: AppendEntriesResponse): void {
    if (this.#role !== "leader") return;
    const pr = this.#progress.get(message.from);
    if (!pr) return;
    pr.recentActive = true;
    pr.lastResponseAt = this.#ticks;

    if (pr.state === "snapshot") {
      // Only an acknowledgement at or past the snapshot ends the transfer.
      if (!message.success || message.matchIndex < pr.pendingSnapshot) return;
      pr.state = "probe";
      pr.probeSent = false;
      pr.next = message.matchIndex + 1;
    }

    if (!message.success) {
      if (message.lastIndex < pr.match) {
        // The follower's log ends below what it acknowledged: it lost entries
        // (a torn write or a damaged disk). Replicate them again instead of
        // waiting for an acknowledgement that can never come. A late
        // rejection of an old probe lands here too, and costs a resend.
        pr.match = message.lastIndex;
      } else if (message.matchIndex < pr.match) {
        return; // stale rejection of an earlier probe
      }
      // The follower's log diverges before pr.next: back off to its hint.
      pr.state = "probe";
      pr.probeSent = false;
      clearInflight(pr);
      pr.next = Math.max(pr.match + 1, Math.min(pr.next - 1, message.matchIndex + 1, message.lastIndex + 1));
      this.#sendAppend(message.from, true);
      return;
    }

    if (message.matchIndex > pr.match) {
      pr.match = message.matchIndex;
      this.#maybeCommit();
    }
    pr.next = Math.max(pr.next, pr.match + 1);
    while (pr.inflight.length > 0 && pr.inflight[0].last <= message.matchIndex) pr.inflightBytes -= pr.inflight.shift()!.bytes;
    if (pr.state === "probe") {
      pr.state = "replicate";
      pr.probeSent = false;
      clearInflight(pr);
      pr.next = pr.match + 1;
    }

    if (this.#transferTarget === message.from && pr.match === this.log.lastIndex()) {
      this.#send({ type: "timeoutNow", from: this.id, to: message.from, term: this.#term });
    }
    if (pr.next <= this.log.lastIndex()) this.#sendAppend(message.from, false);
    if (pr.commitSent < this.#awaitedCommit && Math.min(pr.match, this.#commitIndex) > pr.commitSent) {
      this.#sendHeartbeat(message.from, true);
    }
  }

  #handleHeartbeatResponse(message: HeartbeatResponse): void {
    if (this.#role !== "leader") return;
    const pr = this.#progress.get(message.from);
    if (!pr) return;
    pr.recentActive = true;
    pr.lastResponseAt = this.#ticks;
    pr.readRound = Math.max(pr.readRound, Math.min(message.readRound, this.#readRound));

    if (pr.match < this.log.lastIndex()) {
      // Lost appends leave a probe waiting or the pipeline full: retry from here.
      if (pr.state === "probe") pr.probeSent = false;
      else if (this.#windowFull(pr)) pr.inflightBytes -= pr.inflight.shift()!.bytes;
      this.#sendAppend(message.from, true);
    }
    this.#releaseReads();
  }

  /** Commits the highest index stored by a quorum of voters, if it is from this term (thesis 3.6.2). */
  #maybeCommit(): void {
    const matches: number[] = [];
    for (const member of this.#members) {
      if (!member.voter) continue;
      const pr = this.#progress.get(member.id);
      matches.push(pr ? pr.match : 0);
    }
    if (matches.length === 0) return;
    matches.sort((a, b) => b - a);
    const candidate = matches[this.#quorum() - 1];
    if (candidate <= this.#commitIndex) return;
    if (this.log.term(candidate) !== this.#term) return;

    this.#commitIndex = candidate;
    this.#onCommitAdvance();
  }

  /**
   * True when this leader has a follower that stored entries committed
   * after the last commit index it heard. Appends and periodic heartbeats carry
   * the commit index, so the runtime calls announceCommit() for it only when
   * neither came soon, or when a follower waits for the commit.
   */
  get commitAnnouncementDue(): boolean {
    if (this.#role !== "leader") return false;
    for (const [id, pr] of this.#progress) {
      if (id !== this.id && Math.min(pr.match, this.#commitIndex) > pr.commitSent) return true;
    }
    return false;
  }

  /**
   * Sends a quiet heartbeat, which gets no response, to every follower that
   * stored entries committed after the last commit index it heard, so that
   * local reads there catch up. With `awaited`, the index of a write that a
   * follower forwarded and waits to apply, a follower whose acknowledgement
   * of that index is still on its way gets the commit index as soon as it
   * arrives, without another call.
   */
  announceCommit(awaited = 0): void {
    if (this.#role !== "leader") return;
    this.#awaitedCommit = Math.max(this.#awaitedCommit, Math.min(awaited, this.#commitIndex));
    for (const [id, pr] of this.#progress) {
      if (id !== this.id && Math.min(pr.match, this.#commitIndex) > pr.commitSent) this.#sendHeartbeat(id, true);
    }
  }

  #onCommitAdvance(): void {
    if (this.#readsBeforeCommit.length > 0 && this.log.term(this.#commitIndex) === this.#term) {
      const waiting = this.#readsBeforeCommit;
      this.#readsBeforeCommit = [];
      for (const id of waiting) this.#startRead(id);
    }
    // A leader that committed its own removal hands over and steps down (thesis 4.2.2).
    if (this.#role === "leader" && !this.isMember() && this.#configIndex <= this.#commitIndex) {
      const target = this.bestTransferTarget();
      if (target) this.#send({ type: "timeoutNow", from: this.id, to: target, term: this.#term });
      this.#becomeFollower(this.#term, null);
    }
  }

  #startRead(id: number): void {
    if (this.#quorum() === 1 && this.isVoter()) {
      this.#readyReads.push({ id, index: this.#commitIndex });
      return;
    }
    // The next heartbeat round confirms this read once a quorum responds to it.
    // Every read that arrives before the next ready() shares that round.
    this.#pendingReads.push({ id, index: this.#commitIndex, round: this.#readRound + 1 });
    this.#readRoundPending = true;
  }

  /** Returns the newest heartbeat round that a quorum of voters (counting this leader) answered. */
  #confirmedRound(): number {
    const rounds: number[] = [];
    for (const member of this.#members) {
      if (!member.voter) continue;
      if (member.id === this.id) rounds.push(this.#readRound);
      else rounds.push(this.#progress.get(member.id)?.readRound ?? 0);
    }
    rounds.sort((a, b) => b - a);
    return rounds[this.#quorum() - 1] ?? 0;
  }

  /**
   * Whether this leader may serve reads from its own state without a
   * heartbeat round (thesis 6.4.1). A quorum answered a heartbeat sent at
   * tick T, and each of them will refuse votes until a full election timeout
   * after receiving it, so no other leader can exist before T plus that
   * timeout. The lease ends earlier to absorb a tick of rounding at each end
   * and 10% clock drift. A follower that crashes and restarts loses track
   * of its leader and may vote earlier, which voids the guarantee.
   */
  hasLease(): boolean {
    if (this.#role !== "leader" || this.#transferTarget !== null) return false;
    if (!this.#config.checkQuorum || this.log.term(this.#commitIndex) !== this.#term) return false;
    // A lease read comes from the state machine at once, so the state
    // machine must hold every committed entry, including writes that a
    // previous leader acknowledged. An entry that step() just committed
    // reaches the runtime only with the next ready(), so until then there
    // is no lease.
    if (this.#appliedIndex < this.#commitIndex) return false;
    if (this.#quorum() === 1 && this.isVoter()) return true;
    const confirmed = this.#confirmedRound();
    const sentAt = this.#roundSentAt.get(confirmed);
    if (sentAt === undefined) return false;
    const leaseTicks = Math.floor(0.9 * (this.#config.electionTicks - 1)) - 1;
    return this.#ticks - sentAt < leaseTicks;
  }

  /**
   * Ends the current lease: the runtime calls this when its clock jumped
   * (the process was paused), so ticks no longer bound the real time since
   * the last confirmed heartbeat round. A later round starts a new lease.
   */
  expireLease(): void {
    this.#roundSentAt.clear();
  }

  /** Serves every pending read whose heartbeat round a quorum of voters acknowledged. */
  #releaseReads(): void {
    const confirmed = this.#confirmedRound();
    // Keep the send tick of the confirmed round for the lease; older ones are no longer needed.
    for (const round of this.#roundSentAt.keys()) {
      if (round >= confirmed) break;
      this.#roundSentAt.delete(round);
    }
    if (this.#pendingReads.length === 0) return;
    while (this.#pendingReads.length > 0 && this.#pendingReads[0].round <= confirmed) {
      const read = this.#pendingReads.shift()!;
      this.#readyReads.push({ id: read.id, index: read.index });
    }
  }

  // --------------------------------------------------------------- follower

  #handleAppend(message: AppendEntriesRequest): void {
    this.#becomeFollowerOf(message.from);
    const reply = (success: boolean, matchIndex: number) => {
      const response: AppendEntriesResponse = {
        type: "appendResponse",
        from: this.id,
        to: message.from,
        term: this.#term,
        success,
        matchIndex,
        lastIndex: this.log.lastIndex(),
      };
      this.#send(response);
    };

    if (message.prevIndex < this.#commitIndex) {
      // Everything up to our commit index already matches the leader (Leader Completeness).
      reply(true, this.#commitIndex);
      return;
    }
    const localPrevTerm = this.log.term(message.prevIndex);
    if (localPrevTerm !== message.prevTerm) {
      reply(false, this.#conflictHint(message.prevIndex, localPrevTerm));
      return;
    }

    for (const entry of message.entries) {
      const existing = this.log.term(entry.index);
      if (existing === entry.term) continue;
      if (existing !== undefined) {
        assert(entry.index > this.#commitIndex, `leader ${message.from} overwrites committed entry ${entry.index}`);
        this.log.truncateFrom(entry.index);
        this.#reloadConfigAfterTruncate();
      }
      this.log.append(entry);
      if (entry.kind === "config") this.#applyConfigEntry(entry);
    }

    const lastNew = message.prevIndex + message.entries.length;
    this.#advanceFollowerCommit(Math.min(message.commitIndex, lastNew));
    reply(true, lastNew);
  }

  /** Returns the index below the first entry of the conflicting term, so the leader skips it whole. */
  #conflictHint(prevIndex: number, localTerm: number | undefined): number {
    if (localTerm === undefined) return Math.min(prevIndex - 1, this.log.lastIndex());
    let index = prevIndex - 1;
    while (index > this.#commitIndex && this.log.term(index) === localTerm) index--;
    return index;
  }

  #handleHeartbeat(message: HeartbeatRequest): void {
    this.#becomeFollowerOf(message.from);
    this.#advanceFollowerCommit(Math.min(message.commitIndex, this.log.lastIndex()));
    if (message.quiet) return;
    const response: HeartbeatResponse = {
      type: "heartbeatResponse",
      from: this.id,
      to: message.from,
      term: this.#term,
      readRound: message.readRound,
    };
    this.#send(response);
  }

  #advanceFollowerCommit(index: number): void {
    if (index > this.#commitIndex) this.#commitIndex = index;
  }

  #handleSnapshot(from: NodeId, snapshot: Snapshot): void {
    this.#becomeFollowerOf(from);
    const meta = snapshot.meta;
    const reply = () => {
      const response: AppendEntriesResponse = {
        type: "appendResponse",
        from: this.id,
        to: from,
        term: this.#term,
        success: true,
        matchIndex: Math.max(this.#commitIndex, meta.lastIndex),
        lastIndex: this.log.lastIndex(),
      };
      this.#send(response);
    };
    if (meta.lastIndex <= this.#commitIndex) {
      reply();
      return;
    }
    if (this.log.term(meta.lastIndex) === meta.lastTerm) {
      // We already hold the entries the snapshot covers: keep the log, just commit.
      this.#commitIndex = meta.lastIndex;
      reply();
      return;
    }
    this.log.restoreSnapshot(meta);
    this.#commitIndex = meta.lastIndex;
    this.#appliedIndex = meta.lastIndex;
    this.#pendingSnapshot = snapshot;
    this.#loadConfig(meta.members);
    reply();
  }

  // ---------------------------------------------------------------- voting

  #campaign(kind: "pre" | "real", transfer: boolean): void {
    if (kind === "pre") {
      this.#role = "precandidate";
      this.#leaderId = null;
    } else {
      this.#role = "candidate";
      this.#term++;
      this.#votedFor = this.id;
      this.#leaderId = null;
    }
    this.#votes = new Map([[this.id, true]]);
    this.#resetElectionTimer();
    this.#failAllReads();

    if (this.#countVotes() === "won") {
      if (kind === "pre") this.#campaign("real", transfer);
      else this.#becomeLeader();
      return;
    }

    for (const member of this.#members) {
      if (!member.voter || member.id === this.id) continue;
      const request: VoteRequest = {
        type: "vote",
        from: this.id,
        to: member.id,
        term: kind === "pre" ? this.#term + 1 : this.#term,
        lastIndex: this.log.lastIndex(),
        lastTerm: this.log.lastTerm(),
        preVote: kind === "pre",
        transfer,
      };
      this.#send(request);
    }
  }

  #handleVote(message: VoteRequest): void {
    const respond = (granted: boolean) => {
      const response: VoteResponse = {
        type: "voteResponse",
        from: this.id,
        to: message.from,
        // A granted pre-vote echoes the asked term so the pre-candidate does not step down.
        term: message.preVote && granted ? message.term : this.#term,
        granted,
        preVote: message.preVote,
      };
      this.#send(response);
    };

    const upToDate = this.log.isUpToDate(message.lastIndex, message.lastTerm);
    if (message.preVote) {
      const canVote = message.term > this.#term || this.#votedFor === null || this.#votedFor === message.from;
      respond(canVote && upToDate && (message.transfer || !this.#inLease()));
      return;
    }
    const canVote = this.#votedFor === null || this.#votedFor === message.from;
    if (canVote && upToDate) {
      this.#votedFor = message.from;
      this.#electionElapsed = 0;
      respond(true);
    } else {
      respond(false);
    }
  }

  #handleVoteResponse(message: VoteResponse): void {
    if (this.#role !== "precandidate" && this.#role !== "candidate") return;
    // A pre-candidate counts only pre-vote responses, a candidate only real ones.
    if (message.preVote !== (this.#role === "precandidate")) return;
    if (!this.isVoter(message.from)) return;
    this.#votes.set(message.from, message.granted);

    const outcome = this.#countVotes();
    if (outcome === "won") {
      if (this.#role === "precandidate") this.#campaign("real", false);
      else this.#becomeLeader();
    } else if (outcome === "lost") {
      this.#becomeFollower(this.#term, null);
    }
  }

  #countVotes(): "won" | "lost" | "pending" {
    let granted = 0;
    let rejected = 0;
    for (const member of this.#members) {
      if (!member.voter) continue;
      const vote = this.#votes.get(member.id);
      if (vote === true) granted++;
      else if (vote === false) rejected++;
    }
    const quorum = this.#quorum();
    if (granted >= quorum) return "won";
    if (rejected >= quorum) return "lost";
    return "pending";
  }

  /** Whether a leader was heard from within the election timeout (thesis 4.2.3). */
  #inLease(): boolean {
    if (this.#role === "leader") return true;
    return this.#leaderId !== null && this.#electionElapsed < this.#config.electionTicks;
  }

  // ---------------------------------------------------------- term handling

  /** Decides whether a message from a higher term may move this node to that term. */
  #acceptHigherTerm(message: Message): boolean {
    if (message.type === "vote") {
      if (!message.transfer && this.#inLease()) return false; // ignore disruptive candidates
      if (message.preVote) return true; // answered without changing our term
      this.#becomeFollower(message.term, null);
      return true;
    }
    if (message.type === "voteResponse" && message.preVote && message.granted) {
      return true; // a granted pre-vote carries the term we would campaign at
    }
    const leader = message.type === "append" || message.type === "heartbeat" || message.type === "snapshot";
    this.#becomeFollower(message.term, leader ? message.from : null);
    return true;
  }

  /** Tells a node stuck in an old term about the current one, so it steps down. */
  #answerStaleTerm(message: Message): void {
    if (message.type === "append" || message.type === "heartbeat") {
      const response: AppendEntriesResponse = {
        type: "appendResponse",
        from: this.id,
        to: message.from,
        term: this.#term,
        success: false,
        matchIndex: 0,
        lastIndex: this.log.lastIndex(),
      };
      this.#send(response);
    } else if (message.type === "vote" && message.preVote) {
      this.#send({ type: "voteResponse", from: this.id, to: message.from, term: this.#term, granted: false, preVote: true });
    } else if (message.type === "vote") {
      this.#send({ type: "voteResponse", from: this.id, to: message.from, term: this.#term, granted: false, preVote: false });
    }
  }

  #becomeFollowerOf(leader: NodeId): void {
    if (this.#role !== "follower" || this.#leaderId !== leader) {
      assert(this.#role !== "leader", `two leaders in term ${this.#term}: ${this.id} and ${leader}`);
      this.#becomeFollower(this.#term, leader);
    }
    this.#electionElapsed = 0;
  }

  #becomeFollower(term: number, leader: NodeId | null): void {
    assert(term >= this.#term, `term would go back from ${this.#term} to ${term}`);
    if (term > this.#term) {
      this.#term = term;
      this.#votedFor = null;
    }
    this.#role = "follower";
    this.#leaderId = leader;
    this.#progress.clear();
    this.#transferTarget = null;
    this.#roundSentAt.clear();
    this.#failAllReads();
    this.#resetElectionTimer();
  }

  #becomeLeader(): void {
    this.#role = "leader";
    this.#leaderId = this.id;
    this.#heartbeatElapsed = 0;
    this.#electionElapsed = 0;
    this.#progress.clear();
    this.#awaitedCommit = 0;
    for (const member of this.#members) this.#addProgress(member.id);
    // A no-op entry of the new term lets earlier entries commit (thesis 3.6.2).
    this.#appendOwn("noop", new Uint8Array(0));
  }

  #addProgress(id: NodeId): void {
    if (this.#progress.has(id)) return;
    const lastIndex = this.log.lastIndex();
    const self = id === this.id;
    this.#progress.set(id, {
      match: self ? this.log.stableIndex : 0,
      next: lastIndex + 1,
      state: "probe",
      pendingSnapshot: 0,
      probeSent: false,
      inflight: [],
      inflightBytes: 0,
      commitSent: 0,
      recentActive: self,
      lastResponseAt: this.#ticks,
      readRound: 0,
    });
  }

  #failAllReads(): void {
    for (const read of this.#pendingReads) this.#failedReads.push(read.id);
    this.#failedReads.push(...this.#readsBeforeCommit);
    this.#pendingReads = [];
    this.#readsBeforeCommit = [];
  }

  #resetElectionTimer(): void {
    this.#electionElapsed = 0;
    const base = this.#config.electionTicks;
    this.#randomizedElectionTicks = base + Math.floor(this.#random() * base);
  }

  // ---------------------------------------------------------- configuration

  #quorum(): number {
    const voters = this.#members.filter((member) => member.voter).length;
    return Math.floor(voters / 2) + 1;
  }

  /** Loads the configuration from the newest config entry, or the snapshot's when the log has none. */
  #loadConfig(snapshotMembers: Member[]): void {
    const entry = this.log.lastConfigEntry();
    if (entry?.members) {
      this.#setMembers(entry.members, entry.index);
    } else {
      this.#setMembers(snapshotMembers, this.log.snapshotIndex);
    }
  }

  #reloadConfigAfterTruncate(): void {
    if (this.#configIndex > this.log.lastIndex()) {
      const entry = this.log.lastConfigEntry();
      if (entry?.members) this.#setMembers(entry.members, entry.index);
      else this.#setMembers(this.#snapshotMembers, this.log.snapshotIndex);
    }
  }

  #snapshotMembers: Member[] = [];

  #applyConfigEntry(entry: Entry): void {
    assert(entry.members !== undefined, `config entry ${entry.index} has no members`);
    this.#setMembers(entry.members, entry.index);
  }

  #setMembers(members: Member[], index: number): void {
    if (index <= this.log.snapshotIndex) this.#snapshotMembers = members;
    this.#members = members.map((member) => ({ ...member }));
    this.#configIndex = index;
    if (this.#role !== "leader") return;

    for (const member of this.#members) this.#addProgress(member.id);
    for (const id of [...this.#progress.keys()]) {
      if (id !== this.id && !this.isMember(id)) this.#progress.delete(id);
    }
    if (this.#transferTarget !== null && !this.isVoter(this.#transferTarget)) this.#transferTarget = null;
    // Fewer voters may mean entries are already replicated on a quorum.
    this.#maybeCommit();
  }

  // ------------------------------------------------------------------ misc

  #send(message: Message): void {
    this.#messages.push(message);
  }

  #hardState(): HardState {
    return { term: this.#term, votedFor: this.#votedFor, commitIndex: this.#commitIndex };
  }

  #hardStateChanged(): boolean {
    return (
      this.#persisted.term !== this.#term ||
      this.#persisted.votedFor !== this.#votedFor ||
      this.#persisted.commitIndex !== this.#commitIndex
    );
  }
}
