/**
 * The file operations storage needs, behind an interface: the real file system for the server,
 * and an in-memory one that models what a crash keeps (for crash-point tests and the simulator).
 */
import { writeSync } from 'node:fs';
import * as fsp from 'node:fs/promises';

/**
 * Writes up to this size go to the page cache synchronously (fs.writeSync on the event loop's
 * thread) rather than through libuv's thread pool: a WAL append of a few KiB is a memory copy
 * of microseconds, while a thread-pool write costs a hop to a worker and back, a turn of the
 * event loop and a promise — on every member, for every Ready (issue 11 item 8). Larger writes
 * (snapshot files) stay asynchronous, so the event loop never stalls on a big copy.
 */
export const SYNC_WRITE_BYTES_MAX = 256 << 10;

export interface FileLike {
  write(data: Uint8Array, position: number): Promise<void>;
  truncate(length: number): Promise<void>;
  /** Makes the file's data durable (fdatasync). */
  datasync(): Promise<void>;
  close(): Promise<void>;
}

export interface FileSystem {
  mkdirp(dir: string): Promise<void>;
  readdir(dir: string): Promise<string[]>;
  readFile(path: string): Promise<Uint8Array>;
  /** Opens for writing; `create` makes a new empty file (replacing any). */
  open(path: string, create: boolean): Promise<FileLike>;
  rename(from: string, to: string): Promise<void>;
  remove(path: string): Promise<void>;
  /** Makes the directory's entries (creations, renames, removals) durable. */
  syncDir(dir: string): Promise<void>;
}

/**
 * A file operation that failed with a system error (ENOSPC, EIO, ...), with what storage was
 * doing at the time: `WAL fsync failed: EIO: i/o error, fsync`. The storage layers wrap system
 * errors in it so the member's last words name the cause; anything else (a bug, a test's
 * simulated crash) passes through unwrapped.
 */
export class StorageIoError extends Error {
  override name = 'StorageIoError';
  /** The system error code, e.g. 'ENOSPC'. */
  readonly code: string;
  constructor(
    readonly operation: string,
    cause: Error & { code: string },
  ) {
    super(`${operation} failed: ${cause.message}`, { cause });
    this.code = cause.code;
  }
}

/** Runs `f`, wrapping a system error it throws in a StorageIoError naming `operation`. */
export async function ioStep<T>(operation: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof StorageIoError || !(e instanceof Error) || typeof (e as { code?: unknown }).code !== 'string') throw e;
    throw new StorageIoError(operation, e as Error & { code: string });
  }
}

export const realFs: FileSystem = {
  async mkdirp(dir) {
    await fsp.mkdir(dir, { recursive: true });
  },
  readdir: (dir) => fsp.readdir(dir),
  async readFile(path) {
    return new Uint8Array(await fsp.readFile(path));
  },
  async open(path, create) {
    const fh = await fsp.open(path, create ? 'w+' : 'r+');
    return {
      async write(data, position) {
        let done = 0;
        // A closed handle (fd -1) takes the thread-pool path, which fails with EBADF as before.
        if (data.length <= SYNC_WRITE_BYTES_MAX && fh.fd >= 0) {
          while (done < data.length) done += writeSync(fh.fd, data, done, data.length - done, position + done);
          return;
        }
        while (done < data.length) {
          const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
          done += bytesWritten;
        }
      },
      truncate: (n) => fh.truncate(n),
      datasync: () => fh.datasync(),
      close: () => fh.close(),
    };
  },
  rename: (a, b) => fsp.rename(a, b),
  remove: (p) => fsp.rm(p, { force: true }),
  async syncDir(dir) {
    const fh = await fsp.open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  },
};

/**
 * A file's content: a view of the start of a buffer that may be longer, so appends and syncs
 * reuse it instead of copying the whole file each time (a WAL segment grows by appends, each
 * followed by a sync). The bytes of the buffer past the view are zero (see `lengthen`).
 */
interface MemFile {
  /** Content as the process sees it. */
  data: Uint8Array;
  /** Content as the disk holds it (what survives a crash). */
  durable: Uint8Array;
  /** Writes since the last datasync, in order (to tear the last one on crash). */
  pending: { position: number; data: Uint8Array }[];
}

/** Bytes the buffer under view `a` holds from the view's start. */
function capacity(a: Uint8Array): number {
  return a.buffer.byteLength - a.byteOffset;
}

/**
 * `a` lengthened to `n` bytes, the new ones zero: in place when its buffer has room (the bytes
 * past a view are kept zero), else in a buffer of twice the size, so appending costs amortised
 * O(1) per byte.
 */
function lengthen(a: Uint8Array, n: number): Uint8Array {
  if (n <= capacity(a)) return new Uint8Array(a.buffer, a.byteOffset, n);
  const grown = new Uint8Array(Math.max(n, 2 * capacity(a)));
  grown.set(a);
  return grown.subarray(0, n);
}

/** `a` cut to its first `n` bytes; the bytes cut off are zeroed, as `lengthen` expects. */
function shorten(a: Uint8Array, n: number): Uint8Array {
  a.fill(0, n);
  return a.subarray(0, n);
}

/** A copy of `from` in the buffer under `into` when it has room (nothing else uses `into`). */
function copyInto(into: Uint8Array, from: Uint8Array): Uint8Array {
  const to = from.length <= capacity(into) ? new Uint8Array(into.buffer, into.byteOffset, from.length) : new Uint8Array(Math.max(from.length, 2 * capacity(into))).subarray(0, from.length);
  to.set(from);
  return to;
}

/**
 * An in-memory file system with crash semantics: `crash()` keeps only what was made durable
 * (file data by datasync, names by syncDir), optionally tearing the last unsynced write (a
 * prefix of it reaches the disk) — the model a crash-point test or the simulator needs.
 */
export class MemFs implements FileSystem {
  private files = new Map<string, MemFile>();
  /** Directory entries as seen, and as durable: path -> file identity. */
  private names = new Map<string, MemFile>();
  private durableNames = new Map<string, MemFile>();
  private dirs = new Set<string>();
  /** Counts operations, for crash points. */
  ops = 0;
  /** Called before every mutating operation with its number; throw to stop the "process" there. */
  beforeOp: (n: number, what: string) => void = () => {};
  /**
   * How long a datasync or directory sync takes: awaited before the data becomes durable, so a
   * crash meanwhile loses it (the simulator resolves it after a virtual delay).
   */
  syncDelay: (() => Promise<void>) | null = null;

  private tick(what: string): void {
    this.ops++;
    this.beforeOp(this.ops, what);
  }

  async mkdirp(dir: string): Promise<void> {
    this.dirs.add(dir);
  }

  async readdir(dir: string): Promise<string[]> {
    const prefix = dir.endsWith('/') ? dir : `${dir}/`;
    return [...this.names.keys()].filter((p) => p.startsWith(prefix) && !p.slice(prefix.length).includes('/')).map((p) => p.slice(prefix.length));
  }

  async readFile(path: string): Promise<Uint8Array> {
    const f = this.names.get(path);
    if (!f) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
    return f.data.slice();
  }

  async open(path: string, create: boolean): Promise<FileLike> {
    let f = this.names.get(path);
    if (create || !f) {
      this.tick(`create ${path}`);
      f = { data: new Uint8Array(0), durable: new Uint8Array(0), pending: [] };
      this.files.set(path, f);
      this.names.set(path, f);
    }
    const file = f;
    return {
      write: async (data, position) => {
        this.tick(`write ${path} @${position} +${data.length}`);
        const end = position + data.length;
        if (end > file.data.length) file.data = lengthen(file.data, end);
        file.data.set(data, position);
        file.pending.push({ position, data: data.slice() });
      },
      truncate: async (n) => {
        this.tick(`truncate ${path} ${n}`);
        file.data = n < file.data.length ? shorten(file.data, n) : lengthen(file.data, n);
        file.pending.push({ position: -1, data: new Uint8Array(0) });
      },
      datasync: async () => {
        this.tick(`datasync ${path}`);
        if (this.syncDelay) await this.syncDelay();
        file.durable = copyInto(file.durable, file.data);
        file.pending = [];
      },
      close: async () => {},
    };
  }

  async rename(from: string, to: string): Promise<void> {
    this.tick(`rename ${from} ${to}`);
    const f = this.names.get(from);
    if (!f) throw Object.assign(new Error(`ENOENT: ${from}`), { code: 'ENOENT' });
    this.names.delete(from);
    this.names.set(to, f);
  }

  async remove(path: string): Promise<void> {
    this.tick(`remove ${path}`);
    this.names.delete(path);
  }

  async syncDir(dir: string): Promise<void> {
    this.tick(`syncdir ${dir}`);
    if (this.syncDelay) await this.syncDelay();
    const prefix = dir.endsWith('/') ? dir : `${dir}/`;
    for (const p of [...this.durableNames.keys()]) if (p.startsWith(prefix)) this.durableNames.delete(p);
    for (const [p, f] of this.names) if (p.startsWith(prefix)) this.durableNames.set(p, f);
  }

  /**
   * The machine loses power: every file reverts to its durable content, unsynced names vanish
   * (and unsynced removals come back). With `tear`, a prefix of each file's first unsynced
   * write reaches the disk (a torn write).
   */
  crash(tear?: (len: number) => number): void {
    const names = new Map<string, MemFile>();
    for (const [p, f] of this.durableNames) {
      const next: MemFile = { data: f.durable.slice(), durable: f.durable.slice(), pending: [] };
      const first = f.pending.find((w) => w.position >= 0);
      if (tear && first && first.data.length > 0) {
        const keep = Math.max(0, Math.min(first.data.length, tear(first.data.length)));
        const end = first.position + keep;
        if (end > next.data.length) {
          const grown = new Uint8Array(end);
          grown.set(next.data);
          next.data = grown;
        }
        next.data.set(first.data.subarray(0, keep), first.position);
        next.durable = next.data.slice();
      }
      names.set(p, next);
    }
    this.names = names;
    this.durableNames = new Map(names);
    this.files = new Map(names);
  }

  /** Flips one bit of a file's durable and visible content (media corruption). */
  flipBit(path: string, byte: number, bit = 0): void {
    const f = this.names.get(path);
    if (!f) throw new Error(`no file ${path}`);
    f.data[byte]! ^= 1 << bit;
    if (byte < f.durable.length) f.durable[byte]! ^= 1 << bit;
  }

  list(): string[] {
    return [...this.names.keys()].sort();
  }

  size(path: string): number {
    return this.names.get(path)?.data.length ?? -1;
  }
}

