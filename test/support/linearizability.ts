// Linearizability checker for key-value histories recorded by the cluster and
// simulation tests.
//
// Linearizability is a local property, so each key is checked on its own as a
// register that starts missing (null). Each check is a Wing-Gong depth-first
// search over linearization points, with Lowe's memoization of the pair (set of
// linearized operations, register value).
//
// Contract for callers that record histories:
// - Drop an operation that definitely failed, such as one rejected with
//   NOTLEADER before it was proposed. An error reply is never an output.
// - Record an operation whose outcome is unknown (timed out, connection lost,
//   client crashed) with `ret: null`. The checker lets it take effect at any
//   time after its call, or never.
// - Operations A and B are ordered only when A.ret < B.call. Equal times count
//   as concurrent, so timestamps that tie never cause a false violation.

/** A command on one key. A missing key reads as null, and `del` sets it to null. */
export type KvOp =
  | { kind: "set"; key: string; value: string }
  /** Output: the value, or null when the key is missing. */
  | { kind: "get"; key: string }
  /** Output: the number of keys removed (0 or 1), or undefined when unknown. */
  | { kind: "del"; key: string }
  /** Sets `value` when the current value equals `expected`. Output: whether it did. */
  | { kind: "cas"; key: string; expected: string | null; value: string };

/** One client request with its invocation and completion times. */
export interface Operation {
  id: number;
  /** Client that issued the request. The check ignores it. */
  client: number;
  op: KvOp;
  /** Invocation time, on any clock that all clients share and that never goes back. */
  call: number;
  /** Completion time, or null when the outcome is unknown. */
  ret: number | null;
  /** Observed result. Ignored when `ret` is null and for `set`. */
  output?: string | null | number | boolean;
}

/** Verdict of `checkLinearizable`. */
export interface CheckResult {
  /** True only when every key has a linearization. */
  ok: boolean;
  /** Key of the reported violation or of the search that ran out of budget. */
  key?: string;
  /** Operations of `key` that have no linearization, sorted by call time. */
  counterexample?: Operation[];
  /** Search states visited by the main check, summed over keys. Shrinking is not counted. */
  explored: number;
  /** True when a key exceeded `maxStatesPerKey`, so its verdict is unknown. */
  timedOut?: boolean;
  /** Explanation of a violation or timeout, for test failure output. */
  message?: string;
}

export interface CheckOptions {
  /** Maximum search states per key before the check gives up. Default 1,000,000. */
  maxStatesPerKey?: number;
}

export const DEFAULT_MAX_STATES_PER_KEY = 1_000_000;

/** Maximum searches that shrinking a counterexample may run. */
const SHRINK_MAX_CHECKS = 1_000;

/** Maximum states of one search while shrinking. Operations whose removal needs a longer search are kept. */
const SHRINK_MAX_STATES_PER_CHECK = 100_000;

/**
 * Checks whether the history is linearizable against a key-value store.
 *
 * On a violation the result names the first key, in order of first
 * appearance, that has no linearization, and a shrunk counterexample. When no
 * key has a violation but some key exceeded `maxStatesPerKey`, the result is
 * `{ ok: false, timedOut: true }`, because an unfinished search proves nothing.
 * Throws an Error naming the operation when the history breaks the contract at
 * the top of this file.
 */
export function checkLinearizable(history: readonly Operation[], opts: CheckOptions = {}): CheckResult {
  const maxStates = opts.maxStatesPerKey ?? DEFAULT_MAX_STATES_PER_KEY;
  if (!Number.isInteger(maxStates) || maxStates < 1) {
    throw new RangeError(`invalid maxStatesPerKey ${maxStates}: expected a positive integer`);
  }
  validateHistory(history);

  let explored = 0;
  let timedOutKey: string | null = null;
  for (const [key, ops] of groupByKey(history)) {
    const search = searchKey(ops, maxStates);
    explored += search.explored;

    if (search.verdict === "violation") {
      const counterexample = shrinkViolation(ops, Math.min(maxStates, SHRINK_MAX_STATES_PER_CHECK));
      return {
        ok: false,
        key,
        counterexample,
        explored,
        message:
          `key ${JSON.stringify(key)} is not linearizable: the ${counterexample.length} operations ` +
          `in counterexample have no linearization (shrunk from ${ops.length} operations on that key)`,
      };
    }
    if (search.verdict === "timeout" && timedOutKey === null) {
      timedOutKey = key;
    }
  }

  if (timedOutKey !== null) {
    return {
      ok: false,
      key: timedOutKey,
      explored,
      timedOut: true,
      message:
        `check of key ${JSON.stringify(timedOutKey)} timed out after ${maxStates} states, so its ` +
        `linearizability is unknown; raise maxStatesPerKey or check a shorter history`,
    };
  }
  return { ok: true, explored };
}

function validateHistory(history: readonly Operation[]): void {
  const ids = new Set<number>();
  for (const operation of history) {
    const name = `operation ${operation.id} (${operation.op.kind})`;
    if (ids.has(operation.id)) {
      throw new Error(`invalid history: ${name} has a duplicate id; give every operation its own id`);
    }
    ids.add(operation.id);

    if (!Number.isFinite(operation.call)) {
      throw new Error(`invalid history: ${name} has call time ${operation.call}; expected a finite number`);
    }
    if (operation.ret === null) {
      continue;
    }
    if (!Number.isFinite(operation.ret) || operation.ret < operation.call) {
      throw new Error(
        `invalid history: ${name} has ret ${operation.ret} with call ${operation.call}; ` +
          `expected a finite time at or after the call, or null when the outcome is unknown`,
      );
    }
    validateOutput(operation, name);
  }
}

function validateOutput(operation: Operation, name: string): void {
  const output = operation.output;
  switch (operation.op.kind) {
    case "set":
      return;
    case "get":
      if (typeof output !== "string" && output !== null) {
        throw new Error(`invalid history: completed ${name} has output ${String(output)}; expected a string or null`);
      }
      return;
    case "del":
      if (output !== undefined && output !== 0 && output !== 1) {
        throw new Error(`invalid history: completed ${name} has output ${String(output)}; expected 0, 1 or undefined`);
      }
      return;
    case "cas":
      if (typeof output !== "boolean") {
        throw new Error(`invalid history: completed ${name} has output ${String(output)}; expected a boolean`);
      }
      return;
    default: {
      const unknown: never = operation.op;
      throw new Error(`invalid history: operation ${operation.id} has unknown kind ${JSON.stringify(unknown)}`);
    }
  }
}

/**
 * Groups operations by key, in order of each key's first appearance. Drops
 * gets with an unknown outcome, because they never constrain the register.
 */
function groupByKey(history: readonly Operation[]): Map<string, KeyOp[]> {
  const groups = new Map<string, KeyOp[]>();
  for (const operation of history) {
    if (operation.op.kind === "get" && operation.ret === null) {
      continue;
    }
    let group = groups.get(operation.op.key);
    if (group === undefined) {
      group = [];
      groups.set(operation.op.key, group);
    }
    group.push({ source: operation, ret: operation.ret });
  }
  return groups;
}

// ---------------------------------------------------------------------------
// Search

/**
 * An operation as given to one search. Shrinking relaxes a completed operation
 * by setting `ret` to null, which lets it take effect anywhere after its call,
 * or never, with its output ignored.
 */
interface KeyOp {
  source: Operation;
  ret: number | null;
}

type Verdict = "linearizable" | "violation" | "timeout";

interface SearchResult {
  verdict: Verdict;
  explored: number;
}

/** Register value id of null. */
const NULL_ID = 0;

/**
 * Register value id shared by every value that no get returned and no cas
 * expected. No operation can tell such values apart, so merging them loses
 * nothing and lets the memo match more states.
 */
const FRESH_ID = 1;

/** Result of `nextValue` when the operation's output contradicts the register value. */
const INCONSISTENT = -1;

/** An operation reduced to register value ids, so a search step compares integers. */
interface CompiledOp {
  kind: KvOp["kind"];
  completed: boolean;
  /** True for an environment write, which may take effect any number of times after its call. */
  repeatable: boolean;
  call: number;
  ret: number;
  /** Value that set and cas write. */
  valueId: number;
  /** Value that cas expects. */
  expectedId: number;
  /** Value that a completed get returned. */
  outputId: number;
  /** Keys that a completed del reported removed, or -1 when unknown. */
  removedCount: number;
  /** Whether a completed cas reported success. */
  swapped: boolean;
  /**
   * The latest earlier-called unknown-outcome operation with the same effect,
   * or -1. The search linearizes this operation only after that one, because
   * any linearization that uses the later of two such operations can use the
   * earlier one in its place. Trying both would only multiply states.
   */
  previousOfSameEffect: number;
}

/**
 * Compiles a key's operations for `searchKey`, followed by the environment
 * writes, which keep only the earliest call of each distinct effect because a
 * repeatable write subsumes a later one with the same effect.
 */
function compileOps(ops: readonly KeyOp[], environment: readonly KeyOp[]): CompiledOp[] {
  const compared = new Set<string>();
  for (const { source, ret } of [...ops, ...environment]) {
    if (source.op.kind === "get" && ret !== null && typeof source.output === "string") {
      compared.add(source.output);
    }
    if (source.op.kind === "cas" && source.op.expected !== null) {
      compared.add(source.op.expected);
    }
  }
  const valueIds = new Map<string, number>();
  const idOf = (value: string | null): number => {
    if (value === null) {
      return NULL_ID;
    }
    if (!compared.has(value)) {
      return FRESH_ID;
    }
    let id = valueIds.get(value);
    if (id === undefined) {
      id = valueIds.size + 2;
      valueIds.set(value, id);
    }
    return id;
  };

  const compileOne = ({ source, ret }: KeyOp, repeatable: boolean): CompiledOp => {
    const op = source.op;
    const completed = ret !== null && !repeatable;
    return {
      kind: op.kind,
      completed,
      repeatable,
      call: source.call,
      ret: completed ? (ret as number) : Infinity,
      valueId: op.kind === "set" || op.kind === "cas" ? idOf(op.value) : NULL_ID,
      expectedId: op.kind === "cas" ? idOf(op.expected) : NULL_ID,
      outputId: op.kind === "get" && completed ? idOf(source.output as string | null) : NULL_ID,
      removedCount: op.kind === "del" && completed && typeof source.output === "number" ? source.output : -1,
      swapped: op.kind === "cas" && completed && source.output === true,
      previousOfSameEffect: -1,
    };
  };
  const effectOf = (op: CompiledOp): string => `${op.kind}/${op.expectedId}/${op.valueId}`;

  const compiled: CompiledOp[] = [];
  for (const keyOp of ops) {
    // Shrinking can relax a get to an unknown outcome, and such a get constrains nothing.
    if (keyOp.source.op.kind !== "get" || keyOp.ret !== null) {
      compiled.push(compileOne(keyOp, false));
    }
  }

  const earliestEnvironmentWrite = new Map<string, CompiledOp>();
  for (const keyOp of environment) {
    const write = compileOne(keyOp, true);
    const known = earliestEnvironmentWrite.get(effectOf(write));
    if (write.kind !== "get" && (known === undefined || write.call < known.call)) {
      earliestEnvironmentWrite.set(effectOf(write), write);
    }
  }
  compiled.push(...earliestEnvironmentWrite.values());

  const unknownOutcome = compiled
    .map((op, index) => ({ op, index }))
    .filter(({ op }) => !op.completed && !op.repeatable)
    .sort((a, b) => a.op.call - b.op.call || a.index - b.index);
  const latestOfEffect = new Map<string, number>();
  for (const { op, index } of unknownOutcome) {
    op.previousOfSameEffect = latestOfEffect.get(effectOf(op)) ?? -1;
    latestOfEffect.set(effectOf(op), index);
  }
  return compiled;
}

/** Returns the register value after `op` runs on `value`, or INCONSISTENT when its output disagrees. */
function nextValue(op: CompiledOp, value: number): number {
  switch (op.kind) {
    case "set":
      return op.valueId;
    case "get":
      return value === op.outputId ? value : INCONSISTENT;
    case "del":
      if (op.removedCount >= 0 && op.removedCount !== (value === NULL_ID ? 0 : 1)) {
        return INCONSISTENT;
      }
      return NULL_ID;
    case "cas": {
      const matches = value === op.expectedId;
      if (op.completed && matches !== op.swapped) {
        return INCONSISTENT;
      }
      return matches ? op.valueId : value;
    }
    default: {
      const unknown: never = op.kind;
      throw new Error(`unknown operation kind ${String(unknown)}`);
    }
  }
}

/**
 * Searches for a linearization of one key's operations, optionally with
 * environment writes that may take effect any number of times after their
 * call (shrinking uses them).
 *
 * The events (calls and returns) sit in a doubly linked list in time order.
 * Scanning from the head, any call met before the first return belongs to an
 * operation that may take effect next. Linearizing it unlinks its call and
 * return. Meeting a return means that operation must already have taken
 * effect, so the search backtracks. Operations with an unknown outcome have no
 * return event, so they never force a backtrack and may stay unlinearized.
 * Environment writes are never unlinked.
 *
 * NOTE: each unknown-outcome write whose value some read returns may take
 * effect anywhere from its call to that read, so the states grow exponentially
 * with the number of such writes open at once. A single key with 10 clients
 * and 10% timed-out operations over 2,000 operations exceeded the default
 * budget in testing.
 */
function searchKey(ops: readonly KeyOp[], maxStates: number, environment: readonly KeyOp[] = []): SearchResult {
  const compiled = compileOps(ops, environment);
  const opCount = compiled.length;

  // Events in time order. At equal times calls come first, so such operations count as concurrent.
  const events: { time: number; isCall: boolean; op: number }[] = [];
  let pendingCompleted = 0;
  for (let i = 0; i < opCount; i++) {
    events.push({ time: compiled[i].call, isCall: true, op: i });
    if (compiled[i].completed) {
      events.push({ time: compiled[i].ret, isCall: false, op: i });
      pendingCompleted++;
    }
  }
  if (pendingCompleted === 0) {
    return { verdict: "linearizable", explored: 0 };
  }
  events.sort((a, b) => a.time - b.time || Number(b.isCall) - Number(a.isCall) || a.op - b.op);

  const eventCount = events.length;
  const head = eventCount;
  const tail = eventCount + 1;
  const next = new Int32Array(eventCount + 2);
  const prev = new Int32Array(eventCount + 2);
  const eventOp = new Int32Array(eventCount);
  const eventIsCall = new Uint8Array(eventCount);
  const callEvent = new Int32Array(opCount);
  const returnEvent = new Int32Array(opCount).fill(-1);
  for (let e = 0; e < eventCount; e++) {
    const event = events[e];
    eventOp[e] = event.op;
    eventIsCall[e] = event.isCall ? 1 : 0;
    if (event.isCall) {
      callEvent[event.op] = e;
    } else {
      returnEvent[event.op] = e;
    }
    prev[e] = e === 0 ? head : e - 1;
    next[e] = e === eventCount - 1 ? tail : e + 1;
  }
  next[head] = 0;
  prev[tail] = eventCount - 1;

  const unlink = (e: number): void => {
    next[prev[e]] = next[e];
    prev[next[e]] = prev[e];
  };
  // Relinking in the reverse order of unlinking restores the list exactly.
  const relink = (e: number): void => {
    next[prev[e]] = e;
    prev[next[e]] = e;
  };

  // Memo of (linearized set, register value) pairs already explored. The rest
  // of the search depends only on that pair, so a pair seen before is skipped.
  const linearized = new Uint16Array(Math.ceil(opCount / 16));
  const isLinearized = (i: number): boolean => (linearized[i >>> 4] & (1 << (i & 15))) !== 0;
  const toggle = (i: number): void => {
    linearized[i >>> 4] ^= 1 << (i & 15);
  };
  const seen = new Set<string>();
  const stackOps: number[] = [];
  const stackValues: number[] = [];
  let value = NULL_ID;
  let explored = 0;
  let entry = next[head];

  // Bounded: every linearization step adds a new pair to `seen` (at most
  // maxStates), every backtrack undoes one step, and between them the scan
  // moves forward over at most eventCount events.
  for (;;) {
    if (pendingCompleted === 0) {
      return { verdict: "linearizable", explored };
    }
    if (entry === tail) {
      throw new Error("linearizability search reached the end of the events with completed operations left");
    }

    if (eventIsCall[entry] === 1) {
      const i = eventOp[entry];
      const op = compiled[i];
      const after = nextValue(op, value);
      const canStep =
        after !== INCONSISTENT &&
        !(op.repeatable && after === value) &&
        (op.previousOfSameEffect < 0 || isLinearized(op.previousOfSameEffect));
      if (canStep) {
        if (!op.repeatable) {
          toggle(i);
        }
        const memoKey = String.fromCharCode(...linearized, after & 0xffff, after >>> 16);
        if (!seen.has(memoKey)) {
          if (explored >= maxStates) {
            return { verdict: "timeout", explored };
          }
          seen.add(memoKey);
          explored++;

          stackOps.push(i);
          stackValues.push(value);
          value = after;
          if (!op.repeatable) {
            unlink(entry);
          }
          if (op.completed) {
            unlink(returnEvent[i]);
            pendingCompleted--;
          }
          entry = next[head];
          continue;
        }
        if (!op.repeatable) {
          toggle(i);
        }
      }
      entry = next[entry];
      continue;
    }

    // A return event: its operation was not linearized in time, so undo the latest step.
    const i = stackOps.pop();
    const before = stackValues.pop();
    if (i === undefined || before === undefined) {
      return { verdict: "violation", explored };
    }
    const op = compiled[i];
    value = before;
    if (op.completed) {
      relink(returnEvent[i]);
      pendingCompleted++;
    }
    if (!op.repeatable) {
      toggle(i);
      relink(callEvent[i]);
    }
    entry = next[callEvent[i]];
  }
}

// ---------------------------------------------------------------------------
// Shrinking

/**
 * Shrinks a non-linearizable key history to a small sub-history that is still
 * not linearizable, and returns its operations sorted by call time.
 *
 * Every step replaces the history by a relaxation, which is a history whose
 * failure proves that the previous one fails. So the counterexample fails on
 * its own, and its failure is a real failure of the whole history rather than
 * a side effect of removing operations. The counterexample shows each
 * operation as recorded, even where a step relaxed it to an unknown outcome,
 * which only adds constraints. The steps are:
 * - cut the history at the earliest completion time where its prefix fails,
 *   and relax the operations that complete after that time;
 * - drop reads (a completed get, a cas that reported false, a del that
 *   reported 0), which only removes constraints;
 * - move a write to the environment, where it may take effect any number of
 *   times after its call. The counterexample omits environment writes, but
 *   the search still applies them, so a write that could explain a read in
 *   the counterexample is never removed.
 * A removal is also skipped when it would leave a read of a value that no
 * remaining operation writes, so the reader sees where each value came from.
 * Removal tries chunks of halving size, then single operations until a pass
 * removes nothing, within SHRINK_MAX_CHECKS searches.
 */
function shrinkViolation(ops: readonly KeyOp[], maxStatesPerCheck: number): Operation[] {
  let checksLeft = SHRINK_MAX_CHECKS;
  const fails = (candidate: readonly KeyOp[], environment: readonly KeyOp[]): boolean => {
    if (checksLeft <= 0) {
      return false;
    }
    checksLeft--;
    return searchKey(candidate, maxStatesPerCheck, environment).verdict === "violation";
  };

  let shrunk = cutAtFailingPrefix(ops, (candidate) => fails(candidate, []));
  let environment: KeyOp[] = [];
  const allowedUnwritten = findUnwrittenValues(shrunk);
  const tryRemove = (start: number, count: number): boolean => {
    const candidate = [...shrunk.slice(0, start), ...shrunk.slice(start + count)];
    if (candidate.length === 0) {
      return false;
    }
    const moved = shrunk.slice(start, start + count).filter((keyOp) => !isRead(keyOp));
    const candidateEnvironment = [...environment, ...moved];
    if (!isSubset(findUnwrittenValues(candidate), allowedUnwritten)) {
      return false;
    }
    if (!fails(candidate, candidateEnvironment)) {
      return false;
    }
    shrunk = candidate;
    environment = candidateEnvironment;
    return true;
  };

  // Bounded: the chunk halves each pass until it is 1, and after that each pass removes an operation or ends the loop.
  let chunk = Math.max(1, Math.ceil(shrunk.length / 2));
  while (checksLeft > 0 && shrunk.length > 1) {
    let removedAny = false;
    let start = 0;
    while (start < shrunk.length && checksLeft > 0) {
      if (tryRemove(start, chunk)) {
        removedAny = true;
      } else {
        start += chunk;
      }
    }
    if (chunk > 1) {
      chunk = Math.ceil(chunk / 2);
    } else if (!removedAny) {
      break;
    }
  }

  return shrunk.map((keyOp) => keyOp.source).sort((a, b) => a.call - b.call || a.id - b.id);
}

/**
 * Returns the prefix of the history at the earliest completion time T at
 * which that prefix already fails.
 *
 * The prefix at T contains the operations called at or before T. Those that
 * complete after T get an unknown outcome, and gets among them are dropped.
 * Prefixes of a linearizable history are linearizable, so the prefix is a
 * relaxation, failure is monotonic in T, and a binary search finds the
 * earliest T.
 */
function cutAtFailingPrefix(ops: readonly KeyOp[], fails: (candidate: readonly KeyOp[]) => boolean): KeyOp[] {
  const completionTimes = ops.filter((o) => o.ret !== null).map((o) => o.ret as number);
  const cutTimes = [...new Set(completionTimes)].sort((a, b) => a - b);
  const prefixAt = (time: number): KeyOp[] =>
    ops
      .filter((o) => o.source.call <= time)
      .map((o) => (o.ret !== null && o.ret <= time ? o : { source: o.source, ret: null }))
      .filter((o) => o.ret !== null || o.source.op.kind !== "get");

  // The prefix at the last completion time is the whole history without the
  // unknown-outcome operations called after it, which could not have helped.
  // So the prefix at index `high` always fails.
  let low = 0;
  let high = cutTimes.length - 1;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (fails(prefixAt(cutTimes[middle]))) {
      high = middle;
    } else {
      low = middle + 1;
    }
  }
  return high < 0 ? [...ops] : prefixAt(cutTimes[high]);
}

function isRead(keyOp: KeyOp): boolean {
  if (keyOp.ret === null) {
    return false;
  }
  const { op, output } = keyOp.source;
  return op.kind === "get" || (op.kind === "cas" && output === false) || (op.kind === "del" && output === 0);
}

/** Returns the values that a get returned or a successful cas expected but that no operation writes. */
function findUnwrittenValues(ops: readonly KeyOp[]): Set<string> {
  const needed = new Set<string>();
  const written = new Set<string>();
  for (const { source, ret } of ops) {
    const { op, output } = source;
    const completed = ret !== null;
    if (op.kind === "get" && completed && typeof output === "string") {
      needed.add(output);
    }
    if (op.kind === "cas" && completed && output === true && op.expected !== null) {
      needed.add(op.expected);
    }
    if (op.kind === "set" || (op.kind === "cas" && (!completed || output === true))) {
      written.add(op.value);
    }
  }
  return new Set([...needed].filter((value) => !written.has(value)));
}

function isSubset<T>(subset: ReadonlySet<T>, superset: ReadonlySet<T>): boolean {
  return [...subset].every((item) => superset.has(item));
}
