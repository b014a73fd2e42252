import { copyBytes } from "../bytes.ts";
import { SparePages } from "../spare-pages.ts";
import { commandRanges } from "./command.ts";

/** Result of applying one command: SET returns "OK", DEL the number of keys removed. */
export type ApplyResult = "OK" | number;

// The replicated state machine keeps every record in large byte pages
// instead of one JavaScript object per key. A million keys with 100-byte
// values fill about 120 pages of 1 MiB: 120 objects for the garbage
// collector to trace, where a Map held two million strings and arrays.
//
// Record layout inside a page (integers little-endian):
//   u32 key length, u32 value length, key bytes, value bytes
//
// Records are never changed after they are written. A SET appends a new
// record and repoints the key's slot; the old record becomes dead bytes. A
// page whose dead bytes reach a quarter of its size has its live records
// copied to the active page a little at a time, each write moving a few
// times what it added, and is then dropped. A few dropped pages are kept and
// filled again, because the collector frees a dropped page only in a full
// collection, and until then a steady stream of overwrites leaves one page
// of garbage per megabyte written. So a value handed out by `get` is a view
// into a page that stays valid only until the next write to the store.
//
// The index is an open-addressing hash table with linear probing, held in
// two typed arrays: the record location (plus one, so 0 means empty) and
// the key's hash.

/** Size of an ordinary page. Records of a quarter of it or more get a page of their own. */
const PAGE_BYTES = 1 << 20;
const LARGE_RECORD_BYTES = PAGE_BYTES >>> 2;
const RECORD_HEADER_BYTES = 8;
/** A location is page * PAGE_SPAN + offset. Offsets in ordinary pages stay below PAGE_SPAN, and large pages use offset 0. */
const PAGE_SPAN = 2 ** 25;
const MIN_CAPACITY = 1024;
/**
 * Divisor of the dead share at which a page is emptied (4: a quarter dead),
 * so each dead byte costs about three bytes copied. With 3 million random
 * overwrites of a million 100-byte values, the store peaked at 1.22x its
 * loaded size, against 1.55x when pages waited to be half dead.
 */
const SPARSE_DEAD_DIVISOR = 4;
/**
 * Multiple of the bytes a write added or freed that it scans of a page being
 * emptied, with COMPACT_STEP_MIN_BYTES at least. A quarter-dead page then
 * frees four times what was added, so a backlog left while a snapshot cursor
 * was open clears quickly, and no single write pays for a whole page.
 */
const COMPACT_STEP_FACTOR = 16;
const COMPACT_STEP_MIN_BYTES = 4 * 1024;
/**
 * Dropped ordinary pages kept for reuse. Compaction drops about one page for
 * every one filled, but in bursts: after a snapshot cursor closes, the pages
 * that went sparse meanwhile are emptied quickly.
 */
const SPARE_PAGES = 16;

interface Page {
  bytes: Uint8Array;
  /** Bytes written so far. Nothing below this offset is written again. */
  used: number;
  /** Bytes of records some slot still points at. */
  live: number;
}

function readU32(bytes: Uint8Array, offset: number): number {
  return (bytes[offset] | (bytes[offset + 1] << 8) | (bytes[offset + 2] << 16) | (bytes[offset + 3] << 24)) >>> 0;
}

function writeU32(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value & 0xff;
  bytes[offset + 1] = (value >>> 8) & 0xff;
  bytes[offset + 2] = (value >>> 16) & 0xff;
  bytes[offset + 3] = value >>> 24;
}

/** FNV-1a over the bytes, from a per-store seed, with a final avalanche so the low bits spread. */
function hashBytes(bytes: Uint8Array, start: number, end: number, seed: number): number {
  let hash = seed ^ (end - start);
  for (let i = start; i < end; i++) hash = Math.imul(hash ^ bytes[i], 0x01000193);
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}

/**
 * The replicated state machine: a map from binary key to binary value held
 * in memory, rebuilt on start from the newest snapshot plus the log.
 */
export class KvStore {
  #pages: Array<Page | undefined> = [];
  #freePageIds: number[] = [];
  #sparePages = new SparePages(PAGE_BYTES, SPARE_PAGES);
  /** Page that small records are appended to, or -1 before the first. */
  #activePage = -1;
  #slots = new Float64Array(MIN_CAPACITY);
  #hashes = new Uint32Array(MIN_CAPACITY);
  #mask = MIN_CAPACITY - 1;
  #size = 0;
  #liveBytes = 0;
  /**
   * Random per process, so colliding keys are harder to choose in advance.
   * FNV-1a is not a keyed hash: this is a mitigation, not a guarantee.
   */
  #seed = (Math.random() * 2 ** 32) >>> 0;
  /** Pages that are mostly dead, waiting to have their live records moved. */
  #sparsePages = new Set<number>();
  /** The page being emptied and how far its records were looked at. */
  #compacting: { page: number; offset: number } | null = null;
  #cursor: SnapshotCursor | null = null;
  /**
   * The last closed cursor's copy of the slot array, 16 MB at a million
   * keys, reused by the next cursor so that each snapshot does not leave
   * one behind for the collector.
   */
  #spareSlotCopy: Float64Array | null = null;

  get size(): number {
    return this.#size;
  }

  /** Bytes of the pages and the index, spares included: what the store costs besides small objects. */
  get memoryBytes(): number {
    let total = this.#slots.byteLength + this.#hashes.byteLength + (this.#spareSlotCopy?.byteLength ?? 0);
    for (const page of this.#pages) if (page) total += page.bytes.byteLength;
    total += this.#sparePages.memoryBytes;
    return total;
  }

  /** Bytes of keys and values of every record that is still current. */
  get liveBytes(): number {
    return this.#liveBytes;
  }

  get(key: Uint8Array): Uint8Array | undefined {
    const slot = this.#find(key, 0, key.byteLength);
    if (slot < 0) return undefined;
    const location = this.#slots[slot] - 1;
    const page = this.#pages[Math.floor(location / PAGE_SPAN)]!.bytes;
    const offset = location % PAGE_SPAN;
    const start = offset + RECORD_HEADER_BYTES + readU32(page, offset);
    return page.subarray(start, start + readU32(page, offset + 4));
  }

  has(key: Uint8Array): boolean {
    return this.#find(key, 0, key.byteLength) >= 0;
  }

  /** Sets `key` to a copy of `value`. */
  set(key: Uint8Array, value: Uint8Array): void {
    this.#set(key, 0, key.byteLength, value, 0, value.byteLength);
  }

  /** Removes `key` and returns whether it was present. */
  delete(key: Uint8Array): boolean {
    return this.#delete(key, 0, key.byteLength);
  }

  apply(data: Uint8Array): ApplyResult {
    const command = commandRanges(data);
    if (command.op === "set") {
      this.#set(data, command.keyStart, command.keyEnd, data, command.keyEnd, data.byteLength);
      return "OK";
    }
    let removed = 0;
    const ranges = command.keyRanges;
    for (let i = 0; i < ranges.length; i += 2) if (this.#delete(data, ranges[i], ranges[i + 1])) removed++;
    return removed;
  }

  /** Sets the key in `keyBytes[keyStart, keyEnd)` to a copy of `valueBytes[valueStart, valueEnd)`. */
  #set(keyBytes: Uint8Array, keyStart: number, keyEnd: number, valueBytes: Uint8Array, valueStart: number, valueEnd: number): void {
    const hash = hashBytes(keyBytes, keyStart, keyEnd, this.#seed);
    const found = this.#findHashed(keyBytes, keyStart, keyEnd, hash);
    const keyLength = keyEnd - keyStart;
    const valueLength = valueEnd - valueStart;
    const location = this.#allocate(RECORD_HEADER_BYTES + keyLength + valueLength);
    const page = this.#pages[Math.floor(location / PAGE_SPAN)]!.bytes;
    const offset = location % PAGE_SPAN;
    writeU32(page, offset, keyLength);
    writeU32(page, offset + 4, valueLength);
    copyBytes(keyBytes, keyStart, keyEnd, page, offset + RECORD_HEADER_BYTES);
    copyBytes(valueBytes, valueStart, valueEnd, page, offset + RECORD_HEADER_BYTES + keyLength);
    if (found >= 0) {
      this.#release(this.#slots[found] - 1);
      this.#slots[found] = location + 1;
    } else {
      this.#insert(hash, location);
    }
    this.#liveBytes += keyLength + valueLength;
    this.#compactStep(RECORD_HEADER_BYTES + keyLength + valueLength);
  }

  #delete(bytes: Uint8Array, start: number, end: number): boolean {
    const slot = this.#find(bytes, start, end);
    if (slot < 0) return false;
    const freed = this.#release(this.#slots[slot] - 1);
    this.#removeSlot(slot);
    this.#compactStep(freed);
    return true;
  }

  /** Takes over the whole content of `other`, as when a snapshot is installed. `other` must not be used afterwards. */
  replaceWith(other: KvStore): void {
    // A snapshot being written describes the old content, so it must fail rather than end early.
    this.#cursor?.abort("the store was replaced while a snapshot of it was being written");
    if (other.#cursor) throw new Error("cannot take over a store with an open snapshot cursor");
    this.#pages = other.#pages;
    this.#freePageIds = other.#freePageIds;
    this.#sparePages = other.#sparePages;
    // Set by the cursor aborted above, and sized for the old index.
    this.#spareSlotCopy = null;
    this.#activePage = other.#activePage;
    this.#slots = other.#slots;
    this.#hashes = other.#hashes;
    this.#mask = other.#mask;
    this.#size = other.#size;
    this.#liveBytes = other.#liveBytes;
    // The hashes in the table were made with the other store's seed.
    this.#seed = other.#seed;
    this.#sparsePages = other.#sparsePages;
    this.#compacting = other.#compacting;
    other.#clear();
  }

  #clear(): void {
    this.#pages = [];
    this.#freePageIds = [];
    this.#sparePages = new SparePages(PAGE_BYTES, SPARE_PAGES);
    this.#spareSlotCopy = null;
    this.#activePage = -1;
    this.#slots = new Float64Array(MIN_CAPACITY);
    this.#hashes = new Uint32Array(MIN_CAPACITY);
    this.#mask = MIN_CAPACITY - 1;
    this.#size = 0;
    this.#liveBytes = 0;
    this.#sparsePages = new Set();
    this.#compacting = null;
  }

  /**
   * Opens a cursor over the content as of now. Writes may go on while the
   * cursor is read in batches; the cursor still returns the state at the
   * moment it was opened. Only one cursor may be open at a time.
   */
  openCursor(): SnapshotCursor {
    if (this.#cursor) throw new Error("a snapshot cursor is already open");
    // Records never change, no page is dropped while a cursor is open, and
    // the cursor keeps its own list of pages, so a copy of the slot array is
    // a complete point-in-time view.
    let copy = this.#spareSlotCopy;
    this.#spareSlotCopy = null;
    if (copy === null || copy.length !== this.#slots.length) copy = new Float64Array(this.#slots.length);
    copy.set(this.#slots);
    const cursor = new SnapshotCursor(this.#pages.slice(), copy, this.#size, (slots) => {
      if (this.#cursor !== cursor) return;
      this.#cursor = null;
      if (slots.length === this.#slots.length) this.#spareSlotCopy = slots;
    });
    this.#cursor = cursor;
    return cursor;
  }

  // -------------------------------------------------------------------------
  // Index

  /** Returns the slot holding the key in `bytes[start, end)`, or -1. */
  #find(bytes: Uint8Array, start: number, end: number): number {
    return this.#findHashed(bytes, start, end, hashBytes(bytes, start, end, this.#seed));
  }

  #findHashed(bytes: Uint8Array, start: number, end: number, hash: number): number {
    const slots = this.#slots;
    const hashes = this.#hashes;
    const mask = this.#mask;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const stored = slots[slot];
      if (stored === 0) return -1;
      if (hashes[slot] === hash && this.#keyEquals(stored - 1, bytes, start, end)) return slot;
    }
  }

  /** Returns the slot that points at the record at `location`, or -1 when the record is dead. */
  #slotOf(location: number, hash: number): number {
    const slots = this.#slots;
    const mask = this.#mask;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const stored = slots[slot];
      if (stored === 0) return -1;
      if (stored === location + 1) return slot;
    }
  }

  #keyEquals(location: number, bytes: Uint8Array, start: number, end: number): boolean {
    const page = this.#pages[Math.floor(location / PAGE_SPAN)]!.bytes;
    const offset = location % PAGE_SPAN;
    const length = readU32(page, offset);
    if (length !== end - start) return false;
    const stored = offset + RECORD_HEADER_BYTES;
    for (let i = 0; i < length; i++) if (page[stored + i] !== bytes[start + i]) return false;
    return true;
  }

  /**
   * Grows the index at once to hold `count` keys. Growing step by step while
   * loading leaves each old pair of arrays behind as garbage, about 25 MB in
   * all for a million keys.
   */
  reserve(count: number): void {
    let capacity = this.#slots.length;
    while (count * 4 > capacity * 3) capacity *= 2;
    if (capacity > this.#slots.length) this.#resize(capacity);
  }

  #insert(hash: number, location: number): void {
    if ((this.#size + 1) * 4 > this.#slots.length * 3) this.#resize(this.#slots.length * 2);
    const mask = this.#mask;
    let slot = hash & mask;
    while (this.#slots[slot] !== 0) slot = (slot + 1) & mask;
    this.#slots[slot] = location + 1;
    this.#hashes[slot] = hash;
    this.#size++;
  }

  /** Empties `slot` and shifts later entries of its probe run back, so lookups never need tombstones. */
  #removeSlot(slot: number): void {
    const slots = this.#slots;
    const hashes = this.#hashes;
    const mask = this.#mask;
    let hole = slot;
    for (let next = (hole + 1) & mask; slots[next] !== 0; next = (next + 1) & mask) {
      const home = hashes[next] & mask;
      // The entry at `next` may move into the hole only if its home slot is
      // not in the cyclic range (hole, next].
      const homeAfterHole = hole <= next ? home > hole && home <= next : home > hole || home <= next;
      if (homeAfterHole) continue;
      slots[hole] = slots[next];
      hashes[hole] = hashes[next];
      hole = next;
    }
    slots[hole] = 0;
    hashes[hole] = 0;
    this.#size--;
    if (this.#size * 8 < slots.length && slots.length > MIN_CAPACITY) this.#resize(slots.length / 2);
  }

  #resize(capacity: number): void {
    const oldSlots = this.#slots;
    const oldHashes = this.#hashes;
    const slots = new Float64Array(capacity);
    const hashes = new Uint32Array(capacity);
    const mask = capacity - 1;
    for (let i = 0; i < oldSlots.length; i++) {
      const stored = oldSlots[i];
      if (stored === 0) continue;
      let slot = oldHashes[i] & mask;
      while (slots[slot] !== 0) slot = (slot + 1) & mask;
      slots[slot] = stored;
      hashes[slot] = oldHashes[i];
    }
    this.#slots = slots;
    this.#hashes = hashes;
    this.#mask = mask;
  }

  // -------------------------------------------------------------------------
  // Pages

  /** Copies a whole record, header included, to a new location and returns it. */
  #copyRecord(from: Uint8Array, offset: number, size: number): number {
    const location = this.#allocate(size);
    copyBytes(from, offset, offset + size, this.#pages[Math.floor(location / PAGE_SPAN)]!.bytes, location % PAGE_SPAN);
    return location;
  }

  /** Reserves `size` bytes at the end of the active page, or a page of its own for a large record, and counts them live. */
  #allocate(size: number): number {
    let pageId: number;
    let page: Page;
    if (size >= LARGE_RECORD_BYTES) {
      pageId = this.#newPage(size);
      page = this.#pages[pageId]!;
    } else {
      let active = this.#activePage >= 0 ? this.#pages[this.#activePage] : undefined;
      if (!active || active.used + size > active.bytes.byteLength) {
        if (active) this.#noteSparse(this.#activePage, active);
        this.#activePage = this.#newPage(PAGE_BYTES);
        active = this.#pages[this.#activePage]!;
      }
      pageId = this.#activePage;
      page = active;
    }
    const offset = page.used;
    page.used += size;
    page.live += size;
    return pageId * PAGE_SPAN + offset;
  }

  #newPage(bytes: number): number {
    const page: Page = { bytes: this.#sparePages.take(bytes), used: 0, live: 0 };
    const id = this.#freePageIds.pop() ?? this.#pages.length;
    this.#pages[id] = page;
    return id;
  }

  /** Marks the record at `location` dead and returns its size in bytes. */
  #release(location: number): number {
    const pageId = Math.floor(location / PAGE_SPAN);
    const page = this.#pages[pageId]!;
    const offset = location % PAGE_SPAN;
    const keyLength = readU32(page.bytes, offset);
    const valueLength = readU32(page.bytes, offset + 4);
    const size = RECORD_HEADER_BYTES + keyLength + valueLength;
    page.live -= size;
    this.#liveBytes -= keyLength + valueLength;
    if (pageId === this.#activePage) return size;
    const idle = this.#cursor === null && this.#compacting?.page !== pageId;
    if (page.live === 0 && idle) this.#dropPage(pageId);
    else this.#noteSparse(pageId, page);
    return size;
  }

  #noteSparse(pageId: number, page: Page): void {
    if ((page.used - page.live) * SPARSE_DEAD_DIVISOR >= page.used) this.#sparsePages.add(pageId);
  }

  /**
   * Moves some live records out of a mostly dead page, and drops the page
   * once none is left. Waits while a cursor is open: the cursor holds on to
   * every page it started with, so moving records would only add copies.
   */
  #compactStep(written: number): void {
    if (this.#cursor) return;
    if (!this.#compacting) {
      const next = this.#sparsePages.values().next();
      if (next.done) return;
      this.#sparsePages.delete(next.value);
      if (next.value === this.#activePage || !this.#pages[next.value]) return;
      this.#compacting = { page: next.value, offset: 0 };
    }
    const work = this.#compacting;
    const page = this.#pages[work.page]!;
    const bytes = page.bytes;
    const stop = Math.min(page.used, work.offset + Math.max(COMPACT_STEP_MIN_BYTES, written * COMPACT_STEP_FACTOR));
    while (work.offset < stop && page.live > 0) {
      const offset = work.offset;
      const keyLength = readU32(bytes, offset);
      const valueLength = readU32(bytes, offset + 4);
      const size = RECORD_HEADER_BYTES + keyLength + valueLength;
      work.offset += size;
      const keyStart = offset + RECORD_HEADER_BYTES;
      const slot = this.#slotOf(work.page * PAGE_SPAN + offset, hashBytes(bytes, keyStart, keyStart + keyLength, this.#seed));
      if (slot < 0) continue;
      this.#slots[slot] = this.#copyRecord(bytes, offset, size) + 1;
      page.live -= size;
    }
    if (page.live === 0 || work.offset >= page.used) {
      this.#compacting = null;
      this.#dropPage(work.page);
    }
  }

  #dropPage(pageId: number): void {
    this.#sparePages.give(this.#pages[pageId]!.bytes);
    this.#pages[pageId] = undefined;
    this.#freePageIds.push(pageId);
    this.#sparsePages.delete(pageId);
  }
}

/**
 * Reads the store as it was when the cursor opened, while the store keeps
 * changing: it walks a copy of the slot array taken at that moment.
 */
export class SnapshotCursor {
  readonly #pages: Array<Page | undefined>;
  #slots: Float64Array;
  /** Called once, with the slot copy, which the store may reuse from then on. */
  readonly #onClose: (slots: Float64Array) => void;
  /** Number of records at the moment the cursor opened. */
  readonly total: number;
  #next = 0;
  #closed = false;
  #abortReason: string | null = null;
  #buffer = Buffer.alloc(0);

  constructor(pages: Array<Page | undefined>, slots: Float64Array, total: number, onClose: (slots: Float64Array) => void) {
    this.#pages = pages;
    this.#slots = slots;
    this.total = total;
    this.#onClose = onClose;
  }

  /**
   * Returns the next records and their count, or null at the end. Records use
   * the snapshot file layout (u32 big-endian key length, key, u32 big-endian
   * value length, value). A batch is about `maxBytes` long and contains at
   * least one record. The bytes are a view of a buffer that the next call
   * overwrites, so a snapshot leaves one buffer of garbage, not one per batch.
   */
  next(maxBytes: number): { records: number; bytes: Buffer } | null {
    if (this.#abortReason !== null) throw new Error(this.#abortReason);
    if (this.#closed) return null;
    const slots = this.#slots;
    const start = this.#next;
    let size = 0;
    let end = start;
    for (; end < slots.length && (size < maxBytes || size === 0); end++) {
      const stored = slots[end];
      if (stored === 0) continue;
      const location = stored - 1;
      const page = this.#pages[Math.floor(location / PAGE_SPAN)]!.bytes;
      const offset = location % PAGE_SPAN;
      size += RECORD_HEADER_BYTES + readU32(page, offset) + readU32(page, offset + 4);
    }
    if (size === 0) {
      this.close();
      return null;
    }
    if (this.#buffer.byteLength < size) this.#buffer = Buffer.allocUnsafe(Math.max(size, maxBytes + 64 * 1024));
    const out = this.#buffer.subarray(0, size);
    let at = 0;
    let records = 0;
    for (let i = start; i < end; i++) {
      const stored = slots[i];
      if (stored === 0) continue;
      const location = stored - 1;
      const page = this.#pages[Math.floor(location / PAGE_SPAN)]!.bytes;
      const offset = location % PAGE_SPAN;
      const keyLength = readU32(page, offset);
      const valueLength = readU32(page, offset + 4);
      out.writeUInt32BE(keyLength, at);
      copyBytes(page, offset + RECORD_HEADER_BYTES, offset + RECORD_HEADER_BYTES + keyLength, out, at + 4);
      at += 4 + keyLength;
      out.writeUInt32BE(valueLength, at);
      const valueStart = offset + RECORD_HEADER_BYTES + keyLength;
      copyBytes(page, valueStart, valueStart + valueLength, out, at + 4);
      at += 4 + valueLength;
      records++;
    }
    this.#next = end;
    return { records, bytes: out };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#buffer = Buffer.alloc(0);
    const slots = this.#slots;
    this.#slots = new Float64Array(0);
    this.#onClose(slots);
  }

  /** Closes the cursor so that the next call of `next` throws `reason`. */
  abort(reason: string): void {
    this.#abortReason ??= reason;
    this.close();
  }
}
