// RESP2 (the Redis serialization protocol, version 2): reply encoders, an
// incremental parser for the request stream a server reads, and an incremental
// parser for the reply stream a client reads.
//
// Both parsers accept input in chunks of any size, split at any byte, and keep
// unread bytes in one growing buffer with a read offset, so a chunk is copied
// once and never re-concatenated with what came before.

/** Size limits the request parser enforces before it buffers an argument. */
export interface RespLimits {
  /** Maximum announced length of one bulk argument (`$len`), in bytes. */
  maxBulkBytes: number;
  /** Maximum number of arguments announced by a multibulk header (`*count`). */
  maxArgs: number;
  /** Maximum length of one inline command line, in bytes, without its line ending. */
  maxInlineBytes: number;
  /** Maximum sum of the bulk lengths of one multibulk command, in bytes. Unlimited when absent. */
  maxCommandBytes?: number;
}

/** Limits as in Redis: 512 MiB per bulk (`proto-max-bulk-len`), 1024 * 1024 arguments, 64 KiB inline lines. */
export const DEFAULT_RESP_LIMITS: RespLimits = {
  maxBulkBytes: 512 * 1024 * 1024,
  maxArgs: 1024 * 1024,
  maxInlineBytes: 64 * 1024,
};

/**
 * Outcome of `RespParser.next()`. An error `message` is the text after
 * `Protocol error: `. The caller replies `-ERR Protocol error: <message>` and
 * closes the connection, as Redis does.
 */
export type ParseResult =
  | { kind: "command"; args: Buffer[] }
  | { kind: "incomplete" }
  | { kind: "error"; message: string };

/** One decoded RESP2 reply. */
export type RespValue =
  | { type: "simple"; value: string }
  | { type: "error"; message: string }
  | { type: "integer"; value: number }
  | { type: "bulk"; value: Buffer | null }
  | { type: "array"; value: RespValue[] | null };

/** Outcome of `RespReplyParser.next()`. */
export type ReplyParseResult =
  | { kind: "reply"; value: RespValue }
  | { kind: "incomplete" }
  | { kind: "error"; message: string };

const CR = 0x0d;
const LF = 0x0a;
const SPACE = 0x20;
const TAB = 0x09;
const VTAB = 0x0b;
const FORMFEED = 0x0c;
const BACKSLASH = 0x5c;
const DOUBLE_QUOTE = 0x22;
const SINGLE_QUOTE = 0x27;
const LOWER_X = 0x78;
const ASTERISK = 0x2a;
const DOLLAR = 0x24;

/**
 * Maximum length of a `*count` or `$len` line, including the type byte and CRLF.
 * A valid line needs at most 23 bytes (type byte, a signed 64-bit number, CRLF), so a longer one is invalid.
 */
const MAX_LENGTH_LINE_BYTES = 32;

/** The buffer of an idle parser drops back to a small allocation when it has grown beyond this. */
const RETAINED_BUFFER_BYTES = 1024 * 1024;
const INITIAL_BUFFER_BYTES = 16 * 1024;
/** Bytes that ByteQueue.indexOf checks in a loop before it falls back to a view's indexOf. */
const SHORT_SEARCH_BYTES = 32;

const CRLF = Buffer.from("\r\n");

// ---------------------------------------------------------------------------
// Encoders

function assertNoLineBreak(text: string, kind: string): void {
  if (text.includes("\r") || text.includes("\n")) {
    throw new RangeError(`${kind} must not contain CR or LF: ${JSON.stringify(text)}`);
  }
}

/** Encodes `+s\r\n`. Throws a RangeError when `s` contains CR or LF, which would end the reply early. */
export function simpleString(s: string): Buffer {
  assertNoLineBreak(s, "simple string");
  return Buffer.from(`+${s}\r\n`);
}

/**
 * Encodes `-msg\r\n`. `msg` starts with the error code, as in `ERR unknown command`.
 * CR and LF in `msg` become spaces, as Redis does, because error text may quote user input.
 */
export function error(msg: string): Buffer {
  return Buffer.from(`-${msg.replace(/[\r\n]/g, " ")}\r\n`);
}

/** Encodes `:n\r\n`. Throws a RangeError unless `n` is an integer. */
export function integer(n: number): Buffer {
  if (!Number.isInteger(n)) throw new RangeError(`RESP integer must be an integer, got ${n}`);
  return Buffer.from(`:${n}\r\n`);
}

/** Encodes a bulk string, or the null bulk string `$-1\r\n` for null. Strings are sent as UTF-8. */
export function bulk(value: Uint8Array | string | null): Buffer {
  if (value === null) return Buffer.from("$-1\r\n");
  const body = typeof value === "string" ? Buffer.from(value) : value;
  // One allocation per reply: this is the reply to every GET.
  const length = String(body.byteLength);
  const out = Buffer.allocUnsafe(1 + length.length + 2 + body.byteLength + 2);
  out[0] = DOLLAR;
  let offset = 1 + out.write(length, 1, "latin1");
  out[offset++] = CR;
  out[offset++] = LF;
  out.set(body, offset);
  offset += body.byteLength;
  out[offset++] = CR;
  out[offset] = LF;
  return out;
}

/** Encodes an aggregate of `count` already encoded elements behind its type byte: `*`, `%` or `>`. */
function aggregate(type: string, count: number, items: readonly Uint8Array[]): Buffer {
  return Buffer.concat([Buffer.from(`${type}${count}\r\n`), ...items]);
}

/** Encodes an array from already encoded elements, or the null array `*-1\r\n` for null. */
export function array(items: readonly Uint8Array[] | null): Buffer {
  if (items === null) return Buffer.from("*-1\r\n");
  return aggregate("*", items.length, items);
}

/** Protocol version of a client connection: RESP2, or RESP3 after `HELLO 3`. */
export type RespVersion = 2 | 3;

const NULL_RESP2 = Buffer.from("$-1\r\n");
const NULL_RESP3 = Buffer.from("_\r\n");

/** Returns the null reply of `version`: the null bulk string in RESP2, `_` in RESP3. The buffer is shared, so do not change it. */
export function nullReply(version: RespVersion): Buffer {
  return version === 3 ? NULL_RESP3 : NULL_RESP2;
}

/**
 * Encodes a map from already encoded keys and values in turn: `%n` in RESP3,
 * and in RESP2 a flat array of twice as many elements, as Redis sends it.
 */
export function map(entries: readonly Uint8Array[], version: RespVersion): Buffer {
  if (entries.length % 2 !== 0) throw new RangeError(`a RESP map needs keys and values in pairs, got ${entries.length} elements`);
  return version === 2 ? array(entries) : aggregate("%", entries.length / 2, entries);
}

/** Encodes an out-of-band message, such as a pub/sub message: `>n` in RESP3, an array in RESP2. */
export function push(items: readonly Uint8Array[], version: RespVersion): Buffer {
  return version === 2 ? array(items) : aggregate(">", items.length, items);
}

/** Returns a parsed command argument as UTF-8 text. */
export function argText(arg: Buffer): string {
  return arg.toString("utf8");
}

/** Encodes a command as a multibulk request, the form clients send. Strings are sent as UTF-8. */
export function encodeCommand(args: readonly (string | Uint8Array)[]): Buffer {
  const parts: Uint8Array[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const body = typeof arg === "string" ? Buffer.from(arg) : arg;
    parts.push(Buffer.from(`$${body.byteLength}\r\n`), body, CRLF);
  }
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------
// Byte queue shared by both parsers

/**
 * Unread input: one buffer holding the bytes in [start, end). Offsets taken and
 * returned by the methods are relative to `start`.
 */
class ByteQueue {
  #buffer: Buffer = Buffer.allocUnsafe(INITIAL_BUFFER_BYTES);
  #start = 0;
  #end = 0;

  get length(): number {
    return this.#end - this.#start;
  }

  push(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    if (this.#end + chunk.byteLength > this.#buffer.length) this.#makeRoom(chunk.byteLength);
    this.#buffer.set(chunk, this.#end);
    this.#end += chunk.byteLength;
  }

  /** Moves unread bytes to the front when that frees at least as much as it copies. Otherwise grows by doubling. */
  #makeRoom(extra: number): void {
    const unread = this.length;
    const needed = unread + extra;
    if (needed <= this.#buffer.length && this.#start >= unread) {
      this.#buffer.copyWithin(0, this.#start, this.#end);
    } else {
      const grown = Buffer.allocUnsafe(Math.max(needed, this.#buffer.length * 2));
      this.#buffer.copy(grown, 0, this.#start, this.#end);
      this.#buffer = grown;
    }
    this.#start = 0;
    this.#end = unread;
  }

  byteAt(offset: number): number {
    return this.#buffer[this.#start + offset];
  }

  /** Returns the offset of the first `byte` in [from, min(limit, length)), or -1. */
  indexOf(byte: number, from: number, limit: number): number {
    const buffer = this.#buffer;
    const begin = this.#start + from;
    const stop = this.#start + Math.min(limit, this.length);
    // Length lines end within a few bytes, so a loop finds their LF without
    // allocating a view. Longer searches, as in inline commands, use indexOf.
    const loopEnd = Math.min(stop, begin + SHORT_SEARCH_BYTES);
    for (let i = begin; i < loopEnd; i++) if (buffer[i] === byte) return i - this.#start;
    if (loopEnd === stop) return -1;
    const found = buffer.subarray(loopEnd, stop).indexOf(byte);
    return found < 0 ? -1 : loopEnd + found - this.#start;
  }

  /** Parses the bytes at [offset, offset + length) as parseDecimal does. */
  decimal(offset: number, length: number): number | null {
    const from = this.#start + offset;
    return parseDecimal(this.#buffer, from, from + length);
  }

  /** Returns a view of unread bytes that is valid only until the next push or consume. */
  view(offset: number, length: number): Buffer {
    const from = this.#start + offset;
    return this.#buffer.subarray(from, from + length);
  }

  /** Returns a copy, so that a stored argument does not pin the whole buffer. */
  copy(offset: number, length: number): Buffer {
    const from = this.#start + offset;
    const out = Buffer.allocUnsafe(length);
    this.#buffer.copy(out, 0, from, from + length);
    return out;
  }

  consume(count: number): void {
    this.#start += count;
    if (this.#start < this.#end) return;
    this.#start = 0;
    this.#end = 0;
    if (this.#buffer.length > RETAINED_BUFFER_BYTES) this.#buffer = Buffer.allocUnsafe(INITIAL_BUFFER_BYTES);
  }
}

/**
 * Parses a strict decimal integer as Redis `string2ll` does: an optional `-`,
 * no `+`, no leading zeros, no spaces, and no `-0`. Returns null when invalid.
 * NOTE: values beyond 2^53 lose precision, because RESP integers map to JS numbers.
 */
function parseDecimal(bytes: Uint8Array, start = 0, end = bytes.length): number | null {
  const length = end - start;
  if (length === 0 || length > 20) return null;
  if (length === 1 && bytes[start] === 0x30) return 0;

  let i = start;
  const negative = bytes[start] === 0x2d;
  if (negative) i++;
  if (i >= end || bytes[i] < 0x31 || bytes[i] > 0x39) return null;

  let value = 0;
  for (; i < end; i++) {
    const digit = bytes[i] - 0x30;
    if (digit < 0 || digit > 9) return null;
    value = value * 10 + digit;
  }
  return negative ? -value : value;
}

type LengthLine = { kind: "length"; value: number; lineBytes: number } | { kind: "incomplete" } | { kind: "tooLong" } | { kind: "invalid" };

/** Reads the `*count` or `$len` line at the front of `queue` without consuming it. */
function readLengthLine(queue: ByteQueue): LengthLine {
  const newline = queue.indexOf(LF, 0, MAX_LENGTH_LINE_BYTES);
  if (newline < 0) return queue.length >= MAX_LENGTH_LINE_BYTES ? { kind: "tooLong" } : { kind: "incomplete" };
  if (newline < 2 || queue.byteAt(newline - 1) !== CR) return { kind: "invalid" };

  const value = queue.decimal(1, newline - 2);
  if (value === null) return { kind: "invalid" };
  return { kind: "length", value, lineBytes: newline + 1 };
}

// ---------------------------------------------------------------------------
// Inline commands

function isCSpace(byte: number): boolean {
  return byte === SPACE || byte === TAB || byte === LF || byte === CR || byte === VTAB || byte === FORMFEED;
}

function hexValue(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x41 + 10;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x61 + 10;
  return -1;
}

function unescapeByte(byte: number): number {
  switch (byte) {
    case 0x6e: // n
      return LF;
    case 0x72: // r
      return CR;
    case 0x74: // t
      return TAB;
    case 0x62: // b
      return 0x08;
    case 0x61: // a
      return 0x07;
    default:
      return byte;
  }
}

/**
 * Splits `line[start, end)` into arguments with the rules of Redis `sdssplitargs`,
 * or returns null on unbalanced quotes.
 *
 * Unquoted arguments end at space, tab, CR or LF. A quote may open inside an
 * argument (`a"b c"` is `ab c`). Inside double quotes `\n \r \t \b \a` and
 * `\xHH` are decoded and any other escaped byte stands for itself. Inside
 * single quotes only `\'` is special. A closing quote must be followed by
 * whitespace or the end of the line. `""` and `''` are empty arguments.
 * NOTE: Redis stops at a NUL byte because it scans a C string. Here NUL is an ordinary byte.
 */
function splitArguments(line: Uint8Array, start: number, end: number): Buffer[] | null {
  const args: Buffer[] = [];
  // Decoded bytes of the current argument, which is never longer than the line.
  const scratch = Buffer.allocUnsafe(end - start);
  let p = start;

  for (;;) {
    while (p < end && isCSpace(line[p])) p++;
    if (p >= end) return args;

    let length = 0;
    let inDoubleQuotes = false;
    let inSingleQuotes = false;
    let done = false;
    while (!done) {
      if (inDoubleQuotes) {
        if (p >= end) return null;
        const byte = line[p];
        if (byte === BACKSLASH && p + 3 < end && line[p + 1] === LOWER_X && hexValue(line[p + 2]) >= 0 && hexValue(line[p + 3]) >= 0) {
          scratch[length++] = hexValue(line[p + 2]) * 16 + hexValue(line[p + 3]);
          p += 4;
        } else if (byte === BACKSLASH && p + 1 < end) {
          scratch[length++] = unescapeByte(line[p + 1]);
          p += 2;
        } else if (byte === DOUBLE_QUOTE) {
          if (p + 1 < end && !isCSpace(line[p + 1])) return null;
          p++;
          done = true;
        } else {
          scratch[length++] = byte;
          p++;
        }
      } else if (inSingleQuotes) {
        if (p >= end) return null;
        const byte = line[p];
        if (byte === BACKSLASH && p + 1 < end && line[p + 1] === SINGLE_QUOTE) {
          scratch[length++] = SINGLE_QUOTE;
          p += 2;
        } else if (byte === SINGLE_QUOTE) {
          if (p + 1 < end && !isCSpace(line[p + 1])) return null;
          p++;
          done = true;
        } else {
          scratch[length++] = byte;
          p++;
        }
      } else if (p >= end) {
        done = true;
      } else {
        const byte = line[p];
        p++;
        if (byte === SPACE || byte === TAB || byte === LF || byte === CR) {
          done = true;
        } else if (byte === DOUBLE_QUOTE) {
          inDoubleQuotes = true;
        } else if (byte === SINGLE_QUOTE) {
          inSingleQuotes = true;
        } else {
          scratch[length++] = byte;
        }
      }
    }
    args.push(Buffer.from(scratch.subarray(0, length)));
  }
}

/**
 * Splits a command line the way the server splits inline commands (and
 * `redis-cli` splits its input). Strings are encoded as UTF-8 first, so `\xHH`
 * escapes can produce any byte. Returns null on unbalanced quotes.
 */
export function splitCommandLine(line: string | Uint8Array): Buffer[] | null {
  const bytes = typeof line === "string" ? Buffer.from(line) : line;
  return splitArguments(bytes, 0, bytes.length);
}

// ---------------------------------------------------------------------------
// Request parser

function describeByte(byte: number): string {
  if (byte >= 0x20 && byte < 0x7f) return String.fromCharCode(byte);
  return `\\x${byte.toString(16).padStart(2, "0")}`;
}

function validateLimit(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`RESP limit ${name} must be a positive integer, got ${value}`);
  }
}

function validateLimits(limits: RespLimits): void {
  validateLimit("maxBulkBytes", limits.maxBulkBytes);
  validateLimit("maxArgs", limits.maxArgs);
  validateLimit("maxInlineBytes", limits.maxInlineBytes);
  if (limits.maxCommandBytes !== undefined) validateLimit("maxCommandBytes", limits.maxCommandBytes);
}

/**
 * Incremental parser for the requests a server reads: multibulk commands and
 * inline command lines, pipelined or split across chunks at any byte.
 *
 * After an error every later `next()` returns the same error, because the
 * stream position is lost. The parser keeps no reference to pushed chunks, and
 * every returned argument is a fresh copy.
 */
export class RespParser {
  readonly #limits: RespLimits;
  readonly #queue = new ByteQueue();
  /** Arguments of the multibulk command being read, or null between commands. */
  #args: Buffer[] | null = null;
  #argsRemaining = 0;
  /** Announced length of the bulk argument being read, or -1 while its `$len` line is pending. */
  #bulkLength = -1;
  #commandBytes = 0;
  /** Bytes of a pending inline line already searched for LF. */
  #inlineScanned = 0;
  #failure: string | null = null;

  constructor(limits: RespLimits) {
    validateLimits(limits);
    this.#limits = { ...limits };
  }

  /** Appends received bytes. The chunk is copied, so the caller may reuse it. */
  push(chunk: Uint8Array): void {
    this.#queue.push(chunk);
  }

  /** Returns the next complete command, "incomplete" when more bytes are needed, or a protocol error. */
  next(): ParseResult {
    if (this.#failure !== null) return { kind: "error", message: this.#failure };
    const result = this.#parse();
    if (result.kind === "error") this.#failure = result.message;
    return result;
  }

  #parse(): ParseResult {
    for (;;) {
      if (this.#args !== null) return this.#parseArguments();
      if (this.#queue.length === 0) return { kind: "incomplete" };

      if (this.#queue.byteAt(0) === ASTERISK) {
        const started = this.#parseMultibulkHeader();
        if (started !== null) return started;
        continue;
      }

      const inline = this.#parseInline();
      if (inline !== null) return inline;
    }
  }

  /** Reads `*count`. Returns null when a command started or an empty one was skipped, so parsing goes on. */
  #parseMultibulkHeader(): ParseResult | null {
    const line = readLengthLine(this.#queue);
    if (line.kind === "incomplete") return line;
    if (line.kind === "tooLong") return { kind: "error", message: "too big mbulk count string" };
    if (line.kind === "invalid" || line.value > this.#limits.maxArgs || line.value < -1) {
      return { kind: "error", message: "invalid multibulk length" };
    }

    this.#queue.consume(line.lineBytes);
    // Redis skips `*0` and `*-1` as empty commands.
    if (line.value <= 0) return null;
    this.#args = [];
    this.#argsRemaining = line.value;
    this.#bulkLength = -1;
    this.#commandBytes = 0;
    return null;
  }

  #parseArguments(): ParseResult {
    const queue = this.#queue;
    const args = this.#args ?? [];

    while (this.#argsRemaining > 0) {
      if (this.#bulkLength < 0) {
        if (queue.length === 0) return { kind: "incomplete" };
        const first = queue.byteAt(0);
        if (first !== DOLLAR) return { kind: "error", message: `expected '$', got '${describeByte(first)}'` };

        const line = readLengthLine(queue);
        if (line.kind === "incomplete") return line;
        if (line.kind === "tooLong") return { kind: "error", message: "too big bulk count string" };
        if (line.kind === "invalid" || line.value < 0) return { kind: "error", message: "invalid bulk length" };
        if (line.value > this.#limits.maxBulkBytes) {
          return { kind: "error", message: `bulk string of ${line.value} bytes exceeds the maximum of ${this.#limits.maxBulkBytes} bytes` };
        }
        const maxCommandBytes = this.#limits.maxCommandBytes;
        if (maxCommandBytes !== undefined && this.#commandBytes + line.value > maxCommandBytes) {
          return { kind: "error", message: `command exceeds the maximum size of ${maxCommandBytes} bytes` };
        }
        queue.consume(line.lineBytes);
        this.#bulkLength = line.value;
        this.#commandBytes += line.value;
      }

      const length = this.#bulkLength;
      if (queue.length < length + 2) return { kind: "incomplete" };
      if (queue.byteAt(length) !== CR || queue.byteAt(length + 1) !== LF) {
        return { kind: "error", message: "missing CRLF after bulk argument" };
      }
      args.push(queue.copy(0, length));
      queue.consume(length + 2);
      this.#bulkLength = -1;
      this.#argsRemaining--;
    }

    this.#args = null;
    return { kind: "command", args };
  }

  /** Reads one inline line. Returns null when the line was empty, so parsing goes on. */
  #parseInline(): ParseResult | null {
    const queue = this.#queue;
    const maxBytes = this.#limits.maxInlineBytes;
    // The line may hold maxBytes bytes plus CR, so LF can sit at offset maxBytes + 1.
    const searchLimit = maxBytes + 2;

    const newline = queue.indexOf(LF, this.#inlineScanned, searchLimit);
    if (newline < 0) {
      if (queue.length >= searchLimit) return { kind: "error", message: "too big inline request" };
      this.#inlineScanned = queue.length;
      return { kind: "incomplete" };
    }

    const lineEnd = newline > 0 && queue.byteAt(newline - 1) === CR ? newline - 1 : newline;
    if (lineEnd > maxBytes) return { kind: "error", message: "too big inline request" };

    const args = splitArguments(queue.view(0, lineEnd), 0, lineEnd);
    queue.consume(newline + 1);
    this.#inlineScanned = 0;
    if (args === null) return { kind: "error", message: "unbalanced quotes in request" };
    if (args.length === 0) return null;
    return { kind: "command", args };
  }
}

// ---------------------------------------------------------------------------
// Reply parser

type ReplyToken =
  | { kind: "value"; value: RespValue }
  | { kind: "arrayStart"; length: number }
  | { kind: "incomplete" }
  | { kind: "error"; message: string };

interface ArrayFrame {
  items: RespValue[];
  remaining: number;
}

/**
 * Incremental parser for the RESP2 replies a client reads, and for the RESP3
 * null, map and push types, which it reads as RESP2's null and arrays.
 * Nested arrays are built on an explicit stack, so a reply split across
 * chunks is never re-parsed from its start. After an error every later
 * `next()` returns the same error.
 */
export class RespReplyParser {
  readonly #limits: RespLimits;
  readonly #queue = new ByteQueue();
  readonly #stack: ArrayFrame[] = [];
  #lineScanned = 0;
  #failure: string | null = null;

  constructor(limits: RespLimits = DEFAULT_RESP_LIMITS) {
    validateLimits(limits);
    this.#limits = { ...limits };
  }

  /** Appends received bytes. The chunk is copied, so the caller may reuse it. */
  push(chunk: Uint8Array): void {
    this.#queue.push(chunk);
  }

  /** Returns the next complete reply, "incomplete" when more bytes are needed, or a protocol error. */
  next(): ReplyParseResult {
    if (this.#failure !== null) return { kind: "error", message: this.#failure };

    for (;;) {
      const token = this.#readToken();
      switch (token.kind) {
        case "incomplete":
          return token;
        case "error":
          this.#failure = token.message;
          return token;
        case "arrayStart":
          this.#stack.push({ items: [], remaining: token.length });
          break;
        case "value": {
          const reply = this.#addToArrays(token.value);
          if (reply !== null) return { kind: "reply", value: reply };
          break;
        }
        default: {
          const unexpected: never = token;
          throw new Error(`unexpected reply token ${JSON.stringify(unexpected)}`);
        }
      }
    }
  }

  /** Adds a finished value to the innermost open array. Returns the top-level reply once it is complete. */
  #addToArrays(value: RespValue): RespValue | null {
    let finished = value;
    for (;;) {
      const frame = this.#stack.at(-1);
      if (frame === undefined) return finished;
      frame.items.push(finished);
      frame.remaining--;
      if (frame.remaining > 0) return null;
      this.#stack.pop();
      finished = { type: "array", value: frame.items };
    }
  }

  /** Reads one value header and, for scalars, the whole value. */
  #readToken(): ReplyToken {
    const queue = this.#queue;
    if (queue.length === 0) return { kind: "incomplete" };

    const maxLine = this.#limits.maxInlineBytes + 2;
    const newline = queue.indexOf(LF, this.#lineScanned, maxLine + 1);
    if (newline < 0) {
      if (queue.length > maxLine) return { kind: "error", message: `reply line exceeds ${this.#limits.maxInlineBytes} bytes` };
      this.#lineScanned = queue.length;
      return { kind: "incomplete" };
    }
    if (newline < 1 || queue.byteAt(newline - 1) !== CR) return { kind: "error", message: "reply line does not end with CRLF" };

    const type = queue.byteAt(0);
    const content = queue.view(1, newline - 2);
    const lineBytes = newline + 1;

    switch (type) {
      case 0x2b: // +
      case 0x2d: { // -
        const text = content.toString("utf8");
        this.#consume(lineBytes);
        return { kind: "value", value: type === 0x2b ? { type: "simple", value: text } : { type: "error", message: text } };
      }
      case 0x3a: { // :
        const value = parseDecimal(content);
        if (value === null) return { kind: "error", message: "invalid integer reply" };
        this.#consume(lineBytes);
        return { kind: "value", value: { type: "integer", value } };
      }
      case 0x24: { // $
        const length = parseDecimal(content);
        if (length === null || length < -1 || length > this.#limits.maxBulkBytes) {
          return { kind: "error", message: "invalid bulk length" };
        }
        if (length === -1) {
          this.#consume(lineBytes);
          return { kind: "value", value: { type: "bulk", value: null } };
        }
        // Wait for the whole bulk before consuming its header, so a retry re-reads the short header only.
        if (queue.length < lineBytes + length + 2) return { kind: "incomplete" };
        if (queue.byteAt(lineBytes + length) !== CR || queue.byteAt(lineBytes + length + 1) !== LF) {
          return { kind: "error", message: "missing CRLF after bulk string" };
        }
        const body = queue.copy(lineBytes, length);
        this.#consume(lineBytes + length + 2);
        return { kind: "value", value: { type: "bulk", value: body } };
      }
      case 0x2a: // *
      case 0x3e: // >, a RESP3 push, read as an array
      case 0x25: { // %, a RESP3 map, read as an array of keys and values in turn
        const count = parseDecimal(content);
        const length = count !== null && type === 0x25 ? count * 2 : count;
        if (length === null || length < -1 || length > this.#limits.maxArgs || (length === -1 && type !== 0x2a)) {
          return { kind: "error", message: "invalid array length" };
        }
        this.#consume(lineBytes);
        if (length === -1) return { kind: "value", value: { type: "array", value: null } };
        if (length === 0) return { kind: "value", value: { type: "array", value: [] } };
        return { kind: "arrayStart", length };
      }
      case 0x5f: // _, the RESP3 null, read as the null bulk string
        if (content.length !== 0) return { kind: "error", message: "invalid null reply" };
        this.#consume(lineBytes);
        return { kind: "value", value: { type: "bulk", value: null } };
      default:
        return { kind: "error", message: `unknown reply type '${describeByte(type)}'` };
    }
  }

  #consume(count: number): void {
    this.#queue.consume(count);
    this.#lineScanned = 0;
  }
}
