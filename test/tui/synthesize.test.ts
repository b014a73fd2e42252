import { describe, expect, test } from "bun:test";
import type { MemberInfo, NodeInfo } from "../../src/tui/info.ts";
import { observedLeader, synthesizeEvents, type ClusterObservation, type NodeObservation } from "../../src/tui/synthesize.ts";

const TIME = new Date("2025-06-01T12:00:00.000Z");

function member(id: string, voter = true): MemberInfo {
  const port = 47100 + Number(id.replace(/\D/g, ""));
  return { id, raftAddr: `127.0.0.1:${port + 10}`, clientAddr: `127.0.0.1:${port}`, voter, leader: false, matchIndex: null, lag: null };
}

function info(id: string, role: string, term: number, leaderId: string | null, processId = 100): NodeInfo {
  return {
    nodeId: id,
    clientAddr: member(id).clientAddr,
    raftAddr: member(id).raftAddr,
    processId,
    role,
    term,
    leaderId,
    commitIndex: 5,
    appliedIndex: 5,
    lastLogIndex: 5,
    lastLogTerm: term,
    members: [],
  };
}

function node(id: string, nodeInfo: NodeInfo | null, reachable: boolean | null = true, error: string | null = null): NodeObservation {
  return { id, clientAddr: member(id).clientAddr, info: nodeInfo, reachable, error };
}

function observation(nodes: NodeObservation[], members = nodes.map((n) => member(n.id))): ClusterObservation {
  return { members, membersSource: nodes[0]?.id ?? null, nodes: new Map(nodes.map((n) => [n.id, n])) };
}

const STEADY = observation([
  node("node-1", info("node-1", "leader", 2, "node-1")),
  node("node-2", info("node-2", "follower", 2, "node-1")),
  node("node-3", info("node-3", "follower", 2, "node-1")),
]);

function messages(previous: ClusterObservation | null, next: ClusterObservation): string[] {
  return synthesizeEvents(previous, next, TIME).map((event) => `${event.type}: ${event.message}`);
}

describe("observedLeader", () => {
  test("prefers the node claiming leadership", () => {
    expect(observedLeader(STEADY)).toEqual({ id: "node-1", term: 2 });
  });

  test("uses the highest term", () => {
    const split = observation([
      node("node-1", info("node-1", "leader", 2, "node-1")),
      node("node-2", info("node-2", "follower", 3, "node-3")),
    ]);
    expect(observedLeader(split)).toEqual({ id: "node-3", term: 3 });
  });

  test("ignores unreachable nodes", () => {
    const stale = observation([
      node("node-1", info("node-1", "leader", 2, "node-1"), false),
      node("node-2", info("node-2", "candidate", 3, null)),
    ]);
    expect(observedLeader(stale)).toBeNull();
  });
});

describe("synthesizeEvents", () => {
  test("steady cluster has no events", () => {
    expect(messages(STEADY, STEADY)).toEqual([]);
  });

  test("first round has no state events", () => {
    expect(messages(null, STEADY)).toEqual([]);
  });

  test("leader change after failure", () => {
    const next = observation([
      node("node-1", info("node-1", "leader", 2, "node-1"), false, "connection refused"),
      node("node-2", info("node-2", "leader", 3, "node-2")),
      node("node-3", info("node-3", "follower", 3, "node-2")),
    ]);
    expect(messages(STEADY, next)).toEqual([
      "peer_unreachable: node-1 at 127.0.0.1:47101 is unreachable: connection refused",
      "role_changed: node-2 is now leader in term 3, was follower in term 2",
      "leader_changed: node-2 is the leader in term 3 (was node-1 in term 2)",
    ]);
  });

  test("re-election of same leader", () => {
    const next = observation([
      node("node-1", info("node-1", "leader", 4, "node-1")),
      node("node-2", info("node-2", "follower", 4, "node-1")),
      node("node-3", info("node-3", "follower", 4, "node-1")),
    ]);
    expect(messages(STEADY, next)).toEqual(["leader_changed: node-1 is the leader in term 4 again (was term 2)"]);
  });

  test("election without a leader yet", () => {
    const next = observation([
      node("node-1", info("node-1", "leader", 2, "node-1"), false, "connection refused"),
      node("node-2", info("node-2", "candidate", 3, null)),
      node("node-3", info("node-3", "follower", 3, null)),
    ]);
    const events = synthesizeEvents(STEADY, next, TIME);
    expect(events.map((event) => event.type)).toEqual(["peer_unreachable", "role_changed", "leader_changed"]);
    expect(events[2].message).toBe("no leader is known any more (was node-1 in term 2), so an election may be running");
  });

  test("member reachable again", () => {
    const down = observation([
      node("node-1", info("node-1", "leader", 2, "node-1")),
      node("node-2", info("node-2", "follower", 2, "node-1"), false, "connection refused"),
    ]);
    const up = observation([node("node-1", info("node-1", "leader", 2, "node-1")), node("node-2", info("node-2", "follower", 2, "node-1"))]);
    expect(messages(down, up)).toEqual(["peer_reachable: node-2 at 127.0.0.1:47102 is reachable again"]);
  });

  test("unreachable is reported once", () => {
    const down = observation([
      node("node-1", info("node-1", "leader", 2, "node-1")),
      node("node-2", info("node-2", "follower", 2, "node-1"), false, "connection refused"),
    ]);
    expect(messages(down, down)).toEqual([]);
  });

  test("restart is detected by process id", () => {
    const next = observation([
      node("node-1", info("node-1", "leader", 2, "node-1")),
      node("node-2", info("node-2", "follower", 2, "node-1", 200)),
      node("node-3", info("node-3", "follower", 2, "node-1")),
    ]);
    expect(messages(STEADY, next)).toEqual(["node_started: node-2 restarted (process 100 is now 200)"]);
  });

  test("join, promotion and removal", () => {
    const before = observation([...STEADY.nodes.values()], [member("node-1"), member("node-2"), member("node-3"), member("node-4", false)]);
    const after = observation([...STEADY.nodes.values()], [member("node-1"), member("node-2"), member("node-4", true), member("node-5", false)]);
    expect(messages(before, after)).toEqual([
      "membership_changed: node-4 is now a voter",
      "membership_changed: node-5 joined as a non-voter (client 127.0.0.1:47105, raft 127.0.0.1:47115)",
      "membership_changed: node-3 left the cluster",
    ]);
  });

  test("unknown membership is not a join", () => {
    const unknown = observation([...STEADY.nodes.values()], []);
    expect(messages(unknown, STEADY)).toEqual([]);
  });

  test("events carry source and reporter", () => {
    const next = observation([
      node("node-1", info("node-1", "follower", 3, "node-2")),
      node("node-2", info("node-2", "leader", 3, "node-2")),
      node("node-3", info("node-3", "follower", 3, "node-2")),
    ]);
    const events = synthesizeEvents(STEADY, next, TIME);
    const roleChange = events.find((event) => event.type === "role_changed" && event.node === "node-1");
    expect(roleChange?.source).toBe("poll");
    expect(roleChange?.term).toBe(3);
    expect(roleChange?.time).toEqual(TIME);
    const leaderChange = events.find((event) => event.type === "leader_changed");
    expect(leaderChange?.node).toBe("node-2");
  });
});
