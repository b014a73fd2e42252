// `echokv cli` against a real one-node cluster: one-shot output and exit
// status, and the shell fed through a pipe and through a pseudo-terminal.

import { describe, expect } from "bun:test";
import {
  Cluster,
  clusterTest,
  freePort,
  installClusterHooks,
  replyText,
  requireBinary,
  runEchokv,
  runProgram,
  sendCommand,
  sharedFixture,
  track,
  waitFor,
} from "../support/cluster.ts";

installClusterHooks();

const singleNode = sharedFixture(async () => {
  const cluster = new Cluster({ name: "cli", shared: true, tickMs: 20 });
  const node = cluster.addNode({ joinAddr: null });
  await cluster.start(node);
  await cluster.waitForLeader([node]);
  return { cluster, node };
});

/** Removes terminal control sequences and carriage returns from pseudo-terminal output. */
function stripTerminalCodes(text: string): string {
  return text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").replace(/\r/g, "");
}

describe("help", () => {
  clusterTest(
    "help names the whole command and has no colour codes in a pipe",
    async () => {
      for (const args of [["--help"], ["serve", "--help"], ["cli", "--help"], ["snapshot", "save", "--help"]]) {
        const result = await runEchokv(args, { timeoutMs: 10_000 });
        const label = `echokv ${args.join(" ")}`;
        expect(result.exitCode, label).toBe(0);
        // The usage line names the whole command, nested ones included.
        expect(result.stdout, label).toContain(`USAGE echokv${args.length > 1 ? ` ${args.slice(0, -1).join(" ")}` : ""}`);
        expect(result.stdout.includes("\x1b["), `${label} wrote escape codes: ${JSON.stringify(result.stdout.slice(0, 80))}`).toBe(false);
      }
    },
    30_000,
  );
});

describe("cli subscription", () => {
  clusterTest(
    "SUBSCRIBE streams events until Ctrl-C",
    async () => {
      const cluster = new Cluster({ name: "cli-subscribe", tickMs: 20 });
      const [first] = await cluster.startCluster(1);
      const proc = Bun.spawn([requireBinary(), "cli", "--connect", first.clientAddr, "SUBSCRIBE", "cluster-events"], {
        stdin: "ignore",
        stdout: "pipe",
        stderr: "pipe",
      });
      track(proc);
      let stdout = "";
      const reading = (async () => {
        const decoder = new TextDecoder();
        for await (const chunk of proc.stdout) stdout += decoder.decode(chunk, { stream: true });
      })();
      try {
        await waitFor("the subscription to be confirmed", () => stdout.includes('"subscribe"'), { timeoutMs: 10_000 });
        // A second member joins: the node publishes the membership change.
        await cluster.start(cluster.addNode({ joinAddr: first.clientAddr }));
        await waitFor("a membership event", () => stdout.includes("membership_changed"), { timeoutMs: 10_000 });
        proc.kill("SIGINT");
        expect(await proc.exited).toBe(0);
        await reading;
        expect(stdout).toContain('2) "cluster-events"');
      } finally {
        proc.kill("SIGKILL");
      }
    },
    60_000,
  );
});

describe("cli one-shot", () => {
  clusterTest(
    "SET prints OK",
    async () => {
      const { node } = await singleNode();
      const result = await runEchokv(["cli", "--connect", node.clientAddr, "SET", "cli_key", "cli value"], { timeoutMs: 10_000 });
      expect(result.stderr).toBe("");
      expect(result.stdout).toBe("OK\n");
      expect(result.exitCode).toBe(0);
    },
    20_000,
  );

  clusterTest(
    "GET prints the bare value",
    async () => {
      const { node } = await singleNode();
      const set = await runEchokv(["cli", "--connect", node.clientAddr, "SET", "cli_get", "hello world"], { timeoutMs: 10_000 });
      expect(set.exitCode).toBe(0);
      const get = await runEchokv(["cli", "--connect", node.clientAddr, "GET", "cli_get"], { timeoutMs: 10_000 });
      expect(get.stdout).toBe("hello world\n");
      expect(get.exitCode).toBe(0);
    },
    20_000,
  );

  clusterTest(
    "GET of missing key prints (nil)",
    async () => {
      const { node } = await singleNode();
      const result = await runEchokv(["cli", "--connect", node.clientAddr, "GET", "cli_never_set"], { timeoutMs: 10_000 });
      expect(result.stdout).toBe("(nil)\n");
      expect(result.exitCode).toBe(0);
    },
    20_000,
  );

  clusterTest(
    "error reply exits non-zero",
    async () => {
      const { node } = await singleNode();
      const unknown = await runEchokv(["cli", "--connect", node.clientAddr, "NOSUCHCOMMAND", "x"], { timeoutMs: 10_000 });
      expect(unknown.exitCode).not.toBe(0);
      expect(unknown.timedOut).toBe(false);
      expect(unknown.stderr).toContain("(error) ERR unknown command");
      expect(unknown.stdout).toBe("");

      const arity = await runEchokv(["cli", "--connect", node.clientAddr, "GET"], { timeoutMs: 10_000 });
      expect(arity.exitCode).not.toBe(0);
      expect(arity.stderr).toContain("wrong number of arguments");
    },
    20_000,
  );

  clusterTest(
    "flag-like words after the command are sent",
    async () => {
      const { node } = await singleNode();
      // Everything after the command word is the command's, as in redis-cli.
      for (const [key, value] of [["flag_help", "--help"], ["flag_connect", "--connect=127.0.0.1:1"], ["flag_level", "--consistency=x"]]) {
        const set = await runEchokv(["cli", "--connect", node.clientAddr, "SET", key, value], { timeoutMs: 10_000 });
        expect(set.stdout, `SET ${key} ${value}`).toBe("OK\n");
        expect(set.exitCode, `SET ${key} ${value}`).toBe(0);
        const get = await runEchokv(["cli", "--connect", node.clientAddr, "GET", key], { timeoutMs: 10_000 });
        expect(get.stdout).toBe(`${value}\n`);
      }
      // `--` ends the flags, so a command may also follow it.
      const afterDashes = await runEchokv(["cli", "--connect", node.clientAddr, "--", "GET", "flag_help"], { timeoutMs: 10_000 });
      expect(afterDashes.stdout).toBe("--help\n");
    },
    20_000,
  );

  clusterTest(
    "no quorum prints the node's error",
    async () => {
      // Nodes wait up to 5 s (the default request timeout) for a leader. The
      // cli waits longer, so it prints their error reply instead of giving up.
      const cluster = new Cluster({ name: "cli-no-quorum", tickMs: 20 });
      const nodes = await cluster.startCluster(3);
      await cluster.waitForLeader(nodes);
      const [survivor, ...others] = nodes;
      for (const node of others) await cluster.kill(node, "SIGKILL");
      const result = await runEchokv(["cli", "--connect", survivor.clientAddr, "SET", "no_quorum", "x"], { timeoutMs: 20_000 });
      expect(result.exitCode).toBe(1);
      // The node's own error reply, not the cli's "timed out after N ms".
      expect(result.stderr).toMatch(/^\(error\) (NOLEADER|TIMEOUT) /);
    },
    30_000,
  );

  clusterTest(
    "connection refused exits non-zero",
    async () => {
      requireBinary();
      // A port that was free a moment ago and that no test server listens on.
      const port = freePort();
      const result = await runEchokv(["cli", "--connect", `127.0.0.1:${port}`, "GET", "k"], { timeoutMs: 10_000 });
      expect(result.timedOut).toBe(false);
      expect(result.exitCode).not.toBe(0);
      expect(result.stderr).toContain("connection refused");
      expect(result.stdout).toBe("");
    },
    20_000,
  );
});

describe("cli shell", () => {
  clusterTest(
    "piped lines get one reply each",
    async () => {
      const { node } = await singleNode();
      const input = 'SET shell_key "two words"\nGET shell_key\nGET shell_missing\nquit\n';
      const result = await runEchokv(["cli", "--connect", node.clientAddr], { stdin: input, timeoutMs: 10_000 });
      expect(result.exitCode).toBe(0);
      expect(result.stdout.split("\n")).toEqual(["OK", "two words", "(nil)", ""]);
    },
    20_000,
  );

  clusterTest(
    "piped input with an error exits 1",
    async () => {
      const { node } = await singleNode();
      const input = "SET piped_key 1\nBOGUSCOMMAND\nGET piped_key\n";
      const result = await runEchokv(["cli", "--connect", node.clientAddr], { stdin: input, timeoutMs: 10_000 });
      expect(result.exitCode).toBe(1);
      const lines = result.stdout.split("\n");
      expect(lines[0]).toBe("OK");
      expect(lines[1]).toStartWith("(error) ERR unknown command 'BOGUSCOMMAND'");
      expect(lines[2]).toBe("1");
    },
    20_000,
  );

  clusterTest(
    "help lists the commands",
    async () => {
      const { node } = await singleNode();
      const result = await runEchokv(["cli", "--connect", node.clientAddr], { stdin: "help\nquit\n", timeoutMs: 10_000 });
      expect(result.exitCode).toBe(0);
      expect(result.stderr).toBe("");
      for (const syntax of ["SET key value", "GET key [local|lease|linearizable]", "REMOVE node-id", "quit, exit"]) {
        expect(result.stdout).toContain(syntax);
      }
      // Every command the node reports, but UNSUBSCRIBE: the shell ends a subscription with Ctrl+C.
      const listed = await sendCommand(node.clientAddr, ["COMMAND", "LIST"]);
      const names = listed.type === "array" && listed.value !== null ? listed.value.map((item) => replyText(item) ?? "") : [];
      expect(names.length).toBeGreaterThan(20);
      const words = new Set(result.stdout.toUpperCase().split(/[^A-Z]+/));
      const missing = names.filter((name) => name !== "unsubscribe" && !words.has(name.toUpperCase()));
      expect(missing).toEqual([]);
    },
    20_000,
  );

  clusterTest(
    "terminal session prints prompt and replies",
    async () => {
      const { node } = await singleNode();
      // `script` runs the shell on a pseudo-terminal, so it behaves as for a person typing.
      const shellCommand = `${requireBinary()} cli --connect ${node.clientAddr}`;
      const input = "SET tty_key tty_value\nGET tty_key\nclear\nBOGUSCOMMAND\nexit\n";
      const result = await runProgram(["script", "--quiet", "--return", "--command", shellCommand, "/dev/null"], {
        stdin: input,
        timeoutMs: 10_000,
      });
      const exitCode = result.exitCode;
      const stdout = result.stdout;

      const screen = stripTerminalCodes(stdout);
      expect(exitCode).toBe(0);
      expect(screen).toContain("> ");
      const lines = screen.split("\n").map((line) => line.replace(/^(> )+/, ""));
      expect(lines).toContain("OK");
      expect(lines).toContain("tty_value");
      expect(lines.some((line) => line.startsWith("(error) ERR unknown command 'BOGUSCOMMAND'"))).toBe(true);
      // `clear` clears the terminal in the shell and never reaches the server.
      expect(stdout).toContain("\x1b[H\x1b[2J");
      expect(screen).not.toContain("unknown command 'clear'");
    },
    20_000,
  );

  clusterTest(
    "level set in the shell survives a reconnect",
    async () => {
      const cluster = new Cluster({ name: "cli-reconnect", tickMs: 20 });
      const [node] = await cluster.startCluster(1);
      const shell = Bun.spawn([requireBinary(), "cli", "--connect", node.clientAddr], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
      const reader = shell.stdout.getReader();
      let output = "";
      /** Sends one line and waits until the shell has printed `expected` after what it printed before. */
      const exchange = async (line: string, expected: string) => {
        const before = output.length;
        shell.stdin.write(`${line}\n`);
        await shell.stdin.flush();
        const deadline = Date.now() + 10_000;
        while (!output.slice(before).includes(expected) && Date.now() < deadline) {
          const chunk = await Promise.race([reader.read(), Bun.sleep(500).then(() => null)]);
          if (chunk?.value) output += new TextDecoder().decode(chunk.value);
        }
        expect(output.slice(before), `reply to ${line}`).toContain(expected);
      };
      try {
        await exchange("CONSISTENCY linearizable", "OK");
        await cluster.kill(node, "SIGKILL");
        await cluster.start(node);
        await cluster.waitForLeader([node]);
        // The connection was lost, so this command goes over a new one.
        await exchange("CONSISTENCY", "linearizable");
      } finally {
        shell.kill("SIGKILL");
        await shell.exited;
      }
    },
    30_000,
  );
});
