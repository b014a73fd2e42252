// Measures failover time of a three-node cluster with default timing.
//
//   bun scripts/failover.ts [--runs 10] [--signal SIGKILL|SIGTERM] [--write-timeout-ms 1000] [--interval-ms 5]
//   bun scripts/failover.ts --pause-follower-ms 10000
//
// Starts dist/echokv three times on free 127.0.0.1 ports in a temporary
// directory, and keeps a client writing through the running nodes: a new SET
// every --interval-ms on a fresh connection, each with a --write-timeout-ms
// timeout. Each run SIGKILLs the leader and measures the time from the kill
// to the acknowledgement of the first write sent after it. Then it restarts
// the killed node and waits until that node has applied everything the
// leader had committed when it came back. Prints one line per run, then the
// minimum, median and maximum, and checks that no acknowledged write is
// missing at the end. With --signal SIGTERM the leader is stopped
// gracefully instead (it hands leadership over first). Each run also
// reports the longest gap between two acknowledged writes around the stop.
// --pause-follower-ms instead SIGSTOPs a follower for that long, SIGCONTs
// it, and reports whether any node's term changed.
// Needs `npm run build` first.

import { parseArgs } from "node:util";
import { cpus } from "node:os";
import { Cluster, ContinuousWriter, findLostWrites } from "../test/support/cluster.ts";

interface Settings {
  runs: number;
  writeTimeoutMs: number;
  intervalMs: number;
  signal: "SIGKILL" | "SIGTERM";
  pauseFollowerMs: number;
}

function parseSettings(): Settings {
  const { values } = parseArgs({
    options: {
      runs: { type: "string", default: "10" },
      "write-timeout-ms": { type: "string", default: "1000" },
      "interval-ms": { type: "string", default: "5" },
      signal: { type: "string", default: "SIGKILL" },
      "pause-follower-ms": { type: "string", default: "0" },
    },
    strict: true,
  });
  const wholeNumber = (name: string, text: string, min: number, max: number): number => {
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      throw new Error(`invalid --${name} "${text}": expected a whole number from ${min} to ${max}`);
    }
    return value;
  };
  return {
    runs: wholeNumber("runs", values.runs, 1, 1000),
    writeTimeoutMs: wholeNumber("write-timeout-ms", values["write-timeout-ms"], 10, 60_000),
    intervalMs: wholeNumber("interval-ms", values["interval-ms"], 1, 1000),
    signal: parseSignal(values.signal),
    pauseFollowerMs: wholeNumber("pause-follower-ms", values["pause-follower-ms"], 0, 600_000),
  };
}

function parseSignal(text: string): Settings["signal"] {
  if (text === "SIGKILL" || text === "SIGTERM") return text;
  throw new Error(`invalid --signal "${text}": expected SIGKILL or SIGTERM`);
}

/** SIGSTOPs a follower for `pauseMs`, SIGCONTs it, and reports the terms before and after. */
async function pauseFollower(cluster: Cluster, pauseMs: number): Promise<boolean> {
  const nodes = await cluster.startCluster(3);
  const leader = await cluster.waitForLeader(nodes, 15_000);
  const follower = nodes.find((node) => node !== leader)!;
  const terms = async () => Promise.all(nodes.map(async (node) => `${node.id}=${(await cluster.info(node)).get("term")}`));
  const before = await terms();
  await cluster.kill(follower, "SIGSTOP");
  await Bun.sleep(pauseMs);
  await cluster.kill(follower, "SIGCONT");
  await Bun.sleep(2000);
  const after = await terms();
  const newLeader = await cluster.waitForLeader(nodes, 15_000);
  console.log(`paused ${follower.id} for ${pauseMs} ms; terms before ${before.join(" ")}, after ${after.join(" ")}; leader ${leader.id} -> ${newLeader.id}`);
  const unchanged = before.join() === after.join() && newLeader === leader;
  console.log(unchanged ? "no election: terms and leader unchanged" : "the pause caused an election");
  return unchanged;
}

function summarize(label: string, samples: number[]): string {
  const sorted = [...samples].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
  return `${label}: min ${sorted[0]} ms, median ${median} ms, max ${sorted[sorted.length - 1]} ms (${sorted.length} runs)`;
}

async function main(): Promise<void> {
  const settings = parseSettings();
  const cluster = new Cluster({ name: "failover-script" });
  const stopOnSignal = () => {
    cluster.destroy().finally(() => process.exit(130));
  };
  process.once("SIGINT", stopOnSignal);
  process.once("SIGTERM", stopOnSignal);

  const failoverMs: number[] = [];
  const catchUpMs: number[] = [];
  const gapMs: number[] = [];
  try {
    console.log(`machine: ${cpus().length} CPUs, ${cpus()[0]?.model ?? "unknown model"}`);
    if (settings.pauseFollowerMs > 0) {
      if (!(await pauseFollower(cluster, settings.pauseFollowerMs))) process.exitCode = 1;
      return;
    }
    const nodes = await cluster.startCluster(3);
    console.log(`cluster of ${nodes.map((node) => node.id).join(", ")} in ${cluster.dir}, default --tick-ms and --election-ticks`);

    const writer = new ContinuousWriter({
      targets: () => cluster.running(),
      prefix: "failover-",
      intervalMs: settings.intervalMs,
      timeoutMs: settings.writeTimeoutMs,
      maxDurationMs: settings.runs * 60_000,
    });
    writer.start();
    try {
      for (let run = 1; run <= settings.runs; run++) {
        await Bun.sleep(500);
        const leader = await cluster.waitForLeader(cluster.running(), 15_000);
        const killedAt = Date.now();
        await cluster.kill(leader, settings.signal);
        const firstAck = await writer.waitForAckSentAfter(killedAt, 30_000);
        const elapsed = firstAck.ackedAt! - killedAt;
        failoverMs.push(elapsed);
        await leader.exited();
        await Bun.sleep(1000);
        const gap = writer.longestAckGap(killedAt - 100, Date.now());
        gapMs.push(gap);

        const newLeader = await cluster.waitForLeader(cluster.running(), 15_000);
        const restartedAt = Date.now();
        await cluster.start(leader);
        const target = Number((await cluster.info(newLeader)).get("commit_index"));
        await cluster.waitForApplied(leader, target, 60_000);
        const caughtUp = Date.now() - restartedAt;
        catchUpMs.push(caughtUp);
        console.log(
          `run ${run}: ${settings.signal} ${leader.id}, new leader ${newLeader.id}, first acked write via ${firstAck.nodeId} after ${elapsed} ms, ` +
            `maximum gap between acks ${gap} ms; ` +
            `${leader.id} restarted and applied index ${target} after ${caughtUp} ms`,
        );
      }
    } finally {
      await writer.stop();
    }

    const acked = writer.acked();
    const leader = await cluster.waitForLeader(cluster.running(), 15_000);
    const lost = await findLostWrites(leader, acked, "linearizable");
    console.log(`writes: ${writer.outcomes.length} sent, ${acked.length} acknowledged, ${lost.length} acknowledged but missing on ${leader.id}`);
    for (const line of lost.slice(0, 10)) console.log(`  missing: ${line}`);
    console.log(summarize(`time to first acknowledged write after ${settings.signal} of the leader`, failoverMs));
    console.log(summarize("maximum gap between acknowledged writes around the stop", gapMs));
    console.log(summarize("time for the restarted node to catch up", catchUpMs));
    if (lost.length > 0) process.exitCode = 1;
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    if (failoverMs.length > 0) console.error(summarize("completed runs", failoverMs));
    process.exitCode = 1;
  } finally {
    await cluster.destroy();
  }
}

await main();
