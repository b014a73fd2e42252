// Membership changes on real processes: removing the leader, removing a dead
// node and adding a new one, a removed node that restarts with its old data,
// and a REMOVE that cannot reach a quorum.

import { describe, expect } from "bun:test";
import {
  Cluster,
  clusterTest,
  describeReply,
  installClusterHooks,
  replyText,
  sendCommand,
  waitFor,
  type ClusterNode,
} from "../support/cluster.ts";

installClusterHooks();

/** Terms reported by `nodes`, as `id=term`. */
async function terms(cluster: Cluster, nodes: ClusterNode[]): Promise<string[]> {
  const result: string[] = [];
  for (const node of nodes) result.push(`${node.id}=${(await cluster.info(node)).get("term")}`);
  return result;
}

/** Waits until INFO on every node of `nodes` lists exactly `ids` as members. */
async function waitForMembership(cluster: Cluster, nodes: ClusterNode[], ids: string[], timeoutMs = 5000): Promise<void> {
  const wanted = [...ids].sort().join(",");
  for (const node of nodes) {
    await waitFor(`${node.id} to list members ${wanted}`, async () => (await cluster.memberIds(node)).sort().join(",") === wanted, {
      timeoutMs,
    });
  }
}

/**
 * Checks the reply to a SET sent to a node that was removed: an error, or an
 * OK that the cluster really applied (forwarded), never an OK that is lost.
 */
async function expectNotLost(cluster: Cluster, reply: string, leader: ClusterNode, key: string, value: string): Promise<void> {
  if (reply === "OK") {
    await cluster.waitForValue(leader, key, value, 3000);
  } else {
    expect(reply).toStartWith("-");
    expect(describeReply(await sendCommand(leader.clientAddr, ["GET", key]))).toBe("nil");
  }
}

describe("remove the leader", () => {
  clusterTest(
    "leader removes itself",
    async () => {
      const cluster = new Cluster({ name: "c02", tickMs: 20 });
      const nodes = await cluster.startCluster(3);
      const leader = await cluster.waitForLeader();
      expect(describeReply(await cluster.command(leader, ["SET", "a", "1"]))).toBe("OK");

      const remove = await cluster.command(leader, ["REMOVE", leader.id], 10_000);
      expect(describeReply(remove)).toBe("OK");
      const remaining = nodes.filter((node) => node !== leader);
      // OK means committed: a majority of the remaining nodes already has the new configuration.
      const withoutLeader = await Promise.all(remaining.map(async (node) => !(await cluster.memberIds(node)).includes(leader.id)));
      expect(withoutLeader.filter(Boolean).length).toBeGreaterThanOrEqual(1);

      const next = await cluster.waitForLeader(remaining, 10_000);
      expect(describeReply(await cluster.command(next, ["SET", "b", "2"]))).toBe("OK");
      for (const node of remaining) {
        await cluster.waitForValue(node, "a", "1");
        await cluster.waitForValue(node, "b", "2");
      }
      await waitForMembership(cluster, remaining, remaining.map((node) => node.id));

      const late = describeReply(await sendCommand(leader.clientAddr, ["SET", "c", "3"], 10_000));
      await expectNotLost(cluster, late, next, "c", "3");
      expect((await cluster.info(leader)).get("role")).not.toBe("leader");

      // The removed node must not disturb the others: no new elections.
      const before = await terms(cluster, remaining);
      await Bun.sleep(1500);
      expect(await terms(cluster, remaining)).toEqual(before);
      expect(await cluster.findLeader(remaining)).toBe(next);
    },
    60_000,
  );

  clusterTest(
    "five nodes remove leader twice",
    async () => {
      const cluster = new Cluster({ name: "c02-five" });
      let members = await cluster.startCluster(5, 45_000);
      expect(describeReply(await cluster.command(members[0], ["SET", "a", "1"]))).toBe("OK");

      for (let round = 1; round <= 2; round++) {
        const leader = await cluster.waitForLeader(members);
        const remove = await cluster.command(leader, ["REMOVE", leader.id], 10_000);
        expect(describeReply(remove), `REMOVE in round ${round}`).toBe("OK");
        members = members.filter((node) => node !== leader);
        const next = await cluster.waitForLeader(members, 10_000);
        expect(describeReply(await cluster.command(next, ["SET", `after_${round}`, "yes"])), `SET after round ${round}`).toBe("OK");
        await waitForMembership(cluster, members, members.map((node) => node.id));
        const late = describeReply(await sendCommand(leader.clientAddr, ["SET", `late_${round}`, "x"], 10_000));
        await expectNotLost(cluster, late, next, `late_${round}`, "x");
      }

      for (const node of members) {
        await cluster.waitForValue(node, "a", "1");
        await cluster.waitForValue(node, "after_1", "yes");
        await cluster.waitForValue(node, "after_2", "yes");
      }
      expect((await cluster.info(members[0])).get("voters")).toBe("3");
    },
    90_000,
  );
});

describe("remove a running follower", () => {
  clusterTest(
    "removed follower learns it",
    async () => {
      const cluster = new Cluster({ name: "removed-follower", tickMs: 20 });
      const nodes = await cluster.startCluster(3);
      const leader = await cluster.waitForLeader(nodes);
      const follower = nodes.find((node) => node !== leader)!;
      expect(describeReply(await cluster.command(leader, ["REMOVE", follower.id], 10_000))).toBe("OK");

      // The leader no longer replicates to it, but its peers reject its
      // connections as removed. Until then it may still forward writes.
      await waitFor(
        `${follower.id} to answer REMOVED`,
        async () => describeReply(await sendCommand(follower.clientAddr, ["SET", "late", "x"], 10_000)).startsWith("-REMOVED"),
        { timeoutMs: 20_000, intervalMs: 200 },
      );
      expect(follower.log()).toContain("a peer reports that this node was removed from the cluster");
      // The warning gives the JOIN that adds the node back.
      expect(follower.log()).toContain(`send JOIN ${follower.id} 127.0.0.1:${follower.raftPort} ${follower.clientAddr} to a member`);
      expect((await cluster.info(follower)).get("removed")).toBe("1");
      expect((await cluster.info(leader)).get("removed")).toBe("0");
      expect(describeReply(await sendCommand(follower.clientAddr, ["SET", "refused", "x"]))).toStartWith("-REMOVED");
      // Reads that need a leader fail at once too, and local reads still work.
      const started = Date.now();
      expect(describeReply(await sendCommand(follower.clientAddr, ["GET", "late", "linearizable"]))).toStartWith("-REMOVED");
      expect(Date.now() - started).toBeLessThan(2000);
      expect(describeReply(await sendCommand(follower.clientAddr, ["GET", "late", "local"]))).not.toStartWith("-");
      expect(describeReply(await sendCommand(leader.clientAddr, ["GET", "refused"]))).toBe("nil");
      // Its member list is stale, so MEMBERS returns REMOVED instead of a list naming itself.
      expect(describeReply(await sendCommand(follower.clientAddr, ["MEMBERS"]))).toStartWith("-REMOVED");
      expect(describeReply(await sendCommand(follower.clientAddr, ["LEADER"]))).toStartWith("-REMOVED");
      expect(describeReply(await sendCommand(leader.clientAddr, ["MEMBERS"]))).not.toContain(follower.id);

      // Added back, it is a member again and takes writes.
      const join = await cluster.command(leader, ["JOIN", follower.id, `127.0.0.1:${follower.raftPort}`, follower.clientAddr], 10_000);
      // JOIN replies with the cluster id and the members.
      expect(describeReply(join)).toContain(follower.id);
      await waitFor(
        `${follower.id} to take writes again`,
        async () => describeReply(await sendCommand(follower.clientAddr, ["SET", "back", "1"], 10_000)) === "OK",
        { timeoutMs: 20_000, intervalMs: 200 },
      );
      expect((await cluster.info(follower)).get("removed")).toBe("0");
      await cluster.waitForValue(leader, "back", "1");
    },
    60_000,
  );
});

describe("membership while a node is down", () => {
  clusterTest(
    "remove dead node and add a new one",
    async () => {
      const cluster = new Cluster({ name: "c09", tickMs: 20 });
      const [node1, node2, node3] = await cluster.startCluster(3);
      const leader = await cluster.waitForLeader();
      expect(describeReply(await cluster.command(leader, ["SET", "a", "1"]))).toBe("OK");
      await cluster.waitForValue(node3, "a", "1");
      await cluster.kill(node3, "SIGKILL");

      const current = await cluster.waitForLeader([node1, node2]);
      expect(describeReply(await cluster.command(current, ["REMOVE", node3.id], 10_000))).toBe("OK");
      expect(describeReply(await cluster.command(current, ["SET", "b", "2"]))).toBe("OK");

      const node4 = cluster.addNode({ id: "node-4", joinAddr: node1.clientAddr });
      await cluster.start(node4);
      await cluster.waitForVoters([node1, node2, node4]);
      await cluster.waitForValue(node4, "a", "1");
      await cluster.waitForValue(node4, "b", "2");

      // The removed node restarts with its old data and old flags.
      const before = await terms(cluster, [node1, node2, node4]);
      const leaderBefore = await cluster.waitForLeader([node1, node2, node4]);
      await cluster.start(node3, "ping");
      await Bun.sleep(2000);
      expect(await terms(cluster, [node1, node2, node4])).toEqual(before);
      expect(await cluster.findLeader([node1, node2, node4])).toBe(leaderBefore);
      await waitForMembership(cluster, [node1, node2, node4], ["node-1", "node-2", "node-4"]);
      if (node3.running) {
        expect((await cluster.info(node3)).get("role")).not.toBe("leader");
        const late = describeReply(await sendCommand(node3.clientAddr, ["SET", "from_removed", "x"], 10_000));
        await expectNotLost(cluster, late, leaderBefore, "from_removed", "x");
      } else {
        expect(node3.log()).toMatch(/removed/i);
      }

      await cluster.kill(leaderBefore, "SIGKILL");
      const survivors = [node1, node2, node4].filter((node) => node !== leaderBefore);
      const next = await cluster.waitForLeader(survivors, 10_000);
      expect(replyText(await cluster.command(next, ["GET", "a"]))).toBe("1");
      expect(replyText(await cluster.command(next, ["GET", "b"]))).toBe("2");
    },
    60_000,
  );

  clusterTest(
    "REMOVE without quorum is not acked",
    async () => {
      const cluster = new Cluster({ name: "c09-no-quorum", tickMs: 20, extraArgs: ["--request-timeout-ms", "2000"] });
      const nodes = await cluster.startCluster(3);
      const leader = await cluster.waitForLeader();
      expect(describeReply(await cluster.command(leader, ["SET", "a", "1"]))).toBe("OK");
      const followers = nodes.filter((node) => node !== leader);
      for (const follower of followers) await cluster.kill(follower, "SIGKILL");

      const reply = describeReply(await cluster.command(leader, ["REMOVE", followers[0].id], 10_000));
      expect(reply).not.toBe("OK");
      expect(reply).toMatch(/^-(TIMEOUT|NOLEADER|NOTLEADER|ERR)/);
      const write = describeReply(await cluster.command(leader, ["SET", "no_quorum", "x"], 10_000));
      expect(write).not.toBe("OK");

      // Once the followers are back the cluster serves again. The REMOVE timed
      // out, so its outcome is unknown: the entry may still commit under a new
      // leader that has it in its log, and then the members agree without it.
      await Promise.all(followers.map((follower) => cluster.start(follower)));
      const next = await waitFor(
        "a leader after the followers restarted",
        async () => {
          for (const node of nodes) if ((await cluster.info(node).catch(() => null))?.get("role") === "leader") return node;
          return null;
        },
        { timeoutMs: 10_000 },
      );
      expect(describeReply(await cluster.command(next, ["SET", "b", "2"]))).toBe("OK");
      const members = (await cluster.memberIds(next)).sort();
      expect([["node-1", "node-2", "node-3"].join(","), nodes.filter((node) => node !== followers[0]).map((node) => node.id).sort().join(",")]).toContain(
        members.join(","),
      );
      for (const node of nodes.filter((candidate) => members.includes(candidate.id))) {
        await waitFor(`${node.id} to list members ${members.join(",")}`, async () => (await cluster.memberIds(node)).sort().join(",") === members.join(","), {
          timeoutMs: 5000,
        });
      }
      expect(replyText(await cluster.command(next, ["GET", "a", "linearizable"]))).toBe("1");
    },
    60_000,
  );
});

describe("join interrupted", () => {
  clusterTest(
    "node killed during its first snapshot",
    async () => {
      // The leader compacts its log, so the new node starts with a snapshot
      // of 16 MB. Killed while it arrives, the node has a cluster id but no
      // configuration, and must still find its peers after a restart.
      const cluster = new Cluster({ name: "join-interrupted", extraArgs: ["--snapshot-entries", "20"] });
      const first = cluster.addNode({ joinAddr: null });
      await cluster.start(first);
      await cluster.waitForLeader([first]);
      const client = await cluster.client(first, 30_000);
      const value = "v".repeat(100_000);
      for (let i = 0; i < 160; i++) expect(replyText(await client.command(["SET", `big${i}`, value]))).toBe("OK");
      expect(replyText(await client.command(["SET", "last", "done"]))).toBe("OK");
      await first.waitForLog('msg="stored log compacted"', 10_000);

      const joiner = cluster.addNode();
      await cluster.start(joiner, "none");
      await joiner.waitForLog("incoming snapshot transfer started", 10_000);
      await cluster.kill(joiner, "SIGKILL");
      expect(joiner.log()).not.toContain("installed snapshot from the leader");

      await cluster.start(joiner, "ping");
      await cluster.waitForValue(joiner, "last", "done", 20_000);
      const joinerClient = await cluster.client(joiner, 30_000);
      const wrong: string[] = [];
      for (let i = 0; i < 160; i++) {
        if (replyText(await joinerClient.command(["GET", `big${i}`])) !== value) wrong.push(`big${i}`);
      }
      expect(wrong).toEqual([]);
      await cluster.waitForVoters([first, joiner]);
      expect(joiner.log()).toContain("sending JOIN again");
    },
    60_000,
  );
});
