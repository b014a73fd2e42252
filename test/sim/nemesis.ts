// The fault injector. During the chaos phase it acts at random intervals.
// Its faults are crashes (at once or at a point inside the ready handling)
// and restarts, pauses (a stalled process whose clock stops), bursts of
// leader churn, and traps that crash or isolate each newly elected leader.
// It also makes partitions of three shapes, changes message loss,
// duplication and delay, changes membership (including removing the
// leader) and transfers leadership.

import type { NodeId } from "../../src/raft/types.ts";
import type { NetworkConditions, SimNetwork } from "./network.ts";
import { CRASH_POINTS, type SimNode } from "./node.ts";
import type { SimRandom } from "./random.ts";

/** What the nemesis needs from the simulation. */
export interface NemesisHost {
  now(): number;
  schedule(delayMs: number, kind: string, run: () => void): void;
  readonly network: SimNetwork;
  /** Nodes that are not retired, up or down. */
  liveNodes(): SimNode[];
  /** The up node that is leader in the highest term, if any. */
  currentLeader(): SimNode | null;
  restart(node: SimNode): void;
  /** Starts a membership change unless one is in progress; returns whether it started. */
  changeMembership(kind: "add" | "remove", removeLeader: boolean): boolean;
  /** Whether faults are still allowed (false once the liveness phase starts). */
  chaosActive(): boolean;
  /** Adds a line to the trace describing a fault. */
  note(text: string): void;
}

export interface NemesisStats {
  crashes: number;
  armedCrashes: number;
  restarts: number;
  partitions: number;
  weatherChanges: number;
  membershipChanges: number;
  transfers: number;
  leaderChurns: number;
  leaderTraps: number;
  pauses: number;
}

export interface NemesisSettings {
  /** Whether crashes are injected: plain ones, leader churn and trapped leaders that crash. */
  crashes: boolean;
  /** Range of the pause between two actions, in simulated milliseconds. */
  intervalMs: [number, number];
  /** Maximum membership changes in one run. */
  maxMembershipChanges: number;
  /** Maximum loss, duplication and slow-path rates that a weather change may pick. */
  maxDropRate: number;
  maxDuplicateRate: number;
  maxSlowRate: number;
}

export class Nemesis {
  readonly stats: NemesisStats = {
    crashes: 0,
    armedCrashes: 0,
    restarts: 0,
    partitions: 0,
    weatherChanges: 0,
    membershipChanges: 0,
    transfers: 0,
    leaderChurns: 0,
    leaderTraps: 0,
    pauses: 0,
  };
  readonly #host: NemesisHost;
  readonly #random: SimRandom;
  readonly #settings: NemesisSettings;
  #partitionToken = 0;
  /** Until this time every newly elected leader may be crashed or isolated at once. */
  #trapUntil = -1;

  constructor(host: NemesisHost, random: SimRandom, settings: NemesisSettings) {
    this.#host = host;
    this.#random = random;
    this.#settings = settings;
  }

  start(): void {
    this.#scheduleNext();
  }

  #scheduleNext(): void {
    const [min, max] = this.#settings.intervalMs;
    this.#host.schedule(this.#random.int(min, max), "nemesis", () => {
      if (!this.#host.chaosActive()) return;
      this.#act();
      this.#scheduleNext();
    });
  }

  #act(): void {
    const roll = this.#random.next();
    if (roll < 0.24) {
      if (this.#settings.crashes) this.#crash();
      else this.#pause();
    } else if (roll < 0.3) {
      if (this.#settings.crashes) this.#churnLeaders();
    }
    else if (roll < 0.36) this.#setTrap();
    else if (roll < 0.42) this.#pause();
    else if (roll < 0.54) this.#partition();
    else if (roll < 0.6) this.#changeWeather();
    else if (roll < 0.72) this.#changeMembership();
    else if (roll < 0.8) this.#transfer();
    else if (roll < 0.88 && this.#host.network.partition !== "none") {
      this.#host.note("heal partition");
      this.#host.network.heal();
    }
    // Otherwise do nothing this round and let the cluster make progress.
  }

  /** Crashes an up node, preferring the leader, at once or at a point inside its next ready batch. */
  #crash(): void {
    const up = this.#host.liveNodes().filter((node) => node.up);
    if (up.length === 0) return;
    const leader = this.#host.currentLeader();
    this.#crashNode(leader && this.#random.chance(0.4) ? leader : this.#random.pick(up));
  }

  /**
   * Crashes whichever node leads, several times in a row and soon after
   * each election, so that leaders die with entries that reached only some
   * followers or only their own memory (the histories of Raft thesis figure 3.7).
   */
  #churnLeaders(): void {
    this.stats.leaderChurns++;
    let rounds = this.#random.int(2, 5);
    this.#host.note(`leader churn: crash ${rounds} leaders in a row`);
    const round = (): void => {
      if (!this.#host.chaosActive() || rounds-- <= 0) return;
      const leader = this.#host.currentLeader();
      if (leader) this.#crashNode(leader);
      this.#host.schedule(this.#random.int(15, 80), "nemesis.churn", round);
    };
    round();
  }

  #setTrap(): void {
    const duration = this.#random.int(200, 1000);
    this.#trapUntil = this.#host.now() + duration;
    this.#host.note(`trap new leaders for ${duration} ms`);
  }

  /** Stalls an up node, preferring the leader, for 20 to 600 ms. */
  #pause(): void {
    const up = this.#host.liveNodes().filter((node) => node.up && !node.paused);
    if (up.length === 0) return;
    const leader = this.#host.currentLeader();
    const node = leader && !leader.paused && this.#random.chance(0.5) ? leader : this.#random.pick(up);
    node.pause();
    this.stats.pauses++;
    const duration = this.#random.int(20, 600);
    this.#host.note(`pause ${node.id} for ${duration} ms`);
    const incarnation = node.incarnation;
    this.#host.schedule(duration, "nemesis.resume", () => {
      if (node.incarnation !== incarnation || !node.paused) return;
      this.#host.note(`resume ${node.id}`);
      node.resume();
    });
  }

  /**
   * Called by the simulation when a node becomes leader. While a trap is
   * set, the new leader is often crashed or cut off before its first
   * entries reach anyone, which leaves entries of its term on its own disk only.
   */
  onNewLeader(node: SimNode): void {
    if (!this.#host.chaosActive() || this.#host.now() > this.#trapUntil || !this.#random.chance(0.6)) return;
    this.stats.leaderTraps++;
    const incarnation = node.incarnation;
    const crash = this.#settings.crashes && this.#random.chance(0.5);
    // Messages take 1 to 4 ms on a healthy network, so a short delay lets
    // part of the new leader's first appends through and a long one most.
    const delay = this.#random.chance(0.5) ? this.#random.int(0, 3) : this.#random.int(0, 40);
    this.#host.schedule(delay, "nemesis.trap", () => {
      if (node.incarnation !== incarnation || !node.up || !this.#host.chaosActive()) return;
      if (crash) {
        this.#crashNode(node);
        return;
      }
      const others = this.#host.liveNodes().map((other) => other.id).filter((id) => id !== node.id);
      this.#host.network.split([node.id], others);
      this.#host.note(`trap: isolate new leader ${node.id}`);
      const token = ++this.#partitionToken;
      this.#host.schedule(this.#random.int(20, 300), "nemesis.healPartition", () => {
        if (token === this.#partitionToken) this.#host.network.heal();
      });
    });
  }

  #crashNode(node: SimNode): void {
    this.stats.crashes++;
    if (this.#random.chance(0.4)) {
      const tear = this.#random.chance(0.5);
      this.#host.note(`crash ${node.id} now${tear ? ", tearing its oldest write in flight" : ""}`);
      node.crash(tear);
      return;
    }
    this.stats.armedCrashes++;
    const point = this.#random.pick(CRASH_POINTS);
    this.#host.note(`arm crash of ${node.id} at ${point}`);
    node.armCrash(point);
    const incarnation = node.incarnation;
    // A node with no batch to handle soon is crashed at once instead.
    this.#host.schedule(this.#random.int(20, 120), "nemesis.crashNow", () => {
      if (node.incarnation !== incarnation || !node.up || !this.#host.chaosActive()) return;
      this.#host.note(`crash ${node.id} now: the armed crash point was not reached`);
      node.crash(false);
    });
  }

  /** Restarts a crashed node after a short or a long outage; the simulation calls it for every crash. */
  scheduleRestart(node: SimNode): void {
    const delay = this.#random.chance(0.6) ? this.#random.int(10, 300) : this.#random.int(300, 1500);
    const incarnation = node.incarnation;
    this.#host.schedule(delay, "nemesis.restart", () => {
      if (node.incarnation !== incarnation || node.up || node.retired || !this.#host.chaosActive()) return;
      this.stats.restarts++;
      this.#host.note(`restart ${node.id}`);
      this.#host.restart(node);
    });
  }

  #partition(): void {
    const ids = this.#host.liveNodes().map((node) => node.id);
    if (ids.length < 2) return;
    const network = this.#host.network;
    const shuffled = this.#random.shuffle(ids);
    const shape = this.#random.int(0, 2);
    if (shape === 0) {
      const cut = this.#random.int(1, shuffled.length - 1);
      network.split(shuffled.slice(0, cut), shuffled.slice(cut));
    } else if (shape === 1) {
      const cut = this.#random.int(1, shuffled.length - 1);
      network.oneWay(shuffled.slice(0, cut), shuffled.slice(cut));
    } else {
      network.bridge(shuffled[0], shuffled[1], shuffled);
    }
    this.stats.partitions++;
    this.#host.note(`partition ${network.describePartition()}`);
    const token = ++this.#partitionToken;
    this.#host.schedule(this.#random.int(50, 1500), "nemesis.healPartition", () => {
      if (token !== this.#partitionToken) return;
      this.#host.note("heal partition");
      network.heal();
    });
  }

  #changeWeather(): void {
    const s = this.#settings;
    const calm = this.#random.chance(0.3);
    const conditions: NetworkConditions = {
      ...this.#host.network.conditions,
      dropRate: calm ? 0 : this.#random.next() * s.maxDropRate,
      duplicateRate: calm ? 0 : this.#random.next() * s.maxDuplicateRate,
      slowRate: calm ? 0 : this.#random.next() * s.maxSlowRate,
    };
    this.#host.network.conditions = conditions;
    this.stats.weatherChanges++;
    this.#host.note(
      `network: drop ${conditions.dropRate.toFixed(2)}, duplicate ${conditions.duplicateRate.toFixed(2)}, slow ${conditions.slowRate.toFixed(2)}`,
    );
  }

  #changeMembership(): void {
    if (this.stats.membershipChanges >= this.#settings.maxMembershipChanges) return;
    const kind = this.#random.chance(0.5) ? "add" : "remove";
    if (this.#host.changeMembership(kind, this.#random.chance(0.4))) this.stats.membershipChanges++;
  }

  #transfer(): void {
    const leader = this.#host.currentLeader();
    if (!leader) return;
    const voters = leader.core.members.filter((member) => member.voter && member.id !== leader.id).map((member) => member.id);
    if (voters.length === 0) return;
    const target: NodeId = this.#random.pick(voters);
    this.#host.note(`transfer leadership from ${leader.id} to ${target}`);
    leader.transferLeadership(target);
    this.stats.transfers++;
  }
}
