/**
 * The front of every HTTP/2 connection on the client port, between the socket and grpc-js:
 *
 * - etcd's Go clients send the endpoint as given in `:authority`, so `etcdctl
 *   --endpoints=http://127.0.0.1:2379` (and every `--cluster` command, which dials the
 *   members' client URLs) sends `:authority: http://127.0.0.1:2379`. Go's HTTP/2 server takes
 *   it; Node's (nghttp2) resets the stream with PROTOCOL_ERROR, since '/' is not allowed in an
 *   authority. Every header block is decoded (HPACK, with the client's dynamic table) and
 *   encoded again (with our own table, which the server's decoder follows), with the scheme and
 *   path cut from `:authority`. All other frames pass through unchanged.
 * - Bounds before trust: a frame's declared length is checked against the SETTINGS_MAX_FRAME_SIZE
 *   the server advertises before any of it is buffered, so at most one frame is ever held; a
 *   header block (HEADERS + CONTINUATION) is bounded compressed and decoded (an HPACK bomb of
 *   one-byte references to a 4 KiB table entry stops at the decoded bound).
 * - Streams over the SETTINGS_MAX_CONCURRENT_STREAMS the server advertises are refused here with
 *   RST_STREAM REFUSED_STREAM, as grpc-go (etcd) does (RFC 7540 §5.1.2 allows it as a stream
 *   error); Node's server would end the whole connection. The open streams are counted from
 *   both directions: opened by a client HEADERS, closed by END_STREAM from both sides or an
 *   RST_STREAM from either (nghttp2 closes a stream before its last frame reaches the socket).
 * - Keepalive enforcement as grpc-go's server does it for etcd (`--grpc-keepalive-min-time`):
 *   a PING sooner than the min time after the previous one is a strike, unless the server sent
 *   HEADERS or DATA since; more than PING_STRIKES_MAX strikes and the connection is refused
 *   with GOAWAY ENHANCE_YOUR_CALM "too_many_pings". On a connection without open streams a
 *   ping sooner than PING_WITHOUT_STREAMS_INTERVAL_MIN_MS after the previous one is a strike
 *   (etcd does not permit keepalive without streams).
 * - Identity: a client's own CLIENT_CN_METADATA header is dropped from every header block, and
 *   on a TLS connection with a verified client certificate the certificate's CN is put in its
 *   place, so handlers read the CN from call metadata (src/api/tls-identity.ts) and no client
 *   can claim one by sending the header.
 *
 * A refusal is an H2RefusedError carrying the HTTP/2 error code; the caller closes the
 * connection (with `goawayFrame` if the server's output is at a frame boundary).
 */
import hpack, { type Header } from 'hpack.js';
import { CLIENT_CN_METADATA } from './tls-identity.js';

const PREFACE_BYTES = 24;
const FRAME_HEADER_BYTES = 9;
const DATA = 0x0;
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const PING = 0x6;
const GOAWAY = 0x7;
const CONTINUATION = 0x9;
const ACK = 0x1;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;

/** HTTP/2 error codes we refuse with (RFC 7540 §7). */
export const H2_ERROR = { PROTOCOL_ERROR: 0x1, FRAME_SIZE_ERROR: 0x6, REFUSED_STREAM: 0x7, COMPRESSION_ERROR: 0x9, ENHANCE_YOUR_CALM: 0xb } as const;

/**
 * The SETTINGS_MAX_FRAME_SIZE the client port advertises: the HTTP/2 default, which Node keeps
 * unless told otherwise and grpc-js does not change (checked by test/client-port-limits.test.ts
 * against the SETTINGS a member sends). A client frame declaring more is refused before any of
 * its payload is read; frames we write stay within it too.
 */
export const H2_FRAME_PAYLOAD_MAX = 16_384;
/**
 * Largest header block (HEADERS + CONTINUATION payloads, HPACK-compressed) a client may send.
 * gRPC's default metadata limit is 8 KiB; etcdctl and grpc-js send a few hundred bytes.
 */
export const HEADER_BLOCK_BYTES_MAX = 64 * 1024;
/**
 * Largest decoded header list (RFC 7540 §6.5.2: name + value + 32 per field), as Node's own
 * default SETTINGS_MAX_HEADER_LIST_SIZE (65,535).
 */
export const HEADER_LIST_BYTES_MAX = 65_535;
/**
 * Refused stream ids remembered, so that the refused stream's later frames (DATA, RST_STREAM,
 * WINDOW_UPDATE a client sent before it saw our RST_STREAM) are dropped rather than passed to
 * the server, which would take a frame on a stream it never saw as a connection error.
 */
const REFUSED_STREAMS_REMEMBERED = 1024;
/** Without open streams, pings must be this far apart (grpc-go's defaultPingTimeout, 2 h). */
export const PING_WITHOUT_STREAMS_INTERVAL_MIN_MS = 2 * 3600_000;
/** PINGs sooner than the min time tolerated before the connection is refused (grpc-go's maxPingStrikes). */
export const PING_STRIKES_MAX = 2;
/** The default HPACK table size on both sides (neither Node nor grpc-go changes it). */
const HPACK_TABLE_BYTES = 4096;

export class H2RefusedError extends Error {
  override name = 'H2RefusedError';
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
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

/** A GOAWAY frame (RFC 7540 §6.8). */
export function goawayFrame(lastStreamId: number, code: number, debug: string): Buffer {
  const p = Buffer.alloc(8 + Buffer.byteLength(debug));
  p.writeUInt32BE(lastStreamId & 0x7fffffff, 0);
  p.writeUInt32BE(code, 4);
  p.write(debug, 8);
  return frame(GOAWAY, 0, 0, p);
}

export interface H2FrontOptions {
  /** etcd's --grpc-keepalive-min-time, ms (0 = no enforcement). */
  readonly pingMinIntervalMs: number;
  /** The SETTINGS_MAX_CONCURRENT_STREAMS the server advertises (etcd's --max-concurrent-streams); none if absent. */
  readonly streamsMax?: number;
  /** The clock, ms (tests pass their own). */
  readonly now?: () => number;
  /** The CN of the connection's verified TLS client certificate, passed to the server as CLIENT_CN_METADATA. */
  readonly clientCn?: string;
}

export interface H2Front {
  /**
   * Client-to-server bytes in, what to hand the server out. Throws H2RefusedError when the
   * connection must be closed; nothing may be fed after that.
   */
  inbound(chunk: Buffer): Buffer[];
  /**
   * Server-to-client bytes in (observed for the ping policy and the stream count), what to
   * write to the client out: the same bytes, with our own frames (RST_STREAM of refused
   * streams) put in at frame boundaries.
   */
  outbound(chunk: Buffer): Buffer[];
  /** Our own frames waiting for a frame boundary of the server's output; call only at one. */
  takeOwnFrames(): Buffer[];
  /** Client streams open (as the server counts them). */
  readonly openStreams: number;
  /** True when the server's output is between frames (a GOAWAY of ours can go out now). */
  readonly outboundAtFrameBoundary: boolean;
  /** The highest client stream id seen (for a GOAWAY's last-stream-id). */
  readonly lastStreamId: number;
}

/** A stateful front for one connection (see the file comment). */
export function authorityRewriter(o: H2FrontOptions = { pingMinIntervalMs: 0 }): H2Front {
  const now = o.now ?? Date.now;
  // A -bin header: grpc-js base64-decodes it, so any CN (UTF-8, commas, quotes) arrives intact.
  const cnHeader: Header | null = o.clientCn !== undefined ? { name: CLIENT_CN_METADATA, value: Buffer.from(o.clientCn, 'utf8').toString('base64'), neverIndex: true } : null;
  const streamsMax = o.streamsMax ?? Infinity;
  // hpack.js reads the table bound from `maxSize` (with `size` it never evicts: the table
  // would grow without bound and our indices drift from the peer's).
  const decomp = hpack.decompressor.create({ table: { maxSize: HPACK_TABLE_BYTES } });
  const comp = hpack.compressor.create({ table: { maxSize: HPACK_TABLE_BYTES } });
  let decodeError: Error | null = null;
  decomp.on('error', (e: Error) => (decodeError = e));
  // Invariant: pending holds less than one frame header, or the start of one frame whose
  // declared length is at most H2_FRAME_PAYLOAD_MAX.
  let pending: Buffer = Buffer.alloc(0);
  let prefaceDone = false;
  let block: { stream: number; endStream: boolean; fragments: Buffer[]; bytes: number; refused: boolean; trailers: boolean } | null = null;
  let lastStreamId = 0;
  // Invariant: open.size <= streamsMax. Each entry: which sides have ended the stream.
  const open = new Map<number, { client: boolean; server: boolean }>();
  const refused = new Set<number>();
  let ownFrames: Buffer[] = [];
  const ended = (stream: number, side: 'client' | 'server'): void => {
    const st = open.get(stream);
    if (!st) return;
    st[side] = true;
    if (st.client && st.server) open.delete(stream);
  };
  // Ping policy (grpc-go's http2Server.handlePing).
  let lastPingAtMs: number | null = null;
  let pingStrikes = 0;
  let resetPingStrikes = false;
  // Outbound framing: bytes of the current frame's header seen, and payload bytes still to come.
  let outHeader = Buffer.alloc(0);
  let outPayloadLeft = 0;

  const reencode = (b: NonNullable<typeof block>): Buffer[] => {
    decomp.write(Buffer.concat(b.fragments));
    decomp.execute();
    if (decodeError) throw new H2RefusedError(H2_ERROR.COMPRESSION_ERROR, `bad header block: ${(decodeError as Error).message}`);
    const headers: Header[] = [];
    let listBytes = 0;
    for (let h = decomp.read(); h !== null; h = decomp.read()) {
      listBytes += h.name.length + h.value.length + 32;
      if (listBytes > HEADER_LIST_BYTES_MAX) throw new H2RefusedError(H2_ERROR.ENHANCE_YOUR_CALM, `header list over ${HEADER_LIST_BYTES_MAX} bytes`);
      // Only the server may say who the client is.
      if (h.name === CLIENT_CN_METADATA) continue;
      headers.push({ name: h.name, value: h.name === ':authority' ? cleanAuthority(h.value) : h.value, neverIndex: h.neverIndex ?? false });
    }
    if (cnHeader && !b.trailers) headers.push(cnHeader);
    // A refused stream's block is decoded (the client's table changed) but never reaches the server.
    if (b.refused) return [];
    comp.write(headers);
    const encoded = comp.read() ?? Buffer.alloc(0);
    const out: Buffer[] = [];
    for (let off = 0; off === 0 || off < encoded.length; off += H2_FRAME_PAYLOAD_MAX) {
      const part = encoded.subarray(off, off + H2_FRAME_PAYLOAD_MAX);
      const last = off + H2_FRAME_PAYLOAD_MAX >= encoded.length;
      const flags = (last ? END_HEADERS : 0) | (off === 0 && b.endStream ? END_STREAM : 0);
      out.push(frame(off === 0 ? HEADERS : CONTINUATION, flags, b.stream, part));
    }
    return out;
  };

  const onPing = (): void => {
    if (o.pingMinIntervalMs <= 0) return;
    const t = now();
    const previous = lastPingAtMs;
    lastPingAtMs = t;
    if (resetPingStrikes) {
      // The server sent headers or data since the last ping: this one is not judged.
      resetPingStrikes = false;
      pingStrikes = 0;
      return;
    }
    const minMs = open.size === 0 ? Math.max(o.pingMinIntervalMs, PING_WITHOUT_STREAMS_INTERVAL_MIN_MS) : o.pingMinIntervalMs;
    if (previous !== null && t - previous < minMs) pingStrikes++;
    if (pingStrikes > PING_STRIKES_MAX) throw new H2RefusedError(H2_ERROR.ENHANCE_YOUR_CALM, 'too_many_pings');
  };

  const inbound = (chunk: Buffer): Buffer[] => {
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
      // Checked on the header alone, before waiting for (and buffering) the payload.
      if (len > H2_FRAME_PAYLOAD_MAX) throw new H2RefusedError(H2_ERROR.FRAME_SIZE_ERROR, `frame of ${len} bytes over SETTINGS_MAX_FRAME_SIZE ${H2_FRAME_PAYLOAD_MAX}`);
      if (pending.length < FRAME_HEADER_BYTES + len) break;
      const type = pending[3]!;
      const flags = pending[4]!;
      const stream = pending.readUInt32BE(5) & 0x7fffffff;
      const whole = pending.subarray(0, FRAME_HEADER_BYTES + len);
      const payload = whole.subarray(FRAME_HEADER_BYTES);
      pending = pending.subarray(FRAME_HEADER_BYTES + len);
      if (block && !(type === CONTINUATION && stream === block.stream)) {
        // RFC 7540 §6.2: a header block is contiguous; we hold it back, so a frame in between would be reordered.
        throw new H2RefusedError(H2_ERROR.PROTOCOL_ERROR, 'frame inside a header block');
      }
      if (refused.has(stream) && type !== HEADERS) continue; // the rest of a refused stream
      if (type === HEADERS) {
        let start = 0;
        let pad = 0;
        if (flags & PADDED) {
          pad = payload[0] ?? 0;
          start = 1;
        }
        if (flags & PRIORITY) start += 5;
        if (start + pad > payload.length) throw new H2RefusedError(H2_ERROR.PROTOCOL_ERROR, 'HEADERS frame shorter than its padding');
        let refuse = false;
        const trailers = stream <= lastStreamId;
        if (stream > lastStreamId) {
          lastStreamId = stream;
          if (open.size >= streamsMax) {
            refuse = true;
            refused.add(stream);
            if (refused.size > REFUSED_STREAMS_REMEMBERED) refused.delete(refused.values().next().value!);
            const code = Buffer.alloc(4);
            code.writeUInt32BE(H2_ERROR.REFUSED_STREAM);
            ownFrames.push(frame(RST_STREAM, 0, stream, code));
          } else open.set(stream, { client: false, server: false });
        } else if (refused.has(stream)) refuse = true;
        block = { stream, endStream: (flags & END_STREAM) !== 0, fragments: [Buffer.from(payload.subarray(start, payload.length - pad))], bytes: payload.length, refused: refuse, trailers };
      } else if (type === CONTINUATION && block) {
        block.fragments.push(Buffer.from(payload));
        block.bytes += payload.length;
      } else {
        if (type === PING && stream === 0 && !(flags & ACK)) onPing();
        if (type === DATA && flags & END_STREAM) ended(stream, 'client');
        if (type === RST_STREAM) open.delete(stream);
        out.push(Buffer.from(whole));
        continue;
      }
      if (block.bytes > HEADER_BLOCK_BYTES_MAX) throw new H2RefusedError(H2_ERROR.ENHANCE_YOUR_CALM, `header block over ${HEADER_BLOCK_BYTES_MAX} bytes`);
      if (flags & END_HEADERS) {
        out.push(...reencode(block));
        if (block.endStream) ended(block.stream, 'client');
        block = null;
      }
    }
    // A chunk may carry many small frames; keep only the unread tail, not the whole chunk.
    if (pending.length > 0 && pending.buffer.byteLength > 2 * (FRAME_HEADER_BYTES + H2_FRAME_PAYLOAD_MAX)) pending = Buffer.from(pending);
    return out;
  };

  const outbound = (chunk: Buffer): Buffer[] => {
    const out: Buffer[] = [];
    let from = 0;
    let off = 0;
    while (off < chunk.length) {
      if (outPayloadLeft > 0) {
        const n = Math.min(outPayloadLeft, chunk.length - off);
        outPayloadLeft -= n;
        off += n;
      } else {
        const n = Math.min(FRAME_HEADER_BYTES - outHeader.length, chunk.length - off);
        outHeader = Buffer.concat([outHeader, chunk.subarray(off, off + n)]);
        off += n;
        if (outHeader.length === FRAME_HEADER_BYTES) {
          const type = outHeader[3]!;
          const flags = outHeader[4]!;
          const stream = outHeader.readUInt32BE(5) & 0x7fffffff;
          if (type === HEADERS || type === DATA) resetPingStrikes = true;
          if ((type === HEADERS || type === DATA) && flags & END_STREAM) ended(stream, 'server');
          if (type === RST_STREAM) open.delete(stream);
          outPayloadLeft = outHeader.readUIntBE(0, 3);
          outHeader = Buffer.alloc(0);
        }
      }
      if (outPayloadLeft === 0 && outHeader.length === 0 && ownFrames.length > 0) {
        out.push(chunk.subarray(from, off), ...takeOwnFrames());
        from = off;
      }
    }
    if (from < chunk.length || out.length === 0) out.push(from === 0 ? chunk : chunk.subarray(from));
    return out;
  };

  const takeOwnFrames = (): Buffer[] => {
    const f = ownFrames;
    ownFrames = [];
    return f;
  };

  return {
    inbound,
    outbound,
    takeOwnFrames,
    get openStreams() {
      return open.size;
    },
    get outboundAtFrameBoundary() {
      return outPayloadLeft === 0 && outHeader.length === 0;
    },
    get lastStreamId() {
      return lastStreamId;
    },
  };
}
