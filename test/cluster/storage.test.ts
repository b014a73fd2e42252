// Damaged storage after a crash. A follower whose SQLite WAL lost its last
// frames, or has garbage appended, must start, treat the lost tail as not yet
// received and catch up. A follower whose main database file has a corrupt
// page must refuse to start with a clear error, and can be removed, wiped and
// added again. The stored commit index may lag without losing writes.
//
// WAL layout used here (https://www.sqlite.org/fileformat2.html#walformat):
// a 32-byte header (page size as a big-endian u32 at offset 8, salts at 16
// and 20), then frames of a 24-byte header (salts copied at 8 and 12) plus
// one page. Frames whose salts differ from the header's are left over from
// before the last WAL reset and are ignored by SQLite.

import { describe, expect } from "bun:test";
import { Database } from "bun:sqlite";
import {
  appendFileSync,
  closeSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RespClient } from "../../src/client/client.ts";
import { SegmentedLog } from "../../src/storage/log-segments.ts";
import {
  Cluster,
  clusterTest,
  describeReply,
  findLostWrites,
  installClusterHooks,
  waitFor,
  type ClusterNode,
  type WriteOutcome,
} from "../support/cluster.ts";

installClusterHooks();

const DATABASE_FILE = "echokv.db";
const WAL_HEADER_BYTES = 32;
const WAL_FRAME_HEADER_BYTES = 24;

/**
 * Byte offsets just past each commit frame among the live frames, in order.
 * A commit frame ends a transaction. Its header contains the database size in
 * pages at offset 4, which is zero in every other frame.
 */
function commitBoundaries(wal: Buffer): number[] {
  const { frames, frameBytes } = liveWalFrames(wal);
  const boundaries: number[] = [];
  for (let frame = 0; frame < frames; frame++) {
    const offset = WAL_HEADER_BYTES + frame * frameBytes;
    if (wal.readUInt32BE(offset + 4) !== 0) boundaries.push(offset + frameBytes);
  }
  return boundaries;
}

/** Highest Raft log index in a copy of the database and `wal` bytes, as SQLite recovers it. */
function lastLogIndexOf(dbPath: string, wal: Buffer): number {
  const scratch = mkdtempSync(join(tmpdir(), "echokv-walcheck-"));
  try {
    copyFileSync(dbPath, join(scratch, DATABASE_FILE));
    writeFileSync(join(scratch, `${DATABASE_FILE}-wal`), wal);
    const db = new Database(join(scratch, DATABASE_FILE));
    try {
      const log = new SegmentedLog(db);
      try {
        return log.lastIndex();
      } finally {
        log.finalize();
      }
    } finally {
      db.close();
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** Number of frames at the start of the WAL that belong to its current generation (salts match the header). */
function liveWalFrames(wal: Buffer): { frames: number; frameBytes: number } {
  const pageSize = wal.readUInt32BE(8);
  const frameBytes = WAL_FRAME_HEADER_BYTES + pageSize;
  const salt1 = wal.readUInt32BE(16);
  const salt2 = wal.readUInt32BE(20);
  let frames = 0;
  for (let offset = WAL_HEADER_BYTES; offset + frameBytes <= wal.length; offset += frameBytes) {
    if (wal.readUInt32BE(offset + 8) !== salt1 || wal.readUInt32BE(offset + 12) !== salt2) break;
    frames++;
  }
  return { frames, frameBytes };
}

/** B-tree page type flags: interior index, interior table, leaf index, leaf table. */
const BTREE_PAGE_TYPES = new Set([0x02, 0x05, 0x0a, 0x0d]);

/**
 * Returns the 0-based number of the b-tree page closest to the middle of the
 * database file. Free pages are skipped, because SQLite never reads their
 * content and damage there would go unnoticed by design.
 */
function middleBtreePage(db: Buffer, pageSize: number): number {
  const pages = Math.floor(db.length / pageSize);
  const middle = Math.floor(pages / 2);
  for (let distance = 0; distance < pages; distance++) {
    for (const page of [middle - distance, middle + distance]) {
      if (page >= 1 && page < pages && BTREE_PAGE_TYPES.has(db[page * pageSize])) return page;
    }
  }
  throw new Error(`no b-tree page found among ${pages} pages`);
}

/** Writes `SET t<i> <i>` for i in [from, to) through `node`, 100 per pipeline, and records the acknowledged ones. */
async function writeRange(node: ClusterNode, from: number, to: number, acked: WriteOutcome[]): Promise<void> {
  const client = await RespClient.connect(node.clientAddr, { timeoutMs: 10_000 });
  try {
    for (let start = from; start < to; start += 100) {
      const end = Math.min(start + 100, to);
      const batch: Array<Promise<void>> = [];
      for (let i = start; i < end; i++) {
        batch.push(
          client.command(["SET", `t${i}`, String(i)]).then((reply) => {
            if (reply.type === "simple" && reply.value === "OK") {
              acked.push({ key: `t${i}`, value: String(i), nodeId: node.id, sentAt: 0, ackedAt: Date.now(), error: null });
            }
          }),
        );
      }
      await Promise.all(batch);
    }
  } finally {
    client.close();
  }
}

/** Lines of the node's log that mean it crashed or broke an invariant. */
function fatalLines(node: ClusterNode): string[] {
  return node.log().split("\n").filter((line) => / ERROR |invariant|panic|uncaught/i.test(line));
}

/**
 * Writes 5,000 keys through the leader and SIGKILLs a follower mid-stream,
 * after 2,000 are acknowledged. Damages its WAL with `damage`, restarts it
 * while the writes go on, and checks that it catches up with every
 * acknowledged write.
 */
async function crashDamageAndRecover(name: string, damage: (walPath: string, ackedIndex: number) => string): Promise<void> {
  const cluster = new Cluster({ name, tickMs: 20 });
  const nodes = await cluster.startCluster(3);
  const leader = await cluster.waitForLeader();
  const follower = nodes.find((node) => node !== leader)!;
  const acked: WriteOutcome[] = [];

  const writing = writeRange(leader, 0, 5000, acked);
  await waitFor("2,000 acknowledged writes", () => acked.length >= 2000, { timeoutMs: 30_000, intervalMs: 1 });
  await cluster.kill(follower, "SIGKILL");
  const followerIndexAtKill = Number(
    /match_index=(\d+)/.exec([...(await cluster.info(leader))].find(([field, value]) => /^member\d+$/.test(field) && value.includes(`id=${follower.id},`))?.[1] ?? "")?.[1] ?? "0",
  );
  const walPath = join(follower.dataDir, `${DATABASE_FILE}-wal`);
  expect(existsSync(walPath), `${walPath} exists after SIGKILL`).toBe(true);
  const description = damage(walPath, followerIndexAtKill);

  await cluster.start(follower);
  const restartedAt = (await cluster.info(follower)).get("last_log_index");
  console.log(`${name}: ${description}; the leader had match_index ${followerIndexAtKill} for ${follower.id}, which restarted with last_log_index ${restartedAt}`);
  await writing;
  expect(acked.length).toBe(5000);

  const commitIndex = Number((await cluster.info(leader)).get("commit_index"));
  await cluster.waitForApplied(follower, commitIndex, 20_000);
  await cluster.waitForValue(follower, "t4999", "4999");
  expect((await findLostWrites(follower, acked)).slice(0, 10)).toEqual([]);
  for (const node of nodes) expect(node.running, `${node.id} running`).toBe(true);
  expect(fatalLines(follower)).toEqual([]);
}

describe("damaged follower storage", () => {
  clusterTest(
    "WAL cut below acked index",
    async () => {
      await crashDamageAndRecover("c14-truncate", (walPath, ackedIndex) => {
        // Cut whole transactions off the end until the follower has lost
        // entries it had acknowledged, as after a torn append: the case where
        // the leader's match index is above the follower's last index.
        const wal = readFileSync(walPath);
        const boundaries = commitBoundaries(wal);
        const dbPath = walPath.slice(0, -"-wal".length);
        for (let cut = 1; cut <= Math.min(20, boundaries.length - 1); cut++) {
          const size = boundaries[boundaries.length - 1 - cut];
          const lastIndex = lastLogIndexOf(dbPath, wal.subarray(0, size));
          if (lastIndex >= ackedIndex) continue;
          truncateSync(walPath, size);
          return `WAL of ${wal.length} bytes cut by ${cut} transactions to ${size} bytes, last log index ${lastIndex}`;
        }
        throw new Error(`cutting up to 20 of ${boundaries.length} WAL transactions never dropped below acknowledged index ${ackedIndex}`);
      });
    },
    90_000,
  );

  clusterTest(
    "WAL with 500 garbage bytes appended",
    async () => {
      await crashDamageAndRecover("c14-append", (walPath) => {
        const before = statSync(walPath).size;
        const garbage = Buffer.alloc(500);
        for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 131 + 7) & 0xff;
        appendFileSync(walPath, garbage);
        return `appended 500 bytes to a WAL of ${before} bytes`;
      });
    },
    90_000,
  );

  clusterTest(
    "corrupt database page refuses start",
    async () => {
      const cluster = new Cluster({ name: "c14-corrupt", tickMs: 20 });
      const nodes = await cluster.startCluster(3);
      const leader = await cluster.waitForLeader();
      const follower = nodes.find((node) => node !== leader)!;
      const acked: WriteOutcome[] = [];
      await writeRange(leader, 0, 2000, acked);
      await cluster.waitForValue(follower, "t1999", "1999");

      // A clean stop checkpoints the WAL, so the damaged page is the only copy.
      await cluster.kill(follower, "SIGTERM");
      const dbPath = join(follower.dataDir, DATABASE_FILE);
      const walBytes = existsSync(`${dbPath}-wal`) ? statSync(`${dbPath}-wal`).size : 0;
      expect(walBytes, "WAL bytes left after a clean stop").toBe(0);
      const db = readFileSync(dbPath);
      const pageSizeField = db.readUInt16BE(16);
      const pageSize = pageSizeField === 1 ? 65536 : pageSizeField;
      const pages = Math.floor(db.length / pageSize);
      const page = middleBtreePage(db, pageSize);
      const noise = Buffer.alloc(pageSize);
      for (let i = 0; i < noise.length; i++) noise[i] = (i * 197 + 89) & 0xff;
      const fd = openSync(dbPath, "r+");
      try {
        writeSync(fd, noise, 0, pageSize, page * pageSize);
      } finally {
        closeSync(fd);
      }
      console.log(`corrupt database page: overwrote page ${page + 1} of ${pages} (${pageSize} bytes each)`);

      await cluster.start(follower, "none");
      const exitCode = await follower.exitWithin(10_000);
      expect(exitCode).not.toBe("still running");
      expect(exitCode).not.toBe(0);
      const message = follower.fatalMessage();
      console.log(`corrupt database page: ${message}`);
      expect(message).toMatch(/corrupt/i);
      expect(message).toContain(follower.dataDir);

      // The other two keep serving, and the operator's way back: REMOVE, wipe, join again.
      const survivors = nodes.filter((node) => node !== follower);
      const current = await cluster.waitForLeader(survivors);
      expect(describeReply(await cluster.command(current, ["SET", "during", "outage"]))).toBe("OK");
      expect(describeReply(await cluster.command(current, ["REMOVE", follower.id], 10_000))).toBe("OK");
      rmSync(follower.dataDir, { recursive: true, force: true });
      follower.joinAddr = current.clientAddr;
      await cluster.start(follower);
      await cluster.waitForVoters(nodes);
      await cluster.waitForValue(follower, "during", "outage", 10_000);
      expect((await findLostWrites(follower, acked)).slice(0, 10)).toEqual([]);
    },
    90_000,
  );
});

/** Reads the commit index a node last wrote to its database, through a second connection. */
function storedCommitIndex(node: ClusterNode): number {
  const db = new Database(join(node.dataDir, DATABASE_FILE));
  try {
    const row = db.query<{ value: string }, []>("SELECT value FROM meta WHERE key = 'commit_index'").get();
    return Number(row?.value ?? 0);
  } finally {
    db.close();
  }
}

describe("stored commit index", () => {
  clusterTest(
    "lags, then catches up",
    async () => {
      const cluster = new Cluster({ name: "commit-index" });
      const nodes = await cluster.startCluster(3);
      const leader = await cluster.waitForLeader(nodes);
      // Within the delay after the commit index was last stored, writes leave
      // it behind. Storing it with every write would leave it one write behind.
      await Bun.sleep(500);
      for (let i = 0; i < 20; i++) expect(describeReply(await cluster.command(leader, ["SET", `lag-${i}`, String(i)]))).toBe("OK");
      const committed = Number((await cluster.info(leader)).get("commit_index"));
      expect(committed - storedCommitIndex(leader)).toBeGreaterThanOrEqual(5);

      for (const node of nodes) {
        await waitFor(`${node.id} to store commit index ${committed}`, () => storedCommitIndex(node) >= committed, { timeoutMs: 5000 });
      }

      // A lagging stored commit index loses no acknowledged write.
      for (let i = 20; i < 40; i++) expect(describeReply(await cluster.command(leader, ["SET", `lag-${i}`, String(i)]))).toBe("OK");
      for (const node of nodes) await cluster.kill(node, "SIGKILL");
      for (const node of nodes) await cluster.start(node, "none");
      const next = await cluster.waitForLeader(nodes);
      for (let i = 0; i < 40; i++) await cluster.waitForValue(next, `lag-${i}`, String(i));
    },
    60_000,
  );
});
