// Runs the deterministic cluster simulator over many seeds in parallel, or
// replays one seed.
//
//   bun scripts/sim.ts --seeds 20000 [--start N] [--nodes 3|5] [--disk sync|pipelined] [--workers N] [--fail-fast]
//   bun scripts/sim.ts --replay SEED [--nodes 3|5] [--disk sync|pipelined] [--verbose]
//
// Each worker thread runs whole seeds; a seed's outcome does not depend on
// which worker runs it. The process exits with status 1 when any seed fails
// and prints, for each failure, the command that replays it.

import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import { isMainThread, parentPort, Worker } from "node:worker_threads";
import type { DiskMode } from "../test/sim/node.ts";
import { runSimulation, type RunOptions, type SimResult } from "../test/sim/simulation.ts";

const USAGE = `usage:
  bun scripts/sim.ts --seeds COUNT [--start SEED] [--nodes 3|5] [--disk sync|pipelined] [--workers N] [--fail-fast]
  bun scripts/sim.ts --replay SEED [--nodes 3|5] [--disk sync|pipelined] [--verbose]

  --seeds COUNT   number of consecutive seeds to run (default 1000)
  --start SEED    first seed (default: a random seed above 1,000,000, printed at start)
  --nodes 3|5     cluster size for every seed (default: chosen by each seed)
  --disk MODE     disk model for every seed: sync or pipelined (default: chosen by each seed)
  --workers N     worker threads (default: the number of CPUs)
  --fail-fast     stop at the first failing seed
  --replay SEED   run one seed in this process and print its failure and last events
  --verbose       with --replay, print every event`;

/** Seeds handed to a worker at a time. */
const CHUNK_SIZE = 25;
/** Seconds between progress lines. */
const PROGRESS_INTERVAL_S = 10;

/** Outcome of one seed as a worker reports it: the result without the scenario. */
interface SeedReport {
  seed: number;
  ok: boolean;
  failure?: SimResult["failure"];
  traceHash: string;
  nodeCount: number;
  diskMode: DiskMode;
  stats: SimResult["stats"];
}

type WorkerRequest = { seeds: number[]; options: RunOptions };
type WorkerResponse = { reports: SeedReport[] };

if (isMainThread) {
  await main();
} else {
  parentPort!.on("message", (request: WorkerRequest) => {
    const reports = request.seeds.map((seed) => toReport(runSimulation(seed, request.options)));
    parentPort!.postMessage({ reports } satisfies WorkerResponse);
  });
}

function toReport(result: SimResult): SeedReport {
  const report: SeedReport = {
    seed: result.seed,
    ok: result.ok,
    traceHash: result.traceHash,
    nodeCount: result.scenario.nodeCount,
    diskMode: result.scenario.diskMode,
    stats: result.stats,
  };
  if (result.failure) report.failure = result.failure;
  return report;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Bun.argv.slice(2),
    options: {
      seeds: { type: "string" },
      start: { type: "string" },
      nodes: { type: "string" },
      disk: { type: "string" },
      workers: { type: "string" },
      replay: { type: "string" },
      verbose: { type: "boolean", default: false },
      "fail-fast": { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }

  const options: RunOptions = {};
  if (values.nodes !== undefined) {
    if (values.nodes !== "3" && values.nodes !== "5") fail(`invalid --nodes ${values.nodes}: expected 3 or 5`);
    options.nodes = values.nodes === "3" ? 3 : 5;
  }
  if (values.disk !== undefined) {
    if (values.disk !== "sync" && values.disk !== "pipelined") fail(`invalid --disk ${values.disk}: expected sync or pipelined`);
    options.diskMode = values.disk;
  }

  if (values.replay !== undefined) {
    process.exit(replay(parseInteger(values.replay, "--replay"), options, values.verbose) ? 0 : 1);
  }

  const count = values.seeds === undefined ? 1000 : parseInteger(values.seeds, "--seeds");
  const start = values.start === undefined ? randomStart() : parseInteger(values.start, "--start");
  const workers = values.workers === undefined ? availableParallelism() : parseInteger(values.workers, "--workers");
  if (count < 1) fail(`invalid --seeds ${count}: expected at least 1`);
  if (workers < 1) fail(`invalid --workers ${workers}: expected at least 1`);
  const ok = await runMany(start, count, workers, options, values["fail-fast"]);
  process.exit(ok ? 0 : 1);
}

function replay(seed: number, options: RunOptions, verbose: boolean): boolean {
  const runOptions: RunOptions = { ...options };
  if (verbose) runOptions.trace = (line) => console.log(line);
  const result = runSimulation(seed, runOptions);
  console.log(`seed ${seed}: scenario ${JSON.stringify(result.scenario)}`);
  console.log(`seed ${seed}: ${result.ok ? "passed" : "FAILED"}, ${result.stats.steps} events, ${result.stats.simTimeMs} simulated ms, trace hash ${result.traceHash}`);
  console.log(`stats ${JSON.stringify(result.stats)}`);
  if (result.failure) {
    const failure = result.failure;
    console.log(`${failure.kind} failure at event ${failure.step} (${failure.timeMs} ms): ${failure.message}`);
    if (!verbose) {
      console.log("last events:");
      for (const line of failure.recentEvents) console.log(`  ${line}`);
    }
  }
  return result.ok;
}

function replayCommand(seed: number, options: RunOptions): string {
  let command = `bun scripts/sim.ts --replay ${seed}`;
  if (options.nodes !== undefined) command += ` --nodes ${options.nodes}`;
  if (options.diskMode !== undefined) command += ` --disk ${options.diskMode}`;
  return command;
}

interface Totals {
  seeds: number;
  failed: number;
  steps: number;
  simTimeMs: number;
  crashes: number;
  armedCrashes: number;
  restarts: number;
  pauses: number;
  leaderChurns: number;
  leaderTraps: number;
  partitions: number;
  weatherChanges: number;
  membershipChanges: number;
  transfers: number;
  tornWrites: number;
  dropped: number;
  duplicated: number;
  operations: number;
  acked: number;
  unknown: number;
  maxRecoveryMs: number;
}

async function runMany(start: number, count: number, workerCount: number, options: RunOptions, failFast: boolean): Promise<boolean> {
  const end = start + count;
  console.log(`running seeds ${start} to ${end - 1} on ${workerCount} workers${options.nodes ? `, ${options.nodes} nodes` : ""}${options.diskMode ? `, ${options.diskMode} disk` : ""}`);
  const totals: Totals = {
    seeds: 0,
    failed: 0,
    steps: 0,
    simTimeMs: 0,
    crashes: 0,
    armedCrashes: 0,
    restarts: 0,
    pauses: 0,
    leaderChurns: 0,
    leaderTraps: 0,
    partitions: 0,
    weatherChanges: 0,
    membershipChanges: 0,
    transfers: 0,
    tornWrites: 0,
    dropped: 0,
    duplicated: 0,
    operations: 0,
    acked: 0,
    unknown: 0,
    maxRecoveryMs: 0,
  };
  const failures: SeedReport[] = [];
  const startedAt = performance.now();
  let lastProgress = startedAt;
  let next = start;
  let stopping = false;

  const takeChunk = (): number[] => {
    const seeds: number[] = [];
    while (!stopping && next < end && seeds.length < CHUNK_SIZE) seeds.push(next++);
    return seeds;
  };

  const onReport = (report: SeedReport): void => {
    totals.seeds++;
    const s = report.stats;
    totals.steps += s.steps;
    totals.simTimeMs += s.simTimeMs;
    totals.crashes += s.nemesis.crashes;
    totals.armedCrashes += s.nemesis.armedCrashes;
    totals.restarts += s.nemesis.restarts;
    totals.pauses += s.nemesis.pauses;
    totals.leaderChurns += s.nemesis.leaderChurns;
    totals.leaderTraps += s.nemesis.leaderTraps;
    totals.partitions += s.nemesis.partitions;
    totals.weatherChanges += s.nemesis.weatherChanges;
    totals.membershipChanges += s.nemesis.membershipChanges;
    totals.transfers += s.nemesis.transfers;
    totals.tornWrites += s.tornWrites;
    totals.dropped += s.network.dropped;
    totals.duplicated += s.network.duplicated;
    totals.operations += s.operations;
    totals.acked += s.acked;
    totals.unknown += s.unknown;
    totals.maxRecoveryMs = Math.max(totals.maxRecoveryMs, s.recoveryMs ?? 0);
    if (report.ok) return;
    totals.failed++;
    failures.push(report);
    const failure = report.failure!;
    console.log(`FAIL seed ${report.seed} (${report.nodeCount} nodes, ${report.diskMode} disk): ${failure.kind} at event ${failure.step}, ${failure.timeMs} ms: ${failure.message.split("\n")[0]}`);
    console.log(`  replay: ${replayCommand(report.seed, options)}`);
    if (failFast) stopping = true;
  };

  const runWorker = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const worker = new Worker(new URL(import.meta.url));
      const feed = (): void => {
        const seeds = takeChunk();
        if (seeds.length === 0) {
          void worker.terminate().then(() => resolve());
          return;
        }
        worker.postMessage({ seeds, options } satisfies WorkerRequest);
      };
      worker.on("message", (response: WorkerResponse) => {
        for (const report of response.reports) onReport(report);
        const now = performance.now();
        if (now - lastProgress >= PROGRESS_INTERVAL_S * 1000) {
          lastProgress = now;
          const rate = totals.seeds / ((now - startedAt) / 1000);
          console.log(`progress: ${totals.seeds}/${count} seeds, ${totals.failed} failed, ${rate.toFixed(0)} seeds/s`);
        }
        feed();
      });
      worker.on("error", (err) => reject(err));
      feed();
    });

  await Promise.all(Array.from({ length: workerCount }, () => runWorker()));

  const wallS = (performance.now() - startedAt) / 1000;
  const lines = [
    `seeds run:            ${totals.seeds} (${start} to ${start + totals.seeds - 1}), ${totals.failed} failed`,
    `wall time:            ${wallS.toFixed(1)} s on ${workerCount} workers (${(totals.seeds / wallS).toFixed(1)} seeds/s)`,
    `events:               ${totals.steps} (${Math.round(totals.steps / totals.seeds)} per seed)`,
    `simulated time:       ${(totals.simTimeMs / 1000).toFixed(0)} s (${Math.round(totals.simTimeMs / totals.seeds)} ms per seed)`,
    `crashes / restarts:   ${totals.crashes} (${totals.armedCrashes} at a point inside a ready batch) / ${totals.restarts}, torn writes ${totals.tornWrites}`,
    `leader faults:        ${totals.leaderChurns} churn bursts, ${totals.leaderTraps} new leaders crashed or isolated`,
    `pauses:               ${totals.pauses}`,
    `partitions:           ${totals.partitions}`,
    `network changes:      ${totals.weatherChanges}; messages dropped ${totals.dropped}, duplicated ${totals.duplicated}`,
    `membership changes:   ${totals.membershipChanges}; leadership transfers ${totals.transfers}`,
    `client operations:    ${totals.operations} recorded, ${totals.acked} writes acknowledged, ${totals.unknown} timed out`,
    `slowest recovery:     ${totals.maxRecoveryMs} ms after healing`,
  ];
  console.log(lines.join("\n"));
  if (failures.length > 0) {
    console.log(`failing seeds: ${failures.map((report) => report.seed).join(" ")}`);
  }
  return totals.failed === 0;
}

function randomStart(): number {
  const buffer = new Uint32Array(1);
  crypto.getRandomValues(buffer);
  return 1_000_000 + (buffer[0] % 1_000_000_000);
}

function parseInteger(text: string, flag: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value)) fail(`invalid ${flag} ${text}: expected an integer`);
  return value;
}

function fail(message: string): never {
  console.error(`${message}\n\n${USAGE}`);
  process.exit(2);
}
