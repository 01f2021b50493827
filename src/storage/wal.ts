/**
 * The write-ahead log: a directory of preallocated segment files of chained-checksum records
 * (format in codec.ts). One append is one write and, when asked, one fdatasync, however many
 * entries it carries (group commit).
 *
 * Segment files are named `<seq>-<firstIndex>.wal` (16 hex digits each). A new segment begins
 * with a header (its sequence number and the chain value it continues from), then the current
 * hard state and snapshot marker, so segments wholly below a snapshot can be deleted without
 * losing the state they recorded.
 *
 * Recovery replays every segment in order. Entries that overwrite a suffix replace it (the last
 * writer wins). A torn or zero-filled tail of the last segment is cut at the last valid record:
 * that is what a crash mid-write leaves. Anything else that does not validate is corruption:
 * opening fails with a WalCorruptionError naming the file and the offset, and nothing after it
 * is used.
 */
import { join } from 'node:path';
import { ioStep, realFs, type FileLike, type FileSystem } from './fs.js';
import type { Entry, HardState } from '../raft/types.js';
import { decodeSegment, encodeRecords, type WalRecord } from './codec.js';

export const SEGMENT_BYTES_DEFAULT = 64 << 20;

export interface WalOptions {
  /** Size each segment file is preallocated to; a segment is closed once it would grow past it. */
  readonly segmentBytes?: number;
  /** The file system (default: the real one). */
  readonly fs?: FileSystem;
  /** Told how long each fdatasync of an append took, in seconds (metrics; must not throw). */
  readonly onFsync?: (seconds: number) => void;
}

export interface WalState {
  hardState: HardState;
  /** The latest snapshot marker (index 0: none). */
  snapshot: { index: number; term: number };
  /** Entries after the snapshot, contiguous. */
  entries: Entry[];
}

export class WalCorruptionError extends Error {
  override name = 'WalCorruptionError';
  constructor(
    readonly file: string,
    readonly offset: number,
    why: string,
  ) {
    super(`WAL corrupt: ${file} at offset ${offset}: ${why}`);
  }
}

interface Segment {
  readonly seq: number;
  readonly firstIndex: number;
  readonly path: string;
}

const NAME = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;
const hex = (n: number): string => n.toString(16).padStart(16, '0');

export class Wal {
  private segments: Segment[] = [];
  private replayingFirst = false;
  private fh: FileLike | null = null;
  private readonly fs: FileSystem;
  private offset = 0;
  private crc = 0;
  private readonly state: WalState;
  private readonly segmentBytes: number;
  private readonly onFsync: ((seconds: number) => void) | undefined;

  private constructor(
    readonly dir: string,
    state: WalState,
    opts: WalOptions,
  ) {
    this.state = state;
    this.segmentBytes = opts.segmentBytes ?? SEGMENT_BYTES_DEFAULT;
    this.fs = opts.fs ?? realFs;
    this.onFsync = opts.onFsync;
    if (!Number.isInteger(this.segmentBytes) || this.segmentBytes < 4096) throw new RangeError(`segmentBytes must be an integer >= 4096, got ${this.segmentBytes}`);
  }

  /** Opens (or creates) the WAL in `dir` and recovers its state. */
  static async open(dir: string, opts: WalOptions = {}): Promise<{ wal: Wal; state: WalState }> {
    await (opts.fs ?? realFs).mkdirp(dir);
    const state: WalState = { hardState: { term: 0, vote: 0, commit: 0 }, snapshot: { index: 0, term: 0 }, entries: [] };
    const wal = new Wal(dir, state, opts);
    try {
      await ioStep(`WAL recovery in ${dir}`, () => wal.recover());
    } catch (e) {
      await wal.fh?.close();
      throw e;
    }
    return { wal, state: { hardState: state.hardState, snapshot: { ...state.snapshot }, entries: state.entries.slice() } };
  }

  private async recover(): Promise<void> {
    const names = (await this.fs.readdir(this.dir)).filter((n) => NAME.test(n)).sort();
    this.segments = names.map((n) => {
      const m = NAME.exec(n)!;
      return { seq: parseInt(m[1]!, 16), firstIndex: parseInt(m[2]!, 16), path: join(this.dir, n) };
    });
    let prevCrc: number | undefined;
    for (let i = 0; i < this.segments.length; i++) {
      const seg = this.segments[i]!;
      const last = i === this.segments.length - 1;
      const bytes = await this.fs.readFile(seg.path);
      const d = decodeSegment(bytes, 0);
      const name = seg.path;
      const head = d.records[0];
      if (!head || head.type !== 'segmentHeader') {
        if (last && d.records.length === 0 && d.end.kind !== 'corrupt') {
          // A segment created but never given its header (crash during rollover): drop it.
          await this.fs.remove(seg.path);
          this.segments.pop();
          this.crc = prevCrc ?? 0;
          break;
        }
        throw new WalCorruptionError(name, 0, 'segment does not start with a header');
      }
      if (head.seq !== seg.seq) throw new WalCorruptionError(name, 0, `header says segment ${head.seq}, file name says ${seg.seq}`);
      if (prevCrc !== undefined && head.prevCrc !== prevCrc) throw new WalCorruptionError(name, 0, 'checksum chain does not continue the previous segment');
      if (d.end.kind === 'corrupt') throw new WalCorruptionError(name, d.end.offset, d.end.why);
      if (d.end.kind === 'torn' && !last) throw new WalCorruptionError(name, d.end.offset, `${d.end.why} (not in the last segment)`);
      this.replayingFirst = i === 0;
      for (const r of d.records) this.replay(r, name);
      this.replayingFirst = false;
      prevCrc = d.crc;
      if (last) {
        this.crc = d.crc;
        this.offset = d.validEnd;
        this.fh = await this.fs.open(seg.path, false);
        if (d.end.kind === 'torn' || bytes.length !== this.segmentBytes) {
          // Cut the torn tail and restore the zero fill after the last valid record.
          await this.fh.truncate(d.validEnd);
          await this.fh.truncate(Math.max(this.segmentBytes, d.validEnd));
          await this.fh.datasync();
        }
      }
    }
    const s = this.state;
    if (s.entries.length > 0 && s.entries[0]!.index !== s.snapshot.index + 1) {
      throw new WalCorruptionError(this.segments[0]?.path ?? this.dir, -1, `entries start at ${s.entries[0]!.index} but the snapshot is at ${s.snapshot.index}`);
    }
    if (this.segments.length === 0) await this.startSegment(this.state.entries.length ? this.lastIndex() + 1 : this.state.snapshot.index + 1);
  }

  private lastIndex(): number {
    const n = this.state.entries.length;
    return n ? this.state.entries[n - 1]!.index : this.state.snapshot.index;
  }

  private replay(r: WalRecord, file: string): void {
    const s = this.state;
    switch (r.type) {
      case 'segmentHeader':
        return;
      case 'hardState':
        s.hardState = r.hardState;
        return;
      case 'snapshotMarker': {
        if (r.index <= s.snapshot.index) return; // markers repeat at segment starts; they never go back
        // Keep the entries after the snapshot only if the log continues it.
        const at = s.entries.findIndex((e) => e.index === r.index);
        if (at >= 0) s.entries = s.entries[at]!.term === r.term ? s.entries.slice(at + 1) : [];
        // Entries wholly above the marker stay (those between were in released segments; the
        // final check of recovery insists the log continues the last snapshot).
        else if (!(s.entries.length > 0 && s.entries[0]!.index > r.index)) s.entries = [];
        s.snapshot = { index: r.index, term: r.term };
        return;
      }
      case 'entries': {
        if (r.hardState) s.hardState = r.hardState;
        let ents = r.entries;
        if (ents.length === 0) return;
        ents = ents.filter((e) => e.index > s.snapshot.index);
        if (ents.length === 0) return;
        const first = ents[0]!.index;
        const base = s.entries.length > 0 ? s.entries[0]!.index : s.snapshot.index + 1;
        const end = base + s.entries.length;
        if (first > end) {
          // Only the oldest remaining segment may start past the log we know: the segments before
          // it were released under a snapshot whose marker comes later. Checked again at the end.
          if (!this.replayingFirst) throw new WalCorruptionError(file, -1, `entries start at ${first} but the log ends at ${end - 1}`);
          s.entries = [];
        } else if (first >= base) s.entries.length = first - base; // the last writer wins
        else s.entries = [];
        for (const e of ents) s.entries.push(e);
        return;
      }
    }
  }

  private startSegment(firstIndex: number): Promise<void> {
    return ioStep('WAL segment creation', () => this.newSegment(firstIndex));
  }

  private async newSegment(firstIndex: number): Promise<void> {
    const seq = this.segments.length ? this.segments[this.segments.length - 1]!.seq + 1 : 0;
    const path = join(this.dir, `${hex(seq)}-${hex(firstIndex)}.wal`);
    if (this.fh) {
      await this.fh.datasync();
      await this.fh.close();
    }
    const fh = await this.fs.open(path, true);
    await fh.truncate(this.segmentBytes);
    const prev = this.crc;
    const { bytes, crc } = encodeRecords(
      [
        { type: 'segmentHeader', seq, prevCrc: prev },
        { type: 'hardState', hardState: this.state.hardState },
        { type: 'snapshotMarker', index: this.state.snapshot.index, term: this.state.snapshot.term },
      ],
      0,
    );
    await fh.write(bytes, 0);
    await fh.datasync();
    await this.fs.syncDir(this.dir);
    this.fh = fh;
    this.offset = bytes.length;
    this.crc = crc;
    this.segments.push({ seq, firstIndex, path });
  }

  /**
   * Appends a hard state and/or entries (entries may overwrite a suffix from entries[0].index);
   * with `sync`, returns once they are durable (one fdatasync for the whole batch).
   */
  async append(batch: { hardState?: HardState; entries?: readonly Entry[] }, sync: boolean): Promise<void> {
    const records: WalRecord[] = [];
    if (batch.entries && batch.entries.length > 0) {
      records.push(batch.hardState ? { type: 'entries', entries: batch.entries, hardState: batch.hardState } : { type: 'entries', entries: batch.entries });
    } else if (batch.hardState) records.push({ type: 'hardState', hardState: batch.hardState });
    if (records.length === 0) return;
    // Write first: a new segment's opening state must not include what is not yet durable.
    await this.write(records, sync);
    for (const r of records) this.replay(r, '(append)');
  }

  /** Records that a snapshot at (index, term) is durable; deletes segments wholly below it. */
  async markSnapshot(index: number, term: number): Promise<void> {
    const r: WalRecord = { type: 'snapshotMarker', index, term };
    await this.write([r], true);
    this.replay(r, '(snapshot)');
    // A segment can go once the next one starts at or below index + 1 (all its entries are in the snapshot).
    await ioStep('WAL segment release', async () => {
      while (this.segments.length > 1 && this.segments[1]!.firstIndex <= index + 1) {
        const old = this.segments.shift()!;
        await this.fs.remove(old.path);
      }
      await this.fs.syncDir(this.dir);
    });
  }

  private async write(records: WalRecord[], sync: boolean): Promise<void> {
    let enc = encodeRecords(records, this.crc);
    if (this.offset + enc.bytes.length > this.segmentBytes && this.offset > 64) {
      const r0 = records[0]!;
      await this.startSegment(r0.type === 'entries' ? r0.entries[0]!.index : this.lastIndex() + 1);
      enc = encodeRecords(records, this.crc);
    }
    const fh = this.fh!;
    await ioStep('WAL write', () => fh.write(enc.bytes, this.offset));
    if (sync) {
      const t0 = performance.now();
      await ioStep('WAL fsync', () => fh.datasync());
      this.onFsync?.((performance.now() - t0) / 1000);
    }
    this.offset += enc.bytes.length;
    this.crc = enc.crc;
  }

  get segmentCount(): number {
    return this.segments.length;
  }

  async close(): Promise<void> {
    const fh = this.fh;
    if (fh) {
      this.fh = null;
      await ioStep('WAL close', async () => {
        try {
          await fh.datasync();
        } finally {
          await fh.close();
        }
      });
    }
  }
}
