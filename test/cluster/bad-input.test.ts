// Bad input from users and operators: malformed commands, lying length
// prefixes, clients that vanish, bad flags, a wrong data directory, garbage on
// the Raft port, oversized and empty keys and values. Every test that talks to
// a running cluster then checks that all nodes are up and that the writes
// acknowledged before the test are still there.

import { describe, expect } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeCommand } from "../../src/protocol/resp.ts";
import {
  Cluster,
  clusterTest,
  describeReply,
  freePort,
  installClusterHooks,
  RawConnection,
  replyText,
  runEchokv,
  sendCommand,
  sharedFixture,
  waitFor,
  type ClusterNode,
} from "../support/cluster.ts";

installClusterHooks();

const BASELINE_KEYS = 20;
const MIB = 1024 * 1024;

/** Starts a three-node cluster with default timing and limits, and writes BASELINE_KEYS keys. */
const threeNodes = sharedFixture(async () => {
  const cluster = new Cluster({ name: "bad-input", shared: true });
  const nodes = await cluster.startCluster(3);
  const leader = await cluster.waitForLeader();
  for (let i = 0; i < BASELINE_KEYS; i++) {
    const reply = await cluster.command(leader, ["SET", `baseline_${i}`, `value_${i}`]);
    if (describeReply(reply) !== "OK") throw new Error(`baseline SET ${i} failed: ${describeReply(reply)}`);
  }
  return { cluster, nodes };
});

/** Checks that every node runs and replies to PING, that the baseline keys are on every node, and that a new write commits. */
async function expectClusterIntact(cluster: Cluster, nodes: ClusterNode[]): Promise<void> {
  for (const node of nodes) {
    expect(node.running).toBe(true);
    expect(describeReply(await sendCommand(node.clientAddr, ["PING"]))).toBe("PONG");
  }
  const leader = await cluster.waitForLeader(nodes, 5000);
  const probeKey = `probe_${Date.now()}`;
  expect(describeReply(await sendCommand(leader.clientAddr, ["SET", probeKey, "alive"]))).toBe("OK");
  for (const node of nodes) {
    await cluster.waitForValue(node, probeKey, "alive", 3000);
    for (let i = 0; i < BASELINE_KEYS; i++) {
      expect(replyText(await sendCommand(node.clientAddr, ["GET", `baseline_${i}`]))).toBe(`value_${i}`);
    }
  }
}

describe("bad client input", () => {
  clusterTest(
    "unknown command gets an error",
    async () => {
      const { cluster, nodes } = await threeNodes();
      const leader = await cluster.waitForLeader();
      const client = await cluster.client(leader);
      const reply = await client.command(["FLUSHEVERYTHING", "now"]);
      expect(describeReply(reply)).toStartWith("-ERR unknown command 'FLUSHEVERYTHING'");
      // The connection stays usable after an error reply.
      expect(describeReply(await client.command(["PING"]))).toBe("PONG");
      await expectClusterIntact(cluster, nodes);
    },
    30_000,
  );

  clusterTest(
    "wrong arity gets an error",
    async () => {
      const { cluster, nodes } = await threeNodes();
      const leader = await cluster.waitForLeader();
      const cases: Array<{ args: string[]; command: string }> = [
        { args: ["GET"], command: "get" },
        { args: ["GET", "a", "b", "c"], command: "get" },
        { args: ["SET", "arity_key"], command: "set" },
        { args: ["DEL"], command: "del" },
        { args: ["REMOVE"], command: "remove" },
      ];
      for (const { args, command } of cases) {
        const reply = await cluster.command(leader, args);
        expect(describeReply(reply), `reply to ${args.join(" ")}`).toBe(`-ERR wrong number of arguments for '${command}' command`);
      }
      // Extra SET arguments are Redis options that EchoKV lacks, and the error names them.
      for (const args of [["SET", "arity_key", "v", "extra"], ["SET", "arity_key", "v", "EX", "10"]]) {
        const reply = describeReply(await cluster.command(leader, args));
        expect(reply, `reply to ${args.join(" ")}`).toStartWith("-ERR syntax error: SET takes a key and a value only");
      }
      expect(describeReply(await cluster.command(leader, ["GET", "arity_key"]))).toBe("nil");
      await expectClusterIntact(cluster, nodes);
    },
    30_000,
  );

  clusterTest(
    "garbage bytes get protocol error and close",
    async () => {
      const { cluster, nodes } = await threeNodes();
      const leader = await cluster.waitForLeader();
      const garbage = [
        "*x\r\n",
        "*1\r\n:1\r\n",
        "*1\r\n$abc\r\n",
        "*1\r\n$3\r\nabcXY\r\n",
        "*-5junk\r\n",
        `*1\r\n$${"9".repeat(40)}\r\n`,
      ];
      for (const bytes of garbage) {
        const connection = await RawConnection.open(leader.clientAddr);
        connection.write(bytes);
        const closed = await connection.waitForClose(3000);
        const received = connection.received.toString("latin1");
        connection.close();
        expect(received, `reply to ${JSON.stringify(bytes)}`).toStartWith("-ERR Protocol error");
        expect(closed, `connection closed after ${JSON.stringify(bytes)}`).toBe(true);
      }
      await expectClusterIntact(cluster, nodes);
    },
    30_000,
  );

  clusterTest(
    "lying bulk lengths do not allocate",
    async () => {
      const { cluster, nodes } = await threeNodes();
      const leader = await cluster.waitForLeader();
      const rssBefore = cluster.rssBytes(leader);
      // Lengths far above any limit must be rejected at once. The server may wait
      // for the data of a length within the parser limit, but must not allocate it up front.
      const cases = [
        { name: "1 GiB bulk", bytes: "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1073741824\r\n", mustClose: true },
        { name: "4 GiB bulk", bytes: "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4294967296\r\n", mustClose: true },
        { name: "huge argument count", bytes: "*1048577\r\n", mustClose: true },
        { name: "30 MB bulk without data", bytes: "*3\r\n$3\r\nSET\r\n$7\r\nwaiting\r\n$30000000\r\n", mustClose: false },
      ];
      for (const { name, bytes, mustClose } of cases) {
        const connection = await RawConnection.open(leader.clientAddr);
        connection.write(bytes);
        const closed = await connection.waitForClose(1500);
        const received = connection.received.toString("latin1");
        const rssGrowth = cluster.rssBytes(leader) - rssBefore;
        connection.close();
        expect(rssGrowth / MIB, `RSS growth in MiB after ${name}`).toBeLessThan(64);
        if (mustClose) {
          expect(closed, `connection closed after ${name}`).toBe(true);
          expect(received, `reply to ${name}`).toStartWith("-ERR Protocol error");
        } else {
          expect(received, `reply to ${name}`).toMatch(/^(-ERR [^\r]*\r\n)?$/);
        }
      }
      expect(describeReply(await cluster.command(leader, ["GET", "k"]))).toBe("nil");
      expect(describeReply(await cluster.command(leader, ["GET", "waiting"]))).toBe("nil");
      await expectClusterIntact(cluster, nodes);
    },
    30_000,
  );

  clusterTest(
    "client disconnecting mid-command",
    async () => {
      const { cluster, nodes } = await threeNodes();
      const leader = await cluster.waitForLeader();
      const follower = nodes.find((node) => node !== leader)!;

      // Half of a SET, then the client goes away: nothing may be written.
      const half = await RawConnection.open(leader.clientAddr);
      half.write("*3\r\n$3\r\nSET\r\n$9\r\nhalf_sent\r\n$10\r\nabc");
      await Bun.sleep(100);
      half.close();

      // 500 complete SETs, to the leader and to a follower (forwarded), and the
      // client closes before reading any reply.
      for (const target of [leader, follower]) {
        const eager = await RawConnection.open(target.clientAddr);
        let batch = "";
        for (let i = 0; i < 500; i++) batch += `*3\r\n$3\r\nSET\r\n$${`gone_${target.id}_${i}`.length}\r\ngone_${target.id}_${i}\r\n$1\r\nx\r\n`;
        eager.write(batch);
        eager.close();
      }

      await Bun.sleep(500);
      expect(describeReply(await cluster.command(leader, ["GET", "half_sent"]))).toBe("nil");
      await expectClusterIntact(cluster, nodes);
    },
    30_000,
  );

  clusterTest(
    "oversized key and value get TOOLARGE",
    async () => {
      const { cluster, nodes } = await threeNodes();
      const leader = await cluster.waitForLeader();
      const follower = nodes.find((node) => node !== leader)!;
      const bigKey = "k".repeat(64 * 1024 + 1);
      const bigValue = Buffer.alloc(16 * MIB + 1, 0x61);

      for (const target of [leader, follower]) {
        const keyReply = await cluster.command(target, ["SET", bigKey, "v"]);
        expect(describeReply(keyReply), `oversized key sent to ${target.id}`).toStartWith(
          "-TOOLARGE key of 65537 bytes exceeds the limit of 65536 bytes",
        );
        const valueReply = await cluster.command(target, ["SET", `toolarge_${target.id}`, bigValue], 15_000);
        expect(describeReply(valueReply), `oversized value sent to ${target.id}`).toStartWith(
          "-TOOLARGE value of 16777217 bytes exceeds the limit of 16777216 bytes",
        );
        expect(describeReply(await cluster.command(target, ["GET", `toolarge_${target.id}`]))).toBe("nil");
      }
      await expectClusterIntact(cluster, nodes);
    },
    60_000,
  );

  clusterTest(
    "key and value limits from flags",
    async () => {
      const cluster = new Cluster({ name: "limits", tickMs: 20, extraArgs: ["--max-key-bytes", "16", "--max-value-bytes", "64"] });
      const node = cluster.addNode({ joinAddr: null });
      await cluster.start(node);
      await cluster.waitForLeader([node]);

      expect(describeReply(await cluster.command(node, ["SET", "k".repeat(16), "v".repeat(64)]))).toBe("OK");
      expect(describeReply(await cluster.command(node, ["SET", "k".repeat(17), "v"]))).toStartWith("-TOOLARGE key of 17 bytes");
      expect(describeReply(await cluster.command(node, ["SET", "short", "v".repeat(65)]))).toStartWith("-TOOLARGE value of 65 bytes");
      expect(describeReply(await cluster.command(node, ["GET", "short"]))).toBe("nil");
      expect(replyText(await cluster.command(node, ["GET", "k".repeat(16)]))).toBe("v".repeat(64));
    },
    30_000,
  );

  clusterTest(
    "empty key and empty value",
    async () => {
      const cluster = new Cluster({ name: "empty", tickMs: 20 });
      const nodes = await cluster.startCluster(3);
      const leader = await cluster.waitForLeader();

      // Exact RESP bytes, so the difference between $0 and $-1 is visible.
      const connection = await RawConnection.open(leader.clientAddr);
      connection.write("*3\r\n$3\r\nSET\r\n$0\r\n\r\n$2\r\nv0\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
      expect(await connection.waitFor((data) => data.toString("latin1") === "+OK\r\n+OK\r\n", 5000)).toBe(true);
      connection.close();

      const expected = "$2\r\nv0\r\n$0\r\n\r\n$-1\r\n";
      const readBack = async (node: ClusterNode): Promise<string> => {
        const reader = await RawConnection.open(node.clientAddr);
        reader.write("*2\r\n$3\r\nGET\r\n$0\r\n\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*2\r\n$3\r\nGET\r\n$7\r\nmissing\r\n");
        await reader.waitFor((data) => data.toString("latin1").endsWith("$-1\r\n"), 3000);
        reader.close();
        return reader.received.toString("latin1");
      };
      for (const node of nodes) {
        await waitFor(`${node.id} to return the empty key and value`, async () => (await readBack(node)) === expected, { timeoutMs: 3000 });
      }

      for (const node of nodes) await cluster.kill(node, "SIGKILL");
      await Promise.all(nodes.map((node) => cluster.start(node)));
      await cluster.waitForLeader(nodes);
      for (const node of nodes) {
        await waitFor(`${node.id} to return the empty key and value after restart`, async () => (await readBack(node)) === expected, {
          timeoutMs: 5000,
        });
        expect(describeReply(await sendCommand(node.clientAddr, ["EXISTS", "", "k", "missing"]))).toBe(":2");
      }
    },
    60_000,
  );
});

describe("transactions", () => {
  clusterTest(
    "no command between MULTI and EXEC is applied",
    async () => {
      const { cluster, nodes } = await threeNodes();
      const leader = await cluster.waitForLeader();
      // What a client library sends for multi().set().del().exec(), in one write.
      const connection = await RawConnection.open(leader.clientAddr);
      try {
        connection.write(encodeCommand(["MULTI"]));
        connection.write(encodeCommand(["SET", "in_multi", "1"]));
        connection.write(encodeCommand(["DEL", "baseline_0"]));
        connection.write(encodeCommand(["EXEC"]));
        connection.write(encodeCommand(["MULTI"]));
        connection.write(encodeCommand(["DISCARD"]));
        connection.write(encodeCommand(["EXEC"]));
        const replies = (await connection.readReplies(7, 5000)).map(describeReply);
        expect(replies[0]).toStartWith("-ERR MULTI is not supported");
        expect(replies[1]).toStartWith("-ERR SET rejected: it follows MULTI");
        expect(replies[2]).toStartWith("-ERR DEL rejected: it follows MULTI");
        expect(replies[3]).toStartWith("-EXECABORT ");
        expect(replies[4]).toStartWith("-ERR MULTI is not supported");
        expect(replies[5]).toBe("OK");
        expect(replies[6]).toBe("-ERR EXEC without MULTI");
      } finally {
        connection.close();
      }
      expect(describeReply(await cluster.command(leader, ["GET", "in_multi", "linearizable"]))).toBe("nil");
      await expectClusterIntact(cluster, nodes);
    },
    30_000,
  );
});

describe("bad membership input", () => {
  clusterTest(
    "JOIN with a bad id or address is rejected",
    async () => {
      const { cluster, nodes } = await threeNodes();
      const leader = await cluster.waitForLeader();
      const cases: Array<{ args: string[]; message: string }> = [
        { args: ["JOIN", "node-9", "bad", "addr"], message: "invalid raft address for node-9" },
        { args: ["JOIN", "node-8", "127.0.0.1:99999", "127.0.0.1:7599"], message: "invalid raft address for node-8" },
        { args: ["JOIN", "node-7", "127.0.0.1:17597", "127.0.0.1:0"], message: "invalid client address for node-7" },
        { args: ["JOIN", "bad id!", "127.0.0.1:17598", "127.0.0.1:7598"], message: 'invalid node id "bad id!"' },
      ];
      // Sent to a follower too, which forwards JOIN to the leader.
      for (const node of [leader, nodes.find((other) => other !== leader)!]) {
        for (const { args, message } of cases) {
          const reply = describeReply(await cluster.command(node, args));
          expect(reply, `reply to ${args.join(" ")}`).toStartWith("-ERR ");
          expect(reply, `reply to ${args.join(" ")}`).toContain(message);
        }
      }
      const members = await cluster.command(leader, ["MEMBERS"]);
      expect(members.type === "array" ? members.value?.length : -1).toBe(3);
      await expectClusterIntact(cluster, nodes);
    },
    30_000,
  );
});

describe("bad raft input", () => {
  clusterTest(
    "garbage on the raft port",
    async () => {
      const { cluster, nodes } = await threeNodes();
      const leader = await cluster.waitForLeader();
      const termBefore = (await cluster.info(leader)).get("term");
      const seed = Date.now() % 1_000_000;
      console.log(`garbage on the raft port: random seed ${seed}`);
      let state = seed;
      const randomBytes = Buffer.alloc(4096);
      for (let i = 0; i < randomBytes.length; i++) {
        state = (state * 1103515245 + 12345) % 2147483648;
        randomBytes[i] = state >> 16;
      }
      const payloads: Array<{ name: string; bytes: Uint8Array }> = [
        { name: "random bytes", bytes: randomBytes },
        { name: "4 GiB frame header", bytes: Buffer.from([0xff, 0xff, 0xff, 0xff]) },
        { name: "frame of invalid CBOR", bytes: Buffer.concat([Buffer.from([0, 0, 0, 5]), Buffer.from([0xff, 0xfe, 0xfd, 0xfc, 0xfb])]) },
        { name: "HTTP request", bytes: Buffer.from("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n") },
        { name: "RESP command", bytes: Buffer.from("*1\r\n$4\r\nPING\r\n") },
      ];

      for (const target of nodes) {
        const rssBefore = cluster.rssBytes(target);
        for (const { name, bytes } of payloads) {
          const connection = await RawConnection.open(target.raftAddr);
          connection.write(bytes);
          await connection.waitForClose(500);
          connection.close();
          expect(target.running, `${target.id} running after ${name}`).toBe(true);
        }
        const growthMiB = (cluster.rssBytes(target) - rssBefore) / MIB;
        expect(growthMiB, `RSS growth in MiB of ${target.id}`).toBeLessThan(64);
      }

      await expectClusterIntact(cluster, nodes);
      const leaderAfter = await cluster.waitForLeader();
      expect(leaderAfter.id).toBe(leader.id);
      expect((await cluster.info(leaderAfter)).get("term")).toBe(termBefore);
    },
    30_000,
  );
});

describe("bad operator input", () => {
  clusterTest(
    "bad serve flags exit 2",
    async () => {
      const scratch = mkdtempSync(join(tmpdir(), "echokv-flags-"));
      try {
        const port = () => `127.0.0.1:${freePort()}`;
        const base = (dataDir: string) => ["--listen-addr", port(), "--raft-addr", port(), "--data-dir", join(scratch, dataDir)];
        const cases: Array<{ name: string; args: string[]; message: RegExp }> = [
          { name: "unknown flag", args: ["serve", "--node-id", "node-1", ...base("a"), "--bogus"], message: /unknown flag --bogus/ },
          { name: "empty node id", args: ["serve", "--node-id", "", ...base("b")], message: /invalid --node-id ""/ },
          { name: "node id with a space", args: ["serve", "--node-id", "node 1", ...base("c")], message: /invalid --node-id "node 1"/ },
          {
            name: "port out of range",
            args: ["serve", "--node-id", "node-1", "--listen-addr", "127.0.0.1:99999", "--raft-addr", port(), "--data-dir", join(scratch, "d")],
            message: /invalid --listen-addr.*99999/,
          },
          {
            name: "port not a number",
            args: ["serve", "--node-id", "node-1", "--listen-addr", port(), "--raft-addr", "127.0.0.1:abc", "--data-dir", join(scratch, "e")],
            message: /invalid --raft-addr.*abc/,
          },
          {
            name: "client and peer ports the same",
            args: ["serve", "--node-id", "node-1", "--listen-addr", ":28379", "--raft-addr", "127.0.0.1:28379", "--data-dir", join(scratch, "j")],
            message: /--listen-addr 0\.0\.0\.0:28379 and --raft-addr 127\.0\.0\.1:28379 share a port/,
          },
          { name: "zero tick", args: ["serve", "--node-id", "node-1", ...base("f"), "--tick-ms", "0"], message: /invalid --tick-ms "0"/ },
          {
            name: "value limit not a number",
            args: ["serve", "--node-id", "node-1", ...base("g"), "--max-value-bytes", "lots"],
            message: /invalid --max-value-bytes "lots"/,
          },
          {
            name: "negative value limit",
            args: ["serve", "--node-id", "node-1", ...base("h"), "--max-value-bytes", "-1"],
            message: /invalid value -1 for --max-value-bytes: negative numbers are not accepted/,
          },
          { name: "missing node id", args: ["serve", ...base("i")], message: /missing --node-id/ },
        ];
        for (const { name, args, message } of cases) {
          const result = await runEchokv(args, { timeoutMs: 10_000 });
          const lines = result.stderr.trimEnd().split("\n");
          expect(result.exitCode, `exit status for ${name}`).toBe(2);
          expect(lines.length, `stderr lines for ${name}: ${result.stderr}`).toBe(1);
          expect(result.stderr, `stderr for ${name}`).toMatch(message);
        }
        // Flags are checked before anything is written to disk.
        expect(readdirSync(scratch)).toEqual([]);
      } finally {
        rmSync(scratch, { recursive: true, force: true });
      }
    },
    60_000,
  );

  clusterTest(
    "bad paths exit 2 with a plain message",
    async () => {
      const scratch = mkdtempSync(join(tmpdir(), "echokv-paths-"));
      try {
        const port = () => `127.0.0.1:${freePort()}`;
        const serve = (...extra: string[]) => ["serve", "--node-id", "node-1", "--listen-addr", port(), "--raft-addr", port(), ...extra];
        writeFileSync(join(scratch, "a-file"), "not a directory");
        writeFileSync(join(scratch, "junk.snap"), "hello\n");
        mkdirSync(join(scratch, "empty"));
        const cases: Array<{ name: string; args: string[]; message: string }> = [
          { name: "file as data dir", args: serve("--data-dir", join(scratch, "a-file")), message: "it exists and is not a directory" },
          {
            name: "missing backup",
            args: serve("--data-dir", join(scratch, "d1"), "--restore", join(scratch, "missing.snap")),
            message: "the file does not exist",
          },
          { name: "not a backup", args: serve("--data-dir", join(scratch, "d2"), "--restore", join(scratch, "junk.snap")), message: "is not an EchoKV snapshot" },
          {
            name: "missing backup, existing directory",
            args: serve("--data-dir", join(scratch, "empty"), "--restore", join(scratch, "missing.snap")),
            message: "the file does not exist",
          },
          { name: "address without port", args: ["cli", "--connect", "127.0.0.1", "GET", "k"], message: "invalid --connect" },
        ];
        for (const { name, args, message } of cases) {
          const result = await runEchokv(args, { timeoutMs: 10_000 });
          expect(result.exitCode, `exit status for ${name}`).toBe(2);
          expect(result.stderr, `stderr for ${name}`).toStartWith("echokv: ");
          expect(result.stderr, `stderr for ${name}`).toContain(message);
        }
        // A failed restore leaves no data directory claimed by the node id.
        expect(readdirSync(scratch).sort()).toEqual(["a-file", "empty", "junk.snap"]);
        expect(readdirSync(join(scratch, "empty"))).toEqual([]);
      } finally {
        rmSync(scratch, { recursive: true, force: true });
      }
    },
    30_000,
  );

  clusterTest(
    "unreachable join address",
    async () => {
      const cluster = new Cluster({ name: "join-unreachable", tickMs: 20 });
      const first = cluster.addNode({ joinAddr: null });
      await cluster.start(first);
      await cluster.waitForLeader([first]);

      const unreachable = `127.0.0.1:${freePort()}`;
      const joiner = cluster.addNode({ joinAddr: unreachable, extraArgs: ["--join-timeout-ms", "2000"] });
      const started = Date.now();
      await cluster.start(joiner, "none");
      const exitCode = await joiner.exitWithin(10_000);
      const elapsedMs = Date.now() - started;
      expect(exitCode).not.toBe("still running");
      expect(exitCode).not.toBe(0);
      expect(elapsedMs).toBeLessThan(8000);
      expect(joiner.log()).toContain(`could not join the cluster via ${unreachable} within 2000 ms`);

      // A raft address by mistake: the error names the kind of address needed.
      joiner.joinAddr = `127.0.0.1:${first.raftPort}`;
      await cluster.start(joiner, "none");
      expect(await joiner.exitWithin(10_000)).not.toBe(0);
      expect(joiner.log()).toContain(`check that 127.0.0.1:${first.raftPort} is a member's client address, not its raft address`);

      // The failed attempts must not leave state that stops a later, correct join.
      joiner.joinAddr = first.clientAddr;
      await cluster.start(joiner);
      await cluster.waitForVoters([first, joiner]);
      expect(describeReply(await cluster.command(first, ["SET", "after_join", "1"]))).toBe("OK");
      await cluster.waitForValue(joiner, "after_join", "1");
    },
    30_000,
  );

  clusterTest(
    "port in use leaves no state",
    async () => {
      const cluster = new Cluster({ name: "port-in-use", tickMs: 20 });
      const [first] = await cluster.startCluster(1);

      // Without --join-addr, a node whose ports are free would bootstrap a
      // cluster of its own. Its client port, then its raft port, is taken.
      const second = cluster.addNode({ joinAddr: null, ports: { client: first.clientPort, raft: freePort() } });
      for (const takenPort of ["client", "raft"] as const) {
        if (takenPort === "raft") second.raftPort = first.raftPort;
        await cluster.start(second, "none");
        expect(await second.exitWithin(10_000)).toBe(1);
        expect(second.fatalMessage()).toContain("the address is already in use");
        second.moveToNewPorts();
      }

      // Nothing was bootstrapped, so it can still join the first node's cluster.
      second.joinAddr = first.clientAddr;
      await cluster.start(second);
      await cluster.waitForVoters([first, second]);
      expect(second.log()).not.toContain("bootstrapped");
    },
    30_000,
  );

  clusterTest(
    "data dir of another node id",
    async () => {
      const cluster = new Cluster({ name: "wrong-id", tickMs: 20 });
      const owner = cluster.addNode({ id: "node-a", joinAddr: null });
      await cluster.start(owner);
      await cluster.waitForLeader([owner]);
      expect(describeReply(await cluster.command(owner, ["SET", "owned", "yes"]))).toBe("OK");
      await cluster.kill(owner, "SIGTERM");

      const intruder = cluster.addNode({ id: "node-b", joinAddr: null, dataDir: owner.dataDir });
      await cluster.start(intruder, "none");
      const exitCode = await intruder.exitWithin(10_000);
      expect(exitCode).toBe(2);
      const message = intruder.fatalMessage();
      expect(message).toContain("node-a");
      expect(message).toContain("node-b");

      // The rightful owner still starts and has its data.
      await cluster.start(owner);
      await cluster.waitForLeader([owner]);
      expect(replyText(await cluster.command(owner, ["GET", "owned"]))).toBe("yes");
    },
    30_000,
  );

  clusterTest(
    "second node on locked data dir",
    async () => {
      const cluster = new Cluster({ name: "dir-in-use", extraArgs: ["--snapshot-entries", "100"] });
      const owner = cluster.addNode({ id: "node-a", joinAddr: null });
      await cluster.start(owner);
      await cluster.waitForLeader([owner]);
      for (let i = 0; i < 250; i++) expect(describeReply(await cluster.command(owner, ["SET", `k${i}`, `v${i}`]))).toBe("OK");
      const snapshotsBefore = readdirSync(join(owner.dataDir, "snapshots")).sort();

      // The same id and directory on other ports, as a second copy started by mistake.
      const second = cluster.addNode({ id: "node-a", joinAddr: null, dataDir: owner.dataDir });
      await cluster.start(second, "none");
      const exitCode = await second.exitWithin(10_000);
      expect(exitCode).toBe(2);
      const message = second.fatalMessage();
      expect(message).toContain(`is in use by process ${owner.pid}`);
      expect(readdirSync(join(owner.dataDir, "snapshots")).sort()).toEqual(snapshotsBefore);
      expect(replyText(await cluster.command(owner, ["GET", "k249"]))).toBe("v249");

      // A lock left by a killed node does not block its restart.
      await cluster.kill(owner, "SIGKILL");
      await cluster.start(owner);
      await cluster.waitForLeader([owner]);
      expect(replyText(await cluster.command(owner, ["GET", "k249"]))).toBe("v249");
    },
    30_000,
  );
});
