// Flag checks that citty leaves to the caller: unknown flags and numbers.

import type { ArgsDef } from "citty";

/** Raised for a bad command line; main prints the message and exits with status 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

function camelToKebab(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
}

/** Throws a UsageError naming the first flag in `rawArgs` that `defs` does not declare. */
export function rejectUnknownFlags(rawArgs: string[], defs: ArgsDef, command: string): void {
  const known = new Set<string>(["help", "h"]);
  for (const [name, def] of Object.entries(defs)) {
    known.add(name);
    known.add(camelToKebab(name));
    const alias = "alias" in def ? def.alias : undefined;
    const aliases = alias === undefined ? [] : ([] as string[]).concat(alias);
    for (const alias of aliases) known.add(alias);
  }
  for (const [position, raw] of rawArgs.entries()) {
    if (raw === "--") break;
    if (!raw.startsWith("-") || raw === "-") continue;
    // The parser reads "-1" as a flag named 1, so a negative value would be reported as an unknown flag.
    if (/^-\d/.test(raw)) {
      const flag = position > 0 ? rawArgs[position - 1] : "a flag";
      throw new UsageError(`invalid value ${raw} for ${flag}: negative numbers are not accepted; run 'echokv ${command} --help' for the ranges`);
    }
    const name = raw.replace(/^--?/, "").split("=")[0].replace(/^no-/, "");
    if (!known.has(name)) {
      throw new UsageError(`unknown flag ${raw.split("=")[0]} for '${command}'; run 'echokv ${command} --help' for the list`);
    }
  }
}

/** Parses a whole number flag within [min, max], naming the flag on error. */
export function intFlag(value: string | undefined, flag: string, fallback: number, min: number, max: number): number {
  if (value === undefined || value === "") return fallback;
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
    throw new UsageError(`invalid --${flag} "${value}": expected a whole number from ${min} to ${max}`);
  }
  return parsed;
}
