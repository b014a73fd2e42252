// One measured run of one workload against one system, with the servers' CPU
// time and peak memory from /proc and the load generator's own CPU time, and
// the median of several runs.

import { quantile, runLoad, type LoadSpec, type Operation, type Workload } from "./load.ts";
import { readCpuSeconds, readLoadAverage, readPeakRssBytes } from "./processes.ts";
import type { Driver } from "./redis-benchmark.ts";
import type { BenchSystem, SystemName } from "./systems.ts";

export interface RunMeasurement {
  okOps: number;
  errors: Map<string, number>;
  elapsedSeconds: number;
  opsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Server CPU time (user + system) used during the run, in seconds, per server process. */
  serverCpuSeconds: number[];
  /** Peak resident set size since the process started, in bytes, per server process, read after the run. */
  peakRssBytes: number[];
  /** User + system CPU time of this process (the load generator) during the run, in seconds. */
  generatorCpuSeconds: number;
  /** 1-minute load average before and after the run. */
  loadAverage: [number, number];
}

/** Median of several runs of one workload against one system. */
export interface RowSummary {
  system: SystemName;
  workload: Workload;
  driver: Driver;
  runs: RunMeasurement[];
  opsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Median server CPU seconds per 1,000 successful operations, per server process. */
  cpuSecondsPer1kOps: number[];
  /** Median of the server CPU microseconds per successful operation, summed over all server processes. */
  cpuMicrosecondsPerOpTotal: number;
  /** Largest peak RSS seen in any run, per server process. */
  peakRssBytes: number[];
  generatorCpuSecondsPer1kOps: number;
  errors: Map<string, number>;
  minLoadAverage: number;
  maxLoadAverage: number;
}

/** Fails naming the process and its log if any server of `system` has exited. */
export function checkServersRunning(system: BenchSystem): void {
  for (const server of system.servers) {
    if (server.child.exitCode !== null || server.child.signalCode !== null) {
      throw new Error(`${server.name} (pid ${server.pid}) exited with ${server.child.exitCode ?? server.child.signalCode}; see ${server.logFile}`);
    }
  }
}

/** Figures a load generator reports about one run. */
export type LoadOutcome = Pick<RunMeasurement, "okOps" | "errors" | "elapsedSeconds" | "opsPerSecond" | "p50Ms" | "p99Ms" | "generatorCpuSeconds">;

/** Runs `generate` once and adds the servers' CPU time, peak memory and the load average around it. */
export async function measureServers(system: BenchSystem, generate: () => Promise<LoadOutcome>): Promise<RunMeasurement> {
  checkServersRunning(system);
  const pids = system.servers.map((server) => server.pid);
  const loadBefore = readLoadAverage()[0];
  const cpuBefore = pids.map(readCpuSeconds);

  const outcome = await generate();

  const cpuAfter = pids.map(readCpuSeconds);
  const loadAfter = readLoadAverage()[0];
  checkServersRunning(system);

  return {
    ...outcome,
    serverCpuSeconds: cpuAfter.map((after, index) => after - cpuBefore[index]),
    peakRssBytes: pids.map(readPeakRssBytes),
    loadAverage: [loadBefore, loadAfter],
  };
}

/** Runs `operation` against `system` once under `spec` with this process's load generator, and measures it. */
export function measureRun(system: BenchSystem, spec: LoadSpec, operation: Operation): Promise<RunMeasurement> {
  return measureServers(system, async () => {
    const generatorBefore = process.cpuUsage();
    const result = await runLoad(spec, operation, () => system.connect());
    const generatorUsage = process.cpuUsage(generatorBefore);
    return {
      okOps: result.okOps,
      errors: result.errors,
      elapsedSeconds: result.elapsedSeconds,
      opsPerSecond: result.okOps / result.elapsedSeconds,
      p50Ms: quantile(result.latenciesMs, 0.5),
      p99Ms: quantile(result.latenciesMs, 0.99),
      generatorCpuSeconds: (generatorUsage.user + generatorUsage.system) / 1e6,
    };
  });
}

/** Returns the median of `values`, which is the mean of the middle two for an even count. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Summarizes the runs of one row, taking the median of each metric separately. */
export function summarizeRuns(system: SystemName, workload: Workload, driver: Driver, runs: RunMeasurement[]): RowSummary {
  const nodeCount = runs[0].serverCpuSeconds.length;
  const perOp = (run: RunMeasurement, seconds: number) => (run.okOps > 0 ? seconds / run.okOps : Number.NaN);
  const errors = new Map<string, number>();
  for (const run of runs) {
    for (const [kind, count] of run.errors) errors.set(kind, (errors.get(kind) ?? 0) + count);
  }
  const loads = runs.flatMap((run) => run.loadAverage);
  return {
    system,
    workload,
    driver,
    runs,
    opsPerSecond: median(runs.map((run) => run.opsPerSecond)),
    p50Ms: median(runs.map((run) => run.p50Ms)),
    p99Ms: median(runs.map((run) => run.p99Ms)),
    cpuSecondsPer1kOps: Array.from({ length: nodeCount }, (_, node) =>
      median(runs.map((run) => perOp(run, run.serverCpuSeconds[node]) * 1000)),
    ),
    cpuMicrosecondsPerOpTotal: median(runs.map((run) => perOp(run, run.serverCpuSeconds.reduce((a, b) => a + b, 0)) * 1e6)),
    peakRssBytes: Array.from({ length: nodeCount }, (_, node) => Math.max(...runs.map((run) => run.peakRssBytes[node]))),
    generatorCpuSecondsPer1kOps: median(runs.map((run) => perOp(run, run.generatorCpuSeconds) * 1000)),
    errors,
    minLoadAverage: Math.min(...loads),
    maxLoadAverage: Math.max(...loads),
  };
}
