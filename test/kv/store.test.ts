import { afterAll, describe, expect, test } from "bun:test";
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeCommand } from "../../src/kv/command.ts";
import { loadSnapshotFile, SnapshotCorruptError, writeSnapshotFile, type SnapshotHeader } from "../../src/kv/snapshot-file.ts";
import { KvStore, type SnapshotCursor } from "../../src/kv/store.ts";

/** Small deterministic generator (mulberry32), so a failing seed can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const bytes = (text: string) => Buffer.from(text, "latin1");
const text = (value: Uint8Array | undefined) => (value === undefined ? undefined : Buffer.from(value).toString("latin1"));

/** Decodes the records a cursor returns into a map; a later record of a key wins. */
function drain(cursor: SnapshotCursor, maxBytes: number): Map<string, string> {
  const out = new Map<string, string>();
  for (let batch = cursor.next(maxBytes); batch !== null; batch = cursor.next(maxBytes)) {
    let offset = 0;
    for (let i = 0; i < batch.records; i++) {
      const keyLength = batch.bytes.readUInt32BE(offset);
      const key = batch.bytes.toString("latin1", offset + 4, offset + 4 + keyLength);
      offset += 4 + keyLength;
      const valueLength = batch.bytes.readUInt32BE(offset);
      out.set(key, batch.bytes.toString("latin1", offset + 4, offset + 4 + valueLength));
      offset += 4 + valueLength;
    }
    expect(offset).toBe(batch.bytes.byteLength);
  }
  return out;
}

function expectSame(store: KvStore, reference: Map<string, string>): void {
  expect(store.size).toBe(reference.size);
  for (const [key, value] of reference) expect(text(store.get(bytes(key)))).toBe(value);
}

describe("KvStore", () => {
  test("binary keys set and delete", () => {
    const store = new KvStore();
    const key = Uint8Array.of(0, 255, 13, 10, 0);
    expect(store.get(key)).toBeUndefined();
    store.set(key, Uint8Array.of(1, 2, 3));
    expect([...store.get(key)!]).toEqual([1, 2, 3]);
    store.set(key, new Uint8Array(0));
    expect(store.get(key)!.byteLength).toBe(0);
    expect(store.has(key)).toBe(true);
    store.set(new Uint8Array(0), bytes("empty key"));
    expect(text(store.get(new Uint8Array(0)))).toBe("empty key");
    expect(store.size).toBe(2);
    expect(store.delete(key)).toBe(true);
    expect(store.delete(key)).toBe(false);
    expect(store.get(key)).toBeUndefined();
    expect(store.size).toBe(1);
  });

  test("apply counts removed keys", () => {
    const store = new KvStore();
    expect(store.apply(encodeCommand({ op: "set", key: bytes("a"), value: bytes("1") }))).toBe("OK");
    expect(store.apply(encodeCommand({ op: "set", key: bytes("b"), value: bytes("2") }))).toBe("OK");
    expect(store.apply(encodeCommand({ op: "del", keys: [bytes("a"), bytes("b"), bytes("c")] }))).toBe(2);
    expect(store.size).toBe(0);
    expect(store.liveBytes).toBe(0);
  });

  test("apply takes no views of entries", () => {
    // A view of a small typed array moves its bytes out of the collected
    // heap, and the log keeps thousands of entries alive.
    class NoViews extends Uint8Array {
      override subarray(): never {
        throw new Error("apply took a view of the entry");
      }
    }
    const entry = (command: Parameters<typeof encodeCommand>[0]) => new NoViews(encodeCommand(command));
    const store = new KvStore();
    expect(store.apply(entry({ op: "set", key: bytes("a"), value: bytes("1") }))).toBe("OK");
    expect(store.apply(entry({ op: "set", key: bytes("b"), value: bytes("2") }))).toBe("OK");
    expect(store.apply(entry({ op: "del", keys: [bytes("a"), bytes("c")] }))).toBe(1);
    expect(store.get(bytes("a"))).toBeUndefined();
    expect(Buffer.from(store.get(bytes("b"))!).toString()).toBe("2");
  });

  test("emptied pages are filled again", () => {
    // A value from get is a view into its page, so the views show which
    // byte arrays hold records. 20 rounds of overwrites write about 22 MB;
    // without reuse each round's pages would be new arrays.
    const store = new KvStore();
    const value = new Uint8Array(100);
    const arrays = new Set<ArrayBufferLike>();
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 10_000; i++) {
        store.set(bytes(`key:${i}`), value.fill(round));
        if (i % 100 === 0) arrays.add(store.get(bytes(`key:${i}`))!.buffer);
      }
    }
    expect(store.get(bytes("key:1234"))![0]).toBe(19);
    expect(arrays.size).toBeLessThan(10);
  });

  test("overwrites reclaim pages instead of growing", () => {
    const store = new KvStore();
    const value = new Uint8Array(100);
    for (let i = 0; i < 10_000; i++) store.set(bytes(`key:${i}`), value);
    const settled = store.memoryBytes;
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 10_000; i++) store.set(bytes(`key:${i}`), value.fill(round));
    }
    expect(store.size).toBe(10_000);
    // 50 rounds rewrite 50x the data, about 54 MB; without reclaiming, memory
    // would grow by as much. The store may also keep 16 spare pages of 1 MiB.
    expect(store.memoryBytes).toBeLessThan(settled * 2.5 + 16 * 2 ** 20);
    for (let i = 0; i < 10_000; i += 997) expect(store.get(bytes(`key:${i}`))![0]).toBe(49);
  });

  test("random overwrites stay near loaded size", () => {
    const store = new KvStore();
    const next = random(7);
    const keys = 50_000;
    const value = new Uint8Array(100);
    for (let i = 0; i < keys; i++) store.set(bytes(`key:${i}`), value);
    const loaded = store.memoryBytes;
    let peak = 0;
    for (let i = 0; i < 20 * keys; i++) {
      store.set(bytes(`key:${Math.floor(next() * keys)}`), value);
      if (i % 1000 === 0) peak = Math.max(peak, store.memoryBytes);
    }
    expect(store.size).toBe(keys);
    // Emptying pages only once half dead let memory reach about 1.5x the loaded size.
    expect(peak / loaded).toBeLessThan(1.3);
  });

  test("deleting everything releases memory", () => {
    const store = new KvStore();
    for (let i = 0; i < 500_000; i++) store.set(bytes(`key:${i}`), new Uint8Array(64));
    const full = store.memoryBytes;
    for (let i = 0; i < 500_000; i++) expect(store.delete(bytes(`key:${i}`))).toBe(true);
    store.set(bytes("last"), bytes("x"));
    expect(store.size).toBe(1);
    // Up to 16 emptied pages of 1 MiB stay as spares.
    expect(store.memoryBytes).toBeLessThan(full / 4 + 16 * 2 ** 20);
  });

  test("reserve sizes the index once", () => {
    const store = new KvStore();
    store.reserve(100_000);
    // The smallest power of two that keeps 100,000 keys under 3/4 full, at 12 bytes a slot.
    const indexBytes = 262_144 * 12;
    expect(store.memoryBytes).toBe(indexBytes);
    for (let i = 0; i < 100_000; i++) store.set(Buffer.from(`k${i}`), Buffer.from("v"));
    expect(store.size).toBe(100_000);
    expect((store.memoryBytes - indexBytes) % (1 << 20)).toBe(0);
  });

  test("large values get own pages", () => {
    const store = new KvStore();
    const big = new Uint8Array(3 << 20).fill(7);
    store.set(bytes("big"), big);
    store.set(bytes("small"), bytes("s"));
    expect(store.get(bytes("big"))!.byteLength).toBe(3 << 20);
    const before = store.memoryBytes;
    store.set(bytes("big"), bytes("now small"));
    expect(store.memoryBytes).toBeLessThan(before - (3 << 20) + 1);
    expect(text(store.get(bytes("big")))).toBe("now small");
  });

  for (const seed of [1, 2, 3, 4, 5, 6]) {
    test(`random operations match Map (run ${seed})`, () => {
      const next = random(seed);
      const store = new KvStore();
      const reference = new Map<string, string>();
      let cursor: { cursor: SnapshotCursor; expected: Map<string, string> } | null = null;
      const keySpace = 200 + Math.floor(next() * 3000);
      for (let step = 0; step < 40_000; step++) {
        const key = `k${Math.floor(next() * keySpace)}`;
        const roll = next();
        if (roll < 0.6) {
          const length = next() < 0.01 ? 300_000 : Math.floor(next() * 300);
          const value = String.fromCharCode(97 + (step % 26)).repeat(length);
          store.set(bytes(key), bytes(value));
          reference.set(key, value);
        } else if (roll < 0.85) {
          expect(store.delete(bytes(key))).toBe(reference.delete(key));
        } else {
          expect(text(store.get(bytes(key)))).toBe(reference.get(key));
        }
        if (cursor === null && next() < 0.0005) {
          cursor = { cursor: store.openCursor(), expected: new Map(reference) };
        } else if (cursor !== null && next() < 0.001) {
          expect(drain(cursor.cursor, 1 + Math.floor(next() * 20_000))).toEqual(cursor.expected);
          cursor = null;
        }
      }
      if (cursor !== null) expect(drain(cursor.cursor, 4096)).toEqual(cursor.expected);
      expectSame(store, reference);
      let live = 0;
      for (const [key, value] of reference) live += key.length + value.length;
      expect(store.liveBytes).toBe(live);
    });
  }

  test("one cursor at a time", () => {
    const store = new KvStore();
    store.set(bytes("a"), bytes("1"));
    const cursor = store.openCursor();
    expect(() => store.openCursor()).toThrow("already open");
    cursor.close();
    expect(drain(store.openCursor(), 10)).toEqual(new Map([["a", "1"]]));
  });

  test("replaceWith takes over the content", () => {
    const store = new KvStore();
    store.set(bytes("old"), bytes("1"));
    const incoming = new KvStore();
    for (let i = 0; i < 5000; i++) incoming.set(bytes(`new${i}`), bytes(`v${i}`));
    store.replaceWith(incoming);
    expect(store.get(bytes("old"))).toBeUndefined();
    expect(store.size).toBe(5000);
    expect(text(store.get(bytes("new4999")))).toBe("v4999");
    store.set(bytes("new0"), bytes("changed"));
    expect(text(store.get(bytes("new0")))).toBe("changed");
    expect(incoming.size).toBe(0);
  });
});

describe("snapshot files", () => {
  const dir = mkdtempSync(join(tmpdir(), "echokv-snapfile-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const header: SnapshotHeader = { version: 1, lastIndex: 42, lastTerm: 3, members: [], clusterId: "test-cluster" };

  async function writeSample(name: string, keys: number): Promise<{ path: string; reference: Map<string, string> }> {
    const store = new KvStore();
    const reference = new Map<string, string>();
    for (let i = 0; i < keys; i++) {
      const value = `value-${i}-`.repeat(1 + (i % 40));
      store.set(bytes(`key-${i}`), bytes(value));
      reference.set(`key-${i}`, value);
    }
    store.set(bytes("huge"), new Uint8Array(9 << 20).fill(1));
    reference.set("huge", "\u0001".repeat(9 << 20));
    const path = join(dir, name);
    const info = await writeSnapshotFile(path, header, store);
    expect(info.records).toBe(reference.size);
    return { path, reference };
  }

  test("round trip across read chunks", async () => {
    const { path, reference } = await writeSample("round.snap", 100_000);
    const loaded = await loadSnapshotFile(path);
    expect(loaded.header).toEqual(header);
    expect(loaded.info.records).toBe(reference.size);
    expectSame(loaded.store, reference);
  });

  test("replaced store fails snapshot write", async () => {
    const store = new KvStore();
    for (let i = 0; i < 30_000; i++) store.set(bytes(`key-${i}`), new Uint8Array(100));
    const path = join(dir, "replaced.snap");
    // The first batch is written before the writer yields; the store changes hands after it.
    const writing = writeSnapshotFile(path, header, store);
    store.replaceWith(new KvStore());
    await expect(writing).rejects.toThrow("the store was replaced");
    expect(existsSync(path)).toBe(false);
    expect(existsSync(`${path}.tmp`)).toBe(false);
  });

  test("damage is reported as corruption", async () => {
    const { path } = await writeSample("damaged.snap", 20_000);
    const original = readFileSync(path);
    const damages: Array<[string, () => void]> = [
      ["truncated", () => truncateSync(path, original.byteLength - 1000)],
      ["cut inside the header", () => truncateSync(path, 20)],
      ["one byte flipped", () => writeFileSync(path, Buffer.from(original).fill(0x55, 5000, 5001))],
      ["garbage appended", () => appendFileSync(path, "garbage at the end")],
      ["empty", () => writeFileSync(path, "")],
      ["not a snapshot", () => writeFileSync(path, "x".repeat(100))],
    ];
    for (const [what, damage] of damages) {
      writeFileSync(path, original);
      damage();
      const error = await loadSnapshotFile(path).then(
        () => null,
        (err: unknown) => err,
      );
      expect({ what, corrupt: error instanceof SnapshotCorruptError }).toEqual({ what, corrupt: true });
    }
  });
});
