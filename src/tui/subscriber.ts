// A connection subscribed to a node's cluster-events channel.
//
// RespClient matches every reply to a command it sent and closes the
// connection on a reply without a pending command, so it cannot carry pushed
// messages.
// This connection sends one SUBSCRIBE and then reads messages with the
// Redis pub/sub framing: `*3 $7 message $14 cluster-events $N <json>`.

import type { Socket } from "bun";
import { parseHostPort } from "../client/client.ts";
import { encodeCommand, RespReplyParser, type RespValue } from "../protocol/resp.ts";
import { CLUSTER_EVENTS_CHANNEL, EventFormatError, parseEventPayload, type ClusterEvent } from "./events.ts";

export interface SubscriptionHandlers {
  onEvent(event: ClusterEvent): void;
  /** Called for a message that is not a well-formed cluster event. The subscription stays open. */
  onInvalidMessage(problem: string): void;
  /** Called once when the connection closes, unless `close()` closed it. */
  onClose(reason: string): void;
}

export type SubscribeResult =
  | { kind: "subscribed"; subscription: EventSubscription }
  /** The node replied to SUBSCRIBE with an error, so it does not publish events. */
  | { kind: "unsupported"; message: string };

/** Raised when the subscription could not be set up: connect failure, timeout or an unexpected reply. */
export class SubscribeError extends Error {
  override name = "SubscribeError";
}

function bulkText(value: RespValue | undefined): string | null {
  return value?.type === "bulk" && value.value !== null ? value.value.toString("utf8") : null;
}

function describeSocketError(err: unknown): string {
  const code = typeof err === "object" && err !== null && "code" in err ? String(err.code) : "";
  if (code === "ECONNREFUSED") return "connection refused";
  if (code === "ECONNRESET") return "connection reset by the server";
  return err instanceof Error ? err.message : String(err);
}

/** Returns whether `reply` confirms the subscription: `*3 $9 subscribe $14 cluster-events :1`. */
function isConfirmation(reply: RespValue): boolean {
  if (reply.type !== "array" || reply.value === null || reply.value.length !== 3) return false;
  const [kind, channel, count] = reply.value;
  return bulkText(kind)?.toLowerCase() === "subscribe" && bulkText(channel) === CLUSTER_EVENTS_CHANNEL && count.type === "integer";
}

export class EventSubscription {
  readonly addr: string;
  readonly #handlers: SubscriptionHandlers;
  readonly #parser = new RespReplyParser();
  #socket: Socket<undefined> | null = null;
  #closed = false;
  /** Settles the pending `open` call with the first reply, or null once the subscription is confirmed. */
  #onFirstReply: ((reply: RespValue | Error) => void) | null = null;

  private constructor(addr: string, handlers: SubscriptionHandlers) {
    this.addr = addr;
    this.#handlers = handlers;
  }

  /**
   * Connects to `addr` and subscribes to the cluster-events channel. Resolves
   * with "unsupported" when the node rejects SUBSCRIBE, and rejects with
   * SubscribeError when there is no confirmation within `timeoutMs`.
   */
  static async open(addr: string, handlers: SubscriptionHandlers, timeoutMs: number): Promise<SubscribeResult> {
    const { host, port } = parseHostPort(addr);
    const subscription = new EventSubscription(addr, handlers);
    const firstReply = new Promise<RespValue | Error>((resolve) => {
      subscription.#onFirstReply = resolve;
    });

    let timer: ReturnType<typeof setTimeout> | null = null;
    const timedOut = new Promise<Error>((resolve) => {
      timer = setTimeout(() => resolve(new SubscribeError(`SUBSCRIBE to ${addr} timed out after ${timeoutMs} ms`)), timeoutMs);
    });

    try {
      const connecting = subscription.#connect(host, port);
      const socket = await Promise.race([connecting, timedOut]);
      if (socket instanceof Error) {
        // A connection that opens after the deadline is closed at once.
        connecting.then((late) => late.end(), () => {});
        throw socket;
      }
      subscription.#socket = socket;
      socket.write(encodeCommand(["SUBSCRIBE", CLUSTER_EVENTS_CHANNEL]));

      const reply = await Promise.race([firstReply, timedOut]);
      if (reply instanceof Error) throw reply instanceof SubscribeError ? reply : new SubscribeError(reply.message);
      if (reply.type === "error") {
        subscription.close();
        return { kind: "unsupported", message: reply.message };
      }
      if (!isConfirmation(reply)) throw new SubscribeError(`${addr} replied to SUBSCRIBE with an unexpected ${reply.type} reply`);
      return { kind: "subscribed", subscription };
    } catch (err) {
      subscription.close();
      if (err instanceof SubscribeError) throw err;
      throw new SubscribeError(`could not subscribe to ${addr}: ${describeSocketError(err)}`, { cause: err });
    } finally {
      if (timer !== null) clearTimeout(timer);
    }
  }

  /** Closes the connection without calling `onClose`. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#settleFirstReply(new SubscribeError("the subscription was closed"));
    this.#socket?.end();
  }

  #connect(host: string, port: number): Promise<Socket<undefined>> {
    return Bun.connect({
      hostname: host,
      port,
      socket: {
        data: (_socket, data) => this.#onData(data),
        close: (_socket, err) => this.#onSocketClosed(err === undefined ? "closed by the server" : describeSocketError(err)),
        error: (_socket, err) => this.#onSocketClosed(describeSocketError(err)),
        // Reported through the rejected promise that `open` awaits.
        connectError: () => {},
      },
    });
  }

  #onSocketClosed(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#onFirstReply !== null) {
      this.#settleFirstReply(new SubscribeError(`connection to ${this.addr} closed before SUBSCRIBE was confirmed: ${reason}`));
      return;
    }
    this.#handlers.onClose(reason);
  }

  #settleFirstReply(reply: RespValue | Error): void {
    const settle = this.#onFirstReply;
    this.#onFirstReply = null;
    settle?.(reply);
  }

  #onData(data: Uint8Array): void {
    this.#parser.push(data);
    while (!this.#closed) {
      const result = this.#parser.next();
      switch (result.kind) {
        case "incomplete":
          return;
        case "error":
          this.#onSocketClosed(`invalid reply from the server: ${result.message}`);
          this.#socket?.terminate();
          return;
        case "reply":
          if (this.#onFirstReply !== null) this.#settleFirstReply(result.value);
          else this.#onMessage(result.value);
          break;
        default: {
          const unexpected: never = result;
          throw new Error(`unexpected parse result ${JSON.stringify(unexpected)}`);
        }
      }
    }
  }

  #onMessage(reply: RespValue): void {
    if (reply.type !== "array" || reply.value === null) {
      this.#handlers.onInvalidMessage(`expected a pub/sub message array, got a ${reply.type} reply`);
      return;
    }
    const [kind, channel, payload] = reply.value;
    // Later subscribe confirmations and messages of other channels carry no cluster event.
    if (bulkText(kind) !== "message" || bulkText(channel) !== CLUSTER_EVENTS_CHANNEL) return;

    const text = bulkText(payload);
    if (text === null) {
      this.#handlers.onInvalidMessage("cluster-events message has no payload");
      return;
    }
    try {
      this.#handlers.onEvent(parseEventPayload(text, new Date()));
    } catch (err) {
      if (!(err instanceof EventFormatError)) throw err;
      this.#handlers.onInvalidMessage(err.message);
    }
  }
}
