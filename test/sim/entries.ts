// Copies of log entries and messages, as a real network or disk would make.
// Nodes never share entry objects, and the in-memory log returns a new copy
// of an entry on every read, so the invariant checker compares entries by
// content: kind, data and members. Client writes carry unique values, and a
// leader appends one entry per index in its term, so two entries at one
// (index, term) with the same content are the same append.

import type { Entry, Message } from "../../src/raft/types.ts";

/** Returns a string that identifies the entry's content. */
export function originOf(entry: Entry): string {
  // One character per byte: simulated entries are a few dozen bytes, and
  // this runs after every event.
  let origin = entry.kind === "command" ? "c" : entry.kind;
  const data = entry.data;
  for (let i = 0; i < data.length; i++) origin += String.fromCharCode(data[i]);
  return entry.members ? `${origin}:${JSON.stringify(entry.members)}` : origin;
}

export function cloneEntry(entry: Entry): Entry {
  const copy: Entry = { index: entry.index, term: entry.term, kind: entry.kind, data: entry.data.slice() };
  if (entry.members) copy.members = entry.members.map((member) => ({ ...member }));
  return copy;
}

export function cloneMessage(message: Message): Message {
  switch (message.type) {
    case "append":
      return { ...message, entries: message.entries.map(cloneEntry) };
    case "snapshot":
      return { ...message, snapshot: { ...message.snapshot, meta: { ...message.snapshot.meta } } };
    case "appendResponse":
    case "vote":
    case "voteResponse":
    case "timeoutNow":
    case "heartbeat":
    case "heartbeatResponse":
      return { ...message };
    default: {
      const unreachable: never = message;
      throw new Error(`unknown message ${JSON.stringify(unreachable)}`);
    }
  }
}
