/**
 * The WAL's record format, pure (no I/O): encoding records into bytes and decoding a segment's
 * bytes back, with the reason decoding stopped.
 *
 *   record  = length:u32 | crc:u32 | type:u8 | payload[length - 1]
 *   crc     = crc32(type | payload, seed = crc of the previous record)
 *
 * Checksums are chained: a record only validates after the exact record that preceded it, so a
 * stale record left in a reused or preallocated file never passes. Each segment starts with a
 * header record carrying the crc the chain continues from, so segments decode independently.
 * All integers are little-endian; indexes and terms are u64 written as two u32 halves.
 */
import { crc32 } from 'node:zlib';
import { ByteReader, ByteWriter, readEntry, writeEntry } from '../lib/bytes.js';
import type { Entry, HardState } from '../raft/types.js';

export const RecordType = {
  segmentHeader: 1,
  entries: 2,
  hardState: 3,
  snapshotMarker: 4,
} as const;
export type RecordTypeCode = (typeof RecordType)[keyof typeof RecordType];

export type WalRecord =
  | { readonly type: 'segmentHeader'; readonly seq: number; readonly prevCrc: number }
  /** Entries and, when given, the hard state of the same batch: one record, so a torn write loses both or neither. */
  | { readonly type: 'entries'; readonly entries: readonly Entry[]; readonly hardState?: HardState }
  | { readonly type: 'hardState'; readonly hardState: HardState }
  | { readonly type: 'snapshotMarker'; readonly index: number; readonly term: number };

/**
 * Largest record payload accepted (a sanity bound: a garbage length never allocates gigabytes).
 * 64 MiB and 1 MiB of room: a chain node's update carries a value of up to 64 MiB with its key
 * and envelope in one record (src/chainnode/storage.ts).
 */
export const RECORD_BYTES_MAX = (64 << 20) + (1 << 20);
const HEADER = 9; // length + crc + type

function payloadOf(r: WalRecord): { code: RecordTypeCode; payload: Uint8Array } {
  const w = new ByteWriter(64);
  switch (r.type) {
    case 'segmentHeader':
      w.u64(r.seq);
      w.u32(r.prevCrc);
      return { code: RecordType.segmentHeader, payload: w.written() };
    case 'entries':
      w.u8(r.hardState ? 1 : 0);
      if (r.hardState) {
        w.u64(r.hardState.term);
        w.u64(r.hardState.vote);
        w.u64(r.hardState.commit);
      }
      w.u32(r.entries.length);
      for (const e of r.entries) writeEntry(w, e);
      return { code: RecordType.entries, payload: w.written() };
    case 'hardState':
      w.u64(r.hardState.term);
      w.u64(r.hardState.vote);
      w.u64(r.hardState.commit);
      return { code: RecordType.hardState, payload: w.written() };
    case 'snapshotMarker':
      w.u64(r.index);
      w.u64(r.term);
      return { code: RecordType.snapshotMarker, payload: w.written() };
  }
}

function checksum(code: number, payload: Uint8Array, seed: number): number {
  return crc32(payload, crc32(Uint8Array.of(code), seed));
}

/** Encodes records continuing the chain from `prevCrc`; returns the bytes and the new chain value. */
export function encodeRecords(records: readonly WalRecord[], prevCrc: number): { bytes: Uint8Array; crc: number } {
  const parts: Uint8Array[] = [];
  let crc = prevCrc;
  let total = 0;
  for (const r of records) {
    const { code, payload } = payloadOf(r);
    if (payload.length + 1 > RECORD_BYTES_MAX) throw new RangeError(`WAL record of ${payload.length} bytes exceeds RECORD_BYTES_MAX (${RECORD_BYTES_MAX})`);
    crc = checksum(code, payload, crc);
    const head = new Uint8Array(HEADER);
    const v = new DataView(head.buffer);
    v.setUint32(0, payload.length + 1, true);
    v.setUint32(4, crc, true);
    v.setUint8(8, code);
    parts.push(head, payload);
    total += HEADER + payload.length;
  }
  const bytes = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    bytes.set(p, o);
    o += p.length;
  }
  return { bytes, crc };
}

export type DecodeEnd =
  /** Clean end: the end of the data, or zero fill (preallocated, never written). */
  | { readonly kind: 'end'; readonly offset: number }
  /** A record that does not validate and after which nothing but zeros follows: a torn last write. */
  | { readonly kind: 'torn'; readonly offset: number; readonly why: string }
  /** A record that does not validate, followed by more data: corruption. */
  | { readonly kind: 'corrupt'; readonly offset: number; readonly why: string };

export interface Decoded {
  readonly records: WalRecord[];
  /** Offset just past the last valid record. */
  readonly validEnd: number;
  /** Chain value after the last valid record. */
  readonly crc: number;
  readonly end: DecodeEnd;
}

function parsePayload(code: number, payload: Uint8Array): WalRecord {
  const r = new ByteReader(payload);
  let rec: WalRecord;
  switch (code) {
    case RecordType.segmentHeader:
      rec = { type: 'segmentHeader', seq: r.u64(), prevCrc: r.u32() };
      break;
    case RecordType.entries: {
      const flags = r.u8();
      if (flags > 1) throw new RangeError(`bad entries flags ${flags}`);
      const hardState = flags === 1 ? { term: r.u64(), vote: r.u64(), commit: r.u64() } : undefined;
      const n = r.u32();
      const entries: Entry[] = [];
      for (let i = 0; i < n; i++) entries.push(readEntry(r));
      rec = hardState ? { type: 'entries', entries, hardState } : { type: 'entries', entries };
      break;
    }
    case RecordType.hardState:
      rec = { type: 'hardState', hardState: { term: r.u64(), vote: r.u64(), commit: r.u64() } };
      break;
    case RecordType.snapshotMarker:
      rec = { type: 'snapshotMarker', index: r.u64(), term: r.u64() };
      break;
    default:
      throw new RangeError(`unknown record type ${code}`);
  }
  r.end();
  return rec;
}

function allZero(b: Uint8Array, from: number): boolean {
  for (let i = from; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/**
 * Decodes one segment's bytes, starting the chain at `seedCrc` (the segment header's own crc is
 * checked against `seedCrc` too). Stops at the first record that does not validate and says why.
 */
export function decodeSegment(bytes: Uint8Array, seedCrc: number): Decoded {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records: WalRecord[] = [];
  let pos = 0;
  let crc = seedCrc;
  const stop = (why: string): Decoded => {
    // What follows the bad record decides: only zeros means a torn final write.
    const torn = allZero(bytes, pos + HEADER) || allZero(bytes, Math.min(bytes.length, pos + HEADER + Math.max(0, view.getUint32(pos, true) - 1)));
    return { records, validEnd: pos, crc, end: torn ? { kind: 'torn', offset: pos, why } : { kind: 'corrupt', offset: pos, why } };
  };
  while (pos < bytes.length) {
    if (bytes.length - pos < HEADER) {
      if (allZero(bytes, pos)) return { records, validEnd: pos, crc, end: { kind: 'end', offset: pos } };
      return { records, validEnd: pos, crc, end: { kind: 'torn', offset: pos, why: 'record header cut short' } };
    }
    const len = view.getUint32(pos, true);
    if (len === 0) {
      if (allZero(bytes, pos)) return { records, validEnd: pos, crc, end: { kind: 'end', offset: pos } };
      return stop('zero length followed by data');
    }
    if (len > RECORD_BYTES_MAX) return stop(`length ${len} exceeds RECORD_BYTES_MAX`);
    if (pos + HEADER - 1 + len > bytes.length) {
      return { records, validEnd: pos, crc, end: { kind: 'torn', offset: pos, why: `record of ${len} bytes runs past the end of the data` } };
    }
    const want = view.getUint32(pos + 4, true);
    const code = view.getUint8(pos + 8);
    const payload = bytes.subarray(pos + HEADER, pos + HEADER + len - 1);
    const got = checksum(code, payload, crc);
    if (got !== want) return stop(`checksum mismatch (record says ${want.toString(16)}, data gives ${got.toString(16)})`);
    let rec: WalRecord;
    try {
      rec = parsePayload(code, payload);
    } catch (e) {
      return stop(`malformed payload: ${(e as Error).message}`);
    }
    records.push(rec);
    crc = got;
    pos += HEADER + len - 1;
  }
  return { records, validEnd: pos, crc, end: { kind: 'end', offset: pos } };
}
