/**
 * Stable error codes of the node API. The server maps each code to a RESP
 * error prefix in one table; clients can switch on the prefix.
 */
export type ErrorCode =
  /** This node cannot serve the request; the message names the leader when known. */
  | "NOTLEADER"
  /** No leader is known (election in progress or no quorum); retry later. */
  | "NOLEADER"
  /** The request did not finish in time. For a write, the outcome is unknown: it may still commit. */
  | "TIMEOUT"
  /** The write was definitely not applied (its log slot went to another leader's entry). */
  | "NOTAPPLIED"
  /** A key, value or command exceeds a configured limit. */
  | "TOOLARGE"
  /** The request conflicts with one in progress, such as a membership change. */
  | "BUSY"
  /** The request is well-formed but not allowed, such as removing an unknown member. */
  | "INVALID"
  /** This node was removed from the cluster and serves nothing that needs the cluster. */
  | "REMOVED"
  /** The node is shutting down. */
  | "SHUTDOWN"
  /** The node's key-value state is being restored from a peer's snapshot; other members can serve. */
  | "LOADING";

export class NodeError extends Error {
  override name = "NodeError";
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}
