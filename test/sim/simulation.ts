// Deterministic simulation of an EchoKV cluster running the real RaftCore.
//
// One seed fixes everything: the scenario (cluster size, disk model, Raft
// settings, workload), every fault, every message delay and every election
// timeout. A run has three phases:
//   setup    Node n1 is bootstrapped and the operator adds the other nodes
//            one at a time, on a healthy network.
//   chaos    The nemesis injects faults while clients read and write.
//   heal     Faults stop, crashed nodes restart and the network recovers.
//            Within LIVENESS_BOUND_MS the cluster must then elect a stable
//            leader, finish every pending request and converge.
// Invariants (invariants.ts) are checked after every event. At the end the
// client history goes to the linearizability checker.

import { InvariantError } from "../../src/raft/assert.ts";
import type { Entry, Message, NodeId } from "../../src/raft/types.ts";
import { checkLinearizable, type Operation } from "../support/linearizability.ts";
import { cloneMessage } from "./entries.ts";
import { EventQueue, type EventLabel } from "./event-queue.ts";
import { InvariantChecker, InvariantViolation } from "./invariants.ts";
import { Nemesis, type NemesisStats } from "./nemesis.ts";
import { HEALTHY_NETWORK, SimNetwork, type NetworkStats } from "./network.ts";
import { SimNode, type CrashPoint, type NodeReply } from "./node.ts";
import { SimRandom } from "./random.ts";
import { scenarioFor, type Scenario, type ScenarioOverrides } from "./scenario.ts";
import { SimStorage, StorageContractError } from "./storage.ts";
import { describeMessage, formatEvent, formatOperation, hashString, messageCode } from "./trace.ts";
import { SimAdmin, SimClient, type AdminStats, type WorkloadHost } from "./workload.ts";

export type { Scenario, ScenarioOverrides } from "./scenario.ts";

/** Simulated milliseconds per Raft tick. */
export const TICK_MS = 10;
/** Maximum time for setup to reach the full cluster. */
export const SETUP_BOUND_MS = 10_000;
/** Maximum time after healing for the cluster to elect, finish pending requests and converge. */
export const LIVENESS_BOUND_MS = 6_000;
/** A run that handles more events than this is reported as stuck. */
export const MAX_STEPS = 2_000_000;
/** Events between two full pairwise log comparisons. */
const PAIRWISE_CHECK_EVERY = 2_000;
/** Key written by the operator's barrier writes after healing; clients never use it. */
const BARRIER_KEY = "_barrier";

export type FailureKind = "safety" | "liveness" | "linearizability" | "error";

export interface SimFailure {
  kind: FailureKind;
  message: string;
  /** Number of the event during or after which the failure was found. */
  step: number;
  timeMs: number;
  /** The last events before the failure, oldest first. */
  recentEvents: string[];
}

export interface SimStats {
  steps: number;
  simTimeMs: number;
  nodesCreated: number;
  network: NetworkStats;
  nemesis: NemesisStats;
  admin: AdminStats;
  crashes: Record<CrashPoint | "now", number>;
  tornWrites: number;
  operations: number;
  acked: number;
  reads: number;
  unknown: number;
  maxTerm: number;
  commitIndex: number;
  linearizabilityStates: number;
  /** Simulated time from healing to convergence. */
  recoveryMs: number | null;
}

export interface SimResult {
  seed: number;
  scenario: Scenario;
  ok: boolean;
  failure?: SimFailure;
  /** Hash of every event handled; two runs of one seed must produce the same hash. */
  traceHash: string;
  stats: SimStats;
}

export interface RunOptions extends ScenarioOverrides {
  /** Receives one line per event, for replaying a seed verbosely. */
  trace?: (line: string) => void;
}

type Phase = "setup" | "chaos" | "heal" | "done";

class SimulationFailure extends Error {
  readonly kind: FailureKind;
  constructor(kind: FailureKind, message: string) {
    super(message);
    this.kind = kind;
  }
}

const RECENT_EVENTS = 40;

class Simulation {
  readonly scenario: Scenario;
  readonly #queue = new EventQueue();
  readonly #root: SimRandom;
  readonly #network: SimNetwork;
  readonly #checker = new InvariantChecker({
    entry: (id, index) => this.#nodes.get(id)?.storage.entry(index),
    term: (id) => this.#nodes.get(id)?.storage.term ?? 0,
  });
  readonly #nodes = new Map<NodeId, SimNode>();
  readonly #nodeNumbers = new Map<NodeId, number>();
  readonly #clients: SimClient[] = [];
  readonly #admin: SimAdmin;
  readonly #nemesis: Nemesis;
  readonly #history: Operation[] = [];
  readonly #trace: ((line: string) => void) | undefined;
  readonly #crashCounts: Record<CrashPoint | "now", number> = {
    now: 0,
    beforeSend: 0,
    beforeWrite: 0,
    tornWrite: 0,
    afterWrite: 0,
    afterSend: 0,
    afterApply: 0,
  };
  readonly #clientRandom: SimRandom;
  readonly #replyRandom: SimRandom;

  #now = 0;
  #step = 0;
  #hash = 0x811c9dc5;
  #kindCodes = new Map<string, number>();
  #recent: Array<{ time: number; label: EventLabel }> = [];
  #phase: Phase = "setup";
  #healTime = 0;
  #recoveryMs: number | null = null;
  #nextOperationId = 1;
  #lastNodeNumber = 0;
  #barrierCount = 0;
  #linearizabilityStates = 0;
  /** Last term in which each node was seen leading. */
  #leaderTerms = new Map<NodeId, number>();

  constructor(scenario: Scenario, trace?: (line: string) => void) {
    this.scenario = scenario;
    this.#trace = trace;
    this.#root = new SimRandom(scenario.seed);
    this.#network = new SimNetwork(this.#root.fork(1));
    this.#clientRandom = this.#root.fork(2);
    this.#replyRandom = this.#root.fork(3);
    const workloadHost = this.#workloadHost();
    this.#admin = new SimAdmin(workloadHost, this.#root.fork(4), scenario.requestTimeoutMs);
    this.#nemesis = new Nemesis(this.#nemesisHost(), this.#root.fork(5), scenario.nemesis);
    for (let i = 0; i < scenario.clientCount; i++) {
      const client = new SimClient(i + 1, workloadHost, this.#clientRandom.fork(i), {
        keys: scenario.keys,
        timeoutMs: scenario.requestTimeoutMs,
        leaseReads: scenario.leaseReads,
      });
      this.#clients.push(client);
    }
  }

  run(): SimResult {
    let failure: SimFailure | undefined;
    try {
      this.#bootstrap();
      this.#loop();
      this.#finalChecks();
    } catch (err) {
      failure = this.#describeFailure(err);
    }
    const result: SimResult = {
      seed: this.scenario.seed,
      scenario: this.scenario,
      ok: failure === undefined,
      traceHash: (this.#hash >>> 0).toString(16).padStart(8, "0"),
      stats: this.#stats(),
    };
    if (failure) result.failure = failure;
    return result;
  }

  // ------------------------------------------------------------ event loop

  /** Handles events until the run finishes; MAX_STEPS and the phase deadlines bound it. */
  #loop(): void {
    for (;;) {
      const event = this.#queue.pop();
      if (!event) throw new SimulationFailure("error", "the event queue ran empty");
      this.#now = event.time;
      this.#step++;
      if (this.#step > MAX_STEPS) {
        throw new SimulationFailure("liveness", `the run handled ${MAX_STEPS} events without finishing`);
      }
      this.#record(event.time, event.label);
      event.run();
      this.#checkInvariants();
      if (this.#phase === "done") return;
      this.#checkDeadlines();
    }
  }

  #record(time: number, label: EventLabel): void {
    let code = this.#kindCodes.get(label.kind);
    if (code === undefined) {
      code = hashString(label.kind);
      this.#kindCodes.set(label.kind, code);
    }
    this.#mix(time);
    this.#mix(code);
    this.#mix(label.node === null ? 0 : this.#nodeNumbers.get(label.node) ?? 0);
    this.#recent.push({ time, label });
    if (this.#recent.length > RECENT_EVENTS) this.#recent.shift();
    if (this.#trace) this.#trace(formatEvent(this.#step, time, label));
  }

  /** Adds a line to the trace and the recent events without counting it as an event. */
  #note(text: string): void {
    const label: EventLabel = { kind: "note", node: null, detail: () => text };
    this.#recent.push({ time: this.#now, label });
    if (this.#recent.length > RECENT_EVENTS) this.#recent.shift();
    if (this.#trace) this.#trace(`   @${this.#now}ms note ${text}`);
  }

  #mix(value: number): void {
    this.#hash = Math.imul(this.#hash ^ (value | 0), 0x01000193) >>> 0;
  }

  #schedule(delayMs: number, label: EventLabel, run: () => void): void {
    this.#queue.push(this.#now + delayMs, label, run);
  }

  #checkInvariants(): void {
    for (const node of this.#nodes.values()) {
      const core = node.coreOrNull;
      if (!core) continue;
      this.#checker.checkNode(node.id, core);
      if (core.role === "leader" && this.#leaderTerms.get(node.id) !== core.term) {
        this.#leaderTerms.set(node.id, core.term);
        this.#nemesis.onNewLeader(node);
      }
    }
    if (this.#step % PAIRWISE_CHECK_EVERY === 0) this.#checkPairwise();
  }

  #checkPairwise(): void {
    const cores = [...this.#nodes.values()].filter((node) => node.up).map((node) => ({ id: node.id, core: node.core }));
    this.#checker.checkLogsPairwise(cores);
  }

  #checkDeadlines(): void {
    if (this.#phase === "setup" && this.#now > SETUP_BOUND_MS) {
      throw new SimulationFailure("liveness", `setup did not reach ${this.scenario.nodeCount} voters within ${SETUP_BOUND_MS} ms: ${this.#clusterSummary()}`);
    }
    if (this.#phase === "heal" && this.#now > this.#healTime + LIVENESS_BOUND_MS) {
      throw new SimulationFailure(
        "liveness",
        `no recovery within ${LIVENESS_BOUND_MS} ms (${LIVENESS_BOUND_MS / TICK_MS} ticks) after healing: ${this.#livenessBlocker() ?? "unknown"}; ${this.#clusterSummary()}`,
      );
    }
  }

  // ---------------------------------------------------------------- phases

  #bootstrap(): void {
    const first = this.#newNodeId();
    const entry: Entry = {
      index: 1,
      term: 1,
      kind: "config",
      data: new Uint8Array(0),
      members: [{ ...addresses(first), voter: true }],
    };
    const storage = new SimStorage({ term: 1, votedFor: null, commitIndex: 1 }, [entry]);
    this.#createNode(first, storage);
    for (const client of this.#clients) client.start();
    this.#addNextSetupNode();
    this.#scheduleProbe();
  }

  #addNextSetupNode(): void {
    if (this.#phase !== "setup" || this.#nodes.size >= this.scenario.nodeCount) return;
    const id = this.#newNodeId();
    this.#createNode(id, new SimStorage());
    this.#admin.request({ type: "add", member: addresses(id) }, () => this.#addNextSetupNode(), null);
  }

  /** Checks phase transitions once per tick. */
  #scheduleProbe(): void {
    this.#schedule(TICK_MS, { kind: "probe", node: null }, () => {
      this.#probe();
      if (this.#phase !== "done") this.#scheduleProbe();
    });
  }

  #probe(): void {
    if (this.#phase === "setup") {
      const leader = this.#currentLeader();
      const members = leader?.core.members ?? [];
      const voters = members.filter((member) => member.voter).length;
      if (voters === this.scenario.nodeCount && members.length === voters && this.#admin.idle) this.#startChaos();
      return;
    }
    if (this.#phase === "heal") {
      this.#driveRecovery();
      if (this.#livenessBlocker() === null) {
        this.#recoveryMs = this.#now - this.#healTime;
        this.#phase = "done";
      }
    }
  }

  #startChaos(): void {
    this.#phase = "chaos";
    this.#nemesis.start();
    this.#schedule(this.scenario.chaosMs, { kind: "heal", node: null }, () => this.#heal());
  }

  #heal(): void {
    this.#phase = "heal";
    this.#healTime = this.#now;
    this.#network.heal();
    this.#network.conditions = { ...HEALTHY_NETWORK };
    for (const node of this.#liveNodes()) {
      node.disarmCrash();
      node.resume();
      if (!node.up) this.#restart(node);
    }
    for (const client of this.#clients) client.healed = true;
  }

  /**
   * Drives the heal phase. Clients that have finished a write and a read
   * since healing stop. While some member still waits on a proposal, the
   * operator keeps the log growing with barrier writes, so that every such
   * proposal reaches an applied index and gets its reply.
   */
  #driveRecovery(): void {
    for (const client of this.#clients) {
      if (client.writesSinceHeal > 0 && client.readsSinceHeal > 0) client.stopped = true;
    }
    const leader = this.#currentLeader();
    if (!leader) return;
    const waiting = this.#members(leader).some((node) => node.up && node.pendingProposals > 0);
    if (waiting && leader.pendingProposals <= 1) {
      const value = new TextEncoder().encode(`barrier${++this.#barrierCount}`);
      leader.submitWrite({ op: "set", key: new TextEncoder().encode(BARRIER_KEY), value }, () => {});
    }
  }

  /** Returns why the cluster has not recovered yet, or null once it has. */
  #livenessBlocker(): string | null {
    const leader = this.#currentLeader();
    if (!leader) return "no leader";
    const core = leader.core;
    if (!core.isVoter()) return `leader ${leader.id} is not a voter`;
    if (core.log.term(core.commitIndex) !== core.term) return `leader ${leader.id} has not committed an entry of term ${core.term}`;
    if (core.commitIndex !== core.log.lastIndex()) return `leader ${leader.id} has uncommitted entries`;
    const learner = core.members.find((member) => !member.voter);
    if (learner) return `learner ${learner.id} was not promoted`;
    if (!this.#admin.idle) return "a membership change is still in progress";
    for (const node of this.#members(leader)) {
      if (!node.up) return `member ${node.id} is down`;
      const other = node.core;
      if (other.term !== core.term || other.leaderId !== leader.id) return `member ${node.id} does not follow ${leader.id} in term ${core.term}`;
      if (node.appliedIndex !== core.commitIndex) return `member ${node.id} applied ${node.appliedIndex} of ${core.commitIndex}`;
      if (node.pendingProposals > 0) return `member ${node.id} has ${node.pendingProposals} unanswered proposals`;
    }
    const busy = this.#clients.find((client) => !client.stopped || !client.idle);
    if (busy) return `client ${busy.id} has not finished (writes ${busy.writesSinceHeal}, reads ${busy.readsSinceHeal} since healing)`;
    return null;
  }

  #finalChecks(): void {
    this.#checkPairwise();
    const leader = this.#currentLeader();
    if (!leader) throw new SimulationFailure("error", "no leader at the end of a finished run");
    const keys = [...this.scenario.keys, BARRIER_KEY];
    const expected = keys.map((key) => readKey(leader, key));
    for (const node of this.#members(leader)) {
      const values = keys.map((key) => readKey(node, key));
      for (let i = 0; i < keys.length; i++) {
        if (values[i] !== expected[i]) {
          throw new SimulationFailure(
            "safety",
            `member ${node.id} has ${keys[i]}=${values[i]} but leader ${leader.id} has ${expected[i]} at applied index ${node.appliedIndex}`,
          );
        }
      }
    }
    const verdict = checkLinearizable(this.#history);
    this.#linearizabilityStates = verdict.explored;
    if (!verdict.ok) {
      const lines = (verdict.counterexample ?? []).map(formatOperation);
      throw new SimulationFailure("linearizability", `${verdict.message ?? "history is not linearizable"}\n${lines.join("\n")}`);
    }
  }

  // ----------------------------------------------------------------- nodes

  #newNodeId(): NodeId {
    const id = `n${++this.#lastNodeNumber}`;
    this.#nodeNumbers.set(id, this.#lastNodeNumber);
    return id;
  }

  #createNode(id: NodeId, storage: SimStorage): SimNode {
    const number = this.#nodeNumbers.get(id) ?? 0;
    const prevTerm = (index: number): number => storage.entry(index - 1)?.term ?? 0;
    this.#checker.onDurableWrite(id, storage.load().entries, prevTerm);
    storage.onWrite = (entries) => this.#checker.onDurableWrite(id, entries, prevTerm);
    const node = new SimNode({
      id,
      config: this.scenario.raftConfig,
      tickMs: TICK_MS,
      storage,
      diskMode: this.scenario.diskMode,
      diskLatencyMs: this.scenario.diskLatencyMs,
      slowWriteRate: this.scenario.slowWriteRate,
      coreRandom: this.#root.fork(100 + 2 * number),
      diskRandom: this.#root.fork(101 + 2 * number),
      host: {
        now: () => this.#now,
        schedule: (delayMs, label, run) => this.#schedule(delayMs, label, run),
        send: (message) => this.#send(message),
        onApply: (from, entry) => this.#checker.onApply(from.id, entry),
        onCrash: (from, point) => this.#onCrash(from, point),
      },
    });
    this.#nodes.set(id, node);
    node.start();
    this.#checker.onStart(id, node.core);
    this.#startTicking(node);
    return node;
  }

  #restart(node: SimNode): void {
    node.start();
    this.#checker.onRestart(node.id, node.core);
    this.#startTicking(node);
  }

  #startTicking(node: SimNode): void {
    const incarnation = node.incarnation;
    const tick = (): void => {
      if (node.incarnation !== incarnation) return;
      node.tick();
      this.#schedule(TICK_MS, { kind: "tick", node: node.id }, tick);
    };
    this.#schedule(this.#root.int(1, TICK_MS), { kind: "tick", node: node.id }, tick);
  }

  #onCrash(node: SimNode, point: CrashPoint | "now"): void {
    this.#crashCounts[point]++;
    if (!node.retired && this.#phase === "chaos") this.#nemesis.scheduleRestart(node);
  }

  #send(message: Message): void {
    this.#checker.onSend(message);
    for (const delay of this.#network.route(message)) {
      const copy = cloneMessage(message);
      this.#schedule(delay, { kind: "deliver", node: message.to, detail: () => describeMessage(copy) }, () => {
        this.#mix(messageCode(copy));
        this.#mix(copy.term);
        this.#mix(this.#nodeNumbers.get(copy.from) ?? 0);
        if (!this.#network.canPass(copy.from, copy.to)) {
          this.#network.stats.blocked++;
          return;
        }
        const target = this.#nodes.get(copy.to);
        if (!target?.up) return;
        this.#network.stats.delivered++;
        target.receive(copy);
      });
    }
  }

  #liveNodes(): SimNode[] {
    return [...this.#nodes.values()].filter((node) => !node.retired);
  }

  /** The up leader with the highest term, or null. */
  #currentLeader(): SimNode | null {
    let best: SimNode | null = null;
    for (const node of this.#nodes.values()) {
      const core = node.coreOrNull;
      if (!core || core.role !== "leader") continue;
      if (!best || core.term > best.core.term) best = node;
    }
    return best;
  }

  /** Nodes in the leader's configuration. */
  #members(leader: SimNode): SimNode[] {
    const out: SimNode[] = [];
    for (const member of leader.core.members) {
      const node = this.#nodes.get(member.id);
      if (node) out.push(node);
    }
    return out;
  }

  #changeMembership(kind: "add" | "remove", removeLeader: boolean): boolean {
    if (!this.#admin.idle) return false;
    const leader = this.#currentLeader();
    if (!leader) return false;
    const members = leader.core.members;
    const target = this.scenario.nodeCount;
    const add = members.length < target || (members.length === target && kind === "add");
    if (add) {
      const id = this.#newNodeId();
      this.#createNode(id, new SimStorage());
      this.#note(`membership: add ${id}`);
      this.#admin.request({ type: "add", member: addresses(id) }, (committed) => this.#note(`membership: add ${id} ${committed ? "committed" : "not needed"}`), leader.id);
      return true;
    }
    const others = members.filter((member) => member.id !== leader.id);
    if (others.length === 0) return false;
    const removed = removeLeader ? leader.id : this.#clientRandom.pick(others).id;
    if (removed === leader.id) this.#admin.stats.leaderRemovals++;
    this.#note(`membership: remove ${removed}${removed === leader.id ? " (the leader)" : ""}`);
    this.#admin.request(
      { type: "remove", id: removed },
      (committed) => {
        this.#note(`membership: remove ${removed} ${committed ? "committed" : "not needed"}`);
        // Half of the removed nodes are shut down; the rest stay up, idle.
        if (committed && this.#clientRandom.chance(0.5)) this.#retire(removed);
      },
      leader.id,
    );
    return true;
  }

  #retire(id: NodeId): void {
    const node = this.#nodes.get(id);
    if (!node || node.retired) return;
    this.#note(`retire ${id}: shut down for good`);
    node.retired = true;
    node.crash(false);
  }

  // ------------------------------------------------------------ host views

  #workloadHost(): WorkloadHost {
    return {
      now: () => this.#now,
      schedule: (delayMs, kind, run) => this.#schedule(delayMs, { kind, node: null }, run),
      liveNodeIds: () => this.#liveNodes().map((node) => node.id),
      node: (id) => this.#nodes.get(id),
      roundTrip: (target, send, onReply) => this.#roundTrip(target, send, onReply),
      record: (operation) => this.#history.push(operation),
      nextOperationId: () => this.#nextOperationId++,
    };
  }

  /** Carries a client request to a node and the reply back, each way taking 1 to 3 ms; replies may be lost. */
  #roundTrip(
    target: NodeId,
    send: (node: SimNode, reply: (reply: NodeReply) => void) => void,
    onReply: (reply: NodeReply) => void,
  ): void {
    this.#schedule(this.#replyRandom.int(1, 3), { kind: "request", node: target }, () => {
      const node = this.#nodes.get(target);
      if (!node?.up || node.retired) return;
      const incarnation = node.incarnation;
      send(node, (reply) => {
        if (node.incarnation !== incarnation) return;
        const lossRate = this.#phase === "chaos" ? this.scenario.replyLossRate : 0;
        if (this.#replyRandom.chance(lossRate)) return;
        this.#schedule(this.#replyRandom.int(1, 3), { kind: "reply", node: target, detail: () => JSON.stringify(reply) }, () =>
          onReply(reply),
        );
      });
    });
  }

  #nemesisHost() {
    const simulation = this;
    return {
      now: () => simulation.#now,
      schedule: (delayMs: number, kind: string, run: () => void) => simulation.#schedule(delayMs, { kind, node: null }, run),
      get network() {
        return simulation.#network;
      },
      liveNodes: () => simulation.#liveNodes(),
      currentLeader: () => simulation.#currentLeader(),
      restart: (node: SimNode) => simulation.#restart(node),
      changeMembership: (kind: "add" | "remove", removeLeader: boolean) => simulation.#changeMembership(kind, removeLeader),
      chaosActive: () => simulation.#phase === "chaos",
      note: (text: string) => simulation.#note(text),
    };
  }

  // -------------------------------------------------------------- results

  #describeFailure(err: unknown): SimFailure {
    let kind: FailureKind = "error";
    let message = err instanceof Error ? err.message : String(err);
    if (err instanceof SimulationFailure) kind = err.kind;
    else if (err instanceof InvariantViolation) kind = "safety";
    else if (err instanceof InvariantError) {
      kind = "safety";
      message = `core assertion: ${message}`;
    } else if (err instanceof StorageContractError) {
      kind = "safety";
      message = `storage contract: ${message}`;
    } else if (err instanceof Error && err.stack) {
      message = `${message}\n${err.stack}`;
    }
    return {
      kind,
      message,
      step: this.#step,
      timeMs: this.#now,
      recentEvents: this.#recent.map((event, i) => formatEvent(this.#step - this.#recent.length + 1 + i, event.time, event.label)),
    };
  }

  #clusterSummary(): string {
    const parts: string[] = [];
    for (const node of this.#nodes.values()) {
      if (node.retired) continue;
      const core = node.coreOrNull;
      if (!core) {
        parts.push(`${node.id}:down`);
        continue;
      }
      let member = "";
      if (!core.isMember()) member = "/nonmember";
      else if (!core.isVoter()) member = "/learner";
      parts.push(
        `${node.id}:${core.role}${member} t${core.term} last=${core.log.lastIndex()} commit=${core.commitIndex} applied=${node.appliedIndex} leader=${core.leaderId ?? "-"}`,
      );
    }
    return `[${parts.join(", ")}] network: ${this.#network.describePartition()}`;
  }

  #stats(): SimStats {
    let tornWrites = 0;
    let maxTerm = 0;
    let commitIndex = 0;
    for (const node of this.#nodes.values()) {
      tornWrites += node.stats.tornWrites;
      const core = node.coreOrNull;
      if (core) {
        maxTerm = Math.max(maxTerm, core.term);
        commitIndex = Math.max(commitIndex, core.commitIndex);
      }
    }
    const sum = (pick: (client: SimClient) => number) => this.#clients.reduce((total, client) => total + pick(client), 0);
    return {
      steps: this.#step,
      simTimeMs: this.#now,
      nodesCreated: this.#nodes.size,
      network: { ...this.#network.stats },
      nemesis: { ...this.#nemesis.stats },
      admin: { ...this.#admin.stats },
      crashes: { ...this.#crashCounts },
      tornWrites,
      operations: this.#history.length,
      acked: sum((client) => client.stats.acked),
      reads: sum((client) => client.stats.reads),
      unknown: sum((client) => client.stats.unknown),
      maxTerm,
      commitIndex,
      linearizabilityStates: this.#linearizabilityStates,
      recoveryMs: this.#recoveryMs,
    };
  }
}

/** Runs one seed to completion and reports what happened; never throws for a failing seed. */
export function runSimulation(seed: number, options: RunOptions = {}): SimResult {
  const overrides: ScenarioOverrides = {};
  if (options.nodes !== undefined) overrides.nodes = options.nodes;
  if (options.diskMode !== undefined) overrides.diskMode = options.diskMode;
  return new Simulation(scenarioFor(seed, overrides), options.trace).run();
}

// ---------------------------------------------------------------- helpers

function addresses(id: NodeId): { id: NodeId; raftAddr: string; clientAddr: string } {
  return { id, raftAddr: `sim-raft-${id}`, clientAddr: `sim-client-${id}` };
}

function readKey(node: SimNode, key: string): string | null {
  const value = node.store.get(new TextEncoder().encode(key));
  return value === undefined ? null : new TextDecoder().decode(value);
}
