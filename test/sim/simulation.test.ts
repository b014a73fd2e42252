import { describe, expect, test } from "bun:test";

import { CI_FIXED_SHAPES, CI_SEED_COUNT, REGRESSION_SEEDS } from "./seeds.ts";
import { runSimulation, type ScenarioOverrides, type SimResult } from "./simulation.ts";

/** Seeds per test, so that one test stays well inside the per-test timeout. */
const SEEDS_PER_TEST = 100;

/** Runs the seeds and returns one line per failing seed, with the command that replays it. */
function failingSeeds(seeds: number[], overrides: ScenarioOverrides = {}): string[] {
  const out: string[] = [];
  for (const seed of seeds) {
    const result = runSimulation(seed, overrides);
    if (result.ok) continue;
    const failure = result.failure!;
    let replay = `bun scripts/sim.ts --replay ${seed}`;
    if (overrides.nodes !== undefined) replay += ` --nodes ${overrides.nodes}`;
    if (overrides.diskMode !== undefined) replay += ` --disk ${overrides.diskMode}`;
    out.push(`seed ${seed}: ${failure.kind} at event ${failure.step} (${failure.timeMs} ms): ${failure.message} [replay: ${replay}]`);
  }
  return out;
}

function range(start: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => start + i);
}

describe("simulation", () => {
  for (let start = 1; start <= CI_SEED_COUNT; start += SEEDS_PER_TEST) {
    const count = Math.min(SEEDS_PER_TEST, CI_SEED_COUNT - start + 1);
    test(`seeds ${start}-${start + count - 1} pass`, () => {
      expect(failingSeeds(range(start, count))).toEqual([]);
    });
  }

  for (const shape of CI_FIXED_SHAPES) {
    test(`${shape.name} seeds pass`, () => {
      expect(failingSeeds(range(shape.start, shape.count), shape.overrides)).toEqual([]);
    });
  }

  test("regression seeds pass", () => {
    const failed: string[] = [];
    for (const regression of REGRESSION_SEEDS) failed.push(...failingSeeds([regression.seed], regression.overrides));
    expect(failed).toEqual([]);
  });
});

describe("simulation determinism", () => {
  function summary(result: SimResult): unknown {
    return { ok: result.ok, hash: result.traceHash, stats: result.stats, scenario: result.scenario };
  }

  test("same seed replays exactly", () => {
    for (const seed of [7, 1234, 99_999]) {
      const first = runSimulation(seed);
      const second = runSimulation(seed);
      expect(second.traceHash).toBe(first.traceHash);
      expect(summary(second)).toEqual(summary(first));
    }
  });

  test("replay is independent of earlier runs", () => {
    const alone = runSimulation(31);
    for (const seed of [1, 2, 3]) runSimulation(seed);
    expect(runSimulation(31).traceHash).toBe(alone.traceHash);
  });

  test("different seeds give different runs", () => {
    const hashes = new Set(range(1, 20).map((seed) => runSimulation(seed).traceHash));
    expect(hashes.size).toBe(20);
  });

  test("overrides fix cluster size and disk model", () => {
    const result = runSimulation(5, { nodes: 5, diskMode: "sync" });
    expect(result.scenario.nodeCount).toBe(5);
    expect(result.scenario.diskMode).toBe("sync");
    expect(result.ok).toBe(true);
  });
});

describe("simulation coverage", () => {
  test("faults of every kind are injected", () => {
    const totals = { crashes: 0, armed: 0, torn: 0, partitions: 0, pauses: 0, membership: 0, leaderRemovals: 0, transfers: 0, dropped: 0, duplicated: 0, unknown: 0 };
    for (const seed of range(1, 40)) {
      const stats = runSimulation(seed).stats;
      totals.crashes += stats.nemesis.crashes;
      totals.armed += stats.nemesis.armedCrashes;
      totals.torn += stats.tornWrites;
      totals.partitions += stats.nemesis.partitions;
      totals.pauses += stats.nemesis.pauses;
      totals.membership += stats.nemesis.membershipChanges;
      totals.leaderRemovals += stats.admin.leaderRemovals;
      totals.transfers += stats.nemesis.transfers;
      totals.dropped += stats.network.dropped;
      totals.duplicated += stats.network.duplicated;
      totals.unknown += stats.unknown;
    }
    for (const [fault, count] of Object.entries(totals)) {
      expect({ fault, injected: count > 0 }).toEqual({ fault, injected: true });
    }
  });
});
