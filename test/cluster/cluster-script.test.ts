// scripts/cluster.ts, the local cluster of the README's first command: it
// reports a cluster as running only when INFO on every node returns that
// node's own id, and a node-1 whose data is gone joins the others.

import { describe, expect } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Cluster, clusterTest, freePort, installClusterHooks, runProgram, sendCommand } from "../support/cluster.ts";

installClusterHooks();

const SCRIPT = resolve(import.meta.dir, "../../scripts/cluster.ts");

/** Returns whether something can listen on 127.0.0.1:`port` now. */
function portIsFree(port: number): boolean {
  try {
    Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } }).stop(true);
    return true;
  } catch {
    return false;
  }
}

/** Picks a base port whose three client ports and three raft ports (`raftOffset` above) are free. */
function freeBasePort(raftOffset = 10_000): number {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 21_000 + Math.floor(Math.random() * 8_000);
    const ports = [0, 1, 2].flatMap((i) => [base + i, base + raftOffset + i]);
    if (ports.every(portIsFree)) return base;
  }
  throw new Error("no free base port found in 50 attempts");
}

/**
 * Runs the script on `base` and `data` until it reports the cluster running,
 * calls `whileRunning`, then stops it with SIGINT and checks that it exited
 * 0 and freed its client ports. Returns the script's stdout and stderr.
 */
async function runScript(base: number, data: string, whileRunning: () => Promise<void>, extraArgs: string[] = []): Promise<string> {
  const argv = [process.execPath, SCRIPT, "--base-port", String(base), "--data", data, ...extraArgs];
  const script = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe" });
  const stderr = new Response(script.stderr).text();
  try {
    const reader = script.stdout.getReader();
    let stdout = "";
    const deadline = Date.now() + 40_000;
    // One read stays pending across checks of the deadline, so no chunk is lost.
    let read = reader.read();
    while (!stdout.includes("is running") && Date.now() < deadline) {
      const chunk = await Promise.race([read, Bun.sleep(1000).then(() => null)]);
      if (chunk === null) continue;
      if (chunk.done) break;
      stdout += new TextDecoder().decode(chunk.value);
      read = reader.read();
    }
    if (!stdout.includes("is running")) {
      script.kill("SIGTERM");
      await Promise.race([script.exited, Bun.sleep(10_000)]);
      throw new Error(`the script did not report the cluster running:\n${stdout}\n${(await stderr).slice(-4000)}`);
    }
    await whileRunning();

    script.kill("SIGINT");
    expect(await Promise.race([script.exited, Bun.sleep(15_000).then(() => "still running")])).toBe(0);
    for (const port of [base, base + 1, base + 2]) expect(portIsFree(port)).toBe(true);
    return `${stdout}\n${await stderr}`;
  } finally {
    // The script stops its nodes on SIGTERM; SIGKILL would leave them running.
    if (script.exitCode === null) {
      script.kill("SIGTERM");
      await Promise.race([script.exited, Bun.sleep(10_000)]);
    }
  }
}

/** Returns the cluster id that INFO reports on 127.0.0.1:`port`. */
async function clusterIdAt(port: number): Promise<string | undefined> {
  const reply = await sendCommand(`127.0.0.1:${port}`, ["INFO", "server"], 10_000);
  return reply.type === "bulk" ? /cluster_id:([^\r\n]*)/.exec(reply.value?.toString("utf8") ?? "")?.[1] : undefined;
}

describe("cluster script", () => {
  clusterTest(
    "starts, serves and stops",
    async () => {
      // Raft ports 5 above the client ports, set with --raft-base-port.
      const base = freeBasePort(5);
      const data = mkdtempSync(join(tmpdir(), "echokv-script-"));
      try {
        const whileRunning = async () => {
          expect((await sendCommand(`127.0.0.1:${base + 2}`, ["SET", "through_script", "1"], 10_000)).type).toBe("simple");
          const info = await sendCommand(`127.0.0.1:${base + 2}`, ["INFO", "server"], 10_000);
          expect(info.type === "bulk" ? info.value?.toString("utf8") : "").toContain(`raft_addr:127.0.0.1:${base + 7}`);
        };
        await runScript(base, data, whileRunning, ["--raft-base-port", String(base + 5)]);
      } finally {
        rmSync(data, { recursive: true, force: true });
      }
    },
    40_000,
  );

  clusterTest(
    "node-1 with lost data rejoins",
    async () => {
      const base = freeBasePort();
      const data = mkdtempSync(join(tmpdir(), "echokv-script-"));
      try {
        let clusterId: string | undefined;
        await runScript(base, data, async () => {
          expect((await sendCommand(`127.0.0.1:${base}`, ["SET", "kept", "yes"], 10_000)).type).toBe("simple");
          clusterId = await clusterIdAt(base);
        });
        rmSync(join(data, "node-1"), { recursive: true, force: true });

        const output = await runScript(base, data, async () => {
          expect(await clusterIdAt(base)).toBe(clusterId);
          const value = await sendCommand(`127.0.0.1:${base}`, ["GET", "kept", "linearizable"], 10_000);
          expect(value.type === "bulk" ? value.value?.toString("utf8") : value).toBe("yes");
        });
        expect(output).toContain("node-1 joins the other nodes instead of bootstrapping a new cluster");
      } finally {
        rmSync(data, { recursive: true, force: true });
      }
    },
    90_000,
  );

  clusterTest(
    "port of another node fails the start",
    async () => {
      const base = freeBasePort();
      // Another EchoKV node already serves the second node's client port.
      const cluster = new Cluster({ name: "script-conflict", tickMs: 20 });
      const blocker = cluster.addNode({ id: "blocker", joinAddr: null, ports: { client: base + 1, raft: freePort() } });
      await cluster.start(blocker);
      const data = mkdtempSync(join(tmpdir(), "echokv-script-"));
      try {
        const result = await runProgram([process.execPath, SCRIPT, "--base-port", String(base), "--data", data], { timeoutMs: 30_000 });
        expect(result.timedOut).toBe(false);
        expect(result.exitCode).toBe(1);
        expect(result.stderr).toContain("cannot start the cluster");
        expect(result.stdout).not.toContain("is running");
        // The script stopped the node it had started, and the blocker still serves.
        expect(portIsFree(base)).toBe(true);
        expect((await sendCommand(blocker.clientAddr, ["PING"])).type).toBe("simple");
      } finally {
        rmSync(data, { recursive: true, force: true });
      }
    },
    40_000,
  );
});
