import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Message } from '../raft/messages.js';
import { decodeHandshake, decodeMessage, encodeHandshake, encodeMessage, FrameError, FrameReader } from './codec.js';

const u = fc.integer({ min: 0, max: 2 ** 40 });
const id = fc.integer({ min: 1, max: 2 ** 31 });
const small = fc.integer({ min: 0, max: 2 ** 31 });
const bytes = fc.uint8Array({ maxLength: 300 }).map((b) => new Uint8Array(b));
const entry = fc.record({ index: u, term: u, type: fc.constantFrom('normal' as const, 'conf' as const), data: bytes });
const ids = fc.array(id, { maxLength: 5 });
const base = { from: id, to: id, term: u };

const messageArb: fc.Arbitrary<Message> = fc.oneof(
  fc.record({ type: fc.constant('append' as const), ...base, prevLogIndex: u, prevLogTerm: u, commit: u, entries: fc.array(entry, { maxLength: 5 }) }),
  fc.record({ type: fc.constant('appendResponse' as const), ...base, index: u, reject: fc.boolean(), hintIndex: u, hintTerm: u }),
  fc.record({ type: fc.constant('heartbeat' as const), ...base, commit: u, round: small }),
  fc.record({ type: fc.constant('heartbeatResponse' as const), ...base, round: small, needAppend: fc.boolean() }),
  fc.record({ type: fc.constant('vote' as const), ...base, preVote: fc.boolean(), lastLogIndex: u, lastLogTerm: u, transfer: fc.boolean() }),
  fc.record({ type: fc.constant('voteResponse' as const), ...base, preVote: fc.boolean(), reject: fc.boolean() }),
  fc.record({
    type: fc.constant('snapshot' as const),
    ...base,
    snapshot: fc.record({
      meta: fc.record({ index: u, term: u, confState: fc.record({ voters: ids, votersOutgoing: ids, learners: ids, learnersNext: ids, autoLeave: fc.boolean() }) }),
      data: bytes,
    }),
  }),
  fc.record({ type: fc.constant('timeoutNow' as const), ...base }),
  fc.record({ type: fc.constant('readIndex' as const), ...base, ctx: fc.string({ maxLength: 40 }) }),
  fc.record({ type: fc.constant('readIndexResponse' as const), ...base, ctx: fc.string({ maxLength: 40 }), index: u, reject: fc.boolean() }),
);

describe('wire codec', () => {
  it('round-trips every message kind', () => {
    fc.assert(
      fc.property(messageArb, (m) => {
        const frame = encodeMessage(m);
        const len = new DataView(frame.buffer, frame.byteOffset).getUint32(0, true);
        expect(len).toBe(frame.length - 4);
        expect(decodeMessage(frame.subarray(4))).toEqual(m);
      }),
      { numRuns: 3000 },
    );
  });

  it('reassembles frames however the stream is chunked', () => {
    fc.assert(
      fc.property(fc.array(messageArb, { minLength: 1, maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1 }), (msgs, cuts) => {
        const stream = Buffer.concat(msgs.map(encodeMessage));
        const reader = new FrameReader();
        const got: Message[] = [];
        let pos = 0;
        let i = 0;
        while (pos < stream.length) {
          const n = cuts[i++ % cuts.length]!;
          for (const body of reader.push(stream.subarray(pos, pos + n))) got.push(decodeMessage(body));
          pos += n;
        }
        expect(got).toEqual(msgs);
      }),
    );
  });

  it('random bytes never crash the decoder: they decode or raise FrameError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
        try {
          decodeMessage(b);
        } catch (e) {
          expect(e).toBeInstanceOf(FrameError);
        }
        try {
          new FrameReader(1024).push(b);
        } catch (e) {
          expect(e).toBeInstanceOf(FrameError);
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('corrupted valid frames are rejected or decode to some message, never crash', () => {
    fc.assert(
      fc.property(messageArb, fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 0, max: 255 }), (m, at, v) => {
        const body = encodeMessage(m).slice(4);
        body[at % body.length] = v;
        try {
          decodeMessage(body);
        } catch (e) {
          expect(e).toBeInstanceOf(FrameError);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('refuses oversized and empty frames by their length alone', () => {
    const r = new FrameReader(1000);
    expect(() => r.push(Uint8Array.of(0xe9, 0x03, 0, 0))).toThrow(/exceeds the limit of 1000/);
    expect(() => new FrameReader().push(Uint8Array.of(0, 0, 0, 0))).toThrow(/empty frame/);
  });

  it('handshakes round-trip and reject strangers', () => {
    const h = { clusterId: 'prod-1', from: 2, to: 3, version: 1 };
    expect(decodeHandshake(encodeHandshake(h).subarray(4))).toEqual(h);
    expect(() => decodeHandshake(new TextEncoder().encode('GET / HTTP/1.1\r\n'))).toThrow(FrameError);
  });
});
