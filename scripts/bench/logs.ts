// Summaries of what the servers logged while the measurements ran: warnings,
// errors and Raft role changes, grouped by message with counts.

import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import type { ServerProcess } from "./processes.ts";

export interface LogGroup {
  level: "error" | "warn" | "info";
  message: string;
  count: number;
}

/** Lines that report a Raft role or leader change, logged at info level by all three systems. */
const ROLE_CHANGE = /became (leader|candidate|pre-candidate|follower)|elected leader|leader changed|lost leader/;

/** Returns the size of `file` in bytes, to mark where the measured part of its log starts. */
export function logSize(file: string): number {
  const fd = openSync(file, "r");
  try {
    return fstatSync(fd).size;
  } finally {
    closeSync(fd);
  }
}

function readFrom(file: string, offset: number): string {
  const fd = openSync(file, "r");
  try {
    const size = fstatSync(fd).size;
    const buffer = Buffer.alloc(Math.max(0, size - offset));
    readSync(fd, buffer, 0, buffer.length, offset);
    return buffer.toString("utf8");
  } finally {
    closeSync(fd);
  }
}

/** Returns the level and message of one log line of EchoKV, etcd (capnslog or zap) or Redis, or null. */
function parseLine(line: string): { level: LogGroup["level"] | "other"; message: string } | null {
  // EchoKV: 2026-12-04T19:41:41.123Z WARN  node=node-1 term=3 msg="slow log write: a slow disk, or the process was paused" ms=612
  const echokv = /^\S+ (DEBUG|INFO|WARN|ERROR)\s+.*?msg="([^"]*)"/.exec(line);
  if (echokv) return { level: levelOf(echokv[1]), message: echokv[2] };
  // etcd with capnslog: 2026-12-04 20:30:00.123456 W | etcdserver: read-only range request ... took too long
  const capnslog = /^\S+ \S+ ([DINWEC]) \| (.*)$/.exec(line);
  if (capnslog) return { level: levelOf(capnslog[1]), message: capnslog[2] };
  // etcd with zap: {"level":"warn","ts":...,"msg":"..."}
  const zap = /"level":"(\w+)".*?"msg":"((?:[^"\\]|\\.)*)"/.exec(line);
  if (zap) return { level: levelOf(zap[1]), message: zap[2] };
  // Redis: 1234:M 04 Dec 2026 20:30:00.123 # message ('#' is warning, '*' notice, '-' verbose)
  const redis = /^\d+:[A-Z] .+? ([#*.-]) (.*)$/.exec(line);
  if (redis) return { level: redis[1] === "#" ? "warn" : "info", message: redis[2] };
  return null;
}

function levelOf(tag: string): LogGroup["level"] | "other" {
  switch (tag.toUpperCase()) {
    case "E":
    case "C":
    case "ERROR":
    case "FATAL":
    case "PANIC":
      return "error";
    case "W":
    case "WARN":
      return "warn";
    case "I":
    case "N":
    case "INFO":
      return "info";
    default:
      return "other";
  }
}

/** Replaces numbers and hexadecimal ids so that repeats of one event group together. */
function normalize(message: string): string {
  const shortened = message.replace(/\b[0-9a-f]{12,}\b/g, "<id>").replace(/\d+(\.\d+)?/g, "<n>");
  return shortened.length > 140 ? `${shortened.slice(0, 140)}...` : shortened;
}

/**
 * Groups the lines `server` logged after byte `offset`: every warning and error,
 * and the info lines that report a role or leader change, plus EchoKV's
 * snapshot lines. Most frequent first within each level.
 */
export function summarizeLog(server: ServerProcess, offset: number): LogGroup[] {
  const groups = new Map<string, LogGroup>();
  for (const line of readFrom(server.logFile, offset).split("\n")) {
    const parsed = parseLine(line);
    if (!parsed || parsed.level === "other") continue;
    if (parsed.level === "info" && !ROLE_CHANGE.test(parsed.message) && !/^snapshot taken$/.test(parsed.message)) continue;
    const message = normalize(parsed.message);
    const key = `${parsed.level} ${message}`;
    const group = groups.get(key) ?? { level: parsed.level, message, count: 0 };
    group.count++;
    groups.set(key, group);
  }
  const order = { error: 0, warn: 1, info: 2 };
  return [...groups.values()].sort((a, b) => order[a.level] - order[b.level] || b.count - a.count);
}
