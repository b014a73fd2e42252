// Snapshots at scale: loads a three-node cluster of dist/echokv with many
// keys, then measures what a snapshot costs and how nodes recover.
//
//   bun scripts/snapshot-bench.ts [--keys 1000000] [--value-bytes 100] [--overwrite-seconds 60]
//
// Steps, each printed as it completes:
//   1. load --keys keys with --value-bytes values through the leader (pipelined);
//   2. write latency of sequential SETs for 5 s without a snapshot, then while
//      the leader writes a snapshot (SNAPSHOT), as p50/p99;
//   3. SIGKILL a follower and restart it: time until it serves every key
//      from its own map (DBSIZE equals --keys);
//   4. SIGKILL a follower, wipe its data directory and start it again with
//      --join-addr: time until it contains every key again (by snapshot);
//   5. overwrite random keys for --overwrite-seconds while sampling each
//      node's data directory size and RSS every 2 s; reports the maximum of
//      each as a multiple of the live data size (keys * (key + value bytes)).
// Peak RSS is the kernel's VmHWM, reset through /proc/PID/clear_refs between
// steps, so each step reports the peak of that step alone.
// Needs `npm run build` first. Uses free 127.0.0.1 ports and a temporary directory.

import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { RespClient } from "../src/client/client.ts";
import { Cluster, type ClusterNode } from "../test/support/cluster.ts";

const { values: flags } = parseArgs({
  options: {
    keys: { type: "string", default: "1000000" },
    "value-bytes": { type: "string", default: "100" },
    "overwrite-seconds": { type: "string", default: "60" },
  },
  strict: true,
});
const keyCount = Number(flags.keys);
const valueBytes = Number(flags["value-bytes"]);
const overwriteSeconds = Number(flags["overwrite-seconds"]);
for (const [name, value] of [["keys", keyCount], ["value-bytes", valueBytes], ["overwrite-seconds", overwriteSeconds]] as const) {
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`invalid --${name}: expected a positive whole number`);
}

const keyOf = (i: number) => `key:${String(i).padStart(7, "0")}`;
const liveBytes = keyCount * (keyOf(0).length + valueBytes);

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function directoryBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? directoryBytes(path) : statSync(path).size;
  }
  return total;
}

function peakRss(node: ClusterNode): number {
  const status = readFileSync(`/proc/${node.pid}/status`, "utf8");
  return Number(/^VmHWM:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? 0) * 1024;
}

/** Resets the peak RSS the kernel reports for a process, so the next reading covers only what follows. */
function resetPeakRss(node: ClusterNode): void {
  writeFileSync(`/proc/${node.pid}/clear_refs`, "5");
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
const ratio = (bytes: number) => `${(bytes / liveBytes).toFixed(2)}x`;
const peaks = (nodes: ClusterNode[]) => nodes.map((node) => `${node.id} ${mb(peakRss(node))} (${ratio(peakRss(node))})`).join(", ");

/** Sends `total` SETs over `connections` connections with `depth` commands in flight on each. */
async function load(addr: string, total: number, value: Buffer, connections = 8, depth = 128): Promise<void> {
  let next = 0;
  const worker = async () => {
    const client = await RespClient.connect(addr, { timeoutMs: 60_000 });
    const inFlight = new Set<Promise<void>>();
    while (next < total) {
      const i = next++;
      const write = client.command(["SET", keyOf(i), value]).then((reply) => {
        if (reply.type === "error") throw new Error(`SET ${keyOf(i)} failed: ${reply.message}`);
      });
      inFlight.add(write);
      write.finally(() => inFlight.delete(write));
      if (inFlight.size >= depth) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    client.close();
  };
  await Promise.all(Array.from({ length: connections }, worker));
}

/** Runs sequential SETs for `ms` and returns their latencies in ms. */
async function probeLatency(addr: string, ms: number, value: Buffer): Promise<number[]> {
  const client = await RespClient.connect(addr, { timeoutMs: 10_000 });
  const latencies: number[] = [];
  const end = performance.now() + ms;
  let i = 0;
  while (performance.now() < end) {
    const started = performance.now();
    await client.command(["SET", keyOf(i++ % keyCount), value]);
    latencies.push(performance.now() - started);
  }
  client.close();
  return latencies;
}

async function dbsize(cluster: Cluster, node: ClusterNode): Promise<number> {
  const reply = await cluster.command(node, ["DBSIZE"], 5000);
  return reply.type === "integer" ? reply.value : -1;
}

/** Waits until DBSIZE on `node` returns `expected`; returns the elapsed ms since `since`. */
async function waitForAllKeys(cluster: Cluster, node: ClusterNode, expected: number, since: number, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const size = await dbsize(cluster, node).catch(() => -1);
    if (size === expected) return Math.round(performance.now() - since);
    await Bun.sleep(20);
  }
  throw new Error(`${node.id} did not reach ${expected} keys within ${timeoutMs} ms\n${cluster.logTails([node])}`);
}

async function main(): Promise<void> {
  console.log(`machine: ${cpus().length} CPUs, ${cpus()[0]?.model ?? "unknown"}; ${keyCount} keys of ${valueBytes}-byte values, live data ${mb(liveBytes)}`);
  const cluster = new Cluster({ name: "snapshot-bench" });
  try {
    const nodes = await cluster.startCluster(3);
    const leader = await cluster.waitForLeader(nodes);
    const value = Buffer.alloc(valueBytes, "v");

    let started = performance.now();
    await load(leader.clientAddr, keyCount, value);
    const loadSeconds = (performance.now() - started) / 1000;
    for (const node of nodes) await waitForAllKeys(cluster, node, keyCount, performance.now(), 120_000);
    console.log(
      `1. loaded ${keyCount} keys in ${loadSeconds.toFixed(1)} s (${Math.round(keyCount / loadSeconds)} SET/s); ` +
        `peak RSS so far (leader ${leader.id}): ${peaks(nodes)}`,
    );
    for (const node of nodes) resetPeakRss(node);

    const baseline = await probeLatency(leader.clientAddr, 5000, value);
    const snapshotDone = cluster.command(leader, ["SNAPSHOT"], 300_000);
    const during = await probeLatency(leader.clientAddr, 5000, value);
    const snapshotReply = await snapshotDone;
    console.log(
      `2. sequential SET latency without a snapshot: p50 ${percentile(baseline, 50).toFixed(2)} ms, p99 ${percentile(baseline, 99).toFixed(2)} ms (${baseline.length} SETs); ` +
        `while snapshotting ${keyCount} keys: p50 ${percentile(during, 50).toFixed(2)} ms, p99 ${percentile(during, 99).toFixed(2)} ms (${during.length} SETs); SNAPSHOT replied ${JSON.stringify(snapshotReply)}; ` +
        `peak RSS during these 10 s: ${peaks(nodes)}`,
    );

    const followers = nodes.filter((node) => node !== leader);
    await cluster.kill(followers[0], "SIGKILL");
    started = performance.now();
    await cluster.start(followers[0], "ping", 60_000);
    const restartMs = await waitForAllKeys(cluster, followers[0], keyCount, started, 120_000);
    console.log(
      `3. restarted ${followers[0].id}: serving all ${keyCount} keys ${restartMs} ms after the process started; its peak RSS: ${peaks([followers[0]])}`,
    );

    await cluster.kill(followers[1], "SIGKILL");
    rmSync(followers[1].dataDir, { recursive: true, force: true });
    started = performance.now();
    await cluster.start(followers[1], "ping", 60_000);
    const rejoinMs = await waitForAllKeys(cluster, followers[1], keyCount, started, 300_000);
    const installed = followers[1].log().includes("installed snapshot from the leader");
    if (rejoinMs > 5000) {
      // Slow catch-up: show what the transfer did on both sides.
      const relevant = (node: ClusterNode) =>
        node
          .log()
          .split("\n")
          .filter((line) => /snapshot|transfer|peer connection|membership change|joined/.test(line))
          .slice(-25)
          .join("\n");
      console.log(`catch-up took ${rejoinMs} ms; leader ${leader.id}:\n${relevant(leader)}\n${followers[1].id}:\n${relevant(followers[1])}`);
    }
    console.log(
      `4. wiped and restarted ${followers[1].id}: all ${keyCount} keys after ${rejoinMs} ms (${installed ? "by snapshot" : "by log replay"}); ` +
        `its peak RSS: ${peaks([followers[1]])}`,
    );
    for (const node of nodes) resetPeakRss(node);

    let maxDirRatio = 0;
    let maxRssRatio = 0;
    const overwrite = (async () => {
      const client = await RespClient.connect(leader.clientAddr, { timeoutMs: 60_000 });
      const end = performance.now() + overwriteSeconds * 1000;
      let writes = 0;
      while (performance.now() < end) {
        const batch = [];
        for (let i = 0; i < 256; i++) batch.push(client.command(["SET", keyOf(Math.floor(Math.random() * keyCount)), value]));
        await Promise.all(batch);
        writes += batch.length;
      }
      client.close();
      return writes;
    })();
    const sampler = setInterval(() => {
      for (const node of nodes) {
        maxDirRatio = Math.max(maxDirRatio, directoryBytes(node.dataDir) / liveBytes);
        maxRssRatio = Math.max(maxRssRatio, peakRss(node) / liveBytes);
      }
    }, 2000);
    const writes = await overwrite;
    clearInterval(sampler);
    for (const node of nodes) maxRssRatio = Math.max(maxRssRatio, peakRss(node) / liveBytes);
    const sizes = nodes.map((node) => `${node.id} dir ${mb(directoryBytes(node.dataDir))} peak RSS ${mb(peakRss(node))}`).join("; ");
    console.log(
      `5. overwrote ${writes} random keys for ${overwriteSeconds} s: max data dir ${maxDirRatio.toFixed(2)}x live data, max peak RSS during the run ${maxRssRatio.toFixed(2)}x live data (${sizes})`,
    );
  } finally {
    await cluster.destroy();
  }
}

await main();
