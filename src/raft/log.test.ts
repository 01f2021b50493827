import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RaftLog } from './log.js';
import type { Entry, Snapshot } from './types.js';

const conf = { voters: [1], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false };
const snap = (index: number, term: number): Snapshot => ({ meta: { index, term, confState: conf }, data: new Uint8Array(0) });
const ent = (index: number, term: number, size = 1): Entry => ({ index, term, type: 'normal', data: new Uint8Array(size) });

/** The model: a plain array of terms (index 0 = the compaction point), and the compaction index. */
interface Model {
  base: number; // compaction index
  terms: number[]; // terms[0] = term at base, terms[k] = term of entry base + k
  commit: number;
}

type Cmd =
  | { kind: 'append'; from: number; terms: number[] } // leader-style truncate-and-append
  | { kind: 'follow'; prev: number; terms: number[] } // appendFromLeader after a passing prev check
  | { kind: 'commit'; to: number }
  | { kind: 'compact'; to: number }
  | { kind: 'restore'; index: number; term: number };

const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  fc.record({ kind: fc.constant('append' as const), from: fc.integer({ min: 0, max: 30 }), terms: fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 5 }) }),
  fc.record({ kind: fc.constant('follow' as const), prev: fc.integer({ min: 0, max: 30 }), terms: fc.array(fc.integer({ min: 1, max: 6 }), { maxLength: 5 }) }),
  fc.record({ kind: fc.constant('commit' as const), to: fc.integer({ min: 0, max: 30 }) }),
  fc.record({ kind: fc.constant('compact' as const), to: fc.integer({ min: 0, max: 30 }) }),
  fc.record({ kind: fc.constant('restore' as const), index: fc.integer({ min: 0, max: 40 }), term: fc.integer({ min: 1, max: 8 }) }),
);

const last = (m: Model): number => m.base + m.terms.length - 1;
const termAt = (m: Model, i: number): number | undefined => (i < m.base || i > last(m) ? undefined : m.terms[i - m.base]);

describe('RaftLog against an array model', () => {
  it('append, truncate, commit, compact and restore keep the same log as the model', () => {
    fc.assert(
      fc.property(fc.array(cmdArb, { maxLength: 40 }), (cmds) => {
        const log = new RaftLog(snap(0, 0), [], 0, 0);
        const m: Model = { base: 0, terms: [0], commit: 0 };
        for (const c of cmds) {
          switch (c.kind) {
            case 'append': {
              // Only valid appends: after the commit point, within (base, last+1], terms not decreasing.
              const from = c.from;
              if (from <= m.commit || from <= m.base || from > last(m) + 1) continue;
              const prevTerm = termAt(m, from - 1)!;
              const ts = c.terms.map((t) => Math.max(t, prevTerm)).sort((a, b) => a - b);
              log.truncateAndAppend(ts.map((t, i) => ent(from + i, t)));
              m.terms.length = from - m.base;
              m.terms.push(...ts);
              break;
            }
            case 'follow': {
              // A leader's entries following `prev`; skipped when they would rewrite committed entries.
              if (c.prev < m.base || c.prev > last(m)) continue;
              const prevTerm = termAt(m, c.prev)!;
              const ts = c.terms.map((t) => Math.max(t, prevTerm)).sort((a, b) => a - b);
              let conflict = -1;
              for (let k = 0; k < ts.length; k++) {
                const have = termAt(m, c.prev + 1 + k);
                if (have === undefined || have !== ts[k]) {
                  conflict = k;
                  break;
                }
              }
              if (conflict >= 0 && c.prev + 1 + conflict <= m.commit) continue;
              const lastNew = log.appendFromLeader(c.prev, ts.map((t, i) => ent(c.prev + 1 + i, t)));
              expect(lastNew).toBe(c.prev + ts.length);
              if (conflict >= 0) {
                m.terms.length = c.prev + 1 + conflict - m.base;
                m.terms.push(...ts.slice(conflict));
              }
              break;
            }
            case 'commit': {
              if (c.to > last(m)) continue;
              const moved = log.commitTo(c.to);
              expect(moved).toBe(c.to > m.commit);
              m.commit = Math.max(m.commit, c.to);
              break;
            }
            case 'compact': {
              if (c.to > m.commit) continue;
              log.applied = Math.max(log.applied, m.commit);
              log.compact(c.to);
              if (c.to > m.base) {
                m.terms = m.terms.slice(c.to - m.base);
                m.base = c.to;
              }
              break;
            }
            case 'restore': {
              if (c.index <= m.commit) continue;
              log.restore(snap(c.index, c.term));
              m.base = c.index;
              m.terms = [c.term];
              m.commit = c.index;
              break;
            }
          }
          // The log agrees with the model everywhere.
          expect(log.firstIndex()).toBe(m.base + 1);
          expect(log.lastIndex()).toBe(last(m));
          expect(log.lastTerm()).toBe(m.terms[m.terms.length - 1]);
          expect(log.commit).toBe(m.commit);
          for (let i = 0; i <= last(m) + 2; i++) expect(log.term(i), `term(${i})`).toBe(termAt(m, i));
          for (let i = m.base + 1; i <= last(m); i++) expect(log.entryAt(i)!.index).toBe(i);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('the conflict hint is the last index at or below the probe whose term is not above the leader term', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 5 }), { maxLength: 12 }), fc.integer({ min: 0, max: 14 }), fc.integer({ min: 0, max: 6 }), (raw, index, term) => {
        const ts = [...raw].sort((a, b) => a - b);
        const log = new RaftLog(snap(0, 0), ts.map((t, i) => ent(i + 1, t)), 0, 0);
        let want = Math.min(index, ts.length);
        while (want > 0 && ts[want - 1]! > term) want--;
        expect(log.findConflictByTerm(index, term)).toBe(want);
      }),
    );
  });

  it('up-to-date comparison follows §5.4.1 (last term first, then length)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 4 }), { maxLength: 8 }), fc.integer({ min: 0, max: 10 }), fc.integer({ min: 0, max: 5 }), (raw, li, lt) => {
        const ts = [...raw].sort((a, b) => a - b);
        const log = new RaftLog(snap(0, 0), ts.map((t, i) => ent(i + 1, t)), 0, 0);
        const myTerm = ts.length ? ts[ts.length - 1]! : 0;
        expect(log.isUpToDate(li, lt)).toBe(lt > myTerm || (lt === myTerm && li >= ts.length));
      }),
    );
  });

  it('slices respect the byte limit but always carry at least one entry', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 1, maxLength: 20 }), fc.integer({ min: 1, max: 20 }), fc.integer({ min: 0, max: 120 }), (sizes, lo, max) => {
        const log = new RaftLog(snap(0, 0), sizes.map((s, i) => ent(i + 1, 1, s)), 0, 0);
        const got = log.slice(lo, sizes.length + 1, max)!;
        if (lo > sizes.length) {
          expect(got).toEqual([]);
          return;
        }
        expect(got.length).toBeGreaterThanOrEqual(1);
        expect(got[0]!.index).toBe(lo);
        const bytes = got.reduce((a, e) => a + e.data.length, 0);
        if (got.length > 1) expect(bytes).toBeLessThanOrEqual(max);
        // Maximal: one more entry would exceed the limit (or there is none).
        const next = lo + got.length;
        if (next <= sizes.length) expect(bytes + sizes[next - 1]!).toBeGreaterThan(max);
      }),
    );
  });

  it('refuses to rewrite committed entries', () => {
    const log = new RaftLog(snap(0, 0), [ent(1, 1), ent(2, 1)], 2, 0);
    expect(() => log.truncateAndAppend([ent(2, 2)])).toThrow(/committed/);
    expect(() => log.appendFromLeader(1, [ent(2, 3)])).toThrow(/committed/);
  });
});
