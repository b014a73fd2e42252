// Restarts with the original command line: --join-addr still given (also
// pointing at the node itself), repeated restarts, a new node joining through
// a follower, and a node whose data directory was wiped coming back under its
// old id.

import { describe, expect } from "bun:test";
import { rmSync } from "node:fs";
import {
  Cluster,
  clusterTest,
  describeReply,
  findLostWrites,
  installClusterHooks,
  waitFor,
  type ClusterNode,
  type WriteOutcome,
} from "../support/cluster.ts";

installClusterHooks();

/** Checks that INFO on every running node lists `ids` once each, all voters. */
async function expectMembers(cluster: Cluster, nodes: ClusterNode[], ids: string[]): Promise<void> {
  const wanted = [...ids].sort();
  for (const node of nodes) {
    await waitFor(
      `${node.id} to list ${wanted.join(",")} as voters`,
      async () => {
        const info = await cluster.info(node);
        const listed = (await cluster.memberIds(node)).sort();
        return listed.join(",") === wanted.join(",") && info.get("voters") === String(ids.length);
      },
      { timeoutMs: 5000 },
    );
  }
}

/** Lines of the node's log that mean it crashed or broke an invariant. */
function fatalLines(node: ClusterNode): string[] {
  return node.log().split("\n").filter((line) => / ERROR |invariant|panic|uncaught/i.test(line));
}

describe("restart with --join-addr", () => {
  clusterTest(
    "restarts keep membership and data",
    async () => {
      const cluster = new Cluster({ name: "c11", tickMs: 20 });
      const [node1, node2, node3] = await cluster.startCluster(3);
      const all = [node1, node2, node3];
      expect(describeReply(await cluster.command(node1, ["SET", "j", "1"]))).toBe("OK");

      // node-2 restarts twice with identical flags, --join-addr included.
      for (let round = 1; round <= 2; round++) {
        await cluster.restart(node2);
        expect(node2.log()).toContain("node has cluster state; not joining again");
        await cluster.waitForValue(node2, "j", "1");
        await expectMembers(cluster, all, ["node-1", "node-2", "node-3"]);
      }

      // The bootstrap node comes back joining through node-2, then through itself.
      await cluster.kill(node1, "SIGKILL");
      await cluster.waitForLeader([node2, node3], 5000);
      node1.joinAddr = node2.clientAddr;
      await cluster.start(node1);
      await cluster.waitForValue(node1, "j", "1");
      await cluster.kill(node1, "SIGKILL");
      node1.joinAddr = node1.clientAddr;
      await cluster.start(node1);
      await cluster.waitForLeader(all, 10_000);
      await expectMembers(cluster, all, ["node-1", "node-2", "node-3"]);

      // A new node joins through a follower.
      const leader = await cluster.waitForLeader(all);
      const follower = all.find((node) => node !== leader)!;
      const node4 = cluster.addNode({ id: "node-4", joinAddr: follower.clientAddr });
      await cluster.start(node4);
      const four = [...all, node4];
      await cluster.waitForVoters(four);
      await expectMembers(cluster, four, ["node-1", "node-2", "node-3", "node-4"]);

      const newLeader = await cluster.waitForLeader(four);
      expect(describeReply(await cluster.command(newLeader, ["SET", "j", "2"]))).toBe("OK");
      for (const node of four) await cluster.waitForValue(node, "j", "2");
      for (const node of four) expect(fatalLines(node)).toEqual([]);

      // A graceful stop adds its lines too. Every line names its node and term.
      await cluster.kill(newLeader, "SIGTERM");
      for (const node of four) {
        const lines = node.log().split("\n").filter((line) => / (INFO|WARN|ERROR) /.test(line));
        expect(lines.length).toBeGreaterThan(3);
        expect(lines.filter((line) => !line.includes(` node=${node.id} `) || !/ term=\d+/.test(line))).toEqual([]);
      }
    },
    60_000,
  );
});

describe("rejoin after wipe", () => {
  /** Starts three nodes and writes k1..k100 through the leader. */
  async function clusterWithKeys(name: string): Promise<{ cluster: Cluster; written: WriteOutcome[] }> {
    const cluster = new Cluster({ name, tickMs: 20 });
    await cluster.startCluster(3);
    const written: WriteOutcome[] = [];
    const leader = await cluster.waitForLeader();
    for (let i = 1; i <= 100; i++) await writeKey(cluster, leader, written, i);
    return { cluster, written };
  }

  async function writeKey(cluster: Cluster, leader: ClusterNode, written: WriteOutcome[], i: number): Promise<void> {
    const reply = describeReply(await cluster.command(leader, ["SET", `k${i}`, `v${i}`]));
    expect(reply, `SET k${i}`).toBe("OK");
    written.push({ key: `k${i}`, value: `v${i}`, nodeId: leader.id, sentAt: 0, ackedAt: 0, error: null });
  }

  /**
   * Wipes `node`'s data directory after a SIGKILL and starts it again with the
   * same id and addresses, joining through `via`. Returns true when the node
   * refused to come back (exited), false when it kept running.
   */
  async function wipeAndRestart(cluster: Cluster, node: ClusterNode, via: ClusterNode): Promise<boolean> {
    if (node.running) await cluster.kill(node, "SIGKILL");
    rmSync(node.dataDir, { recursive: true, force: true });
    node.joinAddr = via.clientAddr;
    await cluster.start(node, "ping");
    const exited = await Promise.race([node.exited().then(() => true), Bun.sleep(3000).then(() => false)]);
    if (exited) {
      // Behaviour (a): the node rejects the join with a message that names what the operator must do.
      expect(node.exitCode).not.toBe(0);
      expect(node.log()).toMatch(/REMOVE|new id|already a member/i);
    }
    return exited;
  }

  clusterTest(
    "wiped follower rejoins under its id",
    async () => {
      const { cluster, written } = await clusterWithKeys("c01-follower");
      let leader = await cluster.waitForLeader();
      const follower = cluster.nodes.find((node) => node !== leader)!;
      const refused = await wipeAndRestart(cluster, follower, leader);
      if (!refused) {
        // Behaviour (b): the node is re-admitted and catches up from the leader.
        await cluster.waitForValue(follower, "k100", "v100", 10_000);
        expect(await findLostWrites(follower, written)).toEqual([]);
      }

      await writeKey(cluster, leader, written, 101);
      await cluster.kill(leader, "SIGKILL");
      leader = await cluster.waitForLeader(cluster.running(), 10_000);
      expect(await findLostWrites(leader, written, "linearizable")).toEqual([]);
      if (!refused) await cluster.waitForValue(follower, "k101", "v101", 10_000);
      for (const node of cluster.nodes) expect(fatalLines(node), `${node.id} log`).toEqual([]);
    },
    60_000,
  );

  clusterTest(
    "wiped leader rejoins under its id",
    async () => {
      const { cluster, written } = await clusterWithKeys("c01-leader");
      const oldLeader = await cluster.waitForLeader();
      const others = cluster.nodes.filter((node) => node !== oldLeader);
      await cluster.kill(oldLeader, "SIGKILL");
      rmSync(oldLeader.dataDir, { recursive: true, force: true });
      let leader = await cluster.waitForLeader(others, 10_000);
      expect(await findLostWrites(leader, written, "linearizable")).toEqual([]);

      const refused = await wipeAndRestart(cluster, oldLeader, leader);
      if (!refused) {
        await cluster.waitForValue(oldLeader, "k100", "v100", 10_000);
        // With an empty log it must not have taken over the leadership.
        expect(await cluster.findLeader(cluster.running())).not.toBe(oldLeader);
      }

      leader = await cluster.waitForLeader(cluster.running(), 10_000);
      await writeKey(cluster, leader, written, 101);
      await cluster.kill(leader, "SIGKILL");
      leader = await cluster.waitForLeader(cluster.running(), 10_000);
      expect(await findLostWrites(leader, written, "linearizable")).toEqual([]);
      for (const node of cluster.nodes) expect(fatalLines(node), `${node.id} log`).toEqual([]);
    },
    60_000,
  );
});
