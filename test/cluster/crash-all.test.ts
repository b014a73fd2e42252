// Every node killed with SIGKILL at the same instant, while a writer runs:
// each write acknowledged before the kill must be on every node after all
// three restart, through the leader and through a follower that forwards.
// No restarted node may report a commit index beyond its log, and no term
// may have two leaders.

import { describe, expect } from "bun:test";
import { Cluster, clusterTest, ContinuousWriter, findLostWrites, installClusterHooks, type ClusterNode } from "../support/cluster.ts";

installClusterHooks();

/** Sends SIGKILL to every node before waiting for any of them to exit. */
async function killAll(nodes: ClusterNode[]): Promise<void> {
  for (const node of nodes) node.signal("SIGKILL");
  await Promise.all(nodes.map((node) => node.exited()));
}

/** Terms in which more than one node logged "became leader", across every start of every node. */
function termsWithTwoLeaders(nodes: ClusterNode[]): string[] {
  const leaders = new Map<string, Set<string>>();
  for (const node of nodes) {
    for (const line of node.log().split("\n")) {
      if (!line.includes('msg="became leader"')) continue;
      const term = /term=(\d+)/.exec(line)?.[1] ?? "?";
      const ids = leaders.get(term) ?? new Set<string>();
      ids.add(node.id);
      leaders.set(term, ids);
    }
  }
  return [...leaders].filter(([, ids]) => ids.size > 1).map(([term, ids]) => `term ${term}: ${[...ids].join(", ")}`);
}

describe("all nodes killed at once", () => {
  clusterTest(
    "acked writes survive killing all",
    async () => {
      const cluster = new Cluster({ name: "crash-all", tickMs: 20 });
      const nodes = await cluster.startCluster(3);
      // Kill after different amounts of writing; rounds alternate between writing to the leader and to a follower.
      const delaysMs = [2000, 900, 3000, 1500];
      let totalAcked = 0;
      for (const [round, delayMs] of delaysMs.entries()) {
        const leader = await cluster.waitForLeader(nodes, 10_000);
        const viaFollower = round % 2 === 1;
        const target = viaFollower ? nodes.find((node) => node !== leader)! : leader;
        const writer = new ContinuousWriter({ targets: () => [target], prefix: `r${round}-`, intervalMs: 5, timeoutMs: 2000, maxInFlight: 16 });
        writer.start();
        await Bun.sleep(delayMs);
        await killAll(nodes);
        await writer.stop();
        const acked = writer.acked();
        expect(acked.length, `writes acked in round ${round}`).toBeGreaterThan(0);
        totalAcked += acked.length;

        for (const node of nodes) await cluster.start(node, "ping");
        const next = await cluster.waitForLeader(nodes, 15_000);
        const commitIndex = Number((await cluster.info(next)).get("commit_index"));
        for (const node of nodes) {
          await cluster.waitForApplied(node, commitIndex);
          const info = await cluster.info(node);
          expect(Number(info.get("commit_index")), `${node.id} commit index within its log`).toBeLessThanOrEqual(Number(info.get("last_log_index")));
          const lost = await findLostWrites(node, acked);
          expect(lost.slice(0, 10), `acked writes of round ${round} missing on ${node.id}`).toEqual([]);
        }
        console.log(`round ${round}: ${acked.length} writes acked via ${viaFollower ? "a follower" : "the leader"} before all three were killed; none lost`);
      }
      expect(termsWithTwoLeaders(nodes)).toEqual([]);
      expect(totalAcked).toBeGreaterThan(100);
    },
    120_000,
  );
});
