// Pipelined and split RESP input against a real three-node cluster: one
// reply per command, in order, whether the commands arrive all in one write
// or one byte at a time, on the leader and on a follower that forwards.

import { describe, expect } from "bun:test";
import { encodeCommand } from "../../src/protocol/resp.ts";
import type { RespValue } from "../../src/protocol/resp.ts";
import {
  Cluster,
  clusterTest,
  describeReply,
  installClusterHooks,
  RawConnection,
  replyText,
  sendCommand,
  sharedFixture,
  type ClusterNode,
} from "../support/cluster.ts";

installClusterHooks();

// Default timing: with --tick-ms 20 a 20,000-command burst on a 2-core machine
// delayed heartbeats past the election timeout and forced a leader change.
const threeNodes = sharedFixture(async () => {
  const cluster = new Cluster({ name: "pipelining", shared: true });
  const nodes = await cluster.startCluster(3);
  return { cluster, nodes };
});

async function roles(): Promise<{ cluster: Cluster; leader: ClusterNode; follower: ClusterNode }> {
  const { cluster, nodes } = await threeNodes();
  const leader = await cluster.waitForLeader();
  const follower = nodes.find((node) => node !== leader)!;
  return { cluster, leader, follower };
}

/** Builds one buffer with `count` SETs of `<prefix><i>` = `<i>` followed by `count` GETs of the same keys. */
function setsThenGets(prefix: string, count: number): Buffer {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < count; i++) parts.push(encodeCommand(["SET", `${prefix}${i}`, String(i)]));
  for (let i = 0; i < count; i++) parts.push(encodeCommand(["GET", `${prefix}${i}`]));
  return Buffer.concat(parts);
}

/** Sends `data` in one write, waits for `expected` replies, and checks that no extra reply follows. */
async function exchange(node: ClusterNode, data: Uint8Array, expected: number, timeoutMs: number): Promise<RespValue[]> {
  const connection = await RawConnection.open(node.clientAddr);
  try {
    connection.write(data);
    const replies = await connection.readReplies(expected, timeoutMs);
    expect(replies.length).toBe(expected);
    await Bun.sleep(100);
    expect((await connection.readReplies(expected + 1, 0)).length).toBe(expected);
    return replies;
  } finally {
    connection.close();
  }
}

/** Returns the first position where the replies differ from `expected`, or null. */
function firstMismatch(replies: RespValue[], expected: string[]): string | null {
  for (let i = 0; i < expected.length; i++) {
    const got = describeReply(replies[i]);
    if (got !== expected[i]) return `reply ${i}: expected ${expected[i]}, got ${got}`;
  }
  return null;
}

const COUNT = 10_000;

describe("pipelining", () => {
  clusterTest(
    "10,000 SETs and GETs to leader",
    async () => {
      const { cluster, leader } = await roles();
      const termBefore = (await cluster.info(leader)).get("term");
      const replies = await exchange(leader, setsThenGets("lp", COUNT), 2 * COUNT, 60_000);
      const expected = [...Array.from({ length: COUNT }, () => "OK"), ...Array.from({ length: COUNT }, (_, i) => JSON.stringify(String(i)))];
      expect(firstMismatch(replies, expected)).toBeNull();
      expect((await cluster.info(leader)).get("term"), "term after the burst (a change means an election)").toBe(termBefore);
    },
    90_000,
  );

  clusterTest(
    "10,000 SETs forwarded by follower",
    async () => {
      const { cluster, leader, follower } = await roles();
      const replies = await exchange(follower, setsThenGets("fp", COUNT), 2 * COUNT, 60_000);
      const setReplies = replies.slice(0, COUNT);
      expect(firstMismatch(setReplies, Array.from({ length: COUNT }, () => "OK"))).toBeNull();

      // GET is a local read, so on a follower it may lag. It must never return another key's value.
      const getReplies = replies.slice(COUNT);
      const wrong = getReplies.map((reply, i) => ({ i, got: describeReply(reply) })).filter(({ i, got }) => got !== JSON.stringify(String(i)) && got !== "nil");
      expect(wrong.slice(0, 5)).toEqual([]);

      // Every acknowledged write is on the leader, and the follower catches up.
      for (const i of [0, 1, COUNT / 2, COUNT - 2, COUNT - 1]) {
        expect(replyText(await sendCommand(leader.clientAddr, ["GET", `fp${i}`]))).toBe(String(i));
      }
      await cluster.waitForValue(follower, `fp${COUNT - 1}`, String(COUNT - 1));
      expect(describeReply(await sendCommand(leader.clientAddr, ["EXISTS", ...Array.from({ length: COUNT }, (_, i) => `fp${i}`)]))).toBe(
        `:${COUNT}`,
      );
    },
    90_000,
  );

  clusterTest(
    "follower connection reads its own writes",
    async () => {
      const { follower } = await roles();
      // The server runs a GET after the earlier commands of its connection, so it
      // must read the value that the connection's own forwarded SET just wrote.
      const data = Buffer.concat([
        encodeCommand(["SET", "ryw", "a"]),
        encodeCommand(["GET", "ryw"]),
        encodeCommand(["SET", "ryw", "b"]),
        encodeCommand(["GET", "ryw"]),
      ]);
      const replies = await exchange(follower, data, 4, 10_000);
      expect(replies.map(describeReply)).toEqual(["OK", '"a"', "OK", '"b"']);
    },
    30_000,
  );

  clusterTest(
    "follower reads own write sequentially",
    async () => {
      const { cluster, follower } = await roles();
      const client = await cluster.client(follower);
      const stale: string[] = [];
      for (let i = 0; i < 100; i++) {
        expect(describeReply(await client.command(["SET", "ryw_seq", `v${i}`]))).toBe("OK");
        const got = describeReply(await client.command(["GET", "ryw_seq"]));
        if (got !== JSON.stringify(`v${i}`)) stale.push(`after SET v${i}: ${got}`);
      }
      expect(stale).toEqual([]);
    },
    30_000,
  );

  clusterTest(
    "SET GET SET GET in one write",
    async () => {
      const { leader } = await roles();
      const data = Buffer.concat([
        encodeCommand(["SET", "r", "a"]),
        encodeCommand(["GET", "r"]),
        encodeCommand(["SET", "r", "b"]),
        encodeCommand(["GET", "r"]),
      ]);
      const replies = await exchange(leader, data, 4, 10_000);
      expect(replies.map(describeReply)).toEqual(["OK", '"a"', "OK", '"b"']);
    },
    30_000,
  );

  clusterTest(
    "command sent byte by byte",
    async () => {
      const { leader } = await roles();
      const connection = await RawConnection.open(leader.clientAddr);
      try {
        await connection.writeSlowly(encodeCommand(["SET", "q", "1"]), 5);
        expect((await connection.readReplies(1, 5000)).map(describeReply)).toEqual(["OK"]);
        await connection.writeSlowly("GET q\r\n", 5);
        expect((await connection.readReplies(2, 5000)).map(describeReply)).toEqual(["OK", '"1"']);
      } finally {
        connection.close();
      }
    },
    30_000,
  );

  clusterTest(
    "boundary inside a length line",
    async () => {
      const { leader } = await roles();
      const data = Buffer.concat([encodeCommand(["SET", "split", "12345678901"]), encodeCommand(["GET", "split"])]);
      // Cut inside "$11\r\n" of the value: after "$1".
      const cut = data.indexOf("$11\r\n") + 2;
      const connection = await RawConnection.open(leader.clientAddr);
      try {
        connection.write(data.subarray(0, cut));
        await Bun.sleep(50);
        connection.write(data.subarray(cut));
        expect((await connection.readReplies(2, 5000)).map(describeReply)).toEqual(["OK", '"12345678901"']);
      } finally {
        connection.close();
      }
    },
    30_000,
  );

  clusterTest(
    "100 pipelined SETs to follower",
    async () => {
      const { follower, leader } = await roles();
      const parts: Uint8Array[] = [];
      for (let i = 0; i < 100; i++) parts.push(encodeCommand(["SET", `hf${i}`, `v${i}`]));
      parts.push(encodeCommand(["DBSIZE"]));
      const replies = await exchange(follower, Buffer.concat(parts), 101, 20_000);
      expect(firstMismatch(replies, Array.from({ length: 100 }, () => "OK"))).toBeNull();
      expect(replies[100].type).toBe("integer");
      for (let i = 0; i < 100; i++) expect(replyText(await sendCommand(leader.clientAddr, ["GET", `hf${i}`]))).toBe(`v${i}`);
    },
    30_000,
  );
});
