#!/usr/bin/env bun
// Entry point of the echokv executable: one binary for every role.

import "./cli/plain-output.ts";
import { defineCommand, runMain, showUsage, type CommandDef } from "citty";
import { cliCommand, splitCliArgs } from "./cli/cli.ts";
import { UsageError } from "./cli/flags.ts";
import { serveCommand } from "./cli/serve.ts";
import { snapshotCommand } from "./cli/snapshot.ts";
import { tuiCommand } from "./cli/tui.ts";
import { BUILD_COMMIT, VERSION } from "./build-info.ts";
import { applyServeHeapOptions } from "./heap-options.ts";

/** Prints a failed command's error as one plain line and exits: 2 for bad usage, 1 otherwise. */
function reportAndExit(err: unknown): never {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`echokv: ${message}\n`);
  process.exit(err instanceof UsageError ? 2 : 1);
}

// citty prints a stack trace for errors thrown by `run`; wrap each command instead.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function guarded<T extends CommandDef<any>>(command: T): T {
  const run = command.run;
  const subCommands = command.subCommands;
  if (subCommands && typeof subCommands === "object" && !(subCommands instanceof Promise)) {
    const wrapped: Record<string, CommandDef<any>> = {};
    for (const [name, sub] of Object.entries(subCommands)) wrapped[name] = guarded(sub as CommandDef<any>);
    return { ...command, subCommands: wrapped };
  }
  if (!run) return command;
  return {
    ...command,
    run: async (context) => {
      try {
        return await run(context);
      } catch (err) {
        reportAndExit(err);
      }
    },
  };
}

const main = defineCommand({
  meta: { name: "echokv", version: `${VERSION} (commit ${BUILD_COMMIT})`, description: "A small strongly consistent replicated key-value store speaking RESP" },
  subCommands: {
    serve: guarded(serveCommand),
    cli: guarded(cliCommand),
    tui: guarded(tuiCommand),
    snapshot: guarded(snapshotCommand),
  },
});

/**
 * citty names a command in its help by its direct parent only, so `echokv
 * snapshot save --help` read `snapshot save`. A nested command's parent gets
 * the executable's name in front.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function showFullUsage(command: CommandDef<any>, parent?: CommandDef<any>): Promise<void> {
  const parentMeta = parent?.meta;
  if (parent && parent !== main && parentMeta && typeof parentMeta === "object" && !(parentMeta instanceof Promise)) {
    parent = { ...parent, meta: { ...parentMeta, name: `echokv ${parentMeta.name}` } };
  }
  await showUsage(command, parent);
}

applyServeHeapOptions();
process.on("unhandledRejection", (reason) => reportAndExit(reason));

// citty parses every argument, and takes --help anywhere as a request for
// help, so the words of a one-shot cli command are removed before citty
// parses the rest.
const argv = process.argv.slice(2);
const rawArgs = argv[0] === "cli" ? ["cli", ...splitCliArgs(argv.slice(1))] : argv;
await runMain(main, { rawArgs, showUsage: showFullUsage });
