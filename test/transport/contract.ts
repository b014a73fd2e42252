// Behaviour every Transport implementation must show, run by each
// implementation's test file against real listeners on 127.0.0.1.

import { afterEach, describe, expect, test } from "bun:test";
import type { PeerMessage } from "../../src/raft/types.ts";
import { sampleMessages, waitUntil } from "./fixtures.ts";
import { Harness, heartbeat, sendUntilDelivered } from "./harness.ts";
import type { TransportFactory } from "./harness.ts";

export function describeTransportContract(name: string, create: TransportFactory): void {
  describe(`${name} contract`, () => {
    const harness = new Harness(create);
    afterEach(() => harness.stopAll());

    test("delivers messages both ways", async () => {
      const a = await harness.start("a");
      const b = await harness.start("b");
      harness.connectAll([a, b]);

      await sendUntilDelivered(a, b, heartbeat("a", "b"));
      await sendUntilDelivered(b, a, heartbeat("b", "a"));

      // Once connected, every message type arrives intact on the first send.
      const messages = sampleMessages().map((msg): PeerMessage => ({ ...msg, from: "a", to: "b" }));
      for (const msg of messages) a.transport.send(msg);
      await waitUntil("all sample messages", () => b.received.length >= 1 + messages.length);
      expect(b.received.slice(1)).toEqual(messages);
    });

    test("three nodes exchange messages", async () => {
      const nodes = [await harness.start("a"), await harness.start("b"), await harness.start("c")];
      harness.connectAll(nodes);

      for (const sender of nodes) {
        for (const receiver of nodes) {
          if (sender === receiver) continue;
          await sendUntilDelivered(sender, receiver, heartbeat(sender.id, receiver.id));
        }
      }
      for (const node of nodes) {
        const senders = new Set(node.received.map((msg) => msg.from));
        expect([...senders].sort()).toEqual(nodes.filter((other) => other !== node).map((other) => other.id));
      }
    });

    test("reconnects after peer restart", async () => {
      const a = await harness.start("a");
      const b = await harness.start("b");
      harness.connectAll([a, b]);
      await sendUntilDelivered(a, b, heartbeat("a", "b", 1));

      await b.transport.stop();
      // Messages sent while the peer is down are dropped without an exception.
      a.transport.send(heartbeat("a", "b", 2));

      const restarted = await harness.start("b", { listenAddr: b.addr });
      restarted.transport.setPeers([{ id: "a", raftAddr: a.addr }]);
      await sendUntilDelivered(a, restarted, heartbeat("a", "b", 3));
      await sendUntilDelivered(restarted, a, heartbeat("b", "a", 4));
      expect(restarted.received.map((msg) => msg.type === "heartbeat" && msg.readRound)).not.toContain(2);
    });

    test("delivers 1000 entries in order", async () => {
      const a = await harness.start("a");
      const b = await harness.start("b");
      harness.connectAll([a, b]);
      await sendUntilDelivered(a, b, heartbeat("a", "b"));

      const count = 1000;
      for (let i = 1; i <= count; i++) {
        const data = new Uint8Array(1024).fill(i % 256);
        a.transport.send({
          type: "append",
          from: "a",
          to: "b",
          term: 1,
          prevIndex: i - 1,
          prevTerm: 1,
          commitIndex: 0,
          entries: [{ index: i, term: 1, kind: "command", data }],
        });
      }

      await waitUntil(`${count} appends`, () => b.received.length >= 1 + count, 10_000);
      const appends = b.received.slice(1);
      expect(appends.length).toBe(count);
      const outOfOrder = appends.filter((msg, i) => msg.type !== "append" || msg.entries[0].index !== i + 1);
      expect(outOfOrder).toEqual([]);
      const corrupted = appends.filter(
        (msg) => msg.type !== "append" || !msg.entries[0].data.every((byte) => byte === msg.entries[0].index % 256),
      );
      expect(corrupted).toEqual([]);
    });

    test("dials a changed peer address", async () => {
      const a = await harness.start("a");
      const b = await harness.start("b");
      harness.connectAll([a, b]);
      await sendUntilDelivered(a, b, heartbeat("a", "b", 1));

      const moved = await harness.start("b");
      moved.transport.setPeers([{ id: "a", raftAddr: a.addr }]);
      a.transport.setPeers([{ id: "b", raftAddr: moved.addr }]);
      await sendUntilDelivered(a, moved, heartbeat("a", "b", 2));

      // The old address is no longer used.
      const before = b.received.length;
      a.transport.send(heartbeat("a", "b", 3));
      await Bun.sleep(100);
      expect(b.received.length).toBe(before);
    });

    test("stops sending to removed peer", async () => {
      const a = await harness.start("a");
      const b = await harness.start("b");
      harness.connectAll([a, b]);
      await sendUntilDelivered(a, b, heartbeat("a", "b", 1));

      a.transport.setPeers([]);
      a.transport.send(heartbeat("a", "b", 2));
      await Bun.sleep(100);
      expect(b.received.length).toBe(1);
    });

    test("send to unknown peer is dropped", async () => {
      const a = await harness.start("a");

      expect(() => a.transport.send(heartbeat("a", "nobody"))).not.toThrow();
    });

    test("ignores itself in peer list", async () => {
      const a = await harness.start("a");
      harness.connectAll([a]);

      a.transport.send(heartbeat("a", "a"));
      await Bun.sleep(100);
      expect(a.received).toEqual([]);
    });

    test("stop is idempotent", async () => {
      const a = await harness.start("a");

      await a.transport.stop();
      await a.transport.stop();
      expect(() => a.transport.send(heartbeat("a", "b"))).not.toThrow();
    });
  });
}
