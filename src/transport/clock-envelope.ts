/**
 * The clock envelope: a peer frame that carries the sender's Lamport and vector clock around
 * an ordinary frame body (a Raft message or a member-channel frame, see codec.ts). The Raft
 * core never sees it: the transport stamps on send and merges on receive.
 *
 *   envelope body = kind 33 | lamport:varint | n:u8 | n × (id:varint | lamport-counter:varint) | inner body
 *
 * Varints are unsigned LEB128 (at most 8 bytes, values below 2^53). Each vector component is
 * sent as its distance below the Lamport time: a component never exceeds the Lamport time of
 * the same stamp (Lamport time is the max of every clock merged, plus one per event), and the
 * components of active members sit close below it, so most take one or two bytes even though a
 * member's clocks start at its start time in microseconds (recorder.ts clockStartOf).
 *
 * Hostile input: decoding bounds the entry count (CLOCK_VC_ENTRIES_MAX), refuses duplicate or
 * zero ids, values above CLOCK_VALUE_MAX, a component above the Lamport time, a stamp without
 * the sender's own component, a nested envelope and an empty inner body (FrameError: the
 * connection is dropped, as for any malformed frame). Components for ids the receiver does not
 * know (not a member it has heard of) are left out of the merge, so a peer cannot grow the
 * receiver's vector with made-up ids.
 */
import type { DenseClock, Stamp } from '../trace/recorder.js';
import { FrameError } from './codec.js';

/** The frame kind of a clock envelope (above MEMBER_FRAME_KIND). */
export const CLOCK_FRAME_KIND = 33;
/** Vector components one envelope may carry (far above any cluster size). */
export const CLOCK_VC_ENTRIES_MAX = 64;
/** Largest Lamport time or vector component accepted; leaves room for 2^32 more ticks below 2^53. */
export const CLOCK_VALUE_MAX = Number.MAX_SAFE_INTEGER - 2 ** 32;
/** Largest envelope header: kind, Lamport time, count, and each entry (id up to 5 bytes, distance up to 8). */
export const CLOCK_HEADER_BYTES_MAX = 1 + 8 + 1 + CLOCK_VC_ENTRIES_MAX * (5 + 8);

const scratch = new Uint8Array(CLOCK_HEADER_BYTES_MAX);
/** Typed arrays up to this size are allocated on V8's heap (cheap); above it, with a backing store. */
const ON_HEAP_BYTES_MAX = 64;

function putVarint(buf: Uint8Array, at: number, v: number): number {
  // Above 2^31 bit operations would truncate: divide until the rest fits them.
  while (v >= 0x80000000) {
    buf[at++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  while (v >= 0x80) {
    buf[at++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[at++] = v;
  return at;
}

/** Vector keys that are member ids (a decimal u32 above 0) -> the id, others -> 0 (bounded cache: keys are member ids). */
const idCache = new Map<string, number>();
const ID_CACHE_MAX = 4096;
function idOf(k: string): number {
  let id = idCache.get(k);
  if (id === undefined) {
    const n = Number(k);
    id = Number.isInteger(n) && n > 0 && n <= 0xffffffff && String(n) === k ? n : 0;
    if (idCache.size < ID_CACHE_MAX) idCache.set(k, id);
  }
  return id;
}

/**
 * Wraps `frame` (a whole frame, length prefix included, as encodeMessage returns it) in an
 * envelope stamped `stamp`, from member `from`. Components that are not member ids (a
 * decimal u32 above 0) or are 0 are not sent; beyond CLOCK_VC_ENTRIES_MAX the sender's own and
 * then the largest are kept.
 */
export function encodeClockEnvelope(stamp: Stamp, from: number, frame: Uint8Array): Uint8Array {
  const { lamport, vc } = stamp;
  let at = 0;
  scratch[at++] = CLOCK_FRAME_KIND;
  at = putVarint(scratch, at, lamport);
  const countAt = at++;
  let count = 0;
  for (const k in vc) {
    const v = vc[k]!;
    const id = idOf(k);
    if (id === 0 || !(v > 0) || v > lamport) continue;
    if (count === CLOCK_VC_ENTRIES_MAX) return encodeTrimmed(stamp, from, frame);
    at = putVarint(scratch, at, id);
    at = putVarint(scratch, at, lamport - v);
    count++;
  }
  scratch[countAt] = count;
  return wrap(at, frame);
}

/**
 * The same envelope from a member's clocks as the trace recorder keeps them (no objects: the
 * transport's path). The recorder keeps at most TRACE_VC_COLUMNS_MAX (= CLOCK_VC_ENTRIES_MAX)
 * columns, so nothing is ever trimmed here.
 */
export function encodeClockEnvelopeFrom(clock: DenseClock, frame: Uint8Array): Uint8Array {
  return wrap(writeHeader(clock), frame);
}

/** The envelope header from `clock` in `scratch`; returns its length. */
function writeHeader(clock: DenseClock): number {
  const lamport = clock.lamport;
  const ids = clock.columnIds;
  const vector = clock.vector;
  const columns = Math.min(clock.columnCount, CLOCK_VC_ENTRIES_MAX);
  let at = 0;
  scratch[at++] = CLOCK_FRAME_KIND;
  at = putVarint(scratch, at, lamport);
  const countAt = at++;
  let count = 0;
  for (let c = 0; c < columns; c++) {
    const id = ids[c]!;
    const v = vector[c]!;
    if (id === 0 || !(v > 0) || v > lamport) continue;
    at = putVarint(scratch, at, id);
    at = putVarint(scratch, at, lamport - v);
    count++;
  }
  scratch[countAt] = count;
  return at;
}

/** The most bytes an envelope header made from `clock` (as it is now) can take. */
export function clockHeaderBytesMax(clock: DenseClock): number {
  return 1 + 8 + 1 + Math.min(clock.columnCount, CLOCK_VC_ENTRIES_MAX) * (5 + 8);
}

/**
 * The envelope from `clock` written in place, in front of a body at buf[start..end) that left
 * room for it (at least 4 + clockHeaderBytesMax(clock) bytes before `start`): the frame is a
 * view of `buf`, and nothing is allocated or copied.
 */
export function envelopeInPlace(clock: DenseClock, buf: Uint8Array, start: number, end: number): Uint8Array {
  const headerBytes = writeHeader(clock);
  const at = start - headerBytes - 4;
  if (at < 0) throw new RangeError(`no room for a ${headerBytes}-byte clock envelope before the body`);
  const len = end - start + headerBytes;
  buf[at] = len & 0xff;
  buf[at + 1] = (len >>> 8) & 0xff;
  buf[at + 2] = (len >>> 16) & 0xff;
  buf[at + 3] = len >>> 24;
  for (let i = 0; i < headerBytes; i++) buf[at + 4 + i] = scratch[i]!;
  return buf.subarray(at, end);
}

/** More components than an envelope carries (a cluster with a long membership history): the sender's own, then the largest. */
function encodeTrimmed(stamp: Stamp, from: number, frame: Uint8Array): Uint8Array {
  const entries: [number, number][] = [];
  for (const k in stamp.vc) {
    const v = stamp.vc[k]!;
    const id = idOf(k);
    if (id !== 0 && v > 0 && v <= stamp.lamport) entries.push([id, v]);
  }
  entries.sort((a, b) => (a[0] === from ? -1 : b[0] === from ? 1 : b[1] - a[1]));
  let at = 0;
  scratch[at++] = CLOCK_FRAME_KIND;
  at = putVarint(scratch, at, stamp.lamport);
  scratch[at++] = CLOCK_VC_ENTRIES_MAX;
  for (const [id, v] of entries.slice(0, CLOCK_VC_ENTRIES_MAX)) {
    at = putVarint(scratch, at, id);
    at = putVarint(scratch, at, stamp.lamport - v);
  }
  return wrap(at, frame);
}

/** The envelope frame: length prefix, the header in `scratch[0..headerBytes)`, the frame's body. */
function wrap(headerBytes: number, frame: Uint8Array): Uint8Array {
  const innerBytes = frame.length - 4;
  // A fresh ArrayBuffer per message costs more than the rest of the envelope: small frames
  // live on V8's heap, larger ones are cut from Node's buffer pool.
  const total = 4 + headerBytes + innerBytes;
  const out = total <= ON_HEAP_BYTES_MAX ? new Uint8Array(total) : Buffer.allocUnsafe(total);
  const len = headerBytes + innerBytes;
  // The whole frame at headerBytes puts its body where the envelope's goes; its length prefix
  // is then overwritten by the header (no subarray views to allocate).
  out.set(frame, headerBytes);
  out[0] = len & 0xff;
  out[1] = (len >>> 8) & 0xff;
  out[2] = (len >>> 16) & 0xff;
  out[3] = len >>> 24;
  for (let i = 0; i < headerBytes; i++) out[4 + i] = scratch[i]!;
  return out;
}

export interface ClockEnvelope {
  readonly stamp: Stamp;
  /** The wrapped frame body (a Raft message or a member frame). */
  readonly inner: Uint8Array;
  /** Components left out because `known` did not know their id. */
  readonly unknownIds: number;
}

/**
 * A decoded envelope header, filled in place by readClockEnvelope (the transport keeps one:
 * decoding a frame makes no objects). Entries are those whose ids the receiver knows.
 */
export class ClockHeader {
  lamport = 0;
  count = 0;
  readonly ids = new Float64Array(CLOCK_VC_ENTRIES_MAX);
  readonly values = new Float64Array(CLOCK_VC_ENTRIES_MAX);
  /** Components left out because `known` did not know their id. */
  unknownIds = 0;
}

/**
 * Reads the envelope at the start of a frame body into `out` and returns where the wrapped
 * body starts, or 0 when the body is not an envelope. `from` is the sender as its handshake
 * named it; `known` says which ids may enter the receiver's vector. Throws FrameError for a
 * malformed envelope (see the top of this file).
 */
export function readClockEnvelope(body: Uint8Array, from: number, known: (id: number) => boolean, out: ClockHeader): number {
  if (body[0] !== CLOCK_FRAME_KIND) return 0;
  cursor = 1;
  const lamport = readVarint(body, 'Lamport time');
  if (lamport < 1) throw new FrameError('clock envelope: Lamport time 0');
  if (cursor >= body.length) throw new FrameError('truncated clock envelope (entry count)');
  const n = body[cursor++]!;
  if (n > CLOCK_VC_ENTRIES_MAX) throw new FrameError(`clock envelope: ${n} vector entries exceed the limit of ${CLOCK_VC_ENTRIES_MAX}`);
  let count = 0;
  let unknownIds = 0;
  let sawSender = false;
  for (let i = 0; i < n; i++) {
    const id = readVarint(body, 'member id');
    if (id < 1 || id > 0xffffffff) throw new FrameError(`clock envelope: member id ${id} out of range`);
    const distance = readVarint(body, 'vector entry');
    if (distance >= lamport) throw new FrameError(`clock envelope: vector entry for ${id} is not in [1, ${lamport}]`);
    // Duplicates: entries are few (at most CLOCK_VC_ENTRIES_MAX), a scan beats a Set.
    for (let j = 0; j < i; j++) if (seenIds[j] === id) throw new FrameError(`clock envelope: member id ${id} twice`);
    seenIds[i] = id;
    if (id === from) sawSender = true;
    if (id === from || known(id)) {
      out.ids[count] = id;
      out.values[count] = lamport - distance;
      count++;
    } else unknownIds++;
  }
  if (!sawSender) throw new FrameError(`clock envelope: no vector entry for the sender ${from}`);
  if (cursor >= body.length) throw new FrameError('clock envelope: no message inside');
  if (body[cursor] === CLOCK_FRAME_KIND) throw new FrameError('clock envelope inside a clock envelope');
  out.lamport = lamport;
  out.count = count;
  out.unknownIds = unknownIds;
  return cursor;
}

/** The envelope in a frame body as objects, or null when the body is not one (readClockEnvelope's answer, for tests and tools). */
export function decodeClockEnvelope(body: Uint8Array, from: number, known: (id: number) => boolean): ClockEnvelope | null {
  const h = new ClockHeader();
  const at = readClockEnvelope(body, from, known, h);
  if (at === 0) return null;
  const vc: Record<string, number> = {};
  for (let i = 0; i < h.count; i++) vc[h.ids[i]!] = h.values[i]!;
  return { stamp: { lamport: h.lamport, vc }, inner: body.subarray(at), unknownIds: h.unknownIds };
}

/** Decoding state (decoding is synchronous and not reentrant). */
let cursor = 0;
const seenIds = new Float64Array(CLOCK_VC_ENTRIES_MAX);

function readVarint(body: Uint8Array, what: string): number {
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 8; i++) {
    if (cursor >= body.length) throw new FrameError(`truncated clock envelope (${what})`);
    const b = body[cursor++]!;
    v += (b & 0x7f) * mul;
    if (b < 0x80) {
      if (v > CLOCK_VALUE_MAX) throw new FrameError(`clock envelope: ${what} ${v} exceeds ${CLOCK_VALUE_MAX}`);
      return v;
    }
    mul *= 0x80;
  }
  throw new FrameError(`clock envelope: ${what} is longer than 8 bytes`);
}
