import { describe, expect, it } from 'vitest';
import { rng } from './prng.js';

describe('prng', () => {
  it('is deterministic for a seed and differs across seeds', () => {
    const a = rng(42), b = rng(42), c = rng(43);
    const xs = Array.from({ length: 8 }, () => a.next());
    expect(Array.from({ length: 8 }, () => b.next())).toEqual(xs);
    expect(Array.from({ length: 8 }, () => c.next())).not.toEqual(xs);
  });
  it('int stays in range and covers it', () => {
    const r = rng(7);
    const seen = new Set<number>();
    for (let i = 0; i < 10_000; i++) {
      const v = r.int(3, 9);
      expect(v).toBeGreaterThanOrEqual(3);
      expect(v).toBeLessThan(9);
      seen.add(v);
    }
    expect(seen.size).toBe(6);
  });
  it('rejects an empty range', () => {
    expect(() => rng(1).int(2, 2)).toThrow(RangeError);
  });
});
