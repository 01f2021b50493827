/**
 * KvStateMachine.restore / MvccStore.restore on hostile images: a valid image round-trips; any
 * other bytes either restore to a store that works and whose own image restores to the same
 * HashKV and the same image, or throw SnapshotImageError and leave the state machine as it was.
 * Then one targeted case per invariant the reader checks.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeCommand } from './commands.js';
import { KvError } from './errors.js';
import { MvccStore } from './mvcc.js';
import { SnapshotImageError } from './snapshot-image.js';
import { KvStateMachine } from './state-machine.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const json = (v: unknown): Uint8Array => enc(JSON.stringify(v));
const b64 = (s: string): string => Buffer.from(s).toString('base64');

type Op =
  | { op: 'put'; k: number; v: string; lease: number }
  | { op: 'del'; k: number; range: boolean }
  | { op: 'txn'; k: number }
  | { op: 'grant'; id: number; ttl: number }
  | { op: 'revoke'; id: number }
  | { op: 'compact'; back: number }
  | { op: 'publish'; id: bigint; name: string }
  | { op: 'alarm'; id: bigint; nospace: boolean; on: boolean }
  | { op: 'checkpoint'; id: number; ms: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('put' as const), k: fc.nat(6), v: fc.string({ maxLength: 4 }), lease: fc.nat(4) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('del' as const), k: fc.nat(6), range: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('txn' as const), k: fc.nat(6) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('grant' as const), id: fc.integer({ min: 1, max: 4 }), ttl: fc.nat(100) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('revoke' as const), id: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('compact' as const), back: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('publish' as const), id: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), name: fc.string({ maxLength: 5 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('alarm' as const), id: fc.oneof(fc.bigInt({ min: 0n, max: 3n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })), nospace: fc.boolean(), on: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('checkpoint' as const), id: fc.integer({ min: 1, max: 4 }), ms: fc.integer({ min: 0, max: 120_000 }) }) },
);

/** A state machine after the ops (refusals skipped, as a member's apply would). */
function build(ops: readonly Op[]): KvStateMachine {
  const sm = new KvStateMachine();
  const kv = sm.store;
  const key = (k: number) => enc(`k${k}`);
  for (const o of ops) {
    try {
      switch (o.op) {
        case 'put':
          kv.put({ key: key(o.k), value: enc(o.v), lease: BigInt(o.lease) });
          break;
        case 'del':
          kv.deleteRange(o.range ? { key: key(o.k), rangeEnd: enc('l') } : { key: key(o.k) });
          break;
        case 'txn':
          // Several sub-revisions in one revision.
          kv.txn({ compare: [], success: [{ put: { key: key(o.k), value: enc('t') } }, { deleteRange: { key: key(o.k + 1) } }, { put: { key: key(o.k + 2) } }], failure: [] });
          break;
        case 'grant':
          kv.grantLease(BigInt(o.id), o.ttl);
          break;
        case 'revoke':
          kv.revokeLease(BigInt(o.id));
          break;
        case 'compact':
          kv.compact(kv.revision - o.back);
          break;
        case 'publish':
          sm.members.set(o.id, { id: o.id, name: o.name, clientUrls: [`http://${o.name}`] });
          break;
        case 'alarm':
          sm.apply({ index: sm.appliedIndex + 1, term: 1, type: 'normal', data: encodeCommand({ op: 'alarm', action: o.on ? 'activate' : 'deactivate', member: { memberId: o.id, alarm: o.nospace ? 'NOSPACE' : 'CORRUPT' } }) });
          break;
        case 'checkpoint':
          sm.apply({ index: sm.appliedIndex + 1, term: 1, type: 'normal', data: encodeCommand({ op: 'leaseCheckpoint', checkpoints: [{ id: BigInt(o.id), remainingMs: o.ms }] }) });
          break;
      }
    } catch (e) {
      if (!(e instanceof KvError)) throw e;
    }
  }
  return sm;
}

/** The contract: SnapshotImageError with the state machine untouched, or a store that works and round-trips. */
function restoreChecked(sm: KvStateMachine, data: Uint8Array): 'refused' | 'restored' {
  const before = sm.snapshot();
  const beforeIndex = sm.appliedIndex;
  let restores = 0;
  sm.onRestore(() => restores++);
  try {
    sm.restore(data, beforeIndex + 7);
  } catch (e) {
    expect(e).toBeInstanceOf(SnapshotImageError);
    expect((e as Error).message).toMatch(/^invalid state machine snapshot image: \S/);
    expect(sm.snapshot()).toEqual(before);
    expect(sm.appliedIndex).toBe(beforeIndex);
    expect(restores).toBe(0);
    return 'refused';
  }
  expect(restores).toBe(1);
  expect(sm.appliedIndex).toBe(beforeIndex + 7);
  const hash = sm.store.hashKv();
  const image = sm.snapshot();
  const again = new KvStateMachine();
  again.restore(image, 1);
  expect(again.store.hashKv()).toEqual(hash);
  expect(again.snapshot()).toEqual(image);
  expect(again.store.dbSizeBytes()).toBe(sm.store.dbSizeBytes());
  expect(again.alarms()).toEqual(sm.alarms());
  // The store works: reads at every revision kept, writes, revoking every lease, compaction.
  const kv = sm.store;
  for (let r = kv.revision, n = 0; r >= Math.max(kv.compactRevision, 1) && n < 100; r--, n++) kv.range({ key: enc('\0'), rangeEnd: Uint8Array.of(0), revision: r });
  kv.put({ key: enc('new'), value: enc('v') });
  for (const id of kv.leaseIds()) kv.revokeLease(id);
  kv.deleteRange({ key: Uint8Array.of(0), rangeEnd: Uint8Array.of(0) });
  kv.compact(kv.revision);
  const after = new KvStateMachine();
  after.restore(sm.snapshot(), 1);
  expect(after.store.hashKv()).toEqual(kv.hashKv());
  return 'restored';
}

/** The store's image inside the state machine's image, as parsed JSON. */
function storeJson(sm: KvStateMachine): unknown {
  return JSON.parse(Buffer.from(sm.store.snapshot()).toString('utf8'));
}

function smImage(store: unknown, members: unknown = []): Uint8Array {
  return json({ v: 1, store: { $b: Buffer.from(JSON.stringify(store)).toString('base64') }, members });
}

/** Every array or object in the tree, with a way to change it. */
function containers(v: unknown, out: (unknown[] | Record<string, unknown>)[] = []): (unknown[] | Record<string, unknown>)[] {
  if (v !== null && typeof v === 'object') {
    out.push(v as unknown[] | Record<string, unknown>);
    for (const x of Object.values(v)) containers(x, out);
  }
  return out;
}

const weird = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(0, 1, 2, 3, -1, 1.5, 2 ** 53, 1e300, '0', '1', '-1', '07', '9223372036854775808', '', 'AA==', 'YQ==', 'YQ', '!!', null, [], {}),
  fc.integer({ min: -3, max: 40 }),
);

/** One JSON-level change: a value replaced, an element removed, duplicated or moved. */
const jsonMutation = fc.record({ at: fc.nat(), field: fc.nat(), kind: fc.constantFrom('replace', 'remove', 'duplicate', 'swap', 'add'), value: weird });
type JsonMutation = typeof jsonMutation extends fc.Arbitrary<infer T> ? T : never;

function applyMutation(tree: unknown, m: JsonMutation): void {
  const cs = containers(tree);
  if (cs.length === 0) return;
  const c = cs[m.at % cs.length]!;
  if (Array.isArray(c)) {
    const i = c.length ? m.field % c.length : 0;
    if (m.kind === 'replace' && c.length) c[i] = structuredClone(m.value);
    else if (m.kind === 'remove') c.splice(i, 1);
    else if (m.kind === 'duplicate' && c.length) c.splice(i, 0, structuredClone(c[i]));
    else if (m.kind === 'swap' && c.length > 1) [c[i], c[(i + 1) % c.length]] = [c[(i + 1) % c.length], c[i]];
    else c.push(structuredClone(m.value));
  } else {
    const keys = Object.keys(c);
    const k = keys.length ? keys[m.field % keys.length]! : 'x';
    if (m.kind === 'remove') delete c[k];
    else if (m.kind === 'add') c[`f${m.field % 3}`] = structuredClone(m.value);
    else c[k] = structuredClone(m.value);
  }
}

describe('snapshot images', () => {
  it('property: a valid state machine round-trips (same image, HashKV, change log, leases, members)', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => {
        const sm = build(ops);
        const copy = new KvStateMachine();
        copy.restore(sm.snapshot(), 5);
        expect(copy.snapshot()).toEqual(sm.snapshot());
        expect(copy.store.hashKv()).toEqual(sm.store.hashKv());
        expect(copy.store.changesSince(0)).toEqual(sm.store.changesSince(0));
        for (const id of sm.store.leaseIds()) expect(copy.store.lease(id)).toEqual(sm.store.lease(id));
        expect(copy.members).toEqual(sm.members);
        expect(copy.alarms()).toEqual(sm.alarms());
        for (const id of sm.store.leaseIds()) expect(copy.leaseRemainingMs(id)).toBe(sm.leaseRemainingMs(id));
        expect(restoreChecked(new KvStateMachine(), sm.snapshot())).toBe('restored');
      }),
      { numRuns: 300 },
    );
  });

  it('property: a mutated store image is refused (state machine untouched) or restores to a store that works and round-trips', () => {
    const seen = { refused: 0, restored: 0 };
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 40 }), fc.array(opArb, { maxLength: 10 }), fc.array(jsonMutation, { minLength: 1, maxLength: 3 }), (ops, heldOps, muts) => {
        const tree = storeJson(build(ops));
        for (const m of muts) applyMutation(tree, m);
        seen[restoreChecked(build(heldOps), smImage(tree))]++;
      }),
      { numRuns: 1500 },
    );
    // Both outcomes happen (the property is not vacuous).
    expect(seen.refused).toBeGreaterThan(100);
    expect(seen.restored).toBeGreaterThan(10);
  });

  it('property: mutated state machine images (JSON or bytes) and random bytes are refused or restore to a working store', () => {
    fc.assert(
      fc.property(
        fc.array(opArb, { maxLength: 30 }),
        fc.oneof(
          fc.record({ json: fc.array(jsonMutation, { minLength: 1, maxLength: 3 }) }),
          fc.record({ bytes: fc.array(fc.record({ at: fc.nat(), byte: fc.nat(255) }), { minLength: 1, maxLength: 4 }) }),
          fc.record({ random: fc.uint8Array({ maxLength: 200 }) }),
        ),
        (ops, how) => {
          const sm = build(ops);
          let data = sm.snapshot();
          if ('json' in how) {
            const tree = JSON.parse(Buffer.from(data).toString('utf8')) as unknown;
            for (const m of how.json) applyMutation(tree, m);
            data = json(tree);
          } else if ('bytes' in how) {
            data = data.slice();
            for (const x of how.bytes) data[x.at % data.length] = x.byte;
          } else data = how.random;
          restoreChecked(sm, data);
        },
      ),
      { numRuns: 1500 },
    );
  });

  it('is linear in the nesting: deep JSON is refused, not a stack overflow', () => {
    const deep = enc(`${'['.repeat(200_000)}${']'.repeat(200_000)}`);
    expect(restoreChecked(new KvStateMachine(), deep)).toBe('refused');
    const inner = `{"v":1,"rev":1,"compactRev":0,"keys":${'['.repeat(200_000)}${']'.repeat(200_000)},"leases":[]}`;
    const deepStore = json({ v: 1, store: { $b: Buffer.from(inner).toString('base64') }, members: [] });
    expect(restoreChecked(new KvStateMachine(), deepStore)).toBe('refused');
  });

  it('empty bytes are the empty state machine', () => {
    const sm = build([{ op: 'put', k: 1, v: 'x', lease: 0 }]);
    expect(restoreChecked(sm, new Uint8Array(0))).toBe('restored');
    expect(sm.store.revision).toBe(3);
    expect(MvccStore.restore(new Uint8Array(0)).revision).toBe(1);
  });
});

describe('snapshot images: each invariant', () => {
  // A valid store: lease 7 granted, a put twice then deleted, b put with lease 7 in the same
  // revision as a's deletion (sub-revisions 0 and 1).
  const put = (main: number, sub: number, create: number, version: number, value = 'v', lease = '0') => [main, sub, create, version, b64(value), lease];
  const del = (main: number, sub: number) => [main, sub];
  const valid = () => ({
    v: 1 as unknown,
    rev: 4 as unknown,
    compactRev: 0 as unknown,
    keys: [
      [b64('a'), [put(2, 0, 2, 1), put(3, 0, 2, 2), del(4, 0)]],
      [b64('b'), [put(4, 1, 4, 1, 'x', '7')]],
    ] as unknown[],
    leases: [['7', 10, [b64('b')]]] as unknown[],
  });
  type Img = ReturnType<typeof valid> & Record<string, unknown>;
  const refusal = (change: (o: Img) => void): string => {
    const o = valid() as Img;
    change(o);
    const sm = build([{ op: 'put', k: 0, v: 'held', lease: 0 }]);
    const before = sm.snapshot();
    try {
      sm.restore(smImage(o), 3);
    } catch (e) {
      expect(e).toBeInstanceOf(SnapshotImageError);
      expect(sm.snapshot()).toEqual(before);
      return (e as Error).message;
    }
    throw new Error('the image was accepted');
  };
  const keyAt = (o: Img, i: number) => o.keys[i] as [string, unknown[][]];

  it('the valid image restores and round-trips', () => {
    const sm = new KvStateMachine();
    expect(restoreChecked(sm, smImage(valid()))).toBe('restored');
    const copy = new KvStateMachine();
    copy.restore(smImage(valid()), 1);
    expect(copy.store.lease(7n)?.keys.map((k) => Buffer.from(k).toString())).toEqual(['b']);
    expect(copy.store.changesSince(0).map((e) => `${e.type}@${e.kv.modRevision}`)).toEqual(['put@2', 'put@3', 'delete@4', 'put@4']);
  });

  const cases: [string, (o: Img) => void, RegExp][] = [
    ['unknown field', (o) => (o.extra = 1), /^invalid state machine snapshot image: store: unknown field "extra"$/],
    ['__proto__ field', (o) => Object.defineProperty(o, '__proto__', { value: 1, enumerable: true }), /store: unknown field "__proto__"/],
    ['missing field', (o) => delete (o as Record<string, unknown>).leases, /store: missing field "leases"/],
    ['version', (o) => (o.v = 2), /store.v: unknown key-value store image version 2/],
    ['rev a string', (o) => (o.rev = '4'), /store.rev: expected a safe integer, got "4"/],
    ['rev unsafe', (o) => (o.rev = 2 ** 53), /store.rev: expected a safe integer/],
    ['rev 0', (o) => (o.rev = 0), /store.rev: 0 is out of range \[1, /],
    ['compact revision past the revision', (o) => (o.compactRev = 5), /store.compactRev: 5 is out of range \[0, 4\]/],
    ['compact revision fractional', (o) => (o.compactRev = 1.5), /store.compactRev: expected a safe integer, got 1.5/],
    ['keys not an array', (o) => ((o as Record<string, unknown>).keys = {}), /store.keys: expected an array, got an object/],
    ['a key entry not a pair', (o) => (o.keys[0] = [b64('a')]), /store.keys\[0\]: expected an array of 2, got 1/],
    ['a key not canonical base64', (o) => (keyAt(o, 0)[0] = 'YQ'), /store.keys\[0\]\[0\]: not canonical base64/],
    ['a key not a string', (o) => (keyAt(o, 0)[0] = null as unknown as string), /store.keys\[0\]\[0\]: expected a base64 string, got null/],
    ['an empty key', (o) => (keyAt(o, 0)[0] = ''), /store.keys\[0\]\[0\]: empty key/],
    ['keys out of order', (o) => o.keys.reverse(), /store.keys\[1\]\[0\]: keys not sorted or not unique/],
    ['a key twice', (o) => (keyAt(o, 1)[0] = b64('a')), /store.keys\[1\]\[0\]: keys not sorted or not unique/],
    ['an empty history', (o) => (keyAt(o, 1)[1] = []), /store.keys\[1\]\[1\]: empty history/],
    ['a history entry of 3', (o) => (keyAt(o, 0)[1][0] = [2, 0, 2]), /store.keys\[0\]\[1\]\[0\]: expected an array of 2 or 6, got 3/],
    ['a revision past the store', (o) => (keyAt(o, 1)[1][0]![0] = 5), /store.keys\[1\]\[1\]\[0\]\[0\]: 5 is out of range \[2, 4\]/],
    ['revision 1', (o) => (keyAt(o, 0)[1][0]![0] = 1), /store.keys\[0\]\[1\]\[0\]\[0\]: 1 is out of range \[2, 4\]/],
    ['a negative sub-revision', (o) => (keyAt(o, 1)[1][0]![1] = -1), /store.keys\[1\]\[1\]\[0\]\[1\]: -1 is out of range/],
    ['a history out of order', (o) => keyAt(o, 0)[1].reverse(), /store.keys\[0\]\[1\]\[0\]: a history that starts with a deletion/],
    ['a revision twice in a history', (o) => (keyAt(o, 0)[1][1] = put(2, 0, 2, 2)), /store.keys\[0\]\[1\]\[1\]: revision 2.0 not after 2.0/],
    ['a deletion of a deleted key', (o) => (keyAt(o, 0)[1] = [put(2, 0, 2, 1), del(3, 0), del(4, 0)]), /store.keys\[0\]\[1\]\[2\]: a deletion of a deleted key/],
    ['a version gap', (o) => (keyAt(o, 0)[1][1] = put(3, 0, 2, 3)), /store.keys\[0\]\[1\]\[1\]: version 3 created at 2 does not follow version 1 created at 2/],
    ['a create revision changing', (o) => (keyAt(o, 0)[1][1] = put(3, 0, 3, 2)), /does not follow version 1 created at 2/],
    ['a new key at version 2', (o) => (keyAt(o, 1)[1][0] = put(4, 1, 4, 2, 'x', '7')), /store.keys\[1\]\[1\]\[0\]: a new key's first version must be 1 created at its revision 4, got version 2 created at 4/],
    ['a put after a deletion not a new key', (o) => (keyAt(o, 0)[1] = [put(2, 0, 2, 1), del(3, 0), put(4, 0, 2, 2)]), /store.keys\[0\]\[1\]\[2\]: a new key's first version must be 1 created at its revision 4, got version 2 created at 2/],
    ['a create revision past its revision', (o) => (keyAt(o, 1)[1][0]![2] = 5), /store.keys\[1\]\[1\]\[0\]\[2\]: 5 is out of range \[2, 4\]/],
    ['version 0', (o) => (keyAt(o, 0)[1][0]![3] = 0), /store.keys\[0\]\[1\]\[0\]\[3\]: 0 is out of range \[1, /],
    ['a value not base64', (o) => (keyAt(o, 0)[1][0]![4] = '!!'), /store.keys\[0\]\[1\]\[0\]\[4\]: not canonical base64: "!!"/],
    ['a lease id not canonical', (o) => (keyAt(o, 0)[1][0]![5] = '07'), /store.keys\[0\]\[1\]\[0\]\[5\]: expected a decimal integer string, got "07"/],
    ['a lease id a number', (o) => (keyAt(o, 0)[1][0]![5] = 0), /expected a decimal integer string, got 0/],
    ['a negative lease', (o) => (keyAt(o, 0)[1][0]![5] = '-1'), /store.keys\[0\]\[1\]\[0\]\[5\]: -1 is out of range \[0, 9223372036854775807\]/],
    ['a lease id past 63 bits', (o) => (keyAt(o, 0)[1][0]![5] = '9223372036854775808'), /9223372036854775808 is out of range/],
    ['two entries at or below the compact revision', (o) => (o.compactRev = 3), /store.keys\[0\]\[1\]\[1\]: revision 3 at or below the compact revision 3 is not the history's first/],
    ['a deletion first at the compact revision', (o) => ((o.compactRev = 4), (keyAt(o, 0)[1] = [del(4, 0)])), /store.keys\[0\]\[1\]\[0\]: a history that starts with a deletion/],
    [
      'two compacted entries at one revision',
      (o) => ((o.rev = 3), (o.compactRev = 3), (o.keys = [[b64('a'), [put(2, 0, 2, 1)]], [b64('b'), [put(2, 0, 2, 1)]]]), (o.leases = [])),
      /store.keys\[1\]\[1\]\[0\]: revision 2.0 appears twice/,
    ],
    ['a revision with no change', (o) => (o.rev = 5), /store.keys: the changes end at revision 4, the store is at 5/],
    ['a revision skipped', (o) => ((o.keys[0] = [b64('a'), [put(2, 0, 2, 1), put(4, 0, 2, 2)]]), (o.leases = []), (keyAt(o, 1)[1][0]![5] = '0')), /store.keys: revision 4.0 follows 2.0: changes missing or repeated/],
    ['a sub-revision skipped', (o) => (keyAt(o, 1)[1][0]![1] = 2), /revision 4.2 follows 4.0/],
    ['a sub-revision twice across keys', (o) => (keyAt(o, 1)[1][0]![1] = 0), /revision 4.0 follows 4.0/],
    ['leases not an array', (o) => ((o as Record<string, unknown>).leases = null), /store.leases: expected an array, got null/],
    ['a lease of 2 fields', (o) => (o.leases = [['7', 10]]), /store.leases\[0\]: expected an array of 3, got 2/],
    ['lease id 0', (o) => (o.leases = [['0', 10, []], ['7', 10, [b64('b')]]]), /store.leases\[0\]\[0\]: 0 is out of range \[1, /],
    ['leases out of order', (o) => (o.leases = [['8', 10, []], ['7', 10, [b64('b')]]]), /store.leases\[1\]\[0\]: lease ids not sorted or not unique/],
    ['a lease twice', (o) => (o.leases = [['7', 10, []], ['7', 10, [b64('b')]]]), /lease ids not sorted or not unique/],
    ['a negative TTL', (o) => (o.leases = [['7', -1, [b64('b')]]]), /store.leases\[0\]\[1\]: -1 is out of range/],
    ['a lease naming a deleted key', (o) => (o.leases = [['7', 10, [b64('a'), b64('b')]]]), /store.leases\[0\]\[2\]\[0\]: the key is not live with lease 7/],
    ['a lease naming an unknown key', (o) => (o.leases = [['7', 10, [b64('b'), b64('c')]]]), /store.leases\[0\]\[2\]\[1\]: the key is not live with lease 7/],
    ['a lease naming a key twice', (o) => (o.leases = [['7', 10, [b64('b'), b64('b')]]]), /store.leases\[0\]\[2\]\[1\]: keys not sorted or not unique/],
    ['a lease naming a key of another lease', (o) => (o.leases = [['6', 10, [b64('b')]], ['7', 10, []]]), /store.leases\[0\]\[2\]\[0\]: the key is not live with lease 6/],
    ['a live key missing from its lease', (o) => (o.leases = [['7', 10, []]]), /store.leases: 1 live keys with a lease are missing from their lease's keys/],
    ['a live key with a lease that does not exist', (o) => (o.leases = []), /store.leases: 1 live keys with a lease are missing/],
  ];
  for (const [name, change, message] of cases) {
    it(`refuses ${name}`, () => {
      expect(refusal(change)).toMatch(message);
    });
  }

  const outer: [string, Uint8Array, RegExp][] = [
    ['bytes that are not UTF-8', Uint8Array.of(0x7b, 0xff), /^invalid state machine snapshot image: image: not UTF-8$/],
    ['bytes that are not JSON', enc('{"v":1'), /image: not JSON/],
    ['an array', enc('[]'), /image: expected an object, got an array of 0/],
    ['null', enc('null'), /image: expected an object, got null/],
    ['another version', json({ v: '1', store: { $b: '' }, members: [] }), /image.v: unknown state machine image version "1"/],
    ['a store that is not tagged bytes', json({ v: 1, store: 'e30=', members: [] }), /image.store: expected an object/],
    ['a store with another tag', json({ v: 1, store: { $n: '1' }, members: [] }), /image.store: unknown field "\$n"/],
    ['a store of bad base64', json({ v: 1, store: { $b: 'e30' }, members: [] }), /image.store.\$b: not canonical base64/],
    ['a store that is not JSON', json({ v: 1, store: { $b: b64('{') }, members: [] }), /^invalid state machine snapshot image: store: not JSON/],
    ['a store that is JSON null', json({ v: 1, store: { $b: b64('null') }, members: [] }), /store: expected an object, got null/],
    ['members not an array', json({ v: 1, store: { $b: '' }, members: {} }), /image.members: expected an array/],
    ['a member without a name', json({ v: 1, store: { $b: '' }, members: [{ id: { $n: '1' }, clientUrls: [] }] }), /image.members\[0\]: missing field "name"/],
    ['a member id as a number', json({ v: 1, store: { $b: '' }, members: [{ id: 1, name: 'a', clientUrls: [] }] }), /image.members\[0\].id: expected an object, got 1/],
    ['a member id past 64 bits', json({ v: 1, store: { $b: '' }, members: [{ id: { $n: '18446744073709551616' }, name: 'a', clientUrls: [] }] }), /image.members\[0\].id.\$n: 18446744073709551616 is out of range/],
    ['a member name not a string', json({ v: 1, store: { $b: '' }, members: [{ id: { $n: '1' }, name: 2, clientUrls: [] }] }), /image.members\[0\].name: expected a string, got 2/],
    ['a client URL not a string', json({ v: 1, store: { $b: '' }, members: [{ id: { $n: '1' }, name: 'a', clientUrls: ['x', {}] }] }), /image.members\[0\].clientUrls\[1\]: expected a string, got an object/],
    [
      'members out of order',
      json({ v: 1, store: { $b: '' }, members: [{ id: { $n: '2' }, name: 'a', clientUrls: [] }, { id: { $n: '1' }, name: 'b', clientUrls: [] }] }),
      /image.members\[1\].id: member ids not sorted or not unique/,
    ],
  ];
  // Lease checkpoints, over the valid store (lease 7, TTL 10 s).
  const withCheckpoints = (cps: unknown) => json({ v: 1, store: { $b: Buffer.from(JSON.stringify(valid())).toString('base64') }, members: [], leaseCheckpoints: cps });
  const cp = (id: string, remainingMs: unknown) => ({ id: { $n: id }, remainingMs });
  outer.push(
    ['checkpoints not an array', withCheckpoints({}), /image.leaseCheckpoints: expected an array, got an object/],
    ['a checkpoint of a lease the store does not hold', withCheckpoints([cp('8', 100)]), /image.leaseCheckpoints\[0\].id: a checkpoint of lease 8, which the store does not hold/],
    ['a checkpoint of lease 0', withCheckpoints([cp('0', 100)]), /image.leaseCheckpoints\[0\].id.\$n: 0 is out of range/],
    ['a checkpoint of 0 ms', withCheckpoints([cp('7', 0)]), /image.leaseCheckpoints\[0\].remainingMs: 0 is out of range \[1, 10000\]/],
    ['a checkpoint past the TTL', withCheckpoints([cp('7', 10_001)]), /image.leaseCheckpoints\[0\].remainingMs: 10001 is out of range \[1, 10000\]/],
    ['a checkpoint fractional', withCheckpoints([cp('7', 1.5)]), /remainingMs: expected a safe integer, got 1.5/],
    ['a lease checkpointed twice', withCheckpoints([cp('7', 5), cp('7', 6)]), /image.leaseCheckpoints\[1\].id: lease checkpoint ids not sorted or not unique/],
    ['a checkpoint with another field', withCheckpoints([{ ...cp('7', 5), ttl: 3 }]), /image.leaseCheckpoints\[0\]: unknown field "ttl"/],
  );
  for (const [name, data, message] of outer) {
    it(`refuses a state machine image with ${name}`, () => {
      const sm = build([{ op: 'put', k: 0, v: 'held', lease: 0 }]);
      const before = sm.snapshot();
      expect(() => sm.restore(data, 3)).toThrow(message);
      expect(() => sm.restore(data, 3)).toThrow(SnapshotImageError);
      expect(sm.snapshot()).toEqual(before);
      expect(sm.appliedIndex).toBe(0);
    });
  }

  it('restores lease checkpoints (and images from before checkpoints, without the field)', () => {
    const sm = new KvStateMachine();
    sm.restore(json({ v: 1, store: { $b: Buffer.from(JSON.stringify(valid())).toString('base64') }, members: [], leaseCheckpoints: [cp('7', 4321)] }), 9);
    expect(sm.leaseRemainingMs(7n)).toBe(4321);
    expect(JSON.parse(Buffer.from(sm.snapshot()).toString()).leaseCheckpoints).toEqual([cp('7', 4321)]);
    sm.restore(smImage(valid()), 10);
    expect(sm.leaseRemainingMs(7n)).toBeUndefined();
  });

  it('restores members and an empty store from its tagged bytes', () => {
    const sm = new KvStateMachine();
    sm.restore(json({ v: 1, store: { $b: '' }, members: [{ id: { $n: '18446744073709551615' }, name: 'm', clientUrls: ['http://x'] }] }), 9);
    expect([...sm.members.values()]).toEqual([{ id: (1n << 64n) - 1n, name: 'm', clientUrls: ['http://x'] }]);
    expect(sm.store.revision).toBe(1);
    expect(sm.appliedIndex).toBe(9);
  });
});
