// The data directory's LOCK file: a running process's lock stops a second
// node, and the lock of a process that has exited is taken over, even before
// its parent has reaped it.

import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteStorage, StorageError } from "../../src/storage/sqlite.ts";

const dirs: string[] = [];
const children: Array<{ kill(): void }> = [];

afterEach(() => {
  for (const child of children.splice(0)) child.kill();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function lockedDir(pid: number): string {
  const dir = mkdtempSync(join(tmpdir(), "echokv-lock-"));
  dirs.push(dir);
  writeFileSync(join(dir, "LOCK"), `${pid}\n`);
  return dir;
}

function processState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    return stat.charAt(stat.lastIndexOf(")") + 2);
  } catch {
    return null;
  }
}

describe("data directory lock", () => {
  test("of a running process rejects the open", () => {
    const sleeper = Bun.spawn(["sleep", "30"]);
    children.push(sleeper);
    const dir = lockedDir(sleeper.pid);
    expect(() => SqliteStorage.open(dir, "node-1")).toThrow(StorageError);
    expect(() => SqliteStorage.open(dir, "node-1")).toThrow(`is in use by process ${sleeper.pid}`);
  });

  test.if(existsSync("/proc/self/stat"))("of an unreaped process is taken over", async () => {
    // The shell starts a short sleep, then becomes a long sleep that never
    // reaps it, so the short one stays a zombie, as a killed node does until
    // its parent waits for it.
    const parent = Bun.spawn(["sh", "-c", "sleep 0.05 & echo $!; exec sleep 30"], { stdout: "pipe" });
    children.push(parent);
    const reader = parent.stdout.getReader();
    const { value } = await reader.read();
    reader.releaseLock();
    const zombie = Number.parseInt(new TextDecoder().decode(value), 10);
    expect(Number.isInteger(zombie)).toBe(true);
    const deadline = Date.now() + 5_000;
    while (processState(zombie) !== "Z" && Date.now() < deadline) await Bun.sleep(10);
    expect(processState(zombie)).toBe("Z");

    const dir = lockedDir(zombie);
    const storage = SqliteStorage.open(dir, "node-1");
    expect(readFileSync(join(dir, "LOCK"), "utf8")).toBe(`${process.pid}\n`);
    storage.close();
  });
});
