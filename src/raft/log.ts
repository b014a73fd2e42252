import { KIND_CODES, KINDS_BY_CODE, type Entry, type Member, type SnapshotMeta } from "./types.ts";
import { assert } from "./assert.ts";
import { LogPages } from "./log-pages.ts";

/** Rough in-memory and wire size of an entry, used for message and batch limits. */
export function entrySize(entry: Entry): number {
  return sizeOfEntry(entry.data.byteLength, entry.members?.length ?? 0);
}

function sizeOfEntry(dataBytes: number, memberCount: number): number {
  return dataBytes + 24 + memberCount * 64;
}

/** Initial number of entries the index arrays hold; they double as needed. */
const MIN_CAPACITY = 1024;

/**
 * The core's view of the log: every entry after the last snapshot, in memory.
 * Entries up to `stableIndex` are known to be on disk. Those up to
 * `handedOutIndex` were given to the runtime to persist, and the rest wait
 * for the next ready batch.
 *
 * Entries are not kept as objects. Terms, kinds and data locations sit in
 * typed arrays, data in LogPages, and the members of config entries in a
 * map. Every entry returned is a new object with its own copy of the data,
 * which the caller may keep.
 */
export class RaftLog {
  /** Index and term of the last entry folded into the snapshot (0 when none). */
  snapshotIndex: number;
  snapshotTerm: number;
  /** Highest index known to be persisted; never above lastIndex(). */
  stableIndex: number;
  /**
   * Highest index handed out by unstableEntries(), whose write may still be
   * in progress; never above lastIndex(). A runtime that writes in the
   * background gets each entry once, not again with every batch until the
   * write finishes.
   */
  handedOutIndex: number;
  /** Lowest index deleted since the last ready batch, or null when none was. */
  pendingTruncateFrom: number | null = null;

  /** Entry snapshotIndex + 1 + i is at position #head + i of the arrays below. */
  #head = 0;
  #count = 0;
  #terms = new Float64Array(MIN_CAPACITY);
  #locations = new Float64Array(MIN_CAPACITY);
  #lengths = new Uint32Array(MIN_CAPACITY);
  #kinds = new Uint8Array(MIN_CAPACITY);
  /** Members of each config entry, by index. */
  #members = new Map<number, Member[]>();
  #pages = new LogPages();

  constructor(snapshot: SnapshotMeta | null, entries: Entry[]) {
    this.snapshotIndex = snapshot?.lastIndex ?? 0;
    this.snapshotTerm = snapshot?.lastTerm ?? 0;
    for (let i = 0; i < entries.length; i++) {
      assert(entries[i].index === this.snapshotIndex + 1 + i, "log entries are not contiguous after the snapshot");
      this.#push(entries[i]);
    }
    this.stableIndex = this.lastIndex();
    this.handedOutIndex = this.stableIndex;
  }

  /** Bytes of the pages that hold entry data. */
  get dataBytes(): number {
    return this.#pages.memoryBytes;
  }

  lastIndex(): number {
    return this.snapshotIndex + this.#count;
  }

  lastTerm(): number {
    return this.term(this.lastIndex()) ?? 0;
  }

  firstIndex(): number {
    return this.snapshotIndex + 1;
  }

  /** Returns the term at `index`, or undefined when it is compacted away or beyond the end. */
  term(index: number): number | undefined {
    if (index === this.snapshotIndex) return this.snapshotTerm;
    if (index < this.snapshotIndex || index > this.lastIndex()) return undefined;
    return this.#terms[this.#position(index)];
  }

  entry(index: number): Entry | undefined {
    if (index <= this.snapshotIndex || index > this.lastIndex()) return undefined;
    return this.#read(index);
  }

  /**
   * Returns entries from `from` (inclusive) to `to` (inclusive), stopping once
   * `maxBytes` is exceeded but always returning at least one entry when any exists.
   */
  slice(from: number, to: number, maxBytes = Infinity): Entry[] {
    assert(from > this.snapshotIndex, `slice from ${from} reaches into the snapshot at ${this.snapshotIndex}`);
    const out: Entry[] = [];
    let bytes = 0;
    const last = Math.min(to, this.lastIndex());
    for (let index = from; index <= last; index++) {
      const position = this.#position(index);
      bytes += sizeOfEntry(this.#lengths[position], this.#members.get(index)?.length ?? 0);
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(this.#read(index));
    }
    return out;
  }

  /** Returns whether a log ending at (lastIndex, lastTerm) is at least as up to date as this one. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /** Appends a copy of `entry`; the caller may reuse or drop its own. */
  append(entry: Entry): void {
    assert(entry.index === this.lastIndex() + 1, `append of index ${entry.index} after ${this.lastIndex()}`);
    this.#push(entry);
  }

  /** Deletes every entry with index >= `from`. The caller guarantees none is committed. */
  truncateFrom(from: number): void {
    assert(from > this.snapshotIndex, `truncate at ${from} reaches into the snapshot at ${this.snapshotIndex}`);
    if (from > this.lastIndex()) return;
    this.#release(from, this.lastIndex());
    this.#count = from - this.snapshotIndex - 1;
    this.stableIndex = Math.min(this.stableIndex, from - 1);
    this.handedOutIndex = Math.min(this.handedOutIndex, from - 1);
    this.pendingTruncateFrom = Math.min(this.pendingTruncateFrom ?? from, from);
  }

  /** Returns whether an entry was appended that unstableEntries() has not handed out yet. */
  hasEntriesToHandOut(): boolean {
    return this.handedOutIndex < this.lastIndex();
  }

  /** Entries appended since the last call, to be persisted; marks them handed out. */
  unstableEntries(): Entry[] {
    const from = Math.max(this.stableIndex, this.handedOutIndex);
    if (from >= this.lastIndex()) return [];
    this.handedOutIndex = this.lastIndex();
    return this.slice(from + 1, this.lastIndex());
  }

  /** Replaces the whole log with a snapshot (InstallSnapshot from the leader). */
  restoreSnapshot(meta: SnapshotMeta): void {
    this.#release(this.firstIndex(), this.lastIndex());
    this.snapshotIndex = meta.lastIndex;
    this.snapshotTerm = meta.lastTerm;
    this.#head = 0;
    this.#count = 0;
    this.stableIndex = meta.lastIndex;
    this.handedOutIndex = meta.lastIndex;
    this.pendingTruncateFrom = null;
  }

  /** Drops entries up to and including `index`, which a local snapshot now covers. */
  compact(index: number, term: number): void {
    assert(index <= this.lastIndex(), `compact at ${index} beyond last index ${this.lastIndex()}`);
    if (index <= this.snapshotIndex) return;
    this.#release(this.firstIndex(), index);
    const dropped = index - this.snapshotIndex;
    this.#head += dropped;
    this.#count -= dropped;
    this.snapshotIndex = index;
    this.snapshotTerm = term;
  }

  /** Searches back from `upTo` for the newest config entry. */
  lastConfigEntry(upTo: number = this.lastIndex()): Entry | undefined {
    const config = KIND_CODES.config;
    for (let index = Math.min(upTo, this.lastIndex()); index > this.snapshotIndex; index--) {
      if (this.#kinds[this.#position(index)] === config) return this.#read(index);
    }
    return undefined;
  }

  #position(index: number): number {
    return this.#head + index - this.snapshotIndex - 1;
  }

  #push(entry: Entry): void {
    if (this.#head + this.#count === this.#terms.length) this.#makeRoom();
    const position = this.#head + this.#count;
    this.#terms[position] = entry.term;
    this.#kinds[position] = KIND_CODES[entry.kind];
    this.#lengths[position] = entry.data.byteLength;
    this.#locations[position] = this.#pages.write(entry.data);
    if (entry.members) this.#members.set(entry.index, entry.members);
    this.#count++;
  }

  #read(index: number): Entry {
    const position = this.#position(index);
    const entry: Entry = {
      index,
      term: this.#terms[position],
      kind: KINDS_BY_CODE[this.#kinds[position]],
      data: this.#pages.read(this.#locations[position], this.#lengths[position]),
    };
    const members = this.#members.get(index);
    if (members) entry.members = members;
    return entry;
  }

  /** Releases the data and members of the entries from `from` through `to`. */
  #release(from: number, to: number): void {
    for (let index = from; index <= to; index++) {
      this.#pages.release(this.#locations[this.#position(index)]);
      this.#members.delete(index);
    }
  }

  /** Moves the entries to the front of the arrays when compaction freed at least half, and doubles the arrays otherwise. */
  #makeRoom(): void {
    const capacity = this.#terms.length;
    const grown = this.#count * 2 > capacity ? capacity * 2 : capacity;
    const from = this.#head;
    const to = from + this.#count;
    const move = <T extends Float64Array | Uint32Array | Uint8Array>(array: T, make: (length: number) => T): T => {
      if (grown === capacity) {
        array.copyWithin(0, from, to);
        return array;
      }
      const next = make(grown);
      next.set(array.subarray(from, to));
      return next;
    };
    this.#terms = move(this.#terms, (length) => new Float64Array(length));
    this.#locations = move(this.#locations, (length) => new Float64Array(length));
    this.#lengths = move(this.#lengths, (length) => new Uint32Array(length));
    this.#kinds = move(this.#kinds, (length) => new Uint8Array(length));
    this.#head = 0;
  }
}
