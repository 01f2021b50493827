/**
 * The range permission check against a naive model: over a small alphabet, a request is
 * permitted iff every key it touches (all keys of up to 4 bytes, which include every interval
 * end and every key right after an end: the only places a gap can start) lies in some
 * permission interval.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { covers, intervalOf, mergeIntervals } from './range-perms.js';

const ALPHABET = [0x00, 0x61, 0x62, 0xff];
const seq = fc.array(fc.constantFrom(...ALPHABET), { minLength: 1, maxLength: 3 }).map((a) => Uint8Array.from(a));
const end = fc.oneof(fc.constant(new Uint8Array(0)), fc.constant(Uint8Array.from([0])), seq);
const pair = fc.record({ key: seq, rangeEnd: end });

const UNIVERSE: Uint8Array[] = [];
for (let len = 1; len <= 4; len++) {
  const walk = (prefix: number[]): void => {
    if (prefix.length === len) return void UNIVERSE.push(Uint8Array.from(prefix));
    for (const b of ALPHABET) walk([...prefix, b]);
  };
  walk([]);
}

const cmp = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b);
function member(k: Uint8Array, p: { key: Uint8Array; rangeEnd: Uint8Array }): boolean {
  if (p.rangeEnd.length === 0) return cmp(k, p.key) === 0;
  if (p.rangeEnd.length === 1 && p.rangeEnd[0] === 0) return cmp(k, p.key) >= 0;
  return cmp(k, p.key) >= 0 && cmp(k, p.rangeEnd) < 0;
}
function naivePermitted(perms: { key: Uint8Array; rangeEnd: Uint8Array }[], req: { key: Uint8Array; rangeEnd: Uint8Array }): boolean {
  // A range that ends at or below its key names no key: refused (see covers()).
  if (req.rangeEnd.length > 0 && !(req.rangeEnd.length === 1 && req.rangeEnd[0] === 0) && cmp(req.rangeEnd, req.key) <= 0) return false;
  return UNIVERSE.filter((k) => member(k, req)).every((k) => perms.some((p) => member(k, p)));
}

describe('range permissions', () => {
  it('covers() agrees with the naive model', () => {
    fc.assert(
      fc.property(fc.array(pair, { maxLength: 6 }), pair, (perms, req) => {
        const merged = mergeIntervals(perms.map((p) => intervalOf(p.key, p.rangeEnd)));
        expect(covers(merged, intervalOf(req.key, req.rangeEnd))).toBe(naivePermitted(perms, req));
      }),
      { numRuns: 5000 },
    );
  });

  it('merged intervals are disjoint, sorted and not adjacent', () => {
    fc.assert(
      fc.property(fc.array(pair, { maxLength: 8 }), (perms) => {
        const m = mergeIntervals(perms.map((p) => intervalOf(p.key, p.rangeEnd)));
        for (let i = 1; i < m.length; i++) {
          const prev = m[i - 1]!;
          expect(prev.end).not.toBeNull();
          expect(cmp(prev.end!, m[i]!.begin)).toBeLessThan(0);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('the cases etcd users write', () => {
    const b = (s: string) => new Uint8Array(Buffer.from(s));
    const prefix = mergeIntervals([intervalOf(b('/app/'), b('/app0'))]);
    expect(covers(prefix, intervalOf(b('/app/x'), new Uint8Array(0)))).toBe(true);
    expect(covers(prefix, intervalOf(b('/app/'), b('/app0')))).toBe(true);
    expect(covers(prefix, intervalOf(b('/app'), b('/app0')))).toBe(false);
    expect(covers(prefix, intervalOf(b('/app/'), Uint8Array.from([0])))).toBe(false);
    const fromKey = mergeIntervals([intervalOf(b('k'), Uint8Array.from([0]))]);
    expect(covers(fromKey, intervalOf(b('z'), Uint8Array.from([0])))).toBe(true);
    expect(covers(fromKey, intervalOf(b('j'), new Uint8Array(0)))).toBe(false);
    // Two adjacent ranges together cover the span; a one-key gap does not.
    expect(covers(mergeIntervals([intervalOf(b('a'), b('c')), intervalOf(b('c'), b('e'))]), intervalOf(b('b'), b('d')))).toBe(true);
    expect(covers(mergeIntervals([intervalOf(b('a'), b('c')), intervalOf(b('c\0'), b('e'))]), intervalOf(b('b'), b('d')))).toBe(false);
  });
});
