// A frozen or flapping follower must not make the leader queue entries for
// it without bound. Writes that the other follower can acknowledge keep their
// pace, and no election happens. Once the follower runs again, it catches up
// and ends identical to the leader.

import { describe, expect } from "bun:test";
import { RespClient } from "../../src/client/client.ts";
import { Cluster, clusterTest, installClusterHooks, parseInfo, replyText, type ClusterNode } from "../support/cluster.ts";

installClusterHooks();

const KEYS = 400;
const VALUE_BYTES = 64 * 1024;
const MB = 1_000_000;

function valueFor(round: number, key: number): Buffer {
  const value = Buffer.alloc(VALUE_BYTES, 0x61 + (key % 26));
  value.write(`${round}:${key}:`, 0, "latin1");
  return value;
}

interface WriteRun {
  writes: number;
  bytes: number;
  latenciesMs: number[];
}

/** SETs 64 KiB values over KEYS keys with `depth` in flight until `ms` have passed. */
async function writeFor(client: RespClient, ms: number, depth: number, startRound: number): Promise<WriteRun> {
  const run: WriteRun = { writes: 0, bytes: 0, latenciesMs: [] };
  const end = performance.now() + ms;
  let sequence = startRound * KEYS;
  const lane = async () => {
    while (performance.now() < end) {
      const n = sequence++;
      const started = performance.now();
      const reply = await client.command(["SET", `key${n % KEYS}`, valueFor(Math.floor(n / KEYS), n % KEYS)]);
      if (reply.type !== "simple") throw new Error(`SET failed: ${JSON.stringify(reply)}`);
      run.latenciesMs.push(performance.now() - started);
      run.writes++;
      run.bytes += VALUE_BYTES;
    }
  };
  await Promise.all(Array.from({ length: depth }, lane));
  return run;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

/** Resident bytes of `node` above what its store holds, after a full collection. */
async function overheadBytes(cluster: Cluster, node: ClusterNode): Promise<number> {
  expect(replyText(await cluster.command(node, ["MEMORY", "PURGE"], 30_000))).toBe("OK");
  const info = parseInfo(replyText(await cluster.command(node, ["INFO", "memory"])) ?? "");
  return Number(info.get("used_memory_rss")) - Number(info.get("store_bytes"));
}

/** Waits until every key on `follower` has the leader's value. */
async function waitUntilIdentical(cluster: Cluster, leader: ClusterNode, follower: ClusterNode, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let differing = -1;
  while (Date.now() < deadline) {
    differing = 0;
    for (let key = 0; key < KEYS; key++) {
      const [ours, theirs] = await Promise.all([
        cluster.command(leader, ["GET", `key${key}`]),
        cluster.command(follower, ["GET", `key${key}`, "local"]),
      ]);
      if (JSON.stringify(ours) !== JSON.stringify(theirs)) differing++;
    }
    if (differing === 0) return;
    await Bun.sleep(200);
  }
  throw new Error(`${follower.id} still differs from the leader on ${differing} of ${KEYS} keys after ${timeoutMs} ms`);
}

describe("slow follower", () => {
  clusterTest(
    "frozen follower bounds leader memory",
    async () => {
      const cluster = new Cluster({ name: "slow-follower" });
      const nodes = await cluster.startCluster(3);
      const leader = await cluster.waitForLeader(nodes);
      const frozen = nodes.find((node) => node !== leader)!;
      const client = await RespClient.connect(leader.clientAddr, { timeoutMs: 30_000 });
      try {
        const baseline = await writeFor(client, 2000, 8, 0);
        const before = await overheadBytes(cluster, leader);
        const term = (await cluster.info(leader)).get("term");

        await cluster.kill(frozen, "SIGSTOP");
        const during = await writeFor(client, 8000, 8, 1000);
        const after = await overheadBytes(cluster, leader);
        const growth = after - before;
        console.log(
          `baseline: ${baseline.writes} SETs of 64 KiB, median ${median(baseline.latenciesMs).toFixed(1)} ms; ` +
            `${frozen.id} frozen: ${during.writes} SETs (${(during.bytes / MB).toFixed(0)} MB), median ${median(during.latenciesMs).toFixed(1)} ms; ` +
            `leader memory above its store grew by ${(growth / MB).toFixed(1)} MB`,
        );
        // Queuing everything for the frozen follower would grow by what was written.
        expect(during.bytes).toBeGreaterThan(200 * MB);
        expect(growth).toBeLessThan(128 * MB);
        expect(median(during.latenciesMs)).toBeLessThan(median(baseline.latenciesMs) * 3 + 20);

        frozen.signal("SIGCONT");
        await waitUntilIdentical(cluster, leader, frozen, 60_000);
        expect((await cluster.info(leader)).get("term")).toBe(term);
      } finally {
        client.close();
        if (frozen.running) frozen.signal("SIGCONT");
      }
    },
    120_000,
  );

  clusterTest(
    "flapping follower causes no election",
    async () => {
      const cluster = new Cluster({ name: "flapping-follower" });
      const nodes = await cluster.startCluster(3);
      const leader = await cluster.waitForLeader(nodes);
      const flapping = nodes.find((node) => node !== leader)!;
      const client = await RespClient.connect(leader.clientAddr, { timeoutMs: 30_000 });
      let stopped = false;
      let flaps = 0;
      const timer = setInterval(() => {
        stopped = !stopped;
        flapping.signal(stopped ? "SIGSTOP" : "SIGCONT");
        flaps++;
      }, 500);
      try {
        await writeFor(client, 1000, 8, 0);
        const before = await overheadBytes(cluster, leader);
        const term = (await cluster.info(leader)).get("term");
        const run = await writeFor(client, 8000, 8, 1000);
        clearInterval(timer);
        if (stopped) flapping.signal("SIGCONT");
        const growth = (await overheadBytes(cluster, leader)) - before;
        console.log(`${flaps} stops and resumes of ${flapping.id} during ${run.writes} SETs; leader memory above its store grew by ${(growth / MB).toFixed(1)} MB`);
        expect(growth).toBeLessThan(128 * MB);
        expect((await cluster.info(leader)).get("term")).toBe(term);
        await waitUntilIdentical(cluster, leader, flapping, 60_000);
      } finally {
        clearInterval(timer);
        client.close();
        if (flapping.running) flapping.signal("SIGCONT");
      }
    },
    120_000,
  );
});
