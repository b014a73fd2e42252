// Failover must keep every acknowledged write: the keys written before a
// leader crash are on the new leader, on the third node, and on the old leader
// once it restarts. The same must stay true across repeated crashes while a client
// keeps writing through the survivors.

import { describe, expect } from "bun:test";
import {
  Cluster,
  clusterTest,
  ContinuousWriter,
  describeReply,
  findLostWrites,
  installClusterHooks,
  replyText,
  type ClusterNode,
} from "../support/cluster.ts";

installClusterHooks();

const KEYS: Array<[string, string]> = [
  ["x", "foo"],
  ["y", "bar"],
  ["z", "baz"],
];

/** GETs each key on `node` with `consistency` and returns `key=value` strings, `key=nil` for a missing key. */
async function readAll(cluster: Cluster, node: ClusterNode, keys: string[], consistency?: string): Promise<string[]> {
  const values: string[] = [];
  for (const key of keys) {
    const reply = await cluster.command(node, consistency ? ["GET", key, consistency] : ["GET", key]);
    values.push(`${key}=${replyText(reply) ?? "nil"}`);
  }
  return values;
}

describe("failover", () => {
  clusterTest(
    "acked keys survive two leader crashes",
    async () => {
      const cluster = new Cluster({ name: "c04", tickMs: 20 });
      const nodes = await cluster.startCluster(3);
      const first = await cluster.waitForLeader();
      for (const [key, value] of KEYS) expect(describeReply(await cluster.command(first, ["SET", key, value]))).toBe("OK");

      await cluster.kill(first, "SIGKILL");
      const survivors = nodes.filter((node) => node !== first);
      const second = await cluster.waitForLeader(survivors, 5000);
      // A new leader must never return nil for an acknowledged key, even on a local read.
      expect(await readAll(cluster, second, ["x", "y", "z"])).toEqual(["x=foo", "y=bar", "z=baz"]);
      expect(await readAll(cluster, second, ["x", "y", "z"], "linearizable")).toEqual(["x=foo", "y=bar", "z=baz"]);
      expect(describeReply(await cluster.command(second, ["SET", "t", "xyzzy"]))).toBe("OK");

      const third = survivors.find((node) => node !== second)!;
      await cluster.waitForValue(third, "t", "xyzzy");
      expect(await readAll(cluster, third, ["x", "y", "z", "t"])).toEqual(["x=foo", "y=bar", "z=baz", "t=xyzzy"]);

      await cluster.start(first);
      await cluster.waitForValue(first, "t", "xyzzy");
      expect(await readAll(cluster, first, ["x", "y", "z", "t"])).toEqual(["x=foo", "y=bar", "z=baz", "t=xyzzy"]);

      await cluster.kill(second, "SIGKILL");
      const next = await cluster.waitForLeader([first, third], 5000);
      expect(await readAll(cluster, next, ["x", "y", "z", "t"])).toEqual(["x=foo", "y=bar", "z=baz", "t=xyzzy"]);
      expect(await readAll(cluster, next, ["x", "y", "z", "t"], "linearizable")).toEqual(["x=foo", "y=bar", "z=baz", "t=xyzzy"]);
    },
    60_000,
  );

  clusterTest(
    "writes acked during repeated crashes",
    async () => {
      const cluster = new Cluster({ name: "c04-writer", tickMs: 20 });
      const nodes = await cluster.startCluster(3);
      const writer = new ContinuousWriter({
        targets: () => cluster.running(),
        prefix: "w",
        intervalMs: 10,
        timeoutMs: 2000,
        maxDurationMs: 60_000,
      });
      writer.start();
      try {
        for (let round = 1; round <= 4; round++) {
          await Bun.sleep(300);
          const leader = await cluster.waitForLeader(cluster.running(), 10_000);
          const killedAt = Date.now();
          await cluster.kill(leader, "SIGKILL");
          const survivors = nodes.filter((node) => node !== leader);
          const next = await cluster.waitForLeader(survivors, 10_000);
          await writer.waitForAckSentAfter(killedAt, 10_000);

          const ackedBeforeKill = writer.acked().filter((write) => write.ackedAt! < killedAt);
          expect(ackedBeforeKill.length, `writes acked before round ${round}`).toBeGreaterThan(0);
          const lost = await findLostWrites(next, ackedBeforeKill, "linearizable");
          expect(lost.slice(0, 10), `acked writes missing on ${next.id} after round ${round}`).toEqual([]);

          await cluster.start(leader);
        }
      } finally {
        await writer.stop();
      }

      // Every acknowledged write is on every node once they have caught up.
      const acked = writer.acked();
      const leader = await cluster.waitForLeader();
      const commitIndex = Number((await cluster.info(leader)).get("commit_index"));
      for (const node of nodes) {
        await cluster.waitForApplied(node, commitIndex);
        const lost = await findLostWrites(node, acked);
        expect(lost.slice(0, 10), `acked writes missing on ${node.id}`).toEqual([]);
      }
      console.log(`writes acked during repeated crashes: ${acked.length} of ${writer.outcomes.length}`);
    },
    120_000,
  );

  clusterTest(
    "paused leader steps down on resume",
    async () => {
      const cluster = new Cluster({ name: "pause", tickMs: 20 });
      const nodes = await cluster.startCluster(3);
      const paused = await cluster.waitForLeader();
      expect(describeReply(await cluster.command(paused, ["SET", "before_pause", "1"]))).toBe("OK");

      // SIGSTOP freezes the process, timers included, so it cannot notice that it lost the leadership.
      paused.signal("SIGSTOP");
      try {
        const others = nodes.filter((node) => node !== paused);
        const next = await cluster.waitForLeader(others, 10_000);
        expect(describeReply(await cluster.command(next, ["SET", "during_pause", "2"]))).toBe("OK");
      } finally {
        paused.signal("SIGCONT");
      }

      const leader = await cluster.waitForLeader(nodes, 10_000);
      expect(leader).not.toBe(paused);
      await cluster.waitForValue(paused, "during_pause", "2");
      expect(await readAll(cluster, paused, ["before_pause", "during_pause"])).toEqual(["before_pause=1", "during_pause=2"]);
      expect(describeReply(await cluster.command(paused, ["SET", "after_resume", "3"]))).toBe("OK");
      await cluster.waitForValue(leader, "after_resume", "3");
    },
    60_000,
  );
});
