import { describe, expect, test } from "bun:test";
import { WriteQueue } from "../../src/transport/write-queue.ts";
import type { WritableSocket } from "../../src/transport/write-queue.ts";

/** A socket that accepts at most `capacity` bytes per write and records what it accepted. */
class FakeSocket implements WritableSocket {
  capacity = Number.POSITIVE_INFINITY;
  closed = false;
  writes: number[] = [];
  accepted: number[] = [];

  write(data: Uint8Array): number {
    if (this.closed) return -1;
    const count = Math.min(data.length, this.capacity);
    this.writes.push(data.length);
    this.accepted.push(...data.subarray(0, count));
    return count;
  }
}

function bytes(start: number, length: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (start + i) % 256);
}

/** Lets queued microtasks, such as the queue's flush, run. */
async function nextTick(): Promise<void> {
  await Promise.resolve();
}

describe("WriteQueue", () => {
  test("batches frames of one tick", async () => {
    const socket = new FakeSocket();
    const queue = new WriteQueue(socket, 1024);
    queue.enqueue(bytes(0, 10));
    queue.enqueue(bytes(10, 20));
    queue.enqueue(bytes(30, 5));
    expect(socket.writes).toEqual([]);

    await nextTick();
    expect(socket.writes).toEqual([35]);
    expect(socket.accepted).toEqual([...bytes(0, 35)]);
    expect(queue.bufferedBytes).toBe(0);
  });

  test("keeps unwritten bytes until drain", async () => {
    const socket = new FakeSocket();
    socket.capacity = 8;
    const queue = new WriteQueue(socket, 1024);
    queue.enqueue(bytes(0, 20));
    await nextTick();

    expect(socket.accepted.length).toBe(8);
    expect(queue.bufferedBytes).toBe(12);

    // Frames queued while blocked wait for drain, behind the unwritten tail.
    queue.enqueue(bytes(20, 4));
    await nextTick();
    expect(socket.accepted.length).toBe(8);

    socket.capacity = Number.POSITIVE_INFINITY;
    queue.drain();
    expect(socket.accepted).toEqual([...bytes(0, 24)]);
    expect(queue.bufferedBytes).toBe(0);
  });

  test("writes tail alone after drain", async () => {
    const socket = new FakeSocket();
    socket.capacity = 5;
    const queue = new WriteQueue(socket, 1024);
    queue.enqueue(bytes(0, 8));
    queue.enqueue(bytes(8, 8));
    await nextTick();

    socket.capacity = Number.POSITIVE_INFINITY;
    queue.drain();
    // The 11-byte tail of the first batch goes out as is, not copied into a new batch.
    expect(socket.writes).toEqual([16, 11]);
    expect(socket.accepted).toEqual([...bytes(0, 16)]);
  });

  test("rejects frames over the cap", () => {
    const socket = new FakeSocket();
    socket.capacity = 0;
    const queue = new WriteQueue(socket, 100);

    expect(queue.enqueue(bytes(0, 60))).toBe(true);
    expect(queue.enqueue(bytes(0, 40))).toBe(true);
    expect(queue.enqueue(bytes(0, 1))).toBe(false);
    expect(queue.bufferedBytes).toBe(100);
  });

  test("discards frames after close", async () => {
    const socket = new FakeSocket();
    const queue = new WriteQueue(socket, 100);
    queue.enqueue(bytes(0, 10));
    queue.close();
    await nextTick();

    expect(socket.writes).toEqual([]);
    expect(queue.enqueue(bytes(0, 10))).toBe(false);
    expect(queue.bufferedBytes).toBe(0);
  });

  test("stops on a closed socket", async () => {
    const socket = new FakeSocket();
    socket.closed = true;
    const queue = new WriteQueue(socket, 100);
    queue.enqueue(bytes(0, 10));
    await nextTick();

    expect(queue.bufferedBytes).toBe(10);
  });
});
