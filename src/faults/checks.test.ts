import { describe, expect, it } from 'vitest';
import type { HistoryOp } from '../check/index.js';
import { checkAcknowledged, checkHashes, checkWatches, FencedStoreModel, type WatchRecord } from './checks.js';

const ev = (rev: number, key: string, value: string, type = 'PUT') => ({ rev: BigInt(rev), type, key, value });
const reference: WatchRecord = { member: 'reference', events: [ev(2, 'a', '1'), ev(3, 'b', '2'), ev(4, 'a', '', 'DELETE'), ev(5, 'a', '3')] };

describe('fault harness checkers', () => {
  it('watches: exact history passes; a gap, a duplicate, reordering or an invented event fails', () => {
    expect(checkWatches([{ member: 'm1', events: [...reference.events] }], reference).ok).toBe(true);
    const cases: WatchedCase[] = [
      ['gap', [reference.events[0]!, reference.events[2]!, reference.events[3]!]],
      ['duplicate', [reference.events[0]!, reference.events[1]!, reference.events[1]!, reference.events[2]!, reference.events[3]!]],
      ['reordered', [reference.events[1]!, reference.events[0]!, reference.events[2]!, reference.events[3]!]],
      ['invented', [...reference.events, ev(6, 'z', 'x')]],
      ['short', reference.events.slice(0, 3)],
      ['wrong value', [reference.events[0]!, ev(3, 'b', 'other'), reference.events[2]!, reference.events[3]!]],
    ];
    for (const [name, events] of cases) {
      const v = checkWatches([{ member: 'm2', events }], reference);
      expect(v.ok, name).toBe(false);
      expect(v.detail).toContain('m2');
    }
  });

  it('acknowledged writes: an acked write or successful CAS missing from the history fails; unknown and failed ones do not count', () => {
    const op = (o: Partial<HistoryOp>): HistoryOp => ({ process: 0, op: 'write', key: 'a', ok: true, call: 0, return: 1, ...o });
    expect(checkAcknowledged([op({ value: '1' }), op({ op: 'cas', key: 'a', value: '3', expected: '1', output: true }), op({ value: 'lost', ok: null, return: null }), op({ op: 'cas', value: 'no', output: false })], reference).ok).toBe(true);
    expect(checkAcknowledged([op({ value: 'lost' })], reference).ok).toBe(false);
    expect(checkAcknowledged([op({ op: 'cas', value: 'gone', expected: '1', output: true })], reference).ok).toBe(false);
  });

  it('HashKV: all equal passes; a differing or unavailable member fails', () => {
    expect(checkHashes(9n, [{ member: 'm1', hash: '7' }, { member: 'm2', hash: '7' }]).ok).toBe(true);
    expect(checkHashes(9n, [{ member: 'm1', hash: '7' }, { member: 'm2', hash: '8' }]).ok).toBe(false);
    expect(checkHashes(9n, [{ member: 'm1', hash: '7' }, { member: 'm2', hash: null }]).ok).toBe(false);
  });
});

describe('locks and fencing checker', () => {
  it('passes distinct tokens; refuses stale writes; fails on a token given twice or shared by two writers', () => {
    const ok = new FencedStoreModel();
    ok.acquired(1, 10n);
    expect(ok.write(1, 10n, 'a')).toBe(true);
    ok.acquired(2, 12n);
    expect(ok.write(2, 12n, 'b')).toBe(true);
    expect(ok.write(1, 10n, 'late')).toBe(false);
    expect(ok.verdict()).toMatchObject({ ok: true });
    expect(ok.verdict().detail).toContain('1 stale ones refused');

    const twice = new FencedStoreModel();
    twice.acquired(1, 10n);
    twice.acquired(2, 10n);
    expect(twice.verdict().ok).toBe(false);

    const shared = new FencedStoreModel();
    shared.acquired(1, 10n);
    shared.write(1, 10n, 'a');
    shared.write(2, 10n, 'b');
    expect(shared.verdict().ok).toBe(false);

    expect(new FencedStoreModel().verdict().ok).toBe(false);
  });
});

type WatchedCase = [string, WatchRecord['events']];
