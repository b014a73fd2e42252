// Priority queue of simulator events, ordered by time and then by the order
// in which they were scheduled, so that runs are deterministic.

/** What an event does, recorded in the trace and shown when a run fails. */
export interface EventLabel {
  kind: string;
  /** Node the event runs on, or null for cluster-wide events. */
  node: string | null;
  /** Describes the event's payload; called only when the trace is printed. */
  detail?: () => string;
}

export interface SimEvent {
  time: number;
  seq: number;
  label: EventLabel;
  run: () => void;
}

/** Binary min-heap on (time, seq). */
export class EventQueue {
  #heap: SimEvent[] = [];
  #seq = 0;

  get size(): number {
    return this.#heap.length;
  }

  push(time: number, label: EventLabel, run: () => void): void {
    const event: SimEvent = { time, seq: this.#seq++, label, run };
    const heap = this.#heap;
    heap.push(event);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(event, heap[parent])) break;
      heap[i] = heap[parent];
      i = parent;
    }
    heap[i] = event;
  }

  pop(): SimEvent | undefined {
    const heap = this.#heap;
    if (heap.length === 0) return undefined;
    const top = heap[0];
    const last = heap.pop()!;
    if (heap.length > 0) {
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= heap.length) break;
        const right = left + 1;
        const child = right < heap.length && before(heap[right], heap[left]) ? right : left;
        if (!before(heap[child], last)) break;
        heap[i] = heap[child];
        i = child;
      }
      heap[i] = last;
    }
    return top;
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}
