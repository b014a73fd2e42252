// Read consistency levels against real processes. A leader is paused
// (SIGSTOP) while the others elect a new leader and take a write. Once it
// resumes, it must not serve the old value at `linearizable` or `lease`. It
// returns the new value (after learning it) or an error, never the old one.

import { describe, expect } from "bun:test";
import { Cluster, clusterTest, describeReply, installClusterHooks, replyText } from "../support/cluster.ts";

installClusterHooks();

describe("read consistency", () => {
  clusterTest(
    "levels return the acknowledged value",
    async () => {
      const cluster = new Cluster({ name: "levels" });
      const nodes = await cluster.startCluster(3);
      const leader = await cluster.waitForLeader(nodes);
      expect(replyText(await cluster.command(leader, ["SET", "level-key", "v1"]))).toBe("OK");

      for (const node of nodes) {
        for (const level of ["lease", "linearizable"]) {
          const reply = await cluster.command(node, ["GET", "level-key", level]);
          expect(`${node.id} ${level}: ${describeReply(reply)}`).toBe(`${node.id} ${level}: "v1"`);
        }
      }

      const badLevel = await cluster.command(nodes[0], ["GET", "level-key", "eventual"]);
      expect(badLevel.type).toBe("error");
      const setLevel = await cluster.command(nodes[1], ["CONSISTENCY", "LINEARIZABLE"]);
      expect(replyText(setLevel)).toBe("OK");
    },
    60_000,
  );

  clusterTest(
    "followers learn a commit between heartbeats",
    async () => {
      // Heartbeats every 200 ms: a follower that waited for one would see
      // about half of these writes more than 100 ms late. A few late ones
      // are allowed, because a loaded machine can stall a process that long.
      const cluster = new Cluster({ name: "commit-news", tickMs: 200 });
      const nodes = await cluster.startCluster(3);
      const leader = await cluster.waitForLeader(nodes);
      const followers = nodes.filter((node) => node !== leader);
      const late: string[] = [];
      for (let i = 0; i < 20; i++) {
        expect(replyText(await cluster.command(leader, ["SET", `news-${i}`, `v${i}`]))).toBe("OK");
        const acknowledged = performance.now();
        for (const follower of followers) {
          let value: string | null = null;
          while (value !== `v${i}` && performance.now() - acknowledged < 100) {
            value = replyText(await cluster.command(follower, ["GET", `news-${i}`]));
          }
          if (value !== `v${i}`) {
            late.push(`${follower.id} news-${i}`);
            await cluster.waitForValue(follower, `news-${i}`, `v${i}`, 5000);
          }
        }
      }
      expect(late.length, `seen more than 100 ms after the acknowledgement: ${late.join(", ")}`).toBeLessThanOrEqual(3);
    },
    60_000,
  );

  clusterTest(
    "resumed old leader never serves stale reads",
    async () => {
      const cluster = new Cluster({ name: "stale" });
      const nodes = await cluster.startCluster(3);
      const oldLeader = await cluster.waitForLeader(nodes);
      expect(replyText(await cluster.command(oldLeader, ["SET", "fenced", "old"]))).toBe("OK");

      await cluster.kill(oldLeader, "SIGSTOP");
      const others = nodes.filter((node) => node !== oldLeader);
      const newLeader = await cluster.waitForLeader(others, 15_000);
      expect(replyText(await cluster.command(newLeader, ["SET", "fenced", "new"]))).toBe("OK");

      await cluster.kill(oldLeader, "SIGCONT");
      // Read through the resumed node at once, on fresh connections, before it hears from anyone.
      const reads = await Promise.all(
        ["linearizable", "lease", "linearizable"].map((level) =>
          cluster.command(oldLeader, ["GET", "fenced", level], 15_000).then((reply) => ({ level, reply })),
        ),
      );
      for (const { level, reply } of reads) {
        const text = replyText(reply);
        // Either the new value or an error; the old value would be a stale read.
        expect(`${level}: ${text === "old" ? "stale value old" : "ok"}`).toBe(`${level}: ok`);
        if (reply.type !== "error") expect(text).toBe("new");
      }
    },
    90_000,
  );
});
