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
import type { Stamp } from '../trace/recorder.js';
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

function putVarint(buf: Uint8Array, at: number, v: number): number {
  while (v >= 0x80) {
    buf[at++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  buf[at++] = v;
  return at;
}

/**
 * Wraps `frame` (a whole frame, length prefix included, as encodeMessage returns it) in an
 * envelope stamped `stamp`, from member `from`. Components that are not member ids (a
 * decimal u32 above 0) or are 0 are not sent; beyond CLOCK_VC_ENTRIES_MAX the sender's own and
 * then the largest are kept.
 */
export function encodeClockEnvelope(stamp: Stamp, from: number, frame: Uint8Array): Uint8Array {
  const own = String(from);
  let entries: [number, number][] = [];
  for (const k of Object.keys(stamp.vc)) {
    const v = stamp.vc[k]!;
    const id = Number(k);
    if (v > 0 && v <= stamp.lamport && Number.isInteger(id) && id > 0 && id <= 0xffffffff && String(id) === k) entries.push([id, v]);
  }
  if (entries.length > CLOCK_VC_ENTRIES_MAX) {
    entries.sort((a, b) => (String(a[0]) === own ? -1 : String(b[0]) === own ? 1 : b[1] - a[1]));
    entries = entries.slice(0, CLOCK_VC_ENTRIES_MAX);
  }
  let at = 0;
  scratch[at++] = CLOCK_FRAME_KIND;
  at = putVarint(scratch, at, stamp.lamport);
  scratch[at++] = entries.length;
  for (const [id, v] of entries) {
    at = putVarint(scratch, at, id);
    at = putVarint(scratch, at, stamp.lamport - v);
  }
  const innerBytes = frame.length - 4;
  const out = new Uint8Array(4 + at + innerBytes);
  new DataView(out.buffer).setUint32(0, at + innerBytes, true);
  out.set(scratch.subarray(0, at), 4);
  out.set(frame.subarray(4), 4 + at);
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
 * The envelope in a frame body, or null when the body is not one. `from` is the sender as its
 * handshake named it; `known` says which ids may enter the receiver's vector.
 */
export function decodeClockEnvelope(body: Uint8Array, from: number, known: (id: number) => boolean): ClockEnvelope | null {
  if (body[0] !== CLOCK_FRAME_KIND) return null;
  let at = 1;
  const varint = (what: string): number => {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      if (at >= body.length) throw new FrameError(`truncated clock envelope (${what})`);
      const b = body[at++]!;
      v += (b & 0x7f) * mul;
      if (b < 0x80) {
        if (v > CLOCK_VALUE_MAX) throw new FrameError(`clock envelope: ${what} ${v} exceeds ${CLOCK_VALUE_MAX}`);
        return v;
      }
      mul *= 0x80;
    }
    throw new FrameError(`clock envelope: ${what} is longer than 8 bytes`);
  };
  const lamport = varint('Lamport time');
  if (lamport < 1) throw new FrameError('clock envelope: Lamport time 0');
  if (at >= body.length) throw new FrameError('truncated clock envelope (entry count)');
  const n = body[at++]!;
  if (n > CLOCK_VC_ENTRIES_MAX) throw new FrameError(`clock envelope: ${n} vector entries exceed the limit of ${CLOCK_VC_ENTRIES_MAX}`);
  const vc: Record<string, number> = {};
  let unknownIds = 0;
  const seen = new Set<number>();
  for (let i = 0; i < n; i++) {
    const id = varint('member id');
    if (id < 1 || id > 0xffffffff) throw new FrameError(`clock envelope: member id ${id} out of range`);
    const distance = varint('vector entry');
    if (distance >= lamport) throw new FrameError(`clock envelope: vector entry for ${id} is not in [1, ${lamport}]`);
    if (seen.has(id)) throw new FrameError(`clock envelope: member id ${id} twice`);
    seen.add(id);
    if (id === from || known(id)) vc[String(id)] = lamport - distance;
    else unknownIds++;
  }
  if (!seen.has(from)) throw new FrameError(`clock envelope: no vector entry for the sender ${from}`);
  if (at >= body.length) throw new FrameError('clock envelope: no message inside');
  if (body[at] === CLOCK_FRAME_KIND) throw new FrameError('clock envelope inside a clock envelope');
  return { stamp: { lamport, vc }, inner: body.subarray(at), unknownIds };
}
