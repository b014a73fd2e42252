// Durable Raft state in one SQLite database per node: hard state, identity
// (node id and cluster id) and the log. WAL mode with synchronous=FULL, so a
// committed transaction survives power loss; every ready batch is written in
// one transaction before any message that depends on it is sent.

import { Database } from "bun:sqlite";
import { randomUUID } from "node:crypto";
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { Entry, HardState, Member, SnapshotMeta } from "../raft/types.ts";
import { StorageError } from "./errors.ts";
import { addChecksumColumns, createSegmentList, migrateSingleLogTable, SegmentedLog } from "./log-segments.ts";

export { StorageError };

export const DATABASE_FILE = "echokv.db";
/** Version 2 keeps the log in segment tables. open() converts version 1, which kept it in one table. */
const SCHEMA_VERSION = 2;

/**
 * How long a connection waits for the other one's write lock before it
 * fails. Every transaction here begins IMMEDIATE, taking that lock first:
 * one that read before writing could otherwise fail at once, without
 * waiting, when the other connection wrote in between.
 */
const BUSY_TIMEOUT_MS = 10_000;

export interface PersistedState {
  hardState: HardState;
  /** Index, term and members just before the first stored log entry (the compaction point), or null. */
  logBase: SnapshotMeta | null;
  entries: Entry[];
  /** Recorded snapshots, newest first. */
  snapshots: SnapshotRecord[];
}

/** A snapshot file recorded in the database; the file is in the snapshots/ directory. */
export interface SnapshotRecord {
  meta: SnapshotMeta;
  /** File name inside the snapshots directory. */
  file: string;
  bytes: number;
  checksum: number;
}

interface SnapshotRow {
  idx: number;
  term: number;
  members: string;
  file: string;
  bytes: number;
  checksum: number;
}

export interface StorageWrite {
  hardState: HardState | null;
  truncateFrom: number | null;
  entries: Entry[];
}

export class SqliteStorage {
  readonly path: string;
  readonly #db: Database;
  /** The data directory's LOCK file, removed on close. */
  #lockPath: string | null = null;
  readonly #batches: BatchWriter;
  readonly #setMeta;
  readonly #getMeta;
  /**
   * Called before every write on this connection. A node that writes its
   * log on another connection (LogWriter) waits there for those writes to
   * finish, so that the two never interleave.
   */
  beforeWrite: (() => void) | null = null;
  /**
   * Takes over compaction of the stored log (deleting what a snapshot
   * covers) when set; the log writer thread does it in small steps. When
   * null, compaction runs at once on this connection.
   */
  compactor: ((meta: SnapshotMeta) => void) | null = null;
  /** Descriptions of the format conversions that opening the data directory made, for the node's log. */
  readonly conversions: string[] = [];

  private constructor(path: string, db: Database) {
    this.path = path;
    this.#db = db;
    this.#batches = new BatchWriter(db);
    this.#setMeta = db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)");
    this.#getMeta = db.prepare<{ value: string }, [string]>("SELECT value FROM meta WHERE key = ?");
  }

  /**
   * Opens (creating when missing) the database in `dir` for `nodeId`. Rejects
   * a directory that belongs to another node or is corrupt, naming the problem.
   */
  static open(dir: string, nodeId: string): SqliteStorage {
    mkdirSync(dir, { recursive: true });
    const lock = lockDataDir(dir);
    const path = join(dir, DATABASE_FILE);
    let db: Database;
    try {
      db = new Database(path, { create: true, strict: true });
      db.exec("PRAGMA journal_mode = WAL");
      db.exec("PRAGMA synchronous = FULL");
      db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
      const check = db.query<{ quick_check: string }, []>("PRAGMA quick_check").get();
      if (check?.quick_check !== "ok") {
        throw new StorageError(`integrity check failed: ${check?.quick_check ?? "no result"}`);
      }
      db.exec(`
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS snapshots (
          idx INTEGER PRIMARY KEY,
          term INTEGER NOT NULL,
          members TEXT NOT NULL,
          file TEXT NOT NULL,
          bytes INTEGER NOT NULL,
          checksum INTEGER NOT NULL
        );
      `);
      createSegmentList(db);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new StorageError(
        `data directory ${dir} is unreadable or corrupt (${reason}); restore it from a backup, or wipe it and re-add the node to the cluster`,
      );
    }

    const storage = new SqliteStorage(path, db);
    storage.#lockPath = lock;
    storage.#checkIdentity(dir, nodeId);
    return storage;
  }

  #checkIdentity(dir: string, nodeId: string): void {
    const version = this.#meta("schema_version");
    if (version !== null && version !== "1" && Number(version) !== SCHEMA_VERSION) {
      throw new StorageError(`data directory ${dir} has schema version ${version}, and this build reads versions 1 and ${SCHEMA_VERSION}. Open it with the newer echokv build that wrote it`);
    }
    const storedNode = this.#meta("node_id");
    if (storedNode !== null && storedNode !== nodeId) {
      throw new StorageError(
        `data directory ${dir} belongs to node ${storedNode}, not ${nodeId}; start with --node-id ${storedNode} or use another --data-dir`,
      );
    }
    // Converted only once the directory is known to be this node's, so a
    // mistaken --data-dir leaves it readable by the build that wrote it.
    if (version === "1") {
      this.#db.transaction(() => {
        migrateSingleLogTable(this.#db, this.logBaseIndex());
        this.#setMeta.run("schema_version", String(SCHEMA_VERSION));
      }).immediate();
      this.conversions.push(`converted the stored log from schema version 1 to ${SCHEMA_VERSION}; builds that read only version 1 can no longer open this data directory`);
    }
    // A new nullable column: builds without it still read and write these tables.
    const checksummed = this.#db.transaction(() => addChecksumColumns(this.#db)).immediate();
    if (checksummed > 0) {
      this.conversions.push(
        `added entry checksums to ${checksummed} log ${checksummed === 1 ? "table" : "tables"} that an earlier build wrote; their existing entries and any that earlier builds write later stay unchecked`,
      );
    }
    if (storedNode === null) {
      this.#db.transaction(() => {
        this.#setMeta.run("schema_version", String(SCHEMA_VERSION));
        this.#setMeta.run("node_id", nodeId);
        this.#setMeta.run("incarnation", randomUUID());
      }).immediate();
    }
  }

  #meta(key: string): string | null {
    return this.#getMeta.get(key)?.value ?? null;
  }

  /** Random id created with this data directory; a wiped directory gets a new one. */
  incarnation(): string {
    const existing = this.#meta("incarnation");
    if (existing !== null) return existing;
    const created = randomUUID();
    this.beforeWrite?.();
    this.#setMeta.run("incarnation", created);
    return created;
  }

  /** Cluster id, or null while the node has neither bootstrapped nor joined. */
  clusterId(): string | null {
    return this.#meta("cluster_id");
  }

  setClusterId(clusterId: string): void {
    this.beforeWrite?.();
    const existing = this.clusterId();
    if (existing !== null && existing !== clusterId) {
      throw new StorageError(`this node belongs to cluster ${existing}; refusing to switch to cluster ${clusterId}`);
    }
    this.#setMeta.run("cluster_id", clusterId);
  }

  load(): PersistedState {
    const hardState: HardState = {
      term: Number(this.#meta("term") ?? 0),
      votedFor: this.#meta("voted_for") || null,
      commitIndex: Number(this.#meta("commit_index") ?? 0),
    };
    const baseIndex = this.#meta("log_base_index");
    const logBase: SnapshotMeta | null =
      baseIndex === null
        ? null
        : {
            lastIndex: Number(baseIndex),
            lastTerm: Number(this.#meta("log_base_term") ?? 0),
            members: JSON.parse(this.#meta("log_base_members") ?? "[]") as Member[],
          };
    // Segments may still contain entries at or below the compaction point, and these are skipped.
    const entries = this.#batches.log.entriesAfter(logBase?.lastIndex ?? 0);
    if (entries.length > 0) {
      const expected = (logBase?.lastIndex ?? 0) + 1;
      if (entries[0].index !== expected) {
        throw new StorageError(`log starts at index ${entries[0].index} but the compaction point expects ${expected}; the database is inconsistent`);
      }
      for (let i = 1; i < entries.length; i++) {
        if (entries[i].index !== entries[i - 1].index + 1) {
          throw new StorageError(`log has a gap between index ${entries[i - 1].index} and ${entries[i].index}; the database is inconsistent`);
        }
      }
    }
    return { hardState, logBase, entries, snapshots: this.snapshots() };
  }

  /** Recorded snapshots, newest first. */
  snapshots(): SnapshotRecord[] {
    const rows = this.#db
      .query<SnapshotRow, []>("SELECT idx, term, members, file, bytes, checksum FROM snapshots ORDER BY idx DESC")
      .all();
    return rows.map((row) => ({
      meta: { lastIndex: row.idx, lastTerm: row.term, members: JSON.parse(row.members) as Member[] },
      file: row.file,
      bytes: row.bytes,
      checksum: row.checksum,
    }));
  }

  /**
   * Records a snapshot taken locally, then compacts the log up to the
   * previous snapshot, so that a damaged newest file can still be replaced
   * by the previous one plus the log. Returns the files no longer referenced.
   */
  recordSnapshot(record: SnapshotRecord): string[] {
    this.beforeWrite?.();
    let obsolete: string[] = [];
    let previous: SnapshotRecord | undefined;
    this.#db.transaction(() => {
      this.#insertSnapshot(record);
      const all = this.snapshots();
      previous = all[1];
      obsolete = all.slice(2).map((old) => old.file);
      for (const old of all.slice(2)) this.#db.run("DELETE FROM snapshots WHERE idx = ?", [old.meta.lastIndex]);
    }).immediate();
    if (previous) this.compactLog(previous.meta);
    return obsolete;
  }

  /** Deletes the stored log up to `meta`, through the compactor when one is set. */
  compactLog(meta: SnapshotMeta): void {
    if (this.compactor) {
      this.compactor(meta);
      return;
    }
    this.beforeWrite?.();
    while (!this.#batches.compactStep(meta));
  }

  /**
   * Replaces the whole log with a snapshot received from the leader. Returns
   * the files no longer referenced.
   */
  installSnapshot(record: SnapshotRecord, hardState: HardState): string[] {
    this.beforeWrite?.();
    let obsolete: string[] = [];
    this.#db.transaction(() => {
      obsolete = this.snapshots()
        .filter((old) => old.file !== record.file)
        .map((old) => old.file);
      this.#db.run("DELETE FROM snapshots");
      this.#insertSnapshot(record);
      this.#batches.log.clear();
      this.#setBase(record.meta);
      this.write({ hardState, truncateFrom: null, entries: [] });
    }).immediate();
    return obsolete;
  }

  /**
   * Forgets every snapshot but the newest, returning their files. The log
   * keeps reaching back to the compaction point, which the newest snapshot
   * covers.
   */
  dropOlderSnapshots(): string[] {
    this.beforeWrite?.();
    const [, ...older] = this.snapshots();
    for (const old of older) this.#db.run("DELETE FROM snapshots WHERE idx = ?", [old.meta.lastIndex]);
    return older.map((old) => old.file);
  }

  /** Forgets a snapshot whose file turned out to be damaged. */
  dropSnapshot(index: number): void {
    this.beforeWrite?.();
    this.#db.run("DELETE FROM snapshots WHERE idx = ?", [index]);
  }

  #insertSnapshot(record: SnapshotRecord): void {
    this.#db.run("INSERT OR REPLACE INTO snapshots (idx, term, members, file, bytes, checksum) VALUES (?, ?, ?, ?, ?, ?)", [
      record.meta.lastIndex,
      record.meta.lastTerm,
      JSON.stringify(record.meta.members),
      record.file,
      record.bytes,
      record.checksum,
    ]);
  }

  #setBase(meta: SnapshotMeta): void {
    setLogBase(this.#setMeta, meta);
  }

  /** Compaction point of the stored log (0 when nothing was compacted). */
  logBaseIndex(): number {
    return Number(this.#meta("log_base_index") ?? 0);
  }

  /** Writes one ready batch in a single durable transaction. */
  write(batch: StorageWrite): void {
    this.beforeWrite?.();
    this.#batches.write([batch]);
  }

  /**
   * Starts a new one-node cluster from a snapshot file already placed in the
   * snapshots directory (restore from backup).
   */
  bootstrapFromSnapshot(clusterId: string, record: SnapshotRecord, hardState: HardState): void {
    this.beforeWrite?.();
    if (this.clusterId() !== null) throw new StorageError(`this node already belongs to cluster ${this.clusterId()}`);
    this.#db.transaction(() => {
      this.#insertSnapshot(record);
      this.#setBase(record.meta);
      this.write({ hardState, truncateFrom: null, entries: [] });
      this.#setMeta.run("cluster_id", clusterId);
    }).immediate();
  }

  /** Writes the first configuration entry and the cluster id of a new cluster atomically. */
  bootstrap(clusterId: string, entry: Entry, hardState: HardState): void {
    this.beforeWrite?.();
    if (this.clusterId() !== null) throw new StorageError(`this node already belongs to cluster ${this.clusterId()}`);
    this.#db.transaction(() => {
      this.write({ hardState, truncateFrom: null, entries: [entry] });
      this.#setMeta.run("cluster_id", clusterId);
    }).immediate();
  }

  close(): void {
    this.beforeWrite = null;
    this.compactor = null;
    // A statement left unfinalized keeps the connection open after close(),
    // and then the last close does not fold the WAL into the database.
    this.#setMeta.finalize();
    this.#getMeta.finalize();
    this.#batches.finalize();
    this.#db.close();
    if (this.#lockPath !== null) rmSync(this.#lockPath, { force: true });
    this.#lockPath = null;
  }
}

/**
 * Writes ready batches (hard state, truncation, entries) through one
 * connection's prepared statements. Both the node's own connection and the
 * log writer's use it.
 */
export class BatchWriter {
  readonly #db: Database;
  /** The log's segment tables on this connection. */
  readonly log: SegmentedLog;
  readonly #setMeta;
  readonly #getMeta;
  readonly #begin;
  readonly #commit;
  readonly #rollback;
  /**
   * Hard state this connection wrote last, so that a batch writes only the
   * fields that changed. The other connection may have written since, but
   * never an older value: writes come in order, and term, vote within a term
   * and commit index only move forward.
   */
  #written: HardState | null = null;

  constructor(db: Database) {
    this.#db = db;
    this.log = new SegmentedLog(db);
    this.#begin = db.prepare("BEGIN IMMEDIATE");
    this.#commit = db.prepare("COMMIT");
    this.#rollback = db.prepare("ROLLBACK");
    this.#setMeta = db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)");
    this.#getMeta = db.prepare<{ value: string }, [string]>("SELECT value FROM meta WHERE key = ?");
  }

  /**
   * Takes one step towards compacting the stored log up to `target`, in one
   * transaction. The first step moves the compaction point to `target`, and
   * each step drops at most one segment that lies wholly at or below the
   * compaction point. Returns true once no such segment is left.
   */
  compactStep(target: SnapshotMeta): boolean {
    let done = false;
    this.#db.transaction(() => {
      let base = Number(this.#getMeta.get("log_base_index")?.value ?? 0);
      if (target.lastIndex > base) {
        setLogBase(this.#setMeta, target);
        base = target.lastIndex;
      }
      done = !this.log.dropCompacted(base);
    }).immediate();
    return done;
  }

  /** Finalizes the prepared statements; call it before closing the connection. */
  finalize(): void {
    this.log.finalize();
    for (const statement of [this.#setMeta, this.#getMeta, this.#begin, this.#commit, this.#rollback]) {
      statement.finalize();
    }
  }

  /** Applies `batches` in order in one transaction, so they cost one fsync together. */
  write(batches: readonly StorageWrite[]): void {
    if (batches.every((batch) => batch.hardState === null && batch.truncateFrom === null && batch.entries.length === 0)) return;
    // Prepared BEGIN and COMMIT cost less per batch than a db.transaction
    // wrapper. Inside a caller's transaction, the caller commits.
    const written = this.#written;
    const outer = this.#db.inTransaction;
    if (!outer) this.#begin.run();
    try {
      for (const batch of batches) {
        if (batch.truncateFrom !== null) this.log.truncateFrom(batch.truncateFrom);
        this.log.append(batch.entries);
        if (batch.hardState) this.#writeHardState(batch.hardState);
      }
      // The caller's transaction may still roll back, so the next write writes every field.
      if (outer) this.#written = null;
      else this.#commit.run();
    } catch (err) {
      this.#written = written;
      if (!outer && this.#db.inTransaction) this.#rollback.run();
      throw err;
    }
  }

  #writeHardState(hardState: HardState): void {
    const written = this.#written;
    if (written?.term !== hardState.term) this.#setMeta.run("term", String(hardState.term));
    if (written?.term !== hardState.term || written.votedFor !== hardState.votedFor) {
      this.#setMeta.run("voted_for", hardState.votedFor ?? "");
    }
    if (written?.commitIndex !== hardState.commitIndex) this.#setMeta.run("commit_index", String(hardState.commitIndex));
    this.#written = { ...hardState };
  }
}

function setLogBase(setMeta: { run(key: string, value: string): unknown }, meta: SnapshotMeta): void {
  setMeta.run("log_base_index", String(meta.lastIndex));
  setMeta.run("log_base_term", String(meta.lastTerm));
  setMeta.run("log_base_members", JSON.stringify(meta.members));
}

/**
 * Opens a second connection to a node's database for the log writer. The
 * node's own connection created the schema and holds the data directory's
 * lock.
 */
export function openWriterConnection(path: string): Database {
  const db = new Database(path, { create: false, strict: true });
  db.exec("PRAGMA synchronous = FULL");
  db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
  return db;
}

/**
 * Claims `dir` for this process with a LOCK file holding its PID, so that a
 * second node started on the same directory by mistake stops before it
 * touches anything. A lock whose process no longer runs (the node was
 * killed) is taken over. Returns the lock file's path.
 */
function lockDataDir(dir: string): string {
  const path = join(dir, "LOCK");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o600);
      try {
        writeSync(fd, `${process.pid}\n`);
      } finally {
        closeSync(fd);
      }
      return path;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const owner = Number.parseInt(readFileSync(path, "utf8"), 10);
    if (Number.isInteger(owner) && owner !== process.pid && processRuns(owner)) {
      throw new StorageError(
        `data directory ${dir} is in use by process ${owner}; stop that node first (if no node runs there, delete ${path})`,
      );
    }
    rmSync(path, { force: true });
  }
  throw new StorageError(`could not claim data directory ${dir}: another process keeps creating ${path}`);
}

function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: the process exists but belongs to another user.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  return !isZombie(pid);
}

/**
 * Returns whether `pid` has exited but was not yet reaped by its parent. A
 * node killed with SIGKILL stays a zombie until then, and signal 0 still
 * reaches it. Only Linux is checked, through /proc.
 */
function isZombie(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return false;
  }
  // The state follows the command name, which is in parentheses and may contain spaces.
  return stat.charAt(stat.lastIndexOf(")") + 2) === "Z";
}
