/**
 * Configuration of one Raft core, validated once at construction against named limits.
 */
import type { Rng } from '../lib/prng.js';
import type { HardState, NodeId, Entry, Snapshot, Index } from './types.js';

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {} };

export interface RaftConfig {
  /** This member's id (> 0). */
  readonly id: NodeId;
  /** Followers wait a random number of ticks in [electionTicks, 2*electionTicks) before campaigning. */
  readonly electionTicks: number;
  /** A leader sends heartbeats every heartbeatTicks ticks (must be < electionTicks). */
  readonly heartbeatTicks: number;
  /** The injected, seeded source of the one random choice the core makes: its election timeout. */
  readonly rng: Rng;
  /** Pre-vote (thesis §9.6): a member campaigns only once it knows it could win. */
  readonly preVote?: boolean;
  /** Check-quorum: a leader that has not heard from a quorum in an election timeout steps down. */
  readonly checkQuorum?: boolean;
  /**
   * 'safe' confirms leadership with a heartbeat round per read batch. 'lease' (requires
   * checkQuorum) answers at once while the leader holds a lease: a quorum acknowledged a
   * heartbeat sent less than electionTicks - leaseDriftTicks ticks ago (its members ignore
   * votes for electionTicks after hearing from the leader, so no other leader can exist
   * before then); otherwise it falls back to a heartbeat round. The driver must deliver ticks
   * as real time passes (catch up after a pause), or the lease outlives its time.
   */
  readonly readOnly?: 'safe' | 'lease';
  /** Margin for clock-rate differences between members, in ticks (default ceil(electionTicks / 5)). */
  readonly leaseDriftTicks?: number;
  /** Maximum bytes of entry payload in one AppendEntries message (at least one entry is always sent). */
  readonly maxMsgBytes?: number;
  /** Maximum AppendEntries in flight to one follower in replicate state. */
  readonly inflightMsgsMax?: number;
  /** Maximum entry payload bytes in flight to one follower. */
  readonly inflightBytesMax?: number;
  /** Maximum uncommitted entry payload bytes at the leader before proposals are refused. */
  readonly uncommittedBytesMax?: number;
  /** Maximum payload bytes of one proposed entry. */
  readonly entryBytesMax?: number;
  /** Maximum payload bytes of committed entries handed out in one Ready. */
  readonly applyBytesMax?: number;
  /** Ticks a follower may stay in snapshot state without an answer before the leader retries. */
  readonly snapshotRetryTicks?: number;
  readonly logger?: Logger;
}

/** The durable state a core restarts from (a fresh member: snapshot at index 0 carrying the bootstrap configuration). */
export interface InitialState {
  readonly hardState: HardState;
  readonly snapshot: Snapshot;
  /** Entries after snapshot.meta.index, contiguous. */
  readonly entries: readonly Entry[];
  /** Index the state machine has already applied (default: snapshot.meta.index). */
  readonly applied?: Index;
}

export interface ResolvedConfig {
  readonly id: NodeId;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly rng: Rng;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly readOnly: 'safe' | 'lease';
  readonly leaseDriftTicks: number;
  readonly maxMsgBytes: number;
  readonly inflightMsgsMax: number;
  readonly inflightBytesMax: number;
  readonly uncommittedBytesMax: number;
  readonly entryBytesMax: number;
  readonly applyBytesMax: number;
  readonly snapshotRetryTicks: number;
  readonly logger: Logger;
}

export const defaults = {
  preVote: true,
  checkQuorum: true,
  readOnly: 'safe',
  maxMsgBytes: 1 << 20,
  inflightMsgsMax: 256,
  inflightBytesMax: 32 << 20,
  uncommittedBytesMax: 64 << 20,
  entryBytesMax: 8 << 20,
  applyBytesMax: 16 << 20,
} as const;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v <= 0) throw new ConfigError(`${name} must be a positive integer, got ${v}`);
  return v;
}

function leaseDrift(c: RaftConfig): number {
  const d = c.leaseDriftTicks ?? Math.ceil(c.electionTicks / 5);
  if (!Number.isInteger(d) || d < 0 || d >= c.electionTicks) throw new ConfigError(`leaseDriftTicks must be an integer in [0, electionTicks), got ${d}`);
  return d;
}

export function resolveConfig(c: RaftConfig): ResolvedConfig {
  positiveInt('id', c.id);
  positiveInt('electionTicks', c.electionTicks);
  positiveInt('heartbeatTicks', c.heartbeatTicks);
  if (c.heartbeatTicks >= c.electionTicks) {
    throw new ConfigError(`heartbeatTicks (${c.heartbeatTicks}) must be less than electionTicks (${c.electionTicks})`);
  }
  const checkQuorum = c.checkQuorum ?? defaults.checkQuorum;
  const readOnly = c.readOnly ?? defaults.readOnly;
  if (readOnly === 'lease' && !checkQuorum) {
    throw new ConfigError("readOnly 'lease' is only safe together with checkQuorum");
  }
  return {
    id: c.id,
    electionTicks: c.electionTicks,
    heartbeatTicks: c.heartbeatTicks,
    rng: c.rng,
    preVote: c.preVote ?? defaults.preVote,
    checkQuorum,
    readOnly,
    leaseDriftTicks: leaseDrift(c),
    maxMsgBytes: positiveInt('maxMsgBytes', c.maxMsgBytes ?? defaults.maxMsgBytes),
    inflightMsgsMax: positiveInt('inflightMsgsMax', c.inflightMsgsMax ?? defaults.inflightMsgsMax),
    inflightBytesMax: positiveInt('inflightBytesMax', c.inflightBytesMax ?? defaults.inflightBytesMax),
    uncommittedBytesMax: positiveInt('uncommittedBytesMax', c.uncommittedBytesMax ?? defaults.uncommittedBytesMax),
    entryBytesMax: positiveInt('entryBytesMax', c.entryBytesMax ?? defaults.entryBytesMax),
    applyBytesMax: positiveInt('applyBytesMax', c.applyBytesMax ?? defaults.applyBytesMax),
    snapshotRetryTicks: positiveInt('snapshotRetryTicks', c.snapshotRetryTicks ?? c.electionTicks * 2),
    logger: c.logger ?? silentLogger,
  };
}
