/**
 * The node shell: drives one pure RaftCore with a clock, storage, a transport and a state
 * machine. The Ready loop does, in order: persist (Storage.save), send, install the snapshot
 * and apply committed entries, answer reads, advance — exactly the contract in
 * ARCHITECTURE.md. Proposals resolve with the state machine's result once their entry is
 * applied, and fail with a typed error when they cannot commit.
 */
import { assert } from '../lib/assert.js';
import { rng } from '../lib/prng.js';
import type { Logger, RaftConfig } from '../raft/config.js';
import type { Message } from '../raft/messages.js';
import type { InitialState } from '../raft/config.js';
import { RaftCore, type Status } from '../raft/raft.js';
import { decodeConfChange } from '../raft/confchange.js';
import type { ConfChange, Entry, Index, NodeId, Refusal, Snapshot, Term } from '../raft/types.js';
import type { Ready } from '../raft/ready.js';
import type { Storage } from '../storage/storage.js';

/** Time for the shell: real timers in a server, virtual ones in the simulator. */
export interface Clock {
  now(): number;
  setTimer(ms: number, fn: () => void): { cancel(): void };
}

export const realClock: Clock = {
  now: () => performance.now(),
  setTimer(ms, fn) {
    const t = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(t) };
  },
};

/** Carries Raft messages between members. Delivery is best effort: loss is tolerated. */
export interface Transport {
  send(messages: readonly Message[]): void;
  /** Registers the receiver for messages addressed to this member. */
  listen(receive: (m: Message) => void): void;
  close(): Promise<void>;
  /**
   * True when this transport streams a snapshot's state itself (src/server/snapshot-stream.ts:
   * chunks from a read view of the state machine, taken when the message is sent): the node
   * then sends snapshot messages with the metadata only, and builds no image.
   */
  readonly streamsSnapshots?: boolean;
}

/**
 * The application's replicated state machine. `apply` must be deterministic (no clock, no
 * randomness): every member applies the same entries in the same order. It is given the
 * committed entries that carry data, in log order; after a restart the member calls `restore`
 * with its latest snapshot and applies the entries after it again.
 */
export interface StateMachine<R = unknown> {
  apply(entry: Entry): R;
  /** An image of the state at the last applied index. */
  snapshot(): Uint8Array;
  /** Replaces the state by an image taken at `index`. */
  restore(data: Uint8Array, index: Index): void;
  /**
   * Optional: a committed configuration change, in log order with the other entries (the core
   * switches its configuration when the Ready is advanced). Must be deterministic like `apply`
   * and total (the change's `context` is whatever the proposer put there).
   */
  applyConfChange?(cc: ConfChange, index: Index): void;
  /**
   * Optional, for a state machine that keeps its state in storage of its own (KvStateMachine
   * on its backend): the index of the last entry its state holds. At start the node restores
   * the snapshot only when the state is behind it, and re-applies only the entries after this
   * index; an entry at or below it is never applied again.
   */
  lastAppliedIndex?(): Index;
  /**
   * Optional, with lastAppliedIndex: makes the state durable up to `index` (the applied index)
   * and returns the data for a snapshot at `index` — when the state is durable, a small marker
   * rather than the whole state (the snapshot then only releases the log below it). The node
   * sends a lagging follower `snapshot()` instead, taken when it goes out.
   */
  persistTo?(index: Index): Uint8Array;
}

/**
 * The state machine restored from a snapshot; an image it refuses (hostile bytes from a file or
 * a peer) stops the member, with a message saying which snapshot it was.
 */
function restoreOrExplain(sm: StateMachine<unknown>, snap: Snapshot, what: string): void {
  try {
    sm.restore(snap.data, snap.meta.index);
  } catch (e) {
    throw new Error(`restoring ${what} (index ${snap.meta.index}, term ${snap.meta.term}): ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

export class NotLeaderError extends Error {
  override name = 'NotLeaderError';
  constructor(
    readonly leaderHint: NodeId,
    detail: string,
  ) {
    super(`not the leader${leaderHint ? ` (leader is ${leaderHint})` : ''}: ${detail}`);
  }
}

/** Refused before it entered the log (transfer in progress, too much uncommitted data, ...). */
export class ProposalRefusedError extends Error {
  override name = 'ProposalRefusedError';
  constructor(
    readonly reason: Refusal['reason'],
    readonly leaderHint: NodeId,
    detail: string,
  ) {
    super(`${reason}: ${detail}`);
  }
}

/** The entry was replaced by another leader's: it will never be applied. */
export class ProposalDroppedError extends Error {
  override name = 'ProposalDroppedError';
}

/**
 * The proposal's fate cannot be known here: its entry reached this member only inside a
 * snapshot from the leader (it may or may not be in it). Like a timeout, the caller must
 * read to find out.
 */
export class ProposalOutcomeUnknownError extends Error {
  override name = 'ProposalOutcomeUnknownError';
}

export class StoppedError extends Error {
  override name = 'StoppedError';
}

export class ReadTimeoutError extends Error {
  override name = 'ReadTimeoutError';
}

/**
 * What the node reports as it runs, for metrics and operator logs (the server maps these to
 * Prometheus metrics; the node knows nothing of them). Every method is optional and must not
 * throw or block: it is called from the Ready loop.
 */
export interface NodeObserver {
  /** The known leader changed to `leader` (0: none) in `term`. */
  leaderChanged?(leader: NodeId, term: Term): void;
  /** A proposal of this member failed: refused, dropped, outcome unknown, or the node stopped. */
  proposalFailed?(): void;
}

/**
 * Ticks delivered at once after a pause, at most, in election timeouts: enough for every
 * timeout to expire (so no lease outlives the pause); more would only repeat heartbeats.
 */
export const CATCH_UP_ELECTIONS_MAX = 2;

export interface RaftNodeOptions<R> {
  readonly id: NodeId;
  readonly storage: Storage;
  readonly transport: Transport;
  readonly stateMachine: StateMachine<R>;
  readonly clock?: Clock;
  /** Milliseconds per tick (default 100). */
  readonly tickMs?: number;
  readonly electionTicks?: number;
  readonly heartbeatTicks?: number;
  /** Take a snapshot every this many applied entries (default 10,000). */
  readonly snapshotEntries?: number;
  /** Entries kept below a snapshot so slightly lagging followers avoid one (default 1,000). */
  readonly snapshotRetain?: number;
  /** How long a linearizable read may wait for its read index, ms (default 5 election timeouts). */
  readonly readTimeoutMs?: number;
  /** Seed of the election-timeout randomness (default: from the clock). */
  readonly seed?: number;
  readonly logger?: Logger;
  /** Told of leader changes and failed proposals (metrics, logs). */
  readonly observer?: NodeObserver;
  /** Extra core settings (limits, pre-vote, check-quorum). */
  readonly raft?: Partial<Omit<RaftConfig, 'id' | 'rng' | 'logger'>>;
  /**
   * Builds the core (default `new RaftCore`). For the simulator, which inspects the core for its
   * invariant checks and runs deliberately broken cores; applications leave it unset.
   */
  readonly makeCore?: (config: RaftConfig, initial: InitialState) => RaftCore;
}

interface ProposalWaiter<R> {
  term: Term;
  resolve(r: R): void;
  reject(e: Error): void;
}

export class RaftNode<R = unknown> {
  readonly id: NodeId;
  private readonly core: RaftCore;
  private readonly o: RaftNodeOptions<R>;
  private readonly clock: Clock;
  private readonly tickMs: number;
  private stopped = false;
  private tickTimer: { cancel(): void } | null = null;
  /** When the next tick is due, on the clock. */
  private nextTickAt: number | null = null;
  /** Lease reads on: ticks follow the clock (see catchUpTicks). */
  private readonly leaseReads: boolean;
  private wake: (() => void) | null = null;
  private loopDone: Promise<void> = Promise.resolve();
  private readonly proposals = new Map<Index, ProposalWaiter<R>>();
  private readonly reads = new Map<string, { resolve(): void; reject(e: Error): void; timer: { cancel(): void } }>();
  private readyReads: { index: Index; ctx: string }[] = [];
  private readSeq = 0;
  private appliedSinceSnapshot = 0;
  private snapshotRequested = false;
  private failed: Error | null = null;
  private closing = false;
  private reportFailure: (e: Error) => void = () => {};
  /**
   * Resolves with the error that stopped this node (a storage failure such as ENOSPC or EIO,
   * or a bug in the Ready loop); never resolves when the node is stopped by `stop()`. Once it
   * has, the node has stopped: it neither leads nor follows (`isLeader` false, `leader` 0),
   * pending proposals and reads have failed, and nothing more is persisted. The owner should
   * end the member (a server process exits) and call `stop()` to close the transport.
   */
  readonly fatal: Promise<Error> = new Promise((resolve) => (this.reportFailure = resolve));
  /** The last index applied to the state machine (entries or snapshot). */
  private lastApplied: Index = 0;
  /** The leader as the last Ready's soft state named it (for NodeObserver.leaderChanged). */
  private knownLeader: NodeId = 0;
  /** What the leadership listeners were last told (see onLeadershipChange). */
  private leading = false;
  private leadingTerm: Term = 0;
  private leadershipListeners: ((leading: boolean, term: Term) => void)[] = [];
  /** The retention asked for by requestSnapshot, for the next snapshot only. */
  private snapshotRetainOnce: number | undefined;
  /** The image last sent to a lagging follower, and the applied index it is at. */
  private sendImage: { index: Index; data: Uint8Array } | null = null;

  private constructor(core: RaftCore, o: RaftNodeOptions<R>) {
    this.core = core;
    this.o = o;
    this.id = o.id;
    this.clock = o.clock ?? realClock;
    this.tickMs = o.tickMs ?? 100;
    this.leaseReads = o.raft?.readOnly === 'lease';
  }

  /** Recovers from storage and starts ticking and processing. */
  static async start<R>(o: RaftNodeOptions<R>): Promise<RaftNode<R>> {
    let initial = await o.storage.load();
    const sm = o.stateMachine;
    const held = sm.lastAppliedIndex?.();
    if (held === undefined || held < initial.snapshot.meta.index) restoreOrExplain(sm, initial.snapshot, "this member's snapshot");
    else initial = resumeAt(initial, held);
    const clock = o.clock ?? realClock;
    const core = (o.makeCore ?? ((c: RaftConfig, i: InitialState) => new RaftCore(c, i)))(
      {
        electionTicks: o.electionTicks ?? 10,
        heartbeatTicks: o.heartbeatTicks ?? 1,
        ...o.raft,
        id: o.id,
        rng: rng(o.seed ?? Math.floor(clock.now() * 1000) ^ (o.id * 0x9e3779b1)),
        ...(o.logger ? { logger: o.logger } : {}),
      },
      initial,
    );
    const node = new RaftNode(core, o);
    node.lastApplied = initial.applied ?? initial.snapshot.meta.index;
    o.transport.listen((m) => node.receive(m));
    node.scheduleTick();
    node.loopDone = node.loop();
    return node;
  }

  // -------------------------------------------------------------------------------------
  // Public API
  // -------------------------------------------------------------------------------------

  /** Proposes `data`; resolves with the state machine's result once the entry is applied. */
  propose(data: Uint8Array): Promise<R> {
    if (this.stopped) return Promise.reject(new StoppedError('node is stopped'));
    const r = this.core.propose(data);
    if (!r.ok) {
      this.o.observer?.proposalFailed?.();
      return Promise.reject(r.reason === 'notLeader' ? new NotLeaderError(r.leaderHint, r.detail) : new ProposalRefusedError(r.reason, r.leaderHint, r.detail));
    }
    const p = new Promise<R>((resolve, reject) => this.proposals.set(r.index, { term: r.term, resolve, reject }));
    this.kick();
    return p;
  }

  /** Proposes a membership change; resolves once it is applied. */
  proposeConfChange(cc: ConfChange): Promise<void> {
    if (this.stopped) return Promise.reject(new StoppedError('node is stopped'));
    const r = this.core.proposeConfChange(cc);
    if (!r.ok) return Promise.reject(r.reason === 'notLeader' ? new NotLeaderError(r.leaderHint, r.detail) : new ProposalRefusedError(r.reason, r.leaderHint, r.detail));
    const p = new Promise<void>((resolve, reject) => this.proposals.set(r.index, { term: r.term, resolve: () => resolve(), reject }));
    this.kick();
    return p;
  }

  /**
   * A linearizable read barrier (ReadIndex, thesis §6.4): resolves once this member's state
   * machine has applied everything committed when the read was issued, so reading it then is
   * linearizable. Works on followers too (the leader confirms the index).
   */
  linearizableRead(): Promise<void> {
    if (this.stopped) return Promise.reject(new StoppedError('node is stopped'));
    // A lease read must see the time that passed since the last tick.
    if (this.leaseReads) this.catchUpTicks();
    const ctx = `${this.id}.${++this.readSeq}`;
    const r = this.core.readIndex(ctx);
    if (!r.ok) return Promise.reject(new NotLeaderError(r.leaderHint, r.detail));
    const p = new Promise<void>((resolve, reject) => {
      const timeoutMs = this.o.readTimeoutMs ?? 5 * (this.o.electionTicks ?? 10) * this.tickMs;
      const timer = this.clock.setTimer(timeoutMs, () => {
        if (this.reads.delete(ctx)) reject(new ReadTimeoutError(`no read index confirmed within ${timeoutMs} ms`));
      });
      this.reads.set(ctx, { resolve, reject, timer });
    });
    this.kick();
    return p;
  }

  transferLeadership(to: NodeId): void {
    if (this.stopped) throw new StoppedError('node is stopped');
    const r = this.core.transferLeader(to);
    if (!r.ok) throw new ProposalRefusedError(r.reason, r.leaderHint, r.detail);
    this.kick();
  }

  /** The snapshot being streamed to `to` made progress (RaftCore.snapshotProgress): its retry waits. */
  snapshotProgress(to: NodeId): void {
    if (!this.stopped) this.core.snapshotProgress(to);
  }

  /** The snapshot stream to `to` failed (refused or abandoned): the core probes again, and sends another if needed. */
  snapshotFailed(to: NodeId): void {
    if (this.stopped) return;
    this.core.reportSnapshot(to, false);
    this.kick();
  }

  /** Starts an election now (tests and operators). */
  campaign(): void {
    if (this.stopped) return;
    this.core.campaign();
    this.kick();
  }

  status(): Status {
    return this.core.status();
  }

  /** False once the node has failed: a member that cannot persist must not claim to lead. */
  get isLeader(): boolean {
    return this.failed === null && this.core.currentRole === 'leader';
  }

  /** The leader this member knows of; 0 when none, or once the node has failed. */
  get leader(): NodeId {
    return this.failed === null ? this.core.leader : 0;
  }

  /**
   * Leadership as events, for what only a leader may do (etcd's lessor Promote/Demote).
   * `true`: this member leads `term` and has applied every entry committed before its term —
   * told when it applies its own term's first (empty) entry, as etcd promotes its lessor then,
   * so whatever the previous leaders recorded is in its state machine. `false`: it stopped
   * leading (told at the first Ready that says so, when the node fails, or when it stops).
   * A listener added while this member leads is told `true` at once. Between the core stepping
   * down and the `false`, `isLeader` is already false and proposals are refused, so a listener
   * that proposes only through `propose` cannot act as a deposed leader.
   */
  onLeadershipChange(fn: (leading: boolean, term: Term) => void): void {
    this.leadershipListeners.push(fn);
    // Added while leading: told at once, as if it had listened from the start.
    if (this.leading) fn(true, this.leadingTerm);
  }

  private setLeading(leading: boolean, term: Term): void {
    // Deposed and elected again between two Readies: the old term's leadership ended first.
    if (leading && this.leading && term !== this.leadingTerm) this.setLeading(false, this.leadingTerm);
    if (this.leading === leading) return;
    this.leading = leading;
    if (leading) this.leadingTerm = term;
    for (const l of this.leadershipListeners) l(leading, leading ? term : this.leadingTerm);
  }

  /** The error that stopped this member (a storage failure, a bug), or null while it runs. */
  get failure(): Error | null {
    return this.failed;
  }

  /** The index of the last entry applied to the state machine. */
  get appliedIndex(): Index {
    return this.lastApplied;
  }

  /** Proposals of this member in the log, not yet applied. */
  get pendingProposals(): number {
    return this.proposals.size;
  }

  /**
   * Takes a snapshot (and releases the log below it) at the next turn of the Ready loop,
   * keeping `retainEntries` entries below it (default: the node's snapshotRetain). With 0, a
   * member whose log is empty can only catch up from a snapshot (a member that joins does not
   * know the configuration the log started from).
   */
  requestSnapshot(retainEntries?: number): void {
    this.snapshotRequested = true;
    if (retainEntries !== undefined) this.snapshotRetainOnce = Math.min(this.snapshotRetainOnce ?? retainEntries, retainEntries);
    this.kick();
  }

  /** Stops ticking and processing; pending operations fail with StoppedError. */
  /**
   * Stops ticking and processing; pending operations fail with StoppedError. After a failure
   * (see `fatal`) it still closes the transport and the storage (an error closing a storage
   * that already failed is ignored), then throws the failure.
   */
  async stop(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.stopped = true;
    this.tickTimer?.cancel();
    this.kick();
    await this.loopDone;
    this.setLeading(false, this.core.currentTerm);
    this.failPending(new StoppedError('node stopped'));
    await this.o.transport.close();
    try {
      await this.o.storage.close();
    } catch (e) {
      if (!this.failed) throw e;
    }
    if (this.failed) throw this.failed;
  }

  private failPending(err: Error): void {
    for (const w of this.proposals.values()) {
      this.o.observer?.proposalFailed?.();
      w.reject(err);
    }
    this.proposals.clear();
    for (const r of this.reads.values()) {
      r.timer.cancel();
      r.reject(err);
    }
    this.reads.clear();
  }

  // -------------------------------------------------------------------------------------
  // Driving the core
  // -------------------------------------------------------------------------------------

  private receive(m: Message): void {
    if (this.stopped) return;
    this.core.step(m);
    this.kick();
  }

  private scheduleTick(): void {
    if (this.stopped) return;
    this.nextTickAt ??= this.clock.now() + this.tickMs;
    this.tickTimer = this.clock.setTimer(Math.max(0, this.nextTickAt - this.clock.now()), () => {
      if (this.stopped) return;
      if (this.leaseReads) this.catchUpTicks();
      else {
        // Without lease reads, one tick per timer, as etcd's ticker: ticks missed in a pause
        // are dropped (safety never depends on them; catching up would only hurry elections).
        this.core.tick();
        this.nextTickAt = this.clock.now() + this.tickMs;
      }
      this.kick();
      this.scheduleTick();
    });
  }

  /**
   * Delivers the ticks the clock says are due. Time is the clock's, not the timer's: after a
   * pause (SIGSTOP, a long GC, a stalled event loop) the missed ticks are delivered at once —
   * at most CATCH_UP_ELECTIONS_MAX election timeouts' worth — so election timeouts,
   * check-quorum and the leader's read lease see the time that really passed. Used with lease
   * reads, whose safety depends on it.
   */
  private catchUpTicks(): void {
    const now = this.clock.now();
    this.nextTickAt ??= now + this.tickMs;
    const max = CATCH_UP_ELECTIONS_MAX * (this.o.electionTicks ?? 10) + 1;
    let n = 0;
    while (now >= this.nextTickAt) {
      if (n < max) this.core.tick();
      n++;
      this.nextTickAt += this.tickMs;
    }
  }

  private kick(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private async loop(): Promise<void> {
    try {
      while (!this.stopped) {
        if (this.core.hasReady()) await this.handle(this.core.ready());
        else if (this.snapshotRequested) await this.maybeSnapshot();
        else await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } catch (e) {
      // A storage failure (or a bug) stops the member: continuing could break durability.
      this.failWith(e instanceof Error ? e : new Error(String(e)), 'in the Ready loop');
    }
  }

  /**
   * Stops the node as an error in its Ready loop does (see `fatal`), for a failure the
   * application finds outside the loop: its state machine's own storage failing a commit made
   * in the background (src/kv's backend, onFailure), which no apply would hear of until the
   * next entry — meanwhile the member would go on serving what its disk may not hold. The
   * first failure is the one reported; after `stop()` this does nothing.
   */
  fail(err: Error): void {
    if (this.closing) return;
    this.failWith(err, 'of its storage');
    // The loop, waiting for work, ends (`stopped`).
    this.kick();
  }

  private failWith(err: Error, where: string): void {
    if (this.failed) return;
    this.failed = err;
    this.o.logger?.warn(`${this.id} stopping after an error ${where}: ${err.message}`);
    this.stopped = true;
    this.tickTimer?.cancel();
    this.setLeading(false, this.core.currentTerm);
    // Nothing pending can complete now: fail it at once rather than when the owner stops us.
    this.failPending(new StoppedError(`node stopped after an error: ${err.message}`));
    this.reportFailure(err);
  }

  private async handle(rd: Ready): Promise<void> {
    if (rd.softState && rd.softState.leader !== this.knownLeader) {
      this.knownLeader = rd.softState.leader;
      this.o.observer?.leaderChanged?.(rd.softState.leader, this.core.currentTerm);
    }
    if (rd.softState && rd.softState.role !== 'leader') this.setLeading(false, this.core.currentTerm);
    // Thesis §10.2.1: a leader's appends and heartbeats of its current term go out before its
    // own write completes (the core counts the leader towards a quorum only for entries it has
    // made durable, on advance). Everything else waits for the write: votes and
    // acknowledgements must never promise what the disk does not hold.
    let rest = this.o.stateMachine.persistTo ? rd.messages.map((m) => (m.type === 'snapshot' ? this.currentSnapshot(m) : m)) : rd.messages;
    if (rest.length > 0 && this.core.currentRole === 'leader') {
      const term = this.core.currentTerm;
      const early: Message[] = [];
      const later: Message[] = [];
      for (const m of rest) (m.term === term && (m.type === 'append' || m.type === 'heartbeat') ? early : later).push(m);
      if (early.length > 0) this.o.transport.send(early);
      rest = later;
    }
    // 1. persist
    await this.o.storage.save(rd, rd.mustSync);
    // 2. send
    if (rest.length > 0) this.o.transport.send(rest);
    // 3. apply
    if (rd.snapshot) {
      restoreOrExplain(this.o.stateMachine, rd.snapshot, "the leader's snapshot");
      this.lastApplied = rd.snapshot.meta.index;
      for (const [index, w] of this.proposals) {
        if (index <= rd.snapshot.meta.index) {
          // Its fate is inside the snapshot; we cannot tell which entry was applied there.
          this.o.observer?.proposalFailed?.();
          w.reject(new ProposalOutcomeUnknownError(`entry ${index} was covered by a snapshot from the leader before it was applied here`));
          this.proposals.delete(index);
        }
      }
    }
    for (const e of rd.committedEntries) this.apply(e);
    // 4. reads
    for (const rs of rd.readStates) this.readyReads.push(rs);
    this.serveReads();
    // 5. advance
    this.core.advance(rd);
    await this.maybeSnapshot();
  }

  private apply(e: Entry): void {
    let result: unknown;
    const sm = this.o.stateMachine;
    // The state already holds it (a snapshot image taken after this entry): never twice.
    const held = sm.lastAppliedIndex !== undefined && e.index <= sm.lastAppliedIndex();
    if (e.type === 'normal' && e.data.length > 0 && !held) result = sm.apply(e);
    else if (e.type === 'conf' && sm.applyConfChange && !held) sm.applyConfChange(decodeConfChange(e.data), e.index);
    this.lastApplied = e.index;
    // A leader's own empty entry: everything before its term is applied (onLeadershipChange).
    if (e.type === 'normal' && e.data.length === 0 && e.term === this.core.currentTerm && this.core.currentRole === 'leader') this.setLeading(true, e.term);
    this.appliedSinceSnapshot++;
    const w = this.proposals.get(e.index);
    if (!w) return;
    this.proposals.delete(e.index);
    if (held && e.type === 'normal' && e.data.length > 0) {
      w.reject(new ProposalOutcomeUnknownError(`entry ${e.index} was already in the state this member restored`));
      return;
    }
    if (w.term === e.term) w.resolve(result as R);
    else {
      this.o.observer?.proposalFailed?.();
      w.reject(new ProposalDroppedError(`entry ${e.index} of term ${w.term} was replaced by one of term ${e.term}`));
    }
  }

  private serveReads(): void {
    if (this.readyReads.length === 0) return;
    const still: { index: Index; ctx: string }[] = [];
    for (const rs of this.readyReads) {
      if (rs.index <= this.lastApplied) {
        const r = this.reads.get(rs.ctx);
        if (r) {
          this.reads.delete(rs.ctx);
          r.timer.cancel();
          r.resolve();
        }
      } else still.push(rs);
    }
    this.readyReads = still;
  }

  private async maybeSnapshot(): Promise<void> {
    const every = this.o.snapshotEntries ?? 10_000;
    const asked = this.snapshotRequested;
    this.snapshotRequested = false;
    if (!asked && this.appliedSinceSnapshot < every) return;
    const retain = this.snapshotRetainOnce ?? this.o.snapshotRetain ?? 1000;
    this.snapshotRetainOnce = undefined;
    const sm = this.o.stateMachine;
    // A state machine with durable state of its own commits it (its applied index with it) and
    // the snapshot only records that: no whole-state image in the steady state.
    const data = sm.persistTo ? sm.persistTo(this.lastApplied) : sm.snapshot();
    const snap = this.core.takeSnapshot(data, retain);
    if (!snap) return;
    this.appliedSinceSnapshot = 0;
    await this.o.storage.saveSnapshot(snap);
  }

  /**
   * A snapshot for a lagging follower when the state machine keeps its own state (its
   * snapshots are markers): the whole state as it is now, under the metadata of the applied
   * index — committed, with the configuration in force there — rather than the older
   * snapshot the core picked. Sending happens before this Ready's entries are applied, so the
   * state is exactly at the core's applied index. The image is kept for repeated sends until
   * the state moves on. A transport that streams snapshots gets no image (empty data): it
   * reads the state itself when it sends the message, still before this Ready's entries apply.
   */
  private currentSnapshot(m: Extract<Message, { type: 'snapshot' }>): Message {
    const index = this.core.appliedIndex;
    const term = this.core.termAt(index);
    assert(term !== undefined && index >= m.snapshot.meta.index, () => `snapshot for ${m.to}: applied index ${index} (term ${term}) is behind the snapshot at ${m.snapshot.meta.index}`);
    const meta = { index, term, confState: this.core.status().confState };
    if (this.o.transport.streamsSnapshots) return { ...m, snapshot: { meta, data: new Uint8Array(0) } };
    if (this.sendImage?.index !== index) this.sendImage = { index, data: this.o.stateMachine.snapshot() };
    return { ...m, snapshot: { meta, data: this.sendImage.data } };
  }
}

/**
 * The recovered state, resumed at `held` (the state machine's own applied index): the core
 * starts with it applied (configuration changes up to it folded in) and committed.
 */
function resumeAt(initial: InitialState, held: Index): InitialState {
  const last = initial.entries.length > 0 ? initial.entries[initial.entries.length - 1]!.index : initial.snapshot.meta.index;
  // Entries are durable before they are applied (persist comes before apply in every Ready).
  if (held > last) throw new Error(`the state machine holds entries up to ${held}, but the log ends at ${last}: the log lost entries it had made durable`);
  return { ...initial, applied: held, hardState: { ...initial.hardState, commit: Math.max(initial.hardState.commit, held) } };
}
