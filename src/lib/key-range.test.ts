import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { prefixEnd } from './key-range.js';

const cmp = (a: Uint8Array, b: Uint8Array): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

describe('prefixEnd', () => {
  it("etcd's examples: last byte incremented, trailing 0xff dropped, \\0 when none", () => {
    expect([...prefixEnd(Buffer.from('foo'))]).toEqual([...Buffer.from('fop')]);
    expect([...prefixEnd(Uint8Array.of(0x61, 0xff, 0xff))]).toEqual([0x62]);
    expect([...prefixEnd(Uint8Array.of(0xff, 0xff))]).toEqual([0]);
    expect([...prefixEnd(new Uint8Array(0))]).toEqual([0]);
  });

  it('a key is in [prefix, prefixEnd) exactly when it starts with the prefix (unless the end is \\0: everything from the prefix)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 4 }), fc.uint8Array({ maxLength: 6 }), (prefix, key) => {
        const before = Uint8Array.from(prefix);
        const end = prefixEnd(prefix);
        expect(prefix).toEqual(before);
        const starts = key.length >= prefix.length && cmp(key.subarray(0, prefix.length), prefix) === 0;
        const inRange = cmp(key, prefix) >= 0 && (end.length === 1 && end[0] === 0 && prefix.every((x) => x === 0xff) ? true : cmp(key, end) < 0);
        expect(inRange).toBe(starts);
      }),
    );
  });
});
