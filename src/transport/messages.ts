// Structural validation of decoded peer frames against the Raft `Message`
// union, so that malformed network input never reaches the Raft core.

import type { Entry, EntryKind, HeartbeatRequest, Member, PeerMessage, Snapshot, SnapshotMeta } from "../raft/types.ts";

type MessageType = PeerMessage["type"];

/** Error for a field with the wrong type or value, located by a path such as `entries[2].term`. */
class ShapeError extends Error {
  constructor(path: string, expected: string, actual: unknown) {
    super(
      actual === undefined
        ? `${path} is missing, expected ${expected}`
        : `${path} must be ${expected}, got ${describe(actual)}`,
    );
  }
}

type Fields = Record<string, unknown>;

function describe(value: unknown): string {
  if (value === null) return "null";
  if (value === undefined) return "undefined";
  if (Array.isArray(value)) return "an array";
  if (value instanceof Uint8Array) return "bytes";
  if (typeof value === "string") return value.length <= 40 ? JSON.stringify(value) : `a string of ${value.length} characters`;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return typeof value === "object" ? "a map" : typeof value;
}

function isFields(value: unknown): value is Fields {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

/** Reads an own property only, so that nothing inherited is mistaken for a field. */
function field(object: Fields, name: string): unknown {
  return Object.hasOwn(object, name) ? object[name] : undefined;
}

function join(path: string, name: string): string {
  return path === "" ? name : `${path}.${name}`;
}

function readFields(value: unknown, path: string): Fields {
  if (!isFields(value)) throw new ShapeError(path, "a map", value);
  return value;
}

function readIndex(object: Fields, name: string, path: string): number {
  const value = field(object, name);
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new ShapeError(join(path, name), "a non-negative integer", value);
  }
  return value;
}

function readBoolean(object: Fields, name: string, path: string): boolean {
  const value = field(object, name);
  if (typeof value !== "boolean") throw new ShapeError(join(path, name), "a boolean", value);
  return value;
}

function readString(object: Fields, name: string, path: string): string {
  const value = field(object, name);
  if (typeof value !== "string") throw new ShapeError(join(path, name), "a string", value);
  return value;
}

function readNodeId(object: Fields, name: string, path: string): string {
  const value = field(object, name);
  if (typeof value !== "string" || value === "") {
    throw new ShapeError(join(path, name), "a non-empty node id", value);
  }
  return value;
}

function readBytes(object: Fields, name: string, path: string): Uint8Array {
  const value = field(object, name);
  if (!(value instanceof Uint8Array)) throw new ShapeError(join(path, name), "bytes", value);
  return value;
}

function readArray(object: Fields, name: string, path: string): unknown[] {
  const value = field(object, name);
  if (!Array.isArray(value)) throw new ShapeError(join(path, name), "an array", value);
  return value;
}

function readMember(value: unknown, path: string): Member {
  const object = readFields(value, path);
  const member: Member = {
    id: readNodeId(object, "id", path),
    raftAddr: readString(object, "raftAddr", path),
    clientAddr: readString(object, "clientAddr", path),
    voter: readBoolean(object, "voter", path),
  };
  if (field(object, "incarnation") !== undefined) member.incarnation = readString(object, "incarnation", path);
  return member;
}

function readMembers(object: Fields, name: string, path: string): Member[] {
  const membersPath = join(path, name);
  return readArray(object, name, path).map((member, i) => readMember(member, `${membersPath}[${i}]`));
}

const ENTRY_KINDS: readonly EntryKind[] = ["command", "config", "noop"];

function readEntry(value: unknown, path: string): Entry {
  const object = readFields(value, path);
  const kind = field(object, "kind");
  if (!ENTRY_KINDS.includes(kind as EntryKind)) {
    throw new ShapeError(join(path, "kind"), `one of ${ENTRY_KINDS.join(", ")}`, kind);
  }

  const entry: Entry = {
    index: readIndex(object, "index", path),
    term: readIndex(object, "term", path),
    kind: kind as EntryKind,
    data: readBytes(object, "data", path),
  };
  if (field(object, "members") !== undefined) entry.members = readMembers(object, "members", path);
  return entry;
}

function readSnapshotMeta(object: Fields, name: string, path: string): SnapshotMeta {
  const meta = readFields(field(object, name), join(path, name));
  return {
    lastIndex: readIndex(meta, "lastIndex", join(path, name)),
    lastTerm: readIndex(meta, "lastTerm", join(path, name)),
    members: readMembers(meta, "members", join(path, name)),
  };
}

function readSnapshot(object: Fields, name: string): Snapshot {
  const snapshot = readFields(field(object, name), name);
  return { meta: readSnapshotMeta(snapshot, "meta", name), data: readBytes(snapshot, "data", name) };
}

/**
 * Builds a fresh message from the fields of `type`, type-checking each one.
 * Unknown fields are dropped.
 */
function readMessage(object: Fields, type: MessageType): PeerMessage {
  const envelope = {
    from: readNodeId(object, "from", ""),
    to: readNodeId(object, "to", ""),
    term: readIndex(object, "term", ""),
  };

  switch (type) {
    case "append":
      return {
        ...envelope,
        type,
        prevIndex: readIndex(object, "prevIndex", ""),
        prevTerm: readIndex(object, "prevTerm", ""),
        entries: readArray(object, "entries", "").map((entry, i) => readEntry(entry, `entries[${i}]`)),
        commitIndex: readIndex(object, "commitIndex", ""),
      };
    case "appendResponse":
      return {
        ...envelope,
        type,
        success: readBoolean(object, "success", ""),
        matchIndex: readIndex(object, "matchIndex", ""),
        lastIndex: readIndex(object, "lastIndex", ""),
      };
    case "vote":
      return {
        ...envelope,
        type,
        lastIndex: readIndex(object, "lastIndex", ""),
        lastTerm: readIndex(object, "lastTerm", ""),
        preVote: readBoolean(object, "preVote", ""),
        transfer: readBoolean(object, "transfer", ""),
      };
    case "voteResponse":
      return {
        ...envelope,
        type,
        granted: readBoolean(object, "granted", ""),
        preVote: readBoolean(object, "preVote", ""),
      };
    case "snapshot":
      return { ...envelope, type, snapshot: readSnapshot(object, "snapshot") };
    case "timeoutNow":
      return { ...envelope, type };
    case "heartbeat": {
      const heartbeat: HeartbeatRequest = {
        ...envelope,
        type,
        commitIndex: readIndex(object, "commitIndex", ""),
        readRound: readIndex(object, "readRound", ""),
      };
      if (field(object, "quiet") !== undefined) heartbeat.quiet = readBoolean(object, "quiet", "");
      return heartbeat;
    }
    case "heartbeatResponse":
      return { ...envelope, type, readRound: readIndex(object, "readRound", "") };
    case "snapshotChunk":
      return {
        ...envelope,
        type,
        transfer: readIndex(object, "transfer", ""),
        meta: readSnapshotMeta(object, "meta", ""),
        offset: readIndex(object, "offset", ""),
        total: readIndex(object, "total", ""),
        data: readBytes(object, "data", ""),
      };
    case "snapshotChunkAck":
      return {
        ...envelope,
        type,
        transfer: readIndex(object, "transfer", ""),
        received: readIndex(object, "received", ""),
        ok: readBoolean(object, "ok", ""),
        reason: readString(object, "reason", ""),
      };
    case "snapshotRequest":
      return { ...envelope, type, minIndex: readIndex(object, "minIndex", "") };
    default: {
      const unreachable: never = type;
      throw new Error(`unhandled message type ${String(unreachable)}`);
    }
  }
}

const MESSAGE_TYPES: ReadonlySet<string> = new Set<MessageType>([
  "append",
  "appendResponse",
  "vote",
  "voteResponse",
  "snapshot",
  "timeoutNow",
  "heartbeat",
  "heartbeatResponse",
  "snapshotChunk",
  "snapshotChunkAck",
  "snapshotRequest",
]);

/**
 * Checks that a decoded frame is a well-formed Raft message. Returns a new
 * message that holds only the known fields, or else an error string naming
 * the message type and the first invalid field.
 */
export function validateMessage(value: unknown): PeerMessage | string {
  if (!isFields(value)) return `invalid message: expected a map, got ${describe(value)}`;

  const type = field(value, "type");
  if (typeof type !== "string" || !MESSAGE_TYPES.has(type)) {
    return `invalid message: unknown type ${describe(type)}`;
  }

  try {
    return readMessage(value, type as MessageType);
  } catch (err) {
    if (err instanceof ShapeError) return `invalid ${type} message: ${err.message}`;
    throw err;
  }
}
