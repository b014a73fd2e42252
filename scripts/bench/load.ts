// The load generator: a fixed number of connections, each with one request
// in flight, repeating one operation until an operation count or a time
// limit is reached, whichever comes first.

import type { BenchClient, Outcome } from "./clients.ts";

export type Workload = "sequential-set" | "set" | "local-get" | "linearizable-get";

export const WORKLOADS: readonly Workload[] = ["sequential-set", "set", "local-get", "linearizable-get"];

export const WORKLOAD_TITLES: Record<Workload, string> = {
  "sequential-set": "sequential SET, 1 client",
  set: "SET, 64 in flight",
  "local-get": "local GET, 64 in flight",
  "linearizable-get": "linearizable GET, 64 in flight",
};

/** Limits of one load run: it ends at `maxOps` operations or after `maxSeconds`, whichever comes first. */
export interface LoadSpec {
  concurrency: number;
  maxOps: number;
  maxSeconds: number;
}

/** Sends the operation numbered `index` (0, 1, ... in the order issued) on `client`. */
export type Operation = (client: BenchClient, index: number) => Promise<Outcome>;

/** Keys and values shared by every workload, built once so that the loop only picks them. */
export class Dataset {
  /** Keys are this prefix and a number of 12 digits, as redis-benchmark writes `__rand_int__`. */
  readonly keyPrefix = "bench:";
  readonly keys: string[];
  readonly values: string[];

  /** Builds `keyCount` keys and a pool of 64 distinct values of `valueBytes` ASCII characters. */
  constructor(keyCount: number, valueBytes: number) {
    this.keys = Array.from({ length: keyCount }, (_, index) => `${this.keyPrefix}${String(index).padStart(12, "0")}`);
    const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    this.values = Array.from({ length: 64 }, () => {
      let value = "";
      for (let i = 0; i < valueBytes; i++) value += alphabet[Math.floor(Math.random() * alphabet.length)];
      return value;
    });
  }

  randomKey(): string {
    return this.keys[Math.floor(Math.random() * this.keys.length)];
  }

  randomValue(): string {
    return this.values[Math.floor(Math.random() * this.values.length)];
  }
}

export interface LoadResult {
  /** Operations that returned "ok". */
  okOps: number;
  /** Failed operations by error kind. */
  errors: Map<string, number>;
  elapsedSeconds: number;
  /** Latencies of the successful operations in milliseconds, sorted ascending. */
  latenciesMs: Float64Array;
}

/** Returns the operation that `workload` repeats, on random keys and values of `dataset`. */
export function workloadOperation(workload: Workload, dataset: Dataset): Operation {
  switch (workload) {
    case "sequential-set":
    case "set":
      return (client) => client.set(dataset.randomKey(), dataset.randomValue());
    case "local-get":
      return (client) => client.get(dataset.randomKey(), "local");
    case "linearizable-get":
      return (client) => client.get(dataset.randomKey(), "linearizable");
    default: {
      const unreachable: never = workload;
      throw new Error(`unknown workload ${String(unreachable)}`);
    }
  }
}

/**
 * Repeats `operation` on `spec.concurrency` connections from `connect`. A
 * connection that times out or closes is replaced by a new one. If opening
 * that fails, its worker stops and the failure counts as an error.
 */
export async function runLoad(spec: LoadSpec, operation: Operation, connect: () => Promise<BenchClient>): Promise<LoadResult> {
  const clients = await Promise.all(Array.from({ length: spec.concurrency }, () => connect()));
  const latencies = new Float64Array(spec.maxOps);
  const errors = new Map<string, number>();
  let issued = 0;
  let okOps = 0;

  const countError = (kind: string) => errors.set(kind, (errors.get(kind) ?? 0) + 1);
  const start = performance.now();
  const deadline = start + spec.maxSeconds * 1000;

  const worker = async (slot: number): Promise<void> => {
    while (issued < spec.maxOps && performance.now() < deadline) {
      const index = issued++;
      const sentAt = performance.now();
      const outcome = await operation(clients[slot], index);
      const latency = performance.now() - sentAt;
      if (outcome === "ok") {
        latencies[okOps++] = latency;
        continue;
      }
      countError(outcome);
      if (clients[slot].closed) {
        try {
          clients[slot] = await connect();
        } catch (err) {
          countError(`reconnect failed: ${(err as Error).message}`);
          return;
        }
      }
    }
  };

  await Promise.all(clients.map((_, slot) => worker(slot)));
  const elapsedSeconds = (performance.now() - start) / 1000;
  for (const client of clients) client.close();

  return { okOps, errors, elapsedSeconds, latenciesMs: latencies.slice(0, okOps).sort() };
}

/** Returns the `fraction` quantile of ascending `sorted` by the nearest-rank method, or NaN when empty. */
export function quantile(sorted: Float64Array, fraction: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil(fraction * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}
