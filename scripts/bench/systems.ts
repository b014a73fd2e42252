// Starting the systems under test on 127.0.0.1 free ports, each with its data
// and logs in its own temporary directory: a three-node EchoKV cluster, a
// three-member etcd cluster, one Redis server, and the replication floor of
// floor.ts on three processes.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { EtcdHttpClient, RespClient, sendRespCommand, type BenchClient } from "./clients.ts";
import type { Workload } from "./load.ts";
import { findFreePorts, startServer, type ServerProcess } from "./processes.ts";

export type SystemName = "EchoKV" | "etcd" | "Redis" | "Floor";

export interface BenchSystem {
  name: SystemName;
  /** Every server process of the system, in node order. */
  servers: ServerProcess[];
  /** Node that receives all load: the Raft leader for EchoKV and etcd. */
  targetName: string;
  /** Client port of the target node when it speaks RESP, for redis-benchmark; null for etcd. */
  respPort: number | null;
  supports(workload: Workload): boolean;
  connect(): Promise<BenchClient>;
}

/** Per-request and connect timeout of the load generator. */
const REQUEST_TIMEOUT_MS = 10_000;

/** Fails with a message naming `what` and the log to read if `check` does not return true within `timeoutMs`. */
async function waitFor(what: string, timeoutMs: number, servers: ServerProcess[], check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = "";
  while (Date.now() < deadline) {
    for (const server of servers) {
      if (server.child.exitCode !== null) {
        throw new Error(`${server.name} exited with status ${server.child.exitCode} while waiting for ${what}; see ${server.logFile}`);
      }
    }
    try {
      if (await check()) return;
    } catch (err) {
      lastError = (err as Error).message;
    }
    await Bun.sleep(100);
  }
  const logs = servers.map((server) => server.logFile).join(", ");
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${lastError})` : ""}; see ${logs}`);
}

/** Returns the `field:value` pairs of an INFO reply. */
function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon > 0 && !line.startsWith("#")) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return fields;
}

/**
 * Starts three EchoKV nodes from `binary` with default settings: node-1
 * bootstraps, node-2 and node-3 join through node-1. Returns once node-1
 * reports three voters, with the load aimed at the leader.
 */
export async function startEchoKv(binary: string, directory: string, valueBytes: number, servers: ServerProcess[]): Promise<BenchSystem> {
  mkdirSync(directory, { recursive: true });
  const ports = findFreePorts(6);
  const clientPorts = ports.slice(0, 3);
  const own: ServerProcess[] = [];
  for (let index = 0; index < 3; index++) {
    const id = `node-${index + 1}`;
    const command = [
      binary, "serve",
      "--node-id", id,
      "--listen-addr", `127.0.0.1:${clientPorts[index]}`,
      "--raft-addr", `127.0.0.1:${ports[3 + index]}`,
      "--data-dir", join(directory, id),
    ];
    if (index > 0) command.push("--join-addr", `127.0.0.1:${clientPorts[0]}`);
    const server = startServer(`echokv ${id}`, command, join(directory, `${id}.log`));
    servers.push(server);
    own.push(server);
    if (index === 0) {
      await waitFor("EchoKV node-1 to answer PING", 15_000, own, async () => (await sendRespCommand(clientPorts[0], ["PING"], 1000)) === "+PONG");
    }
  }

  let info = new Map<string, string>();
  await waitFor("EchoKV node-1 to report voters:3", 60_000, own, async () => {
    info = parseInfo(await sendRespCommand(clientPorts[0], ["INFO"], 1000));
    return info.get("voters") === "3" && (info.get("leader_addr") ?? "") !== "";
  });
  const leaderPort = Number(info.get("leader_addr")!.split(":").pop());
  const leaderIndex = clientPorts.indexOf(leaderPort);
  if (leaderIndex < 0) throw new Error(`EchoKV leader address ${info.get("leader_addr")} is not one of the started nodes`);

  return {
    name: "EchoKV",
    servers: own,
    targetName: `node-${leaderIndex + 1} (leader)`,
    respPort: leaderPort,
    supports: () => true,
    connect: () => RespClient.open(leaderPort, REQUEST_TIMEOUT_MS, valueBytes, { local: "", linearizable: "linearizable" }),
  };
}

/** Posts a JSON body to an etcd member's gateway with fetch, for setup only. */
async function postEtcd(port: number, path: string, body: object): Promise<Record<string, unknown>> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: "POST",
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(2000),
  });
  if (!response.ok) throw new Error(`POST ${path} on 127.0.0.1:${port} returned HTTP ${response.status}`);
  return (await response.json()) as Record<string, unknown>;
}

/**
 * Starts a three-member etcd cluster with default settings apart from names,
 * addresses and data directories. Returns once the status of every member
 * names the same leader, with the load aimed at that leader.
 */
export async function startEtcd(directory: string, valueBytes: number, servers: ServerProcess[]): Promise<BenchSystem> {
  mkdirSync(directory, { recursive: true });
  const ports = findFreePorts(6);
  const clientPorts = ports.slice(0, 3);
  const names = ["etcd-1", "etcd-2", "etcd-3"];
  const initialCluster = names.map((name, index) => `${name}=http://127.0.0.1:${ports[3 + index]}`).join(",");
  const token = `bench-${process.pid}-${Date.now()}`;
  const own: ServerProcess[] = [];
  for (let index = 0; index < 3; index++) {
    const clientUrl = `http://127.0.0.1:${clientPorts[index]}`;
    const peerUrl = `http://127.0.0.1:${ports[3 + index]}`;
    const command = [
      "etcd",
      "--name", names[index],
      "--data-dir", join(directory, names[index]),
      "--listen-client-urls", clientUrl,
      "--advertise-client-urls", clientUrl,
      "--listen-peer-urls", peerUrl,
      "--initial-advertise-peer-urls", peerUrl,
      "--initial-cluster", initialCluster,
      "--initial-cluster-state", "new",
      "--initial-cluster-token", token,
    ];
    const server = startServer(names[index], command, join(directory, `${names[index]}.log`));
    servers.push(server);
    own.push(server);
  }

  let leaderIndex = -1;
  await waitFor("etcd members to agree on a leader", 60_000, own, async () => {
    const statuses = await Promise.all(clientPorts.map((port) => postEtcd(port, "/v3/maintenance/status", {})));
    const leaders = new Set(statuses.map((status) => String(status.leader ?? "")));
    if (leaders.size !== 1 || leaders.has("") || leaders.has("0")) return false;
    const leader = [...leaders][0];
    leaderIndex = statuses.findIndex((status) => String((status.header as { member_id?: string }).member_id) === leader);
    return leaderIndex >= 0;
  });
  const leaderPort = clientPorts[leaderIndex];

  return {
    name: "etcd",
    servers: own,
    targetName: `${names[leaderIndex]} (leader)`,
    respPort: null,
    supports: () => true,
    connect: () => EtcdHttpClient.open(leaderPort, REQUEST_TIMEOUT_MS, valueBytes),
  };
}

/** Starts one Redis server that appends every write to its AOF and fsyncs it before replying. */
export async function startRedis(directory: string, valueBytes: number, servers: ServerProcess[]): Promise<BenchSystem> {
  const [port] = findFreePorts(1);
  mkdirSync(directory, { recursive: true });
  const command = [
    "redis-server",
    "--port", String(port),
    "--bind", "127.0.0.1",
    "--dir", directory,
    "--appendonly", "yes",
    "--appendfsync", "always",
    "--save", "",
    "--daemonize", "no",
  ];
  const server = startServer("redis", command, join(directory, "redis.log"));
  servers.push(server);
  await waitFor("Redis to answer PING", 15_000, [server], async () => (await sendRespCommand(port, ["PING"], 1000)) === "+PONG");

  return {
    name: "Redis",
    servers: [server],
    targetName: "single server",
    respPort: port,
    supports: (workload) => workload !== "linearizable-get",
    connect: () => RespClient.open(port, REQUEST_TIMEOUT_MS, valueBytes, { local: "", linearizable: null }),
  };
}

/**
 * Starts the replication floor (floor.ts): two followers, then a leader that
 * connects to them, each a Bun process with its own SQLite database. It takes
 * SET only.
 */
export async function startFloor(directory: string, valueBytes: number, servers: ServerProcess[]): Promise<BenchSystem> {
  mkdirSync(directory, { recursive: true });
  const [leaderPort, ...followerPorts] = findFreePorts(3);
  const script = join(import.meta.dir, "floor.ts");
  const own: ServerProcess[] = [];
  const start = (name: string, args: string[]) => {
    const command = [process.execPath, script, ...args, "--data-dir", join(directory, name)];
    const server = startServer(`floor ${name}`, command, join(directory, `${name}.log`));
    servers.push(server);
    own.push(server);
  };
  start("leader", ["leader", "--port", String(leaderPort), "--followers", followerPorts.join(",")]);
  followerPorts.forEach((port, index) => start(`follower-${index + 1}`, ["follower", "--port", String(port)]));
  await waitFor("the floor leader to answer PING", 15_000, own, async () => (await sendRespCommand(leaderPort, ["PING"], 1000)) === "+PONG");

  return {
    name: "Floor",
    servers: own,
    targetName: "its leader",
    respPort: leaderPort,
    supports: (workload) => workload === "sequential-set" || workload === "set",
    connect: () => RespClient.open(leaderPort, REQUEST_TIMEOUT_MS, valueBytes, { local: null, linearizable: null }),
  };
}
