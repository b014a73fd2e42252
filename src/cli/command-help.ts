// The commands a node takes, one line each, as the shell's `help` lists them.
// The README's command table describes each in more detail.

export const COMMAND_HELP: ReadonlyArray<{ syntax: string; summary: string }> = [
  { syntax: "SET key value", summary: "write a key; OK once a majority stored and applied it" },
  { syntax: "GET key [local|lease|linearizable]", summary: "read a key at the given or the connection's level" },
  { syntax: "DEL key [key ...]", summary: "delete keys; replies how many existed" },
  { syntax: "EXISTS key [key ...]", summary: "count the keys that exist" },
  { syntax: "DBSIZE", summary: "number of keys on this node" },
  { syntax: "CONSISTENCY [level]", summary: "show or set this connection's GET level" },
  { syntax: "INFO [section ...]", summary: "server, raft, members, keyspace, memory, clients, stats" },
  { syntax: "MEMBERS", summary: "the cluster configuration" },
  { syntax: "LEADER", summary: "the current leader's id and client address" },
  { syntax: "JOIN id raft-addr client-addr", summary: "add a member" },
  { syntax: "REMOVE node-id", summary: "remove a member" },
  { syntax: "TRANSFER [node-id]", summary: "hand leadership to a node; replies with the new leader" },
  { syntax: "READINDEX", summary: "the commit index a linearizable read waits for" },
  { syntax: "SNAPSHOT [LOCAL]", summary: "take a snapshot of this node" },
  { syntax: "MEMORY PURGE", summary: "run a full garbage collection now" },
  { syntax: "SUBSCRIBE cluster-events", summary: "stream role, leader and membership changes until Ctrl+C" },
  { syntax: "CONFIG GET pattern", summary: "the node's settings that match a glob pattern" },
  { syntax: "COMMAND [COUNT|LIST|INFO name]", summary: "the commands, with arity, flags and keys" },
  { syntax: "CLIENT SETNAME|GETNAME|ID|SETINFO", summary: "name this connection or show its name or id" },
  { syntax: "HELLO [2|3] [SETNAME name]", summary: "switch this connection to RESP2 or RESP3" },
  { syntax: "AUTH", summary: "fails: EchoKV has no authentication" },
  { syntax: "PING, ECHO message, SELECT 0", summary: "as in Redis" },
];

/** Formats COMMAND_HELP as aligned lines, with how to leave the shell at the end. */
export function formatCommandHelp(): string {
  const width = Math.max(...COMMAND_HELP.map((command) => command.syntax.length));
  const lines = COMMAND_HELP.map((command) => `${command.syntax.padEnd(width)}  ${command.summary}`);
  lines.push("", `${"clear".padEnd(width)}  clear the terminal`, `${"quit, exit".padEnd(width)}  leave the shell (so do Ctrl+D and Ctrl+C)`);
  return lines.join("\n");
}
