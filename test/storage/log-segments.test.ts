// The segmented log on real SQLite files. Appends start a new segment when
// the newest is full, and truncation drops whole segments above the cut.
// Compaction drops the segments below the compaction point, one per step. A
// database written by schema version 1, with one `log` table, keeps every entry.
// A changed byte inside a stored entry fails the load with its index.

import { afterEach, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Entry } from "../../src/raft/types.ts";
import { SEGMENT_BYTES, SEGMENT_ENTRIES } from "../../src/storage/log-segments.ts";
import { BatchWriter, DATABASE_FILE, SqliteStorage, StorageError, type StorageWrite } from "../../src/storage/sqlite.ts";

const dirs: string[] = [];

function newDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "echokv-log-segments-"));
  dirs.push(dir);
  return dir;
}

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function command(index: number, term: number, size = 16): Entry {
  return { index, term, kind: "command", data: new Uint8Array(size).fill(index % 251) };
}

function commands(first: number, last: number, term = 1): Entry[] {
  return Array.from({ length: last - first + 1 }, (_, i) => command(first + i, term));
}

function entriesWrite(entries: Entry[], truncateFrom: number | null = null): StorageWrite {
  return { hardState: null, truncateFrom, entries };
}

/** First index of each segment, oldest first, read through a separate connection. */
function segmentFirsts(storage: SqliteStorage): number[] {
  const db = new Database(storage.path, { readonly: true });
  try {
    return db.query<{ first_idx: number }, []>("SELECT first_idx FROM log_segments ORDER BY id").all().map((row) => row.first_idx);
  } finally {
    db.close();
  }
}

function storedIndexes(storage: SqliteStorage): number[] {
  return storage.load().entries.map((entry) => entry.index);
}

function range(first: number, last: number): number[] {
  return Array.from({ length: last - first + 1 }, (_, i) => first + i);
}

describe("appends", () => {
  test("start a segment every SEGMENT_ENTRIES entries", () => {
    const storage = SqliteStorage.open(newDir(), "node-1");
    const last = 2 * SEGMENT_ENTRIES + 10;
    for (let first = 1; first <= last; first += 1000) storage.write(entriesWrite(commands(first, Math.min(first + 999, last))));
    expect(segmentFirsts(storage)).toEqual([1, SEGMENT_ENTRIES + 1, 2 * SEGMENT_ENTRIES + 1]);
    expect(storedIndexes(storage)).toEqual(range(1, last));
    storage.close();
  });

  test("start a segment after SEGMENT_BYTES of data", () => {
    const storage = SqliteStorage.open(newDir(), "node-1");
    const size = SEGMENT_BYTES / 4;
    for (let index = 1; index <= 6; index++) storage.write(entriesWrite([command(index, 1, size)]));
    expect(segmentFirsts(storage)).toEqual([1, 5]);
    const entries = storage.load().entries;
    expect(entries.map((entry) => entry.data.byteLength)).toEqual(Array(6).fill(size));
    storage.close();
  });

  test("before the newest segment are rejected", () => {
    const storage = SqliteStorage.open(newDir(), "node-1");
    storage.write(entriesWrite(commands(1, SEGMENT_ENTRIES + 5)));
    // Rewriting an entry of an older segment without truncating first would store it twice.
    expect(() => storage.write(entriesWrite([command(3, 2)]))).toThrow(StorageError);
    expect(() => storage.write(entriesWrite([command(3, 2)]))).toThrow("the log was not truncated first");
    expect(storedIndexes(storage)).toEqual(range(1, SEGMENT_ENTRIES + 5));
    storage.close();
  });
});

describe("truncation", () => {
  test("inside the newest segment", () => {
    const storage = SqliteStorage.open(newDir(), "node-1");
    storage.write(entriesWrite(commands(1, 100)));
    storage.write(entriesWrite(commands(60, 70, 2), 60));
    const entries = storage.load().entries;
    expect(entries.map((entry) => entry.index)).toEqual(range(1, 70));
    expect(entries[58].term).toBe(1);
    expect(entries[59].term).toBe(2);
    expect(segmentFirsts(storage)).toEqual([1]);
    storage.close();
  });

  test("drops the segments above the cut", () => {
    const storage = SqliteStorage.open(newDir(), "node-1");
    const last = 3 * SEGMENT_ENTRIES;
    storage.write(entriesWrite(commands(1, last)));
    expect(segmentFirsts(storage)).toEqual([1, SEGMENT_ENTRIES + 1, 2 * SEGMENT_ENTRIES + 1]);

    const cut = SEGMENT_ENTRIES - 10;
    storage.write(entriesWrite(commands(cut, cut + 5, 2), cut));
    expect(segmentFirsts(storage)).toEqual([1]);
    const entries = storage.load().entries;
    expect(entries.map((entry) => entry.index)).toEqual(range(1, cut + 5));
    expect(entries.at(-1)?.term).toBe(2);
    storage.close();
  });

  test("at a segment's first entry drops that segment", () => {
    const storage = SqliteStorage.open(newDir(), "node-1");
    storage.write(entriesWrite(commands(1, SEGMENT_ENTRIES + 50)));
    storage.write(entriesWrite(commands(SEGMENT_ENTRIES + 1, SEGMENT_ENTRIES + 3, 2), SEGMENT_ENTRIES + 1));
    // The new entries go to a segment started afresh at the cut.
    expect(segmentFirsts(storage)).toEqual([1, SEGMENT_ENTRIES + 1]);
    expect(storedIndexes(storage)).toEqual(range(1, SEGMENT_ENTRIES + 3));
    storage.close();
  });
});

describe("compaction", () => {
  test("moves the compaction point, then drops one segment per step", () => {
    const storage = SqliteStorage.open(newDir(), "node-1");
    const last = 4 * SEGMENT_ENTRIES;
    storage.write(entriesWrite(commands(1, last)));
    storage.close();

    const dir = dirs.at(-1)!;
    const db = new Database(join(dir, DATABASE_FILE));
    const writer = new BatchWriter(db);
    const members = [{ id: "node-1", raftAddr: "127.0.0.1:1", clientAddr: "127.0.0.1:2", voter: true }];
    const target = { lastIndex: 2 * SEGMENT_ENTRIES + 7, lastTerm: 1, members };
    const segmentCounts: number[] = [];
    let done = false;
    for (let step = 0; step < 10 && !done; step++) {
      done = writer.compactStep(target);
      segmentCounts.push(db.query<{ n: number }, []>("SELECT count(*) AS n FROM log_segments").get()!.n);
    }
    writer.finalize();
    db.close();
    expect(done).toBe(true);
    // Two segments lie wholly below the target. The third contains it and stays.
    expect(segmentCounts).toEqual([3, 2, 2]);

    const reopened = SqliteStorage.open(dir, "node-1");
    const state = reopened.load();
    expect(state.logBase).toEqual(target);
    expect(state.entries[0].index).toBe(target.lastIndex + 1);
    expect(state.entries.at(-1)?.index).toBe(last);
    reopened.close();
  });

  test("writes little to the WAL", () => {
    const storage = SqliteStorage.open(newDir(), "node-1");
    const last = 5 * SEGMENT_ENTRIES;
    for (let first = 1; first <= last; first += 4096) {
      storage.write(entriesWrite(Array.from({ length: 4096 }, (_, i) => command(first + i, 1, 256))));
    }
    const db = new Database(storage.path);
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    const wal = `${storage.path}-wal`;
    const before = statSync(wal).size;
    storage.compactLog({ lastIndex: last - 10, lastTerm: 1, members: [] });
    const written = statSync(wal).size - before;
    db.close();
    expect(storage.logBaseIndex()).toBe(last - 10);
    expect(storedIndexes(storage)).toEqual(range(last - 9, last));
    // Deleting the 20,470 rows one by one would rewrite their pages, an estimated 6 MB, through the WAL.
    expect(written).toBeLessThan(256 * 1024);
    storage.close();
  });

  test("left half done finishes at the next compaction", () => {
    const dir = newDir();
    const storage = SqliteStorage.open(dir, "node-1");
    const last = 3 * SEGMENT_ENTRIES;
    storage.write(entriesWrite(commands(1, last)));
    storage.close();

    // One step, as if the node was killed right after it.
    const db = new Database(join(dir, DATABASE_FILE));
    const writer = new BatchWriter(db);
    expect(writer.compactStep({ lastIndex: last - 1, lastTerm: 1, members: [] })).toBe(false);
    writer.finalize();
    db.close();

    const reopened = SqliteStorage.open(dir, "node-1");
    expect(segmentFirsts(reopened)).toEqual([SEGMENT_ENTRIES + 1, 2 * SEGMENT_ENTRIES + 1]);
    expect(storedIndexes(reopened)).toEqual([last]);
    reopened.compactLog({ lastIndex: last - 1, lastTerm: 1, members: [] });
    expect(segmentFirsts(reopened)).toEqual([2 * SEGMENT_ENTRIES + 1]);
    expect(storedIndexes(reopened)).toEqual([last]);
    reopened.close();
  });

  test("a received snapshot drops every segment", () => {
    const storage = SqliteStorage.open(newDir(), "node-1");
    storage.write(entriesWrite(commands(1, 2 * SEGMENT_ENTRIES + 1)));
    const meta = { lastIndex: 50_000, lastTerm: 3, members: [] };
    storage.installSnapshot({ meta, file: "a.snap", bytes: 1, checksum: 1 }, { term: 3, votedFor: null, commitIndex: 50_000 });
    expect(segmentFirsts(storage)).toEqual([]);
    storage.write(entriesWrite([command(50_001, 3)]));
    expect(segmentFirsts(storage)).toEqual([50_001]);
    expect(storedIndexes(storage)).toEqual([50_001]);
    storage.close();
  });
});

describe("schema version 1", () => {
  /** Writes the layout of schema version 1: one `log` table, compacted up to `base`. */
  function writeVersion1(dir: string, base: number, last: number): void {
    const db = new Database(join(dir, DATABASE_FILE), { create: true, strict: true });
    db.exec("PRAGMA journal_mode = WAL");
    db.exec(`
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE log (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, kind INTEGER NOT NULL, data BLOB NOT NULL, members TEXT);
      CREATE TABLE snapshots (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, members TEXT NOT NULL, file TEXT NOT NULL, bytes INTEGER NOT NULL, checksum INTEGER NOT NULL);
    `);
    const meta = { schema_version: "1", node_id: "node-1", incarnation: "i-1", cluster_id: "c-1", term: "4", voted_for: "node-1", commit_index: String(last) };
    for (const [key, value] of Object.entries({ ...meta, log_base_index: String(base), log_base_term: "2", log_base_members: "[]" })) {
      db.run("INSERT INTO meta (key, value) VALUES (?, ?)", [key, value]);
    }
    const insert = db.prepare("INSERT INTO log (idx, term, kind, data, members) VALUES (?, ?, 0, ?, NULL)");
    db.transaction(() => {
      for (let index = base + 1; index <= last; index++) insert.run(index, 4, new Uint8Array(8).fill(index % 251));
    })();
    insert.finalize();
    db.close();
  }

  test("keeps every entry and the hard state", () => {
    const dir = newDir();
    writeVersion1(dir, 100, 600);
    const storage = SqliteStorage.open(dir, "node-1");
    expect(storage.conversions[0]).toStartWith("converted the stored log from schema version 1 to 2");
    const state = storage.load();
    expect(state.hardState).toEqual({ term: 4, votedFor: "node-1", commitIndex: 600 });
    expect(state.logBase?.lastIndex).toBe(100);
    expect(state.entries.map((entry) => entry.index)).toEqual(range(101, 600));
    expect(state.entries[0].data).toEqual(new Uint8Array(8).fill(101));
    expect(storage.clusterId()).toBe("c-1");
    expect(segmentFirsts(storage)).toEqual([101]);

    // The old table is now the first segment, which fills up before the next starts.
    storage.write(entriesWrite(commands(601, 101 + SEGMENT_ENTRIES)));
    expect(segmentFirsts(storage)).toEqual([101, 101 + SEGMENT_ENTRIES]);
    storage.close();

    const reopened = SqliteStorage.open(dir, "node-1");
    expect(storedIndexes(reopened)).toEqual(range(101, 101 + SEGMENT_ENTRIES));
    reopened.close();
  });

  test("of another node stays unconverted", () => {
    const dir = newDir();
    writeVersion1(dir, 100, 200);
    expect(() => SqliteStorage.open(dir, "node-2")).toThrow("belongs to node node-1, not node-2");
    const db = new Database(join(dir, DATABASE_FILE), { readonly: true });
    const version = db.query<{ value: string }, []>("SELECT value FROM meta WHERE key = 'schema_version'").get()?.value;
    const count = db.query<{ n: number }, []>("SELECT count(*) AS n FROM log").get()?.n;
    db.close();
    expect(version).toBe("1");
    expect(count).toBe(100);
  });

  test("with an empty log", () => {
    const dir = newDir();
    writeVersion1(dir, 300, 300);
    const storage = SqliteStorage.open(dir, "node-1");
    expect(storage.load().entries).toEqual([]);
    storage.write(entriesWrite([command(301, 4)]));
    expect(storedIndexes(storage)).toEqual([301]);
    storage.close();
  });
});

describe("checksums", () => {
  /** Writes entries 1 to 20, closes the storage and returns its directory. */
  function storedLog(): string {
    const dir = newDir();
    const storage = SqliteStorage.open(dir, "node-1");
    storage.write(entriesWrite(commands(1, 20)));
    storage.close();
    return dir;
  }

  /** Runs `sql` on the database in `dir` through a connection of its own. */
  function tamper(dir: string, sql: string): void {
    const db = new Database(join(dir, DATABASE_FILE));
    db.exec(sql);
    db.close();
  }

  function loadError(dir: string): string {
    const storage = SqliteStorage.open(dir, "node-1");
    try {
      storage.load();
      return "loaded";
    } catch (err) {
      expect(err).toBeInstanceOf(StorageError);
      return (err as Error).message;
    } finally {
      storage.close();
    }
  }

  test("intact log loads", () => {
    const dir = storedLog();
    expect(loadError(dir)).toBe("loaded");
  });

  test("changed data fails the load", () => {
    const dir = storedLog();
    // Same length, one byte different: SQLite's integrity check still passes.
    tamper(dir, "UPDATE log_1 SET data = X'00' || substr(data, 2) WHERE idx = 7");
    const message = loadError(dir);
    expect(message).toContain("log entry 7 is corrupt");
    expect(message).toContain("restore the data directory from a backup");
  });

  test("changed term fails the load", () => {
    const dir = storedLog();
    tamper(dir, "UPDATE log_1 SET term = 9 WHERE idx = 12");
    expect(loadError(dir)).toContain("log entry 12 is corrupt");
  });

  test("column added to older tables", () => {
    const dir = storedLog();
    tamper(dir, "ALTER TABLE log_1 DROP COLUMN crc");
    const storage = SqliteStorage.open(dir, "node-1");
    expect(storage.conversions).toEqual([
      "added entry checksums to 1 log table that an earlier build wrote; their existing entries and any that earlier builds write later stay unchecked",
    ]);
    expect(storage.load().entries.length).toBe(20);
    storage.close();

    const reopened = SqliteStorage.open(dir, "node-1");
    expect(reopened.conversions).toEqual([]);
    reopened.close();
  });

  test("rows without a checksum load", () => {
    // Rows written by builds before the checksum column have none.
    const dir = storedLog();
    tamper(dir, "UPDATE log_1 SET crc = NULL, data = X'00' || substr(data, 2) WHERE idx = 7");
    expect(loadError(dir)).toBe("loaded");
  });
});

describe("schema version", () => {
  test("newer than this build is rejected", () => {
    const dir = newDir();
    SqliteStorage.open(dir, "node-1").close();
    const db = new Database(join(dir, DATABASE_FILE));
    db.run("UPDATE meta SET value = '3' WHERE key = 'schema_version'");
    db.close();
    expect(() => SqliteStorage.open(dir, "node-1")).toThrow("has schema version 3, and this build reads versions 1 and 2");
  });
});
