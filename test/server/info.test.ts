// INFO's member lines. The leader reports match index and lag only for
// members that have replied to it. Last contact is reported only where it
// means something: every member on the leader, the leader on a follower.
// Also the raft section's removed flag and role, and the replication
// section in Redis's field names.

import { describe, expect, test } from "bun:test";
import type { NodeStatus } from "../../src/node/node.ts";
import { formatInfo, type ClientStats } from "../../src/server/info.ts";

const members = ["node-1", "node-2", "node-3"].map((id, i) => ({
  id,
  raftAddr: `127.0.0.1:1537${i}`,
  clientAddr: `127.0.0.1:537${i}`,
  voter: true,
}));

function status(overrides: Partial<NodeStatus>): NodeStatus {
  return {
    id: "node-1",
    role: "leader",
    term: 3,
    votedFor: "node-1",
    leaderId: "node-1",
    commitIndex: 120,
    appliedIndex: 120,
    lastIndex: 120,
    lastTerm: 3,
    snapshotIndex: 0,
    members,
    progress: {},
    transferTarget: null,
    lastContactMs: {},
    linkedPeers: [],
    clusterId: "c-1",
    clientAddr: "127.0.0.1:5370",
    raftAddr: "127.0.0.1:15370",
    keys: 10,
    loading: false,
    removed: false,
    memory: { storeBytes: 0, storeLiveBytes: 0 },
    ...overrides,
  };
}

/** Returns the fields of member line `index`, keyed by name. */
function memberFields(info: string, index: number): Map<string, string> {
  const line = info.split("\r\n").find((text) => text.startsWith(`member${index}:`));
  if (line === undefined) throw new Error(`no member${index} line in ${JSON.stringify(info)}`);
  const fields = line.slice(line.indexOf(":") + 1).split(",");
  return new Map(fields.map((field) => [field.slice(0, field.indexOf("=")), field.slice(field.indexOf("=") + 1)]));
}

describe("INFO member lines", () => {
  test("leader reports lag of members that answered", () => {
    const info = formatInfo(
      status({
        progress: {
          "node-2": { match: 118, next: 121, state: "replicate", recentActive: true },
          // Not heard from since this leader was elected: its match index is unknown.
          "node-3": { match: 0, next: 121, state: "probe", recentActive: false },
        },
        lastContactMs: { "node-2": 12, "node-3": 4_000 },
      }), null,
      "members",
    );
    const answered = memberFields(info, 1);
    expect(answered.get("match_index")).toBe("118");
    expect(answered.get("lag")).toBe("2");
    expect(answered.get("last_contact_ms")).toBe("12");
    const silent = memberFields(info, 2);
    expect(silent.has("match_index")).toBe(false);
    expect(silent.has("lag")).toBe(false);
    expect(silent.get("last_contact_ms")).toBe("4000");
  });

  test("follower reports contact with its leader only", () => {
    const info = formatInfo(
      status({ id: "node-2", role: "follower", leaderId: "node-1", lastContactMs: { "node-1": 30, "node-3": 15_000 } }), null,
      "members",
    );
    expect(memberFields(info, 0).get("last_contact_ms")).toBe("30");
    expect(memberFields(info, 2).has("last_contact_ms")).toBe(false);
  });

  test("removed flag in the raft section", () => {
    expect(formatInfo(status({ removed: true }), null, "raft")).toContain("removed:1");
    expect(formatInfo(status({}), null, "raft")).toContain("removed:0");
  });

  test("several sections in one request", () => {
    const info = formatInfo(status({}), null, "raft", "keyspace", "nosuchsection");
    expect(info).toContain("# Raft\r\n");
    expect(info).toContain("# Keyspace\r\nkeys:10\r\ndb0:keys=10,expires=0,avg_ttl=0\r\n");
    expect(formatInfo(status({ keys: 0 }), null, "keyspace")).not.toContain("db0:");
    expect(info).not.toContain("# Server");
    expect(formatInfo(status({}), null)).toContain("# Server");
    expect(formatInfo(status({}), null, "default")).toContain("# Memory");
  });

  test("a pre-candidate reports its own role, as its log lines and events do", () => {
    const info = formatInfo(status({ role: "precandidate", leaderId: null }), null, "raft");
    expect(info).toContain("role:precandidate");
  });
});

describe("INFO clients and stats", () => {
  const clients: ClientStats = { connected: 3, maxClients: 10_000, connectionsReceived: 41, connectionsRejected: 2, commandsProcessed: 1_234 };

  test("sections carry Redis field names", () => {
    const info = formatInfo(status({}), clients, "clients", "stats");
    expect(info).toContain("# Clients\r\nconnected_clients:3\r\nblocked_clients:0\r\nmaxclients:10000\r\n");
    expect(info).toContain("# Stats\r\ntotal_connections_received:41\r\ntotal_commands_processed:1234\r\nrejected_connections:2\r\n");
  });

  test("memory has used_memory", () => {
    expect(formatInfo(status({}), clients, "memory")).toMatch(/\r\nused_memory:\d+\r\n/);
  });

  test("left out without counters", () => {
    expect(formatInfo(status({}), null)).not.toContain("# Clients");
    expect(formatInfo(status({}), clients)).toContain("# Stats");
  });
});

/** Returns the `field:value` pairs of an INFO reply. */
function fields(info: string): Map<string, string> {
  const lines = info.split("\r\n").filter((line) => line.includes(":") && !line.startsWith("#"));
  return new Map(lines.map((line) => [line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 1)]));
}

describe("INFO replication", () => {
  test("leader lists linked members as replicas", () => {
    const info = fields(
      formatInfo(
        status({
          lastIndex: 125,
          progress: {
            "node-2": { match: 118, next: 121, state: "replicate", recentActive: true },
            "node-3": { match: 0, next: 121, state: "probe", recentActive: false },
          },
          lastContactMs: { "node-2": 2_500, "node-3": 40_000 },
          linkedPeers: ["node-2"],
        }),
        null,
        "replication",
      ),
    );
    expect(info.get("role")).toBe("master");
    expect(info.get("connected_slaves")).toBe("1");
    expect(info.get("slave0")).toBe("ip=127.0.0.1,port=5371,state=online,offset=118,lag=2");
    expect(info.has("slave1")).toBe(false);
    expect(info.get("master_repl_offset")).toBe("125");
  });

  test("follower names its leader", () => {
    const linked = fields(
      formatInfo(
        status({ id: "node-2", role: "follower", leaderId: "node-1", lastIndex: 119, lastContactMs: { "node-1": 1_200 }, linkedPeers: ["node-1"] }),
        null,
        "replication",
      ),
    );
    expect(linked.get("role")).toBe("slave");
    expect(linked.get("master_host")).toBe("127.0.0.1");
    expect(linked.get("master_port")).toBe("5370");
    expect(linked.get("master_link_status")).toBe("up");
    expect(linked.get("master_last_io_seconds_ago")).toBe("1");
    expect(linked.get("master_sync_in_progress")).toBe("0");
    expect(linked.get("slave_repl_offset")).toBe("119");
  });

  test("comes only when named", () => {
    const everything = formatInfo(status({ linkedPeers: ["node-2"] }), null);
    expect(everything).not.toContain("# Replication");
    expect(fields(everything).get("role")).toBe("leader");
    expect(fields(formatInfo(status({}), null, "all")).get("role")).toBe("leader");
    expect(formatInfo(status({}), null, "raft", "replication")).toContain("# Replication\r\nrole:master");
  });

  test("follower without a leader is down", () => {
    const info = fields(
      formatInfo(status({ id: "node-2", role: "precandidate", leaderId: null, loading: true, linkedPeers: ["node-3"] }), null, "replication"),
    );
    expect(info.get("role")).toBe("slave");
    expect(info.get("master_host")).toBe("");
    expect(info.get("master_port")).toBe("0");
    expect(info.get("master_link_status")).toBe("down");
    expect(info.get("master_last_io_seconds_ago")).toBe("-1");
    expect(info.get("master_sync_in_progress")).toBe("1");
  });
});
