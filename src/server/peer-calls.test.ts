import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodePeerCall, encodePeerCall, FORWARD_OUTCOMES, RequestIdGenerator, requestIdMember, type PeerCall } from './peer-calls.js';

const callId = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const callArb: fc.Arbitrary<PeerCall> = fc.oneof(
  fc.record({ type: fc.constant('forward' as const), callId, request: fc.uint8Array({ maxLength: 200 }) }),
  fc.record({
    type: fc.constant('forwardAnswer' as const),
    callId,
    outcome: fc.constantFrom(...FORWARD_OUTCOMES),
    index: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    term: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  }),
  fc.record({ type: fc.constant('lease' as const), callId, op: fc.constantFrom('renew' as const, 'timeToLive' as const), leaseId: fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }) }),
  fc.record({ type: fc.constant('leaseAnswer' as const), callId, ok: fc.boolean(), ttl: fc.integer({ min: -1, max: 9_000_000_000 }) }),
);

describe('member-channel calls', () => {
  it('round-trip', () => {
    fc.assert(
      fc.property(callArb, (c) => {
        expect(decodePeerCall(encodePeerCall(c))).toEqual(c);
      }),
      { numRuns: 2000 },
    );
  });

  it('random bytes decode to a call or null, never a throw', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (b) => {
        const c = decodePeerCall(b);
        if (c) expect(decodePeerCall(encodePeerCall(c))).toEqual(c);
      }),
      { numRuns: 5000 },
    );
    expect(decodePeerCall(new Uint8Array(0))).toBeNull();
    expect(decodePeerCall(Uint8Array.of(2, 0, 0, 0, 0, 0, 0, 0, 1, 99, ...new Array<number>(16).fill(0)))).toBeNull(); // unknown outcome
  });
});

describe('RequestIdGenerator', () => {
  it('ids carry the member, never repeat, and a restart starts past them', () => {
    const t = 1_700_000_000_000;
    const g = new RequestIdGenerator(3, t);
    const seen = new Set<bigint>();
    for (let i = 0; i < 1000; i++) {
      const id = g.next();
      expect(requestIdMember(id)).toBe(3);
      expect(seen.has(id)).toBe(false);
      seen.add(id);
    }
    // Restarted 5 ms later (fewer than 256 ids per ms were issued): every new id is above the old ones.
    const again = new RequestIdGenerator(3, t + 5);
    const max = [...seen].reduce((a, b) => (a > b ? a : b));
    expect(again.next()).toBeGreaterThan(max);
    // Other members' ids never collide with ours.
    expect(requestIdMember(new RequestIdGenerator(4, t).next())).toBe(4);
    expect(() => new RequestIdGenerator(0)).toThrow(RangeError);
    expect(() => new RequestIdGenerator(1 << 16)).toThrow(RangeError);
  });
});
