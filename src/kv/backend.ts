/**
 * The storage backend under the MVCC store: an ordered map of byte keys to byte values with
 * batched, atomic, durable commits — etcd's backend over bbolt, here over LMDB (backend-lmdb.ts)
 * or memory (MemoryBackend, for unit tests and the simulator).
 *
 * The contract, the same for every implementation (backend.test.ts runs one conformance suite
 * against each):
 * - Writes (put, del, clear) are visible to every read at once, in this process.
 * - They become durable only at `commit()`, all of them or none: after a crash the backend
 *   holds exactly what its last completed commit held. The MVCC store writes the applied Raft
 *   index in the same batch as the data it produced, so a restart finds both consistent.
 * - Reads never see half of a commit; a scan must not be interleaved with writes.
 *
 * Why a write overlay in JS rather than one long LMDB write transaction: LMDB's write
 * transactions are owned by one thread and lmdb-js exposes them only as callbacks; keeping the
 * batch in an ordered in-memory overlay lets the store write synchronously while it applies,
 * and makes a commit one `transactionSync` of the batch (one fsync per batch, like etcd's
 * batched bbolt commits). The batches by time and count are made in the background where the
 * backend can (LmdbBackend: on a thread of its own, as etcd's backend commits run beside its
 * Raft loop); their writes stay readable in the overlay until they are durable. An explicit
 * `commit()` is made at once, after the one under way.
 */
import { assert } from '../lib/assert.js';
import sortedBtree from 'sorted-btree';

/**
 * sorted-btree is CommonJS with `exports.default`: Node's ESM loader hands us the exports
 * object, bundlers (vitest) the class itself.
 */
type BTreeClass = typeof sortedBtree.default;
export const BTree: BTreeClass = (sortedBtree as unknown as { default?: BTreeClass }).default ?? (sortedBtree as unknown as BTreeClass);
export type BTree<K, V> = InstanceType<typeof sortedBtree.default<K, V>>;

/** etcd's default backend batch interval (--backend-batch-interval): commit at least this often. */
export const BACKEND_BATCH_INTERVAL_MS = 100;
/** etcd's default backend batch limit (--backend-batch-limit): commit once this many writes wait. */
export const BACKEND_BATCH_OPS_MAX = 10_000;
/**
 * Writes that may wait in memory while a background commit is under way, in batches
 * (BACKEND_BATCH_OPS_MAX each): past that, the next commit is made at once (it waits for the
 * one under way first), so a disk slower than the applies cannot grow the overlay without bound.
 */
export const BACKEND_PENDING_BATCHES_MAX = 2;

/** Longest key a backend takes (LMDB's default maximum key size); keys are never empty. */
export const BACKEND_KEY_BYTES_MAX = 511;

export interface Backend {
  /** True when committed data outlives this process (LMDB); false for a plain in-memory backend. */
  readonly durable: boolean;
  get(key: Uint8Array): Uint8Array | undefined;
  put(key: Uint8Array, value: Uint8Array): void;
  del(key: Uint8Array): void;
  /** Deletes every key (as part of the current batch). */
  clear(): void;
  /** The entries with start <= key < end (end undefined: to the last key), ascending. */
  scan(start: Uint8Array, end?: Uint8Array): IterableIterator<[Uint8Array, Uint8Array]>;
  /** Writes since the last commit. */
  readonly pendingOps: number;
  /** Makes every write so far durable, atomically (no-op without pending writes). */
  commit(): void;
  /** Commits when BACKEND_BATCH_OPS_MAX (or the backend's own limit) writes wait. */
  maybeCommit(): void;
  /** Bytes the store takes: the database file for LMDB, keys and values for memory. */
  dbSizeBytes(): number;
  /** Bytes in use inside that (dbSizeBytes minus free pages, roughly). */
  dbSizeInUseBytes(): number;
  /**
   * Key and value bytes written since the last durable commit (pending, or in a background
   * commit under way): what dbSizeBytes does not show yet. The quota weighs the two together,
   * so how many writes fit does not depend on when batch commits happen to run.
   */
  readonly unsyncedBytes: number;
  /**
   * Rewrites the store compactly while reads and writes go on; resolves with the sizes before
   * and after. Commits made meanwhile are carried over into the new copy.
   */
  defragment(): Promise<{ beforeBytes: number; afterBytes: number }>;
  /**
   * A consistent view of the committed data as it is now (LMDB: a read transaction; memory:
   * the committed tree, which commits replace rather than change). Writes committed later are
   * not seen. What a snapshot stream sends (src/server/snapshot-stream.ts). Close it when done:
   * an open LMDB read transaction keeps the pages it sees from being reused.
   */
  readView(): BackendReadView;
  /**
   * Replaces everything this backend holds, committed and pending, by what `staged` has
   * committed, atomically (a crash leaves the one or the other, whole): a snapshot received
   * into a staging backend of the same kind is installed this way. `staged` is consumed.
   */
  adopt(staged: Backend): void;
  /**
   * `fn` is called once, with the error, when a commit fails — also one made in the
   * background or by time, which no caller would hear of (it is called at once if one already
   * failed). From then on every write and commit throws that error: the backend's owner must
   * stop (a member exits: src/node RaftNode.fail). A failed commit is not retried: what it
   * wrote may not be durable, and continuing would acknowledge what the disk does not hold.
   */
  onFailure(fn: (e: Error) => void): void;
  /** Makes the pending writes durable and closes; after a failure, closes and throws it. */
  close(): Promise<void>;
}

/**
 * A commit the backend's storage refused (its file system full, an I/O error): names the
 * database and, when known, the system error code. Fatal to the member (see onFailure).
 */
export class BackendIoError extends Error {
  override name = 'BackendIoError';
  constructor(
    /** The database file. */
    readonly path: string,
    /** What went wrong, as the backend can tell (the storage engine's text, the diagnosis). */
    detail: string,
    /** The system error code ('ENOSPC', 'EIO'), when known. */
    readonly code?: string,
  ) {
    super(`backend commit to ${path} failed: ${detail}`);
  }
}

/** A consistent read of a backend's committed data (Backend.readView). */
export interface BackendReadView {
  /** The entries with key > `after` (every entry without it), ascending. */
  entries(after?: Uint8Array): IterableIterator<[Uint8Array, Uint8Array]>;
  close(): void;
}

export interface BackendBatchLimits {
  /** Commit at least this often (ms); 0 = only by count or when asked. */
  readonly batchIntervalMs: number;
  /** Commit once this many writes wait. */
  readonly batchOpsMax: number;
}

/** The byte string as a binary string (one char per byte), whose order is the bytes' order. */
export function binKey(b: Uint8Array): string {
  // latin1 maps each byte to the code unit of the same value, natively.
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
}

export function unbinKey(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
}

/** One batch of writes: key -> value, or null for a deletion; `cleared` when it starts with a clear. */
export interface Batch {
  readonly cleared: boolean;
  readonly ops: BTree<string, Uint8Array | null>;
}

/**
 * The write overlay every backend shares: pending writes in an ordered map in front of the
 * committed store; reads merge the two. Subclasses supply the committed store.
 */
export abstract class OverlayBackend implements Backend {
  abstract readonly durable: boolean;
  private pending: BTree<string, Uint8Array | null> = new BTree();
  private cleared = false;
  private opsSinceCommit = 0;
  /** Key and value bytes put or deleted since the last commit started (see unsyncedBytes). */
  private pendingBytes = 0;
  /** The same for the background commit under way. */
  private inFlightBytes = 0;
  /**
   * A batch commit under way in the background (LmdbBackend): its writes. They stay in
   * `pending` (readable, shadowing the committed data) until the commit is durable; then each
   * one that was not written again meanwhile is dropped from it (backgroundCommitted).
   */
  private inFlight: BTree<string, Uint8Array | null> | null = null;
  /** The time or count for another batch came while one was under way: it starts when that one is done. */
  private batchDue = false;
  private timer: NodeJS.Timeout | null = null;
  protected closed = false;
  /** The first failed commit: every later write and commit throws it (see onFailure). */
  private failure: Error | null = null;
  private readonly failureListeners: ((e: Error) => void)[] = [];

  protected constructor(protected readonly limits: BackendBatchLimits) {
    if (limits.batchIntervalMs > 0) {
      this.timer = setInterval(() => {
        // No caller to throw to: a failure is reported to onFailure's listeners instead.
        if (this.opsSinceCommit > 0 && !this.closed && !this.failure) this.reporting(() => this.commitBatch());
      }, limits.batchIntervalMs);
      this.timer.unref();
    }
  }

  protected abstract committedGet(key: Uint8Array): Uint8Array | undefined;
  protected abstract committedScan(start: Uint8Array, end: Uint8Array | undefined): IterableIterator<[Uint8Array, Uint8Array]>;
  protected abstract write(batch: Batch): void;
  abstract dbSizeBytes(): number;
  abstract dbSizeInUseBytes(): number;
  abstract defragment(): Promise<{ beforeBytes: number; afterBytes: number }>;
  abstract readView(): BackendReadView;
  abstract adopt(staged: Backend): void;

  get pendingOps(): number {
    return this.opsSinceCommit;
  }

  get unsyncedBytes(): number {
    return this.pendingBytes + this.inFlightBytes;
  }

  get(key: Uint8Array): Uint8Array | undefined {
    const p = this.pending.get(binKey(key));
    if (p !== undefined) return p ?? undefined;
    if (this.cleared) return undefined;
    return this.committedGet(key);
  }

  put(key: Uint8Array, value: Uint8Array): void {
    this.checkOpen();
    checkKey(key);
    this.pending.set(binKey(key), value);
    this.pendingBytes += key.length + value.length;
    this.opsSinceCommit++;
  }

  del(key: Uint8Array): void {
    this.checkOpen();
    checkKey(key);
    this.pending.set(binKey(key), null);
    this.pendingBytes += key.length;
    this.opsSinceCommit++;
  }

  clear(): void {
    this.checkOpen();
    this.pending = new BTree();
    this.cleared = true;
    this.opsSinceCommit++;
  }

  scan(start: Uint8Array, end?: Uint8Array): IterableIterator<[Uint8Array, Uint8Array]> {
    const endS = end === undefined ? undefined : binKey(end);
    const startS = binKey(start);
    if (endS !== undefined && endS <= startS) return [][Symbol.iterator]();
    // Nothing pending in the range (a scan at open, most scans): the committed data as it is,
    // without a generator in between (a count over a million keys is that many steps).
    const firstPending = this.pending.getPairOrNextHigher(startS);
    if (!this.cleared && (firstPending === undefined || (endS !== undefined && firstPending[0] >= endS))) return this.committedScan(start, end);
    return this.mergedScan(start, end, startS, endS);
  }

  /** scan() with writes pending in the range: the overlay merged with the committed data. */
  private *mergedScan(start: Uint8Array, end: Uint8Array | undefined, startS: string, endS: string | undefined): IterableIterator<[Uint8Array, Uint8Array]> {
    const over = this.pending.entries(startS);
    let o = over.next();
    const inRange = (k: string): boolean => endS === undefined || k < endS;
    if (this.cleared) {
      for (; !o.done && inRange(o.value[0]); o = over.next()) if (o.value[1] !== null) yield [unbinKey(o.value[0]), o.value[1]];
      return;
    }
    const base = this.committedScan(start, end);
    let c = base.next();
    let cs = c.done ? '' : binKey(c.value[0]);
    while (!c.done || (!o.done && inRange(o.value[0]))) {
      const oLive = !o.done && inRange(o.value[0]);
      if (!c.done && (!oLive || cs < o.value![0])) {
        yield c.value;
        c = base.next();
        cs = c.done ? '' : binKey(c.value[0]);
        continue;
      }
      // The overlay's entry comes first or shadows the committed one.
      const [k, v] = o.value!;
      if (!c.done && cs === k) {
        c = base.next();
        cs = c.done ? '' : binKey(c.value[0]);
      }
      if (v !== null) yield [unbinKey(k), v];
      o = over.next();
    }
  }

  commit(): void {
    this.checkOpen();
    // Batches are durable in order: a commit made now waits for the one under way (and makes
    // the batch that was due after it itself).
    this.batchDue = false;
    if (this.inFlight) this.awaitBackground();
    assert(this.inFlight === null, 'a background commit is still under way after waiting for it');
    if (this.opsSinceCommit === 0) return;
    const batch: Batch = { cleared: this.cleared, ops: this.pending };
    // The overlay is dropped only once the batch is durable: a failed write leaves it readable
    // (and the member stops: a storage failure is fatal, see onFailure).
    try {
      this.write(batch);
    } catch (e) {
      throw this.fail(e);
    }
    this.pending = new BTree();
    this.cleared = false;
    this.opsSinceCommit = 0;
    this.pendingBytes = 0;
    this.inFlightBytes = 0;
  }

  maybeCommit(): void {
    if (this.opsSinceCommit >= this.limits.batchOpsMax) this.commitBatch();
  }

  /**
   * A commit by time or count (etcd's batched backend commits): in the background where the
   * backend can (LmdbBackend: the write transaction and its fsync on a thread of its own, so
   * the event loop does not stall for them), else at once. One at a time; while one is under
   * way the writes wait in `pending` for the next — at most BACKEND_PENDING_BATCHES_MAX
   * batches' worth: past that the commit is made at once, waiting for the one under way.
   */
  protected commitBatch(): void {
    this.checkOpen();
    if (this.opsSinceCommit === 0) return;
    if (this.inFlight) {
      if (this.opsSinceCommit < BACKEND_PENDING_BATCHES_MAX * this.limits.batchOpsMax) {
        this.batchDue = true;
        return;
      }
      return this.commit();
    }
    // A batch that starts with a clear (a snapshot installed) is rare: it is committed at once.
    if (this.cleared) return this.commit();
    const ops = this.pending.clone();
    if (!this.writeInBackground({ cleared: false, ops })) return this.commit();
    this.inFlight = ops;
    this.opsSinceCommit = 0;
    this.inFlightBytes = this.pendingBytes;
    this.pendingBytes = 0;
  }

  /**
   * Starts making `batch` durable in the background; false when this backend cannot (the
   * commit is then made at once). Once it is durable and visible to reads of the committed
   * data, the subclass calls backgroundCommitted().
   */
  protected writeInBackground(_batch: Batch): boolean {
    return false;
  }

  /** Blocks until the background commit under way is durable and backgroundCommitted() has run; throws if it failed. */
  protected awaitBackground(): void {
    throw new Error('this backend has no background commits to wait for');
  }

  /** The background commit under way is durable, and reads of the committed data see it. */
  protected backgroundCommitted(): void {
    const ops = this.inFlight;
    if (!ops) return;
    this.inFlight = null;
    this.inFlightBytes = 0;
    const pending = this.pending;
    // What was written again since (another value, or the same key deleted) stays pending.
    ops.forEach((v, k) => {
      if (pending.get(k) === v) pending.delete(k);
    });
    if (this.batchDue) {
      this.batchDue = false;
      // Called when the backend learns of the completion (an event, not a caller's call).
      if (!this.closed && !this.failure) this.reporting(() => this.commitBatch());
    }
  }

  onFailure(fn: (e: Error) => void): void {
    this.failureListeners.push(fn);
    if (this.failure) fn(this.failure);
  }

  /**
   * Records a failed commit (the first one is kept) and tells the listeners once; returns the
   * error to throw. Subclasses call it when a commit fails where no caller waits for it.
   */
  protected fail(e: unknown): Error {
    if (this.failure) return this.failure;
    const err = (this.failure = e instanceof Error ? e : new Error(String(e)));
    for (const l of this.failureListeners) l(err);
    return err;
  }

  /** Runs `f`, where no caller would hear of its error: a failure goes to fail() instead of being thrown. */
  private reporting(f: () => void): void {
    try {
      f();
    } catch (e) {
      this.fail(e);
    }
  }

  /** True while a background commit is under way. */
  protected get committingInBackground(): boolean {
    return this.inFlight !== null;
  }

  /** Forgets the writes since the last commit (what a crash does). */
  protected dropPending(): void {
    this.inFlight = null;
    this.batchDue = false;
    this.pending = new BTree();
    this.cleared = false;
    this.opsSinceCommit = 0;
    this.pendingBytes = 0;
    this.inFlightBytes = 0;
  }

  protected stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.commit();
    this.stopTimer();
    this.closed = true;
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('the storage backend is closed');
    // A commit that failed fails every write after it (the member stops).
    if (this.failure) throw this.failure;
  }

  /** The first failed commit, once one failed. */
  protected get failedWith(): Error | null {
    return this.failure;
  }
}

function checkKey(key: Uint8Array): void {
  if (key.length === 0 || key.length > BACKEND_KEY_BYTES_MAX) throw new RangeError(`a backend key is 1 to ${BACKEND_KEY_BYTES_MAX} bytes, got ${key.length}`);
}

/** Sizes of a memory backend's committed data, for dbSizeBytes. */
function entryBytes(k: string, v: Uint8Array): number {
  return k.length + v.length;
}

/**
 * The backend in memory, with the crash semantics of the real one: `crash()` forgets every
 * write since the last commit, and `reopen()` hands the committed data to a fresh instance (a
 * member restarting on the same disk). `durable` says whether the store should treat its
 * commits as surviving a restart (the simulator and crash tests reopen it; a plain in-memory
 * member does not).
 */
export class MemoryBackend extends OverlayBackend {
  readonly durable: boolean;
  private committed: BTree<string, Uint8Array>;
  private bytes = 0;
  /** Commits completed (tests and the simulator count them). */
  commits = 0;

  constructor(opts: { durable?: boolean; batchOpsMax?: number; committed?: BTree<string, Uint8Array> } = {}) {
    super({ batchIntervalMs: 0, batchOpsMax: opts.batchOpsMax ?? BACKEND_BATCH_OPS_MAX });
    this.durable = opts.durable ?? false;
    this.committed = opts.committed ?? new BTree();
    this.committed.forEach((v, k) => (this.bytes += entryBytes(k, v)));
  }

  protected committedGet(key: Uint8Array): Uint8Array | undefined {
    return this.committed.get(binKey(key));
  }

  protected *committedScan(start: Uint8Array, end: Uint8Array | undefined): IterableIterator<[Uint8Array, Uint8Array]> {
    const endS = end === undefined ? undefined : binKey(end);
    for (const [k, v] of this.committed.entries(binKey(start))) {
      if (endS !== undefined && k >= endS) return;
      yield [unbinKey(k), v];
    }
  }

  protected write(batch: Batch): void {
    // Copy-on-write: a scan of the old tree in progress is not disturbed (as an LMDB reader).
    const next = batch.cleared ? new BTree<string, Uint8Array>() : this.committed.clone();
    let bytes = batch.cleared ? 0 : this.bytes;
    batch.ops.forEach((v, k) => {
      const old = next.get(k);
      if (old !== undefined) bytes -= entryBytes(k, old);
      if (v === null) next.delete(k);
      else {
        next.set(k, v);
        bytes += entryBytes(k, v);
      }
    });
    this.committed = next;
    this.bytes = bytes;
    this.commits++;
  }

  dbSizeBytes(): number {
    return this.bytes;
  }

  dbSizeInUseBytes(): number {
    return this.bytes;
  }

  async defragment(): Promise<{ beforeBytes: number; afterBytes: number }> {
    return { beforeBytes: this.bytes, afterBytes: this.bytes };
  }

  readView(): BackendReadView {
    const tree = this.committed;
    let closed = false;
    return {
      *entries(after?: Uint8Array): IterableIterator<[Uint8Array, Uint8Array]> {
        const afterS = after === undefined ? undefined : binKey(after);
        for (const [k, v] of tree.entries(afterS)) {
          if (closed) throw new Error('the read view is closed');
          if (k === afterS) continue;
          yield [unbinKey(k), v];
        }
      },
      close: () => {
        closed = true;
      },
    };
  }

  adopt(staged: Backend): void {
    if (!(staged instanceof MemoryBackend)) throw new TypeError('a memory backend adopts only a memory backend');
    staged.commit();
    this.dropPending();
    this.committed = staged.committed;
    this.bytes = staged.bytes;
    this.commits++;
    staged.dropPending();
    staged.stopTimer();
    staged.closed = true;
  }

  /** A crash: every write since the last commit is lost. The instance stays usable. */
  crash(): void {
    this.dropPending();
  }

  /** The committed data in a new instance, as a restarted member finds it (this one is closed without committing). */
  reopen(opts: { batchOpsMax?: number } = {}): MemoryBackend {
    this.dropPending();
    this.stopTimer();
    this.closed = true;
    return new MemoryBackend({ durable: this.durable, committed: this.committed, ...opts });
  }
}
