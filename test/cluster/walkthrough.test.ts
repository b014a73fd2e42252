// The acceptance walkthrough with default timing: bootstrap and two joins,
// replication to a follower, SIGKILL of the leader, failover, REMOVE of the
// dead node, and a restart of the survivors that keeps every key.

import { describe, expect } from "bun:test";
import { Cluster, clusterTest, describeReply, installClusterHooks, replyText, waitFor } from "../support/cluster.ts";

installClusterHooks();

describe("acceptance walkthrough", () => {
  clusterTest(
    "three nodes survive leader crash and remove",
    async () => {
      const cluster = new Cluster({ name: "walkthrough" });
      const node1 = cluster.addNode({ joinAddr: null });
      await cluster.start(node1);
      await cluster.waitForLeader([node1]);
      const node2 = cluster.addNode({ joinAddr: node1.clientAddr });
      const node3 = cluster.addNode({ joinAddr: node1.clientAddr });
      await Promise.all([cluster.start(node2), cluster.start(node3)]);
      await cluster.waitForVoters([node1, node2, node3]);

      const set = await cluster.command(node1, ["SET", "db_status", "operational"]);
      expect(describeReply(set)).toBe("OK");
      await cluster.waitForValue(node3, "db_status", "operational", 3000);
      const commit = await cluster.command(node1, ["SET", "commit_point", "1024"]);
      expect(describeReply(commit)).toBe("OK");

      // node-1 bootstrapped, so it is the leader unless an election happened since.
      const oldLeader = await cluster.waitForLeader();
      const survivors = [node1, node2, node3].filter((node) => node !== oldLeader);
      const killedAt = Date.now();
      await cluster.kill(oldLeader, "SIGKILL");
      const newLeader = await cluster.waitForLeader(survivors, 5000);
      const failoverMs = Date.now() - killedAt;
      expect(failoverMs).toBeLessThan(5000);

      const read = await cluster.command(newLeader, ["GET", "commit_point"]);
      expect(replyText(read)).toBe("1024");
      const remove = await cluster.command(newLeader, ["REMOVE", oldLeader.id]);
      expect(describeReply(remove)).toBe("OK");

      for (const node of survivors) {
        await waitFor(`${node.id} to drop ${oldLeader.id} from INFO`, async () => !(await cluster.memberIds(node)).includes(oldLeader.id), {
          timeoutMs: 3000,
        });
        const info = await cluster.info(node);
        expect(info.get("members")).toBe("2");
        const members = await cluster.command(node, ["MEMBERS"]);
        expect(describeReply(members)).not.toContain(oldLeader.id);
        expect(describeReply(members)).toContain(survivors[0].id);
        expect(describeReply(members)).toContain(survivors[1].id);
      }

      for (const node of survivors) await cluster.restart(node);
      const leaderAfterRestart = await cluster.waitForLeader(survivors, 10_000);
      expect(survivors).toContain(leaderAfterRestart);
      for (const node of survivors) {
        await cluster.waitForValue(node, "db_status", "operational", 5000);
        await cluster.waitForValue(node, "commit_point", "1024", 5000);
        expect(await cluster.memberIds(node)).not.toContain(oldLeader.id);
      }
    },
    60_000,
  );
});
