// Redis's own tools against a cluster: redis-benchmark's SET and GET tests
// complete without errors or warnings, redis-cli reads INFO and CONFIG and
// writes through a follower, INFO replication names the leader as master,
// and a connection keeps its CLIENT name.

import { describe, expect } from "bun:test";
import { Cluster, clusterTest, installClusterHooks, replyText, runProgram } from "../support/cluster.ts";

installClusterHooks();

describe("redis tools", () => {
  clusterTest(
    "redis-benchmark set and get",
    async () => {
      const cluster = new Cluster({ name: "redis-tools" });
      const nodes = await cluster.startCluster(3);
      const leader = await cluster.waitForLeader(nodes);
      const follower = nodes.find((node) => node !== leader)!;

      for (const node of [leader, follower]) {
        const run = await runProgram(
          ["redis-benchmark", "-h", "127.0.0.1", "-p", String(node.clientPort), "-t", "set,get", "-n", "2000", "-c", "16", "-q"],
          { timeoutMs: 60_000 },
        );
        const output = `${run.stdout}\n${run.stderr}`;
        expect(run.exitCode).toBe(0);
        expect(output).toMatch(/SET: [\d.]+ requests per second/);
        expect(output).toMatch(/GET: [\d.]+ requests per second/);
        expect(output).not.toContain("ERR");
        expect(output).not.toContain("WARNING");
      }
      // Without -r, redis-benchmark's SET test writes the fixed key "key:__rand_int__" with a 3-byte value.
      const written = replyText(await cluster.command(leader, ["GET", "key:__rand_int__"]));
      expect(written?.length).toBe(3);
    },
    120_000,
  );

  clusterTest(
    "redis-cli reads INFO and writes via follower",
    async () => {
      const cluster = new Cluster({ name: "redis-cli" });
      const nodes = await cluster.startCluster(3);
      const leader = await cluster.waitForLeader(nodes);
      const follower = nodes.find((node) => node !== leader)!;
      const cli = (...args: string[]) => runProgram(["redis-cli", "-p", String(follower.clientPort), ...args], { timeoutMs: 10_000 });

      const info = await cli("INFO", "raft");
      expect(info.stdout).toContain("role:follower");
      expect(info.stdout).toContain(`leader_id:${leader.id}`);
      const replica = (await cli("INFO", "replication")).stdout;
      expect(replica).toContain("role:slave");
      expect(replica).toContain(`master_port:${leader.clientPort}`);
      expect(replica).toContain("master_link_status:up");
      const primary = (await runProgram(["redis-cli", "-p", String(leader.clientPort), "INFO", "replication"], { timeoutMs: 10_000 })).stdout;
      expect(primary).toContain("role:master");
      expect(primary).toContain("connected_slaves:2");
      expect(primary).toContain(`port=${follower.clientPort},state=online`);
      expect((await cli("SET", "via-redis-cli", "hello")).stdout.trim()).toBe("OK");
      expect((await cli("GET", "via-redis-cli")).stdout.trim()).toBe("hello");
      expect((await cli("CONFIG", "GET", "max-value-bytes")).stdout.trim().split("\n")).toEqual(["max-value-bytes", String(16 << 20)]);
      expect((await cli("CONFIG", "SET", "max-value-bytes", "1")).stdout).toContain("ERR CONFIG SET is not supported");
      expect(Number((await cli("COMMAND", "COUNT")).stdout.trim())).toBeGreaterThan(10);

      // The cluster's client keeps one connection per node, like a client library.
      expect(replyText(await cluster.command(follower, ["CLIENT", "SETNAME", "tools-test"]))).toBe("OK");
      expect(replyText(await cluster.command(follower, ["CLIENT", "GETNAME"]))).toBe("tools-test");
    },
    60_000,
  );
});
