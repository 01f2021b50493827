import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KvError } from './errors.js';
import { prefixEnd } from '../lib/key-range.js';
import { bin, MvccStore, TXN_NESTING_MAX, TXN_OPS_TOTAL_MAX, txnSize, type KeyValue, type RangeRequest, type RequestOp, type TxnRequest } from './mvcc.js';

const b = (s: string): Uint8Array => new TextEncoder().encode(s);
const s = (u: Uint8Array): string => new TextDecoder().decode(u);
const ALL = Uint8Array.of(0);
const keys = (r: { kvs: KeyValue[] }): string[] => r.kvs.map((kv) => s(kv.key));

function err(f: () => unknown): { code: string; message: string } {
  try {
    f();
  } catch (e) {
    if (e instanceof KvError) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error('expected an error');
}

describe('MvccStore: etcd semantics', () => {
  it('revisions: empty store at 1, each write +1, no-op delete and reads leave it', () => {
    const m = new MvccStore();
    expect(m.revision).toBe(1);
    m.put({ key: b('a'), value: b('1') });
    expect(m.revision).toBe(2);
    m.put({ key: b('a'), value: b('2') });
    const kv = m.range({ key: b('a') }).kvs[0]!;
    expect([kv.createRevision, kv.modRevision, kv.version, s(kv.value)]).toEqual([2, 3, 2, '2']);
    expect(m.deleteRange({ key: b('zzz') }).deleted).toBe(0);
    expect(m.revision).toBe(3);
    expect(m.deleteRange({ key: b('a'), prevKv: true }).prevKvs.map((x) => s(x.value))).toEqual(['2']);
    expect(m.revision).toBe(4);
    m.put({ key: b('a'), value: b('3') });
    const again = m.range({ key: b('a') }).kvs[0]!;
    expect([again.createRevision, again.modRevision, again.version]).toEqual([5, 5, 1]);
    // Older revisions stay readable.
    expect(keys(m.range({ key: b('a'), revision: 4 }))).toEqual([]);
    expect(s(m.range({ key: b('a'), revision: 2 }).kvs[0]!.value)).toBe('1');
  });

  it('ranges: prefix, from-key, all, limit/more/count, sort, keys-only, count-only, filters', () => {
    const m = new MvccStore();
    for (const k of ['foo', 'foo1', 'foo2', 'fop', 'bar']) m.put({ key: b(k), value: b(`v-${k}`) });
    m.put({ key: b('foo1'), value: b('zz') });
    expect(keys(m.range({ key: b('foo'), rangeEnd: prefixEnd(b('foo')) }))).toEqual(['foo', 'foo1', 'foo2']);
    expect(keys(m.range({ key: b('foo1'), rangeEnd: ALL }))).toEqual(['foo1', 'foo2', 'fop']);
    expect(keys(m.range({ key: ALL, rangeEnd: ALL }))).toEqual(['bar', 'foo', 'foo1', 'foo2', 'fop']);
    const lim = m.range({ key: ALL, rangeEnd: ALL, limit: 2 });
    expect([keys(lim), lim.more, lim.count]).toEqual([['bar', 'foo'], true, 5]);
    expect(m.range({ key: ALL, rangeEnd: ALL, limit: 5 }).more).toBe(false);
    expect(keys(m.range({ key: ALL, rangeEnd: ALL, sortOrder: 'descend' }))).toEqual(['fop', 'foo2', 'foo1', 'foo', 'bar']);
    // A non-key target with no order sorts ascending.
    expect(keys(m.range({ key: ALL, rangeEnd: ALL, sortTarget: 'mod' }))).toEqual(['foo', 'foo2', 'fop', 'bar', 'foo1']);
    expect(keys(m.range({ key: ALL, rangeEnd: ALL, sortTarget: 'value', sortOrder: 'descend', limit: 1 }))).toEqual(['foo1']);
    expect(keys(m.range({ key: ALL, rangeEnd: ALL, sortTarget: 'create', sortOrder: 'descend', maxCreateRevision: 4, limit: 1 }))).toEqual(['foo2']);
    expect(m.range({ key: b('foo'), keysOnly: true }).kvs[0]!.value.length).toBe(0);
    const c = m.range({ key: ALL, rangeEnd: ALL, countOnly: true });
    expect([c.kvs.length, c.count]).toEqual([0, 5]);
    expect(keys(m.range({ key: ALL, rangeEnd: ALL, minModRevision: 6 }))).toEqual(['bar', 'foo1']);
    // Count ignores filters and limit.
    expect(m.range({ key: ALL, rangeEnd: ALL, minModRevision: 6, limit: 1 }).count).toBe(5);
  });

  it('errors with etcd texts, and nothing changes', () => {
    const m = new MvccStore();
    m.put({ key: b('a'), value: b('1') });
    expect(err(() => m.range({ key: new Uint8Array(0) }))).toEqual({ code: 'emptyKey', message: 'etcdserver: key is not provided' });
    expect(err(() => m.range({ key: b('a'), revision: 99 }))).toEqual({ code: 'futureRev', message: 'etcdserver: mvcc: required revision is a future revision' });
    expect(err(() => m.put({ key: b('a'), value: b('x'), lease: 42n }))).toEqual({ code: 'leaseNotFound', message: 'etcdserver: requested lease not found' });
    expect(err(() => m.put({ key: b('a'), value: b('x'), ignoreValue: true })).message).toBe('etcdserver: value is provided');
    expect(err(() => m.put({ key: b('nope'), ignoreValue: true })).message).toBe('etcdserver: key not found');
    expect(err(() => m.put({ key: b('a'), lease: 7n, ignoreLease: true })).message).toBe('etcdserver: lease is provided');
    const ops = Array.from({ length: 129 }, (_, i) => ({ put: { key: b(`k${i}`), value: b('v') } }));
    expect(err(() => m.txn({ compare: [], success: ops, failure: [] })).message).toBe('etcdserver: too many operations in txn request');
    expect(m.txn({ compare: [], success: ops.slice(0, 128), failure: [] }).succeeded).toBe(true);
    const dup = { compare: [], success: [{ put: { key: b('d'), value: b('1') } }, { put: { key: b('d'), value: b('2') } }], failure: [] };
    expect(err(() => m.txn(dup)).message).toBe('etcdserver: duplicate key given in txn request');
    const putInDel = { compare: [], success: [{ deleteRange: { key: b('c'), rangeEnd: b('e') } }, { put: { key: b('d'), value: b('2') } }], failure: [] };
    expect(err(() => m.txn(putInDel)).message).toBe('etcdserver: duplicate key given in txn request');
    // Overlapping deletes are allowed.
    m.txn({ compare: [], success: [{ deleteRange: { key: b('k1'), rangeEnd: b('k3') } }, { deleteRange: { key: b('k2'), rangeEnd: b('k4') } }], failure: [] });
    const rev = m.revision;
    expect(err(() => m.txn({ compare: [], success: [{ put: { key: b('ok'), value: b('1') } }, { put: { key: b('x'), lease: 5n } }], failure: [] })).code).toBe('leaseNotFound');
    expect(m.revision).toBe(rev);
    expect(m.range({ key: b('ok') }).kvs).toEqual([]);
  });

  it('txn: compares, both branches, later ops see earlier writes, one revision, nested', () => {
    const m = new MvccStore();
    m.put({ key: b('k'), value: b('1') });
    const t = m.txn({
      compare: [{ key: b('k'), target: 'value', result: 'equal', value: b('1') }],
      success: [
        { put: { key: b('k'), value: b('2') } },
        { range: { key: b('k') } },
        { put: { key: b('j'), value: b('x') } },
        // Nested compares see the store before the txn, as etcd's compareToPath: j does not exist yet.
        { txn: { compare: [{ key: b('j'), target: 'version', result: 'equal', value: 1 }], success: [{ range: { key: b('j') } }], failure: [] } },
        { txn: { compare: [{ key: b('j'), target: 'version', result: 'equal', value: 0 }], success: [{ range: { key: b('j') } }], failure: [] } },
      ],
      failure: [{ range: { key: b('k') } }],
    });
    expect(t.succeeded).toBe(true);
    expect(m.revision).toBe(3);
    const r = t.responses[1] as { range: { kvs: KeyValue[] } };
    expect(s(r.range.kvs[0]!.value)).toBe('2');
    expect(t.responses[3]).toEqual({ txn: { succeeded: false, responses: [] } });
    // ... while its reads see the txn's earlier writes.
    const nested = t.responses[4] as { txn: { succeeded: boolean; responses: { range: { kvs: KeyValue[] } }[] } };
    expect(nested.txn.succeeded).toBe(true);
    expect(s(nested.txn.responses[0]!.range.kvs[0]!.value)).toBe('x');
    expect(m.changesSince(3).map((e) => [e.kv.modRevision, s(e.kv.key)])).toEqual([
      [3, 'k'],
      [3, 'j'],
    ]);
    const f = m.txn({ compare: [{ key: b('k'), target: 'mod', result: 'less', value: 3 }], success: [], failure: [{ range: { key: b('k') } }] });
    expect(f.succeeded).toBe(false);
    expect(m.revision).toBe(3); // read-only
    // A missing key compares as zeros; a value compare on it is false.
    expect(m.txn({ compare: [{ key: b('none'), target: 'create', result: 'equal', value: 0 }], success: [], failure: [] }).succeeded).toBe(true);
    expect(m.txn({ compare: [{ key: b('none'), target: 'value', result: 'notEqual', value: b('x') }], success: [], failure: [] }).succeeded).toBe(false);
  });


  it('txn checks as etcd 3.4 does: only the chosen path against the store; duplicates by checkIntervals', () => {
    const m = new MvccStore();
    const put = (k: string, lease = 0n) => ({ put: { key: b(k), value: b('1'), lease } });
    const del = (k: string, end?: Uint8Array) => ({ deleteRange: { key: b(k), ...(end ? { rangeEnd: end } : {}) } });
    const txn = (success: RequestOp[], failure: RequestOp[] = []) => ({ txn: { compare: [], success, failure } });
    // The branch not taken may name a lease that does not exist, or a future revision.
    expect(m.txn({ compare: [], success: [put('w')], failure: [put('w', 777n), { range: { key: b('w'), revision: 1000 } }] }).succeeded).toBe(true);
    // A nested txn may put a key in one branch and delete it in the other.
    expect(m.txn({ compare: [], success: [txn([put('q')], [del('q')])], failure: [] }).succeeded).toBe(true);
    // A nested txn's put is checked against the deletes before it, not after it.
    expect(m.txn({ compare: [], success: [txn([put('r')]), txn([del('r')])], failure: [] }).succeeded).toBe(true);
    expect(err(() => m.txn({ compare: [], success: [txn([del('r')]), txn([put('r')])], failure: [] })).message).toBe('etcdserver: duplicate key given in txn request');
    // This level's puts are checked against every delete of the level and below.
    expect(err(() => m.txn({ compare: [], success: [put('r'), txn([del('r')])], failure: [] })).message).toBe('etcdserver: duplicate key given in txn request');
    // A delete to the end ("\0") is etcd's literal interval: it never conflicts with a put.
    expect(m.txn({ compare: [], success: [del('s', new Uint8Array([0])), put('t')], failure: [] }).succeeded).toBe(true);
    expect(s(m.range({ key: b('t') }).kvs[0]!.value)).toBe('1');
  });

  it('txn bounds: TXN_NESTING_MAX deep and TXN_OPS_TOTAL_MAX operations in all, refused whole beyond', () => {
    const m = new MvccStore();
    let t: TxnRequest = { compare: [], success: [{ put: { key: b('deep'), value: b('1') } }], failure: [] };
    for (let i = 0; i < TXN_NESTING_MAX; i++) t = { compare: [], success: [{ txn: t }], failure: [] };
    expect(m.txn(t).succeeded).toBe(true);
    expect(err(() => m.txn({ compare: [], success: [{ txn: t }], failure: [] }))).toEqual({ code: 'txnTooDeep', message: 'etcdserver: too many nested txns in txn request' });
    const wide = (n: number, per: number): TxnRequest => ({
      compare: [],
      success: Array.from({ length: n }, (_, i) => ({ txn: { compare: [], success: Array.from({ length: per }, (_, j) => ({ put: { key: b(`w${i}-${j}`), value: b('v') } })), failure: [] } })),
      failure: [],
    });
    expect(txnSize(wide(8, 127))).toBe(TXN_OPS_TOTAL_MAX);
    const rev = m.revision;
    expect(m.txn(wide(8, 127)).succeeded).toBe(true);
    expect(m.revision).toBe(rev + 1);
    expect(err(() => m.txn(wide(8, 128))).message).toBe('etcdserver: too many operations in txn request');
    expect(m.revision).toBe(rev + 1);
  });
  it('compaction: reads at the compact revision work, below fail; history and events trimmed', () => {
    const m = new MvccStore();
    m.put({ key: b('a'), value: b('1') }); // 2
    m.put({ key: b('a'), value: b('2') }); // 3
    m.deleteRange({ key: b('a') }); // 4
    m.put({ key: b('b'), value: b('1') }); // 5
    m.compact(4);
    expect(m.range({ key: b('a'), revision: 4 }).kvs).toEqual([]);
    expect(err(() => m.range({ key: b('a'), revision: 3 })).message).toBe('etcdserver: mvcc: required revision has been compacted');
    expect(err(() => m.compact(4)).message).toBe('etcdserver: mvcc: required revision has been compacted');
    expect(err(() => m.compact(9)).message).toBe('etcdserver: mvcc: required revision is a future revision');
    expect(m.keyCount).toBe(1);
    expect(m.changesSince(0).map((e) => e.kv.modRevision)).toEqual([5]);
    expect(m.revision).toBe(5);
  });

  it('leases: attach, detach on a put without lease, revoke deletes attached keys in one revision', () => {
    const m = new MvccStore();
    m.grantLease(7n, 10);
    expect(err(() => m.grantLease(7n, 10)).message).toBe('etcdserver: lease already exists');
    m.put({ key: b('x'), value: b('1'), lease: 7n });
    m.put({ key: b('y'), value: b('1'), lease: 7n });
    m.put({ key: b('z'), value: b('1'), lease: 7n });
    m.put({ key: b('z'), value: b('2') }); // detaches z
    m.put({ key: b('y'), ignoreValue: true, lease: 7n }); // keeps value
    expect(s(m.range({ key: b('y') }).kvs[0]!.value)).toBe('1');
    expect(m.lease(7n)!.keys.map(s)).toEqual(['x', 'y']);
    const rev = m.revision;
    m.revokeLease(7n);
    expect(m.revision).toBe(rev + 1);
    expect(keys(m.range({ key: ALL, rangeEnd: ALL }))).toEqual(['z']);
    expect(m.changesSince(rev + 1).map((e) => [e.type, s(e.kv.key)])).toEqual([
      ['delete', 'x'],
      ['delete', 'y'],
    ]);
    expect(m.lease(7n)).toBeUndefined();
    expect(err(() => m.revokeLease(7n)).message).toBe('etcdserver: requested lease not found');
  });

  it('watch feed: one call per revision with all its events; delete events carry key and revision', () => {
    const m = new MvccStore();
    const seen: [number, string[]][] = [];
    m.onCommit((events, rev) => seen.push([rev, events.map((e) => `${e.type}:${s(e.kv.key)}@${e.kv.modRevision}`)]));
    m.put({ key: b('a'), value: b('1') });
    m.deleteRange({ key: b('nothing') });
    m.txn({ compare: [], success: [{ put: { key: b('b'), value: b('1') } }, { deleteRange: { key: b('a') } }], failure: [] });
    expect(seen).toEqual([
      [2, ['put:a@2']],
      [3, ['put:b@3', 'delete:a@3']],
    ]);
  });
});

// --- model-based property: the store against a naive copy-per-revision model -----------------

type Op =
  | { t: 'put'; k: number; v: number }
  | { t: 'del'; k: number; end: number }
  | { t: 'txn'; k: number; v: number; k2: number }
  | { t: 'compact'; back: number }
  | { t: 'read'; k: number; end: number; back: number; limit: number };

const KEYS = ['a', 'ab', 'b', 'ba', 'c', '\u00ff', 'd'];

/** end index: <= k one key, KEYS.length everything from the key on ("\0"), else up to KEYS[end]. */
function endOf(k: number, end: number): Uint8Array | undefined {
  if (end <= k) return undefined;
  return end === KEYS.length ? ALL : b(KEYS[end]!);
}

function inRange(key: string, start: string, rangeEnd: Uint8Array | undefined): boolean {
  const k = bin(b(key));
  const st = bin(b(start));
  if (!rangeEnd) return k === st;
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return k >= st;
  return k >= st && k < bin(rangeEnd);
}

function modelState(states: Map<string, KeyValue>[], rev: number): Map<string, KeyValue> {
  return states[rev]!;
}

describe('MvccStore: HashKV', () => {
  it('does not depend on how an empty value is allocated', () => {
    // zlib's crc32 returns its initial value (0) for a zero-length array without memory and the
    // running value for one with memory; members that applied the same log must still agree.
    const offHeapEmpty = new Uint8Array(new ArrayBuffer(0)).subarray(0);
    const one = new MvccStore();
    const two = new MvccStore();
    one.put({ key: b('k'), value: new Uint8Array(0) });
    two.put({ key: b('k'), value: offHeapEmpty });
    for (const st of [one, two]) st.put({ key: b('l'), value: b('x') });
    // The value the hash reads is the backend's copy: an empty one is a view into its record
    // (allocated), never the caller's array.
    expect(two.range({ key: b('k') }).kvs[0]!.value.length).toBe(0);
    expect(one.hashKv().hash).toBe(two.hashKv().hash);
    // ...and an empty value still hashes differently from a non-empty one.
    const three = new MvccStore();
    three.put({ key: b('k'), value: b('v') });
    three.put({ key: b('l'), value: b('x') });
    expect(three.hashKv().hash).not.toBe(one.hashKv().hash);
  });
});

describe('MvccStore: properties', () => {
  it('matches a naive model that copies the whole state at every revision; snapshots restore exactly', () => {
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ t: fc.constant('put' as const), k: fc.nat(KEYS.length - 1), v: fc.nat(5) }),
      fc.record({ t: fc.constant('del' as const), k: fc.nat(KEYS.length - 1), end: fc.nat(KEYS.length) }),
      fc.record({ t: fc.constant('txn' as const), k: fc.nat(KEYS.length - 1), v: fc.nat(5), k2: fc.nat(KEYS.length - 1) }),
      fc.record({ t: fc.constant('compact' as const), back: fc.nat(4) }),
      fc.record({ t: fc.constant('read' as const), k: fc.nat(KEYS.length - 1), end: fc.nat(KEYS.length), back: fc.nat(6), limit: fc.nat(3) }),
    );
    fc.assert(
      fc.property(fc.array(op, { minLength: 5, maxLength: 60, size: 'max' }), (ops) => {
        const m = new MvccStore();
        const states: Map<string, KeyValue>[] = [new Map(), new Map()]; // index = revision
        let compact = 0;
        const write = (f: (next: Map<string, KeyValue>, rev: number) => boolean): void => {
          const rev = states.length;
          const next = new Map(states[rev - 1]!);
          if (f(next, rev)) states.push(next);
        };
        const put = (next: Map<string, KeyValue>, rev: number, key: string, v: number): void => {
          const prev = next.get(key);
          next.set(key, { key: b(key), value: b(String(v)), createRevision: prev ? prev.createRevision : rev, modRevision: rev, version: prev ? prev.version + 1 : 1, lease: 0n });
        };
        for (const o of ops) {
          if (o.t === 'put') {
            m.put({ key: b(KEYS[o.k]!), value: b(String(o.v)) });
            write((next, rev) => (put(next, rev, KEYS[o.k]!, o.v), true));
          } else if (o.t === 'del') {
            const start = KEYS[o.k]!;
            const rangeEnd = endOf(o.k, o.end);
            m.deleteRange({ key: b(start), ...(rangeEnd ? { rangeEnd } : {}) });
            write((next) => {
              let any = false;
              for (const k of [...next.keys()]) if (inRange(k, start, rangeEnd)) any = next.delete(k) || any;
              return any;
            });
          } else if (o.t === 'txn') {
            // if version(k) > 0 then put k2 = v else put k = v
            const key = KEYS[o.k]!;
            const exists = (states[states.length - 1]!.get(key)?.version ?? 0) > 0;
            m.txn({ compare: [{ key: b(key), target: 'version', result: 'greater', value: 0 }], success: [{ put: { key: b(KEYS[o.k2]!), value: b(String(o.v)) } }], failure: [{ put: { key: b(key), value: b(String(o.v)) } }] });
            write((next, rev) => (put(next, rev, exists ? KEYS[o.k2]! : key, o.v), true));
          } else if (o.t === 'compact') {
            const to = states.length - 1 - o.back;
            if (to > compact) {
              m.compact(to);
              compact = to;
            }
          } else {
            const rev = states.length - 1 - o.back;
            const rangeEnd = endOf(o.k, o.end);
            const req: RangeRequest = { key: b(KEYS[o.k]!), ...(rangeEnd ? { rangeEnd } : {}), revision: rev, ...(o.limit ? { limit: o.limit } : {}) };
            if (rev < 1 || (rev < compact && rev > 0)) {
              if (rev >= 1) expect(() => m.range(req)).toThrow(/compacted/);
              continue;
            }
            const got = m.range(req);
            const want = [...modelState(states, rev).values()].filter((kv) => inRange(s(kv.key), KEYS[o.k]!, rangeEnd)).sort((x, y) => (bin(x.key) < bin(y.key) ? -1 : 1));
            const cut = o.limit ? want.slice(0, o.limit) : want;
            expect(got.count).toBe(want.length);
            expect(got.more).toBe(cut.length < want.length);
            expect(got.kvs.map((kv) => [s(kv.key), s(kv.value), kv.createRevision, kv.modRevision, kv.version])).toEqual(cut.map((kv) => [s(kv.key), s(kv.value), kv.createRevision, kv.modRevision, kv.version]));
          }
        }
        expect(m.revision).toBe(states.length - 1);
        const copy = MvccStore.restore(m.snapshot());
        expect(copy.snapshot()).toEqual(m.snapshot());
        expect(copy.hashKv()).toEqual(m.hashKv());
        expect(copy.changesSince(0).map((e) => `${e.type}${s(e.kv.key)}${e.kv.modRevision}${e.prevKv?.modRevision ?? ''}`)).toEqual(
          m.changesSince(0).map((e) => `${e.type}${s(e.kv.key)}${e.kv.modRevision}${e.prevKv?.modRevision ?? ''}`),
        );
      }),
      { numRuns: 300 },
    );
  });
});
