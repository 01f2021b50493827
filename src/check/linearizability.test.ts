import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { HistoryOp } from './history.js';
import { checkLinearizable } from './linearizability.js';
import { checkLinearizableNaive } from './naive.js';
import { rng } from '../lib/prng.js';

let p = 0;
const w = (key: string, value: string, call: number, ret: number | null, ok: boolean | null = true): HistoryOp => ({
  process: p++,
  op: 'write',
  key,
  value,
  ok,
  call,
  return: ok === null ? null : ret,
});
const r = (key: string, output: string | null, call: number, ret: number | null, ok: boolean | null = true): HistoryOp => ({
  process: p++,
  op: 'read',
  key,
  ok,
  output,
  call,
  return: ok === null ? null : ret,
});
const cas = (key: string, expected: string | null, value: string, output: boolean | undefined, call: number, ret: number | null, ok: boolean | null = true): HistoryOp => ({
  process: p++,
  op: 'cas',
  key,
  expected,
  value,
  ok,
  ...(output !== undefined ? { output } : {}),
  call,
  return: ok === null ? null : ret,
});
const del = (key: string, call: number, ret: number): HistoryOp => ({ process: p++, op: 'delete', key, ok: true, call, return: ret });

const ok = (h: HistoryOp[]): boolean => checkLinearizable(h).ok;

describe('linearizability checker', () => {
  it('accepts a sequential history', () => {
    expect(ok([w('k', 'a', 0, 1), r('k', 'a', 2, 3), cas('k', 'a', 'b', true, 4, 5), r('k', 'b', 6, 7), del('k', 8, 9), r('k', null, 10, 11)])).toBe(true);
  });

  it('rejects a stale read after a completed write', () => {
    const res = checkLinearizable([w('k', 'a', 0, 1), w('k', 'b', 2, 3), r('k', 'a', 4, 5)]);
    expect(res.ok).toBe(false);
    expect(res.failure!.key).toBe('k');
    expect(res.failure!.message).toContain('read k => "a"');
  });

  it('lets a read concurrent with a write see either value', () => {
    expect(ok([w('k', 'a', 0, 1), w('k', 'b', 2, 10), r('k', 'a', 3, 4)])).toBe(true);
    expect(ok([w('k', 'a', 0, 1), w('k', 'b', 2, 10), r('k', 'b', 3, 4)])).toBe(true);
    // but not go back once the new value was seen
    expect(ok([w('k', 'a', 0, 1), w('k', 'b', 2, 10), r('k', 'b', 3, 4), r('k', 'a', 5, 6)])).toBe(false);
  });

  it('treats touching intervals as concurrent', () => {
    expect(ok([w('k', 'a', 0, 5), r('k', null, 5, 6)])).toBe(true);
    expect(ok([w('k', 'a', 0, 4), r('k', null, 5, 6)])).toBe(false);
  });

  it('checks CAS outcomes against the state', () => {
    expect(ok([w('k', 'a', 0, 1), cas('k', 'a', 'b', true, 2, 3)])).toBe(true);
    expect(ok([w('k', 'a', 0, 1), cas('k', 'x', 'b', true, 2, 3)])).toBe(false);
    expect(ok([w('k', 'a', 0, 1), cas('k', 'x', 'b', false, 2, 3), r('k', 'a', 4, 5)])).toBe(true);
    expect(ok([w('k', 'a', 0, 1), cas('k', 'a', 'b', false, 2, 3)])).toBe(false);
    expect(ok([cas('k', null, 'b', true, 0, 1), r('k', 'b', 2, 3)])).toBe(true);
  });

  it('ignores operations that definitely failed', () => {
    expect(ok([w('k', 'a', 0, 1), w('k', 'b', 2, 3, false), r('k', 'a', 4, 5)])).toBe(true);
    expect(ok([w('k', 'b', 2, 3, false), r('k', 'b', 4, 5)])).toBe(false);
  });

  it('lets an unknown-outcome write take effect later, or never', () => {
    // The write timed out, yet a later read sees it: it took effect after its call.
    expect(ok([w('k', 'a', 0, null, null), r('k', null, 1, 2), r('k', 'a', 10, 11)])).toBe(true);
    // Never observed: fine too.
    expect(ok([w('k', 'a', 0, null, null), r('k', null, 10, 11)])).toBe(true);
    // It cannot take effect before its call.
    expect(ok([r('k', 'a', 0, 1), w('k', 'a', 2, null, null)])).toBe(false);
    // Nor be undone once observed.
    expect(ok([w('k', 'a', 0, null, null), r('k', 'a', 1, 2), r('k', null, 3, 4)])).toBe(false);
  });

  it('checks keys independently and counts what it checked', () => {
    const res = checkLinearizable([w('a', '1', 0, 1), w('b', '2', 0, 1), r('a', '1', 2, 3), r('b', '2', 2, 3), r('b', null, 0, 1, null)]);
    expect(res).toMatchObject({ ok: true, keysChecked: 2, opsChecked: 4, timedOutKeys: [] });
  });

  it('rejects a read of a value never written', () => {
    expect(ok([w('k', 'a', 0, 1), r('k', 'zzz', 2, 3)])).toBe(false);
  });

  it('reports a key it could not decide within its budget', () => {
    // Many concurrent writes and no reads: every order is valid, and memoisation keeps it small,
    // but a budget of 3 states is not enough.
    const h = Array.from({ length: 10 }, (_, i) => w('k', `v${i}`, 0, 100));
    const res = checkLinearizable([...h, r('k', 'v3', 200, 201)], { maxStatesPerKey: 3 });
    expect(res.ok).toBe(true);
    expect(res.timedOutKeys).toEqual(['k']);
  });

  const opArb = fc.record({
    kind: fc.constantFrom('read', 'write', 'cas', 'delete'),
    key: fc.constantFrom('x', 'y'),
    a: fc.constantFrom(null, 'a', 'b', 'c'),
    b: fc.constantFrom('a', 'b', 'c'),
    flag: fc.boolean(),
    call: fc.integer({ min: 0, max: 20 }),
    len: fc.integer({ min: 0, max: 8 }),
    ok: fc.constantFrom(true, true, true, null, false),
  });

  it('agrees with the brute-force checker on random small histories', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 7 }), (raw) => {
        const h: HistoryOp[] = raw.map((o, i) => {
          const base = { process: i, key: o.key, ok: o.ok, call: o.call, return: o.ok === null ? null : o.call + o.len };
          switch (o.kind) {
            case 'read':
              return { ...base, op: 'read', output: o.a };
            case 'write':
              return { ...base, op: 'write', value: o.b };
            case 'delete':
              return { ...base, op: 'delete' };
            default:
              return { ...base, op: 'cas', expected: o.a, value: o.b, output: o.flag };
          }
        });
        expect(checkLinearizable(h).ok).toBe(checkLinearizableNaive(h));
      }),
      { numRuns: 3000 },
    );
  });

  it('accepts histories produced by a real sequential execution with overlapping intervals', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 40 }), fc.integer({ min: 0, max: 2 ** 31 }), (raw, seed) => {
        const g = rng(seed);
        const state = new Map<string, string | null>();
        const h: HistoryOp[] = raw.map((o, i) => {
          // Each op takes effect at time 10*i; its interval is stretched randomly around that.
          const at = 10 * i;
          const call = at - g.int(0, 25);
          const ret = at + g.int(0, 25);
          const cur = state.get(o.key) ?? null;
          const unknown = o.ok === null && o.kind !== 'read';
          const base = { process: i, key: o.key, ok: unknown ? null : true, call, return: unknown ? null : ret };
          switch (o.kind) {
            case 'read':
              return { ...base, op: 'read', output: cur };
            case 'write':
              state.set(o.key, o.b);
              return { ...base, op: 'write', value: o.b };
            case 'delete':
              state.set(o.key, null);
              return { ...base, op: 'delete' };
            default: {
              const swaps = cur === o.a;
              if (swaps) state.set(o.key, o.b);
              return { ...base, op: 'cas', expected: o.a, value: o.b, output: swaps };
            }
          }
        });
        const res = checkLinearizable(h);
        expect(res.failure?.message).toBeUndefined();
        expect(res.ok).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('checks a 20,000-op history of 5 concurrent processes over 50 keys', () => {
    const g = rng(99);
    const state = new Map<string, string | null>();
    const h: HistoryOp[] = [];
    let t = 0;
    for (let i = 0; i < 20_000; i++) {
      t += 10;
      const key = `k${g.int(0, 50)}`;
      const call = t - g.int(0, 40);
      const ret = t + g.int(0, 40);
      const cur = state.get(key) ?? null;
      const roll = g.next();
      if (roll < 0.5) h.push({ process: i % 5, op: 'read', key, ok: true, output: cur, call, return: ret });
      else if (roll < 0.9) {
        const v = `v${i}`;
        state.set(key, v);
        h.push({ process: i % 5, op: 'write', key, value: v, ok: g.chance(0.05) ? null : true, call, return: ret });
      } else {
        const v = `v${i}`;
        const swaps = g.chance(0.5);
        const expected = swaps ? cur : 'nope';
        if (swaps) state.set(key, v);
        h.push({ process: i % 5, op: 'cas', key, expected, value: v, ok: true, output: swaps, call, return: ret });
      }
    }
    for (const op of h) if (op.ok === null) (op as { return: number | null }).return = null;
    const started = performance.now();
    const res = checkLinearizable(h);
    console.log(`checked ${res.opsChecked} ops over ${res.keysChecked} keys in ${(performance.now() - started).toFixed(0)} ms`);
    expect(res.ok).toBe(true);
    expect(res.timedOutKeys).toEqual([]);
  });
});
