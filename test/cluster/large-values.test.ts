// Large values near the default 16 MiB limit: replicated byte for byte to
// every node, to a node that joins later, and kept across a leader crash,
// while small writes go on and no election is triggered by the transfer.

import { describe, expect } from "bun:test";
import { createHash } from "node:crypto";
import { RespClient } from "../../src/client/client.ts";
import { Cluster, clusterTest, describeReply, installClusterHooks, sendCommand, waitFor, type ClusterNode } from "../support/cluster.ts";

installClusterHooks();

const MIB = 1024 * 1024;

function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** SHA-256 of GET `key` on `node`, or a description of a missing value. */
async function valueHash(node: ClusterNode, key: string): Promise<string> {
  const reply = await sendCommand(node.clientAddr, ["GET", key], 10_000);
  if (reply.type !== "bulk" || reply.value === null) return `no value (${describeReply(reply)})`;
  return sha256(reply.value);
}

/** Deterministic bytes that do not compress, so no layer can shortcut them. */
function pseudoRandomBytes(length: number, seed: number): Buffer {
  const bytes = Buffer.alloc(length);
  let state = seed >>> 0;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    bytes[i] = state >>> 24;
  }
  return bytes;
}

describe("large values", () => {
  clusterTest(
    "10 MiB values replicate and survive",
    async () => {
      // Default timing: the test checks that a big transfer does not trigger an election.
      const cluster = new Cluster({ name: "c19" });
      const nodes = await cluster.startCluster(3);
      const leader = await cluster.waitForLeader();
      const termBefore = (await cluster.info(leader)).get("term");

      const baseline: number[] = [];
      for (let i = 0; i < 20; i++) {
        const started = performance.now();
        expect(describeReply(await cluster.command(leader, ["SET", `baseline${i}`, String(i)]))).toBe("OK");
        baseline.push(performance.now() - started);
      }

      // Small writes at 20 per second alongside the big ones.
      const small = await RespClient.connect(leader.clientAddr, { timeoutMs: 10_000 });
      const latencies: number[] = [];
      let smallWriting = true;
      const smallWriter = (async () => {
        for (let i = 0; smallWriting && i < 2000; i++) {
          const started = performance.now();
          const reply = await small.command(["SET", `small${i}`, String(i)]);
          latencies.push(performance.now() - started);
          expect(describeReply(reply)).toBe("OK");
          await Bun.sleep(50);
        }
      })();

      const values = [pseudoRandomBytes(10 * MIB, 1), pseudoRandomBytes(16 * MIB, 2)];
      const keys = ["big10", "big16"];
      try {
        for (let i = 0; i < values.length; i++) {
          const started = performance.now();
          expect(describeReply(await cluster.command(leader, ["SET", keys[i], values[i]], 30_000)), `SET ${keys[i]}`).toBe("OK");
          console.log(`SET ${keys[i]} (${values[i].length} bytes) took ${Math.round(performance.now() - started)} ms`);
        }
      } finally {
        smallWriting = false;
        await smallWriter;
        small.close();
      }

      for (const node of nodes) {
        for (let i = 0; i < values.length; i++) {
          const expected = sha256(values[i]);
          await waitFor(`${keys[i]} on ${node.id}`, async () => (await valueHash(node, keys[i])) === expected, { timeoutMs: 15_000, intervalMs: 200 });
        }
      }
      expect((await cluster.info(leader)).get("term")).toBe(termBefore);
      // Reported, not asserted: the numbers depend on the machine.
      const describeLatencies = (samples: number[]) => {
        const sorted = [...samples].sort((a, b) => a - b);
        const median = Math.round(sorted[sorted.length >> 1] ?? 0);
        return `${sorted.length} SETs, median ${median} ms, max ${Math.round(sorted[sorted.length - 1] ?? 0)} ms`;
      };
      console.log(`small SET latency before big transfers: ${describeLatencies(baseline)}; during: ${describeLatencies(latencies)}`);

      // A node that joins later catches up past the big entries.
      const node4 = cluster.addNode({ id: "node-4" });
      await cluster.start(node4, "joined", 30_000);
      await cluster.waitForVoters([...nodes, node4], 30_000);
      for (let i = 0; i < values.length; i++) {
        const expected = sha256(values[i]);
        await waitFor(`${keys[i]} on node-4`, async () => (await valueHash(node4, keys[i])) === expected, { timeoutMs: 30_000, intervalMs: 200 });
      }

      await cluster.kill(leader, "SIGKILL");
      const next = await cluster.waitForLeader(cluster.running(), 10_000);
      for (let i = 0; i < values.length; i++) expect(await valueHash(next, keys[i]), `${keys[i]} on ${next.id}`).toBe(sha256(values[i]));
    },
    120_000,
  );
});
