// Simulated clients and the operator who changes membership. Clients send
// SET, GET and DEL to the node they believe leads, follow NOTLEADER hints,
// retry elsewhere, and record every request in a history for the
// linearizability checker:
// - a request rejected before it could take effect (NOTLEADER, BUSY,
//   NOTAPPLIED) is dropped from the history and retried as a new request;
// - a request without a reply before its timeout is recorded with an
//   unknown outcome (`ret: null`): it may still take effect later.

import type { ConfChange, NodeId } from "../../src/raft/types.ts";
import type { Operation } from "../support/linearizability.ts";
import type { NodeReply, SimNode } from "./node.ts";
import type { SimRandom } from "./random.ts";

/** What the workload needs from the simulation. */
export interface WorkloadHost {
  now(): number;
  schedule(delayMs: number, kind: string, run: () => void): void;
  /** Every node that may serve requests, retired ones excluded. */
  liveNodeIds(): NodeId[];
  node(id: NodeId): SimNode | undefined;
  /** Delivers a request to a node and its reply back, after network delays; a reply may be lost. */
  roundTrip(target: NodeId, send: (node: SimNode, reply: (reply: NodeReply) => void) => void, onReply: (reply: NodeReply) => void): void;
  record(operation: Operation): void;
  nextOperationId(): number;
}

export interface ClientStats {
  requests: number;
  acked: number;
  reads: number;
  unknown: number;
  rejected: number;
}

export interface ClientSettings {
  keys: readonly string[];
  /** Simulated milliseconds after which a request without a reply counts as an unknown outcome. */
  timeoutMs: number;
  /** Whether GETs use the "lease" level instead of read-index. */
  leaseReads: boolean;
}

type KvRequest = { kind: "set"; key: string; value: string } | { kind: "get"; key: string } | { kind: "del"; key: string };

/** One client with at most one request outstanding at a time. */
export class SimClient {
  readonly id: number;
  readonly stats: ClientStats = { requests: 0, acked: 0, reads: 0, unknown: 0, rejected: 0 };
  /** Successful writes and reads since the simulation started its liveness phase. */
  writesSinceHeal = 0;
  readsSinceHeal = 0;
  healed = false;
  stopped = false;

  readonly #host: WorkloadHost;
  readonly #random: SimRandom;
  readonly #settings: ClientSettings;
  #target: NodeId | null = null;
  #attempt = 0;
  #outstanding = false;
  #nextValue = 1;

  constructor(id: number, host: WorkloadHost, random: SimRandom, settings: ClientSettings) {
    this.id = id;
    this.#host = host;
    this.#random = random;
    this.#settings = settings;
  }

  get idle(): boolean {
    return !this.#outstanding;
  }

  start(): void {
    this.#scheduleNext(this.#random.int(1, 20));
  }

  #scheduleNext(delayMs: number): void {
    this.#host.schedule(delayMs, `client${this.id}.next`, () => {
      if (!this.stopped) this.#send(this.#chooseRequest());
    });
  }

  #chooseRequest(): KvRequest {
    const key = this.#random.pick(this.#settings.keys);
    let kind: KvRequest["kind"];
    if (this.healed && this.writesSinceHeal === 0) kind = "set";
    else if (this.healed && this.readsSinceHeal === 0) kind = "get";
    else {
      const roll = this.#random.next();
      if (roll < 0.45) kind = "set";
      else if (roll < 0.85) kind = "get";
      else kind = "del";
    }
    if (kind === "set") return { kind, key, value: `c${this.id}v${this.#nextValue++}` };
    return { kind, key };
  }

  #pickTarget(): NodeId {
    if (this.#target !== null && this.#host.node(this.#target) && !this.#host.node(this.#target)!.retired) return this.#target;
    this.#target = this.#random.pick(this.#host.liveNodeIds());
    return this.#target;
  }

  #send(request: KvRequest): void {
    const attempt = ++this.#attempt;
    const call = this.#host.now();
    const target = this.#pickTarget();
    this.#outstanding = true;
    this.stats.requests++;

    this.#host.roundTrip(
      target,
      (node, reply) => {
        if (request.kind === "get") node.submitRead(request.key, this.#settings.leaseReads, reply);
        else if (request.kind === "set") node.submitWrite({ op: "set", key: encode(request.key), value: encode(request.value) }, reply);
        else node.submitWrite({ op: "del", keys: [encode(request.key)] }, reply);
      },
      (reply) => {
        if (attempt !== this.#attempt) return;
        this.#onReply(request, call, reply);
      },
    );
    this.#host.schedule(this.#settings.timeoutMs, `client${this.id}.timeout`, () => {
      if (attempt !== this.#attempt || !this.#outstanding) return;
      this.#attempt++;
      this.#outstanding = false;
      this.stats.unknown++;
      if (request.kind !== "get") this.#record(request, call, null);
      this.#target = null;
      this.#scheduleNext(this.#random.int(1, 20));
    });
  }

  #onReply(request: KvRequest, call: number, reply: NodeReply): void {
    this.#attempt++;
    this.#outstanding = false;
    if (reply.ok) {
      if (reply.kind === "read") {
        this.stats.reads++;
        if (this.healed) this.readsSinceHeal++;
        this.#record(request, call, reply.value);
      } else if (reply.kind === "write") {
        this.stats.acked++;
        if (this.healed) this.writesSinceHeal++;
        this.#record(request, call, request.kind === "del" ? reply.result : "OK");
      } else {
        throw new Error(`client ${this.id} got a membership reply to a ${request.kind}`);
      }
      this.#scheduleNext(this.#random.int(1, 20));
      return;
    }

    this.stats.rejected++;
    switch (reply.code) {
      case "NOTLEADER":
        this.#target = reply.leaderId ?? null;
        break;
      case "NOTAPPLIED":
      case "BUSY":
        break;
      case "INVALID":
        throw new Error(`client ${this.id} got INVALID for ${request.kind}: ${reply.message}`);
      default: {
        const unreachable: never = reply;
        throw new Error(`unknown reply ${JSON.stringify(unreachable)}`);
      }
    }
    // The request definitely did not take effect: try it again as a new request.
    this.#outstanding = true;
    this.#host.schedule(this.#random.int(5, 30), `client${this.id}.retry`, () => {
      if (this.stopped) this.#outstanding = false;
      else this.#send(request);
    });
  }

  #record(request: KvRequest, call: number, output: string | number | null): void {
    const operation: Operation = {
      id: this.#host.nextOperationId(),
      client: this.id,
      op: request.kind === "set" ? { kind: "set", key: request.key, value: request.value } : { kind: request.kind, key: request.key },
      call,
      ret: null,
    };
    if (output !== null || request.kind === "get") {
      operation.ret = this.#host.now();
      if (request.kind !== "set") operation.output = output;
    }
    this.#host.record(operation);
  }
}

export interface AdminStats {
  adds: number;
  removes: number;
  leaderRemovals: number;
  attempts: number;
}

/**
 * The operator: applies one membership change at a time, like the runtime's
 * ADD and REMOVE commands, retrying until the change is committed or turns
 * out to be unnecessary.
 */
export class SimAdmin {
  readonly stats: AdminStats = { adds: 0, removes: 0, leaderRemovals: 0, attempts: 0 };
  readonly #host: WorkloadHost;
  readonly #random: SimRandom;
  readonly #timeoutMs: number;
  #change: ConfChange | null = null;
  #onDone: ((committed: boolean) => void) | null = null;
  #target: NodeId | null = null;
  #attempt = 0;

  constructor(host: WorkloadHost, random: SimRandom, timeoutMs: number) {
    this.#host = host;
    this.#random = random;
    this.#timeoutMs = timeoutMs;
  }

  get idle(): boolean {
    return this.#change === null;
  }

  get pendingChange(): ConfChange | null {
    return this.#change;
  }

  /** Starts a change; `onDone` gets true when this change was committed, false when it was not needed. */
  request(change: ConfChange, onDone: (committed: boolean) => void, leaderHint: NodeId | null): void {
    if (this.#change) throw new Error("a membership change is already in progress");
    this.#change = change;
    this.#onDone = onDone;
    this.#target = leaderHint;
    if (change.type === "add") this.stats.adds++;
    else this.stats.removes++;
    this.#send();
  }

  #send(): void {
    const change = this.#change;
    if (!change) return;
    const attempt = ++this.#attempt;
    this.stats.attempts++;
    if (this.#target === null || !this.#host.node(this.#target) || this.#host.node(this.#target)!.retired) {
      this.#target = this.#random.pick(this.#host.liveNodeIds());
    }
    this.#host.roundTrip(
      this.#target,
      (node, reply) => node.submitConfChange(change, reply),
      (reply) => {
        if (attempt !== this.#attempt) return;
        this.#attempt++;
        this.#onReply(reply);
      },
    );
    this.#host.schedule(this.#timeoutMs, "admin.timeout", () => {
      if (attempt !== this.#attempt) return;
      this.#attempt++;
      this.#target = null;
      this.#send();
    });
  }

  #onReply(reply: NodeReply): void {
    if (reply.ok) {
      this.#finish(true);
      return;
    }
    switch (reply.code) {
      case "INVALID":
        // Already a member (an earlier attempt was committed) or already gone.
        this.#finish(false);
        return;
      case "NOTLEADER":
        this.#target = reply.leaderId;
        break;
      case "BUSY":
      case "NOTAPPLIED":
        break;
      default: {
        const unreachable: never = reply;
        throw new Error(`unknown reply ${JSON.stringify(unreachable)}`);
      }
    }
    this.#host.schedule(this.#random.int(10, 40), "admin.retry", () => this.#send());
  }

  #finish(committed: boolean): void {
    const onDone = this.#onDone;
    this.#change = null;
    this.#onDone = null;
    onDone?.(committed);
  }
}

function encode(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}
