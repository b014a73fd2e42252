// INFO, MEMBERS and LEADER replies, in the Redis `field:value` style.

import { heapStats } from "bun:jsc";
import { BUILD_COMMIT, VERSION } from "../build-info.ts";
import type { NodeStatus } from "../node/node.ts";

function memberLine(status: NodeStatus, index: number): string {
  const member = status.members[index];
  const progress = status.progress[member.id];
  const fields = [
    `id=${member.id}`,
    `raft_addr=${member.raftAddr}`,
    `client_addr=${member.clientAddr}`,
    `voter=${member.voter ? "yes" : "no"}`,
    `leader=${member.id === status.leaderId ? "yes" : "no"}`,
  ];
  // A new leader learns a member's match index only from that member's first reply.
  const matchKnown = progress !== undefined && (progress.match > 0 || progress.state !== "probe");
  if (matchKnown) fields.push(`match_index=${progress.match}`, `lag=${Math.max(0, status.lastIndex - progress.match)}`);
  // A follower hears from the leader only, so its age for any other member would only grow.
  const contact = status.lastContactMs[member.id];
  const contactMeaningful = status.role === "leader" || member.id === status.leaderId;
  if (contact !== undefined && contactMeaningful) fields.push(`last_contact_ms=${contact}`);
  return `member${index}:${fields.join(",")}`;
}

/** Splits "host:port" at its last colon, so ":5379" has an empty host. Without a colon, the port is 0. */
function splitAddress(address: string): [string, string] {
  const colon = address.lastIndexOf(":");
  return colon < 0 ? [address, "0"] : [address.slice(0, colon), address.slice(colon + 1)];
}

/**
 * Redis's replication fields, for tools that tell a primary from its
 * replicas: the leader is `master` and every other node a `slave`. Offsets
 * are log indexes, not bytes. On the leader, each member it is linked to
 * gets a `slaveN` line with its client address, its match index as offset,
 * and the whole seconds since it last replied as lag.
 */
function replicationLines(status: NodeStatus): string[] {
  if (status.role === "leader") {
    const lines = ["role:master", `connected_slaves:${status.linkedPeers.length}`];
    status.linkedPeers.forEach((id, index) => {
      const member = status.members.find((candidate) => candidate.id === id);
      const [host, port] = splitAddress(member?.clientAddr ?? "");
      const offset = status.progress[id]?.match ?? 0;
      const lag = Math.floor((status.lastContactMs[id] ?? 0) / 1000);
      lines.push(`slave${index}:ip=${host},port=${port},state=online,offset=${offset},lag=${lag}`);
    });
    lines.push(`master_repl_offset:${status.lastIndex}`);
    return lines;
  }
  const leader = status.members.find((member) => member.id === status.leaderId);
  const [host, port] = leader === undefined ? ["", "0"] : splitAddress(leader.clientAddr);
  const contact = status.leaderId === null ? undefined : status.lastContactMs[status.leaderId];
  const linked = status.leaderId !== null && status.linkedPeers.includes(status.leaderId);
  return [
    "role:slave",
    `master_host:${host}`,
    `master_port:${port}`,
    `master_link_status:${linked ? "up" : "down"}`,
    `master_last_io_seconds_ago:${contact === undefined ? -1 : Math.floor(contact / 1000)}`,
    `master_sync_in_progress:${status.loading ? 1 : 0}`,
    `slave_repl_offset:${status.lastIndex}`,
    "slave_read_only:0",
    "connected_slaves:0",
    `master_repl_offset:${status.lastIndex}`,
  ];
}

/** Counters of the client port, for the clients and stats sections. */
export interface ClientStats {
  /** Open client connections. */
  connected: number;
  /** The --max-clients limit. */
  maxClients: number;
  /** Connections accepted since the node started, the rejected ones included. */
  connectionsReceived: number;
  /** Connections closed at once because --max-clients was reached. */
  connectionsRejected: number;
  /** Commands parsed since the node started. */
  commandsProcessed: number;
}

/** Process memory as Redis-style fields: RSS, the store and the JavaScript heap, in bytes. */
function memoryLines(status: NodeStatus): string[] {
  const usage = process.memoryUsage();
  const heap = heapStats();
  return [
    // A JavaScript process has no allocator total like Redis's used_memory, so used_memory reports the resident size.
    `used_memory:${usage.rss}`,
    `used_memory_rss:${usage.rss}`,
    `store_bytes:${status.memory.storeBytes}`,
    `store_live_bytes:${status.memory.storeLiveBytes}`,
    `js_heap_size:${heap.heapSize}`,
    `js_heap_capacity:${heap.heapCapacity}`,
    `js_extra_memory:${heap.extraMemorySize}`,
    `js_object_count:${heap.objectCount}`,
    `array_buffers:${usage.arrayBuffers}`,
  ];
}

/**
 * Formats the INFO reply. `requested` names sections (server, clients, raft,
 * replication, members, keyspace, memory, stats) in lower case, and none, all,
 * everything or default means every section but replication. Unknown names
 * are skipped, as Redis does. Without `clients`, the clients and stats
 * sections are left out.
 */
export function formatInfo(status: NodeStatus, clients: ClientStats | null, ...requested: string[]): string {
  const sections: Record<string, string[]> = {
    server: [
      `echokv_version:${VERSION}`,
      `echokv_build:${BUILD_COMMIT}`,
      `node_id:${status.id}`,
      `cluster_id:${status.clusterId ?? ""}`,
      `client_addr:${status.clientAddr}`,
      `raft_addr:${status.raftAddr}`,
      `process_id:${process.pid}`,
      `uptime_in_seconds:${Math.floor(process.uptime())}`,
      `loading:${status.loading ? 1 : 0}`,
    ],
    raft: [
      `role:${status.role}`,
      `term:${status.term}`,
      `leader_id:${status.leaderId ?? ""}`,
      `leader_addr:${status.members.find((member) => member.id === status.leaderId)?.clientAddr ?? ""}`,
      `commit_index:${status.commitIndex}`,
      `applied_index:${status.appliedIndex}`,
      `last_log_index:${status.lastIndex}`,
      `last_log_term:${status.lastTerm}`,
      `snapshot_index:${status.snapshotIndex}`,
      `removed:${status.removed ? 1 : 0}`,
    ],
    replication: replicationLines(status),
    members: [
      `members:${status.members.length}`,
      `voters:${status.members.filter((member) => member.voter).length}`,
      ...status.members.map((_, index) => memberLine(status, index)),
    ],
    // db0 in the format of Redis, which tools that read INFO keyspace expect; Redis omits it for an empty database.
    keyspace: [`keys:${status.keys}`, ...(status.keys > 0 ? [`db0:keys=${status.keys},expires=0,avg_ttl=0`] : [])],
    memory: memoryLines(status),
  };
  if (clients !== null) {
    // Field names as in Redis, for tools such as `redis-cli --stat`.
    sections.clients = [`connected_clients:${clients.connected}`, "blocked_clients:0", `maxclients:${clients.maxClients}`];
    sections.stats = [
      `total_connections_received:${clients.connectionsReceived}`,
      `total_commands_processed:${clients.commandsProcessed}`,
      `rejected_connections:${clients.connectionsRejected}`,
    ];
  }

  const everything = requested.length === 0 || requested.some((name) => name === "all" || name === "everything" || name === "default");
  // The replication section's role (master or slave) would repeat the raft
  // section's field name with another meaning, so it comes only when named.
  const names = Object.keys(sections).filter((name) => requested.includes(name) || (everything && name !== "replication"));
  const parts: string[] = [];
  for (const name of names) {
    const lines = sections[name];
    parts.push(`# ${name[0].toUpperCase()}${name.slice(1)}\r\n${lines.join("\r\n")}\r\n`);
  }
  return parts.join("\r\n");
}

/** One line per member, as MEMBERS returns them. */
export function formatMembers(status: NodeStatus): string[] {
  return status.members.map((member) => {
    let role = member.voter ? "voter" : "learner";
    if (member.id === status.leaderId) role = "leader";
    return `${member.id} raft=${member.raftAddr} client=${member.clientAddr} ${role}`;
  });
}
