// A second load generator for the RESP servers: redis-benchmark, the C program
// that ships with Redis. The generator shares the machine's cores with the
// servers, so its rows show how much a result depends on the generator. etcd
// speaks no RESP, so its rows always come from the Bun generator.

import type { Dataset, LoadSpec, Workload } from "./load.ts";
import { measureServers, type LoadOutcome, type RunMeasurement } from "./measure.ts";
import type { BenchSystem } from "./systems.ts";

/** Program that sent the load of a run. */
export type Driver = "bench" | "redis-benchmark";

export const DRIVER_TITLES: Record<Driver, string> = {
  bench: "this script's Bun load generator",
  "redis-benchmark": "redis-benchmark",
};

/**
 * Returns the command that redis-benchmark repeats for `workload`. It replaces
 * `__rand_int__` with a random number below `-r`, written with 12 digits,
 * which is how the dataset names its keys.
 */
function commandFor(workload: Workload, dataset: Dataset): string[] {
  const key = `${dataset.keyPrefix}__rand_int__`;
  switch (workload) {
    case "sequential-set":
    case "set":
      return ["SET", key, dataset.values[0]];
    case "local-get":
      return ["GET", key];
    case "linearizable-get":
      return ["GET", key, "linearizable"];
    default: {
      const unreachable: never = workload;
      throw new Error(`unknown workload ${String(unreachable)}`);
    }
  }
}

/** Parses redis-benchmark's `--csv` result line: test, rps, then average, min, p50, p95, p99 and max latency in ms. */
function parseCsvResult(output: string): { opsPerSecond: number; p50Ms: number; p99Ms: number } | null {
  const line = output.trimEnd().split("\n").pop() ?? "";
  const fields = [...line.matchAll(/"([^"]*)"/g)].map((match) => match[1]);
  if (fields.length < 8) return null;
  const [opsPerSecond, p50Ms, p99Ms] = [fields[1], fields[4], fields[6]].map(Number);
  if (![opsPerSecond, p50Ms, p99Ms].every(Number.isFinite)) return null;
  return { opsPerSecond, p50Ms, p99Ms };
}

/**
 * Runs redis-benchmark once against `system` with `spec.concurrency`
 * connections and `spec.maxOps` requests. redis-benchmark has no time
 * limit, so a run that takes three times `spec.maxSeconds` is stopped and
 * fails. It prints at most one error reply per second, so the error count
 * is a lower bound.
 */
export async function runRedisBenchmark(system: BenchSystem, workload: Workload, spec: LoadSpec, dataset: Dataset): Promise<LoadOutcome> {
  if (system.respPort === null) throw new Error(`${system.name} has no RESP port for redis-benchmark`);
  const child = Bun.spawn(
    [
      "redis-benchmark",
      "-h", "127.0.0.1",
      "-p", String(system.respPort),
      "-c", String(spec.concurrency),
      "-n", String(spec.maxOps),
      "-r", String(dataset.keys.length),
      "-e",
      "--csv",
      ...commandFor(workload, dataset),
    ],
    { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
  );
  const limitSeconds = spec.maxSeconds * 3;
  const limit = setTimeout(() => child.kill("SIGKILL"), limitSeconds * 1000);
  const [stdout, stderr] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()]);
  await child.exited;
  clearTimeout(limit);

  const result = parseCsvResult(stdout);
  if (child.exitCode !== 0 || result === null) {
    const reason = child.signalCode === "SIGKILL" ? `stopped after ${limitSeconds} s` : `exited with ${child.exitCode ?? child.signalCode}`;
    throw new Error(`redis-benchmark against ${system.name} ${reason}: ${(stderr || stdout).trim().slice(0, 500)}`);
  }
  const errorLines = stdout.split("\n").filter((line) => line.startsWith("Error from server")).length;
  const usage = child.resourceUsage();
  return {
    okOps: spec.maxOps,
    errors: new Map<string, number>(errorLines > 0 ? [["error replies (at least)", errorLines]] : []),
    elapsedSeconds: spec.maxOps / result.opsPerSecond,
    opsPerSecond: result.opsPerSecond,
    p50Ms: result.p50Ms,
    p99Ms: result.p99Ms,
    generatorCpuSeconds: usage ? Number(usage.cpuTime.total) / 1e6 : Number.NaN,
  };
}

/** Runs redis-benchmark once against `system` and measures the servers as measureRun does. */
export function measureRedisBenchmarkRun(system: BenchSystem, workload: Workload, spec: LoadSpec, dataset: Dataset): Promise<RunMeasurement> {
  return measureServers(system, () => runRedisBenchmark(system, workload, spec, dataset));
}
