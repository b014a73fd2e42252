// The log writer's thread: commits the write batches the node sends, in the
// order they arrive, each in one SQLite transaction on its own connection.
// Between batches it compacts the stored log, one dropped segment per
// transaction. It reports each finished batch twice: through shared memory
// for a node thread that waits for it, and with a message for one that does not.

import type { Database } from "bun:sqlite";
import type { SnapshotMeta } from "../raft/types.ts";
import { decodeWrites } from "./batch-codec.ts";
import {
  CLOSED_SLOT,
  COMPLETED_SLOT,
  ERROR_BYTES_OFFSET,
  ERROR_LENGTH_SLOT,
  FAILED_SLOT,
  WRITE_MICROS_SLOT,
  type WorkerReply,
  type WorkerRequest,
} from "./log-writer.ts";
import { BatchWriter, openWriterConnection } from "./sqlite.ts";

declare const self: Worker;

let db: Database | null = null;
let writer: BatchWriter | null = null;
let shared: Int32Array | null = null;
let sharedBytes: Uint8Array | null = null;
let failed = false;
/** The snapshot the stored log is being compacted to, or null when none is pending. */
let compactTarget: SnapshotMeta | null = null;
let compactScheduled = false;

function scheduleCompaction(): void {
  if (compactScheduled) return;
  compactScheduled = true;
  // A timer, not a loop: batches that arrive meanwhile are written first.
  setTimeout(() => {
    compactScheduled = false;
    const target = compactTarget;
    if (failed || !writer || !target) return;
    try {
      if (writer.compactStep(target)) {
        if (compactTarget === target) compactTarget = null;
        reply({ type: "compacted", index: target.lastIndex });
      }
    } catch (err) {
      fail(err);
      return;
    }
    if (compactTarget) scheduleCompaction();
  }, 0);
}

function reply(message: WorkerReply): void {
  self.postMessage(message);
}

function fail(err: unknown): void {
  failed = true;
  const message = err instanceof Error ? err.message : String(err);
  if (shared && sharedBytes) {
    const encoded = new TextEncoder().encode(message).subarray(0, sharedBytes.byteLength - ERROR_BYTES_OFFSET);
    sharedBytes.set(encoded, ERROR_BYTES_OFFSET);
    Atomics.store(shared, ERROR_LENGTH_SLOT, encoded.byteLength);
    Atomics.store(shared, FAILED_SLOT, 1);
    Atomics.notify(shared, COMPLETED_SLOT);
  }
  reply({ type: "failed", message });
}

self.onmessage = (event: MessageEvent<WorkerRequest>) => {
  const request = event.data;
  switch (request.type) {
    case "open":
      shared = new Int32Array(request.shared);
      sharedBytes = new Uint8Array(request.shared);
      try {
        db = openWriterConnection(request.path);
        writer = new BatchWriter(db);
      } catch (err) {
        fail(err);
      }
      return;
    case "write":
      if (failed || !writer || !shared) return;
      try {
        const started = performance.now();
        writer.write(decodeWrites(request.buffer));
        Atomics.store(shared, WRITE_MICROS_SLOT, Math.min(2 ** 31 - 1, Math.round((performance.now() - started) * 1000)));
      } catch (err) {
        fail(err);
        return;
      }
      Atomics.store(shared, COMPLETED_SLOT, request.seq);
      Atomics.notify(shared, COMPLETED_SLOT);
      reply({ type: "done", seq: request.seq });
      return;
    case "compact":
      if (!compactTarget || request.meta.lastIndex > compactTarget.lastIndex) compactTarget = request.meta;
      scheduleCompaction();
      return;
    case "close":
      try {
        writer?.finalize();
        db?.close();
      } finally {
        db = null;
        writer = null;
        if (shared) {
          Atomics.store(shared, CLOSED_SLOT, 1);
          Atomics.notify(shared, CLOSED_SLOT);
        }
      }
      return;
  }
};
