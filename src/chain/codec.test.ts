import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  ChainCodecError,
  CHAIN_MESSAGE_BYTES_MAX,
  CHAIN_NAME_BYTES_MAX,
  decodeClientReply,
  decodeClientRequest,
  decodePeerMessage,
  encodeClientReply,
  encodeClientRequest,
  encodePeerMessage,
  entryParts,
  CHAIN_ENTRY_PART_BYTES,
  decodeGetReplyHead,
  encodeClientRequestHead,
  encodeGetReplyHead,
  encodeUpdateHead,
  GET_REPLY_HEAD_BYTES,
  peerMessageParts,
  writeEntries,
} from './codec.js';
import { ByteWriter } from '../lib/bytes.js';
import type { PeerMessage } from './messages.js';
import { CHAIN_SNAPSHOT_CHUNKS_MAX, type ChainOp, type ClientOp, type ClientReply } from './types.js';

const nameArb = fc.string({ minLength: 1, maxLength: 20 });
const keyArb = fc.string({ minLength: 1, maxLength: 30 });
const u = fc.integer({ min: 0, max: 2 ** 40 });
const pos = fc.integer({ min: 1, max: 2 ** 40 });
const valueArb = fc.uint8Array({ maxLength: 64 });
const chainOpArb: fc.Arbitrary<ChainOp> = fc.oneof(
  fc.record({ type: fc.constant('put' as const), key: keyArb, value: valueArb }),
  fc.record({ type: fc.constant('delete' as const), key: keyArb }),
  fc.record({ type: fc.constant('cas' as const), key: keyArb, expectedVersion: u, value: valueArb }),
);
const clientOpArb: fc.Arbitrary<ClientOp> = fc.oneof(chainOpArb, fc.record({ type: fc.constant('get' as const), key: keyArb }));
const base = { epoch: pos, from: nameArb, to: nameArb };

const peerArb: fc.Arbitrary<PeerMessage> = fc.oneof(
  fc.record({ ...base, type: fc.constant('update' as const), seq: pos, assignEpoch: pos, prevAssignEpoch: u, op: chainOpArb }),
  fc.record({ ...base, type: fc.constant('ack' as const), received: u, receivedAssignEpoch: u, committed: u }),
  fc.record({ ...base, type: fc.constant('syncReq' as const), lastSeq: u, lastAssignEpoch: u }),
  fc.record({ ...base, type: fc.constant('syncDone' as const), upTo: u }),
  fc
    .record({ ...base, seq: fc.integer({ min: 1, max: 2 ** 40 }), assignEpoch: u, forSeq: fc.integer({ min: -1, max: 2 ** 40 }), forAssignEpoch: u, count: fc.integer({ min: 1, max: 100 }), keys: fc.uniqueArray(keyArb, { maxLength: 5 }), value: valueArb })
    .map(({ keys, value, count, forSeq, forAssignEpoch, ...r }) => ({
      ...r,
      type: 'snapshotChunk' as const,
      forSeq,
      forAssignEpoch,
      count,
      index: count - 1,
      entries: keys.map((key, i) => ({ key, value, version: Math.min(r.seq, i + 1) })),
    })),
  fc
    .record({ ...base, seq: u, assignEpoch: u, count: fc.integer({ min: 1, max: 100 }), have: fc.integer({ min: 0, max: 100 }) })
    .map(({ have, count, ...r }) => ({ ...r, type: 'snapshotAck' as const, count, have: Math.min(have, count) })),
  fc.record({ ...base, type: fc.constant('versionQuery' as const), qid: fc.integer({ min: 0, max: 2 ** 32 - 1 }), key: keyArb }),
  fc.record({ ...base, type: fc.constant('versionAnswer' as const), qid: fc.integer({ min: 0, max: 2 ** 32 - 1 }), key: keyArb, version: fc.option(u, { nil: null }) }),
);

const replyArb: fc.Arbitrary<ClientReply> = fc.oneof(
  fc.record({ ok: fc.constant(null), reason: fc.constant('unknown' as const), epoch: u }),
  fc.record({ ok: fc.constant(false as const), reason: fc.constantFrom('epoch', 'not-head', 'not-tail', 'no-lease', 'not-synced', 'busy', 'invalid' as const), epoch: u }),
  fc.record({ ok: fc.constant(true as const), result: fc.oneof(fc.record({ type: fc.constant('put' as const), version: u }), fc.record({ type: fc.constant('delete' as const), deleted: fc.boolean() }), fc.record({ type: fc.constant('cas' as const), swapped: fc.boolean(), version: u }), fc.record({ type: fc.constant('get' as const), version: u, value: fc.option(valueArb, { nil: null }) })) }),
);

/** Decoding either succeeds or throws ChainCodecError, nothing else. */
function totally<T>(f: () => T): T | ChainCodecError {
  try {
    return f();
  } catch (e) {
    if (e instanceof ChainCodecError) return e;
    throw e;
  }
}

describe('chain codec', () => {
  it('round-trips every peer message, request and reply', () => {
    fc.assert(
      fc.property(peerArb, (m) => {
        expect(decodePeerMessage(encodePeerMessage(m))).toEqual(m);
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(nameArb, fc.integer({ min: 0, max: 2 ** 32 - 1 }), u, clientOpArb, (client, id, epoch, op) => {
        const q = { client, id, epoch, op };
        expect(decodeClientRequest(encodeClientRequest(q))).toEqual(q);
      }),
      { numRuns: 1000 },
    );
    fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), replyArb, (id, reply) => {
      const back = decodeClientReply(encodeClientReply(id, reply));
      expect(back.id).toBe(id);
      expect(back.reply).toEqual(reply.ok === true ? { ok: true, result: reply.result } : reply);
    }), { numRuns: 1000 });
  });

  it('any bytes decode to a message or a ChainCodecError, never another error', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
        totally(() => decodePeerMessage(b));
        totally(() => decodeClientRequest(b));
        totally(() => decodeClientReply(b));
      }),
      { numRuns: 2000 },
    );
  });

  it('mutated valid messages decode to valid messages or a ChainCodecError', () => {
    fc.assert(
      fc.property(peerArb, fc.nat(), fc.integer({ min: 0, max: 255 }), (m, at, byte) => {
        const b = encodePeerMessage(m);
        b[at % b.length] = byte;
        const r = totally(() => decodePeerMessage(b));
        if (!(r instanceof ChainCodecError)) expect(decodePeerMessage(encodePeerMessage(r))).toEqual(r);
        totally(() => decodePeerMessage(b.subarray(0, at % b.length)));
      }),
      { numRuns: 2000 },
    );
  });

  it('refuses lying counts and sizes before allocating', () => {
    const m = encodePeerMessage({ type: 'snapshotChunk', epoch: 1, from: 'a', to: 'b', seq: 1, assignEpoch: 1, forSeq: -1, forAssignEpoch: 0, index: 0, count: 1, entries: [] });
    const lie = new Uint8Array(m);
    new DataView(lie.buffer).setUint32(lie.length - 4, 0xffffffff, true);
    expect(() => decodePeerMessage(lie)).toThrow(ChainCodecError);
    expect(() => decodePeerMessage(new Uint8Array(CHAIN_MESSAGE_BYTES_MAX + 1))).toThrow(/exceeds/);
    const put = encodePeerMessage({ type: 'update', epoch: 1, from: 'a', to: 'b', seq: 1, assignEpoch: 1, prevAssignEpoch: 0, op: { type: 'put', key: 'k', value: new Uint8Array(4) } });
    const big = new Uint8Array(put);
    new DataView(big.buffer).setUint32(big.length - 8, 0x7fffffff, true);
    expect(() => decodePeerMessage(big)).toThrow(/exceeds/);
    expect(() => decodePeerMessage(encodePeerMessage({ type: 'update', epoch: 1, from: 'a', to: 'b', seq: 1, assignEpoch: 1, prevAssignEpoch: 0, op: { type: 'put', key: '', value: new Uint8Array(1) } }))).toThrow(/key is empty/);
  });

  it(`refuses names beyond CHAIN_NAME_BYTES_MAX and snapshots beyond CHAIN_SNAPSHOT_CHUNKS_MAX chunks`, () => {
    const ack = (from: string) => encodePeerMessage({ type: 'ack', epoch: 1, from, to: 'b', received: 0, receivedAssignEpoch: 0, committed: 0 });
    expect(decodePeerMessage(ack('x'.repeat(CHAIN_NAME_BYTES_MAX))).from.length).toBe(CHAIN_NAME_BYTES_MAX);
    expect(() => decodePeerMessage(ack('x'.repeat(CHAIN_NAME_BYTES_MAX + 1)))).toThrow(/a name of 1\.\.255 bytes/);
    expect(() => decodePeerMessage(ack('é'.repeat(128)))).toThrow(ChainCodecError); // 256 bytes in UTF-8
    const chunk = (count: number) => encodePeerMessage({ type: 'snapshotChunk', epoch: 1, from: 'a', to: 'b', seq: 1, assignEpoch: 1, forSeq: -1, forAssignEpoch: 0, index: 0, count, entries: [] });
    expect(decodePeerMessage(chunk(CHAIN_SNAPSHOT_CHUNKS_MAX)).type).toBe('snapshotChunk');
    expect(() => decodePeerMessage(chunk(CHAIN_SNAPSHOT_CHUNKS_MAX + 1))).toThrow(/chunk 0 of/);
  });

  it('entryParts: the parts of a store, concatenated, are writeEntries\' bytes; a large value is a part of its own, not copied', () => {
    const entryArb = fc.record({ key: keyArb, version: fc.integer({ min: 1, max: 1000 }), value: fc.oneof(valueArb, fc.constantFrom(CHAIN_ENTRY_PART_BYTES / 4, CHAIN_ENTRY_PART_BYTES + 1).map((n) => new Uint8Array(n).fill(7))) });
    fc.assert(
      fc.property(fc.uniqueArray(entryArb, { selector: (e) => e.key, maxLength: 6 }), (entries) => {
        const w = new ByteWriter(64);
        writeEntries(w, entries);
        const parts = [...entryParts(entries)];
        expect(Buffer.compare(Buffer.concat(parts), Buffer.from(w.written()))).toBe(0);
        for (const e of entries) if (e.value.length >= CHAIN_ENTRY_PART_BYTES / 4) expect(parts).toContain(e.value);
        // A part of small entries ends after the one that crossed CHAIN_ENTRY_PART_BYTES (itself under a quarter of it).
        expect(parts.every((p) => p.length < CHAIN_ENTRY_PART_BYTES * 1.25 + 8192 || entries.some((e) => e.value === p))).toBe(true);
      }),
      { numRuns: 15 },
    );
  });

  it('peerMessageParts: concatenated, the parts are encodePeerMessage\'s bytes; an update\'s value and a snapshot chunk\'s large values are parts of their own, not copied', () => {
    fc.assert(
      fc.property(peerArb, (m) => {
        const parts = peerMessageParts(m);
        expect(Buffer.compare(Buffer.concat(parts), Buffer.from(encodePeerMessage(m)))).toBe(0);
        if (m.type === 'update' && m.op.type !== 'delete') expect(parts[1]).toBe(m.op.value);
      }),
      { numRuns: 500 },
    );
    // A snapshot chunk holding a large value (a 64 MiB one is a chunk of its own) and small ones.
    const big = new Uint8Array(3 * CHAIN_ENTRY_PART_BYTES).fill(9);
    const entries = [
      { key: 'a', version: 1, value: new Uint8Array(10).fill(1) },
      { key: 'b', version: 2, value: big },
      { key: 'c', version: 3, value: new Uint8Array(100).fill(3) },
    ];
    const chunk: PeerMessage = { type: 'snapshotChunk', epoch: 4, from: 'n1', to: 'n2', seq: 3, assignEpoch: 4, forSeq: -1, forAssignEpoch: 0, index: 0, count: 1, entries };
    const parts = peerMessageParts(chunk);
    expect(parts).toContain(big);
    expect(parts.filter((p) => p !== big).every((p) => p.length < 1024)).toBe(true);
    const whole = Buffer.concat(parts);
    expect(Buffer.compare(whole, Buffer.from(encodePeerMessage(chunk)))).toBe(0);
    const back = decodePeerMessage(whole);
    expect(back.type === 'snapshotChunk' && back.entries.map((e) => [e.key, e.version, Buffer.compare(Buffer.from(e.value), Buffer.from(entries.find((x) => x.key === e.key)!.value))])).toEqual([
      ['a', 1, 0],
      ['b', 2, 0],
      ['c', 3, 0],
    ]);
  });

  it('a streamed request\'s (a read reply\'s, an update\'s) head and value are the whole message; a reply\'s head says what decodeClientReply says', () => {
    fc.assert(
      fc.property(nameArb, fc.integer({ min: 0, max: 2 ** 32 - 1 }), pos, keyArb, valueArb, fc.boolean(), (client, id, epoch, key, value, cas) => {
        const op = cas ? ({ type: 'cas', key, expectedVersion: 3, value } as const) : ({ type: 'put', key, value } as const);
        const q = { client, id, epoch, op };
        const whole = encodeClientRequest(q);
        expect(Buffer.compare(Buffer.concat([encodeClientRequestHead(q, value.length), value]), Buffer.from(whole))).toBe(0);
        const reply = encodeClientReply(id, { ok: true, result: { type: 'get', version: 5, value } });
        const h = decodeGetReplyHead(reply, reply.length);
        expect(h).toEqual({ id, epoch: 0, version: 5, valueBytes: value.length, headBytes: GET_REPLY_HEAD_BYTES });
        expect(Buffer.compare(Buffer.from(reply.subarray(GET_REPLY_HEAD_BYTES)), Buffer.from(value))).toBe(0);
        expect(Buffer.compare(Buffer.concat([encodeGetReplyHead(id, 5, value.length), value]), Buffer.from(reply))).toBe(0);
        const update = { type: 'update', epoch, from: client, to: 'b', seq: 3, assignEpoch: epoch, prevAssignEpoch: 1, op } as const;
        expect(Buffer.compare(Buffer.concat([encodeUpdateHead(update), value]), Buffer.from(encodePeerMessage(update)))).toBe(0);
      }),
      { numRuns: 200 },
    );
    // Not a value read, no value, or a length that is not the rest of the message: refused.
    const withValue = encodeClientReply(1, { ok: true, result: { type: 'get', version: 5, value: new Uint8Array(10) } });
    expect(() => decodeGetReplyHead(withValue, withValue.length + 1)).toThrow(ChainCodecError);
    const none = encodeClientReply(1, { ok: true, result: { type: 'get', version: 0, value: null } });
    expect(() => decodeGetReplyHead(none, none.length)).toThrow(/without a value/);
    const put = encodeClientReply(1, { ok: true, result: { type: 'put', version: 5 } });
    expect(() => decodeGetReplyHead(put, GET_REPLY_HEAD_BYTES + 5)).toThrow(ChainCodecError);
    expect(() => encodeClientRequestHead({ client: 'c', id: 1, epoch: 1, op: { type: 'put', key: 'k', value: new Uint8Array(0) } }, CHAIN_MESSAGE_BYTES_MAX)).toThrow(ChainCodecError);
  });
});
