/**
 * The clock envelope on peer frames: round trips, hostile envelopes refused (and the
 * connection dropped, the member still serving), unknown ids kept out of the merge; and two
 * real TCP transports with clocks recording a send and its receive with one msgId.
 */
import fc from 'fast-check';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { compareClocks } from '../lib/vector-clock.js';
import type { Message } from '../raft/messages.js';
import { TraceRecorder } from '../trace/recorder.js';
import { CLOCK_FRAME_KIND, CLOCK_VALUE_MAX, CLOCK_VC_ENTRIES_MAX, clockHeaderBytesMax, decodeClockEnvelope, encodeClockEnvelope, encodeClockEnvelopeFrom, envelopeInPlace } from './clock-envelope.js';
import { decodeMessage, encodeHandshake, encodeMemberFrame, encodeMessage, encodeMessageAfter, FrameError, plainFrame, PROTOCOL_VERSION } from './codec.js';
import { TcpTransport } from './tcp.js';

const hb = (from: number, to: number, commit: number): Message => ({ type: 'heartbeat', from, to, term: 1, commit, round: 0 });
const all = () => true;
/** An envelope body by hand: kind, Lamport time, entries [id, distance], inner body. */
function raw(lamport: number[], entries: number[][], inner: Uint8Array, count = entries.length): Uint8Array {
  const bytes = [CLOCK_FRAME_KIND, ...lamport, count, ...entries.flat()];
  const out = new Uint8Array(bytes.length + inner.length);
  out.set(bytes);
  out.set(inner, bytes.length);
  return out;
}
const inner = encodeMessage(hb(1, 2, 5)).subarray(4);

describe('clock envelope codec', () => {
  it('round-trips any stamp and the message inside', () => {
    const ids = fc.integer({ min: 1, max: 0xffffffff });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: CLOCK_VALUE_MAX }), fc.dictionary(ids.map(String), fc.nat(), { maxKeys: 10 }), ids, (lamport, extra, from) => {
        const vc: Record<string, number> = {};
        for (const [k, v] of Object.entries(extra)) vc[k] = Math.min(lamport, 1 + (v % lamport));
        vc[String(from)] = lamport;
        const frame = encodeMessage(hb(from, 2, 7));
        const env = encodeClockEnvelope({ lamport, vc }, from, frame);
        expect(new DataView(env.buffer, env.byteOffset).getUint32(0, true)).toBe(env.length - 4);
        const d = decodeClockEnvelope(env.subarray(4), from, all)!;
        expect(d.stamp).toEqual({ lamport, vc });
        expect(decodeMessage(d.inner)).toEqual(hb(from, 2, 7));
      }),
      { numRuns: 500 },
    );
  });

  it('costs a few bytes per member for clocks close together, even at wall-clock start values', () => {
    const base = 1_764_576_000_000_000; // a start time in microseconds
    const frame = encodeMessage(hb(1, 2, 5));
    const env = encodeClockEnvelope({ lamport: base + 500, vc: { 1: base + 500, 2: base + 480, 3: base + 300 } }, 1, frame);
    // kind 1 + Lamport 8 + count 1 + 3 × (id 1 + distance 1..2)
    expect(env.length - frame.length).toBeLessThanOrEqual(1 + 8 + 1 + 3 * 3);
  });

  it('written in place in front of a body, is byte for byte the envelope made by copying', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 5 }), fc.boolean()), { maxLength: 40 }), fc.integer({ min: 0, max: 1000 }), (steps, commit) => {
        const recs = [1, 2, 3, 4, 5].map((i) => new TraceRecorder(String(i), { start: 1_764_576_000_000_000 + i * 37 }));
        // Some traffic so that the clocks have several components.
        for (const [to, heartbeat] of steps) {
          const m = heartbeat ? hb(1, to, commit) : hb(to, 1, commit);
          const body = encodeMessageAfter(m, 4 + clockHeaderBytesMax(recs[m.from - 1]!));
          recs[m.from - 1]!.stampSend(String(m.to), m);
          const inPlace = envelopeInPlace(recs[m.from - 1]!, body.buf, body.start, body.end);
          expect([...inPlace]).toEqual([...encodeClockEnvelopeFrom(recs[m.from - 1]!, encodeMessage(m))]);
          const d = decodeClockEnvelope(inPlace.subarray(4), m.from, all)!;
          expect(decodeMessage(d.inner)).toEqual(m);
          recs[m.to - 1]!.receiveMessage(String(m.from), m, d.stamp);
        }
        const body = encodeMessageAfter(hb(1, 2, commit), 4);
        expect([...plainFrame(body)]).toEqual([...encodeMessage(hb(1, 2, commit))]);
      }),
      { numRuns: 100 },
    );
  });

  it('is not an envelope when the kind differs', () => {
    expect(decodeClockEnvelope(inner, 1, all)).toBeNull();
  });

  it('refuses hostile envelopes', () => {
    const bad: [string, Uint8Array][] = [
      ['no entry for the sender', raw([5], [[2, 0]], inner)],
      ['component above Lamport time', raw([5], [[1, 5]], inner)],
      ['duplicate id', raw([5], [[1, 0], [1, 1]], inner)],
      ['duplicate unknown id', raw([5], [[1, 0], [9, 1], [9, 1]], inner)],
      ['zero id', raw([5], [[0, 0], [1, 0]], inner)],
      ['Lamport time 0', raw([0], [[1, 0]], inner)],
      ['too many entries', raw([5], Array.from({ length: CLOCK_VC_ENTRIES_MAX + 1 }, (_, i) => [i + 1, 0]), inner)],
      ['count beyond the bytes', raw([5], [[1, 0]], new Uint8Array(0), 3)],
      ['varint longer than 8 bytes', raw([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], [[1, 0]], inner)],
      ['value above the limit', raw([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f], [[1, 0]], inner)],
      ['nothing inside', raw([5], [[1, 0]], new Uint8Array(0))],
      ['an envelope inside', raw([5], [[1, 0]], raw([5], [[1, 0]], inner))],
      ['truncated', new Uint8Array([CLOCK_FRAME_KIND, 0x85])],
    ];
    for (const [why, body] of bad) expect(() => decodeClockEnvelope(body, 1, all), why).toThrow(FrameError);
  });

  it('leaves ids the receiver does not know out of the merge', () => {
    const d = decodeClockEnvelope(raw([9], [[1, 0], [2, 3], [77, 1]], inner), 1, (id) => id === 2)!;
    expect(d.stamp.vc).toEqual({ 1: 9, 2: 6 });
    expect(d.unknownIds).toBe(1);
  });

  it('survives any bytes: a stamp or a FrameError, never another error', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (tail) => {
        const body = new Uint8Array(1 + tail.length);
        body[0] = CLOCK_FRAME_KIND;
        body.set(tail, 1);
        try {
          const d = decodeClockEnvelope(body, 1, all)!;
          expect(d.stamp.lamport).toBeGreaterThan(0);
          for (const v of Object.values(d.stamp.vc)) expect(v).toBeLessThanOrEqual(d.stamp.lamport);
        } catch (e) {
          expect(e).toBeInstanceOf(FrameError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

async function until(what: string, f: () => boolean, ms = 10_000): Promise<void> {
  const start = Date.now();
  while (!f()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('clocks on TCP', () => {
  it('a message and a member frame carry the sender\'s clocks; the receiver merges them', async () => {
    const c1 = new TraceRecorder('1', { start: 1000 });
    const c2 = new TraceRecorder('2', { start: 5000 });
    const t1 = await TcpTransport.start({ id: 1, clusterId: 'c', clocks: c1 });
    const t2 = await TcpTransport.start({ id: 2, clusterId: 'c', clocks: c2 });
    closers.push(() => t1.close(), () => t2.close());
    t1.setPeer(2, { host: '127.0.0.1', port: t2.port });
    t2.setPeer(1, { host: '127.0.0.1', port: t1.port });
    const got: Message[] = [];
    const member: Uint8Array[] = [];
    t2.listen((m) => got.push(m));
    t2.onMember((_from, body) => member.push(body));
    t1.send([hb(1, 2, 3)]);
    await until('the heartbeat', () => got.length === 1);
    expect(t1.sendMember(2, new Uint8Array([7, 7]))).toBe(true);
    await until('the member frame', () => member.length === 1);
    expect(got[0]).toEqual(hb(1, 2, 3));
    const sent = c1.since(0);
    const received = c2.since(0);
    expect(sent.map((e) => [e.kind, e.type, e.peer])).toEqual([['send', 'heartbeat', '2'], ['send', 'member', '2']]);
    expect(received.map((e) => [e.kind, e.type, e.peer])).toEqual([['receive', 'heartbeat', '1'], ['receive', 'member', '1']]);
    for (let i = 0; i < 2; i++) {
      expect(received[i]!.msgId).toBe(sent[i]!.msgId);
      expect(compareClocks(sent[i]!.vc, received[i]!.vc)).toBe('before');
      expect(received[i]!.lamport).toBeGreaterThan(sent[i]!.lamport);
    }
    // 2's clock started at 5000: its receive is above both.
    expect(received[0]!.vc).toEqual({ 1: 1001, 2: 5001 });
  });

  it('a member without clocks still understands a peer with them (the A/B setting)', async () => {
    const t1 = await TcpTransport.start({ id: 1, clusterId: 'c', clocks: new TraceRecorder('1') });
    const t2 = await TcpTransport.start({ id: 2, clusterId: 'c' });
    closers.push(() => t1.close(), () => t2.close());
    t1.setPeer(2, { host: '127.0.0.1', port: t2.port });
    t2.setPeer(1, { host: '127.0.0.1', port: t1.port });
    const got: Message[] = [];
    t2.listen((m) => got.push(m));
    t1.send([hb(1, 2, 3)]);
    await until('the heartbeat', () => got.length === 1);
    expect(got[0]).toEqual(hb(1, 2, 3));
    expect(t2.stats.malformed).toBe(0);
  });

  it('a frame the envelope could push over the frame limit goes unstamped', async () => {
    const c1 = new TraceRecorder('1');
    const c2 = new TraceRecorder('2');
    const t1 = await TcpTransport.start({ id: 1, clusterId: 'c', clocks: c1, frameBytesMax: 2000 });
    const t2 = await TcpTransport.start({ id: 2, clusterId: 'c', clocks: c2, frameBytesMax: 2000 });
    closers.push(() => t1.close(), () => t2.close());
    t1.setPeer(2, { host: '127.0.0.1', port: t2.port });
    t2.setPeer(1, { host: '127.0.0.1', port: t1.port });
    const got: Message[] = [];
    t2.listen((m) => got.push(m));
    const big: Message = { type: 'append', from: 1, to: 2, term: 1, prevLogIndex: 0, prevLogTerm: 0, commit: 0, entries: [{ index: 1, term: 1, type: 'normal', data: new Uint8Array(1930) }] };
    // Fits the limit alone (1,996 bytes), not with an envelope around it.
    expect(encodeMessage(big).length - 4).toBe(1996);
    t1.send([big, hb(1, 2, 1)]);
    await until('both messages', () => got.length === 2);
    expect(c1.since(0).map((e) => e.type)).toEqual(['heartbeat']);
    expect(c2.since(0).map((e) => e.type)).toEqual(['heartbeat']);
    expect(t2.stats.malformed).toBe(0);
  });

  it('a hostile envelope closes that connection, nothing is delivered, the clock is untouched', async () => {
    const c2 = new TraceRecorder('2');
    const t2 = await TcpTransport.start({ id: 2, clusterId: 'c', clocks: c2 });
    closers.push(() => t2.close());
    t2.setPeer(1, { host: '127.0.0.1', port: 1 });
    const got: Message[] = [];
    t2.listen((m) => got.push(m));
    const s = connect({ host: '127.0.0.1', port: t2.port });
    s.on('error', () => {});
    closers.push(() => void s.destroy());
    let closed = false;
    s.on('close', () => (closed = true));
    await new Promise<void>((r) => s.once('connect', () => r()));
    const body = raw([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f], [[1, 0]], inner);
    const frame = new Uint8Array(4 + body.length);
    new DataView(frame.buffer).setUint32(0, body.length, true);
    frame.set(body, 4);
    s.write(encodeHandshake({ clusterId: 'c', from: 1, to: 2, version: PROTOCOL_VERSION }));
    s.write(frame);
    await until('the connection closed', () => closed);
    expect(t2.stats.malformed).toBe(1);
    expect(got).toEqual([]);
    expect(c2.lamport).toBe(0);
    expect(c2.since(0)).toEqual([]);
    // A member frame in a valid envelope from the same peer on a new connection still works.
    const ok: Uint8Array[] = [];
    t2.onMember((_f, b) => ok.push(b));
    const s2 = connect({ host: '127.0.0.1', port: t2.port });
    s2.on('error', () => {});
    closers.push(() => void s2.destroy());
    await new Promise<void>((r) => s2.once('connect', () => r()));
    s2.write(encodeHandshake({ clusterId: 'c', from: 1, to: 2, version: PROTOCOL_VERSION }));
    s2.write(encodeClockEnvelope({ lamport: 3, vc: { 1: 3 } }, 1, encodeMemberFrame(1, 2, new Uint8Array([1]))));
    await until('the member frame', () => ok.length === 1);
    expect(c2.since(0).map((e) => [e.kind, e.msgId])).toEqual([['receive', '1-3']]);
  });
});
