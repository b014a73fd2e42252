// Byte helpers for small typed arrays on hot paths. They take no DataView
// and no subarray view. JavaScriptCore keeps a small typed array's bytes in
// the collected heap until code reads its `buffer` or takes a view of it.
// Then it moves them to a separate allocation that every later collection
// visits.

const bufferCopy = Buffer.prototype.copy;

/** Writes `value` as a big-endian unsigned 32-bit integer at `offset`. */
export function writeUint32BE(out: Uint8Array, offset: number, value: number): void {
  out[offset] = value >>> 24;
  out[offset + 1] = (value >>> 16) & 0xff;
  out[offset + 2] = (value >>> 8) & 0xff;
  out[offset + 3] = value & 0xff;
}

/** Reads a big-endian unsigned 32-bit integer at `offset`. */
export function readUint32BE(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset] << 24) | (bytes[offset + 1] << 16) | (bytes[offset + 2] << 8) | bytes[offset + 3]) >>> 0;
}

/** Copies `source[start, end)` into `target` at `at`. Buffer's copy reads a plain Uint8Array in place. */
export function copyBytes(source: Uint8Array, start: number, end: number, target: Uint8Array, at: number): void {
  bufferCopy.call(source, target, at, start, end);
}
