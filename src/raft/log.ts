import type { Entry, SnapshotMeta } from "./types.ts";
import { assert } from "./assert.ts";

/** Rough in-memory and wire size of an entry, used for message and batch limits. */
export function entrySize(entry: Entry): number {
  return entry.data.byteLength + 24 + (entry.members ? entry.members.length * 64 : 0);
}

/**
 * The core's view of the log: every entry after the last snapshot, in memory.
 * Entries up to `stableIndex` are known to be on disk. Those up to
 * `handedOutIndex` were given to the runtime to persist, and the rest wait
 * for the next ready batch.
 */
export class RaftLog {
  /** Index and term of the last entry folded into the snapshot (0 when none). */
  snapshotIndex: number;
  snapshotTerm: number;
  /** entries[i].index === snapshotIndex + 1 + i, always. */
  #entries: Entry[];
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

  constructor(snapshot: SnapshotMeta | null, entries: Entry[]) {
    this.snapshotIndex = snapshot?.lastIndex ?? 0;
    this.snapshotTerm = snapshot?.lastTerm ?? 0;
    for (let i = 0; i < entries.length; i++) {
      assert(entries[i].index === this.snapshotIndex + 1 + i, "log entries are not contiguous after the snapshot");
    }
    this.#entries = entries;
    this.stableIndex = this.lastIndex();
    this.handedOutIndex = this.stableIndex;
  }

  lastIndex(): number {
    return this.snapshotIndex + this.#entries.length;
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
    return this.#entries[index - this.snapshotIndex - 1].term;
  }

  entry(index: number): Entry | undefined {
    if (index <= this.snapshotIndex || index > this.lastIndex()) return undefined;
    return this.#entries[index - this.snapshotIndex - 1];
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
      const entry = this.#entries[index - this.snapshotIndex - 1];
      bytes += entrySize(entry);
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(entry);
    }
    return out;
  }

  /** Returns whether a log ending at (lastIndex, lastTerm) is at least as up to date as this one. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  append(entry: Entry): void {
    assert(entry.index === this.lastIndex() + 1, `append of index ${entry.index} after ${this.lastIndex()}`);
    this.#entries.push(entry);
  }

  /** Deletes every entry with index >= `from`. The caller guarantees none is committed. */
  truncateFrom(from: number): void {
    assert(from > this.snapshotIndex, `truncate at ${from} reaches into the snapshot at ${this.snapshotIndex}`);
    if (from > this.lastIndex()) return;
    this.#entries.length = from - this.snapshotIndex - 1;
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
    return this.#entries.slice(from - this.snapshotIndex);
  }

  /** Replaces the whole log with a snapshot (InstallSnapshot from the leader). */
  restoreSnapshot(meta: SnapshotMeta): void {
    this.snapshotIndex = meta.lastIndex;
    this.snapshotTerm = meta.lastTerm;
    this.#entries = [];
    this.stableIndex = meta.lastIndex;
    this.handedOutIndex = meta.lastIndex;
    this.pendingTruncateFrom = null;
  }

  /** Drops entries up to and including `index`, which a local snapshot now covers. */
  compact(index: number, term: number): void {
    assert(index <= this.lastIndex(), `compact at ${index} beyond last index ${this.lastIndex()}`);
    if (index <= this.snapshotIndex) return;
    this.#entries = this.#entries.slice(index - this.snapshotIndex);
    this.snapshotIndex = index;
    this.snapshotTerm = term;
  }

  /** Searches back from `upTo` for the newest config entry. */
  lastConfigEntry(upTo: number = this.lastIndex()): Entry | undefined {
    for (let index = Math.min(upTo, this.lastIndex()); index > this.snapshotIndex; index--) {
      const entry = this.#entries[index - this.snapshotIndex - 1];
      if (entry.kind === "config") return entry;
    }
    return undefined;
  }
}
