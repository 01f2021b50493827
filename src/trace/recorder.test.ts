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
