import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyConfChange, ConfChangeError, decodeConfChange, encodeConfChange, fromConfState, isJoint, toConfState, type Configuration } from './confchange.js';
import type { ConfChange } from './types.js';

const single = fc.record({ kind: fc.constantFrom('addVoter' as const, 'addLearner' as const, 'removeNode' as const), nodeId: fc.integer({ min: 1, max: 6 }) });
const changeArb: fc.Arbitrary<ConfChange> = fc.oneof(
  fc.record({ changes: fc.array(single, { minLength: 1, maxLength: 3 }), joint: fc.boolean(), autoLeave: fc.boolean() }),
  fc.constant({ changes: [] }), // leave joint
);

function wellFormed(c: Configuration): void {
  expect(c.voters.size).toBeGreaterThan(0);
  for (const id of c.learners) {
    expect(c.voters.has(id), `learner ${id} is also an incoming voter`).toBe(false);
    expect(c.outgoing.has(id), `learner ${id} is also an outgoing voter`).toBe(false);
  }
  for (const id of c.learnersNext) expect(c.outgoing.has(id)).toBe(true);
  if (!isJoint(c)) expect(c.learnersNext.size).toBe(0);
}

describe('configuration changes', () => {
  it('any sequence of accepted changes keeps the configuration well formed; refused ones change nothing', () => {
    fc.assert(
      fc.property(fc.array(changeArb, { maxLength: 25 }), (ccs) => {
        let c = fromConfState({ voters: [1, 2, 3], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false });
        for (const cc of ccs) {
          const before = JSON.stringify(toConfState(c));
          try {
            const next = applyConfChange(c, cc);
            wellFormed(next);
            // A simple change moves at most one voter; more needs the joint state.
            if (!isJoint(c) && !isJoint(next)) {
              const diff = [...c.voters].filter((x) => !next.voters.has(x)).length + [...next.voters].filter((x) => !c.voters.has(x)).length;
              expect(diff).toBeLessThanOrEqual(1);
            }
            if (isJoint(next)) expect([...next.outgoing].sort()).toEqual([...c.voters].sort());
            c = next;
          } catch (e) {
            expect(e).toBeInstanceOf(ConfChangeError);
            expect(JSON.stringify(toConfState(c))).toBe(before);
          }
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('round-trips through its encoding and through ConfState', () => {
    fc.assert(
      fc.property(changeArb, (cc) => {
        const back = decodeConfChange(encodeConfChange(cc));
        expect(back.changes).toEqual(cc.changes);
        expect(back.joint).toBe(cc.joint ?? false);
      }),
    );
    const c = applyConfChange(fromConfState({ voters: [1, 2, 3], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false }), {
      changes: [
        { kind: 'removeNode', nodeId: 1 },
        { kind: 'addVoter', nodeId: 4 },
      ],
      joint: true,
      autoLeave: true,
    });
    expect(toConfState(fromConfState(toConfState(c)))).toEqual(toConfState(c));
  });

  it('explains refusals', () => {
    const c = fromConfState({ voters: [1], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false });
    expect(() => applyConfChange(c, { changes: [{ kind: 'removeNode', nodeId: 1 }] })).toThrow(/remove all voters/);
    expect(() => applyConfChange(c, { changes: [] })).toThrow(/not in one/);
    expect(() => decodeConfChange(new TextEncoder().encode('{"changes":[{"kind":"explode","nodeId":1}]}'))).toThrow(/bad kind/);
  });
});
