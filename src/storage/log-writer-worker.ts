// The log writer's thread: commits the write batches the node sends, in the
// order they arrive, each in one SQLite transaction on its own connection.
// It reports each finished batch twice: through shared memory, for a node
// thread that waits for it, and with a message, for one that does not.

import type { Database } from "bun:sqlite";
import { decodeWrites } from "./batch-codec.ts";
import { CLOSED_SLOT, COMPLETED_SLOT, ERROR_BYTES_OFFSET, ERROR_LENGTH_SLOT, FAILED_SLOT, type WorkerReply, type WorkerRequest } from "./log-writer.ts";
import { BatchWriter, openWriterConnection } from "./sqlite.ts";

declare const self: Worker;

let db: Database | null = null;
let writer: BatchWriter | null = null;
let shared: Int32Array | null = null;
let sharedBytes: Uint8Array | null = null;
let failed = false;

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
        writer.write(decodeWrites(request.buffer));
      } catch (err) {
        fail(err);
        return;
      }
      Atomics.store(shared, COMPLETED_SLOT, request.seq);
      Atomics.notify(shared, COMPLETED_SLOT);
      reply({ type: "done", seq: request.seq });
      return;
    case "close":
      try {
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
