/**
 * The binary encoding of chain messages (between nodes, and between clients and nodes) and of
 * operations (also what a node's log stores). Decoding is total: any bytes give a well-formed
 * value that passes the core's limits, or a ChainCodecError — never another exception, and in
 * time linear in the input (every count is checked against the bytes left before anything is
 * allocated). Little-endian, src/lib/bytes.ts; a version byte first.
 */
import { ByteReader, ByteWriter } from '../lib/bytes.js';
import { assertNever } from '../lib/assert.js';
import type { PeerMessage, UpdateMsg } from './messages.js';
import {
  CHAIN_SNAPSHOT_CHUNKS_MAX,
  CHAIN_VALUE_BYTES_MAX,
  opProblem,
  type ChainOp,
  type ClientOp,
  type ClientReply,
  type ClientRequest,
  type Entry,
  type OpResult,
  type RefusalReason,
} from './types.js';

export const CHAIN_CODEC_VERSION = 1;
/** Longest node or client name, in UTF-8 bytes. */
export const CHAIN_NAME_BYTES_MAX = 255;
/**
 * Largest encoded message: one whole value and its envelope. (On TCP a large one travels in
 * pieces: src/chainnode/wire.ts.)
 */
export const CHAIN_MESSAGE_BYTES_MAX = CHAIN_VALUE_BYTES_MAX + 1024 * 1024;

export class ChainCodecError extends Error {
  override name = 'ChainCodecError';
}

const fail = (m: string): Error => new ChainCodecError(m);

const PEER_TAGS = { update: 1, ack: 2, syncReq: 3, syncDone: 4, snapshotChunk: 5, versionQuery: 6, versionAnswer: 7, snapshotAck: 8 } as const satisfies Record<PeerMessage['type'], number>;
const OP_TAGS = { put: 1, delete: 2, cas: 3, get: 4 } as const satisfies Record<ClientOp['type'], number>;
const REFUSALS: readonly RefusalReason[] = ['epoch', 'not-head', 'not-tail', 'no-lease', 'not-synced', 'busy', 'invalid'];

function name(r: ByteReader, what: string): string {
  const s = r.str();
  if (s.length === 0 || new TextEncoder().encode(s).length > CHAIN_NAME_BYTES_MAX) throw fail(`${what}: a name of 1..${CHAIN_NAME_BYTES_MAX} bytes`);
  return s;
}

function seq(r: ByteReader): number {
  return r.u64();
}

function epoch(r: ByteReader): number {
  const e = r.u64();
  if (e === 0) throw fail('epoch 0');
  return e;
}

/** A value: a view of the input, not a copy (a 64 MiB value is copied no more than it must be). */
function value(r: ByteReader): Uint8Array {
  const n = r.u32();
  if (n > CHAIN_VALUE_BYTES_MAX) throw fail(`value of ${n} bytes exceeds ${CHAIN_VALUE_BYTES_MAX}`);
  r.pos -= 4;
  return r.bytesView();
}

export function writeOp(w: ByteWriter, op: ClientOp): void {
  w.u8(OP_TAGS[op.type]);
  w.str(op.key);
  if (op.type === 'cas') w.u64(op.expectedVersion);
  if (op.type === 'put' || op.type === 'cas') w.bytes(op.value);
}

export function readOp(r: ByteReader): ClientOp {
  const tag = r.u8();
  const key = r.str();
  let op: ClientOp;
  switch (tag) {
    case OP_TAGS.put:
      op = { type: 'put', key, value: value(r) };
      break;
    case OP_TAGS.delete:
      op = { type: 'delete', key };
      break;
    case OP_TAGS.cas: {
      const expectedVersion = r.u64();
      op = { type: 'cas', key, expectedVersion, value: value(r) };
      break;
    }
    case OP_TAGS.get:
      op = { type: 'get', key };
      break;
    default:
      throw fail(`unknown operation ${tag}`);
  }
  const p = opProblem(op);
  if (p !== null) throw fail(p);
  return op;
}

/** Entries (a snapshot's, or a chunk of one): a count, then key, version, value each. */
export function writeEntries(w: ByteWriter, entries: readonly Entry[]): void {
  w.u32(entries.length);
  for (const e of entries) {
    w.str(e.key);
    w.u64(e.version);
    w.bytes(e.value);
  }
}

/** Bytes of small entries gathered into one part by entryParts; a larger value is a part alone. */
export const CHAIN_ENTRY_PART_BYTES = 1024 * 1024;

/**
 * writeEntries' bytes in parts of about CHAIN_ENTRY_PART_BYTES, made as they are asked for: small
 * entries gathered into one part, a large value given as itself (a view, not a copy) after its
 * entry's head. Concatenated, the parts are writeEntries' bytes (a chain node writes its store
 * to a snapshot file this way, never as one buffer).
 */
export function* entryParts(entries: readonly Entry[]): Generator<Uint8Array> {
  let w = new ByteWriter(64);
  w.u32(entries.length);
  for (const e of entries) {
    if (e.value.length >= CHAIN_ENTRY_PART_BYTES / 4) {
      w.str(e.key);
      w.u64(e.version);
      w.u32(e.value.length);
      yield w.written();
      yield e.value;
      w = new ByteWriter(64);
      continue;
    }
    w.str(e.key);
    w.u64(e.version);
    w.bytes(e.value);
    if (w.pos >= CHAIN_ENTRY_PART_BYTES) {
      yield w.written();
      w = new ByteWriter(64);
    }
  }
  if (w.pos > 0) yield w.written();
}

/** Entries of a state at `seq`: distinct keys, versions in 1..seq, keys and values within limits. */
export function readEntries(r: ByteReader, seq: number): Entry[] {
  const n = r.u32();
  // Each entry takes at least 2 + 8 + 4 bytes: a count beyond that is a lie.
  if (n > r.remaining / 14) throw fail(`${n} entries in ${r.remaining} bytes`);
  const entries: Entry[] = [];
  const keys = new Set<string>();
  for (let i = 0; i < n; i++) {
    const key = r.str();
    const version = r.u64();
    const v = value(r);
    if (keys.has(key)) throw fail(`key ${JSON.stringify(key)} twice`);
    keys.add(key);
    if (version === 0 || version > seq) throw fail(`version ${version} outside 1..${seq}`);
    const p = opProblem({ type: 'put', key, value: v });
    if (p !== null) throw fail(p);
    entries.push({ key, version, value: v });
  }
  return entries;
}

function readChainOp(r: ByteReader): ChainOp {
  const op = readOp(r);
  if (op.type === 'get') throw fail('a read is not an update');
  return op;
}

function u64s(w: ByteWriter, ...values: number[]): void {
  for (const v of values) w.u64(v);
}

export function encodePeerMessage(m: PeerMessage): Uint8Array {
  const w = new ByteWriter(64);
  w.u8(CHAIN_CODEC_VERSION);
  w.u8(PEER_TAGS[m.type]);
  w.u64(m.epoch);
  w.str(m.from);
  w.str(m.to);
  switch (m.type) {
    case 'update':
      u64s(w, m.seq, m.assignEpoch, m.prevAssignEpoch);
      writeOp(w, m.op);
      break;
    case 'ack':
      u64s(w, m.received, m.receivedAssignEpoch, m.committed);
      break;
    case 'syncReq':
      u64s(w, m.lastSeq, m.lastAssignEpoch);
      break;
    case 'syncDone':
      u64s(w, m.upTo);
      break;
    case 'snapshotChunk':
      u64s(w, m.seq, m.assignEpoch);
      w.bool(m.forSeq >= 0);
      u64s(w, Math.max(0, m.forSeq), m.forAssignEpoch);
      w.u32(m.index);
      w.u32(m.count);
      writeEntries(w, m.entries);
      break;
    case 'snapshotAck':
      u64s(w, m.seq, m.assignEpoch);
      w.u32(m.count);
      w.u32(m.have);
      break;
    case 'versionQuery':
      w.u32(m.qid);
      w.str(m.key);
      break;
    case 'versionAnswer':
      w.u32(m.qid);
      w.str(m.key);
      w.bool(m.version !== null);
      w.u64(m.version ?? 0);
      break;
    default:
      assertNever(m, 'chain message');
  }
  return w.written();
}

/**
 * An update's bytes up to and including its value's length (its value, the rest of the message,
 * is sent as itself: a node forwards a 64 MiB update without copying the value).
 */
export function encodeUpdateHead(m: UpdateMsg & { readonly op: { readonly type: 'put' | 'cas' } }): Uint8Array {
  const b = encodePeerMessage({ ...m, op: { ...m.op, value: new Uint8Array(0) } });
  new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(b.length - 4, m.op.value.length, true);
  return b;
}

/**
 * A peer message's bytes in parts that, concatenated, are encodePeerMessage's: an update's value
 * is a part of its own, and a snapshot chunk's entries are entryParts' (a large value as itself).
 * A node sends a 64 MiB update, or a snapshot chunk holding a 64 MiB value, without building it
 * as one buffer or copying the value (src/chainnode/wire.ts writeMessageParts frames the parts).
 */
export function peerMessageParts(m: PeerMessage): Uint8Array[] {
  if (m.type === 'update' && m.op.type !== 'delete') return [encodeUpdateHead({ ...m, op: m.op }), m.op.value];
  if (m.type === 'snapshotChunk') {
    // The chunk's head: its encoding with no entries, less writeEntries' count (entryParts writes it).
    const head = encodePeerMessage({ ...m, entries: [] });
    return [head.subarray(0, head.length - 4), ...entryParts(m.entries)];
  }
  return [encodePeerMessage(m)];
}

export function decodePeerMessage(b: Uint8Array): PeerMessage {
  if (b.length > CHAIN_MESSAGE_BYTES_MAX) throw fail(`message of ${b.length} bytes exceeds ${CHAIN_MESSAGE_BYTES_MAX}`);
  const r = new ByteReader(b, fail);
  const version = r.u8();
  if (version !== CHAIN_CODEC_VERSION) throw fail(`unknown format version ${version}`);
  const tag = r.u8();
  const base = { epoch: epoch(r), from: name(r, 'from'), to: name(r, 'to') };
  let m: PeerMessage;
  switch (tag) {
    case PEER_TAGS.update: {
      const s = seq(r);
      if (s === 0) throw fail('update at seq 0');
      m = { ...base, type: 'update', seq: s, assignEpoch: epoch(r), prevAssignEpoch: r.u64(), op: readChainOp(r) };
      break;
    }
    case PEER_TAGS.ack:
      m = { ...base, type: 'ack', received: seq(r), receivedAssignEpoch: r.u64(), committed: seq(r) };
      break;
    case PEER_TAGS.syncReq:
      m = { ...base, type: 'syncReq', lastSeq: seq(r), lastAssignEpoch: r.u64() };
      break;
    case PEER_TAGS.syncDone:
      m = { ...base, type: 'syncDone', upTo: seq(r) };
      break;
    case PEER_TAGS.snapshotChunk: {
      const s = seq(r);
      const assignEpoch = r.u64();
      const asked = r.bool();
      const forSeq = r.u64();
      const forAssignEpoch = r.u64();
      const index = r.u32();
      const count = r.u32();
      if (count === 0 || count > CHAIN_SNAPSHOT_CHUNKS_MAX || index >= count) throw fail(`chunk ${index} of ${count}`);
      const entries = readEntries(r, s);
      m = { ...base, type: 'snapshotChunk', seq: s, assignEpoch, forSeq: asked ? forSeq : -1, forAssignEpoch, index, count, entries };
      break;
    }
    case PEER_TAGS.snapshotAck: {
      const s = seq(r);
      const assignEpoch = r.u64();
      const count = r.u32();
      const have = r.u32();
      if (count === 0 || count > CHAIN_SNAPSHOT_CHUNKS_MAX || have > count) throw fail(`${have} of ${count} chunks`);
      m = { ...base, type: 'snapshotAck', seq: s, assignEpoch, count, have };
      break;
    }
    case PEER_TAGS.versionQuery:
      m = { ...base, type: 'versionQuery', qid: r.u32(), key: r.str() };
      break;
    case PEER_TAGS.versionAnswer: {
      const qid = r.u32();
      const key = r.str();
      const has = r.bool();
      const v = r.u64();
      m = { ...base, type: 'versionAnswer', qid, key, version: has ? v : null };
      break;
    }
    default:
      throw fail(`unknown message type ${tag}`);
  }
  r.end();
  return m;
}

export function encodeClientRequest(q: ClientRequest): Uint8Array {
  const w = new ByteWriter(64);
  w.u8(CHAIN_CODEC_VERSION);
  w.str(q.client);
  w.u32(q.id);
  w.u64(q.epoch);
  writeOp(w, q.op);
  return w.written();
}

/**
 * The bytes of a put or cas request up to and including its value's length (`valueBytes`): the
 * value, the rest of the message, follows as the caller streams it (ChainClient.putStream).
 */
export function encodeClientRequestHead(q: ClientRequest & { readonly op: { readonly type: 'put' | 'cas' } }, valueBytes: number): Uint8Array {
  if (!(Number.isSafeInteger(valueBytes) && valueBytes >= 0 && valueBytes <= CHAIN_VALUE_BYTES_MAX)) throw fail(`value of ${valueBytes} bytes (0..${CHAIN_VALUE_BYTES_MAX})`);
  const b = encodeClientRequest({ ...q, op: { ...q.op, value: new Uint8Array(0) } });
  // The value is the last field: its u32 length ends the message.
  new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(b.length - 4, valueBytes, true);
  return b;
}

export function decodeClientRequest(b: Uint8Array): ClientRequest {
  if (b.length > CHAIN_MESSAGE_BYTES_MAX) throw fail(`request of ${b.length} bytes exceeds ${CHAIN_MESSAGE_BYTES_MAX}`);
  const r = new ByteReader(b, fail);
  const version = r.u8();
  if (version !== CHAIN_CODEC_VERSION) throw fail(`unknown format version ${version}`);
  const q: ClientRequest = { client: name(r, 'client'), id: r.u32(), epoch: r.u64(), op: readOp(r) };
  r.end();
  return q;
}

export function encodeClientReply(id: number, reply: ClientReply): Uint8Array {
  const w = new ByteWriter(32);
  w.u8(CHAIN_CODEC_VERSION);
  w.u32(id);
  w.u64('epoch' in reply ? reply.epoch : 0);
  if (reply.ok === null) w.u8(0);
  else if (reply.ok === false) {
    w.u8(1);
    w.u8(REFUSALS.indexOf(reply.reason));
    w.str((reply.detail ?? '').slice(0, 1000));
  } else {
    const res = reply.result;
    w.u8(2);
    w.u8(OP_TAGS[res.type]);
    switch (res.type) {
      case 'put':
        w.u64(res.version);
        break;
      case 'delete':
        w.bool(res.deleted);
        break;
      case 'cas':
        w.bool(res.swapped);
        w.u64(res.version);
        break;
      case 'get':
        w.u64(res.version);
        w.bool(res.value !== null);
        w.bytes(res.value ?? new Uint8Array(0));
        break;
    }
  }
  return w.written();
}

/**
 * The bytes of a successful get's reply up to and including its value's length: the value, the
 * rest of the message, follows as itself (a node answers a large read without copying the value).
 */
export function encodeGetReplyHead(id: number, version: number, valueBytes: number): Uint8Array {
  if (!(Number.isSafeInteger(valueBytes) && valueBytes >= 0 && valueBytes <= CHAIN_VALUE_BYTES_MAX)) throw fail(`value of ${valueBytes} bytes (0..${CHAIN_VALUE_BYTES_MAX})`);
  const b = encodeClientReply(id, { ok: true, result: { type: 'get', version, value: new Uint8Array(0) } });
  new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(b.length - 4, valueBytes, true);
  return b;
}

/** The fields of a get's reply with a value before the value itself (which ends the message). */
export interface GetReplyHead {
  readonly id: number;
  readonly epoch: number;
  readonly version: number;
  readonly valueBytes: number;
  /** Bytes of the message before the value. */
  readonly headBytes: number;
}

/** Bytes of a get reply with a value before the value. */
export const GET_REPLY_HEAD_BYTES = 1 + 4 + 8 + 1 + 1 + 8 + 1 + 4;

/**
 * The head of a reply whose value follows in `totalBytes - GET_REPLY_HEAD_BYTES` more bytes
 * (ChainClient.getStream reads a large value as it arrives), from its first GET_REPLY_HEAD_BYTES;
 * a ChainCodecError if it is not a successful get with a value of exactly that length.
 */
export function decodeGetReplyHead(b: Uint8Array, totalBytes: number): GetReplyHead {
  const r = new ByteReader(b.subarray(0, GET_REPLY_HEAD_BYTES), fail);
  const version = r.u8();
  if (version !== CHAIN_CODEC_VERSION) throw fail(`unknown format version ${version}`);
  const id = r.u32();
  const ep = r.u64();
  if (r.u8() !== 2 || r.u8() !== OP_TAGS.get) throw fail('a reply in pieces that is not a value read');
  const v = r.u64();
  if (!r.bool()) throw fail('a reply in pieces without a value');
  const n = r.u32();
  if (n > CHAIN_VALUE_BYTES_MAX || n !== totalBytes - GET_REPLY_HEAD_BYTES) throw fail(`a value of ${n} bytes in a reply of ${totalBytes}`);
  return { id, epoch: ep, version: v, valueBytes: n, headBytes: GET_REPLY_HEAD_BYTES };
}

export function decodeClientReply(b: Uint8Array): { id: number; reply: ClientReply } {
  if (b.length > CHAIN_MESSAGE_BYTES_MAX) throw fail(`reply of ${b.length} bytes exceeds ${CHAIN_MESSAGE_BYTES_MAX}`);
  const r = new ByteReader(b, fail);
  const version = r.u8();
  if (version !== CHAIN_CODEC_VERSION) throw fail(`unknown format version ${version}`);
  const id = r.u32();
  const ep = r.u64();
  const kind = r.u8();
  let reply: ClientReply;
  if (kind === 0) reply = { ok: null, reason: 'unknown', epoch: ep };
  else if (kind === 1) {
    const reason = REFUSALS[r.u8()];
    if (reason === undefined) throw fail('unknown refusal');
    const detail = r.str();
    reply = { ok: false, reason, epoch: ep, ...(detail !== '' ? { detail } : {}) };
  } else if (kind === 2) {
    const tag = r.u8();
    let result: OpResult;
    if (tag === OP_TAGS.put) result = { type: 'put', version: r.u64() };
    else if (tag === OP_TAGS.delete) result = { type: 'delete', deleted: r.bool() };
    else if (tag === OP_TAGS.cas) result = { type: 'cas', swapped: r.bool(), version: r.u64() };
    else if (tag === OP_TAGS.get) {
      const version = r.u64();
      const has = r.bool();
      const v = value(r);
      result = { type: 'get', version, value: has ? v : null };
    } else throw fail(`unknown result ${tag}`);
    reply = { ok: true, result };
  } else throw fail(`unknown reply kind ${kind}`);
  r.end();
  return { id, reply };
}
