import { describe, expect, it } from 'vitest';
import type { ApplyResult } from '../kv/commands.js';
import { ApplyWaits, type LostReason } from './apply-waits.js';

const ok = (revision: number): ApplyResult => ({ ok: true, value: { op: 'put' }, revision });

function setup() {
  const w = new ApplyWaits();
  const ends: string[] = [];
  const add = (id: bigint) =>
    w.add(
      id,
      (r) => ends.push(`${id} result ${r.revision}`),
      (why: LostReason) => ends.push(`${id} ${why}`),
    );
  return { w, ends, add };
}

describe('ApplyWaits', () => {
  it('ends with the result of the entry with its request id, once', () => {
    const { w, ends, add } = setup();
    add(7n);
    w.applied(5n, 1, ok(1));
    w.accepted(7n, 2);
    w.applied(7n, 2, ok(2));
    w.applied(7n, 3, ok(3)); // a duplicate id later (cannot happen) ends nothing
    expect(ends).toEqual(['7 result 2']);
    expect(w.size).toBe(0);
  });

  it('the result also counts when the entry applies before the acceptance arrives', () => {
    const { w, ends, add } = setup();
    add(7n);
    w.applied(7n, 4, ok(4));
    w.accepted(7n, 4);
    expect(ends).toEqual(['7 result 4']);
  });

  it('leader changed: another entry applied at the accepted index, before or after the acceptance', () => {
    const { w, ends, add } = setup();
    add(7n);
    add(8n);
    w.accepted(7n, 3);
    w.applied(0n, 1, ok(1));
    w.applied(9n, 2, ok(2));
    w.applied(1n, 3, ok(3));
    w.accepted(8n, 2);
    expect(ends).toEqual(['7 leaderChanged', '8 leaderChanged']);
    expect(w.size).toBe(0);
  });

  it('unknown when a snapshot covered the accepted index', () => {
    const { w, ends, add } = setup();
    add(7n);
    add(8n);
    add(9n);
    w.accepted(7n, 10);
    w.accepted(9n, 30);
    w.restored(20);
    w.accepted(8n, 15);
    expect(ends).toEqual(['7 unknown', '8 unknown']);
    // Entries after the snapshot apply one by one again: 9 is still waited for.
    w.applied(9n, 30, ok(30));
    expect(ends.at(-1)).toBe('9 result 30');
  });

  it('a removed wait ends silently; an accepted index is forgotten with it', () => {
    const { w, ends, add } = setup();
    add(7n);
    w.accepted(7n, 3);
    w.remove(7n);
    w.applied(1n, 3, ok(3));
    w.applied(7n, 4, ok(4));
    expect(ends).toEqual([]);
    expect(() => w.add(0n, () => {}, () => {})).toThrow();
  });
});
