/**
 * The deterministic simulator: real Raft cores driven under virtual time, a faulty network,
 * crashes that lose whatever was not yet durable, and clients whose operations are recorded
 * as a history. Safety invariants are checked after every event; after the fault phase a
 * liveness phase demands a leader and answers; the history is then checked for
 * linearizability. Everything random comes from one seed, so a run is reproducible exactly.
 */
import { checkLinearizable } from '../check/linearizability.js';
import type { HistoryOp, OpKind } from '../check/history.js';
import { AssertionError } from '../lib/assert.js';
import { rng as makeRng, type Rng } from '../lib/prng.js';
import type { InitialState, RaftConfig } from '../raft/config.js';
import type { Message } from '../raft/messages.js';
import { jointVote } from '../raft/quorum.js';
import { RaftCore } from '../raft/raft.js';
import type { ConfChange, ConfState, Entry, HardState, NodeId, Snapshot } from '../raft/types.js';
import type { Ready } from '../raft/ready.js';
import { CATCH_UP_ELECTIONS_MAX, NotLeaderError, ProposalDroppedError, ProposalOutcomeUnknownError, ProposalRefusedError, RaftNode, ReadTimeoutError, type Clock, type StateMachine, type Transport } from '../node/node.js';
import { MemFs } from '../storage/fs.js';
import { DiskStorage, type Storage } from '../storage/storage.js';
import { SimDisk } from './disk.js';
import { decodeCommand, encodeCommand, KvStateMachine, type KvCommand } from './kv.js';
import { SimClock } from './clock.js';
import { Network, randomProfile } from './network.js';
import { SimTracer } from './trace.js';
import type { Stamp } from '../trace/recorder.js';
import type { TraceEvent } from '../trace/event.js';
import { EventQueue } from './queue.js';
import { InvariantViolation } from './violation.js';

export type CoreFactory = (config: RaftConfig, initial: InitialState) => RaftCore;

/**
 * What drives each member: `node`, the shell the server runs (RaftNode with DiskStorage — the
 * real WAL and snapshot files — on an in-memory file system that loses unsynced writes and tears
 * the last one on a crash); or `core`, a minimal driver of the pure core with an idealised disk
 * (faster; isolates core bugs).
 */
export type SimDriver = 'node' | 'core';

/** The fault kinds every seed draws from (in this order, from the seed's main stream). */
const BASE_FAULT_KINDS = ['partition', 'crash', 'pause', 'lossy', 'transfer', 'membership', 'compaction'] as const;
/**
 * Workloads aimed at rules the base kinds rarely reach, drawn from their own stream (so the base
 * settings of every seed stay what they were):
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

const MS = 1000; // virtual time is in microseconds

interface Setting {
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
}

interface ClientRequest {
  readonly client: SimClient;
  readonly reqId: number;
  readonly op: OpKind;
  readonly key: string;
  readonly cmd?: KvCommand;
}

interface Reply {
  readonly ok: boolean;
  readonly output?: string | boolean | null;
  readonly hint?: NodeId;
}

class SimNode {
  core: RaftCore | null = null;
  /** Node driver: the shell, its file system (survives crashes) and its receive hook. */
  node: RaftNode<boolean> | null = null;
  readonly fs = new MemFs();
  receive: ((m: Message) => void) | null = null;
  sm = new KvStateMachine();
  incarnation = 0;
  up = false;
  paused = false;
  /** Core driver: ticks that fell due while paused (delivered on resume). */
  missedTicks = 0;
  /** Work that arrived while paused, run in order on resume. */
  deferred: (() => void)[] = [];
  outstanding: Ready | null = null;
  /** The member's clock (rate, jumps, stops); reads `real / drift` until a clock fault. */
  readonly clock: SimClock;
  /** Timers waiting for a stopped clock to run again. */
  clockWaiters: (() => void)[] = [];
  /** Ticks its cores have been given (the minority-leader check counts in them). */
  ticks = 0;
  pendingWrites = new Map<string, { req: ClientRequest; index: number }>();
  pendingAt = new Map<number, string>();
  pendingReads = new Map<string, ClientRequest>();
  readsWaiting: { index: number; req: ClientRequest }[] = [];
  lastCommit = 0;
  lastTerm = 0;
  checkedCommit = 0;
  checkedLeaderTerm = -1;
  lastRole = 'follower';
  appliedSinceSnapshot = 0;
  /** Node driver: the last index the state machine saw applied (entries it is not given included). */
  appliedSeen = 0;
  /** Node driver: saves started and not yet complete (a crash may keep one whose torn bytes happen to be whole). */
  unsynced: { readonly hardState?: HardState; readonly entries: readonly Entry[]; readonly snapshot?: Snapshot }[] = [];

  constructor(
    readonly id: NodeId,
    readonly disk: SimDisk,
    readonly drift: number,
  ) {
    this.clock = new SimClock(drift);
  }
}

class SimClient {
  process: number;
  target: NodeId;
  seq = 0;
  waiting: { req: ClientRequest; call: number; value?: string; expected?: string | null } | null = null;
  /** Liveness phase: only writes, until one succeeds. */
  final = false;
  finalAttempts = 0;
  done = false;
  /** Lease reads: a client that only acts during hunts (reads from the hunted member, or writes at the new leader). */
  racer: 'reader' | 'writer' | null = null;

  constructor(
    readonly id: number,
    target: NodeId,
  ) {
    this.process = id;
    this.target = target;
  }
}

function chooseSetting(rng: Rng, o: SimOptions): Setting {
  // Sizes cycle with the seed so a sweep covers 3..7 members evenly.
  const nodes = o.nodes ?? 3 + (o.seed % 5);
  if (nodes < 1 || nodes > 9) throw new RangeError(`nodes must be in [1, 9], got ${nodes}`);
  let faults: FaultKind[];
  if (o.faults) faults = [...o.faults];
  else {
    faults = BASE_FAULT_KINDS.filter(() => rng.chance(0.55));
    if (faults.length === 0) faults = [rng.pick(BASE_FAULT_KINDS)];
  }
  const voters = nodes >= 4 && rng.chance(0.3) ? nodes - rng.int(1, Math.min(3, nodes - 2)) : nodes;
  const learners = voters < nodes && rng.chance(0.5) ? 1 : 0;
  const electionTicks = 10;
  return {
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
    snapshotEvery: faults.includes('compaction') ? rng.pick([5, 15, 40]) : 1_000_000,
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
    // Drawn last so the settings above stay what they were for a seed.
    segmentBytes: rng.pick([4096, 16384, 65536]),
    tearChance: rng.pick([0, 0.5, 1]),
  };
}

export class Simulation {
  private readonly rng: Rng;
  private readonly netRng: Rng;
  private readonly faultRng: Rng;
  private readonly clientRng: Rng;
  /** Lease-read choices, from their own stream (the rest of a seed's run stays what it was). */
  private readonly leaseRng: Rng;
  private readonly diskRng: Rng;
  private readonly coreRng: Rng;
  private readonly setting: Setting;
  private readonly net: Network;
  private readonly queue = new EventQueue();
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly clients: SimClient[] = [];
  private readonly history: HistoryOp[] = [];
  private readonly trace: string[] = [];
  private readonly traceLength: number;
  /** Logical clocks and trace events, when asked for (opts.onTrace). */
  private readonly tracer: SimTracer | null;
  private readonly makeCore: CoreFactory;
  private now = 0;
  private readonly driver: SimDriver;
  /** An error raised inside a member's asynchronous work (node driver), rethrown after the event. */
  private asyncFailure: unknown = null;
  private phase: 'faults' | 'liveness' | 'settle' = 'faults';
  private nextReqId = 1;
  private readonly stats: SimStats = {
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
  /** Draws of the workload kinds (joint, clock, divergence, hunting readers): their own stream. */
  private readonly workRng: Rng;
  /** Readers hunting a member that led when a partition began (lease reads), until `until`. */
  private hunt: { target: NodeId; until: number } | null = null;
  /** Minority-leader check: per leader, the term and its tick count when it was first seen cut off. */
  private readonly cutOff = new Map<NodeId, { term: number; sinceTicks: number; netVersion: number; liveEpoch: number; evalTicks: number; reach: string; reachable: ReadonlySet<NodeId> }>();
  /** Bumped whenever a member crashes, restarts, pauses or resumes. */
  private liveEpoch = 0;

  // Invariant bookkeeping.
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** "index:term" -> content and the term of the entry before it (Log Matching). */
  private readonly entryRecord = new Map<string, { content: string; prevTerm: number | undefined }>();
  /**
   * index -> the committed entry there (State Machine Safety, Leader Completeness), with the
   * term of the member that first saw it committed: an upper bound of the term it committed in.
   */
  private readonly committed = new Map<number, { term: number; content: string; commitTerm: number }>();
  private maxCommitted = 0;
  private readonly contentCache = new WeakMap<Entry, string>();
  /** Operations acknowledged to a client as done. */
  private readonly acked: { opId: string; op: OpKind }[] = [];
  private bootstrap: ConfState = { voters: [], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false };

  constructor(private readonly opts: SimOptions) {
    this.rng = makeRng(opts.seed);
    this.setting = chooseSetting(this.rng.fork(), opts);
    this.leaseRng = makeRng(opts.seed ^ 0x1ea5e);
    // Lease reads for half the runs that have check-quorum, drawn from their own stream so the
    // rest of every seed's run is what it was before they existed.
    if (this.setting.checkQuorum && (opts.readOnly ?? (this.leaseRng.chance(0.5) ? 'lease' : 'safe')) === 'lease') this.setting.readOnly = 'lease';
    this.workRng = makeRng(opts.seed ^ 0x14c0de);
    if (!opts.faults) for (const k of WORKLOAD_FAULT_KINDS) if (this.workRng.chance(WORKLOAD_FAULT_CHANCE)) this.setting.faults.push(k);
    this.adjustForWorkloads();
    this.netRng = this.rng.fork();
    this.faultRng = this.rng.fork();
    this.clientRng = this.rng.fork();
    this.diskRng = this.rng.fork();
    this.coreRng = this.rng.fork();
    const profile = randomProfile(this.netRng);
    const lossy = this.setting.faults.includes('lossy');
    this.net = new Network(lossy ? profile : { ...profile, loss: 0, dup: 0 }, this.netRng);
    this.traceLength = opts.traceLength ?? 60;
    this.tracer = opts.onTrace ? new SimTracer(opts.onTrace, () => this.now / MS) : null;
    this.makeCore = opts.makeCore ?? ((config, initial) => new RaftCore(config, initial));
    this.driver = opts.driver ?? 'node';
  }

  describeSetting(): string {
    const s = this.setting;
    const p = this.net.profile;
    return (
      `driver=${this.driver} nodes=${s.nodes} voters=${s.voters} learners=${s.learners} faults=${s.faults.join(',')} ` +
      `preVote=${s.preVote} checkQuorum=${s.checkQuorum} readOnly=${s.readOnly} heartbeat=${s.heartbeatTicks} maxMsgBytes=${s.maxMsgBytes} ` +
      `inflight=${s.inflightMsgsMax} snapshotEvery=${s.snapshotEvery} net=${p.delay}/${p.baseUs}us loss=${p.loss} dup=${p.dup} ` +
      `fsync=${s.fsyncUs[0]}-${s.fsyncUs[1]}us${this.driver === 'node' ? ` segment=${s.segmentBytes} tear=${s.tearChance}` : ''} clients=${s.clients} keys=${s.keys} strike=${s.strikeChance}`
    );
  }

  async run(): Promise<SimResult> {
    let failure: SimFailure | undefined;
    try {
      this.setup();
      await this.settle();
      const faultEnd = (this.opts.faultPhaseMs ?? 3000) * MS;
      await this.runUntil(faultEnd);
      await this.livenessPhase(faultEnd);
      if (!this.opts.skipLinearizability) this.checkHistory();
    } catch (e) {
      failure = this.toFailure(e);
    }
    this.stats.virtualMs = Math.round(this.now / MS);
    return {
      ok: failure === undefined,
      seed: this.opts.seed,
      nodes: this.setting.nodes,
      faults: this.setting.faults,
      setting: this.describeSetting(),
      ...(failure ? { failure } : {}),
      stats: this.stats,
      history: this.history,
    };
  }

  private toFailure(e: unknown): SimFailure {
    const trace = [...this.trace];
    const timeMs = this.now / MS;
    if (e instanceof InvariantViolation) return { invariant: e.invariant, message: e.message, timeMs, trace };
    if (e instanceof AssertionError) return { invariant: 'core assertion', message: e.message, timeMs, trace };
    const err = e as Error;
    return { invariant: 'simulator error', message: `${err.name}: ${err.message}\n${err.stack ?? ''}`, timeMs, trace };
  }

  private note(line: string): void {
    this.tracer?.note(line);
    this.trace.push(`${(this.now / MS).toFixed(3).padStart(10)}ms  ${line}`);
    if (this.trace.length > this.traceLength) this.trace.shift();
  }

  private schedule(delayUs: number, label: string, run: () => void): void {
    this.queue.push(this.now + Math.max(0, Math.round(delayUs)), label, run);
  }

  private async runUntil(t: number, stop?: () => boolean): Promise<void> {
    for (;;) {
      if (stop && stop()) return;
      if (this.queue.peekTime() > t) {
        this.now = t;
        return;
      }
      const ev = this.queue.pop()!;
      this.now = ev.time;
      this.stats.events++;
      if (ev.label !== '') this.note(ev.label);
      ev.run();
      if (this.driver === 'node') await this.settle();
      this.afterEvent();
    }
  }

  /**
   * Node driver: lets every member's asynchronous work that the event started run to completion
   * before the next event. No real I/O happens (the file system is in memory and its syncs wait
   * for virtual-time events), so this drains promise continuations only, in a deterministic order.
   */
  private async settle(): Promise<void> {
    if (this.driver !== 'node') return;
    // eslint-disable-next-line no-restricted-globals -- drains microtasks; no time is read
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (this.asyncFailure !== null) throw this.asyncFailure;
    for (const n of this.nodes.values()) if (n.up && n.node?.failure) throw n.node.failure;
  }

  /** Runs `f` inside a member's asynchronous work; a failure there fails the run. */
  private guard<T>(f: () => T): T {
    try {
      return f();
    } catch (e) {
      this.asyncFailure ??= e;
      throw e;
    }
  }

  // -------------------------------------------------------------------------------------
  // Setup
  // -------------------------------------------------------------------------------------

  private setup(): void {
    const s = this.setting;
    const ids = Array.from({ length: s.nodes }, (_, i) => i + 1);
    const voters = ids.slice(0, s.voters);
    const learners = ids.slice(s.voters, s.voters + s.learners);
    const conf: ConfState = { voters, votersOutgoing: [], learners, learnersNext: [], autoLeave: false };
    this.bootstrap = conf;
    for (const id of ids) {
      const drift = 1 + (this.rng.next() - 0.5) * 0.1; // clocks differ by up to ±5%
      this.nodes.set(id, new SimNode(id, new SimDisk(id, conf), drift));
    }
    this.note(`start: ${this.describeSetting()}`);
    for (const n of this.nodes.values()) this.boot(n);
    for (let c = 1; c <= s.clients; c++) {
      const client = new SimClient(c, this.clientRng.pick(voters));
      this.clients.push(client);
      this.schedule(this.clientRng.int(0, 50 * MS), '', () => this.issue(client));
    }
    this.addRacers();
    this.scheduleFault();
  }

  private boot(n: SimNode): void {
    if (this.driver === 'node') {
      this.bootNode(n).catch((e: unknown) => (this.asyncFailure ??= e));
      return;
    }
    const s = this.setting;
    this.newIncarnation(n);
    n.outstanding = null;
    n.pendingWrites.clear();
    n.pendingAt.clear();
    n.pendingReads.clear();
    n.readsWaiting = [];
    n.appliedSinceSnapshot = 0;
    const initial = n.disk.load();
    n.sm = KvStateMachine.restore(initial.snapshot.data, initial.snapshot.meta.index);
    const config: RaftConfig = {
      id: n.id,
      electionTicks: s.electionTicks,
      heartbeatTicks: s.heartbeatTicks,
      rng: this.coreRng.fork(),
      preVote: s.preVote,
      checkQuorum: s.checkQuorum,
      readOnly: s.readOnly,
      maxMsgBytes: s.maxMsgBytes,
      inflightMsgsMax: s.inflightMsgsMax,
    };
    this.adoptCore(n, this.makeCore(config, initial));
    const inc = n.incarnation;
    const tickEvery = s.tickUs * n.drift;
    const tick = (): void => {
      if (n.incarnation !== inc || !n.up) return;
      if (n.paused) n.missedTicks++;
      else {
        this.catchUp(n);
        n.core!.tick();
        this.pump(n);
      }
      // A member's ticks follow its clock (exactly as before for a clock no fault touched).
      if (n.clock.isPristine) this.schedule(tickEvery, '', tick);
      else this.afterClock(n, s.tickUs, tick);
    };
    this.schedule(this.diskRng.int(0, s.tickUs), '', tick);
    this.pump(n);
  }

  /** A member (re)starts: a new incarnation, running, with nothing pending. */
  private newIncarnation(n: SimNode): void {
    this.liveEpoch++;
    n.clockWaiters = [];
    n.incarnation++;
    n.up = true;
    n.paused = false;
    n.deferred = [];
    n.checkedLeaderTerm = -1;
    n.lastRole = 'follower';
  }

  /** The member's new core, and the per-member invariant bookkeeping that starts from it. */
  private adoptCore(n: SimNode, core: RaftCore): RaftCore {
    n.core = core;
    // Count the ticks the member's cores are given (the minority-leader check measures in them).
    const tick = core.tick.bind(core);
    core.tick = () => {
      n.ticks++;
      tick();
    };
    n.lastCommit = core.commitIndex;
    n.lastTerm = core.currentTerm;
    n.checkedCommit = Math.min(n.checkedCommit, core.commitIndex);
    return core;
  }

  // -------------------------------------------------------------------------------------
  // Node driver: the server's shell (RaftNode) with the real storage code (DiskStorage: WAL
  // and snapshot files) on an in-memory file system whose syncs take virtual time and whose
  // crashes lose unsynced writes and may tear the first of them.
  // -------------------------------------------------------------------------------------

  private async bootNode(n: SimNode): Promise<void> {
    const s = this.setting;
    this.newIncarnation(n);
    n.node = null;
    n.core = null;
    n.receive = null;
    const inc = n.incarnation;
    const alive = (): boolean => n.incarnation === inc && n.up;
    n.fs.syncDelay = () =>
      new Promise<void>((resolve) => {
        this.schedule(this.diskRng.int(s.fsyncUs[0], s.fsyncUs[1]), '', () => {
          if (alive()) this.onNode(n, resolve);
        });
      });
    const disk = await DiskStorage.open('/data', this.bootstrap, { fs: n.fs, segmentBytes: s.segmentBytes });
    if (!alive()) return;
    this.checkRecovered(n, await disk.load());
    const transport: Transport = {
      send: (messages) =>
        this.guard(() => {
          if (!alive()) return;
          for (const m of messages) {
            if (this.opts.checkDurability ?? true) this.checkOutgoing(n, m);
            this.send(m);
          }
        }),
      listen: (receive) => {
        n.receive = receive;
      },
      close: async () => {},
    };
    // The member's own clock runs at its drift, and a timer never fires before its time on
    // that clock (rounded up to the next virtual microsecond).
    const clock: Clock = {
      // (The pristine form keeps the exact arithmetic runs without clock faults always had.)
      now: () => (n.clock.isPristine ? this.now / MS / n.drift : n.clock.read(this.now) / MS),
      setTimer: (ms, fn) => {
        let armed = true;
        this.afterClock(n, ms * MS, () => {
          if (armed && alive()) this.onNode(n, () => armed && alive() && fn());
        });
        return { cancel: () => (armed = false) };
      },
    };
    const stateMachine: StateMachine<boolean> = {
      apply: (e) =>
        this.guard(() => {
          this.checkSkipped(n, e.index - 1, e.index);
          this.checkCommittedAt(n, e);
          n.appliedSeen = e.index;
          return n.sm.apply(e.index, decodeCommand(e.data));
        }),
      snapshot: () => {
        this.guard(() => this.checkSkipped(n, n.core!.appliedIndex, n.core!.appliedIndex));
        n.sm.appliedIndex = n.core!.appliedIndex;
        return n.sm.snapshot();
      },
      restore: (data, index) => {
        n.sm = KvStateMachine.restore(data, index);
        n.appliedSeen = index;
        if (n.core) {
          this.stats.snapshotsInstalled++;
          this.note(`n${n.id} installed snapshot at ${index}`);
        }
      },
    };
    const node = await RaftNode.start<boolean>({
      id: n.id,
      storage: this.nodeStorage(n, this.opts.wrapStorage?.(disk) ?? disk, alive),
      transport,
      stateMachine,
      clock,
      tickMs: s.tickUs / MS,
      electionTicks: s.electionTicks,
      heartbeatTicks: s.heartbeatTicks,
      snapshotEntries: s.snapshotEvery,
      snapshotRetain: s.snapshotRetain,
      readTimeoutMs: s.clientTimeoutUs / MS,
      seed: this.coreRng.int(0, 2 ** 31),
      raft: { preVote: s.preVote, checkQuorum: s.checkQuorum, readOnly: s.readOnly, maxMsgBytes: s.maxMsgBytes, inflightMsgsMax: s.inflightMsgsMax },
      makeCore: (config, initial) => this.adoptCore(n, this.makeCore(config, initial)),
    });
    n.node = node;
  }

  /**
   * The shell hands the state machine only entries with data; the ones between (leader no-ops,
   * configuration changes), up to `upTo`, are checked here.
   */
  private checkSkipped(n: SimNode, upTo: number, applying: number): void {
    for (let i = n.appliedSeen + 1; i <= upTo; i++) {
      const skipped = n.core!.entryAt(i);
      if (!skipped || (skipped.type === 'normal' && skipped.data.length > 0)) {
        throw new InvariantViolation('state machine safety', `n${n.id} applied entry ${applying} after ${n.appliedSeen}, skipping entry ${i}`);
      }
      this.checkCommittedAt(n, skipped);
      n.appliedSeen = i;
    }
  }

  /** DiskStorage, with the simulator's checks: log matching before a write, a record of what each completed write made durable. */
  private nodeStorage(n: SimNode, inner: Storage, alive: () => boolean): Storage {
    return {
      load: () => inner.load(),
      save: async (rd, sync) => {
        this.guard(() => this.checkNewEntries(n, rd.entries));
        n.unsynced.push(rd);
        await inner.save(rd, sync);
        if (!alive()) return;
        n.unsynced = [];
        this.guard(() => n.disk.persist(rd));
      },
      saveSnapshot: async (snap: Snapshot) => {
        await inner.saveSnapshot(snap);
        if (!alive()) return;
        n.disk.saveSnapshot(snap);
        this.stats.snapshotsTaken++;
        this.note(`n${n.id} took snapshot at ${snap.meta.index}/${snap.meta.term}`);
      },
      close: () => inner.close(),
    };
  }

  /**
   * What a member recovers from its files after a crash holds everything its completed writes
   * made durable (the record in `n.disk`): the same term and vote, and, unless a newer snapshot
   * was being installed, the same log. A crash only ever tears an unsynced write, so recovery
   * finds nothing more either.
   */
  private checkRecovered(n: SimNode, got: InitialState): void {
    // A torn write whose missing bytes happen to be zeros (as in the preallocated file) is
    // whole: recovery may then also hold the first unfinished save.
    let why = this.recoveredDiffers(n, n.disk, got);
    for (let i = 0; why && i < n.unsynced.length; i++) {
      const further = n.disk.copy();
      try {
        for (const rd of n.unsynced.slice(0, i + 1)) further.persist(rd);
      } catch {
        break;
      }
      if (this.recoveredDiffers(n, further, got) === undefined) why = undefined;
    }
    n.unsynced = [];
    if (why) throw why;
    n.disk.reset(got);
  }

  private recoveredDiffers(n: SimNode, want: SimDisk, got: InitialState): InvariantViolation | undefined {
    const hs = got.hardState;
    const was = want.hardState;
    if (hs.term !== was.term || hs.vote !== was.vote) {
      return new InvariantViolation('durable state', `n${n.id} recovered term ${hs.term} vote ${hs.vote} from its files, but term ${was.term} vote ${was.vote} had been made durable`);
    }
    const snap = got.snapshot.meta.index;
    if (snap < want.snapshot.meta.index) {
      return new InvariantViolation('durable state', `n${n.id} recovered a snapshot at ${snap}, but one at ${want.snapshot.meta.index} had been made durable`);
    }
    if (snap === want.snapshot.meta.index) {
      const a = got.entries.map((e) => `${e.index}/${e.term}`).join(' ');
      const b = want.entries.map((e) => `${e.index}/${e.term}`).join(' ');
      if (a !== b) return new InvariantViolation('durable log', `n${n.id} recovered log [${a}] after snapshot ${snap}, but [${b}] had been made durable`);
    }
    return undefined;
  }

  private handleNodeRequest(n: SimNode, req: ClientRequest): void {
    const node = n.node;
    if (!node) {
      this.reply(req, { ok: false }); // still starting
      return;
    }
    const inc = n.incarnation;
    const failed = (e: unknown): void => {
      if (n.incarnation !== inc) return;
      if (e instanceof NotLeaderError || e instanceof ProposalRefusedError) this.reply(req, { ok: false, hint: e.leaderHint });
      else if (e instanceof ProposalDroppedError || e instanceof ReadTimeoutError) this.reply(req, { ok: false, hint: node.leader });
      else if (!(e instanceof ProposalOutcomeUnknownError)) this.asyncFailure ??= e;
      // An unknown outcome gets no answer: the client times out, as it would in a real system.
    };
    if (req.op === 'read') {
      node.linearizableRead().then(() => {
        if (n.incarnation === inc) this.reply(req, { ok: true, output: n.sm.get(req.key) });
      }, failed);
    } else {
      node.propose(encodeCommand(req.cmd!)).then((swapped) => {
        if (n.incarnation === inc) this.reply(req, { ok: true, ...(req.cmd!.op === 'cas' ? { output: swapped } : {}) });
      }, failed);
    }
  }

  // -------------------------------------------------------------------------------------
  // Core driver: the Ready loop
  // -------------------------------------------------------------------------------------

  /** Takes the next Ready, if any, and starts persisting it; the rest happens when the write completes. */
  private pump(n: SimNode): void {
    if (this.driver === 'node') return; // the shell runs its own Ready loop
    if (!n.up || n.paused || n.outstanding || !n.core!.hasReady()) return;
    const core = n.core!;
    const rd = core.ready();
    n.outstanding = rd;
    this.checkNewEntries(n, rd.entries);
    if (rd.softState) this.note(`n${n.id} is ${rd.softState.role} of term ${core.currentTerm} (leader ${rd.softState.leader})`);
    const inc = n.incarnation;
    const delay = rd.mustSync ? this.diskRng.int(this.setting.fsyncUs[0], this.setting.fsyncUs[1]) : 1;
    this.schedule(delay, '', () => {
      if (n.incarnation !== inc || !n.up) return; // crashed meanwhile: the Ready is lost
      this.onNode(n, () => this.finishReady(n, rd));
    });
  }

  /** Runs `f` on member `n` now, or when it resumes if paused. */
  private onNode(n: SimNode, f: () => void): void {
    if (!n.up) return;
    if (n.paused) n.deferred.push(f);
    else f();
  }

  private finishReady(n: SimNode, rd: Ready): void {
    const core = n.core!;
    // 1. persist
    n.disk.persist(rd);
    // 2. send
    for (const m of rd.messages) {
      if (this.opts.checkDurability ?? true) this.checkOutgoing(n, m);
      this.send(m);
    }
    // 3. install the snapshot, apply committed entries
    if (rd.snapshot) {
      n.sm = KvStateMachine.restore(rd.snapshot.data, rd.snapshot.meta.index);
      this.stats.snapshotsInstalled++;
      this.note(`n${n.id} installed snapshot at ${rd.snapshot.meta.index}/${rd.snapshot.meta.term}`);
    }
    for (const e of rd.committedEntries) this.apply(n, e);
    // 4. reads
    for (const rs of rd.readStates) {
      const req = n.pendingReads.get(rs.ctx);
      if (!req) continue;
      n.pendingReads.delete(rs.ctx);
      n.readsWaiting.push({ index: rs.index, req });
    }
    this.serveReads(n);
    // 5. advance
    n.outstanding = null;
    core.advance(rd);
    this.maybeSnapshot(n);
    this.pump(n);
  }

  private apply(n: SimNode, e: Entry): void {
    this.checkApplied(n, e);
    n.appliedSinceSnapshot++;
    let opId: string | undefined;
    if (e.type === 'normal' && e.data.length > 0) {
      const cmd = decodeCommand(e.data);
      opId = cmd.id;
      const swapped = n.sm.apply(e.index, cmd);
      const p = n.pendingWrites.get(cmd.id);
      if (p) {
        n.pendingWrites.delete(cmd.id);
        n.pendingAt.delete(p.index);
        this.reply(p.req, { ok: true, ...(cmd.op === 'cas' ? { output: swapped } : {}) });
      }
    } else {
      n.sm.appliedIndex = e.index;
    }
    // A different entry at the index where a proposal of ours sat: that proposal can never commit.
    const lost = n.pendingAt.get(e.index);
    if (lost !== undefined && lost !== opId) {
      const p = n.pendingWrites.get(lost)!;
      n.pendingWrites.delete(lost);
      n.pendingAt.delete(e.index);
      this.reply(p.req, { ok: false, hint: n.core!.leader });
    }
  }

  private serveReads(n: SimNode): void {
    if (n.readsWaiting.length === 0) return;
    const still: { index: number; req: ClientRequest }[] = [];
    for (const w of n.readsWaiting) {
      if (n.sm.appliedIndex >= w.index) this.reply(w.req, { ok: true, output: n.sm.get(w.req.key) });
      else still.push(w);
    }
    n.readsWaiting = still;
  }

  private maybeSnapshot(n: SimNode): void {
    const core = n.core!;
    if (n.appliedSinceSnapshot < this.setting.snapshotEvery || core.appliedIndex <= n.disk.snapshot.meta.index) return;
    if (n.sm.appliedIndex !== core.appliedIndex) {
      throw new InvariantViolation('state machine safety', `n${n.id} state machine at ${n.sm.appliedIndex} but core applied ${core.appliedIndex}`);
    }
    const snap = core.takeSnapshot(n.sm.snapshot(), this.setting.snapshotRetain);
    if (!snap) return;
    n.disk.saveSnapshot(snap);
    n.appliedSinceSnapshot = 0;
    this.stats.snapshotsTaken++;
    this.note(`n${n.id} took snapshot at ${snap.meta.index}/${snap.meta.term}`);
  }

  // -------------------------------------------------------------------------------------
  // Network
  // -------------------------------------------------------------------------------------

  private send(m: Message): void {
    this.stats.messagesSent++;
    const stamp = this.tracer?.send(m);
    const copies = this.net.copies();
    if (copies === 0) this.stats.messagesDropped++;
    for (let i = 0; i < copies; i++) {
      this.schedule(this.net.delayUs(), `deliver ${describeMessage(m)}`, () => this.deliver(m, stamp));
    }
  }

  private deliver(m: Message, stamp?: Stamp): void {
    const to = this.nodes.get(m.to);
    if (!to || !to.up || !this.net.canPass(m.from, m.to)) {
      this.stats.messagesDropped++;
      return;
    }
    const inc = to.incarnation;
    this.onNode(to, () => {
      if (to.incarnation !== inc) return;
      this.heardFromCutOff(to, m.from);
      if (stamp) this.tracer?.receive(m, stamp);
      if (this.driver === 'node') to.receive?.(m);
      else {
        to.core!.step(m);
        this.pump(to);
      }
    });
  }

  // -------------------------------------------------------------------------------------
  // Clients
  // -------------------------------------------------------------------------------------

  private issue(c: SimClient): void {
    if (c.done || c.waiting) return;
    if (this.phase === 'settle') return;
    if (c.racer && !c.final && !this.hunting()) return; // racers wait for the next hunt
    const r = this.clientRng;
    const key = `k${r.int(0, this.setting.keys)}`;
    const opId = `c${c.id}-${++c.seq}`;
    const value = `v${c.id}.${c.seq}`;
    let req: ClientRequest;
    let expected: string | null | undefined;
    const pick = c.final ? 0.5 : r.next();
    const reqId = this.nextReqId++;
    if (pick < 0.4) {
      req = { client: c, reqId, op: 'read', key };
    } else if (pick < 0.75) {
      req = { client: c, reqId, op: 'write', key, cmd: { id: opId, op: 'write', key, value } };
    } else if (pick < 0.8) {
      req = { client: c, reqId, op: 'delete', key, cmd: { id: opId, op: 'delete', key } };
    } else {
      // Expect a value this client may have seen: its own last write or a recent one.
      expected = r.chance(0.2) ? null : `v${r.int(1, this.setting.clients + 1)}.${Math.max(1, c.seq - r.int(1, 4))}`;
      req = { client: c, reqId, op: 'cas', key, cmd: { id: opId, op: 'cas', key, expected, value } };
    }
    // A hunting reader only reads (from the member that led when the partition began): a write
    // there would keep it waiting for its outcome through the window where stale reads show.
    if (this.isHunter(c) && req.op !== 'read') req = { client: c, reqId, op: 'read', key };
    if (c.racer === 'writer' && !c.final && req.op !== 'write') req = { client: c, reqId, op: 'write', key, cmd: { id: opId, op: 'write', key, value } };
    c.waiting = { req, call: this.now, ...(req.op === 'write' || req.op === 'cas' ? { value } : {}), ...(req.op === 'cas' ? { expected: expected ?? null } : {}) };
    // With lease reads, half the requests go to any member, not the one the client follows: a
    // deposed leader that still answers from its lease meets readers while writers find the
    // new leader (so stale reads show).
    const stray = this.setting.readOnly === 'lease' && this.leaseRng.chance(0.5);
    let target = this.nodes.get(stray ? this.leaseRng.int(1, this.setting.nodes + 1) : c.target)!;
    if (this.isHunter(c)) target = this.nodes.get(this.hunt!.target)!;
    else if (this.hunting()) {
      // The other clients write where a new leader has just been elected (they know at once),
      // or, until there is one, anywhere but at the hunted member.
      const hunted = this.hunt!.target;
      let l: SimNode | undefined;
      for (const n of this.nodes.values()) if (n.id !== hunted && n.up && n.core?.currentRole === 'leader' && (!l || n.core.currentTerm > l.core!.currentTerm)) l = n;
      if (l) target = l;
      else if (target.id === hunted) target = this.nodes.get(this.workRng.pick([...this.nodes.keys()].filter((x) => x !== hunted)))!;
    }
    this.stats.ops++;
    this.schedule(this.clientDelay(), `client ${c.process} -> n${target.id}: ${req.op} ${key}${req.cmd ? ` (${opId})` : ''}`, () => {
      this.onNode(target, () => this.handleRequest(target, req));
    });
    this.schedule(this.setting.clientTimeoutUs, '', () => {
      if (c.waiting?.req.reqId === reqId) this.complete(c, null, undefined);
    });
  }

  private clientDelay(): number {
    return this.net.delayUs();
  }

  private handleRequest(n: SimNode, req: ClientRequest): void {
    if (this.driver === 'node') {
      this.handleNodeRequest(n, req);
      return;
    }
    const core = n.core!;
    if (req.op === 'read') {
      const ctx = `r${req.reqId}`;
      const r = core.readIndex(ctx);
      if (!r.ok) this.reply(req, { ok: false, hint: r.leaderHint });
      else n.pendingReads.set(ctx, req);
    } else {
      const r = core.propose(encodeCommand(req.cmd!));
      if (!r.ok) this.reply(req, { ok: false, hint: r.leaderHint });
      else {
        n.pendingWrites.set(req.cmd!.id, { req, index: r.index });
        n.pendingAt.set(r.index, req.cmd!.id);
      }
    }
    this.pump(n);
  }

  private reply(req: ClientRequest, rep: Reply): void {
    const c = req.client;
    const lost = this.net.faulty && this.clientRng.chance(this.net.profile.loss / 2);
    if (lost) return;
    this.schedule(this.clientDelay(), '', () => {
      if (c.waiting?.req.reqId !== req.reqId) return;
      // Follow the leader hint; with none, try another member.
      if (!rep.ok) c.target = rep.hint || this.clientRng.int(1, this.setting.nodes + 1);
      this.complete(c, rep.ok, rep.output);
    });
  }

  private complete(c: SimClient, ok: boolean | null, output: string | boolean | null | undefined): void {
    const w = c.waiting!;
    c.waiting = null;
    const req = w.req;
    const op: HistoryOp = {
      process: c.process,
      op: req.op,
      key: req.key,
      ...(w.value !== undefined ? { value: w.value } : {}),
      ...(req.op === 'cas' ? { expected: w.expected ?? null } : {}),
      ok,
      ...(ok === true && (req.op === 'read' || req.op === 'cas') ? { output: output ?? null } : {}),
      call: w.call * 1000,
      return: ok === null ? null : this.now * 1000,
    };
    this.history.push(op);
    this.note(
      `client ${c.process} ${req.op} ${req.key}${w.value !== undefined ? ` ${w.value}` : ''} -> ${ok === null ? 'unknown (timeout)' : ok ? `ok${op.output !== undefined ? ` ${JSON.stringify(op.output)}` : ''}` : 'refused'}`,
    );
    if (ok === true) {
      this.stats.opsOk++;
      if (req.cmd) this.acked.push({ opId: req.cmd.id, op: req.op });
    } else if (ok === false) this.stats.opsFailed++;
    else {
      this.stats.opsUnknown++;
      // A client whose op has an unknown outcome is a new process from now on (the old one may
      // still be "in" that op), and it looks for the leader elsewhere.
      c.process += this.clients.length;
      c.target = this.clientRng.int(1, this.setting.nodes + 1);
    }
    if (c.final) {
      c.finalAttempts++;
      if (ok === true && req.op === 'write') {
        c.done = true;
        return;
      }
      if (c.finalAttempts > 200) {
        throw new InvariantViolation('liveness', `client ${c.id} could not complete a write in ${c.finalAttempts} attempts after the faults stopped`);
      }
    } else if (this.phase !== 'faults') {
      c.final = true;
    }
    // During a hunt every client hurries: stale reads show only in a short window.
    this.schedule(this.hunting() ? this.workRng.int(0, 2 * MS) : this.clientRng.int(0, 20 * MS), '', () => this.issue(c));
  }

  // -------------------------------------------------------------------------------------
  // Faults
  // -------------------------------------------------------------------------------------

  private scheduleFault(): void {
    const active = this.setting.faults.filter((f) => f !== 'lossy');
    if (active.length === 0) return;
    const [lo, hi] = this.opts.faultEveryMs ?? [20, 600];
    this.schedule(this.faultRng.int(lo * MS, hi * MS + 1), '', () => {
      if (this.phase !== 'faults') return;
      this.injectFault(this.faultRng.pick(active));
      this.scheduleFault();
    });
  }

  private currentLeader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of this.nodes.values()) {
      if (n.up && n.core?.currentRole === 'leader' && (!best || n.core.currentTerm > best.core!.currentTerm)) best = n;
    }
    return best;
  }

  private victim(): SimNode {
    const leader = this.currentLeader();
    if (leader && this.faultRng.chance(0.5)) return leader;
    return this.nodes.get(this.faultRng.int(1, this.setting.nodes + 1))!;
  }

  private injectFault(kind: FaultKind): void {
    const r = this.faultRng;
    const ids = [...this.nodes.keys()];
    switch (kind) {
      case 'partition': {
        this.stats.partitions++;
        this.net.healAll();
        const shape = r.pick(['isolate', 'split', 'oneWay', 'ring', 'bridge', 'flapping'] as const);
        const hold = r.int(50 * MS, 1500 * MS);
        const ledBefore = this.currentLeader();
        const apply = (): string => {
          this.net.healAll();
          const shuffled = shuffle(r, ids);
          switch (shape) {
            case 'isolate':
            case 'flapping': {
              const v = this.victim().id;
              this.net.split([v], ids.filter((x) => x !== v));
              return `isolate n${v}`;
            }
            case 'split': {
              const k = r.int(1, Math.floor(ids.length / 2) + 1);
              this.net.split(shuffled.slice(0, k), shuffled.slice(k));
              return `split {${shuffled.slice(0, k).join(',')}} | {${shuffled.slice(k).join(',')}}`;
            }
            case 'oneWay': {
              const v = this.victim().id;
              const inbound = r.chance(0.5);
              for (const x of ids) {
                if (x === v) continue;
                if (inbound) this.net.block(x, v);
                else this.net.block(v, x);
              }
              return `one-way: n${v} ${inbound ? 'hears nobody' : 'is heard by nobody'}`;
            }
            case 'ring': {
              // Each member talks only to its two neighbours in a random ring: non-transitive.
              for (let i = 0; i < shuffled.length; i++) {
                for (let j = 0; j < shuffled.length; j++) {
                  const d = Math.abs(i - j);
                  if (d > 1 && d < shuffled.length - 1) this.net.block(shuffled[i]!, shuffled[j]!);
                }
              }
              return `ring ${shuffled.join('-')}`;
            }
            case 'bridge': {
              // Two halves that only one member (the bridge) connects.
              const bridge = shuffled[0]!;
              const rest = shuffled.slice(1);
              const k = Math.floor(rest.length / 2);
              this.net.split(rest.slice(0, k), rest.slice(k));
              return `bridge n${bridge} between {${rest.slice(0, k).join(',')}} and {${rest.slice(k).join(',')}}`;
            }
          }
        };
        this.note(`FAULT partition: ${apply()}`);
        if (ledBefore) this.startHunt(ledBefore.id, hold);
        if (shape === 'flapping') {
          const flips = r.int(3, 12);
          for (let i = 1; i <= flips; i++) {
            this.schedule((hold * i) / flips / 2, '', () => {
              if (this.phase !== 'faults') return;
              if (i % 2 === 1) {
                this.net.healAll();
                this.note('FAULT flapping partition heals');
              } else this.note(`FAULT flapping partition: ${apply()}`);
            });
          }
        }
        this.schedule(hold, '', () => {
          if (this.phase !== 'faults') return;
          this.net.healAll();
          this.note('FAULT network healed');
        });
        return;
      }
      case 'crash': {
        const v = this.victim();
        if (!v.up) return;
        this.crash(v);
        const down = r.chance(0.2) ? r.int(0, 2 * MS) : r.int(10 * MS, 1500 * MS);
        this.schedule(down, '', () => this.restart(v));
        return;
      }
      case 'pause': {
        const v = this.victim();
        if (!v.up || v.paused) return;
        this.stats.pauses++;
        v.paused = true;
        this.liveEpoch++;
        this.note(`FAULT pause n${v.id}`);
        const inc = v.incarnation;
        this.schedule(r.int(50 * MS, 800 * MS), '', () => {
          if (v.incarnation === inc) this.resume(v);
        });
        return;
      }
      case 'transfer': {
        const l = this.currentLeader();
        if (!l) return;
        const voters = l.core!.status().confState.voters.filter((x) => x !== l.id);
        if (voters.length === 0) return;
        const to = r.pick(voters);
        if (this.driver === 'node') {
          if (!l.node) return;
          try {
            l.node.transferLeadership(to);
            this.note(`FAULT transfer leadership n${l.id} -> n${to}: started`);
            this.stats.transfers++;
            this.transferStarted(l);
          } catch (e) {
            if (!(e instanceof ProposalRefusedError)) throw e;
            this.note(`FAULT transfer leadership n${l.id} -> n${to}: ${e.reason}`);
          }
          return;
        }
        const res = l.core!.transferLeader(to);
        this.note(`FAULT transfer leadership n${l.id} -> n${to}: ${res.ok ? 'started' : res.reason}`);
        if (res.ok) {
          this.stats.transfers++;
          this.transferStarted(l);
        }
        this.pump(l);
        return;
      }
      case 'membership': {
        const l = this.currentLeader();
        if (!l) return;
        const cc = this.chooseConfChange(l);
        if (!cc) return;
        if (this.driver === 'node') {
          if (!l.node) return;
          this.note(`FAULT conf change ${describeConfChange(cc)} at n${l.id}: proposed`);
          this.stats.confChanges++;
          l.node.proposeConfChange(cc).catch(() => {}); // refusals and leader changes are normal here
          return;
        }
        const res = l.core!.proposeConfChange(cc);
        this.note(`FAULT conf change ${describeConfChange(cc)} at n${l.id}: ${res.ok ? `proposed at ${res.index}` : res.reason}`);
        if (res.ok) this.stats.confChanges++;
        this.pump(l);
        return;
      }
      case 'compaction': {
        const v = this.victim();
        if (this.driver === 'node') {
          v.node?.requestSnapshot();
          return;
        }
        if (!v.up || v.paused || v.outstanding) return;
        v.appliedSinceSnapshot = this.setting.snapshotEvery;
        this.maybeSnapshot(v);
        return;
      }
      case 'joint':
        this.jointFault();
        return;
      case 'clock':
        this.clockFault();
        return;
      case 'divergence':
        this.divergenceFault();
        return;
      case 'lossy':
        return;
    }
  }

  /**
   * Targeted faults: a new leader is sometimes struck down within a few message delays, before
   * its first entries are replicated. This is what produces the half-replicated logs of the
   * paper's Figure 8 far more often than faults at uniformly random times do.
   */
  private onNewLeader(n: SimNode): void {
    // Within the lease-read margin a leader's clock never stops: one that wins gets it back.
    if (n.clock.paused && this.setting.readOnly === 'lease' && !this.opts.clockBeyondMargin) this.resumeClock(n);
    if (this.phase !== 'faults') return;
    const r = this.faultRng;
    const f = this.setting.faults;
    // Within a few one-way delays: the new leader has sent its first appends, few have arrived.
    const soon = r.int(0, 4 * this.net.profile.baseUs + 1);
    const p = this.setting.strikeChance;
    if (f.includes('crash') && r.chance(p)) {
      const inc = n.incarnation;
      this.schedule(soon, '', () => {
        if (this.phase !== 'faults' || n.incarnation !== inc || !n.up) return;
        this.note(`FAULT strike new leader n${n.id}:`);
        this.crash(n);
        this.schedule(r.int(5 * MS, 300 * MS), '', () => this.restart(n));
      });
    } else if (f.includes('partition') && r.chance(p)) {
      this.schedule(soon, '', () => {
        if (this.phase !== 'faults') return;
        this.stats.partitions++;
        this.net.healAll();
        this.net.split([n.id], [...this.nodes.keys()].filter((x) => x !== n.id));
        this.note(`FAULT partition: isolate new leader n${n.id}`);
        const hold = r.int(20 * MS, 500 * MS);
        this.startHunt(n.id, hold);
        this.schedule(hold, '', () => {
          if (this.phase !== 'faults') return;
          this.net.healAll();
          this.note('FAULT network healed');
        });
      });
    }
  }

  private chooseConfChange(l: SimNode): ConfChange | undefined {
    const cs = l.core!.status().confState;
    if (cs.votersOutgoing.length > 0) return undefined;
    const r = this.faultRng;
    const all = [...this.nodes.keys()];
    const outside = all.filter((x) => !cs.voters.includes(x) && !cs.learners.includes(x));
    const options: (() => ConfChange)[] = [];
    if (outside.length > 0) options.push(() => ({ changes: [{ kind: 'addLearner', nodeId: r.pick(outside) }] }));
    if (cs.learners.length > 0) {
      options.push(() => ({ changes: [{ kind: 'addVoter', nodeId: r.pick(cs.learners) }], joint: r.chance(0.5), autoLeave: true }));
    }
    if (cs.voters.length > 2) {
      options.push(() => ({ changes: [{ kind: 'removeNode', nodeId: r.pick(cs.voters) }], ...(r.chance(0.5) ? { joint: true, autoLeave: true } : {}) }));
      options.push(() => ({ changes: [{ kind: 'addLearner', nodeId: r.pick(cs.voters) }] }));
    }
    if (cs.voters.length >= 2 && cs.learners.length > 0) {
      options.push(() => ({
        changes: [
          { kind: 'removeNode', nodeId: r.pick(cs.voters) },
          { kind: 'addVoter', nodeId: r.pick(cs.learners) },
        ],
        joint: true,
        autoLeave: true,
      }));
    }
    if (options.length === 0) return undefined;
    return r.pick(options)();
  }

  private crash(n: SimNode): void {
    this.stats.crashes++;
    if (this.driver === 'node') {
      // The machine loses power: unsynced writes are lost, and the first may be torn.
      const tear = this.diskRng.chance(this.setting.tearChance);
      this.note(`FAULT crash n${n.id}${tear ? ' (tearing its first unsynced write)' : ''}`);
      n.fs.crash(tear ? (len) => this.diskRng.int(0, len) : undefined);
      n.node = null;
      n.receive = null;
    } else this.note(`FAULT crash n${n.id}${n.outstanding ? ' (losing an unpersisted Ready)' : ''}`);
    n.up = false;
    n.paused = false;
    n.deferred = [];
    n.outstanding = null;
    n.core = null;
    n.incarnation++;
    n.clockWaiters = [];
    this.liveEpoch++;
  }

  private restart(n: SimNode): void {
    if (n.up) return;
    this.note(`FAULT restart n${n.id} from disk (term ${n.disk.hardState.term}, vote ${n.disk.hardState.vote}, commit ${n.disk.hardState.commit}, snapshot ${n.disk.snapshot.meta.index}, ${n.disk.entries.length} entries)`);
    this.boot(n);
  }

  /**
   * Core driver, lease reads: the ticks a pause swallowed, delivered at once (as the shell
   * does from its clock), capped at two election timeouts — without them a paused leader's
   * lease would outlive the pause.
   */
  private catchUp(n: SimNode): void {
    // Only with lease reads, as the shell (RaftNode) does.
    if (this.setting.readOnly !== 'lease') n.missedTicks = 0;
    const missed = Math.min(n.missedTicks, CATCH_UP_ELECTIONS_MAX * this.setting.electionTicks + 1);
    n.missedTicks = 0;
    for (let i = 0; i < missed; i++) n.core?.tick();
  }

  private resume(n: SimNode): void {
    if (!n.paused) return;
    this.note(`FAULT resume n${n.id}`);
    n.paused = false;
    this.liveEpoch++;
    if (this.driver === 'core') this.catchUp(n);
    const work = n.deferred;
    n.deferred = [];
    for (const f of work) {
      if (!n.up || n.paused) break;
      f();
    }
    this.pump(n);
  }

  // -------------------------------------------------------------------------------------
  // Workloads for the rules the base faults rarely reach (issue 14): joint replaces under
  // partitions of one half, divergent tails under small messages, clock faults, readers that
  // hunt a deposed leader, and the check that a leader cut off with a minority steps down.
  // -------------------------------------------------------------------------------------

  /** Setting changes the workload kinds need (only for seeds that drew them). */
  private adjustForWorkloads(): void {
    const s = this.setting;
    const r = this.workRng;
    if (s.faults.includes('joint') && s.voters === s.nodes) {
      // Spare members outside the configuration, so voters can be replaced.
      s.voters = Math.max(2, s.nodes - r.int(1, s.nodes >= 5 ? 3 : 2));
      s.learners = 0;
    }
    if (s.faults.includes('divergence')) {
      s.maxMsgBytes = r.pick([64, 128]);
      s.inflightMsgsMax = r.pick([1, 4]);
    }
  }

  /** Runs `fn` once member `n`'s clock has advanced by `clockUs` (never earlier on that clock). */
  private afterClock(n: SimNode, clockUs: number, fn: () => void): void {
    if (n.clock.isPristine) {
      // Exactly the timing the simulator always had, for runs without clock faults.
      const target = n.clock.read(this.now) + clockUs;
      this.schedule(Math.ceil(clockUs * n.drift), '', () => (n.clock.isPristine ? fn() : this.atClock(n, target, fn)));
      return;
    }
    this.atClock(n, n.clock.read(this.now) + clockUs, fn);
  }

  /** Runs `fn` when member `n`'s clock reads `reading` (a stopped clock keeps it waiting). */
  private atClock(n: SimNode, reading: number, fn: () => void): void {
    const d = n.clock.realUntil(reading, this.now);
    if (d === 0) {
      fn();
      return;
    }
    if (d === Infinity) {
      n.clockWaiters.push(() => this.atClock(n, reading, fn));
      return;
    }
    // The clock may change rate or stop meanwhile: look again when the time comes.
    this.schedule(d, '', () => this.atClock(n, reading, fn));
  }

  /**
   * Check-quorum liveness: a leader cut off from a quorum of its configuration (both halves of a
   * joint one) — by partitions, crashes or pauses of the others — stops leading within two
   * election timeouts of its own ticks (plus one: the first check may still see answers from
   * just before the cut), while the partition is still up. A paused leader is not held to it
   * until it runs again.
   */
  private checkMinorityLeaders(): void {
    const bound = 2 * this.setting.electionTicks + 1;
    for (const n of this.nodes.values()) {
      const core = n.core;
      if (!n.up || !core || core.currentRole !== 'leader' || n.paused) {
        this.cutOff.delete(n.id);
        continue;
      }
      const term = core.currentTerm;
      let c = this.cutOff.get(n.id);
      if (!c || c.term !== term) {
        c = { term, sinceTicks: n.ticks, netVersion: -1, liveEpoch: -1, evalTicks: -1, reach: '', reachable: new Set() };
        this.cutOff.set(n.id, c);
      }
      if (c.netVersion !== this.net.version || c.liveEpoch !== this.liveEpoch || c.evalTicks !== n.ticks) {
        // The clock starts again whenever the set of members the leader can reach changes: a
        // check-quorum round that spans the change may count answers from both sides of it.
        const [reach, reachable] = this.cutOffReach(n);
        if (reach !== c.reach) c.sinceTicks = n.ticks;
        c.reach = reach;
        c.reachable = reachable;
        c.netVersion = this.net.version;
        c.liveEpoch = this.liveEpoch;
        c.evalTicks = n.ticks;
      }
      if (c.reach !== '' && n.ticks - c.sinceTicks > bound) {
        throw new InvariantViolation(
          'minority leader steps down',
          `n${n.id} still leads term ${term} after ${n.ticks - c.sinceTicks} of its ticks cut off from a quorum, reaching only ${c.reach} (check-quorum: at most ${bound}, two election timeouts): ${this.net.describe()}; ${this.roles()}`,
        );
      }
    }
  }

  /**
   * If leader `l` cannot exchange messages with a quorum of its configuration right now, the
   * members it can reach (as a key); '' if it can reach a quorum.
   */
  private cutOffReach(l: SimNode): [string, ReadonlySet<NodeId>] {
    const cs = l.core!.status().confState;
    const reach = (id: NodeId): boolean => {
      if (id === l.id) return true;
      const x = this.nodes.get(id);
      return !!x && x.up && !x.paused && this.net.canPass(l.id, id) && this.net.canPass(id, l.id);
    };
    const reachable = new Set([...this.nodes.keys()].filter(reach));
    if (jointVote(cs.voters, cs.votersOutgoing, reach) === 'won') return ['', reachable];
    return [`[${[...reachable].join(',')}] of (${cs.voters.join(',')})${cs.votersOutgoing.length ? `&&(${cs.votersOutgoing.join(',')})` : ''}`, reachable];
  }

  /** A transfer restarts the leader's election timer (as etcd's does): its check-quorum round waits for it. */
  private transferStarted(l: SimNode): void {
    const c = this.cutOff.get(l.id);
    if (c) c.sinceTicks = l.ticks;
  }

  /**
   * A message reached a leader from a member it is cut off from: one sent before a crash or a
   * pause, arriving late. The leader has heard from that member, so its two election timeouts
   * start again.
   */
  private heardFromCutOff(to: SimNode, from: NodeId): void {
    const c = this.cutOff.get(to.id);
    if (c && c.reach !== '' && !c.reachable.has(from)) c.sinceTicks = to.ticks;
  }

  /** Lease reads: for a while, odd-numbered clients read from the member that led when a partition began. */
  private startHunt(target: NodeId, holdUs: number): void {
    if (this.setting.readOnly !== 'lease' || this.phase !== 'faults') return;
    this.stats.hunts++;
    this.hunt = { target, until: this.now + holdUs + 2 * this.setting.electionTicks * this.setting.tickUs };
    this.note(`HUNT: odd clients read from n${target}, the others write elsewhere`);
    for (const c of this.clients) {
      if (c.racer && !c.waiting && !c.final) this.schedule(0, '', () => this.issue(c));
      else if (c.id % 2 === 0 && c.target === target) c.target = this.workRng.pick([...this.nodes.keys()].filter((x) => x !== target));
    }
  }

  /**
   * Lease reads: two more clients that act only while a hunt is on — one reads from the hunted
   * member, one writes at whoever leads elsewhere — so neither is stuck in an earlier request
   * when the window for a stale read opens.
   */
  private addRacers(): void {
    if (this.setting.readOnly !== 'lease') return;
    for (const racer of ['reader', 'writer'] as const) {
      const c = new SimClient(this.clients.length + 1, this.workRng.pick([...this.nodes.keys()]));
      c.racer = racer;
      this.clients.push(c);
    }
  }

  private hunting(): boolean {
    return this.hunt !== null && this.now < this.hunt.until && this.phase === 'faults';
  }

  private isHunter(c: SimClient): boolean {
    return (c.racer === 'reader' || (c.racer === null && c.id % 2 === 1)) && !c.final && this.hunting();
  }

  /**
   * A joint change at the leader: leave an explicit joint configuration, or replace voters by
   * members outside the configuration (one, several, or all of them at once), sometimes with a
   * voter added or removed besides; then, often, a partition that cuts off a majority of one half.
   */
  private jointFault(): void {
    const l = this.currentLeader();
    if (!l) return;
    const r = this.workRng;
    const cs = l.core!.status().confState;
    let cc: ConfChange | undefined;
    if (cs.votersOutgoing.length > 0) {
      if (!cs.autoLeave && r.chance(0.5)) cc = { changes: [] };
    } else {
      const outside = shuffle(r, [...this.nodes.keys()].filter((x) => !cs.voters.includes(x)));
      const voters = shuffle(r, cs.voters);
      if (outside.length > 0 && voters.length > 0) {
        const k = r.int(1, Math.min(outside.length, voters.length) + 1);
        const changes: ConfChange['changes'][number][] = [];
        for (let i = 0; i < k; i++) changes.push({ kind: 'removeNode', nodeId: voters[i]! }, { kind: 'addVoter', nodeId: outside[i]! });
        // Sometimes the sizes change too: one more voter added, or one fewer kept.
        if (outside.length > k && r.chance(0.3)) changes.push({ kind: 'addVoter', nodeId: outside[k]! });
        else if (voters.length - k > 1 && r.chance(0.3)) changes.push({ kind: 'removeNode', nodeId: voters[k]! });
        cc = { changes, joint: true, autoLeave: r.chance(0.5) };
      }
    }
    if (cc) {
      if (cc.changes.length > 0) this.stats.jointChanges++;
      this.stats.confChanges++;
      if (this.driver === 'node') {
        if (!l.node) return;
        this.note(`FAULT joint change ${describeConfChange(cc)}${cc.autoLeave ? ' auto-leave' : ''} at n${l.id}: proposed`);
        l.node.proposeConfChange(cc).catch(() => {});
      } else {
        const res = l.core!.proposeConfChange(cc);
        this.note(`FAULT joint change ${describeConfChange(cc)}${cc.autoLeave ? ' auto-leave' : ''} at n${l.id}: ${res.ok ? `proposed at ${res.index}` : res.reason}`);
        this.pump(l);
      }
    }
    // Once the joint configuration is in force (a few round trips), cut off a majority of one half.
    if (r.chance(0.7)) this.schedule(r.int(1 * MS, 60 * MS), '', () => this.splitJointHalves());
  }

  /**
   * With the leader in a joint configuration: a partition whose one side holds a majority of one
   * half but not of the other (the outgoing majority cut off, or the incoming one), the leader
   * usually on that side.
   */
  private splitJointHalves(): void {
    if (this.phase !== 'faults') return;
    const l = this.currentLeader();
    if (!l) return;
    const cs = l.core!.status().confState;
    if (cs.votersOutgoing.length === 0) return;
    const r = this.workRng;
    const cutOutgoing = r.chance(0.5);
    const keep = cutOutgoing ? cs.voters : cs.votersOutgoing;
    const starve = cutOutgoing ? cs.votersOutgoing : cs.voters;
    const side = new Set<NodeId>();
    if (r.chance(0.75)) side.add(l.id);
    // A majority of `keep`, taking members outside `starve` first.
    const need = (keep.length >> 1) + 1;
    const order = [...shuffle(r, keep.filter((x) => !starve.includes(x))), ...shuffle(r, keep.filter((x) => starve.includes(x)))];
    for (const x of order) {
      if ([...side].filter((y) => keep.includes(y)).length >= need) break;
      side.add(x);
    }
    const a = [...side];
    const b = [...this.nodes.keys()].filter((x) => !side.has(x));
    if (b.length === 0) return;
    this.stats.partitions++;
    this.net.healAll();
    this.net.split(a, b);
    this.note(`FAULT partition: joint halves (${cutOutgoing ? 'outgoing' : 'incoming'} majority cut off): {${a.join(',')}} | {${b.join(',')}}`);
    const hold = r.int(50 * MS, 1000 * MS);
    this.startHunt(l.id, hold);
    this.schedule(hold, '', () => {
      if (this.phase !== 'faults') return;
      this.net.healAll();
      this.note('FAULT network healed');
    });
  }

  /**
   * A leader cut off with a minority (itself and up to half the others minus one) while a burst
   * of writes arrives at it: the minority's logs grow a long tail of its term that the majority's
   * next leader overwrites; with small messages, the catch-up takes many batches.
   */
  private divergenceFault(): void {
    const l = this.currentLeader();
    if (!l || !l.up || l.paused) return;
    const r = this.workRng;
    const cs = l.core!.status().confState;
    if (cs.votersOutgoing.length > 0) return;
    const others = shuffle(r, cs.voters.filter((x) => x !== l.id));
    const minority = [l.id, ...others.slice(0, ((cs.voters.length - 1) >> 1) - 1)];
    const rest = [...this.nodes.keys()].filter((x) => !minority.includes(x));
    this.stats.divergences++;
    this.stats.partitions++;
    this.net.healAll();
    this.net.split(minority, rest);
    const burst = r.int(10, 41);
    this.note(`FAULT divergence: {${minority.join(',')}} cut off with leader n${l.id}, ${burst} writes to it`);
    for (let i = 0; i < burst; i++) {
      // Writes nobody waits for, to a key no client reads (the invariants check them, not the history).
      const cmd: KvCommand = { id: `tail-${this.stats.divergences}-${i}`, op: 'write', key: 'tail', value: `t${i}` };
      if (this.driver === 'node') l.node?.propose(encodeCommand(cmd)).catch(() => {});
      else l.core!.propose(encodeCommand(cmd));
    }
    this.pump(l);
    const hold = r.int(100 * MS, 1200 * MS);
    this.startHunt(l.id, hold);
    this.schedule(hold, '', () => {
      if (this.phase !== 'faults') return;
      this.net.healAll();
      this.note('FAULT network healed');
    });
  }

  /**
   * A member's clock runs at another rate for a while, jumps forward, or stops for a while.
   * With lease reads (unless `clockBeyondMargin`) the faults stay within the drift margin the
   * core allows for: rates within ±4% of true time, forward jumps of at most 1 ms except on the
   * leader (whose lease then only ends sooner), and a stopped clock never on the leader (one that
   * becomes leader gets its clock back at once).
   */
  private clockFault(): void {
    const r = this.workRng;
    const v = this.victim();
    if (!v.up) return;
    const lease = this.setting.readOnly === 'lease';
    const inMargin = lease && !this.opts.clockBeyondMargin;
    const isLeader = v.core?.currentRole === 'leader';
    const kind = r.pick(['rate', 'rate', 'jump', 'stop', 'race', 'race'] as const);
    if (kind === 'race') {
      this.leaseRace();
      return;
    }
    this.stats.clockFaults++;
    const hold = r.int(50 * MS, 1500 * MS);
    switch (kind) {
      case 'rate': {
        const [lo, hi] = CLOCK_RATE_IN_MARGIN;
        const rate = inMargin ? lo + r.next() * (hi - lo) : r.pick([0.3, 0.5, 0.7, 0.85, 1.2, 1.5, 2, 3]);
        v.clock.setRate(rate, this.now);
        this.note(`FAULT clock of n${v.id} runs at ${rate.toFixed(3)}x`);
        // The clock is the machine's: it keeps its fault across a crash of the member.
        this.schedule(hold, '', () => {
          v.clock.setRate(1 / v.drift, this.now);
          this.note(`FAULT clock of n${v.id} back to its own rate`);
        });
        return;
      }
      case 'jump': {
        const us = inMargin && !isLeader ? r.int(1, CLOCK_FOLLOWER_JUMP_IN_MARGIN_US + 1) : r.int(1 * MS, 800 * MS);
        v.clock.jump(us, this.now);
        // The core driver, like the shell with lease reads, delivers the ticks the jump skipped.
        if (this.driver === 'core' && lease) v.missedTicks += Math.floor(us / this.setting.tickUs);
        this.note(`FAULT clock of n${v.id} jumps ${(us / MS).toFixed(3)}ms forward`);
        return;
      }
      case 'stop': {
        if (inMargin && isLeader) return;
        v.clock.pause(this.now);
        this.note(`FAULT clock of n${v.id} stops`);
        this.schedule(Math.min(hold, 800 * MS), '', () => this.resumeClock(v));
        return;
      }
    }
  }

  /**
   * The race a lease must win: the leader is cut off from everyone for longer than an election
   * takes, while hunting readers keep reading from it and the other clients write to whoever
   * is elected on the other side. The old leader may answer from its lease only until a new
   * leader could have been elected: its lease, shortened by the drift margin, must end before
   * the followers stop ignoring votes (their own clocks, counted from when they last heard it).
   */
  private leaseRace(): void {
    const l = this.currentLeader();
    if (!l || this.phase !== 'faults') return;
    const r = this.workRng;
    if (r.chance(0.5) && this.bootRace(l)) return;
    this.stats.partitions++;
    this.net.healAll();
    this.net.split([l.id], [...this.nodes.keys()].filter((x) => x !== l.id));
    const hold = r.int(200 * MS, 1000 * MS);
    this.note(`FAULT lease race: isolate leader n${l.id} for ${(hold / MS).toFixed(0)}ms`);
    this.startHunt(l.id, hold);
    this.schedule(hold, '', () => {
      if (this.phase !== 'faults') return;
      this.net.healAll();
      this.note('FAULT network healed');
    });
  }

  /**
   * The race the boot window must win: a follower F that the leader's lease counts on restarts
   * at once, while a member C that has not heard the leader for a while (but whose log is as
   * long: no writes reach the leader meanwhile) campaigns. F has forgotten its leader; without
   * waiting an election timeout after starting it would vote for C at once, and C could commit
   * writes while the old leader still answers reads from its lease.
   */
  private bootRace(l: SimNode): boolean {
    const cs = l.core!.status().confState;
    if (cs.votersOutgoing.length > 0 || cs.voters.length < 3) return false;
    const r = this.workRng;
    const others = shuffle(r, cs.voters.filter((x) => x !== l.id));
    const f = this.nodes.get(others[0]!)!;
    const cutFromLeader = [...this.nodes.keys()].filter((x) => x !== l.id && x !== f.id);
    this.stats.partitions++;
    this.net.healAll();
    this.net.split([l.id], cutFromLeader);
    const wait = r.int(120 * MS, 300 * MS);
    this.note(`FAULT boot race: n${l.id} leads with n${f.id} only; in ${(wait / MS).toFixed(0)}ms n${f.id} restarts and n${l.id} is cut off`);
    // No writes reach the leader from now on (the others' logs stay as long as its own).
    this.startHunt(l.id, wait + 600 * MS);
    this.schedule(wait, '', () => {
      if (this.phase !== 'faults') return;
      if (f.up) {
        this.crash(f);
        this.schedule(r.int(0, MS), '', () => this.restart(f));
      }
      this.net.healAll();
      this.net.split([l.id], [...this.nodes.keys()].filter((x) => x !== l.id));
      this.note(`FAULT boot race: n${l.id} cut off`);
      this.schedule(r.int(200 * MS, 600 * MS), '', () => {
        if (this.phase !== 'faults') return;
        this.net.healAll();
        this.note('FAULT network healed');
      });
    });
    return true;
  }

  private resumeClock(n: SimNode): void {
    if (!n.clock.paused) return;
    n.clock.resume(this.now);
    this.note(`FAULT clock of n${n.id} runs again`);
    const waiting = n.clockWaiters;
    n.clockWaiters = [];
    for (const f of waiting) f();
  }

  // -------------------------------------------------------------------------------------
  // Liveness
  // -------------------------------------------------------------------------------------

  private async livenessPhase(faultEnd: number): Promise<void> {
    this.phase = 'liveness';
    this.net.healAll();
    this.net.faulty = false;
    this.note('--- faults stop: network healed, every member up ---');
    for (const n of this.nodes.values()) {
      if (!n.up) this.restart(n);
      else if (n.paused) this.resume(n);
      this.resumeClock(n);
    }
    await this.settle();
    for (const c of this.clients) {
      if (!c.waiting) {
        c.final = true;
        this.schedule(0, '', () => this.issue(c));
      }
    }
    // A leader every member of its configuration follows, within a bounded time.
    const bound = 10_000 * MS;
    await this.runUntil(faultEnd + bound, () => this.stableLeader() !== undefined);
    const leader = this.stableLeader();
    if (!leader) throw new InvariantViolation('liveness', `no stable leader ${bound / MS}ms after the faults stopped: ${this.roles()}`);
    this.stats.leaderAfterHealMs = Math.round((this.now - faultEnd) / MS);
    // Every client gets an answer and completes a write.
    await this.runUntil(faultEnd + 2 * bound, () => this.clients.every((c) => c.done));
    const stuck = this.clients.filter((c) => !c.done);
    if (stuck.length > 0) {
      throw new InvariantViolation('liveness', `clients ${stuck.map((c) => c.id).join(',')} got no successful write within ${(2 * bound) / MS}ms after the faults stopped: ${this.roles()}`);
    }
    // Every member of the final configuration catches up to the same state.
    this.phase = 'settle';
    await this.runUntil(this.now + bound, () => this.converged() === undefined);
    const why = this.converged();
    if (why) throw new InvariantViolation('liveness', `members did not converge: ${why}`);
    this.stats.commitIndex = this.currentLeader()?.core!.commitIndex ?? 0;
    this.checkAckedEverywhere();
  }

  private roles(): string {
    return [...this.nodes.values()]
      .map((n) => (n.up && n.core ? `n${n.id}:${n.core.currentRole}/t${n.core.currentTerm}/lead${n.core.leader}` : `n${n.id}:down`))
      .join(' ');
  }

  private finalMembers(leader: SimNode): SimNode[] {
    const cs = leader.core!.status().confState;
    const ids = new Set([...cs.voters, ...cs.votersOutgoing, ...cs.learners]);
    return [...ids].map((id) => this.nodes.get(id)!);
  }

  private stableLeader(): SimNode | undefined {
    const l = this.currentLeader();
    if (!l) return undefined;
    for (const n of this.finalMembers(l)) if (!n.up || !n.core || n.core.leader !== l.id || n.core!.currentTerm !== l.core!.currentTerm) return undefined;
    return l;
  }

  private converged(): string | undefined {
    const l = this.stableLeader();
    if (!l) return `no stable leader: ${this.roles()}`;
    const commit = l.core!.commitIndex;
    // Until an entry of its own term commits, a new leader does not know the full commit index.
    if (l.core!.termAt(commit) !== l.core!.currentTerm) return `leader n${l.id} has not committed an entry of term ${l.core!.currentTerm} yet`;
    // The node driver's state machine does not see the entries without data: compare its content.
    const withIndex = this.driver === 'core';
    const digest = l.sm.digest(withIndex);
    for (const n of this.finalMembers(l)) {
      if (n.core!.appliedIndex !== commit || (withIndex && n.sm.appliedIndex !== commit)) return `n${n.id} applied ${n.core!.appliedIndex} of ${commit}`;
      if (n.sm.digest(withIndex) !== digest) return `n${n.id} state ${n.sm.digest()} differs from leader n${l.id} state ${digest}`;
    }
    return undefined;
  }

  private checkAckedEverywhere(): void {
    const l = this.stableLeader()!;
    for (const n of this.finalMembers(l)) {
      for (const a of this.acked) {
        if (!n.sm.hasApplied(a.opId)) {
          throw new InvariantViolation('acknowledged write lost', `${a.op} ${a.opId} was acknowledged to its client but member n${n.id} never applied it`);
        }
      }
    }
  }

  private checkHistory(): void {
    const r = checkLinearizable(this.history);
    if (!r.ok) throw new InvariantViolation('linearizability', r.failure ? `key ${r.failure.key}: ${r.failure.message}` : 'history is not linearizable');
  }

  // -------------------------------------------------------------------------------------
  // Safety invariants
  // -------------------------------------------------------------------------------------

  private content(e: Entry): string {
    let c = this.contentCache.get(e);
    if (c === undefined) {
      c = `${e.type}:${new TextDecoder().decode(e.data)}`;
      this.contentCache.set(e, c);
    }
    return c;
  }

  /** Checked after every event, for every running member. */
  private afterEvent(): void {
    for (const n of this.nodes.values()) {
      if (!n.up || !n.core) continue;
      const core = n.core;
      const term = core.currentTerm;
      if (term < n.lastTerm) throw new InvariantViolation('term monotonic', `n${n.id} went from term ${n.lastTerm} to ${term}`);
      n.lastTerm = term;
      if (term > this.stats.maxTerm) this.stats.maxTerm = term;
      const commit = core.commitIndex;
      if (commit < n.lastCommit) throw new InvariantViolation('commit monotonic', `n${n.id} commit index went from ${n.lastCommit} to ${commit}`);
      n.lastCommit = commit;
      if (commit > n.checkedCommit) this.recordCommitted(n, commit);
      const role = core.currentRole;
      if (role !== n.lastRole) {
        n.lastRole = role;
        if (this.driver === 'node') this.note(`n${n.id} is ${role} of term ${term} (leader ${core.leader})`);
      }
      if (role === 'leader') {
        const other = this.leaderOfTerm.get(term);
        if (other === undefined) {
          this.leaderOfTerm.set(term, n.id);
          this.stats.leaders++;
          this.onNewLeader(n);
        } else if (other !== n.id) {
          throw new InvariantViolation('election safety', `two leaders in term ${term}: n${other} and n${n.id}`);
        }
        if (n.checkedLeaderTerm !== term) {
          n.checkedLeaderTerm = term;
          this.checkLeaderCompleteness(n);
        }
      }
    }
    if (this.setting.checkQuorum && this.phase === 'faults') this.checkMinorityLeaders();
  }

  /** Records entries newly committed at `n`; a different entry already committed at an index is a safety violation. */
  private recordCommitted(n: SimNode, commit: number): void {
    const core = n.core!;
    for (let i = Math.max(n.checkedCommit + 1, core.firstIndex()); i <= commit; i++) {
      const e = core.entryAt(i);
      if (!e) continue;
      const c = this.content(e);
      const prev = this.committed.get(i);
      if (prev === undefined) {
        this.committed.set(i, { term: e.term, content: c, commitTerm: core.currentTerm });
        if (i > this.maxCommitted) this.maxCommitted = i;
      } else if (prev.term !== e.term || prev.content !== c) {
        throw new InvariantViolation(
          'state machine safety',
          `n${n.id} committed ${i}/${e.term} ${c} but ${i}/${prev.term} ${prev.content} was committed before`,
        );
      }
    }
    n.checkedCommit = commit;
  }

  /**
   * A leader holds every entry committed in an earlier term (§5.4.3). A leader of a stale term
   * (one that won while cut off) is only bound by what was committed before its term.
   */
  private checkLeaderCompleteness(n: SimNode): void {
    const core = n.core!;
    const term = core.currentTerm;
    for (let i = core.firstIndex(); i <= this.maxCommitted; i++) {
      const c = this.committed.get(i);
      if (!c || c.commitTerm >= term) continue;
      const t = core.termAt(i);
      if (t !== c.term) {
        throw new InvariantViolation(
          'leader completeness',
          `n${n.id} became leader of term ${term} holding ${t === undefined ? 'nothing' : `${i}/${t}`} at index ${i}, but ${i}/${c.term} was committed in term ${c.commitTerm} or earlier`,
        );
      }
    }
  }

  /** Log Matching (§5.3): an (index, term) pair names one entry, and one predecessor term. */
  private checkNewEntries(n: SimNode, entries: readonly Entry[]): void {
    const core = n.core!;
    let prevTerm = entries.length > 0 ? core.termAt(entries[0]!.index - 1) : undefined;
    for (const e of entries) {
      const key = `${e.index}:${e.term}`;
      const c = this.content(e);
      const rec = this.entryRecord.get(key);
      if (rec === undefined) this.entryRecord.set(key, { content: c, prevTerm });
      else if (rec.content !== c) {
        throw new InvariantViolation('log matching', `n${n.id} holds ${e.index}/${e.term} ${c}, another log holds ${e.index}/${e.term} ${rec.content}`);
      } else if (rec.prevTerm !== undefined && prevTerm !== undefined && rec.prevTerm !== prevTerm) {
        throw new InvariantViolation(
          'log matching',
          `n${n.id} holds ${e.index}/${e.term} after an entry of term ${prevTerm}, another log holds it after an entry of term ${rec.prevTerm}`,
        );
      }
      prevTerm = e.term;
    }
  }

  /** State Machine Safety at apply time: every member applies the same entry at each index, in order. */
  private checkApplied(n: SimNode, e: Entry): void {
    this.checkCommittedAt(n, e);
    if (e.index !== n.sm.appliedIndex + 1) {
      throw new InvariantViolation('state machine safety', `n${n.id} applied entry ${e.index} right after ${n.sm.appliedIndex}`);
    }
  }

  private checkCommittedAt(n: SimNode, e: Entry): void {
    const c = this.content(e);
    const prev = this.committed.get(e.index);
    if (prev === undefined) {
      this.committed.set(e.index, { term: e.term, content: c, commitTerm: n.core!.currentTerm });
      if (e.index > this.maxCommitted) this.maxCommitted = e.index;
    } else if (prev.term !== e.term || prev.content !== c) {
      throw new InvariantViolation('state machine safety', `n${n.id} applied ${e.index}/${e.term} ${c} but ${e.index}/${prev.term} ${prev.content} is committed there`);
    }
  }

  /** What must be durable before a message leaves (the Ready contract). */
  private checkOutgoing(n: SimNode, m: Message): void {
    const hs = n.disk.hardState;
    if (m.type === 'voteResponse' && !m.reject && !m.preVote) {
      // The grant must be durable, or superseded by a durable later term (then this member can
      // never vote in the grant's term again either).
      if (hs.term < m.term || (hs.term === m.term && hs.vote !== m.to)) {
        throw new InvariantViolation('vote durability', `n${n.id} granted its vote to n${m.to} in term ${m.term} but its disk says term ${hs.term} vote ${hs.vote}`);
      }
    }
    if (m.type === 'appendResponse' && !m.reject && !n.disk.holds(m.index)) {
      throw new InvariantViolation('ack durability', `n${n.id} acknowledged index ${m.index} to n${m.to} but its disk holds only up to ${n.disk.snapshot.meta.index + n.disk.entries.length}`);
    }
  }
}

function shuffle<T>(r: Rng, xs: readonly T[]): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = r.int(0, i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

export function describeMessage(m: Message): string {
  const head = `n${m.from}->n${m.to} ${m.type} t${m.term}`;
  switch (m.type) {
    case 'append':
      return `${head} prev=${m.prevLogIndex}/${m.prevLogTerm} entries=${m.entries.length > 0 ? `${m.entries[0]!.index}..${m.entries[m.entries.length - 1]!.index}` : 'none'} commit=${m.commit}`;
    case 'appendResponse':
      return `${head} index=${m.index}${m.reject ? ` REJECT hint=${m.hintIndex}/${m.hintTerm}` : ''}`;
    case 'heartbeat':
      return `${head} commit=${m.commit} round=${m.round}`;
    case 'heartbeatResponse':
      return `${head} round=${m.round}`;
    case 'vote':
      return `${head}${m.preVote ? ' pre' : ''} last=${m.lastLogIndex}/${m.lastLogTerm}${m.transfer ? ' transfer' : ''}`;
    case 'voteResponse':
      return `${head}${m.preVote ? ' pre' : ''} ${m.reject ? 'REJECT' : 'GRANT'}`;
    case 'snapshot':
      return `${head} at ${m.snapshot.meta.index}/${m.snapshot.meta.term}`;
    case 'readIndex':
      return `${head} ctx=${m.ctx}`;
    case 'readIndexResponse':
      return `${head} ctx=${m.ctx} index=${m.index}${m.reject ? ' REJECT' : ''}`;
    case 'timeoutNow':
      return head;
  }
}

function describeConfChange(cc: ConfChange): string {
  if (cc.changes.length === 0) return 'leave-joint';
  const parts = cc.changes.map((c) => `${c.kind}(${c.nodeId})`);
  return `${parts.join(' ')}${cc.joint ? ' joint' : ''}`;
}

export function runSimulation(opts: SimOptions): Promise<SimResult> {
  return new Simulation(opts).run();
}
