// Test harness that runs real `dist/echokv serve` processes on 127.0.0.1.
//
// Each Cluster owns one temporary directory (data dirs and per-node log files)
// and the processes it started. Nodes get free ports, are started with
// Bun.spawn, are signalled by PID and restart with the same arguments.
// `clusterTest` and `installClusterHooks` make sure every process is killed and
// every directory removed after each test, also when the test fails or times
// out, and print the tail of each node's log when a test did not finish.

import { afterAll, afterEach, test } from "bun:test";
import type { Socket, Subprocess } from "bun";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { RespClient } from "../../src/client/client.ts";
import { RespReplyParser, type RespValue } from "../../src/protocol/resp.ts";

/** Path of the compiled binary that `npm run build` writes. */
export const ECHOKV_BINARY = resolve(import.meta.dir, "../../dist/echokv");

/** Keeps the temporary directories of finished tests when set to 1, for debugging. */
const KEEP_DIRS = process.env.ECHOKV_TEST_KEEP_DIRS === "1";

/** Returns the binary path, or throws telling the reader to build it. */
export function requireBinary(): string {
  if (!existsSync(ECHOKV_BINARY)) {
    throw new Error(`${ECHOKV_BINARY} does not exist: run \`npm run build\` in the repository root, then rerun the tests`);
  }
  return ECHOKV_BINARY;
}

// ---------------------------------------------------------------------------
// Processes started by this test process, killed on exit as a last resort.

const livePids = new Set<number>();

process.on("exit", () => {
  for (const pid of livePids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
});

/** Registers a spawned process, so that the hooks kill it by PID if a test leaves it running. */
export function track(proc: Subprocess): void {
  livePids.add(proc.pid);
  proc.exited.then(() => livePids.delete(proc.pid));
}

// ---------------------------------------------------------------------------
// Ports and polling

const handedOutPorts = new Set<number>();

/**
 * Returns a port that was free on 127.0.0.1 a moment ago: the kernel picks it
 * for a listener on port 0, which is closed again. Each port is handed out
 * once per test process, so two nodes never get the same one.
 */
export function freePort(): number {
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

export interface WaitOptions {
  timeoutMs: number;
  /** Pause between probes; 50 ms by default. */
  intervalMs?: number;
}

/**
 * Calls `probe` until it returns a value other than null, undefined or false,
 * at most until `timeoutMs` has passed. An exception counts as "not yet", and
 * the timeout error quotes the last one together with `what`.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | null | undefined | false> | T | null | undefined | false,
  options: WaitOptions,
): Promise<T> {
  const intervalMs = options.intervalMs ?? 50;
  const started = Date.now();
  const maxAttempts = Math.ceil(options.timeoutMs / intervalMs) + 1;
  let lastProblem = "";
  for (let attempt = 0; attempt < maxAttempts && Date.now() - started <= options.timeoutMs; attempt++) {
    try {
      const result = await probe();
      if (result !== null && result !== undefined && result !== false) return result;
      lastProblem = "";
    } catch (err) {
      lastProblem = err instanceof Error ? err.message : String(err);
    }
    await Bun.sleep(intervalMs);
  }
  const detail = lastProblem === "" ? "" : `; last error: ${lastProblem}`;
  throw new Error(`timed out after ${Date.now() - started} ms waiting for ${what}${detail}`);
}

// ---------------------------------------------------------------------------
// RESP helpers

/** Renders a reply for assertion messages: `OK`, `-ERR ...`, `"bulk"`, `nil`, `:5`, `[...]`. */
export function describeReply(value: RespValue): string {
  switch (value.type) {
    case "simple":
      return value.value;
    case "error":
      return `-${value.message}`;
    case "integer":
      return `:${value.value}`;
    case "bulk":
      return value.value === null ? "nil" : JSON.stringify(value.value.toString("utf8"));
    case "array":
      return value.value === null ? "nil array" : `[${value.value.map(describeReply).join(", ")}]`;
    default: {
      const unexpected: never = value;
      throw new Error(`unexpected reply ${JSON.stringify(unexpected)}`);
    }
  }
}

/** Returns the text of a bulk or simple-string reply, null for a nil bulk, and throws otherwise. */
export function replyText(value: RespValue): string | null {
  if (value.type === "bulk") return value.value === null ? null : value.value.toString("utf8");
  if (value.type === "simple") return value.value;
  throw new Error(`expected a bulk or simple string reply, got ${describeReply(value)}`);
}

/** Parses an INFO reply into its `field:value` pairs. */
export function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    if (line === "" || line.startsWith("#")) continue;
    const colon = line.indexOf(":");
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return fields;
}

/** Sends one command on a new connection to `addr` and returns the reply. */
export async function sendCommand(addr: string, args: readonly (string | Uint8Array)[], timeoutMs = 5000): Promise<RespValue> {
  const client = await RespClient.connect(addr, { timeoutMs });
  try {
    return await client.command(args, { timeoutMs });
  } finally {
    client.close();
  }
}

// ---------------------------------------------------------------------------
// Raw sockets, for bytes that the client library would never send

/** A TCP connection that writes exact bytes and collects whatever comes back. */
export class RawConnection {
  readonly #socket: Socket<undefined>;
  readonly #received: Buffer[] = [];
  #receivedBytes = 0;
  readonly #parser = new RespReplyParser();
  /** Index into #received of the first chunk not yet pushed to #parser. */
  #parsedChunks = 0;
  readonly #replies: RespValue[] = [];
  #unsent: Buffer[] = [];
  #closed = false;
  #wake: (() => void) | null = null;

  private constructor(socket: Socket<undefined>) {
    this.#socket = socket;
  }

  static async open(addr: string, timeoutMs = 5000): Promise<RawConnection> {
    const colon = addr.lastIndexOf(":");
    let connection: RawConnection | null = null;
    const pending: Buffer[] = [];
    let closedEarly = false;
    const connecting = Bun.connect({
      hostname: addr.slice(0, colon),
      port: Number(addr.slice(colon + 1)),
      socket: {
        data: (_socket, chunk) => {
          if (connection) connection.#onData(chunk);
          else pending.push(Buffer.from(chunk));
        },
        drain: () => {
          if (connection) connection.#flush();
        },
        close: () => {
          if (connection) connection.#onClose();
          else closedEarly = true;
        },
        error: () => {
          if (connection) connection.#onClose();
          else closedEarly = true;
        },
        connectError: () => {},
      },
    });
    const timer = Bun.sleep(timeoutMs).then(() => null);
    const socket = await Promise.race([connecting, timer]);
    if (socket === null) throw new Error(`could not connect to ${addr} within ${timeoutMs} ms`);
    connection = new RawConnection(socket);
    for (const chunk of pending) connection.#onData(chunk);
    if (closedEarly) connection.#onClose();
    return connection;
  }

  /** Whether the server (or this side) has closed the connection. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Everything received so far. */
  get received(): Buffer {
    return Buffer.concat(this.#received, this.#receivedBytes);
  }

  /** Queues `data` for sending. Bytes that the socket does not take yet go out on the next drain. */
  write(data: string | Uint8Array): void {
    if (this.#closed) throw new Error("cannot write: the connection is closed");
    this.#unsent.push(Buffer.from(data));
    this.#flush();
  }

  /** Sends `data` one byte at a time with `gapMs` between bytes. */
  async writeSlowly(data: string | Uint8Array, gapMs: number): Promise<void> {
    const bytes = Buffer.from(data);
    for (let i = 0; i < bytes.byteLength; i++) {
      this.write(bytes.subarray(i, i + 1));
      await Bun.sleep(gapMs);
    }
  }

  /**
   * Waits until `done(received)` is true or the server closes the connection,
   * at most `timeoutMs`. Returns whether `done` became true.
   */
  async waitFor(done: (received: Buffer) => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (done(this.received)) return true;
      const left = deadline - Date.now();
      if (this.#closed || left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Waits until the server closes the connection and returns whether it did within `timeoutMs`. */
  async waitForClose(timeoutMs: number): Promise<boolean> {
    await this.waitFor(() => false, timeoutMs);
    return this.#closed;
  }

  /**
   * Waits until `count` complete replies have arrived, the server closes the
   * connection, or `timeoutMs` passes, and returns the replies parsed so far.
   * Parses incrementally, so waiting for many replies stays linear.
   */
  async readReplies(count: number, timeoutMs: number): Promise<RespValue[]> {
    await this.waitFor(() => this.#parseNew() >= count, timeoutMs);
    this.#parseNew();
    return [...this.#replies];
  }

  #parseNew(): number {
    while (this.#parsedChunks < this.#received.length) this.#parser.push(this.#received[this.#parsedChunks++]);
    for (;;) {
      const result = this.#parser.next();
      if (result.kind === "incomplete") return this.#replies.length;
      if (result.kind === "error") throw new Error(`invalid RESP after ${this.#replies.length} replies: ${result.message}`);
      this.#replies.push(result.value);
    }
  }

  /** Closes the connection at once, dropping anything not yet sent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.terminate();
  }

  #flush(): void {
    while (this.#unsent.length > 0 && !this.#closed) {
      const chunk = this.#unsent[0];
      const written = this.#socket.write(chunk);
      if (written < 0) return;
      if (written < chunk.byteLength) {
        this.#unsent[0] = chunk.subarray(written);
        return;
      }
      this.#unsent.shift();
    }
  }

  #onData(chunk: Uint8Array): void {
    this.#received.push(Buffer.from(chunk));
    this.#receivedBytes += chunk.byteLength;
    this.#wake?.();
  }

  #onClose(): void {
    this.#closed = true;
    this.#wake?.();
  }
}

// ---------------------------------------------------------------------------
// One-shot runs of the binary (cli, bad flags) and of other programs

export interface RunResult {
  exitCode: number | null;
  stdout: string;
  stderr: string;
  /** True when the process had to be killed after `timeoutMs`. */
  timedOut: boolean;
  elapsedMs: number;
}

export interface RunOptions {
  /** Written to the program's standard input, which is closed afterwards. */
  stdin?: string;
  timeoutMs: number;
  /** Working directory; the harness's own when absent. */
  cwd?: string;
}

/** Runs `echokv ARGS`, feeding `stdin` when given, and kills it by PID after `timeoutMs`. */
export function runEchokv(args: string[], options: RunOptions): Promise<RunResult> {
  return runProgram([requireBinary(), ...args], options);
}

/** Runs a program to completion, feeding `stdin` when given, and kills it by PID after `timeoutMs`. */
export async function runProgram(argv: string[], options: RunOptions): Promise<RunResult> {
  const started = Date.now();
  const proc = Bun.spawn(argv, {
    cwd: options.cwd,
    stdin: options.stdin === undefined ? "ignore" : "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
  track(proc);
  if (options.stdin !== undefined && proc.stdin) {
    proc.stdin.write(options.stdin);
    await proc.stdin.end();
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, options.timeoutMs);
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  clearTimeout(timer);
  return { exitCode: timedOut ? null : exitCode, stdout, stderr, timedOut, elapsedMs: Date.now() - started };
}

// ---------------------------------------------------------------------------
// Nodes and clusters

export type Signal = "SIGKILL" | "SIGTERM" | "SIGSTOP" | "SIGCONT" | "SIGINT";

/**
 * How long `start` waits:
 * - joined: until PING returns PONG and INFO shows a cluster id (the default);
 * - ping: until PING returns PONG;
 * - none: not at all (for nodes expected to exit).
 */
export type Readiness = "joined" | "ping" | "none";

export interface NodeOptions {
  id?: string;
  /** Client address passed as --join-addr; null bootstraps. Defaults to node 0's address when the cluster has nodes. */
  joinAddr?: string | null;
  /** Extra flags appended after the cluster's extra flags. */
  extraArgs?: string[];
  /** Data directory; a new one inside the cluster directory when absent. */
  dataDir?: string;
  /** Client and raft ports; free ones when absent. */
  ports?: { client: number; raft: number };
  /** Variables added to the harness's environment for every start. */
  env?: Record<string, string>;
}

export interface ClusterOptions {
  /** Value of --tick-ms, or the product default (50) when absent. */
  tickMs?: number;
  /** Value of --election-ticks, or the product default (10) when absent. */
  electionTicks?: number;
  /** Flags passed to every node. */
  extraArgs?: string[];
  /** Name used in the temporary directory, to find it in /tmp when kept. */
  name?: string;
  /** Keeps the cluster until the end of the test file instead of the end of the test. */
  shared?: boolean;
}

/** One `echokv serve` process slot: fixed id, ports and data dir across restarts. */
export class ClusterNode {
  readonly id: string;
  clientPort: number;
  raftPort: number;
  readonly dataDir: string;
  readonly logPath: string;
  /** Value of --join-addr on the next start. Tests may change it between restarts. */
  joinAddr: string | null;
  /** Flags appended on every start. Tests may change them between restarts. */
  extraArgs: string[];
  /** Variables added to the harness's environment for every start. */
  readonly env: Record<string, string>;
  /** Number of times the process was started. */
  starts = 0;
  #proc: Subprocess | null = null;
  #exitCode: number | null = null;

  constructor(
    id: string,
    dataDir: string,
    logPath: string,
    joinAddr: string | null,
    extraArgs: string[],
    ports?: { client: number; raft: number },
    env: Record<string, string> = {},
  ) {
    this.id = id;
    this.env = env;
    this.clientPort = ports?.client ?? freePort();
    this.raftPort = ports?.raft ?? freePort();
    this.dataDir = dataDir;
    this.logPath = logPath;
    this.joinAddr = joinAddr;
    this.extraArgs = extraArgs;
  }

  get clientAddr(): string {
    return `127.0.0.1:${this.clientPort}`;
  }

  /** Picks new free ports for the next start, as for a node that comes back on other addresses. */
  moveToNewPorts(): void {
    if (this.running) throw new Error(`${this.id} must be stopped before it moves`);
    this.clientPort = freePort();
    this.raftPort = freePort();
  }

  get raftAddr(): string {
    return `127.0.0.1:${this.raftPort}`;
  }

  /** PID of the current process, or null when it was never started. */
  get pid(): number | null {
    return this.#proc?.pid ?? null;
  }

  /** Whether the current process has not exited (it may be stopped with SIGSTOP). */
  get running(): boolean {
    return this.#proc !== null && this.#proc.exitCode === null && this.#proc.signalCode === null;
  }

  /** Exit code of the last process, null while running or when killed by a signal. */
  get exitCode(): number | null {
    return this.#exitCode;
  }

  /** Resolves with the exit code (null when killed by a signal) once the current process has exited. */
  async exited(): Promise<number | null> {
    if (this.#proc === null) throw new Error(`${this.id} was never started`);
    await this.#proc.exited;
    return this.#proc.exitCode;
  }

  /** Returns the `serve` command line, without the binary. */
  args(): string[] {
    const args = ["serve", "--node-id", this.id, "--listen-addr", this.clientAddr, "--raft-addr", this.raftAddr, "--data-dir", this.dataDir];
    if (this.joinAddr !== null) args.push("--join-addr", this.joinAddr);
    return [...args, ...this.extraArgs];
  }

  /** Starts the process with stdout and stderr appended to the log file. */
  spawn(): void {
    if (this.running) throw new Error(`${this.id} is already running as PID ${this.pid}`);
    this.starts++;
    const logFd = openSync(this.logPath, "a");
    try {
      writeSync(logFd, `--- harness: start #${this.starts}: echokv ${this.args().join(" ")}\n`);
      const proc = Bun.spawn([requireBinary(), ...this.args()], {
        stdin: "ignore",
        stdout: logFd,
        stderr: logFd,
        env: { ...process.env, ...this.env },
      });
      track(proc);
      this.#proc = proc;
      this.#exitCode = null;
      proc.exited.then((code) => {
        if (this.#proc === proc) this.#exitCode = proc.signalCode === null ? code : null;
      });
    } finally {
      closeSync(logFd);
    }
  }

  /** Sends `signal` to the current process by PID. */
  signal(signal: Signal): void {
    if (!this.running) throw new Error(`cannot send ${signal} to ${this.id}: it is not running`);
    this.#proc!.kill(signal);
  }

  /** Returns the last `lines` lines of the log file. */
  logTail(lines = 40): string {
    if (!existsSync(this.logPath)) return "(no log file)";
    const all = readFileSync(this.logPath, "utf8").trimEnd().split("\n");
    return all.slice(-lines).join("\n");
  }

  /** Waits up to `timeoutMs` for the process to exit and returns its exit code, or "still running". */
  async exitWithin(timeoutMs: number): Promise<number | null | "still running"> {
    return Promise.race([this.exited(), Bun.sleep(timeoutMs).then(() => "still running" as const)]);
  }

  /** Returns the error line the binary printed before exiting ("echokv: ..."), or "" when there is none. */
  fatalMessage(): string {
    return this.log().split("\n").find((line) => line.startsWith("echokv: ")) ?? "";
  }

  /** Returns the whole log file. */
  log(): string {
    return existsSync(this.logPath) ? readFileSync(this.logPath, "utf8") : "";
  }

  /**
   * Waits until the log file contains `text`. Use it for lines another
   * process writes after the event the test observed, such as a leader
   * logging a finished transfer after its follower already applied it.
   */
  async waitForLog(text: string, timeoutMs = 5000): Promise<void> {
    await waitFor(`"${text}" in the log of ${this.id}`, () => this.log().includes(text), { timeoutMs });
  }
}

const liveClusters = new Set<Cluster>();

/** A set of nodes sharing one temporary directory. */
export class Cluster {
  readonly dir: string;
  readonly nodes: ClusterNode[] = [];
  readonly options: ClusterOptions;
  /** "test" clusters are destroyed after each test, "file" clusters after the file. */
  readonly scope: "test" | "file";
  #destroyed = false;
  #clients = new Map<string, { pid: number | null; client: RespClient }>();

  constructor(options: ClusterOptions = {}) {
    requireBinary();
    this.options = options;
    this.scope = options.shared ? "file" : "test";
    this.dir = mkdtempSync(join(tmpdir(), `echokv-${options.name ?? "cluster"}-`));
    liveClusters.add(this);
  }

  /** Creates a node slot (not started). Ids default to node-1, node-2, ... */
  addNode(options: NodeOptions = {}): ClusterNode {
    this.#checkAlive();
    const id = options.id ?? `node-${this.nodes.length + 1}`;
    const joinAddr = options.joinAddr !== undefined ? options.joinAddr : (this.nodes[0]?.clientAddr ?? null);
    const flags: string[] = [];
    if (this.options.tickMs !== undefined) flags.push("--tick-ms", String(this.options.tickMs));
    if (this.options.electionTicks !== undefined) flags.push("--election-ticks", String(this.options.electionTicks));
    flags.push(...(this.options.extraArgs ?? []), ...(options.extraArgs ?? []));
    const dirName = `${id}-${this.nodes.length}`;
    const dataDir = options.dataDir ?? join(this.dir, dirName);
    const node = new ClusterNode(id, dataDir, join(this.dir, `${dirName}.log`), joinAddr, flags, options.ports, options.env);
    this.nodes.push(node);
    return node;
  }

  /** Returns the node with `id`, and throws when there is none. */
  node(id: string): ClusterNode {
    const node = this.nodes.find((candidate) => candidate.id === id);
    if (!node) throw new Error(`no node ${id} in this cluster (have ${this.nodes.map((n) => n.id).join(", ")})`);
    return node;
  }

  /** Nodes whose process has not exited. */
  running(): ClusterNode[] {
    return this.nodes.filter((node) => node.running);
  }

  /** Starts `node` and waits as `readiness` specifies, at most `timeoutMs`. Fails early, with the log tail, when the process exits. */
  async start(node: ClusterNode, readiness: Readiness = "joined", timeoutMs = 15_000): Promise<void> {
    this.#checkAlive();
    node.spawn();
    if (readiness === "none") return;
    const exited = node.exited().then((code) => ({ exited: code }));
    const ready = waitFor(
      `${node.id} to ${readiness === "joined" ? "join a cluster" : "answer PING"}`,
      async () => {
        const pong = await sendCommand(node.clientAddr, ["PING"], 1000);
        if (pong.type !== "simple" || pong.value !== "PONG") return false;
        if (readiness === "ping") return true;
        const info = await this.info(node);
        return (info.get("cluster_id") ?? "") !== "";
      },
      { timeoutMs, intervalMs: 50 },
    );
    const outcome = await Promise.race([ready.then(() => null), exited]).catch((err: Error) => ({ failed: err.message }));
    if (outcome === null) return;
    const reason = "exited" in outcome ? `exited with status ${outcome.exited} before it was ready` : outcome.failed;
    throw new Error(`${node.id} (PID ${node.pid}) ${reason}\n${this.#formatTail(node)}`);
  }

  /** Starts `size` nodes and waits until all are voters. node-1 bootstraps, and the others join through it in parallel. */
  async startCluster(size: number, timeoutMs = 30_000): Promise<ClusterNode[]> {
    const first = this.addNode({ joinAddr: null });
    await this.start(first);
    await this.waitForLeader([first], timeoutMs);
    const others: ClusterNode[] = [];
    for (let i = 1; i < size; i++) others.push(this.addNode());
    await Promise.all(others.map((node) => this.start(node, "joined", timeoutMs)));
    const all = [first, ...others];
    await this.waitForVoters(all, timeoutMs);
    return all;
  }

  /** Sends `signal` by PID. After SIGKILL, SIGTERM and SIGINT it also waits, at most 10 s, for the process to exit. */
  async kill(node: ClusterNode, signal: Signal = "SIGKILL"): Promise<void> {
    node.signal(signal);
    if (signal === "SIGSTOP" || signal === "SIGCONT") return;
    const exited = await Promise.race([node.exited().then(() => true), Bun.sleep(10_000).then(() => false)]);
    if (!exited) throw new Error(`${node.id} (PID ${node.pid}) did not exit within 10 s after ${signal}\n${this.#formatTail(node)}`);
    this.#dropClient(node);
  }

  /** SIGKILLs `node` when it is running, then starts it again with the same arguments. */
  async restart(node: ClusterNode, readiness: Readiness = "joined", timeoutMs = 15_000): Promise<void> {
    if (node.running) await this.kill(node, "SIGKILL");
    await this.start(node, readiness, timeoutMs);
  }

  /** Returns a cached client connection to `node`, reopened after a restart or a lost connection. */
  async client(node: ClusterNode, timeoutMs = 5000): Promise<RespClient> {
    const cached = this.#clients.get(node.id);
    if (cached && cached.pid === node.pid && !cached.client.closed) return cached.client;
    cached?.client.close();
    const client = await RespClient.connect(node.clientAddr, { timeoutMs });
    this.#clients.set(node.id, { pid: node.pid, client });
    return client;
  }

  /** Sends one command to `node` on the cached connection. */
  async command(node: ClusterNode, args: readonly (string | Uint8Array)[], timeoutMs = 5000): Promise<RespValue> {
    const client = await this.client(node, timeoutMs);
    return client.command(args, { timeoutMs });
  }

  /** Returns INFO of `node` as field/value pairs, read on a fresh connection with a short timeout. */
  async info(node: ClusterNode, timeoutMs = 1000): Promise<Map<string, string>> {
    const reply = await sendCommand(node.clientAddr, ["INFO"], timeoutMs);
    const text = replyText(reply);
    if (text === null) throw new Error(`INFO on ${node.id} returned nil`);
    return parseInfo(text);
  }

  /** Returns the member ids listed in INFO of `node`, in order. */
  async memberIds(node: ClusterNode): Promise<string[]> {
    const info = await this.info(node);
    const ids: string[] = [];
    for (const [field, value] of info) {
      if (/^member\d+$/.test(field)) ids.push(/(?:^|,)id=([^,]+)/.exec(value)?.[1] ?? "?");
    }
    return ids;
  }

  /**
   * Returns the node of `among` that reports role:leader when every other node
   * of `among` that replies to INFO names it as leader_id, or null.
   */
  async findLeader(among: ClusterNode[] = this.running()): Promise<ClusterNode | null> {
    const infos = await Promise.all(among.map((node) => this.info(node, 500).then((info) => ({ node, info }), () => null)));
    const answered = infos.filter((entry) => entry !== null);
    const leaders = answered.filter((entry) => entry.info.get("role") === "leader");
    if (leaders.length !== 1) return null;
    const leader = leaders[0].node;
    return answered.every((entry) => entry.info.get("leader_id") === leader.id) ? leader : null;
  }

  /** Waits until `findLeader(among)` returns a node (default: among every running node). */
  async waitForLeader(among: ClusterNode[] = this.running(), timeoutMs = 10_000): Promise<ClusterNode> {
    const what = `a leader among ${among.map((node) => node.id).join(", ")}`;
    try {
      return await waitFor(what, () => this.findLeader(among), { timeoutMs, intervalMs: 50 });
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${this.logTails(among)}`);
    }
  }

  /** Waits until the leader's INFO lists exactly `nodes` as members, all voters. */
  async waitForVoters(nodes: ClusterNode[], timeoutMs = 15_000): Promise<void> {
    const wanted = nodes.map((node) => node.id).sort().join(",");
    await waitFor(
      `members ${wanted}, all voters`,
      async () => {
        const leader = await this.findLeader();
        if (leader === null) return false;
        const info = await this.info(leader);
        const members = [...info].filter(([field]) => /^member\d+$/.test(field)).map(([, value]) => value);
        const ids = members.map((value) => /(?:^|,)id=([^,]+)/.exec(value)?.[1] ?? "?").sort().join(",");
        return ids === wanted && members.every((value) => value.includes("voter=yes"));
      },
      { timeoutMs, intervalMs: 100 },
    );
  }

  /** Waits until GET `key` on `node` returns `value` (null for a missing key). Local reads on followers may lag. */
  async waitForValue(node: ClusterNode, key: string, value: string | null, timeoutMs = 5000): Promise<void> {
    let last = "(no reply)";
    try {
      await waitFor(
        `GET ${key} on ${node.id} to return ${JSON.stringify(value)}`,
        async () => {
          const reply = await sendCommand(node.clientAddr, ["GET", key], 1000);
          last = describeReply(reply);
          return reply.type === "bulk" && (reply.value === null ? null : reply.value.toString("utf8")) === value;
        },
        { timeoutMs, intervalMs: 50 },
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}; last reply ${last}\n${this.#formatTail(node)}`);
    }
  }

  /** Waits until `node` has applied at least `index` (INFO applied_index). */
  async waitForApplied(node: ClusterNode, index: number, timeoutMs = 10_000): Promise<void> {
    await waitFor(
      `${node.id} to apply index ${index}`,
      async () => Number((await this.info(node)).get("applied_index")) >= index,
      { timeoutMs, intervalMs: 50 },
    );
  }

  /** Resident set size of `node`'s process in bytes, from /proc. */
  rssBytes(node: ClusterNode): number {
    const status = readFileSync(`/proc/${node.pid}/status`, "utf8");
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    if (!match) throw new Error(`no VmRSS line in /proc/${node.pid}/status`);
    return Number(match[1]) * 1024;
  }

  /** Returns the log tails of `nodes` (default: all), each under a header. */
  logTails(nodes: ClusterNode[] = this.nodes, lines = 40): string {
    return nodes.map((node) => this.#formatTail(node, lines)).join("\n");
  }

  /** Kills every process of the cluster by PID (SIGKILL), closes clients and removes the directory. */
  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    liveClusters.delete(this);
    for (const { client } of this.#clients.values()) client.close();
    this.#clients.clear();
    const waits: Promise<unknown>[] = [];
    for (const node of this.nodes) {
      if (!node.running) continue;
      node.signal("SIGKILL");
      waits.push(Promise.race([node.exited(), Bun.sleep(5000)]));
    }
    await Promise.all(waits);
    if (KEEP_DIRS) console.error(`kept test directory ${this.dir}`);
    else rmSync(this.dir, { recursive: true, force: true });
  }

  #formatTail(node: ClusterNode, lines = 40): string {
    return `----- ${node.id} (PID ${node.pid ?? "-"}, ${node.logPath}), last ${lines} lines -----\n${node.logTail(lines)}`;
  }

  #dropClient(node: ClusterNode): void {
    this.#clients.get(node.id)?.client.close();
    this.#clients.delete(node.id);
  }

  #checkAlive(): void {
    if (this.#destroyed) throw new Error("this cluster was already destroyed (did the test time out?)");
  }
}

// ---------------------------------------------------------------------------
// bun:test integration

let testFinished = true;

/**
 * Registers bun:test hooks for the calling test file. After each test it
 * prints the log tails of every live cluster when the test did not reach its
 * end (failure or timeout), then destroys the clusters created inside the
 * test. After the file it destroys the remaining ones.
 */
export function installClusterHooks(): void {
  afterEach(async () => {
    const unfinished = !testFinished;
    testFinished = true;
    for (const cluster of [...liveClusters]) {
      if (unfinished) console.error(`log tails of cluster ${cluster.dir}:\n${cluster.logTails()}`);
      if (cluster.scope === "test") await cluster.destroy();
    }
  });
  afterAll(async () => {
    for (const cluster of [...liveClusters]) await cluster.destroy();
  });
}

/** Declares a test whose clusters are cleaned up by `installClusterHooks`; `timeoutMs` is required. */
export function clusterTest(name: string, body: () => Promise<void>, timeoutMs: number): void {
  test(
    name,
    async () => {
      testFinished = false;
      await body();
      testFinished = true;
    },
    timeoutMs,
  );
}

/**
 * Returns a function that runs `setup` once, on first call, and hands every
 * caller the same result. Tests call it instead of using beforeAll, so a
 * failed setup fails each test that needs it instead of skipping them.
 */
export function sharedFixture<T>(setup: () => Promise<T>): () => Promise<T> {
  let result: Promise<T> | null = null;
  return () => {
    result ??= setup();
    return result;
  };
}

// ---------------------------------------------------------------------------
// Continuous writes, for failover tests and measurements

export interface WriteOutcome {
  key: string;
  value: string;
  /** Node the write was sent to. */
  nodeId: string;
  sentAt: number;
  /** Time of the +OK reply, or null when the write failed or its outcome is unknown. */
  ackedAt: number | null;
  /** Error reply or client failure, when not acknowledged. */
  error: string | null;
}

export interface WriterOptions {
  /** Returns the nodes to write through. Called before each write, and writes rotate over them. */
  targets: () => ClusterNode[];
  /** Key prefix: keys are `<prefix><sequence number>` and values are `v<sequence number>`. */
  prefix: string;
  /** A new write starts every `intervalMs`, without waiting for earlier ones. */
  intervalMs: number;
  /** Client-side timeout of each write. */
  timeoutMs: number;
  /** Maximum number of writes waiting for a reply. The writer skips a slot while this many are in flight. */
  maxInFlight?: number;
  /** Upper bound on the writer's run time, in case `stop` is never called. */
  maxDurationMs?: number;
}

/**
 * Starts a SET every `intervalMs` on a fresh connection to the next target,
 * and records each outcome. Open-loop, so a write that hangs until its
 * timeout does not delay the next one.
 */
export class ContinuousWriter {
  readonly outcomes: WriteOutcome[] = [];
  readonly #options: WriterOptions;
  readonly #inFlight = new Set<Promise<void>>();
  #stopped = false;
  #loop: Promise<void> | null = null;
  #sequence = 0;

  constructor(options: WriterOptions) {
    this.#options = options;
  }

  start(): void {
    if (this.#loop !== null) throw new Error("the writer was already started");
    this.#loop = this.#run();
  }

  /** Stops starting writes and waits for those in flight. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
    await Promise.all([...this.#inFlight]);
  }

  /** Outcomes acknowledged with +OK. */
  acked(): WriteOutcome[] {
    return this.outcomes.filter((outcome) => outcome.ackedAt !== null);
  }

  /** Returns the maximum time between two consecutive acknowledgements within [from, to], in ms. */
  longestAckGap(from: number, to: number): number {
    const acks = this.acked()
      .map((outcome) => outcome.ackedAt!)
      .filter((at) => at >= from && at <= to)
      .sort((a, b) => a - b);
    let gap = 0;
    for (let i = 1; i < acks.length; i++) gap = Math.max(gap, acks[i] - acks[i - 1]);
    return gap;
  }

  /** Returns the acknowledged write sent at or after `time` whose acknowledgement came first. */
  firstAckSentAfter(time: number): WriteOutcome | null {
    let first: WriteOutcome | null = null;
    for (const outcome of this.outcomes) {
      if (outcome.sentAt < time || outcome.ackedAt === null) continue;
      if (first === null || outcome.ackedAt < first.ackedAt!) first = outcome;
    }
    return first;
  }

  /** Waits until a write sent at or after `time` is acknowledged, and returns it. */
  async waitForAckSentAfter(time: number, timeoutMs: number): Promise<WriteOutcome> {
    return waitFor(`an acknowledged write sent after ${new Date(time).toISOString()}`, () => this.firstAckSentAfter(time), {
      timeoutMs,
      intervalMs: 5,
    });
  }

  async #run(): Promise<void> {
    const started = Date.now();
    const maxDurationMs = this.#options.maxDurationMs ?? 300_000;
    const maxInFlight = this.#options.maxInFlight ?? 200;
    while (!this.#stopped && Date.now() - started < maxDurationMs) {
      const targets = this.#options.targets();
      if (targets.length > 0 && this.#inFlight.size < maxInFlight) {
        const target = targets[this.#sequence % targets.length];
        const write = this.#write(target, this.#sequence++);
        this.#inFlight.add(write);
        write.finally(() => this.#inFlight.delete(write));
      }
      await Bun.sleep(this.#options.intervalMs);
    }
  }

  async #write(target: ClusterNode, sequence: number): Promise<void> {
    const outcome: WriteOutcome = {
      key: `${this.#options.prefix}${sequence}`,
      value: `v${sequence}`,
      nodeId: target.id,
      sentAt: Date.now(),
      ackedAt: null,
      error: null,
    };
    this.outcomes.push(outcome);
    try {
      const reply = await sendCommand(target.clientAddr, ["SET", outcome.key, outcome.value], this.#options.timeoutMs);
      if (reply.type === "simple" && reply.value === "OK") outcome.ackedAt = Date.now();
      else outcome.error = describeReply(reply);
    } catch (err) {
      outcome.error = err instanceof Error ? err.message : String(err);
    }
  }
}

/**
 * Reads every key of `writes` from `node` in one pipeline and returns a
 * description of each acknowledged write whose value is missing or different.
 * `consistency` is passed as GET's second argument when given.
 */
export async function findLostWrites(node: ClusterNode, writes: WriteOutcome[], consistency?: string): Promise<string[]> {
  const client = await RespClient.connect(node.clientAddr, { timeoutMs: 10_000 });
  try {
    const replies = await Promise.all(
      writes.map((write) => client.command(consistency === undefined ? ["GET", write.key] : ["GET", write.key, consistency])),
    );
    const lost: string[] = [];
    replies.forEach((reply, i) => {
      const got = reply.type === "bulk" && reply.value !== null ? reply.value.toString("utf8") : describeReply(reply);
      if (got !== writes[i].value) lost.push(`${writes[i].key}: acked by ${writes[i].nodeId}, ${node.id} returned ${got}`);
    });
    return lost;
  } finally {
    client.close();
  }
}
