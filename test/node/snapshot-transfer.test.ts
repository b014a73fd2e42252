// Snapshot transfers between two runtimes' snapshot stores on real files,
// with the messages between them dropped on purpose. Lost chunks or lost
// acknowledgements must cost about a second, not the 10 s stall limit.

import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KvStore } from "../../src/kv/store.ts";
import { silentLogger } from "../../src/log.ts";
import { SnapshotStore, SnapshotTransfers, type LoadedSnapshot } from "../../src/node/snapshots.ts";
import type { SnapshotChunk, SnapshotChunkAck } from "../../src/raft/types.ts";
import { SqliteStorage } from "../../src/storage/sqlite.ts";

const dirs: string[] = [];
const storages: SqliteStorage[] = [];

function openStore(nodeId: string): SnapshotStore {
  const dir = mkdtempSync(join(tmpdir(), "echokv-transfer-"));
  dirs.push(dir);
  const storage = SqliteStorage.open(dir, nodeId);
  storages.push(storage);
  return new SnapshotStore(dir, storage, silentLogger);
}

afterEach(() => {
  for (const storage of storages.splice(0)) storage.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

interface Run {
  received: LoadedSnapshot | null;
  finished: boolean[];
  elapsedMs: number;
  followerFiles: string[];
}

/**
 * Sends a 6 MiB snapshot from n1 to n2. `dropChunk` and `dropAck` see each
 * message in order and return true to lose it. Ticks the sender every 50 ms,
 * as the runtime does, for at most `limitMs`.
 */
async function transfer(
  dropChunk: (chunk: SnapshotChunk, n: number) => boolean,
  dropAck: (ack: SnapshotChunkAck, n: number) => boolean,
  limitMs: number,
  notNeeded: () => string | null = () => null,
): Promise<Run> {
  const store = new KvStore();
  for (let i = 0; i < 6000; i++) store.set(Buffer.from(`key-${i}`), new Uint8Array(1024).fill(i % 251));
  const leaderStore = openStore("n1");
  await leaderStore.take({ lastIndex: 10, lastTerm: 2, members: [] }, store, "cluster-a");

  const run: Run = { received: null, finished: [], elapsedMs: 0, followerFiles: [] };
  let chunks = 0;
  let acks = 0;
  // Deliveries are asynchronous, as over a socket.
  const leader: SnapshotTransfers = new SnapshotTransfers("n1", leaderStore, silentLogger, {
    send: (message) => {
      if (message.type !== "snapshotChunk" || dropChunk(message, chunks++)) return;
      queueMicrotask(() => void follower.onChunk(message));
    },
    onSendDone: (_to, ok) => run.finished.push(ok),
    onReceived: () => {},
    currentTerm: () => 2,
    snapshotNotNeeded: () => null,
  });
  const followerStore = openStore("n2");
  const follower: SnapshotTransfers = new SnapshotTransfers("n2", followerStore, silentLogger, {
    send: (message) => {
      if (message.type !== "snapshotChunkAck" || dropAck(message, acks++)) return;
      queueMicrotask(() => leader.onAck(message));
    },
    onSendDone: () => {},
    onReceived: (_from, _term, loaded) => {
      run.received = loaded;
    },
    currentTerm: () => 2,
    snapshotNotNeeded: notNeeded,
  });

  const started = performance.now();
  leader.start("n2");
  while (run.finished.length === 0 && performance.now() - started < limitMs) {
    await Bun.sleep(50);
    leader.tick();
  }
  run.elapsedMs = performance.now() - started;
  run.followerFiles = readdirSync(followerStore.dir);
  leader.close();
  follower.close();
  return run;
}

describe("snapshot transfer", () => {
  test("arrives whole without losses", async () => {
    const run = await transfer(() => false, () => false, 5000);
    expect(run.finished).toEqual([true]);
    expect(run.received?.store.size).toBe(6000);
    expect(run.elapsedMs).toBeLessThan(1000);
  });

  test("resends after lost acknowledgements", async () => {
    // All six chunks arrive, but every acknowledgement after the first is
    // lost, the final one too: the follower acknowledges a resent chunk of
    // the finished transfer as complete.
    const run = await transfer(() => false, (_ack, n) => n >= 1 && n <= 5, 5000);
    expect(run.finished).toEqual([true]);
    expect(run.received?.store.size).toBe(6000);
    expect(run.elapsedMs).toBeGreaterThan(900);
    expect(run.elapsedMs).toBeLessThan(2500);
  });

  test("resends after lost chunks", async () => {
    // The last two chunks are lost, so no later chunk reveals the gap.
    const run = await transfer((_chunk, n) => n === 4 || n === 5, () => false, 5000);
    expect(run.finished).toEqual([true]);
    expect(run.received?.store.size).toBe(6000);
    expect(run.elapsedMs).toBeGreaterThan(900);
    expect(run.elapsedMs).toBeLessThan(2500);
  });

  test("rejected when not needed", async () => {
    const run = await transfer(() => false, () => false, 5000, () => "the follower already stores a snapshot at index 10");
    expect(run.finished).toEqual([false]);
    expect(run.received).toBeNull();
    expect(run.followerFiles).toEqual([]);
  });
});
