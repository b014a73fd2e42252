// Child processes of the benchmark: free ports, spawning with a log file,
// CPU time and peak memory from /proc, stopping by PID, and installing a
// missing server from Debian's packages.

import { closeSync, openSync, readFileSync } from "node:fs";
import type { Subprocess } from "bun";

/** Clock ticks per second of the utime and stime fields in /proc/<pid>/stat (`getconf CLK_TCK`). */
const CLOCK_TICKS_PER_SECOND = Number(Bun.spawnSync(["getconf", "CLK_TCK"]).stdout.toString().trim()) || 100;

/** A server process started by the benchmark, with its stdout and stderr going to `logFile`. */
export interface ServerProcess {
  /** Name used in tables and messages, such as `echokv node-2`. */
  name: string;
  pid: number;
  logFile: string;
  child: Subprocess;
}

/** Returns `count` distinct TCP ports on 127.0.0.1 that were free a moment ago. */
export function findFreePorts(count: number): number[] {
  // Holding every listener until all are chosen keeps the ports distinct. Another
  // program may still take one between this call and the server's bind.
  const listeners = Array.from({ length: count }, () =>
    Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } }),
  );
  const ports = listeners.map((listener) => listener.port);
  for (const listener of listeners) listener.stop(true);
  return ports;
}

/** Starts `command` with stdout and stderr appended to `logFile`. */
export function startServer(name: string, command: string[], logFile: string): ServerProcess {
  const fd = openSync(logFile, "a");
  try {
    const child = Bun.spawn(command, { stdin: "ignore", stdout: fd, stderr: fd });
    return { name, pid: child.pid, logFile, child };
  } finally {
    closeSync(fd);
  }
}

/** Returns the user plus system CPU time of a process in seconds, from /proc/<pid>/stat. */
export function readCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name in field 2 may contain spaces, so count fields from its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const userTicks = Number(fields[11]);
  const systemTicks = Number(fields[12]);
  return (userTicks + systemTicks) / CLOCK_TICKS_PER_SECOND;
}

/** Returns the peak resident set size of a process in bytes (VmHWM in /proc/<pid>/status). */
export function readPeakRssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(status);
  if (!match) throw new Error(`VmHWM is missing from /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

/** Returns the 1-, 5- and 15-minute load averages from /proc/loadavg. */
export function readLoadAverage(): [number, number, number] {
  const [one, five, fifteen] = readFileSync("/proc/loadavg", "utf8").split(" ").map(Number);
  return [one, five, fifteen];
}

/**
 * Stops a process by its PID: SIGTERM, then SIGKILL if it is still running after
 * `graceMs`. Returns how it ended, for the log summary.
 */
export async function stopServer(server: ServerProcess, graceMs: number): Promise<string> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) {
    return `had already exited (status ${server.child.exitCode ?? server.child.signalCode})`;
  }
  process.kill(server.pid, "SIGTERM");
  const exited = await Promise.race([server.child.exited.then(() => true), Bun.sleep(graceMs).then(() => false)]);
  if (exited) return "stopped on SIGTERM";
  process.kill(server.pid, "SIGKILL");
  await server.child.exited;
  return `killed with SIGKILL after ${graceMs} ms`;
}

/** Runs a command to completion and returns its stdout. Throws with its stderr if it fails. */
export function runCommand(command: string[], env?: Record<string, string>): string {
  const result = Bun.spawnSync(command, { stdin: "ignore", env: { ...process.env, ...env } });
  if (result.exitCode !== 0) {
    throw new Error(`'${command.join(" ")}' failed with status ${result.exitCode}: ${result.stderr.toString().trim()}`);
  }
  return result.stdout.toString();
}

/**
 * Installs Debian package `packageName` with apt-get when `executable` is not on
 * PATH. Runs `apt-get update` and retries once if the first install fails,
 * because a fresh machine may have no package lists yet.
 */
export function ensureDebianPackage(executable: string, packageName: string): void {
  if (Bun.which(executable)) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`${executable} is missing and installing ${packageName} needs root: run 'apt-get install -y ${packageName}'`);
  }
  // NOTE: where the machine's policy-rc.d allows it, installing the package also
  // starts its system service on the default port. The benchmark neither uses nor stops it.
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  console.error(`${executable} is missing; installing Debian package ${packageName}`);
  try {
    runCommand(["apt-get", "install", "-y", packageName], env);
  } catch (firstError) {
    console.error(`apt-get install failed (${(firstError as Error).message}); running apt-get update and retrying`);
    runCommand(["apt-get", "update"], env);
    runCommand(["apt-get", "install", "-y", packageName], env);
  }
  if (!Bun.which(executable)) throw new Error(`installed ${packageName}, but ${executable} is still not on PATH`);
}
