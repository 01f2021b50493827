/**
 * The log encoding of commands: every command round-trips; any bytes (random, truncated,
 * mutated encodings) decode without throwing, and what decodes applies without an exception
 * other than etcd's refusals (KvStateMachine.apply returns a result for every entry).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ByteWriter } from '../lib/bytes.js';
import { ALARM_COMMAND_TAG, COMMAND_FORMAT_VERSION, decodeRequest, encodeCommand, encodeRequest, LEASE_CHECKPOINT_BATCH_MAX, LEASE_REMAINING_MS_MAX, requestTooLarge, type Command } from './commands.js';
import { TXN_NESTING_MAX, type Compare, type DeleteRangeRequest, type PutRequest, type RangeRequest, type RequestOp, type TxnRequest } from './mvcc.js';
import { KvStateMachine } from './state-machine.js';
import type { AuthCommand, AuthHeader } from './auth-store.js';

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

// Small keys and revisions on purpose: so that random commands meet existing keys and leases.
const key = fc.oneof(fc.constantFrom('a', 'b', 'c', 'a/1', '').map((s) => new Uint8Array(Buffer.from(s))), fc.uint8Array({ maxLength: 6 }));
const rangeEnd = fc.option(fc.oneof(fc.constant(new Uint8Array([0])), key), { nil: undefined });
const int = fc.oneof(fc.integer({ min: -3, max: 12 }), fc.constantFrom(Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 0));
const lease = fc.oneof(fc.constantFrom(0n, 7n, -1n, I64_MIN, I64_MAX), fc.bigInt({ min: I64_MIN, max: I64_MAX }));
const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });

const rangeReq: fc.Arbitrary<RangeRequest> = fc.record(
  {
    key,
    rangeEnd,
    limit: int,
    revision: int,
    sortOrder: fc.constantFrom('none' as const, 'ascend' as const, 'descend' as const),
    sortTarget: fc.constantFrom('key' as const, 'version' as const, 'create' as const, 'mod' as const, 'value' as const),
    keysOnly: fc.boolean(),
    countOnly: fc.boolean(),
    minModRevision: int,
    maxModRevision: int,
    minCreateRevision: int,
    maxCreateRevision: int,
  },
  { requiredKeys: ['key'] },
);
const putReq: fc.Arbitrary<PutRequest> = fc.record(
  { key, value: opt(fc.uint8Array({ maxLength: 8 })), lease: opt(lease), prevKv: fc.boolean(), ignoreValue: fc.boolean(), ignoreLease: fc.boolean() },
  { requiredKeys: ['key'] },
);
const deleteReq: fc.Arbitrary<DeleteRangeRequest> = fc.record({ key, rangeEnd, prevKv: fc.boolean() }, { requiredKeys: ['key'] });
const result = fc.constantFrom('equal' as const, 'greater' as const, 'less' as const, 'notEqual' as const);
const compare: fc.Arbitrary<Compare> = fc.oneof(
  fc.record({ key, rangeEnd, result, target: fc.constantFrom('version' as const, 'create' as const, 'mod' as const), value: int }),
  fc.record({ key, rangeEnd, result, target: fc.constant('lease' as const), value: lease }),
  fc.record({ key, rangeEnd, result, target: fc.constant('value' as const), value: fc.uint8Array({ maxLength: 4 }) }),
);

const { txn } = fc.letrec<{ txn: TxnRequest; op: RequestOp }>((tie) => ({
  txn: fc.record({
    compare: fc.array(compare, { maxLength: 3 }),
    success: fc.array(tie('op'), { maxLength: 3 }),
    failure: fc.array(tie('op'), { maxLength: 3 }),
  }),
  op: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ range: rangeReq }),
    fc.record({ put: putReq }),
    fc.record({ deleteRange: deleteReq }),
    fc.record({ txn: tie('txn') as fc.Arbitrary<TxnRequest> }),
  ),
}));

/** A valid-looking bcrypt hash (the decoder checks the form; apply never runs bcrypt). */
const EMPTY_END = new Uint8Array(0);
const HASH = `$2a$10$${'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.'}`;
const name = fc.oneof(fc.constantFrom('root', 'alice', 'app', ''), fc.string({ maxLength: 6 }));
const authCommand: fc.Arbitrary<AuthCommand> = fc.oneof(
  fc.constantFrom({ op: 'authEnable' as const }, { op: 'authDisable' as const }),
  fc.record({ op: fc.constant('authenticate' as const), name, tokenPrefix: fc.constantFrom('', 'AbCdEfGhIjKlMnOp') }),
  fc.oneof(
    fc.record({ op: fc.constant('userAdd' as const), name, hash: fc.constant(HASH), noPassword: fc.constant(false) }),
    fc.record({ op: fc.constant('userAdd' as const), name, hash: fc.constant(''), noPassword: fc.constant(true) }),
  ),
  fc.record({ op: fc.constant('userDelete' as const), name }),
  fc.record({ op: fc.constant('userChangePassword' as const), name, hash: fc.constant(HASH) }),
  fc.record({ op: fc.constant('userGrantRole' as const), user: name, role: name }),
  fc.record({ op: fc.constant('userRevokeRole' as const), name, role: name }),
  fc.record({ op: fc.constant('roleAdd' as const), name }),
  fc.record({ op: fc.constant('roleDelete' as const), role: name }),
  fc.record({ op: fc.constant('roleGrantPermission' as const), name, perm: fc.record({ permType: fc.constantFrom('READ' as const, 'WRITE' as const, 'READWRITE' as const), key, rangeEnd: fc.oneof(fc.constant(EMPTY_END), key) }) }),
  fc.record({ op: fc.constant('roleRevokePermission' as const), role: name, key, rangeEnd: fc.oneof(fc.constant(EMPTY_END), key) }),
);
const authHeader: fc.Arbitrary<AuthHeader | undefined> = fc.option(fc.record({ user: name, revision: fc.oneof(fc.integer({ min: 0, max: 20 }), fc.constant(Number.MAX_SAFE_INTEGER)) }), { nil: undefined });

const command: fc.Arbitrary<Command> = fc.oneof(
  authCommand,
  fc.record({ op: fc.constant('put' as const), req: putReq }),
  fc.record({ op: fc.constant('deleteRange' as const), req: deleteReq }),
  fc.record({ op: fc.constant('txn' as const), req: txn }),
  fc.record({ op: fc.constant('compact' as const), revision: int }),
  fc.record({ op: fc.constant('leaseGrant' as const), id: fc.oneof(fc.constant(7n), fc.bigInt({ min: 1n, max: I64_MAX })), ttl: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }) }),
  fc.record({ op: fc.constant('leaseRevoke' as const), id: lease }),
  fc.record({
    op: fc.constant('publish' as const),
    member: fc.record({ id: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), name: fc.string({ maxLength: 10 }), clientUrls: fc.array(fc.webUrl(), { maxLength: 3 }) }),
  }),
  fc.record({
    op: fc.constant('alarm' as const),
    action: fc.constantFrom('activate' as const, 'deactivate' as const),
    member: fc.record({ memberId: fc.oneof(fc.constantFrom(0n, 2n ** 64n - 1n), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })), alarm: fc.constantFrom('NOSPACE' as const, 'CORRUPT' as const) }),
  }),
  fc.record({
    op: fc.constant('leaseCheckpoint' as const),
    checkpoints: fc.array(
      fc.record({
        id: fc.oneof(fc.constant(7n), fc.bigInt({ min: 1n, max: I64_MAX })),
        remainingMs: fc.oneof(fc.constantFrom(0, 1, 5000, 10_000, 10_001, LEASE_REMAINING_MS_MAX), fc.integer({ min: 0, max: LEASE_REMAINING_MS_MAX })),
      }),
      { maxLength: 4 },
    ),
  }),
);
const requestId = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });

const EMPTY = new Uint8Array(0);
const u8 = (b: Uint8Array) => new Uint8Array(b);

/** What a decoder gives back for a command: every optional field filled in with its default. */
function normalRange(r: RangeRequest): RangeRequest {
  return {
    key: u8(r.key),
    rangeEnd: u8(r.rangeEnd ?? EMPTY),
    limit: r.limit ?? 0,
    revision: r.revision ?? 0,
    sortOrder: r.sortOrder ?? 'none',
    sortTarget: r.sortTarget ?? 'key',
    keysOnly: r.keysOnly ?? false,
    countOnly: r.countOnly ?? false,
    minModRevision: r.minModRevision ?? 0,
    maxModRevision: r.maxModRevision ?? 0,
    minCreateRevision: r.minCreateRevision ?? 0,
    maxCreateRevision: r.maxCreateRevision ?? 0,
  };
}
const normalPut = (r: PutRequest): PutRequest => ({
  key: u8(r.key),
  value: u8(r.value ?? EMPTY),
  lease: r.lease ?? 0n,
  prevKv: r.prevKv ?? false,
  ignoreValue: r.ignoreValue ?? false,
  ignoreLease: r.ignoreLease ?? false,
});
const normalDelete = (r: DeleteRangeRequest): DeleteRangeRequest => ({ key: u8(r.key), rangeEnd: u8(r.rangeEnd ?? EMPTY), prevKv: r.prevKv ?? false });
function normalTxn(t: TxnRequest): TxnRequest {
  const op = (o: RequestOp): RequestOp =>
    'range' in o ? { range: normalRange(o.range) } : 'put' in o ? { put: normalPut(o.put) } : 'deleteRange' in o ? { deleteRange: normalDelete(o.deleteRange) } : { txn: normalTxn(o.txn) };
  return {
    compare: t.compare.map((c) => ({ ...c, key: u8(c.key), rangeEnd: u8(c.rangeEnd ?? EMPTY), ...(c.target === 'value' ? { value: u8(c.value) } : {}) }) as Compare),
    success: t.success.map(op),
    failure: t.failure.map(op),
  };
}
function normal(c: Command): Command {
  switch (c.op) {
    case 'put':
      return { op: 'put', req: normalPut(c.req) };
    case 'deleteRange':
      return { op: 'deleteRange', req: normalDelete(c.req) };
    case 'txn':
      return { op: 'txn', req: normalTxn(c.req) };
    default:
      return c;
  }
}

/** A state machine with keys and a lease (id 7) so that random commands meet something. */
function seeded(): { sm: KvStateMachine; apply: (data: Uint8Array) => void } {
  const sm = new KvStateMachine();
  let index = 0;
  const apply = (data: Uint8Array) => {
    sm.apply({ index: ++index, term: 1, type: 'normal', data });
  };
  apply(encodeCommand({ op: 'leaseGrant', id: 7n, ttl: 10 }));
  for (const k of ['a', 'b', 'a/1']) apply(encodeCommand({ op: 'put', req: { key: Buffer.from(k), value: Buffer.from('v'), lease: k === 'b' ? 7n : 0n } }));
  apply(encodeCommand({ op: 'put', req: { key: Buffer.from('a'), value: Buffer.from('w') } }));
  // Auth on, with root, alice (role app: READWRITE on a/ and READ on b) so that random
  // commands with an identity meet permission checks.
  for (const c of [
    { op: 'userAdd', name: 'root', hash: HASH, noPassword: false },
    { op: 'userGrantRole', user: 'root', role: 'root' },
    { op: 'roleAdd', name: 'app' },
    { op: 'roleGrantPermission', name: 'app', perm: { permType: 'READWRITE', key: Buffer.from('a/'), rangeEnd: Buffer.from('a0') } },
    { op: 'roleGrantPermission', name: 'app', perm: { permType: 'READ', key: Buffer.from('b'), rangeEnd: EMPTY } },
    { op: 'userAdd', name: 'alice', hash: HASH, noPassword: false },
    { op: 'userGrantRole', user: 'alice', role: 'app' },
    { op: 'authEnable' },
  ] as AuthCommand[]) {
    apply(encodeCommand(c));
  }
  expect(sm.auth.enabled).toBe(true);
  return { sm, apply };
}

/** Applies the bytes to a seeded state machine: the result must be ok or etcd's refusal, never an exception. */
function appliesCleanly(data: Uint8Array): void {
  const { sm, apply } = seeded();
  const before = sm.appliedIndex;
  apply(data);
  expect(sm.appliedIndex).toBe(before + 1);
}

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 8 }) }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function mutate(b: Uint8Array, ms: Mutation[]): Uint8Array {
  let out = Uint8Array.from(b);
  for (const m of ms) {
    const at = out.length === 0 ? 0 : m.at % out.length;
    if (m.kind === 'flip') {
      if (out.length > 0) out[at] = out[at]! ^ (1 << m.bit);
    } else if (m.kind === 'set') out.set(m.bytes.subarray(0, out.length - at), at);
    else if (m.kind === 'truncate') out = out.slice(0, at);
    else if (m.kind === 'insert') out = Uint8Array.from([...out.subarray(0, at), ...m.bytes, ...out.subarray(at)]);
    else out = Uint8Array.from([...out.subarray(0, at), ...out.subarray(at + m.n)]);
  }
  return out;
}

describe('command encoding', () => {
  it('round-trips every command and request id', () => {
    fc.assert(
      fc.property(requestId, command, authHeader, (id, c, auth) => {
        const bytes = encodeRequest(auth ? { id, command: c, auth } : { id, command: c });
        expect(bytes[0]).toBe(COMMAND_FORMAT_VERSION);
        const d = decodeRequest(bytes);
        if (!d.ok) throw new Error(`did not decode: ${d.reason}`);
        expect(d.id).toBe(id);
        expect(d.command).toEqual(normal(c));
        expect(d.auth).toEqual(auth);
        expect(encodeRequest(d.auth ? { id, command: d.command, auth: d.auth } : { id, command: d.command })).toEqual(bytes);
      }),
      { numRuns: 2000 },
    );
  });

  it('random bytes never throw, and whatever decodes applies cleanly', () => {
    const withHeader = fc.tuple(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.oneof(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 31, max: 45 }), fc.constant(ALARM_COMMAND_TAG)), fc.uint8Array({ maxLength: 200 })).map(([id, tag, rest]) => {
      const w = new ByteWriter();
      w.u8(COMMAND_FORMAT_VERSION);
      w.bigU64(id);
      w.u8(tag);
      return Uint8Array.from([...w.written(), ...rest]);
    });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), withHeader), (b) => {
        const d = decodeRequest(b);
        if (!d.ok) expect(d.reason).not.toBe('');
        appliesCleanly(b);
      }),
      { numRuns: 3000 },
    );
  });

  it('mutated encodings never throw, and whatever decodes applies cleanly', () => {
    let decoded = 0;
    fc.assert(
      fc.property(requestId, command, authHeader, fc.array(mutation, { minLength: 1, maxLength: 4 }), (id, c, auth, ms) => {
        const b = mutate(encodeRequest(auth ? { id, command: c, auth } : { id, command: c }), ms);
        const d = decodeRequest(b);
        if (d.ok) decoded++;
        appliesCleanly(b);
      }),
      { numRuns: 3000 },
    );
    // The property must reach the state machine with commands, not only refusals.
    expect(decoded).toBeGreaterThan(100);
  });

  it('refuses what the state machine cannot take, with a reason, keeping the id when it was readable', () => {
    const enc = (f: (w: ByteWriter) => void, version = COMMAND_FORMAT_VERSION) => {
      const w = new ByteWriter();
      w.u8(version);
      w.bigU64(42n);
      f(w);
      return w.written().slice();
    };
    const refused = (b: Uint8Array, reason: RegExp, id = 42n) => {
      const d = decodeRequest(b);
      expect(d.ok).toBe(false);
      if (d.ok) return;
      expect(d.reason).toMatch(reason);
      expect(d.id).toBe(id);
    };
    refused(new Uint8Array(0), /empty/, 0n);
    refused(enc((w) => w.u8(1), 2), /unknown command format version 2/, 0n);
    refused(Uint8Array.from([COMMAND_FORMAT_VERSION, 1, 2]), /request id/, 0n);
    refused(enc((w) => w.u8(0)), /unknown command 0/);
    refused(enc((w) => w.u8(ALARM_COMMAND_TAG - 1)), new RegExp(`unknown command ${ALARM_COMMAND_TAG - 1}`));
    // An alarm: action 1 or 2, a u64 member id, type 1 (NOSPACE) or 2 (CORRUPT); nothing after.
    refused(enc((w) => (w.u8(ALARM_COMMAND_TAG), w.u8(0), w.bigU64(1n), w.u8(1))), /unknown alarm action 0/);
    refused(enc((w) => (w.u8(ALARM_COMMAND_TAG), w.u8(3), w.bigU64(1n), w.u8(1))), /unknown alarm action 3/);
    refused(enc((w) => (w.u8(ALARM_COMMAND_TAG), w.u8(1), w.bigU64(1n), w.u8(0))), /unknown alarm type/);
    refused(enc((w) => (w.u8(ALARM_COMMAND_TAG), w.u8(1), w.bigU64(1n), w.u8(3))), /unknown alarm type/);
    refused(enc((w) => (w.u8(ALARM_COMMAND_TAG), w.u8(1), w.bigU64(1n))), /./);
    refused(enc((w) => (w.u8(ALARM_COMMAND_TAG), w.u8(2), w.bigU64(1n), w.u8(2), w.u8(0))), /trailing/);
    expect(decodeRequest(enc((w) => (w.u8(ALARM_COMMAND_TAG), w.u8(2), w.bigU64(2n ** 64n - 1n), w.u8(2))))).toEqual({
      ok: true,
      id: 42n,
      command: { op: 'alarm', action: 'deactivate', member: { memberId: 2n ** 64n - 1n, alarm: 'CORRUPT' } },
    });
    refused(enc((w) => w.u8(9)), /unknown command 9/);
    // leaseCheckpoint: ids positive, remaining times in [0, LEASE_REMAINING_MS_MAX], at most LEASE_CHECKPOINT_BATCH_MAX per entry.
    refused(enc((w) => (w.u8(8), w.u32(1), w.bigI64(0n), w.bigI64(5n))), /lease id 0 is not positive/);
    refused(enc((w) => (w.u8(8), w.u32(1), w.bigI64(3n), w.bigI64(-1n))), /remaining time -1 ms is out of range/);
    refused(enc((w) => (w.u8(8), w.u32(1), w.bigI64(3n), w.bigI64(BigInt(LEASE_REMAINING_MS_MAX) + 1n))), /out of range/);
    refused(enc((w) => (w.u8(8), w.u32(0xffffffff))), /cannot fit/);
    const tooMany = Array.from({ length: LEASE_CHECKPOINT_BATCH_MAX + 1 }, (_, i) => ({ id: BigInt(i + 1), remainingMs: 1 }));
    expect(decodeRequest(encodeCommand({ op: 'leaseCheckpoint', checkpoints: tooMany.slice(1) })).ok).toBe(true);
    refused(encodeRequest({ id: 42n, command: { op: 'leaseCheckpoint', checkpoints: tooMany } }), new RegExp(`at most ${LEASE_CHECKPOINT_BATCH_MAX}`));
    // leaseGrant with id 0 or negative, negative TTL, TTL beyond 2^53.
    refused(enc((w) => (w.u8(5), w.bigI64(0n), w.bigI64(10n))), /lease id 0 is not positive/);
    refused(enc((w) => (w.u8(5), w.bigI64(-3n), w.bigI64(10n))), /lease id -3 is not positive/);
    refused(enc((w) => (w.u8(5), w.bigI64(3n), w.bigI64(-1n))), /negative/);
    refused(enc((w) => (w.u8(5), w.bigI64(3n), w.bigI64(2n ** 60n))), /out of range/);
    refused(enc((w) => (w.u8(4), w.bigI64(2n ** 53n))), /compact revision .* out of range/);
    // Counts beyond the bytes left fail at once (no loop over 4 billion items).
    refused(enc((w) => (w.u8(3), w.u32(0xffffffff))), /cannot fit/);
    refused(enc((w) => (w.u8(7), w.bigU64(1n), w.str('m'), w.u32(0xffffffff))), /cannot fit/);
    // Unknown enum codes and flags.
    refused(enc((w) => (w.u8(2), w.bytes(Buffer.from('k')), w.bytes(EMPTY), w.u8(2))), /bad delete flags 2/);
    const putBytes = encodeCommand({ op: 'put', req: { key: Buffer.from('k') } });
    refused(Uint8Array.from([...putBytes, 0]).map((x, i) => (i >= 1 && i <= 8 ? (i === 1 ? 42 : 0) : x)), /trailing/);
    // A txn nested one level too deep.
    let t: TxnRequest = { compare: [], success: [{ put: { key: Buffer.from('k') } }], failure: [] };
    for (let i = 0; i < TXN_NESTING_MAX; i++) t = { compare: [], success: [{ txn: t }], failure: [] };
    expect(decodeRequest(encodeCommand({ op: 'txn', req: t })).ok).toBe(true);
    t = { compare: [], success: [{ txn: t }], failure: [] };
    refused(encodeRequest({ id: 42n, command: { op: 'txn', req: t } }), new RegExp(`nested deeper than ${TXN_NESTING_MAX}`));
  });

  it('an undecodable entry applies as the same error result on every member, with its request id', () => {
    const results = [0, 1].map(() => {
      const sm = new KvStateMachine();
      const seen: [bigint, number][] = [];
      sm.onApplied((id, index) => seen.push([id, index]));
      const w = new ByteWriter();
      w.u8(COMMAND_FORMAT_VERSION);
      w.bigU64(99n);
      w.u8(200);
      const r = sm.apply({ index: 1, term: 1, type: 'normal', data: w.written().slice() });
      return { r, seen, hash: sm.store.hashKv(0).hash };
    });
    expect(results[0]).toEqual(results[1]);
    expect(results[0]!.r).toEqual({ ok: false, error: { code: 'malformedEntry', message: 'etcdserver: malformed log entry: unknown command 200' }, revision: 1 });
    expect(results[0]!.seen).toEqual([[99n, 1]]);
  });

  it('a lease checkpoint records the remaining time of leases that exist, at most their TTL; 0 clears it; a revoke drops it', () => {
    const { sm, apply } = seeded(); // lease 7, TTL 10 s
    const cp = (checkpoints: { id: bigint; remainingMs: number }[]) => apply(encodeCommand({ op: 'leaseCheckpoint', checkpoints }));
    expect(sm.leaseRemainingMs(7n)).toBeUndefined();
    cp([{ id: 7n, remainingMs: 4200 }, { id: 8n, remainingMs: 100 }]);
    expect(sm.leaseRemainingMs(7n)).toBe(4200);
    expect(sm.leaseRemainingMs(8n)).toBeUndefined(); // no lease 8: ignored, as etcd
    cp([{ id: 7n, remainingMs: 99_000 }]);
    expect(sm.leaseRemainingMs(7n)).toBe(10_000);
    // The image carries it.
    const copy = new KvStateMachine();
    copy.restore(sm.snapshot(), sm.appliedIndex);
    expect(copy.leaseRemainingMs(7n)).toBe(10_000);
    cp([{ id: 7n, remainingMs: 0 }]);
    expect(sm.leaseRemainingMs(7n)).toBeUndefined();
    cp([{ id: 7n, remainingMs: 300 }]);
    apply(encodeCommand({ op: 'leaseRevoke', id: 7n }));
    expect(sm.leaseRemainingMs(7n)).toBeUndefined();
    apply(encodeCommand({ op: 'leaseGrant', id: 7n, ttl: 10 }));
    expect(sm.leaseRemainingMs(7n)).toBeUndefined();
  });

  it('the size check is on the encoded bytes', () => {
    const data = encodeCommand({ op: 'put', req: { key: Buffer.from('k'), value: new Uint8Array(1000) } });
    expect(data.length).toBeGreaterThan(1000);
    expect(requestTooLarge(data, 1000)).toBe(true);
    expect(requestTooLarge(data, data.length)).toBe(false);
  });
});
