/**
 * One conformance suite for every storage backend (MemoryBackend, LmdbBackend): reads see
 * writes at once, a commit is all or nothing, a crash keeps exactly the last commit, scans
 * merge pending writes in key order, defragmentation keeps every commit made while it runs;
 * under the state machine, a commit holds the applied Raft index with the data it produced (a
 * crash at any point keeps both or neither, and replaying the log after it gives the state of a
 * member that never crashed). The simulator's `store: 'real'` members run on MemoryBackend
 * (src/sim/store.ts): this suite is what says it crashes as LMDB does.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statfsSync, statSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { BACKEND_BATCH_OPS_MAX, BACKEND_KEY_BYTES_MAX, BACKEND_PENDING_BATCHES_MAX, BackendIoError, MemoryBackend, type Backend } from './backend.js';
import { BACKEND_DISK_FULL_FREE_BYTES, LmdbBackend } from './backend-lmdb.js';
import { encodeRequest, type Command } from './commands.js';
import { KvStateMachine } from './state-machine.js';

interface Subject {
  readonly backend: Backend;
  /** The process dies (uncommitted writes lost) and restarts on the same storage. */
  crashAndReopen(): Promise<Subject>;
  /** A staging backend of the same kind, for adopt (a received snapshot). */
  staging(): Backend;
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function memory(b = new MemoryBackend({ durable: true, batchOpsMax: 5 })): Subject {
  return { backend: b, crashAndReopen: async () => memory(b.reopen({ batchOpsMax: 5 })), staging: () => new MemoryBackend({ durable: true }) };
}

function lmdbAt(path: string): Subject {
  const b = LmdbBackend.open(path, { batchIntervalMs: 0, batchOpsMax: 5 });
  // Batch commits go to the commit thread once it is up (the first ones are made at once).
  void b.commitThreadReady();
  return {
    backend: b,
    crashAndReopen: async () => {
      await b.abandon();
      return lmdbAt(path);
    },
    staging: () => LmdbBackend.open(join(dirname(path), 'snap-recv', 'x', 'db'), { batchIntervalMs: 0 }),
  };
}

function lmdb(): Subject {
  const d = mkdtempSync(join(tmpdir(), 'flotilla-backend-'));
  dirs.push(d);
  return lmdbAt(join(d, 'member', 'db'));
}

const k = (s: string) => new TextEncoder().encode(s);

/** Slips a write LMDB refuses into the overlay (an empty key: put() never lets one through): the next commit fails. */
function slipEmptyKey(b: Backend): void {
  const inside = b as unknown as { pending: { set(k: string, v: Uint8Array): void }; opsSinceCommit: number };
  inside.pending.set('', k('x'));
  inside.opsSinceCommit++;
}
const s = (b: Uint8Array | undefined) => (b === undefined ? undefined : Buffer.from(b).toString());
const all = (b: Backend, from = '', to?: string) => [...b.scan(k(from), to === undefined ? undefined : k(to))].map(([a, v]) => `${s(a)}=${s(v)}`);

describe.each([
  ['memory', memory],
  ['lmdb', lmdb],
])('%s backend', (_name, make) => {
  it('reads its own writes before a commit, keeps only committed ones over a crash', async () => {
    let x = make();
    x.backend.put(k('a'), k('1'));
    x.backend.put(k('b'), k('2'));
    expect(s(x.backend.get(k('a')))).toBe('1');
    x.backend.commit();
    x.backend.put(k('c'), k('3'));
    x.backend.del(k('a'));
    expect(s(x.backend.get(k('a')))).toBeUndefined();
    expect(all(x.backend)).toEqual(['b=2', 'c=3']);
    x = await x.crashAndReopen();
    expect(all(x.backend)).toEqual(['a=1', 'b=2']);
    await x.backend.close();
  });

  it('commits by count at maybeCommit, and a clear is part of its batch', async () => {
    let x = make();
    for (let i = 0; i < 5; i++) x.backend.put(k(`k${i}`), k(`${i}`));
    expect(x.backend.pendingOps).toBe(5);
    x.backend.maybeCommit();
    expect(x.backend.pendingOps).toBe(0);
    x.backend.clear();
    x.backend.put(k('z'), k('26'));
    expect(all(x.backend)).toEqual(['z=26']);
    x = await x.crashAndReopen();
    expect(all(x.backend)).toHaveLength(5);
    x.backend.clear();
    x.backend.put(k('z'), k('26'));
    x.backend.commit();
    x = await x.crashAndReopen();
    expect(all(x.backend)).toEqual(['z=26']);
    await x.backend.close();
  });

  it('scans [start, end) merging pending puts and deletions with committed data, as a model map does', async () => {
    const x = make();
    const model = new Map<string, string>();
    await fc.assert(
      fc.asyncProperty(
        // 'batch': a commit by count (LMDB: in the background, so later writes land while it
        // is under way); 'turn': the event loop turns, and a background commit may complete.
        fc.array(fc.tuple(fc.constantFrom('put', 'put', 'del', 'commit', 'batch', 'turn'), fc.stringMatching(/^[a-d]{1,3}$/), fc.nat(99)), { maxLength: 40 }),
        fc.stringMatching(/^[a-d]{0,2}$/),
        fc.option(fc.stringMatching(/^[a-e]{0,2}$/), { nil: undefined }),
        async (ops, from, to) => {
          for (const [op, key, v] of ops) {
            if (op === 'put') {
              x.backend.put(k(key), k(String(v)));
              model.set(key, String(v));
            } else if (op === 'del') {
              x.backend.del(k(key));
              model.delete(key);
            } else if (op === 'batch') {
              for (let i = x.backend.pendingOps; i < 5; i++) {
                x.backend.put(k(key), k(String(v + i)));
                model.set(key, String(v + i));
              }
              x.backend.maybeCommit();
            } else if (op === 'turn') await new Promise((r) => setTimeout(r, v % 3));
            else x.backend.commit();
          }
          const want = [...model.entries()]
            .filter(([key]) => key >= from && (to === undefined || key < to))
            .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
            .map(([key, v]) => `${key}=${v}`);
          expect(all(x.backend, from, to)).toEqual(want);
        },
      ),
      { numRuns: 100 },
    );
    await x.backend.close();
  });

  it('keeps writes committed while a defragmentation runs, and frees deleted space', async () => {
    let x = make();
    const big = new Uint8Array(4096).fill(7);
    for (let i = 0; i < 500; i++) x.backend.put(k(`k${String(i).padStart(4, '0')}`), big);
    x.backend.commit();
    for (let i = 0; i < 450; i++) x.backend.del(k(`k${String(i).padStart(4, '0')}`));
    x.backend.commit();
    const defrag = x.backend.defragment();
    // Reads and writes go on meanwhile.
    x.backend.put(k('during'), k('yes'));
    x.backend.commit();
    expect(s(x.backend.get(k('k0499')))).toBe(s(big));
    const { beforeBytes, afterBytes } = await defrag;
    expect(afterBytes).toBeLessThanOrEqual(beforeBytes);
    expect(s(x.backend.get(k('during')))).toBe('yes');
    x.backend.put(k('after'), k('yes'));
    x.backend.commit();
    x = await x.crashAndReopen();
    expect(all(x.backend)).toHaveLength(52);
    expect(s(x.backend.get(k('during')))).toBe('yes');
    expect(s(x.backend.get(k('after')))).toBe('yes');
    await x.backend.close();
  });

  it('a read view sees the commits made before it opened, nothing after; entries(after) starts past `after`', async () => {
    const x = make();
    x.backend.put(k('a'), k('1'));
    x.backend.put(k('b'), k('2'));
    x.backend.put(k('c'), k('3'));
    x.backend.commit();
    x.backend.put(k('pending'), k('p'));
    const view = x.backend.readView();
    x.backend.del(k('a'));
    x.backend.put(k('d'), k('4'));
    x.backend.commit();
    const read = (after?: string) => [...view.entries(after === undefined ? undefined : k(after))].map(([a, v]) => `${s(a)}=${s(v)}`);
    expect(read()).toEqual(['a=1', 'b=2', 'c=3']);
    expect(read('a')).toEqual(['b=2', 'c=3']);
    expect(read('bb')).toEqual(['c=3']);
    expect(read('c')).toEqual([]);
    view.close();
    expect(() => [...view.entries()]).toThrow(/closed/);
    expect(all(x.backend)).toEqual(['b=2', 'c=3', 'd=4', 'pending=p']);
    await x.backend.close();
  });

  it('adopts a staging backend atomically: its committed data replaces everything, and survives a crash', async () => {
    let x = make();
    x.backend.put(k('old'), k('1'));
    x.backend.commit();
    x.backend.put(k('pending'), k('2'));
    const view = x.backend.readView();
    const staged = x.staging();
    staged.put(k('new'), k('3'));
    staged.commit();
    staged.put(k('new2'), k('4'));
    x.backend.adopt(staged);
    expect(all(x.backend)).toEqual(['new=3', 'new2=4']);
    // A view opened before goes on reading what it saw.
    expect([...view.entries()].map(([a]) => s(a))).toEqual(['old']);
    view.close();
    x.backend.put(k('later'), k('5'));
    x.backend.commit();
    x = await x.crashAndReopen();
    expect(all(x.backend)).toEqual(['later=5', 'new=3', 'new2=4']);
    await x.backend.close();
  });

  it('under the state machine: a crash at any point keeps the applied index with exactly its data; replaying the log after it gives the never-crashed state', async () => {
    const log = entries(14);
    const reference = new KvStateMachine({}, new MemoryBackend());
    const hashAt = [reference.store.hashKv().hash];
    for (const e of log) {
      reference.apply(e);
      hashAt.push(reference.store.hashKv().hash);
    }
    const committedAt = new Set<number>();
    for (let crashAfter = 0; crashAfter <= log.length; crashAfter++) {
      let x = make();
      const sm = new KvStateMachine({}, x.backend);
      // Applies commit by count (batchOpsMax 5: every entry or two), and the snapshot path commits too.
      for (const e of log.slice(0, crashAfter)) {
        sm.apply(e);
        if (e.index === 4) sm.persistTo(4);
      }
      x = await x.crashAndReopen();
      const again = new KvStateMachine({}, x.backend);
      const held = again.lastAppliedIndex();
      expect(held).toBeLessThanOrEqual(crashAfter);
      if (crashAfter >= 4) expect(held).toBeGreaterThanOrEqual(4);
      committedAt.add(held);
      // The data is exactly that of the entries up to the applied index the commit recorded.
      expect(again.store.hashKv().hash).toBe(hashAt[held]);
      for (const e of log.slice(held)) again.apply(e);
      expect(again.store.hashKv().hash).toBe(hashAt.at(-1));
      expect(again.store.revision).toBe(reference.store.revision);
      await x.backend.close();
    }
    // The crash points fell both right after commits and with writes pending.
    expect(committedAt.size).toBeGreaterThan(3);
  });

  it('uses etcd batch limits by default, refuses keys LMDB cannot hold', () => {
    expect(BACKEND_BATCH_OPS_MAX).toBe(10_000);
    const x = make();
    expect(() => x.backend.put(new Uint8Array(0), k('v'))).toThrow(RangeError);
    expect(() => x.backend.put(new Uint8Array(BACKEND_KEY_BYTES_MAX + 1), k('v'))).toThrow(RangeError);
    x.backend.put(new Uint8Array(BACKEND_KEY_BYTES_MAX).fill(1), k('v'));
    x.backend.commit();
  });
});

/** A log of puts, deletes and a txn on a few keys (entries 1..n). */
function entries(n: number): { index: number; term: number; type: 'normal'; data: Uint8Array }[] {
  const out = [];
  for (let i = 1; i <= n; i++) {
    const key = k(`key${i % 3}`);
    const command: Command =
      i % 5 === 0
        ? { op: 'deleteRange', req: { key } }
        : i % 4 === 0
          ? { op: 'txn', req: { compare: [{ key, target: 'version', result: 'greater', value: 0 }], success: [{ put: { key, value: k(`t${i}`) } }], failure: [] } }
          : { op: 'put', req: { key, value: k(`v${i}`) } };
    out.push({ index: i, term: 1, type: 'normal' as const, data: encodeRequest({ id: BigInt(i), command }) });
  }
  return out;
}

/** Three writes tagged `tag`, a due batch commit (on the commit thread), then a turn for it to go on. */
async function threeWritesAndCommit(b: LmdbBackend, tag: string): Promise<void> {
  for (let i = 0; i < 3; i++) b.put(k(`${tag}${i}`), k(tag));
  b.maybeCommit();
  await new Promise((r) => setTimeout(r, 2));
}

describe('lmdb backend', () => {
  it('keeps its leaf pages full when revisions arrive in ascending order past the last key (MDB_APPEND), beside keys that land before them', async () => {
    const x = lmdb();
    const b = x.backend as LmdbBackend;
    const record = new Uint8Array(1024 + 40).fill(3); // a 1 KiB value with the store's record header and key
    const n = 3000;
    const revKey = (prefix: number, i: number): Uint8Array => {
      const key = new Uint8Array(17); // as the store's: a prefix byte, main and sub revision
      key[0] = prefix;
      new DataView(key.buffer).setUint32(5, i);
      return key;
    };
    for (let i = 0; i < n; i++) {
      b.put(revKey(0x72, i), record); // 'r': the highest prefix, always past the last key
      b.put(revKey(0x6b, i), new Uint8Array(20).fill(4)); // 'k': lands before the 'r' keys
      if (i % 1000 === 999) b.commit();
    }
    b.commit();
    // Committed every 1,000 revisions. Three such records fit a 4 KiB page (about 1,370 bytes
    // each, plus the small 'k' entries: 1,425 measured); split in the middle (without
    // MDB_APPEND), pages held two: 2,214 measured.
    expect(b.dbSizeInUseBytes() / n).toBeLessThan(1_700);
    const y = await x.crashAndReopen();
    const keys = [...y.backend.scan(Uint8Array.of(0))].map(([key]) => Buffer.from(key).toString('hex'));
    expect(keys.length).toBe(2 * n);
    expect(keys).toEqual([...keys].sort());
    expect(Buffer.from(y.backend.get(revKey(0x72, n - 1))!)).toEqual(Buffer.from(record));
    await y.backend.close();
  });

  it('appends (MDB_APPEND) on its commit thread too: batches committed by count keep their pages full', async () => {
    const d = mkdtempSync(join(tmpdir(), 'flotilla-backend-'));
    dirs.push(d);
    const path = join(d, 'member', 'db');
    const b = LmdbBackend.open(path, { batchIntervalMs: 0, batchOpsMax: 2000 });
    await b.commitThreadReady();
    const record = new Uint8Array(1024 + 40).fill(3);
    const n = 3000;
    const revKey = (prefix: number, i: number): Uint8Array => {
      const key = new Uint8Array(17);
      key[0] = prefix;
      new DataView(key.buffer).setUint32(5, i);
      return key;
    };
    for (let i = 0; i < n; i++) {
      b.put(revKey(0x72, i), record);
      b.put(revKey(0x6b, i), new Uint8Array(20).fill(4));
      b.maybeCommit(); // due at every 1,000th: 2,000 writes
      if (i % 1000 === 999) await vi.waitFor(() => expect(b.committedInBackground).toBe((i + 1) / 1000), { timeout: 30_000 });
    }
    // The same bound as the main thread's commits above: 2,214 bytes a revision when the thread
    // split full pages in the middle.
    expect(b.dbSizeInUseBytes() / n).toBeLessThan(1_700);
    await b.close();
    const again = LmdbBackend.open(path, { batchIntervalMs: 0 });
    const keys = [...again.scan(Uint8Array.of(0))].map(([key]) => Buffer.from(key).toString('hex'));
    expect(keys.length).toBe(2 * n);
    expect(keys).toEqual([...keys].sort());
    await again.close();
  });

  it('makes batch commits (by count) on its commit thread: writes made meanwhile read as written and are committed after it; a crash keeps the batch', async () => {
    const d = mkdtempSync(join(tmpdir(), 'flotilla-backend-'));
    dirs.push(d);
    const path = join(d, 'member', 'db');
    let b = LmdbBackend.open(path, { batchIntervalMs: 0, batchOpsMax: 3 });
    await b.commitThreadReady();
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 3; i++) b.put(k(`k${i}`), k(`r${round}`));
      b.maybeCommit();
      expect(b.pendingOps).toBe(0);
      // Under way (or done): the same keys written again, one deleted.
      b.put(k('k0'), k(`again${round}`));
      b.del(k('k1'));
      expect(all(b)).toEqual([`k0=again${round}`, `k2=r${round}`]);
      if (round % 2 === 0) await new Promise((r) => setTimeout(r, 1));
      expect(all(b)).toEqual([`k0=again${round}`, `k2=r${round}`]);
      b.commit();
    }
    for (let i = 0; i < 3; i++) b.put(k(`k${i}`), k('last'));
    b.maybeCommit();
    b.put(k('k0'), k('lost in the crash'));
    await b.abandon();
    const made = b.committedInBackground;
    b = LmdbBackend.open(path, { batchIntervalMs: 0, batchOpsMax: 3 });
    expect(all(b)).toEqual(['k0=last', 'k1=last', 'k2=last']);
    await b.close();
    expect(made).toBe(51);
  });

  it('counts the bytes written but not yet durable (pending and on the commit thread) until their batch is committed, for the quota', async () => {
    const d = mkdtempSync(join(tmpdir(), 'flotilla-backend-'));
    dirs.push(d);
    let b = LmdbBackend.open(join(d, 'member', 'db'), { batchIntervalMs: 0, batchOpsMax: 3 });
    await b.commitThreadReady();
    const value = new Uint8Array(10_000);
    expect(b.unsyncedBytes).toBe(0);
    for (let i = 0; i < 3; i++) b.put(k(`k${i}`), value);
    expect(b.unsyncedBytes).toBe(3 * (2 + 10_000));
    b.maybeCommit(); // handed to the commit thread
    expect(b.pendingOps).toBe(0);
    b.put(k('k9'), value);
    b.del(k('k0'));
    // Until the thread's commit is durable, its bytes still count, with the new ones.
    const sizeBefore = b.dbSizeBytes();
    expect(b.dbSizeBytes() + b.unsyncedBytes).toBeGreaterThanOrEqual(sizeBefore + 4 * 10_000);
    await vi.waitFor(() => expect(b.committedInBackground).toBe(1), { timeout: 30_000 });
    expect(b.unsyncedBytes).toBe(2 + 10_000 + 2);
    b.commit();
    expect(b.unsyncedBytes).toBe(0);
    b.put(k('k8'), value);
    await b.abandon();
    b = LmdbBackend.open(join(d, 'member', 'db'), { batchIntervalMs: 0, batchOpsMax: 3 });
    expect(b.unsyncedBytes).toBe(0);
    await b.close();
  });

  it('batch commits on its commit thread during a defragmentation land in the new file, and after it too', async () => {
    const d = mkdtempSync(join(tmpdir(), 'flotilla-backend-'));
    dirs.push(d);
    const path = join(d, 'member', 'db');
    let b = LmdbBackend.open(path, { batchIntervalMs: 0, batchOpsMax: 3 });
    await b.commitThreadReady();
    const big = new Uint8Array(4096).fill(9);
    for (let i = 0; i < 400; i++) b.put(k(`k${String(i).padStart(4, '0')}`), big);
    b.commit();
    for (let i = 0; i < 380; i++) b.del(k(`k${String(i).padStart(4, '0')}`));
    b.commit();
    const defrag = b.defragment();
    const batch = (tag: string): Promise<void> => threeWritesAndCommit(b, tag);
    for (let n = 0; n < 10; n++) await batch(`during${n}/`);
    await defrag;
    for (let n = 0; n < 10; n++) await batch(`after${n}/`);
    const made = b.committedInBackground;
    await b.abandon();
    expect(made).toBeGreaterThan(0);
    b = LmdbBackend.open(path, { batchIntervalMs: 0 });
    expect(all(b)).toHaveLength(20 + 60);
    expect(s(b.get(k('during0/0')))).toBe('during0/');
    expect(s(b.get(k('after9/2')))).toBe('after9/');
    await b.close();
  });

  it('batch commits on its commit thread after adopting a staging backend land in the adopted file', async () => {
    const d = mkdtempSync(join(tmpdir(), 'flotilla-backend-'));
    dirs.push(d);
    const path = join(d, 'member', 'db');
    let b = LmdbBackend.open(path, { batchIntervalMs: 0, batchOpsMax: 3 });
    await b.commitThreadReady();
    const batch = (tag: string): Promise<void> => threeWritesAndCommit(b, tag);
    for (let n = 0; n < 5; n++) await batch(`before${n}/`);
    const staged = LmdbBackend.open(join(d, 'snap-recv', 'x', 'db'), { batchIntervalMs: 0 });
    staged.put(k('staged'), k('yes'));
    staged.commit();
    b.put(k('k0'), k('pending, replaced by the adopt'));
    b.adopt(staged);
    const atAdopt = b.committedInBackground;
    for (let n = 0; n < 5; n++) await batch(`after${n}/`);
    // Every batch handed to the thread (a due batch waits for the one under way: how many
    // commits that makes depends on the machine's speed), and at least one made there.
    await vi.waitFor(() => expect([b.pendingOps, b.committedInBackground > atAdopt]).toEqual([0, true]), { timeout: 30_000 });
    await b.abandon();
    b = LmdbBackend.open(path, { batchIntervalMs: 0 });
    expect(all(b)).toHaveLength(1 + 15);
    expect(s(b.get(k('staged')))).toBe('yes');
    expect(s(b.get(k('after4/2')))).toBe('after4/');
    await b.close();
  });

  it('a batch the commit thread fails to commit fails every write and commit after it, with LMDB\'s reason', async () => {
    const d = mkdtempSync(join(tmpdir(), 'flotilla-backend-'));
    dirs.push(d);
    const b = LmdbBackend.open(join(d, 'db'), { batchIntervalMs: 0, batchOpsMax: 2 });
    await b.commitThreadReady();
    b.put(k('a'), k('1'));
    slipEmptyKey(b);
    b.maybeCommit();
    await vi.waitFor(() => expect(() => b.put(k('b'), k('2'))).toThrow(/^backend commit to .*db failed: /), { timeout: 5000 });
    expect(() => b.commit()).toThrow(/^backend commit to .*db failed: /);
    await b.abandon();
  });

  it('a background commit that fails is reported to onFailure at once, with no later write or commit to find it; close then throws it, having let go of the file', async () => {
    const d = mkdtempSync(join(tmpdir(), 'flotilla-backend-'));
    dirs.push(d);
    const b = LmdbBackend.open(join(d, 'db'), { batchIntervalMs: 0, batchOpsMax: 2 });
    await b.commitThreadReady();
    const reported = new Promise<Error>((resolve) => b.onFailure(resolve));
    b.put(k('a'), k('1'));
    slipEmptyKey(b);
    b.maybeCommit();
    const e = await reported;
    expect(e).toBeInstanceOf(BackendIoError);
    expect(e.message).toMatch(new RegExp(`^backend commit to ${join(d, 'db')} failed: .*, \\d+ bytes free on its file system`));
    // Not a full disk (a refused key, with room left): not called one.
    const st = statfsSync(d);
    if (st.bavail * st.bsize >= BACKEND_DISK_FULL_FREE_BYTES) expect(e.message).not.toContain('ENOSPC');
    // A listener that comes later is told at once; the failure is told once.
    const late: Error[] = [];
    b.onFailure((x) => late.push(x));
    expect(late).toEqual([e]);
    await expect(b.close()).rejects.toBe(e);
    // Let go of: the file opens again, with the last commit that completed (not the failed one).
    const again = LmdbBackend.open(join(d, 'db'), { batchIntervalMs: 0 });
    expect(again.get(k('a'))).toBeUndefined();
    await again.close();
  });

  it('a commit by time that fails throws nowhere (no caller waits for it): onFailure hears it, once, and every write after it throws it', async () => {
    const d = mkdtempSync(join(tmpdir(), 'flotilla-backend-'));
    dirs.push(d);
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      const b = LmdbBackend.open(join(d, 'db'), { batchIntervalMs: 10, batchOpsMax: 1000 });
      const failures: Error[] = [];
      b.onFailure((e) => failures.push(e));
      b.put(k('a'), k('1'));
      slipEmptyKey(b);
      // The interval's commit (made here: the commit thread is not up yet) fails inside the timer.
      expect(() => vi.advanceTimersByTime(10)).not.toThrow();
      expect(failures).toHaveLength(1);
      expect(failures[0]).toBeInstanceOf(BackendIoError);
      expect(() => b.put(k('b'), k('2'))).toThrow(failures[0]);
      expect(() => b.commit()).toThrow(failures[0]);
      expect(() => vi.advanceTimersByTime(50)).not.toThrow();
      expect(failures).toHaveLength(1);
      await expect(b.close()).rejects.toBe(failures[0]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('lets at most BACKEND_PENDING_BATCHES_MAX batches wait behind a background commit: past that it commits at once, after the one under way', async () => {
    const d = mkdtempSync(join(tmpdir(), 'flotilla-backend-'));
    dirs.push(d);
    const b = LmdbBackend.open(join(d, 'member', 'db'), { batchIntervalMs: 0, batchOpsMax: 3 });
    await b.commitThreadReady();
    for (let i = 0; i < 3; i++) b.put(k(`a${i}`), k('1'));
    b.maybeCommit();
    expect(b.committedInBackground).toBe(0); // under way: its completion is a message, not yet read
    const waitingMax = BACKEND_PENDING_BATCHES_MAX * 3;
    for (let i = 0; i < waitingMax - 1; i++) b.put(k(`b${i}`), k('2'));
    b.maybeCommit();
    expect(b.pendingOps).toBe(waitingMax - 1); // due, waits for the one under way
    b.put(k('c'), k('3'));
    b.maybeCommit();
    // At the bound: the batch under way was waited for, and this one committed at once.
    expect(b.committedInBackground).toBe(1);
    expect(b.pendingOps).toBe(0);
    await b.abandon();
    const again = LmdbBackend.open(join(d, 'member', 'db'), { batchIntervalMs: 0 });
    expect(all(again)).toHaveLength(3 + waitingMax);
    await again.close();
  });

  it('close() resolves in a process with nothing else to do once the commit thread ran (dist/: run `npm run build` first)', () => {
    const d = mkdtempSync(join(tmpdir(), 'flotilla-backend-'));
    dirs.push(d);
    const mod = pathToFileURL(join(fileURLToPath(new URL('../..', import.meta.url)), 'dist', 'kv', 'backend-lmdb.js')).href;
    const script = `const { LmdbBackend } = await import(${JSON.stringify(mod)});
      const b = LmdbBackend.open(${JSON.stringify(join(d, 'db'))}, { batchIntervalMs: 0, batchOpsMax: 1 });
      for (let i = 0; i < 200 && b.committedInBackground === 0; i++) {
        b.put(new Uint8Array([1, i]), new Uint8Array([2]));
        b.maybeCommit();
        await new Promise((r) => setTimeout(r, 5));
      }
      b.put(new Uint8Array([1]), new Uint8Array([2]));
      b.maybeCommit();
      await b.close();
      console.log('closed', b.committedInBackground > 0);`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('closed true');
  });

  it('commits by time on its commit thread, and the batch is durable once it says so', async () => {
    const d = mkdtempSync(join(tmpdir(), 'flotilla-backend-'));
    dirs.push(d);
    const path = join(d, 'member', 'db');
    const b = LmdbBackend.open(path, { batchIntervalMs: 5 });
    await b.commitThreadReady();
    b.put(k('a'), k('1'));
    await vi.waitFor(() => expect(b.pendingOps).toBe(0), { timeout: 5000 });
    // Durable once the overlay let go of it: what a crash now keeps.
    await vi.waitFor(() => expect(b.committedInBackground).toBeGreaterThan(0), { timeout: 5000 });
    await b.abandon();
    const again = LmdbBackend.open(path, { batchIntervalMs: 0 });
    expect(all(again)).toEqual(['a=1']);
    await again.close();
  });

  it('shrinks its file on defragmentation after a mass deletion', async () => {
    const x = lmdb();
    const big = new Uint8Array(1024).fill(1);
    for (let i = 0; i < 5000; i++) x.backend.put(k(`k${i}`), big);
    x.backend.commit();
    for (let i = 0; i < 5000; i++) x.backend.del(k(`k${i}`));
    x.backend.commit();
    const { beforeBytes, afterBytes } = await x.backend.defragment();
    expect(beforeBytes).toBeGreaterThan(5_000_000);
    expect(afterBytes).toBeLessThan(beforeBytes / 10);
    await x.backend.close();
  });

  it('reports the file size as it is on disk after commits, a defragmentation and adopt (the size it remembers never goes stale)', async () => {
    const x = lmdb();
    const b = x.backend as LmdbBackend;
    const onDisk = (): number => statSync(b.path).size;
    const big = new Uint8Array(1024).fill(2);
    const sizes = new Set<number>();
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 3000; i++) b.put(k(`r${round}/${i}`), big);
      expect(b.dbSizeBytes()).toBe(onDisk()); // asked before the commit: remembered, then...
      b.commit();
      expect(b.dbSizeBytes()).toBe(onDisk()); // ...read again after it: the file grew
      sizes.add(b.dbSizeBytes());
    }
    expect(sizes.size).toBeGreaterThan(1);
    for (let round = 0; round < 4; round++) for (let i = 0; i < 3000; i++) b.del(k(`r${round}/${i}`));
    b.commit();
    const { afterBytes } = await b.defragment();
    expect(b.dbSizeBytes()).toBe(onDisk());
    expect(afterBytes).toBe(onDisk());
    const staged = x.staging();
    for (let i = 0; i < 2000; i++) staged.put(k(`s${i}`), big);
    staged.commit();
    const before = b.dbSizeBytes();
    b.adopt(staged);
    expect(b.dbSizeBytes()).toBe(onDisk());
    expect(b.dbSizeBytes()).not.toBe(before);
    await b.close();
  });
});
