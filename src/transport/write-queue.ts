// Outgoing byte queue for one socket: coalesces the frames queued in the same
// tick into one write and keeps what the kernel did not accept until `drain`.

/** The subset of a Bun socket the queue writes to. */
export interface WritableSocket {
  /** Returns the bytes accepted, which may be fewer than offered, or -1 once closed. */
  write(data: Uint8Array, byteOffset?: number, byteLength?: number): number;
}

/** Frames up to this total are copied into one buffer for a single write. */
const MAX_BATCH_BYTES = 256 * 1024;

export class WriteQueue {
  readonly #socket: WritableSocket;
  readonly #maxBufferedBytes: number;
  #frames: Uint8Array[] = [];
  /** Index into #frames of the next frame to write. */
  #head = 0;
  #bufferedBytes = 0;
  #flushScheduled = false;
  /** Set while the kernel buffer is full, and cleared by `drain()`. */
  #blocked = false;
  #closed = false;

  /** @param maxBufferedBytes bytes the queue may hold before `enqueue` rejects frames. */
  constructor(socket: WritableSocket, maxBufferedBytes: number) {
    this.#socket = socket;
    this.#maxBufferedBytes = maxBufferedBytes;
  }

  /** Bytes queued that the socket has not accepted yet. */
  get bufferedBytes(): number {
    return this.#bufferedBytes;
  }

  /**
   * Queues `frame` for a write at the end of the current tick. Returns false,
   * and queues nothing, when the queue is closed or the frame would take it
   * over its byte limit.
   */
  enqueue(frame: Uint8Array): boolean {
    if (this.#closed) return false;
    if (this.#bufferedBytes + frame.length > this.#maxBufferedBytes) return false;

    this.#frames.push(frame);
    this.#bufferedBytes += frame.length;
    if (!this.#flushScheduled && !this.#blocked) {
      this.#flushScheduled = true;
      queueMicrotask(() => {
        this.#flushScheduled = false;
        this.#flush();
      });
    }
    return true;
  }

  /** Writes what is queued now instead of at the end of the tick. */
  flush(): void {
    this.#flush();
  }

  /** Resumes writing. Call it from the socket's `drain` handler. */
  drain(): void {
    this.#blocked = false;
    this.#flush();
  }

  /** Discards everything queued and rejects later frames. */
  close(): void {
    this.#closed = true;
    this.#frames = [];
    this.#head = 0;
    this.#bufferedBytes = 0;
  }

  #flush(): void {
    while (!this.#closed && !this.#blocked && this.#head < this.#frames.length) {
      const batch = this.#nextBatch();
      const written = this.#socket.write(batch);
      if (written < 0) {
        // The socket is closed; its close handler discards the queue.
        this.#blocked = true;
        return;
      }

      this.#bufferedBytes -= written;
      if (written < batch.length) {
        // Keep the unwritten tail as the next frame so it is written alone,
        // without being copied again.
        this.#head -= 1;
        this.#frames[this.#head] = batch.subarray(written);
        this.#blocked = true;
      }
    }

    // Drop written frames once they make up half the array, so a long
    // backlog does not keep every written frame reachable.
    if (this.#head === this.#frames.length) {
      this.#frames = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#frames.length) {
      this.#frames.splice(0, this.#head);
      this.#head = 0;
    }
  }

  /**
   * Removes frames from the front and returns their bytes: the first frame as
   * is when it is large or alone, or else a copy of as many frames as fit in
   * MAX_BATCH_BYTES.
   */
  #nextBatch(): Uint8Array {
    const first = this.#frames[this.#head];
    let end = this.#head + 1;
    let total = first.length;
    while (end < this.#frames.length && total + this.#frames[end].length <= MAX_BATCH_BYTES) {
      total += this.#frames[end].length;
      end += 1;
    }

    if (end === this.#head + 1) {
      this.#head = end;
      return first;
    }

    const batch = new Uint8Array(total);
    let offset = 0;
    for (let i = this.#head; i < end; i++) {
      batch.set(this.#frames[i], offset);
      offset += this.#frames[i].length;
    }
    this.#head = end;
    return batch;
  }
}
