// Byte pages that hold the data of the in-memory log's entries.
//
// An entry stays in memory from its append until a snapshot covers it, about
// 50,000 entries later, so it outlives several young-generation collections
// and reaches the old generation. JavaScriptCore collects that generation
// only in a full collection, which it schedules by the size of the whole
// heap, store included. An object and a small byte array per entry therefore
// piled up as garbage: during a bulk load of a million 256-byte values, the
// leader's heap grew to over 500 MB beside a store of 300 MB.
//
// Here an entry's data is copied into a page of 1 MiB, and a page whose
// entries were all compacted or truncated away is filled again. Nothing
// outside the pages refers into them: `read` returns a copy, so a page can
// be reused as soon as its last entry is released.

import { SparePages } from "../spare-pages.ts";

/** Size of an ordinary page. Data of a quarter of it or more gets a page of its own. */
const PAGE_BYTES = 1 << 20;
/** Size of the first page. Each next one doubles up to PAGE_BYTES, so a small log uses little memory. */
const FIRST_PAGE_BYTES = 16 * 1024;
const LARGE_DATA_BYTES = PAGE_BYTES >>> 2;
/** A location is page * PAGE_SPAN + offset. Ordinary pages keep offsets below it, and large ones use offset 0. */
const PAGE_SPAN = 2 ** 21;
/**
 * Emptied ordinary pages kept for reuse. A snapshot releases the pages of
 * nearly the whole log at once, and the next entries fill them again. The
 * log between snapshots contains at most about the default
 * --snapshot-log-bytes of 32 MiB, or 25% more with the spread. So up to 40
 * pages are kept, and the rest go to the collector.
 */
const SPARE_PAGES = 40;
/** Location of empty data, which takes no page. */
export const NO_LOCATION = -1;

interface Page {
  bytes: Uint8Array;
  /** Bytes written so far. */
  used: number;
  /** Entries written to this page and not yet released. */
  entries: number;
}

export class LogPages {
  #pages: Array<Page | undefined> = [];
  #freeIds: number[] = [];
  #spares = new SparePages(PAGE_BYTES, SPARE_PAGES);
  /** Page that small data is appended to, or -1 before the first. */
  #active = -1;
  #nextPageBytes = FIRST_PAGE_BYTES;

  /** Bytes of all pages, spares included. */
  get memoryBytes(): number {
    let total = 0;
    for (const page of this.#pages) if (page) total += page.bytes.byteLength;
    total += this.#spares.memoryBytes;
    return total;
  }

  /** Copies `data` into a page and returns its location, or NO_LOCATION when it is empty. */
  write(data: Uint8Array): number {
    const length = data.byteLength;
    if (length === 0) return NO_LOCATION;
    let pageId: number;
    if (length >= LARGE_DATA_BYTES) {
      pageId = this.#newPage(length);
    } else {
      const active = this.#active >= 0 ? this.#pages[this.#active] : undefined;
      if (!active || active.used + length > active.bytes.byteLength) {
        const previous = this.#active;
        // Data below LARGE_DATA_BYTES may still exceed an early, smaller page.
        while (this.#nextPageBytes < length) this.#nextPageBytes *= 2;
        this.#active = this.#newPage(this.#nextPageBytes);
        this.#nextPageBytes = Math.min(PAGE_BYTES, this.#nextPageBytes * 2);
        // The full page goes as soon as its last entry does.
        if (active && active.entries === 0) this.#drop(previous);
      }
      pageId = this.#active;
    }
    const page = this.#pages[pageId]!;
    const offset = page.used;
    page.bytes.set(data, offset);
    page.used += length;
    page.entries++;
    return pageId * PAGE_SPAN + offset;
  }

  /** Returns a copy of the `length` bytes at `location`. */
  read(location: number, length: number): Uint8Array {
    if (location === NO_LOCATION) return new Uint8Array(0);
    const page = this.#pages[Math.floor(location / PAGE_SPAN)]!;
    const offset = location % PAGE_SPAN;
    return page.bytes.slice(offset, offset + length);
  }

  /** Releases the entry written at `location`. Its page is reused once all of its entries are released. */
  release(location: number): void {
    if (location === NO_LOCATION) return;
    const pageId = Math.floor(location / PAGE_SPAN);
    const page = this.#pages[pageId]!;
    page.entries--;
    if (page.entries === 0 && pageId !== this.#active) this.#drop(pageId);
  }

  #newPage(bytes: number): number {
    const id = this.#freeIds.pop() ?? this.#pages.length;
    this.#pages[id] = { bytes: this.#spares.take(bytes), used: 0, entries: 0 };
    return id;
  }

  #drop(pageId: number): void {
    this.#spares.give(this.#pages[pageId]!.bytes);
    this.#pages[pageId] = undefined;
    this.#freeIds.push(pageId);
  }
}
