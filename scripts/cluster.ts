// Starts a local three-node cluster from dist/echokv: client ports 5379-5381,
// Raft ports 15379-15381, data under ./data. Ctrl+C stops all three.
// Usage: bun scripts/cluster.ts [--nodes N] [--base-port 5379] [--raft-base-port PORT] [--data DIR]
// The Raft ports start at --raft-base-port, by default 10,000 above --base-port.

import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import type { Subprocess } from "bun";
import { RespClient } from "../src/client/client.ts";

const { values } = parseArgs({
  options: {
    nodes: { type: "string", default: "3" },
    "base-port": { type: "string", default: "5379" },
    "raft-base-port": { type: "string" },
    data: { type: "string", default: "data" },
  },
});

const nodeCount = Number(values.nodes);
const basePort = Number(values["base-port"]);
if (!Number.isInteger(nodeCount) || nodeCount < 1 || nodeCount > 9) {
  console.error(`invalid --nodes "${values.nodes}": expected 1 to 9`);
  process.exit(2);
}
const explicitRaftPort = values["raft-base-port"] !== undefined;
if (!Number.isInteger(basePort) || basePort < 1024 || basePort > 65535 - (explicitRaftPort ? 0 : 10_000) - nodeCount) {
  console.error(`invalid --base-port "${values["base-port"]}": expected 1024 to ${65535 - (explicitRaftPort ? 0 : 10_000) - nodeCount}`);
  process.exit(2);
}
const raftBasePort = explicitRaftPort ? Number(values["raft-base-port"]) : basePort + 10_000;
if (!Number.isInteger(raftBasePort) || raftBasePort < 1024 || raftBasePort > 65535 - nodeCount) {
  console.error(`invalid --raft-base-port "${values["raft-base-port"]}": expected 1024 to ${65535 - nodeCount}`);
  process.exit(2);
}
if (Math.abs(raftBasePort - basePort) < nodeCount) {
  console.error(`--raft-base-port ${raftBasePort} overlaps the client ports ${basePort} to ${basePort + nodeCount - 1}; choose ports at least ${nodeCount} apart`);
  process.exit(2);
}

const binary = resolve(import.meta.dir, "..", "dist", "echokv");
if (!existsSync(binary)) {
  console.error(`${binary} is missing; run 'npm run build' first`);
  process.exit(1);
}

// Node names are coloured only on a terminal, and never when NO_COLOR is set.
const useColor = process.stderr.isTTY === true && process.env.NO_COLOR === undefined;
const colors = useColor ? ["\x1b[36m", "\x1b[33m", "\x1b[35m", "\x1b[32m", "\x1b[34m"] : [""];
const reset = useColor ? "\x1b[0m" : "";
const children: Subprocess[] = [];
let stopping = false;

/** Copies a child's log lines to our stderr, each prefixed with the node id. */
async function relay(stream: ReadableStream<Uint8Array>, name: string, color: string): Promise<void> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true });
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) process.stderr.write(`${color}${name.padEnd(7)}${reset}| ${line}\n`);
  }
}

function dataDirOf(index: number): string {
  return join(values.data!, `node-${index + 1}`);
}

/** Starts node `index`. With `joinPort`, the node joins through the member on that client port. */
function startNode(index: number, joinPort: number | null): void {
  const id = `node-${index + 1}`;
  const args = [
    "serve",
    "--node-id", id,
    "--listen-addr", `127.0.0.1:${basePort + index}`,
    "--raft-addr", `127.0.0.1:${raftBasePort + index}`,
    "--data-dir", dataDirOf(index),
  ];
  if (joinPort !== null) args.push("--join-addr", `127.0.0.1:${joinPort}`);
  const child = Bun.spawn([binary, ...args], { stdout: "inherit", stderr: "pipe", stdin: "ignore" });
  children[index] = child;
  void relay(child.stderr, id, colors[index % colors.length]);
  void child.exited.then((code) => {
    if (!stopping) console.error(`${id} exited with status ${code}`);
  });
}

/** Returns the INFO server reply of the node on 127.0.0.1:`port`, or "" when none arrives within a second. */
async function infoServer(port: number): Promise<string> {
  let client: RespClient | null = null;
  try {
    client = await RespClient.connect(`127.0.0.1:${port}`, { timeoutMs: 1000 });
    const reply = await client.command(["INFO", "server"]);
    return reply.type === "bulk" && reply.value !== null ? reply.value.toString("utf8") : "";
  } catch {
    return "";
  } finally {
    client?.close();
  }
}

/**
 * Waits until INFO on node `index`'s client port returns that node's id and
 * a cluster id, which a joining node has once it was added. Fails at once
 * when the node exits or another EchoKV node serves that port.
 */
async function waitForNode(index: number, timeoutMs: number): Promise<void> {
  const id = `node-${index + 1}`;
  const port = basePort + index;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const child = children[index];
    if (child.exitCode !== null) throw new Error(`${id} exited with status ${child.exitCode} before it was ready; its log lines are above`);
    const info = await infoServer(port);
    const served = /node_id:([^\r\n]*)/.exec(info)?.[1];
    if (served === id && /cluster_id:[^\r\n]+/.test(info)) return;
    if (served !== undefined && served !== id) throw new Error(`port ${port} is served by another EchoKV node (${served}), not ${id}; choose another --base-port`);
    await Bun.sleep(100);
  }
  throw new Error(`${id} did not respond on port ${port} within ${timeoutMs} ms`);
}

async function stopAll(reason: string, exitCode = 0): Promise<void> {
  if (stopping) return;
  stopping = true;
  const running = children.filter((child) => child.exitCode === null);
  console.error(`\n${reason}: stopping ${running.length} of ${children.length} nodes`);
  for (const child of children) child.kill("SIGTERM");
  await Promise.race([Promise.all(children.map((child) => child.exited)), Bun.sleep(5000)]);
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  process.exit(exitCode);
}

process.on("SIGINT", () => void stopAll("SIGINT"));
process.on("SIGTERM", () => void stopAll("SIGTERM"));

// node-1 bootstraps the cluster. When its data directory is gone but
// another node's is not, it would bootstrap a second cluster, so the others
// start first and node-1 joins them, as a node with lost data does.
const others = Array.from({ length: nodeCount - 1 }, (_, i) => i + 1);
const firstRejoins = !existsSync(dataDirOf(0)) && others.some((index) => existsSync(dataDirOf(index)));
try {
  if (firstRejoins) {
    console.error(`${dataDirOf(0)} is missing: node-1 joins the other nodes instead of bootstrapping a new cluster`);
    for (const index of others) startNode(index, basePort);
    for (const index of others) await waitForNode(index, 10_000);
    startNode(0, basePort + 1);
    await waitForNode(0, 30_000);
  } else {
    startNode(0, null);
    await waitForNode(0, 10_000);
    for (const index of others) startNode(index, basePort);
    for (const index of others) await waitForNode(index, 10_000);
  }
} catch (err) {
  console.error(`cannot start the cluster: ${err instanceof Error ? err.message : String(err)}`);
  await stopAll("error", 1);
}

const ports = Array.from({ length: nodeCount }, (_, index) => basePort + index);
console.log(`
EchoKV cluster of ${nodeCount} nodes is running (data in ${resolve(values.data!)}).
Connect with any of:
${ports.map((port) => `  ./dist/echokv cli --connect 127.0.0.1:${port}`).join("\n")}
  redis-cli -p ${basePort}
Admin console:  ./dist/echokv tui --connect 127.0.0.1:${basePort}
Press Ctrl+C to stop all nodes.
`);
