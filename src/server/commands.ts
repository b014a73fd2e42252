// The command table of the client port. Each command declares its arity and
// whether it must run on the leader. A follower forwards leader commands, so
// clients may talk to any member.

import { NodeError } from "../node/errors.ts";
import type { EchoNode } from "../node/node.ts";
import type { KvCommand } from "../kv/command.ts";
import type { ApplyResult } from "../kv/store.ts";
import type { SnapshotRecord } from "../storage/sqlite.ts";
import type { Member } from "../raft/types.ts";
import { argText, array, bulk, error, integer, nullReply, simpleString } from "../protocol/resp.ts";
import type { LeaderForwarder } from "./forward.ts";
import { formatInfo, formatMembers, type ClientStats } from "./info.ts";
import type { RespValue } from "../protocol/resp.ts";
import { clientReply, commandReply, configReply, helloReply, NO_AUTH_ERROR, type ClientSession, type CommandDescription } from "./introspection.ts";
import { encodeValue, errorReply, OK } from "./replies.ts";

export interface ServerLimits {
  /** Maximum key size in bytes. */
  maxKeyBytes: number;
  /** Maximum value size in bytes. */
  maxValueBytes: number;
}

/**
 * Guarantee of a GET:
 * - local: this node's map, which may lag the leader (fastest);
 * - lease: the leader's map while its lease holds, otherwise as linearizable;
 * - linearizable: read-index: the leader confirms its leadership with a
 *   heartbeat round and the read is served once that index is applied.
 */
export type Consistency = "local" | "lease" | "linearizable";

export const CONSISTENCY_LEVELS: readonly Consistency[] = ["local", "lease", "linearizable"];
/** Error code of JOIN for a node whose data belongs to another cluster. */
export const WRONG_CLUSTER_CODE = "WRONGCLUSTER";

export function parseConsistency(value: string): Consistency | null {
  const level = value.toLowerCase();
  return (CONSISTENCY_LEVELS as readonly string[]).includes(level) ? (level as Consistency) : null;
}

export interface CommandContext {
  node: EchoNode;
  forwarder: LeaderForwarder;
  limits: ServerLimits;
  /** Set when the command arrived as FORWARDED from another member. */
  forwarded: boolean;
  /** Settings that CONFIG GET reports, as name and value pairs. */
  settings: ReadonlyArray<readonly [string, string]>;
  /** Per-connection state that commands may change. */
  session: ClientSession & { consistency: Consistency };
  /** Returns the client port's counters for INFO. */
  clientStats: () => ClientStats;
}

export type Reply = Buffer | Promise<Buffer>;

/** Ordering class of a command among the other commands of its connection (see CommandSpec.kind). */
export type CommandKind = "write" | "read" | "admin";

export interface CommandSpec {
  /** Minimum and maximum number of arguments after the command name. */
  minArgs: number;
  maxArgs: number;
  /**
   * write: changes the replicated state; runs on the leader (forwarded there),
   * and is started at once even when earlier commands are still running.
   * read/admin: runs after every earlier command of the connection finished.
   */
  kind: CommandKind;
  /** Whether a follower forwards the command to the leader. */
  leaderOnly: boolean;
  run(ctx: CommandContext, args: Buffer[]): Reply;
  /** Set for a write that a leader may propose without going through run(). */
  write?: LeaderWrite;
  /** Error for more than maxArgs arguments, where Redis would take them as options this command lacks. */
  extraArgsError?: string;
  /** Key positions, as COMMAND reports them (see CommandDescription). */
  keys?: CommandDescription["keys"];
}

/** A write as the leader proposes it: the command for the arguments, and the reply to its result. */
export interface LeaderWrite {
  /** Returns the command for `args` (after the name). Throws a NodeError for an invalid argument. */
  command(ctx: CommandContext, args: Buffer[]): KvCommand;
  /** Returns the reply to the command's apply result. */
  reply(result: ApplyResult): Buffer;
}

const PONG = simpleString("PONG");

function checkKey(ctx: CommandContext, key: Buffer): void {
  if (key.byteLength > ctx.limits.maxKeyBytes) {
    throw new NodeError("TOOLARGE", `key of ${key.byteLength} bytes exceeds the limit of ${ctx.limits.maxKeyBytes} bytes (--max-key-bytes)`);
  }
}

/** Turns a failed reply into the error reply for its code. */
async function settle(promise: Promise<Buffer>): Promise<Buffer> {
  try {
    return await promise;
  } catch (err) {
    return errorReply(err);
  }
}

/** Returns whether a failure means "retry on whoever leads now", as opposed to a final result. */
function isLeadershipError(err: unknown): boolean {
  return err instanceof NodeError && (err.code === "NOTLEADER" || err.code === "NOLEADER");
}

const SET_WRITE: LeaderWrite = {
  command: (ctx, [key, value]) => {
    checkKey(ctx, key);
    if (value.byteLength > ctx.limits.maxValueBytes) {
      throw new NodeError(
        "TOOLARGE",
        `value of ${value.byteLength} bytes exceeds the limit of ${ctx.limits.maxValueBytes} bytes (--max-value-bytes)`,
      );
    }
    return { op: "set", key, value };
  },
  reply: () => OK,
};

const DEL_WRITE: LeaderWrite = {
  command: (ctx, keys) => {
    for (const key of keys) checkKey(ctx, key);
    return { op: "del", keys };
  },
  reply: (removed) => integer(removed === "OK" ? 0 : removed),
};

/** Proposes `write` and returns the promise of its reply, for dispatch(). */
function proposeWrite(ctx: CommandContext, write: LeaderWrite, args: Buffer[]): Promise<Buffer> {
  return ctx.node.propose(write.command(ctx, args)).then(write.reply);
}

const COMMANDS: Record<string, CommandSpec> = {
  PING: {
    minArgs: 0,
    maxArgs: 1,
    kind: "read",
    leaderOnly: false,
    run: (_ctx, args) => (args.length === 0 ? PONG : bulk(args[0])),
  },
  ECHO: { minArgs: 1, maxArgs: 1, kind: "read", leaderOnly: false, run: (_ctx, args) => bulk(args[0]) },

  SET: {
    minArgs: 2,
    maxArgs: 2,
    kind: "write",
    leaderOnly: true,
    keys: [1, 1, 1],
    write: SET_WRITE,
    run: (ctx, args) => proposeWrite(ctx, SET_WRITE, args),
    extraArgsError: "ERR syntax error: SET takes a key and a value only, and options such as EX, PX, NX, XX and GET are not supported",
  },
  DEL: {
    minArgs: 1,
    maxArgs: Infinity,
    kind: "write",
    leaderOnly: true,
    keys: [1, -1, 1],
    write: DEL_WRITE,
    run: (ctx, args) => proposeWrite(ctx, DEL_WRITE, args),
  },
  GET: {
    minArgs: 1,
    maxArgs: 2,
    kind: "read",
    leaderOnly: false,
    keys: [1, 1, 1],
    run: (ctx, [key, levelArg]) => {
      let level = ctx.session.consistency;
      if (levelArg !== undefined) {
        const parsed = parseConsistency(argText(levelArg));
        if (parsed === null) return error(`ERR invalid consistency level '${argText(levelArg)}': expected ${CONSISTENCY_LEVELS.join(", ")}`);
        level = parsed;
      }
      ctx.node.checkReadable();
      const readValue = () => {
        ctx.node.checkReadable();
        const value = ctx.node.store.get(key);
        return value === undefined ? nullReply(ctx.session.protocol) : bulk(value);
      };
      if (level === "local" || (level === "lease" && ctx.node.hasLease())) return readValue();
      return readBarrier(ctx).then(readValue);
    },
  },
  READINDEX: {
    minArgs: 0,
    maxArgs: 0,
    kind: "read",
    leaderOnly: true,
    run: (ctx) => ctx.node.readIndex().then((index) => integer(index)),
  },
  CONSISTENCY: {
    minArgs: 0,
    maxArgs: 1,
    kind: "admin",
    leaderOnly: false,
    run: (ctx, [levelArg]) => {
      if (levelArg === undefined) return bulk(ctx.session.consistency);
      const level = parseConsistency(argText(levelArg));
      if (level === null) return error(`ERR invalid consistency level '${argText(levelArg)}': expected ${CONSISTENCY_LEVELS.join(", ")}`);
      ctx.session.consistency = level;
      return OK;
    },
  },
  EXISTS: {
    minArgs: 1,
    maxArgs: Infinity,
    kind: "read",
    leaderOnly: false,
    keys: [1, -1, 1],
    run: (ctx, keys) => {
      ctx.node.checkReadable();
      return integer(keys.filter((key) => ctx.node.store.has(key)).length);
    },
  },
  DBSIZE: {
    minArgs: 0,
    maxArgs: 0,
    kind: "read",
    leaderOnly: false,
    run: (ctx) => {
      ctx.node.checkReadable();
      return integer(ctx.node.store.size);
    },
  },

  INFO: {
    minArgs: 0,
    maxArgs: Infinity,
    kind: "admin",
    leaderOnly: false,
    run: (ctx, args) => bulk(formatInfo(ctx.node.status(), ctx.clientStats(), ...args.map((arg) => argText(arg).toLowerCase()))),
  },
  MEMBERS: {
    minArgs: 0,
    maxArgs: 0,
    kind: "admin",
    leaderOnly: false,
    run: (ctx) => {
      // Its peers stop sending a removed node configuration changes, so its
      // list is stale and still names itself.
      if (ctx.node.removed) {
        throw new NodeError("REMOVED", `node ${ctx.node.id} was removed from the cluster, so its member list is out of date; ask a current member`);
      }
      return array(formatMembers(ctx.node.status()).map((line) => bulk(line)));
    },
  },
  LEADER: {
    minArgs: 0,
    maxArgs: 0,
    kind: "admin",
    leaderOnly: false,
    run: (ctx) => {
      if (ctx.node.removed) throw new NodeError("REMOVED", `node ${ctx.node.id} was removed from the cluster, so it follows no leader; ask a current member`);
      const leader = ctx.node.leader();
      return leader ? bulk(`${leader.id} ${leader.clientAddr}`) : nullReply(ctx.session.protocol);
    },
  },
  REMOVE: {
    minArgs: 1,
    maxArgs: 1,
    kind: "admin",
    leaderOnly: true,
    run: (ctx, [id]) => ctx.node.removeMember(argText(id)).then(() => OK),
  },
  JOIN: {
    minArgs: 3,
    maxArgs: 5,
    kind: "admin",
    leaderOnly: true,
    run: (ctx, [id, raftAddr, clientAddr, incarnation, clusterId]) => {
      // A node restarted from its data directory names its cluster, so that
      // a --join-addr pointing at another cluster cannot add it there.
      if (clusterId !== undefined && argText(clusterId) !== ctx.node.clusterId) {
        return error(
          `${WRONG_CLUSTER_CODE} node ${argText(id)} belongs to cluster ${argText(clusterId)}, but this is cluster ${ctx.node.clusterId ?? "(none)"}; ` +
            "a node with data joins only its own cluster, so point --join-addr at one of its members or start it with an empty --data-dir",
        );
      }
      const member: Omit<Member, "voter"> = { id: argText(id), raftAddr: argText(raftAddr), clientAddr: argText(clientAddr) };
      if (incarnation !== undefined) member.incarnation = argText(incarnation);
      // Reply: the cluster id, then id, raft address and client address of every member.
      return ctx.node.addMember(member).then(() => {
        const parts = [bulk(ctx.node.clusterId ?? "")];
        for (const m of ctx.node.status().members) parts.push(bulk(m.id), bulk(m.raftAddr), bulk(m.clientAddr));
        return array(parts);
      });
    },
  },

  SNAPSHOT: {
    minArgs: 0,
    maxArgs: 4,
    kind: "admin",
    leaderOnly: false,
    run: (ctx, args) => runSnapshotCommand(ctx, args),
  },
  TRANSFER: {
    minArgs: 0,
    maxArgs: 1,
    kind: "admin",
    leaderOnly: true,
    run: (ctx, [target]) =>
      ctx.node.transferLeadership(target === undefined ? null : argText(target)).then((id) => bulk(id)),
  },

  MEMORY: {
    minArgs: 1,
    maxArgs: 1,
    kind: "admin",
    leaderOnly: false,
    run: (_ctx, [sub]) => {
      if (argText(sub).toUpperCase() !== "PURGE") return error("ERR unknown MEMORY subcommand; EchoKV supports MEMORY PURGE");
      // A full garbage collection, which also returns free pages to the system.
      Bun.gc(true);
      return OK;
    },
  },
  // Commands that Redis tools and client libraries send on connect.
  HELLO: { minArgs: 0, maxArgs: Infinity, kind: "read", leaderOnly: false, run: (ctx, args) => helloReply(ctx.session, args) },
  AUTH: { minArgs: 1, maxArgs: 2, kind: "read", leaderOnly: false, run: () => NO_AUTH_ERROR },
  COMMAND: {
    minArgs: 0,
    maxArgs: Infinity,
    kind: "read",
    leaderOnly: false,
    run: (ctx, args) => commandReply(COMMAND_DESCRIPTIONS, args, ctx.session.protocol),
  },
  CONFIG: { minArgs: 1, maxArgs: Infinity, kind: "read", leaderOnly: false, run: (ctx, args) => configReply(ctx.settings, args, ctx.session.protocol) },
  CLIENT: { minArgs: 1, maxArgs: Infinity, kind: "read", leaderOnly: false, run: (ctx, args) => clientReply(ctx.session, args) },
  SELECT: {
    minArgs: 1,
    maxArgs: 1,
    kind: "read",
    leaderOnly: false,
    run: (_ctx, [db]) => (argText(db) === "0" ? OK : error("ERR DB index is out of range (EchoKV has one database, 0)")),
  },
};

/** Largest piece of a snapshot file that SNAPSHOT READ returns at once. */
const MAX_SNAPSHOT_READ_BYTES = 8 * 1024 * 1024;

/**
 * SNAPSHOT [CREATE]: catches up with the leader's commit index, takes a
 * snapshot of this node and returns its index, term, size in bytes and
 * CRC-32. SNAPSHOT LOCAL: the same without catching up, for a node that
 * cannot reach a leader. SNAPSHOT READ index offset length: returns bytes
 * of that snapshot file, for backups.
 */
function runSnapshotCommand(ctx: CommandContext, args: Buffer[]): Reply {
  const sub = args.length === 0 ? "CREATE" : argText(args[0]).toUpperCase();
  const describe = (record: SnapshotRecord) =>
    array([integer(record.meta.lastIndex), integer(record.meta.lastTerm), integer(record.bytes), integer(record.checksum)]);
  if (sub === "CREATE" && args.length <= 1) {
    // A follower may lag, so it first catches up to the leader's commit index.
    // The snapshot then contains every write acknowledged before the command.
    return readBarrier(ctx)
      .then(() => ctx.node.snapshot())
      .then(describe);
  }
  if (sub === "LOCAL" && args.length === 1) return ctx.node.snapshot().then(describe);
  if (sub === "READ" && args.length === 4) {
    const [index, offset, length] = args.slice(1).map((arg) => Number(argText(arg)));
    if (![index, offset, length].every((n) => Number.isSafeInteger(n) && n >= 0) || length > MAX_SNAPSHOT_READ_BYTES) {
      return error(`ERR SNAPSHOT READ needs index, offset and a length of at most ${MAX_SNAPSHOT_READ_BYTES} bytes`);
    }
    const record = ctx.node.newestSnapshot();
    if (!record || record.meta.lastIndex !== index) {
      return error(`ERR snapshot ${index} is no longer the newest on this node; run SNAPSHOT again`);
    }
    return bulk(ctx.node.readSnapshot(record, offset, length));
  }
  return error("ERR syntax: SNAPSHOT [CREATE] | SNAPSHOT LOCAL | SNAPSHOT READ index offset length");
}

/**
 * Waits until this node may serve a linearizable read. The leader uses
 * read-index. A follower requests the leader's read index and waits until
 * it has applied that index itself.
 */
async function readBarrier(ctx: CommandContext): Promise<void> {
  // Peers reject a removed node, so waiting for a leader would only time out.
  if (ctx.node.removed) {
    throw new NodeError("REMOVED", `node ${ctx.node.id} was removed from the cluster; read from a current member, or read at the local level here`);
  }
  if (ctx.node.role === "leader") {
    await ctx.node.readIndex();
    return;
  }
  if (ctx.forwarded) throw notLeader(ctx);
  const forwarded = await ctx.forwarder.forward([Buffer.from("READINDEX")]);
  if (forwarded === null) {
    await ctx.node.readIndex();
    return;
  }
  const { reply } = unwrapForwarded(forwarded);
  if (reply.type === "error") throw new NodeError(reply.message.startsWith("TIMEOUT") ? "TIMEOUT" : "NOLEADER", reply.message);
  if (reply.type !== "integer") throw new NodeError("NOLEADER", `unexpected READINDEX reply from the leader: ${reply.type}`);
  await ctx.node.waitForApplied(reply.value);
}

/** Description of each command for COMMAND, with flags that follow from the command's kind. */
const COMMAND_DESCRIPTIONS: Record<string, CommandDescription> = {
  ...Object.fromEntries(
    Object.entries(COMMANDS).map(([name, spec]) => {
      let flags: string[] = [];
      if (spec.kind === "write") flags = ["write"];
      else if (spec.kind === "admin") flags = ["admin"];
      else if (spec.keys) flags = ["readonly"];
      return [name, { minArgs: spec.minArgs, maxArgs: spec.maxArgs, flags, keys: spec.keys }];
    }),
  ),
  // The server handles these before dispatch(), so they have no entry in COMMANDS.
  SUBSCRIBE: { minArgs: 1, maxArgs: Infinity, flags: ["pubsub"] },
  UNSUBSCRIBE: { minArgs: 0, maxArgs: Infinity, flags: ["pubsub"] },
  QUIT: { minArgs: 0, maxArgs: 0, flags: [] },
};

export function lookupCommand(name: string): CommandSpec | undefined {
  return COMMANDS[name];
}

/**
 * Runs one parsed command, forwarding leader commands from a follower.
 * `name` is the command name in upper case, when the caller has it already.
 */
export function dispatch(ctx: CommandContext, args: Buffer[], name = argText(args[0]).toUpperCase()): { kind: CommandKind; reply: () => Reply } {
  if (name === "FORWARDED" && args.length > 1) {
    const inner: CommandContext = { ...ctx, forwarded: true };
    return dispatch(inner, args.slice(1));
  }

  const spec = COMMANDS[name];
  if (!spec) {
    const commandName = argText(args[0]).slice(0, 64);
    return { kind: "read", reply: () => error(`ERR unknown command '${commandName}', with args beginning with: ${describeArgs(args)}`) };
  }
  const count = args.length - 1;
  if (count < spec.minArgs || count > spec.maxArgs) {
    const message = count > spec.maxArgs && spec.extraArgsError !== undefined ? spec.extraArgsError : `ERR wrong number of arguments for '${name.toLowerCase()}' command`;
    return { kind: "read", reply: () => error(message) };
  }

  const run = (): Reply => {
    try {
      if (spec.leaderOnly && ctx.node.removed) {
        throw new NodeError("REMOVED", `node ${ctx.node.id} was removed from the cluster; send writes to a current member`);
      }
      if (!spec.leaderOnly) {
        const reply = spec.run(ctx, args.slice(1));
        return reply instanceof Promise ? settle(reply) : reply;
      }
      if (ctx.forwarded) {
        if (ctx.node.role !== "leader") throw notLeader(ctx);
        // Tell the forwarding follower how far to apply before it replies,
        // so its client then reads its own write there, and send it the
        // commit index now rather than with the next append.
        const wrapped = Promise.resolve(spec.run(ctx, args.slice(1))).then((reply) => {
          const applied = ctx.node.appliedIndex;
          ctx.node.announceCommit(applied);
          return array([integer(applied), reply]);
        });
        return settle(wrapped);
      }
      if (ctx.node.role === "leader") {
        // The common case, with one promise fewer per write than runOnLeader:
        // only a leadership error (a transfer under way) goes through its retries.
        const reply = spec.run(ctx, args.slice(1));
        if (!(reply instanceof Promise)) return reply;
        return reply.then(undefined, (err: unknown) => (isLeadershipError(err) ? settle(runOnLeader(ctx, spec, args)) : errorReply(err)));
      }
      return settle(runOnLeader(ctx, spec, args));
    } catch (err) {
      return errorReply(err);
    }
  };
  return { kind: spec.kind, reply: run };
}

/**
 * Returns the write that `args` (name included) requests when this node can
 * propose it at once: it leads, the command came from a client and not as
 * FORWARDED, and the arity is valid. Returns null for every other command,
 * which goes through dispatch().
 */
export function leaderWrite(ctx: CommandContext, args: Buffer[], name: string): LeaderWrite | null {
  const spec = COMMANDS[name];
  if (spec?.write === undefined || ctx.forwarded || ctx.node.role !== "leader" || ctx.node.removed) return null;
  const count = args.length - 1;
  return count >= spec.minArgs && count <= spec.maxArgs ? spec.write : null;
}

/**
 * Returns the reply to a write from leaderWrite() that failed with `err`. A
 * leadership error retries the command, here or on the new leader, as
 * dispatch() does.
 */
export function leaderWriteFailed(ctx: CommandContext, args: Buffer[], name: string, err: unknown): Reply {
  if (!isLeadershipError(err)) return errorReply(err);
  return settle(runOnLeader(ctx, COMMANDS[name], args));
}

/**
 * Runs a leader-only command here while this node leads, or forwards it to
 * the leader. Leadership may move while the command waits (an election or a
 * transfer), so a leadership error leads to another try until the deadline.
 */
async function runOnLeader(ctx: CommandContext, spec: CommandSpec, args: Buffer[]): Promise<Buffer> {
  const deadline = Date.now() + ctx.forwarder.timeoutMs;
  for (;;) {
    if (ctx.node.role === "leader") {
      try {
        return await spec.run(ctx, args.slice(1));
      } catch (err) {
        if (!isLeadershipError(err) || Date.now() >= deadline) throw err;
      }
      // Still leader but refusing (a transfer is under way): let leadership settle.
      if (ctx.node.role === "leader") await Bun.sleep(ctx.forwarder.retryDelayMs);
      continue;
    }
    const forwarded = await ctx.forwarder.forward(args);
    if (forwarded === null) continue; // this node became the leader while looking for one
    const { appliedIndex, reply } = unwrapForwarded(forwarded);
    if (appliedIndex !== null) {
      // The write is done either way; waiting only makes a later local read see it.
      await ctx.node.waitForApplied(appliedIndex).catch(() => {});
    }
    return encodeValue(reply, ctx.session.protocol);
  }
}

/**
 * Splits the leader's reply to FORWARDED: on success, an array of the
 * leader's applied index and the command's own reply; errors come bare.
 */
function unwrapForwarded(reply: RespValue): { appliedIndex: number | null; reply: RespValue } {
  if (reply.type === "array" && reply.value !== null && reply.value.length === 2 && reply.value[0].type === "integer") {
    return { appliedIndex: reply.value[0].value, reply: reply.value[1] };
  }
  return { appliedIndex: null, reply };
}

function notLeader(ctx: CommandContext): NodeError {
  const leader = ctx.node.leader();
  if (leader && leader.id !== ctx.node.id) {
    return new NodeError("NOTLEADER", `node ${ctx.node.id} is not the leader; the leader is ${leader.id} at ${leader.clientAddr}`);
  }
  return new NodeError("NOLEADER", "no leader is known right now; retry shortly");
}

function describeArgs(args: Buffer[]): string {
  return args
    .slice(1, 4)
    .map((arg) => `'${argText(arg).slice(0, 32)}'`)
    .join(" ");
}
