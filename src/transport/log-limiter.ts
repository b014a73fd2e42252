// Rate limit for log lines that a remote host can trigger repeatedly.

/** Keys tracked before the table is cleared, so that a flood of keys cannot grow it without bound. */
const MAX_KEYS = 1024;

export class LogLimiter {
  readonly #intervalMs: number;
  readonly #entries = new Map<string, { loggedAtMs: number; suppressed: number }>();

  /** @param intervalMs minimum time between two lines with the same key. */
  constructor(intervalMs: number) {
    this.#intervalMs = intervalMs;
  }

  /**
   * Returns null when a line with `key` should be suppressed, or else the
   * number of lines suppressed since the previous one (0 for the first).
   */
  check(key: string, nowMs: number = Date.now()): number | null {
    const entry = this.#entries.get(key);
    if (entry !== undefined && nowMs - entry.loggedAtMs < this.#intervalMs) {
      entry.suppressed += 1;
      return null;
    }

    const suppressed = entry?.suppressed ?? 0;
    if (entry === undefined && this.#entries.size >= MAX_KEYS) this.#entries.clear();
    this.#entries.set(key, { loggedAtMs: nowMs, suppressed: 0 });
    return suppressed;
  }
}
