// `echokv cli`: an interactive shell, or one command when given after the flags.

import { defineCommand } from "citty";
import { parseConsistency } from "../server/commands.ts";
import { parseHostPort } from "../transport/address.ts";
import { rejectUnknownFlags, UsageError } from "./flags.ts";
import { runOneShot, runShell } from "./shell.ts";

const cliArgs = {
  connect: { type: "string", description: "Client address (host:port) of any node", default: "127.0.0.1:5379" },
  consistency: { type: "string", description: "GET consistency for this session: local, lease or linearizable (default: the server's)" },
} as const;

/** The one-shot command's words, which splitCliArgs took out of the arguments citty parses. */
let oneShotCommand: string[] | null = null;

/**
 * Splits the arguments after `cli` into its flags and a one-shot command,
 * and keeps the command for the cli command's `run`. Everything from the
 * first argument that is neither a flag nor a flag's value belongs to the
 * command, so a value such as `--help` is sent, not parsed. Returns the
 * flags, the only arguments citty may see.
 */
export function splitCliArgs(args: string[]): string[] {
  const commandStart = firstPositional(args);
  if (commandStart === -1) return args;
  oneShotCommand = args.slice(commandStart);
  const flags = args.slice(0, commandStart);
  return flags[flags.length - 1] === "--" ? flags.slice(0, -1) : flags;
}

export const cliCommand = defineCommand({
  meta: { name: "cli", description: "Open a shell to a node, or run one command: echokv cli --connect HOST:PORT SET k v" },
  args: cliArgs,
  async run({ args, rawArgs }) {
    const flags = oneShotCommand === null ? splitCliArgs(rawArgs) : rawArgs;
    const command = oneShotCommand;
    rejectUnknownFlags(flags, cliArgs, "cli");
    const address = args.connect.startsWith(":") ? `127.0.0.1${args.connect}` : args.connect;
    try {
      parseHostPort(address);
    } catch (err) {
      throw new UsageError(`invalid --connect: ${err instanceof Error ? err.message : String(err)}`);
    }
    const consistency = args.consistency;
    if (consistency !== undefined && parseConsistency(consistency) === null) {
      throw new UsageError(`invalid --consistency "${consistency}": expected local, lease or linearizable`);
    }
    const status = command === null ? await runShell(address, { consistency }) : await runOneShot(address, command, undefined, consistency);
    process.exit(status);
  },
});

/** Returns the index of the first argument that is neither a flag nor a flag's value. */
function firstPositional(rawArgs: string[]): number {
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i];
    if (arg === "--") return i + 1 < rawArgs.length ? i + 1 : -1;
    if (!arg.startsWith("-")) return i;
    if (!arg.includes("=")) i++; // skip the flag's value
  }
  return -1;
}
