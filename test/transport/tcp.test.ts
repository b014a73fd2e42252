import { afterEach, describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { silentLogger } from "../../src/log.ts";
import type { PeerMessage } from "../../src/raft/types.ts";
import { encodeFrame, FRAME_HEADER_BYTES, FrameDecoder } from "../../src/transport/frame.ts";
import { DEFAULT_MAX_FRAME_BYTES, TcpTransport } from "../../src/transport/tcp.ts";
import { PROTOCOL_VERSION } from "../../src/transport/handshake.ts";
import { describeTransportContract } from "./contract.ts";
import { waitUntil } from "./fixtures.ts";
import { Harness, heartbeat, logLines, sendUntilDelivered, waitForLog } from "./harness.ts";
import type { TestNode } from "./harness.ts";

describeTransportContract("TcpTransport", (options) => new TcpTransport(options));

/** A plain TCP client that writes whatever a test gives it. */
interface RawClient {
  socket: Socket<undefined>;
  /** Frames the server sent, decoded. */
  frames: unknown[];
  closed: boolean;
}

async function connectRaw(node: TestNode): Promise<RawClient> {
  const decoder = new FrameDecoder(1024 * 1024);
  const client = { frames: [] as unknown[], closed: false } as RawClient;
  client.socket = await Bun.connect({
    hostname: "127.0.0.1",
    port: node.transport.boundPort,
    socket: {
      binaryType: "uint8array",
      data: (_socket, chunk) => {
        decoder.push(chunk);
        for (let result = decoder.next(); result.kind === "frame"; result = decoder.next()) {
          client.frames.push(result.value);
        }
      },
      close: () => {
        client.closed = true;
      },
    },
  });
  return client;
}

function hello(from: string, to: string, clusterId = "cluster-1"): Uint8Array {
  return encodeFrame({ type: "hello", version: PROTOCOL_VERSION, clusterId, from, to });
}

describe("TcpTransport handshake", () => {
  const harness = new Harness((options) => new TcpTransport(options));
  const rawClients: RawClient[] = [];
  afterEach(async () => {
    for (const client of rawClients) client.socket.end();
    rawClients.length = 0;
    await harness.stopAll();
  });

  /** Opens a raw connection to `node` and sends a hello from `from`. */
  async function sendHello(node: TestNode, from: string): Promise<RawClient> {
    const client = await connectRaw(node);
    rawClients.push(client);
    client.socket.write(hello(from, node.id));
    return client;
  }

  test("rejects cluster id mismatch", async () => {
    const a = await harness.start("a", { clusterId: "cluster-1", reconnectMaxMs: 50 });
    const b = await harness.start("b", { clusterId: "cluster-2" });
    a.transport.setPeers([{ id: "b", raftAddr: b.addr }]);

    const rejected = await waitForLog(b, "rejected peer handshake");
    expect(rejected).toContain("peer=a");
    expect(rejected).toContain('reason="cluster id mismatch: expected cluster-2, got cluster-1"');
    const dialerLine = await waitForLog(a, "peer rejected handshake");
    expect(dialerLine).toContain('reason="cluster id mismatch: expected cluster-2, got cluster-1"');

    // Several retries later, each side has logged the reason once.
    await Bun.sleep(300);
    expect(logLines(a, "peer rejected handshake").length).toBe(1);
    expect(logLines(b, "rejected peer handshake").length).toBe(1);
    a.transport.send(heartbeat("a", "b"));
    await Bun.sleep(50);
    expect(b.received).toEqual([]);
  });

  test("rejects hello for wrong node", async () => {
    const a = await harness.start("a");
    const b = await harness.start("b");
    a.transport.setPeers([{ id: "x", raftAddr: b.addr }]);

    const rejected = await waitForLog(b, "rejected peer handshake");
    expect(rejected).toContain('reason="node id mismatch: this node is b, hello is for x"');
    await waitForLog(a, "peer rejected handshake");
  });

  test("rejects unknown protocol version", async () => {
    const b = await harness.start("b");
    const client = await connectRaw(b);
    rawClients.push(client);

    client.socket.write(encodeFrame({ type: "hello", version: PROTOCOL_VERSION + 1, clusterId: "cluster-1", from: "a", to: "b" }));
    await waitUntil("connection closed", () => client.closed);
    expect(client.frames).toEqual([
      { type: "reject", reason: `unsupported protocol version: expected ${PROTOCOL_VERSION}, got ${PROTOCOL_VERSION + 1}` },
    ]);
  });

  test("waits for cluster id", async () => {
    const a = await harness.start("a");
    const b = await harness.start("b", { clusterId: null });
    harness.connectAll([a, b]);

    const rejected = await waitForLog(b, "rejected peer handshake");
    expect(rejected).toContain('reason="not ready"');
    await Bun.sleep(100);
    expect(logLines(a, "accepted peer connection")).toEqual([]);

    b.clusterId = "cluster-1";
    await sendUntilDelivered(a, b, heartbeat("a", "b"));
    await sendUntilDelivered(b, a, heartbeat("b", "a"));
  });

  test("rejects a removed node", async () => {
    const b = await harness.start("b");
    const open = await sendHello(b, "a");
    await waitUntil("welcome", () => open.frames.length > 0);

    // Marking "a" removed closes its connection, and its next hello is rejected as removed.
    b.transport.setRemovedNodes(["a"]);
    await waitUntil("connection closed", () => open.closed);
    const again = await sendHello(b, "a");
    await waitUntil("connection closed", () => again.closed);
    expect(again.frames).toEqual([{ type: "reject", reason: "node a was removed from the cluster", removed: true }]);

    // Other nodes are still accepted.
    const other = await sendHello(b, "c");
    await waitUntil("welcome", () => other.frames.length > 0);
    expect(other.frames).toEqual([{ type: "welcome" }]);
  });

  test("dialer learns its removal", async () => {
    const removals: string[] = [];
    const a = await harness.start("a", { reconnectMaxMs: 50, onRemoved: (peer) => removals.push(peer) });
    const b = await harness.start("b");
    b.transport.setRemovedNodes(["a"]);
    harness.connectAll([a, b]);
    await waitUntil("a told it was removed", () => removals.length > 0);
    expect(removals[0]).toBe("b");
  });

  test("rejected dialer backs off", async () => {
    const a = await harness.start("a", { reconnectInitialMs: 10, reconnectMaxMs: 100 });
    const b = await harness.start("b");
    b.transport.setRemovedNodes(["a"]);
    harness.connectAll([a, b]);
    await waitForLog(a, "peer rejected handshake");
    await Bun.sleep(1000);

    // Each rejection schedules one retry, after 5 to 10 ms, then twice as
    // long each time up to 50 to 100 ms, so a second has about 15 attempts.
    const attempts = logLines(a, "peer connection attempt failed");
    expect(attempts.length).toBeLessThan(40);
    const counts = attempts.map((line) => Number(/failed_attempts=(\d+)/.exec(line)?.[1]));
    expect(new Set(counts).size).toBe(counts.length);
  });

  test("replies welcome to valid hello", async () => {
    const b = await harness.start("b");
    const client = await sendHello(b, "a");
    await waitUntil("welcome", () => client.frames.length > 0);
    expect(client.frames).toEqual([{ type: "welcome" }]);
    expect(client.closed).toBe(false);
  });

  test("drops message with forged sender", async () => {
    const b = await harness.start("b");
    const client = await connectRaw(b);
    rawClients.push(client);
    client.socket.write(hello("a", "b"));
    await waitUntil("welcome", () => client.frames.length > 0);

    client.socket.write(encodeFrame(heartbeat("c", "b")));
    const dropped = await waitForLog(b, "dropped peer message with wrong sender or recipient");
    expect(dropped).toContain("peer=a");
    expect(dropped).toContain("from=c");

    // The connection stays usable for messages from the peer it greeted as.
    client.socket.write(encodeFrame(heartbeat("a", "b", 7)));
    await waitUntil("heartbeat from a", () => b.received.length > 0);
    expect(b.received).toEqual([heartbeat("a", "b", 7)]);
    expect(client.closed).toBe(false);
  });
});

describe("TcpTransport invalid input", () => {
  const harness = new Harness((options) => new TcpTransport(options));
  const rawClients: RawClient[] = [];
  afterEach(async () => {
    for (const client of rawClients) client.socket.end();
    rawClients.length = 0;
    await harness.stopAll();
  });

  /** Checks that a real peer still gets through to `b` after a raw client misbehaved. */
  async function expectPeerStillServed(b: TestNode): Promise<void> {
    const a = await harness.start("a");
    harness.connectAll([a, b]);
    await sendUntilDelivered(a, b, heartbeat("a", "b", 99));
  }

  test("closes connection sending garbage", async () => {
    const b = await harness.start("b");
    const client = await connectRaw(b);
    rawClients.push(client);

    client.socket.write("this is not a frame\r\n");
    await waitUntil("garbage connection closed", () => client.closed);
    const warning = await waitForLog(b, "closed peer connection: protocol error");
    expect(warning).toContain("exceeds the maximum");
    await expectPeerStillServed(b);
  });

  test("closes on huge length prefix", async () => {
    const b = await harness.start("b", { maxFrameBytes: 1024 });
    const client = await connectRaw(b);
    rawClients.push(client);

    // Only the header is sent: the server must not wait for a 4 GiB body.
    const header = new Uint8Array(FRAME_HEADER_BYTES);
    new DataView(header.buffer).setUint32(0, 0xffff_fff0, false);
    client.socket.write(header);
    await waitUntil("connection closed", () => client.closed, 1000);
    const warning = await waitForLog(b, "closed peer connection: protocol error");
    expect(warning).toContain("frame length 4294967280 exceeds the maximum of 1024 bytes");
    await expectPeerStillServed(b);
  });

  test("closes on undecodable CBOR", async () => {
    const b = await harness.start("b");
    const client = await connectRaw(b);
    rawClients.push(client);

    client.socket.write(new Uint8Array([0, 0, 0, 2, 0xff, 0xff]));
    await waitUntil("connection closed", () => client.closed);
    expect(await waitForLog(b, "closed peer connection: protocol error")).toContain("invalid CBOR");
    await expectPeerStillServed(b);
  });

  test("closes on invalid message", async () => {
    const b = await harness.start("b");
    const client = await connectRaw(b);
    rawClients.push(client);
    client.socket.write(hello("a", "b"));
    await waitUntil("welcome", () => client.frames.length > 0);

    client.socket.write(encodeFrame({ type: "append", from: "a", to: "b", term: "one" }));
    await waitUntil("connection closed", () => client.closed);
    const warning = await waitForLog(b, "closed peer connection: protocol error");
    expect(warning).toContain("peer=a");
    expect(warning).toContain("invalid append message: term must be a non-negative integer");
    expect(b.received).toEqual([]);
    await expectPeerStillServed(b);
  });

  test("closes when first frame is not hello", async () => {
    const b = await harness.start("b");
    const client = await connectRaw(b);
    rawClients.push(client);

    client.socket.write(encodeFrame(heartbeat("a", "b")));
    await waitUntil("connection closed", () => client.closed);
    expect(await waitForLog(b, "closed peer connection: protocol error")).toContain("first frame is not a hello");
    expect(b.received).toEqual([]);
  });

  test("closes connection without hello", async () => {
    const b = await harness.start("b", { handshakeTimeoutMs: 100 });
    const client = await connectRaw(b);
    rawClients.push(client);

    await waitUntil("idle connection closed", () => client.closed, 2000);
    expect(await waitForLog(b, "closed peer connection: protocol error")).toContain("timed out after 100 ms waiting for hello");
  });

  test("receiver closes on oversize frame", async () => {
    const a = await harness.start("a", { reconnectMaxMs: 50 });
    const b = await harness.start("b", { maxFrameBytes: 1024 });
    harness.connectAll([a, b]);
    await sendUntilDelivered(a, b, heartbeat("a", "b", 1));

    const entry = { index: 1, term: 1, kind: "command" as const, data: new Uint8Array(2048) };
    a.transport.send({ type: "append", from: "a", to: "b", term: 1, prevIndex: 0, prevTerm: 0, commitIndex: 0, entries: [entry] });
    expect(await waitForLog(b, "closed peer connection: protocol error")).toContain("exceeds the maximum of 1024 bytes");

    // The sender reconnects and later small messages arrive.
    await sendUntilDelivered(a, b, heartbeat("a", "b", 2));
    expect(b.received.every((msg) => msg.type === "heartbeat")).toBe(true);
  });

  test("sender drops oversize frame", async () => {
    const a = await harness.start("a", { maxFrameBytes: 1024 });
    const b = await harness.start("b");
    harness.connectAll([a, b]);
    await sendUntilDelivered(a, b, heartbeat("a", "b", 1));

    const entry = { index: 1, term: 1, kind: "command" as const, data: new Uint8Array(2048) };
    a.transport.send({ type: "append", from: "a", to: "b", term: 1, prevIndex: 0, prevTerm: 0, commitIndex: 0, entries: [entry] });
    a.transport.send(heartbeat("a", "b", 2));

    await waitUntil("second heartbeat", () => b.received.length >= 2);
    expect(b.received).toEqual([heartbeat("a", "b", 1), heartbeat("a", "b", 2)]);
    expect(logLines(a, "dropped message to peer: frame too large").length).toBe(1);
    expect(logLines(b, "closed peer connection: protocol error")).toEqual([]);
  });
});

describe("TcpTransport flow control", () => {
  const harness = new Harness((options) => new TcpTransport(options));
  afterEach(() => harness.stopAll());

  function append(index: number, bytes: number): PeerMessage {
    const data = new Uint8Array(bytes).fill(index % 256);
    return {
      type: "append",
      from: "a",
      to: "b",
      term: 1,
      prevIndex: index - 1,
      prevTerm: 1,
      commitIndex: 0,
      entries: [{ index, term: 1, kind: "command", data }],
    };
  }

  test("delivers burst beyond socket buffer", async () => {
    const a = await harness.start("a");
    const b = await harness.start("b");
    harness.connectAll([a, b]);
    await sendUntilDelivered(a, b, heartbeat("a", "b"));

    // 32 MiB in one tick exceeds the kernel send buffer (at most 4 MiB by
    // default on Linux, see net.ipv4.tcp_wmem), so writes stop for
    // backpressure and resume on drain.
    const count = 128;
    for (let i = 1; i <= count; i++) a.transport.send(append(i, 256 * 1024));

    await waitUntil(`${count} appends`, () => b.received.length >= 1 + count, 20_000);
    const indexes = b.received.slice(1).map((msg) => (msg.type === "append" ? msg.entries[0].index : -1));
    expect(indexes).toEqual(Array.from({ length: count }, (_, i) => i + 1));
  });

  test("drops messages over buffer cap", async () => {
    const a = await harness.start("a", { maxPeerBufferedBytes: 64 * 1024 });
    const b = await harness.start("b");
    harness.connectAll([a, b]);
    await sendUntilDelivered(a, b, heartbeat("a", "b"));

    // All sends of one tick are queued before the first write, so about 60
    // frames of just over 1 KiB fit under the 64 KiB cap.
    for (let i = 1; i <= 100; i++) a.transport.send(append(i, 1024));

    await waitForLog(a, "dropped message to peer: send buffer full");
    await waitUntil("queued appends", () => b.received.length > 1);
    await Bun.sleep(100);
    const indexes = b.received.slice(1).map((msg) => (msg.type === "append" ? msg.entries[0].index : -1));
    expect(indexes.length).toBeGreaterThan(30);
    expect(indexes.length).toBeLessThan(100);
    expect(indexes).toEqual(Array.from({ length: indexes.length }, (_, i) => i + 1));
    expect(logLines(a, "dropped message to peer: send buffer full").length).toBe(1);
  });
});

describe("TcpTransport lifecycle", () => {
  const harness = new Harness((options) => new TcpTransport(options));
  afterEach(() => harness.stopAll());

  /** Returns an address that a node bound and freed, so that nothing listens there for a while. */
  async function unusedAddress(): Promise<string> {
    const placeholder = await harness.start("b");
    await placeholder.transport.stop();
    return placeholder.addr;
  }

  test("logs peer failure once", async () => {
    const addr = await unusedAddress();
    const a = await harness.start("a", { reconnectInitialMs: 10, reconnectMaxMs: 40 });
    a.transport.setPeers([{ id: "b", raftAddr: addr }]);
    await waitForLog(a, "peer connection failed");
    await Bun.sleep(300);
    expect(logLines(a, "peer connection failed").length).toBe(1);
    const attempts = logLines(a, "peer connection attempt failed").length;
    expect(attempts).toBeGreaterThan(2);

    const b = await harness.start("b", { listenAddr: addr });
    b.transport.setPeers([{ id: "a", raftAddr: a.addr }]);
    const recovered = await waitForLog(a, "peer connection recovered");
    expect(recovered).toMatch(/failed_attempts=\d+/);
    await sendUntilDelivered(a, b, heartbeat("a", "b"));
  });

  test("inbound hello cuts the backoff", async () => {
    const addr = await unusedAddress();
    // With these settings, a's next dial to b comes 2.5 to 5 s after a failure.
    const a = await harness.start("a", { reconnectInitialMs: 5000, reconnectMaxMs: 5000 });
    a.transport.setPeers([{ id: "b", raftAddr: addr }]);
    await waitForLog(a, "peer connection failed");

    const b = await harness.start("b", { listenAddr: addr });
    const started = Date.now();
    b.transport.setPeers([{ id: "a", raftAddr: a.addr }]);
    await waitForLog(a, "peer connection recovered");
    expect(Date.now() - started).toBeLessThan(2000);
    await sendUntilDelivered(a, b, heartbeat("a", "b"));
  });

  test("logs lost connection once", async () => {
    // A peer that welcomes the dialer and then closes without a goodbye, as a killed node does.
    let accepted: Socket<undefined> | null = null;
    const crashing = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data: (socket) => {
          accepted ??= socket;
          socket.write(encodeFrame({ type: "welcome" }));
        },
      },
    });
    try {
      const a = await harness.start("a", { reconnectInitialMs: 10, reconnectMaxMs: 40 });
      a.transport.setPeers([{ id: "b", raftAddr: `127.0.0.1:${crashing.port}` }]);
      await waitUntil("a to finish its handshake with b", () => a.transport.isConnected("b"));

      crashing.stop(true);
      accepted!.end();
      await waitForLog(a, "peer connection lost");
      await Bun.sleep(200);
      expect(logLines(a, "peer connection lost").length).toBe(1);
      expect(logLines(a, "peer connection failed")).toEqual([]);
      expect(logLines(a, "peer is shutting down")).toEqual([]);
    } finally {
      crashing.stop(true);
    }
  });

  test("logs planned peer stop at info", async () => {
    const a = await harness.start("a", { reconnectInitialMs: 10, reconnectMaxMs: 40 });
    const b = await harness.start("b");
    harness.connectAll([a, b]);
    await sendUntilDelivered(a, b, heartbeat("a", "b"));

    await b.transport.stop();
    const line = await waitForLog(a, "peer is shutting down");
    expect(line).toContain("INFO");
    expect(line).toContain("peer=b");
    await Bun.sleep(200);
    expect(logLines(a, "peer is shutting down").length).toBe(1);
    expect(logLines(a, "peer connection lost")).toEqual([]);
    expect(logLines(a, "peer connection failed")).toEqual([]);

    const restarted = await harness.start("b", { listenAddr: b.addr });
    restarted.transport.setPeers([{ id: "a", raftAddr: a.addr }]);
    await waitForLog(a, "peer connection recovered");
    await sendUntilDelivered(a, restarted, heartbeat("a", "b"));
  });

  test("warns once about a stopped peer that stays down", async () => {
    const a = await harness.start("a", { reconnectInitialMs: 10, reconnectMaxMs: 40, plannedStopWarnMs: 300 });
    const b = await harness.start("b");
    harness.connectAll([a, b]);
    await sendUntilDelivered(a, b, heartbeat("a", "b"));

    await b.transport.stop();
    await waitForLog(a, "peer is shutting down");
    expect(logLines(a, "peer still down after a planned stop")).toEqual([]);
    const line = await waitForLog(a, "peer still down after a planned stop");
    expect(line).toContain("WARN");
    expect(line).toMatch(/down_ms=\d+/);
    await Bun.sleep(400);
    expect(logLines(a, "peer still down after a planned stop").length).toBe(1);
    expect(logLines(a, "peer connection lost")).toEqual([]);
  });

  test("boundPort throws before start", () => {
    const transport = new TcpTransport({
      nodeId: "a",
      listenAddr: "127.0.0.1:0",
      clusterId: () => "cluster-1",
      maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
      logger: silentLogger,
      onMessage: () => {},
    });

    expect(() => transport.boundPort).toThrow("transport is not listening: call start() first");
  });

  test("start rejects port in use", async () => {
    const a = await harness.start("a");

    const error = await harness.start("b", { listenAddr: a.addr }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toBe(
      `cannot listen on ${a.addr}: the address is already in use (is another node or program on that port?)`,
    );
  });

  test("start rejects invalid address", async () => {
    const error = await harness.start("a", { listenAddr: "127.0.0.1" }).catch((err: unknown) => err);

    expect((error as Error).message).toBe('invalid address "127.0.0.1": expected host:port');
  });

  test("rejects invalid options", () => {
    const options = {
      nodeId: "a",
      listenAddr: "127.0.0.1:0",
      clusterId: () => "cluster-1",
      maxFrameBytes: 0,
      logger: silentLogger,
      onMessage: (_msg: PeerMessage) => {},
    };

    expect(() => new TcpTransport(options)).toThrow("transport option maxFrameBytes must be a positive integer, got 0");
    expect(() => new TcpTransport({ ...options, maxFrameBytes: 1024, reconnectInitialMs: 500, reconnectMaxMs: 100 })).toThrow(
      "transport option reconnectMaxMs (100) must be at least reconnectInitialMs (500)",
    );
  });
});
