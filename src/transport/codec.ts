/**
 * The binary wire format of Raft messages between members. Entry payloads and snapshot data are
 * carried as raw bytes (no JSON on this path; only a snapshot's small metadata is JSON).
 *
 *   frame   = length:u32 | body[length]
 *   body    = kind:u8 | from:u32 | to:u32 | term:u64 | fields of the kind
 *   handshake body = kind 0 | magic "FLOT" | version:u8 | clusterId (string) | from:u32 | to:u32
 *   member body    = kind 32 | from:u32 | to:u32 | opaque bytes (the member channel: forwarded
 *                    proposals and lease calls between servers; not Raft messages)
 *
 * Strings are u16 length + UTF-8; u64 values are two u32 halves (values stay below 2^53).
 * Decoding never trusts the input: every length is bounded and checked, and anything malformed
 * raises a FrameError (the connection is then dropped), never a crash.
 */
import type { Message, MessageType } from '../raft/messages.js';
import { ByteReader, ByteWriter, readEntry, writeEntry } from '../lib/bytes.js';
import type { Entry, Snapshot } from '../raft/types.js';

/** Largest frame accepted from a peer after its handshake (a snapshot travels as one frame). */
export const FRAME_BYTES_MAX = 256 << 20;
/**
 * Largest frame accepted before the handshake: a handshake is ~20 bytes plus the cluster id, so
 * a stranger's connection can make us buffer no more than this (its length is checked before a
 * byte of the body is kept).
 */
export const HANDSHAKE_FRAME_BYTES_MAX = 1024;
export const PROTOCOL_VERSION = 1;
const MAGIC = 0x464c4f54; // "FLOT"
/** The frame kind of the member channel (above every Raft message kind). */
export const MEMBER_FRAME_KIND = 32;
/** Bytes of a member frame before its opaque body: kind, from, to. */
export const MEMBER_FRAME_HEADER_BYTES = 9;

export class FrameError extends Error {
  override name = 'FrameError';
}

const KIND: Record<MessageType, number> = {
  append: 1,
  appendResponse: 2,
  heartbeat: 3,
  heartbeatResponse: 4,
  vote: 5,
  voteResponse: 6,
  snapshot: 7,
  timeoutNow: 8,
  readIndex: 9,
  readIndexResponse: 10,
};
const TYPE_OF = new Map<number, MessageType>(Object.entries(KIND).map(([t, k]) => [k, t as MessageType]));

export interface Handshake {
  readonly clusterId: string;
  readonly from: number;
  readonly to: number;
  readonly version: number;
}

const frameError = (message: string): FrameError => new FrameError(message);

/** A writer with room for the frame length, which `finish` fills in. */
function frameWriter(size = 128): ByteWriter {
  return new ByteWriter(size, 4);
}

function finish(w: ByteWriter): Uint8Array {
  w.setU32(0, w.pos - 4);
  return w.written();
}

/** One message as a frame (length prefix included). */
export function encodeMessage(m: Message): Uint8Array {
  const w = frameWriter(sizeHint(m));
  writeMessage(w, m);
  return finish(w);
}

/** A message's body encoded after `room` free bytes (for a length prefix and a header written in front later, clock-envelope.ts). */
export interface RoomyBody {
  readonly buf: Uint8Array;
  /** Where the body starts (= room). */
  readonly start: number;
  readonly end: number;
}

export function encodeMessageAfter(m: Message, room: number): RoomyBody {
  const w = new ByteWriter(room + sizeHint(m), room);
  writeMessage(w, m);
  return { buf: w.buf, start: room, end: w.pos };
}

/** The frame of a body encoded by encodeMessageAfter, with nothing in front but its length (a view of its buffer). */
export function plainFrame(b: RoomyBody): Uint8Array {
  const at = b.start - 4;
  const len = b.end - b.start;
  b.buf[at] = len & 0xff;
  b.buf[at + 1] = (len >>> 8) & 0xff;
  b.buf[at + 2] = (len >>> 16) & 0xff;
  b.buf[at + 3] = len >>> 24;
  return b.buf.subarray(at, b.end);
}

function sizeHint(m: Message): number {
  return m.type === 'append' ? 64 + m.entries.reduce((a, e) => a + e.data.length + 24, 0) : 64;
}

function writeMessage(w: ByteWriter, m: Message): void {
  w.u8(KIND[m.type]);
  w.u32(m.from);
  w.u32(m.to);
  w.u64(m.term);
  switch (m.type) {
    case 'append':
      w.u64(m.prevLogIndex);
      w.u64(m.prevLogTerm);
      w.u64(m.commit);
      w.u32(m.entries.length);
      for (const e of m.entries) writeEntry(w, e);
      break;
    case 'appendResponse':
      w.u64(m.index);
      w.bool(m.reject);
      w.u64(m.hintIndex);
      w.u64(m.hintTerm);
      break;
    case 'heartbeat':
      w.u64(m.commit);
      w.u32(m.round);
      break;
    case 'heartbeatResponse':
      w.u32(m.round);
      w.bool(m.needAppend);
      break;
    case 'vote':
      w.bool(m.preVote);
      w.u64(m.lastLogIndex);
      w.u64(m.lastLogTerm);
      w.bool(m.transfer);
      break;
    case 'voteResponse':
      w.bool(m.preVote);
      w.bool(m.reject);
      break;
    case 'snapshot':
      w.bytes(new TextEncoder().encode(JSON.stringify(m.snapshot.meta)));
      w.bytes(m.snapshot.data);
      break;
    case 'timeoutNow':
      break;
    case 'readIndex':
      w.str(m.ctx);
      break;
    case 'readIndexResponse':
      w.str(m.ctx);
      w.u64(m.index);
      w.bool(m.reject);
      break;
  }
}

function snapshotMeta(raw: Uint8Array): Snapshot['meta'] {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
  } catch (e) {
    throw new FrameError(`snapshot metadata is not JSON: ${(e as Error).message}`);
  }
  const o = v as { index?: unknown; term?: unknown; confState?: Record<string, unknown> };
  const ids = (x: unknown): number[] => {
    if (!Array.isArray(x) || !x.every((n) => Number.isInteger(n) && n > 0)) throw new FrameError('snapshot metadata: bad member list');
    return x as number[];
  };
  if (!Number.isSafeInteger(o.index) || !Number.isSafeInteger(o.term) || typeof o.confState !== 'object' || o.confState === null) throw new FrameError('snapshot metadata: bad fields');
  const c = o.confState;
  return {
    index: o.index as number,
    term: o.term as number,
    confState: { voters: ids(c.voters), votersOutgoing: ids(c.votersOutgoing), learners: ids(c.learners), learnersNext: ids(c.learnersNext), autoLeave: c.autoLeave === true },
  };
}

/** Decodes a frame body (without its length prefix). */
export function decodeMessage(body: Uint8Array): Message {
  const r = new ByteReader(body, frameError);
  const kind = r.u8();
  const type = TYPE_OF.get(kind);
  if (!type) throw new FrameError(`unknown message kind ${kind}`);
  const from = r.u32();
  const to = r.u32();
  const term = r.u64();
  let m: Message;
  switch (type) {
    case 'append': {
      const prevLogIndex = r.u64();
      const prevLogTerm = r.u64();
      const commit = r.u64();
      const n = r.u32();
      if (n > body.length) throw new FrameError(`entry count ${n} exceeds the frame`);
      const entries: Entry[] = [];
      for (let i = 0; i < n; i++) entries.push(readEntry(r, frameError));
      m = { type, from, to, term, prevLogIndex, prevLogTerm, commit, entries };
      break;
    }
    case 'appendResponse':
      m = { type, from, to, term, index: r.u64(), reject: r.bool(), hintIndex: r.u64(), hintTerm: r.u64() };
      break;
    case 'heartbeat':
      m = { type, from, to, term, commit: r.u64(), round: r.u32() };
      break;
    case 'heartbeatResponse':
      m = { type, from, to, term, round: r.u32(), needAppend: r.bool() };
      break;
    case 'vote':
      m = { type, from, to, term, preVote: r.bool(), lastLogIndex: r.u64(), lastLogTerm: r.u64(), transfer: r.bool() };
      break;
    case 'voteResponse':
      m = { type, from, to, term, preVote: r.bool(), reject: r.bool() };
      break;
    case 'snapshot': {
      const meta = snapshotMeta(r.bytes());
      m = { type, from, to, term, snapshot: { meta, data: r.bytes() } };
      break;
    }
    case 'timeoutNow':
      m = { type, from, to, term };
      break;
    case 'readIndex':
      m = { type, from, to, term, ctx: r.str() };
      break;
    case 'readIndexResponse':
      m = { type, from, to, term, ctx: r.str(), index: r.u64(), reject: r.bool() };
      break;
  }
  r.end();
  return m;
}

/** A member-channel frame (length prefix included) carrying `body` as is. */
export function encodeMemberFrame(from: number, to: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + MEMBER_FRAME_HEADER_BYTES + body.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, MEMBER_FRAME_HEADER_BYTES + body.length, true);
  v.setUint8(4, MEMBER_FRAME_KIND);
  v.setUint32(5, from, true);
  v.setUint32(9, to, true);
  out.set(body, 4 + MEMBER_FRAME_HEADER_BYTES);
  return out;
}

/** A frame body's member-channel contents, or null when it is a Raft message (decodeMessage's). */
export function decodeMemberFrame(body: Uint8Array): { from: number; to: number; body: Uint8Array } | null {
  if (body[0] !== MEMBER_FRAME_KIND) return null;
  if (body.length < MEMBER_FRAME_HEADER_BYTES) throw new FrameError('truncated member frame');
  const v = new DataView(body.buffer, body.byteOffset, body.byteLength);
  return { from: v.getUint32(1, true), to: v.getUint32(5, true), body: body.subarray(MEMBER_FRAME_HEADER_BYTES) };
}

export function encodeHandshake(h: Handshake): Uint8Array {
  const w = frameWriter();
  w.u8(0);
  w.u32(MAGIC);
  w.u8(h.version);
  w.str(h.clusterId);
  w.u32(h.from);
  w.u32(h.to);
  return finish(w);
}

export function decodeHandshake(body: Uint8Array): Handshake {
  const r = new ByteReader(body, frameError);
  if (r.u8() !== 0) throw new FrameError('expected a handshake');
  if (r.u32() !== MAGIC) throw new FrameError('bad handshake magic (not a Flotilla peer?)');
  const version = r.u8();
  const clusterId = r.str();
  const from = r.u32();
  const to = r.u32();
  r.end();
  return { version, clusterId, from, to };
}

/**
 * Splits a byte stream into frame bodies. Feed chunks as they arrive (`feed`) and take frames
 * one at a time (`next`), so the limit can change between two frames of one chunk (a
 * connection's handshake and its first messages often arrive together). A frame's length is
 * checked against the limit as soon as its 4 bytes are in, before any more of it is kept: an
 * oversized or zero-length frame raises FrameError.
 */
export class FrameReader {
  private chunks: Uint8Array[] = [];
  private buffered = 0;

  constructor(public maxFrame = FRAME_BYTES_MAX) {}

  /** Feeds a chunk and returns every whole frame in it (with one fixed limit). */
  push(chunk: Uint8Array): Uint8Array[] {
    this.feed(chunk);
    const out: Uint8Array[] = [];
    for (let b = this.next(); b; b = this.next()) out.push(b);
    return out;
  }

  feed(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    this.check();
  }

  /** The next whole frame body, or null until more bytes arrive. */
  next(): Uint8Array | null {
    const len = this.check();
    if (len === null || this.buffered < 4 + len) return null;
    return this.take(4 + len).subarray(4);
  }

  /** Bytes held for frames not yet whole. */
  get pendingBytes(): number {
    return this.buffered;
  }

  private check(): number | null {
    if (this.buffered < 4) return null;
    const head = this.peek(4);
    const len = new DataView(head.buffer, head.byteOffset, 4).getUint32(0, true);
    if (len === 0) throw new FrameError('empty frame');
    if (len > this.maxFrame) throw new FrameError(`frame of ${len} bytes exceeds the limit of ${this.maxFrame}`);
    return len;
  }

  private peek(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    return this.flatten(n).subarray(0, n);
  }

  /** Joins chunks until the first holds at least `n` bytes (all of them by default). */
  private flatten(n = this.buffered): Uint8Array {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!;
    let k = 0;
    let size = 0;
    while (size < n) size += this.chunks[k++]!.length;
    const joined = new Uint8Array(size);
    let o = 0;
    for (const c of this.chunks.slice(0, k)) {
      joined.set(c, o);
      o += c.length;
    }
    this.chunks.splice(0, k, joined);
    return joined;
  }

  private take(n: number): Uint8Array {
    const first = this.flatten(n);
    const out = first.slice(0, n);
    const rest = first.subarray(n);
    if (rest.length) this.chunks[0] = rest;
    else this.chunks.shift();
    this.buffered -= n;
    return out;
  }
}
