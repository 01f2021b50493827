/**
 * What a member keeps on disk, behind one interface: the hard state, the log and the latest
 * snapshot. `MemoryStorage` is for tests and embedding without durability; `DiskStorage` is the
 * real one (WAL + snapshot files). Both pass the same conformance suite (storage.test.ts).
 */
import { join } from 'node:path';
import type { InitialState } from '../raft/config.js';
import type { ConfState, Entry, HardState, Snapshot } from '../raft/types.js';
import { realFs, type FileSystem } from './fs.js';
import { SnapshotStore } from './snapshots.js';
import { Wal, WalCorruptionError } from './wal.js';

export interface Storage {
  /** The durable state to restart from (a fresh store: `bootstrap` at index 0). */
  load(): Promise<InitialState>;
  /**
   * Step 1 of the Ready contract: makes `snapshot` (if any), then `entries` (which may overwrite
   * a suffix) and `hardState` durable; with `sync` false the write may sit in the OS cache.
   */
  save(rd: { readonly hardState?: HardState; readonly entries: readonly Entry[]; readonly snapshot?: Snapshot }, sync: boolean): Promise<void>;
  /** A snapshot the state machine took: stored durably, and the log below it released. */
  saveSnapshot(s: Snapshot): Promise<void>;
  close(): Promise<void>;
}

/** The part of `entries` that continues a snapshot at (index, term); nothing if the log diverges from it. */
export function continuing(entries: readonly Entry[], index: number, term: number): Entry[] {
  const at = entries.findIndex((e) => e.index === index);
  if (at >= 0) return entries[at]!.term === term ? entries.slice(at + 1) : [];
  return entries.length > 0 && entries[0]!.index === index + 1 ? entries.slice() : [];
}

function emptySnapshot(conf: ConfState): Snapshot {
  return { meta: { index: 0, term: 0, confState: conf }, data: new Uint8Array(0) };
}

export class MemoryStorage implements Storage {
  private hardState: HardState = { term: 0, vote: 0, commit: 0 };
  private snapshot: Snapshot;
  private entries: Entry[] = [];

  constructor(bootstrap: ConfState) {
    this.snapshot = emptySnapshot(bootstrap);
  }

  async load(): Promise<InitialState> {
    return { hardState: this.hardState, snapshot: this.snapshot, entries: this.entries.slice(), applied: this.snapshot.meta.index };
  }

  async save(rd: { hardState?: HardState; entries: readonly Entry[]; snapshot?: Snapshot }): Promise<void> {
    if (rd.snapshot) this.installSnapshot(rd.snapshot);
    if (rd.entries.length > 0) {
      const first = rd.entries[0]!.index;
      const base = this.snapshot.meta.index + 1;
      if (first < base || first > base + this.entries.length) throw new RangeError(`append at ${first} outside [${base}, ${base + this.entries.length}]`);
      this.entries.length = first - base;
      this.entries.push(...rd.entries);
    }
    if (rd.hardState) this.hardState = rd.hardState;
  }

  async saveSnapshot(s: Snapshot): Promise<void> {
    if (s.meta.index > this.snapshot.meta.index) this.installSnapshot(s);
  }

  private installSnapshot(s: Snapshot): void {
    this.entries = continuing(this.entries, s.meta.index, s.meta.term);
    this.snapshot = s;
  }

  async close(): Promise<void> {}
}

/** Timings DiskStorage reports (metrics; the callbacks must not throw). */
export interface StorageObserver {
  /** One WAL fdatasync took this long, s. */
  walFsync?(seconds: number): void;
  /** Making a snapshot of the state machine durable (file written, synced, renamed) took this long, s. */
  snapshotSaved?(seconds: number): void;
}

export interface DiskStorageOptions {
  readonly fs?: FileSystem;
  readonly segmentBytes?: number;
  readonly snapshotsKept?: number;
  readonly observer?: StorageObserver;
}

/** WAL in `<dir>/wal`, snapshots in `<dir>/snap`. */
export class DiskStorage implements Storage {
  private constructor(
    private readonly wal: Wal,
    private readonly snaps: SnapshotStore,
    private readonly initial: InitialState,
    private readonly observer?: StorageObserver,
  ) {}

  static async open(dir: string, bootstrap: ConfState, opts: DiskStorageOptions = {}): Promise<DiskStorage> {
    const fs = opts.fs ?? realFs;
    const snaps = new SnapshotStore(join(dir, 'snap'), { fs, ...(opts.snapshotsKept ? { keep: opts.snapshotsKept } : {}) });
    const snapshot = (await snaps.loadNewest()) ?? emptySnapshot(bootstrap);
    const walFsync = opts.observer?.walFsync?.bind(opts.observer);
    const { wal, state } = await Wal.open(join(dir, 'wal'), { fs, ...(opts.segmentBytes ? { segmentBytes: opts.segmentBytes } : {}), ...(walFsync ? { onFsync: walFsync } : {}) });
    const walDir = join(dir, 'wal');
    if (state.snapshot.index > snapshot.meta.index) {
      await wal.close();
      throw new WalCorruptionError(walDir, -1, `the WAL refers to a snapshot at ${state.snapshot.index} but the newest snapshot file is at ${snapshot.meta.index}`);
    }
    // A snapshot file newer than the WAL's marker (a crash between the two writes) wins: the log
    // is kept only where it continues it.
    let entries = state.entries;
    if (snapshot.meta.index > state.snapshot.index) entries = continuing(entries, snapshot.meta.index, snapshot.meta.term);
    const last = entries.length ? entries[entries.length - 1]!.index : snapshot.meta.index;
    const hardState = { ...state.hardState, commit: Math.max(snapshot.meta.index, Math.min(state.hardState.commit, last)) };
    return new DiskStorage(wal, snaps, { hardState, snapshot, entries, applied: snapshot.meta.index }, opts.observer);
  }

  /** The state recovered when the storage was opened. */
  async load(): Promise<InitialState> {
    return this.initial;
  }

  async save(rd: { hardState?: HardState; entries: readonly Entry[]; snapshot?: Snapshot }, sync: boolean): Promise<void> {
    if (rd.snapshot) await this.saveSnapshot(rd.snapshot);
    await this.wal.append({ ...(rd.hardState ? { hardState: rd.hardState } : {}), entries: rd.entries }, sync || rd.snapshot !== undefined);
  }

  async saveSnapshot(s: Snapshot): Promise<void> {
    const t0 = performance.now();
    await this.snaps.save(s);
    this.observer?.snapshotSaved?.((performance.now() - t0) / 1000);
    await this.wal.markSnapshot(s.meta.index, s.meta.term);
  }

  async close(): Promise<void> {
    await this.wal.close();
  }
}
