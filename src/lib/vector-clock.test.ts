import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareClocks, happenedBefore, LogicalClock, mergeClocks, type VectorClock } from './vector-clock.js';

const ids = ['a', 'b', 'c', 'd'];
/** Clocks over a few ids, components 0..6 (an absent id counts as 0, so sometimes left out). */
const clockArb: fc.Arbitrary<VectorClock> = fc
  .tuple(...ids.map(() => fc.option(fc.integer({ min: 0, max: 6 }), { nil: undefined })))
  .map((vs) => Object.fromEntries(ids.flatMap((id, i) => (vs[i] === undefined ? [] : [[id, vs[i]]]))));
const get = (c: VectorClock, id: string): number => c[id] ?? 0;
const leq = (a: VectorClock, b: VectorClock): boolean => ids.every((id) => get(a, id) <= get(b, id));

describe('compareClocks', () => {
  it('tells before, after, concurrent and equal', () => {
    expect(compareClocks({ a: 1 }, { a: 2 })).toBe('before');
    expect(compareClocks({ a: 1, b: 3 }, { a: 1 })).toBe('after');
    expect(compareClocks({ a: 2 }, { b: 1 })).toBe('concurrent');
    expect(compareClocks({ a: 2, b: 0 }, { a: 2 })).toBe('equal');
    expect(compareClocks({}, { a: 0 })).toBe('equal');
    expect(compareClocks({}, { c: 1 })).toBe('before');
    expect(happenedBefore({ a: 1 }, { a: 1, b: 1 })).toBe(true);
    expect(happenedBefore({ a: 1, b: 1 }, { a: 1 })).toBe(false);
  });

  it('agrees with the component-wise definition', () => {
    fc.assert(
      fc.property(clockArb, clockArb, (a, b) => {
        const expected = leq(a, b) && leq(b, a) ? 'equal' : leq(a, b) ? 'before' : leq(b, a) ? 'after' : 'concurrent';
        expect(compareClocks(a, b)).toBe(expected);
      }),
      { numRuns: 2000 },
    );
  });

  it('is antisymmetric: swapping the arguments swaps before and after', () => {
    const flip = { before: 'after', after: 'before', concurrent: 'concurrent', equal: 'equal' } as const;
    fc.assert(fc.property(clockArb, clockArb, (a, b) => {
        expect(compareClocks(b, a)).toBe(flip[compareClocks(a, b)]);
      }), { numRuns: 1000 });
  });

  it('is transitive for before', () => {
    fc.assert(
      fc.property(clockArb, clockArb, clockArb, (a, b, c) => {
        if (happenedBefore(a, b) && happenedBefore(b, c)) expect(happenedBefore(a, c)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('mergeClocks', () => {
  it('is the least upper bound, commutative, associative and idempotent, and changes neither argument', () => {
    fc.assert(
      fc.property(clockArb, clockArb, clockArb, (a, b, c) => {
        const a0 = JSON.stringify(a);
        const m = mergeClocks(a, b);
        expect(JSON.stringify(a)).toBe(a0);
        for (const id of ids) expect(get(m, id)).toBe(Math.max(get(a, id), get(b, id)));
        expect(leq(a, m) && leq(b, m)).toBe(true);
        expect(compareClocks(m, mergeClocks(b, a))).toBe('equal');
        expect(compareClocks(mergeClocks(mergeClocks(a, b), c), mergeClocks(a, mergeClocks(b, c)))).toBe('equal');
        expect(compareClocks(mergeClocks(a, a), a)).toBe('equal');
      }),
      { numRuns: 1000 },
    );
  });
});

describe('LogicalClock', () => {
  it('a send happens before its receive; Lamport time follows', () => {
    const p = new LogicalClock('p');
    const q = new LogicalClock('q');
    q.tick();
    q.tick();
    const send = p.tick();
    const recv = q.receive(send.lamport, send.vc);
    expect(compareClocks(send.vc, recv.vc)).toBe('before');
    expect(recv.lamport).toBeGreaterThan(send.lamport);
    expect(recv.vc).toEqual({ p: 1, q: 3 });
    // A later local event at p knows nothing of q's receive.
    expect(compareClocks(p.tick().vc, recv.vc)).toBe('concurrent');
  });

  it('never takes its own component from a message', () => {
    const p = new LogicalClock('p');
    const s = p.receive(10, { p: 9, q: 4 });
    expect(s.vc).toEqual({ p: 1, q: 4 });
    expect(s.lamport).toBe(11);
  });

  it('starts both clocks at `start`, so a restart stamps above its earlier events', () => {
    const before = new LogicalClock('p', 1000).tick();
    expect(before).toEqual({ lamport: 1001, vc: { p: 1001 } });
    const old = new LogicalClock('p').tick();
    expect(compareClocks(old.vc, before.vc)).toBe('before');
  });
});
