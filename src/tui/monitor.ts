// The console's model of the cluster: it polls every member's INFO, keeps one
// connection to a node for commands and pushed events, moves that connection
// to another member when the node becomes unreachable, and records the events.

import { RespClient, RespClientError } from "../client/client.ts";
import type { RespValue } from "../protocol/resp.ts";
import type { ClusterEvent, ConsoleEventType } from "./events.ts";
import { parseInfo, type MemberInfo, type NodeInfo } from "./info.ts";
import { EventSubscription } from "./subscriber.ts";
import { observedLeader, synthesizeEvents, type ClusterObservation, type LeaderView, type NodeObservation } from "./synthesize.ts";

export interface MonitorOptions {
  /** Client address (host:port) of the first node to connect to. */
  connectAddr: string;
  /** Time from the start of one polling round to the start of the next, in ms. */
  pollIntervalMs: number;
  /** Maximum time to connect to a member, wait for its INFO reply or for a SUBSCRIBE confirmation, in ms. */
  pollTimeoutMs: number;
  /** Maximum time to wait for the reply to a command from the command line, in ms. */
  commandTimeoutMs: number;
  /** Number of events kept. The oldest are dropped beyond it. */
  maxEvents: number;
}

export const DEFAULT_MONITOR_OPTIONS: Omit<MonitorOptions, "connectAddr"> = {
  pollIntervalMs: 500,
  pollTimeoutMs: 1000,
  commandTimeoutMs: 5000,
  maxEvents: 1000,
};

/** Source of the console's events: pushed by the connected node, or inferred from INFO polls. */
export type EventFeed = "push" | "polling";

/** One member, as the console's polls report it. */
export interface MemberState {
  id: string;
  clientAddr: string;
  raftAddr: string;
  voter: boolean;
  /** Latest INFO reply of the member, kept while it is unreachable. */
  info: NodeInfo | null;
  /** Whether the member replied to the latest poll, or null before its first poll. */
  reachable: boolean | null;
  /** Reason the latest poll failed, or null after a reply. */
  error: string | null;
  /** Epoch time in ms of the console's latest reply from this member, or null before the first. */
  lastContactMs: number | null;
  /** Entries the member is behind the leader's log, as the leader reports it, or null when the leader did not reply. */
  lag: number | null;
}

/** The node that commands go to and events come from. */
export interface ConnectionState {
  nodeId: string;
  addr: string;
  feed: EventFeed;
}

interface Connection {
  nodeId: string;
  addr: string;
  client: RespClient;
  subscription: EventSubscription | null;
  /** Set when the node rejected SUBSCRIBE, so it is not asked again. */
  subscribeRejected: boolean;
  /** Set after a failed attempt to subscribe, so repeated failures are reported once. */
  subscribeFailed: boolean;
}

type PollResult = { info: NodeInfo; error: null } | { info: null; error: string };

/** Returns a short reason for a failed request, without the address the caller already shows. */
function describeFailure(err: unknown, addr: string): string {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof RespClientError) {
    switch (err.code) {
      case "CONNECT":
        return message.replace(`could not connect to ${addr}: `, "");
      case "TIMEOUT":
        return "no reply before the timeout";
      case "CLOSED":
      case "NOTCONNECTED":
        return "the connection closed";
      case "PROTOCOL":
        return message;
      default: {
        const unexpected: never = err.code;
        return `${message} (code ${String(unexpected)})`;
      }
    }
  }
  return message;
}

/** Sends INFO on `client` and parses the reply. Throws an Error naming `addr` when the reply is not INFO text. */
async function requestInfo(client: RespClient, addr: string, timeoutMs: number): Promise<NodeInfo> {
  const reply = await client.command(["INFO"], { timeoutMs });
  if (reply.type === "error") throw new Error(`INFO to ${addr} failed: ${reply.message}`);
  if (reply.type !== "bulk" || reply.value === null) throw new Error(`INFO to ${addr} returned a ${reply.type} reply instead of text`);
  return parseInfo(reply.value.toString("utf8"));
}

export class ClusterMonitor {
  readonly #options: MonitorOptions;
  /** Members in the order the cluster reports them. */
  #members = new Map<string, MemberState>();
  /** Id of the member whose INFO supplied the member list most recently. */
  #membersSource: string | null = null;
  /** Connections used for INFO polls, by client address. */
  readonly #pollClients = new Map<string, RespClient>();
  /** INFO polls still waiting for a reply, by member id. A later round waits for the same poll. */
  readonly #pollsInFlight = new Map<string, Promise<PollResult>>();
  #connection: Connection | null = null;
  /** Set after every member failed to accept a connection, so the failure is reported once. */
  #noMemberReported = false;
  /** Set once a node rejected SUBSCRIBE, so later nodes of the same cluster doing the same are not reported again. */
  #subscribeRejectionReported = false;
  #previous: ClusterObservation | null = null;
  readonly #events: ClusterEvent[] = [];
  #eventsRecorded = 0;
  readonly #listeners = new Set<() => void>();
  #timer: ReturnType<typeof setTimeout> | null = null;
  #stopped = false;

  constructor(options: MonitorOptions) {
    this.#options = options;
  }

  /** Members in the order the cluster reports them. */
  get members(): MemberState[] {
    return [...this.#members.values()];
  }

  /** The node commands go to, or null while no member accepts a connection. */
  get connection(): ConnectionState | null {
    const connection = this.#connection;
    if (connection === null) return null;
    return { nodeId: connection.nodeId, addr: connection.addr, feed: connection.subscription === null ? "polling" : "push" };
  }

  /** The leader reported by the members that replied to the latest poll. */
  get leader(): LeaderView | null {
    return this.#previous === null ? null : observedLeader(this.#previous);
  }

  get pollIntervalMs(): number {
    return this.#options.pollIntervalMs;
  }

  /** Recorded events, oldest first, at most `maxEvents` of them. */
  get events(): readonly ClusterEvent[] {
    return this.#events;
  }

  /** Number of events recorded since the start, including the ones dropped from `events`. */
  get eventsRecorded(): number {
    return this.#eventsRecorded;
  }

  /** Calls `listener` after every change of members, connection or events. */
  onChange(listener: () => void): void {
    this.#listeners.add(listener);
  }

  /**
   * Connects to the configured node, learns the members from its INFO and
   * starts polling. Throws, with the address in the message, when that node
   * cannot be reached, so a mistyped address fails at once.
   */
  async start(): Promise<void> {
    const addr = this.#options.connectAddr;
    const { connection, info } = await this.#openConnection(addr);
    this.#connection = connection;
    this.#setMembers(info.members);
    this.#membersSource = info.nodeId;
    this.#applyPoll(connection.nodeId, { info, error: null });
    this.#previous = this.#observe();
    this.#recordConnected(connection, info);
    await this.#subscribe(connection);
    this.#scheduleRound(0);
    this.#notify();
  }

  /** Sends one command from the command line to the connected node. */
  async execute(args: readonly (string | Uint8Array)[]): Promise<RespValue> {
    const connection = this.#connection;
    if (connection === null) {
      throw new Error(`not connected: no member accepts a connection. The console retries every ${this.#options.pollIntervalMs} ms`);
    }
    const reply = await connection.client.command(args, { timeoutMs: this.#options.commandTimeoutMs });
    this.#touch(connection.nodeId);
    return reply;
  }

  /** Stops polling and closes every connection. */
  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#closeConnection();
    for (const client of this.#pollClients.values()) client.close();
    this.#pollClients.clear();
  }

  // -------------------------------------------------------------------------
  // Polling rounds

  #scheduleRound(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      void this.#round();
    }, delayMs);
  }

  async #round(): Promise<void> {
    const started = Date.now();
    try {
      await this.#pollAll();
    } catch (err) {
      // Keep polling, because a console that stops would show a frozen cluster without saying so.
      this.#notice(`polling round failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (this.#stopped) return;
    this.#notify();
    this.#scheduleRound(Math.max(0, this.#options.pollIntervalMs - (Date.now() - started)));
  }

  /**
   * Polls every member, records the events that explain the changes and
   * checks the connection. A round waits one poll interval at most, so a
   * member that hangs keeps its last row, with its contact time growing,
   * while the others stay current.
   */
  async #pollAll(): Promise<void> {
    const targets = this.members;
    const results = new Map<string, PollResult>();
    const polls = targets.map((member) => this.#startPoll(member.id, member.clientAddr).then((result) => results.set(member.id, result)));
    let timer: ReturnType<typeof setTimeout> | null = null;
    const intervalOver = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.#options.pollIntervalMs)));
    await Promise.race([Promise.all(polls), intervalOver]);
    if (timer !== null) clearTimeout(timer);
    if (this.#stopped) return;

    for (const member of targets) {
      const result = results.get(member.id);
      if (result !== undefined) this.#applyPoll(member.id, result);
    }
    this.#updateMembership();
    this.#updateLag();

    const observation = this.#observe();
    for (const event of synthesizeEvents(this.#previous, observation, new Date())) {
      if (!this.#isPublishedByConnectedNode(event)) this.#record(event);
    }
    this.#previous = observation;

    await this.#checkConnection();
  }

  /**
   * Whether the connected node publishes its own copy of an inferred event:
   * leadership and membership changes, and role changes and restarts of
   * itself. Role changes of other members are not published by it.
   */
  #isPublishedByConnectedNode(event: ClusterEvent): boolean {
    const connection = this.#connection;
    if (event.source !== "poll" || connection === null || connection.subscription === null) return false;
    if (event.type === "leader_changed" || event.type === "membership_changed") return true;
    return event.node === connection.nodeId;
  }

  /** Returns the member's poll in flight, or starts one. */
  #startPoll(id: string, addr: string): Promise<PollResult> {
    let poll = this.#pollsInFlight.get(id);
    if (poll === undefined) {
      poll = this.#poll(id, addr).finally(() => this.#pollsInFlight.delete(id));
      this.#pollsInFlight.set(id, poll);
    }
    return poll;
  }

  async #poll(id: string, addr: string): Promise<PollResult> {
    const timeoutMs = this.#options.pollTimeoutMs;
    try {
      let client = this.#pollClients.get(addr);
      if (client === undefined || client.closed) {
        client = await RespClient.connect(addr, { timeoutMs });
        this.#pollClients.set(addr, client);
      }
      const info = await requestInfo(client, addr, timeoutMs);
      if (info.nodeId !== id) throw new Error(`${addr} is now node ${info.nodeId}`);
      return { info, error: null };
    } catch (err) {
      // A fresh connection next round also drops replies that arrive after a timeout.
      this.#pollClients.get(addr)?.close();
      this.#pollClients.delete(addr);
      return { info: null, error: describeFailure(err, addr) };
    }
  }

  #applyPoll(id: string, result: PollResult): void {
    const member = this.#members.get(id);
    if (member === undefined) return;
    if (result.info !== null) {
      member.info = result.info;
      member.reachable = true;
      member.error = null;
      member.lastContactMs = Date.now();
    } else {
      member.reachable = false;
      member.error = result.error;
    }
  }

  #touch(id: string): void {
    const member = this.#members.get(id);
    if (member !== undefined) member.lastContactMs = Date.now();
  }

  /** Takes the member list from the connected node, else from the leader, else from any member that replied. */
  #updateMembership(): void {
    const replied = this.members.filter((member) => member.reachable === true && member.info !== null);
    const source =
      replied.find((member) => member.id === this.#connection?.nodeId) ??
      replied.find((member) => member.info?.role === "leader") ??
      replied[0];
    if (source?.info) {
      this.#setMembers(source.info.members);
      this.#membersSource = source.id;
    }
  }

  #setMembers(list: MemberInfo[]): void {
    const next = new Map<string, MemberState>();
    for (const member of list) {
      const state = this.#members.get(member.id) ?? {
        id: member.id,
        clientAddr: member.clientAddr,
        raftAddr: member.raftAddr,
        voter: member.voter,
        info: null,
        reachable: null,
        error: null,
        lastContactMs: null,
        lag: null,
      };
      state.clientAddr = member.clientAddr;
      state.raftAddr = member.raftAddr;
      state.voter = member.voter;
      next.set(member.id, state);
    }
    for (const old of this.#members.values()) {
      if (next.has(old.id)) continue;
      this.#pollClients.get(old.clientAddr)?.close();
      this.#pollClients.delete(old.clientAddr);
    }
    this.#members = next;
  }

  /** Copies each member's lag from the leader's INFO, which is the only one that reports it. */
  #updateLag(): void {
    const leader = this.members.find((member) => member.reachable === true && member.info?.role === "leader");
    const reported = new Map((leader?.info?.members ?? []).map((member) => [member.id, member.lag]));
    for (const member of this.#members.values()) member.lag = reported.get(member.id) ?? null;
  }

  #observe(): ClusterObservation {
    const nodes = new Map<string, NodeObservation>();
    for (const member of this.#members.values()) {
      nodes.set(member.id, { id: member.id, clientAddr: member.clientAddr, info: member.info, reachable: member.reachable, error: member.error });
    }
    return {
      members: this.members.map((member) => ({
        id: member.id,
        raftAddr: member.raftAddr,
        clientAddr: member.clientAddr,
        voter: member.voter,
        leader: false,
        matchIndex: null,
        lag: member.lag,
      })),
      membersSource: this.#membersSource,
      nodes,
    };
  }

  // -------------------------------------------------------------------------
  // The connection for commands and events

  async #openConnection(addr: string): Promise<{ connection: Connection; info: NodeInfo }> {
    const client = await RespClient.connect(addr, { timeoutMs: this.#options.pollTimeoutMs });
    try {
      const info = await requestInfo(client, addr, this.#options.pollTimeoutMs);
      const connection = { nodeId: info.nodeId, addr, client, subscription: null, subscribeRejected: false, subscribeFailed: false };
      return { connection, info };
    } catch (err) {
      client.close();
      throw err;
    }
  }

  #closeConnection(): void {
    this.#connection?.subscription?.close();
    this.#connection?.client.close();
    this.#connection = null;
  }

  /** Drops the connection when its node became unreachable, then connects to another member or resubscribes. */
  async #checkConnection(): Promise<void> {
    const connection = this.#connection;
    if (connection !== null) {
      const member = this.#members.get(connection.nodeId);
      let lostReason: string | null = null;
      if (connection.client.closed) lostReason = "the connection closed";
      else if (member === undefined) lostReason = `${connection.nodeId} is no longer a member`;
      else if (member.reachable === false) lostReason = member.error ?? "it is unreachable";

      if (lostReason === null) {
        if (connection.subscription === null && !connection.subscribeRejected) await this.#subscribe(connection);
        return;
      }
      this.#closeConnection();
      this.#notice(`lost the connection to ${connection.nodeId} at ${connection.addr} (${lostReason}), trying the other members`);
    }
    await this.#connectToAnyMember();
  }

  /** Tries the members that replied to the latest poll, the leader first, then the others and the --connect address. */
  async #connectToAnyMember(): Promise<void> {
    const leaderId = this.leader?.id;
    const rank = (member: MemberState): number => {
      if (member.reachable === true) return member.id === leaderId ? 0 : 1;
      return member.reachable === null ? 2 : 3;
    };
    const candidates = this.members.sort((a, b) => rank(a) - rank(b)).map((member) => member.clientAddr);
    if (!candidates.includes(this.#options.connectAddr)) candidates.push(this.#options.connectAddr);

    for (const addr of candidates) {
      if (this.#stopped) return;
      try {
        const { connection, info } = await this.#openConnection(addr);
        if (this.#stopped) {
          connection.client.close();
          return;
        }
        this.#connection = connection;
        this.#noMemberReported = false;
        this.#applyPoll(connection.nodeId, { info, error: null });
        this.#recordConnected(connection, info);
        await this.#subscribe(connection);
        return;
      } catch {
        // The next candidate may accept. The failure of all of them is reported below.
      }
    }
    if (!this.#noMemberReported) {
      this.#noMemberReported = true;
      this.#notice(`no member accepts a connection, retrying every ${this.#options.pollIntervalMs} ms`);
    }
  }

  #recordConnected(connection: Connection, info: NodeInfo): void {
    const leader = info.leaderId === null ? "no leader known" : `leader ${info.leaderId}`;
    this.#notice(`connected to ${connection.nodeId} at ${connection.addr} (${info.role} in term ${info.term}, ${leader})`);
  }

  async #subscribe(connection: Connection): Promise<void> {
    const handlers = {
      onEvent: (event: ClusterEvent) => {
        this.#touch(connection.nodeId);
        this.#record(event);
        this.#notify();
      },
      onInvalidMessage: (problem: string) => {
        this.#notice(`ignored a message from ${connection.nodeId}: ${problem}`);
        this.#notify();
      },
      onClose: () => {
        // The next round subscribes again, or moves to another member if this one became unreachable.
        connection.subscription = null;
        this.#notify();
      },
    };

    try {
      const result = await EventSubscription.open(connection.addr, handlers, this.#options.pollTimeoutMs);
      if (result.kind === "unsupported") {
        connection.subscribeRejected = true;
        if (this.#subscribeRejectionReported) return;
        this.#subscribeRejectionReported = true;
        this.#notice(
          `${connection.nodeId} does not publish cluster events (${result.message}), ` +
            `so they are inferred from INFO every ${this.#options.pollIntervalMs} ms`,
        );
        return;
      }
      if (this.#stopped || this.#connection !== connection) {
        result.subscription.close();
        return;
      }
      connection.subscription = result.subscription;
      connection.subscribeFailed = false;
      this.#notice(`receiving the cluster events that ${connection.nodeId} publishes`);
    } catch (err) {
      if (connection.subscribeFailed) return;
      connection.subscribeFailed = true;
      const reason = err instanceof Error ? err.message : String(err);
      this.#notice(`${reason}. Events are inferred from INFO every ${this.#options.pollIntervalMs} ms until it works`);
    }
  }

  // -------------------------------------------------------------------------
  // Events

  #notice(message: string, type: ConsoleEventType = "connection"): void {
    this.#record({ time: new Date(), node: "console", term: null, type, message, source: "console" });
  }

  #record(event: ClusterEvent): void {
    this.#events.push(event);
    this.#eventsRecorded++;
    if (this.#events.length > this.#options.maxEvents) this.#events.splice(0, this.#events.length - this.#options.maxEvents);
  }

  #notify(): void {
    for (const listener of this.#listeners) listener();
  }
}
