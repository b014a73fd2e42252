// Snapshot files of one node: taking them, finding the newest valid one at
// start, and streaming them to followers that are behind the compaction
// point. File names are `snapshot-<index>-<term>.snap` in <data-dir>/snapshots.

import { randomUUID } from "node:crypto";
import { closeSync, copyFileSync, existsSync, fsyncSync, mkdirSync, openSync, readSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import { crc32 } from "node:zlib";
import { loadSnapshotFile, SnapshotCorruptError, writeSnapshotFile, fsyncDirectory } from "../kv/snapshot-file.ts";
import type { KvStore } from "../kv/store.ts";
import { errorMessage, type Logger } from "../log.ts";
import type { Member, NodeId, SnapshotChunk, SnapshotChunkAck, SnapshotMeta } from "../raft/types.ts";
import type { SnapshotRecord, SqliteStorage } from "../storage/sqlite.ts";

/** Bytes of snapshot body per chunk message. */
export const SNAPSHOT_CHUNK_BYTES = 1024 * 1024;
/** Chunks sent ahead of the receiver's acknowledgements. */
const SNAPSHOT_WINDOW_CHUNKS = 4;
/** Reason of an acknowledgement that requests a resend from the receiver's position. */
const RESEND = "resend";
/** A transfer with no acknowledgement for this long is abandoned and retried. */
const SNAPSHOT_STALL_MS = 10_000;
/**
 * Shorter limit before the first acknowledgement. Chunks sent while the
 * connection to the peer is still being re-established are dropped, and
 * waiting the full stall time for them would delay the peer by 10 s.
 */
const SNAPSHOT_FIRST_ACK_MS = 2_000;
/**
 * Time without an acknowledgement after which the window is sent again
 * from the last acknowledged byte. The transport drops messages while a
 * connection is being re-established, as when a wiped node joins again. In
 * one benchmark run such a transfer stalled for the full SNAPSHOT_STALL_MS
 * after its first acknowledgement.
 */
const SNAPSHOT_RESEND_MS = 1_000;

export function snapshotFileName(meta: SnapshotMeta): string {
  return `snapshot-${meta.lastIndex}-${meta.lastTerm}.snap`;
}

export interface LoadedSnapshot {
  record: SnapshotRecord;
  store: KvStore;
}

/** Minimum time between two progress lines of one operation. */
export const PROGRESS_INTERVAL_MS = 2000;

/**
 * Logs the progress of a long operation at most every PROGRESS_INTERVAL_MS,
 * so that one that ends sooner logs only its result. Writing a snapshot of
 * 63,000 keys took about 0.1 s, and logging each 10% of it made ten lines.
 */
export class ProgressLog {
  readonly #report: (percent: number) => void;
  readonly #now: () => number;
  #lastReport: number;

  constructor(report: (percent: number) => void, now: () => number = () => performance.now()) {
    this.#report = report;
    this.#now = now;
    this.#lastReport = now();
  }

  update(done: number, total: number): void {
    const now = this.#now();
    if (now - this.#lastReport < PROGRESS_INTERVAL_MS) return;
    this.#lastReport = now;
    this.#report(total === 0 ? 100 : Math.min(100, Math.floor((done / total) * 100)));
  }
}

export class SnapshotStore {
  readonly dir: string;
  readonly #storage: SqliteStorage;
  readonly #logger: Logger;

  constructor(dataDir: string, storage: SqliteStorage, logger: Logger) {
    this.dir = join(dataDir, "snapshots");
    mkdirSync(this.dir, { recursive: true });
    this.#storage = storage;
    this.#logger = logger;
  }

  path(file: string): string {
    return join(this.dir, file);
  }

  newest(): SnapshotRecord | null {
    return this.#storage.snapshots()[0] ?? null;
  }

  /**
   * Loads the newest snapshot whose file is intact. A damaged file is renamed
   * to *.corrupt and forgotten, and the previous snapshot is tried, because
   * the log still contains every entry after that one. Returns null when no
   * snapshot exists. When none is usable but the log was compacted, the
   * caller must fetch a peer's.
   */
  async loadNewestValid(logBaseIndex: number): Promise<LoadedSnapshot | null> {
    for (const record of this.#storage.snapshots()) {
      const path = this.path(record.file);
      try {
        const started = performance.now();
        const progress = new ProgressLog((percent) => this.#logger.info("loading snapshot", { index: record.meta.lastIndex, percent }));
        const { store, info } = await loadSnapshotFile(path, (done, total) => progress.update(done, total));
        if (info.checksum !== record.checksum) {
          throw new SnapshotCorruptError(`${path} has checksum ${info.checksum}, the database recorded ${record.checksum}`);
        }
        this.#logger.info("loaded snapshot", {
          index: record.meta.lastIndex,
          keys: store.size,
          bytes: info.bytes,
          ms: Math.round(performance.now() - started),
        });
        return { record, store };
      } catch (err) {
        if (!(err instanceof SnapshotCorruptError) && existsSync(path)) throw err;
        this.#logger.error("snapshot unusable; trying an older one", { index: record.meta.lastIndex, file: path, error: errorMessage(err) });
        this.#storage.dropSnapshot(record.meta.lastIndex);
        if (existsSync(path)) renameSync(path, `${path}.corrupt`);
      }
    }
    if (logBaseIndex > 0) {
      this.#logger.error("no intact snapshot covers the compacted log", { log_base: logBaseIndex });
    }
    return null;
  }

  /** Writes a snapshot of `store` as of now, records it and compacts the stored log. */
  async take(meta: SnapshotMeta, store: KvStore, clusterId: string): Promise<{ record: SnapshotRecord; compactedTo: SnapshotMeta | null }> {
    // At most two snapshots on disk, counting the one being written: the
    // newest stays as the fallback until the new file is recorded.
    this.#removeFiles(this.#storage.dropOlderSnapshots());
    const file = snapshotFileName(meta);
    const progress = new ProgressLog((percent) => this.#logger.info("writing snapshot", { index: meta.lastIndex, percent }));
    const info = await writeSnapshotFile(this.path(file), { version: 1, ...meta, clusterId }, store, (done, total) =>
      progress.update(done, total),
    );
    const record: SnapshotRecord = { meta, file, bytes: info.bytes, checksum: info.checksum };
    const obsolete = this.#storage.recordSnapshot(record);
    this.#removeFiles(obsolete);
    const previous = this.#storage.snapshots()[1];
    return { record, compactedTo: previous ? previous.meta : null };
  }

  /** Records a snapshot received from a peer as this node's newest, keeping the log. */
  record(record: SnapshotRecord): void {
    this.#removeFiles(this.#storage.recordSnapshot(record));
  }

  /** Records a snapshot received from the leader as the only one, replacing the whole log. */
  install(record: SnapshotRecord, hardState: Parameters<SqliteStorage["installSnapshot"]>[1]): void {
    this.#removeFiles(this.#storage.installSnapshot(record, hardState));
  }

  #removeFiles(files: string[]): void {
    for (const file of files) {
      try {
        rmSync(this.path(file), { force: true });
      } catch (err) {
        this.#logger.warn("could not delete an old snapshot file", { file, error: errorMessage(err) });
      }
    }
  }

  /** Reads `length` bytes at `offset` of a recorded snapshot file. */
  read(record: SnapshotRecord, offset: number, length: number): Buffer {
    const fd = openSync(this.path(record.file), "r");
    try {
      const size = statSync(this.path(record.file)).size;
      const buffer = Buffer.alloc(Math.max(0, Math.min(length, size - offset)));
      let done = 0;
      while (done < buffer.byteLength) {
        const read = readSync(fd, buffer, done, buffer.byteLength - done, offset + done);
        if (read === 0) break;
        done += read;
      }
      return buffer.subarray(0, done);
    } finally {
      closeSync(fd);
    }
  }
}

interface OutgoingTransfer {
  id: number;
  to: NodeId;
  term: number;
  record: SnapshotRecord;
  total: number;
  /** Next byte offset to send. */
  sent: number;
  /** Bytes the receiver confirmed. */
  acked: number;
  lastAckAt: number;
  /** When the window was last sent again, or when the transfer started. */
  lastResendAt: number;
  progress: ProgressLog;
}

interface IncomingTransfer {
  id: number;
  from: NodeId;
  term: number;
  meta: SnapshotMeta;
  total: number;
  received: number;
  fd: number;
  tmpPath: string;
  progress: ProgressLog;
}

export interface TransferHooks {
  send: (message: SnapshotChunk | SnapshotChunkAck) => void;
  /** Called when a transfer to a follower ends; `ok` only means the body arrived. */
  onSendDone: (to: NodeId, ok: boolean) => void;
  /** Called when a complete, verified snapshot body arrived from the leader. */
  onReceived: (from: NodeId, term: number, loaded: LoadedSnapshot) => void;
  currentTerm: () => number;
  /** Returns why this node does not need a snapshot ending at `meta`, or null when it does. */
  snapshotNotNeeded: (meta: SnapshotMeta) => string | null;
}

/**
 * Streams snapshot files between runtimes in chunks with a small window of
 * unacknowledged chunks, so a large snapshot neither floods the socket nor
 * delays heartbeats for long. An interrupted transfer starts over.
 */
export class SnapshotTransfers {
  readonly #self: NodeId;
  readonly #snapshots: SnapshotStore;
  readonly #logger: Logger;
  readonly #hooks: TransferHooks;
  #outgoing = new Map<NodeId, OutgoingTransfer>();
  #incoming: IncomingTransfer | null = null;
  /** The last transfer received whole, so a chunk resent after its final acknowledgement was lost is acknowledged again. */
  #lastCompleted: { id: number; total: number } | null = null;
  #nextId = Date.now();

  constructor(self: NodeId, snapshots: SnapshotStore, logger: Logger, hooks: TransferHooks) {
    this.#self = self;
    this.#snapshots = snapshots;
    this.#logger = logger;
    this.#hooks = hooks;
  }

  /** Starts sending the newest snapshot to `to`, unless a transfer to it is under way. */
  start(to: NodeId): void {
    if (this.#outgoing.has(to)) return;
    const record = this.#snapshots.newest();
    if (!record) {
      this.#logger.error("a follower needs a snapshot but none exists", { peer: to });
      this.#hooks.onSendDone(to, false);
      return;
    }
    const total = statSync(this.#snapshots.path(record.file)).size;
    const transfer: OutgoingTransfer = {
      id: this.#nextId++,
      to,
      term: this.#hooks.currentTerm(),
      record,
      total,
      sent: 0,
      acked: 0,
      lastAckAt: Date.now(),
      lastResendAt: Date.now(),
      progress: new ProgressLog((percent) =>
        this.#logger.info("sending snapshot", { peer: to, index: record.meta.lastIndex, percent, bytes: total }),
      ),
    };
    this.#outgoing.set(to, transfer);
    this.#logger.info("snapshot transfer started", { peer: to, index: record.meta.lastIndex, bytes: total });
    this.#pump(transfer);
  }

  #pump(transfer: OutgoingTransfer): void {
    while (transfer.sent < transfer.total && transfer.sent - transfer.acked < SNAPSHOT_WINDOW_CHUNKS * SNAPSHOT_CHUNK_BYTES) {
      const data = this.#snapshots.read(transfer.record, transfer.sent, SNAPSHOT_CHUNK_BYTES);
      if (data.byteLength === 0) break;
      this.#hooks.send({
        type: "snapshotChunk",
        from: this.#self,
        to: transfer.to,
        term: transfer.term,
        transfer: transfer.id,
        meta: transfer.record.meta,
        offset: transfer.sent,
        total: transfer.total,
        data,
      });
      transfer.sent += data.byteLength;
    }
  }

  onAck(ack: SnapshotChunkAck): void {
    const transfer = this.#outgoing.get(ack.from);
    if (!transfer || transfer.id !== ack.transfer) return;
    if (!ack.ok) {
      this.#finishOutgoing(transfer, false, ack.reason);
      return;
    }
    transfer.lastAckAt = Date.now();
    transfer.acked = Math.max(transfer.acked, ack.received);
    // A chunk was lost on the way (the transport drops under pressure): resend from the receiver's position.
    if (ack.reason === RESEND && ack.received < transfer.sent) transfer.sent = ack.received;
    transfer.progress.update(transfer.acked, transfer.total);
    if (transfer.acked >= transfer.total) {
      this.#finishOutgoing(transfer, true, "");
      return;
    }
    this.#pump(transfer);
  }

  #finishOutgoing(transfer: OutgoingTransfer, ok: boolean, reason: string): void {
    this.#outgoing.delete(transfer.to);
    if (ok) {
      this.#logger.info("snapshot transfer finished", { peer: transfer.to, index: transfer.record.meta.lastIndex, bytes: transfer.total });
    } else {
      this.#logger.warn("snapshot transfer failed; it will be retried", { peer: transfer.to, reason });
    }
    this.#hooks.onSendDone(transfer.to, ok);
  }

  /** Abandons transfers that stopped making progress, and transfers of an old term. */
  tick(): void {
    const now = Date.now();
    for (const transfer of [...this.#outgoing.values()]) {
      if (transfer.term !== this.#hooks.currentTerm()) this.#finishOutgoing(transfer, false, "leadership changed");
      else if (transfer.acked === 0 && now - transfer.lastAckAt > SNAPSHOT_FIRST_ACK_MS) this.#finishOutgoing(transfer, false, "no acknowledgement in 2 s");
      else if (now - transfer.lastAckAt > SNAPSHOT_STALL_MS) this.#finishOutgoing(transfer, false, "no acknowledgement in 10 s");
      else if (now - Math.max(transfer.lastAckAt, transfer.lastResendAt) > SNAPSHOT_RESEND_MS) this.#resend(transfer);
    }
  }

  /** Sends the window again from the last acknowledged byte; the receiver skips what it already has. */
  #resend(transfer: OutgoingTransfer): void {
    transfer.lastResendAt = Date.now();
    transfer.sent = transfer.acked;
    this.#pump(transfer);
  }

  /** Stops every outgoing transfer; each is reported as failed. */
  cancelOutgoing(reason: string): void {
    for (const transfer of [...this.#outgoing.values()]) this.#finishOutgoing(transfer, false, reason);
  }

  async onChunk(chunk: SnapshotChunk): Promise<void> {
    const ack = (received: number, ok: boolean, reason: string) =>
      this.#hooks.send({
        type: "snapshotChunkAck",
        from: this.#self,
        to: chunk.from,
        term: chunk.term,
        transfer: chunk.transfer,
        received,
        ok,
        reason,
      });

    if (chunk.term < this.#hooks.currentTerm()) return;
    if (this.#lastCompleted?.id === chunk.transfer) {
      ack(this.#lastCompleted.total, true, "");
      return;
    }
    let incoming = this.#incoming;
    if (!incoming || incoming.id !== chunk.transfer) {
      if (chunk.offset !== 0) {
        ack(0, false, "unknown transfer; start again from offset 0");
        return;
      }
      // A second snapshot at an index already stored would be renamed over
      // that file, whose recorded checksum is of other bytes.
      const notNeeded = this.#hooks.snapshotNotNeeded(chunk.meta);
      if (notNeeded !== null) {
        ack(0, false, notNeeded);
        return;
      }
      this.#abortIncoming();
      incoming = this.#openIncoming(chunk);
    }
    if (chunk.offset !== incoming.received) {
      ack(incoming.received, true, RESEND);
      return;
    }

    try {
      let done = 0;
      while (done < chunk.data.byteLength) done += writeSync(incoming.fd, chunk.data, done);
      incoming.received += chunk.data.byteLength;
    } catch (err) {
      this.#abortIncoming();
      ack(0, false, `follower could not write the snapshot: ${errorMessage(err)}`);
      return;
    }
    incoming.progress.update(incoming.received, incoming.total);

    if (incoming.received < incoming.total) {
      ack(incoming.received, true, "");
      return;
    }
    // Chunks resent while the file is verified are acknowledged as complete.
    this.#lastCompleted = { id: incoming.id, total: incoming.total };
    const loaded = await this.#completeIncoming(incoming);
    if (!loaded) {
      if (this.#lastCompleted?.id === incoming.id) this.#lastCompleted = null;
      ack(0, false, "snapshot failed verification on the follower");
      return;
    }
    ack(incoming.received, true, "");
    this.#hooks.onReceived(incoming.from, incoming.term, loaded);
  }

  #openIncoming(chunk: SnapshotChunk): IncomingTransfer {
    const tmpPath = this.#snapshots.path(`receiving-${chunk.transfer}.tmp`);
    const incoming: IncomingTransfer = {
      id: chunk.transfer,
      from: chunk.from,
      term: chunk.term,
      meta: chunk.meta,
      total: chunk.total,
      received: 0,
      fd: openSync(tmpPath, "w", 0o600),
      tmpPath,
      progress: new ProgressLog((percent) =>
        this.#logger.info("receiving snapshot", { from: chunk.from, index: chunk.meta.lastIndex, percent, bytes: chunk.total }),
      ),
    };
    this.#incoming = incoming;
    this.#logger.info("incoming snapshot transfer started", { from: chunk.from, index: chunk.meta.lastIndex, bytes: chunk.total });
    return incoming;
  }

  async #completeIncoming(incoming: IncomingTransfer): Promise<LoadedSnapshot | null> {
    this.#incoming = null;
    const file = snapshotFileName(incoming.meta);
    const path = this.#snapshots.path(file);
    try {
      fsyncSync(incoming.fd);
      closeSync(incoming.fd);
      renameSync(incoming.tmpPath, path);
      fsyncDirectory(path);
      const { store, info } = await loadSnapshotFile(path);
      return { record: { meta: incoming.meta, file, bytes: info.bytes, checksum: info.checksum }, store };
    } catch (err) {
      this.#logger.error("received snapshot is unusable", { from: incoming.from, error: errorMessage(err) });
      rmSync(path, { force: true });
      rmSync(incoming.tmpPath, { force: true });
      return null;
    }
  }

  #abortIncoming(): void {
    const incoming = this.#incoming;
    if (!incoming) return;
    this.#incoming = null;
    try {
      closeSync(incoming.fd);
    } catch {
      // already closed
    }
    rmSync(incoming.tmpPath, { force: true });
  }

  close(): void {
    this.#abortIncoming();
    this.#outgoing.clear();
  }
}

/**
 * Starts a new one-node cluster in an empty data directory from a backup
 * file: verifies it, copies it into the snapshots directory and records it
 * as the state at its index, with this node as the only member. Returns the
 * new cluster id.
 */
export async function restoreFromBackup(storage: SqliteStorage, dataDir: string, backup: string, self: Member, logger: Logger): Promise<string> {
  const started = performance.now();
  // The new cluster takes the backup's term, known once its header is read.
  let term = 0;
  const log = logger.with(() => ({ node: self.id, term }));
  const progress = new ProgressLog((percent) => log.info("reading backup", { backup, percent }));
  const { header, store, info } = await loadSnapshotFile(backup, (done, total) => progress.update(done, total));
  term = header.lastTerm;
  const meta: SnapshotMeta = { lastIndex: header.lastIndex, lastTerm: header.lastTerm, members: [{ ...self, voter: true }] };
  const snapshots = new SnapshotStore(dataDir, storage, log);
  const file = snapshotFileName(meta);
  const target = snapshots.path(file);
  copyFileSync(backup, `${target}.tmp`);
  const fd = openSync(`${target}.tmp`, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(`${target}.tmp`, target);
  fsyncDirectory(target);

  const clusterId = randomUUID();
  storage.bootstrapFromSnapshot(
    clusterId,
    { meta, file, bytes: info.bytes, checksum: info.checksum },
    { term: header.lastTerm, votedFor: null, commitIndex: header.lastIndex },
  );
  log.info("restored a new one-node cluster from a backup", {
    cluster: clusterId,
    backup,
    index: header.lastIndex,
    keys: store.size,
    ms: Math.round(performance.now() - started),
  });
  return clusterId;
}

/** CRC-32 of a byte range, exported for backup verification. */
export function checksumOf(data: Uint8Array, previous = 0): number {
  return crc32(data, previous) >>> 0;
}
