// In-memory stand-in for the SQLite storage of one node. It contains only
// what was durably written: the runtime calls write() when a write finishes
// (for the synchronous runtime, when the transaction commits), and a crash
// keeps this state and drops everything the node held in memory.
//
// Like the SQLite storage, a write deletes entries from `truncateFrom` and
// then inserts or replaces entries by index. A write cut by a crash is
// modelled by `keepEntries`: the hard state and the truncation are written,
// and only the first `keepEntries` entries of the batch are. SQLite commits a
// transaction atomically, so this model is harsher than the real disk. A
// correct core still stays safe, because it sends no message that depends
// on the lost tail before the write finishes.

import type { Entry, HardState } from "../../src/raft/types.ts";
import { cloneEntry } from "./entries.ts";

export interface StorageWrite {
  hardState: HardState | null;
  truncateFrom: number | null;
  entries: readonly Entry[];
}

/** Raised when a write would leave the stored log with a gap or a stale suffix. */
export class StorageContractError extends Error {
  override name = "StorageContractError";
}

export class SimStorage {
  #hardState: HardState;
  /** Stored log: #entries[i] has index i + 1, because the simulator never compacts the log. */
  #entries: Entry[] = [];
  /** Number of write() calls that changed something, for statistics. */
  writes = 0;
  /** Called after each write with the entries it stored, in index order. */
  onWrite: ((entries: readonly Entry[]) => void) | null = null;

  constructor(hardState: HardState = { term: 0, votedFor: null, commitIndex: 0 }, entries: Entry[] = []) {
    this.#hardState = { ...hardState };
    for (const entry of entries) this.#entries.push(cloneEntry(entry));
  }

  get hardState(): HardState {
    return { ...this.#hardState };
  }

  /** Term of the stored hard state. */
  get term(): number {
    return this.#hardState.term;
  }

  get lastIndex(): number {
    return this.#entries.length;
  }

  /** Returns the stored entry at `index`; callers must not modify it. */
  entry(index: number): Entry | undefined {
    return this.#entries[index - 1];
  }

  /** Applies a batch; throws StorageContractError when the batch breaks the log's shape. */
  write(batch: StorageWrite, keepEntries: number = batch.entries.length): void {
    if (batch.hardState === null && batch.truncateFrom === null && batch.entries.length === 0) return;
    this.writes++;
    if (batch.hardState) {
      const { term, votedFor } = batch.hardState;
      if (term < this.#hardState.term) {
        throw new StorageContractError(`write would move the stored term back from ${this.#hardState.term} to ${term}`);
      }
      if (term === this.#hardState.term && this.#hardState.votedFor !== null && votedFor !== this.#hardState.votedFor) {
        throw new StorageContractError(`write would change the vote of term ${term} from ${this.#hardState.votedFor} to ${votedFor ?? "null"}`);
      }
      this.#hardState = { ...batch.hardState };
    }
    if (batch.truncateFrom !== null && batch.truncateFrom <= this.#entries.length) {
      this.#entries.length = Math.max(0, batch.truncateFrom - 1);
    }
    const count = Math.min(keepEntries, batch.entries.length);
    const written: Entry[] = [];
    for (let i = 0; i < count; i++) {
      const entry = batch.entries[i];
      if (entry.index > this.#entries.length + 1) {
        throw new StorageContractError(`write of entry ${entry.index} leaves a gap after stored index ${this.#entries.length}`);
      }
      const existing = this.#entries[entry.index - 1];
      if (existing && existing.term !== entry.term && entry.index < this.#entries.length) {
        throw new StorageContractError(
          `write replaces entry ${entry.index} (term ${existing.term}) with term ${entry.term} but keeps the entries after it; the batch needs truncateFrom`,
        );
      }
      const copy = cloneEntry(entry);
      this.#entries[entry.index - 1] = copy;
      written.push(copy);
    }
    this.onWrite?.(written);
  }

  /** Returns copies of the stored hard state and entries, as a restarted node reads them. */
  load(): { hardState: HardState; entries: Entry[] } {
    return { hardState: { ...this.#hardState }, entries: this.#entries.map(cloneEntry) };
  }
}
