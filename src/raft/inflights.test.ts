import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Inflights } from './inflights.js';

type Op = { kind: 'add'; bytes: number } | { kind: 'free'; upTo: number } | { kind: 'freeFirst' };
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('add' as const), bytes: fc.integer({ min: 0, max: 100 }) }),
  fc.record({ kind: fc.constant('free' as const), upTo: fc.integer({ min: 0, max: 60 }) }),
  fc.record({ kind: fc.constant('freeFirst' as const) }),
);

describe('Inflights window against a plain queue', () => {
  it('count, bytes and fullness match the queue under any sequence', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 0, max: 300 }), fc.array(opArb, { maxLength: 80 }), (msgsMax, bytesMax, ops) => {
        const w = new Inflights(msgsMax, bytesMax);
        const q: { index: number; bytes: number }[] = [];
        let next = 1;
        for (const op of ops) {
          const full = q.length === msgsMax || (bytesMax > 0 && q.reduce((a, x) => a + x.bytes, 0) >= bytesMax);
          expect(w.full()).toBe(full);
          if (op.kind === 'add') {
            if (full) {
              expect(() => w.add(next, op.bytes)).toThrow();
              continue;
            }
            w.add(next, op.bytes);
            q.push({ index: next, bytes: op.bytes });
            next += 1 + (op.bytes % 3);
          } else if (op.kind === 'free') {
            w.freeLE(op.upTo);
            while (q.length && q[0]!.index <= op.upTo) q.shift();
          } else {
            w.freeFirstOne();
            q.shift();
          }
          expect(w.count).toBe(q.length);
          expect(w.bytes).toBe(q.reduce((a, x) => a + x.bytes, 0));
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses indexes that do not increase', () => {
    const w = new Inflights(4, 0);
    w.add(5, 1);
    expect(() => w.add(5, 1)).toThrow(/added after/);
  });
});
