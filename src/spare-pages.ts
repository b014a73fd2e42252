// Byte arrays of emptied pages, kept for the next page instead of left to the
// collector. JavaScriptCore frees a dropped page that lived long enough only
// in a full collection, so pages that are emptied and refilled steadily would
// otherwise pile up as garbage. The store and the in-memory Raft log use it.

export class SparePages {
  readonly #pageBytes: number;
  readonly #maxPages: number;
  #spares: Uint8Array[] = [];

  /** Keeps up to `maxPages` arrays of `pageBytes`. Arrays of other sizes are never kept. */
  constructor(pageBytes: number, maxPages: number) {
    this.#pageBytes = pageBytes;
    this.#maxPages = maxPages;
  }

  /** Bytes of the arrays kept. */
  get memoryBytes(): number {
    return this.#spares.length * this.#pageBytes;
  }

  /** Returns an array of `bytes`: a kept one when there is one of that size, else a new zeroed one. */
  take(bytes: number): Uint8Array {
    const spare = bytes === this.#pageBytes ? this.#spares.pop() : undefined;
    return spare ?? new Uint8Array(bytes);
  }

  /** Keeps `bytes` for a later take() when it has the page size and there is room. The caller must not use it again. */
  give(bytes: Uint8Array): void {
    if (bytes.byteLength === this.#pageBytes && this.#spares.length < this.#maxPages) this.#spares.push(bytes);
  }
}
