/**
 * Snapshot files: `<index>-<term>.snap` (16 hex digits each), written to a temporary file,
 * fsynced, renamed into place, and the directory fsynced, so a snapshot is either wholly there
 * or not at all. Each file is checksummed; the newest `keep` are retained.
 *
 *   file = magic "FLSNAP01" | crc32:u32 | metaLength:u32 | meta (JSON) | data
 *   crc  = crc32(metaLength | meta | data)
 */
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Snapshot } from '../raft/types.js';
import { ioStep, realFs, type FileLike, type FileSystem } from './fs.js';

const MAGIC = new TextEncoder().encode('FLSNAP01');
const NAME = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;
const hex = (n: number): string => n.toString(16).padStart(16, '0');

export class SnapshotCorruptionError extends Error {
  override name = 'SnapshotCorruptionError';
  constructor(
    readonly file: string,
    why: string,
  ) {
    super(`snapshot corrupt: ${file}: ${why}`);
  }
}

export const SNAPSHOTS_KEPT_DEFAULT = 3;

export function encodeSnapshot(s: Snapshot): Uint8Array {
  const meta = new TextEncoder().encode(JSON.stringify(s.meta));
  const out = new Uint8Array(MAGIC.length + 8 + meta.length + s.data.length);
  const v = new DataView(out.buffer);
  out.set(MAGIC, 0);
  v.setUint32(MAGIC.length + 4, meta.length, true);
  out.set(meta, MAGIC.length + 8);
  out.set(s.data, MAGIC.length + 8 + meta.length);
  v.setUint32(MAGIC.length, crc32(out.subarray(MAGIC.length + 4)), true);
  return out;
}

export function decodeSnapshot(b: Uint8Array, file: string): Snapshot {
  if (b.length < MAGIC.length + 8 || !MAGIC.every((x, i) => b[i] === x)) throw new SnapshotCorruptionError(file, 'not a snapshot file (bad magic)');
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const want = v.getUint32(MAGIC.length, true);
  const got = crc32(b.subarray(MAGIC.length + 4));
  if (want !== got) throw new SnapshotCorruptionError(file, `checksum mismatch (file says ${want.toString(16)}, data gives ${got.toString(16)})`);
  const metaLen = v.getUint32(MAGIC.length + 4, true);
  if (MAGIC.length + 8 + metaLen > b.length) throw new SnapshotCorruptionError(file, 'metadata runs past the end');
  const meta = decodeMeta(b.subarray(MAGIC.length + 8, MAGIC.length + 8 + metaLen), file);
  return { meta, data: b.slice(MAGIC.length + 8 + metaLen) };
}

/**
 * The metadata, checked field by field: a checksum only says the bytes are the ones written,
 * not that what wrote them was right (a bug, or a file made by hand). Found by the fuzzer
 * (`flotilla fuzz --surface snapshot`): garbage metadata with a valid checksum threw a bare
 * SyntaxError, and a wrong shape was returned as if it were metadata.
 */
function decodeMeta(raw: Uint8Array, file: string): Snapshot['meta'] {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
  } catch (e) {
    throw new SnapshotCorruptionError(file, `metadata is not JSON: ${(e as Error).message}`);
  }
  const bad = (why: string): SnapshotCorruptionError => new SnapshotCorruptionError(file, `metadata: ${why}`);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('not an object');
  const o = v as { index?: unknown; term?: unknown; confState?: unknown };
  const count = (x: unknown, name: string): number => {
    if (!Number.isSafeInteger(x) || (x as number) < 0) throw bad(`${name} is not a non-negative integer`);
    return x as number;
  };
  const index = count(o.index, 'index');
  const term = count(o.term, 'term');
  if (typeof o.confState !== 'object' || o.confState === null || Array.isArray(o.confState)) throw bad('confState is not an object');
  const c = o.confState as Record<string, unknown>;
  const ids = (x: unknown, name: string): number[] => {
    if (!Array.isArray(x) || !x.every((n) => Number.isSafeInteger(n) && (n as number) > 0)) throw bad(`confState.${name} is not a list of member ids`);
    return x as number[];
  };
  if (c.autoLeave !== undefined && typeof c.autoLeave !== 'boolean') throw bad('confState.autoLeave is not a boolean');
  return {
    index,
    term,
    confState: { voters: ids(c.voters, 'voters'), votersOutgoing: ids(c.votersOutgoing, 'votersOutgoing'), learners: ids(c.learners, 'learners'), learnersNext: ids(c.learnersNext, 'learnersNext'), autoLeave: c.autoLeave === true },
  };
}

export class SnapshotStore {
  private readonly fs: FileSystem;
  private readonly keep: number;
  constructor(
    readonly dir: string,
    opts: { fs?: FileSystem; keep?: number } = {},
  ) {
    this.fs = opts.fs ?? realFs;
    this.keep = opts.keep ?? SNAPSHOTS_KEPT_DEFAULT;
    if (!Number.isInteger(this.keep) || this.keep < 1) throw new RangeError(`keep must be a positive integer, got ${this.keep}`);
  }

  private async names(): Promise<string[]> {
    return (await this.fs.readdir(this.dir)).filter((n) => NAME.test(n)).sort();
  }

  /** Writes `s` durably, then removes all but the newest `keep` snapshots. */
  save(s: Snapshot): Promise<void> {
    return ioStep(`snapshot write in ${this.dir}`, () => this.write(s));
  }

  /**
   * As save, with the data in parts written as they come (and checksummed along the way): a
   * large snapshot (a chain node's store) is never one buffer, nor copied into the file's image.
   * The file is the same as save's for the parts' concatenation.
   */
  saveParts(meta: Snapshot['meta'], parts: Iterable<Uint8Array>): Promise<void> {
    return ioStep(`snapshot write in ${this.dir}`, () =>
      this.writeFile(meta, async (f) => {
        const m = new TextEncoder().encode(JSON.stringify(meta));
        const head = new Uint8Array(MAGIC.length + 8 + m.length);
        const v = new DataView(head.buffer);
        head.set(MAGIC, 0);
        v.setUint32(MAGIC.length + 4, m.length, true);
        head.set(m, MAGIC.length + 8);
        let crc = crc32(head.subarray(MAGIC.length + 4));
        let at = head.length;
        for (const p of parts) {
          if (p.length === 0) continue;
          await f.write(p, at);
          crc = crc32(p, crc);
          at += p.length;
        }
        v.setUint32(MAGIC.length, crc, true);
        await f.write(head, 0);
      }),
    );
  }

  private write(s: Snapshot): Promise<void> {
    return this.writeFile(s.meta, (f) => f.write(encodeSnapshot(s), 0));
  }

  /** Writes a snapshot file by `fill` to a temporary file, syncs it, renames it into place, prunes. */
  private async writeFile(meta: Snapshot['meta'], fill: (f: FileLike) => Promise<void>): Promise<void> {
    await this.fs.mkdirp(this.dir);
    const name = `${hex(meta.index)}-${hex(meta.term)}.snap`;
    const tmp = join(this.dir, `${name}.tmp`);
    const f = await this.fs.open(tmp, true);
    try {
      await fill(f);
      await f.datasync();
    } finally {
      await f.close();
    }
    await this.fs.rename(tmp, join(this.dir, name));
    await this.fs.syncDir(this.dir);
    const all = await this.names();
    for (const old of all.slice(0, Math.max(0, all.length - this.keep))) await this.fs.remove(join(this.dir, old));
    for (const t of (await this.fs.readdir(this.dir)).filter((n) => n.endsWith('.snap.tmp'))) await this.fs.remove(join(this.dir, t));
    await this.fs.syncDir(this.dir);
  }

  /** The newest snapshot, or undefined. A newest file that fails its checksum is an error. */
  loadNewest(): Promise<Snapshot | undefined> {
    return ioStep(`snapshot read in ${this.dir}`, () => this.readNewest());
  }

  private async readNewest(): Promise<Snapshot | undefined> {
    await this.fs.mkdirp(this.dir);
    const all = await this.names();
    const newest = all.at(-1);
    if (!newest) return undefined;
    const path = join(this.dir, newest);
    return decodeSnapshot(await this.fs.readFile(path), path);
  }
}
