// `echokv tui`: the admin console, a full-screen view of a cluster with a command line.

import { defineCommand } from "citty";
import { TuiConsole } from "../tui/console.ts";
import { ClusterMonitor, DEFAULT_MONITOR_OPTIONS } from "../tui/monitor.ts";
import { intFlag, rejectUnknownFlags, UsageError } from "./flags.ts";

const tuiArgs = {
  connect: {
    type: "string",
    description: "Client address (host:port) of any node, through which the console finds the other members",
    default: "127.0.0.1:5379",
  },
  "interval-ms": {
    type: "string",
    description: "Time between two INFO polls of each member, in milliseconds",
    default: String(DEFAULT_MONITOR_OPTIONS.pollIntervalMs),
  },
} as const;

export const tuiCommand = defineCommand({
  meta: { name: "tui", description: "Open the admin console: members, events and a command line: echokv tui --connect HOST:PORT" },
  args: tuiArgs,
  async run({ args, rawArgs }) {
    rejectUnknownFlags(rawArgs, tuiArgs, "tui");
    const [positional] = args._;
    if (positional !== undefined) {
      throw new UsageError(`unexpected argument "${positional}": 'echokv tui' takes only flags, such as --connect HOST:PORT`);
    }
    if (!process.stdin.isTTY || !process.stdout.isTTY) {
      throw new UsageError("echokv tui needs a terminal on stdin and stdout. Use 'echokv cli' in scripts and pipes");
    }

    const connectAddr = args.connect.startsWith(":") ? `127.0.0.1${args.connect}` : args.connect;
    const pollIntervalMs = intFlag(args["interval-ms"], "interval-ms", DEFAULT_MONITOR_OPTIONS.pollIntervalMs, 50, 60_000);
    const monitor = new ClusterMonitor({ ...DEFAULT_MONITOR_OPTIONS, connectAddr, pollIntervalMs });
    await monitor.start();

    await new TuiConsole(monitor).run();
    process.exit(0);
  },
});
