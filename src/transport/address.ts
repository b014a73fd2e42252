// Parsing of "host:port" listener addresses.

export interface HostPort {
  host: string;
  port: number;
}

/**
 * Splits "host:port" or "[ipv6]:port" into its parts. Throws on a missing
 * host or a port outside 0..65535. Port 0 binds a free port that the OS picks.
 */
export function parseHostPort(address: string): HostPort {
  const colon = address.lastIndexOf(":");
  if (colon <= 0) throw new Error(`invalid address "${address}": expected host:port`);

  let host = address.slice(0, colon);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  const portText = address.slice(colon + 1);
  const port = Number(portText);
  if (host === "" || !/^\d+$/.test(portText) || port > 65535) {
    throw new Error(`invalid address "${address}": expected host:port with a port from 0 to 65535`);
  }
  return { host, port };
}

/**
 * Builds the message for a failed listen on `addr`. Bun's own message names
 * only the host ("Failed to listen at 127.0.0.1"), so the cause comes from the error code.
 */
export function listenFailure(addr: string, err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === "EADDRINUSE") return `cannot listen on ${addr}: the address is already in use (is another node or program on that port?)`;
  if (code === "EACCES") return `cannot listen on ${addr}: permission denied (ports below 1024 need privileges)`;
  if (code === "EADDRNOTAVAIL") return `cannot listen on ${addr}: no local interface has that address`;
  const reason = err instanceof Error ? err.message : String(err);
  return `cannot listen on ${addr}: ${reason}${typeof code === "string" ? ` (${code})` : ""}`;
}

/**
 * Throws the listenFailure message when `addr` cannot be listened on right
 * now. A node checks its addresses before it writes any state, so that a port
 * in use does not leave a bootstrapped cluster behind. Port 0 always passes.
 */
export function checkListenable(addr: string): void {
  const { host, port } = parseHostPort(addr);
  if (port === 0) return;
  try {
    Bun.listen({ hostname: host, port, socket: { data() {} } }).stop(true);
  } catch (err) {
    throw new Error(listenFailure(addr, err));
  }
}
