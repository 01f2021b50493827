/**
 * DeadlineHeap against a dumb model (a Map scanned in full) on random operation sequences:
 * the same earliest deadline, the same items popped in deadline order, the index consistent.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DeadlineHeap } from './deadline-heap.js';

type Op = { op: 'set'; key: number; at: number } | { op: 'delete'; key: number } | { op: 'popDue'; now: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('set' as const), key: fc.nat(20), at: fc.integer({ min: -5, max: 100 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('delete' as const), key: fc.nat(20) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('popDue' as const), now: fc.integer({ min: -5, max: 100 }) }) },
);

describe('DeadlineHeap', () => {
  it('property: agrees with a full scan after every operation', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 200 }), (ops) => {
        const heap = new DeadlineHeap<number>();
        const model = new Map<number, number>();
        for (const o of ops) {
          if (o.op === 'set') {
            heap.set(o.key, o.at);
            model.set(o.key, o.at);
          } else if (o.op === 'delete') {
            expect(heap.delete(o.key)).toBe(model.delete(o.key));
          } else {
            const got = heap.popDue(o.now);
            const min = Math.min(...model.values());
            if (model.size === 0 || min > o.now) expect(got).toBeUndefined();
            else {
              expect(got?.at).toBe(min);
              expect(model.get(got!.key)).toBe(min);
              model.delete(got!.key);
            }
          }
          heap.checkInvariants();
          expect(heap.size).toBe(model.size);
          expect(heap.peek()?.at).toBe(model.size === 0 ? undefined : Math.min(...model.values()));
          for (const [k, at] of model) expect(heap.deadline(k)).toBe(at);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('drains in deadline order', () => {
    const heap = new DeadlineHeap<bigint>();
    const ats = [5, 3, 9, 1, 7, 3, 8];
    ats.forEach((at, i) => heap.set(BigInt(i), at));
    heap.set(2n, 0); // moved earlier
    heap.set(3n, 10); // moved later
    const out: number[] = [];
    for (let x = heap.popDue(Infinity); x; x = heap.popDue(Infinity)) out.push(x.at);
    expect(out).toEqual([0, 3, 3, 5, 7, 8, 10]);
    expect(heap.size).toBe(0);
  });
});
