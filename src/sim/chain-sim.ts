/**
 * The simulator's chain mode: chain nodes (src/chain ChainNode), one or two masters and a control
 * cluster, under virtual time, as a pure function of the seed.
 *
 * - The control cluster is simulated as what Flotilla offers the chain: a linearizable store of
 *   keys with revisions, compare-and-swap on a key's revision, and leases that expire (a key
 *   under a lease is deleted with it). It does not fail; the links to it do.
 * - Each node process: a ChainNode, a disk (what completed writes made durable: a snapshot and
 *   the updates after it; a write is durable a virtual fsync delay after it was issued, in order;
 *   a crash loses what was not), a registration under a lease kept alive every TTL/3, the
 *   configuration polled (and read again when a newer epoch shows up).
 * - Masters: every MASTER_INTERVAL they read the configuration and the registrations and write
 *   nextConfig() by CAS on the configuration's revision.
 * - Clients: put / get / CAS / delete on a few keys with unique values, sent to the head (writes)
 *   and the tail (reads; CRAQ: any member), now and then to any node; a history for src/check.
 * - Compaction (most seeds): at random ticks, and whenever the disk holds more than a few updates
 *   after its snapshot, a node's driver compacts its disk with ChainNode.committedImage() (as
 *   ChainNodeProcess with ChainStorage.compact): written in order after the writes before it, it
 *   replaces the snapshot and the updates up to it. A crash before it is durable leaves the disk
 *   as it was; a restart after it rebuilds the node from the compacted snapshot and the updates
 *   after it; now and then a crash is placed just before or just after one. The tail's
 *   in-memory log retention for a lagging joiner (logRetainMax) is small in some seeds, so a
 *   joiner is caught up from the committed state rather than from the log.
 * - Faults (fault phase): node crashes and restarts, master crashes, partitions (a node from
 *   everything, from the control cluster only, or from its neighbours), lossy periods, and
 *   replays of old peer messages (stale epochs). Every message may be delayed, reordered, lost or
 *   duplicated.
 *
 * Checked after every event: every member's history (the ids of its updates, by seq) is a prefix
 * of its predecessor's, in the control cluster's current configuration (the paper's invariant:
 * the tail's a prefix of every node's, every node's a prefix of the head's); every acknowledged
 * write is in the history of every member (a new tail: once caught up); the durable history of
 * every node that is the tail of its own configuration (committed, by ChainNode's reckoning) is
 * a prefix of every other such history ever seen (a committed update never changes); a
 * compaction's image, when taken, is the state after its seq in that committed history (nothing
 * uncommitted in it, nothing missing) and never below the snapshot already on disk. At the end
 * (the network healed, every process up): the chain converges (every node a member, all
 * histories equal), every client completes operations, every node's state is the replay of its
 * history, and the client history is linearizable.
 */
import { checkLinearizable, type HistoryOp } from '../check/index.js';
import { rng as makeRng, type Rng } from '../lib/prng.js';
import { describePeerMessage, type PeerMessage } from '../chain/messages.js';
import { nextConfig, type Registration } from '../chain/master.js';
import { applyOp, ChainNode, type ChainEffect, type ChainNodeOptions } from '../chain/node.js';
import type { ChainConfig, ChainOp, ClientOp, ClientReply, Entry, ReadMode, SnapshotImage, Update } from '../chain/types.js';
import { EventQueue } from './queue.js';

export const CHAIN_FAULT_KINDS = ['crash', 'partition', 'lossy', 'master', 'replay'] as const;
export type ChainFaultKind = (typeof CHAIN_FAULT_KINDS)[number];

export type ChainNodeFactory = (opts: ChainNodeOptions, durable?: { snapshot: SnapshotImage | null; updates: readonly Update[] }) => ChainNode;

export interface ChainSimOptions {
  readonly seed: number;
  /** Node processes (2..6); default 3..5 by seed. */
  readonly nodes?: number;
  readonly reads?: ReadMode;
  readonly faults?: readonly ChainFaultKind[];
  /** Virtual milliseconds of the fault phase. */
  readonly faultPhaseMs?: number;
  readonly makeNode?: ChainNodeFactory;
  /**
   * Whether nodes compact their disk (a snapshot of ChainNode.committedImage() replaces the
   * updates up to it, as ChainStorage.compact) at random points; default: by seed (most seeds).
   */
  readonly compaction?: boolean;
  /**
   * Whether each compaction's image is checked when taken (default true). Off only in the mutant
   * test that shows the end-of-run checks also catch a wrong compaction by what it does.
   */
  readonly checkCompactionImages?: boolean;
}

export interface ChainSimStats {
  events: number;
  epochs: number;
  ops: number;
  opsOk: number;
  crashes: number;
  partitions: number;
  replays: number;
  snapshots: number;
  /** Compactions issued, and made durable. */
  compactions: number;
  compactionsDurable: number;
  /** Restarts from a disk whose snapshot a compaction wrote. */
  restartsFromCompaction: number;
  /** Crashes placed just before or just after a compaction became durable. */
  crashesAroundCompaction: number;
  /** Snapshot chunks sent by a node restarted from a compacted disk (a catch-up from the compacted state). */
  snapshotsFromCompacted: number;
  /** Snapshot chunks sent unasked: a joiner lagging behind the sender's retained log. */
  unaskedSnapshots: number;
  finalSeq: number;
}

export interface ChainSimResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly setting: string;
  readonly failure?: { readonly invariant: string; readonly message: string; readonly lastEvents: readonly string[] };
  readonly stats: ChainSimStats;
  readonly history: readonly HistoryOp[];
}

class Violation extends Error {
  constructor(
    readonly invariant: string,
    message: string,
  ) {
    super(message);
  }
}

const US = 1;
const MS = 1000 * US;
const TICK_US = 10 * MS;
const LEASE_TTL_US = 400 * MS;
const LEASE_MARGIN_US = 60 * MS;
const KEEPALIVE_US = 120 * MS;
const POLL_US = 60 * MS;
const MASTER_INTERVAL_US = 50 * MS;
const CLIENT_TIMEOUT_US = 500 * MS;
const LIVENESS_US = 30_000 * MS;
const KEY_OPS = 150;
const CONFIG_KEY = 'config';
const NODE_PREFIX = 'nodes/';

interface StoreKey {
  value: unknown;
  modRevision: number;
  createRevision: number;
  lease: number;
}

/** The control cluster: linearizable keys with revisions, CAS on a revision, leases. */
class ControlStore {
  revision = 1;
  private kv = new Map<string, StoreKey>();
  private leases = new Map<number, number>(); // id -> expiresAt
  private nextLease = 1;

  expire(now: number): void {
    for (const [id, at] of this.leases) {
      if (at > now) continue;
      this.leases.delete(id);
      for (const [k, v] of this.kv) {
        if (v.lease === id) {
          this.kv.delete(k);
          this.revision++;
        }
      }
    }
  }
  get(key: string): StoreKey | undefined {
    return this.kv.get(key);
  }
  range(prefix: string): [string, StoreKey][] {
    return [...this.kv].filter(([k]) => k.startsWith(prefix)).sort(([a], [b]) => (a < b ? -1 : 1));
  }
  put(key: string, value: unknown, lease: number): number | null {
    if (lease !== 0 && !this.leases.has(lease)) return null;
    const rev = ++this.revision;
    this.kv.set(key, { value, modRevision: rev, createRevision: this.kv.get(key)?.createRevision ?? rev, lease });
    return rev;
  }
  cas(key: string, expectedModRevision: number, value: unknown): number | null {
    if ((this.kv.get(key)?.modRevision ?? 0) !== expectedModRevision) return null;
    return this.put(key, value, 0);
  }
  grant(now: number, ttl: number): number {
    const id = this.nextLease++;
    this.leases.set(id, now + ttl);
    return id;
  }
  keepAlive(now: number, id: number, ttl: number): boolean {
    if (!this.leases.has(id)) return false;
    this.leases.set(id, now + ttl);
    return true;
  }
}

interface Disk {
  snapshot: SnapshotImage | null;
  updates: Update[];
  /** The snapshot was written by a compaction (not installed from a predecessor). */
  compacted: boolean;
}

/** A disk write in flight: a persist effect of the core, or the driver's compaction. */
type DiskWrite = ChainEffect | { readonly type: 'compact'; readonly image: SnapshotImage };

interface NodeProc {
  readonly name: string;
  core: ChainNode;
  up: boolean;
  incarnation: number;
  disk: Disk;
  /** Issued, not yet durable writes, in order. */
  pending: { id: number; effect: DiskWrite; doneAt: number }[];
  /** Disk writes issued by this process (ids for the fsync order check). */
  writes: number;
  /** A compaction issued and not yet durable (one at a time, as ChainStorage). */
  compacting: boolean;
  /** This incarnation started from a disk a compaction wrote. */
  fromCompacted: boolean;
  lastFsyncAt: number;
  leaseId: number;
  registeredRev: number;
  /** In-memory history (update ids by seq-1), and the durable one. */
  hist: string[];
  durableHist: string[];
  polling: boolean;
  /**
   * What the registration value says (kept across restarts, as the real node keeps it in its WAL's
   * hard state: chainnode/storage.ts saveEpochs; here durable at once, there before the report).
   */
  caughtUpEpoch: number | null;
  syncedEpoch: number | null;
  /** This node's clock rate: its ticks come every TICK_US × rate (±5% drift, per seed). */
  rate: number;
  /** Bumped whenever a history is replaced or cut (not on appends): invalidates checked prefixes. */
  gen: number;
}

interface Client {
  readonly id: number;
  config: ChainConfig | null;
  busy: boolean;
  reqSeq: number;
  lastRead: Map<string, { value: string | null; version: number }>;
  completedWrites: number;
  completedReads: number;
  /** Outstanding request: resolve function by request id. */
  waiting: Map<number, (reply: ClientReply | null) => void>;
}

function idOf(u: { seq: number; assignEpoch: number }): string {
  return `${u.seq}@${u.assignEpoch}`;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export function runChainSimulation(o: ChainSimOptions): ChainSimResult {
  return new ChainSimulation(o).run();
}

export class ChainSimulation {
  private readonly rng: Rng;
  private readonly q = new EventQueue();
  private now = 0;
  private readonly store = new ControlStore();
  private readonly nodes: NodeProc[] = [];
  private readonly clients: Client[] = [];
  private readonly masters: { up: boolean; incarnation: number }[] = [];
  private readonly blocked = new Set<string>(); // "a>b"
  private loss: number;
  private dup: number;
  private delayBaseUs: number;
  private faultsOn = true;
  private readonly faultKinds: readonly ChainFaultKind[];
  private readonly reads: ReadMode;
  private readonly nodeCount: number;
  private readonly makeNode: ChainNodeFactory;
  private readonly history: HistoryOp[] = [];
  private readonly recent: string[] = [];
  private readonly sentLog: PeerMessage[] = [];
  /** Update ids acknowledged to a client, and the op behind every update id. */
  private readonly acked = new Map<number, string>(); // seq -> id (ids of acked updates)
  private readonly ackedList: [number, string][] = [];
  private readonly prefixChecked = new Map<string, { ga: number; gb: number; ua: boolean; ub: boolean; upTo: number }>();
  private readonly ackedChecked = new Map<string, { gen: number; up: boolean; upTo: number }>();
  private readonly ops = new Map<string, ChainOp>();
  /** A request a head turned into an update: "client:req" -> update id. */
  private readonly assigned = new Map<string, string>();
  /** The sender's history at the time it sent a snapshot, by "from>to:seq@epoch". */
  private readonly snapHist = new Map<string, string[]>();
  private readonly keys: string[];
  private valueSeq = 0;
  private readonly stats: ChainSimStats = {
    events: 0,
    epochs: 0,
    ops: 0,
    opsOk: 0,
    crashes: 0,
    partitions: 0,
    replays: 0,
    snapshots: 0,
    compactions: 0,
    compactionsDurable: 0,
    restartsFromCompaction: 0,
    crashesAroundCompaction: 0,
    snapshotsFromCompacted: 0,
    unaskedSnapshots: 0,
    finalSeq: 0,
  };
  private readonly setting: string;
  private readonly compaction: boolean;
  /** Per tick, the chance a node compacts; and the disk's update count past which it does anyway. */
  private readonly compactChance: number;
  private readonly compactUpdates: number;
  /** The tail's in-memory log retention for a lagging joiner (the core's own log compaction). */
  private readonly logRetainMax: number | undefined;
  /**
   * The committed history: update ids by seq-1, the longest durable history seen at any node
   * that is the tail of its own configuration (ChainNode counts that history as committed; it
   * may never change, only grow). `committedChanges` keeps, per key, the entry after each update
   * of it along that history, so the state after any committed prefix can be read.
   */
  private readonly committed: string[] = [];
  private readonly committedModel = new Map<string, Entry>();
  private readonly committedChanges = new Map<string, { seq: number; entry: Entry | null }[]>();
  private readonly committedChecked = new Map<string, { gen: number; upTo: number }>();

  constructor(private readonly o: ChainSimOptions) {
    this.rng = makeRng(o.seed * 7919 + 17);
    const r = this.rng;
    this.nodeCount = o.nodes ?? 3 + (o.seed % 3);
    if (!(this.nodeCount >= 2 && this.nodeCount <= 6)) throw new RangeError(`nodes must be in 2..6, got ${this.nodeCount}`);
    this.reads = o.reads ?? (o.seed % 2 === 0 ? 'tail' : 'craq');
    this.faultKinds = o.faults ?? CHAIN_FAULT_KINDS.filter(() => r.chance(0.6));
    this.loss = r.pick([0, 0, 0.01, 0.05, 0.1]);
    this.dup = r.pick([0, 0.01, 0.05]);
    this.delayBaseUs = r.pick([200, 1000, 3000]);
    this.makeNode = o.makeNode ?? ((opts, durable) => new ChainNode(opts, durable));
    this.keys = Array.from({ length: r.int(1, 4) }, (_, i) => `k${i}`);
    const compaction = r.chance(0.75); // drawn either way: a seed's other choices do not depend on the option
    this.compaction = o.compaction ?? compaction;
    this.compactChance = r.pick([0.002, 0.01, 0.05]);
    this.compactUpdates = r.pick([4, 16, 64]);
    this.logRetainMax = r.pick([undefined, 0, 8]);
    const compact = this.compaction ? ` compact=${this.compactChance}/tick,${this.compactUpdates}updates retain=${this.logRetainMax ?? 'default'}` : '';
    this.setting = `nodes=${this.nodeCount} reads=${this.reads} faults=${this.faultKinds.join(',') || 'none'} loss=${this.loss} dup=${this.dup} delay=${this.delayBaseUs}us keys=${this.keys.length}${compact}`;
  }

  run(): ChainSimResult {
    try {
      this.setup();
      const faultEnd = this.o.faultPhaseMs !== undefined ? this.o.faultPhaseMs * MS : 3000 * MS;
      this.runUntil(faultEnd);
      this.heal();
      const deadline = this.now + LIVENESS_US;
      let converged = false;
      while (this.now < deadline) {
        this.runUntil(this.now + 100 * MS);
        if (this.converged()) {
          converged = true;
          break;
        }
      }
      if (!converged) throw new Violation('liveness', `no convergence within ${LIVENESS_US / MS} ms after healing: ${this.describeState()}`);
      this.checkFinalStates();
      // Operations still waiting have an unknown outcome.
      for (const c of this.clients) {
        for (const [, w] of c.waiting) w(null);
        c.waiting.clear();
      }
      const check = checkLinearizable(this.history);
      if (!check.ok) {
        const f = check.failure!;
        throw new Violation('linearizability', `key ${f.key}: ${f.message}\n${f.ops.map((x) => '  ' + JSON.stringify(x)).join('\n')}`);
      }
      return this.result(true);
    } catch (e) {
      if (e instanceof Violation) return this.result(false, e);
      throw e;
    }
  }

  private result(ok: boolean, v?: Violation): ChainSimResult {
    this.stats.finalSeq = Math.max(0, ...this.nodes.map((n) => n.core.lastSeq));
    this.stats.ops = this.history.length;
    this.stats.opsOk = this.history.filter((h) => h.ok === true).length;
    return {
      seed: this.o.seed,
      ok,
      setting: this.setting,
      ...(v ? { failure: { invariant: v.invariant, message: v.message, lastEvents: [...this.recent] } } : {}),
      stats: this.stats,
      history: this.history,
    };
  }

  // ---- the event loop ---------------------------------------------------------------------

  private at(delayUs: number, label: string, run: () => void): void {
    this.q.push(this.now + Math.max(0, Math.round(delayUs)), label, run);
  }

  private runUntil(t: number): void {
    while (this.q.peekTime() <= t) {
      const ev = this.q.pop()!;
      this.now = ev.time;
      this.stats.events++;
      this.recent.push(`${(ev.time / MS).toFixed(3)}ms ${ev.label}`);
      if (this.recent.length > 40) this.recent.shift();
      this.store.expire(this.now);
      ev.run();
      this.checkInvariants();
    }
    this.now = Math.max(this.now, t);
  }

  private delay(): number {
    const b = this.delayBaseUs;
    const r = this.rng;
    return r.chance(0.03) ? b * (5 + r.next() * 60) : b / 2 + r.next() * b;
  }

  /**
   * Delivers `run` at `to` after a network delay, unless lost or blocked; maybe twice, except
   * between nodes: clients and the control cluster's calls go over TCP/gRPC, which does not
   * repeat a request (the chain's own protocol must survive duplicates, its TCP links reconnecting).
   */
  private transmit(from: string, to: string, label: string, run: () => void): void {
    const dupOk = this.nodes.some((n) => n.name === from) && this.nodes.some((n) => n.name === to);
    const copies = this.faultsOn ? (this.rng.chance(this.loss) ? 0 : dupOk && this.rng.chance(this.dup) ? 2 : 1) : 1;
    for (let i = 0; i < copies; i++) {
      this.at(this.delay(), label, () => {
        if (this.blocked.has(`${from}>${to}`)) return;
        run();
      });
    }
  }

  /** A call to the control cluster: the request and the answer each cross the network. */
  private rpc<T>(from: string, label: string, call: (s: ControlStore) => T, done: (t: T) => void): void {
    this.transmit(from, 'store', `${from}->store ${label}`, () => {
      const t = call(this.store);
      this.transmit('store', from, `store->${from} ${label}`, () => done(t));
    });
  }

  // ---- setup --------------------------------------------------------------------------------

  private setup(): void {
    const r = this.rng;
    const names = Array.from({ length: this.nodeCount }, (_, i) => `n${i + 1}`);
    // The first configuration: the chain of all nodes, written before anyone runs.
    const rev = this.store.put(CONFIG_KEY, { members: names, joining: null }, 0)!;
    for (const name of names) {
      const p: NodeProc = {
        name,
        core: this.newCore(name, undefined),
        up: false,
        incarnation: 0,
        disk: { snapshot: null, updates: [], compacted: false },
        pending: [],
        writes: 0,
        compacting: false,
        fromCompacted: false,
        lastFsyncAt: 0,
        leaseId: 0,
        registeredRev: rev,
        hist: [],
        durableHist: [],
        polling: false,
        caughtUpEpoch: null,
        syncedEpoch: null,
        rate: 1 + (r.next() - 0.5) * 0.1,
        gen: 0,
      };
      this.nodes.push(p);
      this.startNode(p);
    }
    const masterCount = r.chance(0.5) ? 2 : 1;
    for (let i = 0; i < masterCount; i++) {
      this.masters.push({ up: true, incarnation: 0 });
      this.at(r.int(0, MASTER_INTERVAL_US), `master${i} round`, () => this.masterRound(i, 0));
    }
    const clientCount = r.int(2, 5);
    for (let i = 0; i < clientCount; i++) {
      const c: Client = { id: i, config: null, busy: false, reqSeq: 0, lastRead: new Map(), completedWrites: 0, completedReads: 0, waiting: new Map() };
      this.clients.push(c);
      this.at(r.int(0, 50 * MS), `client${i} start`, () => this.clientLoop(c));
    }
    this.scheduleFaults();
  }

  private newCore(name: string, durable: Disk | undefined): ChainNode {
    const retain = this.compaction && this.logRetainMax !== undefined ? { logRetainMax: this.logRetainMax } : {};
    return this.makeNode({ name, reads: this.reads, resendTicks: 5, syncRetryTicks: 5, ...retain }, durable ? { snapshot: durable.snapshot, updates: durable.updates } : undefined);
  }

  // ---- node processes ----------------------------------------------------------------------

  private startNode(p: NodeProc): void {
    p.up = true;
    p.incarnation++;
    p.pending = [];
    p.compacting = false;
    p.leaseId = 0;
    p.fromCompacted = p.incarnation > 1 && p.disk.compacted;
    if (p.fromCompacted) this.stats.restartsFromCompaction++;
    p.core = this.newCore(p.name, p.incarnation === 1 ? undefined : p.disk);
    p.hist = [...p.durableHist];
    p.gen++;
    const inc = p.incarnation;
    const alive = (): boolean => p.up && p.incarnation === inc;
    this.register(p, alive);
    this.poll(p, alive);
    const tick = (): void => {
      if (!alive()) return;
      p.core.tick();
      this.drain(p);
      if (this.compaction && !p.compacting && (this.rng.chance(this.compactChance) || p.disk.updates.length >= this.compactUpdates)) this.compact(p);
      this.at(TICK_US * p.rate, `${p.name} tick`, tick);
    };
    this.at(this.rng.int(1, TICK_US), `${p.name} tick`, tick);
  }

  private register(p: NodeProc, alive: () => boolean): void {
    const sentAt = this.now;
    this.rpc(
      p.name,
      'register',
      (s) => {
        const lease = s.grant(this.now, LEASE_TTL_US);
        s.put(NODE_PREFIX + p.name, { caughtUpEpoch: p.caughtUpEpoch, syncedEpoch: p.syncedEpoch }, lease);
        return { lease, rev: s.get(NODE_PREFIX + p.name)!.createRevision };
      },
      ({ lease, rev }) => {
        if (!alive()) return;
        p.leaseId = lease;
        p.registeredRev = rev;
        this.setLease(p, sentAt);
        const keep = (): void => {
          if (!alive() || p.leaseId !== lease) return;
          const at = this.now;
          this.rpc(p.name, 'keepalive', (s) => s.keepAlive(this.now, lease, LEASE_TTL_US), (ok) => {
            if (!alive() || p.leaseId !== lease) return;
            if (ok) this.setLease(p, at);
            else {
              p.leaseId = 0;
              this.register(p, alive);
            }
          });
          this.at(KEEPALIVE_US, `${p.name} keepalive`, keep);
        };
        this.at(KEEPALIVE_US, `${p.name} keepalive`, keep);
      },
    );
    // A lost registration is tried again.
    this.at(LEASE_TTL_US, `${p.name} register check`, () => {
      if (alive() && p.leaseId === 0) this.register(p, alive);
    });
  }

  /**
   * The node counts the lease in its own ticks, believing each is TICK_US: with a slow clock
   * (rate > 1) the lease lasts longer in real time, which LEASE_MARGIN_US must cover (±5% of
   * the TTL is 20 ms of the 60).
   */
  private setLease(p: NodeProc, sentAt: number): void {
    const end = sentAt + LEASE_TTL_US - LEASE_MARGIN_US;
    const ticks = Math.floor((end - this.now) / TICK_US);
    p.core.setReadLease(p.core.tickNow + ticks, p.registeredRev + 1);
  }

  private poll(p: NodeProc, alive: () => boolean): void {
    if (!alive()) return;
    p.polling = true;
    const lease = p.leaseId;
    this.rpc(p.name, 'get config', (s) => ({ k: s.get(CONFIG_KEY), regLease: s.get(NODE_PREFIX + p.name)?.lease }), ({ k, regLease }) => {
      if (!alive()) return;
      p.polling = false;
      // The registration must be under this incarnation's lease: a delayed put of an earlier
      // incarnation (its registration or a report, under its own lease) may have taken the key
      // over, and it vanishes with that lease while ours lives on: register again.
      if (lease !== 0 && p.leaseId === lease && regLease !== lease) {
        p.leaseId = 0;
        this.register(p, alive);
      }
      if (k) {
        const v = k.value as { members: string[]; joining: string | null };
        p.core.setConfig({ epoch: k.modRevision, members: v.members, joining: v.joining });
        this.drain(p);
      }
    });
    this.at(POLL_US, `${p.name} poll`, () => this.poll(p, alive));
  }

  /** Carries out a node's effects. */
  private drain(p: NodeProc, effects: ChainEffect[] = p.core.takeEffects()): void {
    const inc = p.incarnation;
    for (const e of effects) {
      switch (e.type) {
        case 'send': {
          const m = e.msg;
          if (m.type === 'snapshotChunk') {
            this.snapHist.set(`${m.to}:${m.seq}@${m.assignEpoch}`, p.hist.slice(0, m.seq));
            this.stats.snapshots++;
            if (p.fromCompacted) this.stats.snapshotsFromCompacted++;
            if (m.forSeq < 0) this.stats.unaskedSnapshots++;
          }
          this.sentLog.push(m);
          if (this.sentLog.length > 200) this.sentLog.shift();
          const target = this.nodes.find((n) => n.name === m.to);
          if (!target) break;
          this.transmit(m.from, m.to, describePeerMessage(m), () => this.deliver(target, m));
          break;
        }
        case 'reply': {
          const client = this.clients[Number(e.client)];
          if (!client) break;
          this.transmit(p.name, `c${e.client}`, `reply ${p.name}->c${e.client} #${e.id} ${JSON.stringify(e.reply.ok)}`, () => {
            const w = client.waiting.get(e.id);
            if (w) {
              client.waiting.delete(e.id);
              w(e.reply);
            }
          });
          break;
        }
        case 'persist': {
          for (const u of e.updates) {
            const id = idOf(u);
            if (p.hist.length !== u.seq - 1) throw new Violation('history', `${p.name} appended ${id} after ${p.hist.length} updates`);
            p.hist.push(id);
            const known = this.ops.get(id);
            if (known && known !== u.op && JSON.stringify(opForCompare(known)) !== JSON.stringify(opForCompare(u.op))) {
              throw new Violation('update identity', `${p.name}: update ${id} is ${JSON.stringify(opForCompare(u.op))} here, ${JSON.stringify(opForCompare(known))} elsewhere`);
            }
            this.ops.set(id, u.op);
          }
          this.write(p, inc, e);
          break;
        }
        case 'persistSnapshot': {
          const src = this.snapHist.get(`${p.name}:${e.image.seq}@${e.image.assignEpoch}`);
          if (!src) throw new Violation('history', `${p.name} installed a snapshot at ${e.image.seq}@${e.image.assignEpoch} no one sent`);
          p.hist = [...src];
          p.gen++;
          this.write(p, inc, e, src);
          break;
        }
        case 'caughtUp':
        case 'synced': {
          // A joiner tells the master it caught up, a new tail that it holds everything committed
          // (after that, members need not report), through the registration value, again until
          // the configuration changes.
          if (e.type === 'caughtUp') p.caughtUpEpoch = e.epoch;
          else if (p.caughtUpEpoch !== null && (p.syncedEpoch === null || p.syncedEpoch <= p.caughtUpEpoch)) p.syncedEpoch = e.epoch;
          else break;
          const value = { caughtUpEpoch: p.caughtUpEpoch, syncedEpoch: p.syncedEpoch };
          const report = (): void => {
            if (!(p.up && p.incarnation === inc && p.core.epoch === e.epoch)) return;
            const lease = p.leaseId;
            this.rpc(p.name, e.type, (s) => s.put(NODE_PREFIX + p.name, value, lease), () => {});
            this.at(2 * POLL_US, `${p.name} ${e.type} again`, report);
          };
          report();
          break;
        }
        case 'newerEpoch':
          if (!p.polling) this.poll(p, () => p.up && p.incarnation === inc);
          break;
      }
    }
  }

  private deliver(p: NodeProc, m: PeerMessage): void {
    if (!p.up) return;
    p.core.step(m);
    this.drain(p);
  }

  /** A disk write: durable (in order) a virtual fsync delay after it was issued, unless the node crashes first. */
  private write(p: NodeProc, inc: number, e: DiskWrite, snapHist?: string[]): number {
    const doneAt = Math.max(this.now, p.lastFsyncAt) + this.rng.int(100, 2000);
    p.lastFsyncAt = doneAt;
    const id = ++p.writes;
    p.pending.push({ id, effect: e, doneAt });
    const label = e.type === 'compact' ? `compaction at ${e.image.seq}` : e.type === 'persist' || e.type === 'persistSnapshot' ? `#${e.token}` : e.type;
    this.q.push(doneAt, `${p.name} fsync ${label}`, () => {
      if (!p.up || p.incarnation !== inc) return;
      const w = p.pending.shift();
      if (!w || w.id !== id) throw new Violation('disk', `${p.name}: fsync order`);
      switch (e.type) {
        case 'persist':
          for (const u of e.updates) {
            p.disk.updates.push(u);
            p.durableHist.push(idOf(u));
          }
          break;
        case 'persistSnapshot':
          p.disk = { snapshot: e.image, updates: [], compacted: false };
          p.durableHist = [...snapHist!];
          p.gen++;
          break;
        case 'compact': {
          // As ChainStorage: the snapshot, then the WAL marker that releases the updates up to it;
          // the updates after it stay, the valid history's end is unchanged. (A crash between the
          // snapshot file and the marker recovers the same state: see ChainStorage.open.)
          const first = p.disk.updates[0]?.seq ?? (p.disk.snapshot?.seq ?? 0) + 1;
          if (first > e.image.seq + 1) throw new Violation('compaction', `${p.name}: a compaction at ${e.image.seq} leaves a gap on the disk (its updates start at ${first})`);
          p.disk = { snapshot: e.image, updates: p.disk.updates.filter((u) => u.seq > e.image.seq), compacted: true };
          p.compacting = false;
          this.stats.compactionsDurable++;
          return;
        }
        default:
          throw new Violation('disk', `${p.name}: a ${e.type} effect written to disk`);
      }
      p.core.persisted(e.token);
      this.drain(p);
    });
    return doneAt;
  }

  /**
   * The driver's compaction (as ChainNodeProcess's, at random points): a snapshot of the node's
   * committed state, written in order after the writes before it. Checked when taken: the image
   * is the state after its seq in the committed history (nothing uncommitted, nothing missing),
   * and never below the snapshot already on disk. With crash faults, now and then the node
   * crashes just before or just after the compaction becomes durable.
   */
  private compact(p: NodeProc): void {
    const image = p.core.committedImage();
    if (image === null) return;
    if (this.o.checkCompactionImages !== false) this.checkImage(p, image);
    p.compacting = true;
    this.stats.compactions++;
    const doneAt = this.write(p, p.incarnation, { type: 'compact', image });
    if (this.faultsOn && this.faultKinds.includes('crash') && this.rng.chance(0.05)) {
      const crashAt = doneAt + (this.rng.chance(0.5) ? -1 : 1);
      const inc = p.incarnation;
      this.q.push(crashAt, `crash ${p.name} around its compaction at ${image.seq}`, () => {
        if (!(p.up && p.incarnation === inc && this.faultsOn)) return;
        this.stats.crashesAroundCompaction++;
        this.crash(p);
        this.at(this.rng.int(1 * MS, 300 * MS), `restart ${p.name}`, () => {
          if (!p.up) this.startNode(p);
        });
      });
    }
  }

  private checkImage(p: NodeProc, image: SnapshotImage): void {
    const where = `${p.name}'s compaction at ${image.seq}@${image.assignEpoch} (durable ${p.core.durableSeq}, committed ${this.committed.length})`;
    if (image.seq > p.durableHist.length) throw new Violation('compaction', `${where}: beyond its durable history (${p.durableHist.length})`);
    if (image.seq > this.committed.length) throw new Violation('compaction', `${where}: beyond the committed history: it would count uncommitted updates as committed`);
    const onDisk = p.disk.snapshot?.seq ?? 0;
    if (image.seq < onDisk) throw new Violation('compaction', `${where}: below the snapshot on disk at ${onDisk}`);
    const want = image.seq === 0 ? '0@0' : this.committed[image.seq - 1]!;
    if (idOf(image) !== want || (image.seq > 0 && p.durableHist[image.seq - 1] !== want)) {
      throw new Violation('compaction', `${where}: the committed update at ${image.seq} is ${want}, the node's durable one ${p.durableHist[image.seq - 1] ?? 'nothing'}`);
    }
    const got = new Map(image.entries.map((e) => [e.key, e]));
    const keys = new Set([...got.keys(), ...this.committedChanges.keys()]);
    for (const key of keys) {
      const w = this.committedEntryAt(key, image.seq);
      const g = got.get(key) ?? null;
      const show = (e: Entry | null): string => (e === null ? 'absent' : `${dec.decode(e.value)}@${e.version}`);
      if (show(w) !== show(g)) throw new Violation('compaction', `${where}: key ${key} is ${show(g)} in the image, ${show(w)} after ${image.seq} committed updates`);
    }
  }

  /** A key's entry after the first `seq` updates of the committed history. */
  private committedEntryAt(key: string, seq: number): Entry | null {
    const changes = this.committedChanges.get(key);
    if (!changes) return null;
    let lo = 0;
    let hi = changes.length; // the first change after seq
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (changes[mid]!.seq <= seq) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? null : changes[lo - 1]!.entry;
  }

  private crash(p: NodeProc): void {
    if (!p.up) return;
    // What was never durable was never sent anywhere: a restarted head may give its id to another op.
    for (let i = p.durableHist.length; i < p.hist.length; i++) {
      const id = p.hist[i]!;
      if (!this.nodes.some((n) => n !== p && (n.hist[i] === id || n.durableHist[i] === id))) this.ops.delete(id);
    }
    p.up = false;
    p.gen++;
    p.pending = [];
    p.compacting = false;
    this.stats.crashes++;
  }

  // ---- masters ----------------------------------------------------------------------------------

  private masterRound(i: number, inc: number): void {
    const m = this.masters[i]!;
    if (!m.up || m.incarnation !== inc) return;
    const name = `master${i}`;
    this.rpc(
      name,
      'read',
      (s) => ({ config: s.get(CONFIG_KEY), regs: s.range(NODE_PREFIX) }),
      ({ config, regs }) => {
        if (!m.up || m.incarnation !== inc || !config) return;
        const v = config.value as { members: string[]; joining: string | null };
        const current: ChainConfig = { epoch: config.modRevision, members: v.members, joining: v.joining };
        const registered: Registration[] = regs.map(([k, r]) => {
          const v = r.value as { caughtUpEpoch: number | null; syncedEpoch: number | null };
          return { name: k.slice(NODE_PREFIX.length), createRevision: r.createRevision, caughtUpEpoch: v.caughtUpEpoch, syncedEpoch: v.syncedEpoch };
        });
        const next = nextConfig(current, registered, { membersMax: this.nodeCount, bootstrapMembers: 1 });
        if (next === null) return;
        this.rpc(name, `cas config [${next.members.join(',')}] joining ${next.joining} over e${config.modRevision}`, (s) => s.cas(CONFIG_KEY, config.modRevision, next), (rev) => {
          if (rev !== null) this.stats.epochs++;
        });
      },
    );
    this.at(MASTER_INTERVAL_US, `${name} round`, () => this.masterRound(i, inc));
  }

  // ---- clients ----------------------------------------------------------------------------------

  private clientLoop(c: Client): void {
    if (c.busy) return;
    c.busy = true;
    const next = (): void => {
      c.busy = false;
      this.at(this.rng.int(1 * MS, 30 * MS), `c${c.id} next`, () => this.clientLoop(c));
    };
    if (c.config === null) {
      this.rpc(`c${c.id}`, 'get config', (s) => s.get(CONFIG_KEY), (k) => {
        if (k) {
          const v = k.value as { members: string[]; joining: string | null };
          c.config = { epoch: k.modRevision, members: v.members, joining: v.joining };
        }
        next();
      });
      this.at(CLIENT_TIMEOUT_US, `c${c.id} config timeout`, () => {
        if (c.busy && c.config === null) next();
      });
      return;
    }
    const r = this.rng;
    // Keys rotate every KEY_OPS operations so that each key's history stays small for the checker.
    const key = `${r.pick(this.keys)}.${Math.floor(this.history.length / KEY_OPS)}`;
    const x = r.next();
    let op: ClientOp;
    let h: { op: HistoryOp['op']; value?: string | null; expected?: string | null };
    if (x < 0.45) {
      op = { type: 'get', key };
      h = { op: 'read' };
    } else if (x < 0.75) {
      const value = `v${++this.valueSeq}`;
      op = { type: 'put', key, value: enc.encode(value) };
      h = { op: 'write', value };
    } else if (x < 0.92) {
      const value = `v${++this.valueSeq}`;
      const last = c.lastRead.get(key) ?? { value: null, version: 0 };
      op = { type: 'cas', key, expectedVersion: last.version, value: enc.encode(value) };
      h = { op: 'cas', value, expected: last.value };
    } else {
      op = { type: 'delete', key };
      h = { op: 'delete' };
    }
    const cfg = c.config;
    const members = cfg.members;
    let target: string;
    if (r.chance(0.1)) target = r.pick(this.nodes).name;
    else if (op.type !== 'get') target = members[0]!;
    else if (this.reads === 'craq') target = r.pick(members);
    else target = members[members.length - 1]!;
    const id = ++c.reqSeq;
    const call = this.now;
    const record = (ok: boolean | null, output?: string | boolean | null): void => {
      this.history.push({ process: c.id, key, ...h, ok, ...(output !== undefined ? { output } : {}), call, return: ok === null ? null : this.now } as HistoryOp);
    };
    let done = false;
    const finish = (reply: ClientReply | null): void => {
      if (done) return;
      done = true;
      if (reply === null || reply.ok === null) {
        if (op.type !== 'get') record(null);
        c.config = null; // something changed: read the configuration again
        return next();
      }
      if (reply.ok === false) {
        if (reply.reason === 'epoch' || reply.reason === 'not-head' || reply.reason === 'not-tail') c.config = null;
        return next();
      }
      const res = reply.result;
      switch (res.type) {
        case 'get': {
          const value = res.value === null ? null : dec.decode(res.value);
          c.lastRead.set(key, { value, version: res.version });
          c.completedReads++;
          record(true, value);
          break;
        }
        case 'put':
        case 'delete':
          c.completedWrites++;
          this.noteAcked(c, id);
          record(true);
          break;
        case 'cas':
          c.completedWrites++;
          this.noteAcked(c, id);
          record(true, res.swapped);
          break;
      }
      next();
    };
    c.waiting.set(id, finish);
    const node = this.nodes.find((n) => n.name === target)!;
    this.transmit(`c${c.id}`, target, `c${c.id}->${target} #${id} ${op.type} ${key}`, () => {
      if (!node.up) return;
      node.core.request({ client: String(c.id), id, epoch: cfg.epoch, op });
      const effects = node.core.takeEffects();
      const p = effects.find((e) => e.type === 'persist');
      if (p && p.type === 'persist' && node.core.isHead) this.assigned.set(`${c.id}:${id}`, idOf(p.updates[0]!));
      this.drain(node, effects);
    });
    this.at(CLIENT_TIMEOUT_US, `c${c.id} #${id} timeout`, () => {
      if (c.waiting.delete(id)) finish(null);
    });
  }

  private noteAcked(c: Client, reqId: number): void {
    const id = this.assigned.get(`${c.id}:${reqId}`);
    if (id === undefined) throw new Violation('acknowledgement', `client ${c.id} request ${reqId} acknowledged but never assigned by a head`);
    const seq = Number(id.split('@')[0]);
    const prev = this.acked.get(seq);
    if (prev !== undefined && prev !== id) throw new Violation('acknowledged write lost', `seq ${seq}: ${prev} and ${id} both acknowledged`);
    if (prev === undefined) {
      this.acked.set(seq, id);
      this.ackedList.push([seq, id]);
    }
  }

  // ---- faults ----------------------------------------------------------------------------------

  private scheduleFaults(): void {
    const r = this.rng;
    const end = this.o.faultPhaseMs !== undefined ? this.o.faultPhaseMs * MS : 3000 * MS;
    for (const kind of this.faultKinds) {
      const count = r.int(1, 6);
      for (let i = 0; i < count; i++) {
        const t = r.int(100 * MS, Math.max(101 * MS, end - 100 * MS));
        const dur = r.int(50 * MS, 900 * MS);
        this.q.push(t, `fault ${kind}`, () => this.inject(kind, dur));
      }
    }
    for (let i = 0; i < 30 && this.faultKinds.includes('replay'); i++) {
      this.q.push(r.int(0, end), 'fault replay', () => this.inject('replay', 0));
    }
  }

  private inject(kind: ChainFaultKind, durUs: number): void {
    if (!this.faultsOn) return;
    const r = this.rng;
    switch (kind) {
      case 'crash': {
        const p = r.pick(this.nodes);
        this.crash(p);
        this.at(durUs, `restart ${p.name}`, () => {
          if (!p.up) this.startNode(p);
        });
        break;
      }
      case 'partition': {
        const p = r.pick(this.nodes);
        const shape = r.int(0, 3);
        const others = shape === 0 ? ['store'] : shape === 1 ? this.nodes.map((n) => n.name).filter((n) => n !== p.name) : ['store', ...this.nodes.map((n) => n.name).filter((n) => n !== p.name), ...this.clients.map((c) => `c${c.id}`)];
        const links: string[] = [];
        for (const o of others) links.push(`${p.name}>${o}`, `${o}>${p.name}`);
        for (const l of links) this.blocked.add(l);
        this.stats.partitions++;
        this.at(durUs, `heal ${p.name}`, () => {
          for (const l of links) this.blocked.delete(l);
        });
        break;
      }
      case 'lossy': {
        const before = this.loss;
        this.loss = Math.max(this.loss, 0.2);
        this.at(durUs, 'lossy end', () => (this.loss = before));
        break;
      }
      case 'master': {
        const i = r.int(0, this.masters.length);
        const m = this.masters[i]!;
        m.up = false;
        this.at(durUs, `master${i} restart`, () => {
          m.up = true;
          m.incarnation++;
          this.masterRound(i, m.incarnation);
        });
        break;
      }
      case 'replay': {
        if (this.sentLog.length === 0) break;
        const m = r.pick(this.sentLog);
        const target = this.nodes.find((n) => n.name === m.to)!;
        this.stats.replays++;
        this.transmit(m.from, m.to, `replay ${describePeerMessage(m)}`, () => this.deliver(target, m));
        break;
      }
    }
  }

  private heal(): void {
    this.faultsOn = false;
    this.blocked.clear();
    for (const p of this.nodes) if (!p.up) this.startNode(p);
    for (let i = 0; i < this.masters.length; i++) {
      const m = this.masters[i]!;
      if (!m.up) {
        m.up = true;
        m.incarnation++;
        this.masterRound(i, m.incarnation);
      }
    }
  }

  // ---- invariants ---------------------------------------------------------------------------------

  private currentConfig(): ChainConfig | null {
    const k = this.store.get(CONFIG_KEY);
    if (!k) return null;
    const v = k.value as { members: string[]; joining: string | null };
    return { epoch: k.modRevision, members: v.members, joining: v.joining };
  }

  private histOf(p: NodeProc): string[] {
    return p.up ? p.hist : p.durableHist;
  }

  private checkInvariants(): void {
    this.checkCommitted();
    const cfg = this.currentConfig();
    if (!cfg) return;
    const procs = cfg.members.map((m) => this.nodes.find((n) => n.name === m)!);
    for (let i = 0; i + 1 < procs.length; i++) {
      const pa = procs[i]!;
      const pb = procs[i + 1]!;
      const a = this.histOf(pa);
      const b = this.histOf(pb);
      // Histories change only at their end except when replaced or cut (gen): check from where it was last known equal.
      const ck = `${pa.name}>${pb.name}`;
      const c = this.prefixChecked.get(ck);
      let from = c && c.ga === pa.gen && c.gb === pb.gen && c.ua === pa.up && c.ub === pb.up ? c.upTo : 0;
      if (b.length > a.length) from = 0;
      let bad = b.length > a.length;
      for (let j = from; !bad && j < b.length; j++) if (a[j] !== b[j]) bad = true;
      if (!bad) this.prefixChecked.set(ck, { ga: pa.gen, gb: pb.gen, ua: pa.up, ub: pb.up, upTo: b.length });
      if (bad) {
        throw new Violation('prefix', `${procs[i + 1]!.name}'s history (${b.length}) is not a prefix of its predecessor ${procs[i]!.name}'s (${a.length}) in epoch ${cfg.epoch}: first difference at seq ${firstDiff(a, b) + 1}: ${a[firstDiff(a, b)]} vs ${b[firstDiff(a, b)]}; ${this.describeState()}`);
      }
    }
    const tail = procs[procs.length - 1]!;
    for (const p of procs) {
      if (p === tail && !(p.up && p.core.epoch === cfg.epoch && p.core.synced)) {
        this.ackedChecked.delete(p.name);
        continue;
      }
      const h = this.histOf(p);
      const c = this.ackedChecked.get(p.name);
      const from = c && c.gen === p.gen && c.up === p.up ? c.upTo : 0;
      this.ackedChecked.set(p.name, { gen: p.gen, up: p.up, upTo: this.ackedList.length });
      for (let k = from; k < this.ackedList.length; k++) {
        const [seq, id] = this.ackedList[k]!;
        if (h[seq - 1] !== id) throw new Violation('acknowledged write lost', `${p.name} (${p.up ? 'up' : 'down'}, epoch ${p.core.epoch}) lacks acknowledged update ${id}: has ${h[seq - 1] ?? 'nothing'} at seq ${seq} (config epoch ${cfg.epoch} ${cfg.members.join(',')})`);
      }
    }
  }

  /**
   * The durable history of a node that is the tail of its own configuration is committed (the
   * paper: the tail's history is what the chain has done); across all such nodes and all time,
   * those histories must be prefixes of one another — a committed update never changes.
   */
  private checkCommitted(): void {
    for (const p of this.nodes) {
      if (!(p.up && p.core.isMember && p.core.isTail && p.core.durableSeq >= 0)) continue;
      const h = p.durableHist;
      const c = this.committedChecked.get(p.name);
      const from = c && c.gen === p.gen ? Math.min(c.upTo, h.length) : 0;
      const common = Math.min(h.length, this.committed.length);
      for (let j = from; j < common; j++) {
        if (h[j] !== this.committed[j]) throw new Violation('committed history changed', `${p.name}, tail in epoch ${p.core.epoch}, holds ${h[j]} at seq ${j + 1} where ${this.committed[j]} was committed; ${this.describeState()}`);
      }
      for (let j = this.committed.length; j < h.length; j++) {
        const id = h[j]!;
        const op = this.ops.get(id);
        if (!op) throw new Violation('history', `${p.name}: no op known for committed update ${id}`);
        this.committed.push(id);
        applyOp(this.committedModel, op, j + 1);
        let changes = this.committedChanges.get(op.key);
        if (!changes) this.committedChanges.set(op.key, (changes = []));
        changes.push({ seq: j + 1, entry: this.committedModel.get(op.key) ?? null });
      }
      this.committedChecked.set(p.name, { gen: p.gen, upTo: h.length });
    }
  }

  private converged(): boolean {
    const cfg = this.currentConfig();
    if (!cfg || cfg.members.length !== this.nodes.length) return false;
    const head = this.nodes.find((n) => n.name === cfg.members[0])!;
    for (const p of this.nodes) {
      if (!p.up || p.core.epoch !== cfg.epoch || !p.core.synced || p.core.lastSeq !== head.core.lastSeq || p.core.durableSeq !== p.core.lastSeq || p.core.ackedSeq !== p.core.lastSeq) return false;
    }
    return this.clients.every((c) => c.completedWrites > 0 && c.completedReads > 0) && this.liveRound();
  }

  private liveRoundMark: Map<number, [number, number]> | null = null;
  /** True once every client completed a write and a read after the first time the chain looked converged. */
  private liveRound(): boolean {
    if (this.liveRoundMark === null) {
      this.liveRoundMark = new Map(this.clients.map((c) => [c.id, [c.completedWrites, c.completedReads]]));
      return false;
    }
    return this.clients.every((c) => {
      const [w, r] = this.liveRoundMark!.get(c.id)!;
      return c.completedWrites > w && c.completedReads > r;
    });
  }

  private checkFinalStates(): void {
    for (const p of this.nodes) {
      const model = new Map<string, Entry>();
      p.hist.forEach((id, i) => {
        const op = this.ops.get(id);
        if (!op) throw new Violation('state', `${p.name}: no op known for update ${id}`);
        applyOp(model, op, i + 1);
      });
      const want = [...model.values()].sort((a, b) => (a.key < b.key ? -1 : 1)).map((e) => `${e.key}=${dec.decode(e.value)}@${e.version}`).join(' ');
      const got = p.core.entries().map((e) => `${e.key}=${dec.decode(e.value)}@${e.version}`).join(' ');
      if (want !== got) throw new Violation('state', `${p.name}'s state is not the replay of its history:\n  state  ${got}\n  replay ${want}`);
    }
  }

  private describeState(): string {
    const cfg = this.currentConfig();
    const ns = this.nodes.map((p) => `${p.name}(${p.up ? 'up' : 'down'} e${p.core.epoch} last ${p.core.lastSeq} durable ${p.core.durableSeq} acked ${p.core.ackedSeq}${p.core.synced ? '' : ' unsynced'} lease ${p.leaseId})`).join(' ');
    const cs = this.clients.map((c) => `c${c.id}(w${c.completedWrites} r${c.completedReads})`).join(' ');
    return `config e${cfg?.epoch} [${cfg?.members.join(',')}] joining ${cfg?.joining}; ${ns}; ${cs}`;
  }
}

function firstDiff(a: readonly string[], b: readonly string[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

function opForCompare(op: ChainOp): unknown {
  return op.type === 'delete' ? op : { ...op, value: dec.decode(op.value) };
}

export function formatChainFailure(r: ChainSimResult): string {
  if (r.ok || !r.failure) return `seed ${r.seed}: ok`;
  return [`seed ${r.seed} FAILED (${r.setting})`, `invariant: ${r.failure.invariant}`, r.failure.message, 'last events:', ...r.failure.lastEvents.map((e) => '  ' + e)].join('\n');
}
