// Memory that must not grow with the number of requests: a long-lived client
// connection, as redis-benchmark or a connection pool holds, sending many
// commands that do not add keys.

import { describe, expect } from "bun:test";
import { RespClient } from "../../src/client/client.ts";
import { Cluster, clusterTest, installClusterHooks, replyText } from "../support/cluster.ts";

installClusterHooks();

/** Sends `count` SETs over 100 keys, 500 in flight at a time, and checks every reply. */
async function overwrite(client: RespClient, count: number, round: number): Promise<void> {
  for (let start = 0; start < count; start += 500) {
    const batch: Promise<unknown>[] = [];
    for (let i = start; i < Math.min(count, start + 500); i++) {
      batch.push(
        client.command(["SET", `key${i % 100}`, `round ${round} write ${i}`]).then((reply) => {
          if (reply.type !== "simple" || reply.value !== "OK") throw new Error(`SET failed: ${JSON.stringify(reply)}`);
        }),
      );
    }
    await Promise.all(batch);
  }
}

async function objectsAfterCollection(client: RespClient): Promise<number> {
  expect(replyText(await client.command(["MEMORY", "PURGE"]))).toBe("OK");
  const info = replyText(await client.command(["INFO", "memory"])) ?? "";
  const count = /js_object_count:(\d+)/.exec(info)?.[1];
  if (count === undefined) throw new Error(`INFO memory has no js_object_count:\n${info}`);
  return Number(count);
}

describe("memory", () => {
  clusterTest(
    "one connection's requests leave nothing behind",
    async () => {
      // Frequent snapshots keep the in-memory log short, so it does not count.
      const cluster = new Cluster({ name: "memory-conn", extraArgs: ["--snapshot-entries", "500"] });
      const [node] = await cluster.startCluster(1);
      const client = await RespClient.connect(node.clientAddr, { timeoutMs: 30_000 });
      try {
        await overwrite(client, 5_000, 0);
        const before = await objectsAfterCollection(client);
        await overwrite(client, 20_000, 1);
        const after = await objectsAfterCollection(client);
        console.log(`heap objects after 5,000 SETs: ${before}; after 20,000 more on the same connection: ${after}`);
        // A leak of even one object per command would add 20,000.
        expect(after - before).toBeLessThan(5_000);
      } finally {
        client.close();
      }
    },
    120_000,
  );
});
