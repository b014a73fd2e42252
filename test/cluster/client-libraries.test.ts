// Redis client libraries against a real three-node cluster: node-redis with
// its default RESP3 and with RESP2, ioredis, and RESP3 as raw bytes. Each
// library connects, writes and reads through a follower, and receives
// cluster events from SUBSCRIBE.

import { describe, expect } from "bun:test";
import Redis from "ioredis";
import { createClient, type RedisClientType } from "redis";
import {
  Cluster,
  clusterTest,
  describeReply,
  installClusterHooks,
  RawConnection,
  sendCommand,
  sharedFixture,
  waitFor,
  type ClusterNode,
} from "../support/cluster.ts";

installClusterHooks();

const threeNodes = sharedFixture(async () => {
  const cluster = new Cluster({ name: "client-libraries", shared: true, tickMs: 20 });
  const nodes = await cluster.startCluster(3);
  const leader = await cluster.waitForLeader();
  const follower = nodes.find((node) => node.id !== leader.id)!;
  return { cluster, leader, follower };
});

/**
 * Writes a key and takes a snapshot on `node`, which pushes a snapshot event
 * to its subscribers. Without the write, the node would have no new entries
 * to snapshot.
 */
async function takeSnapshot(node: ClusterNode): Promise<void> {
  expect(await sendCommand(node.clientAddr, ["SET", "snapshot-trigger", String(Date.now())])).toEqual({ type: "simple", value: "OK" });
  const reply = await sendCommand(node.clientAddr, ["SNAPSHOT"], 10_000);
  expect(reply.type).toBe("array");
}

/** Opens a node-redis client with `resp`, or its default when undefined, and records its error events. */
async function openNodeRedis(node: ClusterNode, resp: 2 | 3 | undefined, errors: string[]): Promise<RedisClientType> {
  const client = createClient({
    url: `redis://${node.clientAddr}`,
    ...(resp === undefined ? {} : { RESP: resp }),
    socket: { connectTimeout: 5000, reconnectStrategy: false },
  }) as RedisClientType;
  client.on("error", (err: Error) => errors.push(err.message));
  await client.connect();
  return client;
}

/** Writes, reads and subscribes with node-redis on the follower. */
async function exerciseNodeRedis(follower: ClusterNode, resp: 2 | 3 | undefined, prefix: string): Promise<void> {
  const errors: string[] = [];
  const client = await openNodeRedis(follower, resp, errors);
  const subscriber = client.duplicate();
  subscriber.on("error", (err: Error) => errors.push(err.message));
  try {
    expect(await client.set(`${prefix}:a`, "1")).toBe("OK");
    const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => client.set(`${prefix}:${i}`, String(i))));
    expect(replies.every((reply) => reply === "OK")).toBe(true);
    expect(await client.get(`${prefix}:a`)).toBe("1");
    expect(await client.get(`${prefix}:missing`)).toBeNull();
    expect(await client.exists([`${prefix}:a`, `${prefix}:missing`])).toBe(1);
    expect(String(await client.sendCommand(["GET", `${prefix}:49`, "linearizable"]))).toBe("49");
    expect(await client.del(`${prefix}:a`)).toBe(1);
    expect(await client.configGet("max-value-bytes")).toEqual({ "max-value-bytes": "16777216" });

    const messages: string[] = [];
    await subscriber.connect();
    await subscriber.subscribe("cluster-events", (message) => messages.push(message));
    await takeSnapshot(follower);
    await waitFor("a snapshot event", () => messages.some((message) => JSON.parse(message).type === "snapshot_taken"), { timeoutMs: 5000 });
    await subscriber.unsubscribe("cluster-events");
  } finally {
    client.destroy();
    if (subscriber.isOpen) subscriber.destroy();
  }
  expect(errors).toEqual([]);
}

describe("client libraries", () => {
  clusterTest(
    "node-redis with default RESP3",
    async () => {
      const { follower } = await threeNodes();
      await exerciseNodeRedis(follower, undefined, "nr3");
    },
    30_000,
  );

  clusterTest(
    "node-redis with RESP2",
    async () => {
      const { follower } = await threeNodes();
      await exerciseNodeRedis(follower, 2, "nr2");
    },
    30_000,
  );

  clusterTest(
    "ioredis",
    async () => {
      const { follower } = await threeNodes();
      const errors: string[] = [];
      const [host, port] = follower.clientAddr.split(":");
      const options = { host, port: Number(port), maxRetriesPerRequest: 1, retryStrategy: () => null };
      const client = new Redis(options);
      const subscriber = new Redis(options);
      client.on("error", (err: Error) => errors.push(err.message));
      subscriber.on("error", (err: Error) => errors.push(err.message));
      try {
        const pipeline = client.pipeline();
        for (let i = 0; i < 50; i++) pipeline.set(`io:${i}`, String(i));
        const results = await pipeline.exec();
        expect(results?.every(([err, reply]) => err === null && reply === "OK")).toBe(true);
        expect(await client.get("io:7")).toBe("7");
        expect(await client.get("io:missing")).toBeNull();
        expect(await client.call("GET", "io:49", "linearizable")).toBe("49");

        const messages: string[] = [];
        subscriber.on("message", (_channel: string, message: string) => messages.push(message));
        await subscriber.subscribe("cluster-events");
        await takeSnapshot(follower);
        await waitFor("a snapshot event", () => messages.some((message) => JSON.parse(message).type === "snapshot_taken"), { timeoutMs: 5000 });
      } finally {
        client.disconnect();
        subscriber.disconnect();
      }
      expect(errors).toEqual([]);
    },
    30_000,
  );
});

describe("RESP3", () => {
  clusterTest(
    "HELLO, nulls and pushes",
    async () => {
      const { follower } = await threeNodes();
      const connection = await RawConnection.open(follower.clientAddr);
      try {
        connection.write("HELLO 3\r\nGET resp3:missing\r\nSUBSCRIBE cluster-events\r\nGET resp3:missing\r\n");
        const expected = ["_\r\n", ">3\r\n$9\r\nsubscribe\r\n$14\r\ncluster-events\r\n:1\r\n", "_\r\n"].join("");
        await connection.waitFor((received) => received.toString("latin1").endsWith(expected), 5000);
        expect(connection.received.toString("latin1")).toEndWith(expected);
        expect(connection.received.toString("latin1")).toStartWith("%7\r\n$6\r\nserver\r\n$6\r\nechokv\r\n");

        await takeSnapshot(follower);
        const pushed = await connection.waitFor((received) => received.toString("latin1").includes(">3\r\n$7\r\nmessage\r\n$14\r\ncluster-events\r\n"), 5000);
        expect(pushed).toBe(true);
      } finally {
        connection.close();
      }
    },
    30_000,
  );

  clusterTest(
    "AUTH and unknown channels fail",
    async () => {
      const { follower } = await threeNodes();
      const auth = await sendCommand(follower.clientAddr, ["AUTH", "secret"]);
      expect(auth).toEqual({ type: "error", message: expect.stringContaining("EchoKV has no authentication") });
      const subscribe = await sendCommand(follower.clientAddr, ["SUBSCRIBE", "cluster-events", "news"]);
      expect(subscribe).toEqual({ type: "error", message: expect.stringContaining("no such channel 'news'") });
    },
    30_000,
  );

  clusterTest(
    "COMMAND lists pub/sub commands",
    async () => {
      const { follower } = await threeNodes();
      const reply = await sendCommand(follower.clientAddr, ["COMMAND", "INFO", "subscribe", "unsubscribe", "quit"]);
      expect(describeReply(reply)).toBe(
        '[["subscribe", :-2, ["pubsub"], :0, :0, :0, [], [], [], []], ["unsubscribe", :-1, ["pubsub"], :0, :0, :0, [], [], [], []], ["quit", :1, [], :0, :0, :0, [], [], [], []]]',
      );
    },
    30_000,
  );
});
