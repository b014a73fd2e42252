// Parses the INFO reply of an echokv node into the fields the console shows.

/** One `memberN:` line of the `# Members` section. */
export interface MemberInfo {
  id: string;
  raftAddr: string;
  clientAddr: string;
  voter: boolean;
  leader: boolean;
  /** Highest log index known to be replicated on the member. Only the leader reports it. */
  matchIndex: number | null;
  /** Leader's last log index minus matchIndex. Only the leader reports it. */
  lag: number | null;
}

/** The node's own view, as one INFO reply reports it. */
export interface NodeInfo {
  nodeId: string;
  clientAddr: string;
  raftAddr: string;
  processId: number | null;
  /** Role name: leader, follower, precandidate or candidate. A learner (non-voter) reports follower. */
  role: string;
  term: number;
  /** Id of the leader this node follows, or null when it has none. */
  leaderId: string | null;
  commitIndex: number;
  appliedIndex: number;
  lastLogIndex: number;
  lastLogTerm: number;
  members: MemberInfo[];
}

/** Raised when an INFO reply lacks a field the console needs or has a malformed one. */
export class InfoFormatError extends Error {
  override name = "InfoFormatError";
}

/** Splits `field:value` lines into a map, skipping `#` section headers and blank lines. */
function parseFields(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    if (line === "" || line.startsWith("#")) continue;
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return fields;
}

function requireField(fields: Map<string, string>, name: string): string {
  const value = fields.get(name);
  if (value === undefined) throw new InfoFormatError(`INFO reply has no ${name} field`);
  return value;
}

function parseCount(value: string, name: string): number {
  if (!/^[0-9]+$/.test(value)) throw new InfoFormatError(`INFO field ${name} is not a whole number: ${JSON.stringify(value)}`);
  return Number(value);
}

/**
 * Parses the value of a `memberN:` line, such as
 * `id=node-1,raft_addr=127.0.0.1:15379,client_addr=127.0.0.1:5379,voter=yes,leader=no,match_index=6,lag=0`.
 */
export function parseMemberLine(value: string, name = "member"): MemberInfo {
  const attributes = new Map<string, string>();
  for (const part of value.split(",")) {
    const equals = part.indexOf("=");
    if (equals <= 0) throw new InfoFormatError(`INFO field ${name} has a malformed attribute ${JSON.stringify(part)}`);
    attributes.set(part.slice(0, equals), part.slice(equals + 1));
  }

  const attribute = (key: string): string => {
    const found = attributes.get(key);
    if (found === undefined) throw new InfoFormatError(`INFO field ${name} has no ${key} attribute`);
    return found;
  };
  const matchIndex = attributes.get("match_index");
  const lag = attributes.get("lag");
  return {
    id: attribute("id"),
    raftAddr: attribute("raft_addr"),
    clientAddr: attribute("client_addr"),
    voter: attribute("voter") === "yes",
    leader: attribute("leader") === "yes",
    matchIndex: matchIndex === undefined ? null : parseCount(matchIndex, `${name} match_index`),
    lag: lag === undefined ? null : parseCount(lag, `${name} lag`),
  };
}

/** Parses a full INFO reply. Throws InfoFormatError naming the first missing or malformed field. */
export function parseInfo(text: string): NodeInfo {
  const fields = parseFields(text);
  const count = (name: string): number => parseCount(requireField(fields, name), name);

  const memberCount = count("members");
  const members: MemberInfo[] = [];
  for (let index = 0; index < memberCount; index++) {
    const name = `member${index}`;
    members.push(parseMemberLine(requireField(fields, name), name));
  }

  const processId = fields.get("process_id");
  const leaderId = requireField(fields, "leader_id");
  return {
    nodeId: requireField(fields, "node_id"),
    clientAddr: requireField(fields, "client_addr"),
    raftAddr: requireField(fields, "raft_addr"),
    processId: processId === undefined || processId === "" ? null : parseCount(processId, "process_id"),
    role: requireField(fields, "role"),
    term: count("term"),
    leaderId: leaderId === "" ? null : leaderId,
    commitIndex: count("commit_index"),
    appliedIndex: count("applied_index"),
    lastLogIndex: count("last_log_index"),
    lastLogTerm: count("last_log_term"),
    members,
  };
}
