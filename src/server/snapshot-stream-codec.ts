/**
 * The wire format of streamed snapshots (snapshot-stream.ts): member-channel bodies between the
 * leader's member and a follower's, beside the peer calls (peer-calls.ts, whose first byte is
 * 1..7; these start with STREAM_TAG), and the records a chunk carries.
 *
 *   chunk = TAG | 1 | id[16] | term:u64 | index:u64 | seq:u32 | last:u8 | digest[32] | payload:bytes
 *           | (last only) imageDigest[32] | imageBytes:u64 | meta:str (JSON: index, term, confState)
 *   ack   = TAG | 2 | id[16] | next:u32 | status:u8 (0 receiving, 1 done, 2 refused, 3 rewind) | reason:str
 *   payload = record* ; record = keyLength:u16 | valueLength:u32 | key | value
 *
 * `digest` is the SHA-256 of the chunk's payload; `imageDigest` the SHA-256 of the chunks'
 * digests in order (so a receiver that restarted can go on hashing from its list of digests).
 * Integers are little-endian (lib/bytes). Decoding never trusts the input: every length is
 * checked against its named limit before anything is kept, and a body that does not decode is
 * a StreamFrameError saying why.
 */
import { createHash } from 'node:crypto';
import { ByteReader, ByteWriter } from '../lib/bytes.js';
import type { NodeId, SnapshotMeta } from '../raft/types.js';
import { BACKEND_KEY_BYTES_MAX } from '../kv/backend.js';

/** The first byte of a stream frame on the member channel (peer calls use 1..7). */
export const STREAM_TAG = 0x53;
const CHUNK = 1;
const ACK = 2;

/** The records a sender puts in one chunk, in bytes (it stops after the record that reaches this). */
export const SNAPSHOT_CHUNK_BYTES = 1 << 20;
/**
 * Largest record (key and value with their lengths) a receiver takes: a revision's record
 * holds a value of up to --max-request-bytes (at most 64 MiB) plus its key and header.
 */
export const SNAPSHOT_RECORD_BYTES_MAX = (64 << 20) + 1024;
/** Largest chunk payload a receiver takes: a full chunk plus the one record that overran it. */
export const SNAPSHOT_CHUNK_BYTES_MAX = SNAPSHOT_CHUNK_BYTES + SNAPSHOT_RECORD_BYTES_MAX;
/** Largest whole image a receiver takes (what a backend file may grow to; as BOLT_FILE_BYTES_MAX). */
export const SNAPSHOT_IMAGE_BYTES_MAX = 16 * 1024 ** 3;
/** Longest snapshot metadata (JSON) in a last chunk. */
export const SNAPSHOT_META_BYTES_MAX = 64 * 1024;
/** Longest refusal reason in an ack. */
const REASON_BYTES_MAX = 512;
/** Members in a configuration (Raft ids are 16-bit; a configuration is small). */
const CONF_MEMBERS_MAX = 1024;

export const STREAM_ID_BYTES = 16;
const DIGEST_BYTES = 32;

export class StreamFrameError extends Error {
  override name = 'StreamFrameError';
}
const fail = (m: string): StreamFrameError => new StreamFrameError(m);

export interface ChunkFrame {
  readonly type: 'chunk';
  /** The stream's id (hex, 32 characters): one leader's send of one read view. */
  readonly id: string;
  readonly term: number;
  readonly index: number;
  readonly seq: number;
  readonly digest: Uint8Array;
  readonly payload: Uint8Array;
  /** On the last chunk only. */
  readonly last?: { readonly imageDigest: Uint8Array; readonly imageBytes: number; readonly meta: SnapshotMeta };
}

export type AckStatus = 'receiving' | 'done' | 'refused' | 'rewind';
const ACK_STATUSES: readonly AckStatus[] = ['receiving', 'done', 'refused', 'rewind'];

export interface AckFrame {
  readonly type: 'ack';
  readonly id: string;
  /** The receiver holds, durably, every chunk below this one. */
  readonly next: number;
  readonly status: AckStatus;
  readonly reason: string;
}

export type StreamFrame = ChunkFrame | AckFrame;

export function isStreamFrame(body: Uint8Array): boolean {
  return body.length > 0 && body[0] === STREAM_TAG;
}

export function sha256(b: Uint8Array): Uint8Array {
  return createHash('sha256').update(b).digest();
}

/** The whole image's digest: SHA-256 over the chunks' digests, in order. */
export function imageDigest(digests: readonly Uint8Array[]): Uint8Array {
  const h = createHash('sha256');
  for (const d of digests) h.update(d);
  return h.digest();
}

function writeId(w: ByteWriter, id: string): void {
  const b = Buffer.from(id, 'hex');
  if (b.length !== STREAM_ID_BYTES) throw new RangeError(`a stream id is ${STREAM_ID_BYTES} bytes, got ${id}`);
  for (const x of b) w.u8(x);
}

function readFixed(r: ByteReader, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = r.u8();
  return out;
}

export function encodeChunk(c: Omit<ChunkFrame, 'type'>): Uint8Array {
  const w = new ByteWriter(96 + c.payload.length + (c.last ? 256 : 0));
  w.u8(STREAM_TAG);
  w.u8(CHUNK);
  writeId(w, c.id);
  w.u64(c.term);
  w.u64(c.index);
  w.u32(c.seq);
  w.bool(c.last !== undefined);
  for (const x of c.digest) w.u8(x);
  w.bytes(c.payload);
  if (c.last) {
    for (const x of c.last.imageDigest) w.u8(x);
    w.u64(c.last.imageBytes);
    w.str(JSON.stringify(c.last.meta));
  }
  return w.written();
}

export function encodeAck(a: Omit<AckFrame, 'type'>): Uint8Array {
  const w = new ByteWriter(64);
  w.u8(STREAM_TAG);
  w.u8(ACK);
  writeId(w, a.id);
  w.u32(a.next);
  w.u8(ACK_STATUSES.indexOf(a.status));
  w.str(a.reason.length > REASON_BYTES_MAX / 4 ? `${a.reason.slice(0, REASON_BYTES_MAX / 4)}...` : a.reason);
  return w.written();
}

/** A stream frame's body, checked: sizes against the named limits before the payload is copied. */
export function decodeStreamFrame(body: Uint8Array): StreamFrame {
  const r = new ByteReader(body, fail);
  if (r.u8() !== STREAM_TAG) throw fail('not a snapshot stream frame');
  const kind = r.u8();
  const id = Buffer.from(readFixed(r, STREAM_ID_BYTES)).toString('hex');
  if (kind === ACK) {
    const next = r.u32();
    const status = ACK_STATUSES[r.u8()];
    if (status === undefined) throw fail('unknown ack status');
    const reason = r.str();
    if (reason.length > REASON_BYTES_MAX) throw fail('ack reason too long');
    r.end();
    return { type: 'ack', id, next, status, reason };
  }
  if (kind !== CHUNK) throw fail(`unknown snapshot stream frame kind ${kind}`);
  const term = r.u64();
  const index = r.u64();
  const seq = r.u32();
  const isLast = r.bool();
  const digest = readFixed(r, DIGEST_BYTES);
  // The payload's length, checked before the payload is copied out of the frame.
  const at = r.pos;
  const len = r.u32();
  if (len > SNAPSHOT_CHUNK_BYTES_MAX) throw fail(`a chunk of ${len} bytes exceeds the limit of ${SNAPSHOT_CHUNK_BYTES_MAX} (SNAPSHOT_CHUNK_BYTES_MAX)`);
  r.pos = at;
  const payload = r.bytes();
  let last: ChunkFrame['last'];
  if (isLast) {
    const imageDigest = readFixed(r, DIGEST_BYTES);
    const imageBytes = r.u64();
    const metaText = r.str();
    if (metaText.length > SNAPSHOT_META_BYTES_MAX) throw fail('snapshot metadata too long');
    last = { imageDigest, imageBytes, meta: readMeta(metaText) };
    if (last.meta.index !== index) throw fail(`the metadata's index ${last.meta.index} is not the stream's ${index}`);
  }
  r.end();
  return { type: 'chunk', id, term, index, seq, digest, payload, ...(last ? { last } : {}) };
}

/** Snapshot metadata from JSON, every field checked (a peer's bytes). */
export function readMeta(text: string): SnapshotMeta {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw fail(`snapshot metadata is not JSON: ${(e as Error).message}`);
  }
  const o = v as { index?: unknown; term?: unknown; confState?: Record<string, unknown> };
  if (v === null || typeof v !== 'object' || !Number.isSafeInteger(o.index) || !Number.isSafeInteger(o.term) || (o.index as number) < 1 || (o.term as number) < 1) throw fail('snapshot metadata: bad index or term');
  const c = o.confState;
  if (typeof c !== 'object' || c === null) throw fail('snapshot metadata: no configuration');
  const ids = (x: unknown, what: string): NodeId[] => {
    if (!Array.isArray(x) || x.length > CONF_MEMBERS_MAX || !x.every((n) => Number.isSafeInteger(n) && n > 0)) throw fail(`snapshot metadata: bad ${what}`);
    return x as NodeId[];
  };
  if (typeof c.autoLeave !== 'boolean') throw fail('snapshot metadata: bad autoLeave');
  return {
    index: o.index as number,
    term: o.term as number,
    confState: { voters: ids(c.voters, 'voters'), votersOutgoing: ids(c.votersOutgoing, 'votersOutgoing'), learners: ids(c.learners, 'learners'), learnersNext: ids(c.learnersNext, 'learnersNext'), autoLeave: c.autoLeave },
  };
}

/** Appends records to a chunk payload. */
export class RecordWriter {
  private parts: Uint8Array[] = [];
  bytes = 0;

  add(key: Uint8Array, value: Uint8Array): void {
    const head = new Uint8Array(6);
    const v = new DataView(head.buffer);
    v.setUint16(0, key.length, true);
    v.setUint32(2, value.length, true);
    this.parts.push(head, key, value);
    this.bytes += 6 + key.length + value.length;
  }

  finish(): Uint8Array {
    return Buffer.concat(this.parts, this.bytes);
  }
}

/** The records of a chunk payload; a malformed payload is a StreamFrameError. */
export function* readRecords(payload: Uint8Array): Generator<[Uint8Array, Uint8Array]> {
  const v = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  let at = 0;
  while (at < payload.length) {
    if (at + 6 > payload.length) throw fail(`a record header at ${at} runs past the chunk`);
    const kl = v.getUint16(at, true);
    const vl = v.getUint32(at + 2, true);
    if (kl === 0 || kl > BACKEND_KEY_BYTES_MAX) throw fail(`a record key of ${kl} bytes at ${at} (1 to ${BACKEND_KEY_BYTES_MAX})`);
    if (6 + kl + vl > SNAPSHOT_RECORD_BYTES_MAX) throw fail(`a record of ${6 + kl + vl} bytes at ${at} exceeds the limit of ${SNAPSHOT_RECORD_BYTES_MAX} (SNAPSHOT_RECORD_BYTES_MAX)`);
    if (at + 6 + kl + vl > payload.length) throw fail(`a record at ${at} runs past the chunk`);
    yield [payload.subarray(at + 6, at + 6 + kl), payload.subarray(at + 6 + kl, at + 6 + kl + vl)];
    at += 6 + kl + vl;
  }
}
