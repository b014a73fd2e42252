// Throughput and latency of EchoKV against etcd and Redis on this machine.
//
//   bun scripts/bench.ts [--runs N] [--quick]
//
// Starts a three-node EchoKV cluster from dist/echokv, a three-member etcd
// cluster, one Redis server with every write fsynced, and the replication
// floor of scripts/bench/floor.ts, all on 127.0.0.1 free ports with data
// under a new directory in /tmp. Installs Debian's
// etcd-server, redis-server and redis-tools packages with apt-get when `etcd`,
// `redis-server` or `redis-benchmark` is missing. This process then drives
// each system with the same workloads: sequential SET, and SET, local GET and
// linearizable GET with 64 requests in flight. redis-benchmark drives the
// RESP servers a second time, as a second load generator. It prints tables
// of medians, stops every process it started by PID and removes its
// directory. A full run rewrites its section of docs/benchmarks.md. --quick
// (1 run, short runs, 10,000 keys) only prints, for smoke tests. Needs
// `npm run build` first.

import { copyFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { logSize, summarizeLog } from "./bench/logs.ts";
import { Dataset, WORKLOADS, WORKLOAD_TITLES, runLoad, workloadOperation, type LoadSpec, type Workload } from "./bench/load.ts";
import { collectMachineFacts, measureDiskSpeed } from "./bench/machine.ts";
import { checkServersRunning, measureRun, summarizeRuns, type RowSummary, type RunMeasurement } from "./bench/measure.ts";
import { ensureDebianPackage, readCpuSeconds, readLoadAverage, stopServer, type ServerProcess } from "./bench/processes.ts";
import {
  formatFloorTable,
  formatRatioTable,
  formatResultsTable,
  formatTargetTable,
  renderSection,
  rowsOf,
  writeSection,
  type RunSettings,
  type SystemDescription,
} from "./bench/report.ts";
import { DRIVER_TITLES, measureRedisBenchmarkRun, runRedisBenchmark, type Driver } from "./bench/redis-benchmark.ts";
import { startEchoKv, startEtcd, startFloor, startRedis, type BenchSystem } from "./bench/systems.ts";

const repoRoot = resolve(import.meta.dir, "..");
const binary = join(repoRoot, "dist", "echokv");
const docFile = join(repoRoot, "docs", "benchmarks.md");

/** Time limit for writing every key once before the measurements. */
const PRELOAD_MAX_SECONDS = 180;

function parseSettings(): RunSettings {
  const { values } = parseArgs({
    options: {
      runs: { type: "string" },
      quick: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(`Usage: bun scripts/bench.ts [--runs N] [--quick]

  --runs N   Measured runs per workload and system; the table shows the median (default 3, 1 with --quick)
  --quick    Short smoke test: 1 run, 300 sequential or 3,000 other operations per run, 5 s limit,
             10,000 keys; prints the results without writing docs/benchmarks.md`);
    process.exit(0);
  }
  const quick = values.quick ?? false;
  let runs = quick ? 1 : 3;
  if (values.runs !== undefined) {
    runs = Number(values.runs);
    if (!Number.isSafeInteger(runs) || runs < 1 || runs > 20) {
      throw new Error(`invalid --runs "${values.runs}": expected a whole number from 1 to 20`);
    }
  }
  return {
    runs,
    quick,
    keyCount: quick ? 10_000 : 100_000,
    valueBytes: 256,
    concurrency: 64,
    sequentialOps: quick ? 300 : 5_000,
    concurrentOps: quick ? 3_000 : 50_000,
    maxSecondsPerRun: quick ? 5 : 20,
    sequentialWarmupOps: quick ? 200 : 2_000,
    concurrentWarmupOps: quick ? 200 : 20_000,
  };
}

/** Returns a warning when a file under src/ is newer than the binary, which then may not match the source. */
function checkBinaryFreshness(): string | null {
  const builtAt = statSync(binary).mtimeMs;
  const stack = [join(repoRoot, "src")];
  while (stack.length > 0) {
    const directory = stack.pop()!;
    for (const entry of readdirSync(directory, { withFileTypes: true })) {
      const path = join(directory, entry.name);
      if (entry.isDirectory()) stack.push(path);
      else if (statSync(path).mtimeMs > builtAt) return `${relative(repoRoot, path)} is newer than dist/echokv, so the binary may not match the source`;
    }
  }
  return null;
}

function specFor(workload: Workload, settings: RunSettings, maxOps: number): LoadSpec {
  return {
    concurrency: workload === "sequential-set" ? 1 : settings.concurrency,
    maxOps,
    maxSeconds: settings.maxSecondsPerRun,
  };
}

/** Writes every key once, 64 at a time, so that GETs find values. Returns a line for the report. */
async function preload(system: BenchSystem, dataset: Dataset, settings: RunSettings): Promise<string> {
  const spec = { concurrency: settings.concurrency, maxOps: dataset.keys.length, maxSeconds: PRELOAD_MAX_SECONDS };
  const result = await runLoad(spec, (client, index) => client.set(dataset.keys[index], dataset.randomValue()), () => system.connect());
  const errorCount = [...result.errors.values()].reduce((a, b) => a + b, 0);
  const line =
    `Preload wrote ${result.okOps.toLocaleString("en-US")} of ${dataset.keys.length.toLocaleString("en-US")} keys ` +
    `in ${result.elapsedSeconds.toFixed(1)} s (${Math.round(result.okOps / result.elapsedSeconds).toLocaleString("en-US")} ops/s)` +
    (errorCount > 0 ? ` with ${errorCount} errors: ${[...result.errors].map(([kind, count]) => `${count} ${kind}`).join(", ")}.` : ".");
  console.error(`${system.name}: ${line}`);
  return line;
}

function printLogTail(server: ServerProcess, lineCount: number): void {
  if (!existsSync(server.logFile)) return;
  const lines = readFileSync(server.logFile, "utf8").trimEnd().split("\n").slice(-lineCount);
  console.error(`--- last ${lines.length} lines of ${server.name} (pid ${server.pid}) log ---\n${lines.join("\n")}`);
}

/** Measures each server's CPU use while no load runs, since idle servers share the cores with each measurement. */
async function measureIdleCpu(servers: ServerProcess[], seconds: number): Promise<string> {
  const before = servers.map((server) => readCpuSeconds(server.pid));
  await Bun.sleep(seconds * 1000);
  const percentages = servers.map((server, index) => `${server.name} ${(((readCpuSeconds(server.pid) - before[index]) / seconds) * 100).toFixed(1)}%`);
  const line = `CPU use of the idle servers over ${seconds} s after the preload, in percent of one core: ${percentages.join(", ")}.`;
  console.error(line);
  return line;
}

async function main(): Promise<void> {
  const settings = parseSettings();
  if (!existsSync(binary)) throw new Error(`${binary} is missing; run 'npm run build' first`);
  const notes: string[] = [];
  const staleWarning = checkBinaryFreshness();
  if (staleWarning) {
    console.error(`warning: ${staleWarning}`);
    notes.push(staleWarning);
  }
  ensureDebianPackage("etcd", "etcd-server");
  ensureDebianPackage("redis-server", "redis-server");
  ensureDebianPackage("redis-benchmark", "redis-tools");

  const startedAt = performance.now();
  const date = new Date().toISOString().slice(0, 10);
  const command = ["bun", relative(repoRoot, Bun.argv[1]), ...Bun.argv.slice(2)].join(" ");
  const workDirectory = mkdtempSync(join(tmpdir(), "echokv-bench-"));
  const servers: ServerProcess[] = [];
  let cleanup: Promise<void> | null = null;
  let interruptedBy: string | null = null;

  // A signal handler and main's own exit path may both call this; each waits for the one cleanup.
  const cleanUp = (): Promise<void> => {
    cleanup ??= (async () => {
      for (const server of servers) {
        const how = await stopServer(server, 10_000);
        console.error(`${server.name} (pid ${server.pid}) ${how}`);
      }
      rmSync(workDirectory, { recursive: true, force: true });
    })();
    return cleanup;
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      if (interruptedBy) return;
      interruptedBy = signal;
      console.error(`${signal}: stopping the servers and removing ${workDirectory}`);
      void cleanUp().finally(() => process.exit(130));
    });
  }

  try {
    const loadAtStart = readLoadAverage();
    // Run a private copy, so that a rebuild of dist/echokv during the run changes neither the nodes nor the version reported.
    const binaryCopy = join(workDirectory, "echokv-binary");
    copyFileSync(binary, binaryCopy);
    console.error(`measuring fsync speed in ${workDirectory}`);
    const diskAtStart = measureDiskSpeed(workDirectory);
    console.error(
      `disk: ${Math.round(diskAtStart.ddDsyncWritesPerSecond)} dd dsync writes/s, ` +
        `${Math.round(diskAtStart.sqliteCommitsPerSecond)} SQLite synchronous=FULL commits/s`,
    );
    const machine = collectMachineFacts(binaryCopy, statSync(binary).mtime);

    const systems: BenchSystem[] = [];
    console.error("starting EchoKV, etcd, Redis and the replication floor");
    systems.push(await startEchoKv(binaryCopy, join(workDirectory, "echokv"), settings.valueBytes, servers));
    systems.push(await startEtcd(join(workDirectory, "etcd"), settings.valueBytes, servers));
    systems.push(await startRedis(join(workDirectory, "redis"), settings.valueBytes, servers));
    systems.push(await startFloor(join(workDirectory, "floor"), settings.valueBytes, servers));

    const dataset = new Dataset(settings.keyCount, settings.valueBytes);
    const preloadLines = new Map<BenchSystem, string>();
    for (const system of systems) preloadLines.set(system, await preload(system, dataset, settings));
    const idleLine = await measureIdleCpu(servers, settings.quick ? 2 : 5);

    const logOffsets = new Map(servers.map((server) => [server, logSize(server.logFile)]));
    const measurements = new Map<string, RunMeasurement[]>();
    const record = (system: BenchSystem, workload: Workload, driver: Driver, run: number, measurement: RunMeasurement) => {
      const key = `${system.name}/${workload}/${driver}`;
      measurements.set(key, [...(measurements.get(key) ?? []), measurement]);
      const errors = [...measurement.errors.values()].reduce((a, b) => a + b, 0);
      console.error(
        `run ${run}/${settings.runs} ${WORKLOAD_TITLES[workload]} ${system.name} (${DRIVER_TITLES[driver]}): ` +
          `${Math.round(measurement.opsPerSecond)} ops/s, p50 ${measurement.p50Ms.toFixed(2)} ms, p99 ${measurement.p99Ms.toFixed(2)} ms, ` +
          `${errors} errors, load ${measurement.loadAverage.map((value) => value.toFixed(2)).join(" -> ")}`,
      );
    };
    for (let run = 1; run <= settings.runs; run++) {
      for (const workload of WORKLOADS) {
        const maxOps = workload === "sequential-set" ? settings.sequentialOps : settings.concurrentOps;
        // Rotate the order of the systems from run to run, so that none always goes first.
        const order = systems.map((_, index) => systems[(index + run - 1) % systems.length]);
        for (const system of order) {
          if (!system.supports(workload)) continue;
          const operation = workloadOperation(workload, dataset);
          const spec = specFor(workload, settings, maxOps);
          const warmupOps = workload === "sequential-set" ? settings.sequentialWarmupOps : settings.concurrentWarmupOps;
          const warmup = specFor(workload, settings, warmupOps);
          if (run === 1) await runLoad(warmup, operation, () => system.connect());
          record(system, workload, "bench", run, await measureRun(system, spec, operation));
          if (system.respPort === null) continue;
          if (run === 1) await runRedisBenchmark(system, workload, warmup, dataset);
          record(system, workload, "redis-benchmark", run, await measureRedisBenchmarkRun(system, workload, spec, dataset));
        }
      }
    }
    for (const system of systems) checkServersRunning(system);

    const rows: RowSummary[] = [];
    for (const driver of ["bench", "redis-benchmark"] as const) {
      for (const workload of WORKLOADS) {
        for (const system of systems) {
          const runs = measurements.get(`${system.name}/${workload}/${driver}`);
          if (runs) rows.push(summarizeRuns(system.name, workload, driver, runs));
        }
      }
    }
    for (const row of rows) {
      if (row.errors.size === 0) continue;
      const errors = [...row.errors].map(([kind, count]) => `${count} ${kind}`).join(", ");
      notes.push(`${row.system}, ${WORKLOAD_TITLES[row.workload]} with ${DRIVER_TITLES[row.driver]}: the runs had errors (${errors})`);
    }

    const descriptions: SystemDescription[] = systems.map((system) => ({
      name: system.name,
      target: system.targetName,
      servers: system.servers.map((server) => ({ name: server.name, pid: server.pid })),
      preload: preloadLines.get(system) ?? "",
      logGroups: system.servers.map((server) => ({ server: server.name, groups: summarizeLog(server, logOffsets.get(server) ?? 0) })),
    }));
    const loadAtEnd = readLoadAverage();
    const diskAtEnd = measureDiskSpeed(workDirectory);

    const tables = [
      formatResultsTable(rowsOf(rows, "bench")),
      `redis-benchmark:\n\n${formatResultsTable(rowsOf(rows, "redis-benchmark"))}`,
      `EchoKV / etcd:\n\n${formatRatioTable(rows)}`,
      `EchoKV / floor:\n\n${formatFloorTable(rows)}`,
      `Targets:\n\n${formatTargetTable(rows)}`,
    ];
    console.log(`\n${tables.join("\n\n")}\n`);
    for (const note of notes) console.log(`note: ${note}`);

    if (settings.quick) {
      console.log("--quick: docs/benchmarks.md is left unchanged");
    } else if (interruptedBy) {
      console.log(`${interruptedBy}: docs/benchmarks.md is left unchanged`);
    } else {
      const section = renderSection({
        date,
        command,
        settings,
        machine,
        diskAtStart,
        diskAtEnd,
        loadAtStart,
        loadAtEnd,
        durationSeconds: (performance.now() - startedAt) / 1000,
        idleCpu: idleLine,
        systems: descriptions,
        rows,
        notes,
      });
      writeSection(docFile, section);
      console.log(`wrote ${relative(process.cwd(), docFile)}`);
    }
  } catch (err) {
    // Stopping the servers on a signal makes the run in progress fail, so that error is expected.
    if (interruptedBy) {
      await cleanUp();
      process.exit(130);
    }
    // The logs are removed with the directory, so show their ends first.
    for (const server of servers) printLogTail(server, 20);
    throw err;
  } finally {
    await cleanUp();
  }
}

main().catch((err: unknown) => {
  console.error(`bench failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
