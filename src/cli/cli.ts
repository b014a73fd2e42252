// `echokv cli`: an interactive shell, or one command when given after the flags.

import { defineCommand } from "citty";
import { parseConsistency } from "../server/commands.ts";
import { rejectUnknownFlags, UsageError } from "./flags.ts";
import { runOneShot, runShell } from "./shell.ts";

const cliArgs = {
  connect: { type: "string", description: "Client address (host:port) of any node", default: "127.0.0.1:5379" },
  consistency: { type: "string", description: "GET consistency for this session: local, lease or linearizable (default: the server's)" },
} as const;

export const cliCommand = defineCommand({
  meta: { name: "cli", description: "Open a shell to a node, or run one command: echokv cli --connect HOST:PORT SET k v" },
  args: cliArgs,
  async run({ args, rawArgs }) {
    // Everything after the first positional argument belongs to the command, flags included.
    const commandStart = firstPositional(rawArgs);
    const flags = commandStart === -1 ? rawArgs : rawArgs.slice(0, commandStart);
    rejectUnknownFlags(flags, cliArgs, "cli");
    const address = args.connect.startsWith(":") ? `127.0.0.1${args.connect}` : args.connect;
    const consistency = args.consistency;
    if (consistency !== undefined && parseConsistency(consistency) === null) {
      throw new UsageError(`invalid --consistency "${consistency}": expected local, lease or linearizable`);
    }
    const status =
      commandStart === -1
        ? await runShell(address, { consistency })
        : await runOneShot(address, rawArgs.slice(commandStart), undefined, consistency);
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
