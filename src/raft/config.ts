/** Tunables of the Raft core, counted in logical ticks and bytes. */
export interface RaftConfig {
  /** Ticks without hearing from a leader before a follower campaigns; the real timeout is randomized in [electionTicks, 2 * electionTicks). */
  electionTicks: number;
  /** Ticks between leader heartbeats; must be well below electionTicks. */
  heartbeatTicks: number;
  /** Maximum bytes of entries in one AppendEntries message (at least one entry is always sent). */
  maxAppendBytes: number;
  /** Maximum AppendEntries messages in flight to one peer before waiting for acknowledgements. */
  maxInflightAppends: number;
  /**
   * Maximum bytes of entries in flight to one peer before waiting for
   * acknowledgements. One message is always allowed, however large, so a
   * single entry above this limit still goes out.
   */
  maxInflightBytes: number;
  /** Ask for votes with a pre-vote round first, so that a rejoining node cannot bump terms. */
  preVote: boolean;
  /** A leader steps down after an election timeout without hearing from a majority. */
  checkQuorum: boolean;
}

export const DEFAULT_RAFT_CONFIG: RaftConfig = {
  electionTicks: 10,
  heartbeatTicks: 1,
  maxAppendBytes: 1 << 20,
  maxInflightAppends: 64,
  maxInflightBytes: 4 << 20,
  preVote: true,
  checkQuorum: true,
};

/** Returns an error message naming the offending values, or null when `config` is valid. */
export function validateRaftConfig(config: RaftConfig): string | null {
  if (!Number.isInteger(config.heartbeatTicks) || config.heartbeatTicks < 1) {
    return `heartbeatTicks must be a positive integer, got ${config.heartbeatTicks}`;
  }
  if (!Number.isInteger(config.electionTicks) || config.electionTicks <= config.heartbeatTicks * 2) {
    return `electionTicks (${config.electionTicks}) must be an integer above twice heartbeatTicks (${config.heartbeatTicks})`;
  }
  if (!(config.maxAppendBytes >= 1024)) {
    return `maxAppendBytes must be at least 1024, got ${config.maxAppendBytes}`;
  }
  if (!Number.isInteger(config.maxInflightAppends) || config.maxInflightAppends < 1) {
    return `maxInflightAppends must be a positive integer, got ${config.maxInflightAppends}`;
  }
  if (!(config.maxInflightBytes >= 1024)) {
    return `maxInflightBytes must be at least 1024, got ${config.maxInflightBytes}`;
  }
  return null;
}
