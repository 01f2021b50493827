/**
 * Alarms in the state machine (etcd 3.4's AlarmStore and its capped / corrupt appliers), the
 * alarms in the snapshot image (targeted hostile cases; the mutation properties are in
 * snapshot-image.test.ts), and MvccStore.dbSizeBytes(), the size the quota compares.
 */
import { describe, expect, it } from 'vitest';
import { encodeCommand, type AlarmType, type ApplyResult, type Command } from './commands.js';
import { SnapshotImageError } from './snapshot-image.js';
import { ALARMS_MAX, KvStateMachine } from './state-machine.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

function machine(): { sm: KvStateMachine; run: (c: Command) => ApplyResult } {
  const sm = new KvStateMachine();
  const run = (c: Command) => sm.apply({ index: sm.appliedIndex + 1, term: 1, type: 'normal', data: encodeCommand(c) });
  return { sm, run };
}

const alarm = (action: 'activate' | 'deactivate', memberId: bigint, type: AlarmType): Command => ({ op: 'alarm', action, member: { memberId, alarm: type } });
const refusedWith = (r: ApplyResult): string => (r.ok ? 'ok' : `${r.error.code}: ${r.error.message}`);
const NOSPACE = 'noSpace: etcdserver: mvcc: database space exceeded';
const CORRUPT = 'corrupt: etcdserver: corrupt cluster';

describe('alarms in the state machine', () => {
  it('activate and deactivate as etcd: idempotent, answered with the alarm as it is or was, listed sorted by member then type', () => {
    const { sm, run } = machine();
    expect(run(alarm('activate', 9n, 'NOSPACE'))).toMatchObject({ ok: true, value: { op: 'alarm', alarms: [{ memberId: 9n, alarm: 'NOSPACE' }] } });
    // Again: the same alarm, nothing added.
    expect(run(alarm('activate', 9n, 'NOSPACE'))).toMatchObject({ ok: true, value: { alarms: [{ memberId: 9n, alarm: 'NOSPACE' }] } });
    run(alarm('activate', 3n, 'CORRUPT'));
    run(alarm('activate', 9n, 'CORRUPT'));
    run(alarm('activate', 2n ** 64n - 1n, 'NOSPACE'));
    expect(sm.alarms()).toEqual([
      { memberId: 3n, alarm: 'CORRUPT' },
      { memberId: 9n, alarm: 'NOSPACE' },
      { memberId: 9n, alarm: 'CORRUPT' },
      { memberId: 2n ** 64n - 1n, alarm: 'NOSPACE' },
    ]);
    expect(sm.alarms('NOSPACE').map((a) => a.memberId)).toEqual([9n, 2n ** 64n - 1n]);
    expect(sm.hasAlarm('CORRUPT', 3n)).toBe(true);
    expect(sm.hasAlarm('NOSPACE', 3n)).toBe(false);
    // Deactivating what is not active answers no alarm and changes nothing.
    expect(run(alarm('deactivate', 3n, 'NOSPACE'))).toMatchObject({ ok: true, value: { alarms: [] } });
    expect(run(alarm('deactivate', 9n, 'NOSPACE'))).toMatchObject({ ok: true, value: { alarms: [{ memberId: 9n, alarm: 'NOSPACE' }] } });
    expect(sm.alarms().length).toBe(3);
    // Alarms write no revision.
    expect(sm.store.revision).toBe(1);
  });

  it('NOSPACE refuses puts, txns with a put (nested too) and lease grants; reads, deletes, compaction and revokes still work', () => {
    const { sm, run } = machine();
    run({ op: 'leaseGrant', id: 5n, ttl: 60 });
    run({ op: 'put', req: { key: enc('a'), value: enc('1') } });
    run({ op: 'put', req: { key: enc('b'), value: enc('2') } });
    run(alarm('activate', 1n, 'NOSPACE'));
    const rev = sm.store.revision;
    expect(refusedWith(run({ op: 'put', req: { key: enc('c'), value: enc('3') } }))).toBe(NOSPACE);
    // Even a put that would shrink a value: etcd's capped applier refuses every put.
    expect(refusedWith(run({ op: 'put', req: { key: enc('a'), value: new Uint8Array(0) } }))).toBe(NOSPACE);
    expect(refusedWith(run({ op: 'txn', req: { compare: [], success: [], failure: [{ put: { key: enc('c') } }] } }))).toBe(NOSPACE);
    expect(refusedWith(run({ op: 'txn', req: { compare: [], success: [{ txn: { compare: [], success: [{ put: { key: enc('c') } }], failure: [] } }], failure: [] } }))).toBe(NOSPACE);
    expect(refusedWith(run({ op: 'leaseGrant', id: 6n, ttl: 60 }))).toBe(NOSPACE);
    expect(sm.store.revision).toBe(rev);
    expect(refusedWith(run({ op: 'txn', req: { compare: [], success: [{ range: { key: enc('a') } }, { deleteRange: { key: enc('b') } }], failure: [] } }))).toBe('ok');
    expect(refusedWith(run({ op: 'deleteRange', req: { key: enc('a') } }))).toBe('ok');
    expect(refusedWith(run({ op: 'compact', revision: sm.store.revision }))).toBe('ok');
    expect(refusedWith(run({ op: 'leaseRevoke', id: 5n }))).toBe('ok');
    expect(sm.store.range({ key: enc('a'), rangeEnd: enc('z') }).count).toBe(0);
    // Another member's NOSPACE stays when one is cleared: still refused.
    run(alarm('activate', 2n, 'NOSPACE'));
    run(alarm('deactivate', 1n, 'NOSPACE'));
    expect(refusedWith(run({ op: 'put', req: { key: enc('c') } }))).toBe(NOSPACE);
    run(alarm('deactivate', 2n, 'NOSPACE'));
    expect(refusedWith(run({ op: 'put', req: { key: enc('c') } }))).toBe('ok');
    expect(refusedWith(run({ op: 'leaseGrant', id: 6n, ttl: 60 }))).toBe('ok');
  });

  it('CORRUPT refuses every write, compaction and lease change', () => {
    const { run } = machine();
    run({ op: 'leaseGrant', id: 5n, ttl: 60 });
    run({ op: 'put', req: { key: enc('a') } });
    run(alarm('activate', 1n, 'CORRUPT'));
    for (const c of [
      { op: 'put', req: { key: enc('b') } },
      { op: 'deleteRange', req: { key: enc('a') } },
      { op: 'txn', req: { compare: [], success: [{ range: { key: enc('a') } }], failure: [] } },
      { op: 'compact', revision: 2 },
      { op: 'leaseGrant', id: 6n, ttl: 60 },
      { op: 'leaseRevoke', id: 5n },
    ] satisfies Command[]) {
      expect(refusedWith(run(c)), c.op).toBe(CORRUPT);
    }
    expect(refusedWith(run(alarm('deactivate', 1n, 'CORRUPT')))).toBe('ok');
    expect(refusedWith(run({ op: 'put', req: { key: enc('b') } }))).toBe('ok');
  });

  it(`holds at most ALARMS_MAX (${ALARMS_MAX}) alarms: one more is refused and changes nothing`, () => {
    const { sm, run } = machine();
    for (let i = 0; i < ALARMS_MAX; i++) run(alarm('activate', BigInt(i), 'CORRUPT'));
    expect(sm.alarms().length).toBe(ALARMS_MAX);
    expect(refusedWith(run(alarm('activate', 99_999n, 'NOSPACE')))).toBe('tooManyAlarms: etcdserver: too many alarms');
    // One already active is still answered.
    expect(refusedWith(run(alarm('activate', 0n, 'CORRUPT')))).toBe('ok');
    expect(sm.alarms().length).toBe(ALARMS_MAX);
  });
});

describe('alarms in the snapshot image', () => {
  const image = (sm: KvStateMachine): Record<string, unknown> => JSON.parse(Buffer.from(sm.snapshot()).toString('utf8')) as Record<string, unknown>;
  const bytes = (o: unknown): Uint8Array => enc(JSON.stringify(o));

  it('round-trip; an image without alarms has no alarms field (as before alarms existed)', () => {
    const { sm, run } = machine();
    run({ op: 'put', req: { key: enc('a'), value: enc('1') } });
    expect(Object.keys(image(sm))).not.toContain('alarms');
    run(alarm('activate', 2n ** 64n - 1n, 'NOSPACE'));
    run(alarm('activate', 7n, 'CORRUPT'));
    run(alarm('activate', 7n, 'NOSPACE'));
    expect(image(sm).alarms).toEqual([
      ['7', 'NOSPACE'],
      ['7', 'CORRUPT'],
      [(2n ** 64n - 1n).toString(), 'NOSPACE'],
    ]);
    const copy = new KvStateMachine();
    copy.restore(sm.snapshot(), 9);
    expect(copy.alarms()).toEqual(sm.alarms());
    expect(copy.snapshot()).toEqual(sm.snapshot());
    // The restored state machine enforces them.
    expect(refusedWith(copy.apply({ index: 10, term: 1, type: 'normal', data: encodeCommand({ op: 'put', req: { key: enc('b') } }) }))).toBe(CORRUPT);
    // And a snapshot without alarms clears them.
    copy.restore(new KvStateMachine().snapshot(), 11);
    expect(copy.alarms()).toEqual([]);
  });

  it('hostile alarm lists are refused with where and what, and the state machine is left as it was', () => {
    const { sm, run } = machine();
    run(alarm('activate', 4n, 'NOSPACE'));
    const base = image(sm);
    const cases: [unknown, RegExp][] = [
      [[], /image.alarms: empty/],
      ['x', /image.alarms: expected an array/],
      [{}, /image.alarms: expected an array/],
      [[['4']], /image.alarms\[0\]: expected an array of 2/],
      [[['4', 'NOSPACE', 1]], /expected an array of 2/],
      [[['4', 'NONE']], /image.alarms\[0\]\[1\]: not an alarm type: "NONE"/],
      [[['4', 'nospace']], /not an alarm type/],
      [[['4', 1]], /not an alarm type: 1/],
      [[[4, 'NOSPACE']], /image.alarms\[0\]\[0\]: expected a decimal integer string/],
      [[['-1', 'NOSPACE']], /out of range/],
      [[['18446744073709551616', 'NOSPACE']], /out of range/],
      [[['04', 'NOSPACE']], /expected a decimal integer string/],
      [[['4', 'NOSPACE'], ['4', 'NOSPACE']], /image.alarms\[1\]: alarms not sorted or not unique/],
      [[['5', 'NOSPACE'], ['4', 'NOSPACE']], /not sorted/],
      [[['4', 'CORRUPT'], ['4', 'NOSPACE']], /not sorted/],
      [Array.from({ length: ALARMS_MAX + 1 }, (_, i) => [String(i), 'NOSPACE']), new RegExp(`${ALARMS_MAX + 1} alarms, more than ${ALARMS_MAX}`)],
    ];
    for (const [alarms, re] of cases) {
      const before = sm.snapshot();
      expect(() => sm.restore(bytes({ ...base, alarms }), 5), JSON.stringify(alarms).slice(0, 80)).toThrow(SnapshotImageError);
      expect(() => sm.restore(bytes({ ...base, alarms }), 5)).toThrow(re);
      expect(sm.snapshot()).toEqual(before);
    }
    // A field beside them is still refused.
    expect(() => sm.restore(bytes({ ...base, alarmz: [] }), 5)).toThrow(/unknown field "alarmz"/);
    // The largest valid list restores.
    const full = Array.from({ length: ALARMS_MAX }, (_, i) => [String(i), 'NOSPACE']);
    sm.restore(bytes({ ...base, alarms: full }), 5);
    expect(sm.alarms().length).toBe(ALARMS_MAX);
  });
});
