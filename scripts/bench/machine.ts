// Facts about the machine and software behind a benchmark run: CPU, kernel,
// memory, fsync speed of the disk under the data directories, and versions.

import { Database } from "bun:sqlite";
import { readFileSync, rmSync, statSync } from "node:fs";
import { availableParallelism, release, totalmem } from "node:os";
import { join } from "node:path";
import { runCommand } from "./processes.ts";

export interface MachineFacts {
  cpuCount: number;
  cpuModel: string;
  kernel: string;
  memoryGiB: number;
  versions: Record<string, string>;
}

/** fsync speed of one disk at one moment. */
export interface DiskSpeed {
  /** Writes per second of `dd bs=4k oflag=dsync`, each a 4 KiB write waited on until it is on disk. */
  ddDsyncWritesPerSecond: number;
  /** Commits per second of one-row SQLite transactions in WAL mode with synchronous=FULL, as EchoKV's log uses. */
  sqliteCommitsPerSecond: number;
}

/** Returns the first line of a command's output, or why the command failed. */
function firstLine(command: string[]): string {
  try {
    return runCommand(command).trim().split("\n")[0];
  } catch (err) {
    return `unknown (${(err as Error).message})`;
  }
}

/** Times `count` 4 KiB writes with O_DSYNC in `directory` with dd. */
function measureDdDsync(directory: string, count: number): number {
  const file = join(directory, "dd-dsync.bin");
  const started = performance.now();
  runCommand(["dd", "if=/dev/zero", `of=${file}`, "bs=4k", `count=${count}`, "oflag=dsync", "status=none"]);
  const seconds = (performance.now() - started) / 1000;
  rmSync(file, { force: true });
  return count / seconds;
}

/** Times `count` one-row SQLite transactions in WAL mode with synchronous=FULL in `directory`. */
function measureSqliteCommits(directory: string, count: number): number {
  const file = join(directory, "fsync-check.sqlite");
  const db = new Database(file);
  try {
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = FULL");
    db.exec("CREATE TABLE entries (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)");
    const insert = db.prepare("INSERT INTO entries (payload) VALUES (?)");
    const payload = new Uint8Array(256);
    const started = performance.now();
    for (let i = 0; i < count; i++) insert.run(payload);
    return count / ((performance.now() - started) / 1000);
  } finally {
    db.close();
    for (const suffix of ["", "-wal", "-shm"]) rmSync(file + suffix, { force: true });
  }
}

/** Measures fsync speed with 500 writes each in `directory`, which should be on the disk the servers use. */
export function measureDiskSpeed(directory: string): DiskSpeed {
  return {
    ddDsyncWritesPerSecond: measureDdDsync(directory, 500),
    sqliteCommitsPerSecond: measureSqliteCommits(directory, 500),
  };
}

/**
 * Collects CPU, memory, kernel and versions. `builtAt` is the modification
 * time of the EchoKV binary that `echokvBinary` copies.
 */
export function collectMachineFacts(echokvBinary: string, builtAt: Date): MachineFacts {
  const cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "unknown";
  return {
    cpuCount: availableParallelism(),
    cpuModel,
    kernel: release(),
    memoryGiB: totalmem() / 2 ** 30,
    versions: {
      bun: Bun.version,
      // The version names the commit, with "-dirty" for a build from uncommitted changes.
      echokv: `${firstLine([echokvBinary, "--version"])}, dist/echokv built ${builtAt.toISOString().slice(0, 16).replace("T", " ")} UTC`,
      etcd: firstLine(["etcd", "--version"]),
      redis: firstLine(["redis-server", "--version"]),
    },
  };
}
