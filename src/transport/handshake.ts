// Handshake frames of the peer protocol. The dialer sends `hello` as its first
// frame. The acceptor replies `welcome` and then only reads, or replies
// `reject` and closes the connection. An acceptor that stops on purpose
// writes `goodbye` on each accepted connection before it closes it.

/** Version 2 frames log entries as arrays instead of maps. */
export const PROTOCOL_VERSION = 2;

export interface Hello {
  type: "hello";
  version: number;
  clusterId: string;
  /** Node id of the dialer. */
  from: string;
  /** Node id the dialer expects to reach. */
  to: string;
}

export interface Welcome {
  type: "welcome";
}

/**
 * The acceptor's last frame when it shuts down on purpose, so that the dialer
 * logs the closed connection as expected. Builds before this frame existed
 * close the connection as "unexpected frame after welcome", which they would
 * have logged as a lost connection anyway.
 */
export interface Goodbye {
  type: "goodbye";
}

export interface Reject {
  type: "reject";
  reason: string;
  /** Set when the dialer was removed from the cluster, so that it can tell its clients. */
  removed?: boolean;
}

/** Reason sent while the acceptor has not learned its cluster id yet. */
export const NOT_READY_REASON = "not ready";

/**
 * Returns the log level of a rejected handshake. A node that has not joined
 * a cluster yet rejects every peer for a moment during each join, which is
 * expected, so only other reasons are warnings.
 */
export function rejectionLogLevel(reason: string): "info" | "warn" {
  return reason === NOT_READY_REASON ? "info" : "warn";
}

function isFields(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

function ownString(object: Record<string, unknown>, name: string): string | undefined {
  const value = Object.hasOwn(object, name) ? object[name] : undefined;
  return typeof value === "string" ? value : undefined;
}

/** Returns the hello frame, or an error string when `value` is not one. */
export function parseHello(value: unknown): Hello | string {
  if (!isFields(value) || value.type !== "hello") return "first frame is not a hello";

  const version = Object.hasOwn(value, "version") ? value.version : undefined;
  if (typeof version !== "number" || !Number.isSafeInteger(version)) return "hello has no integer version";

  const clusterId = ownString(value, "clusterId");
  const from = ownString(value, "from");
  const to = ownString(value, "to");
  if (clusterId === undefined || from === undefined || from === "" || to === undefined) {
    return "hello is missing clusterId, from or to";
  }
  return { type: "hello", version, clusterId, from, to };
}

/**
 * Decides whether an acceptor with `nodeId` in cluster `clusterId` takes the
 * connection. Returns null to accept, or else the reject reason.
 */
export function checkHello(hello: Hello, nodeId: string, clusterId: string | null): string | null {
  if (hello.version !== PROTOCOL_VERSION) {
    return `unsupported protocol version: expected ${PROTOCOL_VERSION}, got ${hello.version}`;
  }
  if (clusterId === null) return NOT_READY_REASON;
  if (hello.clusterId !== clusterId) {
    return `cluster id mismatch: expected ${clusterId}, got ${hello.clusterId}`;
  }
  if (hello.to !== nodeId) return `node id mismatch: this node is ${nodeId}, hello is for ${hello.to}`;
  return null;
}

/** Returns whether a frame after the welcome is the acceptor's goodbye. */
export function isGoodbye(value: unknown): boolean {
  return isFields(value) && value.type === "goodbye";
}

/** Returns the acceptor's reply, or an error string when `value` is neither welcome nor reject. */
export function parseReply(value: unknown): Welcome | Reject | string {
  if (isFields(value) && value.type === "welcome") return { type: "welcome" };
  if (isFields(value) && value.type === "reject") {
    const reason = ownString(value, "reason");
    const reject: Reject = { type: "reject", reason: reason ?? "no reason given" };
    if (Object.hasOwn(value, "removed") && value.removed === true) reject.removed = true;
    return reject;
  }
  return "reply to hello is neither welcome nor reject";
}
