/**
 * What the parts of the simulator share: the simulated members (SimNode) and clients
 * (SimClient), the requests between them, and SimWorld — the view of the running simulation
 * (virtual time, the agenda, the network, the settings) that the drivers, the fault injector,
 * the workload and the checkers are given.
 */
import type { OpKind } from '../check/history.js';
import type { RaftCore } from '../raft/raft.js';
import type { Message } from '../raft/messages.js';
import type { Ready } from '../raft/ready.js';
import type { Entry, HardState, NodeId, Snapshot } from '../raft/types.js';
import type { RaftNode } from '../node/node.js';
import { MemFs } from '../storage/fs.js';
import { SimClock } from './clock.js';
import type { SimDisk } from './disk.js';
import { SimKv, type KvCommand } from './kv.js';
import type { RealKv, SimState } from './store.js';
import type { Network } from './network.js';
import type { TraceLine } from './queue.js';
import type { Setting, SimOptions, SimStats } from './settings.js';

/** faults: faults are injected; liveness: healed, every client must complete a write; settle: no new requests, members must converge. */
export type Phase = 'faults' | 'liveness' | 'settle';

export interface ClientRequest {
  readonly client: SimClient;
  readonly reqId: number;
  readonly op: OpKind;
  readonly key: string;
  readonly cmd?: KvCommand;
}

export interface Reply {
  readonly ok: boolean;
  readonly output?: string | boolean | null;
  readonly hint?: NodeId;
}

export class SimNode {
  core: RaftCore | null = null;
  /** Node driver: the shell, its file system (survives crashes) and its receive hook. */
  node: RaftNode<boolean> | null = null;
  readonly fs = new MemFs();
  receive: ((m: Message) => void) | null = null;
  sm = new SimKv();
  /** Real store (node driver): the member's backend and KvStateMachine; survives crashes as its file system does. */
  real: RealKv | null = null;
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

  /** The state machine the checkers read: the real store when the member runs it, else the simulator's. */
  get state(): SimState {
    return this.real ?? this.sm;
  }

  /** The member (re)starts: running, with nothing pending from an earlier incarnation. */
  restarted(): void {
    this.clockWaiters = [];
    this.incarnation++;
    this.up = true;
    this.paused = false;
    this.deferred = [];
    this.checkedLeaderTerm = -1;
    this.lastRole = 'follower';
  }

  /** The member's new core, and the per-member invariant bookkeeping that starts from it. */
  adopt(core: RaftCore): RaftCore {
    this.core = core;
    // Count the ticks the member's cores are given (the minority-leader check measures in them).
    const tick = core.tick.bind(core);
    core.tick = () => {
      this.ticks++;
      tick();
    };
    this.lastCommit = core.commitIndex;
    this.lastTerm = core.currentTerm;
    this.checkedCommit = Math.min(this.checkedCommit, core.commitIndex);
    return core;
  }
}

export class SimClient {
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

/** The running simulation as its parts see it. */
export interface SimWorld {
  readonly opts: SimOptions;
  readonly setting: Setting;
  readonly nodes: ReadonlyMap<NodeId, SimNode>;
  readonly net: Network;
  readonly stats: SimStats;
  /** Virtual time, µs. */
  readonly now: number;
  readonly phase: Phase;
  /** Bumped whenever a member crashes, restarts, pauses or resumes. */
  readonly liveEpoch: number;
  /** A line in the failure trace (and, about one member, a local trace event). */
  note(line: TraceLine): void;
  /** Runs `run` after `delayUs` virtual µs (rounded; never in the past); a non-empty label goes into the failure trace when it runs. */
  schedule(delayUs: number, label: TraceLine, run: () => void): void;
}

/** The leader of the highest term among running members. */
export function currentLeader(nodes: ReadonlyMap<NodeId, SimNode>): SimNode | undefined {
  let best: SimNode | undefined;
  for (const n of nodes.values()) {
    if (n.up && n.core?.currentRole === 'leader' && (!best || n.core.currentTerm > best.core!.currentTerm)) best = n;
  }
  return best;
}

/** Every member's role, term and leader, one line (failure messages). */
export function roles(nodes: ReadonlyMap<NodeId, SimNode>): string {
  return [...nodes.values()]
    .map((n) => (n.up && n.core ? `n${n.id}:${n.core.currentRole}/t${n.core.currentTerm}/lead${n.core.leader}` : `n${n.id}:down`))
    .join(' ');
}
