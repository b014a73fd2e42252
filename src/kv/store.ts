import { decodeCommand } from "./command.ts";

/** Result of applying one command: SET returns "OK", DEL the number of keys removed. */
export type ApplyResult = "OK" | number;

/**
 * The replicated state machine: an in-memory map from key to value, rebuilt
 * on start from the log. Keys are held as latin1 strings, which map each byte
 * to one UTF-16 code unit, so binary keys round-trip exactly.
 */
export class KvStore {
  readonly #map = new Map<string, Uint8Array>();

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
      // Copy so the map does not pin the whole log entry or network buffer.
      this.#map.set(KvStore.keyString(command.key), command.value.slice());
      return "OK";
    }
    let removed = 0;
    for (const key of command.keys) {
      if (this.#map.delete(KvStore.keyString(key))) removed++;
    }
    return removed;
  }
}
