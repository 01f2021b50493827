import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError, resolveConfig, withEnv } from '../server/config.js';
import { compareClocks } from '../lib/vector-clock.js';
import type { Message } from '../raft/messages.js';
import { messageTraceText } from './messages.js';
import { clockStartOf, TRACE_TEXT_CHARS_MAX, TRACE_VC_COLUMNS_MAX, TraceRecorder } from './recorder.js';

const append = (from: number, to: number): Message => ({ type: 'append', from, to, term: 4, prevLogIndex: 9, prevLogTerm: 3, commit: 8, entries: [{ index: 10, term: 4, type: 'normal', data: new Uint8Array([1, 2]) }] });

describe('TraceRecorder', () => {
  it('records sends, receives and local events with msgIds and texts, and keeps only the last ringEvents', () => {
    let t = 100;
    const a = new TraceRecorder('1', { ringEvents: 4, now: () => t++ });
    const b = new TraceRecorder('2', { now: () => t++ });
    const s = a.sendMessage('2', append(1, 2));
    b.receiveMessage('1', append(1, 2), s);
    const [send] = a.since(0);
    const [recv] = b.since(0);
    expect(send).toEqual({ t: 100, node: '1', lamport: 1, vc: { 1: 1 }, kind: 'send', type: 'append', peer: '2', msgId: '1-1', text: 'term 4 prev 9/3 entries 1 commit 8' });
    expect(recv).toEqual({ t: 101, node: '2', lamport: 2, vc: { 1: 1, 2: 1 }, kind: 'receive', type: 'append', peer: '1', msgId: '1-1', text: messageTraceText(append(1, 2)) });
    expect(compareClocks(send!.vc, recv!.vc)).toBe('before');
    for (let i = 0; i < 5; i++) a.local('log', `line ${i}`);
    // 6 events, 4 kept: the last four local ones.
    expect(a.since(0).map((e) => e.text)).toEqual(['line 1', 'line 2', 'line 3', 'line 4']);
    expect(a.since(4).map((e) => e.lamport)).toEqual([5, 6]);
    expect(a.recorded).toBe(6);
    a.local('log', 'x'.repeat(TRACE_TEXT_CHARS_MAX + 10));
    expect(a.since(6)[0]!.text).toHaveLength(TRACE_TEXT_CHARS_MAX);
  });

  it('keeps vectors of many members (the rows widen) but at most TRACE_VC_COLUMNS_MAX ids', () => {
    const r = new TraceRecorder('1', { ringEvents: 3 });
    const vc: Record<string, number> = {};
    for (let i = 2; i <= 20; i++) vc[String(i)] = i;
    r.local('log');
    r.receive('20', 'heartbeat', { lamport: 30, vc });
    const e = r.since(0);
    expect(e[0]!.vc).toEqual({ 1: 1 });
    expect(e[1]!.vc).toEqual({ ...vc, 1: 2 });
    const many: Record<string, number> = {};
    for (let i = 2; i <= TRACE_VC_COLUMNS_MAX + 10; i++) many[String(i)] = 1;
    r.receive('2', 'heartbeat', { lamport: 40, vc: many });
    expect(Object.keys(r.since(40)[0]!.vc)).toHaveLength(TRACE_VC_COLUMNS_MAX);
    // The dense path keeps the same bound: an id beyond it is left out of the clock.
    r.stampReceive('2', null, 50, [TRACE_VC_COLUMNS_MAX + 500, 2], [45, 44], 2);
    expect(Object.keys(r.vc)).toHaveLength(TRACE_VC_COLUMNS_MAX);
    expect(r.vc[String(TRACE_VC_COLUMNS_MAX + 500)]).toBeUndefined();
    expect(r.vc['2']).toBe(44);
  });

  it('the transport\'s dense path (stampSend / stampReceive) records and stamps exactly what the object path does', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 })), { maxLength: 60 }), (steps) => {
        // Two worlds of 4 members exchanging the same messages: one through each path.
        const mk = () => Array.from({ length: 4 }, (_, i) => new TraceRecorder(String(i + 1), { start: 1000 * i, now: () => 0 }));
        const objs = mk();
        const dense = mk();
        const inFlight: { from: number; to: number; stamp: ReturnType<TraceRecorder['send']>; lamport: number; ids: number[]; values: number[] }[] = [];
        for (const [what, a, b] of steps) {
          if (what === 0 && a !== b) {
            const m = append(a, b);
            const stamp = objs[a - 1]!.sendMessage(String(b), m);
            const d = dense[a - 1]!;
            d.stampSend(String(b), m);
            const ids: number[] = [];
            const values: number[] = [];
            for (let c = 0; c < d.columnCount; c++) {
              if (d.vector[c]! === 0) continue;
              ids.push(d.columnIds[c]!);
              values.push(d.vector[c]!);
            }
            inFlight.push({ from: a, to: b, stamp, lamport: d.lamport, ids, values });
          } else if (what === 1 && inFlight.length > 0) {
            const x = inFlight.splice((a * 7 + b) % inFlight.length, 1)[0]!;
            objs[x.to - 1]!.receiveMessage(String(x.from), append(x.from, x.to), x.stamp);
            dense[x.to - 1]!.stampReceive(String(x.from), append(x.from, x.to), x.lamport, x.ids, x.values, x.ids.length);
          } else {
            objs[a - 1]!.local('log', 'x');
            dense[a - 1]!.local('log', 'x');
          }
        }
        for (let i = 0; i < 4; i++) {
          expect(dense[i]!.since(0)).toEqual(objs[i]!.since(0));
          expect(dense[i]!.vc).toEqual(objs[i]!.vc);
          expect(dense[i]!.lamport).toBe(objs[i]!.lamport);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('a member restarted later stamps above its earlier life', () => {
    const before = new TraceRecorder('1', { start: clockStartOf(1_000_000) });
    for (let i = 0; i < 1000; i++) before.local('log');
    const after = new TraceRecorder('1', { start: clockStartOf(1_000_002) });
    expect(compareClocks(before.local('log').vc, after.local('log').vc)).toBe('before');
  });
});

describe('--trace-clocks', () => {
  it('is on by default, false turns it off, anything else is refused', () => {
    expect(resolveConfig({}).traceClocks).toBe(true);
    expect(resolveConfig({ traceClocks: 'false' }).traceClocks).toBe(false);
    expect(resolveConfig(withEnv({}, { FLOTILLA_TRACE_CLOCKS: 'false' })).traceClocks).toBe(false);
    expect(() => resolveConfig({ traceClocks: 'maybe' })).toThrow(ConfigError);
  });
});
