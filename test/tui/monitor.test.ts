import { afterEach, describe, expect, test } from "bun:test";
import { ClusterMonitor } from "../../src/tui/monitor.ts";
import { FakeNode, infoText, type SubscribeBehaviour } from "./fake-node.ts";

const nodes: FakeNode[] = [];
const monitors: ClusterMonitor[] = [];

afterEach(() => {
  for (const monitor of monitors.splice(0)) monitor.stop();
  for (const node of nodes.splice(0)) node.stop();
});

interface ClusterState {
  term: number;
  leader: string | null;
}

/** Starts fake nodes node-1..node-N whose INFO reflects `state`, with the leader reporting lag i for member i. */
function fakeCluster(count: number, subscribe: SubscribeBehaviour = "confirm") {
  const members = Array.from({ length: count }, (_, i) => {
    const node = new FakeNode();
    node.subscribe = subscribe;
    nodes.push(node);
    return { id: `node-${i + 1}`, node };
  });
  const state: ClusterState = { term: 2, leader: "node-1" };
  for (const { id, node } of members) {
    node.info = () =>
      infoText({
        nodeId: id,
        clientAddr: node.addr,
        role: id === state.leader ? "leader" : "follower",
        term: state.term,
        leaderId: state.leader,
        members: members.map((other, i) => ({
          id: other.id,
          clientAddr: other.node.addr,
          lag: id === state.leader ? i : undefined,
        })),
      });
  }
  const byId = (id: string): FakeNode => members.find((member) => member.id === id)?.node ?? raise(`no fake node ${id}`);
  return { state, byId };
}

function raise(message: string): never {
  throw new Error(message);
}

function startMonitor(connectAddr: string): ClusterMonitor {
  const monitor = new ClusterMonitor({ connectAddr, pollIntervalMs: 50, pollTimeoutMs: 300, commandTimeoutMs: 1000, maxEvents: 100 });
  monitors.push(monitor);
  return monitor;
}

async function waitUntil(condition: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(10);
  }
}

function eventMessages(monitor: ClusterMonitor): string[] {
  return monitor.events.map((event) => event.message);
}

describe("ClusterMonitor", () => {
  test("learns members and lag", async () => {
    const cluster = fakeCluster(3);
    const monitor = startMonitor(cluster.byId("node-2").addr);
    await monitor.start();
    await waitUntil(() => monitor.members.every((member) => member.reachable === true), "every member reachable");

    expect(monitor.members.map((member) => member.id)).toEqual(["node-1", "node-2", "node-3"]);
    expect(monitor.members.map((member) => member.lag)).toEqual([0, 1, 2]);
    expect(monitor.members.map((member) => member.info?.role)).toEqual(["leader", "follower", "follower"]);
    expect(monitor.connection).toEqual({ nodeId: "node-2", addr: cluster.byId("node-2").addr, feed: "push" });
    expect(monitor.leader).toEqual({ id: "node-1", term: 2 });
    for (const member of monitor.members) expect(member.lastContactMs).not.toBeNull();
  });

  test("hung member does not hold others", async () => {
    const cluster = fakeCluster(3);
    // Polls wait up to 5 s for a reply, and rounds start every 50 ms.
    const monitor = new ClusterMonitor({ connectAddr: cluster.byId("node-2").addr, pollIntervalMs: 50, pollTimeoutMs: 5000, commandTimeoutMs: 1000, maxEvents: 100 });
    monitors.push(monitor);
    await monitor.start();
    await waitUntil(() => monitor.members.every((member) => member.reachable === true), "every member reachable");

    cluster.byId("node-3").hung = true;
    await Bun.sleep(100);
    cluster.state.term = 3;
    await waitUntil(() => monitor.leader?.term === 3, "the new term from the other members", 1000);
    const hung = monitor.members.find((member) => member.id === "node-3")!;
    expect(Date.now() - hung.lastContactMs!).toBeGreaterThan(50);
  });

  test("start fails on refused address", async () => {
    const cluster = fakeCluster(1);
    const addr = cluster.byId("node-1").addr;
    cluster.byId("node-1").stop();
    await expect(startMonitor(addr).start()).rejects.toThrow(`could not connect to ${addr}`);
  });

  test("moves to another member", async () => {
    const cluster = fakeCluster(3);
    const monitor = startMonitor(cluster.byId("node-1").addr);
    await monitor.start();
    await waitUntil(() => monitor.members.every((member) => member.reachable === true), "every member reachable");

    cluster.byId("node-1").stop();
    await waitUntil(() => monitor.connection !== null && monitor.connection.nodeId !== "node-1", "a connection to another member");

    const messages = eventMessages(monitor);
    expect(messages[0]).toStartWith(`connected to node-1 at ${cluster.byId("node-1").addr}`);
    expect(messages.some((message) => message.startsWith("lost the connection to node-1"))).toBe(true);
    expect(messages.some((message) => message.startsWith(`node-1 at ${cluster.byId("node-1").addr} is unreachable`))).toBe(true);
    expect(messages.at(-1)).toMatch(/^(connected to node-[23]|receiving the cluster events that node-[23] publishes)/);
    expect(monitor.members.find((member) => member.id === "node-1")?.reachable).toBe(false);
  });

  test("records pushed events", async () => {
    const cluster = fakeCluster(1);
    const monitor = startMonitor(cluster.byId("node-1").addr);
    await monitor.start();
    await waitUntil(() => cluster.byId("node-1").subscribers === 1, "the subscription");

    cluster.byId("node-1").publish(JSON.stringify({ node: "node-1", term: 2, type: "membership_changed", message: "node-4 joined" }));
    await waitUntil(() => eventMessages(monitor).includes("node-4 joined"), "the pushed event");
    expect(monitor.events.at(-1)?.source).toBe("push");
  });

  test("infers leader change while polling", async () => {
    const cluster = fakeCluster(3, "reject");
    const monitor = startMonitor(cluster.byId("node-1").addr);
    await monitor.start();
    expect(monitor.connection?.feed).toBe("polling");
    expect(eventMessages(monitor).some((message) => message.startsWith("node-1 does not publish cluster events"))).toBe(true);

    cluster.state.leader = "node-3";
    cluster.state.term = 3;
    await waitUntil(() => monitor.events.some((event) => event.type === "leader_changed"), "the inferred leader change");
    const change = monitor.events.find((event) => event.type === "leader_changed");
    expect(change?.message).toBe("node-3 is the leader in term 3 (was node-1 in term 2)");
    expect(change?.source).toBe("poll");
  });

  test("push feed skips inferred copies", async () => {
    const cluster = fakeCluster(3);
    const monitor = startMonitor(cluster.byId("node-1").addr);
    await monitor.start();
    await waitUntil(() => monitor.connection?.feed === "push", "the push feed");
    await waitUntil(() => monitor.members.every((member) => member.reachable === true), "every member reachable");

    cluster.state.leader = "node-3";
    cluster.state.term = 3;
    await waitUntil(() => monitor.leader?.id === "node-3", "the new leader");
    await Bun.sleep(100);

    const inferred = monitor.events.filter((event) => event.source === "poll");
    // node-1 publishes leadership changes and its own role, but node-3's role change is only seen by polling.
    expect(inferred.map((event) => event.message)).toEqual(["node-3 is now leader in term 3, was follower in term 2"]);
  });

  test("execute uses the connection", async () => {
    const cluster = fakeCluster(2);
    const monitor = startMonitor(cluster.byId("node-2").addr);
    await monitor.start();
    expect(await monitor.execute(["PING"])).toEqual({ type: "simple", value: "PONG" });
    expect(cluster.byId("node-2").commands.some((args) => args[0] === "PING")).toBe(true);
    expect(cluster.byId("node-1").commands.some((args) => args[0] === "PING")).toBe(false);
  });

  test("no reachable member reported once", async () => {
    const cluster = fakeCluster(2);
    const monitor = startMonitor(cluster.byId("node-1").addr);
    await monitor.start();
    cluster.byId("node-1").stop();
    cluster.byId("node-2").stop();

    const notice = "no member accepts a connection, retrying every 50 ms";
    await waitUntil(() => eventMessages(monitor).includes(notice), "the notice");
    await Bun.sleep(200);
    expect(eventMessages(monitor).filter((message) => message === notice).length).toBe(1);
    expect(monitor.connection).toBeNull();
    await expect(monitor.execute(["PING"])).rejects.toThrow("not connected: no member accepts a connection");
  });

  test("history keeps newest events", async () => {
    const cluster = fakeCluster(1);
    const monitor = startMonitor(cluster.byId("node-1").addr);
    await monitor.start();
    await waitUntil(() => cluster.byId("node-1").subscribers === 1, "the subscription");
    for (let i = 0; i < 150; i++) cluster.byId("node-1").publish(JSON.stringify({ node: "node-1", type: "role_changed", message: `event ${i}` }));

    await waitUntil(() => eventMessages(monitor).includes("event 149"), "the last event");
    expect(monitor.events.length).toBe(100);
    expect(monitor.eventsRecorded).toBeGreaterThanOrEqual(152);
    expect(monitor.events[0].message).not.toBe("event 0");
  });
});
