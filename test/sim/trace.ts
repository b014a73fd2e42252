// Formatting and hashing of simulator events, for traces and failure reports.

import type { Message } from "../../src/raft/types.ts";
import type { Operation } from "../support/linearizability.ts";
import type { EventLabel } from "./event-queue.ts";

export function hashString(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}

const MESSAGE_CODES: Record<Message["type"], number> = {
  append: 1,
  appendResponse: 2,
  vote: 3,
  voteResponse: 4,
  snapshot: 5,
  timeoutNow: 6,
  heartbeat: 7,
  heartbeatResponse: 8,
};

export function messageCode(message: Message): number {
  let code = MESSAGE_CODES[message.type];
  if (message.type === "append") code += 16 * (message.entries.length + 1) + 4096 * message.prevIndex;
  if (message.type === "appendResponse") code += 16 * message.matchIndex + (message.success ? 8 : 0);
  if (message.type === "voteResponse") code += message.granted ? 16 : 0;
  return code;
}

/** One-line summary of a message for traces. */
export function describeMessage(message: Message): string {
  const head = `${message.type} ${message.from}->${message.to} t${message.term}`;
  switch (message.type) {
    case "append":
      return `${head} prev=${message.prevIndex}/t${message.prevTerm} entries=${message.entries.map((e) => `${e.index}/t${e.term}${e.kind === "command" ? "" : `:${e.kind}`}`).join(",")} commit=${message.commitIndex}`;
    case "appendResponse":
      return `${head} ${message.success ? "ok" : "reject"} match=${message.matchIndex} last=${message.lastIndex}`;
    case "vote":
      return `${head}${message.preVote ? " pre" : ""}${message.transfer ? " transfer" : ""} last=${message.lastIndex}/t${message.lastTerm}`;
    case "voteResponse":
      return `${head}${message.preVote ? " pre" : ""} ${message.granted ? "granted" : "rejected"}`;
    case "heartbeat":
      return `${head} commit=${message.commitIndex} round=${message.readRound}`;
    case "heartbeatResponse":
      return `${head} round=${message.readRound}`;
    case "snapshot":
      return `${head} last=${message.snapshot.meta.lastIndex}`;
    case "timeoutNow":
      return head;
    default: {
      const unreachable: never = message;
      return JSON.stringify(unreachable);
    }
  }
}

export function formatEvent(step: number, time: number, label: EventLabel): string {
  const detail = label.detail ? ` ${label.detail()}` : "";
  return `#${step} @${time}ms ${label.kind}${label.node ? ` ${label.node}` : ""}${detail}`;
}

export function formatOperation(operation: Operation): string {
  const op = operation.op;
  const request = op.kind === "set" ? `SET ${op.key}=${op.value}` : `${op.kind.toUpperCase()} ${op.key}`;
  const output = operation.output === undefined ? "" : ` -> ${JSON.stringify(operation.output)}`;
  return `  client ${operation.client}: ${request} [${operation.call}, ${operation.ret ?? "unknown"}]${output}`;
}
