import { afterEach, describe, expect, test } from "bun:test";
import { array, bulk } from "../../src/protocol/resp.ts";
import type { ClusterEvent } from "../../src/tui/events.ts";
import { EventSubscription, SubscribeError, type SubscriptionHandlers } from "../../src/tui/subscriber.ts";
import { FakeNode } from "./fake-node.ts";

const nodes: FakeNode[] = [];

afterEach(() => {
  for (const node of nodes.splice(0)) node.stop();
});

function startNode(): FakeNode {
  const node = new FakeNode();
  nodes.push(node);
  return node;
}

/** Handlers that record what they receive. */
function recorder() {
  const received = { events: [] as ClusterEvent[], invalid: [] as string[], closed: [] as string[] };
  const handlers: SubscriptionHandlers = {
    onEvent: (event) => received.events.push(event),
    onInvalidMessage: (problem) => received.invalid.push(problem),
    onClose: (reason) => received.closed.push(reason),
  };
  return { received, handlers };
}

async function waitUntil(condition: () => boolean, what: string, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(10);
  }
}

describe("EventSubscription", () => {
  test("receives published events", async () => {
    const node = startNode();
    const { received, handlers } = recorder();
    const result = await EventSubscription.open(node.addr, handlers, 1000);
    expect(result.kind).toBe("subscribed");
    expect(node.commands).toEqual([["SUBSCRIBE", "cluster-events"]]);

    node.publish(JSON.stringify({ time: "2025-06-01T12:00:00Z", node: "node-1", term: 4, type: "leader_changed", message: "leader is node-1" }));
    node.publish(JSON.stringify({ node: "node-1", term: 4, type: "role_changed", message: "became leader" }));
    await waitUntil(() => received.events.length === 2, "two events");
    expect(received.events[0].message).toBe("leader is node-1");
    expect(received.events[0].source).toBe("push");
    expect(received.events[1].type).toBe("role_changed");
    if (result.kind === "subscribed") result.subscription.close();
  });

  test("rejected SUBSCRIBE is unsupported", async () => {
    const node = startNode();
    node.subscribe = "reject";
    const result = await EventSubscription.open(node.addr, recorder().handlers, 1000);
    expect(result).toEqual({ kind: "unsupported", message: "ERR unknown command 'SUBSCRIBE'" });
  });

  test("missing confirmation times out", async () => {
    const node = startNode();
    node.subscribe = "ignore";
    const started = Date.now();
    const opening = EventSubscription.open(node.addr, recorder().handlers, 200);
    await expect(opening).rejects.toThrow(new SubscribeError(`SUBSCRIBE to ${node.addr} timed out after 200 ms`));
    expect(Date.now() - started).toBeLessThan(1500);
  });

  test("refused connection is an error", async () => {
    const node = startNode();
    const addr = node.addr;
    node.stop();
    await expect(EventSubscription.open(addr, recorder().handlers, 1000)).rejects.toThrow(`could not subscribe to ${addr}: connection refused`);
  });

  test("invalid messages are reported", async () => {
    const node = startNode();
    const { received, handlers } = recorder();
    const result = await EventSubscription.open(node.addr, handlers, 1000);
    node.publish("{broken");
    node.sendToSubscribers(array([bulk("message"), bulk("other-channel"), bulk("{}")]));
    node.publish(JSON.stringify({ node: "node-1", type: "node_started" }));
    await waitUntil(() => received.events.length === 1, "the valid event");
    expect(received.invalid.length).toBe(1);
    expect(received.invalid[0]).toContain("cluster event is not valid JSON");
    if (result.kind === "subscribed") result.subscription.close();
  });

  test("server close is reported once", async () => {
    const node = startNode();
    const { received, handlers } = recorder();
    await EventSubscription.open(node.addr, handlers, 1000);
    node.stop();
    await waitUntil(() => received.closed.length > 0, "the close callback");
    await Bun.sleep(50);
    expect(received.closed.length).toBe(1);
  });

  test("own close is not reported", async () => {
    const node = startNode();
    const { received, handlers } = recorder();
    const result = await EventSubscription.open(node.addr, handlers, 1000);
    if (result.kind === "subscribed") result.subscription.close();
    await Bun.sleep(50);
    expect(received.closed).toEqual([]);
  });
});
