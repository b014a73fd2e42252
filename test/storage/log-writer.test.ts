// The log writer thread against real SQLite files. Batches reach the
// database in order, and writes queued while one is in flight share the
// next transaction. drain() blocks until everything is durable, and a
// failure reaches the node instead of being lost. Given the caller's
// connection, a write marked inline that finds the thread idle is made at
// once, until a write is slow.

import { afterEach, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Entry, Member } from "../../src/raft/types.ts";
import { decodeWrites, encodeWrites } from "../../src/storage/batch-codec.ts";
import { SEGMENT_ENTRIES, SegmentedLog } from "../../src/storage/log-segments.ts";
import { INLINE_WRITE_MAX_MS, LogWriter } from "../../src/storage/log-writer.ts";
import { BatchWriter, SqliteStorage, StorageError, type StorageWrite } from "../../src/storage/sqlite.ts";

const dirs: string[] = [];

function newStorage(): SqliteStorage {
  const dir = mkdtempSync(join(tmpdir(), "echokv-log-writer-"));
  dirs.push(dir);
  return SqliteStorage.open(dir, "node-1");
}

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function command(index: number, term: number, size = 16): Entry {
  return { index, term, kind: "command", data: new Uint8Array(size).fill(index % 251) };
}

function entriesWrite(entries: Entry[], truncateFrom: number | null = null): StorageWrite {
  return { hardState: null, truncateFrom, entries };
}

interface Recorder {
  done: number[];
  errors: StorageError[];
  compacted: number[];
}

interface InlineRecorder extends Recorder {
  /** Duration of each write made on the caller's connection. */
  inline: number[];
  /** Duration of each batch the thread finished. */
  threadMs: number[];
}

/** Opens a writer. With `writeInline`, inline writes that find the thread idle are made there. */
function openWriter(
  storage: SqliteStorage,
  writeInline?: (write: StorageWrite) => void,
): { writer: LogWriter; seen: InlineRecorder } {
  const seen: InlineRecorder = { done: [], errors: [], compacted: [], inline: [], threadMs: [] };
  const writer = new LogWriter(storage.path, {
    onDone: (seq, ms) => {
      seen.done.push(seq);
      seen.threadMs.push(ms);
    },
    onCompacted: (index) => seen.compacted.push(index),
    onError: (err) => seen.errors.push(err),
    writeInline,
    onInlineWrite: (ms) => seen.inline.push(ms),
  });
  return { writer, seen };
}

/**
 * Makes the next log write fail. A second connection holding the write lock
 * past the busy timeout would take ten seconds, and a dropped table fails at once.
 */
function dropSegmentList(storage: SqliteStorage): void {
  const other = new Database(storage.path);
  other.exec("DROP TABLE log_segments");
  other.close();
}

/** Number of entries stored in the log's segments, read through a separate connection. */
function storedEntryCount(reader: Database): number {
  const log = new SegmentedLog(reader);
  try {
    return log.entriesAfter(0).length;
  } finally {
    log.finalize();
  }
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(2);
  }
}

describe("batch codec", () => {
  test("round-trips every kind of write", () => {
    const writes: StorageWrite[] = [
      { hardState: { term: 7, votedFor: "node-2", commitIndex: 41 }, truncateFrom: 40, entries: [command(40, 7, 0), command(41, 7, 300)] },
      { hardState: { term: 8, votedFor: null, commitIndex: 41 }, truncateFrom: null, entries: [] },
      {
        hardState: null,
        truncateFrom: null,
        entries: [
          { index: 42, term: 8, kind: "noop", data: new Uint8Array(0) },
          {
            index: 43,
            term: 8,
            kind: "config",
            data: new Uint8Array(0),
            members: [{ id: "nöde-1", raftAddr: "127.0.0.1:1", clientAddr: "127.0.0.1:2", voter: true }],
          },
        ],
      },
    ];
    expect(decodeWrites(encodeWrites(writes))).toEqual(writes);
  });

  test("rejects trailing bytes", () => {
    const encoded = new Uint8Array(encodeWrites([entriesWrite([command(1, 1)])]));
    const longer = new Uint8Array(encoded.byteLength + 3);
    longer.set(encoded);
    expect(() => decodeWrites(longer.buffer)).toThrow("3 bytes after its last write");
  });
});

describe("log writer", () => {
  test("commits batches in order", async () => {
    const storage = newStorage();
    const { writer, seen } = openWriter(storage);
    let last = 0;
    for (let index = 1; index <= 200; index++) last = writer.write(entriesWrite([command(index, 1)]));
    await until(() => writer.isDone(last), "the last batch");
    expect(seen.errors).toEqual([]);
    // Writes queued while a batch was in flight went out together.
    expect(seen.done.length).toBe(last);
    expect(last).toBeLessThan(200);
    expect(seen.done).toEqual([...Array(last).keys()].map((i) => i + 1));
    writer.close();

    const state = storage.load();
    expect(state.entries.map((entry) => entry.index)).toEqual([...Array(200).keys()].map((i) => i + 1));
    expect(state.entries[199].data).toEqual(command(200, 1).data);
    storage.close();
  });

  test("applies a queued truncation", async () => {
    const storage = newStorage();
    const { writer } = openWriter(storage);
    writer.write(entriesWrite([command(1, 1), command(2, 1), command(3, 1)]));
    writer.write(entriesWrite([command(2, 2, 5)], 2));
    writer.write({ hardState: { term: 2, votedFor: "node-3", commitIndex: 1 }, truncateFrom: null, entries: [] });
    writer.drain();
    writer.close();

    const state = storage.load();
    expect(state.entries.map((entry) => [entry.index, entry.term])).toEqual([
      [1, 1],
      [2, 2],
    ]);
    expect(state.hardState).toEqual({ term: 2, votedFor: "node-3", commitIndex: 1 });
    storage.close();
  });

  test("drain waits for queued writes", () => {
    const storage = newStorage();
    const { writer, seen } = openWriter(storage);
    storage.beforeWrite = () => writer.drain();
    for (let index = 1; index <= 50; index++) writer.write(entriesWrite([command(index, 1)]));
    // recordSnapshot compacts on the node's connection; it must see all 50 entries first.
    storage.recordSnapshot({ meta: { lastIndex: 10, lastTerm: 1, members: [] }, file: "a.snap", bytes: 1, checksum: 1 });
    expect(writer.busy).toBe(false);
    expect(seen.done.at(-1)).toBeGreaterThan(0);
    const reader = new Database(storage.path, { readonly: true });
    const count = storedEntryCount(reader);
    reader.close();
    expect(count).toBe(50);
    writer.close();
    storage.close();
  });

  test("reports a failed write", async () => {
    const storage = newStorage();
    const { writer, seen } = openWriter(storage);
    writer.drain();
    dropSegmentList(storage);
    writer.write(entriesWrite([command(1, 1)]));
    await until(() => seen.errors.length > 0, "the failure");
    expect(seen.errors[0]).toBeInstanceOf(StorageError);
    expect(seen.errors[0].message).toContain("log write failed");
    expect(seen.errors[0].message).toContain("no such table");
    expect(() => writer.write(entriesWrite([command(2, 1)]))).toThrow("log write failed");
    expect(() => writer.drain()).toThrow("log write failed");
    writer.close();
    storage.close();
  });

  test("inline write while idle", async () => {
    const storage = newStorage();
    const { writer, seen } = openWriter(storage, (write) => storage.write(write));
    writer.drain();
    const reader = new Database(storage.path, { readonly: true });
    const count = () => storedEntryCount(reader);
    for (let index = 1; index <= 20; index++) {
      const before = seen.inline.length;
      const seq = writer.write(entriesWrite([command(index, 1)]), true);
      if (seen.inline.length > before) {
        // Made at once: durable and visible before write() returned.
        expect(writer.isDone(seq)).toBe(true);
        expect(count()).toBe(index);
      } else {
        // The previous write was slow, so this one went to the thread.
        await until(() => writer.isDone(seq), `batch ${seq}`);
      }
    }
    reader.close();
    // The first write found the thread idle and no slow write before it.
    expect(seen.inline.length).toBeGreaterThan(0);

    // Without `inline`, a write goes to the thread even when it is idle.
    const inlineBefore = seen.inline.length;
    const queued = writer.write(entriesWrite([command(21, 1)]));
    expect(writer.isDone(queued)).toBe(false);
    writer.drain();
    expect(seen.inline.length).toBe(inlineBefore);
    writer.close();
    expect(storage.load().entries.map((entry) => entry.index)).toEqual([...Array(21).keys()].map((i) => i + 1));
    storage.close();
  });

  test("slow write switches to thread", async () => {
    const storage = newStorage();
    const slowWrite = (write: StorageWrite) => {
      Bun.sleepSync(INLINE_WRITE_MAX_MS + 1);
      storage.write(write);
    };
    const { writer, seen } = openWriter(storage, slowWrite);
    writer.drain();
    expect(writer.isDone(writer.write(entriesWrite([command(1, 1)]), true))).toBe(true);
    expect(seen.inline.length).toBe(1);

    // The slow write sends the next one to the thread.
    const threaded = writer.write(entriesWrite([command(2, 1)]), true);
    expect(writer.isDone(threaded)).toBe(false);
    await until(() => writer.isDone(threaded), "the thread's batch");
    expect(seen.inline.length).toBe(1);

    // A fast batch on the thread brings writes back to the caller, and a slow one keeps them there.
    const third = writer.write(entriesWrite([command(3, 1)]), true);
    if (seen.threadMs.at(-1)! < INLINE_WRITE_MAX_MS) {
      expect(writer.isDone(third)).toBe(true);
      expect(seen.inline.length).toBe(2);
    } else {
      expect(seen.inline.length).toBe(1);
    }
    writer.drain();
    writer.close();
    expect(storage.load().entries.map((entry) => entry.index)).toEqual([1, 2, 3]);
    storage.close();
  });

  test("late reply keeps inline writes", async () => {
    const storage = newStorage();
    const { writer, seen } = openWriter(storage, (write) => storage.write(write));
    writer.drain();
    // The caller is busy while the thread commits, so the reply is handled
    // late. Only the transaction counts towards the next write's choice.
    let index = 0;
    let madeInline = false;
    for (let attempt = 0; attempt < 20 && !madeInline; attempt++) {
      const handedOver = performance.now();
      const seq = writer.write(entriesWrite([command(++index, 1)]));
      Bun.sleepSync(INLINE_WRITE_MAX_MS * 3);
      await until(() => writer.isDone(seq), `write ${index}`);
      expect(performance.now() - handedOver).toBeGreaterThan(INLINE_WRITE_MAX_MS);
      if (seen.threadMs.at(-1)! >= INLINE_WRITE_MAX_MS) continue; // the disk itself was slow
      const inlineBefore = seen.inline.length;
      expect(writer.isDone(writer.write(entriesWrite([command(++index, 1)]), true))).toBe(true);
      expect(seen.inline.length).toBe(inlineBefore + 1);
      madeInline = true;
    }
    expect(madeInline).toBe(true);
    writer.close();
    expect(storage.load().entries.map((entry) => entry.index)).toEqual([...Array(index).keys()].map((i) => i + 1));
    storage.close();
  });

  test("compaction keeps writes on thread", async () => {
    const storage = newStorage();
    const { writer, seen } = openWriter(storage, (write) => storage.write(write));
    storage.beforeWrite = () => writer.drain();
    storage.compactor = (meta) => writer.compact(meta);
    for (let first = 1; first <= 3000; first += 100) {
      writer.write(entriesWrite(Array.from({ length: 100 }, (_, i) => command(first + i, 1))));
    }
    writer.drain();
    // Small writes until one is made at once, which needs the write before it to have been fast.
    let index = 3000;
    for (let attempt = 0; attempt < 20 && seen.inline.length === 0; attempt++) {
      const seq = writer.write(entriesWrite([command(++index, 1)]), true);
      await until(() => writer.isDone(seq), `write ${index}`);
    }
    expect(seen.inline.length).toBeGreaterThan(0);

    const snapshot = (at: number) => ({ meta: { lastIndex: at, lastTerm: 1, members: [] }, file: `${at}.snap`, bytes: 1, checksum: 1 });
    storage.recordSnapshot(snapshot(2500));
    storage.recordSnapshot(snapshot(2900));
    // The thread is compacting to 2500: an inline write would wait for its lock, so it is queued instead.
    const inlineBefore = seen.inline.length;
    const during = writer.write(entriesWrite([command(++index, 1)]), true);
    expect(writer.isDone(during)).toBe(false);
    await until(() => seen.compacted.length > 0, "compaction to index 2500");
    await until(() => writer.isDone(during), "the write queued during compaction");
    expect(seen.inline.length).toBe(inlineBefore);
    writer.close();
    expect(storage.load().entries.at(-1)?.index).toBe(index);
    storage.close();
  });

  test("failed inline write is reported", () => {
    const storage = newStorage();
    const { writer, seen } = openWriter(storage, (write) => storage.write(write));
    writer.drain();
    dropSegmentList(storage);
    expect(() => writer.write(entriesWrite([command(1, 1)]), true)).toThrow("no such table");
    expect(seen.errors.length).toBe(1);
    expect(seen.errors[0].message).toContain("log write failed");
    expect(() => writer.write(entriesWrite([command(2, 1)]), true)).toThrow("log write failed");
    writer.close();
    storage.close();
  });

  test("drain reports a failure", () => {
    const storage = newStorage();
    const { writer, seen } = openWriter(storage);
    writer.drain();
    dropSegmentList(storage);
    writer.write(entriesWrite([command(1, 1)]));
    expect(() => writer.drain()).toThrow("no such table");
    expect(seen.errors.length).toBe(1);
    writer.close();
    storage.close();
  });

  test("compacts the log after a snapshot", async () => {
    const storage = newStorage();
    const { writer, seen } = openWriter(storage);
    storage.beforeWrite = () => writer.drain();
    storage.compactor = (meta) => writer.compact(meta);
    const last = 3 * SEGMENT_ENTRIES;
    for (let first = 1; first <= last; first += 512) {
      writer.write(entriesWrite(Array.from({ length: 512 }, (_, i) => command(first + i, 1))));
    }
    const snapshot = (index: number) => ({ meta: { lastIndex: index, lastTerm: 1, members: [] }, file: `${index}.snap`, bytes: 1, checksum: 1 });
    const compactTo = 2 * SEGMENT_ENTRIES + 100;
    storage.recordSnapshot(snapshot(compactTo));
    // The log is compacted only up to the previous snapshot, kept as a fallback.
    storage.recordSnapshot(snapshot(last - 10));
    await until(() => seen.compacted.length > 0, `compaction to index ${compactTo}`);
    expect(seen.compacted).toEqual([compactTo]);
    expect(storage.logBaseIndex()).toBe(compactTo);
    expect(seen.errors).toEqual([]);
    writer.close();
    const state = storage.load();
    expect(state.logBase?.lastIndex).toBe(compactTo);
    expect(state.entries[0].index).toBe(compactTo + 1);
    expect(state.entries.at(-1)?.index).toBe(last);
    // The two segments below the compaction point are gone. The third contains it.
    const reader = new Database(storage.path, { readonly: true });
    const firsts = reader.query<{ first_idx: number }, []>("SELECT first_idx FROM log_segments ORDER BY id").all();
    reader.close();
    expect(firsts.map((row) => row.first_idx)).toEqual([2 * SEGMENT_ENTRIES + 1]);
    storage.close();
  });
});

describe("closing", () => {
  test("folds the WAL into the database", () => {
    const storage = newStorage();
    const { writer } = openWriter(storage);
    writer.write(entriesWrite(Array.from({ length: 500 }, (_, i) => command(i + 1, 1, 300))));
    writer.drain();
    const wal = `${storage.path}-wal`;
    expect(statSync(wal).size).toBeGreaterThan(0);
    writer.close();
    storage.close();
    // SQLite checkpoints and removes the WAL when its last connection closes.
    expect(existsSync(wal) ? statSync(wal).size : 0).toBe(0);
  });
});

describe("two connections", () => {
  test("both write during compaction", async () => {
    const storage = newStorage();
    const { writer, seen } = openWriter(storage);
    for (let first = 1; first <= 40_000; first += 1000) {
      writer.write(entriesWrite(Array.from({ length: 1000 }, (_, i) => command(first + i, 1))));
    }
    writer.drain();
    writer.compact({ lastIndex: 39_000, lastTerm: 1, members: [] });
    // Each of these reads before it writes; without IMMEDIATE transactions a
    // compaction step committed in between made them fail with "database is locked".
    let writes = 0;
    const deadline = Date.now() + 20_000;
    while (seen.compacted.length === 0 && Date.now() < deadline) {
      storage.dropOlderSnapshots();
      storage.setClusterId("cluster-a");
      writes++;
      if (writes % 10 === 0) await Bun.sleep(1);
    }
    expect(seen.errors).toEqual([]);
    expect(seen.compacted).toEqual([39_000]);
    expect(writes).toBeGreaterThan(10);
    writer.close();
    expect(storage.load().entries[0].index).toBe(39_001);
    storage.close();
  });
});

describe("hard state", () => {
  const hardStateWrite = (term: number, votedFor: string | null, commitIndex: number, entries: Entry[] = []): StorageWrite => ({
    hardState: { term, votedFor, commitIndex },
    truncateFrom: null,
    entries,
  });

  test("survives writes from both connections", () => {
    const storage = newStorage();
    const db = new Database(storage.path);
    const other = new BatchWriter(db);
    other.write([hardStateWrite(5, "node-2", 10, [command(1, 5)])]);
    storage.write(hardStateWrite(6, null, 20, [command(2, 6)]));
    // The same term and vote as this writer's last write, but a change from
    // what the other connection wrote in between: both must be written.
    other.write([hardStateWrite(6, "node-3", 25, [command(3, 6)])]);
    storage.write(hardStateWrite(6, "node-3", 30));
    other.write([hardStateWrite(6, "node-3", 30, [command(4, 6)])]);
    db.close();
    expect(storage.load().hardState).toEqual({ term: 6, votedFor: "node-3", commitIndex: 30 });
    storage.close();
  });

  test("rewritten after a failed write", () => {
    const storage = newStorage();
    const db = new Database(storage.path);
    const writer = new BatchWriter(db);
    writer.write([hardStateWrite(2, "node-1", 3, [command(1, 2)])]);
    const invalid = { index: 2, term: null, kind: "command", data: new Uint8Array(1) } as unknown as Entry;
    expect(() => writer.write([hardStateWrite(3, "node-2", 4), entriesWrite([invalid])])).toThrow();
    // The transaction rolled back, so term 3 was never stored and must be written now.
    writer.write([hardStateWrite(3, "node-2", 4, [command(2, 3)])]);
    db.close();
    expect(storage.load().hardState).toEqual({ term: 3, votedFor: "node-2", commitIndex: 4 });
    expect(storage.load().entries.map((entry) => entry.index)).toEqual([1, 2]);
    storage.close();
  });
});
