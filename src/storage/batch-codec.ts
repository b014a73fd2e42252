// Binary form of a list of storage writes, passed from the node to its log
// writer thread as one transferable buffer, so that a batch costs one copy of
// its entries instead of a structured clone of every entry object.
//
// Layout, little-endian:
//   u32 write count, then for each write:
//     u8 flags (1: hard state, 2: truncation)
//     [f64 term, f64 commit index, string voted-for]  when flag 1
//     [f64 truncate-from index]                        when flag 2
//     u32 entry count, then for each entry:
//       f64 index, f64 term, u8 kind code, string members JSON, bytes data
//   where a string or bytes field is a u32 length then the bytes, and a
//   string length of 0xffffffff stands for null.

import type { Entry, HardState, Member } from "../raft/types.ts";
import { KIND_CODES, KINDS_BY_CODE } from "../raft/types.ts";
import type { StorageWrite } from "./sqlite.ts";

const HAS_HARD_STATE = 1;
const HAS_TRUNCATION = 2;
const NULL_LENGTH = 0xffff_ffff;

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

export function encodeWrites(writes: readonly StorageWrite[]): ArrayBuffer {
  // Strings are encoded first so the buffer is allocated once at its exact size.
  const strings: Array<Uint8Array | null> = [];
  let size = 4;
  for (const write of writes) {
    size += 1 + 4;
    if (write.hardState) {
      const votedFor = write.hardState.votedFor === null ? null : utf8.encode(write.hardState.votedFor);
      strings.push(votedFor);
      size += 16 + 4 + (votedFor?.byteLength ?? 0);
    }
    if (write.truncateFrom !== null) size += 8;
    for (const entry of write.entries) {
      const members = entry.members ? utf8.encode(JSON.stringify(entry.members)) : null;
      strings.push(members);
      size += 8 + 8 + 1 + 4 + (members?.byteLength ?? 0) + 4 + entry.data.byteLength;
    }
  }

  const buffer = new ArrayBuffer(size);
  const bytes = new Uint8Array(buffer);
  const view = new DataView(buffer);
  let offset = 0;
  let nextString = 0;
  const putString = (value: Uint8Array | null): void => {
    view.setUint32(offset, value === null ? NULL_LENGTH : value.byteLength, true);
    offset += 4;
    if (value !== null) {
      bytes.set(value, offset);
      offset += value.byteLength;
    }
  };

  view.setUint32(offset, writes.length, true);
  offset += 4;
  for (const write of writes) {
    view.setUint8(offset, (write.hardState ? HAS_HARD_STATE : 0) | (write.truncateFrom !== null ? HAS_TRUNCATION : 0));
    offset += 1;
    if (write.hardState) {
      view.setFloat64(offset, write.hardState.term, true);
      view.setFloat64(offset + 8, write.hardState.commitIndex, true);
      offset += 16;
      putString(strings[nextString++]);
    }
    if (write.truncateFrom !== null) {
      view.setFloat64(offset, write.truncateFrom, true);
      offset += 8;
    }
    view.setUint32(offset, write.entries.length, true);
    offset += 4;
    for (const entry of write.entries) {
      view.setFloat64(offset, entry.index, true);
      view.setFloat64(offset + 8, entry.term, true);
      view.setUint8(offset + 16, KIND_CODES[entry.kind]);
      offset += 17;
      putString(strings[nextString++]);
      putString(entry.data);
    }
  }
  return buffer;
}

/** Decodes what encodeWrites produced. Entry data are views into `buffer`, not copies. */
export function decodeWrites(buffer: ArrayBuffer): StorageWrite[] {
  const bytes = new Uint8Array(buffer);
  const view = new DataView(buffer);
  let offset = 0;
  const getBytes = (): Uint8Array | null => {
    const length = view.getUint32(offset, true);
    offset += 4;
    if (length === NULL_LENGTH) return null;
    const value = bytes.subarray(offset, offset + length);
    offset += length;
    return value;
  };
  const getString = (): string | null => {
    const value = getBytes();
    return value === null ? null : utf8Decoder.decode(value);
  };

  const writes: StorageWrite[] = [];
  const count = view.getUint32(offset, true);
  offset += 4;
  for (let w = 0; w < count; w++) {
    const flags = view.getUint8(offset);
    offset += 1;
    let hardState: HardState | null = null;
    if (flags & HAS_HARD_STATE) {
      const term = view.getFloat64(offset, true);
      const commitIndex = view.getFloat64(offset + 8, true);
      offset += 16;
      hardState = { term, commitIndex, votedFor: getString() };
    }
    let truncateFrom: number | null = null;
    if (flags & HAS_TRUNCATION) {
      truncateFrom = view.getFloat64(offset, true);
      offset += 8;
    }
    const entryCount = view.getUint32(offset, true);
    offset += 4;
    const entries: Entry[] = [];
    for (let e = 0; e < entryCount; e++) {
      const index = view.getFloat64(offset, true);
      const term = view.getFloat64(offset + 8, true);
      const kind = KINDS_BY_CODE[view.getUint8(offset + 16)];
      offset += 17;
      if (kind === undefined) throw new Error(`log entry ${index} has an unknown kind code`);
      const members = getString();
      const entry: Entry = { index, term, kind, data: getBytes() ?? new Uint8Array(0) };
      if (members !== null) entry.members = JSON.parse(members) as Member[];
      entries.push(entry);
    }
    writes.push({ hardState, truncateFrom, entries });
  }
  if (offset !== buffer.byteLength) throw new Error(`write batch has ${buffer.byteLength - offset} bytes after its last write`);
  return writes;
}
