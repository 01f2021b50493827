/**
 * ChainStorage: a chain node's durable state on the WAL and snapshot files of src/storage.
 *
 * - An update is a WAL entry: index = seq, term = assignEpoch, data = the encoded operation
 *   (src/chain/codec.ts). Every append also writes the hard state with `commit` = the last seq of
 *   the history (the WAL's `commit` field is this store's "the valid history ends here"): a
 *   snapshot that replaces a history (a joiner whose history diverged) writes `commit` = the
 *   snapshot's seq, so entries beyond it that were written before are void at recovery.
 * - A snapshot (the node's committed state sent by its predecessor) is a snapshot file: meta
 *   index = seq, term = assignEpoch, data = the entries; then the hard state; then the WAL marker
 *   (which lets the WAL drop segments below it).
 * - The registration epochs (caughtUpEpoch, syncedEpoch: what the node reports to the master,
 *   src/chain/master.ts holdsCommitted) are the hard state's `term` and `vote` (0 = null; epochs
 *   are revisions, at least 1), written with every hard state and by saveEpochs: a restarted
 *   joiner that caught up but has not synced as a member must not register as holding
 *   everything committed (the master could leave it as the only survivor).
 *
 * Persist effects are written in order, consecutive ones batched into one append (one
 * fdatasync); each resolves once durable, and `onDurable(token)` reports the last token of each
 * write to the node (ChainNode.persisted).
 *
 * Compaction: the WAL would otherwise grow forever. Once the updates written since the last
 * snapshot exceed CHAIN_COMPACT_LOG_BYTES_MIN and the size of that snapshot (so rewriting the
 * state costs in proportion to what was written), `compactionDue` is true and the driver queues
 * `compact(node.committedImage())`: a snapshot of the committed state (which no later snapshot can
 * replace with less), then the WAL marker, which releases the segments below it. Unlike a
 * persistSnapshot it leaves the end of the valid history where it is: the updates after it stay.
 */
import { join } from 'node:path';
import { ByteReader, ByteWriter } from '../lib/bytes.js';
import { ChainCodecError, entryParts, readEntries, readOp, writeOp } from '../chain/codec.js';
import { imageProblem, type ChainEffect } from '../chain/node.js';
import type { Entry as ChainEntry, SnapshotImage, Update } from '../chain/types.js';
import type { Entry } from '../raft/types.js';
import type { FileSystem } from '../storage/fs.js';
import { SnapshotStore } from '../storage/snapshots.js';
import { Wal } from '../storage/wal.js';

export class ChainStorageCorruptionError extends Error {
  override name = 'ChainStorageCorruptionError';
}

type PersistEffect = Extract<ChainEffect, { type: 'persist' | 'persistSnapshot' }>;
/** What the node last reported to the master (null: never caught up / never synced after it). */
export interface RegistrationEpochs {
  readonly caughtUpEpoch: number | null;
  readonly syncedEpoch: number | null;
}

type Queued =
  | PersistEffect
  | { readonly type: 'compact'; readonly image: SnapshotImage }
  | { readonly type: 'epochs'; readonly epochs: RegistrationEpochs; readonly resolve: () => void; readonly reject: (e: Error) => void };

/**
 * Update bytes written as one WAL record at most (a batch beyond it goes in several records, one
 * fdatasync for all); a single larger update is a record alone (RECORD_BYTES_MAX allows 65 MiB).
 */
export const CHAIN_WAL_RECORD_BYTES = 16 * 1024 * 1024;
/** Bytes of updates the WAL takes after the last snapshot before a compaction is due (at least). */
export const CHAIN_COMPACT_LOG_BYTES_MIN = 64 * 1024 * 1024;

export interface DurableChainState {
  readonly snapshot: SnapshotImage | null;
  readonly updates: readonly Update[];
  readonly epochs: RegistrationEpochs;
}

/** The registration epochs from a hard state's term and vote, or why they are not valid. */
export function epochsFromHardState(term: number, vote: number): RegistrationEpochs | string {
  if (!Number.isSafeInteger(term) || term < 0 || !Number.isSafeInteger(vote) || vote < 0) return `registration epochs ${term}, ${vote} are not epochs`;
  // syncedEpoch is recorded only after caughtUpEpoch (node-process.ts).
  if (term === 0 && vote !== 0) return `a synced epoch (${vote}) without a caught-up epoch`;
  return { caughtUpEpoch: term === 0 ? null : term, syncedEpoch: vote === 0 ? null : vote };
}

export class ChainStorage {
  private queue: Queued[] = [];
  private writing: Promise<void> | null = null;
  private failed: Error | null = null;
  /** Update bytes written since the last snapshot, and how many make a compaction due. */
  private logBytes = 0;
  private compactAt: number;
  private compacting = false;
  /** Compactions written (for tests and logs). */
  compactions = 0;
  /** The end of the valid history (the hard state's `commit`) and the epochs written with it. */
  private end: number;
  private epochs: RegistrationEpochs;

  private constructor(
    private readonly wal: Wal,
    private readonly snapshots: SnapshotStore,
    private readonly onDurable: (token: number) => void,
    private readonly compactMin: number,
    snapshotBytes: number,
    end: number,
    epochs: RegistrationEpochs,
  ) {
    this.compactAt = Math.max(compactMin, snapshotBytes);
    this.end = end;
    this.epochs = epochs;
  }

  private hardState(): { term: number; vote: number; commit: number } {
    return { term: this.epochs.caughtUpEpoch ?? 0, vote: this.epochs.syncedEpoch ?? 0, commit: this.end };
  }

  static async open(
    dir: string,
    onDurable: (token: number) => void,
    opts: { fs?: FileSystem; segmentBytes?: number; compactLogBytesMin?: number } = {},
  ): Promise<{ storage: ChainStorage; state: DurableChainState }> {
    const snapshots = new SnapshotStore(join(dir, 'snap'), opts.fs ? { fs: opts.fs } : {});
    const snap = await snapshots.loadNewest();
    const { wal, state } = await Wal.open(join(dir, 'wal'), { ...(opts.fs ? { fs: opts.fs } : {}), ...(opts.segmentBytes !== undefined ? { segmentBytes: opts.segmentBytes } : {}) });
    try {
      let image: SnapshotImage | null = null;
      if (snap) {
        image = { seq: snap.meta.index, assignEpoch: snap.meta.term, entries: decodeEntries(snap.data, snap.meta.index) };
        const p = imageProblem(image);
        if (p !== null) throw new ChainStorageCorruptionError(`chain snapshot at ${image.seq}: ${p}`);
      }
      const validEnd = state.hardState.commit;
      const epochs = epochsFromHardState(state.hardState.term, state.hardState.vote);
      if (typeof epochs === 'string') throw new ChainStorageCorruptionError(`the WAL's hard state: ${epochs}`);
      let entries = state.entries.filter((e) => e.index <= validEnd);
      if (image) {
        const marked = state.snapshot.index === image.seq && state.snapshot.term === image.assignEpoch;
        const at = entries.find((e) => e.index === image!.seq);
        // The WAL extends the snapshot only if it holds the snapshot's own point (or the marker
        // says the snapshot was completed); otherwise its entries belong to a replaced history.
        entries = marked || (at !== undefined && at.term === image.assignEpoch) ? entries.filter((e) => e.index > image!.seq) : [];
      } else if (state.snapshot.index !== 0) {
        throw new ChainStorageCorruptionError(`the WAL has a snapshot marker at ${state.snapshot.index} but there is no snapshot file`);
      }
      const updates: Update[] = [];
      let next = (image?.seq ?? 0) + 1;
      for (const e of entries) {
        if (e.index !== next) throw new ChainStorageCorruptionError(`update ${e.index} after ${next - 1}`);
        let op;
        try {
          op = readOp(new ByteReader(e.data, (m) => new ChainCodecError(m)));
        } catch (err) {
          throw new ChainStorageCorruptionError(`update ${e.index}: ${(err as Error).message}`);
        }
        if (op.type === 'get') throw new ChainStorageCorruptionError(`update ${e.index} is a read`);
        updates.push({ seq: e.index, assignEpoch: e.term, op });
        next++;
      }
      const storage = new ChainStorage(wal, snapshots, onDurable, opts.compactLogBytesMin ?? CHAIN_COMPACT_LOG_BYTES_MIN, snap?.data.length ?? 0, validEnd, epochs);
      for (const e of entries) storage.logBytes += e.data.length;
      return { storage, state: { snapshot: image, updates, epochs } };
    } catch (e) {
      await wal.close();
      throw e;
    }
  }

  /** Queues a persist effect; it is written after everything queued before. */
  persist(e: PersistEffect): void {
    if (this.failed) return;
    this.queue.push(e);
    if (this.writing === null) this.writing = this.drain();
  }

  /** Whether the WAL grew enough since the last snapshot for a compaction (and none is queued). */
  get compactionDue(): boolean {
    return this.failed === null && !this.compacting && this.logBytes >= this.compactAt;
  }

  /**
   * Queues a snapshot of the committed state `image` (ChainNode.committedImage()), after which the
   * WAL's segments below it are released. Written after everything queued before, so the WAL
   * holds the update at image.seq when the snapshot is taken.
   */
  compact(image: SnapshotImage): void {
    if (this.failed) return;
    this.compacting = true;
    this.queue.push({ type: 'compact', image });
    if (this.writing === null) this.writing = this.drain();
  }

  /**
   * Writes the registration epochs (after everything queued before); resolves once durable — the
   * node reports them to the master only then, so a restart never registers less than it reported.
   */
  saveEpochs(epochs: RegistrationEpochs): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    const p = new Promise<void>((resolve, reject) => this.queue.push({ type: 'epochs', epochs, resolve, reject }));
    if (this.writing === null) this.writing = this.drain();
    return p;
  }

  /** Resolves once everything queued so far is durable (rejects with the storage failure). */
  async flush(): Promise<void> {
    while (this.writing !== null) await this.writing;
    if (this.failed) throw this.failed;
  }

  get failure(): Error | null {
    return this.failed;
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const first = this.queue[0]!;
        if (first.type === 'epochs') {
          this.queue.shift();
          const previous = this.epochs;
          this.epochs = first.epochs;
          try {
            await this.wal.append({ hardState: this.hardState() }, true);
          } catch (e) {
            this.epochs = previous;
            first.reject(e as Error);
            throw e;
          }
          first.resolve();
          continue;
        }
        if (first.type === 'persistSnapshot' || first.type === 'compact') {
          this.queue.shift();
          const img = first.image;
          // Written in parts as they are encoded (large values as themselves): the store is never one buffer.
          let bytes = 0;
          const parts = (function* (): Generator<Uint8Array> {
            for (const p of entryParts(img.entries)) {
              bytes += p.length;
              yield p;
            }
          })();
          await this.snapshots.saveParts({ index: img.seq, term: img.assignEpoch, confState: { voters: [], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false } }, parts);
          // A snapshot that replaces the history also ends it; a compaction keeps what follows.
          if (first.type === 'persistSnapshot') {
            this.end = img.seq;
            await this.wal.append({ hardState: this.hardState() }, true);
          }
          await this.wal.markSnapshot(img.seq, img.assignEpoch);
          this.logBytes = 0;
          this.compactAt = Math.max(this.compactMin, bytes);
          if (first.type === 'persistSnapshot') this.onDurable(first.token);
          else {
            this.compacting = false;
            this.compactions++;
          }
          continue;
        }
        // Consecutive update batches go in one append: one fdatasync.
        const batch: PersistEffect[] = [];
        while (this.queue.length > 0 && this.queue[0]!.type === 'persist') batch.push(this.queue.shift() as PersistEffect);
        const entries: Entry[] = [];
        for (const b of batch) if (b.type === 'persist') for (const u of b.updates) entries.push({ index: u.seq, term: u.assignEpoch, type: 'normal', data: encodeOp(u) });
        // Records of at most CHAIN_WAL_RECORD_BYTES (a large update alone), synced once at the end.
        for (let i = 0; i < entries.length; ) {
          let j = i + 1;
          let bytes = entries[i]!.data.length;
          while (j < entries.length && bytes + entries[j]!.data.length <= CHAIN_WAL_RECORD_BYTES) bytes += entries[j++]!.data.length;
          this.end = entries[j - 1]!.index;
          await this.wal.append({ entries: entries.slice(i, j), hardState: this.hardState() }, j === entries.length);
          this.logBytes += bytes;
          i = j;
        }
        this.onDurable(batch[batch.length - 1]!.token);
      }
    } catch (e) {
      // A failed write stops the node for good (as RaftNode's fatal): nothing after it may be acknowledged.
      this.failed = e as Error;
      for (const q of this.queue) if (q.type === 'epochs') q.reject(this.failed);
      this.queue = [];
    } finally {
      this.writing = null;
    }
  }

  async close(): Promise<void> {
    await this.flush().catch(() => {});
    await this.wal.close();
  }
}

function encodeOp(u: Update): Uint8Array {
  const w = new ByteWriter(32);
  writeOp(w, u.op);
  return w.written();
}

function decodeEntries(b: Uint8Array, seq: number): ChainEntry[] {
  try {
    const r = new ByteReader(b, (m) => new ChainCodecError(m));
    const entries = readEntries(r, seq);
    r.end();
    return entries;
  } catch (e) {
    throw new ChainStorageCorruptionError(`chain snapshot at ${seq}: ${(e as Error).message}`);
  }
}
