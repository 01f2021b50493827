/**
 * The watch hub: watchers on key ranges, from any revision back to the compact revision. A
 * watcher first catches up from the store's history, then receives each new revision live.
 *
 * The six etcd guarantees, and how they hold here:
 * - ordered and unique: each watcher has `next`, the next revision it may receive; a revision
 *   is sent only if >= next, and next moves past it;
 * - reliable: a watcher is never advanced past a revision it was not sent. When the consumer
 *   is slow (its sink refuses more), its watchers fall back to "unsynced" at their `next`
 *   and catch up from history once the sink drains; if compaction removed that history in
 *   the meantime the watcher is cancelled with the compact revision, never silently skipped;
 * - atomic: all events of one revision go in one response;
 * - resumable: a client restarts a watch at its last revision + 1;
 * - bookmarkable: a progress notification carries revision R only when the watcher has been
 *   sent everything up to R.
 */
import { bin, keyInterval, type KeyValue, type KvEvent } from './mvcc.js';
import type { KvStateMachine } from './state-machine.js';

export interface WatchCreate {
  readonly key: Uint8Array;
  readonly rangeEnd?: Uint8Array;
  /** 0: from the next revision. */
  readonly startRevision?: number;
  readonly prevKv?: boolean;
  readonly noPut?: boolean;
  readonly noDelete?: boolean;
  readonly progressNotify?: boolean;
  /** 0: assign one (ids per stream start at 0). */
  readonly watchId?: number;
}

/** One response to the client (a WatchResponse without the header's fixed fields). */
export interface WatchOut {
  readonly watchId: number;
  /** The header revision. */
  readonly revision: number;
  readonly events?: readonly KvEvent[];
  readonly created?: boolean;
  readonly canceled?: boolean;
  readonly compactRevision?: number;
  readonly cancelReason?: string;
}

/** Where a stream's responses go. `send` returns false when the consumer cannot take more for now. */
export interface WatchSink {
  send(out: WatchOut): boolean;
}

export interface WatchLimits {
  /** Events per catch-up response; a revision is never split, so one may exceed it. */
  readonly catchUpEventsPerResponse: number;
  /** Watchers per stream. */
  readonly watchersPerStreamMax: number;
}

export const WATCH_LIMITS_DEFAULT: WatchLimits = { catchUpEventsPerResponse: 1000, watchersPerStreamMax: 10_000 };

/** The id etcd uses for a progress response to a stream-wide progress request. */
export const PROGRESS_WATCH_ID = -1;

export const DUPLICATE_WATCH_ID = 'mvcc: duplicate watch ID provided on the WatchStream';

interface Watcher {
  readonly id: number;
  readonly start: string;
  /** null: one key; '': to the end. */
  readonly end: string | null;
  readonly prevKv: boolean;
  readonly noPut: boolean;
  readonly noDelete: boolean;
  readonly progressNotify: boolean;
  next: number;
  synced: boolean;
}

function stripPrev(e: KvEvent): KvEvent {
  return e.prevKv ? { type: e.type, kv: e.kv } : e;
}

export class WatchStream {
  private readonly watchers = new Map<number, Watcher>();
  private nextId = 0;
  /** The sink refused a response: nothing more is sent until `drained()`. */
  private blocked = false;
  private progressPending = false;
  private closed = false;

  constructor(
    private readonly hub: WatchHub,
    private readonly sink: WatchSink,
  ) {}

  get size(): number {
    return this.watchers.size;
  }

  create(req: WatchCreate): void {
    if (this.closed) return;
    const store = this.hub.sm.store;
    let id = req.watchId ?? 0;
    if (id !== 0 && this.watchers.has(id)) {
      this.send({ watchId: id, revision: store.revision, created: true, canceled: true, cancelReason: DUPLICATE_WATCH_ID });
      return;
    }
    if (this.watchers.size >= this.hub.limits.watchersPerStreamMax) {
      this.send({ watchId: id, revision: store.revision, created: true, canceled: true, cancelReason: `too many watchers on one stream (limit ${this.hub.limits.watchersPerStreamMax})` });
      return;
    }
    if (id === 0) {
      while (this.watchers.has(this.nextId)) this.nextId++;
      id = this.nextId++;
    }
    // An empty key starts at "\0", the lowest key there is.
    const iv = keyInterval(req.key.length === 0 ? new Uint8Array([0]) : req.key, req.rangeEnd);
    const start = req.startRevision && req.startRevision > 0 ? req.startRevision : store.revision + 1;
    const w: Watcher = {
      id,
      start: iv.start,
      end: iv.end,
      prevKv: req.prevKv ?? false,
      noPut: req.noPut ?? false,
      noDelete: req.noDelete ?? false,
      progressNotify: req.progressNotify ?? false,
      next: start,
      synced: start > store.revision,
    };
    this.watchers.set(id, w);
    this.send({ watchId: id, revision: store.revision, created: true });
    if (!w.synced) this.catchUp();
  }

  cancel(id: number): void {
    if (!this.watchers.delete(id)) return;
    this.send({ watchId: id, revision: this.hub.sm.store.revision, canceled: true });
  }

  /** A progress request: answered once every watcher of the stream is caught up. */
  requestProgress(): void {
    this.progressPending = true;
    this.flushProgress();
  }

  /** The sink can take responses again. */
  drained(): void {
    if (!this.blocked || this.closed) return;
    this.blocked = false;
    this.catchUp();
  }

  close(): void {
    this.closed = true;
    this.watchers.clear();
    this.hub.streams.delete(this);
  }

  private send(out: WatchOut): void {
    if (this.closed) return;
    if (!this.sink.send(out)) this.blocked = true;
  }

  private matches(w: Watcher, e: KvEvent): boolean {
    if (e.type === 'put' ? w.noPut : w.noDelete) return false;
    const k = bin(e.kv.key);
    if (w.end === null) return k === w.start;
    return k >= w.start && (w.end === '' || k < w.end);
  }

  private select(w: Watcher, events: readonly KvEvent[]): KvEvent[] {
    const out: KvEvent[] = [];
    for (const e of events) if (this.matches(w, e)) out.push(w.prevKv ? e : stripPrev(e));
    return out;
  }

  /** Live delivery of revision `rev` (called by the hub). */
  onCommit(events: readonly KvEvent[], rev: number): void {
    for (const w of this.watchers.values()) {
      if (!w.synced || rev < w.next) continue;
      if (this.blocked) {
        w.synced = false;
        continue;
      }
      const sel = this.select(w, events);
      w.next = rev + 1;
      if (sel.length > 0) this.send({ watchId: w.id, revision: rev, events: sel });
    }
  }

  /** Every watcher goes back to history at its `next` (the store was replaced by a snapshot). */
  resync(): void {
    for (const w of this.watchers.values()) w.synced = false;
    this.catchUp();
  }

  /** Sends history to unsynced watchers until they are live or the sink refuses more. */
  catchUp(): void {
    const store = this.hub.sm.store;
    for (const w of [...this.watchers.values()]) {
      if (this.blocked || this.closed) return;
      if (w.synced) continue;
      if (w.next <= store.compactRevision) {
        this.watchers.delete(w.id);
        this.send({ watchId: w.id, revision: store.revision, canceled: true, compactRevision: store.compactRevision, cancelReason: 'etcdserver: mvcc: required revision has been compacted' });
        continue;
      }
      const history = store.changesSince(w.next);
      let batch: KvEvent[] = [];
      let i = 0;
      while (i < history.length) {
        const rev = history[i]!.kv.modRevision;
        let j = i;
        while (j < history.length && history[j]!.kv.modRevision === rev) j++;
        const sel = this.select(w, history.slice(i, j));
        batch.push(...sel);
        i = j;
        const last = i === history.length;
        if (batch.length > 0 && (batch.length >= this.hub.limits.catchUpEventsPerResponse || last)) {
          w.next = rev + 1;
          this.send({ watchId: w.id, revision: last ? store.revision : rev, events: batch });
          batch = [];
          if (this.blocked) break;
        } else {
          w.next = rev + 1;
        }
      }
      if (!this.blocked) {
        w.next = Math.max(w.next, store.revision + 1);
        w.synced = true;
      }
    }
    this.flushProgress();
  }

  /** Progress notifications to caught-up watchers that asked for them (called by the hub's timer). */
  notifyProgress(): void {
    if (this.blocked) return;
    const rev = this.hub.sm.store.revision;
    for (const w of this.watchers.values()) {
      if (w.progressNotify && w.synced && w.next > rev) this.send({ watchId: w.id, revision: rev, events: [] });
    }
  }

  private flushProgress(): void {
    if (!this.progressPending || this.blocked) return;
    for (const w of this.watchers.values()) if (!w.synced) return;
    this.progressPending = false;
    this.send({ watchId: PROGRESS_WATCH_ID, revision: this.hub.sm.store.revision });
  }
}

export class WatchHub {
  readonly streams = new Set<WatchStream>();
  readonly limits: WatchLimits;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    readonly sm: KvStateMachine,
    o: { limits?: Partial<WatchLimits>; progressIntervalMs?: number } = {},
  ) {
    this.limits = { ...WATCH_LIMITS_DEFAULT, ...o.limits };
    sm.onCommit((events, rev) => {
      for (const s of this.streams) s.onCommit(events, rev);
    });
    sm.onRestore(() => {
      for (const s of this.streams) s.resync();
    });
    if (o.progressIntervalMs && o.progressIntervalMs > 0) {
      this.timer = setInterval(() => {
        for (const s of this.streams) s.notifyProgress();
      }, o.progressIntervalMs);
      this.timer.unref();
    }
  }

  open(sink: WatchSink): WatchStream {
    const s = new WatchStream(this, sink);
    this.streams.add(s);
    return s;
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    for (const s of [...this.streams]) s.close();
  }
}

export type { KeyValue };
