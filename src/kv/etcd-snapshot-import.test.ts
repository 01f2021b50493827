/**
 * `snapshot restore`'s streamed import (etcdSnapshotSource -> MvccStore.importRevisions): the
 * same store as the image path (importEtcdSnapshot -> MvccStore.restore) for every kind of
 * revision; a hostile file refused as the revision that breaks an invariant is met, leaving no
 * data dir; and memory that does not grow with the values.
 */
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { afterAll, describe, expect, it } from 'vitest';
import { rng } from '../lib/prng.js';
import { restoreSnapshot } from '../cli/snapshot-restore.js';
import { LmdbBackend } from './backend-lmdb.js';
import { MemoryBackend, type Backend } from './backend.js';
import { BoltReader, bufferSource } from './bbolt.js';
import { etcdSnapshot, etcdSnapshotSource, importEtcdSnapshot, withSnapshotFile, type EtcdSnapshotInput } from './etcd-snapshot.js';
import { IMPORT_BATCH_BYTES, IMPORT_BATCH_OPS, MvccStore, type KeyValue, type StoreImportSource, type StoreRevision, type StoreSnapshotSource } from './mvcc.js';
import { SnapshotImageError } from './snapshot-image.js';
import { KvStateMachine } from './state-machine.js';
import { encodeValue } from './commands.js';
import { parseInitialCluster } from '../server/config.js';
import { DiskStorage } from '../storage/storage.js';

const enc = new TextEncoder();
const ETCD_FIXTURE = new Uint8Array(readFileSync(new URL('../../test/fixtures/etcd-3.4.23.snapshot.db', import.meta.url)));
const withoutHash = (b: Uint8Array) => b.subarray(0, b.length - 32);
const concat = (parts: Iterable<Uint8Array>): Uint8Array => new Uint8Array(Buffer.concat([...parts]));
const dir = mkdtempSync(join(tmpdir(), 'flotilla-import-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The file (with its SHA-256) of a store snapshot source. */
const fileOf = (store: StoreSnapshotSource, input: Partial<EtcdSnapshotInput> = {}): Uint8Array => concat(etcdSnapshot({ members: [], consistentIndex: 7, ...input, store }).chunks);
const fileOfStore = (s: MvccStore): Uint8Array => {
  s.backend.commit();
  const view = s.backend.readView();
  try {
    return fileOf(MvccStore.snapshotSource(view));
  } finally {
    view.close();
  }
};
/** Both paths from one file: the image (old) and the streamed import (new) into `backend`, opened verified. */
const bothWays = (file: Uint8Array, backend: Backend = new MemoryBackend()): { image: MvccStore; streamed: MvccStore } => {
  const r = BoltReader.open(bufferSource(withoutHash(file)));
  const image = MvccStore.restore(importEtcdSnapshot(r).storeImage);
  const summary = MvccStore.importRevisions(backend, etcdSnapshotSource(r).source);
  const streamed = new MvccStore({}, backend, { verify: true });
  expect([summary.revision, summary.compactRevision, summary.keys, summary.leases]).toEqual([image.revision, image.compactRevision, image.keyCount, image.leaseIds().length]);
  return { image, streamed };
};
const same = (a: MvccStore, b: MvccStore): void => {
  expect([b.revision, b.compactRevision, b.keyCount, b.leaseIds()]).toEqual([a.revision, a.compactRevision, a.keyCount, a.leaseIds()]);
  expect(b.hashKv(0)).toEqual(a.hashKv(0));
  const lease = (s: MvccStore, id: bigint) => {
    const l = s.lease(id)!;
    return { id, ttl: l.ttl, keys: l.keys.map((k) => Buffer.from(k).toString('hex')) };
  };
  for (const id of a.leaseIds()) expect(lease(b, id)).toEqual(lease(a, id));
  expect(Buffer.from(b.snapshot()).equals(Buffer.from(a.snapshot()))).toBe(true);
};

/** A random store: puts (some with leases), deletions, txns of several sub-revisions, revoked leases, compactions. */
function randomStore(seed: number): MvccStore {
  const g = rng(seed);
  const pick = (n: number) => Math.floor(g.next() * n);
  const s = new MvccStore();
  const leases: bigint[] = [];
  const key = () => enc.encode(`k${pick(40)}`);
  for (let i = 0; i < 300; i++) {
    const what = pick(20);
    if (what < 2) {
      const id = BigInt(1 + pick(1_000_000));
      if (!leases.includes(id)) {
        s.grantLease(id, 1 + pick(100));
        leases.push(id);
      }
    } else if (what < 3 && leases.length > 0) {
      s.revokeLease(leases.splice(pick(leases.length), 1)[0]!);
    } else if (what < 6) {
      s.deleteRange({ key: key(), ...(pick(2) ? { rangeEnd: enc.encode(`k${pick(40)}z`) } : {}) });
    } else if (what < 8) {
      s.txn({ compare: [], success: [{ put: { key: enc.encode('t1'), value: enc.encode(`a${i}`) } }, { put: { key: enc.encode('t2'), value: enc.encode(`b${i}`) } }, { deleteRange: { key: key() } }], failure: [] });
    } else if (what < 9 && s.revision > s.compactRevision + 2) {
      s.compact(s.compactRevision + 1 + pick(s.revision - s.compactRevision - 1));
    } else {
      const lease = leases.length > 0 && pick(3) === 0 ? leases[pick(leases.length)]! : 0n;
      s.put({ key: key(), value: enc.encode('v'.repeat(pick(50))), ...(lease ? { lease } : {}) });
    }
  }
  return s;
}

describe('snapshot restore: the streamed import', () => {
  it('gives the store the image path gives: random stores (puts, deletions, txns, leases, compaction), a long key, an etcd 3.4 file', async () => {
    /** Stores whose file has what the import must get right: a compaction, keys attached to leases, deleted keys, txns' sub-revisions. */
    const seen = { compacted: 0, leased: 0, deleted: 0, subRevisions: 0 };
    for (let seed = 1; seed <= 40; seed++) {
      const s = randomStore(seed);
      const { image, streamed } = bothWays(fileOfStore(s));
      same(image, streamed);
      same(s, streamed);
      if (s.compactRevision > 1) seen.compacted++;
      if (s.leaseIds().some((id) => s.lease(id)!.keys.length > 0)) seen.leased++;
      const changes = s.changesSince(s.compactRevision + 1);
      if (changes.some((e) => e.type === 'delete')) seen.deleted++;
      if (changes.some((e, i) => i > 0 && e.kv.modRevision === changes[i - 1]!.kv.modRevision)) seen.subRevisions++;
    }
    expect(Object.values(seen).every((n) => n >= 10), JSON.stringify(seen)).toBe(true);
    const s = randomStore(99);
    s.put({ key: new Uint8Array(600).fill(0x6b), value: enc.encode('a key longer than a backend key'), lease: s.leaseIds()[0] ?? 0n });
    s.put({ key: new Uint8Array(700).fill(0x6b), value: enc.encode('another in the same bucket') });
    same(s, bothWays(fileOfStore(s)).streamed);
    const etcd = bothWays(ETCD_FIXTURE);
    same(etcd.image, etcd.streamed);
    expect([etcd.streamed.revision, etcd.streamed.compactRevision]).toEqual([67, 3]);
    // On LMDB, committed in batches as a restore writes it.
    const lmdb = LmdbBackend.open(join(dir, 'lmdb-same'), { batchIntervalMs: 0, batchOpsMax: Number.MAX_SAFE_INTEGER });
    try {
      const big = randomStore(7);
      for (let i = 0; i < 30_000; i++) big.put({ key: enc.encode(`many/${i}`), value: enc.encode(`${i}`) });
      const { image, streamed } = bothWays(fileOfStore(big), lmdb);
      same(image, streamed);
    } finally {
      await lmdb.close();
    }
  });

  it("writes the backend a member that restored the file's image at index 1 holds, entry for entry; the Raft snapshot is the stored marker", async () => {
    const s = randomStore(5);
    const bytes = fileOfStore(s);
    const file = join(dir, 'good.db');
    writeFileSync(file, bytes);
    const dataDir = join(dir, 'good-restored');
    const flags = { name: 'x', initialCluster: 'x=http://127.0.0.1:1,y=http://127.0.0.1:2', initialClusterToken: 't', initialAdvertisePeerUrls: 'http://127.0.0.1:1', dataDir };
    const r = await restoreSnapshot(file, flags);
    expect([r.revision, r.keys, r.leases, r.hash]).toEqual([s.revision, s.keyCount, s.leaseIds().length, s.hashKv(0).hash]);
    // What the image path made the member hold at its first start: the file's image restored at index 1.
    const members = parseInitialCluster(flags.initialCluster, flags.initialClusterToken);
    const before = LmdbBackend.open(join(dir, 'image-path-db'), { batchIntervalMs: 0 });
    const restored = LmdbBackend.open(join(dataDir, 'member', 'db'), { batchIntervalMs: 0 });
    try {
      const old = new KvStateMachine({ bootstrapMembers: members }, before);
      old.restore(encodeValue({ v: 1, store: importEtcdSnapshot(BoltReader.open(bufferSource(withoutHash(bytes)))).storeImage, members: [] }), 1);
      const entries = (b: Backend) => [...b.scan(Uint8Array.of(0))].map(([k, v]) => `${Buffer.from(k).toString('hex')}=${Buffer.from(v).toString('hex')}`);
      const want = entries(before);
      expect(want.length).toBeGreaterThan(s.keyCount);
      expect(entries(restored)).toEqual(want);
      const sm = new KvStateMachine({ bootstrapMembers: members }, restored);
      expect(sm.appliedIndex).toBe(1);
      expect(sm.cluster.toImage()).toEqual(old.cluster.toImage());
      same(s, sm.store);
    } finally {
      await before.close();
      await restored.close();
    }
    const storage = await DiskStorage.open(dataDir, { voters: [], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false });
    try {
      const { snapshot, hardState } = await storage.load();
      expect([snapshot.meta.index, snapshot.meta.term, new TextDecoder().decode(snapshot.data), hardState.commit]).toEqual([1, 1, '{"v":"stored","applied":1}', 1]);
      expect(snapshot.meta.confState.voters).toEqual(members.map((m) => m.raftId));
    } finally {
      await storage.close();
    }
  });

  /** A source of hand-made revisions (the file a hostile writer makes: every entry well formed alone). */
  const put = (main: number, sub: number, key: string, createRevision: number, version: number, lease = 0n, value = enc.encode(`v${main}`)): StoreRevision => {
    const k = enc.encode(key);
    const kv: KeyValue = { key: k, createRevision, modRevision: main, version, value, lease };
    return { main, sub, key: k, kv };
  };
  const del = (main: number, sub: number, key: string): StoreRevision => ({ main, sub, key: enc.encode(key), kv: null });
  const source = (revisions: StoreRevision[], leases: { id: bigint; ttl: number }[] = [], compactRevision = 0): StoreSnapshotSource => ({
    revision: Math.max(1, ...revisions.map((r) => r.main)),
    compactRevision,
    leases: () => leases[Symbol.iterator](),
    revisions: () => revisions[Symbol.iterator](),
  });
  const hostile: [string, StoreSnapshotSource, RegExp][] = [
    ['a revision twice (a put and a deletion at 3.0)', source([put(2, 0, 'a', 2, 1), put(3, 0, 'a', 2, 2), del(3, 0, 'a')]), /store: revision 3\.0 not after 3\.0: revisions out of order or repeated$/],
    ['a revision missing (4 after 2)', source([put(2, 0, 'a', 2, 1), put(4, 0, 'b', 4, 1)]), /store: revision 4\.0 follows 2\.0: changes missing or repeated$/],
    ['a version that does not follow', source([put(2, 0, 'a', 2, 1), put(3, 0, 'a', 2, 3)]), /store: revision 3\.0 of key "a": version 3 created at 2 does not follow version 1 created at 2$/],
    ['a new key not at version 1', source([put(2, 0, 'a', 2, 2)]), /store: revision 2\.0 of key "a": a new key's first version must be 1 created at its revision 2, got version 2 created at 2$/],
    ['a deletion of a never-put key', source([put(2, 0, 'a', 2, 1), del(3, 0, 'never')]), /store: revision 3\.0 of key "never": a history that starts with a deletion$/],
    ['a deletion of a deleted key', source([put(2, 0, 'a', 2, 1), del(3, 0, 'a'), del(4, 0, 'a')]), /store: revision 4\.0 of key "a": a deletion of a deleted key$/],
    ['a live key attached to a missing lease', source([put(2, 0, 'a', 2, 1, 5n), put(3, 0, 'b', 3, 1, 5n)], [{ id: 6n, ttl: 10 }]), /store: 2 live keys are attached to lease 5, which the lease bucket does not hold$/],
    ['a create revision past the revision', source([put(2, 0, 'a', 9, 1)], [], 5), /store: revision 2\.0 of key "a": create revision 9 outside \[2, 2\]$/],
  ];

  it('refuses a hostile file at the revision that breaks an invariant, with a clear message; no data dir is left', async () => {
    for (const [name, src, message] of hostile) {
      const bytes = fileOf(src);
      // The store alone: SnapshotImageError naming the revision.
      const r = BoltReader.open(bufferSource(withoutHash(bytes)));
      expect(() => MvccStore.importRevisions(new MemoryBackend(), etcdSnapshotSource(r).source), name).toThrow(SnapshotImageError);
      expect(() => MvccStore.importRevisions(new MemoryBackend(), etcdSnapshotSource(r).source), name).toThrow(message);
      // The image path refuses it too.
      expect(() => MvccStore.restore(importEtcdSnapshot(r).storeImage), name).toThrow();
      // The restore: its error, and nothing left behind.
      const file = join(dir, `hostile-${hostile.findIndex((h) => h[0] === name)}.db`);
      writeFileSync(file, bytes);
      const dataDir = `${file}.restored`;
      const flags = { name: 'x', initialCluster: 'x=http://127.0.0.1:1', initialClusterToken: 't', initialAdvertisePeerUrls: 'http://127.0.0.1:1', dataDir };
      await expect(restoreSnapshot(file, flags), name).rejects.toThrow(new RegExp(`^snapshot file holds no key space Flotilla can restore: ${message.source}`));
      expect(existsSync(dataDir), name).toBe(false);
    }
  });

  it('refuses revisions out of order from any source (the store does not rely on the file format to order them)', () => {
    const src: StoreImportSource = {
      compactRevision: 0,
      leases: () => undefined,
      revisions(fn) {
        for (const r of [put(2, 0, 'a', 2, 1), put(3, 0, 'b', 3, 1), put(2, 1, 'c', 2, 1)]) fn(r);
      },
    };
    expect(() => MvccStore.importRevisions(new MemoryBackend(), src)).toThrow(/^store: revision 2\.1 not after 3\.0: revisions out of order or repeated$/);
  });

  it('commits every IMPORT_BATCH_OPS writes: the overlay never holds more', () => {
    const s = new MvccStore();
    for (let i = 0; i < 12_000; i++) s.put({ key: enc.encode(`k${i}`), value: enc.encode('v') });
    const r = BoltReader.open(bufferSource(withoutHash(fileOfStore(s))));
    const backend = new MemoryBackend();
    const { source } = etcdSnapshotSource(r);
    let most = 0;
    MvccStore.importRevisions(backend, {
      compactRevision: source.compactRevision,
      leases: (fn) => source.leases(fn),
      revisions: (fn) => source.revisions((rev) => {
        fn(rev);
        most = Math.max(most, backend.pendingOps);
      }),
    });
    // A record and a history per revision: 24,000 writes, committed in batches.
    expect(most).toBeLessThan(IMPORT_BATCH_OPS);
    expect(most).toBeGreaterThan(IMPORT_BATCH_OPS - 3);
    expect(backend.commits).toBeGreaterThanOrEqual(3);
    same(s, new MvccStore({}, backend, { verify: true }));
  });

  it('the memory an import holds does not grow with the values: N keys of 64 KiB, heap retained far below N x 64 KiB', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const KEYS = 2000;
    const VALUE = 64 * 1024;
    const value = new Uint8Array(VALUE).fill(0x61);
    // The file streamed to disk from a source that makes each revision as it is read.
    const src: StoreSnapshotSource = {
      revision: KEYS + 1,
      compactRevision: 0,
      leases: () => [][Symbol.iterator](),
      *revisions() {
        for (let i = 0; i < KEYS; i++) yield put(i + 2, 0, `key/${String(i).padStart(6, '0')}`, i + 2, 1, 0n, value);
      },
    };
    const path = join(dir, 'big.db');
    const fd = openSync(path, 'w');
    const snap = etcdSnapshot({ members: [], consistentIndex: 1, store: src });
    for (const c of snap.chunks) writeSync(fd, c);
    closeSync(fd);
    gc();
    const inUse = () => {
      const m = process.memoryUsage();
      return m.heapUsed + m.arrayBuffers;
    };
    const base = inUse();
    let peak = 0;
    let n = 0;
    const backend = LmdbBackend.open(join(dir, 'big-lmdb'), { batchIntervalMs: 0, batchOpsMax: Number.MAX_SAFE_INTEGER });
    try {
      withSnapshotFile(path, {}, (r) => {
        const { source } = etcdSnapshotSource(r);
        const sampled: StoreImportSource = {
          compactRevision: source.compactRevision,
          leases: (fn) => source.leases(fn),
          revisions: (fn) =>
            source.revisions((rev) => {
              fn(rev);
              if (++n % 100 === 0) {
                gc();
                peak = Math.max(peak, inUse() - base);
              }
            }),
        };
        MvccStore.importRevisions(backend, sampled);
      });
      gc();
      peak = Math.max(peak, inUse() - base);
      expect(new MvccStore({}, backend, { verify: true }).keyCount).toBe(KEYS);
    } finally {
      await backend.close();
    }
    const total = KEYS * VALUE;
    console.log(`import of ${KEYS} keys of ${VALUE} B (${(total / 2 ** 20).toFixed(0)} MiB of values): heap + array buffers retained at most ${(peak / 2 ** 20).toFixed(1)} MiB`);
    // At most a batch of the backend's overlay (IMPORT_BATCH_BYTES) and a little: not the values.
    expect(peak).toBeLessThan(IMPORT_BATCH_BYTES + 8 * 2 ** 20);
    expect(peak).toBeLessThan(total / 4);
  }, 120_000);
});
