// The scenario of a run: everything its seed decides before the run starts.

import type { RaftConfig } from "../../src/raft/config.ts";
import type { NemesisSettings } from "./nemesis.ts";
import type { DiskMode } from "./node.ts";
import { SimRandom, mixSeed } from "./random.ts";

/** Everything a seed decides about a run before it starts. */
export interface Scenario {
  seed: number;
  nodeCount: 3 | 5;
  diskMode: DiskMode;
  /** Write latency range of the pipelined disk model, in simulated milliseconds. */
  diskLatencyMs: [number, number];
  /** Probability that a pipelined write stalls for 50 to 150 ms. */
  slowWriteRate: number;
  raftConfig: RaftConfig;
  clientCount: number;
  keys: string[];
  /**
   * Whether clients read at the "lease" level, served from the leader's map
   * while it holds a lease, instead of always through read-index. The core
   * documents that a follower that crashes and restarts voids leases, so
   * these runs inject no crashes.
   */
  leaseReads: boolean;
  requestTimeoutMs: number;
  chaosMs: number;
  replyLossRate: number;
  nemesis: NemesisSettings;
}

export interface ScenarioOverrides {
  nodes?: 3 | 5;
  diskMode?: DiskMode;
}

/** Derives the scenario of a seed; the same seed and overrides always give the same scenario. */
export function scenarioFor(seed: number, overrides: ScenarioOverrides = {}): Scenario {
  const random = new SimRandom(mixSeed(seed, 0x5ce0));
  const nodeCount = random.chance(0.5) ? 3 : 5;
  const diskMode: DiskMode = random.chance(0.5) ? "sync" : "pipelined";
  const electionTicks = random.int(5, 14);
  const heartbeatTicks = electionTicks >= 8 && random.chance(0.3) ? 2 : 1;
  const keyCount = random.int(2, 4);
  const leaseReads = random.chance(0.3);
  return {
    seed,
    nodeCount: overrides.nodes ?? nodeCount,
    diskMode: overrides.diskMode ?? diskMode,
    diskLatencyMs: [random.int(0, 2), random.int(3, 25)],
    slowWriteRate: random.pick([0, 0.02, 0.1]),
    raftConfig: withInflightBytes({
      electionTicks,
      heartbeatTicks,
      maxAppendBytes: random.pick([1024, 2048, 1 << 20]),
      maxInflightAppends: random.pick([1, 2, 4, 64]),
      preVote: random.chance(0.8),
      checkQuorum: random.chance(0.8),
    }),
    clientCount: random.int(2, 4),
    keys: Array.from({ length: keyCount }, (_, i) => `k${i}`),
    leaseReads,
    requestTimeoutMs: random.int(200, 800),
    chaosMs: random.int(1500, 4000),
    replyLossRate: random.pick([0, 0.01, 0.05]),
    nemesis: {
      crashes: !leaseReads,
      intervalMs: [random.int(5, 40), random.int(60, 300)],
      maxMembershipChanges: random.int(0, 4),
      maxDropRate: random.pick([0.05, 0.2, 0.4]),
      maxDuplicateRate: random.pick([0.02, 0.1]),
      maxSlowRate: random.pick([0.02, 0.1, 0.2]),
    },
  };
}

/**
 * Sets the in-flight byte window to four messages' worth, so that small
 * message limits also bound the window by bytes. Derived rather than drawn,
 * so that every seed keeps the scenario it had before the window existed.
 */
function withInflightBytes(config: Omit<RaftConfig, "maxInflightBytes">): RaftConfig {
  return { ...config, maxInflightBytes: config.maxAppendBytes * 4 };
}
