// How the executable sets up its own process: configuration files in the
// working directory that Bun would otherwise load into a compiled program.

import { describe, expect } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { clusterTest, installClusterHooks, runEchokv } from "../support/cluster.ts";

installClusterHooks();

describe("process setup", () => {
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
});
