// Rules for member ids and addresses, shared by the `serve` flags and JOIN.

import { parseHostPort } from "../transport/address.ts";

/** Ids appear in log lines, INFO fields and space-separated MEMBERS lines, so they are kept to a safe set. */
export const NODE_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
export const NODE_ID_RULE = "use 1 to 64 letters, digits, '.', '_' or '-'";

/** Returns why `address` cannot be dialled as a member's address, or null when it can. */
export function memberAddressProblem(address: string): string | null {
  try {
    const { port } = parseHostPort(address);
    return port === 0 ? `invalid address "${address}": a member's port cannot be 0` : null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}
