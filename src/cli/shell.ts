// Interactive RESP shell and one-shot command runner, in the manner of redis-cli.

import { createInterface } from "node:readline";
import type { Socket } from "bun";
import { formatReply, parseHostPort, RespClient, RespClientError } from "../client/client.ts";
import { encodeCommand, RespReplyParser, splitCommandLine } from "../protocol/resp.ts";
import type { RespValue } from "../protocol/resp.ts";
import { formatCommandHelp } from "./command-help.ts";

/** Command that sets the connection's GET consistency, sent after each connect when `consistency` is set. */
export const CONSISTENCY_COMMAND = "CONSISTENCY";

/** Commands after which the server pushes messages, which the shell reads on a connection of their own. */
const SUBSCRIBE_COMMANDS = new Set(["subscribe", "psubscribe", "ssubscribe"]);

/** Streams the shell reads and writes. The defaults are the process's stdin, stdout and stderr. */
export interface ShellStreams {
  input: NodeJS.ReadableStream & { isTTY?: boolean };
  output: NodeJS.WritableStream & { isTTY?: boolean };
  errorOutput: NodeJS.WritableStream;
}

/**
 * Default wait for a reply. It is longer than a node's default request
 * timeout (5 s), so that a node without a leader gets to reply NOLEADER or
 * TIMEOUT before the cli gives up with an unknown outcome.
 */
export const CLI_TIMEOUT_MS = 15_000;

export interface ShellOptions {
  /** Read consistency level sent with CONSISTENCY_COMMAND after each connect; nothing is sent when absent. */
  consistency?: string;
  /** Maximum time in ms to connect and to wait for each reply; CLI_TIMEOUT_MS when absent. */
  timeoutMs?: number;
  streams?: Partial<ShellStreams>;
}

function resolveStreams(streams: Partial<ShellStreams> = {}): ShellStreams {
  return {
    input: streams.input ?? process.stdin,
    output: streams.output ?? process.stdout,
    errorOutput: streams.errorOutput ?? process.stderr,
  };
}

/** Writes `text` and a newline, and resolves once the stream has accepted it. */
function writeLine(stream: NodeJS.WritableStream, text: string): Promise<void> {
  return new Promise((resolve) => {
    stream.write(`${text}\n`, () => resolve());
  });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Raised when the server rejects the requested consistency level. */
class ConsistencyRejectedError extends Error {
  override name = "ConsistencyRejectedError";
}

/** One server address and the current connection to it, reopened on demand after a loss. */
class ShellSession {
  readonly #addr: string;
  readonly #options: ShellOptions;
  #client: RespClient | null = null;
  /** Level applied after each connect: the flag's, or the last one a CONSISTENCY command set. */
  #consistency: string | undefined;

  constructor(addr: string, options: ShellOptions) {
    this.#addr = addr;
    this.#options = { ...options, timeoutMs: options.timeoutMs ?? CLI_TIMEOUT_MS };
    this.#consistency = options.consistency;
  }

  /** Opens a connection unless one is open, and applies the consistency level. */
  async connect(): Promise<RespClient> {
    if (this.#client !== null && !this.#client.closed) return this.#client;
    this.#client = null;

    const client = await RespClient.connect(this.#addr, { timeoutMs: this.#options.timeoutMs });
    try {
      await this.#applyConsistency(client);
    } catch (err) {
      client.close();
      throw err;
    }
    this.#client = client;
    return client;
  }

  async #applyConsistency(client: RespClient): Promise<void> {
    const consistency = this.#consistency;
    if (consistency === undefined) return;

    const reply = await client.command([CONSISTENCY_COMMAND, consistency], { timeoutMs: this.#options.timeoutMs });
    if (reply.type === "error") {
      throw new ConsistencyRejectedError(`${this.#addr} rejected consistency level ${JSON.stringify(consistency)}: ${reply.message}`);
    }
  }

  /** Sends one command, reconnecting first when the last connection was lost. */
  async send(args: Uint8Array[]): Promise<RespValue> {
    const reply = await this.#sendOnce(args);
    // The server keeps a level set with CONSISTENCY per connection, so a new
    // connection after a loss gets it again, as it gets the flag's.
    const word = args.length === 2 ? Buffer.from(args[0]).toString("latin1").toUpperCase() : "";
    if (word === CONSISTENCY_COMMAND && reply.type !== "error") this.#consistency = Buffer.from(args[1]).toString("utf8");
    return reply;
  }

  async #sendOnce(args: Uint8Array[]): Promise<RespValue> {
    const client = await this.connect();
    try {
      return await client.command(args, { timeoutMs: this.#options.timeoutMs });
    } catch (err) {
      // A command that was never sent is safe to send again on a new connection.
      if (err instanceof RespClientError && err.code === "NOTCONNECTED") {
        const fresh = await this.connect();
        return await fresh.command(args, { timeoutMs: this.#options.timeoutMs });
      }
      throw err;
    }
  }

  close(): void {
    this.#client?.close();
    this.#client = null;
  }
}

function describeFailure(err: unknown): string {
  if (!(err instanceof RespClientError)) return errorText(err);
  switch (err.code) {
    case "CLOSED":
    case "PROTOCOL":
    case "NOTCONNECTED":
      return `${err.message}. The shell reconnects on the next command.`;
    case "CONNECT":
      return `${err.message}. The shell retries on the next command.`;
    case "TIMEOUT":
      return err.message;
    default: {
      const unexpected: never = err.code;
      return `${err.message} (code ${String(unexpected)})`;
    }
  }
}

/**
 * Runs the interactive shell: reads command lines, splits them with the inline
 * quoting rules, sends them and prints the replies. Prints the `> ` prompt and
 * keeps arrow-key history only when input and output are a TTY, so piped input
 * also works. `help` lists the commands. `quit`, `exit` and end of input
 * end the shell. A failed connection is reported and retried on the next
 * command. Returns 1 for an invalid address, when the server rejects the
 * consistency level on the first connect, and, with piped input, when any
 * line failed (an error reply, a failure or unbalanced quotes), as a script
 * expects. Returns 0 otherwise.
 */
export async function runShell(addr: string, opts: ShellOptions = {}): Promise<number> {
  const streams = resolveStreams(opts.streams);
  try {
    parseHostPort(addr);
  } catch (err) {
    await writeLine(streams.errorOutput, errorText(err));
    return 1;
  }

  const session = new ShellSession(addr, opts);
  try {
    await session.connect();
  } catch (err) {
    await writeLine(streams.errorOutput, describeFailure(err));
    if (err instanceof ConsistencyRejectedError) return 1;
  }

  const interactive = streams.input.isTTY === true && streams.output.isTTY === true;
  const lines = createInterface({
    input: streams.input,
    output: interactive ? streams.output : undefined,
    terminal: interactive,
    historySize: 1000,
    prompt: "> ",
  });
  // Ctrl-C at the prompt ends the shell like Ctrl-D, as in redis-cli. During
  // a subscription it ends only the subscription.
  let stopSubscription: (() => void) | null = null;
  lines.on("SIGINT", () => (stopSubscription ? stopSubscription() : lines.close()));

  let failed = false;
  try {
    if (interactive) lines.prompt();
    for await (const line of lines) {
      const args = splitCommandLine(line);
      if (args === null) {
        await writeLine(streams.errorOutput, "Invalid argument(s): unbalanced quotes");
        failed = true;
      } else if (args.length > 0) {
        const name = args[0].toString("utf8").toLowerCase();
        if (args.length === 1 && (name === "quit" || name === "exit")) break;
        // No server command is named HELP, so the shell handles it, as redis-cli does.
        if (args.length === 1 && name === "help") {
          await writeLine(streams.output, formatCommandHelp());
        } else if (args.length === 1 && name === "clear" && interactive) {
          // As in redis-cli: move the cursor home and clear the terminal.
          streams.output.write("\x1b[H\x1b[2J");
        } else if (SUBSCRIBE_COMMANDS.has(name)) {
          const stopped = new Promise<void>((resolve) => (stopSubscription = resolve));
          const subscribed = await runSubscription(addr, args, streams, stopped, interactive);
          stopSubscription = null;
          if (!subscribed) failed = true;
        } else if (!(await runShellCommand(session, args, streams))) {
          failed = true;
        }
      }
      if (interactive) lines.prompt();
    }
  } finally {
    lines.close();
    session.close();
  }
  return failed && !interactive ? 1 : 0;
}

/** Sends one command and prints its reply, and returns whether it succeeded (no error reply or failure). */
async function runShellCommand(session: ShellSession, args: Buffer[], streams: ShellStreams): Promise<boolean> {
  try {
    const reply = await session.send(args);
    await writeLine(streams.output, formatReply(reply));
    return reply.type !== "error";
  } catch (err) {
    await writeLine(streams.errorOutput, describeFailure(err));
    return false;
  }
}

/**
 * Sends a SUBSCRIBE command on a connection of its own and prints every
 * reply that follows: the confirmation, then each message, as redis-cli
 * does. RespClient matches every reply to a command it sent, so it cannot
 * read pushed messages. Ends when `stopped` resolves (Ctrl-C) or the server
 * closes the connection. Returns false when the connection failed or the
 * server rejected the command.
 */
async function runSubscription(addr: string, args: Buffer[], streams: ShellStreams, stopped: Promise<void>, interactive: boolean): Promise<boolean> {
  const parser = new RespReplyParser();
  let confirmed = false;
  let closedByShell = false;
  // Lines are written in order, each once the stream took the one before.
  let printing = Promise.resolve();
  const print = (stream: NodeJS.WritableStream, line: string) => {
    printing = printing.then(() => writeLine(stream, line));
  };
  let socket: Socket<undefined>;
  let closed!: () => void;
  const done = new Promise<void>((resolve) => (closed = resolve));
  try {
    const { host, port } = parseHostPort(addr);
    socket = await Bun.connect({
      hostname: host,
      port,
      socket: {
        data(connection, data) {
          parser.push(data);
          for (let result = parser.next(); result.kind !== "incomplete"; result = parser.next()) {
            if (result.kind === "error") {
              print(streams.errorOutput, `invalid reply from ${addr}: ${result.message}`);
              connection.end();
              return;
            }
            const reply = result.value;
            print(reply.type === "error" ? streams.errorOutput : streams.output, formatReply(reply));
            if (confirmed) continue;
            // The first reply confirms the subscription, or rejects it with an error.
            if (reply.type === "error") {
              connection.end();
              return;
            }
            confirmed = true;
            if (interactive) print(streams.errorOutput, "Reading messages... (press Ctrl-C to stop)");
          }
        },
        close: () => closed(),
        error: () => closed(),
        connectError: () => {},
      },
    });
  } catch (err) {
    await writeLine(streams.errorOutput, `could not connect to ${addr}: ${errorText(err)}`);
    return false;
  }
  socket.write(encodeCommand(args));
  void stopped.then(() => {
    closedByShell = true;
    socket.end();
  });
  await done;
  await printing;
  if (confirmed && !closedByShell) await writeLine(streams.errorOutput, `${addr} closed the subscription`);
  return confirmed;
}

/**
 * Runs one command and prints its reply: to stdout on success, to stderr for
 * an error reply or a failure. Returns 1 on an error reply, connection failure,
 * timeout or invalid address, and 0 otherwise.
 */
export async function runOneShot(
  addr: string,
  args: string[],
  streams?: Partial<ShellStreams>,
  consistency?: string,
): Promise<number> {
  const resolved = resolveStreams(streams);
  const { output, errorOutput } = resolved;
  if (args.length === 0) {
    await writeLine(errorOutput, "missing command: pass the command and its arguments, for example: GET key");
    return 1;
  }
  if (SUBSCRIBE_COMMANDS.has(args[0].toLowerCase())) {
    // Messages stream until Ctrl-C, as with redis-cli.
    const stopped = new Promise<void>((resolve) => process.once("SIGINT", () => resolve()));
    return (await runSubscription(addr, args.map((arg) => Buffer.from(arg)), resolved, stopped, false)) ? 0 : 1;
  }

  let client: RespClient;
  try {
    client = await RespClient.connect(addr, { timeoutMs: CLI_TIMEOUT_MS });
  } catch (err) {
    await writeLine(errorOutput, errorText(err));
    return 1;
  }

  try {
    if (consistency !== undefined) {
      const set = await client.command([CONSISTENCY_COMMAND, consistency]);
      if (set.type === "error") {
        await writeLine(errorOutput, formatReply(set));
        return 1;
      }
    }
    const reply = await client.command(args);
    if (reply.type === "error") {
      await writeLine(errorOutput, formatReply(reply));
      return 1;
    }
    await writeLine(output, formatReply(reply));
    return 0;
  } catch (err) {
    await writeLine(errorOutput, errorText(err));
    return 1;
  } finally {
    client.close();
  }
}
