// Structured, one-line-per-event logging to stderr in logfmt style:
//   2026-12-04T19:41:41.123Z INFO  node=node-1 term=3 msg="became leader" voters=3
// Context fields (node id, term, index) come first so that lines from several
// nodes can be merged and grepped. User keys and values are never logged.

export type LogLevel = "debug" | "info" | "warn" | "error";

const LEVEL_ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** Returns a logger whose lines start with the fields `context` returns at write time. */
  with(context: () => LogFields): Logger;
}

function formatValue(value: string | number | boolean | null): string {
  if (typeof value !== "string") return String(value);
  if (value !== "" && /^[\w.:\/@+-]+$/.test(value)) return value;
  return JSON.stringify(value);
}

function formatFields(fields: LogFields): string {
  let out = "";
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    out += ` ${key}=${formatValue(value)}`;
  }
  return out;
}

export function createLogger(
  minLevel: LogLevel = "info",
  write: (line: string) => void = (line) => process.stderr.write(line + "\n"),
  context: () => LogFields = () => ({}),
): Logger {
  const emit = (level: LogLevel, msg: string, fields: LogFields = {}) => {
    if (LEVEL_ORDER[level] < LEVEL_ORDER[minLevel]) return;
    const time = new Date().toISOString();
    const tag = level.toUpperCase().padEnd(5);
    write(`${time} ${tag}${formatFields(context())} msg=${JSON.stringify(msg)}${formatFields(fields)}`);
  };
  return {
    debug: (msg, fields) => emit("debug", msg, fields),
    info: (msg, fields) => emit("info", msg, fields),
    warn: (msg, fields) => emit("warn", msg, fields),
    error: (msg, fields) => emit("error", msg, fields),
    with: (extra) => createLogger(minLevel, write, () => ({ ...context(), ...extra() })),
  };
}

/** A logger that drops everything, for tests and the simulator. */
export const silentLogger: Logger = createLogger("error", () => {});

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
