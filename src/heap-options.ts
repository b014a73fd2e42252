// Garbage collector settings for a serving node.
//
// JavaScriptCore starts a full collection once its heap, which counts the
// bytes of every ArrayBuffer (the store's pages included), reaches a multiple
// of what the previous full collection left (proportionalHeapSize in its
// Heap.cpp). With the values Bun sets, printed by BUN_JSC_dumpOptions=2, the
// multiple is 2 on a machine with less than 16 GB of memory and about 3 on a
// larger one. In a benchmark run with 267 MB of keys and values, the leader
// reached 823 MB during a bulk load. A multiple near 1.25 keeps the heap
// closer to its live size, at the cost of more full collections: about 4%
// of GET and 5% of SET throughput at 64 in flight in the runs in
// docs/benchmarks.md.
//
// JavaScriptCore reads BUN_JSC_* variables only while the runtime starts, so
// `serve` first replaces its own process image (same PID) with one that has
// them set. When the operator set any of them, the environment stays as it is.

/** Settings for `serve`, each bounding how far the heap grows between full collections. */
export const SERVE_HEAP_OPTIONS: Readonly<Record<string, string>> = {
  // Machines with 16 GB or more: multiple = 1 + this * e^(-heap / RAM).
  BUN_JSC_heapGrowthMaxIncrease: "0.25",
  // Smaller machines: the multiple while the process uses under 80% (small)
  // or 90% (medium) of the memory.
  BUN_JSC_smallHeapGrowthFactor: "1.25",
  BUN_JSC_mediumHeapGrowthFactor: "1.25",
};

/** Returns whether this process is a compiled executable, whose argv[1] is its embedded entry point. */
function isCompiled(): boolean {
  return Bun.main.startsWith("/$bunfs/");
}

/**
 * Restarts the process in place with SERVE_HEAP_OPTIONS when it is about to
 * serve and none of them is set. Returns only when no restart is needed or
 * the restart failed, in which case the node runs with the defaults.
 */
export function applyServeHeapOptions(): void {
  if (process.argv[2] !== "serve") return;
  if (Object.keys(SERVE_HEAP_OPTIONS).some((name) => process.env[name] !== undefined)) return;
  // Not available on Windows.
  if (process.execve === undefined) return;
  const args = process.argv.slice(isCompiled() ? 2 : 1);
  try {
    process.execve(process.execPath, [process.execPath, ...args], { ...process.env, ...SERVE_HEAP_OPTIONS });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`echokv: could not restart with the garbage collector settings, running with the defaults: ${message}\n`);
  }
}
