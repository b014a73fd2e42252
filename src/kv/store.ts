import { decodeCommand } from "./command.ts";

/** Result of applying one command: SET returns "OK", DEL the number of keys removed. */
export type ApplyResult = "OK" | number;

/**
 * The replicated state machine: an in-memory map from key to value, rebuilt
 * on start from the newest snapshot plus the log. Keys are held as latin1
 * strings, which map each byte to one UTF-16 code unit, so binary keys
 * round-trip exactly.
 */
export class KvStore {
  // TODO: a Map of Uint8Array values costs about 326 bytes per key for a
  // 10-byte key and 100-byte value in Bun, about 3x the data. Holding a
  // million keys within 3x needs an arena-backed table.
  #map = new Map<string, Uint8Array>();
  /** Open point-in-time cursor, or null; writes record pre-images into it. */
  #cursor: SnapshotCursor | null = null;

  static keyString(key: Uint8Array): string {
    return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString("latin1");
  }

  get size(): number {
    return this.#map.size;
  }

  get(key: Uint8Array): Uint8Array | undefined {
    return this.#map.get(KvStore.keyString(key));
  }

  apply(data: Uint8Array): ApplyResult {
    const command = decodeCommand(data);
    if (command.op === "set") {
      const key = KvStore.keyString(command.key);
      this.#cursor?.preserve(key, this.#map.get(key));
      // Copy so the map does not pin the whole log entry or network buffer.
      this.#map.set(key, command.value.slice());
      return "OK";
    }
    let removed = 0;
    for (const raw of command.keys) {
      const key = KvStore.keyString(raw);
      const old = this.#map.get(key);
      if (old === undefined) continue;
      this.#cursor?.preserve(key, old);
      this.#map.delete(key);
      removed++;
    }
    return removed;
  }

  /** Replaces the whole content, as when a snapshot is installed. */
  replace(map: Map<string, Uint8Array>): void {
    this.#cursor?.close();
    this.#map = map;
  }

  /**
   * Opens a cursor over the content as of now. Writes may go on while the
   * cursor is read in batches; the cursor still returns the state at the
   * moment it was opened. Only one cursor may be open at a time.
   */
  openCursor(): SnapshotCursor {
    if (this.#cursor) throw new Error("a snapshot cursor is already open");
    const cursor = new SnapshotCursor(this.#map, () => {
      if (this.#cursor === cursor) this.#cursor = null;
    });
    this.#cursor = cursor;
    return cursor;
  }
}

/**
 * Reads a Map as it was when the cursor opened, while the map keeps changing.
 * Before a key is changed for the first time, its old value (or its absence)
 * is kept in `#preImages`; the live iterator then reports that old value.
 * Map iteration skips entries deleted before the iterator reaches them, so
 * keys deleted meanwhile are reported from `#preImages` at the end. A key
 * may therefore be returned twice, always with its value at the snapshot
 * point, so readers of a snapshot keep the last record of each key.
 */
export class SnapshotCursor {
  readonly #map: Map<string, Uint8Array>;
  readonly #iterator: MapIterator<[string, Uint8Array]>;
  readonly #onClose: () => void;
  #preImages = new Map<string, Uint8Array | null>();
  /** Keys with a pre-image that were already returned. */
  #reported = new Set<string>();
  #closed = false;
  #drainedLive = false;

  constructor(map: Map<string, Uint8Array>, onClose: () => void) {
    this.#map = map;
    this.#iterator = map.entries();
    this.#onClose = onClose;
  }

  /** Records the value `key` had at the snapshot point, before its first change. */
  preserve(key: string, value: Uint8Array | undefined): void {
    if (!this.#preImages.has(key)) this.#preImages.set(key, value ?? null);
  }

  /** Returns up to `max` entries, or null once every entry was returned. */
  next(max: number): Array<[string, Uint8Array]> | null {
    if (this.#closed) return null;
    const out: Array<[string, Uint8Array]> = [];
    while (!this.#drainedLive && out.length < max) {
      const step = this.#iterator.next();
      if (step.done) {
        this.#drainedLive = true;
        break;
      }
      const [key, value] = step.value;
      if (!this.#preImages.has(key)) {
        out.push([key, value]);
        continue;
      }
      if (this.#reported.has(key)) continue;
      this.#reported.add(key);
      const old = this.#preImages.get(key)!;
      if (old !== null) out.push([key, old]);
    }
    if (this.#drainedLive) {
      for (const [key, old] of this.#preImages) {
        if (out.length >= max) break;
        if (old === null || this.#reported.has(key)) continue;
        this.#reported.add(key);
        out.push([key, old]);
      }
      if (out.length === 0) {
        this.close();
        return null;
      }
    }
    return out;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#preImages.clear();
    this.#onClose();
  }
}
