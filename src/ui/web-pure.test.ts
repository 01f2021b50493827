/**
 * The dashboard's pure parts, in node: the space-time view's causal past and future against an
 * independent computation (reachability in the graph of process order and message edges, not
 * vector clocks), trace parsing of hostile lines, message pairing, histogram quantiles, the
 * charts' data from the members' history samples.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LogicalClock } from '../lib/vector-clock.js';
import type { TraceEvent } from '../trace/event.js';
import { causalSets, pairMessages, parseTrace, TRACE_CLOCK_ENTRIES_MAX, TRACE_EVENTS_MAX, TRACE_FIELD_CHARS_MAX } from './web/causal.js';
import type { UiHistory, UiSample } from './api.js';
import { CHART_WINDOW_S, ChartData } from './web/chart-data.js';
import { quantileOfDelta } from './web/histogram.js';

/** A trace from a script of steps: [0, node] local, [1, from, to] send, [2, k] deliver the k-th message in flight. */
function traceOf(steps: readonly (readonly number[])[], nodes: number): TraceEvent[] {
  const clocks = Array.from({ length: nodes }, (_, i) => new LogicalClock(`n${i}`));
  const inFlight: { to: number; from: number; lamport: number; vc: Record<string, number>; msgId: string }[] = [];
  const out: TraceEvent[] = [];
  steps.forEach((s, i) => {
    if (s[0] === 0) {
      const st = clocks[s[1]! % nodes]!.tick();
      out.push({ t: i, node: `n${s[1]! % nodes}`, lamport: st.lamport, vc: st.vc, kind: 'local', type: 'commit' });
    } else if (s[0] === 1) {
      const from = s[1]! % nodes;
      const to = (from + 1 + (s[2]! % (nodes - 1))) % nodes;
      const st = clocks[from]!.tick();
      out.push({ t: i, node: `n${from}`, lamport: st.lamport, vc: st.vc, kind: 'send', type: 'append', peer: `n${to}`, msgId: `m${i}` });
      inFlight.push({ to, from, lamport: st.lamport, vc: { ...st.vc }, msgId: `m${i}` });
    } else if (inFlight.length > 0) {
      const m = inFlight.splice(s[1]! % inFlight.length, 1)[0]!;
      const st = clocks[m.to]!.receive(m.lamport, m.vc);
      out.push({ t: i, node: `n${m.to}`, lamport: st.lamport, vc: st.vc, kind: 'receive', type: 'append', peer: `n${m.from}`, msgId: m.msgId });
    }
  });
  return out;
}

/** happens-before by definition: process order plus send -> receive edges, transitively. */
function reachable(events: readonly TraceEvent[]): boolean[][] {
  const n = events.length;
  const hb = Array.from({ length: n }, () => new Array<boolean>(n).fill(false));
  const lastAt = new Map<string, number>();
  const sendOf = new Map<string, number>();
  // Events are in a causal order (the order they were made): edges only go forward.
  events.forEach((e, j) => {
    const preds: number[] = [];
    const prev = lastAt.get(e.node);
    if (prev !== undefined) preds.push(prev);
    if (e.kind === 'receive' && e.msgId !== undefined && sendOf.has(e.msgId)) preds.push(sendOf.get(e.msgId)!);
    for (const p of preds) {
      hb[p]![j] = true;
      for (let i = 0; i < n; i++) if (hb[i]![p]) hb[i]![j] = true;
    }
    lastAt.set(e.node, j);
    if (e.kind === 'send' && e.msgId !== undefined) sendOf.set(e.msgId, j);
  });
  return hb;
}

const step = fc.oneof(
  fc.tuple(fc.constant(0), fc.nat(10)),
  fc.tuple(fc.constant(1), fc.nat(10), fc.nat(10)),
  fc.tuple(fc.constant(2), fc.nat(20)),
  fc.tuple(fc.constant(2), fc.nat(20)),
);

describe('causalSets', () => {
  it('is exactly the happens-before past and future of the graph', () => {
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 60 }), fc.integer({ min: 2, max: 5 }), fc.nat(), (steps, nodes, pick) => {
        const events = traceOf(steps, nodes);
        if (events.length === 0) return;
        const hb = reachable(events);
        const i = pick % events.length;
        const { past, future } = causalSets(events, i);
        const wantPast = events.flatMap((_, j) => (hb[j]![i] ? [j] : []));
        const wantFuture = events.flatMap((_, j) => (hb[i]![j] ? [j] : []));
        expect([...past].sort((a, b) => a - b)).toEqual(wantPast);
        expect([...future].sort((a, b) => a - b)).toEqual(wantFuture);
      }),
      { numRuns: 300 },
    );
  });
});

describe('parseTrace', () => {
  it('keeps good lines and counts each bad one with its reason', () => {
    const good: TraceEvent = { t: 1, node: 'a', lamport: 1, vc: { a: 1 }, kind: 'send', type: 'vote', peer: 'b', msgId: 'x' };
    const lines = [
      JSON.stringify(good),
      '',
      'not json',
      '[]',
      JSON.stringify({ ...good, lamport: -1 }),
      JSON.stringify({ ...good, kind: 'teleport' }),
      JSON.stringify({ ...good, vc: { a: 'one' } }),
      JSON.stringify({ ...good, vc: Object.fromEntries(Array.from({ length: TRACE_CLOCK_ENTRIES_MAX + 1 }, (_, i) => [`n${i}`, 1])) }),
      JSON.stringify({ ...good, t: 'soon' }),
      '{"t":1,"node":"a","lamport":2,"vc":{"__proto__":3,"a":2},"kind":"local","type":"x"}',
      JSON.stringify({ ...good, node: 'n'.repeat(TRACE_FIELD_CHARS_MAX + 50), lamport: 3 }),
    ];
    const p = parseTrace(lines.join('\n'));
    expect(p.events.length).toBe(3);
    expect(p.refused).toBe(7);
    expect(p.reasons[0]).toBe('line 3: not JSON');
    expect(p.truncated).toBe(false);
    // "__proto__" is a member id like any other, not the clock's prototype.
    expect(Object.getPrototypeOf(p.events[1]!.vc)).toBe(Object.prototype);
    expect(Object.keys(p.events[1]!.vc)).toEqual(['__proto__', 'a']);
    expect(p.events[2]!.node.length).toBe(TRACE_FIELD_CHARS_MAX + 1);
  });

  it('keeps at most TRACE_EVENTS_MAX events', () => {
    const line = JSON.stringify({ t: 1, node: 'a', lamport: 1, vc: { a: 1 }, kind: 'local', type: 'x' });
    const p = parseTrace(`${line}\n`.repeat(TRACE_EVENTS_MAX + 5));
    expect(p.events.length).toBe(TRACE_EVENTS_MAX);
    expect(p.truncated).toBe(true);
  });
});

describe('pairMessages', () => {
  it('pairs each received message with its send, and leaves lost ones unpaired', () => {
    const events = traceOf([[1, 0, 0], [1, 1, 0], [2, 0], [0, 2]], 3);
    const arrows = pairMessages(events);
    expect(arrows.length).toBe(1);
    expect(events[arrows[0]!.send]!.msgId).toBe(events[arrows[0]!.receive]!.msgId);
  });
});

describe('quantileOfDelta', () => {
  const h = (counts: number[], count: number) => ({ bounds: [0.001, 0.002, 0.004], counts, count });
  it('interpolates within the bucket of the rank, over the observations since the last poll', () => {
    // Since before: 10 observations, 5 up to 1 ms, 5 in (1, 2] ms.
    expect(quantileOfDelta(h([105, 110, 110], 110), h([100, 100, 100], 100), 0.5)).toBeCloseTo(0.001);
    expect(quantileOfDelta(h([105, 110, 110], 110), h([100, 100, 100], 100), 0.75)).toBeCloseTo(0.0015);
  });
  it('is null without observations, and the last bound beyond it', () => {
    expect(quantileOfDelta(h([1, 1, 1], 1), h([1, 1, 1], 1), 0.5)).toBeNull();
    expect(quantileOfDelta(h([0, 0, 0], 4), undefined, 0.99)).toBe(0.004);
  });
});

describe('chart data from the members\' history samples', () => {
  const bounds = [0.001, 0.01, 0.1];
  const sample = (t: number, writes: number, reads: number, lat: number[], leaderChanges = 0): UiSample => ({
    t,
    dtMs: 1000,
    writes,
    reads,
    leaderChanges,
    latency: { counts: lat, count: lat.length ? lat[lat.length - 1]! : 0 },
    walFsync: { counts: [], count: 0 },
  });
  const history = (samples: UiSample[]): UiHistory => ({ now: 0, intervalMs: 1000, samplesMax: 600, latencyBounds: bounds, walFsyncBounds: [], samples });

  it('adds up the members per second, takes each sample once, and charts only the serving member\'s leader changes', () => {
    const d = new ChartData();
    d.add('a', history([sample(10_005, 10, 100, [0, 10, 10], 1), sample(11_004, 20, 0, [])]), true);
    d.add('b', history([sample(10_007, 5, 50, [0, 0, 10], 2)]), false);
    // The same samples again (a call that overlapped): not counted twice.
    d.add('b', history([sample(10_007, 5, 50, [0, 0, 10], 2), sample(11_006, 1, 1, [])]), false);
    expect(d.sinceOf('b')).toBe(11_006);
    const s = d.series();
    expect(s.t).toEqual([10, 11]);
    expect(s.writes).toEqual([15, 21]);
    expect(s.reads).toEqual([150, 1]);
    expect(s.leaderChanges).toEqual([1, 0]);
    // 20 calls in second 10: 10 at most 10 ms, 10 at most 100 ms; the median is the 10th, at 10 ms.
    expect(s.latP50[0]).toBeCloseTo(quantileOfDelta({ bounds, counts: [0, 10, 20], count: 20 }, undefined, 0.5)! * 1000);
    expect(s.latP99[0]).toBeGreaterThan(10);
    expect(s.latP50[1]).toBeNull();
  });

  it(`keeps ${CHART_WINDOW_S} s before the newest second`, () => {
    const d = new ChartData();
    d.add('a', history(Array.from({ length: CHART_WINDOW_S + 50 }, (_, i) => sample(1_000_000 + i * 1000, 1, 1, []))), true);
    const s = d.series();
    expect(s.t).toHaveLength(CHART_WINDOW_S + 1);
    expect(s.t[s.t.length - 1]! - s.t[0]!).toBe(CHART_WINDOW_S);
  });
});
