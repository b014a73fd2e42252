// Snapshot files of the key-value map.
//
// Layout (integers big-endian):
//   "EKVSNAP1"                      8-byte magic
//   u32 n, n bytes of JSON          header: SnapshotHeader
//   records                         u32 key length, key, u32 value length, value
//   u32 0xFFFFFFFF                  end marker (no key is that long)
//   u32 record count (high), u32 record count (low)
//   u32 CRC-32 of every byte before it
//
// A file is written under a temporary name, fsynced, then renamed, so a
// crash leaves either the old set of files or the new one. A key may appear
// in two records, with the same value (see SnapshotCursor); readers keep the
// last record of each key.

import { closeSync, fsyncSync, openSync, readSync, renameSync, writeSync } from "node:fs";
import { crc32 } from "node:zlib";
import type { Member } from "../raft/types.ts";
import type { KvStore } from "./store.ts";

const MAGIC = Buffer.from("EKVSNAP1");
const END_MARKER = 0xffffffff;
const FORMAT_VERSION = 1;
/** Records encoded between two yields to the event loop while writing. */
const RECORDS_PER_BATCH = 16_384;

export interface SnapshotHeader {
  version: number;
  lastIndex: number;
  lastTerm: number;
  members: Member[];
  clusterId: string;
}

export interface SnapshotFileInfo {
  bytes: number;
  records: number;
  checksum: number;
}

/** Raised when a snapshot file is truncated, altered or not a snapshot at all. */
export class SnapshotCorruptError extends Error {
  override name = "SnapshotCorruptError";
}

/**
 * Writes the store's content, as of the call, to `path`. Yields to the event
 * loop between batches, so writes keep being served while a large map is
 * written. `onProgress` is called with the records written so far.
 */
export async function writeSnapshotFile(
  path: string,
  header: SnapshotHeader,
  store: KvStore,
  onProgress: (records: number, total: number) => void = () => {},
): Promise<SnapshotFileInfo> {
  const tmp = `${path}.tmp`;
  const total = store.size;
  const cursor = store.openCursor();
  const fd = openSync(tmp, "w", 0o600);
  let checksum = 0;
  let bytes = 0;
  let records = 0;
  const write = (data: Uint8Array) => {
    let offset = 0;
    while (offset < data.byteLength) offset += writeSync(fd, data, offset);
    checksum = crc32(data, checksum);
    bytes += data.byteLength;
  };

  try {
    const headerJson = Buffer.from(JSON.stringify(header));
    const prefix = Buffer.alloc(12);
    MAGIC.copy(prefix, 0);
    prefix.writeUInt32BE(headerJson.byteLength, 8);
    write(prefix);
    write(headerJson);

    for (;;) {
      const batch = cursor.next(RECORDS_PER_BATCH);
      if (batch === null) break;
      write(encodeRecords(batch));
      records += batch.length;
      onProgress(records, total);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }

    const footer = Buffer.alloc(12);
    footer.writeUInt32BE(END_MARKER, 0);
    footer.writeUInt32BE(Math.floor(records / 2 ** 32), 4);
    footer.writeUInt32BE(records >>> 0, 8);
    write(footer);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(checksum >>> 0, 0);
    writeSync(fd, crc);
    bytes += 4;
    fsyncSync(fd);
  } finally {
    cursor.close();
    closeSync(fd);
  }
  renameSync(tmp, path);
  fsyncDirectory(path);
  return { bytes, records, checksum: checksum >>> 0 };
}

function encodeRecords(batch: Array<[string, Uint8Array]>): Buffer {
  let size = 0;
  for (const [key, value] of batch) size += 8 + key.length + value.byteLength;
  const out = Buffer.allocUnsafe(size);
  let offset = 0;
  for (const [key, value] of batch) {
    out.writeUInt32BE(key.length, offset);
    offset += 4;
    offset += out.write(key, offset, "latin1");
    out.writeUInt32BE(value.byteLength, offset);
    offset += 4;
    out.set(value, offset);
    offset += value.byteLength;
  }
  return out;
}

/** Makes a rename in the directory of `path` durable. */
export function fsyncDirectory(path: string): void {
  const dir = path.slice(0, Math.max(0, path.lastIndexOf("/"))) || ".";
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Reads only the header, checking the magic; the records are not verified. */
export function readSnapshotHeader(path: string): SnapshotHeader {
  const fd = openSync(path, "r");
  try {
    const prefix = Buffer.alloc(12);
    if (readSync(fd, prefix, 0, 12, 0) !== 12 || !prefix.subarray(0, 8).equals(MAGIC)) {
      throw new SnapshotCorruptError(`${path} is not an EchoKV snapshot (bad magic)`);
    }
    const length = prefix.readUInt32BE(8);
    if (length > 64 * 1024 * 1024) throw new SnapshotCorruptError(`${path} has an implausible header length ${length}`);
    const json = Buffer.alloc(length);
    if (readSync(fd, json, 0, length, 12) !== length) throw new SnapshotCorruptError(`${path} is truncated in its header`);
    return parseHeader(json, path);
  } finally {
    closeSync(fd);
  }
}

function parseHeader(json: Buffer, path: string): SnapshotHeader {
  let header: SnapshotHeader;
  try {
    header = JSON.parse(json.toString("utf8")) as SnapshotHeader;
  } catch {
    throw new SnapshotCorruptError(`${path} has an unreadable header`);
  }
  if (header.version !== FORMAT_VERSION || !Number.isSafeInteger(header.lastIndex) || !Array.isArray(header.members)) {
    throw new SnapshotCorruptError(`${path} has an invalid header (version ${header.version})`);
  }
  return header;
}

/** Verifies the checksum of a whole snapshot held in memory; returns it or throws SnapshotCorruptError. */
export function verifySnapshotBytes(data: Uint8Array, path: string): number {
  if (data.byteLength < 12 + 16) throw new SnapshotCorruptError(`${path} is truncated (${data.byteLength} bytes)`);
  const body = data.subarray(0, data.byteLength - 4);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const stored = view.getUint32(data.byteLength - 4);
  const actual = crc32(body) >>> 0;
  if (stored !== actual) {
    throw new SnapshotCorruptError(`${path} failed its checksum (stored ${stored}, computed ${actual}); it is truncated or altered`);
  }
  return actual;
}

/**
 * Loads a snapshot file into a new map after verifying its checksum. Throws
 * SnapshotCorruptError naming the problem for any damaged file.
 */
export async function loadSnapshotFile(path: string): Promise<{ header: SnapshotHeader; map: Map<string, Uint8Array>; info: SnapshotFileInfo }> {
  const data = Buffer.from(await Bun.file(path).arrayBuffer());
  const checksum = verifySnapshotBytes(data, path);
  if (!data.subarray(0, 8).equals(MAGIC)) throw new SnapshotCorruptError(`${path} is not an EchoKV snapshot (bad magic)`);
  const headerLength = data.readUInt32BE(8);
  const header = parseHeader(data.subarray(12, 12 + headerLength), path);

  const map = new Map<string, Uint8Array>();
  const end = data.byteLength - 16;
  let offset = 12 + headerLength;
  let records = 0;
  while (offset < end) {
    const keyLength = data.readUInt32BE(offset);
    if (keyLength === END_MARKER || offset + 4 + keyLength + 4 > end) {
      throw new SnapshotCorruptError(`${path} has a record that overruns the file at byte ${offset}`);
    }
    const key = data.toString("latin1", offset + 4, offset + 4 + keyLength);
    offset += 4 + keyLength;
    const valueLength = data.readUInt32BE(offset);
    if (offset + 4 + valueLength > end) throw new SnapshotCorruptError(`${path} has a value that overruns the file at byte ${offset}`);
    // Views into the file buffer: no copy per value, and the buffer is freed once every view is overwritten.
    map.set(key, data.subarray(offset + 4, offset + 4 + valueLength));
    offset += 4 + valueLength;
    records++;
  }
  if (offset !== end || data.readUInt32BE(end) !== END_MARKER) {
    throw new SnapshotCorruptError(`${path} has no end marker where expected`);
  }
  const count = data.readUInt32BE(end + 4) * 2 ** 32 + data.readUInt32BE(end + 8);
  if (count !== records) throw new SnapshotCorruptError(`${path} contains ${records} records but its footer records ${count}`);
  return { header, map, info: { bytes: data.byteLength, records, checksum } };
}
