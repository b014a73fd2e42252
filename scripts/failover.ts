// Measures failover time of a three-node cluster with default timing.
//
//   bun scripts/failover.ts [--runs 10] [--write-timeout-ms 1000] [--interval-ms 5]
//
// Starts dist/echokv three times on free 127.0.0.1 ports in a temporary
// directory, and keeps a client writing through the running nodes: a new SET
// every --interval-ms on a fresh connection, each with a --write-timeout-ms
// timeout. Each run SIGKILLs the leader and measures the time from the kill
// to the acknowledgement of the first write sent after it. Then it restarts
// the killed node and waits until that node has applied everything the
// leader had committed when it came back. Prints one line per run, then the
// minimum, median and maximum, and checks that no acknowledged write is
// missing at the end. Needs `npm run build` first.

import { parseArgs } from "node:util";
import { cpus } from "node:os";
import { Cluster, ContinuousWriter, findLostWrites } from "../test/support/cluster.ts";

interface Settings {
  runs: number;
  writeTimeoutMs: number;
  intervalMs: number;
}

function parseSettings(): Settings {
  const { values } = parseArgs({
    options: {
      runs: { type: "string", default: "10" },
      "write-timeout-ms": { type: "string", default: "1000" },
      "interval-ms": { type: "string", default: "5" },
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
  };
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
  try {
    console.log(`machine: ${cpus().length} CPUs, ${cpus()[0]?.model ?? "unknown model"}`);
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
        await cluster.kill(leader, "SIGKILL");
        const firstAck = await writer.waitForAckSentAfter(killedAt, 30_000);
        const elapsed = firstAck.ackedAt! - killedAt;
        failoverMs.push(elapsed);

        const newLeader = await cluster.waitForLeader(cluster.running(), 15_000);
        const restartedAt = Date.now();
        await cluster.start(leader);
        const target = Number((await cluster.info(newLeader)).get("commit_index"));
        await cluster.waitForApplied(leader, target, 60_000);
        const caughtUp = Date.now() - restartedAt;
        catchUpMs.push(caughtUp);
        console.log(
          `run ${run}: killed ${leader.id}, new leader ${newLeader.id}, first acked write via ${firstAck.nodeId} after ${elapsed} ms; ` +
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
    console.log(summarize("time to first acknowledged write after SIGKILL of the leader", failoverMs));
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
