// The core's in-memory log keeps entry data in reused byte pages. These tests
// check it against a plain array of entries, and that compaction lets pages
// be filled again instead of growing.

import { describe, expect, test } from "bun:test";
import { RaftLog } from "../../src/raft/log.ts";
import type { Entry, Member } from "../../src/raft/types.ts";
import { SimRandom } from "../sim/random.ts";

function command(index: number, term: number, length: number): Entry {
  const data = new Uint8Array(length);
  for (let i = 0; i < length; i++) data[i] = (index * 31 + i) & 0xff;
  return { index, term, kind: "command", data };
}

const members: Member[] = [{ id: "n1", raftAddr: "127.0.0.1:1", clientAddr: "127.0.0.1:2", voter: true }];

describe("RaftLog", () => {
  test("entries come back as copies", () => {
    const log = new RaftLog(null, []);
    const original = command(1, 1, 10);
    log.append(original);
    original.data.fill(0);
    const read = log.entry(1)!;
    expect(read).toEqual(command(1, 1, 10));
    read.data.fill(9);
    expect(log.entry(1)!.data).toEqual(command(1, 1, 10).data);
    expect(log.slice(1, 1)[0]).not.toBe(read);
  });

  test("config entries keep their members and empty data", () => {
    const log = new RaftLog(null, []);
    log.append(command(1, 1, 5));
    log.append({ index: 2, term: 1, kind: "config", data: new Uint8Array(0), members });
    log.append({ index: 3, term: 2, kind: "noop", data: new Uint8Array(0) });
    expect(log.lastConfigEntry()).toEqual({ index: 2, term: 1, kind: "config", data: new Uint8Array(0), members });
    expect(log.lastConfigEntry(1)).toBeUndefined();
    expect(log.entry(3)!.kind).toBe("noop");
    log.truncateFrom(2);
    expect(log.lastConfigEntry()).toBeUndefined();
    expect(log.lastIndex()).toBe(1);
  });

  test("compaction lets pages be filled again", () => {
    // 200,000 entries of 300 bytes are 60 MB. Compacted every 10,000, the
    // log contains at most about 3 MB of them at a time.
    const log = new RaftLog(null, []);
    let peak = 0;
    for (let index = 1; index <= 200_000; index++) {
      log.append(command(index, 1, 300));
      if (index % 10_000 === 0) log.compact(index - 1_000, 1);
      peak = Math.max(peak, log.dataBytes);
    }
    expect(peak).toBeLessThan(8 * 2 ** 20);
    expect(log.entry(199_500)).toEqual(command(199_500, 1, 300));
    expect(log.firstIndex()).toBe(199_001);
  });

  test("entries larger than the first pages", () => {
    // The first pages are small; an entry of up to a quarter of a full page
    // still shares pages with others.
    const log = new RaftLog(null, []);
    const sizes = [10, 20_000, 100_000, 200_000, 5, 250_000];
    sizes.forEach((size, i) => log.append(command(i + 1, 1, size)));
    sizes.forEach((size, i) => expect(log.entry(i + 1)).toEqual(command(i + 1, 1, size)));
  });

  test("large entries get pages of their own", () => {
    const log = new RaftLog(null, []);
    log.append(command(1, 1, 3 << 20));
    log.append(command(2, 1, 10));
    expect(log.entry(1)).toEqual(command(1, 1, 3 << 20));
    const before = log.dataBytes;
    log.compact(1, 1);
    expect(log.dataBytes).toBeLessThanOrEqual(before - (3 << 20));
    expect(log.entry(2)).toEqual(command(2, 1, 10));
  });

  test("a snapshot replaces the whole log", () => {
    const log = new RaftLog(null, [command(1, 1, 10), command(2, 1, 10)]);
    log.restoreSnapshot({ lastIndex: 50, lastTerm: 3, members });
    expect(log.lastIndex()).toBe(50);
    expect(log.term(50)).toBe(3);
    expect(log.entry(2)).toBeUndefined();
    log.append(command(51, 3, 4));
    expect(log.slice(51, 51)).toEqual([command(51, 3, 4)]);
  });

  for (const seed of [1, 2, 3]) {
    test(`random appends, truncations and compactions match an array (run ${seed})`, () => {
      const random = new SimRandom(seed);
      const next = () => random.next();
      const log = new RaftLog(null, []);
      let model: Entry[] = [];
      let snapshotIndex = 0;
      let term = 1;
      for (let step = 0; step < 30_000; step++) {
        const roll = next();
        const last = snapshotIndex + model.length;
        if (roll < 0.8) {
          // Mostly small entries, some up to 200 KB, and a few with pages of their own.
          const size = next();
          let length = Math.floor(next() * 400);
          if (size < 0.03) length = Math.floor(next() * 200_000);
          if (size < 0.005) length = 300_000;
          const entry = command(last + 1, term, length);
          log.append(entry);
          model.push(command(last + 1, term, length));
        } else if (roll < 0.9 && model.length > 0) {
          const from = snapshotIndex + 1 + Math.floor(next() * model.length);
          log.truncateFrom(from);
          model = model.slice(0, from - snapshotIndex - 1);
          term++;
        } else if (model.length > 0) {
          const to = snapshotIndex + 1 + Math.floor(next() * model.length);
          log.compact(to, model[to - snapshotIndex - 1].term);
          model = model.slice(to - snapshotIndex);
          snapshotIndex = to;
        }
        expect(log.lastIndex()).toBe(snapshotIndex + model.length);
        if (step % 500 === 0 && model.length > 0) {
          expect(log.slice(snapshotIndex + 1, snapshotIndex + model.length)).toEqual(model);
        }
      }
      for (const entry of model) expect(log.entry(entry.index)).toEqual(entry);
    });
  }
});
