// Forwarding of writes and membership commands from a follower to the leader.
// A forwarded command travels as `FORWARDED <command...>` on the leader's
// client port. The receiver runs it only if it is the leader itself, so a
// command never bounces between two followers.

import { RespClient, RespClientError } from "../client/client.ts";
import type { Logger } from "../log.ts";
import { NodeError } from "../node/errors.ts";
import type { EchoNode } from "../node/node.ts";
import type { RespValue } from "../protocol/resp.ts";

/** Error prefixes on which a forwarded command is retried once a leader is known again. */
const RETRY_PREFIXES = ["NOTLEADER", "NOLEADER", "SHUTDOWN"];

export class LeaderForwarder {
  readonly #node: EchoNode;
  readonly #logger: Logger;
  /** Time a forwarded command may take in all, retries included. */
  readonly timeoutMs: number;
  /** Pause before asking again after a leadership error. */
  readonly retryDelayMs: number;
  #clients = new Map<string, Promise<RespClient>>();

  constructor(node: EchoNode, logger: Logger, timeoutMs: number, retryDelayMs: number) {
    this.#node = node;
    this.#logger = logger;
    this.timeoutMs = timeoutMs;
    this.retryDelayMs = retryDelayMs;
  }

  /**
   * Sends `args` to the current leader and returns its reply, or null when
   * this node became the leader meanwhile and should run the command itself.
   * A timeout leaves the outcome of a write unknown, and the error states that.
   */
  async forward(args: Buffer[]): Promise<RespValue | null> {
    const deadline = Date.now() + this.timeoutMs;
    let lastError = "no leader is known";
    while (Date.now() < deadline) {
      const leader = await this.#node.waitForLeader(deadline - Date.now());
      if (this.#node.removed) {
        throw new NodeError("REMOVED", `node ${this.#node.id} was removed from the cluster, so the command was not sent; send it to a current member`);
      }
      if (leader === null) break;
      if (leader.id === this.#node.id) return null;

      let reply: RespValue;
      try {
        const client = await this.#client(leader.clientAddr);
        reply = await client.command(["FORWARDED", ...args], { timeoutMs: Math.max(1, deadline - Date.now()) });
      } catch (err) {
        this.#drop(leader.clientAddr);
        const message = err instanceof Error ? err.message : String(err);
        const code = (err as { code?: string }).code;
        if (code === "TIMEOUT") {
          throw new NodeError("TIMEOUT", `the leader ${leader.id} did not respond in time; the outcome is unknown`);
        }
        // Sending again is safe only when the command never left this node.
        // Once sent, the leader may have committed it before the connection
        // broke, and a second copy could overwrite a later write by another client.
        if (code !== "CONNECT" && code !== "NOTCONNECTED") {
          const reason = err instanceof RespClientError && err.closeReason !== null ? err.closeReason : message;
          throw new NodeError("TIMEOUT", `the connection to leader ${leader.id} at ${leader.clientAddr} closed before its reply (${reason}); the outcome is unknown`);
        }
        lastError = `leader ${leader.id} at ${leader.clientAddr} is unreachable: ${message}`;
        await Bun.sleep(this.retryDelayMs);
        continue;
      }

      if (reply.type === "error" && RETRY_PREFIXES.some((prefix) => reply.message.startsWith(prefix))) {
        lastError = reply.message;
        await Bun.sleep(this.retryDelayMs);
        continue;
      }
      return reply;
    }
    throw new NodeError("NOLEADER", `could not reach a leader before the timeout (${lastError}); retry shortly`);
  }

  #client(addr: string): Promise<RespClient> {
    let client = this.#clients.get(addr);
    if (!client) {
      client = RespClient.connect(addr, { timeoutMs: this.timeoutMs });
      this.#clients.set(addr, client);
      client.catch(() => this.#clients.delete(addr));
    }
    return client;
  }

  #drop(addr: string): void {
    const client = this.#clients.get(addr);
    this.#clients.delete(addr);
    client?.then((c) => c.close()).catch(() => {});
  }

  close(): void {
    for (const addr of [...this.#clients.keys()]) this.#drop(addr);
    this.#logger.debug("forwarder closed");
  }
}
