// A scripted RESP server on 127.0.0.1 that replaces an echokv node in the
// console's tests: INFO returns text the test builds, SUBSCRIBE is
// confirmed, rejected or left without a reply, and events are published on demand.

import type { Socket, TCPSocketListener } from "bun";
import { array, bulk, DEFAULT_RESP_LIMITS, error, integer, RespParser, simpleString } from "../../src/protocol/resp.ts";

export type SubscribeBehaviour = "confirm" | "reject" | "ignore";

interface Connection {
  parser: RespParser;
  subscribed: boolean;
}

export interface FakeMember {
  id: string;
  clientAddr: string;
  voter?: boolean;
  lag?: number;
}

export interface FakeInfo {
  nodeId: string;
  clientAddr: string;
  role: string;
  term: number;
  leaderId: string | null;
  lastLogIndex?: number;
  processId?: number;
  members: FakeMember[];
}

/** Formats an INFO reply with the fields and `memberN` lines that `echokv serve` sends. */
export function infoText(info: FakeInfo): string {
  const index = info.lastLogIndex ?? 5;
  const lines = [
    "# Server",
    `node_id:${info.nodeId}`,
    `client_addr:${info.clientAddr}`,
    `raft_addr:${info.clientAddr.replace(/:\d+$/, ":1")}`,
    `process_id:${info.processId ?? 1000}`,
    "",
    "# Raft",
    `role:${info.role}`,
    `term:${info.term}`,
    `leader_id:${info.leaderId ?? ""}`,
    `commit_index:${index}`,
    `applied_index:${index}`,
    `last_log_index:${index}`,
    `last_log_term:${info.term}`,
    "",
    "# Members",
    `members:${info.members.length}`,
    ...info.members.map((member, i) => {
      const fields = [
        `id=${member.id}`,
        `raft_addr=${member.clientAddr.replace(/:\d+$/, ":1")}`,
        `client_addr=${member.clientAddr}`,
        `voter=${member.voter === false ? "no" : "yes"}`,
        `leader=${member.id === info.leaderId ? "yes" : "no"}`,
      ];
      if (member.lag !== undefined) fields.push(`match_index=${index - member.lag}`, `lag=${member.lag}`);
      return `member${i}:${fields.join(",")}`;
    }),
  ];
  return lines.join("\r\n");
}

export class FakeNode {
  readonly #listener: TCPSocketListener<Connection>;
  readonly #sockets = new Set<Socket<Connection>>();
  /** Builds the INFO reply. Tests replace it to change the node's state. */
  info: () => string = () => "";
  subscribe: SubscribeBehaviour = "confirm";
  /** Set to send no reply to INFO, as a stopped (SIGSTOP) node would. */
  hung = false;
  /** Every command received, as strings, oldest first. */
  readonly commands: string[][] = [];

  constructor() {
    this.#listener = Bun.listen<Connection>({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open: (socket) => {
          socket.data = { parser: new RespParser(DEFAULT_RESP_LIMITS), subscribed: false };
          this.#sockets.add(socket);
        },
        data: (socket, data) => this.#onData(socket, data),
        close: (socket) => {
          this.#sockets.delete(socket);
        },
      },
    });
  }

  get addr(): string {
    return `127.0.0.1:${this.#listener.port}`;
  }

  /** Number of connections with a confirmed subscription. */
  get subscribers(): number {
    return [...this.#sockets].filter((socket) => socket.data.subscribed).length;
  }

  /** Sends a cluster-events message with `payload` to every subscribed connection. */
  publish(payload: string): void {
    for (const socket of this.#sockets) {
      if (socket.data.subscribed) socket.write(array([bulk("message"), bulk("cluster-events"), bulk(payload)]));
    }
  }

  /** Sends raw bytes to every subscribed connection. */
  sendToSubscribers(data: Buffer): void {
    for (const socket of this.#sockets) if (socket.data.subscribed) socket.write(data);
  }

  /** Stops listening and closes every connection, as a killed node would. */
  stop(): void {
    this.#listener.stop(true);
    for (const socket of this.#sockets) socket.terminate();
    this.#sockets.clear();
  }

  #onData(socket: Socket<Connection>, data: Uint8Array): void {
    socket.data.parser.push(data);
    for (;;) {
      const result = socket.data.parser.next();
      if (result.kind !== "command") return;
      const args = result.args.map((arg) => arg.toString("utf8"));
      this.commands.push(args);
      this.#reply(socket, args);
    }
  }

  #reply(socket: Socket<Connection>, args: string[]): void {
    const name = args[0]?.toUpperCase();
    if (name === "INFO") {
      if (!this.hung) socket.write(bulk(this.info()));
    } else if (name === "SUBSCRIBE") {
      if (this.subscribe === "reject") socket.write(error("ERR unknown command 'SUBSCRIBE'"));
      if (this.subscribe !== "confirm") return;
      socket.data.subscribed = true;
      socket.write(array([bulk("subscribe"), bulk(args[1] ?? ""), integer(1)]));
    } else if (name === "PING") {
      socket.write(simpleString("PONG"));
    } else {
      socket.write(error(`ERR unknown command '${args[0]}'`));
    }
  }
}
