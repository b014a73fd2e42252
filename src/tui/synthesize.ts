// Infers cluster events from two successive polling rounds, for nodes that do
// not publish events and for the gap while the console changes nodes.

import type { ClusterEvent } from "./events.ts";
import type { MemberInfo, NodeInfo } from "./info.ts";

/** Observation of one member in one polling round. */
export interface NodeObservation {
  id: string;
  clientAddr: string;
  /** Latest INFO reply of the member, kept from earlier rounds while it is unreachable. */
  info: NodeInfo | null;
  /** Whether the member replied to INFO in this round, or null before its first poll. */
  reachable: boolean | null;
  /** Reason the last poll failed, or null after a reply. */
  error: string | null;
}

/** Observation of the whole cluster in one polling round. */
export interface ClusterObservation {
  /** Membership as the best-informed member reports it. */
  members: MemberInfo[];
  /** Id of the member whose INFO listed `members`, or null before any member replied. */
  membersSource: string | null;
  nodes: Map<string, NodeObservation>;
}

export interface LeaderView {
  id: string;
  term: number;
}

/**
 * Returns the leader that the members replying this round report for the
 * highest term among them, preferring a member whose own role is leader.
 */
export function observedLeader(observation: ClusterObservation): LeaderView | null {
  let maxTerm = -1;
  for (const node of observation.nodes.values()) {
    if (node.reachable === true && node.info !== null) maxTerm = Math.max(maxTerm, node.info.term);
  }
  if (maxTerm < 0) return null;

  let reported: string | null = null;
  for (const node of observation.nodes.values()) {
    const info = node.info;
    if (node.reachable !== true || info === null || info.term !== maxTerm) continue;
    if (info.role === "leader") return { id: info.nodeId, term: maxTerm };
    reported ??= info.leaderId;
  }
  return reported === null ? null : { id: reported, term: maxTerm };
}

function pollEvent(time: Date, node: string, term: number | null, type: ClusterEvent["type"], message: string): ClusterEvent {
  return { time, node, term, type, message, source: "poll" };
}

function describeVoter(member: MemberInfo): string {
  return member.voter ? "a voter" : "a non-voter";
}

function membershipEvents(previous: MemberInfo[], next: MemberInfo[], time: Date, reporter: string, term: number | null): ClusterEvent[] {
  const events: ClusterEvent[] = [];
  const before = new Map(previous.map((member) => [member.id, member]));
  const after = new Map(next.map((member) => [member.id, member]));
  const emit = (message: string) => events.push(pollEvent(time, reporter, term, "membership_changed", message));

  for (const member of next) {
    const old = before.get(member.id);
    if (old === undefined) {
      emit(`${member.id} joined as ${describeVoter(member)} (client ${member.clientAddr}, raft ${member.raftAddr})`);
      continue;
    }
    if (old.voter !== member.voter) emit(`${member.id} is now ${describeVoter(member)}`);
    if (old.clientAddr !== member.clientAddr || old.raftAddr !== member.raftAddr) {
      emit(`${member.id} moved to client ${member.clientAddr}, raft ${member.raftAddr}`);
    }
  }
  for (const member of previous) {
    if (!after.has(member.id)) emit(`${member.id} left the cluster`);
  }
  return events;
}

/** Role and restart events of one member, comparing its last known INFO with this round's. */
function nodeEvents(before: NodeInfo, after: NodeInfo, time: Date): ClusterEvent[] {
  const events: ClusterEvent[] = [];
  const id = after.nodeId;
  if (before.processId !== null && after.processId !== null && before.processId !== after.processId) {
    events.push(pollEvent(time, id, after.term, "node_started", `${id} restarted (process ${before.processId} is now ${after.processId})`));
  }
  if (before.role !== after.role) {
    // Polls see states, not transitions: a leader that restarted was never
    // leader in its new term, so a term change names both terms.
    const change =
      before.term === after.term
        ? `${id} changed from ${before.role} to ${after.role} in term ${after.term}`
        : `${id} is now ${after.role} in term ${after.term}, was ${before.role} in term ${before.term}`;
    events.push(pollEvent(time, id, after.term, "role_changed", change));
  }
  return events;
}

function reachabilityEvent(before: NodeObservation | undefined, after: NodeObservation, time: Date): ClusterEvent | null {
  const was = before?.reachable ?? null;
  if (after.reachable === false && was !== false) {
    const reason = after.error === null ? "" : `: ${after.error}`;
    return { time, node: "console", term: null, type: "peer_unreachable", message: `${after.id} at ${after.clientAddr} is unreachable${reason}`, source: "console" };
  }
  if (after.reachable === true && was === false) {
    return { time, node: "console", term: null, type: "peer_reachable", message: `${after.id} at ${after.clientAddr} is reachable again`, source: "console" };
  }
  return null;
}

function leaderEvent(before: LeaderView | null, after: LeaderView | null, time: Date): ClusterEvent | null {
  if (after === null) {
    if (before === null) return null;
    return pollEvent(time, before.id, before.term, "leader_changed", `no leader is known any more (was ${before.id} in term ${before.term}), so an election may be running`);
  }
  if (before !== null && before.id === after.id && before.term === after.term) return null;

  let message = `${after.id} is the leader in term ${after.term}`;
  if (before !== null && before.id !== after.id) message += ` (was ${before.id} in term ${before.term})`;
  if (before !== null && before.id === after.id) message += ` again (was term ${before.term})`;
  return pollEvent(time, after.id, after.term, "leader_changed", message);
}

/**
 * Returns the events that explain the change from `previous` to `next`, in
 * this order: reachability, restarts and roles, leadership, then membership.
 * With no previous round it returns only reachability events, because there is
 * no earlier state to compare with.
 */
export function synthesizeEvents(previous: ClusterObservation | null, next: ClusterObservation, time: Date): ClusterEvent[] {
  const events: ClusterEvent[] = [];

  for (const node of next.nodes.values()) {
    const before = previous?.nodes.get(node.id);
    const reachability = reachabilityEvent(before, node, time);
    if (reachability !== null) events.push(reachability);
    if (before?.info && node.info && node.reachable === true) events.push(...nodeEvents(before.info, node.info, time));
  }
  if (previous === null) return events;

  const leader = leaderEvent(observedLeader(previous), observedLeader(next), time);
  if (leader !== null) events.push(leader);

  // A cluster always has a member, so an empty list means membership was not known yet.
  if (previous.members.length === 0) return events;
  const source = next.membersSource === null ? undefined : next.nodes.get(next.membersSource);
  const term = source?.info?.term ?? null;
  events.push(...membershipEvents(previous.members, next.members, time, next.membersSource ?? "console", term));
  return events;
}
