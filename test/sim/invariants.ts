// Safety invariants of Raft, checked by the simulator after every event.
// Each check throws InvariantViolation naming the invariant and the nodes.
//
// Entries are compared by their content (see entries.ts). Client writes
// carry unique values, so "the same entry" means the same append.
//
// A node may act in memory on a term or an entry that it never persists and
// never sends, and then crash. The rest of the cluster never learns of it,
// so after the restart the node may reuse that term or index. The checks
// below therefore count a leader once its term is durable, and record an
// entry once it escapes its node, by a durable write or in a sent message.
//
// - Election safety: at most one leader per term.
// - Log matching: an entry (index, term) that escaped has one origin and one
//   predecessor term, in every log and every message. By induction over the
//   index, two logs that share an (index, term) then share the whole prefix
//   up to it.
// - Commit stability: the committed prefix only grows, every node's log
//   matches it up to the node's commit index, and no node deletes an entry
//   at or below its commit index.
// - Commit durability: when a leader moves its commit index, the entry there
//   is already in the durable storage of a quorum of the leader's voters.
//   One event may both commit and change the configuration, so a quorum of
//   the configuration before or after the event is accepted.
// - Leader append-only: a leader never deletes entries of its own log.
// - Leader completeness: the log of a leader of term T contains every entry
//   that some node saw committed while in a term below T.
// - State machine safety: every node applies the same entry at each index,
//   in index order, and only committed entries.
// - Durable state: after a restart a node's term is not below any term it
//   sent a message in, and it still records every vote it granted in that term.

import type { RaftCore } from "../../src/raft/core.ts";
import type { Entry, Member, Message, NodeId, Role } from "../../src/raft/types.ts";
import { originOf } from "./entries.ts";

/** Returns whether two entries from a log are the same append: one (index, term) and one content. */
function sameEntry(a: Entry | undefined, b: Entry | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.index !== b.index || a.term !== b.term || a.kind !== b.kind || a.data.length !== b.data.length) return false;
  for (let i = 0; i < a.data.length; i++) if (a.data[i] !== b.data[i]) return false;
  if (a.members === b.members) return true;
  if (!a.members || !b.members || a.members.length !== b.members.length) return false;
  return a.members.every((member, i) => {
    const other = b.members![i];
    return member.id === other.id && member.raftAddr === other.raftAddr && member.clientAddr === other.clientAddr && member.voter === other.voter && member.incarnation === other.incarnation;
  });
}

export class InvariantViolation extends Error {
  override name = "InvariantViolation";
  readonly invariant: string;

  constructor(invariant: string, message: string) {
    super(`${invariant}: ${message}`);
    this.invariant = invariant;
  }
}

interface CommittedEntry {
  term: number;
  origin: string;
  /** Lowest term in which any node saw this index committed. */
  seenInTerm: number;
}

interface RegisteredEntry {
  origin: string;
  prevTerm: number;
}

/** What the checker remembers about one node. Lifetime fields reset on restart. */
interface NodeWatch {
  // Lifetime of the current process.
  log: Entry[];
  commitIndex: number;
  appliedIndex: number;
  term: number;
  role: Role;
  /** Configuration at the end of the previous check. */
  members: readonly Member[];
  /** Committed prefix already checked against this node's log while it leads. */
  leaderCheckedUpTo: number;
  // Across restarts.
  maxTermSent: number;
  votesGranted: Map<number, NodeId>;
}

/** Read access to what each node has durably written. */
export interface DurableView {
  entry(id: NodeId, index: number): Entry | undefined;
  term(id: NodeId): number;
}

export class InvariantChecker {
  readonly #durable: DurableView;
  #leaderOfTerm = new Map<number, NodeId>();
  /** Escaped entries: #registry[index] maps a term to the origin and predecessor term of the entry at (index, term). */
  #registry: Array<Map<number, RegisteredEntry> | undefined> = [];
  /** Committed prefix: #committed[index] for 1 <= index <= maxCommitted. */
  #committed: CommittedEntry[] = [];
  /** Applied sequence: #applied[index] is the origin of the entry applied at that index. */
  #applied: string[] = [];
  #appliedChecked = 0;
  #watches = new Map<NodeId, NodeWatch>();

  constructor(durable: DurableView) {
    this.#durable = durable;
  }

  get maxCommitted(): number {
    return Math.max(0, this.#committed.length - 1);
  }

  /** Origins of the committed prefix, index 1 first. */
  committedOrigins(): string[] {
    return this.#committed.slice(1).map((entry) => entry.origin);
  }

  /** Records a node's first start. */
  onStart(id: NodeId, core: RaftCore): void {
    const watch: NodeWatch = {
      log: [],
      commitIndex: 0,
      appliedIndex: 0,
      term: core.term,
      role: core.role,
      members: core.members,
      leaderCheckedUpTo: 0,
      maxTermSent: 0,
      votesGranted: new Map(),
    };
    this.#watches.set(id, watch);
    this.#resetLifetime(watch, core);
  }

  /**
   * Checks what a restarted node loaded from its storage against what it
   * sent before it crashed, then starts tracking the new process.
   */
  onRestart(id: NodeId, core: RaftCore): void {
    const watch = this.#watch(id);
    if (core.term < watch.maxTermSent) {
      throw new InvariantViolation(
        "durable term",
        `node ${id} restarted in term ${core.term} but had sent messages in term ${watch.maxTermSent}`,
      );
    }
    const granted = watch.votesGranted.get(core.term);
    const votedFor = core.status().votedFor;
    if (granted !== undefined && votedFor !== granted) {
      throw new InvariantViolation(
        "durable vote",
        `node ${id} granted its vote in term ${core.term} to ${granted} but restarted with votedFor ${votedFor ?? "null"}`,
      );
    }
    this.#resetLifetime(watch, core);
  }

  #resetLifetime(watch: NodeWatch, core: RaftCore): void {
    watch.log = [];
    watch.commitIndex = 0;
    watch.appliedIndex = 0;
    watch.term = core.term;
    watch.role = core.role;
    watch.members = core.members;
    watch.leaderCheckedUpTo = 0;
  }

  /** Records a message as it leaves its sender. */
  onSend(message: Message): void {
    if (message.type === "append") {
      let prevTerm = message.prevTerm;
      for (const entry of message.entries) {
        this.#register(message.from, entry, prevTerm);
        prevTerm = entry.term;
      }
    }
    const watch = this.#watches.get(message.from);
    if (!watch) return;
    // Pre-vote messages carry a term the sender has not entered.
    const preVote = (message.type === "vote" || message.type === "voteResponse") && message.preVote;
    if (preVote) return;
    watch.maxTermSent = Math.max(watch.maxTermSent, message.term);
    if (message.type === "voteResponse" && message.granted) {
      const earlier = watch.votesGranted.get(message.term);
      if (earlier !== undefined && earlier !== message.to) {
        throw new InvariantViolation(
          "one vote per term",
          `node ${message.from} granted votes in term ${message.term} to both ${earlier} and ${message.to}`,
        );
      }
      watch.votesGranted.set(message.term, message.to);
    }
  }

  /** Records entries that node `id` wrote durably; `prevTerm` returns the stored term before an index. */
  onDurableWrite(id: NodeId, entries: readonly Entry[], prevTerm: (index: number) => number): void {
    for (const entry of entries) this.#register(id, entry, prevTerm(entry.index));
  }

  /** Records that `id` applied `entry` to its state machine. */
  onApply(id: NodeId, entry: Entry): void {
    const watch = this.#watch(id);
    if (entry.index !== watch.appliedIndex + 1) {
      throw new InvariantViolation("apply order", `node ${id} applied index ${entry.index} after ${watch.appliedIndex}`);
    }
    watch.appliedIndex = entry.index;
    const origin = originOf(entry);
    const expected = this.#applied[entry.index];
    if (expected === undefined) {
      this.#applied[entry.index] = origin;
    } else if (expected !== origin) {
      throw new InvariantViolation(
        "state machine safety",
        `node ${id} applied a different entry at index ${entry.index} (term ${entry.term}) than another node did`,
      );
    }
  }

  /** Runs every per-node check on a node that is up. */
  checkNode(id: NodeId, core: RaftCore): void {
    const watch = this.#watch(id);
    const term = core.term;
    const role = core.role;
    if (term < watch.term) {
      throw new InvariantViolation("term monotonic", `node ${id} went from term ${watch.term} back to ${term}`);
    }
    if (role === "leader" && this.#durable.term(id) === term) {
      const leader = this.#leaderOfTerm.get(term);
      if (leader === undefined) this.#leaderOfTerm.set(term, id);
      else if (leader !== id) {
        throw new InvariantViolation("election safety", `nodes ${leader} and ${id} are both leaders of term ${term}`);
      }
      if (watch.role !== "leader" || watch.term !== term) watch.leaderCheckedUpTo = 0;
    }
    const stillLeading = watch.role === "leader" && role === "leader" && watch.term === term;

    this.#checkLog(id, core, watch, stillLeading);
    this.#checkCommit(id, core, watch, term);
    if (role === "leader") this.#checkLeaderCompleteness(id, core, watch, term);
    watch.term = term;
    watch.role = role;
    watch.members = core.members;
    this.#checkApplied();
  }

  /** Compares the node's log with the copy from the previous check, from the end back to the unchanged prefix. */
  #checkLog(id: NodeId, core: RaftCore, watch: NodeWatch, stillLeading: boolean): void {
    const log = core.log;
    const last = log.lastIndex();
    const previousLast = Math.max(0, watch.log.length - 1);
    let unchanged = Math.min(last, previousLast);
    while (unchanged >= 1 && !sameEntry(log.entry(unchanged), watch.log[unchanged])) unchanged--;

    if (unchanged < previousLast) {
      const firstLost = unchanged + 1;
      if (firstLost <= watch.commitIndex) {
        throw new InvariantViolation(
          "commit stability",
          `node ${id} deleted entry ${firstLost} although its commit index is ${watch.commitIndex}`,
        );
      }
      if (stillLeading) {
        throw new InvariantViolation("leader append-only", `leader ${id} deleted entries from index ${firstLost} of its own log`);
      }
    }

    watch.log.length = unchanged + 1;
    for (let index = unchanged + 1; index <= last; index++) {
      const entry = log.entry(index);
      if (!entry || entry.index !== index) {
        throw new InvariantViolation("log shape", `node ${id} has no entry object for index ${index} of ${last}`);
      }
      this.#compareWithEscaped(id, entry, log.term(index - 1) ?? 0);
      watch.log[index] = entry;
    }
  }

  /** Records an entry that left node `id`, or compares it with the one recorded at its (index, term). */
  #register(id: NodeId, entry: Entry, prevTerm: number): void {
    let byTerm = this.#registry[entry.index];
    if (!byTerm) {
      byTerm = new Map();
      this.#registry[entry.index] = byTerm;
    }
    if (!byTerm.has(entry.term)) {
      byTerm.set(entry.term, { origin: originOf(entry), prevTerm });
      return;
    }
    this.#compareWithEscaped(id, entry, prevTerm);
  }

  #compareWithEscaped(id: NodeId, entry: Entry, prevTerm: number): void {
    const known = this.#registry[entry.index]?.get(entry.term);
    if (!known) return;
    if (known.origin !== originOf(entry)) {
      throw new InvariantViolation(
        "log matching",
        `node ${id} holds a different entry at index ${entry.index} term ${entry.term} than another log`,
      );
    }
    if (known.prevTerm !== prevTerm) {
      throw new InvariantViolation(
        "log matching",
        `node ${id} has term ${prevTerm} before entry ${entry.index} term ${entry.term}, another log has term ${known.prevTerm}`,
      );
    }
  }

  #checkCommit(id: NodeId, core: RaftCore, watch: NodeWatch, term: number): void {
    const commitIndex = core.commitIndex;
    if (commitIndex < watch.commitIndex) {
      throw new InvariantViolation("commit stability", `node ${id} moved its commit index back from ${watch.commitIndex} to ${commitIndex}`);
    }
    for (let index = watch.commitIndex + 1; index <= commitIndex; index++) {
      const entry = core.log.entry(index);
      if (!entry) throw new InvariantViolation("commit stability", `node ${id} commits index ${index} that its log lacks`);
      const origin = originOf(entry);
      const known = this.#committed[index];
      if (!known) {
        this.#committed[index] = { term: entry.term, origin, seenInTerm: term };
        continue;
      }
      if (known.origin !== origin) {
        throw new InvariantViolation(
          "commit stability",
          `node ${id} committed index ${index} with term ${entry.term}, but term ${known.term} was committed there before`,
        );
      }
      known.seenInTerm = Math.min(known.seenInTerm, term);
    }
    if (commitIndex > watch.commitIndex && core.role === "leader") this.#checkDurable(id, core, commitIndex, watch.members);
    watch.commitIndex = commitIndex;
  }

  #checkDurable(id: NodeId, core: RaftCore, index: number, previousMembers: readonly Member[]): void {
    const origin = originOf(core.log.entry(index)!);
    const storedBy = (members: readonly Member[]): { voters: number; stored: string[] } => {
      const voters = members.filter((member) => member.voter);
      const stored = voters.filter((member) => {
        const entry = this.#durable.entry(member.id, index);
        return entry !== undefined && originOf(entry) === origin;
      });
      return { voters: voters.length, stored: stored.map((member) => member.id) };
    };
    const hasQuorum = (count: { voters: number; stored: string[] }): boolean => count.stored.length >= Math.floor(count.voters / 2) + 1;

    const now = storedBy(core.members);
    if (hasQuorum(now) || hasQuorum(storedBy(previousMembers))) return;
    throw new InvariantViolation(
      "commit durability",
      `leader ${id} committed index ${index}, which only ${now.stored.length} of ${now.voters} voters (${now.stored.join(",") || "none"}) stored durably`,
    );
  }

  #checkLeaderCompleteness(id: NodeId, core: RaftCore, watch: NodeWatch, term: number): void {
    const maxCommitted = this.maxCommitted;
    for (let index = watch.leaderCheckedUpTo + 1; index <= maxCommitted; index++) {
      const committed = this.#committed[index];
      if (committed.seenInTerm >= term) continue;
      const entry = core.log.entry(index);
      if (!entry || originOf(entry) !== committed.origin) {
        throw new InvariantViolation(
          "leader completeness",
          `leader ${id} of term ${term} lacks entry ${index} (term ${committed.term}) committed in term ${committed.seenInTerm}`,
        );
      }
    }
    watch.leaderCheckedUpTo = maxCommitted;
  }

  #checkApplied(): void {
    const upTo = Math.min(this.#applied.length - 1, this.maxCommitted);
    for (let index = this.#appliedChecked + 1; index <= upTo; index++) {
      if (this.#applied[index] !== this.#committed[index].origin) {
        throw new InvariantViolation("state machine safety", `the entry applied at index ${index} is not the committed one`);
      }
    }
    this.#appliedChecked = Math.max(this.#appliedChecked, upTo);
  }

  /**
   * Compares every pair of logs in full: wherever two logs hold the same
   * (index, term), the prefixes up to it must be the same entries. Slower
   * than the per-event checks, so the simulator runs it now and then.
   */
  checkLogsPairwise(cores: ReadonlyArray<{ id: NodeId; core: RaftCore }>): void {
    for (let a = 0; a < cores.length; a++) {
      for (let b = a + 1; b < cores.length; b++) {
        const left = cores[a].core.log;
        const right = cores[b].core.log;
        let index = Math.min(left.lastIndex(), right.lastIndex());
        while (index > 0 && left.term(index) !== right.term(index)) index--;
        for (; index > 0; index--) {
          const x = left.entry(index);
          const y = right.entry(index);
          if (!x || !y || originOf(x) !== originOf(y)) {
            throw new InvariantViolation(
              "log matching",
              `nodes ${cores[a].id} and ${cores[b].id} share a term at index ${index} but hold different entries there or below`,
            );
          }
        }
      }
    }
  }

  #watch(id: NodeId): NodeWatch {
    const watch = this.#watches.get(id);
    if (!watch) throw new Error(`node ${id} was never started`);
    return watch;
  }
}
