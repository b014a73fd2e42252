// `echokv serve`: runs one node. Without state and without --join-addr it
// bootstraps a one-node cluster. Without state and with --join-addr it sends
// JOIN to that member. With state it recovers, and uses --join-addr only to
// check that this member belongs to the node's own cluster and to record new
// addresses of its own.

import { defineCommand, type ArgsDef } from "citty";
import { existsSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { RespClient, RespClientError } from "../client/client.ts";
import type { RespValue } from "../protocol/resp.ts";
import type { Member } from "../raft/types.ts";
import { createLogger, errorMessage, type Logger, type LogLevel } from "../log.ts";
import { EchoNode } from "../node/node.ts";
import { NODE_ID_PATTERN, NODE_ID_RULE } from "../node/member-rules.ts";
import { restoreFromBackup } from "../node/snapshots.ts";
import { DEFAULT_RAFT_CONFIG, validateRaftConfig, type RaftConfig } from "../raft/config.ts";
import { parseConsistency, WRONG_CLUSTER_CODE, type Consistency } from "../server/commands.ts";
import { RespServer } from "../server/server.ts";
import { DATABASE_FILE, SqliteStorage, StorageError } from "../storage/sqlite.ts";
import { checkListenable, parseHostPort } from "../transport/address.ts";
import { DEFAULT_MAX_FRAME_BYTES } from "../transport/transport.ts";
import { TcpTransport } from "../transport/tcp.ts";
import { intFlag, rejectUnknownFlags, UsageError } from "./flags.ts";

/** Attempts, one a second, to record new addresses of a node that restarted elsewhere. */
const ADDRESS_CHANGE_ATTEMPTS = 120;
/** Pause between checks of the cluster of a --join-addr that did not reply at startup. */
const JOIN_CHECK_RETRY_MS = 2000;

const serveArgs = {
  "node-id": { type: "string", description: "Unique id of this node, such as node-1 (letters, digits, '.', '_', '-'); required" },
  "listen-addr": { type: "string", description: "host:port of the RESP client listener; ':5379' means all interfaces", default: "127.0.0.1:5379" },
  "raft-addr": { type: "string", description: "host:port of the peer listener, as other nodes reach it", default: "127.0.0.1:15379" },
  "join-addr": {
    type: "string",
    description:
      "Client address (host:port) of any member of the cluster to join. A node with state does not join again. It stops if this member belongs to another cluster, and asks it to record new addresses of its own",
  },
  "data-dir": { type: "string", description: "Directory of this node's database (default: data/<node-id>)" },
  "tick-ms": { type: "string", description: "Length of one Raft tick in milliseconds", default: "50" },
  "election-ticks": { type: "string", description: "Election timeout in ticks (randomized up to twice this)", default: "10" },
  "request-timeout-ms": { type: "string", description: "Time a write may wait for commit before failing with TIMEOUT", default: "5000" },
  "join-timeout-ms": { type: "string", description: "Time to keep retrying the join before giving up", default: "30000" },
  "max-key-bytes": { type: "string", description: "Largest accepted key, in bytes", default: String(64 * 1024) },
  "max-value-bytes": { type: "string", description: "Largest accepted value, in bytes", default: String(16 * 1024 * 1024) },
  "max-clients": { type: "string", description: "Maximum simultaneous client connections", default: "10000" },
  "snapshot-entries": { type: "string", description: "Take a snapshot after about this many applied entries: a random 75% to 125% of it, drawn for each snapshot", default: "50000" },
  "snapshot-log-bytes": {
    type: "string",
    description: "Take a snapshot after about this many bytes of applied log entries, whichever limit comes first: a random 75% to 125% of it, as for --snapshot-entries",
    default: String(32 * 1024 * 1024),
  },
  restore: { type: "string", description: "Backup file (from 'echokv snapshot save') to start a new one-node cluster from" },
  "read-consistency": {
    type: "string",
    description: "Default GET consistency of new connections: local, lease or linearizable",
    default: "local",
  },
  "log-level": { type: "string", description: "Minimum level of log lines: debug, info, warn or error", default: "info" },
} satisfies ArgsDef;

export interface ServeSettings {
  nodeId: string;
  listenAddr: string;
  raftAddr: string;
  clientAddr: string;
  joinAddr: string | null;
  dataDir: string;
  tickMs: number;
  raftConfig: RaftConfig;
  requestTimeoutMs: number;
  joinTimeoutMs: number;
  maxKeyBytes: number;
  maxValueBytes: number;
  maxClients: number;
  logLevel: LogLevel;
  readConsistency: Consistency;
  snapshotEntries: number;
  snapshotLogBytes: number;
  restore: string | null;
}

type ServeFlags = Record<keyof typeof serveArgs, string | undefined>;

/** Validates the flags of `serve`; every error names the flag and the bad value. */
export function parseServeFlags(flags: ServeFlags): ServeSettings {
  const nodeId = flags["node-id"];
  if (nodeId === undefined) throw new UsageError("missing --node-id: give each node a unique id, such as --node-id node-1");
  if (!NODE_ID_PATTERN.test(nodeId)) throw new UsageError(`invalid --node-id "${nodeId}": ${NODE_ID_RULE}`);
  const listenAddr = normalizeListenAddr(flags["listen-addr"] ?? "127.0.0.1:5379", "listen-addr");
  const raftAddr = normalizeListenAddr(flags["raft-addr"] ?? "127.0.0.1:15379", "raft-addr");
  const joinFlag = flags["join-addr"];
  let joinAddr: string | null = null;
  if (joinFlag) {
    // ":port" means this machine: the joining node dials it.
    const target = joinFlag.startsWith(":") ? `127.0.0.1${joinFlag}` : joinFlag;
    joinAddr = normalizeListenAddr(target, "join-addr");
  }
  if (parseHostPort(raftAddr).port === 0) throw new UsageError("--raft-addr needs a fixed port: other nodes dial it");

  // Other nodes reach the client port on the raft host when it listens on every interface.
  const listen = parseHostPort(listenAddr);
  const raft = parseHostPort(raftAddr);
  if (listen.port === raft.port && (listen.host === raft.host || isWildcardHost(listen.host) || isWildcardHost(raft.host))) {
    throw new UsageError(
      `--listen-addr ${listenAddr} and --raft-addr ${raftAddr} share a port; give the client and peer listeners different ports, such as 5379 and 15379`,
    );
  }
  const clientHost = isWildcardHost(listen.host) ? raft.host : listen.host;
  const clientAddr = `${clientHost.includes(":") ? `[${clientHost}]` : clientHost}:${listen.port}`;

  const tickMs = intFlag(flags["tick-ms"], "tick-ms", 50, 1, 10_000);
  const electionTicks = intFlag(flags["election-ticks"], "election-ticks", 10, 3, 10_000);
  const raftConfig: RaftConfig = { ...DEFAULT_RAFT_CONFIG, electionTicks };
  const problem = validateRaftConfig(raftConfig);
  if (problem) throw new UsageError(`invalid Raft settings: ${problem}`);

  const maxValueBytes = intFlag(flags["max-value-bytes"], "max-value-bytes", 16 << 20, 1, 32 << 20);
  return {
    nodeId,
    listenAddr,
    raftAddr,
    clientAddr,
    joinAddr,
    dataDir: flags["data-dir"] || join("data", nodeId),
    tickMs,
    raftConfig,
    requestTimeoutMs: intFlag(flags["request-timeout-ms"], "request-timeout-ms", 5000, 10, 600_000),
    joinTimeoutMs: intFlag(flags["join-timeout-ms"], "join-timeout-ms", 30_000, 100, 3_600_000),
    maxKeyBytes: intFlag(flags["max-key-bytes"], "max-key-bytes", 64 * 1024, 1, 1 << 20),
    maxValueBytes,
    maxClients: intFlag(flags["max-clients"], "max-clients", 10_000, 1, 1_000_000),
    logLevel: parseLogLevel(flags["log-level"] ?? "info"),
    readConsistency: parseReadConsistency(flags["read-consistency"] ?? "local"),
    snapshotEntries: intFlag(flags["snapshot-entries"], "snapshot-entries", 50_000, 10, 1_000_000_000),
    snapshotLogBytes: intFlag(flags["snapshot-log-bytes"], "snapshot-log-bytes", 32 << 20, 1024, 2 ** 40),
    restore: flags.restore || null,
  };
}

/** Returns what CONFIG GET reports: the value of each serve flag, then Redis settings that describe EchoKV. */
export function configSettings(settings: ServeSettings): Array<readonly [string, string]> {
  return [
    ["node-id", settings.nodeId],
    ["listen-addr", settings.listenAddr],
    ["raft-addr", settings.raftAddr],
    ["join-addr", settings.joinAddr ?? ""],
    ["data-dir", settings.dataDir],
    ["tick-ms", String(settings.tickMs)],
    ["election-ticks", String(settings.raftConfig.electionTicks)],
    ["request-timeout-ms", String(settings.requestTimeoutMs)],
    ["join-timeout-ms", String(settings.joinTimeoutMs)],
    ["max-key-bytes", String(settings.maxKeyBytes)],
    ["max-value-bytes", String(settings.maxValueBytes)],
    ["max-clients", String(settings.maxClients)],
    ["log-level", settings.logLevel],
    ["read-consistency", settings.readConsistency],
    ["snapshot-entries", String(settings.snapshotEntries)],
    ["snapshot-log-bytes", String(settings.snapshotLogBytes)],
    // Every write is in the fsynced Raft log before its reply, and nothing is dumped periodically.
    ["appendonly", "yes"],
    ["appendfsync", "always"],
    ["save", ""],
    ["databases", "1"],
    ["maxclients", String(settings.maxClients)],
  ];
}

function parseReadConsistency(value: string): Consistency {
  const level = parseConsistency(value);
  if (level === null) throw new UsageError(`invalid --read-consistency "${value}": expected local, lease or linearizable`);
  return level;
}

function parseLogLevel(value: string): LogLevel {
  if (value === "debug" || value === "info" || value === "warn" || value === "error") return value;
  throw new UsageError(`invalid --log-level "${value}": expected debug, info, warn or error`);
}

/** Returns whether a listener on `host` accepts connections on every interface. */
function isWildcardHost(host: string): boolean {
  return host === "0.0.0.0" || host === "::";
}

/** Accepts ":port" as "0.0.0.0:port"; other forms must be host:port. */
function normalizeListenAddr(value: string, flag: string): string {
  const addr = value.startsWith(":") ? `0.0.0.0${value}` : value;
  try {
    parseHostPort(addr);
  } catch (err) {
    throw new UsageError(`invalid --${flag}: ${errorMessage(err)}`);
  }
  return addr;
}

/** A running node: how to stop it, and a logger whose lines name the node and its term. */
interface RunningNode {
  stop: () => Promise<void>;
  logger: Logger;
}

/** Starts a node and resolves once it is serving. */
export async function runNode(settings: ServeSettings, logger: Logger): Promise<RunningNode> {
  if (existsSync(settings.dataDir) && !statSync(settings.dataDir).isDirectory()) {
    throw new UsageError(`invalid --data-dir ${settings.dataDir}: it exists and is not a directory`);
  }
  checkListenable(settings.listenAddr);
  checkListenable(settings.raftAddr);
  const createdDir = !existsSync(settings.dataDir);
  const createdDatabase = !existsSync(join(settings.dataDir, DATABASE_FILE));
  const storage = SqliteStorage.open(settings.dataDir, settings.nodeId);
  const self = { id: settings.nodeId, raftAddr: settings.raftAddr, clientAddr: settings.clientAddr };
  let mode: "recover" | "bootstrap" | "join";
  let joinCheck: JoinTargetCheck | null = null;
  if (settings.restore !== null && (storage.clusterId() !== null || settings.joinAddr !== null)) {
    const message =
      storage.clusterId() !== null
        ? `--restore needs an empty data directory, but ${settings.dataDir} already holds a node; to start that node, run the command again without --restore`
        : "--restore starts a new cluster and cannot be combined with --join-addr";
    storage.close();
    throw new UsageError(message);
  }
  if (settings.restore !== null) {
    mode = "bootstrap";
    try {
      await restoreFromBackup(storage, settings.dataDir, settings.restore, { ...self, voter: true, incarnation: storage.incarnation() }, logger);
    } catch (err) {
      storage.close();
      // The directory is left as it was, so that the command can run again,
      // under another node id too.
      if (createdDir) {
        rmSync(settings.dataDir, { recursive: true, force: true });
      } else if (createdDatabase) {
        for (const suffix of ["", "-wal", "-shm"]) rmSync(join(settings.dataDir, DATABASE_FILE + suffix), { force: true });
      }
      const reason = (err as NodeJS.ErrnoException).code === "ENOENT" ? "the file does not exist" : errorMessage(err);
      throw new UsageError(`cannot restore from ${settings.restore}: ${reason}`);
    }
  } else if (storage.clusterId() !== null) {
    mode = "recover";
    if (settings.joinAddr) {
      joinCheck = await checkJoinTargetCluster(settings, storage.clusterId()!);
      if (joinCheck.problem !== null) {
        storage.close();
        throw new UsageError(joinCheck.problem);
      }
    }
  } else if (settings.joinAddr) {
    mode = "join";
  } else {
    mode = "bootstrap";
    EchoNode.bootstrap(storage, { ...self, voter: true, incarnation: storage.incarnation() });
  }

  let fatal: ((err: Error) => void) | null = null;
  const node = await EchoNode.open({
    nodeId: settings.nodeId,
    raftAddr: settings.raftAddr,
    clientAddr: settings.clientAddr,
    storage,
    raftConfig: settings.raftConfig,
    tickMs: settings.tickMs,
    requestTimeoutMs: settings.requestTimeoutMs,
    logger,
    createTransport: (options) => new TcpTransport({ ...options, maxFrameBytes: DEFAULT_MAX_FRAME_BYTES }),
    onFatal: (err) => fatal?.(err),
    dataDir: settings.dataDir,
    snapshotEntries: settings.snapshotEntries,
    snapshotLogBytes: settings.snapshotLogBytes,
  });
  // From here on, every line names the node and its current term.
  const nodeLogger = logger.with(() => ({ node: settings.nodeId, term: node.term }));
  for (const conversion of storage.conversions) nodeLogger.info("data directory converted", { change: conversion });
  if (mode === "bootstrap" && settings.restore === null) nodeLogger.info("bootstrapped a new one-node cluster", { cluster: node.clusterId ?? "" });
  // A node killed after its JOIN reply, but before its log had a
  // configuration, restarts with a cluster id and no members, so it has no
  // peer to reply to. A second JOIN returns the members, and a member that
  // already lists this data directory adds nothing.
  const rejoin = mode === "recover" && settings.joinAddr !== null && !node.hasConfiguration;
  if (rejoin) {
    nodeLogger.info("node has a cluster id but no configuration yet; sending JOIN again", { join_addr: settings.joinAddr });
  } else if (mode === "recover" && settings.joinAddr) {
    nodeLogger.info("node has cluster state; not joining again", { join_addr: settings.joinAddr });
    if (joinCheck?.unreachable) {
      nodeLogger.info("could not check the cluster of --join-addr; starting from the data directory", {
        join_addr: settings.joinAddr,
        error: joinCheck.unreachable,
      });
    }
  }
  const server = new RespServer({
    listenAddr: settings.listenAddr,
    node,
    limits: { maxKeyBytes: settings.maxKeyBytes, maxValueBytes: settings.maxValueBytes },
    logger: nodeLogger,
    requestTimeoutMs: settings.requestTimeoutMs,
    retryDelayMs: settings.tickMs * 2,
    maxClients: settings.maxClients,
    defaultConsistency: settings.readConsistency,
    settings: configSettings(settings),
  });

  let stopping = false;
  const stop = async () => {
    stopping = true;
    // A leader hands over first so that clients see almost no unavailability.
    if (node.role === "leader" && node.status().members.filter((member) => member.voter).length > 1) {
      try {
        const target = await node.transferLeadership(null);
        nodeLogger.info("handed leadership over before stopping", { target });
      } catch (err) {
        nodeLogger.warn("leadership transfer before stopping failed", { error: errorMessage(err) });
      }
    }
    // Replies still on their way from the new leader get a moment to arrive,
    // and writes proposed here get up to a second to be applied, because
    // stopping fails them with an unknown outcome.
    server.stopAccepting();
    await Bun.sleep(100);
    const deadline = Date.now() + 1000;
    while (node.pendingProposals > 0 && Date.now() < deadline) await Bun.sleep(10);
    // The node fails what still waits (writes with TIMEOUT, reads with
    // SHUTDOWN) before the connections close, so clients get an error reply.
    await node.stop();
    await server.stop();
  };
  fatal = (err) => {
    nodeLogger.error("node stopped after a fatal error", { error: err.message });
    process.exit(70);
  };

  try {
    await node.start();
    server.start();
    if (mode === "join" || rejoin) await joinCluster(node, settings, nodeLogger);
    if (mode === "recover") void announceNewAddresses(node, settings, nodeLogger, () => stopping, (err) => fatal?.(err));
    if (joinCheck?.unreachable) void recheckJoinTargetCluster(settings, node.clusterId ?? "", () => stopping, (err) => fatal?.(err));
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
  return { stop, logger: nodeLogger };
}

/**
 * Records new addresses of a node restarted from its data directory on other
 * addresses than its configuration lists. Its peers would otherwise keep
 * dialling the old raft address and never reach it. Sends JOIN, which the
 * leader turns into an address change, to --join-addr and each other member
 * in turn, once a second, until one accepts or the attempts run out.
 */
async function announceNewAddresses(
  node: EchoNode,
  settings: ServeSettings,
  logger: Logger,
  stopped: () => boolean,
  onWrongCluster: (err: Error) => void,
): Promise<void> {
  const recorded = node.member(settings.nodeId);
  if (!recorded || (recorded.raftAddr === settings.raftAddr && recorded.clientAddr === settings.clientAddr)) return;
  const fields = {
    raft_addr: settings.raftAddr,
    previous_raft_addr: recorded.raftAddr,
    client_addr: settings.clientAddr,
    previous_client_addr: recorded.clientAddr,
  };
  logger.info("this node's addresses changed; asking the cluster to record the new ones", fields);
  // --join-addr may be down or gone, so the other members come after it.
  const targets = settings.joinAddr ? [settings.joinAddr] : [];
  for (const member of node.status().members) {
    if (member.id !== settings.nodeId && !targets.includes(member.clientAddr)) targets.push(member.clientAddr);
  }
  // The only member of a one-node cluster leads it, so it records its own addresses.
  if (targets.length === 0) targets.push(settings.clientAddr);
  let lastError = "no member accepted the change";
  for (let attempt = 0; attempt < ADDRESS_CHANGE_ATTEMPTS && !stopped(); attempt++) {
    const target = targets[attempt % targets.length];
    try {
      const reply = await sendJoin(target, settings, [node.incarnation, node.clusterId ?? ""], 10_000);
      if (reply.type === "array") {
        logger.info("address change recorded", { ...fields, via: target });
        return;
      }
      lastError = reply.type === "error" ? reply.message : `unexpected reply ${JSON.stringify(reply)}`;
      if (reply.type === "error" && reply.message.startsWith(`${WRONG_CLUSTER_CODE} `)) {
        // The startup check could not reach --join-addr, which belongs to another cluster.
        onWrongCluster(new Error(`${target} rejected this node: ${reply.message.slice(WRONG_CLUSTER_CODE.length + 1)}`));
        return;
      }
      // A definite rejection (such as an address in use) will not change by retrying.
      if (reply.type === "error" && lastError.startsWith("ERR ")) break;
    } catch (err) {
      lastError = errorMessage(err);
    }
    await Bun.sleep(1000);
  }
  if (!stopped()) logger.error("could not record this node's new addresses; peers still dial the old ones", { ...fields, error: lastError });
}

/** Outcome of asking --join-addr for its cluster before a restart. */
interface JoinTargetCheck {
  /** Reason this node must not start, or null when it may. */
  problem: string | null;
  /** Error that kept --join-addr from replying, or null when it replied. */
  unreachable: string | null;
}

/**
 * Requests the cluster id of --join-addr and compares it with this node's.
 * Without the check, a node with data and a --join-addr of another cluster
 * would serve clients as a separate cluster, on an address meant for that
 * one. An unreachable --join-addr does not stop the node, because a
 * restarted node recovers from its data directory alone.
 */
async function checkJoinTargetCluster(settings: ServeSettings, clusterId: string): Promise<JoinTargetCheck> {
  const target = settings.joinAddr!;
  let remoteId: string;
  try {
    const client = await RespClient.connect(target, { timeoutMs: 2000 });
    try {
      const reply = await client.command(["INFO", "server"], { timeoutMs: 3000 });
      if (reply.type !== "bulk" || reply.value === null) throw new Error(`unexpected INFO reply of type ${reply.type}`);
      remoteId = /^cluster_id:(.*)$/m.exec(reply.value.toString())?.[1]?.trim() ?? "";
    } finally {
      client.close();
    }
  } catch (err) {
    return { problem: null, unreachable: errorMessage(err) };
  }
  if (remoteId === "" || remoteId === clusterId) return { problem: null, unreachable: null };
  const problem =
    `data directory ${settings.dataDir} belongs to cluster ${clusterId}, but --join-addr ${target} is a member of cluster ${remoteId}; ` +
    "start this node with its own cluster's data directory, or with an empty --data-dir to join as a new member";
  return { problem, unreachable: null };
}

/**
 * Repeats the startup check of --join-addr's cluster until that member
 * replies, and stops the node (through `onWrongCluster`) if it belongs to
 * another cluster. Without it, a node whose addresses did not change would
 * never contact --join-addr again.
 */
async function recheckJoinTargetCluster(
  settings: ServeSettings,
  clusterId: string,
  stopped: () => boolean,
  onWrongCluster: (err: Error) => void,
): Promise<void> {
  while (!stopped()) {
    await Bun.sleep(JOIN_CHECK_RETRY_MS);
    if (stopped()) return;
    const check = await checkJoinTargetCluster(settings, clusterId);
    if (check.problem !== null) {
      onWrongCluster(new Error(check.problem));
      return;
    }
    if (check.unreachable === null) return;
  }
}

/**
 * Sends JOIN for this node to the member at `target` and returns the reply.
 * `extra` is the incarnation, and for a node with data also its cluster id.
 * Connection failures throw.
 */
async function sendJoin(target: string, settings: ServeSettings, extra: string[], timeoutMs: number): Promise<RespValue> {
  const client = await RespClient.connect(target, { timeoutMs: 2000 });
  try {
    return await client.command(["JOIN", settings.nodeId, settings.raftAddr, settings.clientAddr, ...extra], { timeoutMs });
  } finally {
    client.close();
  }
}

/** Asks the member at --join-addr to add this node, retrying until --join-timeout-ms. */
async function joinCluster(node: EchoNode, settings: ServeSettings, logger: Logger): Promise<void> {
  const target = settings.joinAddr!;
  const incarnation = node.incarnation;
  const deadline = Date.now() + settings.joinTimeoutMs;
  let attempt = 0;
  let lastError = "";
  while (Date.now() < deadline) {
    attempt++;
    try {
      const reply = await sendJoin(target, settings, [incarnation], Math.max(1000, deadline - Date.now()));
      const joined = parseJoinReply(reply);
      if (joined) {
        const { clusterId, members } = joined;
        node.setClusterId(clusterId, members);
        logger.info("joined cluster", { cluster: clusterId, via: target, attempts: attempt });
        return;
      }
      const message = reply.type === "error" ? reply.message : `unexpected reply ${JSON.stringify(reply)}`;
      // A definite rejection (such as an id clash) will not change by retrying.
      if (reply.type === "error" && message.startsWith("ERR ")) {
        throw new UsageError(`join via ${target} was rejected: ${message.slice(4)}`);
      }
      lastError = message;
    } catch (err) {
      if (err instanceof UsageError) throw err;
      lastError = errorMessage(err);
      // A raft port drops a RESP request as a bad frame without replying.
      if (err instanceof RespClientError && err.code === "CLOSED") {
        lastError += `; check that ${target} is a member's client address, not its raft address`;
      }
    }
    if (attempt === 1) logger.warn("join attempt failed; retrying", { via: target, error: lastError });
    await Bun.sleep(Math.min(1000, 100 * attempt));
  }
  throw new UsageError(`could not join the cluster via ${target} within ${settings.joinTimeoutMs} ms: ${lastError}`);
}

/** Decodes the JOIN reply: the cluster id, then id, raft and client address of each member. */
function parseJoinReply(reply: RespValue): { clusterId: string; members: Member[] } | null {
  if (reply.type !== "array" || reply.value === null || reply.value.length % 3 !== 1) return null;
  const fields = reply.value.map((item) => (item.type === "bulk" && item.value !== null ? item.value.toString("utf8") : ""));
  const clusterId = fields[0];
  if (clusterId === "") return null;
  const members: Member[] = [];
  for (let i = 1; i + 2 < fields.length; i += 3) {
    members.push({ id: fields[i], raftAddr: fields[i + 1], clientAddr: fields[i + 2], voter: true });
  }
  return { clusterId, members };
}

export const serveCommand = defineCommand({
  meta: { name: "serve", description: "Run a node: bootstrap a cluster, join one, or recover from --data-dir" },
  args: serveArgs,
  async run({ args, rawArgs }) {
    rejectUnknownFlags(rawArgs, serveArgs, "serve");
    const settings = parseServeFlags(args as unknown as ServeFlags);
    const logger = createLogger(settings.logLevel);
    let running: RunningNode;
    try {
      running = await runNode(settings, logger);
    } catch (err) {
      if (err instanceof StorageError) throw new UsageError(err.message);
      throw err;
    }
    const { stop, logger: nodeLogger } = running;
    nodeLogger.info("serving", {
      client_addr: settings.clientAddr,
      raft_addr: settings.raftAddr,
      data_dir: settings.dataDir,
    });

    await new Promise<void>((resolve) => {
      let stopping = false;
      // Ctrl+C in a terminal reaches every process of the group, and a
      // supervisor may send SIGTERM as well: the first signal stops the node.
      const shutdown = (signal: string) => {
        if (stopping) return;
        stopping = true;
        nodeLogger.info("shutting down", { signal });
        stop().finally(resolve);
      };
      process.once("SIGINT", () => shutdown("SIGINT"));
      process.once("SIGTERM", () => shutdown("SIGTERM"));
    });
    process.exit(0);
  },
});
