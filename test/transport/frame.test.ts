import { describe, expect, test } from "bun:test";
import { encode } from "cborg";
import { encodeFrame, FRAME_HEADER_BYTES, FrameDecoder } from "../../src/transport/frame.ts";
import type { FrameResult } from "../../src/transport/frame.ts";
import { sampleMessages } from "./fixtures.ts";

/** Builds a frame by hand, so that tests can send bodies encodeFrame would never produce. */
function rawFrame(body: Uint8Array, length = body.length): Uint8Array {
  const frame = new Uint8Array(FRAME_HEADER_BYTES + body.length);
  new DataView(frame.buffer).setUint32(0, length, false);
  frame.set(body, FRAME_HEADER_BYTES);
  return frame;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Returns every frame value available, failing the test on an error. */
function drain(decoder: FrameDecoder): unknown[] {
  const values: unknown[] = [];
  for (let i = 0; i < 100_000; i++) {
    const result = decoder.next();
    if (result.kind === "incomplete") return values;
    if (result.kind === "error") throw new Error(`unexpected decoder error: ${result.message}`);
    values.push(result.value);
  }
  throw new Error("decoder returned more than 100000 frames");
}

function expectError(result: FrameResult, fragment: string): void {
  expect(result.kind).toBe("error");
  if (result.kind === "error") expect(result.message).toContain(fragment);
}

describe("encodeFrame", () => {
  test("header holds body length", () => {
    const frame = encodeFrame({ type: "welcome" });
    const length = new DataView(frame.buffer, frame.byteOffset).getUint32(0, false);

    expect(length).toBe(frame.length - FRAME_HEADER_BYTES);
    expect(frame.subarray(FRAME_HEADER_BYTES)).toEqual(encode({ type: "welcome" }));
  });

  test("frame fills its own buffer", () => {
    const frame = encodeFrame(sampleMessages()[0]);

    expect(frame.byteOffset).toBe(0);
    expect(frame.buffer.byteLength).toBe(frame.length);
  });

  test("frames encoded one after another keep their own bytes", () => {
    const first = encodeFrame({ data: new Uint8Array(300).fill(1) });
    const copy = first.slice();
    encodeFrame({ data: new Uint8Array(300).fill(2) });

    expect(first).toEqual(copy);
  });

  test("a body larger than the encoding buffer is framed whole", () => {
    const data = new Uint8Array(5 << 20).fill(7);
    const decoder = new FrameDecoder(6 << 20);
    decoder.push(encodeFrame({ data }));

    const [value] = drain(decoder) as [{ data: Uint8Array }];
    expect(value.data.length).toBe(data.length);
    expect(value.data.every((byte) => byte === 7)).toBe(true);
  });

  test("a value cborg cannot encode throws", () => {
    expect(() => encodeFrame({ f: () => 1 })).toThrow();
  });

  test("omits undefined optional fields", () => {
    const entry = { index: 1, term: 1, kind: "command", data: new Uint8Array([1]), members: undefined };
    const decoder = new FrameDecoder(1024);
    decoder.push(encodeFrame({ entries: [entry] }));

    const [value] = drain(decoder) as [{ entries: Record<string, unknown>[] }];
    expect(Object.keys(value.entries[0]).sort()).toEqual(["data", "index", "kind", "term"]);
  });
});

describe("FrameDecoder", () => {
  test("round-trips every message type", () => {
    const messages = sampleMessages();
    const decoder = new FrameDecoder(1024 * 1024);
    for (const msg of messages) decoder.push(encodeFrame(msg));

    expect(drain(decoder)).toEqual(messages);
  });

  test("keeps bytes as Uint8Array", () => {
    const decoder = new FrameDecoder(1024 * 1024);
    decoder.push(encodeFrame(sampleMessages()[0]));

    const [append] = drain(decoder) as [{ entries: { data: unknown }[] }];
    const data = append.entries[0].data;
    expect(data).toBeInstanceOf(Uint8Array);
    expect(Buffer.isBuffer(data)).toBe(false);
    expect(data).toEqual(new Uint8Array([1, 2, 3]));
  });

  test("decodes frames split bytewise", () => {
    const messages = sampleMessages();
    const stream = concat(messages.map((msg) => encodeFrame(msg)));
    const decoder = new FrameDecoder(1024 * 1024);

    const values: unknown[] = [];
    for (let i = 0; i < stream.length; i++) {
      decoder.push(stream.subarray(i, i + 1));
      values.push(...drain(decoder));
    }

    expect(values).toEqual(messages);
    expect(decoder.bufferedBytes).toBe(0);
  });

  test("decodes coalesced frames per chunk", () => {
    const messages = sampleMessages();
    const stream = concat([...messages, ...messages].map((msg) => encodeFrame(msg)));
    const decoder = new FrameDecoder(1024 * 1024);

    // Chunks of 7 bytes cut headers and bodies at varying points.
    const values: unknown[] = [];
    for (let offset = 0; offset < stream.length; offset += 7) {
      decoder.push(stream.subarray(offset, offset + 7));
      values.push(...drain(decoder));
    }

    expect(values).toEqual([...messages, ...messages]);
  });

  test("decodes large frame in chunks", () => {
    const data = new Uint8Array(4 * 1024 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = i % 251;
    const frame = encodeFrame({ data });
    const decoder = new FrameDecoder(8 * 1024 * 1024);

    // 4096 chunks of 1 KiB: a quadratic decoder would copy about 8 GiB here.
    const started = performance.now();
    const values: unknown[] = [];
    for (let offset = 0; offset < frame.length; offset += 1024) {
      decoder.push(frame.subarray(offset, offset + 1024));
      values.push(...drain(decoder));
    }

    expect(values).toEqual([{ data }]);
    expect(performance.now() - started).toBeLessThan(2000);
  });

  test("waits for a complete frame", () => {
    const frame = encodeFrame({ type: "welcome" });
    const decoder = new FrameDecoder(1024);

    decoder.push(frame.subarray(0, 2));
    expect(decoder.next()).toEqual({ kind: "incomplete" });
    decoder.push(frame.subarray(2, frame.length - 1));
    expect(decoder.next()).toEqual({ kind: "incomplete" });
    decoder.push(frame.subarray(frame.length - 1));
    expect(decoder.next()).toEqual({ kind: "frame", value: { type: "welcome" } });
    expect(decoder.next()).toEqual({ kind: "incomplete" });
  });

  test("rejects oversize length from header", () => {
    const decoder = new FrameDecoder(1000);
    const header = new Uint8Array(FRAME_HEADER_BYTES);
    new DataView(header.buffer).setUint32(0, 0xffff_ffff, false);
    decoder.push(header);

    expectError(decoder.next(), "frame length 4294967295 exceeds the maximum of 1000 bytes");
    expect(decoder.bufferedBytes).toBe(0);
  });

  test("accepts length at the maximum", () => {
    const body = encode("x".repeat(95));
    const decoder = new FrameDecoder(body.length);
    decoder.push(rawFrame(body));

    expect(drain(decoder)).toEqual(["x".repeat(95)]);
  });

  test("rejects invalid CBOR", () => {
    const decoder = new FrameDecoder(1024);
    // 0xff is a "break" with no indefinite-length item open.
    decoder.push(rawFrame(new Uint8Array([0xff, 0x00, 0x01])));

    expectError(decoder.next(), "invalid CBOR");
  });

  test("rejects text as frames", () => {
    const decoder = new FrameDecoder(1024);
    decoder.push(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));

    // "GET " read as a length is 0x47455420, far above the maximum.
    expectError(decoder.next(), "exceeds the maximum");
  });

  test("rejects trailing bytes in body", () => {
    const body = concat([encode(1), encode(2)]);
    const decoder = new FrameDecoder(1024);
    decoder.push(rawFrame(body));

    expectError(decoder.next(), "invalid CBOR");
  });

  test("rejects empty body", () => {
    const decoder = new FrameDecoder(1024);
    decoder.push(rawFrame(new Uint8Array(0)));

    expectError(decoder.next(), "invalid CBOR");
  });

  test("rejects undefined, NaN and tags", () => {
    const bodies = [
      new Uint8Array([0xf7]), // undefined
      new Uint8Array([0xf9, 0x7e, 0x00]), // half-precision NaN
      new Uint8Array([0xc1, 0x00]), // tag 1 (epoch time) around 0
      new Uint8Array([0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), // 2^64 - 1
      new Uint8Array([0x9f, 0x01, 0xff]), // indefinite-length array
      new Uint8Array([0xa2, 0x61, 0x61, 0x01, 0x61, 0x61, 0x02]), // map with key "a" twice
    ];
    for (const body of bodies) {
      const decoder = new FrameDecoder(1024);
      decoder.push(rawFrame(body));
      expectError(decoder.next(), "invalid CBOR");
    }
  });

  test("stays failed after an error", () => {
    const decoder = new FrameDecoder(1024);
    decoder.push(rawFrame(new Uint8Array([0xff])));
    expectError(decoder.next(), "invalid CBOR");

    decoder.push(encodeFrame({ type: "welcome" }));
    expectError(decoder.next(), "invalid CBOR");
    expect(decoder.bufferedBytes).toBe(0);
  });

  test("rejects invalid maximum", () => {
    expect(() => new FrameDecoder(0)).toThrow("maxFrameBytes must be a positive integer, got 0");
  });
});
