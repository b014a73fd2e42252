// A history of SETs and linearizable GETs from concurrent clients against
// real processes, checked for linearizability while the leader is killed
// with SIGKILL and restarted twice, then paused with SIGSTOP long enough for
// the others to elect a new leader. Half of the clients talk to followers,
// so their writes are forwarded, including across the failovers.

import { describe, expect } from "bun:test";
import { RespClient, RespClientError } from "../../src/client/client.ts";
import type { RespValue } from "../../src/protocol/resp.ts";
import { SimRandom } from "../sim/random.ts";
import { Cluster, clusterTest, installClusterHooks, type ClusterNode } from "../support/cluster.ts";
import { checkLinearizable, type KvOp, type Operation } from "../support/linearizability.ts";

installClusterHooks();

const KEYS = ["h-0", "h-1", "h-2", "h-3", "h-4", "h-5"];
const CLIENTS = 4;
const RUN_MS = 11_000;
const REQUEST_TIMEOUT_MS = 3_000;
/** Pause between one client's requests, which keeps each key's history small enough to check. */
const THINK_MS = 4;

/** Error replies after which a request definitely had no effect. */
const NO_EFFECT = ["NOTLEADER", "NOLEADER", "NOTAPPLIED", "SHUTDOWN", "LOADING", "REMOVED", "BUSY"];

interface Outcome {
  /** "ok" with the reply, "none" when the request had no effect, "unknown" when it may have. */
  kind: "ok" | "none" | "unknown";
  reply?: RespValue;
}

/** Sends one command on `client`, classifying failures by whether the command may have taken effect. */
async function send(client: RespClient, args: string[]): Promise<Outcome> {
  try {
    const reply = await client.command(args, { timeoutMs: REQUEST_TIMEOUT_MS });
    if (reply.type !== "error") return { kind: "ok", reply };
    return NO_EFFECT.some((code) => reply.message.startsWith(code)) ? { kind: "none" } : { kind: "unknown" };
  } catch (err) {
    // A command that was never sent had no effect, and one that was sent may have.
    const code = err instanceof RespClientError ? err.code : null;
    return code === "CONNECT" || code === "NOTCONNECTED" ? { kind: "none" } : { kind: "unknown" };
  }
}

/** Runs one client until `deadline`, appending its operations to `history`. */
async function runClient(
  index: number,
  nodes: ClusterNode[],
  random: SimRandom,
  deadline: number,
  history: Operation[],
  nextId: () => number,
): Promise<void> {
  // The first node bootstrapped the cluster and leads at the start, so
  // clients 0 and 1 start on the two followers and the others on the leader.
  let nodeIndex = index < 2 ? index + 1 : 0;
  let client: RespClient | null = null;
  let sequence = 0;
  while (performance.now() < deadline) {
    if (client === null || client.closed) {
      client?.close();
      client = null;
      try {
        client = await RespClient.connect(nodes[nodeIndex].clientAddr, { timeoutMs: 1_000 });
      } catch {
        // That node is down: try the next one.
        nodeIndex = (nodeIndex + 1) % nodes.length;
        await Bun.sleep(20);
        continue;
      }
    }

    const key = KEYS[random.int(0, KEYS.length - 1)];
    const op: KvOp = random.chance(0.5) ? { kind: "set", key, value: `c${index}-${sequence++}` } : { kind: "get", key };
    const args = op.kind === "set" ? ["SET", key, op.value] : ["GET", key, "linearizable"];
    const call = performance.now();
    const outcome = await send(client, args);
    const ret = performance.now();

    if (outcome.kind === "unknown") {
      // A read with an unknown outcome changed nothing, so only writes are kept.
      if (op.kind === "set") history.push({ id: nextId(), client: index, op, call, ret: null });
    } else if (outcome.kind === "ok") {
      const output = op.kind === "get" && outcome.reply?.type === "bulk" ? (outcome.reply.value?.toString() ?? null) : null;
      history.push({ id: nextId(), client: index, op, call, ret, output });
    }
    await Bun.sleep(THINK_MS);
  }
  client?.close();
}

describe("history", () => {
  clusterTest(
    "linearizable across leader kills and a pause",
    async () => {
      const seed = Number(process.env.ECHOKV_HISTORY_SEED ?? Date.now() % 1_000_000);
      console.log(`history seed ${seed} (set ECHOKV_HISTORY_SEED to replay the client choices)`);
      const random = new SimRandom(seed);

      const cluster = new Cluster({ name: "history", tickMs: 20, extraArgs: ["--request-timeout-ms", String(REQUEST_TIMEOUT_MS)] });
      const nodes = await cluster.startCluster(3);
      await cluster.waitForLeader(nodes);

      const history: Operation[] = [];
      let lastId = 0;
      const deadline = performance.now() + RUN_MS;
      const clients = Array.from({ length: CLIENTS }, (_, index) =>
        runClient(index, nodes, random.fork(index), deadline, history, () => ++lastId),
      );

      // Two failovers: kill the leader, let the others elect, restart it.
      const faults: string[] = [];
      for (const pauseMs of [2_000, 2_500]) {
        await Bun.sleep(pauseMs);
        const leader = await cluster.waitForLeader(cluster.running(), 10_000);
        faults.push(leader.id);
        await cluster.kill(leader, "SIGKILL");
        await Bun.sleep(600);
        await cluster.start(leader, "ping");
      }
      // A paused leader comes back still believing it leads, with clients waiting on it.
      await Bun.sleep(1_500);
      const paused = await cluster.waitForLeader(cluster.running(), 10_000);
      faults.push(`${paused.id} (paused)`);
      await cluster.kill(paused, "SIGSTOP");
      await Bun.sleep(1_500);
      await cluster.kill(paused, "SIGCONT");
      await Promise.all(clients);

      const writes = history.filter((operation) => operation.op.kind === "set");
      const reads = history.filter((operation) => operation.op.kind === "get");
      const unknown = writes.filter((operation) => operation.ret === null);
      console.log(
        `history: ${writes.length} writes (${unknown.length} with an unknown outcome), ${reads.length} reads; faults on ${faults.join(", ")}`,
      );
      // Without enough completed operations on both sides of a failover the check would prove little.
      expect(writes.length - unknown.length).toBeGreaterThan(200);
      expect(reads.length).toBeGreaterThan(200);

      const result = checkLinearizable(history);
      expect(result.timedOut ?? false).toBe(false);
      expect(result.message ?? "linearizable").toBe("linearizable");
      expect(result.ok).toBe(true);
    },
    90_000,
  );
});
