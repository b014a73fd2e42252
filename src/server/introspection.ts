// Replies to the commands that Redis tools and client libraries send to learn
// about a server or to set up their connection: HELLO, COMMAND, CONFIG and CLIENT.
// A subcommand EchoKV does not support gets an error that lists the ones it
// supports, never a reply of the wrong type.

import { argText, array, bulk, error, integer, map, nullReply, type RespVersion } from "../protocol/resp.ts";
import { VERSION } from "../build-info.ts";
import { OK } from "./replies.ts";

/** Description of one command, as COMMAND reports it. */
export interface CommandDescription {
  /** Minimum and maximum number of arguments after the command name. */
  minArgs: number;
  maxArgs: number;
  /** Redis command flags, such as "write", "readonly" or "admin". */
  flags: readonly string[];
  /** Positions of the first and last key argument and the step between keys; last -1 means the final argument. */
  keys?: readonly [first: number, last: number, step: number];
}

/** Per-connection state that CLIENT reads and changes. */
export interface ClientSession {
  /** Number of the connection, unique within the server process. */
  readonly id: number;
  /** Name set with CLIENT SETNAME or HELLO, or null. */
  name: string | null;
  /** Protocol of the replies: 2 until HELLO 3. */
  protocol: RespVersion;
}

/**
 * Returns a test for Redis glob patterns: `*`, `?`, `[abc]`, `[^a-c]` and
 * `\x` for a literal x, compared without regard to case, as CONFIG GET does.
 */
export function globMatcher(pattern: string): (name: string) => boolean {
  let source = "";
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i]!;
    if (char === "*") source += ".*";
    else if (char === "?") source += ".";
    else if (char === "\\" && i + 1 < pattern.length) source += escapeRegExp(pattern[++i]!);
    else if (char === "[") {
      const close = pattern.indexOf("]", i + 2);
      if (close < 0) {
        source += "\\[";
        continue;
      }
      const body = pattern.slice(i + 1, close);
      const negated = body.startsWith("^");
      const members = (negated ? body.slice(1) : body).replace(/[\\\]]/g, "\\$&");
      source += `[${negated ? "^" : ""}${members}]`;
      i = close;
    } else source += escapeRegExp(char);
  }
  const regex = new RegExp(`^${source}$`, "is");
  return (name) => regex.test(name);
}

function escapeRegExp(char: string): string {
  return char.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

/** Redis arity: the argument count with the name for a fixed count, its negative for a minimum. */
function arity(description: CommandDescription): number {
  return description.minArgs === description.maxArgs ? description.minArgs + 1 : -(description.minArgs + 1);
}

function describeCommand(name: string, description: CommandDescription): Buffer {
  const [first, last, step] = description.keys ?? [0, 0, 0];
  return array([
    bulk(name.toLowerCase()),
    integer(arity(description)),
    array(description.flags.map((flag) => bulk(flag))),
    integer(first),
    integer(last),
    integer(step),
    // ACL categories, tips, key specifications and subcommands: none.
    array([]),
    array([]),
    array([]),
    array([]),
  ]);
}

/** Replies to COMMAND with `args` after the name, from the table of commands by upper-case name. */
export function commandReply(commands: Readonly<Record<string, CommandDescription>>, args: Buffer[], version: RespVersion): Buffer {
  const names = Object.keys(commands);
  if (args.length === 0) return array(names.map((name) => describeCommand(name, commands[name]!)));
  const sub = argText(args[0]!).toUpperCase();
  if (sub === "COUNT" && args.length === 1) return integer(names.length);
  if (sub === "LIST" && args.length === 1) return array(names.map((name) => bulk(name.toLowerCase())));
  if (sub === "INFO") {
    if (args.length === 1) return commandReply(commands, [], version);
    return array(
      args.slice(1).map((arg) => {
        const name = argText(arg).toUpperCase();
        const description = commands[name];
        return description ? describeCommand(name, description) : nullReply(version);
      }),
    );
  }
  // EchoKV has no command documentation; an empty reply is what Redis sends for unknown names.
  if (sub === "DOCS") return array([]);
  return error(`ERR unknown subcommand or wrong number of arguments for 'COMMAND ${argText(args[0]!).slice(0, 64)}'; EchoKV supports COMMAND, COMMAND COUNT, LIST, INFO and DOCS`);
}

/** Replies to CONFIG with `args` after the name; `settings` are the node's name and value pairs. */
export function configReply(settings: ReadonlyArray<readonly [string, string]>, args: Buffer[], version: RespVersion): Buffer {
  const sub = argText(args[0]!).toUpperCase();
  if (sub === "GET") {
    if (args.length < 2) return error("ERR wrong number of arguments for 'config|get' command");
    const matchers = args.slice(1).map((arg) => globMatcher(argText(arg)));
    const reply: Buffer[] = [];
    for (const [name, value] of settings) {
      if (matchers.some((matches) => matches(name))) reply.push(bulk(name), bulk(value));
    }
    return map(reply, version);
  }
  if (sub === "SET" || sub === "REWRITE" || sub === "RESETSTAT") {
    return error(`ERR CONFIG ${sub} is not supported: EchoKV takes its settings as flags of echokv serve, so restart the node with the new flags`);
  }
  return error(`ERR unknown subcommand '${argText(args[0]!).slice(0, 64)}'; EchoKV supports CONFIG GET`);
}

/** Returns the error for an invalid connection name, or null when `name` is valid. */
function invalidClientName(name: string): Buffer | null {
  return /[^\x21-\x7e]/.test(name) ? error("ERR Client names cannot contain spaces, newlines or special characters.") : null;
}

/** Replies to CLIENT with `args` after the name, for the connection's `session`. */
export function clientReply(session: ClientSession, args: Buffer[]): Buffer {
  const sub = argText(args[0]!).toUpperCase();
  if (sub === "SETNAME" && args.length === 2) {
    const name = argText(args[1]!);
    const invalid = invalidClientName(name);
    if (invalid !== null) return invalid;
    session.name = name === "" ? null : name;
    return OK;
  }
  if (sub === "GETNAME" && args.length === 1) return session.name === null ? nullReply(session.protocol) : bulk(session.name);
  if (sub === "ID" && args.length === 1) return integer(session.id);
  // Client libraries announce their name and version; EchoKV has nowhere to show them.
  if (sub === "SETINFO" && args.length === 3) return OK;
  return error(`ERR unknown subcommand or wrong number of arguments for 'CLIENT ${argText(args[0]!).slice(0, 64)}'; EchoKV supports CLIENT SETNAME, GETNAME, ID and SETINFO`);
}

/** The reply to AUTH, and to HELLO with AUTH: EchoKV has no users or passwords to check. */
export const NO_AUTH_ERROR = error(
  "ERR EchoKV has no authentication: connect without a username and password, and keep the client port on a trusted network",
);

/**
 * Replies to HELLO with `args` after the name: `HELLO [protover [AUTH
 * username password] [SETNAME name]]`. Switches the connection's `session`
 * to RESP2 or RESP3 and replies, in the new protocol, with a map that
 * describes the server.
 */
export function helloReply(session: ClientSession, args: Buffer[]): Buffer {
  let version = session.protocol;
  let name: string | undefined;
  if (args.length > 0) {
    const requested = argText(args[0]!);
    if (!/^-?\d{1,18}$/.test(requested)) return error("ERR Protocol version is not an integer or out of range");
    if (requested !== "2" && requested !== "3") return error("NOPROTO unsupported protocol version");
    version = requested === "2" ? 2 : 3;
    for (let i = 1; i < args.length; i++) {
      const option = argText(args[i]!).toUpperCase();
      if (option === "AUTH" && i + 2 < args.length) return NO_AUTH_ERROR;
      if (option === "SETNAME" && i + 1 < args.length) {
        name = argText(args[++i]!);
        const invalid = invalidClientName(name);
        if (invalid !== null) return invalid;
        continue;
      }
      return error(`ERR Syntax error in HELLO option '${option.slice(0, 64)}'`);
    }
  }

  session.protocol = version;
  if (name !== undefined) session.name = name === "" ? null : name;
  return map(
    [
      bulk("server"),
      bulk("echokv"),
      bulk("version"),
      bulk(VERSION),
      bulk("proto"),
      integer(version),
      bulk("id"),
      integer(session.id),
      bulk("mode"),
      bulk("standalone"),
      // Every member takes writes (a follower forwards them), as a Redis primary does.
      bulk("role"),
      bulk("master"),
      bulk("modules"),
      array([]),
    ],
    version,
  );
}
