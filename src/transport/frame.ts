// Frame codec for the peer protocol: a 4-byte big-endian unsigned body length
// followed by that many bytes of CBOR (RFC 8949) encoded with cborg.

import { decode, encode, encodeInto } from "cborg";
import type { DecodeOptions, EncodeOptions } from "cborg";
import { readUint32BE, writeUint32BE } from "../bytes.ts";

export const FRAME_HEADER_BYTES = 4;

/** The largest body length the 4-byte header can express. */
const MAX_HEADER_LENGTH = 0xffff_ffff;

const ENCODE_OPTIONS: EncodeOptions = {
  // Optional fields such as `Entry.members` may be present but undefined.
  ignoreUndefinedProperties: true,
};

// The encoder never emits undefined, NaN, infinities, big integers,
// indefinite lengths or tags, so a frame that contains them is rejected.
// cborg rejects tags unless a decoder is registered for them.
const DECODE_OPTIONS: DecodeOptions = {
  allowUndefined: false,
  allowNaN: false,
  allowInfinity: false,
  allowBigInt: false,
  allowIndefinite: false,
  rejectDuplicateMapKeys: true,
};

/**
 * Buffer that frames are encoded into, after room for the header. cborg's
 * `encode` starts a new chunk after each byte string of 64 bytes or more, so
 * an append costs a chunk and a view per log entry, and two copies of its body.
 */
const scratch = new Uint8Array(4 << 20);
const scratchBody = scratch.subarray(FRAME_HEADER_BYTES);

/**
 * Encodes `value` as one frame: the header, then the body. Throws if cborg
 * cannot encode the value or the body exceeds 4 GiB.
 */
export function encodeFrame(value: unknown): Uint8Array {
  let written: number;
  try {
    written = encodeInto(value, scratchBody, ENCODE_OPTIONS).written;
  } catch {
    // The body is too large for the buffer, or cborg cannot encode the value and `encode` throws again.
    return encodeLargeFrame(value);
  }
  const frame = scratch.slice(0, FRAME_HEADER_BYTES + written);
  writeUint32BE(frame, 0, written);
  return frame;
}

function encodeLargeFrame(value: unknown): Uint8Array {
  const body = encode(value, ENCODE_OPTIONS);
  if (body.byteLength > MAX_HEADER_LENGTH) {
    throw new Error(`frame body of ${body.byteLength} bytes exceeds the 4-byte length header`);
  }
  const frame = new Uint8Array(FRAME_HEADER_BYTES + body.byteLength);
  writeUint32BE(frame, 0, body.byteLength);
  frame.set(body, FRAME_HEADER_BYTES);
  return frame;
}

export type FrameResult =
  | { kind: "frame"; value: unknown }
  | { kind: "incomplete" }
  | { kind: "error"; message: string };

/**
 * Splits a byte stream into frames and decodes their CBOR bodies.
 *
 * Chunks are kept as received, and only a frame that spans several chunks is
 * copied, once, so the work is linear in the bytes pushed. After the first
 * error the stream has lost its framing, so `next()` keeps returning that
 * error and `push()` discards its input.
 */
export class FrameDecoder {
  readonly #maxFrameBytes: number;
  #chunks: Uint8Array[] = [];
  /** Index into #chunks of the first chunk with unread bytes. */
  #head = 0;
  /** Read position inside #chunks[#head]. */
  #offset = 0;
  #bufferedBytes = 0;
  /** Body length from a header already consumed, or -1 when a header is next. */
  #bodyBytes = -1;
  #error: string | null = null;

  /** @param maxFrameBytes maximum body length. A longer frame is rejected from its header alone. */
  constructor(maxFrameBytes: number) {
    if (!Number.isSafeInteger(maxFrameBytes) || maxFrameBytes < 1) {
      throw new RangeError(`maxFrameBytes must be a positive integer, got ${maxFrameBytes}`);
    }
    this.#maxFrameBytes = maxFrameBytes;
  }

  /** Bytes received but not yet returned as frames. */
  get bufferedBytes(): number {
    return this.#bufferedBytes;
  }

  push(chunk: Uint8Array): void {
    if (this.#error !== null || chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#bufferedBytes += chunk.length;
  }

  next(): FrameResult {
    if (this.#error !== null) return { kind: "error", message: this.#error };

    if (this.#bodyBytes < 0) {
      if (this.#bufferedBytes < FRAME_HEADER_BYTES) return { kind: "incomplete" };
      const header = this.#take(FRAME_HEADER_BYTES);
      const length = readUint32BE(header, 0);
      if (length > this.#maxFrameBytes) {
        return this.#fail(`frame length ${length} exceeds the maximum of ${this.#maxFrameBytes} bytes`);
      }
      this.#bodyBytes = length;
    }

    if (this.#bufferedBytes < this.#bodyBytes) return { kind: "incomplete" };
    const body = this.#take(this.#bodyBytes);
    this.#bodyBytes = -1;

    try {
      return { kind: "frame", value: decode(body, DECODE_OPTIONS) };
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      return this.#fail(`invalid CBOR in a frame of ${body.length} bytes: ${reason}`);
    }
  }

  #fail(message: string): FrameResult {
    this.#error = message;
    this.#chunks = [];
    this.#head = 0;
    this.#offset = 0;
    this.#bufferedBytes = 0;
    return { kind: "error", message };
  }

  /**
   * Removes `length` buffered bytes from the front. Returns a view into the
   * current chunk when the bytes are contiguous, or else a copy.
   * The caller checks that enough bytes are buffered.
   */
  #take(length: number): Uint8Array {
    this.#bufferedBytes -= length;
    const first = this.#chunks[this.#head];
    if (first !== undefined && first.length - this.#offset >= length) {
      const view = first.subarray(this.#offset, this.#offset + length);
      this.#advance(length);
      return view;
    }

    const out = new Uint8Array(length);
    let filled = 0;
    while (filled < length) {
      const chunk = this.#chunks[this.#head];
      const count = Math.min(chunk.length - this.#offset, length - filled);
      out.set(chunk.subarray(this.#offset, this.#offset + count), filled);
      filled += count;
      this.#advance(count);
    }
    return out;
  }

  /** Moves the read position `count` bytes forward within the head chunk. */
  #advance(count: number): void {
    this.#offset += count;
    if (this.#offset < this.#chunks[this.#head].length) return;

    this.#head += 1;
    this.#offset = 0;
    // Drop consumed chunks in one splice once they make up half the array, so
    // removal stays amortized constant time per chunk.
    if (this.#head === this.#chunks.length) {
      this.#chunks = [];
      this.#head = 0;
    } else if (this.#head >= 64 && this.#head * 2 >= this.#chunks.length) {
      this.#chunks.splice(0, this.#head);
      this.#head = 0;
    }
  }
}
