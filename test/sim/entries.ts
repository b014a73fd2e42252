// Copies of log entries and messages, as a real network or disk would make,
// with an origin id that survives every copy. Nodes never share entry
// objects, and the invariant checker compares entries by origin: two entries
// are the same entry exactly when one leader created them with one append.

import type { Entry, Message } from "../../src/raft/types.ts";

const origins = new WeakMap<Entry, number>();
let nextOrigin = 1;

/** Returns the origin id of `entry`, assigning a new one to an entry never seen before. */
export function originOf(entry: Entry): number {
  let origin = origins.get(entry);
  if (origin === undefined) {
    origin = nextOrigin++;
    origins.set(entry, origin);
  }
  return origin;
}

export function cloneEntry(entry: Entry): Entry {
  const copy: Entry = { index: entry.index, term: entry.term, kind: entry.kind, data: entry.data };
  if (entry.members) copy.members = entry.members.map((member) => ({ ...member }));
  origins.set(copy, originOf(entry));
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
