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
// crash leaves either the old set of files or the new one. Readers keep the
// last record of a key that appears twice.

import { closeSync, fstatSync, fsync, fsyncSync, openSync, readSync, renameSync, rmSync, writeSync } from "node:fs";
import { crc32 } from "node:zlib";
import type { Member } from "../raft/types.ts";
import { KvStore } from "./store.ts";

const MAGIC = Buffer.from("EKVSNAP1");
const END_MARKER = 0xffffffff;
const FORMAT_VERSION = 1;
/** Bytes of records encoded between two yields to the event loop while writing. */
const WRITE_BATCH_BYTES = 256 * 1024;
/** Bytes read from a snapshot file at a time while loading. */
const READ_CHUNK_BYTES = 4 << 20;

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
      const batch = cursor.next(WRITE_BATCH_BYTES);
      if (batch === null) break;
      write(batch.bytes);
      records += batch.records;
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
    // On a thread of the pool: flushing a large file can take long enough
    // to stall every client if the event loop waited for it.
    await new Promise<void>((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  } finally {
    cursor.close();
    closeSync(fd);
  }
  renameSync(tmp, path);
  fsyncDirectory(path);
  return { bytes, records, checksum: checksum >>> 0 };
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

/**
 * Reads a file front to back in large chunks, feeding every byte it hands
 * out, up to a limit, to a running CRC-32. Each refill reads into a new
 * buffer, so views handed out earlier stay valid.
 */
class ChunkReader {
  readonly #fd: number;
  readonly #path: string;
  readonly #limit: number;
  #position = 0;
  #buffer = Buffer.alloc(0);
  #start = 0;
  checksum = 0;

  constructor(fd: number, path: string, limit: number) {
    this.#fd = fd;
    this.#path = path;
    this.#limit = limit;
  }

  /** Bytes handed out so far. */
  get offset(): number {
    return this.#position - (this.#buffer.byteLength - this.#start);
  }

  /** Returns a view of the next `length` bytes, or null when the limit comes first. */
  take(length: number): Buffer | null {
    if (this.#buffer.byteLength - this.#start < length && !this.#fill(length)) return null;
    const out = this.#buffer.subarray(this.#start, this.#start + length);
    this.#start += length;
    return out;
  }

  #fill(length: number): boolean {
    const pending = this.#buffer.byteLength - this.#start;
    if (this.#position + (length - pending) > this.#limit) return false;
    const want = Math.min(this.#limit - this.#position, Math.max(READ_CHUNK_BYTES, length - pending));
    const next = Buffer.allocUnsafe(pending + want);
    this.#buffer.copy(next, 0, this.#start);
    let filled = 0;
    while (filled < want) {
      const read = readSync(this.#fd, next, pending + filled, want - filled, this.#position + filled);
      if (read === 0) throw new SnapshotCorruptError(`${this.#path} ended ${this.#position + filled} bytes in, short of its size when opened`);
      filled += read;
    }
    this.checksum = crc32(next.subarray(pending), this.checksum);
    this.#position += want;
    this.#buffer = next;
    this.#start = 0;
    return true;
  }
}

/**
 * Loads a snapshot file into a new store, reading it in chunks so the file
 * is never held whole in memory. Throws SnapshotCorruptError naming the
 * problem for any damaged file; the half-built store is then dropped.
 */
export async function loadSnapshotFile(
  path: string,
  onProgress: (bytesRead: number, totalBytes: number) => void = () => {},
): Promise<{ header: SnapshotHeader; store: KvStore; info: SnapshotFileInfo }> {
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    if (size < 12 + 16) {
      // Too short for a header. The error tells whether it starts like a snapshot at all.
      const start = Buffer.alloc(Math.min(size, 8));
      readSync(fd, start, 0, start.byteLength, 0);
      const looksLikeSnapshot = start.byteLength === 8 && start.equals(MAGIC);
      throw new SnapshotCorruptError(`${path} ${looksLikeSnapshot ? "is truncated" : "is not an EchoKV snapshot"} (${size} bytes)`);
    }
    const reader = new ChunkReader(fd, path, size - 4);
    const corrupt = (problem: string) => new SnapshotCorruptError(`${path} ${problem}`);
    const prefix = reader.take(12)!;
    if (!prefix.subarray(0, 8).equals(MAGIC)) throw corrupt("is not an EchoKV snapshot (bad magic)");
    const headerJson = reader.take(prefix.readUInt32BE(8));
    if (headerJson === null) throw corrupt("is truncated in its header");
    const header = parseHeader(headerJson, path);

    const store = new KvStore();
    // The footer's record count sizes the index up front. Every record takes
    // at least 8 bytes, which bounds what a damaged footer can ask for.
    const counted = Buffer.alloc(8);
    if (readSync(fd, counted, 0, 8, size - 12) === 8) {
      const expected = counted.readUInt32BE(0) * 2 ** 32 + counted.readUInt32BE(4);
      store.reserve(Math.min(expected, Math.floor(size / 8)));
    }
    let records = 0;
    for (;;) {
      const keyLength = reader.take(4)?.readUInt32BE(0);
      if (keyLength === undefined) throw corrupt(`ends without an end marker at byte ${reader.offset}`);
      if (keyLength === END_MARKER) break;
      const key = reader.take(keyLength);
      if (key === null) throw corrupt(`has a key that overruns the file at byte ${reader.offset}`);
      const valueLength = reader.take(4)?.readUInt32BE(0);
      if (valueLength === undefined) throw corrupt(`has a record that overruns the file at byte ${reader.offset}`);
      const value = reader.take(valueLength);
      if (value === null) throw corrupt(`has a value that overruns the file at byte ${reader.offset}`);
      store.set(key, value);
      records++;
      if (records % 65_536 === 0) {
        onProgress(reader.offset, size);
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
    const footer = reader.take(8);
    if (footer === null || reader.offset !== size - 4) throw corrupt(`has no end marker where expected`);
    const count = footer.readUInt32BE(0) * 2 ** 32 + footer.readUInt32BE(4);
    const stored = Buffer.alloc(4);
    if (readSync(fd, stored, 0, 4, size - 4) !== 4) throw corrupt("is truncated in its checksum");
    const checksum = reader.checksum >>> 0;
    if (stored.readUInt32BE(0) !== checksum) {
      throw corrupt(`failed its checksum (stored ${stored.readUInt32BE(0)}, computed ${checksum}); it is truncated or altered`);
    }
    if (count !== records) throw corrupt(`contains ${records} records but its footer records ${count}`);
    onProgress(size, size);
    return { header, store, info: { bytes: size, records, checksum } };
  } finally {
    closeSync(fd);
  }
}
