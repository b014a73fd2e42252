// Leadership and membership operations with real processes: TRANSFER, to a
// named node or to a live one, the handover on SIGTERM, a paused follower that must not disturb the cluster,
// and the replies to JOIN for repeated and clashing ids.

import { describe, expect } from "bun:test";
import { encodeCommand } from "../../src/protocol/resp.ts";
import {
  Cluster,
  clusterTest,
  ContinuousWriter,
  describeReply,
  findLostWrites,
  installClusterHooks,
  RawConnection,
  replyText,
  sendCommand,
  waitFor,
} from "../support/cluster.ts";

installClusterHooks();

describe("leadership", () => {
  clusterTest(
    "TRANSFER moves leadership to the target",
    async () => {
      const cluster = new Cluster({ name: "transfer" });
      const nodes = await cluster.startCluster(3);
      const leader = await cluster.waitForLeader(nodes);
      const target = nodes.find((node) => node !== leader)!;

      const reply = await cluster.command(nodes.find((node) => node !== leader && node !== target)!, ["TRANSFER", target.id]);
      expect(describeReply(reply)).toBe(JSON.stringify(target.id));
      const info = await cluster.info(target);
      expect(info.get("role")).toBe("leader");
      expect(replyText(await cluster.command(leader, ["SET", "after-transfer", "1"]))).toBe("OK");

      const unknown = await cluster.command(target, ["TRANSFER", "node-9"]);
      expect(unknown.type).toBe("error");
      expect(describeReply(unknown)).toContain("node node-9 is not a member of this cluster");
    },
    60_000,
  );

  clusterTest(
    "SIGTERM of the leader hands over quickly",
    async () => {
      const cluster = new Cluster({ name: "sigterm" });
      const nodes = await cluster.startCluster(3);
      const leader = await cluster.waitForLeader(nodes);
      const survivors = nodes.filter((node) => node !== leader);
      const termBefore = Number((await cluster.info(survivors[0])).get("term"));

      const writer = new ContinuousWriter({ targets: () => survivors, prefix: "term-", intervalMs: 5, timeoutMs: 2000 });
      writer.start();
      await Bun.sleep(500);
      const stoppedAt = Date.now();
      await cluster.kill(leader, "SIGTERM");
      expect(await leader.exited()).toBe(0);
      await Bun.sleep(1000);
      await writer.stop();

      // Reported, not asserted: the gap depends on the machine's load. The
      // handover itself is checked through its log line and the single term bump.
      console.log(`maximum gap between acknowledged writes around SIGTERM: ${writer.longestAckGap(stoppedAt - 200, Date.now())} ms`);
      const newLeader = await cluster.waitForLeader(survivors);
      expect(Number((await cluster.info(newLeader)).get("term"))).toBe(termBefore + 1);
      expect(newLeader.log()).not.toContain("became precandidate");
      expect(await findLostWrites(newLeader, writer.acked())).toEqual([]);
      expect(leader.log()).toContain("handed leadership over before stopping");
      // A planned stop is no warning on the other nodes.
      for (const survivor of survivors) {
        expect(survivor.log()).toContain(`peer=${leader.id} addr=${leader.raftAddr} msg="peer is shutting down"`);
        expect(survivor.log()).not.toContain(`peer=${leader.id} addr=${leader.raftAddr} msg="peer connection lost"`);
      }
    },
    60_000,
  );

  clusterTest(
    "TRANSFER without a target skips a dead voter",
    async () => {
      const cluster = new Cluster({ name: "transfer-dead" });
      const nodes = await cluster.startCluster(4);
      const leader = await cluster.waitForLeader(nodes);
      expect(replyText(await cluster.command(leader, ["SET", "before-transfer", "1"]))).toBe("OK");
      // With equal match indexes the leader used to pick the first follower
      // in member order, so that is the one to kill.
      const dead = nodes.find((node) => node !== leader)!;
      await cluster.kill(dead);
      await Bun.sleep(1000);

      const reply = await cluster.command(leader, ["TRANSFER"]);
      const live = nodes.filter((node) => node !== leader && node !== dead).map((node) => JSON.stringify(node.id));
      expect(live).toContain(describeReply(reply));
      const newLeader = await cluster.waitForLeader(nodes.filter((node) => node !== dead));
      expect(JSON.stringify(newLeader.id)).toBe(describeReply(reply));
    },
    60_000,
  );

  clusterTest(
    "TRANSFER skips a voter that just died",
    async () => {
      const cluster = new Cluster({ name: "transfer-just-dead" });
      const nodes = await cluster.startCluster(4);
      const leader = await cluster.waitForLeader(nodes);
      expect(replyText(await cluster.command(leader, ["SET", "before-transfer", "1"]))).toBe("OK");
      // It responded within the last heartbeat intervals, so only its closed connection shows that it is gone.
      const dead = nodes.find((node) => node !== leader)!;
      await cluster.kill(dead);
      await waitFor(`${leader.id} to see its connection to ${dead.id} close`, () => leader.log().includes(`peer=${dead.id} addr=${dead.raftAddr} msg="peer connection lost"`), {
        timeoutMs: 5000,
      });

      const reply = await cluster.command(leader, ["TRANSFER"]);
      const live = nodes.filter((node) => node !== leader && node !== dead).map((node) => JSON.stringify(node.id));
      expect(live).toContain(describeReply(reply));
    },
    60_000,
  );

  clusterTest(
    "second TRANSFER during one is BUSY",
    async () => {
      const cluster = new Cluster({ name: "transfer-busy" });
      const nodes = await cluster.startCluster(3);
      const leader = await cluster.waitForLeader(nodes);
      const [paused, other] = nodes.filter((node) => node !== leader);
      // A paused target never takes over, so the first transfer stays under way until it times out.
      await cluster.kill(paused!, "SIGSTOP");
      try {
        // Separate connections: commands on one connection run one after another.
        const first = sendCommand(leader.clientAddr, ["TRANSFER", paused!.id], 10_000);
        await Bun.sleep(100);
        const second = await sendCommand(leader.clientAddr, ["TRANSFER", other!.id], 5000);
        expect(describeReply(second)).toStartWith(`-BUSY a leadership transfer to ${paused!.id} is under way`);
        expect(describeReply(await first)).toStartWith("-TIMEOUT");
      } finally {
        await cluster.kill(paused!, "SIGCONT");
      }
    },
    60_000,
  );

  clusterTest(
    "SIGTERM replies to a write in flight",
    async () => {
      const cluster = new Cluster({ name: "sigterm-in-flight" });
      const nodes = await cluster.startCluster(3);
      const leader = await cluster.waitForLeader(nodes);
      const followers = nodes.filter((node) => node !== leader);
      // Without a quorum the write waits until the leader stops.
      for (const follower of followers) await cluster.kill(follower, "SIGSTOP");
      try {
        const connection = await RawConnection.open(leader.clientAddr);
        connection.write(encodeCommand(["SET", "in-flight", "1"]));
        await Bun.sleep(200);
        await cluster.kill(leader, "SIGTERM");
        const [reply] = await connection.readReplies(1, 10_000);
        connection.close();
        expect(reply).toBeDefined();
        expect(describeReply(reply!)).toStartWith("-TIMEOUT the node shut down before the write was applied");
        expect(await leader.exited()).toBe(0);
      } finally {
        for (const follower of followers) await cluster.kill(follower, "SIGCONT");
      }
    },
    60_000,
  );

  clusterTest(
    "paused follower causes no election",
    async () => {
      const cluster = new Cluster({ name: "pause" });
      const nodes = await cluster.startCluster(3);
      const leader = await cluster.waitForLeader(nodes);
      const follower = nodes.find((node) => node !== leader)!;
      const termBefore = (await cluster.info(leader)).get("term");

      await cluster.kill(follower, "SIGSTOP");
      expect(replyText(await cluster.command(leader, ["SET", "during-pause", "1"]))).toBe("OK");
      await Bun.sleep(3000);
      await cluster.kill(follower, "SIGCONT");
      await cluster.waitForValue(follower, "during-pause", "1", 10_000);
      await Bun.sleep(1500);

      for (const node of nodes) {
        const info = await cluster.info(node);
        expect(`${node.id} term ${info.get("term")} leader ${info.get("leader_id")}`).toBe(
          `${node.id} term ${termBefore} leader ${leader.id}`,
        );
      }
    },
    60_000,
  );
});

describe("join answers", () => {
  clusterTest(
    "repeated JOIN is a no-op",
    async () => {
      const cluster = new Cluster({ name: "join-again" });
      const nodes = await cluster.startCluster(3);
      const joined = nodes[2];
      const members = await cluster.memberIds(nodes[0]);
      const incarnationLess = ["JOIN", joined.id, `127.0.0.1:${joined.raftPort}`, `127.0.0.1:${joined.clientPort}`];

      for (const via of [nodes[0], nodes[1]]) {
        const reply = await cluster.command(via, incarnationLess);
        expect(reply.type).toBe("array");
      }
      expect(await cluster.memberIds(nodes[0])).toEqual(members);
    },
    60_000,
  );

  clusterTest(
    "JOIN with a known id elsewhere is rejected",
    async () => {
      const cluster = new Cluster({ name: "join-clash" });
      const nodes = await cluster.startCluster(3);
      const reply = await sendCommand(`127.0.0.1:${nodes[1].clientPort}`, ["JOIN", nodes[2].id, "127.0.0.1:1", "127.0.0.1:2"]);
      expect(reply.type).toBe("error");
      const message = reply.type === "error" ? reply.message : "";
      expect(message).toContain(`node ${nodes[2].id} is already a member`);
      expect(message).toContain(`REMOVE ${nodes[2].id}`);
    },
    60_000,
  );
});
