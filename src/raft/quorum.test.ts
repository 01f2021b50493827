import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { jointCommitted, jointVote, majorityCommitted, majorityVote, type VoteResult } from './quorum.js';

// Naive versions: the definitions, written as plainly as possible.

/** The largest index i such that more than half of the voters acked >= i. */
function naiveCommitted(voters: number[], acked: Map<number, number>): number {
  if (voters.length === 0) return Infinity;
  let best = 0;
  for (const candidate of [0, ...acked.values()]) {
    const count = voters.filter((v) => (acked.get(v) ?? 0) >= candidate).length;
    if (count * 2 > voters.length && candidate > best) best = candidate;
  }
  return best;
}

function naiveVote(voters: number[], votes: Map<number, boolean>): VoteResult {
  if (voters.length === 0) return 'won';
  const yes = voters.filter((v) => votes.get(v) === true).length;
  const no = voters.filter((v) => votes.get(v) === false).length;
  if (yes * 2 > voters.length) return 'won';
  if (no * 2 >= voters.length) return 'lost'; // the rest cannot make a majority
  return 'pending';
}

const ids = fc.uniqueArray(fc.integer({ min: 1, max: 9 }), { maxLength: 7 });
const ackMap = fc.array(fc.tuple(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 0, max: 20 })), { maxLength: 12 }).map((xs) => new Map(xs));
const voteMap = fc.array(fc.tuple(fc.integer({ min: 1, max: 9 }), fc.boolean()), { maxLength: 12 }).map((xs) => new Map(xs));

describe('quorum arithmetic', () => {
  it('majority commit index matches the naive definition', () => {
    fc.assert(
      fc.property(ids, ackMap, (voters, acked) => {
        expect(majorityCommitted(voters, (id) => acked.get(id) ?? 0)).toBe(naiveCommitted(voters, acked));
      }),
      { numRuns: 5000 },
    );
  });

  it('joint commit index is what both halves have committed', () => {
    fc.assert(
      fc.property(ids, ids, ackMap, (a, b, acked) => {
        const want = Math.min(naiveCommitted(a, acked), naiveCommitted(b, acked));
        expect(jointCommitted(a, b, (id) => acked.get(id) ?? 0)).toBe(want);
      }),
      { numRuns: 5000 },
    );
  });

  it('vote tally matches the naive definition, and joint votes need both halves', () => {
    fc.assert(
      fc.property(ids, ids, voteMap, (a, b, votes) => {
        const get = (id: number): boolean | undefined => votes.get(id);
        expect(majorityVote(a, get)).toBe(naiveVote(a, votes));
        const x = naiveVote(a, votes);
        const y = naiveVote(b, votes);
        const want: VoteResult = x === 'lost' || y === 'lost' ? 'lost' : x === 'won' && y === 'won' ? 'won' : 'pending';
        expect(jointVote(a, b, get)).toBe(want);
      }),
      { numRuns: 5000 },
    );
  });

  it('a commit index is never above what a majority holds, and monotone in the acks', () => {
    fc.assert(
      fc.property(ids.filter((v) => v.length > 0), ackMap, fc.integer({ min: 1, max: 9 }), fc.integer({ min: 0, max: 5 }), (voters, acked, who, bump) => {
        const before = majorityCommitted(voters, (id) => acked.get(id) ?? 0);
        const more = new Map(acked);
        more.set(who, (acked.get(who) ?? 0) + bump);
        expect(majorityCommitted(voters, (id) => more.get(id) ?? 0)).toBeGreaterThanOrEqual(before);
      }),
    );
  });
});
