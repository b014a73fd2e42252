// Inline (plain-text) commands as telnet, nc and `redis-cli --pipe` send
// them: quoting and escapes as Redis's sdssplitargs decodes them, unbalanced
// quotes, empty arguments, bare LF line endings and empty lines. Values must
// replicate byte for byte to the followers.

import { describe, expect } from "bun:test";
import { encodeCommand } from "../../src/protocol/resp.ts";
import {
  Cluster,
  clusterTest,
  describeReply,
  installClusterHooks,
  RawConnection,
  runProgram,
  sendCommand,
  sharedFixture,
  waitFor,
  type ClusterNode,
} from "../support/cluster.ts";

installClusterHooks();

const threeNodes = sharedFixture(async () => {
  const cluster = new Cluster({ name: "inline", shared: true, tickMs: 20 });
  const nodes = await cluster.startCluster(3);
  return { cluster, nodes };
});

/** Sends raw inline `text` to `node` and returns the first `count` replies. */
async function sendInline(node: ClusterNode, text: string, count: number): Promise<string[]> {
  const connection = await RawConnection.open(node.clientAddr);
  try {
    connection.write(text);
    return (await connection.readReplies(count, 5000)).map(describeReply);
  } finally {
    connection.close();
  }
}

/** Waits until GET `key` (sent as RESP, so any bytes work) returns `value` on every node. */
async function expectEverywhere(nodes: ClusterNode[], key: string, value: Buffer): Promise<void> {
  for (const node of nodes) {
    await waitFor(
      `GET ${JSON.stringify(key)} on ${node.id} to return ${JSON.stringify(value.toString("latin1"))}`,
      async () => {
        const reply = await sendCommand(node.clientAddr, ["GET", key], 1000);
        return reply.type === "bulk" && reply.value !== null && reply.value.equals(value);
      },
      { timeoutMs: 3000 },
    );
  }
}

describe("inline commands", () => {
  clusterTest(
    "double quotes keep spaces",
    async () => {
      const { cluster, nodes } = await threeNodes();
      const leader = await cluster.waitForLeader();
      expect(await sendInline(leader, 'SET k1 "hello world"\r\nGET k1\r\n', 2)).toEqual(["OK", '"hello world"']);
      await expectEverywhere(nodes, "k1", Buffer.from("hello world"));
    },
    20_000,
  );

  clusterTest(
    "escapes decode as in Redis",
    async () => {
      const { cluster, nodes } = await threeNodes();
      const leader = await cluster.waitForLeader();
      const lines = [String.raw`SET k2 'it\'s'`, String.raw`SET k3 "a\"b"`, String.raw`SET k4 "tab\there\x41"`, String.raw`SET k4c 'no\tescape'`];
      expect(await sendInline(leader, lines.map((line) => `${line}\r\n`).join(""), 4)).toEqual(["OK", "OK", "OK", "OK"]);
      await expectEverywhere(nodes, "k2", Buffer.from("it's"));
      await expectEverywhere(nodes, "k3", Buffer.from('a"b'));
      await expectEverywhere(nodes, "k4", Buffer.from("tab\there" + "A"));
      // Inside single quotes only \' is an escape.
      await expectEverywhere(nodes, "k4c", Buffer.from(String.raw`no\tescape`));
    },
    20_000,
  );

  clusterTest(
    "unbalanced quotes get protocol error",
    async () => {
      const { cluster, nodes } = await threeNodes();
      const leader = await cluster.waitForLeader();
      const cases = [
        { name: "closing quote followed by a letter", line: "SET k4b 'x'y\r\n", key: "k4b" },
        { name: "missing closing double quote", line: 'SET k5 "unbalanced\r\n', key: "k5" },
        { name: "missing closing single quote", line: "SET k5s 'open\r\n", key: "k5s" },
      ];
      for (const { name, line, key } of cases) {
        const connection = await RawConnection.open(leader.clientAddr);
        connection.write(line);
        connection.write("PING\r\n");
        const replies = (await connection.readReplies(2, 2000)).map(describeReply);
        const closed = await connection.waitForClose(1000);
        connection.close();
        expect(replies[0], name).toStartWith("-ERR Protocol error: unbalanced quotes");
        // The server either closes the connection, as Redis does, or goes on serving it.
        expect(closed ? replies.length : replies[1], name).toBe(closed ? 1 : "PONG");
        expect(describeReply(await sendCommand(leader.clientAddr, ["GET", key])), name).toBe("nil");
      }
      for (const node of nodes) expect(node.running).toBe(true);
    },
    20_000,
  );

  clusterTest(
    "empty quoted arguments",
    async () => {
      const { cluster, nodes } = await threeNodes();
      const leader = await cluster.waitForLeader();
      expect(await sendInline(leader, 'SET "" emptykey\r\nSET k6 ""\r\n', 2)).toEqual(["OK", "OK"]);
      await expectEverywhere(nodes, "", Buffer.from("emptykey"));
      await expectEverywhere(nodes, "k6", Buffer.alloc(0));
      expect(await sendInline(leader, 'GET ""\r\nGET k6\r\nGET never_set_inline\r\n', 3)).toEqual(['"emptykey"', '""', "nil"]);
    },
    20_000,
  );

  clusterTest(
    "bare LF and empty lines",
    async () => {
      const { cluster } = await threeNodes();
      const leader = await cluster.waitForLeader();
      // An empty line gets no reply, as in Redis, so the first reply belongs to SET.
      const replies = await sendInline(leader, "\r\n\n   \r\nSET k9 bare\nGET k9\nPING\r\n", 3);
      expect(replies).toEqual(["OK", '"bare"', "PONG"]);
    },
    20_000,
  );

  clusterTest(
    "inline and RESP mixed on one connection",
    async () => {
      const { cluster } = await threeNodes();
      const leader = await cluster.waitForLeader();
      const data = Buffer.concat([Buffer.from('SET mix "one two"\r\n'), encodeCommand(["GET", "mix"]), Buffer.from("GET mix\r\n")]);
      const connection = await RawConnection.open(leader.clientAddr);
      try {
        connection.write(data);
        expect((await connection.readReplies(3, 5000)).map(describeReply)).toEqual(["OK", '"one two"', '"one two"']);
      } finally {
        connection.close();
      }
    },
    20_000,
  );
});

describe("redis-cli", () => {
  clusterTest(
    "arguments with spaces",
    async () => {
      const { cluster, nodes } = await threeNodes();
      const leader = await cluster.waitForLeader();
      const redisCli = (args: string[], stdin?: string) =>
        runProgram(["redis-cli", "-h", "127.0.0.1", "-p", String(leader.clientPort), ...args], { stdin, timeoutMs: 10_000 });

      const set = await redisCli(["SET", "k 7", "v 7"]);
      expect(set.stdout.trim()).toBe("OK");
      expect(set.exitCode).toBe(0);
      await expectEverywhere(nodes, "k 7", Buffer.from("v 7"));

      // --pipe sends the bytes as they are, so the server's inline parser splits the quotes.
      const pipe = await redisCli(["--pipe"], "SET 'k 8' 'v 8'\r\n");
      expect(pipe.exitCode).toBe(0);
      expect(pipe.stdout).toContain("errors: 0, replies: 1");
      await expectEverywhere(nodes, "k 8", Buffer.from("v 8"));
    },
    20_000,
  );
});
