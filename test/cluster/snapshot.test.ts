// Snapshots with real processes. A restart loads the newest snapshot plus the
// log tail. A follower behind the compaction point catches up by
// InstallSnapshot. A damaged newest snapshot falls back to the previous one;
// with every snapshot damaged, a peer's is fetched. A backup restores into a
// new cluster. Nodes snapshot every 200 entries
// here, so that a few thousand writes cross several snapshots.

import { describe, expect } from "bun:test";
import { appendFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Cluster, clusterTest, describeReply, freePort, installClusterHooks, replyText, runEchokv, type ClusterNode } from "../support/cluster.ts";
import { RespClient } from "../../src/client/client.ts";

installClusterHooks();

/** --listen-addr and --raft-addr on free ports, for serve runs that are expected to stop before they listen. */
function freeAddresses(): string[] {
  return ["--listen-addr", `127.0.0.1:${freePort()}`, "--raft-addr", `127.0.0.1:${freePort()}`];
}

const SNAPSHOT_FLAGS = ["--snapshot-entries", "200"];

/** Writes keys `prefix0..prefix<count-1>` with values `v<i>` through `addr`, pipelined. */
async function writeKeys(addr: string, prefix: string, count: number): Promise<void> {
  const client = await RespClient.connect(addr, { timeoutMs: 30_000 });
  try {
    const replies = await Promise.all(Array.from({ length: count }, (_, i) => client.command(["SET", `${prefix}${i}`, `v${i}`])));
    const failed = replies.filter((reply) => reply.type === "error");
    expect(failed).toEqual([]);
  } finally {
    client.close();
  }
}

/** Returns the keys among `prefix0..` whose value on `addr` is not `v<i>`. */
async function wrongKeys(addr: string, prefix: string, count: number): Promise<string[]> {
  const client = await RespClient.connect(addr, { timeoutMs: 30_000 });
  try {
    const replies = await Promise.all(Array.from({ length: count }, (_, i) => client.command(["GET", `${prefix}${i}`])));
    return replies.flatMap((reply, i) => (replyText(reply) === `v${i}` ? [] : [`${prefix}${i}=${replyText(reply)}`]));
  } finally {
    client.close();
  }
}

/**
 * Waits until the node's log writer has deleted the stored log up to the
 * snapshot before its newest one, which it does in the background once the
 * newest is recorded.
 */
async function waitForCompaction(node: ClusterNode): Promise<void> {
  const snapshotLines = [...node.log().matchAll(/msg="snapshot taken".* log_compacted_to=(\d+)/g)];
  const target = snapshotLines.at(-1)?.[1];
  if (target === undefined || target === "0") throw new Error(`${node.id} has not logged a snapshot that compacts the log`);
  await node.waitForLog(`msg="stored log compacted" to=${target}`);
}

function snapshotFiles(dataDir: string): string[] {
  return readdirSync(join(dataDir, "snapshots")).filter((name) => name.endsWith(".snap"));
}

describe("snapshots", () => {
  clusterTest(
    "restart loads snapshot and log tail",
    async () => {
      const cluster = new Cluster({ name: "snap-restart", extraArgs: SNAPSHOT_FLAGS });
      const nodes = await cluster.startCluster(3);
      const leader = await cluster.waitForLeader(nodes);
      await writeKeys(leader.clientAddr, "r", 1500);
      const follower = nodes.find((node) => node !== leader)!;
      await cluster.waitForValue(follower, "r1499", "v1499", 10_000);
      // The snapshot is written in the background after the entries are
      // applied, and recorded in the database after its file is renamed.
      await follower.waitForLog('msg="snapshot taken"', 10_000);
      expect(snapshotFiles(follower.dataDir).length).toBeGreaterThan(0);

      await cluster.restart(follower, "ping");
      expect(follower.log()).toContain("loaded snapshot");
      await cluster.waitForValue(follower, "r1499", "v1499", 10_000);
      expect(await wrongKeys(follower.clientAddr, "r", 1500)).toEqual([]);
    },
    90_000,
  );

  clusterTest(
    "new member installs snapshot that predates leader",
    async () => {
      // node-1's only snapshot lists node-1 alone. node-2 installs it when it
      // joins, leads after a TRANSFER, and sends it to node-4. node-4 must keep
      // sending its acknowledgements to node-2, which that snapshot leaves out.
      const cluster = new Cluster({ name: "snap-old-members" });
      const first = cluster.addNode({ joinAddr: null });
      await cluster.start(first);
      await cluster.waitForLeader([first]);
      await writeKeys(first.clientAddr, "a", 50);
      expect((await cluster.command(first, ["SNAPSHOT"])).type).not.toBe("error");
      await first.waitForLog('msg="snapshot taken"');

      const second = cluster.addNode();
      const third = cluster.addNode();
      await Promise.all([cluster.start(second), cluster.start(third)]);
      await cluster.waitForVoters([first, second, third]);
      expect(describeReply(await cluster.command(first, ["TRANSFER", second.id]))).toBe(JSON.stringify(second.id));
      expect(await cluster.waitForLeader([first, second, third])).toBe(second);
      await writeKeys(second.clientAddr, "b", 10);

      const fourth = cluster.addNode({ joinAddr: second.clientAddr });
      await cluster.start(fourth);
      await cluster.waitForValue(fourth, "b9", "v9", 10_000);
      expect(await wrongKeys(fourth.clientAddr, "a", 50)).toEqual([]);
      await cluster.waitForVoters([first, second, third, fourth]);
      expect(fourth.log()).not.toContain('msg="peer removed"');
    },
    60_000,
  );

  clusterTest(
    "lagging follower catches up by snapshot",
    async () => {
      const cluster = new Cluster({ name: "snap-install", extraArgs: SNAPSHOT_FLAGS });
      const nodes = await cluster.startCluster(3);
      const leader = await cluster.waitForLeader(nodes);
      const follower = nodes.find((node) => node !== leader)!;
      await cluster.kill(follower, "SIGKILL");

      // Enough writes for two snapshots past the follower's log, so the leader compacted what it lacks.
      await writeKeys(leader.clientAddr, "s", 1200);
      await cluster.start(follower, "ping");
      await cluster.waitForValue(follower, "s1199", "v1199", 20_000);
      // The follower applies the snapshot before the leader reads its last acknowledgement.
      await leader.waitForLog(`snapshot transfer finished" peer=${follower.id}`);
      expect(follower.log()).toContain("installed snapshot from the leader");
      expect(await wrongKeys(follower.clientAddr, "s", 1200)).toEqual([]);
    },
    90_000,
  );

  clusterTest(
    "damaged newest snapshot falls back",
    async () => {
      const cluster = new Cluster({ name: "snap-damaged", extraArgs: SNAPSHOT_FLAGS });
      const nodes = await cluster.startCluster(3);
      const leader = await cluster.waitForLeader(nodes);
      const follower = nodes.find((node) => node !== leader)!;
      // Two snapshots on the follower, with writes between them.
      await writeKeys(leader.clientAddr, "d", 500);
      await cluster.waitForValue(follower, "d499", "v499", 10_000);
      expect((await cluster.command(follower, ["SNAPSHOT"])).type).toBe("array");
      await writeKeys(leader.clientAddr, "e", 500);
      await cluster.waitForValue(follower, "e499", "v499", 10_000);
      expect((await cluster.command(follower, ["SNAPSHOT"])).type).toBe("array");
      await writeKeys(leader.clientAddr, "f", 50);
      await cluster.waitForValue(follower, "f49", "v49", 10_000);
      await cluster.kill(follower, "SIGKILL");

      const files = snapshotFiles(follower.dataDir).sort((a, b) => Number(b.split("-")[1]) - Number(a.split("-")[1]));
      expect(files.length).toBe(2);
      appendFileSync(join(follower.dataDir, "snapshots", files[0]), "garbage at the end");

      await cluster.start(follower, "ping");
      expect(follower.log()).toContain("snapshot unusable; trying an older one");
      await cluster.waitForValue(follower, "f49", "v49", 10_000);
      expect(await wrongKeys(follower.clientAddr, "d", 500)).toEqual([]);
      expect(await wrongKeys(follower.clientAddr, "e", 500)).toEqual([]);
    },
    90_000,
  );

  clusterTest(
    "damaged snapshots fetched from peer",
    async () => {
      const cluster = new Cluster({ name: "snap-peer", extraArgs: SNAPSHOT_FLAGS });
      const nodes = await cluster.startCluster(3);
      const leader = await cluster.waitForLeader(nodes);
      const follower = nodes.find((node) => node !== leader)!;
      // Two snapshots on the follower, and its log compacted up to the first.
      await writeKeys(leader.clientAddr, "m", 500);
      await cluster.waitForValue(follower, "m499", "v499", 10_000);
      expect((await cluster.command(follower, ["SNAPSHOT"])).type).toBe("array");
      await writeKeys(leader.clientAddr, "n", 500);
      await cluster.waitForValue(follower, "n499", "v499", 10_000);
      expect((await cluster.command(follower, ["SNAPSHOT"])).type).toBe("array");
      await writeKeys(leader.clientAddr, "o", 50);
      await cluster.waitForValue(follower, "o49", "v49", 10_000);
      await waitForCompaction(follower);
      await cluster.kill(follower, "SIGKILL");

      const files = snapshotFiles(follower.dataDir);
      expect(files.length).toBe(2);
      for (const file of files) appendFileSync(join(follower.dataDir, "snapshots", file), "garbage at the end");

      await cluster.start(follower, "ping");
      await follower.waitForLog("data restored from a peer's snapshot", 30_000);
      expect(follower.log()).toContain("no intact snapshot covers the compacted log");
      // Entries after the snapshot are applied as the leader reports them committed.
      await cluster.waitForValue(follower, "o49", "v49", 10_000);
      for (const prefix of ["m", "n"]) expect(await wrongKeys(follower.clientAddr, prefix, 500)).toEqual([]);
      expect(await wrongKeys(follower.clientAddr, "o", 50)).toEqual([]);
      expect((await cluster.info(follower)).get("loading")).toBe("0");

      // It applies new writes, and a restart loads the snapshot it received.
      await writeKeys(leader.clientAddr, "p", 50);
      await cluster.waitForValue(follower, "p49", "v49", 10_000);
      await cluster.kill(follower, "SIGKILL");
      await cluster.start(follower, "ping");
      expect(follower.log()).toContain("loaded snapshot");
      await cluster.waitForValue(follower, "p49", "v49", 10_000);
      for (const prefix of ["m", "n"]) expect(await wrongKeys(follower.clientAddr, prefix, 500)).toEqual([]);
      expect(await wrongKeys(follower.clientAddr, "p", 50)).toEqual([]);
    },
    90_000,
  );

  clusterTest(
    "members snapshot at different indexes",
    async () => {
      const cluster = new Cluster({ name: "snap-spread", extraArgs: SNAPSHOT_FLAGS });
      const nodes = await cluster.startCluster(3);
      const leader = await cluster.waitForLeader(nodes);
      // One write at a time, so that each node applies about one entry per batch.
      for (let i = 0; i < 300; i++) expect(replyText(await cluster.command(leader, ["SET", `s${i}`, "v"]))).toBe("OK");
      const firstIndexes: number[] = [];
      for (const node of nodes) {
        await node.waitForLog('msg="snapshot taken"', 10_000);
        firstIndexes.push(Number(/msg="snapshot taken" index=(\d+)/.exec(node.log())?.[1]));
      }

      console.log(`first snapshot indexes: ${firstIndexes.join(", ")}`);
      // Each starts after 75% to 125% of the 200 entries, give or take the entries applied in one batch.
      for (const index of firstIndexes) {
        expect(index).toBeGreaterThanOrEqual(150);
        expect(index).toBeLessThanOrEqual(270);
      }
      expect(new Set(firstIndexes).size).toBeGreaterThan(1);
    },
    60_000,
  );

  clusterTest(
    "lone node with damaged snapshots",
    async () => {
      const cluster = new Cluster({ name: "snap-lone", extraArgs: SNAPSHOT_FLAGS });
      const [node] = await cluster.startCluster(1);
      await writeKeys(node.clientAddr, "m", 300);
      expect((await cluster.command(node, ["SNAPSHOT"])).type).toBe("array");
      await writeKeys(node.clientAddr, "n", 300);
      expect((await cluster.command(node, ["SNAPSHOT"])).type).toBe("array");
      await waitForCompaction(node);
      await cluster.kill(node, "SIGKILL");
      for (const file of snapshotFiles(node.dataDir)) appendFileSync(join(node.dataDir, "snapshots", file), "garbage at the end");

      await cluster.start(node, "none");
      const exitCode = await node.exitWithin(10_000);
      expect(exitCode).not.toBe("still running");
      expect(exitCode).not.toBe(0);
      const message = node.fatalMessage();
      expect(message).toContain("no other member holds the data");
      expect(message).toContain("--restore");
    },
    60_000,
  );

  clusterTest(
    "backup restores into a new cluster",
    async () => {
      const cluster = new Cluster({ name: "snap-backup" });
      const nodes = await cluster.startCluster(3);
      const leader = await cluster.waitForLeader(nodes);
      await writeKeys(leader.clientAddr, "b", 300);
      const backup = join(cluster.dir, "backup.snap");
      const saved = await runEchokv(["snapshot", "save", backup, "--connect", nodes[1].clientAddr], { timeoutMs: 30_000 });
      expect(saved.exitCode).toBe(0);
      expect(saved.stdout).toContain(`saved snapshot at index`);
      // 300 small keys make a snapshot of a few kB, shown as such rather than as 0.0 MB.
      expect(`${saved.stdout}${saved.stderr}`).toMatch(/saved 100% \([\d.]+ kB of [\d.]+ kB\)/);

      // A path in a missing directory fails before the node takes a snapshot, naming the user's file.
      const missingDir = join(cluster.dir, "no-such-dir", "backup.snap");
      const refused = await runEchokv(["snapshot", "save", missingDir, "--connect", nodes[1].clientAddr], { timeoutMs: 30_000 });
      expect(refused.exitCode).not.toBe(0);
      expect(refused.stderr).toContain(`cannot write the backup to ${missingDir}: directory ${join(cluster.dir, "no-such-dir")} does not exist`);
      expect(refused.stderr).not.toContain("snapshot at index");

      const restored = new Cluster({ name: "snap-restored" });
      const node = restored.addNode({ id: "restored-1", joinAddr: null, extraArgs: ["--restore", backup] });
      await restored.start(node);
      await restored.waitForLeader([node]);
      expect(await wrongKeys(node.clientAddr, "b", 300)).toEqual([]);
      expect(replyText(await restored.command(node, ["SET", "after-restore", "1"]))).toBe("OK");
      expect(await restored.memberIds(node)).toEqual(["restored-1"]);

      // Two nodes join at once. Each first installs the backup's snapshot,
      // which lists only the first node, and only then learns of its own
      // addition. That is no removal, so no log line may report one.
      const joiners = [restored.addNode({ joinAddr: node.clientAddr }), restored.addNode({ joinAddr: node.clientAddr })];
      await Promise.all(joiners.map((joiner) => restored.start(joiner, "joined")));
      await restored.waitForVoters([node, ...joiners]);
      expect(await wrongKeys(joiners[1].clientAddr, "b", 300)).toEqual([]);
      for (const joiner of [node, ...joiners]) {
        expect(joiner.log(), joiner.id).not.toContain("not in the cluster configuration");
        expect(joiner.log(), joiner.id).not.toContain("was removed from the cluster");
      }

      // A damaged backup is refused with a clear error.
      const broken = join(cluster.dir, "broken.snap");
      writeFileSync(broken, "not a snapshot");
      const rejected = await runEchokv(
        ["serve", "--node-id", "x", "--data-dir", join(cluster.dir, "x"), ...freeAddresses(), "--restore", broken],
        { timeoutMs: 10_000 },
      );
      expect(rejected.exitCode).toBe(2);
      expect(rejected.stderr).toContain("cannot restore from");
      rmSync(broken);

      // --restore again on the node's own data directory, or with --join-addr, is refused with the reason.
      await restored.kill(node, "SIGTERM");
      const serve = (extra: string[], dataDir: string) =>
        runEchokv(["serve", "--node-id", "restored-1", "--data-dir", dataDir, ...freeAddresses(), "--restore", backup, ...extra], {
          timeoutMs: 10_000,
        });
      const again = await serve([], node.dataDir);
      expect(again.exitCode).toBe(2);
      expect(again.stderr).toContain(`--restore needs an empty data directory, but ${node.dataDir} already holds a node`);
      const joining = await serve(["--join-addr", nodes[0].clientAddr], join(cluster.dir, "empty"));
      expect(joining.exitCode).toBe(2);
      expect(joining.stderr).toContain("--restore starts a new cluster and cannot be combined with --join-addr");
    },
    90_000,
  );
});
