// A member that restarts from its data directory on other addresses: the
// cluster records its new addresses, replicates to it there, and can fail
// over with it. A new node may then take the old addresses, and the cluster
// never lists two members on one raft address.

import { describe, expect } from "bun:test";
import { Cluster, clusterTest, freePort, installClusterHooks, replyText, type ClusterNode } from "../support/cluster.ts";

installClusterHooks();

/** Reads MEMBERS on `node` into raft address -> id, failing if an address appears twice. */
async function membersByRaftAddr(cluster: Cluster, node: ClusterNode): Promise<Map<string, string>> {
  const reply = await cluster.command(node, ["MEMBERS"]);
  if (reply.type !== "array" || reply.value === null) throw new Error(`MEMBERS failed: ${JSON.stringify(reply)}`);
  const byAddr = new Map<string, string>();
  for (const entry of reply.value) {
    // Each line reads "<id> raft=<addr> client=<addr> <role>".
    const line = replyText(entry) ?? "";
    const [id, raft] = line.split(" ");
    const raftAddr = raft.replace(/^raft=/, "");
    if (byAddr.has(raftAddr)) throw new Error(`two members on ${raftAddr}: ${byAddr.get(raftAddr)} and ${id}`);
    byAddr.set(raftAddr, id);
  }
  return byAddr;
}

/**
 * Stops `node` with `signal`, starts it again on new ports, and waits until
 * it logs that the cluster recorded them. Returns its old raft address.
 */
async function restartOnNewPorts(cluster: Cluster, node: ClusterNode, signal: "SIGKILL" | "SIGTERM"): Promise<string> {
  const oldRaftAddr = node.raftAddr;
  await cluster.kill(node, signal);
  node.moveToNewPorts();
  await cluster.start(node, "ping");
  await node.waitForLog("address change recorded", 20_000);
  return oldRaftAddr;
}

/** Checks that MEMBERS on `observer` lists `moved` at its new raft address and no member at `oldRaftAddr`. */
async function expectMoveListed(cluster: Cluster, observer: ClusterNode, moved: ClusterNode, oldRaftAddr: string): Promise<void> {
  const members = await membersByRaftAddr(cluster, observer);
  expect(members.get(moved.raftAddr)).toBe(moved.id);
  expect(members.has(oldRaftAddr)).toBe(false);
}

describe("address change", () => {
  clusterTest(
    "member moves to new addresses",
    async () => {
      const cluster = new Cluster({ name: "address-change" });
      const nodes = await cluster.startCluster(3);
      const leader = await cluster.waitForLeader(nodes);
      expect(replyText(await cluster.command(leader, ["SET", "p", "1"]))).toBe("OK");
      const moved = nodes.find((node) => node !== leader)!;
      await cluster.waitForValue(moved, "p", "1");
      const oldPorts = { client: moved.clientPort, raft: moved.raftPort };

      moved.joinAddr = leader.clientAddr;
      const oldRaftAddr = await restartOnNewPorts(cluster, moved, "SIGKILL");
      await expectMoveListed(cluster, leader, moved, oldRaftAddr);
      expect(replyText(await cluster.command(leader, ["SET", "p", "2"]))).toBe("OK");
      await cluster.waitForValue(moved, "p", "2", 10_000);

      // Failover needs the moved node's vote: only it and one other remain.
      await cluster.kill(leader, "SIGKILL");
      const survivors = nodes.filter((node) => node !== leader);
      const next = await cluster.waitForLeader(survivors, 15_000);
      expect(replyText(await cluster.command(next, ["SET", "p", "3"]))).toBe("OK");
      for (const node of survivors) await cluster.waitForValue(node, "p", "3", 10_000);

      // A new node on the old addresses is admitted; no address is listed twice.
      await cluster.start(leader, "ping");
      const newcomer = cluster.addNode({ id: "node-5", joinAddr: next.clientAddr, ports: oldPorts });
      await cluster.start(newcomer, "joined");
      await cluster.waitForValue(newcomer, "p", "3", 15_000);
      const after = await membersByRaftAddr(cluster, next);
      expect(after.get(oldRaftAddr)).toBe("node-5");
      expect(after.get(moved.raftAddr)).toBe(moved.id);
    },
    90_000,
  );

  clusterTest(
    "move recorded with join address down",
    async () => {
      const cluster = new Cluster({ name: "address-change-join-down" });
      const nodes = await cluster.startCluster(3);
      const leader = await cluster.waitForLeader(nodes);
      const moved = nodes.find((node) => node !== leader)!;

      // Nothing listens on the --join-addr, so the other members must take the change.
      moved.joinAddr = `127.0.0.1:${freePort()}`;
      const oldRaftAddr = await restartOnNewPorts(cluster, moved, "SIGTERM");
      await expectMoveListed(cluster, leader, moved, oldRaftAddr);
      expect(replyText(await cluster.command(leader, ["SET", "p", "1"]))).toBe("OK");
      await cluster.waitForValue(moved, "p", "1", 10_000);
    },
    60_000,
  );

  clusterTest(
    "one-node cluster records own move",
    async () => {
      const cluster = new Cluster({ name: "address-change-single" });
      const [only] = await cluster.startCluster(1);
      expect(replyText(await cluster.command(only, ["SET", "p", "1"]))).toBe("OK");

      const oldRaftAddr = await restartOnNewPorts(cluster, only, "SIGTERM");
      await expectMoveListed(cluster, only, only, oldRaftAddr);

      // A node that joins now dials the recorded address and gets the data.
      const joiner = cluster.addNode({ joinAddr: only.clientAddr });
      await cluster.start(joiner);
      await cluster.waitForValue(joiner, "p", "1", 10_000);
      await cluster.waitForVoters([only, joiner]);
    },
    60_000,
  );

  clusterTest(
    "new node on taken address",
    async () => {
      const cluster = new Cluster({ name: "address-taken" });
      const nodes = await cluster.startCluster(3);
      const leader = await cluster.waitForLeader(nodes);
      const holder = nodes.find((node) => node !== leader)!;
      await cluster.kill(holder, "SIGKILL");
      const intruder = cluster.addNode({ id: "node-9", joinAddr: leader.clientAddr, ports: { client: holder.clientPort, raft: holder.raftPort } });
      await cluster.start(intruder, "none");
      const exitCode = await intruder.exitWithin(15_000);
      expect(exitCode).not.toBe("still running");
      expect(intruder.log()).toContain(`raft address ${holder.raftAddr} is in use by node ${holder.id}`);
      const members = await membersByRaftAddr(cluster, leader);
      expect(members.get(holder.raftAddr)).toBe(holder.id);
    },
    60_000,
  );

  /**
   * Starts a one-node cluster and a stranger, the only node of a cluster of
   * its own. Then stops the stranger and gives it the first cluster's member
   * as --join-addr, as a mistaken restart would, and new ports when
   * `newPorts` is set.
   */
  async function strangerOfOtherCluster(name: string, newPorts = true): Promise<{ cluster: Cluster; member: ClusterNode; stranger: ClusterNode }> {
    const cluster = new Cluster({ name, tickMs: 20 });
    const [member] = await cluster.startCluster(1);
    const stranger = cluster.addNode({ id: "node-x", joinAddr: null });
    await cluster.start(stranger);
    await cluster.waitForLeader([stranger]);
    await cluster.kill(stranger, "SIGTERM");
    if (newPorts) stranger.moveToNewPorts();
    stranger.joinAddr = member.clientAddr;
    return { cluster, member, stranger };
  }

  clusterTest(
    "node of another cluster stops",
    async () => {
      const { cluster, member, stranger } = await strangerOfOtherCluster("other-cluster");
      await cluster.start(stranger, "none");
      expect(await stranger.exitWithin(15_000)).toBe(2);
      expect(stranger.log()).toContain(`--join-addr ${member.clientAddr} is a member of cluster`);

      const members = await membersByRaftAddr(cluster, member);
      expect([...members.values()]).toEqual([member.id]);
    },
    60_000,
  );

  for (const newPorts of [true, false]) {
    clusterTest(
      `other cluster met later stops the node${newPorts ? " on new ports" : ""}`,
      async () => {
        // --join-addr is down when the node starts, so the node starts from
        // its data and stops once that member replies. On new ports it also
        // asks that member to record them, which fails the same way.
        const { cluster, member, stranger } = await strangerOfOtherCluster(`other-cluster-later-${newPorts}`, newPorts);
        await cluster.kill(member, "SIGTERM");
        await cluster.start(stranger, "ping");
        await stranger.waitForLog("could not check the cluster of --join-addr", 10_000);
        await cluster.start(member, "ping");
        expect(await stranger.exitWithin(20_000)).toBe(70);
        expect(stranger.log()).toContain("node stopped after a fatal error");
        expect(stranger.log()).toMatch(/node-x belongs to cluster|belongs to cluster .*, but --join-addr/);

        const members = await membersByRaftAddr(cluster, member);
        expect([...members.values()]).toEqual([member.id]);
      },
      60_000,
    );
  }
});
