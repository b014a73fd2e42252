// Writes a node's Raft log on a thread of its own, so that the event loop
// keeps serving sockets while SQLite commits and fsyncs.
//
// It also compacts the stored log after a snapshot, one dropped segment at a
// time between batches (0.6 ms for 4,000 entries of 280 bytes), so that
// neither the event loop nor the log's writes wait for the whole compaction.
//
// One batch is in flight at a time. Writes queued meanwhile wait and then go
// to the thread together, as one transaction with one fsync: group commit
// that grows with the disk's latency. Batches finish in the order they were
// queued, and each queued write learns the sequence number of the batch that
// carries it, so the node can hold back what depends on that write.
//
// A caller with little to do during its fsync, such as a follower whose
// acknowledgement waits for the write, may mark a write inline. It is then
// made at once on the caller's connection, which saves waking two threads,
// if the thread is idle and the previous write took under
// INLINE_WRITE_MAX_MS. On a 2-core VM that cut a follower's CPU per SET by 8
// to 15% at 64 SETs in flight and by 20 to 28% for sequential SETs
// (redis-benchmark). A slow disk therefore stalls the event loop for one
// write now and then, not for every write. A write on the thread counts
// only its transaction, timed there. When the hand-over and the reply
// counted too, writes stayed on the thread after a slow fsync. On a slow
// VM, 12% of a leader's sequential writes then went to the thread, and 3% now.
// While the thread compacts, writes stay queued, because a write at once
// would wait for the compaction's database lock and SQLite's busy handler
// sleeps 1 ms or more.

import { LOG_WRITER_WORKER_URL } from "../worker-urls.ts";
import { encodeWrites } from "./batch-codec.ts";
import type { SnapshotMeta } from "../raft/types.ts";
import { StorageError, type StorageWrite } from "./sqlite.ts";

// Shared memory: Int32 slots, then the text of a failure.
export const COMPLETED_SLOT = 0;
export const FAILED_SLOT = 1;
export const ERROR_LENGTH_SLOT = 2;
export const CLOSED_SLOT = 3;
/** Duration of the newest finished batch's transaction, in microseconds. */
export const WRITE_MICROS_SLOT = 4;
export const ERROR_BYTES_OFFSET = 32;
const SHARED_BYTES = 4096;

/** How long drain() waits for the thread before it declares it stuck. */
const DRAIN_TIMEOUT_MS = 60_000;
/** How long close() waits for the thread to close its connection. */
const CLOSE_TIMEOUT_MS = 5_000;
/** Duration of a write, in ms, from which the next writes go to the thread. */
export const INLINE_WRITE_MAX_MS = 2;

export type WorkerRequest =
  | { type: "open"; path: string; shared: SharedArrayBuffer }
  | { type: "write"; seq: number; buffer: ArrayBuffer }
  | { type: "compact"; meta: SnapshotMeta }
  | { type: "close" };

export type WorkerReply = { type: "done"; seq: number } | { type: "compacted"; index: number } | { type: "failed"; message: string };

export interface LogWriterHandlers {
  /** Every batch up to `seq` is durable, and its transaction took `ms` on the thread. Called in order. */
  onDone: (seq: number, ms: number) => void;
  /** The stored log now starts after `index`. */
  onCompacted: (index: number) => void;
  /** The thread could not write; nothing more will be written. */
  onError: (err: StorageError) => void;
  /** Writes a batch durably on the caller's connection. When absent, every write goes to the thread. */
  writeInline?: (write: StorageWrite) => void;
  /** A write made on the caller's connection took `ms`. */
  onInlineWrite?: (ms: number) => void;
}

export class LogWriter {
  readonly #worker: Worker;
  readonly #shared: Int32Array;
  readonly #sharedBytes: Uint8Array;
  readonly #handlers: LogWriterHandlers;
  /** Sequence number of the newest batch sent to the thread. */
  #submitted = 0;
  /** Sequence number of the newest batch whose completion was handled. */
  #completed = 0;
  /** Writes waiting for the batch in flight to finish. */
  #queued: StorageWrite[] = [];
  #error: StorageError | null = null;
  #closed = false;
  /** Duration of the newest finished write's transaction, in ms, wherever it was made. */
  #lastWriteMs = 0;
  /** Index the thread is compacting the stored log to, or 0 when it is not compacting. */
  #compactingTo = 0;

  constructor(databasePath: string, handlers: LogWriterHandlers) {
    this.#handlers = handlers;
    const shared = new SharedArrayBuffer(SHARED_BYTES);
    this.#shared = new Int32Array(shared);
    this.#sharedBytes = new Uint8Array(shared);
    this.#worker = new Worker(LOG_WRITER_WORKER_URL);
    this.#worker.onmessage = (event: MessageEvent<WorkerReply>) => this.#onReply(event.data);
    this.#worker.onerror = (event) => this.#setError(`the log writer thread crashed: ${event.message}`);
    this.#worker.unref();
    this.#post({ type: "open", path: databasePath, shared });
  }

  /** True while a batch is being written. */
  get busy(): boolean {
    return this.#submitted > this.#completed;
  }

  /** Returns whether batch `seq`, and every batch before it, is durable. */
  isDone(seq: number): boolean {
    return seq <= this.#completed;
  }

  /**
   * Queues `write` and returns the sequence number of the batch that will
   * carry it. With `inline`, a write may instead be made at once (see the
   * top of this file), and the number returned is one isDone() accepts.
   */
  write(write: StorageWrite, inline = false): number {
    if (this.#error) throw this.#error;
    if (this.#closed) throw new StorageError("the log writer is closed");
    const writeInline = this.#handlers.writeInline;
    const threadIdle = !this.busy && this.#queued.length === 0 && this.#compactingTo === 0;
    if (inline && writeInline && threadIdle && this.#lastWriteMs < INLINE_WRITE_MAX_MS) {
      const started = performance.now();
      try {
        writeInline(write);
      } catch (err) {
        this.#setError(err instanceof Error ? err.message : String(err));
        throw this.#error;
      }
      this.#lastWriteMs = performance.now() - started;
      this.#handlers.onInlineWrite?.(this.#lastWriteMs);
      return this.#completed;
    }
    this.#queued.push(write);
    if (!this.busy) this.#submitQueued();
    return this.#submitted + (this.#queued.length > 0 ? 1 : 0);
  }

  /** Compacts the stored log up to `meta` in the background, one segment at a time. */
  compact(meta: SnapshotMeta): void {
    if (this.#error || this.#closed) return;
    this.#compactingTo = Math.max(this.#compactingTo, meta.lastIndex);
    this.#post({ type: "compact", meta });
  }

  /**
   * Blocks until every queued write is durable, and handles each finished
   * batch as its reply would. Throws if the thread failed. The node calls it
   * only before its rare writes on its own connection.
   */
  drain(): void {
    while (this.busy || this.#queued.length > 0) {
      if (this.#error) throw this.#error;
      if (!this.busy) {
        this.#submitQueued();
        continue;
      }
      const target = this.#submitted;
      const deadline = performance.now() + DRAIN_TIMEOUT_MS;
      for (;;) {
        if (Atomics.load(this.#shared, FAILED_SLOT) !== 0) {
          this.#setError(this.#sharedError());
          throw this.#error!;
        }
        const done = Atomics.load(this.#shared, COMPLETED_SLOT);
        if (done >= target) break;
        if (performance.now() > deadline) {
          this.#setError(`the log writer thread did not finish batch ${target} within ${DRAIN_TIMEOUT_MS} ms`);
          throw this.#error!;
        }
        Atomics.wait(this.#shared, COMPLETED_SLOT, done, 100);
      }
      this.#complete(target);
    }
    if (this.#error) throw this.#error;
  }

  /** Waits for queued writes, then closes the thread's connection and ends the thread. */
  close(): void {
    if (this.#closed) return;
    try {
      if (!this.#error) this.drain();
    } finally {
      this.#closed = true;
      this.#post({ type: "close" });
      Atomics.wait(this.#shared, CLOSED_SLOT, 0, CLOSE_TIMEOUT_MS);
      this.#worker.terminate();
    }
  }

  #submitQueued(): void {
    const writes = this.#queued;
    this.#queued = [];
    this.#submitted++;
    const buffer = encodeWrites(writes);
    this.#post({ type: "write", seq: this.#submitted, buffer }, [buffer]);
  }

  #onReply(reply: WorkerReply): void {
    if (reply.type === "failed") this.#setError(reply.message);
    else if (reply.type === "compacted") {
      if (reply.index >= this.#compactingTo) this.#compactingTo = 0;
      this.#handlers.onCompacted(reply.index);
    }
    else if (reply.type === "done" && reply.seq > this.#completed && !this.#error) this.#complete(reply.seq);
  }

  #complete(seq: number): void {
    const ms = Atomics.load(this.#shared, WRITE_MICROS_SLOT) / 1000;
    this.#lastWriteMs = ms;
    this.#completed = seq;
    if (this.#queued.length > 0) this.#submitQueued();
    this.#handlers.onDone(seq, ms);
  }

  #setError(message: string): void {
    if (this.#error) return;
    this.#error = new StorageError(`log write failed: ${message}`);
    this.#handlers.onError(this.#error);
  }

  #sharedError(): string {
    const length = Atomics.load(this.#shared, ERROR_LENGTH_SLOT);
    return new TextDecoder().decode(this.#sharedBytes.slice(ERROR_BYTES_OFFSET, ERROR_BYTES_OFFSET + length));
  }

  #post(request: WorkerRequest, transfer: ArrayBuffer[] = []): void {
    this.#worker.postMessage(request, transfer);
  }
}
