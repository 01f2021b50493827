import hpack, { type Header } from 'hpack.js';
import { describe, expect, it } from 'vitest';
import {
  authorityRewriter,
  cleanAuthority,
  H2_ERROR,
  H2_FRAME_PAYLOAD_MAX,
  H2RefusedError,
  HEADER_BLOCK_BYTES_MAX,
  HEADER_LIST_BYTES_MAX,
  PING_STRIKES_MAX,
} from './h2-authority.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const HEADERS = 0x1;
const PING = 0x6;
const SETTINGS = 0x4;
const CONTINUATION = 0x9;
const END_HEADERS = 0x4;

function frame(type: number, flags: number, stream: number, payload: Buffer, declared = payload.length): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(declared, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

/** Splits a stream of frames (no preface) into [type, flags, stream, payload]. */
function frames(b: Buffer): [number, number, number, Buffer][] {
  const out: [number, number, number, Buffer][] = [];
  for (let off = 0; off < b.length; ) {
    const len = b.readUIntBE(off, 3);
    out.push([b[off + 3]!, b[off + 4]!, b.readUInt32BE(off + 5), b.subarray(off + 9, off + 9 + len)]);
    off += 9 + len;
  }
  return out;
}

const refusal = (f: () => unknown): H2RefusedError => {
  try {
    f();
  } catch (e) {
    if (e instanceof H2RefusedError) return e;
    throw e;
  }
  throw new Error('not refused');
};

describe('HTTP/2 front of the client port', () => {
  it('cuts scheme and path from :authority', () => {
    expect(cleanAuthority('http://127.0.0.1:2379')).toBe('127.0.0.1:2379');
    expect(cleanAuthority('https://h:1/x/y')).toBe('h:1');
    expect(cleanAuthority('127.0.0.1:2379')).toBe('127.0.0.1:2379');
  });

  it('refuses a frame declaring more than SETTINGS_MAX_FRAME_SIZE from its header alone, before the payload arrives', () => {
    const front = authorityRewriter();
    expect(front.inbound(Buffer.concat([PREFACE, frame(SETTINGS, 0, 0, Buffer.alloc(0))]))).toHaveLength(2);
    // 16 MiB declared, 3 bytes sent: refused now, nothing waits for the rest.
    const e = refusal(() => front.inbound(frame(0x0, 0, 1, Buffer.from('abc'), 16 * 1024 * 1024 - 1)));
    expect(e.code).toBe(H2_ERROR.FRAME_SIZE_ERROR);
    // The largest allowed frame passes.
    const ok = authorityRewriter();
    ok.inbound(PREFACE);
    const max = frame(0x0, 0, 1, Buffer.alloc(H2_FRAME_PAYLOAD_MAX));
    expect(Buffer.concat(ok.inbound(max))).toEqual(max);
    expect(refusal(() => ok.inbound(frame(0x0, 0, 1, Buffer.alloc(0), H2_FRAME_PAYLOAD_MAX + 1))).code).toBe(H2_ERROR.FRAME_SIZE_ERROR);
  });

  it('refuses a header block over HEADER_BLOCK_BYTES_MAX (HEADERS + CONTINUATION)', () => {
    const front = authorityRewriter();
    front.inbound(PREFACE);
    const piece = Buffer.alloc(H2_FRAME_PAYLOAD_MAX, 0x40);
    front.inbound(frame(HEADERS, 0, 1, piece));
    let e: H2RefusedError | null = null;
    let sent = piece.length;
    for (let i = 0; i < 10 && !e; i++) {
      try {
        front.inbound(frame(CONTINUATION, 0, 1, piece));
        sent += piece.length;
      } catch (err) {
        e = err as H2RefusedError;
      }
    }
    expect(e).toBeInstanceOf(H2RefusedError);
    expect(sent).toBeLessThanOrEqual(HEADER_BLOCK_BYTES_MAX);
  });

  it('refuses a frame of another stream inside a header block', () => {
    const front = authorityRewriter();
    front.inbound(PREFACE);
    front.inbound(frame(HEADERS, 0, 1, Buffer.from([0x82])));
    expect(refusal(() => front.inbound(frame(0x0, 0, 3, Buffer.from('x')))).code).toBe(H2_ERROR.PROTOCOL_ERROR);
  });

  it('refuses an HPACK bomb: a small block that decodes past HEADER_LIST_BYTES_MAX', () => {
    const front = authorityRewriter();
    front.inbound(PREFACE);
    // One literal with incremental indexing of a 3,000-byte value (dynamic index 62), then
    // one-byte references to it: 40 of them decode to 120 KB from a 3 KB block.
    const comp = hpack.compressor.create({ table: { maxSize: 4096 } });
    comp.write([{ name: 'x-big', value: 'v'.repeat(3000) }]);
    const first = comp.read()!;
    const block = Buffer.concat([first, Buffer.alloc(40, 0x80 | 62)]);
    expect(block.length).toBeLessThan(HEADER_BLOCK_BYTES_MAX);
    expect(refusal(() => front.inbound(frame(HEADERS, END_HEADERS, 1, block))).code).toBe(H2_ERROR.ENHANCE_YOUR_CALM);
  });

  it('keeps its HPACK tables in step with the peers over many header blocks (entries are evicted at 4 KiB)', () => {
    const front = authorityRewriter();
    front.inbound(PREFACE);
    const client = hpack.compressor.create({ table: { maxSize: 4096 } });
    const server = hpack.decompressor.create({ table: { maxSize: 4096 } });
    for (let i = 0; i < 200; i++) {
      const sent: Header[] = [
        { name: ':method', value: 'POST' },
        { name: ':authority', value: 'http://127.0.0.1:2379' },
        { name: ':path', value: `/etcdserverpb.KV/Range` },
        { name: 'grpc-timeout', value: `${i}m` },
        { name: `x-distinct-${i % 50}`, value: `value-${i}-${'z'.repeat(200 + (i % 97))}` },
      ];
      client.write(sent);
      const out = Buffer.concat(front.inbound(frame(HEADERS, END_HEADERS, 2 * i + 1, client.read()!)));
      const got: Header[] = [];
      for (const [type, , , payload] of frames(out)) {
        expect([HEADERS, CONTINUATION]).toContain(type);
        server.write(payload);
      }
      server.execute();
      for (let h = server.read(); h !== null; h = server.read()) got.push(h);
      expect(got.map((h) => [h.name, h.value])).toEqual(sent.map((h) => [h.name, h.name === ':authority' ? '127.0.0.1:2379' : h.value]));
    }
  });

  it('refuses a client pinging more often than the min time, as grpc-go does; server headers or data forgive', () => {
    let t = 0;
    const front = authorityRewriter({ pingMinIntervalMs: 5000, now: () => t });
    front.inbound(PREFACE);
    const ping = frame(PING, 0, 0, Buffer.alloc(8));
    const ack = frame(PING, 0x1, 0, Buffer.alloc(8));
    // Pings at the min time or slower: never a strike.
    for (let i = 0; i < 10; i++, t += 5000) front.inbound(ping);
    // Acks of the server's own pings are not judged.
    for (let i = 0; i < 10; i++) front.inbound(ack);
    // Too fast, but the server sent DATA in between each time: forgiven.
    for (let i = 0; i < 10; i++, t += 10) {
      front.inbound(ping);
      front.outbound(frame(0x0, 0, 1, Buffer.from('data')));
    }
    // Too fast with nothing from the server: PING_STRIKES_MAX strikes are tolerated, one more is not.
    front.inbound(ping); // forgiven by the DATA before it
    for (let i = 0; i < PING_STRIKES_MAX; i++) {
      t += 10;
      front.inbound(ping);
    }
    t += 10;
    const e = refusal(() => front.inbound(ping));
    expect(e.code).toBe(H2_ERROR.ENHANCE_YOUR_CALM);
    expect(e.message).toBe('too_many_pings');
  });

  it('tracks the frame boundaries of the server output across chunks', () => {
    const front = authorityRewriter();
    const f = frame(0x0, 0, 1, Buffer.alloc(100));
    front.outbound(f.subarray(0, 5));
    expect(front.outboundAtFrameBoundary).toBe(false);
    front.outbound(f.subarray(5, 50));
    expect(front.outboundAtFrameBoundary).toBe(false);
    front.outbound(Buffer.concat([f.subarray(50), f]));
    expect(front.outboundAtFrameBoundary).toBe(true);
  });
});
