// One simulated server: the real RaftCore, driven the way src/node/node.ts
// drives it, with simulated storage, network and clock. It keeps the
// runtime's order for each ready batch:
//   1. a leader's append and heartbeat messages leave at once when the term
//      in the batch is already durable;
//   2. hard state, truncation and entries are written, except that a hard
//      state whose only change is the commit index waits, like the
//      runtime's, for the next write with entries or for a tick after
//      COMMIT_PERSIST_DELAY_MS;
//   3. every other message is sent;
//   4. committed entries are applied and waiting clients get their replies;
//   5. advance() reports the batch durable.
//
// Two disk models are simulated. "sync" writes inside the ready handling,
// as the runtime did before it had a log writer thread. "pipelined" gives
// each write a latency and keeps stepping messages and ticks while up to
// PIPELINE_DEPTH writes with new data are in flight, as the runtime's log
// writer does (Raft thesis section 10.2.1). It takes a new batch after each
// event. The core hands each entry out once, so a batch taken while a write
// is in flight carries only what is new. A batch with nothing to write needs
// no disk time. Steps 2 to 5 run when a write finishes, in the order the
// batches were taken. The runtime applies committed entries without waiting
// for its own write; waiting, as here, is the stricter order.
//
// A crash can be armed at any point between these steps. It drops all
// memory, while SimStorage keeps what was written. A crash at "tornWrite"
// writes only part of the batch. A pause (a stalled process) freezes the
// node's clock and queues its input until it resumes. Like the runtime, a
// tick that comes more than two ticks after the previous one first ends the
// core's lease, and missed ticks are not replayed. On resume the node ticks
// once and then handles the queued input.

import { encodeCommand, type KvCommand } from "../../src/kv/command.ts";
import { KvStore, type ApplyResult } from "../../src/kv/store.ts";
import type { RaftConfig } from "../../src/raft/config.ts";
import { RaftCore } from "../../src/raft/core.ts";
import type { ConfChange, Entry, HardState, Message, NodeId, ProposeResult, Ready } from "../../src/raft/types.ts";
import type { EventLabel } from "./event-queue.ts";
import type { SimRandom } from "./random.ts";
import type { SimStorage, StorageWrite } from "./storage.ts";

export type DiskMode = "sync" | "pipelined";

/** Points in the handling of one ready batch where an armed crash fires. */
export const CRASH_POINTS = ["beforeSend", "beforeWrite", "tornWrite", "afterWrite", "afterSend", "afterApply"] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

/** Maximum writes with new data in flight in the pipelined disk model. */
const PIPELINE_DEPTH = 2;

/** Latency range of a stalled write (a slow fsync) in the pipelined model, in simulated milliseconds. */
const SLOW_WRITE_MS: [number, number] = [50, 150];

/** Maximum time in simulated milliseconds that a commit-index-only hard state waits before it is written, as in the runtime. */
const COMMIT_PERSIST_DELAY_MS = 200;

/** Time in simulated milliseconds that a leader waits for an append to carry a new commit index before it announces it, as in the runtime. */
const COMMIT_ANNOUNCE_DELAY_MS = 5;

/** Maximum ready batches handled in one processing pass before the node is declared stuck. */
const MAX_READY_PER_PASS = 1000;

export type NodeReply =
  | { ok: true; kind: "write"; result: ApplyResult }
  | { ok: true; kind: "read"; value: string | null }
  | { ok: true; kind: "conf" }
  | { ok: false; code: "NOTLEADER"; leaderId: NodeId | null }
  | { ok: false; code: "NOTAPPLIED" | "BUSY" | "INVALID"; message: string };

export type ReplyHandler = (reply: NodeReply) => void;

/** Callbacks into the simulation that owns the node. */
export interface NodeHost {
  now(): number;
  schedule(delayMs: number, label: EventLabel, run: () => void): void;
  send(message: Message): void;
  onApply(node: SimNode, entry: Entry): void;
  onCrash(node: SimNode, point: CrashPoint | "now"): void;
}

export interface SimNodeOptions {
  id: NodeId;
  config: RaftConfig;
  /** Simulated milliseconds per tick. */
  tickMs: number;
  storage: SimStorage;
  diskMode: DiskMode;
  /** Range of write latency in the pipelined model, in simulated milliseconds. */
  diskLatencyMs: [number, number];
  /** Probability that a write in the pipelined model stalls for SLOW_WRITE_MS instead. */
  slowWriteRate: number;
  /** Stream for the core's election timeouts. */
  coreRandom: SimRandom;
  /** Stream for disk latency and torn-write lengths. */
  diskRandom: SimRandom;
  host: NodeHost;
}

interface PendingProposal {
  term: number;
  kind: "write" | "conf";
  reply: ReplyHandler;
}

interface PendingRead {
  key: string;
  reply: ReplyHandler;
}

interface ReadWaitingForApply {
  index: number;
  read: PendingRead;
}

interface InflightWrite {
  ready: Ready;
  /** What the batch writes to storage, or null when it writes nothing. */
  write: StorageWrite | null;
  /** Messages to send once the write is durable. */
  deferred: Message[];
  /** Whether the batch writes anything that no earlier write in flight contains. */
  newData: boolean;
}

export interface NodeStats {
  crashes: number;
  readyBatches: number;
  tornWrites: number;
}

export class SimNode {
  readonly id: NodeId;
  readonly storage: SimStorage;
  readonly diskMode: DiskMode;
  readonly stats: NodeStats = { crashes: 0, readyBatches: 0, tornWrites: 0 };
  /** Bumped on every crash and restart; events of an older incarnation are ignored. */
  incarnation = 0;
  /** Retired nodes were removed from the cluster and stopped for good. */
  retired = false;

  #core: RaftCore | null = null;
  #store = new KvStore();
  #appliedIndex = 0;
  readonly #options: SimNodeOptions;
  readonly #host: NodeHost;

  /** Term of the newest durably written hard state. */
  #durableTerm = 0;
  /** Newest hard state handed to the disk, durable or not. */
  #issuedHardState: HardState = { term: 0, votedFor: null, commitIndex: 0 };
  /** Newer hard state whose only change is the commit index, not yet handed to the disk. */
  #unpersistedHardState: HardState | null = null;
  #lastHardStateWrite = 0;
  /** Simulated time of the last tick, to notice a pause. */
  #lastTickAt = 0;
  #writes: InflightWrite[] = [];
  #writesWithNewData = 0;
  /** Index and term of the last entry handed to the disk. */
  #issuedLast = { index: 0, term: 0 };
  #lastWriteDone = 0;
  #processScheduled = false;
  /** Set while a commit announcement is scheduled. */
  #announceArmed = false;
  #armedCrash: CrashPoint | null = null;
  #paused = false;
  /** Input that arrived while paused, handled in order on resume. */
  #inputWhilePaused: Array<() => void> = [];

  /** Highest committed index handed out by ready(); in the pipelined model it may not be applied yet. */
  #committedHandedOut = 0;
  #proposals = new Map<number, PendingProposal>();
  #reads = new Map<number, PendingRead>();
  #readsWaitingForApply: ReadWaitingForApply[] = [];
  #nextReadId = 1;

  constructor(options: SimNodeOptions) {
    this.id = options.id;
    this.storage = options.storage;
    this.diskMode = options.diskMode;
    this.#options = options;
    this.#host = options.host;
  }

  get up(): boolean {
    return this.#core !== null;
  }

  /** The running core; throws when the node is down. */
  get core(): RaftCore {
    if (!this.#core) throw new Error(`node ${this.id} is down`);
    return this.#core;
  }

  get coreOrNull(): RaftCore | null {
    return this.#core;
  }

  get appliedIndex(): number {
    return this.#appliedIndex;
  }

  get store(): KvStore {
    return this.#store;
  }

  get pendingProposals(): number {
    return this.#proposals.size;
  }

  get armedCrash(): CrashPoint | null {
    return this.#armedCrash;
  }

  get paused(): boolean {
    return this.#paused;
  }

  /**
   * Starts the node from its durable storage: the core gets the stored hard
   * state and log, and the state machine is rebuilt by applying the
   * committed prefix again (there are no snapshots).
   */
  start(): void {
    if (this.#core) throw new Error(`node ${this.id} is already up`);
    const state = this.storage.load();
    this.incarnation++;
    this.#store = new KvStore();
    this.#appliedIndex = 0;
    this.#committedHandedOut = 0;
    this.#durableTerm = state.hardState.term;
    this.#issuedHardState = { ...state.hardState };
    this.#unpersistedHardState = null;
    this.#lastHardStateWrite = this.#host.now();
    this.#lastTickAt = this.#host.now();
    this.#writes = [];
    this.#writesWithNewData = 0;
    this.#issuedLast = { index: 0, term: 0 };
    this.#lastWriteDone = 0;
    this.#processScheduled = false;
    this.#announceArmed = false;
    this.#armedCrash = null;
    this.#paused = false;
    this.#inputWhilePaused = [];
    this.#core = new RaftCore({
      id: this.id,
      config: this.#options.config,
      random: () => this.#options.coreRandom.next(),
      hardState: state.hardState,
      snapshot: null,
      entries: state.entries,
      appliedIndex: 0,
    });
    this.#scheduleProcess();
  }

  /**
   * Stops the node at once. Writes still in flight are lost, except that
   * with `tearOldest` the oldest one in the pipelined model is written in part.
   */
  crash(tearOldest = false): void {
    if (!this.#core) return;
    const oldest = this.#writes[0];
    if (tearOldest && oldest?.write) this.#tornWrite(oldest.write);
    this.#stop("now");
  }

  /** Arms a crash that fires the next time the node reaches `point`. */
  armCrash(point: CrashPoint): void {
    if (this.#core) this.#armedCrash = point;
  }

  disarmCrash(): void {
    this.#armedCrash = null;
  }

  /** Stalls the node: ticks are skipped and input waits until resume(). */
  pause(): void {
    if (this.#core) this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (this.#host.now() - this.#lastTickAt >= this.#options.tickMs) this.#runTicks();
    const input = this.#inputWhilePaused;
    this.#inputWhilePaused = [];
    const incarnation = this.incarnation;
    for (const handle of input) {
      if (this.incarnation !== incarnation) return;
      handle();
    }
  }

  /** Runs `handle` now, or on resume while the node is paused. */
  #whenRunning(handle: () => void): void {
    if (!this.#core) return;
    if (this.#paused) this.#inputWhilePaused.push(handle);
    else handle();
  }

  tick(): void {
    if (!this.#core || this.#paused) return;
    this.#runTicks();
  }

  /** Ticks the core once, ending its lease first when the previous tick is more than two ticks ago. */
  #runTicks(): void {
    const now = this.#host.now();
    if (now - this.#lastTickAt > this.#options.tickMs * 2) this.core.expireLease();
    this.#lastTickAt = now;
    this.core.tick();
    this.#persistPendingCommit();
    this.#scheduleProcess();
  }

  /** Writes a commit index that #planWrite held back, once it has waited long enough and no write is in flight. */
  #persistPendingCommit(): void {
    const pending = this.#unpersistedHardState;
    if (pending === null || this.#writes.length > 0) return;
    if (this.#host.now() - this.#lastHardStateWrite < COMMIT_PERSIST_DELAY_MS) return;
    this.storage.write({ hardState: pending, truncateFrom: null, entries: [] });
    this.#issuedHardState = pending;
    this.#durableTerm = pending.term;
    this.#unpersistedHardState = null;
    this.#lastHardStateWrite = this.#host.now();
  }

  receive(message: Message): void {
    this.#whenRunning(() => {
      this.core.step(message);
      this.#scheduleProcess();
    });
  }

  // ------------------------------------------------------------- client API

  submitWrite(command: KvCommand, reply: ReplyHandler): void {
    this.#whenRunning(() => this.#track(this.core.propose(encodeCommand(command)), "write", reply));
  }

  submitConfChange(change: ConfChange, reply: ReplyHandler): void {
    this.#whenRunning(() => this.#track(this.core.proposeConfChange(change), "conf", reply));
  }

  /**
   * Serves a GET on the leader, like the runtime's "linearizable" and
   * "lease" levels. With `lease` the leader replies from its own map while
   * the core reports a lease and its clock is current. Otherwise, or
   * without a lease, it waits for a read-index round.
   */
  submitRead(key: string, lease: boolean, reply: ReplyHandler): void {
    this.#whenRunning(() => this.#read(key, lease, reply));
  }

  #read(key: string, lease: boolean, reply: ReplyHandler): void {
    const core = this.core;
    if (core.role !== "leader") {
      reply({ ok: false, code: "NOTLEADER", leaderId: core.leaderId });
      return;
    }
    const clockCurrent = this.#host.now() - this.#lastTickAt <= this.#options.tickMs * 2;
    // A pipelined runtime applies a batch's committed entries only when its
    // write finishes, so it must also wait for those before reading its map.
    const handedOutApplied = this.#appliedIndex >= this.#committedHandedOut;
    if (lease && clockCurrent && handedOutApplied && core.hasLease()) {
      reply({ ok: true, kind: "read", value: this.#readLocal(key) });
      return;
    }
    const id = this.#nextReadId++;
    this.#reads.set(id, { key, reply });
    core.readIndex(id);
    this.#scheduleProcess();
  }

  transferLeadership(target: NodeId): void {
    this.#whenRunning(() => {
      this.core.transferLeadership(target);
      this.#scheduleProcess();
    });
  }

  #track(result: ProposeResult, kind: PendingProposal["kind"], reply: ReplyHandler): void {
    if (!result.ok) {
      if (result.code === "NOTLEADER") reply({ ok: false, code: "NOTLEADER", leaderId: result.leaderId });
      else reply({ ok: false, code: result.code, message: result.reason });
      return;
    }
    // An older proposal at this index lost its slot: this node now leads a
    // later term and wrote its own entry there, so the old one never commits.
    const previous = this.#proposals.get(result.index);
    if (previous) previous.reply({ ok: false, code: "NOTAPPLIED", message: `index ${result.index} was reused` });
    this.#proposals.set(result.index, { term: result.term, kind, reply });
    this.#scheduleProcess();
  }

  // ------------------------------------------------------------ ready cycle

  #scheduleProcess(): void {
    if (this.#processScheduled || !this.#core) return;
    this.#processScheduled = true;
    const incarnation = this.incarnation;
    // Runs after every event already queued for this instant, so messages
    // that arrive together share one batch, as with setImmediate in the runtime.
    this.#host.schedule(0, { kind: "process", node: this.id }, () => {
      if (this.incarnation !== incarnation) return;
      this.#whenRunning(() => {
        this.#processScheduled = false;
        this.#process();
      });
    });
  }

  #process(): void {
    if (this.diskMode === "pipelined") {
      // One batch per event, with at most PIPELINE_DEPTH writes in flight.
      const core = this.#core;
      if (core && core.hasReady() && this.#writesWithNewData < PIPELINE_DEPTH) this.#startWrite(core.ready());
    } else {
      for (let handled = 0; this.#core?.hasReady(); handled++) {
        if (handled >= MAX_READY_PER_PASS) {
          throw new Error(`node ${this.id} produced ${MAX_READY_PER_PASS} ready batches without settling`);
        }
        this.#handleReadySync(this.#core.ready());
      }
    }
    this.#armCommitAnnouncement();
  }

  /** Schedules a commit announcement for COMMIT_ANNOUNCE_DELAY_MS later when a follower lags, as the runtime does. */
  #armCommitAnnouncement(): void {
    if (this.#announceArmed || !this.#core?.commitAnnouncementDue) return;
    this.#announceArmed = true;
    const incarnation = this.incarnation;
    this.#host.schedule(COMMIT_ANNOUNCE_DELAY_MS, { kind: "announce", node: this.id }, () => {
      if (this.incarnation !== incarnation) return;
      this.#whenRunning(() => {
        this.#announceArmed = false;
        this.#core?.announceCommit();
        this.#scheduleProcess();
      });
    });
  }

  #handleReadySync(ready: Ready): void {
    this.stats.readyBatches++;
    this.#noteCommitted(ready);
    this.#checkNoSnapshot(ready);
    if (this.#crashAt("beforeSend")) return;
    const { early, deferred } = this.#splitMessages(ready);
    for (const message of early) this.#host.send(message);
    this.#finishWrite(ready, this.#planWrite(ready), deferred);
  }

  /** Pipelined model: sends what may leave now and queues the write. */
  #startWrite(ready: Ready): void {
    this.stats.readyBatches++;
    this.#noteCommitted(ready);
    this.#checkNoSnapshot(ready);
    if (this.#crashAt("beforeSend")) return;
    const { early, deferred } = this.#splitMessages(ready);
    for (const message of early) this.#host.send(message);
    const write = this.#planWrite(ready);
    const last = ready.entries[ready.entries.length - 1];
    const newEntries = last !== undefined && (last.index !== this.#issuedLast.index || last.term !== this.#issuedLast.term);
    const newData = write !== null && (write.hardState !== null || write.truncateFrom !== null || newEntries);
    if (last) this.#issuedLast = { index: last.index, term: last.term };
    this.#writes.push({ ready, write, deferred, newData });
    if (newData) this.#writesWithNewData++;

    const disk = this.#options.diskRandom;
    const [minLatency, maxLatency] = disk.chance(this.#options.slowWriteRate) ? SLOW_WRITE_MS : this.#options.diskLatencyMs;
    const latency = newData ? disk.int(minLatency, maxLatency) : 0;
    const done = Math.max(this.#lastWriteDone, this.#host.now() + latency);
    this.#lastWriteDone = done;
    const incarnation = this.incarnation;
    this.#host.schedule(done - this.#host.now(), { kind: "diskDone", node: this.id }, () => {
      if (this.incarnation !== incarnation) return;
      this.#whenRunning(() => {
        const inflight = this.#writes.shift();
        if (!inflight) throw new Error(`node ${this.id} finished a write that was never started`);
        if (inflight.newData) this.#writesWithNewData--;
        if (this.#finishWrite(inflight.ready, inflight.write, inflight.deferred)) return;
        this.#scheduleProcess();
      });
    });
  }

  #noteCommitted(ready: Ready): void {
    const last = ready.committed[ready.committed.length - 1];
    if (last) this.#committedHandedOut = last.index;
  }

  /** The simulator never compacts the log, so no batch may ask to install or send a snapshot. */
  #checkNoSnapshot(ready: Ready): void {
    if (ready.snapshot !== null || (ready.snapshotsToSend?.length ?? 0) > 0) {
      throw new Error(`node ${this.id} got a ready batch with a snapshot, which the simulator does not model`);
    }
  }

  /**
   * A leader's appends and heartbeats may leave before the write when the
   * batch's term is already durable. In the pipelined model no write in
   * flight may change the term either.
   */
  #splitMessages(ready: Ready): { early: Message[]; deferred: Message[] } {
    const issuedTerm = this.#issuedHardState.term;
    const batchTerm = ready.hardState?.term ?? issuedTerm;
    const termDurable = batchTerm === this.#durableTerm && issuedTerm === this.#durableTerm;
    const early: Message[] = [];
    const deferred: Message[] = [];
    for (const message of ready.messages) {
      const replication = message.type === "append" || message.type === "heartbeat";
      if (replication && termDurable) early.push(message);
      else deferred.push(message);
    }
    return { early, deferred };
  }

  /**
   * Decides what a batch writes, as the runtime's #persist does: a hard
   * state that changes only the commit index is held back, and a held-back
   * one goes out with the next batch that writes entries.
   */
  #planWrite(ready: Ready): StorageWrite | null {
    let hardState = ready.hardState;
    const issued = this.#issuedHardState;
    const commitOnly =
      hardState !== null &&
      ready.entries.length === 0 &&
      ready.truncateFrom === null &&
      hardState.term === issued.term &&
      hardState.votedFor === issued.votedFor;
    if (commitOnly) {
      this.#unpersistedHardState = hardState;
      hardState = null;
    } else if (hardState === null && this.#unpersistedHardState !== null && ready.entries.length > 0) {
      hardState = this.#unpersistedHardState;
    }
    if (hardState === null && ready.entries.length === 0 && ready.truncateFrom === null) return null;
    if (hardState) {
      this.#issuedHardState = hardState;
      this.#unpersistedHardState = null;
      this.#lastHardStateWrite = this.#host.now();
    }
    return { hardState, truncateFrom: ready.truncateFrom, entries: ready.entries };
  }

  /** Runs steps 2 to 5 for one batch. Returns true when the node crashed on the way. */
  #finishWrite(ready: Ready, write: StorageWrite | null, deferred: Message[]): boolean {
    if (this.#crashAt("beforeWrite")) return true;
    if (this.#armedCrash === "tornWrite") {
      if (write) this.#tornWrite(write);
      this.#stop("tornWrite");
      return true;
    }
    if (write) {
      this.storage.write(write);
      if (write.hardState) this.#durableTerm = write.hardState.term;
    }
    if (this.#crashAt("afterWrite")) return true;

    for (const message of deferred) this.#host.send(message);
    if (this.#crashAt("afterSend")) return true;

    for (const entry of ready.committed) this.#apply(entry);
    for (const read of ready.reads) {
      const pending = this.#reads.get(read.id);
      if (!pending) continue;
      this.#reads.delete(read.id);
      this.#readsWaitingForApply.push({ index: read.index, read: pending });
    }
    for (const id of ready.failedReads) {
      const pending = this.#reads.get(id);
      if (!pending) continue;
      this.#reads.delete(id);
      pending.reply({ ok: false, code: "NOTLEADER", leaderId: this.core.leaderId });
    }
    this.#resolveAppliedReads();
    if (this.#crashAt("afterApply")) return true;

    this.core.advance(ready);
    return false;
  }

  #tornWrite(write: StorageWrite): void {
    const keep = write.entries.length === 0 ? 0 : this.#options.diskRandom.int(0, write.entries.length - 1);
    this.storage.write(write, keep);
    this.stats.tornWrites++;
  }

  #apply(entry: Entry): void {
    if (entry.index !== this.#appliedIndex + 1) {
      throw new Error(`node ${this.id} was handed entry ${entry.index} to apply after ${this.#appliedIndex}`);
    }
    let result: ApplyResult = "OK";
    if (entry.kind === "command") result = this.#store.apply(entry.data);
    this.#appliedIndex = entry.index;
    this.#host.onApply(this, entry);

    const proposal = this.#proposals.get(entry.index);
    if (!proposal) return;
    this.#proposals.delete(entry.index);
    if (proposal.term !== entry.term) {
      proposal.reply({ ok: false, code: "NOTAPPLIED", message: `entry ${entry.index} has term ${entry.term}, not ${proposal.term}` });
    } else if (proposal.kind === "conf") {
      proposal.reply({ ok: true, kind: "conf" });
    } else {
      proposal.reply({ ok: true, kind: "write", result });
    }
  }

  #resolveAppliedReads(): void {
    if (this.#readsWaitingForApply.length === 0) return;
    const still: ReadWaitingForApply[] = [];
    for (const waiting of this.#readsWaitingForApply) {
      if (waiting.index > this.#appliedIndex) {
        still.push(waiting);
        continue;
      }
      waiting.read.reply({ ok: true, kind: "read", value: this.#readLocal(waiting.read.key) });
    }
    this.#readsWaitingForApply = still;
  }

  #readLocal(key: string): string | null {
    const value = this.#store.get(new TextEncoder().encode(key));
    return value === undefined ? null : new TextDecoder().decode(value);
  }

  // ---------------------------------------------------------------- crashes

  #crashAt(point: CrashPoint): boolean {
    if (this.#armedCrash !== point) return false;
    this.#stop(point);
    return true;
  }

  #stop(point: CrashPoint | "now"): void {
    this.#core = null;
    this.incarnation++;
    this.#armedCrash = null;
    this.#paused = false;
    this.#inputWhilePaused = [];
    this.#writes = [];
    this.#writesWithNewData = 0;
    this.#proposals.clear();
    this.#reads.clear();
    this.#readsWaitingForApply = [];
    this.stats.crashes++;
    this.#host.onCrash(this, point);
  }
}
