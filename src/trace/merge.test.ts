import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareClocks, happenedBefore } from '../lib/vector-clock.js';
import type { TraceEvent } from './event.js';
import { formatShiViz, formatTimeline, mergeTraces, parseTrace, SHIVIZ_REGEX, TRACE_VC_KEYS_MAX } from './merge.js';
import { TraceRecorder, type Stamp } from './recorder.js';

type Action = { p: number; op: 'local' | 'send' | 'recv'; to: number; pick: number };

/** A random run of `n` processes exchanging messages (some duplicated, some never delivered), as TraceEvents. */
function runOf(n: number, actions: readonly Action[], starts: readonly number[]): TraceEvent[] {
  const events: TraceEvent[] = [];
  let t = 0;
  const procs = Array.from({ length: n }, (_, i) => new TraceRecorder(String(i + 1), { start: starts[i] ?? 0, ringEvents: 1, now: () => t++, onEvent: (e) => events.push(e) }));
  const pending: { from: number; to: number; stamp: Stamp }[] = [];
  for (const a of actions) {
    const p = a.p % n;
    if (a.op === 'local') procs[p]!.local('log', `step ${t}`);
    else if (a.op === 'send') {
      const to = (p + 1 + (a.to % (n - 1))) % n;
      pending.push({ from: p, to, stamp: procs[p]!.send(String(to + 1), 'append') });
    } else if (pending.length > 0) {
      const k = a.pick % pending.length;
      const m = pending[k]!;
      // Mostly delivered once; sometimes it stays (a duplicate may arrive later).
      if (a.pick % 5 !== 0) pending.splice(k, 1);
      procs[m.to]!.receive(String(m.from + 1), 'append', m.stamp);
    }
  }
  return events;
}

const actionArb = fc.record({ p: fc.nat(9), op: fc.constantFrom('local' as const, 'send' as const, 'send' as const, 'recv' as const, 'recv' as const), to: fc.nat(9), pick: fc.nat(1000) });
const traceArb = fc.record({
  n: fc.integer({ min: 2, max: 5 }),
  actions: fc.array(actionArb, { minLength: 1, maxLength: 70 }),
  // Members started at different clock values (restarts, wall-clock starts) must not matter.
  starts: fc.array(fc.constantFrom(0, 0, 1000, 1_700_000_000_000_000), { minLength: 5, maxLength: 5 }),
  shuffle: fc.array(fc.nat(), { minLength: 200, maxLength: 200 }),
  keep: fc.array(fc.boolean(), { minLength: 200, maxLength: 200 }),
});

function shuffled<T>(xs: readonly T[], keys: readonly number[]): T[] {
  return xs.map((x, i) => [keys[i % keys.length]! + i / 1e6, x] as const).sort((a, b) => a[0] - b[0]).map((p) => p[1]);
}

describe('trace merge', () => {
  it('prints a linear extension of happens-before, whatever the input order, with Lamport order consistent with it', () => {
    fc.assert(
      fc.property(traceArb, ({ n, actions, starts, shuffle, keep }) => {
        const all = runOf(n, actions, starts);
        // Some events are missing (a ring that overflowed, a log that starts later); the rest come
        // shuffled, split over several inputs.
        const some = all.filter((_, i) => keep[i % keep.length] || i % 3 === 0);
        const mixed = shuffled(some, shuffle);
        const r = mergeTraces([mixed.slice(0, mixed.length >> 1), mixed.slice(mixed.length >> 1)]);
        expect(r.inconsistent).toBe(0);
        expect(r.duplicates).toBe(0);
        expect(new Set(r.events)).toEqual(new Set(some));
        for (let i = 0; i < r.events.length; i++) {
          const a = r.events[i]!;
          for (let j = i + 1; j < r.events.length; j++) {
            const b = r.events[j]!;
            // Never an event printed before one that happened before it.
            expect(happenedBefore(b.vc, a.vc)).toBe(false);
            // Lamport time is consistent with happens-before.
            if (happenedBefore(a.vc, b.vc)) expect(a.lamport).toBeLessThan(b.lamport);
          }
          expect(r.concurrent[i]).toBe(i > 0 && compareClocks(r.events[i - 1]!.vc, a.vc) === 'concurrent');
          if (i > 0) expect(a.lamport).toBeGreaterThanOrEqual(r.events[i - 1]!.lamport);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('counts an event read twice once', () => {
    const all = runOf(3, [
      { p: 0, op: 'send', to: 0, pick: 0 },
      { p: 1, op: 'recv', to: 0, pick: 1 },
      { p: 2, op: 'local', to: 0, pick: 0 },
    ], []);
    expect(all).toHaveLength(3);
    const r = mergeTraces([all, all.slice(1)]);
    expect(r.duplicates).toBe(2);
    expect(new Set(r.events)).toEqual(new Set(all));
    expect(r.events).toHaveLength(3);
  });

  it('orders by the vector clocks even without the message events (log lines only)', () => {
    // b's event knows a's second event; a's third event is concurrent with it.
    const a1: TraceEvent = { t: 0, node: 'a', lamport: 5, vc: { a: 5 }, kind: 'local', type: 'log' };
    const a2: TraceEvent = { t: 0, node: 'a', lamport: 9, vc: { a: 6 }, kind: 'local', type: 'log' };
    const a3: TraceEvent = { t: 0, node: 'a', lamport: 10, vc: { a: 7 }, kind: 'local', type: 'log' };
    // Lamport time alone would put b1 first: the vector says it follows a2.
    const b1: TraceEvent = { t: 0, node: 'b', lamport: 2, vc: { a: 6, b: 2 }, kind: 'local', type: 'log' };
    const r = mergeTraces([[b1], [a3, a1, a2]]);
    const order = r.events.map((e) => `${e.node}${e.vc[e.node]}`);
    expect(order.indexOf('a6')).toBeLessThan(order.indexOf('b2'));
    expect(order.indexOf('a5')).toBeLessThan(order.indexOf('a6'));
    expect(r.inconsistent).toBe(0);
  });

  it('breaks a cycle of contradicting clocks and says so', () => {
    const x: TraceEvent = { t: 0, node: 'a', lamport: 1, vc: { a: 1, b: 1 }, kind: 'local', type: 'log' };
    const y: TraceEvent = { t: 0, node: 'b', lamport: 2, vc: { a: 1, b: 1 }, kind: 'local', type: 'log' };
    const r = mergeTraces([[x, y]]);
    expect(r.events).toHaveLength(2);
    expect(r.inconsistent).toBeGreaterThan(0);
  });
});

describe('parseTrace', () => {
  it('reads TraceEvent lines, JSON log lines and text log lines, and skips the rest', () => {
    const text = [
      JSON.stringify({ t: 1.5, node: '1', lamport: 7, vc: { 1: 7 }, kind: 'send', type: 'append', peer: '2', msgId: '1-7', text: 'term 1' }),
      JSON.stringify({ ts: '2026-12-01T08:00:00.000Z', level: 'info', member: 'n1', term: 2, msg: 'raft.node: 1 elected leader 1 at term 2', node: '1', lamport: 8, vc: { 1: 8 } }),
      '2026-12-01T08:00:01.000Z info [n2] member 2 lost leader at term 3 took=1ms node=2 lamport=12 vc={"1":8,"2":12}',
      '2026-12-01T08:00:01.000Z info [n2] a line from before the clocks',
      'not a log line at all',
      '{"broken json',
      JSON.stringify({ t: 0, node: '1', lamport: -1, vc: { 1: 1 }, kind: 'local', type: 'x' }),
      JSON.stringify({ t: 0, node: '1', lamport: 1, vc: { 1: 2 ** 60 }, kind: 'local', type: 'x' }),
      JSON.stringify({ t: 0, node: '1', lamport: 1, vc: Object.fromEntries(Array.from({ length: TRACE_VC_KEYS_MAX + 1 }, (_, i) => [String(i + 1), 1])), kind: 'local', type: 'x' }),
      JSON.stringify({ t: 0, node: '1', lamport: 1, vc: { 1: 1 }, kind: 'teleport', type: 'x' }),
      JSON.stringify({ t: 0, node: 'a b', lamport: 1, vc: { 1: 1 }, kind: 'local', type: 'x' }),
      '',
    ].join('\n');
    const r = parseTrace(text);
    expect(r.skipped).toBe(8);
    expect(r.events).toEqual([
      { t: 1.5, node: '1', lamport: 7, vc: { 1: 7 }, kind: 'send', type: 'append', peer: '2', msgId: '1-7', text: 'term 1' },
      { t: Date.parse('2026-12-01T08:00:00.000Z'), node: '1', lamport: 8, vc: { 1: 8 }, kind: 'local', type: 'elected', text: 'raft.node: 1 elected leader 1 at term 2' },
      { t: Date.parse('2026-12-01T08:00:01.000Z'), node: '2', lamport: 12, vc: { 1: 8, 2: 12 }, kind: 'local', type: 'leaderLost', text: 'member 2 lost leader at term 3 took=1ms' },
    ]);
    const merged = mergeTraces([r.events]);
    expect(formatTimeline(merged).split('\n').filter(Boolean)).toHaveLength(4);
  });
});

describe('ShiViz format', () => {
  it('renumbers each host from 1 by 1 and keeps every happens-before', () => {
    fc.assert(
      fc.property(traceArb, ({ n, actions, starts, keep }) => {
        const all = runOf(n, actions, starts).filter((_, i) => keep[i % keep.length] || i % 4 === 0);
        const r = mergeTraces([all]);
        const lines = formatShiViz(r).split('\n');
        expect(lines[0]).toBe(SHIVIZ_REGEX);
        expect(lines[1]).toBe('');
        const counts = new Map<string, number>();
        const re = /^(\S*) (\{.*\})$/;
        const clocks: Record<string, number>[] = [];
        for (let k = 0; k < r.events.length; k++) {
          const m = re.exec(lines[2 + 2 * k]!)!;
          expect(m).not.toBeNull();
          const host = m[1]!;
          const vc = JSON.parse(m[2]!) as Record<string, number>;
          const c = (counts.get(host) ?? 0) + 1;
          counts.set(host, c);
          expect(vc[host]).toBe(c);
          expect(lines[3 + 2 * k]).not.toMatch(/\n/);
          clocks.push(vc);
        }
        const total = new Map(counts);
        for (const vc of clocks) for (const [h, v] of Object.entries(vc)) expect(v).toBeLessThanOrEqual(total.get(h) ?? 0);
        for (let i = 0; i < r.events.length; i++) {
          for (let j = 0; j < r.events.length; j++) {
            if (happenedBefore(r.events[i]!.vc, r.events[j]!.vc)) expect(happenedBefore(clocks[i]!, clocks[j]!)).toBe(true);
          }
        }
      }),
      { numRuns: 150 },
    );
  });
});
