/**
 * The simulator's settings: what a caller may ask for (SimOptions), what one seed chooses
 * (Setting: cluster shape, timing, limits, fault kinds), and what a run reports (SimResult).
 */
import type { HistoryOp } from '../check/history.js';
import type { InitialState, RaftConfig } from '../raft/config.js';
import type { RaftCore } from '../raft/raft.js';
import type { Storage } from '../storage/storage.js';
import { BACKEND_BATCH_INTERVAL_MS, BACKEND_BATCH_OPS_MAX, type MemoryBackend } from '../kv/backend.js';
import type { TraceEvent } from '../trace/event.js';
import { stream } from './streams.js';

export type CoreFactory = (config: RaftConfig, initial: InitialState) => RaftCore;

/**
 * What drives each member: `node`, the shell the server runs (RaftNode with DiskStorage — the
 * real WAL and snapshot files — on an in-memory file system that loses unsynced writes and tears
 * the last one on a crash); or `core`, a minimal driver of the pure core with an idealised disk
 * (faster; isolates core bugs).
 */
export type SimDriver = 'node' | 'core';

/**
 * What the node driver's members apply the log to: `sim`, the simulator's register map (kv.ts);
 * or `real`, src/kv's KvStateMachine on a MemoryBackend with LMDB's crash semantics (store.ts).
 */
export type SimStore = 'sim' | 'real';

/** The fault kinds every seed draws from (each its own chance, BASE_FAULT_CHANCE). */
export const BASE_FAULT_KINDS = ['partition', 'crash', 'pause', 'lossy', 'transfer', 'membership', 'compaction'] as const;
/**
 * Workloads aimed at rules the base kinds rarely reach (each with WORKLOAD_FAULT_CHANCE):
 * - `joint`: joint changes that replace voters ({a,b,c} -> {a,b,d}, or several at once, so the
 *   incoming and outgoing majorities can be disjoint), entered with or without automatic leave,
 *   followed by partitions that cut off the outgoing or the incoming majority;
 * - `clock`: members' clocks change rate, jump forward, or stop for a while (with lease reads,
 *   within the drift margin the core is configured for unless `clockBeyondMargin`);
 * - `divergence`: small messages (maxMsgBytes 64..128) and a leader cut off with a minority
 *   while it takes a burst of writes, so followers hold long divergent tails of an old term.
 */
export const WORKLOAD_FAULT_KINDS = ['joint', 'clock', 'divergence'] as const;
export const FAULT_KINDS = [...BASE_FAULT_KINDS, ...WORKLOAD_FAULT_KINDS] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];
/** Chance that a seed (without explicit faults) gets each workload kind. */
export const WORKLOAD_FAULT_CHANCE = 0.3;
/**
 * Clock faults within the lease-read drift margin (the core's default, electionTicks / 5): a
 * clock's rate stays within these bounds of true time, so any two members' rates differ by less
 * than the margin allows once tick rounding is counted (a follower may count its election
 * timeout from a tick up to one tick late or early).
 */
export const CLOCK_RATE_IN_MARGIN = [0.96, 1.04] as const;
/** Within the margin, a follower's clock jumps forward by at most this much (µs). */
export const CLOCK_FOLLOWER_JUMP_IN_MARGIN_US = 1000;

export interface SimOptions {
  readonly seed: number;
  /** Cluster size, 3..7 (default: chosen from the seed). */
  readonly nodes?: number;
  /** Fault kinds to inject (default: a subset chosen from the seed; every kind appears over a sweep). */
  readonly faults?: readonly FaultKind[];
  /** Virtual duration of the fault phase, ms. */
  readonly faultPhaseMs?: number;
  /** How leaders answer reads (default: 'lease' for half the seeds that have check-quorum). */
  readonly readOnly?: 'safe' | 'lease';
  /** Probability that a new leader is struck (crashed or isolated) within a few message delays (default: 0.1, 0.3 or 0.7 by seed). */
  readonly strikeChance?: number;
  /** Range of virtual ms between two injected faults (default 20..600). */
  readonly faultEveryMs?: readonly [number, number];
  /** Builds each core; tests pass deliberately broken cores here. */
  readonly makeCore?: CoreFactory;
  /** Trace lines kept for a failure report. */
  readonly traceLength?: number;
  /**
   * Check at send time that votes and acknowledgements are durable (default true). Tests turn
   * it off to show that a durability bug is also caught by its consequences.
   */
  readonly checkDurability?: boolean;
  /** Skip the (comparatively slow) linearizability check. */
  readonly skipLinearizability?: boolean;
  /** What drives each member (default `node`). */
  readonly driver?: SimDriver;
  /** What members apply the log to (default `sim`; `real` needs the node driver). */
  readonly store?: SimStore;
  /**
   * Real store: builds each incarnation's backend over what the last one committed (default
   * MemoryBackend.reopen); tests pass deliberately broken backends here.
   */
  readonly reopenBackend?: (crashed: MemoryBackend, batchOpsMax: number) => MemoryBackend;
  /** Node driver: wraps each member's storage; tests pass deliberately broken storage here. */
  readonly wrapStorage?: (s: Storage) => Storage;
  /**
   * With lease reads, clock faults normally stay within the drift margin the core is configured
   * for (rates within ±4%, a leader's clock never stops, a follower's jumps by at most 1 ms).
   * True breaks the margin on purpose (slow or stopped leader clocks, big follower jumps): a
   * test shows the sweep then finds stale reads.
   */
  readonly clockBeyondMargin?: boolean;
  /** Told of every trace event (messages sent and received with logical clocks, local events): see trace.ts. */
  readonly onTrace?: (e: TraceEvent) => void;
}

export interface SimFailure {
  readonly invariant: string;
  readonly message: string;
  readonly timeMs: number;
  readonly trace: readonly string[];
}

export interface SimStats {
  events: number;
  messagesSent: number;
  messagesDropped: number;
  leaders: number;
  maxTerm: number;
  crashes: number;
  pauses: number;
  partitions: number;
  transfers: number;
  confChanges: number;
  snapshotsTaken: number;
  snapshotsInstalled: number;
  ops: number;
  opsOk: number;
  opsFailed: number;
  opsUnknown: number;
  commitIndex: number;
  virtualMs: number;
  /** Virtual ms from the end of faults to a leader every member follows. */
  leaderAfterHealMs: number;
  /** Joint changes proposed that replace voters or change several at once. */
  jointChanges: number;
  /** Clock faults (rate changes, jumps, stops). */
  clockFaults: number;
  /** Leaders cut off with a minority while taking a burst of writes (divergent tails). */
  divergences: number;
  /** Partitions timed to a stale leader, with readers sent to it (lease reads). */
  hunts: number;
}

export interface SimResult {
  readonly ok: boolean;
  readonly seed: number;
  readonly nodes: number;
  readonly faults: readonly FaultKind[];
  /** The seed's settings, one line. */
  readonly setting: string;
  readonly failure?: SimFailure;
  readonly stats: SimStats;
  readonly history: readonly HistoryOp[];
}

export const MS = 1000; // virtual time is in microseconds

export interface Setting {
  nodes: number;
  voters: number;
  learners: number;
  faults: FaultKind[];
  electionTicks: number;
  heartbeatTicks: number;
  tickUs: number;
  preVote: boolean;
  checkQuorum: boolean;
  /** 'lease' only with checkQuorum. */
  readOnly: 'safe' | 'lease';
  maxMsgBytes: number;
  inflightMsgsMax: number;
  snapshotEvery: number;
  snapshotRetain: number;
  fsyncUs: readonly [number, number];
  /** WAL segment size (node driver): small, so segments roll and are released often. */
  segmentBytes: number;
  /** Chance that a crash tears the first unsynced write (node driver). */
  tearChance: number;
  clients: number;
  keys: number;
  clientTimeoutUs: number;
  strikeChance: number;
  store: SimStore;
  /** Real store: the backend's batch limit (writes pending before maybeCommit commits). */
  storeBatchOps: number;
  /** Real store: the backend's commit interval on the member's clock, ms (0: by count and at snapshots only). */
  storeCommitMs: number;
}

/** Chance that a seed (without explicit faults) gets each base fault kind. */
export const BASE_FAULT_CHANCE = 0.55;

/**
 * The seed's fault kinds: each kind is in with its chance, drawn from a stream of its own
 * (`choose <kind>`), so adding a kind changes no other kind's draw. A seed that draws no base
 * kind gets the base kind whose draw came closest.
 */
function chooseFaults(seed: number): FaultKind[] {
  const draws = new Map<FaultKind, number>(FAULT_KINDS.map((k) => [k, stream(seed, `choose ${k}`).next()]));
  const faults = FAULT_KINDS.filter((k) => draws.get(k)! < ((BASE_FAULT_KINDS as readonly string[]).includes(k) ? BASE_FAULT_CHANCE : WORKLOAD_FAULT_CHANCE));
  if (!faults.some((k) => (BASE_FAULT_KINDS as readonly string[]).includes(k))) {
    const closest = [...BASE_FAULT_KINDS].sort((a, b) => draws.get(a)! - draws.get(b)!)[0]!;
    faults.unshift(closest);
  }
  return faults;
}

/** What the seed chooses (each group of draws from its own stream), overridden by the options given. */
export function chooseSetting(o: SimOptions): Setting {
  // Sizes cycle with the seed so a sweep covers 3..7 members evenly.
  const nodes = o.nodes ?? 3 + (o.seed % 5);
  if (nodes < 1 || nodes > 9) throw new RangeError(`nodes must be in [1, 9], got ${nodes}`);
  const faults = o.faults ? [...o.faults] : chooseFaults(o.seed);
  const rng = stream(o.seed, 'setting');
  const voters = nodes >= 4 && rng.chance(0.3) ? nodes - rng.int(1, Math.min(3, nodes - 2)) : nodes;
  const learners = voters < nodes && rng.chance(0.5) ? 1 : 0;
  const electionTicks = 10;
  const snapshotEvery = rng.pick([5, 15, 40]);
  const s: Setting = {
    nodes,
    voters,
    learners,
    faults,
    electionTicks,
    heartbeatTicks: rng.pick([1, 1, 2, 3]),
    tickUs: 10 * MS,
    preVote: rng.chance(0.75),
    checkQuorum: rng.chance(0.75),
    readOnly: 'safe',
    maxMsgBytes: rng.pick([64, 256, 4096, 1 << 20]),
    inflightMsgsMax: rng.pick([1, 4, 256]),
    snapshotEvery: faults.includes('compaction') ? snapshotEvery : 1_000_000,
    snapshotRetain: rng.pick([0, 0, 3, 10]),
    fsyncUs: rng.pick([
      [20, 100],
      [200, 2000],
      [100, 15 * MS],
    ] as const),
    clients: rng.int(2, 6),
    keys: rng.int(1, 4),
    clientTimeoutUs: 400 * MS,
    strikeChance: o.strikeChance ?? rng.pick([0.1, 0.3, 0.7]),
    segmentBytes: rng.pick([4096, 16384, 65536]),
    tearChance: rng.pick([0, 0.5, 1]),
    store: o.store ?? 'sim',
    // From a stream of their own: no other draw of the seed moves.
    ...storeLimits(o.seed),
  };
  // Lease reads for half the runs that have check-quorum.
  const lease = stream(o.seed, 'lease').chance(0.5);
  if (s.checkQuorum && (o.readOnly ?? (lease ? 'lease' : 'safe')) === 'lease') s.readOnly = 'lease';
  adjustForWorkloads(o.seed, s);
  return s;
}

/** The real store's commit points: small batches (a commit every entry or two) up to etcd's default (only timers and snapshots commit). */
function storeLimits(seed: number): { storeBatchOps: number; storeCommitMs: number } {
  const r = stream(seed, 'store');
  return { storeBatchOps: r.pick([4, 16, 64, BACKEND_BATCH_OPS_MAX]), storeCommitMs: r.pick([0, 20, BACKEND_BATCH_INTERVAL_MS]) };
}

/** Setting changes the workload kinds need (only for seeds that have them). */
function adjustForWorkloads(seed: number, s: Setting): void {
  if (s.faults.includes('joint') && s.voters === s.nodes) {
    // Spare members outside the configuration, so voters can be replaced.
    s.voters = Math.max(2, s.nodes - stream(seed, 'setting joint').int(1, s.nodes >= 5 ? 3 : 2));
    s.learners = 0;
  }
  if (s.faults.includes('divergence')) {
    const r = stream(seed, 'setting divergence');
    s.maxMsgBytes = r.pick([64, 128]);
    s.inflightMsgsMax = r.pick([1, 4]);
  }
}

export function newStats(): SimStats {
  return {
    events: 0,
    messagesSent: 0,
    messagesDropped: 0,
    leaders: 0,
    maxTerm: 0,
    crashes: 0,
    pauses: 0,
    partitions: 0,
    transfers: 0,
    confChanges: 0,
    snapshotsTaken: 0,
    snapshotsInstalled: 0,
    ops: 0,
    opsOk: 0,
    opsFailed: 0,
    opsUnknown: 0,
    commitIndex: 0,
    virtualMs: 0,
    leaderAfterHealMs: -1,
    jointChanges: 0,
    clockFaults: 0,
    divergences: 0,
    hunts: 0,
  };
}
