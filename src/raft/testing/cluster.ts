/**
 * A deterministic in-memory cluster of cores for tests and benchmarks: perfect durable storage,
 * messages delivered in order on demand, with optional drop filters. Pure (no I/O, no clock).
 */
import { rng as makeRng } from '../../lib/prng.js';
import type { Logger, RaftConfig } from '../config.js';
import type { Message } from '../messages.js';
import { RaftCore } from '../raft.js';
import type { ConfState, Entry, HardState, NodeId, ReadState, Snapshot } from '../types.js';
import type { Ready } from '../ready.js';

export interface Disk {
  hardState: HardState;
  snapshot: Snapshot;
  entries: Entry[];
}

export interface MemberState {
  core: RaftCore;
  disk: Disk;
  /** Entries applied to the (test) state machine, in order. */
  applied: Entry[];
  readStates: ReadState[];
  /** Snapshot last installed into the state machine (if any). */
  installed?: Snapshot;
}

export type CoreFactory = (config: RaftConfig, initial: { hardState: HardState; snapshot: Snapshot; entries: readonly Entry[] }) => RaftCore;

export interface ClusterOptions {
  electionTicks?: number;
  heartbeatTicks?: number;
  preVote?: boolean;
  checkQuorum?: boolean;
  seed?: number;
  logger?: (id: NodeId) => Logger;
  makeCore?: CoreFactory;
  config?: Partial<RaftConfig>;
}

export function emptyConfState(voters: readonly NodeId[], learners: readonly NodeId[] = []): ConfState {
  return { voters: [...voters], votersOutgoing: [], learners: [...learners], learnersNext: [], autoLeave: false };
}

export function freshDisk(confState: ConfState): Disk {
  return {
    hardState: { term: 0, vote: 0, commit: 0 },
    snapshot: { meta: { index: 0, term: 0, confState }, data: new Uint8Array(0) },
    entries: [],
  };
}

/** Applies one Ready to a member's durable state, the way a driver's storage must. */
export function persistReady(disk: Disk, rd: Ready): void {
  if (rd.snapshot) {
    disk.snapshot = rd.snapshot;
    disk.entries = disk.entries.filter((e) => e.index > rd.snapshot!.meta.index);
    // A snapshot replaces any log that does not continue it.
    if (disk.entries.length > 0 && disk.entries[0]!.index !== rd.snapshot.meta.index + 1) disk.entries = [];
  }
  if (rd.entries.length > 0) {
    const first = rd.entries[0]!.index;
    const base = disk.snapshot.meta.index + 1;
    disk.entries.length = Math.max(0, Math.min(disk.entries.length, first - base));
    for (const e of rd.entries) disk.entries.push(e);
  }
  if (rd.hardState) disk.hardState = rd.hardState;
}

export class Cluster {
  readonly members = new Map<NodeId, MemberState>();
  /** Messages in flight, in send order. */
  queue: Message[] = [];
  /** Messages matching this predicate are dropped on delivery. */
  drop: (m: Message) => boolean = () => false;
  private readonly opts: ClusterOptions;
  private readonly rootRng;

  constructor(opts: ClusterOptions = {}) {
    this.opts = opts;
    this.rootRng = makeRng(opts.seed ?? 1);
  }

  config(id: NodeId): RaftConfig {
    return {
      id,
      electionTicks: this.opts.electionTicks ?? 10,
      heartbeatTicks: this.opts.heartbeatTicks ?? 1,
      rng: this.rootRng.fork(),
      preVote: this.opts.preVote ?? true,
      checkQuorum: this.opts.checkQuorum ?? true,
      ...(this.opts.logger ? { logger: this.opts.logger(id) } : {}),
      ...this.opts.config,
    };
  }

  /** Adds fresh members with the given bootstrap configuration. */
  add(ids: readonly NodeId[], confState: ConfState): void {
    for (const id of ids) {
      const disk = freshDisk(confState);
      this.members.set(id, { core: this.start(id, disk), disk, applied: [], readStates: [] });
    }
  }

  private start(id: NodeId, disk: Disk): RaftCore {
    const initial = { hardState: disk.hardState, snapshot: disk.snapshot, entries: disk.entries.slice() };
    return this.opts.makeCore ? this.opts.makeCore(this.config(id), initial) : new RaftCore(this.config(id), initial);
  }

  get(id: NodeId): MemberState {
    const m = this.members.get(id);
    if (!m) throw new Error(`no member ${id}`);
    return m;
  }

  core(id: NodeId): RaftCore {
    return this.get(id).core;
  }

  /** Crash and restart a member from its disk: volatile state is gone. */
  restart(id: NodeId): void {
    const m = this.get(id);
    m.core = this.start(id, m.disk);
    m.applied = [];
    m.readStates = [];
    delete m.installed;
  }

  /** Handles one Ready of `id` if it has one: persist, queue messages, apply, advance. */
  processReady(id: NodeId): Ready | undefined {
    const m = this.get(id);
    if (!m.core.hasReady()) return undefined;
    const rd = m.core.ready();
    persistReady(m.disk, rd);
    for (const msg of rd.messages) this.queue.push(msg);
    if (rd.snapshot) {
      m.installed = rd.snapshot;
      m.applied = [];
    }
    for (const e of rd.committedEntries) m.applied.push(e);
    for (const r of rd.readStates) m.readStates.push(r);
    m.core.advance(rd);
    return rd;
  }

  /** Delivers queued messages addressed to `id` (or all when undefined); returns how many. */
  deliver(id?: NodeId): number {
    const keep: Message[] = [];
    const now: Message[] = [];
    for (const msg of this.queue) (id === undefined || msg.to === id ? now : keep).push(msg);
    this.queue = keep;
    let n = 0;
    for (const msg of now) {
      const to = this.members.get(msg.to);
      if (!to || this.drop(msg)) continue;
      to.core.step(msg);
      n++;
    }
    return n;
  }

  /** Runs Readys and deliveries until nothing moves. */
  stabilize(maxRounds = 10_000): void {
    for (let round = 0; round < maxRounds; round++) {
      let moved = false;
      for (const id of this.members.keys()) while (this.processReady(id)) moved = true;
      if (this.queue.length > 0) {
        this.deliver();
        moved = true;
      }
      if (!moved) return;
    }
    throw new Error('cluster did not stabilize');
  }

  tick(id: NodeId, n = 1): void {
    for (let i = 0; i < n; i++) this.core(id).tick();
  }

  tickAll(n = 1): void {
    for (let i = 0; i < n; i++) for (const m of this.members.values()) m.core.tick();
  }

  leader(): NodeId {
    let lead = 0;
    let term = -1;
    for (const [id, m] of this.members) {
      if (m.core.currentRole === 'leader' && m.core.currentTerm > term) {
        lead = id;
        term = m.core.currentTerm;
      }
    }
    return lead;
  }
}

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
