/**
 * The key index kept in the backend (issue 11): keys too long for a backend key of their own
 * (in buckets) behave as short ones; a store of layout 1 (per-revision 'k' index entries,
 * rebuilt in the heap at every open) is migrated once at open, also after a migration cut
 * short; opening a migrated store reads no index.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BACKEND_KEY_BYTES_MAX, MemoryBackend } from './backend.js';
import { metaKey, MvccStore, type KvEvent, type RangeRequest } from './mvcc.js';
import { toLayout1 } from './testing/layout1.js';

const b = (s: string): Uint8Array => new TextEncoder().encode(s);
const hex = (u: Uint8Array): string => Buffer.from(u).toString('hex');

/** The longest user key with an 'i' record of its own (prefix byte, key, a byte to spare). */
const OWN = BACKEND_KEY_BYTES_MAX - 2;
const P = 'p'.repeat(OWN);
/** Keys in ascending byte order, most of them past OWN bytes and sharing their first OWN bytes. */
const LONG = [P.slice(0, OWN - 1), P.slice(0, OWN - 1) + 'q', P, `${P}\u0000`, `${P}a`, `${P}a${'z'.repeat(300)}`, `${P}b`, `${P.slice(0, OWN - 1)}q${'q'.repeat(40)}`, 'q'.repeat(700)].map((k) =>
  Uint8Array.from(k, (c) => c.charCodeAt(0)),
).sort((x, y) => Buffer.compare(x, y));
/** Short stand-ins in the same order. */
const SHORT = LONG.map((_, i) => b(String.fromCharCode(0x61 + i)));

type Op =
  | { t: 'put'; k: number; v: number; lease: boolean }
  | { t: 'del'; k: number; end: number }
  | { t: 'compact'; back: number }
  | { t: 'grant' }
  | { t: 'revoke' }
  | { t: 'read'; k: number; end: number; back: number; limit: number; desc: boolean; count: boolean };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ t: fc.constant('put' as const), k: fc.nat(LONG.length - 1), v: fc.nat(5), lease: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('del' as const), k: fc.nat(LONG.length - 1), end: fc.nat(LONG.length) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('compact' as const), back: fc.nat(4) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('grant' as const) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('revoke' as const) }) },
  {
    weight: 3,
    arbitrary: fc.record({ t: fc.constant('read' as const), k: fc.nat(LONG.length - 1), end: fc.nat(LONG.length), back: fc.nat(5), limit: fc.nat(3), desc: fc.boolean(), count: fc.boolean() }),
  },
);

/** Runs the ops on a store whose keys are `keys` (indexes into it); the readings, with keys as indexes. */
function run(ops: readonly Op[], keys: readonly Uint8Array[], m: MvccStore): unknown[] {
  const ix = (k: Uint8Array): number => keys.findIndex((x) => Buffer.compare(x, k) === 0);
  /** end index: <= k one key, keys.length everything from the key on ("\0"), else up to keys[end]. */
  const endOf = (k: number, end: number): Uint8Array | undefined => (end <= k ? undefined : end === keys.length ? Uint8Array.of(0) : keys[end]);
  const out: unknown[] = [];
  const leases: bigint[] = [];
  let next = 1n;
  const ev = (e: KvEvent) => [e.type, ix(e.kv.key), e.kv.modRevision, e.kv.version, e.kv.lease, e.prevKv?.modRevision];
  m.onCommit((events, rev) => out.push(['commit', rev, events.map(ev)]));
  for (const o of ops) {
    try {
      if (o.t === 'put') out.push(m.put({ key: keys[o.k]!, value: b(String(o.v)), prevKv: true, ...(o.lease && leases.length ? { lease: leases.at(-1)! } : {}) }).prevKv?.modRevision);
      else if (o.t === 'del') {
        const rangeEnd = endOf(o.k, o.end);
        out.push(m.deleteRange({ key: keys[o.k]!, ...(rangeEnd ? { rangeEnd } : {}), prevKv: true }).prevKvs.map((kv) => ix(kv.key)));
      } else if (o.t === 'compact') {
        const to = m.revision - o.back;
        if (to > m.compactRevision) m.compact(to);
      } else if (o.t === 'grant') {
        leases.push(next);
        m.grantLease(next++, 10);
      } else if (o.t === 'revoke') {
        if (leases.length) m.revokeLease(leases.shift()!);
      } else {
        const rangeEnd = endOf(o.k, o.end);
        const req: RangeRequest = { key: keys[o.k]!, ...(rangeEnd ? { rangeEnd } : {}), revision: m.revision - o.back, limit: o.limit, ...(o.desc ? { sortOrder: 'descend' } : {}), countOnly: o.count };
        const r = m.range(req);
        out.push([r.count, r.more, r.kvs.map((kv) => [ix(kv.key), kv.modRevision, kv.createRevision, kv.version, kv.lease])]);
      }
    } catch (e) {
      out.push(String(e));
    }
    out.push(m.keyCount, m.leaseIds().map((id) => [id, m.lease(id)!.keys.map(ix)]));
  }
  out.push(m.changesSince(0).map(ev));
  return out;
}

function dump(backend: MemoryBackend): string[] {
  return [...backend.scan(Uint8Array.of(0))].map(([k, v]) => `${hex(k)}=${hex(v)}`);
}

describe('MvccStore: the key index in the backend', () => {
  it('keys too long for a backend key of their own (in buckets) behave as short keys in the same order', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 5, maxLength: 60 }), (ops) => {
        const long = new MvccStore({}, new MemoryBackend({ durable: true }));
        expect(run(ops, LONG, long)).toEqual(run(ops, SHORT, new MvccStore()));
        // ...and a reopened store (its index read from the backend; verified as a streamed one is) and a restored one hold the same.
        long.backend.commit();
        const reopened = new MvccStore({}, (long.backend as MemoryBackend).reopen(), { verify: true });
        expect(reopened.snapshot()).toEqual(long.snapshot());
        expect(reopened.keyCount).toBe(long.keyCount);
        expect(MvccStore.restore(long.snapshot()).hashKv()).toEqual(long.hashKv());
      }),
      { numRuns: 50 },
    );
  });

  it('migrates a store of layout 1 once at open: the same store, its old index entries gone', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 5, maxLength: 60 }), fc.boolean(), (ops, long) => {
        const keys = long ? LONG : SHORT;
        const m = new MvccStore({}, new MemoryBackend({ durable: true }));
        run(ops, keys, m);
        const backend = m.backend as MemoryBackend;
        backend.commit();
        const before = dump(backend);
        const [snapshot, hash, count] = [m.snapshot(), m.hashKv(), m.keyCount];
        toLayout1(backend);
        // A store whose every revision was compacted away has no index entries to migrate: it
        // opens as one never written (its key count, layout and guard recorded with its next write).
        const meta = [hex(metaKey('keys')), hex(metaKey('layout'))];
        const unwritten = (e: string) => meta.includes(e.split('=')[0]!) || e.startsWith('6b');
        const want = dump(backend).some((e) => e.startsWith('6b')) ? before : before.filter((e) => !unwritten(e));
        const migrated = new MvccStore({}, backend.reopen(), { verify: true });
        expect(dump(migrated.backend as MemoryBackend)).toEqual(want);
        for (const st of [migrated, new MvccStore({}, (migrated.backend as MemoryBackend).reopen())]) {
          expect(st.snapshot()).toEqual(snapshot);
          expect(st.hashKv()).toEqual(hash);
          expect(st.keyCount).toBe(count);
        }
      }),
      { numRuns: 100 },
    );
  });

  it('migrates a store of more index entries than one migration batch: histories that span batches, leases', () => {
    const m = new MvccStore({}, new MemoryBackend({ durable: true }));
    m.grantLease(3n, 10);
    // 1,000 keys, 110 revisions each, in revision order: every key's history spans batches.
    for (let i = 0; i < 110_000; i++) {
      m.put({ key: b(`k${i % 1000}`), value: b('v'), ...(i % 7 === 0 ? { lease: 3n } : {}) });
      if (i % 10_000 === 0) m.backend.commit();
    }
    m.deleteRange({ key: b('k5'), rangeEnd: b('k6') });
    const backend = m.backend as MemoryBackend;
    backend.commit();
    const want = dump(backend);
    toLayout1(backend);
    const migrated = new MvccStore({}, backend.reopen());
    expect(dump(migrated.backend as MemoryBackend)).toEqual(want);
    expect(migrated.keyCount).toBe(1000);
  });

  it('compacts in batches: more keys to change than one batch', () => {
    const m = new MvccStore();
    for (let i = 0; i < 25_000; i++) m.put({ key: b(`k${i}`), value: b('1') });
    for (let i = 0; i < 25_000; i++) m.put({ key: b(`k${i}`), value: b('2') });
    for (let i = 0; i < 25_000; i += 5) m.deleteRange({ key: b(`k${i}`) });
    m.put({ key: b('later'), value: b('x') });
    m.compact(m.revision - 1);
    const revisions = [...m.backend.scan(Uint8Array.of(0x72), Uint8Array.of(0x73))].length;
    expect(revisions).toBe(20_001);
    expect(m.keyCount).toBe(20_001);
    expect(m.range({ key: b('k'), rangeEnd: b('l'), countOnly: true }).count).toBe(20_000);
    expect(m.changesSince(0).map((e) => e.kv.modRevision)).toEqual([m.revision]);
    expect(m.range({ key: b('k7') }).kvs[0]!.version).toBe(2);
    // Every invariant of a compacted store holds (restore checks the image whole).
    expect(MvccStore.restore(m.snapshot()).hashKv()).toEqual(m.hashKv());
  });

  it('a migration cut short starts again (what it wrote dropped) or finishes deleting the old entries', () => {
    const m = new MvccStore({}, new MemoryBackend({ durable: true }));
    m.grantLease(7n, 10);
    for (let i = 0; i < 50; i++) m.put({ key: b(`k${i % 20}`), value: b(String(i)), ...(i % 3 === 0 ? { lease: 7n } : {}) });
    m.deleteRange({ key: b('k1'), rangeEnd: b('k15') });
    m.compact(30);
    const backend = m.backend as MemoryBackend;
    backend.commit();
    const want = dump(backend);
    toLayout1(backend);
    // Cut short before the layout record: a stale index record and attachment are left.
    backend.put(Uint8Array.from([0x69, ...b('k3')]), new Uint8Array(16));
    backend.put(Uint8Array.from([0x61, 0, 0, 0, 0, 0, 0, 0, 9, ...b('zz')]), new Uint8Array(0));
    backend.commit();
    expect(dump(new MvccStore({}, backend.reopen()).backend as MemoryBackend)).toEqual(want);
    // Cut short after it: old entries are left beside a complete new index.
    const again = new MvccStore({}, new MemoryBackend({ durable: true }));
    again.put({ key: b('a'), value: b('1') });
    const wantAgain = dump(again.backend as MemoryBackend);
    again.backend.put(Uint8Array.from([0x6b, ...new Array<number>(7).fill(0), 2, ...new Array<number>(8).fill(0)]), new Uint8Array(12));
    again.backend.commit();
    expect(dump(new MvccStore({}, (again.backend as MemoryBackend).reopen()).backend as MemoryBackend)).toEqual(wantAgain);
  });

  it('opening a store reads its metadata and leases, not its key index nor its revisions', () => {
    const m = new MvccStore({}, new MemoryBackend({ durable: true }));
    m.grantLease(5n, 10);
    for (let i = 0; i < 2000; i++) m.put({ key: b(`key/${i}`), value: b('v'), ...(i % 2 ? { lease: 5n } : {}) });
    m.backend.commit();
    const backend = (m.backend as MemoryBackend).reopen();
    let scanned = 0;
    const scan = backend.scan.bind(backend);
    backend.scan = function* (start, end) {
      for (const e of scan(start, end)) {
        scanned++;
        yield e;
      }
    };
    const opened = new MvccStore({}, backend);
    expect(scanned).toBe(1); // the lease
    expect(opened.keyCount).toBe(2000);
    expect(opened.lease(5n)!.keys).toHaveLength(1000);
    expect(opened.range({ key: b('key/'), rangeEnd: b('key0'), countOnly: true }).count).toBe(2000);
  });

  it('a store of layout 2 holds a layout 1 index entry that a build of layout 1 refuses at open (an attached lease no store holds)', () => {
    const m = new MvccStore({}, new MemoryBackend({ durable: true }));
    m.put({ key: b('a'), value: b('1') });
    const guards = [...m.backend.scan(Uint8Array.of(0x6b), Uint8Array.of(0x6c))];
    expect(guards).toHaveLength(1);
    const [k, v] = guards[0]!;
    // As layout 1's open read an index entry: revision, put flag, lease, key.
    expect([...k.subarray(1)].every((x) => x === 0)).toBe(true);
    expect(v[0]).toBe(0);
    expect(new DataView(v.buffer, v.byteOffset).getBigUint64(1)).toBe(2n ** 64n - 1n);
    expect(Buffer.from(v.subarray(9)).toString()).toMatch(/layout 2/);
    // ...and this build neither migrates nor drops it.
    m.backend.commit();
    const reopened = new MvccStore({}, (m.backend as MemoryBackend).reopen());
    expect([...reopened.backend.scan(Uint8Array.of(0x6b), Uint8Array.of(0x6c))]).toHaveLength(1);
    expect(reopened.range({ key: b('a') }).count).toBe(1);
  });

  it('refuses a backend of a newer layout', () => {
    const backend = new MemoryBackend({ durable: true });
    backend.put(metaKey('layout'), Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 3));
    expect(() => new MvccStore({}, backend)).toThrow(/layout 3; this build reads layout 2/);
  });
});
