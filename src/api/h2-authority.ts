/**
 * etcd's Go clients send the endpoint as given in `:authority`, so `etcdctl
 * --endpoints=http://127.0.0.1:2379` (and every `--cluster` command, which dials the
 * members' client URLs) sends `:authority: http://127.0.0.1:2379`. Go's HTTP/2 server takes
 * it; Node's (nghttp2) resets the stream with PROTOCOL_ERROR, since '/' is not allowed in an
 * authority. This rewrites the client-to-server byte stream of an HTTP/2 connection: every
 * header block is decoded (HPACK, with the client's dynamic table) and encoded again (with our
 * own table, which the server's decoder follows), with the scheme and path cut from
 * `:authority`. All other frames pass through unchanged.
 */
import hpack, { type Header } from 'hpack.js';

const PREFACE_BYTES = 24;
const FRAME_HEADER_BYTES = 9;
const HEADERS = 0x1;
const CONTINUATION = 0x9;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;
/** The HTTP/2 default SETTINGS_MAX_FRAME_SIZE: frames we write stay within it. */
const FRAME_PAYLOAD_MAX = 16_384;
/** The default HPACK table size on both sides (neither Node nor grpc-go changes it). */
const HPACK_TABLE_BYTES = 4096;
/** A header block larger than this is refused (the connection is closed). */
export const HEADER_BLOCK_BYTES_MAX = 1024 * 1024;

export class HeaderBlockError extends Error {
  override name = 'HeaderBlockError';
}

/** "http://host:port/x" -> "host:port"; anything else unchanged. */
export function cleanAuthority(v: string): string {
  const m = /^[a-z][a-z0-9+.-]*:\/\/([^/]*)/i.exec(v);
  return m ? m[1]! : v;
}

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(FRAME_HEADER_BYTES);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}

/** A stateful transformer of one connection's client-to-server bytes. */
export function authorityRewriter(): (chunk: Buffer) => Buffer[] {
  const decomp = hpack.decompressor.create({ table: { size: HPACK_TABLE_BYTES } });
  const comp = hpack.compressor.create({ table: { size: HPACK_TABLE_BYTES } });
  let decodeError: Error | null = null;
  decomp.on('error', (e: Error) => (decodeError = e));
  let pending: Buffer = Buffer.alloc(0);
  let prefaceDone = false;
  let block: { stream: number; endStream: boolean; fragments: Buffer[]; bytes: number } | null = null;

  const reencode = (b: NonNullable<typeof block>): Buffer[] => {
    decomp.write(Buffer.concat(b.fragments));
    decomp.execute();
    if (decodeError) throw new HeaderBlockError(`bad header block: ${(decodeError as Error).message}`);
    const headers: Header[] = [];
    for (let h = decomp.read(); h !== null; h = decomp.read()) {
      headers.push({ name: h.name, value: h.name === ':authority' ? cleanAuthority(h.value) : h.value, neverIndex: h.neverIndex ?? false });
    }
    comp.write(headers);
    const encoded = comp.read() ?? Buffer.alloc(0);
    const out: Buffer[] = [];
    for (let off = 0; off === 0 || off < encoded.length; off += FRAME_PAYLOAD_MAX) {
      const part = encoded.subarray(off, off + FRAME_PAYLOAD_MAX);
      const last = off + FRAME_PAYLOAD_MAX >= encoded.length;
      const flags = (last ? END_HEADERS : 0) | (off === 0 && b.endStream ? END_STREAM : 0);
      out.push(frame(off === 0 ? HEADERS : CONTINUATION, flags, b.stream, part));
    }
    return out;
  };

  return (chunk) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    const out: Buffer[] = [];
    if (!prefaceDone) {
      if (pending.length < PREFACE_BYTES) return out;
      out.push(pending.subarray(0, PREFACE_BYTES));
      pending = pending.subarray(PREFACE_BYTES);
      prefaceDone = true;
    }
    while (pending.length >= FRAME_HEADER_BYTES) {
      const len = pending.readUIntBE(0, 3);
      if (pending.length < FRAME_HEADER_BYTES + len) break;
      const type = pending[3]!;
      const flags = pending[4]!;
      const stream = pending.readUInt32BE(5) & 0x7fffffff;
      const whole = pending.subarray(0, FRAME_HEADER_BYTES + len);
      const payload = whole.subarray(FRAME_HEADER_BYTES);
      pending = pending.subarray(FRAME_HEADER_BYTES + len);
      if (type === HEADERS) {
        let start = 0;
        let pad = 0;
        if (flags & PADDED) {
          pad = payload[0] ?? 0;
          start = 1;
        }
        if (flags & PRIORITY) start += 5;
        if (start + pad > payload.length) throw new HeaderBlockError('HEADERS frame shorter than its padding');
        block = { stream, endStream: (flags & END_STREAM) !== 0, fragments: [Buffer.from(payload.subarray(start, payload.length - pad))], bytes: payload.length };
      } else if (type === CONTINUATION && block) {
        block.fragments.push(Buffer.from(payload));
        block.bytes += payload.length;
      } else {
        out.push(Buffer.from(whole));
        continue;
      }
      if (block.bytes > HEADER_BLOCK_BYTES_MAX) throw new HeaderBlockError(`header block over ${HEADER_BLOCK_BYTES_MAX} bytes`);
      if (flags & END_HEADERS) {
        out.push(...reencode(block));
        block = null;
      }
    }
    return out;
  };
}
