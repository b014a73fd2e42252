// scripts/cluster.ts, the local cluster of the README's first command: it
// reports a cluster as running only when INFO on every node returns that
// node's own id.

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

/** Picks a base port whose three client ports and three raft ports (10,000 above) are free. */
function freeBasePort(): number {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 21_000 + Math.floor(Math.random() * 8_000);
    const ports = [0, 1, 2].flatMap((i) => [base + i, base + 10_000 + i]);
    if (ports.every(portIsFree)) return base;
  }
  throw new Error("no free base port found in 50 attempts");
}

describe("cluster script", () => {
  clusterTest(
    "starts, serves and stops",
    async () => {
      const base = freeBasePort();
      const data = mkdtempSync(join(tmpdir(), "echokv-script-"));
      const script = Bun.spawn([process.execPath, SCRIPT, "--base-port", String(base), "--data", data], { stdout: "pipe", stderr: "pipe" });
      try {
        const reader = script.stdout.getReader();
        let stdout = "";
        const deadline = Date.now() + 20_000;
        while (!stdout.includes("is running") && Date.now() < deadline) {
          const chunk = await Promise.race([reader.read(), Bun.sleep(1000).then(() => null)]);
          if (chunk?.done) break;
          if (chunk?.value) stdout += new TextDecoder().decode(chunk.value);
        }
        expect(stdout).toContain("EchoKV cluster of 3 nodes is running");
        expect((await sendCommand(`127.0.0.1:${base + 2}`, ["SET", "through_script", "1"], 10_000)).type).toBe("simple");

        script.kill("SIGINT");
        expect(await Promise.race([script.exited, Bun.sleep(15_000).then(() => "still running")])).toBe(0);
        for (const port of [base, base + 1, base + 2]) expect(portIsFree(port)).toBe(true);
      } finally {
        // The script stops its nodes on SIGTERM; SIGKILL would leave them running.
        if (script.exitCode === null) {
          script.kill("SIGTERM");
          await Promise.race([script.exited, Bun.sleep(10_000)]);
        }
        rmSync(data, { recursive: true, force: true });
      }
    },
    40_000,
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
