/**
 * What drives each simulated member: one interface, two implementations.
 * - NodeDriver (node-driver.ts, the default): the shell the server runs (RaftNode with
 *   DiskStorage — the real WAL and snapshot files) on an in-memory file system that loses
 *   unsynced writes and may tear the first of them on a crash.
 * - CoreDriver (core-driver.ts): a minimal Ready loop over the pure core with an idealised disk
 *   (faster; isolates core bugs).
 * The simulation, the fault injector and the workload speak to members only through it.
 */
import type { Rng } from '../lib/prng.js';
import type { Message } from '../raft/messages.js';
import type { ConfChange, ConfState, NodeId } from '../raft/types.js';
import type { ClientRequest, Reply, SimNode, SimWorld } from './cluster.js';
import type { KvCommand } from './kv.js';
import type { CoreFactory, SimDriver } from './settings.js';
import type { StateChecker } from './state-checker.js';

export interface MemberDriver {
  readonly kind: SimDriver;
  /**
   * The state machine sees every applied entry, so its applied index is the core's (core
   * driver); the shell hands it only entries with data (node driver).
   */
  readonly smCountsEveryEntry: boolean;
  /** Starts member `n`, or restarts it from what its disk holds. */
  boot(n: SimNode): void;
  /**
   * After every event: lets the members' asynchronous work that the event started run to
   * completion; rethrows a failure inside it. Undefined when there is none (core driver).
   */
  settle(): Promise<void> | undefined;
  /** Message `m` reaches running member `n`. */
  deliver(n: SimNode, m: Message): void;
  /** A client's request reaches member `n`; it answers through SimHost.reply (or not at all). */
  handleRequest(n: SimNode, req: ClientRequest): void;
  /** Core driver: takes the next Ready, if any, and starts persisting it. */
  pump(n: SimNode): void;
  /** `n` loses power (notes the crash): what the driver loses besides the member's memory. */
  crash(n: SimNode): void;
  /** `n` runs again after a pause, before the work deferred meanwhile. */
  resumed(n: SimNode): void;
  /** `n`'s clock jumped forward by `us`. */
  clockJumped(n: SimNode, us: number): void;
  /** Asks leader `l` to hand leadership to `to`: the outcome, or undefined if `l` cannot be asked (still starting). */
  transferLeadership(l: SimNode, to: NodeId): { ok: true } | { ok: false; reason: string } | undefined;
  /**
   * Proposes `cc` at leader `l` and notes `${label}: outcome`: whether it was proposed,
   * undefined if `l` cannot be asked. (The caller pumps `l` afterwards.)
   */
  proposeConfChange(l: SimNode, cc: ConfChange, label: string): boolean | undefined;
  /** Proposes a command nobody waits for at `l`. */
  propose(l: SimNode, cmd: KvCommand): void;
  /** Makes member `n` take a snapshot now (compaction fault). */
  compact(n: SimNode): void;
  /** The state checker saw `n`'s role change. */
  roleChanged(n: SimNode, role: string): void;
}

/** What the drivers are given of the simulation. */
export interface SimHost extends SimWorld {
  readonly checker: StateChecker;
  /** Disk timing and tears. */
  readonly diskRng: Rng;
  /** Seeds of the members' cores. */
  readonly coreRng: Rng;
  readonly makeCore: CoreFactory;
  /** The configuration every member's disk starts with. */
  readonly bootstrap: ConfState;
  /** Sends `m` over the simulated network. */
  send(m: Message): void;
  /** Answers a client's request. */
  reply(req: ClientRequest, rep: Reply): void;
  /** Runs `f` on member `n` now, or when it resumes if paused. */
  onNode(n: SimNode, f: () => void): void;
  /** Runs `fn` once member `n`'s clock has advanced by `clockUs` (never earlier on that clock). */
  afterClock(n: SimNode, clockUs: number, fn: () => void): void;
  /** Member `n` (re)starts: a new incarnation, running, with nothing pending. */
  newIncarnation(n: SimNode): void;
}
