// How the executable sets up its own process: the garbage collector
// settings a serving node runs with, and configuration files in the working
// directory that Bun would otherwise load into a compiled program.

import { describe, expect } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SERVE_HEAP_OPTIONS } from "../../src/heap-options.ts";
import { Cluster, clusterTest, installClusterHooks, runEchokv } from "../support/cluster.ts";

installClusterHooks();

/** Reads the environment of a running process from /proc. */
function environmentOf(pid: number): Map<string, string> {
  const variables = new Map<string, string>();
  for (const entry of readFileSync(`/proc/${pid}/environ`, "utf8").split("\0")) {
    const equals = entry.indexOf("=");
    if (equals > 0) variables.set(entry.slice(0, equals), entry.slice(equals + 1));
  }
  return variables;
}

describe("process setup", () => {
  clusterTest(
    "serve sets the heap settings in place",
    async () => {
      const cluster = new Cluster({ name: "heap-options" });
      const [node] = await cluster.startCluster(1);
      // The harness spawned this PID, and the node replaced its image in place.
      const environment = environmentOf(node!.pid!);
      for (const [name, value] of Object.entries(SERVE_HEAP_OPTIONS)) expect(environment.get(name)).toBe(value);
      expect(readFileSync(`/proc/${node!.pid}/cmdline`, "utf8").split("\0")).toContain("--node-id");
    },
    30_000,
  );

  clusterTest(
    "operator heap setting is kept",
    async () => {
      const cluster = new Cluster({ name: "heap-options-own" });
      const node = cluster.addNode({ joinAddr: null, env: { BUN_JSC_heapGrowthMaxIncrease: "0.5" } });
      await cluster.start(node);
      const environment = environmentOf(node.pid!);
      expect(environment.get("BUN_JSC_heapGrowthMaxIncrease")).toBe("0.5");
      expect(environment.has("BUN_JSC_smallHeapGrowthFactor")).toBe(false);
    },
    30_000,
  );

  clusterTest(
    "working directory config files ignored",
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "echokv-cwd-"));
      try {
        writeFileSync(join(dir, "bunfig.toml"), 'preload = ["./preload.ts"]\n');
        writeFileSync(join(dir, "preload.ts"), `require("node:fs").writeFileSync(${JSON.stringify(join(dir, "preloaded"))}, "yes");\n`);
        // Were it loaded, help written to a pipe would be coloured.
        writeFileSync(join(dir, ".env"), "FORCE_COLOR=1\n");
        const result = await runEchokv(["--help"], { cwd: dir, timeoutMs: 10_000 });
        expect(result.exitCode).toBe(0);
        expect(result.stdout).toContain("USAGE");
        expect(result.stdout).not.toContain("\x1b[");
        expect(existsSync(join(dir, "preloaded"))).toBe(false);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    30_000,
  );

  clusterTest(
    "version names the build's commit",
    async () => {
      const git = Bun.spawnSync(["git", "rev-parse", "--short=12", "HEAD"], { cwd: import.meta.dir });
      const head = git.stdout.toString().trim();
      const result = await runEchokv(["--version"], { timeoutMs: 10_000 });
      expect(result.exitCode).toBe(0);
      // The binary comes from this checkout, unless it was built before the newest commit.
      expect(result.stdout.trim()).toMatch(/^\d+\.\d+\.\d+ \(commit [0-9a-f]{12}(-dirty)?\)$/);
      if (git.exitCode === 0) expect(result.stdout).toContain(`(commit ${head}`);

      const cluster = new Cluster({ name: "version" });
      const [node] = await cluster.startCluster(1);
      const commit = /\(commit (\S+)\)/.exec(result.stdout)![1];
      expect((await cluster.info(node!)).get("echokv_build")).toBe(commit);
    },
    30_000,
  );
});
