// End-to-end test of `echokv tui` from the compiled binary: a real three-node
// cluster on 127.0.0.1, and the console in a tmux pane of 80x24, driven with
// send-keys and read back with capture-pane.
//
// Set ECHOKV_UPDATE_SCREEN=1 to rewrite docs/tui-screen.txt with the screen
// after the failover.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { existsSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { RespClient } from "../../src/client/client.ts";
import { parseInfo, type NodeInfo } from "../../src/tui/info.ts";

const BINARY = resolve(import.meta.dir, "../../dist/echokv");
const SCREEN_CAPTURE = resolve(import.meta.dir, "../../docs/tui-screen.txt");
/** tmux server socket of this test process, so its sessions never mix with anyone else's. */
const TMUX_SOCKET = `echokv-tui-test-${process.pid}`;
const MAIN_SESSION = `console-${process.pid}`;
const SCREEN_SESSION = `console-screen-${process.pid}`;

interface TestNode {
  id: string;
  clientAddr: string;
  raftAddr: string;
  process: Subprocess;
}

const nodes: TestNode[] = [];
const sessions: string[] = [];
/** Path of this test's tmux socket, removed after the tests because tmux leaves it behind. */
let socketPath = "";
let dataRoot = "";

// ---------------------------------------------------------------------------
// tmux

function requireTmux(): void {
  if (Bun.which("tmux") === null) {
    throw new Error("tmux is not installed, and this test drives `echokv tui` in a tmux pane; install tmux (apt-get install tmux) and rerun");
  }
}

/** Runs one tmux command on this test's server and returns its output. Throws with tmux's message on failure. */
function tmux(...args: string[]): string {
  const result = Bun.spawnSync(["tmux", "-L", TMUX_SOCKET, "-f", "/dev/null", ...args]);
  if (result.exitCode !== 0) {
    throw new Error(`tmux ${args.join(" ")} failed with status ${result.exitCode}: ${result.stderr.toString().trim()}`);
  }
  return result.stdout.toString();
}

/**
 * Starts the console in a new 80x24 session. The pane stays open after the
 * console exits and shows its exit status, so a crash can be read from the screen.
 */
function startConsole(session: string, term: string, connectAddr: string): void {
  const command = `env TERM=${term} LANG=C.UTF-8 '${BINARY}' tui --connect ${connectAddr}; echo "console exited with status $?"; sleep 600`;
  tmux("-u", "new-session", "-d", "-s", session, "-x", "80", "-y", "24", command);
  sessions.push(session);
  socketPath = tmux("display-message", "-p", "-t", session, "#{socket_path}").trim();
}

function capture(session: string, withEscapes = false): string {
  return tmux("capture-pane", "-p", ...(withEscapes ? ["-e"] : []), "-t", session);
}

/** Types `text` literally, then presses the named keys (such as Enter or Tab). */
function type(session: string, text: string, ...keys: string[]): void {
  if (text !== "") tmux("send-keys", "-t", session, "-l", text);
  if (keys.length > 0) tmux("send-keys", "-t", session, ...keys);
}

async function waitForScreen(session: string, description: string, matches: (screen: string) => boolean, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let screen = capture(session);
  while (!matches(screen)) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${description}; the screen was:\n${screen}`);
    await Bun.sleep(100);
    screen = capture(session);
  }
  return screen;
}

/** Returns the members table row of `id`, without the box border. */
function memberRow(screen: string, id: string): string {
  const line = screen.split("\n").find((row) => new RegExp(`^│[* ] ${id} `).test(row));
  return line ?? "";
}

// ---------------------------------------------------------------------------
// The cluster

const handedOutPorts = new Set<number>();

/** Returns a port that was free on 127.0.0.1 a moment ago and that this test has not used yet. */
function freePort(): number {
  for (let attempt = 0; attempt < 50; attempt++) {
    const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = listener.port;
    listener.stop(true);
    if (!handedOutPorts.has(port)) {
      handedOutPorts.add(port);
      return port;
    }
  }
  throw new Error("could not find an unused free port on 127.0.0.1 in 50 attempts");
}

async function requestInfo(addr: string): Promise<NodeInfo | null> {
  try {
    const client = await RespClient.connect(addr, { timeoutMs: 1000 });
    try {
      const reply = await client.command(["INFO"]);
      return reply.type === "bulk" && reply.value !== null ? parseInfo(reply.value.toString("utf8")) : null;
    } finally {
      client.close();
    }
  } catch {
    return null;
  }
}

async function waitFor(description: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${description}`);
    await Bun.sleep(100);
  }
}

function startNode(id: string, joinAddr: string | null): TestNode {
  const clientAddr = `127.0.0.1:${freePort()}`;
  const raftAddr = `127.0.0.1:${freePort()}`;
  const args = [BINARY, "serve", "--node-id", id, "--listen-addr", clientAddr, "--raft-addr", raftAddr, "--data-dir", join(dataRoot, id)];
  if (joinAddr !== null) args.push("--join-addr", joinAddr);
  const logFile = openSync(join(dataRoot, `${id}.log`), "a");
  const node = { id, clientAddr, raftAddr, process: Bun.spawn(args, { stdout: logFile, stderr: logFile }) };
  nodes.push(node);
  return node;
}

async function leaderOf(members: TestNode[]): Promise<TestNode | null> {
  for (const node of members) {
    const info = await requestInfo(node.clientAddr);
    if (info?.role === "leader") return node;
  }
  return null;
}

beforeAll(async () => {
  requireTmux();
  if (!existsSync(BINARY)) throw new Error(`${BINARY} does not exist: run \`npm run build\` first`);
  dataRoot = mkdtempSync(join(tmpdir(), "echokv-tui-test-"));

  const first = startNode("node-1", null);
  await waitFor("node-1 to reply to INFO", async () => (await requestInfo(first.clientAddr)) !== null);
  for (const id of ["node-2", "node-3"]) {
    const node = startNode(id, first.clientAddr);
    await waitFor(`${id} to join`, async () => (await requestInfo(node.clientAddr))?.members.length === nodes.length);
  }
  await waitFor("every node to see three members and a leader", async () => {
    const infos = await Promise.all(nodes.map((node) => requestInfo(node.clientAddr)));
    return infos.every((info) => info !== null && info.members.length === 3 && info.leaderId !== null);
  });
}, 60_000);

afterAll(() => {
  for (const session of sessions) {
    try {
      tmux("kill-session", "-t", session);
    } catch {
      // The session is already gone.
    }
  }
  if (socketPath !== "") rmSync(socketPath, { force: true });
  for (const node of nodes) node.process.kill("SIGKILL");
  if (dataRoot !== "") rmSync(dataRoot, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------

describe("echokv tui", () => {
  let leader: TestNode;

  test("shows members and leader", async () => {
    leader = (await leaderOf(nodes)) ?? nodes[0];
    // Connected to the leader, so killing it later also exercises the move to another member.
    startConsole(MAIN_SESSION, "xterm-256color", leader.clientAddr);

    const screen = await waitForScreen(MAIN_SESSION, "three reachable members", (text) =>
      nodes.every((node) => memberRow(text, node.id).includes(" up")),
    );
    expect(memberRow(screen, leader.id).startsWith("│* ")).toBe(true);
    expect(screen).toContain(`connected to ${leader.id} ${leader.clientAddr}`);
    expect(screen).toContain(`leader ${leader.id}, term`);
    for (const node of nodes) expect(screen).toContain(`client ${node.clientAddr}  raft ${node.raftAddr}`);
    expect(screen).toContain("┌─ Members");
    expect(screen).not.toContain("lqqq");
  }, 30_000);

  test("runs SET and GET", async () => {
    type(MAIN_SESSION, "SET tui-key hello-console", "Enter");
    await waitForScreen(MAIN_SESSION, "the SET reply", (text) => /│OK\s/.test(text));
    type(MAIN_SESSION, "GET tui-key", "Enter");
    await waitForScreen(MAIN_SESSION, "the GET reply", (text) => /│hello-console\s/.test(text));

    const client = await RespClient.connect(leader.clientAddr);
    const stored = await client.command(["GET", "tui-key"]);
    client.close();
    expect(stored.type === "bulk" ? stored.value?.toString() : null).toBe("hello-console");
  }, 20_000);

  test("shows errors in red", async () => {
    type(MAIN_SESSION, "NOSUCHCOMMAND x", "Enter");
    await waitForScreen(MAIN_SESSION, "the error reply", (text) => text.includes("(error) ERR unknown command"));
    const colored = capture(MAIN_SESSION, true);
    expect(colored).toMatch(/\x1b\[31m[^\n]*\(error\) ERR unknown command/);
  }, 20_000);

  test("completes and recalls history", async () => {
    type(MAIN_SESSION, "MEMB", "Tab");
    await waitForScreen(MAIN_SESSION, "the completed command", (text) => text.includes("│> MEMBERS "));
    type(MAIN_SESSION, "", "C-u", "Up", "Up");
    await waitForScreen(MAIN_SESSION, "the recalled GET", (text) => text.includes("│> GET tui-key"));
    type(MAIN_SESSION, "", "C-u");
  }, 20_000);

  test("shows a snapshot in the event pane", async () => {
    type(MAIN_SESSION, "SNAPSHOT", "Enter");
    // The event pane wraps at word boundaries, so the message may span two lines.
    await waitForScreen(
      MAIN_SESSION,
      "the snapshot event",
      (text) => text.includes(`${leader.id} took a`) && text.includes("snapshot at index"),
      15_000,
    );
  }, 20_000);

  test("shows help on ?", async () => {
    type(MAIN_SESSION, "?");
    await waitForScreen(MAIN_SESSION, "the help", (text) => text.includes("other keys close it."));
    type(MAIN_SESSION, "", "Escape");
    await waitForScreen(MAIN_SESSION, "the help to close", (text) => !text.includes("other keys close it."));

    // A letter typed at the open help closes it and stays on the command line.
    type(MAIN_SESSION, "?");
    await waitForScreen(MAIN_SESSION, "the help again", (text) => text.includes("other keys close it."));
    type(MAIN_SESSION, "PING", "Enter");
    await waitForScreen(MAIN_SESSION, "the PING reply", (text) => text.includes("> PING") && /│PONG\s/.test(text));
  }, 20_000);

  test("scroll mode and back", async () => {
    type(MAIN_SESSION, "", "Escape");
    await waitForScreen(MAIN_SESSION, "the scroll mode label", (text) => text.includes("Scrolling: Tab switches pane"));
    type(MAIN_SESSION, "", "Tab", "Up");
    // A lone Escape byte is the Escape key. Sent with other keys, it would start an Alt+key sequence.
    await Bun.sleep(100);
    type(MAIN_SESSION, "", "Escape");
    await waitForScreen(MAIN_SESSION, "the command mode label", (text) => text.includes("Command: Enter runs"));
  }, 20_000);

  test("fits a 60x20 terminal", async () => {
    tmux("resize-window", "-t", MAIN_SESSION, "-x", "60", "-y", "20");
    try {
      // The help is taller than the screen, so its end is reached by scrolling.
      type(MAIN_SESSION, "?");
      await waitForScreen(MAIN_SESSION, "the top of the help", (text) => text.includes("Command line") && !text.includes("scroll this help"));
      type(MAIN_SESSION, "", "PageDown", "PageDown");
      await waitForScreen(MAIN_SESSION, "the end of the help", (text) => text.includes("scroll this help"));
      type(MAIN_SESSION, "", "Escape");
      await waitForScreen(MAIN_SESSION, "the help to close", (text) => !text.includes("scroll this help"));

      // Each mode's label fits on the command line's border, the scroll mode's in its short form.
      await waitForScreen(MAIN_SESSION, "the command label", (text) => text.includes("┌─ Command: Enter runs, Tab completes, ? help, q quits ─"));
      type(MAIN_SESSION, "", "Escape");
      await waitForScreen(MAIN_SESSION, "the short scroll label", (text) => text.includes("┌─ Scrolling: Tab pane, arrows, Esc back ─"));

      // The members table has more rows than fit, and scrolls one row per key under its header.
      const membersLines = (text: string) => text.split("\n").slice(2, 2 + 5);
      const before = membersLines(capture(MAIN_SESSION));
      expect(before[0]).toContain(" ID ");
      // Tab moves the yellow border from pane to pane; scroll mode remembers the last one.
      const membersPicked = () => capture(MAIN_SESSION, true).split("\n")[1]?.includes("\x1b[33m") === true;
      for (let presses = 0; presses < 3 && !membersPicked(); presses++) {
        type(MAIN_SESSION, "", "Tab");
        await Bun.sleep(100);
      }
      expect(membersPicked()).toBe(true);
      type(MAIN_SESSION, "", "Down");
      const scrolled = membersLines(await waitForScreen(MAIN_SESSION, "the members table to scroll", (text) => membersLines(text)[1] === before[2]));
      expect(scrolled[0]).toBe(before[0]);
      type(MAIN_SESSION, "", "Home");
      await waitForScreen(MAIN_SESSION, "the members table back at its top", (text) => membersLines(text)[1] === before[1]);
      await Bun.sleep(100);
      type(MAIN_SESSION, "", "Escape");
      await waitForScreen(MAIN_SESSION, "command mode", (text) => text.includes("Command: Enter"));
    } finally {
      tmux("resize-window", "-t", MAIN_SESSION, "-x", "80", "-y", "24");
    }
    type(MAIN_SESSION, "", "Escape");
    await waitForScreen(MAIN_SESSION, "the long scroll label", (text) => text.includes("Scrolling: Tab switches pane"));
    await Bun.sleep(100);
    type(MAIN_SESSION, "", "Escape");
    await waitForScreen(MAIN_SESSION, "command mode again", (text) => text.includes("Command: Enter runs"));
  }, 30_000);

  test("follows the new leader after SIGKILL", async () => {
    leader.process.kill("SIGKILL");
    const survivors = nodes.filter((node) => node !== leader);

    const screen = await waitForScreen(
      MAIN_SESSION,
      "a new leader and a connection to a surviving node",
      (text) => {
        const newLeader = survivors.find((node) => memberRow(text, node.id).startsWith("│* "));
        return newLeader !== undefined && text.includes(`leader ${newLeader.id}, term`) && survivors.some((node) => text.includes(`connected to ${node.id}`));
      },
      20_000,
    );
    expect(memberRow(screen, leader.id)).toContain("down");
    expect(memberRow(screen, leader.id).startsWith("│  ")).toBe(true);

    const newLeader = await leaderOf(survivors);
    expect(newLeader).not.toBeNull();
    expect(memberRow(screen, newLeader?.id ?? "").startsWith("│* ")).toBe(true);
    if (process.env.ECHOKV_UPDATE_SCREEN === "1") {
      writeFileSync(SCREEN_CAPTURE, `${screen.split("\n").map((line) => line.trimEnd()).join("\n").trimEnd()}\n`);
    }
  }, 30_000);

  test("keeps event history after reconnect", async () => {
    // A taller window shows the whole event pane, and also exercises resizing.
    tmux("resize-window", "-t", MAIN_SESSION, "-x", "160", "-y", "60");
    const screen = await waitForScreen(MAIN_SESSION, "the events before and after the reconnect", (text) =>
      text.includes(`lost the connection to ${leader.id}`),
    );
    const flat = screen.replace(/[│\s]+/g, " ");
    expect(flat).toContain(`console connected to ${leader.id} at ${leader.clientAddr}`);
    expect(flat).toMatch(/console connected to node-\d at 127\.0\.0\.1:\d+ \((leader|follower|candidate) in term/);
    expect(flat).toContain(`${leader.id} at ${leader.clientAddr} is unreachable`);
    expect(screen).toContain("CLIENT ADDR");
  }, 20_000);

  test("works with TERM=screen and quits on q", async () => {
    const survivor = nodes.find((node) => node !== leader) ?? nodes[1];
    startConsole(SCREEN_SESSION, "screen", survivor.clientAddr);
    const screen = await waitForScreen(SCREEN_SESSION, "the members under TERM=screen", (text) => text.includes(`connected to ${survivor.id}`));
    expect(screen).toContain("┌─ Members");
    expect(screen).toContain("└");
    expect(screen).not.toContain("lqqq");

    type(SCREEN_SESSION, "q");
    await waitForScreen(SCREEN_SESSION, "the console to exit", (text) => text.includes("console exited with status 0"));
  }, 20_000);

  test("quits on Ctrl+C", async () => {
    type(MAIN_SESSION, "", "C-c");
    await waitForScreen(MAIN_SESSION, "the console to exit", (text) => text.includes("console exited with status 0"));
  }, 20_000);
});
