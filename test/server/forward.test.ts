// Forwarding from a follower to the leader, against a stand-in leader on
// 127.0.0.1. A command that never left the follower is sent again to the
// next leader. One that reached a leader whose connection then broke is not,
// because that leader may have committed it, so its outcome is unknown. A
// node that learns it was removed fails a command still waiting for a leader.

import { afterEach, describe, expect, test } from "bun:test";
import type { Socket, TCPSocketListener } from "bun";
import { silentLogger } from "../../src/log.ts";
import { NodeError } from "../../src/node/errors.ts";
import type { EchoNode } from "../../src/node/node.ts";
import { LeaderForwarder } from "../../src/server/forward.ts";

const listeners: TCPSocketListener<undefined>[] = [];

afterEach(() => {
  for (const listener of listeners.splice(0)) listener.stop(true);
});

/** Starts a stand-in leader that counts FORWARDED commands and replies to each through `onCommand`. */
function standInLeader(onCommand: (socket: Socket<undefined>) => void): { port: number; received: () => number } {
  let received = 0;
  const listener = Bun.listen<undefined>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(socket, data) {
        const count = data.toString("latin1").split("FORWARDED").length - 1;
        for (let i = 0; i < count; i++) {
          received++;
          onCommand(socket);
        }
      },
    },
  });
  listeners.push(listener);
  return { port: listener.port, received: () => received };
}

/** Returns a follower whose leader is at each of `ports` in turn, one per waitForLeader call. */
function followerOf(ports: number[]): EchoNode {
  let call = 0;
  const node = {
    id: "node-2",
    waitForLeader: async () => {
      const port = ports[Math.min(call++, ports.length - 1)];
      return { id: "node-1", raftAddr: "127.0.0.1:1", clientAddr: `127.0.0.1:${port}`, voter: true };
    },
  };
  return node as unknown as EchoNode;
}

/** Returns a port with no listener, from a listener opened and closed at once. */
function unusedPort(): number {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return port;
}

const SET = [Buffer.from("SET"), Buffer.from("k"), Buffer.from("v")];

/** Forwards SET through `forwarder`, closes it and returns the error the forward failed with, or null. */
async function forwardError(forwarder: LeaderForwarder): Promise<unknown> {
  try {
    await forwarder.forward(SET);
    return null;
  } catch (err) {
    return err;
  } finally {
    forwarder.close();
  }
}

describe("forwarding", () => {
  test("broken connection after sending is not retried", async () => {
    const leader = standInLeader((socket) => socket.end());
    const error = await forwardError(new LeaderForwarder(followerOf([leader.port]), silentLogger, 3_000, 10));
    expect(error).toBeInstanceOf(NodeError);
    expect((error as NodeError).code).toBe("TIMEOUT");
    const message = (error as NodeError).message;
    expect(message).toStartWith(`the connection to leader node-1 at 127.0.0.1:${leader.port} closed before its reply (`);
    expect(message.split("the outcome is unknown").length).toBe(2);
    expect(message).not.toContain("FORWARDED");
    await Bun.sleep(100);
    expect(leader.received()).toBe(1);
  });

  test("refused connection is retried", async () => {
    const leader = standInLeader((socket) => socket.write("+OK\r\n"));
    const forwarder = new LeaderForwarder(followerOf([unusedPort(), leader.port]), silentLogger, 3_000, 10);
    const reply = await forwarder.forward(SET);
    forwarder.close();
    expect(reply).toEqual({ type: "simple", value: "OK" });
    expect(leader.received()).toBe(1);
  });

  test("removal while waiting for a leader fails at once", async () => {
    // No leader is known. 100 ms later the node learns that it was removed,
    // and its wait for a leader ends without one.
    const node = {
      id: "node-2",
      removed: false,
      waitForLeader: async () => {
        await Bun.sleep(100);
        node.removed = true;
        return null;
      },
    };
    const started = Date.now();
    const error = await forwardError(new LeaderForwarder(node as unknown as EchoNode, silentLogger, 3_000, 10));
    expect((error as NodeError).code).toBe("REMOVED");
    expect(Date.now() - started).toBeLessThan(1_000);
  });
});
