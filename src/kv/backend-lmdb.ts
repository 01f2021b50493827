/**
 * The backend of a real member: one LMDB file (`<data-dir>/member/db`, and LMDB's lock file
 * `db-lock` beside it). LMDB is a copy-on-write B+tree with one writer and many readers, the
 * design bbolt (etcd's backend) came from: a commit is one write transaction, made durable by
 * its fsync before `commit()` returns; a crash leaves the last committed transaction.
 * Space freed by deletions (compaction) is reused by later writes; `defragment()` also shrinks
 * the file.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, statfsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { open, type RootDatabase } from 'lmdb';
import { assert } from '../lib/assert.js';
import { BACKEND_BATCH_INTERVAL_MS, BACKEND_BATCH_OPS_MAX, BackendIoError, binKey, OverlayBackend, type Backend, type BackendReadView, type Batch, type BackendBatchLimits } from './backend.js';

/** The LMDB map (address space reserved for the file); lmdb-js grows it when it fills. */
const LMDB_MAP_BYTES_INITIAL = 256 * 1024 * 1024;

type Db = RootDatabase<Buffer, Buffer>;

const LMDB_OPTIONS = {
  noSubdir: true,
  encoding: 'binary',
  keyEncoding: 'binary',
  compression: false,
  mapSize: LMDB_MAP_BYTES_INITIAL,
  // Every commit is a synchronous transaction (transactionSync), fsynced before it returns.
  overlappingSync: false,
} as const;

function openDb(path: string): Db {
  return open<Buffer, Buffer>({ path, ...LMDB_OPTIONS });
}

/**
 * How long a commit waits for the background commit under way before the backend gives up
 * (a storage failure: the member stops). A healthy disk takes milliseconds.
 */
export const BACKEND_COMMIT_WAIT_MS_MAX = 60_000;
/** Longest error text a failed background commit hands back (the rest is cut). */
const COMMIT_ERROR_BYTES_MAX = 1024;
/**
 * Free space on the database's file system below which a failed commit is put down to the
 * file system being full (ENOSPC). LMDB reports a write the file system cut short as EIO
 * (mdb.c: "short write, filesystem full?"), and a file system cuts a write short, or refuses
 * it, when it has (next to) nothing left: ext4 and btrfs keep some blocks for their own
 * metadata, so "full" is a little above 0. A real I/O error on a disk this full would be
 * misnamed, but the message keeps LMDB's own text beside the diagnosis.
 */
export const BACKEND_DISK_FULL_FREE_BYTES = 1024 * 1024;

/**
 * The thread that makes batch commits (by time and count) durable: one LMDB write transaction
 * and its fsync each, off the event loop (issue 11 item 8: a commit held the event loop for
 * about 9 ms every 100 ms). lmdb-js shares one LMDB environment among the threads of a process
 * that open the same file, so its commits are the main thread's, under LMDB's one write lock.
 * A batch arrives packed in one transferred buffer (packBatch); messages are handled one at a
 * time, in order. `done`: [last durable batch, failed, error text length, ready, LMDB's
 * error number (an errno such as ENOSPC, or one of LMDB's own, 0: none)] — the main
 * thread blocks on it (Atomics.wait) when it must commit at once itself; it hands the thread
 * batches only once the thread says it is ready (a thread still starting may need the main
 * thread, which must then not be blocked waiting for it).
 */
const COMMIT_THREAD = `
const { parentPort, workerData } = require('node:worker_threads');
const { open } = require(workerData.lmdb);
const done = new Int32Array(workerData.done);
const errText = new Uint8Array(workerData.errText);
let db = open({ path: workerData.path, ...workerData.options });
Atomics.store(done, 3, 1);
parentPort.postMessage({ ready: true });
let queue = Promise.resolve();
parentPort.on('message', (m) => { queue = queue.then(() => handle(m)); });
async function handle(m) {
  if (m.reopen !== undefined) { await db.close(); db = open({ path: m.reopen, ...workerData.options }); return; }
  if (m.close) { await db.close(); parentPort.close(); return; }
  try {
    const buf = Buffer.from(m.buf);
    const dv = new DataView(m.buf);
    db.transactionSync(() => {
      // As writeBatch: keys past the last one are appended (MDB_APPEND); the batch is in key order.
      let last;
      for (const k of db.getKeys({ reverse: true, limit: 1 })) last = Buffer.from(k);
      let o = 0;
      while (o < buf.length) {
        const kl = dv.getUint16(o); o += 2;
        const key = buf.subarray(o, o + kl); o += kl;
        const vl = dv.getInt32(o); o += 4;
        if (vl < 0) { void db.remove(key); continue; }
        const value = buf.subarray(o, o + vl); o += vl;
        if (last === undefined || Buffer.compare(key, last) > 0) {
          if (db.putSync(key, value, { append: true }) !== true) throw new Error('LMDB refused to append key ' + key.toString('hex') + ' after ' + (last ? last.toString('hex') : ''));
          last = key;
        } else void db.put(key, value);
      }
    });
    Atomics.store(done, 0, m.seq);
    Atomics.notify(done, 0);
    parentPort.postMessage({ seq: m.seq });
  } catch (e) {
    const text = Buffer.from(String((e && e.message) || e)).subarray(0, errText.length);
    const code = e && typeof e.code === 'number' ? e.code : 0;
    errText.set(text);
    Atomics.store(done, 2, text.length);
    Atomics.store(done, 4, code);
    Atomics.store(done, 1, 1);
    Atomics.notify(done, 0);
    parentPort.postMessage({ seq: m.seq, error: String((e && e.message) || e), code });
  }
}
`;

/** A batch as one buffer: per write, key length (u16), key, value length (i32, -1: a deletion), value. */
function packBatch(batch: Batch): ArrayBuffer {
  let bytes = 0;
  batch.ops.forEach((v, k) => {
    bytes += 6 + k.length + (v === null ? 0 : v.length);
  });
  const buf = Buffer.allocUnsafeSlow(bytes);
  let o = 0;
  batch.ops.forEach((v, k) => {
    o = buf.writeUInt16BE(k.length, o);
    o += buf.write(k, o, 'latin1');
    o = buf.writeInt32BE(v === null ? -1 : v.length, o);
    if (v !== null) {
      buf.set(v, o);
      o += v.length;
    }
  });
  assert(o === bytes, () => `packed ${o} bytes of a batch of ${bytes}`);
  return buf.buffer as ArrayBuffer;
}

interface Stats {
  pageSize: number;
  lastPageNumber: number;
  treeBranchPageCount: number;
  treeLeafPageCount: number;
  overflowPages: number;
}

export class LmdbBackend extends OverlayBackend {
  readonly durable = true;
  private db: Db;
  /** While a defragmenting copy runs: the batches committed since it started, to carry over. */
  private duringCopy: Batch[] | null = null;
  private defrags = 0;
  /** Read views open on each database (a database replaced by defragment or adopt is closed once its last view is). */
  private readonly views = new Map<Db, number>();
  /** Bumped by adopt: a defragmentation that started before must not put its copy back. */
  private generation = 0;
  /**
   * The database file's size as last read (null: read it again). Only our own commits,
   * defragmentation and adopt change the file, and each forgets it; the quota check asks for
   * the size on every put and txn, which would otherwise cost two system calls each (issue 11
   * item 8).
   */
  private sizeBytes: number | null = null;
  /** The commit thread (COMMIT_THREAD), started with the first background commit. */
  private worker: Worker | null = null;
  /** Shared with the commit thread: [last durable batch, failed, error text length, ready, error number]. */
  private readonly done = new Int32Array(new SharedArrayBuffer(20));
  private readonly errText = new Uint8Array(new SharedArrayBuffer(COMMIT_ERROR_BYTES_MAX));
  /** The last batch handed to the commit thread. */
  private sentSeq = 0;
  /** Told when the commit thread is ready (commitThreadReady). */
  private onReady: ((failed: Error | null) => void) | null = null;
  /** Batches the commit thread has made durable (tests, metrics). */
  committedInBackground = 0;

  private constructor(
    readonly path: string,
    db: Db,
    limits: BackendBatchLimits,
  ) {
    super(limits);
    this.db = db;
  }

  /** Opens (or creates) the database file at `path`; a copy left by a crashed defragmentation is removed. */
  static open(path: string, limits: Partial<BackendBatchLimits> = {}): LmdbBackend {
    mkdirSync(dirname(path), { recursive: true });
    const dir = dirname(path);
    for (const f of readdirSync(dir)) if (f.startsWith(`${basename(path)}.defrag-`)) rmSync(join(dir, f), { force: true });
    return new LmdbBackend(path, openDb(path), { batchIntervalMs: limits.batchIntervalMs ?? BACKEND_BATCH_INTERVAL_MS, batchOpsMax: limits.batchOpsMax ?? BACKEND_BATCH_OPS_MAX });
  }

  protected committedGet(key: Uint8Array): Uint8Array | undefined {
    return this.db.getBinary(Buffer.from(key.buffer, key.byteOffset, key.byteLength));
  }

  protected *committedScan(start: Uint8Array, end: Uint8Array | undefined): IterableIterator<[Uint8Array, Uint8Array]> {
    const range = this.db.getRange({ start: Buffer.from(start), ...(end ? { end: Buffer.from(end) } : {}) });
    for (const { key, value } of range) yield [key, value];
  }

  protected write(batch: Batch): void {
    this.sizeBytes = null;
    try {
      writeBatch(this.db, batch);
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      throw commitError(this.path, (e as Error).message ?? String(e), typeof code === 'number' ? code : 0);
    }
    this.duringCopy?.push(batch);
  }

  protected override writeInBackground(batch: Batch): boolean {
    const failed = this.failedWith;
    if (failed) throw failed;
    const w = (this.worker ??= this.startCommitThread());
    // Until the thread has opened the database, commits are made here (see COMMIT_THREAD).
    if (Atomics.load(this.done, 3) === 0) return false;
    const buf = packBatch(batch);
    this.sentSeq++;
    w.postMessage({ seq: this.sentSeq, buf }, [buf]);
    // Carried into a defragmentation's copy like any other commit made during it.
    this.duringCopy?.push(batch);
    return true;
  }

  protected override awaitBackground(): void {
    const deadline = performance.now() + BACKEND_COMMIT_WAIT_MS_MAX;
    for (;;) {
      const failed = this.failedWith;
      if (failed) throw failed;
      const seen = Atomics.load(this.done, 0);
      if (seen >= this.sentSeq) break;
      if (Atomics.load(this.done, 1) !== 0) {
        const text = Buffer.from(this.errText.subarray(0, Atomics.load(this.done, 2))).toString();
        throw this.fail(commitError(this.path, text, Atomics.load(this.done, 4)));
      }
      const left = deadline - performance.now();
      if (left <= 0) throw this.fail(new BackendIoError(this.path, `a commit did not complete within ${BACKEND_COMMIT_WAIT_MS_MAX} ms`));
      Atomics.wait(this.done, 0, seen, left);
    }
    this.settled(this.sentSeq);
  }

  /** Batch `seq` is durable: the main thread's reads move to the new commit, and the overlay lets go of it. */
  private settled(seq: number): void {
    if (seq !== this.sentSeq || !this.committingInBackground) return;
    this.sizeBytes = null;
    this.committedInBackground++;
    this.db.resetReadTxn();
    this.backgroundCommitted();
  }

  private startCommitThread(): Worker {
    const w = new Worker(COMMIT_THREAD, {
      eval: true,
      // The code is CommonJS whatever the process was started with (--input-type=module, ...).
      execArgv: [],
      workerData: { lmdb: createRequire(import.meta.url).resolve('lmdb'), path: this.path, options: LMDB_OPTIONS, done: this.done.buffer, errText: this.errText.buffer },
    });
    // The thread never keeps the process alive; close() ends it.
    w.unref();
    w.on('message', (m: { seq: number; error?: string; code?: number; ready?: true }) => {
      if (m.ready) this.onReady?.(null);
      // No caller waits for a background commit: its failure goes to onFailure's listeners.
      else if (m.error !== undefined) this.fail(commitError(this.path, m.error, m.code ?? 0));
      else this.settled(m.seq);
    });
    w.on('error', (e) => {
      this.onReady?.(this.fail(new BackendIoError(this.path, `its commit thread failed: ${e.message}`)));
    });
    return w;
  }

  /**
   * Starts the commit thread (else started by the first batch commit, which is then made on the
   * main thread, as every one until the thread is ready) and resolves once it takes batches.
   */
  commitThreadReady(): Promise<void> {
    if (this.failedWith) return Promise.reject(this.failedWith);
    this.worker ??= this.startCommitThread();
    if (Atomics.load(this.done, 3) !== 0) return Promise.resolve();
    const w = this.worker;
    // Held in while it starts: the caller is waiting for it.
    w.ref();
    return new Promise((resolve, reject) => {
      const before = this.onReady;
      this.onReady = (e) => {
        before?.(e);
        this.onReady = null;
        w.unref();
        if (e) reject(e);
        else resolve();
      };
    });
  }

  /** Ends the commit thread (after the commit under way, if any). */
  private async stopCommitThread(): Promise<void> {
    const w = this.worker;
    if (!w) return;
    this.worker = null;
    const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    // Held in while it closes: an unreferenced thread would let a process with nothing else
    // to do exit before close() resolves.
    w.ref();
    w.postMessage({ close: true });
    await exited;
  }

  dbSizeBytes(): number {
    return (this.sizeBytes ??= existsSync(this.path) ? statSync(this.path).size : 0);
  }

  dbSizeInUseBytes(): number {
    const s = this.db.getStats() as Stats;
    return (s.treeBranchPageCount + s.treeLeafPageCount + s.overflowPages + 2) * s.pageSize;
  }

  /**
   * An online compacting copy: LMDB copies the last committed state from a read transaction
   * (mdb_env_copy2 with MDB_CP_COMPACT, off the event loop) while reads and writes go on
   * against the open file; the batches committed meanwhile are written into the copy, which
   * then replaces the file (rename). Only that last step holds the event loop, for the batches
   * committed during the copy. A crash leaves either file whole (the copy is removed at open).
   */
  async defragment(): Promise<{ beforeBytes: number; afterBytes: number }> {
    if (this.duringCopy) throw new Error('a defragmentation is already running');
    this.commit();
    const beforeBytes = this.dbSizeBytes();
    // A fresh name each time: the copy's environment keeps its lock file by that name.
    const tmp = `${this.path}.defrag-${++this.defrags}-${process.pid}`;
    this.duringCopy = [];
    const generation = this.generation;
    try {
      await this.db.backup(tmp, true);
      if (this.closed) throw new Error('the storage backend was closed during defragmentation');
      if (this.generation !== generation) throw new Error('a snapshot was installed during defragmentation');
      // From here to the swap nothing else runs (no await): no commit can slip between.
      if (this.committingInBackground) this.awaitBackground();
      const copy = openDb(tmp);
      for (const b of this.duringCopy) writeBatch(copy, b);
      this.sizeBytes = null;
      renameSync(tmp, this.path);
      syncDir(dirname(this.path));
      const old = this.db;
      this.db = copy;
      // The commit thread goes on with the new file (messages are handled in order).
      this.worker?.postMessage({ reopen: this.path });
      this.retire(old);
    } catch (e) {
      rmSync(tmp, { force: true });
      rmSync(`${tmp}-lock`, { force: true });
      throw e;
    } finally {
      this.duringCopy = null;
    }
    return { beforeBytes, afterBytes: this.dbSizeBytes() };
  }

  /**
   * A read transaction on the current database. Defragmentation and adopt may replace the
   * database meanwhile: the view keeps reading the one it was opened on (closed after it).
   */
  readView(): BackendReadView {
    const db = this.db;
    const txn = db.useReadTransaction();
    this.views.set(db, (this.views.get(db) ?? 0) + 1);
    let open = true;
    const done = (): void => {
      if (!open) return;
      open = false;
      txn.done();
      const n = (this.views.get(db) ?? 1) - 1;
      if (n > 0) this.views.set(db, n);
      else {
        this.views.delete(db);
        if (db !== this.db) void db.close();
      }
    };
    return {
      *entries(after?: Uint8Array): IterableIterator<[Uint8Array, Uint8Array]> {
        if (!open) throw new Error('the read view is closed');
        const range = db.getRange({ transaction: txn, ...(after ? { start: Buffer.from(after), exclusiveStart: true } : {}) });
        for (const { key, value } of range) {
          if (!open) throw new Error('the read view is closed');
          yield [key, value];
        }
      },
      close: done,
    };
  }

  /**
   * Installs a staging backend (another LmdbBackend, in the same file system): its file is
   * renamed over this one's (atomic; the directory synced), and this backend goes on with the
   * staging database, whose pending writes are committed first and ours dropped.
   */
  adopt(staged: Backend): void {
    if (!(staged instanceof LmdbBackend)) throw new TypeError('an LMDB backend adopts only an LMDB backend');
    if (staged === this) throw new Error('a backend cannot adopt itself');
    staged.commit();
    // The batch under way lands in the file about to be replaced, before it is.
    if (this.committingInBackground) this.awaitBackground();
    this.dropPending();
    this.sizeBytes = null;
    renameSync(staged.path, this.path);
    syncDir(dirname(this.path));
    const old = this.db;
    this.db = staged.db;
    this.worker?.postMessage({ reopen: this.path });
    this.generation++;
    // The staging instance lets go of its database (now ours) without closing it.
    staged.dropPending();
    staged.stopTimer();
    void staged.stopCommitThread();
    staged.closed = true;
    staged.db = null as unknown as Db;
    this.retire(old);
  }

  /** Closes a database replaced by another, once no read view uses it. */
  private retire(old: Db): void {
    if (!this.views.has(old)) void old.close();
  }

  /** After a failed commit (or if this last one fails), closes without committing and throws the failure. */
  override async close(): Promise<void> {
    if (this.closed) return;
    try {
      await super.close();
    } catch (e) {
      await this.abandon();
      throw e;
    }
    await this.stopCommitThread();
    await this.db.close();
  }

  /**
   * The process dies: pending writes are lost, the file is left as the last commit made it (a
   * background commit under way is let finish: a crash during it leaves it or the one before).
   */
  async abandon(): Promise<void> {
    if (this.committingInBackground) {
      try {
        this.awaitBackground();
      } catch {
        // A crash does not care why the last commit failed.
      }
    }
    this.dropPending();
    this.stopTimer();
    this.closed = true;
    await this.stopCommitThread();
    await this.db.close();
  }
}

/**
 * Writes one batch in one transaction. Keys past the database's last key are appended
 * (MDB_APPEND): LMDB splits a full leaf page in the middle, so keys that always land at the
 * end — every new revision, since 'r' is the store's highest prefix — left the pages behind
 * them half full (two 1 KiB revisions per 4 KiB page instead of three: the file 1.5 × larger,
 * and as many more pages to write and fsync per commit). With MDB_APPEND the new key starts a
 * page of its own and the full one stays full. The batch is in key order, so once a key is
 * past the last one every later one is; `last` only ever stays at or above the true last key
 * (a deletion of the last key is not tracked), so a key is appended only when LMDB will take it.
 */
function writeBatch(db: Db, batch: Batch): void {
  db.transactionSync(() => {
    if (batch.cleared) {
      for (const key of db.getKeys({})) void db.remove(key);
    }
    let last: string | undefined;
    for (const k of db.getKeys({ reverse: true, limit: 1 })) last = binKey(k);
    batch.ops.forEach((v, k) => {
      const key = Buffer.from(k, 'latin1');
      if (v === null) {
        void db.remove(key);
        return;
      }
      const value = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      if (last === undefined || k > last) {
        // LMDB refuses an append that is not past the last key, silently: putSync returns
        // false (lmdb-js's typings say void; its write.js returns whether the write took).
        const appended = db.putSync(key, value, { append: true }) as unknown as boolean;
        if (appended !== true) throw new Error(`LMDB refused to append key ${key.toString('hex')} after ${Buffer.from(last ?? '', 'latin1').toString('hex')}`);
        last = k;
      } else void db.put(key, value);
    });
  });
}

/** errno names by number ('ENOSPC' for 28 on Linux), for LMDB's numeric error codes. */
const ERRNO_NAMES = new Map(Object.entries(osConstants.errno).map(([name, n]) => [n, name]));

/**
 * The error of a commit LMDB failed with `text` and error number `code` (0: none given),
 * naming the database file. When the file system holding it is (next to) full, says so:
 * ENOSPC, whatever LMDB called it (a short write is EIO to LMDB).
 */
function commitError(path: string, text: string, code: number): BackendIoError {
  let free: number | null = null;
  try {
    const s = statfsSync(dirname(path));
    free = s.bavail * s.bsize;
  } catch {
    // Nothing more to tell.
  }
  const name = ERRNO_NAMES.get(code);
  const said = name ? `${text} (${name})` : text;
  if (free === null) return new BackendIoError(path, said, name);
  const freeText = `${said}, ${free} bytes free on its file system`;
  if (name === 'ENOSPC' || free >= BACKEND_DISK_FULL_FREE_BYTES) return new BackendIoError(path, freeText, name);
  return new BackendIoError(path, `${freeText}: no space left on device (ENOSPC; LMDB reports a write the file system cut short as ${name ?? 'an error'})`, 'ENOSPC');
}

/** Makes a rename in `dir` durable. */
function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
