// Cluster events as the console shows them, and the JSON payload of the
// messages a node publishes on the `cluster-events` channel.

/** Channel that `SUBSCRIBE` joins to receive a node's cluster events. */
export const CLUSTER_EVENTS_CHANNEL = "cluster-events";

/** Event types a node publishes. The console infers the same types from INFO when it cannot subscribe. */
export const CLUSTER_EVENT_TYPES = [
  "role_changed",
  "leader_changed",
  "membership_changed",
  "peer_unreachable",
  "peer_reachable",
  "node_started",
  "node_stopping",
  "snapshot_taken",
  "snapshot_installed",
] as const;

export type ClusterEventType = (typeof CLUSTER_EVENT_TYPES)[number];

/** `connection`: the console's own connection to the cluster changed. */
export type ConsoleEventType = ClusterEventType | "connection";

/**
 * Origin of an event.
 * push: the connected node published it on the cluster-events channel.
 * poll: the console inferred it by comparing successive INFO replies, so states
 *   that lasted less than one poll interval are missed.
 * console: the console observed it itself, such as a member not replying to INFO.
 */
export type EventSource = "push" | "poll" | "console";

export interface ClusterEvent {
  time: Date;
  /** Id of the node that reported the event, or "console" for the console's own observations. */
  node: string;
  /** Raft term of the reporting node, when known. */
  term: number | null;
  /** A ConsoleEventType, or a type from a newer server that the console shows as is. */
  type: string;
  message: string;
  source: EventSource;
}

/** Raised for a cluster-events message that is not the expected JSON object. */
export class EventFormatError extends Error {
  override name = "EventFormatError";
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Parses the JSON payload of a cluster-events message, such as
 * `{"time":"2025-01-01T10:00:00.000Z","node":"node-1","term":3,"type":"leader_changed","message":"..."}`.
 * Fields beyond these are ignored. A missing or unparsable time becomes `receivedAt`.
 */
export function parseEventPayload(payload: string, receivedAt: Date): ClusterEvent {
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload);
  } catch (err) {
    throw new EventFormatError(`cluster event is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!isRecord(parsed)) throw new EventFormatError("cluster event is not a JSON object");

  const { time, node, term, type, message } = parsed;
  if (typeof type !== "string" || type === "") throw new EventFormatError("cluster event has no type");
  if (typeof node !== "string" || node === "") throw new EventFormatError(`cluster event ${type} has no node`);

  const parsedTime = typeof time === "string" ? new Date(time) : null;
  return {
    time: parsedTime !== null && !Number.isNaN(parsedTime.getTime()) ? parsedTime : receivedAt,
    node,
    term: typeof term === "number" && Number.isSafeInteger(term) ? term : null,
    type,
    message: typeof message === "string" && message !== "" ? message : type.replaceAll("_", " "),
    source: "push",
  };
}
