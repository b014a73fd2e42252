// The benchmark's replication floor (scripts/bench/floor.ts) must not
// acknowledge a SET before one follower stores it durably, or its figures
// would not bound what EchoKV can do.

import { Database } from "bun:sqlite";
import { afterEach, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { freePort, replyText, sendCommand, track, waitFor } from "../support/cluster.ts";

const FLOOR_SCRIPT = resolve(import.meta.dir, "../../scripts/bench/floor.ts");

interface Floor {
  dir: string;
  addr: string;
  leader: Subprocess;
  followers: Subprocess[];
}

let running: Floor | null = null;

afterEach(async () => {
  const floor = running;
  running = null;
  if (!floor) return;
  for (const proc of [floor.leader, ...floor.followers]) {
    proc.kill("SIGCONT");
    proc.kill("SIGKILL");
    await proc.exited;
  }
  rmSync(floor.dir, { recursive: true, force: true });
});

function spawnFloor(args: string[]): Subprocess {
  const proc = Bun.spawn([process.execPath, FLOOR_SCRIPT, ...args], { stdin: "ignore", stdout: "ignore", stderr: "inherit" });
  track(proc);
  return proc;
}

async function startFloor(): Promise<Floor> {
  const dir = mkdtempSync(join(tmpdir(), "echokv-floor-"));
  const [leaderPort, firstPort, secondPort] = [freePort(), freePort(), freePort()];
  const followers = [firstPort, secondPort].map((port, index) =>
    spawnFloor(["follower", "--port", String(port), "--data-dir", join(dir, `follower-${index + 1}`)]),
  );
  const leader = spawnFloor(["leader", "--port", String(leaderPort), "--followers", `${firstPort},${secondPort}`, "--data-dir", join(dir, "leader")]);
  running = { dir, addr: `127.0.0.1:${leaderPort}`, leader, followers };
  await waitFor("the floor leader to answer PING", async () => replyText(await sendCommand(running!.addr, ["PING"], 1000)) === "PONG", {
    timeoutMs: 15_000,
  });
  return running;
}

function storedRows(dir: string, node: string): number {
  const db = new Database(join(dir, node, "floor.db"), { readonly: true });
  try {
    return db.query<{ rows: number }, []>("SELECT count(*) AS rows FROM log").get()!.rows;
  } finally {
    db.close();
  }
}

describe("replication floor", () => {
  test("stores each acknowledged SET on the leader and a follower", async () => {
    const floor = await startFloor();
    for (let i = 0; i < 20; i++) {
      expect(replyText(await sendCommand(floor.addr, ["SET", `key-${i}`, `value-${i}`]))).toBe("OK");
    }
    expect(storedRows(floor.dir, "leader")).toBe(20);
    const followerRows = ["follower-1", "follower-2"].map((node) => storedRows(floor.dir, node));
    expect(Math.max(...followerRows)).toBe(20);
    const reply = await sendCommand(floor.addr, ["GET", "key-1"]);
    expect(reply.type).toBe("error");
  }, 30_000);

  test("waits for a follower before it replies", async () => {
    const floor = await startFloor();
    for (const follower of floor.followers) follower.kill("SIGSTOP");
    const pending = sendCommand(floor.addr, ["SET", "held", "back"], 10_000);
    const early = await Promise.race([pending.then(() => "replied"), Bun.sleep(500).then(() => "waiting")]);
    expect(early).toBe("waiting");
    expect(storedRows(floor.dir, "leader")).toBe(1);

    floor.followers[1].kill("SIGCONT");
    expect(replyText(await pending)).toBe("OK");
    expect(storedRows(floor.dir, "follower-2")).toBe(1);
  }, 30_000);
});
