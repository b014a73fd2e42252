// The simulated network between Raft nodes: per-message loss, duplication
// and delay (a long delay reorders a message behind later ones), plus
// partitions expressed as a set of blocked directed links.

import type { Message, NodeId } from "../../src/raft/types.ts";
import type { SimRandom } from "./random.ts";

export interface NetworkConditions {
  /** Probability that a message is lost. */
  dropRate: number;
  /** Probability that a message is delivered twice, each copy with its own delay. */
  duplicateRate: number;
  /** Probability that a message takes the slow path, which reorders it. */
  slowRate: number;
  /** Normal one-way delay range in simulated milliseconds. */
  minDelayMs: number;
  maxDelayMs: number;
  /** Delay range of the slow path in simulated milliseconds. */
  slowMinDelayMs: number;
  slowMaxDelayMs: number;
}

export const HEALTHY_NETWORK: NetworkConditions = {
  dropRate: 0,
  duplicateRate: 0,
  slowRate: 0,
  minDelayMs: 1,
  maxDelayMs: 4,
  slowMinDelayMs: 20,
  slowMaxDelayMs: 150,
};

export type PartitionKind = "none" | "split" | "oneWay" | "bridge";

export interface NetworkStats {
  sent: number;
  delivered: number;
  dropped: number;
  duplicated: number;
  blocked: number;
}

export class SimNetwork {
  conditions: NetworkConditions = { ...HEALTHY_NETWORK };
  partition: PartitionKind = "none";
  readonly stats: NetworkStats = { sent: 0, delivered: 0, dropped: 0, duplicated: 0, blocked: 0 };
  /** Blocked directed links, as "from>to". */
  #blocked = new Set<string>();
  readonly #random: SimRandom;

  constructor(random: SimRandom) {
    this.#random = random;
  }

  /** Returns whether a message from `from` to `to` can pass now. */
  canPass(from: NodeId, to: NodeId): boolean {
    return !this.#blocked.has(`${from}>${to}`);
  }

  /**
   * Returns the delivery delays of one message: none when it is lost or
   * blocked, two when it is duplicated.
   */
  route(message: Message): number[] {
    this.stats.sent++;
    if (!this.canPass(message.from, message.to)) {
      this.stats.blocked++;
      return [];
    }
    if (this.#random.chance(this.conditions.dropRate)) {
      this.stats.dropped++;
      return [];
    }
    const delays = [this.#delay()];
    if (this.#random.chance(this.conditions.duplicateRate)) {
      this.stats.duplicated++;
      delays.push(this.#delay());
    }
    return delays;
  }

  #delay(): number {
    const c = this.conditions;
    if (this.#random.chance(c.slowRate)) return this.#random.int(c.slowMinDelayMs, c.slowMaxDelayMs);
    return this.#random.int(c.minDelayMs, c.maxDelayMs);
  }

  heal(): void {
    this.#blocked.clear();
    this.partition = "none";
  }

  /** Cuts every link between the two groups, in both directions. */
  split(left: readonly NodeId[], right: readonly NodeId[]): void {
    this.heal();
    this.partition = "split";
    for (const a of left) {
      for (const b of right) {
        this.#blocked.add(`${a}>${b}`);
        this.#blocked.add(`${b}>${a}`);
      }
    }
  }

  /** Blocks messages from each node in `senders` to each node in `receivers`, but not the reverse. */
  oneWay(senders: readonly NodeId[], receivers: readonly NodeId[]): void {
    this.heal();
    this.partition = "oneWay";
    for (const a of senders) {
      for (const b of receivers) {
        if (a !== b) this.#blocked.add(`${a}>${b}`);
      }
    }
  }

  /** Cuts `isolated` from every node in `all` except `peer`, in both directions. */
  bridge(isolated: NodeId, peer: NodeId, all: readonly NodeId[]): void {
    this.heal();
    this.partition = "bridge";
    for (const other of all) {
      if (other === isolated || other === peer) continue;
      this.#blocked.add(`${isolated}>${other}`);
      this.#blocked.add(`${other}>${isolated}`);
    }
  }

  describePartition(): string {
    return this.#blocked.size === 0 ? "none" : `${this.partition}: ${[...this.#blocked].sort().join(" ")} blocked`;
  }
}
