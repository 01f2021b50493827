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
  PING_WITHOUT_STREAMS_INTERVAL_MIN_MS,
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
    expect(40 * (5 + 3000 + 32)).toBeGreaterThan(HEADER_LIST_BYTES_MAX);
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
    // A stream open (HEADERS without END_STREAM): the min time applies.
    front.inbound(frame(HEADERS, END_HEADERS, 1, Buffer.from([0x83, 0x86, 0x84])));
    expect(front.openStreams).toBe(1);
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

  it('without open streams, pings must be PING_WITHOUT_STREAMS_INTERVAL_MIN_MS apart', () => {
    let t = 0;
    const front = authorityRewriter({ pingMinIntervalMs: 5000, now: () => t });
    front.inbound(PREFACE);
    const ping = frame(PING, 0, 0, Buffer.alloc(8));
    for (let i = 0; i < 5; i++, t += PING_WITHOUT_STREAMS_INTERVAL_MIN_MS) front.inbound(ping);
    front.inbound(ping); // 2 h after the last one
    for (let i = 0; i < PING_STRIKES_MAX; i++) {
      t += 10_000; // would be fine with a stream open
      front.inbound(ping);
    }
    t += 10_000;
    expect(refusal(() => front.inbound(ping)).message).toBe('too_many_pings');
  });

  it('refuses streams over streamsMax with RST_STREAM REFUSED_STREAM, drops their frames, counts closes from both sides', () => {
    const front = authorityRewriter({ pingMinIntervalMs: 0, streamsMax: 2 });
    front.inbound(PREFACE);
    const client = hpack.compressor.create({ table: { maxSize: 4096 } });
    const server = hpack.decompressor.create({ table: { maxSize: 4096 } });
    const block = (i: number) => {
      client.write([{ name: ':path', value: `/p/${i}` }, { name: 'x-n', value: String(i) }]);
      return client.read()!;
    };
    /** Feeds the front, decodes what reached the server as the server would; returns its header blocks per stream. */
    const send = (b: Buffer): Map<number, string[]> => {
      const got = new Map<number, string[]>();
      for (const [type, , id, payload] of frames(Buffer.concat(front.inbound(b)))) {
        if (type !== HEADERS) continue;
        server.write(payload);
        server.execute();
        const hs: string[] = [];
        for (let h = server.read(); h !== null; h = server.read()) hs.push(`${h.name}: ${h.value}`);
        got.set(id, hs);
      }
      return got;
    };
    expect(send(frame(HEADERS, END_HEADERS, 1, block(1))).get(1)).toEqual([':path: /p/1', 'x-n: 1']);
    expect(send(frame(HEADERS, END_HEADERS | 0x1, 3, block(3))).has(3)).toBe(true); // client half-closed
    expect(front.openStreams).toBe(2);
    // Over the limit: not passed on; an RST_STREAM of ours waits for a boundary of the server's output.
    expect(send(frame(HEADERS, END_HEADERS, 5, block(5))).size).toBe(0);
    expect(front.inbound(frame(0x0, 0x1, 5, Buffer.from('late data')))).toEqual([]);
    const own = front.takeOwnFrames();
    expect(frames(Buffer.concat(own)).map(([t, , id, p]) => [t, id, p.readUInt32BE(0)])).toEqual([[0x3, 5, H2_ERROR.REFUSED_STREAM]]);
    // The server's end of stream 3 closes it (the client had ended its side), counted when the
    // frame header has gone by, even split across chunks.
    const data = frame(0x0, 0x1, 3, Buffer.from('bye'));
    expect(Buffer.concat(front.outbound(data.subarray(0, 4)))).toEqual(data.subarray(0, 4));
    expect(front.openStreams).toBe(2);
    front.outbound(data.subarray(4));
    expect(front.openStreams).toBe(1);
    // The refused block changed the client's table and ours with it: the same headers again are
    // one-byte references to it, and decode right.
    expect(send(frame(HEADERS, END_HEADERS, 7, block(5))).get(7)).toEqual([':path: /p/5', 'x-n: 5']);
    expect(front.openStreams).toBe(2);
    // Stream 1 reset by the client: a slot again.
    front.inbound(frame(0x3, 0, 1, Buffer.alloc(4)));
    expect(front.openStreams).toBe(1);
    send(frame(HEADERS, END_HEADERS, 9, block(9)));
    expect(send(frame(HEADERS, END_HEADERS, 11, block(11))).size).toBe(0);
    // Our RST_STREAM goes out between two server frames, never inside one.
    const f1 = frame(0x0, 0, 7, Buffer.from('a'));
    const out = front.outbound(Buffer.concat([f1, f1]));
    expect(frames(Buffer.concat(out)).map(([t, , id]) => [t, id])).toEqual([[0x0, 7], [0x3, 11], [0x0, 7]]);
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
