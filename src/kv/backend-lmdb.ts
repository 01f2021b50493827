/**
 * The backend of a real member: one LMDB file (`<data-dir>/member/db`, and LMDB's lock file
 * `db-lock` beside it). LMDB is a copy-on-write B+tree with one writer and many readers, the
 * design bbolt (etcd's backend) came from: a commit is one write transaction, made durable by
 * its fsync before `commit()` returns; a crash leaves the last committed transaction.
 * Space freed by deletions (compaction) is reused by later writes; `defragment()` also shrinks
 * the file.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { open, type RootDatabase } from 'lmdb';
import { BACKEND_BATCH_INTERVAL_MS, BACKEND_BATCH_OPS_MAX, binKey, OverlayBackend, type Backend, type BackendReadView, type Batch, type BackendBatchLimits } from './backend.js';

/** The LMDB map (address space reserved for the file); lmdb-js grows it when it fills. */
const LMDB_MAP_BYTES_INITIAL = 256 * 1024 * 1024;

type Db = RootDatabase<Buffer, Buffer>;

function openDb(path: string): Db {
  return open<Buffer, Buffer>({
    path,
    noSubdir: true,
    encoding: 'binary',
    keyEncoding: 'binary',
    compression: false,
    mapSize: LMDB_MAP_BYTES_INITIAL,
    // Every commit is a synchronous transaction (transactionSync), fsynced before it returns.
    overlappingSync: false,
  });
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
    writeBatch(this.db, batch);
    this.duringCopy?.push(batch);
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
      const copy = openDb(tmp);
      for (const b of this.duringCopy) writeBatch(copy, b);
      this.sizeBytes = null;
      renameSync(tmp, this.path);
      syncDir(dirname(this.path));
      const old = this.db;
      this.db = copy;
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
    this.dropPending();
    this.sizeBytes = null;
    renameSync(staged.path, this.path);
    syncDir(dirname(this.path));
    const old = this.db;
    this.db = staged.db;
    this.generation++;
    // The staging instance lets go of its database (now ours) without closing it.
    staged.dropPending();
    staged.stopTimer();
    staged.closed = true;
    staged.db = null as unknown as Db;
    this.retire(old);
  }

  /** Closes a database replaced by another, once no read view uses it. */
  private retire(old: Db): void {
    if (!this.views.has(old)) void old.close();
  }

  override async close(): Promise<void> {
    if (this.closed) return;
    await super.close();
    await this.db.close();
  }

  /** The process dies: pending writes are lost, the file is left as the last commit made it. */
  async abandon(): Promise<void> {
    this.dropPending();
    this.stopTimer();
    this.closed = true;
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

/** Makes a rename in `dir` durable. */
function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
