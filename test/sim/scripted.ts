// Helpers for scripted scenarios that drive RaftCore instances by hand,
// message by message, to pin down a schedule the simulator found or needs.

import { DEFAULT_RAFT_CONFIG, type RaftConfig } from "../../src/raft/config.ts";
import { RaftCore } from "../../src/raft/core.ts";
import type { Entry, HardState, Member, Message } from "../../src/raft/types.ts";
import { SimRandom } from "./random.ts";

export function voters(ids: readonly string[]): Member[] {
  return ids.map((id) => ({ id, raftAddr: `raft-${id}`, clientAddr: `client-${id}`, voter: true }));
}

export function configEntry(members: Member[]): Entry {
  return { index: 1, term: 1, kind: "config", data: new Uint8Array(0), members };
}

export function commandEntry(index: number, term: number, byte: number): Entry {
  return { index, term, kind: "command", data: new Uint8Array([byte]) };
}

/** Creates a core as if restarted from storage holding `entries` and `hardState`. */
export function createCore(id: string, entries: Entry[], hardState: HardState, seed: number, config: RaftConfig = DEFAULT_RAFT_CONFIG): RaftCore {
  const random = new SimRandom(seed);
  return new RaftCore({
    id,
    config,
    random: () => random.next(),
    hardState,
    snapshot: null,
    entries: entries.map((entry) => ({ ...entry })),
    appliedIndex: 0,
  });
}

/**
 * Handles every ready batch of `cores` (as if each write finished at once)
 * and delivers their messages, for at most `rounds` rounds. Messages for
 * which `deliver` returns false are dropped. Stops early once `until`
 * holds, before the next round of ready batches is taken.
 */
export function exchange(
  cores: ReadonlyMap<string, RaftCore>,
  options: { deliver?: (message: Message) => boolean; until?: () => boolean; rounds?: number } = {},
): void {
  const deliver = options.deliver ?? (() => true);
  const rounds = options.rounds ?? 200;
  for (let round = 0; round < rounds; round++) {
    if (options.until?.()) return;
    const messages: Message[] = [];
    for (const core of cores.values()) {
      while (core.hasReady()) {
        const ready = core.ready();
        messages.push(...ready.messages);
        core.advance(ready);
      }
    }
    if (messages.length === 0) return;
    for (const message of messages) {
      if (deliver(message)) cores.get(message.to)?.step(message);
    }
  }
}

/**
 * Creates one core per id, all voters of the same configuration, and ticks
 * the first until it leads (at most 100 ticks). The caller checks its role.
 */
export function electFirst(ids: string[], config: RaftConfig = DEFAULT_RAFT_CONFIG): Map<string, RaftCore> {
  const hardState = { term: 1, votedFor: null, commitIndex: 1 };
  const entries = [configEntry(voters(ids))];
  const cores = new Map<string, RaftCore>(ids.map((id, i) => [id, createCore(id, entries, hardState, i + 1, config)]));
  const first = cores.get(ids[0])!;
  for (let tick = 0; tick < 100 && first.role !== "leader"; tick++) {
    first.tick();
    exchange(cores);
  }
  return cores;
}
