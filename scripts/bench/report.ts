// Tables of the benchmark results, the check against EchoKV's performance
// targets, and the section of docs/benchmarks.md that a full run rewrites.

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { WORKLOADS, WORKLOAD_TITLES, type Workload } from "./load.ts";
import type { LogGroup } from "./logs.ts";
import type { DiskSpeed, MachineFacts } from "./machine.ts";
import type { RowSummary } from "./measure.ts";
import type { Driver } from "./redis-benchmark.ts";
import type { SystemName } from "./systems.ts";

export const SECTION_HEADING = "## Throughput and latency against etcd and Redis";

export interface RunSettings {
  runs: number;
  quick: boolean;
  keyCount: number;
  valueBytes: number;
  concurrency: number;
  sequentialOps: number;
  concurrentOps: number;
  maxSecondsPerRun: number;
  sequentialWarmupOps: number;
  concurrentWarmupOps: number;
}

export interface SystemDescription {
  name: SystemName;
  target: string;
  servers: { name: string; pid: number }[];
  preload: string;
  logGroups: { server: string; groups: LogGroup[] }[];
}

export interface Report {
  date: string;
  command: string;
  settings: RunSettings;
  machine: MachineFacts;
  diskAtStart: DiskSpeed;
  diskAtEnd: DiskSpeed;
  loadAtStart: [number, number, number];
  loadAtEnd: [number, number, number];
  durationSeconds: number;
  /** One sentence with each server's CPU use while idle. */
  idleCpu: string;
  systems: SystemDescription[];
  rows: RowSummary[];
  notes: string[];
}

function formatMs(value: number): string {
  if (Number.isNaN(value)) return "n/a";
  if (value < 10) return value.toFixed(2);
  if (value < 100) return value.toFixed(1);
  return value.toFixed(0);
}

function formatCount(value: number): string {
  return Number.isNaN(value) ? "n/a" : Math.round(value).toLocaleString("en-US");
}

function formatRatio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}×` : "n/a";
}

function formatErrors(errors: Map<string, number>): string {
  if (errors.size === 0) return "0";
  return [...errors].map(([kind, count]) => `${count} ${kind}`).join(", ");
}

function findRow(rows: RowSummary[], system: SystemName, workload: Workload, driver: Driver = "bench"): RowSummary | undefined {
  return rows.find((row) => row.system === system && row.workload === workload && row.driver === driver);
}

/** Returns the rows whose load came from `driver`. */
export function rowsOf(rows: RowSummary[], driver: Driver): RowSummary[] {
  return rows.filter((row) => row.driver === driver);
}

/** Formats the main table: one row per workload and system, medians of the runs. */
export function formatResultsTable(rows: RowSummary[]): string {
  const lines = [
    "| Workload | System | ops/s | p50 ms | p99 ms | Server CPU s per 1,000 ops, per node | Server CPU µs per op, all nodes | Peak RSS MiB, per node | Errors | Load generator CPU s per 1,000 ops | Load avg (1 min) |",
    "| --- | --- | ---: | ---: | ---: | --- | ---: | --- | --- | ---: | --- |",
  ];
  for (const row of rows) {
    lines.push(
      `| ${WORKLOAD_TITLES[row.workload]} | ${row.system} | ${formatCount(row.opsPerSecond)} | ${formatMs(row.p50Ms)} | ${formatMs(row.p99Ms)} | ` +
        `${row.cpuSecondsPer1kOps.map((value) => value.toFixed(3)).join(" / ")} | ${row.cpuMicrosecondsPerOpTotal.toFixed(0)} | ` +
        `${row.peakRssBytes.map((bytes) => (bytes / 2 ** 20).toFixed(0)).join(" / ")} | ${formatErrors(row.errors)} | ` +
        `${row.generatorCpuSecondsPer1kOps.toFixed(3)} | ${row.minLoadAverage.toFixed(2)}–${row.maxLoadAverage.toFixed(2)} |`,
    );
  }
  return lines.join("\n");
}

/** Formats EchoKV's throughput and p99 latency as multiples of etcd's, per workload. */
export function formatRatioTable(rows: RowSummary[]): string {
  const lines = ["| Workload | EchoKV / etcd ops/s | EchoKV / etcd p99 |", "| --- | ---: | ---: |"];
  for (const workload of WORKLOADS) {
    const echokv = findRow(rows, "EchoKV", workload);
    const etcd = findRow(rows, "etcd", workload);
    if (!echokv || !etcd) continue;
    lines.push(`| ${WORKLOAD_TITLES[workload]} | ${formatRatio(echokv.opsPerSecond / etcd.opsPerSecond)} | ${formatRatio(echokv.p99Ms / etcd.p99Ms)} |`);
  }
  return lines.join("\n");
}

/**
 * Formats EchoKV's SET rows as fractions of the replication floor's, with
 * both load generators: throughput, p99 latency and server CPU per SET.
 */
export function formatFloorTable(rows: RowSummary[]): string {
  const lines = [
    "| Workload | Load generator | EchoKV / floor ops/s | EchoKV / floor p99 | EchoKV / floor CPU per SET |",
    "| --- | --- | ---: | ---: | ---: |",
  ];
  for (const driver of ["bench", "redis-benchmark"] as const) {
    for (const workload of ["sequential-set", "set"] as const) {
      const echokv = findRow(rows, "EchoKV", workload, driver);
      const floor = findRow(rows, "Floor", workload, driver);
      if (!echokv || !floor) continue;
      lines.push(
        `| ${WORKLOAD_TITLES[workload]} | ${driver === "bench" ? "Bun" : "redis-benchmark"} | ${formatRatio(echokv.opsPerSecond / floor.opsPerSecond)} | ` +
          `${formatRatio(echokv.p99Ms / floor.p99Ms)} | ${formatRatio(echokv.cpuMicrosecondsPerOpTotal / floor.cpuMicrosecondsPerOpTotal)} |`,
      );
    }
  }
  return lines.join("\n");
}

interface TargetCheck {
  target: string;
  measured: string;
  passed: boolean;
}

/** Checks the rows of `system` with load from `driver` against the targets. A row with errors fails its target. */
function checkTargets(rows: RowSummary[], driver: Driver, system: SystemName = "EchoKV"): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const add = (workload: Workload, target: string, measured: (row: RowSummary) => string, passes: (row: RowSummary) => boolean) => {
    const row = findRow(rows, system, workload, driver);
    if (!row) return;
    const errorNote = row.errors.size > 0 ? `; errors: ${formatErrors(row.errors)}` : "";
    checks.push({ target, measured: measured(row) + errorNote, passed: passes(row) && row.errors.size === 0 });
  };
  const throughputAndP99 = (row: RowSummary) => `${formatCount(row.opsPerSecond)} ops/s, p99 ${formatMs(row.p99Ms)} ms`;
  const throughput = (row: RowSummary) => `${formatCount(row.opsPerSecond)} ops/s`;
  const cpu = (row: RowSummary) => `${row.cpuMicrosecondsPerOpTotal.toFixed(0)} µs`;

  add("sequential-set", "sequential SET ≥ 2,000 ops/s with p99 < 1 ms", throughputAndP99, (row) => row.opsPerSecond >= 2000 && row.p99Ms < 1);
  add("set", "SET with 64 in flight ≥ 20,000 ops/s with p99 < 10 ms", throughputAndP99, (row) => row.opsPerSecond >= 20_000 && row.p99Ms < 10);
  add("local-get", "local GET ≥ 80,000 ops/s", throughput, (row) => row.opsPerSecond >= 80_000);
  add("linearizable-get", "linearizable GET ≥ 40,000 ops/s", throughput, (row) => row.opsPerSecond >= 40_000);
  add("set", "server CPU < 80 µs per SET, summed over three nodes (SET with 64 in flight)", cpu, (row) => row.cpuMicrosecondsPerOpTotal < 80);
  add("sequential-set", "server CPU < 80 µs per SET, summed over three nodes (sequential SET)", cpu, (row) => row.cpuMicrosecondsPerOpTotal < 80);
  return checks;
}

/**
 * Formats the check of each target, once with each load generator's
 * measurement of EchoKV, and once with the replication floor's under the
 * Bun generator: a target that the floor misses is beyond this machine.
 */
export function formatTargetTable(rows: RowSummary[]): string {
  const lines = [
    "| Target | EchoKV, Bun load generator | Result | EchoKV, redis-benchmark | Result | Floor, Bun load generator | Result |",
    "| --- | --- | --- | --- | --- | --- | --- |",
  ];
  const fromBench = checkTargets(rows, "bench");
  const byTarget = (checks: TargetCheck[]) => new Map(checks.map((check) => [check.target, check]));
  const fromRedisBenchmark = byTarget(checkTargets(rows, "redis-benchmark"));
  const fromFloor = byTarget(checkTargets(rows, "bench", "Floor"));
  const verdict = (check: TargetCheck | undefined): string => {
    if (!check) return "";
    return check.passed ? "pass" : "fail";
  };
  for (const check of fromBench) {
    const other = fromRedisBenchmark.get(check.target);
    const floor = fromFloor.get(check.target);
    lines.push(
      `| ${check.target} | ${check.measured} | ${verdict(check)} | ${other?.measured ?? "not run"} | ${verdict(other)} | ` +
        `${floor?.measured ?? "not run"} | ${verdict(floor)} |`,
    );
  }
  return lines.join("\n");
}

function formatLoad(load: [number, number, number]): string {
  return load.map((value) => value.toFixed(2)).join(", ");
}

function formatLogSummary(systems: SystemDescription[]): string {
  const lines: string[] = [];
  for (const system of systems) {
    for (const { server, groups } of system.logGroups) {
      if (groups.length === 0) {
        lines.push(`- ${server}: no warnings, errors or role changes.`);
        continue;
      }
      const shown = groups.slice(0, 8).map((group) => `${group.level} "${group.message}" ×${group.count}`);
      const more = groups.length > 8 ? `; ${groups.length - 8} more kinds of line in its log` : "";
      lines.push(`- ${server}: ${shown.join("; ")}${more}.`);
    }
  }
  return lines.join("\n");
}

/** Formats every run's ops/s and p99, so that the spread behind each median is visible. */
export function formatPerRunTable(rows: RowSummary[]): string {
  const lines = ["| Workload | System | ops/s per run | p99 ms per run |", "| --- | --- | --- | --- |"];
  for (const row of rows) {
    const throughputs = row.runs.map((run) => formatCount(run.opsPerSecond)).join(", ");
    const p99s = row.runs.map((run) => formatMs(run.p99Ms)).join(", ");
    lines.push(`| ${WORKLOAD_TITLES[row.workload]} | ${row.system} | ${throughputs} | ${p99s} |`);
  }
  return lines.join("\n");
}

/** Renders the docs/benchmarks.md section for a full run. */
export function renderSection(report: Report): string {
  const { settings, machine } = report;
  const count = (value: number) => value.toLocaleString("en-US");
  const serverList = report.systems
    .map((system) => `  - ${system.name} (${system.servers.map((server) => server.name).join(", ")}): load sent to ${system.target}. ${system.preload}`)
    .join("\n");
  const serverCount = report.systems.reduce((sum, system) => sum + system.servers.length, 0);
  const notes = report.notes.length > 0 ? `\n\nNotes from this run:\n\n${report.notes.map((note) => `- ${note}.`).join("\n")}` : "";
  return `${SECTION_HEADING}

Measured on ${report.date} with \`${report.command}\` (${Math.round(report.durationSeconds)} s).
The script started every server below itself, ran the load and wrote this
section from that run. Rerunning it replaces the section. Each row of the
results is the median of ${settings.runs} runs.

### Method

- Each server runs with default settings on 127.0.0.1 free ports, with its
  data in a new directory under /tmp (the same disk as the rest of the machine):
${serverList}
- Redis runs with \`--appendonly yes --appendfsync always --save ''\`, so no
  write is acknowledged before it is fsynced, as with the Raft logs of EchoKV
  and etcd. Like them, it may cover several concurrent writes with one
  fsync. It is one server without replication, so it shows what durable
  writes cost on this disk without consensus, and it has no linearizable
  read.
- The load generator is the script itself: one Bun process with
  ${settings.concurrency} TCP connections (1 for sequential SET), each with one
  request in flight and no pipelining. Keys are drawn uniformly from
  ${count(settings.keyCount)} keys and values are ${settings.valueBytes} bytes. Every key is
  written once before the first measurement, so a GET that finds no value
  counts as an error.
- The RESP servers, EchoKV, Redis and the floor, are also driven by redis-benchmark
  (\`redis-benchmark -c 64 -n N -r ${settings.keyCount} -e --csv SET bench:__rand_int__ VALUE\`,
  and \`GET bench:__rand_int__\` with or without \`linearizable\`; \`-c 1\` for
  sequential SET), in the same rotation, right after the Bun generator's
  run of the same workload. It shows how much a result depends on the load
  generator, which shares the cores with the servers. Its rows have their
  own table below. etcd speaks no RESP, so the ratios against etcd use the
  Bun generator only. redis-benchmark reports the latency percentiles, and
  it prints at most one error reply per second, so its error count is a
  lower bound.
- The replication floor (\`scripts/bench/floor.ts\`, three Bun processes)
  does the least work a SET needs to be held durably by two of three nodes.
  Its leader reads commands with EchoKV's RESP parser and sends each batch
  of SETs that arrived in one turn of the event loop to two followers. It
  inserts the batch into its own SQLite database (WAL, synchronous=FULL) in
  one transaction, and replies once one follower has done the same. It has
  no terms, elections, log matching, membership or key-value map, and it
  runs SET only. So its rows bound what EchoKV could
  reach with Bun and SQLite on this machine: a target beyond the floor's
  figures cannot be met here.
- EchoKV and Redis get RESP commands: \`SET k v\`, \`GET k\` (a local read on
  the node that receives it) and, for EchoKV, \`GET k linearizable\`. etcd gets
  its v3 HTTP/JSON gateway on the client port (\`POST /v3/kv/put\` and
  \`POST /v3/kv/range\`, with \`"serializable": true\` for the local read) over
  keep-alive HTTP/1.1 connections. The gateway is used because Debian's
  etcd-server package brings no gRPC client that a Bun program could use.
  The gateway decodes JSON and base64, then sends each request over a gRPC
  connection that the member opens to its own client port
  (\`registerGateway\` in etcd's embed/serve.go). So etcd's CPU time and
  latency here are higher than a gRPC client would see.
- A run ends after ${count(settings.sequentialOps)} operations (sequential SET) or
  ${count(settings.concurrentOps)} (the other workloads), or after ${settings.maxSecondsPerRun} s, whichever
  comes first. Before its first run, each workload gets ${count(settings.sequentialWarmupOps)} (sequential SET)
  or ${count(settings.concurrentWarmupOps)} (the others) unmeasured operations per system and load
  generator. JavaScriptCore compiles EchoKV's hot functions in its
  optimizing tiers during the first hundred thousand or so requests after
  a start. Each compilation takes one of the two cores for up to tens of
  milliseconds, so a short warm-up measures that too.
  The runs go workload by workload, and within a
  workload the systems take turns in a rotating order, so that a change in
  background load affects all of them.
- ops/s counts successful operations over the run's wall-clock time. The
  load generator times each request; p50 and p99 are nearest-rank
  percentiles. Server CPU is utime + stime from /proc/<pid>/stat before and
  after each run, divided by the successful operations. Peak RSS is VmHWM
  from /proc/<pid>/status after the run, which is the peak since the
  process started, including the preload. Each column's median is taken
  separately, so the ops/s and the p99 of one row may come from different
  runs.
- The load generator and all ${serverCount} server processes share the machine's
  ${machine.cpuCount} cores, and the idle servers of the other systems keep running
  during each run. The load average counts the benchmark's own processes,
  and other programs may run too. The load average column gives the lowest
  and highest 1-minute load average seen before and after the row's runs.
- ${report.idleCpu}

### Machine and versions

- CPU: ${machine.cpuCount} × ${machine.cpuModel}; memory ${machine.memoryGiB.toFixed(0)} GiB; Linux ${machine.kernel}.
- Disk under /tmp, measured before the servers started and again after the
  last run. \`dd bs=4k oflag=dsync\` (500 writes): ${formatCount(report.diskAtStart.ddDsyncWritesPerSecond)} and
  ${formatCount(report.diskAtEnd.ddDsyncWritesPerSecond)} writes/s. One-row SQLite transactions in WAL mode with
  synchronous=FULL, as EchoKV stores its log (500 commits): ${formatCount(report.diskAtStart.sqliteCommitsPerSecond)} and
  ${formatCount(report.diskAtEnd.sqliteCommitsPerSecond)} commits/s.
- Versions: Bun ${machine.versions.bun}; EchoKV ${machine.versions.echokv};
  ${machine.versions.etcd}; ${machine.versions.redis}.
- Load average (1, 5, 15 min): ${formatLoad(report.loadAtStart)} at the start and
  ${formatLoad(report.loadAtEnd)} at the end.

### Results with the Bun load generator

${formatResultsTable(rowsOf(report.rows, "bench"))}

Every run:

${formatPerRunTable(rowsOf(report.rows, "bench"))}

### RESP servers driven by redis-benchmark

${formatResultsTable(rowsOf(report.rows, "redis-benchmark"))}

Every run:

${formatPerRunTable(rowsOf(report.rows, "redis-benchmark"))}

### EchoKV relative to etcd

A ratio above 1× in the ops/s column, or below 1× in the p99 column, means
EchoKV did better than etcd.

${formatRatioTable(report.rows)}

### EchoKV relative to the replication floor

A ratio of 1× in the ops/s column would mean that EchoKV's Raft, checks and
key-value map cost nothing over the floor; below 1× is the share of the
floor's throughput that EchoKV reaches. The CPU column is EchoKV's server
CPU per SET, summed over its three nodes, as a multiple of the floor's.

${formatFloorTable(report.rows)}

### EchoKV against its targets

The last two columns check the replication floor against the same
targets. A target that the floor misses is beyond what Bun and SQLite
reach on this machine.

${formatTargetTable(report.rows)}

### Server logs during the measurements

Warnings, errors, role changes and snapshots that each server logged from the
first warm-up to the end of the last run:

${formatLogSummary(report.systems)}${notes}
`;
}

/**
 * Writes `section` into `file`: replaces the existing section that starts at
 * SECTION_HEADING (up to the next level-2 heading), or appends it, keeping the
 * rest of the file as it is.
 */
export function writeSection(file: string, section: string): void {
  const existing = existsSync(file)
    ? readFileSync(file, "utf8")
    : "# Benchmarks\n\nMeasured performance of EchoKV. Each section names the script and the machine behind its numbers.\n";
  const lines = existing.split("\n");
  const start = lines.findIndex((line) => line.trim() === SECTION_HEADING);
  let updated: string;
  if (start < 0) {
    updated = `${existing.trimEnd()}\n\n${section}`;
  } else {
    let end = lines.findIndex((line, index) => index > start && line.startsWith("## "));
    if (end < 0) end = lines.length;
    const before = lines.slice(0, start).join("\n").trimEnd();
    const after = lines.slice(end).join("\n").trim();
    updated = `${before}\n\n${section}${after ? `\n${after}\n` : ""}`;
  }
  writeFileSync(file, updated);
}
