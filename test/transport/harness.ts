// Starts transports on 127.0.0.1 for tests and records what each one receives
// and logs.

import { createLogger } from "../../src/log.ts";
import type { PeerMessage } from "../../src/raft/types.ts";
import { DEFAULT_MAX_FRAME_BYTES } from "../../src/transport/transport.ts";
import type { Transport, TransportOptions } from "../../src/transport/transport.ts";
import { waitUntil } from "./fixtures.ts";

export type TransportFactory = (options: TransportOptions) => Transport;

export interface TestNode {
  id: string;
  transport: Transport;
  /** "127.0.0.1:port" the node listens on. */
  addr: string;
  received: PeerMessage[];
  logs: string[];
  /** Cluster id returned to the transport; tests may change it. */
  clusterId: string | null;
}

export interface NodeOverrides extends Partial<Omit<TransportOptions, "nodeId" | "clusterId" | "logger" | "onMessage">> {
  clusterId?: string | null;
}

/** Creates and stops the nodes of one test. */
export class Harness {
  readonly #create: TransportFactory;
  readonly #nodes: TestNode[] = [];

  constructor(create: TransportFactory) {
    this.#create = create;
  }

  async start(id: string, overrides: NodeOverrides = {}): Promise<TestNode> {
    const { clusterId = "cluster-1", ...options } = overrides;
    const logs: string[] = [];
    const received: PeerMessage[] = [];
    const settings: Omit<TestNode, "transport"> = { id, addr: "", received, logs, clusterId };

    const transport = this.#create({
      nodeId: id,
      listenAddr: "127.0.0.1:0",
      clusterId: () => settings.clusterId,
      maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
      logger: createLogger("debug", (line) => logs.push(line)).with(() => ({ node: id })),
      onMessage: (msg) => received.push(msg),
      reconnectMaxMs: 200,
      ...options,
    });
    const node: TestNode = Object.assign(settings, { transport });
    this.#nodes.push(node);
    await node.transport.start();
    node.addr = `127.0.0.1:${node.transport.boundPort}`;
    return node;
  }

  /** Points every node at every other node. */
  connectAll(nodes: TestNode[]): void {
    const peers = nodes.map((node) => ({ id: node.id, raftAddr: node.addr }));
    for (const node of nodes) node.transport.setPeers(peers);
  }

  async stopAll(): Promise<void> {
    for (const node of this.#nodes) await node.transport.stop();
    this.#nodes.length = 0;
  }
}

export function heartbeat(from: string, to: string, readRound = 0): PeerMessage {
  return { type: "heartbeat", from, to, term: 1, commitIndex: 0, readRound };
}

/**
 * Sends `msg` every 20 ms until `receiver` has a message matching it, because
 * the transport drops messages until the connection is up.
 */
export async function sendUntilDelivered(sender: TestNode, receiver: TestNode, msg: PeerMessage, timeoutMs = 5000): Promise<void> {
  const delivered = () => receiver.received.some((got) => Bun.deepEquals(got, msg));
  const deadline = Date.now() + timeoutMs;
  while (!delivered()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${sender.id} to deliver ${msg.type} to ${receiver.id}`);
    }
    sender.transport.send(msg);
    await Bun.sleep(20);
  }
}

/** Returns the log lines of `node` whose message is `msg`. */
export function logLines(node: TestNode, msg: string): string[] {
  const needle = `msg=${JSON.stringify(msg)}`;
  return node.logs.filter((line) => line.includes(needle));
}

export async function waitForLog(node: TestNode, msg: string, timeoutMs = 5000): Promise<string> {
  await waitUntil(`log line "${msg}" on ${node.id}`, () => logLines(node, msg).length > 0, timeoutMs);
  return logLines(node, msg)[0];
}
