// Mapping from node error codes to RESP error replies, in one place, and the
// re-encoding of replies relayed from the leader.

import { NodeError, type ErrorCode } from "../node/errors.ts";
import { array, bulk, error, integer, nullReply, simpleString, type RespValue, type RespVersion } from "../protocol/resp.ts";

/** RESP error prefix for each node error code; clients can switch on the first word. */
const ERROR_PREFIXES: Record<ErrorCode, string> = {
  NOTLEADER: "NOTLEADER",
  NOLEADER: "NOLEADER",
  TIMEOUT: "TIMEOUT",
  NOTAPPLIED: "NOTAPPLIED",
  TOOLARGE: "TOOLARGE",
  BUSY: "BUSY",
  INVALID: "ERR",
  REMOVED: "REMOVED",
  SHUTDOWN: "SHUTDOWN",
  LOADING: "LOADING",
};

export function errorReply(err: unknown): Buffer {
  if (err instanceof NodeError) return error(`${ERROR_PREFIXES[err.code]} ${err.message}`);
  const message = err instanceof Error ? err.message : String(err);
  return error(`ERR internal error: ${message}`);
}

export const OK = simpleString("OK");

/**
 * Encodes a reply value received from another node so it can be relayed
 * unchanged, with nulls in the client's protocol `version`.
 */
export function encodeValue(value: RespValue, version: RespVersion): Buffer {
  switch (value.type) {
    case "simple":
      return simpleString(value.value);
    case "error":
      return error(value.message);
    case "integer":
      return integer(value.value);
    case "bulk":
      return value.value === null ? nullReply(version) : bulk(value.value);
    case "array":
      if (value.value === null) return version === 3 ? nullReply(version) : array(null);
      return array(value.value.map((item) => encodeValue(item, version)));
    default: {
      const unreachable: never = value;
      throw new Error(`unknown RESP value ${JSON.stringify(unreachable)}`);
    }
  }
}
