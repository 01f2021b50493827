/**
 * The on-disk surfaces, in process on the in-memory file system (src/storage/fs.ts MemFs):
 *
 * wal: a WAL written by src/storage/wal.ts (small segments, so several), one file mutated (or
 * removed), then opened again. The result must be a clean recovery — entries that are a prefix
 * of what was written (same index, term, type and bytes; never an entry, hard state or
 * snapshot marker that was not written) — or a WalCorruptionError naming a file and an offset;
 * never another exception, a hang, or unbounded memory. A recovered WAL opens again to the
 * same state.
 *
 * snapshot: (file) a snapshot saved by SnapshotStore, its file mutated, then loadNewest: the
 * very snapshot saved or a SnapshotCorruptionError. (image) a state machine image
 * (KvStateMachine.snapshot) mutated as bytes or as JSON, saved with a valid checksum (so the
 * file check passes), loaded and restored into the KvStateMachine it came from: it must either
 * restore to a store that works (HashKV; its own image restores to the same HashKV and the same
 * image) or fail with SnapshotImageError and leave the state machine as it was (same image,
 * same applied index). Any other exception means code trusted the bytes (a crash in a member).
 */
import { crc32 } from 'node:zlib';
import { KvStateMachine, SnapshotImageError } from '../kv/state-machine.js';
import { rng, type Rng } from '../lib/prng.js';
import type { Entry, HardState, Snapshot } from '../raft/types.js';
import { MemFs } from '../storage/fs.js';
import { decodeSnapshot, encodeSnapshot, SnapshotCorruptionError, SnapshotStore } from '../storage/snapshots.js';
import { Wal, WalCorruptionError } from '../storage/wal.js';
import type { FuzzInput, Surface } from './harness.js';
import { jsonText, mutateJson } from './json.js';
import { hexPreview, inputSeed, mutate, randomBytes } from './mutate.js';

/** A recovery or restore that takes longer than this is a hang. */
export const STORAGE_OP_TIMEOUT_MS = 10_000;
/** WAL segment size in the fuzzer (the smallest allowed: many segments from little data). */
const SEGMENT_BYTES = 4096;

function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`HANG: ${what} took over ${STORAGE_OP_TIMEOUT_MS} ms`)), STORAGE_OP_TIMEOUT_MS);
    }),
  ]);
}

const eqBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
const describe = (e: unknown): string => (e instanceof Error ? `${e.name}: ${e.message}\n${e.stack?.split('\n').slice(1, 6).join('\n') ?? ''}` : String(e));

export class WalSurface implements Surface {
  readonly name = 'wal';
  readonly concurrency = 1;
  private readonly tally = { recovered: 0, corrupt: 0, unchanged: 0 };

  constructor(private readonly seed: number) {}

  make(index: number): FuzzInput {
    return { index, label: 'a written WAL, one file mutated, reopened (the mutated bytes are in the line above)', bytes: new Uint8Array(0) };
  }

  async run(input: FuzzInput): Promise<string | null> {
    const r = rng(inputSeed(this.seed, 4, input.index));
    const fs = new MemFs();
    const dir = '/wal';
    const written = new Map<number, Entry>();
    const hardStates: HardState[] = [{ term: 0, vote: 0, commit: 0 }];
    const markers: { index: number; term: number }[] = [{ index: 0, term: 0 }];
    {
      const { wal } = await Wal.open(dir, { fs, segmentBytes: SEGMENT_BYTES });
      let next = 1;
      let term = 1;
      const batches = r.int(1, 40);
      for (let i = 0; i < batches; i++) {
        const lastMarker = markers.at(-1)!.index;
        if (r.chance(0.1) && next > lastMarker + 1) {
          // A snapshot marker at an entry already written.
          const at = r.int(lastMarker + 1, next);
          const m = { index: at, term: written.get(at)!.term };
          await wal.markSnapshot(m.index, m.term);
          markers.push(m);
          continue;
        }
        if (r.chance(0.2)) term += 1;
        const entries: Entry[] = Array.from({ length: r.int(0, 8) }, () => ({ term, index: next++, type: r.chance(0.95) ? ('normal' as const) : ('conf' as const), data: randomBytes(r, 600) }));
        for (const e of entries) written.set(e.index, e);
        const hs = r.chance(0.5) ? { term, vote: r.int(0, 4), commit: r.int(0, next) } : undefined;
        if (hs) hardStates.push(hs);
        await wal.append({ hardState: hs, entries }, true);
      }
      await wal.close();
    }
    const files = (await fs.readdir(dir)).sort();
    if (files.length === 0) return null;
    const file = `${dir}/${r.pick(files)}`;
    const before = await fs.readFile(file);
    let after: Uint8Array | null;
    if (r.chance(0.05) && files.length > 1) {
      after = null;
      await fs.remove(file);
    } else {
      after = mutate(r, before, { maxBytes: 4 * SEGMENT_BYTES });
      const fh = await fs.open(file, true);
      await fh.write(after, 0);
      await fh.datasync();
      await fh.close();
    }
    const what = after === null ? `removed ${file}` : `${file} mutated to ${hexPreview(after, 128)}`;
    let state: Awaited<ReturnType<typeof Wal.open>>['state'];
    try {
      const opened = await withTimeout(Wal.open(dir, { fs, segmentBytes: SEGMENT_BYTES }), 'Wal.open');
      state = opened.state;
      await opened.wal.close();
    } catch (e) {
      if (e instanceof WalCorruptionError) {
        if (typeof e.file !== 'string' || !e.file.startsWith(dir) || !Number.isInteger(e.offset)) return `WalCorruptionError without a file and offset (${e.message}); ${what}`;
        this.tally.corrupt++;
        return null;
      }
      return `Wal.open threw something other than WalCorruptionError: ${describe(e)}\n  ${what}`;
    }
    // A clean recovery: nothing invented, a prefix of what was written.
    if (!markers.some((m) => m.index === state.snapshot.index && m.term === state.snapshot.term)) return `recovered a snapshot marker never written: ${JSON.stringify(state.snapshot)}; ${what}`;
    const hs = state.hardState;
    if (!hardStates.some((h) => h.term === hs.term && h.vote === hs.vote && h.commit === hs.commit)) return `recovered a hard state never written: ${JSON.stringify(hs)}; ${what}`;
    let expect = state.snapshot.index + 1;
    for (const e of state.entries) {
      const w = written.get(e.index);
      if (e.index !== expect++ || !w || w.term !== e.term || w.type !== e.type || !eqBytes(w.data, e.data)) return `recovered entry ${e.index} (term ${e.term}) is not the one written at that place; ${what}`;
    }
    // Recovery repaired what it kept: the WAL opens again to the same state.
    try {
      const again = await withTimeout(Wal.open(dir, { fs, segmentBytes: SEGMENT_BYTES }), 'second Wal.open');
      await again.wal.close();
      const s2 = again.state;
      if (s2.entries.length !== state.entries.length || s2.snapshot.index !== state.snapshot.index || s2.hardState.commit !== hs.commit) return `a second open after recovery gives another state (${s2.entries.length} entries vs ${state.entries.length}); ${what}`;
      if (after !== null && eqBytes(after, before)) this.tally.unchanged++;
      else this.tally.recovered++;
    } catch (e) {
      return `a second open after a successful recovery failed: ${describe(e)}; ${what}`;
    }
    return null;
  }

  stats(): string {
    const t = this.tally;
    return `clean recoveries ${t.recovered}, WalCorruptionError ${t.corrupt}, mutation left the file unchanged ${t.unchanged}`;
  }

  async close(): Promise<void> {}
}

/** A state machine with some history: keys, versions, deletions, leases, a compaction. */
function populated(r: Rng): KvStateMachine {
  const sm = new KvStateMachine();
  const kv = sm.store;
  const enc = (s: string) => new TextEncoder().encode(s);
  const leases: bigint[] = [];
  const n = r.int(0, 30);
  for (let i = 0; i < n; i++) {
    const x = r.next();
    if (x < 0.1) {
      const id = BigInt(r.int(1, 1000));
      if (!leases.includes(id)) {
        kv.grantLease(id, r.int(1, 100));
        leases.push(id);
      }
    } else if (x < 0.75) {
      const lease = leases.length && r.chance(0.3) ? r.pick(leases) : undefined;
      kv.put({ key: enc(`k${r.int(0, 10)}`), value: randomBytes(r, 100), lease });
    } else if (x < 0.9) {
      kv.deleteRange({ key: enc(`k${r.int(0, 10)}`) });
    } else {
      try {
        kv.compact(r.int(1, kv.revision + 1));
      } catch {
        // already compacted that far (a refusal)
      }
    }
  }
  return sm;
}

const CONF = { voters: [1, 2, 3], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false };

export class SnapshotSurface implements Surface {
  readonly name = 'snapshot';
  readonly concurrency = 1;
  private readonly tally = { fileLoaded: 0, fileRefused: 0, metaRefused: 0, restored: 0, restoreRefused: 0 };

  constructor(
    private readonly seed: number,
    /** Restore images into a KvStateMachine (--exclude snapshot/image: only the file checks). */
    private readonly images: boolean,
  ) {}

  make(index: number): FuzzInput {
    return { index, label: 'a snapshot file or state machine image, mutated (the mutated bytes are in the line above)', bytes: new Uint8Array(0) };
  }

  async run(input: FuzzInput): Promise<string | null> {
    const r = rng(inputSeed(this.seed, 5, input.index));
    const sm = populated(r);
    const snap: Snapshot = { meta: { index: r.int(1, 1000), term: r.int(1, 10), confState: CONF }, data: sm.snapshot() };
    if (r.chance(0.5)) return this.file(r, snap);
    return this.image(r, snap, sm);
  }

  /** The file: mutated bytes come back as the very snapshot saved, or as SnapshotCorruptionError. */
  private async file(r: Rng, snap: Snapshot): Promise<string | null> {
    const fs = new MemFs();
    const store = new SnapshotStore('/snap', { fs });
    await store.save(snap);
    const name = (await fs.readdir('/snap'))[0]!;
    const path = `/snap/${name}`;
    const before = await fs.readFile(path);
    const after = mutate(r, before, { maxBytes: 4 * before.length + 4096 });
    const fh = await fs.open(path, true);
    await fh.write(after, 0);
    await fh.close();
    const what = `file mutated to ${hexPreview(after, 128)}`;
    try {
      const got = await withTimeout(store.loadNewest(), 'loadNewest');
      if (!got) return `loadNewest found no snapshot; ${what}`;
      this.tally.fileLoaded++;
      if (eqBytes(after, before)) return null;
      if (!eqBytes(got.data, snap.data) || JSON.stringify(got.meta) !== JSON.stringify(snap.meta)) return `a mutated snapshot file loaded as a different snapshot (meta ${JSON.stringify(got.meta)}); ${what}`;
      return null;
    } catch (e) {
      if (e instanceof SnapshotCorruptionError) {
        this.tally.fileRefused++;
        return null;
      }
      return `loadNewest threw something other than SnapshotCorruptionError: ${describe(e)}\n  ${what}`;
    }
  }

  /** A garbage image (or metadata) with a valid checksum: a clear error or a working store. */
  private async image(r: Rng, snap: Snapshot, sm: KvStateMachine): Promise<string | null> {
    let data: Uint8Array;
    let how: string;
    if (r.chance(0.5)) {
      how = 'image mutated as JSON';
      let obj: unknown;
      try {
        obj = JSON.parse(new TextDecoder().decode(snap.data));
      } catch {
        return null; // not JSON (another encoding): byte mutations below cover it
      }
      data = new TextEncoder().encode(jsonText(deepMutate(r, obj)));
    } else if (r.chance(0.9)) {
      how = 'image mutated as bytes';
      data = mutate(r, snap.data, { maxBytes: 4 * snap.data.length + 4096 });
    } else {
      how = 'image random bytes';
      data = randomBytes(r, 2048);
    }
    let meta: Snapshot['meta'] = snap.meta;
    let fileBytes = encodeSnapshot({ meta, data });
    if (r.chance(0.2)) {
      // Garbage metadata with a valid checksum.
      how += ', metadata mutated';
      const metaJson = r.chance(0.5) ? new TextEncoder().encode(jsonText(mutateJson(r, JSON.parse(JSON.stringify(meta)) as unknown))) : mutate(r, new TextEncoder().encode(JSON.stringify(meta)));
      fileBytes = rawSnapshotFile(metaJson, data);
    }
    const what = `${how}: ${hexPreview(fileBytes, 160)}`;
    let loaded: Snapshot;
    try {
      loaded = decodeSnapshot(fileBytes, '/snap/x.snap');
      meta = loaded.meta;
    } catch (e) {
      if (e instanceof SnapshotCorruptionError) {
        this.tally.metaRefused++;
        return null;
      }
      return `decodeSnapshot threw something other than SnapshotCorruptionError on a file with a valid checksum: ${describe(e)}\n  ${what}`;
    }
    if (!this.images) return null;
    // Into a state machine that holds something: a refused image must leave it as it was.
    const target = sm;
    const held = target.snapshot();
    const heldIndex = target.appliedIndex;
    try {
      target.restore(loaded.data, meta.index);
    } catch (e) {
      if (!(e instanceof SnapshotImageError)) return `KvStateMachine.restore threw something other than SnapshotImageError on a garbage image: ${describe(e)}\n  ${what}`;
      if (!e.message.startsWith('invalid state machine snapshot image: ')) return `SnapshotImageError without its prefix: ${e.message}; ${what}`;
      if (!eqBytes(target.snapshot(), held) || target.appliedIndex !== heldIndex) return `a refused image changed the state machine (${e.message}); ${what}`;
      this.tally.restoreRefused++;
      return null;
    }
    // Restored: the store must work and be deterministic — its own image restores to the
    // same HashKV and to the same image.
    try {
      const h1 = target.store.hashKv().hash;
      const image = target.snapshot();
      const again = new KvStateMachine();
      again.restore(image, meta.index);
      const h2 = again.store.hashKv().hash;
      if (h1 !== h2) return `a restored garbage image does not survive its own snapshot/restore (HashKV ${h1} vs ${h2}); ${what}`;
      if (!eqBytes(again.snapshot(), image)) return `a restored garbage image's own image restores to another image; ${what}`;
      this.tally.restored++;
    } catch (e) {
      return `KvStateMachine.restore accepted a garbage image that then breaks the store: ${describe(e)}\n  ${what}`;
    }
    return null;
  }

  stats(): string {
    const t = this.tally;
    return `files: loaded ${t.fileLoaded}, SnapshotCorruptionError ${t.fileRefused}; images with a valid checksum: metadata refused ${t.metaRefused}, restored ${t.restored}, restore refused ${t.restoreRefused}`;
  }

  async close(): Promise<void> {}
}

/**
 * JSON mutations, one to three, anywhere in the image; the state machine image nests the
 * store's image as tagged bytes ({"$b": base64 of JSON}): mutated inside that too, most times.
 */
function deepMutate(r: Rng, v: unknown): unknown {
  const inner = (v as { store?: { $b?: unknown } } | null)?.store;
  if (inner && typeof inner.$b === 'string' && r.chance(0.7)) {
    try {
      const store = JSON.parse(Buffer.from(inner.$b, 'base64').toString('utf8')) as unknown;
      let m = store;
      for (let i = r.int(1, 4); i > 0; i--) m = mutateJson(r, m);
      inner.$b = Buffer.from(jsonText(m)).toString('base64');
      return v;
    } catch {
      // not JSON inside: mutate the outside
    }
  }
  let out = v;
  for (let i = r.int(1, 4); i > 0; i--) out = mutateJson(r, out);
  return out;
}

/** A snapshot file with the given metadata bytes and data, with a correct checksum. */
function rawSnapshotFile(meta: Uint8Array, data: Uint8Array): Uint8Array {
  const good = encodeSnapshot({ meta: { index: 0, term: 0, confState: CONF }, data: new Uint8Array(0) });
  const magic = good.subarray(0, 8);
  const out = new Uint8Array(8 + 8 + meta.length + data.length);
  const v = new DataView(out.buffer);
  out.set(magic, 0);
  v.setUint32(12, meta.length, true);
  out.set(meta, 16);
  out.set(data, 16 + meta.length);
  // crc32 over metaLength | meta | data, as encodeSnapshot computes it.
  v.setUint32(8, crc32Of(out.subarray(12)), true);
  return out;
}

const crc32Of = (b: Uint8Array): number => crc32(b) >>> 0;
