/**
 * ChainNode: one node of a chain, as a pure state machine (no I/O, no clock, no randomness).
 *
 * Inputs: `setConfig` (from the control plane), `step` (a peer message), `request` (a client),
 * `tick` (time), `persisted` (the driver made earlier persist effects durable), `setReadLease`
 * (until which tick the control plane's lease is known to hold). Outputs: `takeEffects()`.
 *
 * The driver's obligations (as Raft's Ready): persist effects are made durable in order, and
 * `persisted(token)` is called only once every persist effect up to `token` is durable. The node
 * forwards, acknowledges and answers only what is durable, so a crash loses nothing anyone else
 * has seen: a node's history is at all times a prefix of its predecessor's (the paper's
 * invariant), and a write is answered only once the tail has it durably.
 *
 * State. `latest` is the state after the whole history (1..lastSeq), `clean` the state after
 * the committed prefix (1..ackedSeq: the tail holds it); `log` holds the updates
 * baseSeq+1..lastSeq (those up to ackedSeq only while a joiner still needs them). At the tail
 * ackedSeq = durableSeq: the tail's durable history is by definition committed.
 *
 * Configuration changes (§3 of the paper), all by one mechanism: at the start of every epoch a
 * node with a predecessor sends it `syncReq` with where its history ends; the predecessor resends
 * from there (or sends a snapshot when that point is not in its history, e.g. for a joiner) and
 * then `syncDone`. Head failure: the successor becomes head (no predecessor: nothing to do).
 * Tail failure: the predecessor becomes tail, its durable history becomes committed. Middle
 * failure: the predecessor resends what its new successor lacks. Join: the tail streams a
 * snapshot and then its updates to the joiner; the master appends it once it reported itself
 * caught up, and in that new epoch it serves reads only after its sync completed (a new tail
 * must hold everything the old tail committed).
 *
 * Fencing: a message whose epoch is not the node's own is dropped. Reads also need a lease:
 * the master removes a node only after its registration lease expired in the control cluster,
 * and a node stops serving reads before that (`setReadLease`), so an old tail cut off from the
 * control plane cannot serve a stale read while a new tail acknowledges writes.
 */
import { assert } from '../lib/assert.js';
import type { PeerMessage, SnapshotAckMsg, SnapshotChunkMsg, UpdateMsg } from './messages.js';
import {
  CHAIN_INFLIGHT_BYTES_MAX,
  CHAIN_INFLIGHT_UPDATES_MAX,
  CHAIN_LOG_RETAIN_MAX,
  CHAIN_PENDING_READS_MAX,
  CHAIN_RESEND_BACKOFF_MAX,
  CHAIN_SEND_WINDOW_BYTES,
  CHAIN_SEND_WINDOW_UPDATES,
  CHAIN_SNAPSHOT_CHUNK_BYTES_MAX,
  CHAIN_SNAPSHOT_CHUNKS_MAX,
  CHAIN_SNAPSHOT_INFLIGHT_CHUNKS,
  configProblem,
  opProblem,
  type ChainConfig,
  type ChainOp,
  type ClientReply,
  type ClientRequest,
  type Entry,
  type Epoch,
  type NodeName,
  type OpResult,
  type ReadMode,
  type RefusalReason,
  type Seq,
  type SnapshotImage,
  type Update,
} from './types.js';

export interface ChainNodeOptions {
  readonly name: NodeName;
  readonly reads?: ReadMode;
  /**
   * Ticks without progress before a node resends to its successor (go-back-N; doubling after each
   * resend without progress, CHAIN_RESEND_BACKOFF_MAX) and re-acknowledges upstream.
   */
  readonly resendTicks?: number;
  /** Ticks between syncReq repeats until the sync of the epoch completed. */
  readonly syncRetryTicks?: number;
  readonly inflightUpdatesMax?: number;
  readonly inflightBytesMax?: number;
  readonly sendWindowUpdates?: number;
  /** Value bytes sent ahead of the successor's acknowledgement, and kept ahead of a gap (CHAIN_SEND_WINDOW_BYTES). */
  readonly sendWindowBytes?: number;
  readonly snapshotChunkBytesMax?: number;
  /** Snapshot chunks sent beyond the receiver's snapshotAck (CHAIN_SNAPSHOT_INFLIGHT_CHUNKS). */
  readonly snapshotInflightChunks?: number;
  /** Committed updates the tail keeps for a lagging joiner (CHAIN_LOG_RETAIN_MAX). */
  readonly logRetainMax?: number;
}

export type ChainEffect =
  | { readonly type: 'send'; readonly msg: PeerMessage }
  | { readonly type: 'reply'; readonly client: string; readonly id: number; readonly reply: ClientReply }
  /** Append these updates durably (after everything persisted before). */
  | { readonly type: 'persist'; readonly token: number; readonly updates: readonly Update[] }
  /** Replace the durable state with this image (everything persisted before is superseded). */
  | { readonly type: 'persistSnapshot'; readonly token: number; readonly image: SnapshotImage }
  /** A joiner caught up with the tail in this epoch: tell the master (registration value). */
  | { readonly type: 'caughtUp'; readonly epoch: Epoch }
  /**
   * A member with a predecessor caught up with it in this epoch. The first time after it was
   * appended, the master learns from it that the new tail holds everything committed.
   */
  | { readonly type: 'synced'; readonly epoch: Epoch }
  /** A message or request of a newer epoch arrived: read the configuration again. */
  | { readonly type: 'newerEpoch'; readonly epoch: Epoch };

export type ReadPlan = 'clean' | 'ask-tail' | 'refuse' | 'latest';

interface Stream {
  readonly to: NodeName;
  /** The successor (its acknowledgements commit) or the joiner (they do not). */
  readonly counts: boolean;
  /** The receiver told us where its history ends in this epoch. */
  synced: boolean;
  nextSeq: Seq;
  received: Seq;
  ticksSinceProgress: number;
  /** Resends since the last progress: the next waits resendTicks << min(this, CHAIN_RESEND_BACKOFF_MAX). */
  resends: number;
  /** A snapshot being sent to the receiver, a window of chunks at a time; null: none. */
  snapshot: SnapshotSend | null;
}

/**
 * A snapshot streaming to one receiver: the committed state at `seq`, cut into chunks once (the
 * chunks hold the entries themselves, no copies), sent CHAIN_SNAPSHOT_INFLIGHT_CHUNKS beyond
 * what the receiver acknowledged having (snapshotAck), resent from there after no progress.
 * Invariant: acked <= next <= chunks.length.
 */
interface SnapshotSend {
  readonly seq: Seq;
  readonly assignEpoch: Epoch;
  readonly forSeq: Seq;
  readonly forAssignEpoch: Epoch;
  readonly chunks: readonly (readonly Entry[])[];
  next: number;
  acked: number;
  ticksSinceProgress: number;
  resends: number;
}

interface Waiter {
  readonly client: string;
  readonly id: number;
  readonly result: OpResult;
  readonly bytes: number;
}

interface PendingRead {
  readonly client: string;
  readonly id: number;
  readonly key: string;
}

export class ChainNode {
  readonly name: NodeName;
  readonly reads: ReadMode;
  private readonly resendTicks: number;
  private readonly syncRetryTicks: number;
  private readonly inflightUpdatesMax: number;
  private readonly inflightBytesMax: number;
  private readonly sendWindow: number;
  private readonly sendWindowBytes: number;
  private readonly chunkBytesMax: number;
  private readonly snapshotInflight: number;
  private readonly logRetainMax: number;

  protected config: ChainConfig | null = null;
  private now = 0;
  private leaseUntil = -1;
  private leaseFromEpoch = 0;

  protected latest = new Map<string, Entry>();
  protected clean = new Map<string, Entry>();
  /** Keys with an update after ackedSeq, and how many. */
  protected dirty = new Map<string, number>();
  /** Updates baseSeq+1 .. lastSeq. */
  protected log: Update[] = [];
  protected baseSeq: Seq = 0;
  protected baseAssign: Epoch = 0;
  protected lastSeqV: Seq = 0;
  protected ackedSeqV: Seq = 0;
  /** The durable prefix of the current history; -1 while an installed snapshot is not yet durable. */
  protected durableSeqV: Seq = 0;
  private persistQueue: { token: number; seqAfter: Seq }[] = [];
  private nextToken = 1;

  private waiters = new Map<Seq, Waiter>();
  private inflightBytes = 0;
  protected streams: Stream[] = [];
  protected upstream: NodeName | null = null;
  private syncedUpTo: Seq | null = null;
  private syncReqAge = 0;
  private ackAge = 0;
  private ackDirty = false;
  /** A snapshot arriving from upstream; `have`: chunks 0 .. have-1 are here. */
  private assembling: { key: string; seq: Seq; assignEpoch: Epoch; count: number; chunks: Map<number, readonly Entry[]>; have: number } | null = null;
  private pendingReads = new Map<number, PendingRead>();
  /** Updates from upstream that arrived ahead of a gap (at most sendWindowUpdates). */
  private ahead = new Map<Seq, UpdateMsg>();
  private aheadBytes = 0;
  private nextQid = 1;
  private joinReported = false;
  private effects: ChainEffect[] = [];

  constructor(opts: ChainNodeOptions, durable?: { readonly snapshot: SnapshotImage | null; readonly updates: readonly Update[] }) {
    this.name = opts.name;
    this.reads = opts.reads ?? 'tail';
    this.resendTicks = opts.resendTicks ?? 5;
    this.syncRetryTicks = opts.syncRetryTicks ?? 5;
    this.inflightUpdatesMax = opts.inflightUpdatesMax ?? CHAIN_INFLIGHT_UPDATES_MAX;
    this.inflightBytesMax = opts.inflightBytesMax ?? CHAIN_INFLIGHT_BYTES_MAX;
    this.sendWindow = opts.sendWindowUpdates ?? CHAIN_SEND_WINDOW_UPDATES;
    this.sendWindowBytes = opts.sendWindowBytes ?? CHAIN_SEND_WINDOW_BYTES;
    this.chunkBytesMax = opts.snapshotChunkBytesMax ?? CHAIN_SNAPSHOT_CHUNK_BYTES_MAX;
    this.snapshotInflight = opts.snapshotInflightChunks ?? CHAIN_SNAPSHOT_INFLIGHT_CHUNKS;
    this.logRetainMax = opts.logRetainMax ?? CHAIN_LOG_RETAIN_MAX;
    for (const [n, v] of [['resendTicks', this.resendTicks], ['syncRetryTicks', this.syncRetryTicks], ['inflightUpdatesMax', this.inflightUpdatesMax], ['sendWindowUpdates', this.sendWindow], ['snapshotInflightChunks', this.snapshotInflight]] as const) {
      if (!(Number.isSafeInteger(v) && v >= 1)) throw new RangeError(`ChainNode: ${n} must be a positive integer, got ${v}`);
    }
    if (durable) this.restore(durable.snapshot, durable.updates);
  }

  // ---- observers -------------------------------------------------------------------------

  get epoch(): Epoch {
    return this.config?.epoch ?? 0;
  }
  get currentConfig(): ChainConfig | null {
    return this.config;
  }
  get lastSeq(): Seq {
    return this.lastSeqV;
  }
  get ackedSeq(): Seq {
    return this.ackedSeqV;
  }
  get durableSeq(): Seq {
    return this.durableSeqV;
  }
  get isHead(): boolean {
    return this.config !== null && this.config.members[0] === this.name;
  }
  get isTail(): boolean {
    return this.config !== null && this.config.members[this.config.members.length - 1] === this.name;
  }
  get isMember(): boolean {
    return this.config !== null && this.config.members.includes(this.name);
  }
  get isJoiner(): boolean {
    return this.config !== null && this.config.joining === this.name;
  }
  /** Caught up with the predecessor in this epoch (always, without one). */
  get synced(): boolean {
    if (this.upstream === null) return this.config !== null;
    return this.syncedUpTo !== null && this.durableSeqV >= this.syncedUpTo;
  }
  /** The update at `seq` if this node still holds it (for checks). */
  updateAt(seq: Seq): Update | undefined {
    return seq > this.baseSeq && seq <= this.lastSeqV ? this.log[seq - this.baseSeq - 1] : undefined;
  }
  /** The whole state after the history, sorted by key. */
  entries(): Entry[] {
    return [...this.latest.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /**
   * The committed state (at ackedSeq) as a snapshot image, for the driver's compaction of its
   * storage; null while an installed snapshot is not yet durable. A committed prefix is never
   * replaced (a snapshot from upstream is never below it), so the image stays true.
   */
  committedImage(): SnapshotImage | null {
    if (this.durableSeqV < 0) return null;
    return { seq: this.ackedSeqV, assignEpoch: this.assignAt(this.ackedSeqV)!, entries: [...this.clean.values()] };
  }

  takeEffects(): ChainEffect[] {
    const e = this.effects;
    this.effects = [];
    return e;
  }

  // ---- inputs ----------------------------------------------------------------------------

  tick(): void {
    this.now++;
    if (this.upstream !== null && !this.synced) {
      if (++this.syncReqAge >= this.syncRetryTicks) this.sendSyncReq();
    }
    for (const s of this.streams) {
      const snap = s.snapshot;
      if (snap !== null && snap.acked < snap.chunks.length && ++snap.ticksSinceProgress >= this.resendTicks * 2 ** Math.min(snap.resends, CHAIN_RESEND_BACKOFF_MAX)) {
        // No chunk acknowledged for a while: lost on the way (or the receiver restarted). Go
        // back to the first it lacks, waiting twice as long before the next time.
        snap.ticksSinceProgress = 0;
        snap.resends++;
        snap.next = snap.acked;
        this.pumpSnapshot(s);
      }
      if (!s.synced || s.received >= this.durableSeqV) {
        s.ticksSinceProgress = 0;
        continue;
      }
      if (++s.ticksSinceProgress >= this.resendTicks * 2 ** Math.min(s.resends, CHAIN_RESEND_BACKOFF_MAX)) {
        // Go-back-N: the network may lose or reorder; the receiver keeps only the next in order.
        // Each resend without progress waits twice as long as the one before: a large update
        // still on its way (or a slow disk behind it) is not sent again and again.
        s.ticksSinceProgress = 0;
        s.resends++;
        s.nextSeq = s.received + 1;
        this.pump(s);
      }
    }
    if (this.upstream !== null && ++this.ackAge >= this.resendTicks) this.ackDirty = true;
    this.finish();
  }

  /**
   * Reads may be served until `untilTick` (of this node's own count), and only in epochs from
   * `fromEpoch` on. The driver derives both from its registration lease: the tick from when its
   * last keep-alive was sent plus the TTL less a margin; the epoch from the revision of the
   * registration's put + 1 — a master may have removed this node while its lease had lapsed, in a
   * configuration this node has not seen, and any configuration written after the new
   * registration knows of it.
   */
  setReadLease(untilTick: number, fromEpoch: Epoch = 0): void {
    this.leaseUntil = untilTick;
    this.leaseFromEpoch = fromEpoch;
  }
  get tickNow(): number {
    return this.now;
  }

  setConfig(c: ChainConfig): void {
    if (this.config !== null && c.epoch <= this.config.epoch) return;
    if (configProblem(c) !== null) return;
    const wasHead = this.isHead;
    this.config = c;
    if (wasHead && !this.isHead) {
      for (const w of this.waiters.values()) this.reply(w.client, w.id, { ok: null, reason: 'unknown', epoch: c.epoch });
      this.waiters.clear();
      this.inflightBytes = 0;
    }
    for (const [, r] of this.pendingReads) this.refuse(r.client, r.id, 'epoch');
    this.pendingReads.clear();
    this.assembling = null;
    this.clearAhead();
    this.joinReported = false;
    const i = c.members.indexOf(this.name);
    this.streams = [];
    if (i >= 0 && i < c.members.length - 1) this.streams.push(newStream(c.members[i + 1]!, true));
    if (i === c.members.length - 1 && c.joining !== null) this.streams.push(newStream(c.joining, false));
    this.upstream = i > 0 ? c.members[i - 1]! : c.joining === this.name ? c.members[c.members.length - 1]! : null;
    this.syncedUpTo = null;
    if (this.upstream !== null) this.sendSyncReq();
    if (this.isTail && this.durableSeqV >= 0) this.advanceAcked(this.durableSeqV);
    this.finish();
  }

  persisted(token: number): void {
    let changed = false;
    while (this.persistQueue.length > 0 && this.persistQueue[0]!.token <= token) {
      const p = this.persistQueue.shift()!;
      // An entry voided by a later snapshot (seqAfter -1) leaves durableSeq where it is.
      if (p.seqAfter >= 0) {
        this.durableSeqV = p.seqAfter;
        changed = true;
      }
    }
    if (!changed) return;
    assert(this.durableSeqV <= this.lastSeqV, () => `${this.name}: durable ${this.durableSeqV} beyond last ${this.lastSeqV}`);
    if (this.isTail && this.isMember) this.advanceAcked(this.durableSeqV);
    this.ackDirty = true;
    for (const s of this.streams) this.pump(s);
    this.finish();
  }

  request(req: ClientRequest): void {
    this.handleRequest(req);
    this.finish();
  }

  step(msg: PeerMessage): void {
    if (this.config === null || msg.to !== this.name) return;
    if (!this.acceptsEpoch(msg.epoch)) {
      if (msg.epoch > this.config.epoch) this.effects.push({ type: 'newerEpoch', epoch: msg.epoch });
      return;
    }
    switch (msg.type) {
      case 'update':
        this.onUpdate(msg);
        break;
      case 'ack': {
        const s = this.streams.find((x) => x.to === msg.from);
        if (!s) break;
        if (!s.synced) {
          // We lost the sync of this epoch (a restart) while the successor still has it: its
          // acknowledgement says where its history ends, as a syncReq would.
          this.syncWith(s, msg.received, msg.receivedAssignEpoch);
          break;
        }
        const received = Math.min(msg.received, this.lastSeqV);
        if (received > s.received) {
          s.received = received;
          s.ticksSinceProgress = 0;
          s.resends = 0;
        }
        if (s.counts && this.durableSeqV >= 0) this.advanceAcked(Math.min(msg.committed, this.durableSeqV));
        this.pump(s);
        this.trimLog();
        break;
      }
      case 'syncReq': {
        const s = this.streams.find((x) => x.to === msg.from);
        if (s) this.syncWith(s, msg.lastSeq, msg.lastAssignEpoch);
        break;
      }
      case 'syncDone':
        if (msg.from !== this.upstream) break;
        if (this.syncedUpTo === null || msg.upTo > this.syncedUpTo) this.syncedUpTo = msg.upTo;
        break;
      case 'snapshotChunk':
        this.onChunk(msg);
        break;
      case 'snapshotAck':
        this.onSnapshotAck(msg);
        break;
      case 'versionQuery': {
        if (!this.config.members.includes(msg.from)) break;
        const ok = this.isTail && this.synced && this.leaseValid();
        const version = ok ? (this.clean.get(msg.key)?.version ?? 0) : null;
        this.send({ type: 'versionAnswer', epoch: this.epoch, from: this.name, to: msg.from, qid: msg.qid, key: msg.key, version });
        break;
      }
      case 'versionAnswer': {
        const r = this.pendingReads.get(msg.qid);
        if (!r || r.key !== msg.key || !this.isTail_(msg.from)) break;
        this.pendingReads.delete(msg.qid);
        if (msg.version === null) {
          this.refuse(r.client, r.id, 'not-synced', 'the tail could not answer');
          break;
        }
        const v = this.valueAt(r.key, msg.version);
        if (v === undefined) this.refuse(r.client, r.id, 'busy', `version ${msg.version} of the key is not held here`);
        else this.reply(r.client, r.id, { ok: true, result: { type: 'get', value: v, version: msg.version } });
        break;
      }
    }
    this.finish();
  }

  // ---- hooks (overridden by test mutants only) -----------------------------------------------

  /** Fencing: only messages of the node's own epoch. */
  protected acceptsEpoch(epoch: Epoch): boolean {
    return this.config !== null && epoch === this.config.epoch;
  }

  /** Where to resume sending to a successor whose history ends at `theirLast` (which we hold). */
  protected resumeFrom(theirLast: Seq): Seq {
    return theirLast;
  }

  /** How to answer a read of `key`: from the committed state, after asking the tail, or not at all. */
  protected readPlan(key: string): ReadPlan {
    if (this.isTail) return 'clean';
    if (this.reads === 'craq' && this.isMember) return this.dirty.has(key) ? 'ask-tail' : 'clean';
    return 'refuse';
  }

  // ---- internals -------------------------------------------------------------------------

  private isTail_(n: NodeName): boolean {
    return this.config !== null && this.config.members[this.config.members.length - 1] === n;
  }

  /** Whether reads may be served now (the lease from the control plane). */
  protected leaseValid(): boolean {
    return this.now < this.leaseUntil && this.epoch >= this.leaseFromEpoch;
  }

  private handleRequest(req: ClientRequest): void {
    const c = this.config;
    if (c === null) return this.refuse(req.client, req.id, 'epoch', 'no configuration yet');
    if (req.epoch !== c.epoch) {
      if (req.epoch > c.epoch) this.effects.push({ type: 'newerEpoch', epoch: req.epoch });
      return this.refuse(req.client, req.id, 'epoch');
    }
    const problem = opProblem(req.op);
    if (problem !== null) return this.refuse(req.client, req.id, 'invalid', problem);
    const op = req.op;
    if (op.type === 'get') {
      const plan = this.readPlan(op.key);
      if (plan === 'refuse') return this.refuse(req.client, req.id, 'not-tail');
      if (!this.leaseValid()) return this.refuse(req.client, req.id, 'no-lease');
      if (this.isTail && !this.synced) return this.refuse(req.client, req.id, 'not-synced');
      if (plan === 'clean' || plan === 'latest') {
        const e = (plan === 'clean' ? this.clean : this.latest).get(op.key);
        return this.reply(req.client, req.id, { ok: true, result: { type: 'get', value: e?.value ?? null, version: e?.version ?? 0 } });
      }
      if (this.pendingReads.size >= CHAIN_PENDING_READS_MAX) return this.refuse(req.client, req.id, 'busy', 'too many reads waiting for the tail');
      const qid = this.nextQid++;
      this.pendingReads.set(qid, { client: req.client, id: req.id, key: op.key });
      this.send({ type: 'versionQuery', epoch: c.epoch, from: this.name, to: c.members[c.members.length - 1]!, qid, key: op.key });
      return;
    }
    if (!this.isHead) return this.refuse(req.client, req.id, 'not-head');
    const bytes = op.type === 'delete' ? 0 : op.value.length;
    if (this.lastSeqV - this.ackedSeqV >= this.inflightUpdatesMax) return this.refuse(req.client, req.id, 'busy', `${this.inflightUpdatesMax} updates in flight`);
    if (this.inflightBytes + bytes > this.inflightBytesMax && this.waiters.size > 0) return this.refuse(req.client, req.id, 'busy', `${this.inflightBytesMax} value bytes in flight`);
    // The update is persisted before it is sent anywhere (pump sends only up to durableSeq), so
    // if this head crashes before that, no one ever saw (seq, epoch): a restarted head may assign
    // the same pair to another op without two different updates ever meeting.
    const u: Update = { seq: this.lastSeqV + 1, assignEpoch: c.epoch, op };
    const result = this.appendUpdate(u);
    this.waiters.set(u.seq, { client: req.client, id: req.id, result, bytes });
    this.inflightBytes += bytes;
  }

  /** The successor's history ends at (lastSeq, lastAssignEpoch): resend from there, or a snapshot. */
  private syncWith(s: Stream, lastSeq: Seq, lastAssignEpoch: Epoch): void {
    // Only a node caught up itself can vouch for a successor (a new tail's joiner, say).
    if (this.durableSeqV < 0 || !this.synced) return;
    s.ticksSinceProgress = 0;
    s.resends = 0;
    if (!this.holds(lastSeq, lastAssignEpoch)) {
      // Its history is not a prefix of ours (a joiner that was once ahead, or diverged): it
      // gets our committed state; once installed, its next syncReq finds a point we hold.
      this.sendSnapshot(s, lastSeq, lastAssignEpoch);
      return;
    }
    s.snapshot = null;
    const from = this.resumeFrom(lastSeq);
    s.nextSeq = from + 1;
    s.received = from;
    s.synced = true;
    this.pump(s);
    this.send({ type: 'syncDone', epoch: this.epoch, from: this.name, to: s.to, upTo: this.durableSeqV });
  }

  private onUpdate(m: UpdateMsg): void {
    if (m.from !== this.upstream || !Number.isSafeInteger(m.seq)) return;
    if (m.seq <= this.lastSeqV) {
      // A duplicate: say where we are, so the sender goes back no further than needed.
      this.ackDirty = true;
      return;
    }
    if (m.seq > this.lastSeqV + 1) {
      // The network reorders: keep what is within the send window until the gap is filled.
      const bytes = opBytes(m.op);
      if (m.seq <= this.lastSeqV + this.sendWindow && this.ahead.size < this.sendWindow && !this.ahead.has(m.seq) && this.aheadBytes + bytes <= this.sendWindowBytes) {
        this.ahead.set(m.seq, m);
        this.aheadBytes += bytes;
      }
      return;
    }
    this.appendFromUpstream(m);
    for (let next = this.ahead.get(this.lastSeqV + 1); next !== undefined; next = this.ahead.get(this.lastSeqV + 1)) {
      this.dropAhead(next.seq);
      if (!this.appendFromUpstream(next)) break;
    }
    for (const k of this.ahead.keys()) if (k <= this.lastSeqV) this.dropAhead(k);
  }

  private dropAhead(seq: Seq): void {
    const m = this.ahead.get(seq);
    if (m === undefined) return;
    this.ahead.delete(seq);
    this.aheadBytes -= opBytes(m.op);
  }

  private clearAhead(): void {
    this.ahead.clear();
    this.aheadBytes = 0;
  }

  private appendFromUpstream(m: UpdateMsg): boolean {
    if (m.seq !== this.lastSeqV + 1) return false;
    if (m.prevAssignEpoch !== this.lastAssign()) return false; // not a continuation of our history: wait for the snapshot
    if (opProblem(m.op) !== null) return false;
    this.appendUpdate({ seq: m.seq, assignEpoch: m.assignEpoch, op: m.op });
    return true;
  }

  private appendUpdate(u: Update): OpResult {
    assert(u.seq === this.lastSeqV + 1, () => `${this.name}: append ${u.seq} after ${this.lastSeqV}`);
    const result = applyOp(this.latest, u.op, u.seq);
    this.log.push(u);
    this.lastSeqV = u.seq;
    this.dirty.set(u.op.key, (this.dirty.get(u.op.key) ?? 0) + 1);
    const token = this.nextToken++;
    this.persistQueue.push({ token, seqAfter: u.seq });
    this.effects.push({ type: 'persist', token, updates: [u] });
    return result;
  }

  private lastAssign(): Epoch {
    return this.log.length > 0 ? this.log[this.log.length - 1]!.assignEpoch : this.baseAssign;
  }

  private assignAt(seq: Seq): Epoch | undefined {
    if (seq === this.baseSeq) return this.baseAssign;
    if (seq < this.baseSeq || seq > this.lastSeqV) return undefined;
    return this.log[seq - this.baseSeq - 1]!.assignEpoch;
  }

  /** Whether our history has the update (seq, assignEpoch) — then it extends that history. */
  private holds(seq: Seq, assignEpoch: Epoch): boolean {
    return Number.isSafeInteger(seq) && this.assignAt(seq) === assignEpoch;
  }

  private advanceAcked(to: Seq): void {
    to = Math.min(to, this.lastSeqV);
    if (to <= this.ackedSeqV) return;
    for (let s = this.ackedSeqV + 1; s <= to; s++) {
      const u = this.log[s - this.baseSeq - 1]!;
      applyOp(this.clean, u.op, u.seq);
      const n = (this.dirty.get(u.op.key) ?? 1) - 1;
      if (n <= 0) this.dirty.delete(u.op.key);
      else this.dirty.set(u.op.key, n);
      const w = this.waiters.get(s);
      if (w) {
        this.waiters.delete(s);
        this.inflightBytes -= w.bytes;
        this.reply(w.client, w.id, { ok: true, result: w.result });
      }
    }
    this.ackedSeqV = to;
    this.ackDirty = true;
    this.trimLog();
  }

  /** Drops updates no one needs: committed, and already received by the joiner (within CHAIN_LOG_RETAIN_MAX). */
  private trimLog(): void {
    let keep = this.ackedSeqV;
    const joiner = this.streams.find((s) => !s.counts);
    if (joiner) keep = Math.max(Math.min(keep, joiner.received), this.ackedSeqV - this.logRetainMax);
    const drop = keep - this.baseSeq;
    if (drop <= 0) return;
    this.baseAssign = this.log[drop - 1]!.assignEpoch;
    this.log.splice(0, drop);
    this.baseSeq = keep;
  }

  private pump(s: Stream): void {
    if (!s.synced || this.durableSeqV < 0) return;
    let bytes = 0;
    for (let q = Math.max(s.received + 1, this.baseSeq + 1); q < s.nextSeq && q <= this.lastSeqV; q++) bytes += opBytes(this.log[q - this.baseSeq - 1]!.op);
    while (s.nextSeq <= this.durableSeqV && s.nextSeq - s.received <= this.sendWindow && (bytes === 0 || bytes < this.sendWindowBytes)) {
      if (s.nextSeq <= this.baseSeq) {
        this.sendSnapshot(s, -1, 0);
        continue;
      }
      const u = this.log[s.nextSeq - this.baseSeq - 1]!;
      bytes += opBytes(u.op);
      const prev = this.assignAt(s.nextSeq - 1)!;
      this.send({ type: 'update', epoch: this.epoch, from: this.name, to: s.to, seq: u.seq, assignEpoch: u.assignEpoch, prevAssignEpoch: prev, op: u.op });
      s.nextSeq++;
    }
  }

  /**
   * The committed state (at ackedSeq) in chunks, streamed a window at a time (pumpSnapshot);
   * sending updates resumes after it (once the receiver acknowledged it, beyond the send window).
   * `forSeq`/`forAssign`: the end of the receiver's history it answers (-1: a receiver that lags
   * beyond our log). The receiver asks again (syncReq) while a snapshot is under way: the same
   * question goes on with the snapshot already streaming, not a new one.
   */
  private sendSnapshot(s: Stream, forSeq: Seq, forAssignEpoch: Epoch): void {
    const cur = s.snapshot;
    // The one under way goes on only while the log still holds what follows it: once trimmed
    // past its seq, sending would resume inside the trimmed part (pump would ask again at once,
    // forever): a new snapshot, at the acknowledged seq, replaces it.
    if (cur !== null && cur.forSeq === forSeq && cur.forAssignEpoch === forAssignEpoch && cur.acked < cur.chunks.length && cur.seq >= this.baseSeq) {
      s.nextSeq = cur.seq + 1;
      return;
    }
    const seq = this.ackedSeqV;
    const assignEpoch = this.assignAt(seq)!;
    const all = [...this.clean.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const chunks: Entry[][] = [[]];
    let bytes = 0;
    for (const e of all) {
      const size = e.value.length + e.key.length;
      if (bytes > 0 && bytes + size > this.chunkBytesMax) {
        chunks.push([]);
        bytes = 0;
      }
      chunks[chunks.length - 1]!.push(e);
      bytes += size;
    }
    s.snapshot = { seq, assignEpoch, forSeq, forAssignEpoch, chunks, next: 0, acked: 0, ticksSinceProgress: 0, resends: 0 };
    this.pumpSnapshot(s);
    // Sending resumes after it, but what the receiver holds is known only from its
    // acknowledgement: if the snapshot is lost, the resend after no progress sends it again.
    s.nextSeq = seq + 1;
  }

  /** Sends the snapshot's chunks up to snapshotInflightChunks beyond those the receiver has. */
  private pumpSnapshot(s: Stream): void {
    const snap = s.snapshot;
    if (snap === null) return;
    while (snap.next < snap.chunks.length && snap.next < snap.acked + this.snapshotInflight) {
      const index = snap.next++;
      this.send({ type: 'snapshotChunk', epoch: this.epoch, from: this.name, to: s.to, seq: snap.seq, assignEpoch: snap.assignEpoch, forSeq: snap.forSeq, forAssignEpoch: snap.forAssignEpoch, index, count: snap.chunks.length, entries: snap.chunks[index]! });
    }
  }

  private onSnapshotAck(m: SnapshotAckMsg): void {
    const s = this.streams.find((x) => x.to === m.from);
    const snap = s?.snapshot;
    if (!s || !snap || m.seq !== snap.seq || m.assignEpoch !== snap.assignEpoch || m.count !== snap.chunks.length) return;
    if (m.have > snap.acked) {
      snap.acked = m.have;
      snap.next = Math.max(snap.next, snap.acked);
      snap.ticksSinceProgress = 0;
      snap.resends = 0;
    } else if (m.have < snap.acked) {
      // The receiver lost chunks it had (it restarted): from its first missing one again.
      snap.acked = m.have;
      snap.next = m.have;
    }
    this.pumpSnapshot(s);
  }

  private onChunk(m: SnapshotChunkMsg): void {
    if (m.from !== this.upstream) return;
    if (!(Number.isSafeInteger(m.count) && m.count >= 1 && m.count <= CHAIN_SNAPSHOT_CHUNKS_MAX)) return;
    if (!(Number.isSafeInteger(m.index) && m.index >= 0 && m.index < m.count)) return;
    if (!(Number.isSafeInteger(m.seq) && m.seq >= 0)) return;
    // A snapshot replaces the whole history, so it is taken only as the answer to where our
    // history ends now (a duplicate or a replay after we moved on would take it backwards), or,
    // unasked, when it is ahead of all we have. Never below our committed prefix: only a joiner
    // whose history diverged gets one, from the tail, whose committed prefix includes ours.
    if (m.seq < this.ackedSeqV) return;
    if (m.forSeq >= 0 ? !(m.forSeq === this.durableSeqV && m.forAssignEpoch === this.assignAt(this.durableSeqV)) : m.seq <= this.lastSeqV) return;
    const key = `${m.seq}@${m.assignEpoch}/${m.count}`;
    if (this.assembling?.key !== key) this.assembling = { key, seq: m.seq, assignEpoch: m.assignEpoch, count: m.count, chunks: new Map(), have: 0 };
    const asm = this.assembling;
    asm.chunks.set(m.index, m.entries);
    while (asm.chunks.has(asm.have)) asm.have++;
    // Flow control: the sender sends a few chunks beyond what we say we have.
    this.send({ type: 'snapshotAck', epoch: this.epoch, from: this.name, to: m.from, seq: m.seq, assignEpoch: m.assignEpoch, count: m.count, have: asm.have });
    if (asm.chunks.size < m.count) return;
    const a = this.assembling;
    this.assembling = null;
    const entries: Entry[] = [];
    for (let i = 0; i < a.count; i++) entries.push(...a.chunks.get(i)!);
    const image: SnapshotImage = { seq: a.seq, assignEpoch: a.assignEpoch, entries };
    if (imageProblem(image) !== null) return;
    this.install(image);
  }

  private install(image: SnapshotImage): void {
    this.latest = new Map(image.entries.map((e) => [e.key, e]));
    this.clean = new Map(this.latest);
    this.dirty.clear();
    this.log = [];
    this.baseSeq = image.seq;
    this.baseAssign = image.assignEpoch;
    this.lastSeqV = image.seq;
    this.ackedSeqV = image.seq; // a snapshot is of its sender's committed state
    this.durableSeqV = -1;
    this.clearAhead();
    for (const p of this.persistQueue) p.seqAfter = -1;
    const token = this.nextToken++;
    this.persistQueue.push({ token, seqAfter: image.seq });
    this.effects.push({ type: 'persistSnapshot', token, image });
    for (const s of this.streams) {
      s.nextSeq = Math.min(s.nextSeq, image.seq + 1);
      s.received = Math.min(s.received, image.seq);
    }
  }

  private restore(snapshot: SnapshotImage | null, updates: readonly Update[]): void {
    if (snapshot) {
      const problem = imageProblem(snapshot);
      if (problem !== null) throw new Error(`chain node ${this.name}: snapshot on disk: ${problem}`);
      this.latest = new Map(snapshot.entries.map((e) => [e.key, e]));
      this.clean = new Map(this.latest);
      this.baseSeq = this.lastSeqV = this.ackedSeqV = snapshot.seq;
      this.baseAssign = snapshot.assignEpoch;
    }
    for (const u of updates) {
      if (u.seq !== this.lastSeqV + 1) throw new Error(`chain node ${this.name}: update ${u.seq} on disk after ${this.lastSeqV}`);
      applyOp(this.latest, u.op, u.seq);
      this.log.push(u);
      this.lastSeqV = u.seq;
      this.dirty.set(u.op.key, (this.dirty.get(u.op.key) ?? 0) + 1);
    }
    this.durableSeqV = this.lastSeqV;
  }

  private valueAt(key: string, version: Seq): Uint8Array | null | undefined {
    if (version === 0) return null;
    const c = this.clean.get(key);
    if (c && c.version === version) return c.value;
    const u = this.updateAt(version);
    if (u && u.op.key === key && u.op.type !== 'delete') return u.op.value;
    return undefined;
  }

  private sendSyncReq(): void {
    if (this.upstream === null || this.durableSeqV < 0) return;
    this.syncReqAge = 0;
    // Only the durable history: that is what survives if we crash now.
    const last = this.durableSeqV;
    this.send({ type: 'syncReq', epoch: this.epoch, from: this.name, to: this.upstream, lastSeq: last, lastAssignEpoch: this.assignAt(last) ?? 0 });
  }

  private finish(): void {
    if (this.ackDirty && this.upstream !== null && this.durableSeqV >= 0) {
      this.ackDirty = false;
      this.ackAge = 0;
      this.send({ type: 'ack', epoch: this.epoch, from: this.name, to: this.upstream, received: this.durableSeqV, receivedAssignEpoch: this.assignAt(this.durableSeqV) ?? 0, committed: this.isJoiner ? 0 : this.ackedSeqV });
    }
    if (this.upstream !== null && !this.joinReported && this.synced) {
      this.joinReported = true;
      this.effects.push({ type: this.isJoiner ? 'caughtUp' : 'synced', epoch: this.epoch });
    }
  }

  private send(msg: PeerMessage): void {
    this.effects.push({ type: 'send', msg });
  }

  private reply(client: string, id: number, reply: ClientReply): void {
    this.effects.push({ type: 'reply', client, id, reply });
  }

  private refuse(client: string, id: number, reason: RefusalReason, detail?: string): void {
    this.reply(client, id, { ok: false, reason, epoch: this.epoch, ...(detail !== undefined ? { detail } : {}) });
  }
}

function opBytes(op: ChainOp): number {
  return op.type === 'delete' ? 0 : op.value.length;
}

function newStream(to: NodeName, counts: boolean): Stream {
  return { to, counts, synced: false, nextSeq: 1, received: 0, ticksSinceProgress: 0, resends: 0, snapshot: null };
}

/** Applies `op` at `seq` to `state`; the same on every node (the history decides everything). */
export function applyOp(state: Map<string, Entry>, op: ChainOp, seq: Seq): OpResult {
  switch (op.type) {
    case 'put':
      state.set(op.key, { key: op.key, value: op.value, version: seq });
      return { type: 'put', version: seq };
    case 'delete':
      return { type: 'delete', deleted: state.delete(op.key) };
    case 'cas': {
      const cur = state.get(op.key)?.version ?? 0;
      if (cur !== op.expectedVersion) return { type: 'cas', swapped: false, version: cur };
      state.set(op.key, { key: op.key, value: op.value, version: seq });
      return { type: 'cas', swapped: true, version: seq };
    }
  }
}

/** Why a snapshot image (from a peer or a disk) cannot be installed, or null. */
export function imageProblem(image: SnapshotImage): string | null {
  if (!(Number.isSafeInteger(image.seq) && image.seq >= 0)) return 'seq must be a non-negative integer';
  if (!(Number.isSafeInteger(image.assignEpoch) && image.assignEpoch >= 0)) return 'assign epoch must be a non-negative integer';
  const seen = new Set<string>();
  for (const e of image.entries) {
    if (seen.has(e.key)) return `key ${JSON.stringify(e.key)} twice`;
    seen.add(e.key);
    if (!(Number.isSafeInteger(e.version) && e.version >= 1 && e.version <= image.seq)) return `key ${JSON.stringify(e.key)}: version ${e.version} outside 1..${image.seq}`;
    const p = opProblem({ type: 'put', key: e.key, value: e.value });
    if (p !== null) return p;
  }
  return null;
}
