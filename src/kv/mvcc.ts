/**
 * The MVCC key space with etcd's semantics: every change gets a revision (main, sub); a key keeps
 * its history back to the compact revision, so ranges can be read at any revision since, and a
 * change log feeds watchers. Deterministic: no clock, no randomness — the replicated state
 * machine applies the same commands in the same order on every member and gets the same store.
 *
 * Keys and values are bytes. Internally a key is also held as a "binary string" (one char per
 * byte), whose code-unit order is the bytes' lexicographic order.
 */
import { crc32 } from 'node:zlib';
import { assert } from '../lib/assert.js';
import { compareBytes } from '../lib/bytes.js';
import { BACKEND_KEY_BYTES_MAX, binKey, MemoryBackend, unbinKey, type Backend, type BackendReadView } from './backend.js';
import { ERR } from './errors.js';
import { arrayOf, base64Bytes, decimalBigint, exactObject, imageFail, LEASE_ID_MAX, parseImageJson, preview, safeInt } from './snapshot-image.js';

export interface KeyValue {
  readonly key: Uint8Array;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
  readonly value: Uint8Array;
  /** 0n = no lease. Lease ids are 63-bit, hence bigint. */
  readonly lease: bigint;
}

export interface KvEvent {
  readonly type: 'put' | 'delete';
  /** For a delete: only key and modRevision (the delete revision) are set, as in etcd. */
  readonly kv: KeyValue;
  /** The key's previous version, when there was one. */
  readonly prevKv?: KeyValue;
}

export type SortOrder = 'none' | 'ascend' | 'descend';
export type SortTarget = 'key' | 'version' | 'create' | 'mod' | 'value';

export interface RangeRequest {
  readonly key: Uint8Array;
  readonly rangeEnd?: Uint8Array;
  readonly limit?: number;
  readonly revision?: number;
  readonly sortOrder?: SortOrder;
  readonly sortTarget?: SortTarget;
  readonly keysOnly?: boolean;
  readonly countOnly?: boolean;
  readonly minModRevision?: number;
  readonly maxModRevision?: number;
  readonly minCreateRevision?: number;
  readonly maxCreateRevision?: number;
}

export interface RangeResult {
  readonly kvs: KeyValue[];
  readonly more: boolean;
  readonly count: number;
}

export interface PutRequest {
  readonly key: Uint8Array;
  readonly value?: Uint8Array;
  readonly lease?: bigint;
  readonly prevKv?: boolean;
  readonly ignoreValue?: boolean;
  readonly ignoreLease?: boolean;
}

export interface DeleteRangeRequest {
  readonly key: Uint8Array;
  readonly rangeEnd?: Uint8Array;
  readonly prevKv?: boolean;
}

export type CompareResult = 'equal' | 'greater' | 'less' | 'notEqual';
export type Compare =
  | { readonly key: Uint8Array; readonly rangeEnd?: Uint8Array; readonly result: CompareResult; readonly target: 'version' | 'create' | 'mod'; readonly value: number }
  | { readonly key: Uint8Array; readonly rangeEnd?: Uint8Array; readonly result: CompareResult; readonly target: 'lease'; readonly value: bigint }
  | { readonly key: Uint8Array; readonly rangeEnd?: Uint8Array; readonly result: CompareResult; readonly target: 'value'; readonly value: Uint8Array };

export type RequestOp =
  | { readonly range: RangeRequest }
  | { readonly put: PutRequest }
  | { readonly deleteRange: DeleteRangeRequest }
  | { readonly txn: TxnRequest };

export interface TxnRequest {
  readonly compare: readonly Compare[];
  readonly success: readonly RequestOp[];
  readonly failure: readonly RequestOp[];
}

export type ResponseOp =
  | { readonly range: RangeResult }
  | { readonly put: { prevKv?: KeyValue } }
  | { readonly deleteRange: { deleted: number; prevKvs: KeyValue[] } }
  | { readonly txn: TxnResult };

export interface TxnResult {
  readonly succeeded: boolean;
  readonly responses: ResponseOp[];
}

export interface MvccLimits {
  /** Operations per txn branch (etcd --max-txn-ops, default 128). */
  readonly maxTxnOps: number;
}

export const MVCC_LIMITS_DEFAULT: MvccLimits = { maxTxnOps: 128 };

/**
 * How deep txns may nest (a txn inside a txn is depth 1). gRPC's protobuf runtimes refuse
 * messages nested deeper than 100 (protobufjs' recursionLimit, as protoc's): a txn response
 * at depth d is 2d + 4 messages deep, so etcd itself commits a txn at depth 49 whose response
 * no grpc-js client can read. 32 keeps every accepted txn's response well inside that; the API
 * refuses deeper ones before they reach the log, the log decoder refuses them too.
 */
export const TXN_NESTING_MAX = 32;

/**
 * Operations in one txn counting every nested txn's (both branches) and compares, unless
 * 2 × maxTxnOps is larger. etcd bounds each level (--max-txn-ops) but not the tree, whose size
 * multiplies with depth; this bound keeps one entry's apply (and the duplicate-key check, which
 * compares puts with deleted ranges) cheap.
 */
export const TXN_OPS_TOTAL_MAX = 1024;

/** Compares and operations in a txn and all its nested txns. */
export function txnSize(t: TxnRequest): number {
  let n = t.compare.length;
  for (const op of [...t.success, ...t.failure]) n += 'txn' in op ? 1 + txnSize(op.txn) : 1;
  return n;
}

interface Rev {
  readonly main: number;
  readonly sub: number;
  /** null: a tombstone (the key was deleted at this revision). */
  readonly kv: KeyValue | null;
}

interface Lease {
  readonly id: bigint;
  readonly ttl: number;
}

/** A live key-value found in the key index: its key and the revision holding it in the backend. */
interface Ref {
  readonly key: Uint8Array;
  readonly main: number;
  readonly sub: number;
}

const EMPTY = new Uint8Array(0);

// -----------------------------------------------------------------------------------------
// The store's layout in the backend (one ordered key space, a prefix byte per kind):
//   'r' main(8, big-endian) sub(8)  -> a revision: flags(1: 0 put, 1 tombstone) create(8)
//                                      version(8) lease(8) keyLength(4) key value
//   'i' key                         -> the key index: the key's revisions since the compact
//                                      revision (and the one compaction keeps), oldest first,
//                                      16 bytes each: main(8) and sub * 2 + tombstone(8)
//   'a' lease(8) key                -> the key is attached to the lease (its latest revision
//                                      is a put with that lease): empty
//   'l' id(8)                       -> a lease: ttl(8)
//   'm' name                        -> metadata: 'rev', 'compact', 'keys' (the keys 'i' holds),
//                                      'layout' (LAYOUT_VERSION; 8 each); the state machine
//                                      adds its own ('applied', 'members': see state-machine.ts)
// Revision keys sort in revision order, so the change log is a scan from a revision on; and
// after every other kind, so new revisions land past the database's last key (LMDB appends
// them: full pages). 'i' keys sort in key order, so a range is a scan of the index (issue 11:
// the index lives in the backend, not rebuilt in the heap at every open). A backend key is at
// most BACKEND_KEY_BYTES_MAX bytes and a user key may be longer: an 'i' or 'a' key whose user key
// does not fit with a byte to spare names instead the bucket of the keys sharing its first
// bytes — the prefix and those bytes, then a 0 byte (the only backend keys of the full length);
// a bucket holds count(4), then per key keyLength(4) key valueLength(4) value, in key order.
// It sorts just after the key of its first bytes, before any other, as its keys do; a write
// to one of its keys rewrites it (fine for keys this long, which few stores have).
// Stores of layout 1 (no 'layout' record) had instead, per revision, 'k' main(8) sub(8) ->
// flags(1) lease(8) key, scanned at every open to rebuild the index in the heap: they are
// migrated once, at open (MvccStore.migrate).
// -----------------------------------------------------------------------------------------

const REV = 0x72;
/** Layout 1's per-revision index entries (read only to migrate them: see the layout above). */
const IDX = 0x6b;
const HIST = 0x69;
const ATTACH = 0x61;
const LEASE = 0x6c;
const META = 0x6d;
/** The layout this build writes (recorded as metadata 'layout'; none recorded: layout 1). */
const LAYOUT_VERSION = 2;
/**
 * Beside the 'layout' record, a layout 1 index entry no layout 1 store has (revision 0.0, a
 * put attached to lease 2^64 - 1, which no store holds): a build of layout 1, which knows no
 * 'layout' record and would open this store as an empty one (its index rebuilt from 'k'
 * entries, of which it has none), stops at open instead — its check that every attached key's
 * lease exists fails, naming this key.
 */
const LAYOUT1_GUARD_KEY = new Uint8Array(17).fill(0, 1);
LAYOUT1_GUARD_KEY[0] = IDX;
/** The first backend key after the guard's: layout 1's revisions start at 2. */
const AFTER_LAYOUT1_GUARD = Uint8Array.from([...LAYOUT1_GUARD_KEY, 0]);
const LAYOUT1_GUARD = Uint8Array.from([0, 255, 255, 255, 255, 255, 255, 255, 255, ...new TextEncoder().encode('this store has layout 2: open it with a newer build')]);
/** Records a migration writes or deletes per backend commit (bounds the batch it holds in memory). */
const MIGRATE_BATCH = 100_000;
/** Keys whose histories a compaction changes per batch of writes (bounds what it holds in memory). */
const COMPACT_BATCH = 10_000;
/** Bytes per revision in a key's history ('i'). */
const HIST_ENTRY_BYTES = 16;
const REC_HEADER_BYTES = 29;

/** n (a safe integer) as 8 big-endian bytes at `at` (no DataView: this runs per write). */
function putU64(b: Uint8Array, at: number, n: number): void {
  const hi = Math.floor(n / 2 ** 32);
  const lo = n >>> 0;
  b[at] = hi >>> 24;
  b[at + 1] = (hi >>> 16) & 255;
  b[at + 2] = (hi >>> 8) & 255;
  b[at + 3] = hi & 255;
  b[at + 4] = lo >>> 24;
  b[at + 5] = (lo >>> 16) & 255;
  b[at + 6] = (lo >>> 8) & 255;
  b[at + 7] = lo & 255;
}

function getU64(b: Uint8Array, at: number): number {
  const hi = ((b[at]! << 24) >>> 0) + (b[at + 1]! << 16) + (b[at + 2]! << 8) + b[at + 3]!;
  const lo = ((b[at + 4]! << 24) >>> 0) + (b[at + 5]! << 16) + (b[at + 6]! << 8) + b[at + 7]!;
  return hi * 2 ** 32 + lo;
}

function revKey(main: number, sub: number): Uint8Array {
  const b = new Uint8Array(17);
  b[0] = REV;
  putU64(b, 1, main);
  putU64(b, 9, sub);
  return b;
}

const REV_END = Uint8Array.of(REV + 1);

function leaseKey(id: bigint): Uint8Array {
  const b = new Uint8Array(9);
  b[0] = LEASE;
  new DataView(b.buffer).setBigUint64(1, id);
  return b;
}

/** The prefix of lease `id`'s attachment records ('a'). */
function attachPrefix(id: bigint): Uint8Array {
  const b = leaseKey(id);
  b[0] = ATTACH;
  return b;
}

const HIST_PREFIX = Uint8Array.of(HIST);

/** The backend key of a user key's record under `prefix`: its own, or its bucket's (see the layout). */
function recordKeyOf(prefix: Uint8Array, key: Uint8Array): Uint8Array {
  const own = BACKEND_KEY_BYTES_MAX - prefix.length - 1;
  const b = new Uint8Array(prefix.length + Math.min(key.length, own + 1));
  b.set(prefix);
  // A bucket's key ends in the 0 byte `b` was made with.
  b.set(key.length <= own ? key : key.subarray(0, own), prefix.length);
  return b;
}

function isBucket(bk: Uint8Array): boolean {
  return bk.length === BACKEND_KEY_BYTES_MAX;
}

/** A bucket's keys and values, in key order (see the layout); null when the bytes are not one. */
function decodeBucket(v: Uint8Array): [Uint8Array, Uint8Array][] | null {
  if (v.length < 4) return null;
  const d = new DataView(v.buffer, v.byteOffset, v.byteLength);
  const n = d.getUint32(0);
  const out: [Uint8Array, Uint8Array][] = [];
  let at = 4;
  for (let i = 0; i < n; i++) {
    if (at + 4 > v.length) return null;
    const kl = d.getUint32(at);
    if (at + 8 + kl > v.length) return null;
    const key = v.subarray(at + 4, at + 4 + kl);
    const vl = d.getUint32(at + 4 + kl);
    at += 8 + kl;
    if (at + vl > v.length) return null;
    out.push([key, v.subarray(at, at + vl)]);
    at += vl;
  }
  return at === v.length ? out : null;
}

function encodeBucket(entries: readonly (readonly [Uint8Array, Uint8Array])[]): Uint8Array {
  let bytes = 4;
  for (const [k, v] of entries) bytes += 8 + k.length + v.length;
  const b = new Uint8Array(bytes);
  const d = new DataView(b.buffer);
  d.setUint32(0, entries.length);
  let at = 4;
  for (const [k, v] of entries) {
    d.setUint32(at, k.length);
    b.set(k, at + 4);
    d.setUint32(at + 4 + k.length, v.length);
    b.set(v, at + 8 + k.length);
    at += 8 + k.length + v.length;
  }
  return b;
}

/** The value of user key `key`'s record under `prefix` (in its bucket if it has one). */
function recordGet(backend: Backend, prefix: Uint8Array, key: Uint8Array): Uint8Array | undefined {
  const bk = recordKeyOf(prefix, key);
  const v = backend.get(bk);
  if (v === undefined || !isBucket(bk)) return v;
  return bucketEntries(bk, v).find(([k]) => compareBytes(k, key) === 0)?.[1];
}

/** Writes (null: deletes) user key `key`'s record under `prefix`. */
function recordSet(backend: Backend, prefix: Uint8Array, key: Uint8Array, value: Uint8Array | null): void {
  const bk = recordKeyOf(prefix, key);
  if (!isBucket(bk)) {
    if (value === null) backend.del(bk);
    else backend.put(bk, value);
    return;
  }
  const old = backend.get(bk);
  const entries = old === undefined ? [] : bucketEntries(bk, old);
  let i = 0;
  while (i < entries.length && compareBytes(entries[i]![0], key) < 0) i++;
  const here = i < entries.length && compareBytes(entries[i]![0], key) === 0;
  if (value === null) {
    if (!here) return;
    entries.splice(i, 1);
  } else entries.splice(i, here ? 1 : 0, [key, value]);
  if (entries.length === 0) backend.del(bk);
  else backend.put(bk, encodeBucket(entries));
}

/** The first backend key after every key that starts with `prefix`. */
function prefixEnd(prefix: Uint8Array): Uint8Array {
  const b = prefix.slice();
  let i = b.length - 1;
  while (b[i] === 255) b[i--] = 0;
  b[i] = b[i]! + 1;
  return b;
}

/**
 * The backend keys to scan for the records under `prefix` of the user keys in [start, end)
 * (end null: to the last): from the record of the start's first bytes (its bucket sorts after
 * it) to just past the end's bucket; `filter` when records outside the interval may be met.
 */
function recordBounds(prefix: Uint8Array, start: Uint8Array, end: Uint8Array | null): { from: Uint8Array; to: Uint8Array; filter: boolean } {
  const own = BACKEND_KEY_BYTES_MAX - prefix.length - 1;
  const from = recordKeyOf(prefix, start.length <= own ? start : start.subarray(0, own));
  let to: Uint8Array;
  if (end === null) to = prefixEnd(prefix);
  else {
    to = recordKeyOf(prefix, end);
    if (isBucket(to)) to[to.length - 1] = 1;
  }
  return { from, to, filter: start.length > own || (end !== null && end.length > own) };
}

function inInterval(k: Uint8Array, start: Uint8Array, end: Uint8Array | null): boolean {
  return compareBytes(k, start) >= 0 && (end === null || compareBytes(k, end) < 0);
}

/**
 * The records under `prefix` of the user keys in [start, end) (end null: to the last), in key
 * order, as [user key, value]. Both are views of the backend's bytes.
 */
function* recordScan(backend: Backend, prefix: Uint8Array, start: Uint8Array, end: Uint8Array | null): Generator<[Uint8Array, Uint8Array]> {
  const { from, to, filter } = recordBounds(prefix, start, end);
  for (const [bk, v] of backend.scan(from, to)) {
    if (isBucket(bk)) {
      for (const e of bucketEntries(bk, v)) if (inInterval(e[0], start, end)) yield e;
      continue;
    }
    const key = bk.subarray(prefix.length);
    if (!filter || inInterval(key, start, end)) yield [key, v];
  }
}

function bucketEntries(bk: Uint8Array, v: Uint8Array): [Uint8Array, Uint8Array][] {
  const entries = decodeBucket(v);
  assert(entries !== null, () => `a malformed bucket record ${binKey(bk.subarray(0, 16))}…`);
  return entries;
}

/** Whether the history holds revision main.sub. */
function histHas(h: Uint8Array, main: number, sub: number): boolean {
  for (let i = histPosAt(h, main); i >= 0 && histMain(h, i) === main; i--) if (histSub(h, i) === sub) return true;
  return false;
}

/** A user key in a message: as JSON text, cut short. */
function show(key: Uint8Array): string {
  const s = JSON.stringify(new TextDecoder().decode(key.subarray(0, 64)));
  return key.length > 64 ? `${s}…` : s;
}

// A key's history ('i'): n entries of HIST_ENTRY_BYTES, main(8) and sub * 2 + tombstone(8).

function histMain(h: Uint8Array, i: number): number {
  return getU64(h, i * HIST_ENTRY_BYTES);
}

function histSub(h: Uint8Array, i: number): number {
  return Math.floor(getU64(h, i * HIST_ENTRY_BYTES + 8) / 2);
}

function histDead(h: Uint8Array, i: number): boolean {
  return (h[i * HIST_ENTRY_BYTES + 15]! & 1) === 1;
}

function histLength(h: Uint8Array): number {
  return h.length / HIST_ENTRY_BYTES;
}

/** The history `h` (none: a new one) with one more revision. */
function histPush(h: Uint8Array | undefined, main: number, sub: number, dead: boolean): Uint8Array {
  const n = h === undefined ? 0 : h.length;
  const b = new Uint8Array(n + HIST_ENTRY_BYTES);
  if (h !== undefined) b.set(h);
  putU64(b, n, main);
  putU64(b, n + 8, sub * 2 + (dead ? 1 : 0));
  return b;
}

/** The position of the key's last revision with main <= at, or -1. */
function histPosAt(h: Uint8Array, at: number): number {
  let hi = histLength(h);
  // Most reads are of the latest revision.
  if (hi > 0 && histMain(h, hi - 1) <= at) return hi - 1;
  let lo = 0;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (histMain(h, mid) <= at) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

/** How many of the history's first revisions a compaction at `revision` drops: all up to its latest there, and that one too when it is a deletion. */
function histKeepFrom(h: Uint8Array, revision: number): number {
  const last = histPosAt(h, revision);
  if (last < 0) return 0;
  return histDead(h, last) ? last + 1 : last;
}

function histProblem(h: Uint8Array): string | null {
  return h.length === 0 || h.length % HIST_ENTRY_BYTES !== 0 ? `a key history of ${h.length} bytes` : null;
}

/** The backend key of a metadata entry (the state machine keeps its own there too). */
export function metaKey(name: string): Uint8Array {
  return Uint8Array.from([META, ...new TextEncoder().encode(name)]);
}

/** A safe integer as 8 bytes (metadata values). */
export function u64Bytes(n: number): Uint8Array {
  const b = new Uint8Array(8);
  putU64(b, 0, n);
  return b;
}

export function u64Of(b: Uint8Array | undefined): number {
  return b === undefined || b.length !== 8 ? 0 : getU64(b, 0);
}

/**
 * Why one backend entry (key, value) cannot be part of a store (null: it can): the layout
 * above, checked entry by entry — for entries from outside (a snapshot streamed by a peer)
 * before they are written. Invariants across entries are checked when the store opens over
 * them (MvccOpenOptions.verify).
 */
export function backendEntryProblem(key: Uint8Array, value: Uint8Array): string | null {
  switch (key[0]) {
    case REV: {
      if (key.length !== 17) return `a revision key of ${key.length} bytes (17)`;
      if (value.length < REC_HEADER_BYTES || value[0]! > 1) return 'a revision record with a bad header';
      const len = new DataView(value.buffer, value.byteOffset, value.byteLength).getUint32(25);
      if (len === 0 || REC_HEADER_BYTES + len > value.length) return `a revision record whose key length ${len} does not fit`;
      return null;
    }
    case IDX:
      // Layout 1 (a peer of an older build streams it; migrated when the store opens).
      if (key.length !== 17) return `an index key of ${key.length} bytes (17)`;
      return value.length < 10 || value[0]! > 1 ? 'an index entry with a bad header' : null;
    case HIST: {
      if (key.length < 2) return 'a key index record without a key';
      if (!isBucket(key)) return histProblem(value);
      const entries = decodeBucket(value);
      if (entries === null || entries.length === 0) return 'a malformed key index bucket';
      for (const [, h] of entries) if (histProblem(h) !== null) return histProblem(h);
      return null;
    }
    case ATTACH:
      if (key.length < 10) return 'a lease attachment record without a key';
      if (!isBucket(key)) return value.length === 0 ? null : 'a lease attachment record with a value';
      return decodeBucket(value)?.length ? null : 'a malformed lease attachment bucket';
    case LEASE:
      return key.length === 9 && value.length === 8 ? null : 'a lease entry of the wrong size';
    case META:
      return key.length >= 2 ? null : 'a metadata key without a name';
    default:
      return `a key of unknown kind ${key[0]}`;
  }
}

const META_REV = metaKey('rev');
const META_COMPACT = metaKey('compact');
const META_KEYS = metaKey('keys');
const META_LAYOUT = metaKey('layout');

/** Records this build's layout: the 'layout' record and the guard against layout 1 builds. */
function recordLayout(backend: Backend): void {
  backend.put(META_LAYOUT, u64Bytes(LAYOUT_VERSION));
  backend.put(LAYOUT1_GUARD_KEY, LAYOUT1_GUARD);
}

function encodeRecord(key: Uint8Array, kv: KeyValue | null): Uint8Array {
  const value = kv ? kv.value : EMPTY;
  const b = new Uint8Array(REC_HEADER_BYTES + key.length + value.length);
  const v = new DataView(b.buffer);
  b[0] = kv ? 0 : 1;
  if (kv) {
    putU64(b, 1, kv.createRevision);
    putU64(b, 9, kv.version);
    v.setBigUint64(17, kv.lease);
  }
  v.setUint32(25, key.length);
  b.set(key, REC_HEADER_BYTES);
  b.set(value, REC_HEADER_BYTES + key.length);
  return b;
}

function recordKey(rec: Uint8Array): Uint8Array {
  const len = new DataView(rec.buffer, rec.byteOffset, rec.byteLength).getUint32(25);
  return rec.subarray(REC_HEADER_BYTES, REC_HEADER_BYTES + len);
}

/** Whether revision record `rec` is of key `key` (recordKey without a view: verify runs it per revision). */
function recordIsOf(rec: Uint8Array, key: Uint8Array): boolean {
  const len = rec[25]! * 2 ** 24 + (rec[26]! << 16) + (rec[27]! << 8) + rec[28]!;
  if (len !== key.length) return false;
  for (let i = 0; i < len; i++) if (rec[REC_HEADER_BYTES + i] !== key[i]) return false;
  return true;
}

/** The key-value a put record holds (modRevision = its main revision), or null for a tombstone. */
function decodeRecord(rec: Uint8Array, main: number): KeyValue | null {
  if (rec[0] === 1) return null;
  const v = new DataView(rec.buffer, rec.byteOffset, rec.byteLength);
  const len = v.getUint32(25);
  return {
    key: rec.subarray(REC_HEADER_BYTES, REC_HEADER_BYTES + len),
    createRevision: getU64(rec, 1),
    modRevision: main,
    version: getU64(rec, 9),
    value: rec.subarray(REC_HEADER_BYTES + len),
    lease: v.getBigUint64(17),
  };
}

/** The byte string as a binary string (one char per byte), whose order is the bytes' order. */
export const bin = binKey;
export const unbin = unbinKey;

/** The interval a request names: [start, end) in binary strings; end null = one key, '' = to the end. */
export interface BinInterval {
  readonly start: string;
  readonly end: string | null;
}

/** The interval of a key and range end as etcd reads them (range end empty: the key alone; "\0": every key from the key on). */
export function keyInterval(key: Uint8Array, rangeEnd: Uint8Array | undefined): BinInterval {
  const start = bin(key);
  if (!rangeEnd || rangeEnd.length === 0) return { start, end: null };
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return { start, end: '' };
  return { start, end: bin(rangeEnd) };
}

/**
 * etcd's duplicate-key rule for one branch of a txn (checkIntervals, v3rpc/key.go), exactly:
 * a key may not be put twice, nor put inside a range deleted by this branch; a nested txn's
 * puts are checked against the deletes of this level and of the nested txns before it, its
 * success and failure may put the same key (only one runs). Deleted ranges are compared as
 * etcd's affine intervals: a range_end of "\0" is the literal key "\0", so a delete "to the
 * end" never conflicts with a put (as in etcd).
 */
function checkIntervals(reqs: readonly RequestOp[]): { puts: Set<string>; dels: { start: string; end: string | null }[] } {
  const dels: { start: string; end: string | null }[] = [];
  for (const op of reqs) {
    if (!('deleteRange' in op)) continue;
    const d = op.deleteRange;
    dels.push({ start: bin(d.key), end: d.rangeEnd && d.rangeEnd.length > 0 ? bin(d.rangeEnd) : null });
  }
  const deleted = (k: string) => dels.some((d) => (d.end === null ? k === d.start : d.start <= k && k < d.end));
  const puts = new Set<string>();
  for (const op of reqs) {
    if (!('txn' in op)) continue;
    const then = checkIntervals(op.txn.success);
    const otherwise = checkIntervals(op.txn.failure);
    for (const k of then.puts) {
      if (puts.has(k) || deleted(k)) throw ERR.duplicateKey();
      puts.add(k);
    }
    for (const k of otherwise.puts) {
      if (puts.has(k) && !then.puts.has(k)) throw ERR.duplicateKey();
      if (deleted(k)) throw ERR.duplicateKey();
      puts.add(k);
    }
    dels.push(...then.dels, ...otherwise.dels);
  }
  for (const op of reqs) {
    if (!('put' in op)) continue;
    const k = bin(op.put.key);
    if (puts.has(k) || deleted(k)) throw ERR.duplicateKey();
    puts.add(k);
  }
  return { puts, dels };
}

/** etcd's duplicate-key check of a whole txn (each branch on its own), as its API runs it before the log. */
export function checkTxnIntervals(t: TxnRequest): void {
  checkIntervals(t.success);
  checkIntervals(t.failure);
}

/** etcd's checkPutRequest (v3rpc/key.go): what a put may not say, whatever the store holds. */
export function checkPutRequest(r: PutRequest): void {
  if (r.key.length === 0) throw ERR.emptyKey();
  if (r.ignoreValue && r.value && r.value.length > 0) throw ERR.valueProvided();
  if (r.ignoreLease && r.lease && r.lease !== 0n) throw ERR.leaseProvided();
}

/** A store image that MvccStore.validate checked whole (restoreValidated writes it). */
export interface ValidatedStoreImage {
  readonly rev: number;
  readonly compactRev: number;
  readonly histories: { key: Uint8Array; h: Rev[] }[];
  readonly leases: { id: bigint; ttl: number }[];
}

/** One revision of the store as a snapshot file holds it (StoreSnapshotSource.revisions). */
export interface StoreRevision {
  readonly main: number;
  readonly sub: number;
  /** The key (for a put, kv.key too). */
  readonly key: Uint8Array;
  /** The key-value written at this revision; null: the key was deleted at it. */
  readonly kv: KeyValue | null;
}

/**
 * What a snapshot file of the store needs, read from a backend read view without building an
 * image of the store (MvccStore.snapshotSource): a file writer lays its pages out in one pass
 * over the revisions and makes them in another, so the sources are re-iterable, each pass a
 * new scan of the view, and nothing but the scan's position is held in memory.
 */
export interface StoreSnapshotSource {
  /** The store's revision and compact revision, as the view's metadata records them. */
  readonly revision: number;
  readonly compactRevision: number;
  /** The leases, in id order (a new scan of the view at each call). */
  leases(): IterableIterator<{ readonly id: bigint; readonly ttl: number }>;
  /** Every revision the store holds, in (main, sub) order (a new scan of the view at each call). */
  revisions(): IterableIterator<StoreRevision>;
}

/**
 * A store as a snapshot file holds it, read as it is written (MvccStore.importRevisions): the
 * file's parser (etcd-snapshot.ts) calls back with each lease, then each revision, in the
 * file's order, holding no more of the file than the entry it hands over.
 */
export interface StoreImportSource {
  /** The revision the file records as compacted (0: none). */
  readonly compactRevision: number;
  /** Calls `fn` with each lease, in the file's order (which must be id order). */
  leases(fn: (l: { readonly id: bigint; readonly ttl: number }) => void): void;
  /** Calls `fn` with each revision, in the file's order (which must be revision order). */
  revisions(fn: (r: StoreRevision) => void): void;
}

/** What MvccStore.importRevisions wrote. */
export interface ImportedStoreSummary {
  readonly revision: number;
  readonly compactRevision: number;
  readonly keys: number;
  readonly leases: number;
}

/**
 * Writes an import makes before it commits them (MvccStore.importRevisions): the backend's
 * overlay holds a batch in memory, so a batch is also cut at IMPORT_BATCH_BYTES of keys and
 * values (a batch of large values would otherwise be the values' size times this).
 */
export const IMPORT_BATCH_OPS = 10_000;
export const IMPORT_BATCH_BYTES = 16 * 1024 * 1024;

/** A read view's entries with start <= key < end, `start` one byte (the view scans from past a key). */
function* viewScan(view: BackendReadView, start: Uint8Array, end: Uint8Array): IterableIterator<[Uint8Array, Uint8Array]> {
  assert(start.length === 1, () => 'viewScan starts at a one-byte prefix');
  // The greatest key a backend can hold below [start]: the byte before, then 0xff to the
  // longest key — so the scan begins at start, not among the kind before it (the leases
  // before the metadata: there may be many).
  let after: Uint8Array | undefined;
  if (start[0]! > 0) {
    after = new Uint8Array(BACKEND_KEY_BYTES_MAX).fill(0xff);
    after[0] = start[0]! - 1;
  }
  for (const e of view.entries(after)) {
    if (compareBytes(e[0], start) < 0) continue;
    if (compareBytes(e[0], end) >= 0) return;
    yield e;
  }
}

/** How a store opens its backend (see the constructor). */
export interface MvccOpenOptions {
  /**
   * The backend holds a store streamed by a peer (hostile bytes, each entry already checked
   * alone: backendEntryProblem): its records are verified against each other at open (see
   * verify), a store that breaks an invariant refused with SnapshotImageError. Never for the
   * member's own backend, whose open reads no record of the key space.
   */
  readonly verify?: boolean;
  /** See takeOver. */
  readonly takeOverFrom?: MvccStore;
}

export class MvccStore {
  /** The store's revision: an empty store is at 1, the first write gets 2. */
  private rev = 1;
  private compactRev = 0;
  /** Keys the key index ('i') holds: those with a revision since the compact revision, or the one it keeps. */
  private keys = 0;
  /** `keys` as the backend records it (metadata 'keys'). */
  private keysRecorded = 0;
  /** The backend records this build's layout (metadata 'layout'): written with the first revision. */
  private layoutRecorded = false;
  /** The leases; the keys attached to each are in the backend ('a'). */
  private readonly leases = new Map<bigint, Lease>();
  /** Revision being written by the current write transaction, its next sub-revision, its events. */
  private writeMain = 0;
  private writeSub = 0;
  private events: KvEvent[] = [];
  private readonly limits: MvccLimits;
  private listeners: ((events: readonly KvEvent[], rev: number) => void)[] = [];
  /** The backend holds a store streamed by a peer (MvccOpenOptions.verify): a broken invariant at open is a refusal, not a bug. */
  private readonly fromPeer: boolean;
  /** Where the revisions live (an in-memory backend unless given one). */
  readonly backend: Backend;

  /**
   * A store over `backend` (default: a fresh in-memory one), holding what the backend holds.
   * The key index and the leases' keys are in the backend: opening reads the metadata and the
   * lease records only (a store of layout 1 is migrated first, once: see migrate).
   */
  constructor(limits: Partial<MvccLimits> = {}, backend: Backend = new MemoryBackend(), open: MvccOpenOptions = {}) {
    this.limits = { ...MVCC_LIMITS_DEFAULT, ...limits };
    this.backend = backend;
    this.fromPeer = open.verify === true;
    const takeOverFrom = open.takeOverFrom;
    if (takeOverFrom === undefined) {
      this.load();
      if (this.fromPeer) this.verify();
      return;
    }
    // See takeOver.
    const from = takeOverFrom;
    assert(from.writeMain === 0 && from.events.length === 0, () => 'a store is taken over in the middle of a write');
    this.rev = from.rev;
    this.compactRev = from.compactRev;
    this.keys = from.keys;
    this.keysRecorded = from.keysRecorded;
    this.layoutRecorded = from.layoutRecorded;
    this.leases = from.leases;
  }

  /**
   * A store over `backend`, which now holds exactly what `from`'s backend holds (it adopted
   * that backend: Backend.adopt), taking over what `from` read at open instead of reading it
   * again: installing a streamed snapshot opens the staged store once to check it (and to
   * migrate it, when a peer of an older build sent layout 1). `from` has no write under way
   * (a store just opened has none) and is not used afterwards; its listeners stay with it.
   */
  static takeOver(from: MvccStore, limits: Partial<MvccLimits>, backend: Backend): MvccStore {
    return new MvccStore(limits, backend, { takeOverFrom: from });
  }

  private load(): void {
    const rev = this.backend.get(META_REV);
    if (rev !== undefined) this.rev = u64Of(rev);
    this.compactRev = u64Of(this.backend.get(META_COMPACT));
    for (const [lk, v] of this.backend.scan(Uint8Array.of(LEASE), Uint8Array.of(LEASE + 1))) {
      const id = new DataView(lk.buffer, lk.byteOffset, lk.byteLength).getBigUint64(1);
      this.leases.set(id, { id, ttl: u64Of(v) });
    }
    const layout = this.backend.get(META_LAYOUT);
    if (layout === undefined) {
      // Layout 1, or a store never written (no 'k' entries: nothing to migrate).
      if (this.hasLayout1Entries()) this.migrate();
      return;
    }
    const version = u64Of(layout);
    if (version !== LAYOUT_VERSION) {
      const what = `the store's backend has layout ${version}; this build reads layout ${LAYOUT_VERSION} (and migrates 1)`;
      if (this.fromPeer) imageFail('store', what);
      throw new Error(what);
    }
    this.layoutRecorded = true;
    this.keys = this.keysRecorded = u64Of(this.backend.get(META_KEYS));
    // A migration that stopped after the new index was complete, before the old was gone.
    if (this.hasLayout1Entries()) this.dropAll(IDX);
  }

  /** Whether the backend holds layout 1 index entries ('k'; the guard is not one). */
  private hasLayout1Entries(): boolean {
    for (const _ of this.backend.scan(AFTER_LAYOUT1_GUARD, Uint8Array.of(IDX + 1))) return true;
    return false;
  }

  /**
   * Builds the key index ('i') and the lease attachments ('a') of a layout 1 store from its
   * per-revision index entries ('k'), then deletes those: once, at the first open by a build
   * of layout 2. In batches of MIGRATE_BATCH entries (the memory a migration takes stays
   * bounded): a batch's revisions are gathered per key, and each key's history extended in key
   * order, then committed. The 'layout' record is committed with the last of them, and only
   * then are the old entries deleted: a migration cut short starts again (what it wrote
   * deleted first), or finishes the deletion.
   */
  private migrate(): void {
    for (const prefix of [HIST, ATTACH]) this.dropAll(prefix);
    this.keys = 0;
    /** The lease of each key whose latest revision is a put with a lease. */
    const leased = new Map<string, bigint>();
    // Past the guard (which a layout 1 store does not have: this is for a migration's restart).
    let from: Uint8Array | null = AFTER_LAYOUT1_GUARD;
    while (from !== null) {
      /** Per key, the batch's revisions in order: main and sub * 2 + tombstone, flat. */
      const hist = new Map<string, number[]>();
      const start: Uint8Array = from;
      from = null;
      let n = 0;
      for (const [rk, rec] of this.backend.scan(start, Uint8Array.of(IDX + 1))) {
        if (n++ === MIGRATE_BATCH) {
          from = rk;
          break;
        }
        const k = binKey(rec.subarray(9));
        const dead = rec[0] === 1;
        const s = getU64(rk, 9) * 2 + (dead ? 1 : 0);
        const h = hist.get(k);
        if (h === undefined) hist.set(k, [getU64(rk, 1), s]);
        else h.push(getU64(rk, 1), s);
        const lease = dead ? 0n : new DataView(rec.buffer, rec.byteOffset, rec.byteLength).getBigUint64(1);
        if (lease !== 0n) leased.set(k, lease);
        else if (leased.size > 0) leased.delete(k);
      }
      for (const k of [...hist.keys()].sort()) {
        const h = hist.get(k)!;
        const key = unbin(k);
        const old = recordGet(this.backend, HIST_PREFIX, key);
        if (old === undefined) this.keys++;
        const at = old === undefined ? 0 : old.length;
        const b = new Uint8Array(at + h.length * 8);
        if (old !== undefined) b.set(old);
        for (let j = 0; j < h.length; j++) putU64(b, at + j * 8, h[j]!);
        recordSet(this.backend, HIST_PREFIX, key, b);
      }
      this.backend.commit();
    }
    for (const [k, id] of leased) {
      if (!this.leases.has(id)) this.broken(`the store's key ${JSON.stringify(k)} is attached to lease ${id}, which the store does not hold`);
      recordSet(this.backend, attachPrefix(id), unbin(k), EMPTY);
    }
    this.keysRecorded = this.keys;
    this.backend.put(META_KEYS, u64Bytes(this.keys));
    recordLayout(this.backend);
    this.layoutRecorded = true;
    this.backend.commit();
    this.dropAll(IDX);
  }

  /** A broken invariant of the backend's store: a peer's store refused (SnapshotImageError), our own a bug. */
  private broken(what: string): never {
    if (this.fromPeer) imageFail('store', what);
    assert(false, what);
    throw new Error(what);
  }

  /**
   * Verifies a store streamed by a peer against the invariants that tie its records together
   * (each record alone was checked as it was received: backendEntryProblem), SnapshotImageError
   * naming the first broken one: every history in the key index ('i') is in revision order and
   * names revision records ('r') of its key, put or deletion as the record is, its count the
   * 'keys' recorded; every revision record is in its key's history, none past the store's
   * revision; a key whose latest revision is a put with a lease is attached ('a') to that
   * lease, which the store holds ('l'), and every attachment is such a key's. One walk of each
   * kind, a get per history entry and attachment (the revision records only counted: as many
   * as the histories name, each named once, is all named): O(records), the memory of one
   * bucket (nothing gathered in the heap). Run once, by the open of a streamed store.
   */
  private verify(): void {
    const fail: (what: string) => never = (what) => imageFail('store', what);
    if (!Number.isSafeInteger(this.rev) || this.compactRev > this.rev) fail(`revision ${this.rev} with compact revision ${this.compactRev}`);
    for (const id of this.leases.keys()) if (id <= 0n || id > LEASE_ID_MAX) fail(`a lease with id ${id}`);
    let keys = 0;
    /** Revisions the histories name: distinct records (a history's are in order, and a record is of its history's key). */
    let named = 0;
    for (const [bk, v] of this.backend.scan(HIST_PREFIX, prefixEnd(HIST_PREFIX))) {
      for (const [key, h] of this.verifiedRecords(HIST_PREFIX, bk, v, 'key index')) {
        keys++;
        named += this.verifyHistory(key, h);
      }
    }
    if (keys !== this.keys) fail(`the store records ${this.keys} keys, its key index holds ${keys}`);
    // So every record is named when there are as many: counted (no get), each looked up only to name one that is not.
    let records = 0;
    for (const [rk] of this.backend.scan(Uint8Array.of(REV), REV_END)) {
      records++;
      if (!(getU64(rk, 1) <= this.rev)) fail(`revision ${getU64(rk, 1)}.${getU64(rk, 9)} is past the store's revision ${this.rev}`);
    }
    if (records !== named) {
      for (const [rk, rec] of this.backend.scan(Uint8Array.of(REV), REV_END)) {
        const [main, sub, key] = [getU64(rk, 1), getU64(rk, 9), recordKey(rec)];
        const h = this.history(key);
        if (h === undefined || !histHas(h, main, sub)) fail(`revision ${main}.${sub} (key ${show(key)}) is not in its key's history in the key index`);
      }
      fail(`the key index names ${named} revisions, the store holds ${records}`);
    }
    for (const [bk, v] of this.backend.scan(Uint8Array.of(ATTACH), Uint8Array.of(ATTACH + 1))) {
      const id = new DataView(bk.buffer, bk.byteOffset, bk.byteLength).getBigUint64(1);
      for (const [key] of this.verifiedRecords(attachPrefix(id), bk, v, 'lease attachment')) {
        if (!this.leases.has(id)) fail(`key ${show(key)} is attached to lease ${id}, which the store does not hold`);
        const h = this.history(key);
        const last = h === undefined ? -1 : histLength(h) - 1;
        const kv = last < 0 || histDead(h!, last) ? null : this.read(histMain(h!, last), histSub(h!, last));
        if (kv === null) fail(`key ${show(key)} is attached to lease ${id}, but the key is not live`);
        if (kv.lease !== id) fail(`key ${show(key)} is attached to lease ${id}, but its latest revision ${kv.modRevision} is a put with lease ${kv.lease}`);
      }
    }
  }

  /** The user keys and values of one backend record under `prefix` (a bucket's, checked to be in order and to belong there). */
  private verifiedRecords(prefix: Uint8Array, bk: Uint8Array, v: Uint8Array, what: string): [Uint8Array, Uint8Array][] {
    if (!isBucket(bk)) return [[bk.subarray(prefix.length), v]];
    const entries = decodeBucket(v) ?? imageFail('store', `a malformed ${what} bucket`);
    for (let i = 0; i < entries.length; i++) {
      const key = entries[i]![0];
      if (i > 0 && compareBytes(entries[i - 1]![0], key) >= 0) imageFail('store', `a ${what} bucket whose keys are not in order, at key ${show(key)}`);
      if (compareBytes(recordKeyOf(prefix, key), bk) !== 0) imageFail('store', `key ${show(key)} in the ${what} bucket of other keys`);
    }
    return entries;
  }

  /** verify's check of one key's history (see verify); the revisions it names. */
  private verifyHistory(key: Uint8Array, h: Uint8Array): number {
    const fail: (what: string) => never = (what) => imageFail('store', `the key index's history of key ${show(key)}: ${what}`);
    const problem = histProblem(h);
    if (problem !== null) fail(problem);
    const n = histLength(h);
    // One key buffer for every get (this runs per revision of a store streamed whole).
    const rk = revKey(0, 0);
    for (let i = 0; i < n; i++) {
      const main = histMain(h, i);
      const sub = histSub(h, i);
      const dead = histDead(h, i);
      if (!Number.isSafeInteger(main) || !Number.isSafeInteger(sub) || main > this.rev) fail(`revision ${main}.${sub} is past the store's revision ${this.rev}`);
      if (i > 0 && (histMain(h, i - 1) > main || (histMain(h, i - 1) === main && histSub(h, i - 1) >= sub))) fail(`revision ${main}.${sub} is not after ${histMain(h, i - 1)}.${histSub(h, i - 1)}`);
      putU64(rk, 1, main);
      putU64(rk, 9, sub);
      const rec = this.backend.get(rk);
      if (rec === undefined) fail(`it names revision ${main}.${sub}, which the store does not hold`);
      if (!recordIsOf(rec, key)) fail(`it names revision ${main}.${sub}, which is of key ${show(recordKey(rec))}`);
      if ((rec[0] === 1) !== dead) fail(`it has revision ${main}.${sub} as a ${dead ? 'deletion' : 'put'}, which the revision record says is a ${dead ? 'put' : 'deletion'}`);
      if (i < n - 1 || dead) continue;
      if (rec.subarray(17, 25).every((x) => x === 0)) continue;
      const lease = decodeRecord(rec, main)!.lease;
      if (!this.leases.has(lease)) fail(`its latest revision ${main}.${sub} is a put with lease ${lease}, which the store does not hold`);
      if (recordGet(this.backend, attachPrefix(lease), key) === undefined) fail(`its latest revision ${main}.${sub} is a put with lease ${lease}, but the key is not attached to the lease`);
    }
    return n;
  }

  /** Deletes every record of one kind (but the layout 1 guard), in committed batches of MIGRATE_BATCH. */
  private dropAll(prefix: number): void {
    let left = true;
    while (left) {
      left = false;
      const keys: Uint8Array[] = [];
      for (const [k] of this.backend.scan(Uint8Array.of(prefix), Uint8Array.of(prefix + 1))) {
        if (keys.length === MIGRATE_BATCH) {
          left = true;
          break;
        }
        if (compareBytes(k, LAYOUT1_GUARD_KEY) !== 0) keys.push(k);
      }
      for (const k of keys) this.backend.del(k);
      this.backend.commit();
    }
  }

  get revision(): number {
    return this.rev;
  }

  get compactRevision(): number {
    return this.compactRev;
  }

  /** Keys with a revision since the compact revision (or the one compaction keeps), deleted ones included. */
  get keyCount(): number {
    return this.keys;
  }

  /** Bytes the store's backend takes on disk (the database file), for quotas and status. */
  dbSizeBytes(): number {
    return this.backend.dbSizeBytes();
  }

  /**
   * The size the space quota weighs: the database file and what is written but not yet
   * durable in it (a batch commit under way or due), so that how many writes fit under the
   * quota does not depend on when batch commits run.
   */
  quotaSizeBytes(): number {
    return this.backend.dbSizeBytes() + this.backend.unsyncedBytes;
  }

  /** Bytes in use within dbSizeBytes (etcd's dbSizeInUse). */
  dbSizeInUseBytes(): number {
    return this.backend.dbSizeInUseBytes();
  }

  /** Called after each revision is written, with all of its events (the watch hub listens). */
  onCommit(listener: (events: readonly KvEvent[], rev: number) => void): void {
    this.listeners.push(listener);
  }

  // ---------------------------------------------------------------------------------------
  // Reads
  // ---------------------------------------------------------------------------------------

  range(r: RangeRequest): RangeResult {
    if (r.key.length === 0) throw ERR.emptyKey();
    const at = this.readRevision(r.revision);
    return this.rangeAt(r, at);
  }

  private readRevision(revision: number | undefined): number {
    const rev = revision === undefined || revision <= 0 ? this.rev : revision;
    if (rev > this.rev) throw ERR.futureRev();
    if (rev < this.compactRev) throw ERR.compacted();
    return rev;
  }

  /**
   * Counting and the common orders (by key, by mod revision) work on the key index alone;
   * only the key-values returned are read from the backend, so a range with a limit reads
   * `limit` values whatever the range holds. Other orders and create-revision filters read
   * them all.
   */
  private rangeAt(r: RangeRequest, at: number): RangeResult {
    if (r.countOnly) {
      let count = 0;
      this.eachLive(r.key, r.rangeEnd, at, () => count++, 0);
      return { kvs: [], more: false, count };
    }
    let order = r.sortOrder ?? 'none';
    const target = r.sortTarget ?? 'key';
    if (order === 'none' && target !== 'key') order = 'ascend';
    const limit = r.limit && r.limit > 0 ? r.limit : 0;
    if (limit && target === 'key' && order !== 'descend' && !r.minModRevision && !r.maxModRevision && !r.minCreateRevision && !r.maxCreateRevision) {
      // The first `limit` keys in key order, the rest only counted (the common paged list).
      let count = 0;
      const sel: Ref[] = [];
      this.eachLive(r.key, r.rangeEnd, at, (key, main, sub) => count++ < limit && sel.push({ key, main, sub }), limit);
      let kvs = sel.map((x) => this.read(x.main, x.sub)!);
      if (r.keysOnly) kvs = kvs.map((kv) => ({ ...kv, value: EMPTY }));
      return { kvs, more: count > limit, count };
    }
    // Keys only to order equal mod revisions (the key-values read carry their own).
    const refs = this.collectRefs(r.key, r.rangeEnd, at, target === 'mod' && order !== 'none');
    const count = refs.length;
    let kvs: KeyValue[];
    let more = false;
    if (!r.minCreateRevision && !r.maxCreateRevision && (target === 'key' || target === 'mod')) {
      let sel = refs;
      if (r.minModRevision) sel = sel.filter((x) => x.main >= r.minModRevision!);
      if (r.maxModRevision) sel = sel.filter((x) => x.main <= r.maxModRevision!);
      if (target === 'key' && order === 'descend') sel = sel.reverse();
      else if (target === 'mod' && order !== 'none') {
        const up = (a: Ref, b: Ref) => a.main - b.main || compareBytes(a.key, b.key);
        sel.sort(order === 'ascend' ? up : (a, b) => up(b, a));
      }
      if (limit && sel.length > limit) {
        sel = sel.slice(0, limit);
        more = true;
      }
      kvs = sel.map((x) => this.read(x.main, x.sub)!);
    } else {
      kvs = refs.map((x) => this.read(x.main, x.sub)!);
      const f = r;
      if (f.minModRevision) kvs = kvs.filter((kv) => kv.modRevision >= f.minModRevision!);
      if (f.maxModRevision) kvs = kvs.filter((kv) => kv.modRevision <= f.maxModRevision!);
      if (f.minCreateRevision) kvs = kvs.filter((kv) => kv.createRevision >= f.minCreateRevision!);
      if (f.maxCreateRevision) kvs = kvs.filter((kv) => kv.createRevision <= f.maxCreateRevision!);
      if (order !== 'none') {
        const cmp = sorter(target);
        kvs.sort(order === 'ascend' ? cmp : (a, b) => cmp(b, a));
      }
      if (limit && kvs.length > limit) {
        kvs = kvs.slice(0, limit);
        more = true;
      }
    }
    if (r.keysOnly) kvs = kvs.map((kv) => ({ ...kv, value: EMPTY }));
    return { kvs, more, count };
  }

  /**
   * Calls `fn` for each key live at revision `at` in the interval a key and range end name (as
   * etcd reads them: range end empty, the key alone; "\0", every key from the key on), in key
   * order, with the revision holding it: from the key index alone. Past the first `keysMax`
   * keys, the key passed is empty (a count needs none).
   */
  private eachLive(key: Uint8Array, rangeEnd: Uint8Array | undefined, at: number, fn: (key: Uint8Array, main: number, sub: number) => void, keysMax = Infinity): void {
    let keys = 0;
    if (!rangeEnd || rangeEnd.length === 0) {
      const h = this.history(key);
      const i = h === undefined ? -1 : histPosAt(h, at);
      if (i >= 0 && !histDead(h!, i)) fn(key, histMain(h!, i), histSub(h!, i));
      return;
    }
    const end = rangeEnd.length === 1 && rangeEnd[0] === 0 ? null : rangeEnd;
    if (end !== null && compareBytes(end, key) <= 0) return;
    const { from, to, filter } = recordBounds(HIST_PREFIX, key, end);
    // The loop a count over every key runs a million times: no generator, no view unless asked.
    for (const [bk, h] of this.backend.scan(from, to)) {
      if (isBucket(bk)) {
        for (const [k, hk] of bucketEntries(bk, h)) {
          const i = histPosAt(hk, at);
          if (inInterval(k, key, end) && i >= 0 && !histDead(hk, i)) fn(k, histMain(hk, i), histSub(hk, i));
        }
        continue;
      }
      if (filter && !inInterval(bk.subarray(1), key, end)) continue;
      const i = histPosAt(h, at);
      if (i >= 0 && !histDead(h, i)) fn(keys++ < keysMax ? bk.subarray(1) : EMPTY, histMain(h, i), histSub(h, i));
    }
  }

  /** The live keys in the interval at revision `at`, in key order, from the key index alone; their keys only `withKeys` (else empty). */
  private collectRefs(key: Uint8Array, rangeEnd: Uint8Array | undefined, at: number, withKeys: boolean): Ref[] {
    const out: Ref[] = [];
    this.eachLive(key, rangeEnd, at, (k, main, sub) => out.push({ key: k, main, sub }), withKeys ? Infinity : 0);
    return out;
  }

  /** Live key-values in the interval at revision `at`, in key order. */
  private collect(key: Uint8Array, rangeEnd: Uint8Array | undefined, at: number): KeyValue[] {
    return this.collectRefs(key, rangeEnd, at, false).map((x) => this.read(x.main, x.sub)!);
  }

  /** The key's history in the key index ('i'), if it has one. */
  private history(key: Uint8Array): Uint8Array | undefined {
    return recordGet(this.backend, HIST_PREFIX, key);
  }

  /** The key-value a revision holds (null: a tombstone). */
  private read(main: number, sub: number): KeyValue | null {
    const rec = this.backend.get(revKey(main, sub));
    assert(rec !== undefined, () => `the index names revision ${main}.${sub}, which the backend does not hold`);
    return decodeRecord(rec, main);
  }

  /** The key-value the history `h` holds at revision `at` (null: none, or deleted). */
  private kvIn(h: Uint8Array | undefined, at: number): KeyValue | null {
    if (h === undefined) return null;
    const i = histPosAt(h, at);
    if (i < 0 || histDead(h, i)) return null;
    return this.read(histMain(h, i), histSub(h, i));
  }

  private kvAt(key: Uint8Array, at: number): KeyValue | null {
    return this.kvIn(this.history(key), at);
  }

  /**
   * Changes with revision >= from (and > the compact revision), in order: a scan of the
   * backend's revisions; each event's previous key-value is the key's revision before it in
   * the index (compaction keeps it when a later revision needs it).
   */
  changesSince(from: number): KvEvent[] {
    const start = Math.max(from, this.compactRev + 1, 0);
    const out: KvEvent[] = [];
    for (const [rk, rec] of this.backend.scan(revKey(start, 0), REV_END)) {
      const main = getU64(rk, 1);
      const sub = getU64(rk, 9);
      const kv = decodeRecord(rec, main);
      const key = kv ? kv.key : recordKey(rec);
      const prevKv = this.previous(key, main, sub);
      if (kv) out.push({ type: 'put', kv, ...(prevKv ? { prevKv } : {}) });
      else out.push({ type: 'delete', kv: { key, createRevision: 0, modRevision: main, version: 0, value: EMPTY, lease: 0n }, prevKv: prevKv! });
    }
    return out;
  }

  /** The key-value of `key` just before revision (main, sub), if that was a put. */
  private previous(key: Uint8Array, main: number, sub: number): KeyValue | undefined {
    const h = this.history(key);
    assert(h !== undefined, () => `revision ${main}.${sub} of a key the index does not hold`);
    let i = histPosAt(h, main);
    while (i >= 0 && histMain(h, i) === main && histSub(h, i) >= sub) i--;
    if (i < 0 || histDead(h, i)) return undefined;
    return this.read(histMain(h, i), histSub(h, i)) ?? undefined;
  }

  // ---------------------------------------------------------------------------------------
  // Writes (each public write is one revision at most)
  // ---------------------------------------------------------------------------------------

  put(r: PutRequest): { prevKv?: KeyValue } {
    this.checkPut(r);
    return this.write(() => this.doPut(r));
  }

  deleteRange(r: DeleteRangeRequest): { deleted: number; prevKvs: KeyValue[] } {
    if (r.key.length === 0) throw ERR.emptyKey();
    return this.write(() => this.doDelete(r));
  }

  /**
   * As etcd applies a txn: the compares of the txn and of every nested txn on the chosen path
   * are evaluated first, against the store before the txn (compareToPath); only the chosen path
   * is checked (leases and keys of its puts, revisions of its ranges); then it runs, later ops
   * seeing earlier writes. The request's shape (counts, keys, depth, duplicates) is checked
   * first, as etcd's API does before the log.
   */
  txn(t: TxnRequest): TxnResult {
    // The nesting first: the other checks recurse.
    this.checkDepth(t, 0);
    if (txnSize(t) > Math.max(TXN_OPS_TOTAL_MAX, 2 * this.limits.maxTxnOps)) throw ERR.tooManyOps();
    this.checkShape(t);
    checkTxnIntervals(t);
    const path = this.compareToPath(t, []);
    this.checkPath(t, path, { i: 0 }, 'put');
    this.checkPath(t, path, { i: 0 }, 'range');
    return this.write(() => this.doTxn(t, path, { i: 0 }));
  }

  /**
   * Drops every revision at or below `revision` except each key's latest there when it is a
   * put (etcd's compaction): from the key index and from the backend, whose space is reused.
   * A scan of the key index (as etcd walks its in-memory one), its changes written in batches
   * of COMPACT_BATCH keys between scans (a scan must not interleave with writes).
   */
  compact(revision: number): void {
    if (revision <= this.compactRev) throw ERR.compacted();
    if (revision > this.rev) throw ERR.futureRev();
    this.compactRev = revision;
    this.backend.put(META_COMPACT, u64Bytes(revision));
    const to = prefixEnd(HIST_PREFIX);
    let from: Uint8Array | null = HIST_PREFIX;
    while (from !== null) {
      const changes: { key: Uint8Array; h: Uint8Array; keepFrom: number }[] = [];
      const start: Uint8Array = from;
      from = null;
      for (const [bk, v] of this.backend.scan(start, to)) {
        if (changes.length >= COMPACT_BATCH) {
          from = bk;
          break;
        }
        if (isBucket(bk)) {
          for (const [key, h] of bucketEntries(bk, v)) {
            const keepFrom = histKeepFrom(h, revision);
            if (keepFrom > 0) changes.push({ key: key.slice(), h, keepFrom });
          }
          continue;
        }
        const keepFrom = histKeepFrom(v, revision);
        if (keepFrom > 0) changes.push({ key: bk.slice(1), h: v, keepFrom });
      }
      for (const { key, h, keepFrom } of changes) {
        for (let i = 0; i < keepFrom; i++) this.backend.del(revKey(histMain(h, i), histSub(h, i)));
        if (keepFrom === histLength(h)) {
          recordSet(this.backend, HIST_PREFIX, key, null);
          this.keys--;
        } else recordSet(this.backend, HIST_PREFIX, key, h.slice(keepFrom * HIST_ENTRY_BYTES));
      }
    }
    this.recordKeys();
  }

  /** Writes the key count when it changed (in the batch of the change). */
  private recordKeys(): void {
    if (this.keys === this.keysRecorded) return;
    this.backend.put(META_KEYS, u64Bytes(this.keys));
    this.keysRecorded = this.keys;
  }

  grantLease(id: bigint, ttl: number): void {
    if (id <= 0n) throw new RangeError(`lease id must be positive, got ${id}`);
    if (this.leases.has(id)) throw ERR.leaseExists();
    this.leases.set(id, { id, ttl });
    this.backend.put(leaseKey(id), u64Bytes(ttl));
  }

  /** The keys attached to lease `id`, in key order (their own bytes). */
  private attached(id: bigint): Uint8Array[] {
    const keys: Uint8Array[] = [];
    for (const [k] of recordScan(this.backend, attachPrefix(id), EMPTY, null)) keys.push(k.slice());
    return keys;
  }

  /** Deletes every key attached to the lease in one revision, then the lease. */
  revokeLease(id: bigint): void {
    if (!this.leases.has(id)) throw ERR.leaseNotFound();
    const keys = this.attached(id);
    this.write(() => {
      for (const k of keys) this.tombstone(k);
    });
    this.leases.delete(id);
    this.backend.del(leaseKey(id));
  }

  /**
   * The lease, if it exists. Its keys are read from the backend when asked for (a scan of its
   * attachments): keep-alives and expiry ask only whether it exists and its ttl.
   */
  lease(id: bigint): { readonly id: bigint; readonly ttl: number; readonly keys: Uint8Array[] } | undefined {
    const l = this.leases.get(id);
    if (!l) return undefined;
    const attached = () => this.attached(id);
    return {
      id: l.id,
      ttl: l.ttl,
      get keys() {
        return attached();
      },
    };
  }

  leaseIds(): bigint[] {
    return [...this.leases.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  private write<T>(f: () => T): T {
    this.writeMain = this.rev + 1;
    this.writeSub = 0;
    this.events = [];
    try {
      return f();
    } finally {
      if (this.writeSub > 0) {
        this.rev = this.writeMain;
        this.backend.put(META_REV, u64Bytes(this.rev));
        this.recordKeys();
        if (!this.layoutRecorded) {
          recordLayout(this.backend);
          this.layoutRecorded = true;
        }
        const events = this.events;
        for (const l of this.listeners) l(events, this.rev);
      }
      this.writeMain = 0;
      this.writeSub = 0;
      this.events = [];
    }
  }

  /** Validates a put against the state as it is before the write (etcd's checkPutRequest and applier checkPut). */
  private checkPut(r: PutRequest): void {
    checkPutRequest(r);
    this.checkPutState(r);
  }

  /** etcd's applier checkPut: the lease exists; a put keeping the value or lease has a key to keep them from. */
  private checkPutState(r: PutRequest): void {
    if (r.ignoreValue || r.ignoreLease) {
      if (!this.kvAt(r.key, this.rev)) throw ERR.keyNotFound();
    }
    if (r.lease && r.lease !== 0n && !this.leases.has(r.lease)) throw ERR.leaseNotFound();
  }

  private checkDepth(t: TxnRequest, depth: number): void {
    if (depth > TXN_NESTING_MAX) throw ERR.txnTooDeep();
    for (const op of [...t.success, ...t.failure]) if ('txn' in op) this.checkDepth(op.txn, depth + 1);
  }

  /** Counts and keys of both branches, nested txns included (what etcd's API checks before the log). */
  private checkShape(t: TxnRequest): void {
    if (t.compare.length > this.limits.maxTxnOps) throw ERR.tooManyOps();
    if (t.success.length > this.limits.maxTxnOps || t.failure.length > this.limits.maxTxnOps) throw ERR.tooManyOps();
    for (const c of t.compare) if (c.key.length === 0) throw ERR.emptyKey();
    for (const op of [...t.success, ...t.failure]) {
      if ('range' in op) {
        if (op.range.key.length === 0) throw ERR.emptyKey();
      } else if ('put' in op) checkPutRequest(op.put);
      else if ('deleteRange' in op) {
        if (op.deleteRange.key.length === 0) throw ERR.emptyKey();
      } else this.checkShape(op.txn);
    }
  }

  /** The outcome of the compares of this txn and of the nested txns on its chosen path, in pre-order (etcd's txnPath). */
  private compareToPath(t: TxnRequest, path: boolean[]): boolean[] {
    const ok = t.compare.every((c) => this.compare(c));
    path.push(ok);
    for (const op of ok ? t.success : t.failure) if ('txn' in op) this.compareToPath(op.txn, path);
    return path;
  }

  /** etcd's checkRequests: the puts (or the ranges) on the chosen path, against the store before the txn. */
  private checkPath(t: TxnRequest, path: readonly boolean[], at: { i: number }, kind: 'put' | 'range'): void {
    const ok = path[at.i++];
    assert(ok !== undefined, `txn path ends early at ${at.i - 1} of ${path.length}`);
    for (const op of ok ? t.success : t.failure) {
      if ('txn' in op) this.checkPath(op.txn, path, at, kind);
      else if (kind === 'put' && 'put' in op) this.checkPutState(op.put);
      else if (kind === 'range' && 'range' in op) this.readRevision(op.range.revision);
    }
  }

  private doTxn(t: TxnRequest, path: readonly boolean[], at: { i: number }): TxnResult {
    const succeeded = path[at.i++];
    assert(succeeded !== undefined, `txn path ends early at ${at.i - 1} of ${path.length}`);
    const responses: ResponseOp[] = [];
    for (const op of succeeded ? t.success : t.failure) {
      if ('range' in op) {
        // Later ops see earlier writes of the same txn: read at the revision being written.
        const rev = op.range.revision && op.range.revision > 0 ? op.range.revision : this.writeSub > 0 ? this.writeMain : this.rev;
        responses.push({ range: this.rangeAt(op.range, rev) });
      } else if ('put' in op) responses.push({ put: this.doPut(op.put) });
      else if ('deleteRange' in op) responses.push({ deleteRange: this.doDelete(op.deleteRange) });
      else responses.push({ txn: this.doTxn(op.txn, path, at) });
    }
    return { succeeded, responses };
  }

  private compare(c: Compare): boolean {
    const at = this.writeSub > 0 ? this.writeMain : this.rev;
    const kvs = this.collect(c.key, c.rangeEnd, at);
    if (kvs.length === 0) {
      if (c.target === 'value') return false;
      return compareOne(c, { key: c.key, createRevision: 0, modRevision: 0, version: 0, value: EMPTY, lease: 0n });
    }
    return kvs.every((kv) => compareOne(c, kv));
  }

  private doPut(r: PutRequest): { prevKv?: KeyValue } {
    const h = this.history(r.key);
    const prev = this.kvIn(h, Number.MAX_SAFE_INTEGER);
    const main = this.writeMain;
    const value = r.ignoreValue && prev ? prev.value : (r.value ?? EMPTY);
    const lease = r.ignoreLease && prev ? prev.lease : (r.lease ?? 0n);
    const kv: KeyValue = {
      key: r.key,
      createRevision: prev ? prev.createRevision : main,
      modRevision: main,
      version: prev ? prev.version + 1 : 1,
      value,
      lease,
    };
    if (prev && prev.lease !== 0n && prev.lease !== lease) recordSet(this.backend, attachPrefix(prev.lease), r.key, null);
    if (lease !== 0n && prev?.lease !== lease) recordSet(this.backend, attachPrefix(lease), r.key, EMPTY);
    this.append(kv, prev, h);
    return r.prevKv && prev ? { prevKv: prev } : {};
  }

  private doDelete(r: DeleteRangeRequest): { deleted: number; prevKvs: KeyValue[] } {
    const kvs = this.collect(r.key, r.rangeEnd, Number.MAX_SAFE_INTEGER);
    for (const kv of kvs) this.tombstone(kv.key);
    return { deleted: kvs.length, prevKvs: r.prevKv ? kvs : [] };
  }

  private tombstone(key: Uint8Array): void {
    const h = this.history(key);
    const prev = this.kvIn(h, Number.MAX_SAFE_INTEGER);
    if (!prev) return;
    if (prev.lease !== 0n) recordSet(this.backend, attachPrefix(prev.lease), key, null);
    this.append(null, prev, h);
  }

  /**
   * Writes the next sub-revision of the revision being written: `kv`, or the tombstone of
   * `prev`'s key; `h` is the key's history before it.
   */
  private append(kv: KeyValue | null, prev: KeyValue | null, h: Uint8Array | undefined): void {
    const main = this.writeMain;
    const sub = this.writeSub++;
    const key = kv ? kv.key : prev!.key;
    const rec = encodeRecord(key, kv);
    this.backend.put(revKey(main, sub), rec);
    if (h === undefined) this.keys++;
    // The record's copy of the key: the caller's bytes may change after the call.
    recordSet(this.backend, HIST_PREFIX, recordKey(rec), histPush(h, main, sub, kv === null));
    // The event carries the key-value as stored (its own copy of the caller's bytes).
    const event: KvEvent =
      kv === null
        ? { type: 'delete', kv: { key: recordKey(rec), createRevision: 0, modRevision: main, version: 0, value: EMPTY, lease: 0n }, prevKv: prev! }
        : { type: 'put', kv: decodeRecord(rec, main)!, ...(prev ? { prevKv: prev } : {}) };
    this.events.push(event);
  }

  // ---------------------------------------------------------------------------------------
  // Hash, snapshot and restore
  // ---------------------------------------------------------------------------------------

  /**
   * A hash of every key version with revision in (compact revision, rev] (HashKV): members that
   * applied the same log have the same hash at the same revision.
   */
  hashKv(revision = 0): { hash: number; compactRevision: number; revision: number } {
    const rev = this.readRevision(revision);
    let h = 0;
    const enc = new TextEncoder();
    for (const [key, hist] of recordScan(this.backend, HIST_PREFIX, EMPTY, null)) {
      for (let i = 0; i < histLength(hist); i++) {
        const main = histMain(hist, i);
        if (main > rev) break;
        const sub = histSub(hist, i);
        const kv = histDead(hist, i) ? null : this.read(main, sub);
        h = crc32(enc.encode(`${main}.${sub}:${kv ? `${kv.createRevision}.${kv.version}.${kv.lease}` : 'x'}`), crc32(key, h));
        // Never an empty input: zlib's crc32 returns 0 (its initial value) for a zero-length
        // array whose memory is unallocated, but the running value for one that has memory —
        // the hash would depend on how the empty value was made.
        if (kv && kv.value.length > 0) h = crc32(kv.value, h);
      }
    }
    return { hash: h >>> 0, compactRevision: this.compactRev, revision: rev };
  }

  /**
   * The whole state as bytes (deterministic: equal stores give equal bytes). Reads every
   * revision: for tools, tests and the simulator; a member sends its store to a lagging peer
   * this way too (see RaftNode), until snapshots are streamed from a read transaction.
   */
  snapshot(): Uint8Array {
    const b64 = (u: Uint8Array): string => Buffer.from(u).toString('base64');
    const keys: unknown[] = [];
    for (const [key, hist] of recordScan(this.backend, HIST_PREFIX, EMPTY, null)) {
      const revs: unknown[] = [];
      for (let i = 0; i < histLength(hist); i++) {
        const main = histMain(hist, i);
        const s = histSub(hist, i);
        if (histDead(hist, i)) {
          revs.push([main, s]);
          continue;
        }
        const kv = this.read(main, s)!;
        revs.push([main, s, kv.createRevision, kv.version, b64(kv.value), kv.lease.toString()]);
      }
      keys.push([b64(key), revs]);
    }
    const leases = this.leaseIds().map((id) => [id.toString(), this.leases.get(id)!.ttl, this.attached(id).map(b64)]);
    return new TextEncoder().encode(JSON.stringify({ v: 1, rev: this.rev, compactRev: this.compactRev, keys, leases }));
  }

  /**
   * What an etcd snapshot file of the store in `view` needs (a read view of a backend holding
   * a store: KvStateMachine.snapshotView): the metadata and the leases read now, the revisions
   * read from the view at each pass — in backend order, which is revision order. The view
   * stays consistent whatever is written meanwhile; the caller closes it once done with the
   * source. Reads only the view, never this store's state in memory: static.
   */
  static snapshotSource(view: BackendReadView): StoreSnapshotSource {
    let revision = 1;
    let compactRevision = 0;
    for (const [k, v] of viewScan(view, Uint8Array.of(META), Uint8Array.of(META + 1))) {
      if (compareBytes(k, META_REV) === 0) revision = u64Of(v);
      else if (compareBytes(k, META_COMPACT) === 0) compactRevision = u64Of(v);
    }
    return {
      revision,
      compactRevision,
      *leases() {
        for (const [lk, v] of viewScan(view, Uint8Array.of(LEASE), Uint8Array.of(LEASE + 1))) {
          yield { id: new DataView(lk.buffer, lk.byteOffset, lk.byteLength).getBigUint64(1), ttl: u64Of(v) };
        }
      },
      *revisions() {
        for (const [rk, rec] of viewScan(view, Uint8Array.of(REV), REV_END)) {
          const main = getU64(rk, 1);
          const kv = decodeRecord(rec, main);
          yield { main, sub: getU64(rk, 9), key: kv ? kv.key : recordKey(rec), kv };
        }
      },
    };
  }

  /**
   * Writes the store a snapshot file holds into `backend` (empty: a new member's), as the file
   * is read — the leases, then each revision in revision order: its record, its key's history
   * ('i') extended by a get and a put through the backend's overlay, the key's lease attachment
   * moved with it; committed every IMPORT_BATCH_OPS writes or IMPORT_BATCH_BYTES, so the memory
   * an import takes does not grow with the store (issue 11: no image of it is built). At or
   * below the compact revision a revision replaces its key's history (compaction keeps each
   * key's last version there, and not a deletion: as etcd's compaction leaves them, an
   * interrupted one finished here). The metadata is written last.
   *
   * The file is hostile: each revision is checked as it comes, against the one before it and
   * its key's history so far — the invariants MvccStore.validate checks of an image (see
   * restore): revisions in (main, sub) order, none twice, within [2, …]; after the compact
   * revision every revision made of sub-revisions 0..n-1; versions and create revisions
   * following from the key's previous entry (a put after nothing or a deletion is version 1
   * created at its own revision), a deletion following a put; lease ids in range, leases in id
   * order; every live key's lease held. SnapshotImageError names the first broken one, and
   * the backend then holds part of a store: the caller discards it. What ties the records
   * together is then verified again by opening the result with MvccOpenOptions.verify.
   */
  static importRevisions(backend: Backend, source: StoreImportSource): ImportedStoreSummary {
    const fail: (what: string) => never = (what) => imageFail('store', what);
    const compactRev = source.compactRevision;
    if (!Number.isSafeInteger(compactRev) || compactRev < 0) fail(`compact revision ${compactRev}`);
    const maybeCommit = (): void => {
      if (backend.pendingOps >= IMPORT_BATCH_OPS || backend.unsyncedBytes >= IMPORT_BATCH_BYTES) backend.commit();
    };
    backend.clear();
    let leases = 0;
    let prevId = 0n;
    source.leases((l) => {
      if (l.id <= 0n || l.id > LEASE_ID_MAX) fail(`a lease with id ${l.id}`);
      if (l.id <= prevId) fail(`lease ${l.id} after lease ${prevId}: lease ids not sorted or not unique`);
      if (!Number.isSafeInteger(l.ttl) || l.ttl < 0) fail(`lease ${l.id} with TTL ${l.ttl}`);
      prevId = l.id;
      backend.put(leaseKey(l.id), u64Bytes(l.ttl));
      leases++;
      maybeCommit();
    });
    let keys = 0;
    /** The last revision written, and the last of the change log (after the compact revision). */
    let last = { main: 0, sub: -1 };
    let log = { main: Math.max(compactRev, 1), sub: -1 };
    source.revisions(({ main, sub, key, kv }) => {
      const w = `revision ${main}.${sub}`;
      if (!Number.isSafeInteger(main) || !Number.isSafeInteger(sub) || main < 2 || sub < 0) fail(`${w} out of range`);
      if (main < last.main || (main === last.main && sub <= last.sub)) fail(`${w} not after ${last.main}.${last.sub}: revisions out of order or repeated`);
      last = { main, sub };
      const compacted = main <= compactRev;
      if (!compacted) {
        const next = main === log.main ? sub === log.sub + 1 : main === log.main + 1 && sub === 0;
        if (!next) fail(`revision ${main}.${sub} follows ${log.main}.${log.sub}: changes missing or repeated`);
        log = { main, sub };
      }
      if (key.length === 0) fail(`${w}: empty key`);
      const h = recordGet(backend, HIST_PREFIX, key);
      const n = h === undefined ? 0 : histLength(h);
      const prev = n === 0 || histDead(h!, n - 1) ? null : decodeRecord(backend.get(revKey(histMain(h!, n - 1), histSub(h!, n - 1)))!, histMain(h!, n - 1));
      const wk = `${w} of key ${show(key)}`;
      if (kv !== null) {
        if (kv.modRevision !== main) fail(`${wk}: mod revision ${kv.modRevision}`);
        if (!Number.isSafeInteger(kv.createRevision) || kv.createRevision < 2 || kv.createRevision > main) fail(`${wk}: create revision ${kv.createRevision} outside [2, ${main}]`);
        if (!Number.isSafeInteger(kv.version) || kv.version < 1) fail(`${wk}: version ${kv.version}`);
        if (kv.lease < 0n || kv.lease > LEASE_ID_MAX) fail(`${wk}: lease ${kv.lease}`);
        if (!compacted) {
          if (prev) {
            if (kv.version !== prev.version + 1 || kv.createRevision !== prev.createRevision) fail(`${wk}: version ${kv.version} created at ${kv.createRevision} does not follow version ${prev.version} created at ${prev.createRevision}`);
          } else if (kv.version !== 1 || kv.createRevision !== main) {
            fail(`${wk}: a new key's first version must be 1 created at its revision ${main}, got version ${kv.version} created at ${kv.createRevision}`);
          }
        }
      } else if (!compacted && !prev) fail(`${wk}: ${n === 0 ? 'a history that starts with a deletion' : 'a deletion of a deleted key'}`);
      // The key's lease attachment follows its live version.
      const lease = kv?.lease ?? 0n;
      if (prev && prev.lease !== 0n && prev.lease !== lease) recordSet(backend, attachPrefix(prev.lease), key, null);
      if (lease !== 0n && prev?.lease !== lease) recordSet(backend, attachPrefix(lease), key, EMPTY);
      let hist: Uint8Array | undefined = h;
      if (compacted) {
        // Compaction keeps only the key's latest version at or below it (here every entry is).
        for (let i = 0; i < n; i++) backend.del(revKey(histMain(h!, i), histSub(h!, i)));
        hist = undefined;
      }
      if (compacted && kv === null) {
        if (n > 0) {
          recordSet(backend, HIST_PREFIX, key, null);
          keys--;
        }
      } else {
        const rec = encodeRecord(key, kv);
        backend.put(revKey(main, sub), rec);
        if (h === undefined) keys++;
        recordSet(backend, HIST_PREFIX, recordKey(rec), histPush(hist, main, sub, kv === null));
      }
      maybeCommit();
    });
    // Every live key with a lease is attached to it (above): each lease named must be held.
    let missingId = 0n;
    let missingKeys = 0;
    for (const [bk, v] of backend.scan(Uint8Array.of(ATTACH), Uint8Array.of(ATTACH + 1))) {
      const id = new DataView(bk.buffer, bk.byteOffset, bk.byteLength).getBigUint64(1);
      if (missingKeys > 0 && missingId !== id) break;
      if (backend.get(leaseKey(id)) !== undefined) continue;
      missingId = id;
      missingKeys += isBucket(bk) ? (decodeBucket(v)?.length ?? 1) : 1;
    }
    if (missingKeys > 0) fail(`${missingKeys} live keys are attached to lease ${missingId}, which the lease bucket does not hold`);
    const rev = Math.max(last.main, compactRev, 1);
    backend.put(META_REV, u64Bytes(rev));
    backend.put(META_COMPACT, u64Bytes(compactRev));
    backend.put(META_KEYS, u64Bytes(keys));
    recordLayout(backend);
    backend.commit();
    return { revision: rev, compactRevision: compactRev, keys, leases };
  }

  /**
   * The store an image holds, or SnapshotImageError: the image is hostile input (a file, a
   * peer's message) and is checked whole against every invariant the store keeps before it is
   * used — exact types and ranges; keys non-empty, sorted and unique; each history non-empty,
   * in (main, sub) order, within [2, rev], with at most its first entry at or below the
   * compact revision, and that one a put; versions and create revisions following from the
   * previous entry (a put after nothing or a deletion is version 1 created at its own
   * revision, a deletion follows a put); every revision in (max(compact, 1), rev] made of
   * sub-revisions 0..n-1 and no (main, sub) twice; leases sorted and unique, and a live key's
   * lease and the lease's key set naming each other exactly. Then `snapshot()` of the result
   * restores to the same store. Linear in the image (plus sorting its changes).
   *
   * The store is written into `backend` (default: a fresh in-memory one), replacing what it
   * held — only once the image was found valid; a refused image leaves the backend untouched.
   */
  static restore(data: Uint8Array, limits: Partial<MvccLimits> = {}, backend: Backend = new MemoryBackend()): MvccStore {
    return MvccStore.restoreValidated(MvccStore.validate(data), limits, backend);
  }

  /** restore() of an image validate() already checked (so a caller can check more before anything is written). */
  static restoreValidated(s: ValidatedStoreImage, limits: Partial<MvccLimits> = {}, backend: Backend = new MemoryBackend()): MvccStore {
    backend.clear();
    backend.put(META_REV, u64Bytes(s.rev));
    backend.put(META_COMPACT, u64Bytes(s.compactRev));
    for (const { key, h } of s.histories) {
      let hist: Uint8Array | undefined;
      for (const r of h) {
        backend.put(revKey(r.main, r.sub), encodeRecord(key, r.kv));
        hist = histPush(hist, r.main, r.sub, r.kv === null);
      }
      recordSet(backend, HIST_PREFIX, key, hist!);
      const last = h.at(-1)!.kv;
      if (last && last.lease !== 0n) recordSet(backend, attachPrefix(last.lease), key, EMPTY);
    }
    backend.put(META_KEYS, u64Bytes(s.histories.length));
    recordLayout(backend);
    for (const l of s.leases) backend.put(leaseKey(l.id), u64Bytes(l.ttl));
    return new MvccStore(limits, backend);
  }

  /** restore's check of an image: what the store would hold, or SnapshotImageError. */
  static validate(data: Uint8Array): ValidatedStoreImage {
    const s = { keys: new Map<string, Rev[]>(), histories: [] as { key: Uint8Array; h: Rev[] }[] };
    const kvAt = (k: string, at: number): KeyValue | null => {
      const h = s.keys.get(k);
      if (!h) return null;
      for (let i = h.length - 1; i >= 0; i--) if (h[i]!.main <= at) return h[i]!.kv;
      return null;
    };
    if (data.length === 0) return { rev: 1, compactRev: 0, histories: [], leases: [] };
    const o = exactObject(parseImageJson(data, 'store'), 'store', ['v', 'rev', 'compactRev', 'keys', 'leases']);
    if (o.v !== 1) imageFail('store.v', `unknown key-value store image version ${preview(o.v)}`);
    const rev = safeInt(o.rev, 'store.rev', 1, Number.MAX_SAFE_INTEGER);
    const compactRev = safeInt(o.compactRev, 'store.compactRev', 0, rev);
    const events: { main: number; sub: number; e: KvEvent }[] = [];
    /** The (main, sub) of entries at or below the compact revision (not in the change log). */
    const compacted = new Set<string>();
    /** Live keys with a lease, counted (each must be in its lease's key set). */
    let leasedLive = 0;
    let prevK: string | null = null;
    const keyList = arrayOf(o.keys, 'store.keys');
    for (let i = 0; i < keyList.length; i++) {
      const w = `store.keys[${i}]`;
      const item = arrayOf(keyList[i], w, 2);
      const key = base64Bytes(item[0], `${w}[0]`);
      if (key.length === 0) imageFail(`${w}[0]`, 'empty key');
      const k = bin(key);
      if (prevK !== null && k <= prevK) imageFail(`${w}[0]`, 'keys not sorted or not unique');
      prevK = k;
      const revs = arrayOf(item[1], `${w}[1]`);
      if (revs.length === 0) imageFail(`${w}[1]`, 'empty history');
      const h: Rev[] = [];
      let prev: KeyValue | null = null;
      for (let j = 0; j < revs.length; j++) {
        const wj = `${w}[1][${j}]`;
        const r = arrayOf(revs[j], wj, [2, 6]);
        const main = safeInt(r[0], `${wj}[0]`, 2, rev);
        const sub = safeInt(r[1], `${wj}[1]`, 0, Number.MAX_SAFE_INTEGER);
        const last = h.at(-1);
        if (last && (main < last.main || (main === last.main && sub <= last.sub))) imageFail(wj, `revision ${main}.${sub} not after ${last.main}.${last.sub}`);
        if (j > 0 && main <= compactRev) imageFail(wj, `revision ${main} at or below the compact revision ${compactRev} is not the history's first`);
        let kv: KeyValue | null = null;
        if (r.length === 2) {
          if (!prev) imageFail(wj, j === 0 ? 'a history that starts with a deletion' : 'a deletion of a deleted key');
        } else {
          const createRevision = safeInt(r[2], `${wj}[2]`, 2, main);
          const version = safeInt(r[3], `${wj}[3]`, 1, Number.MAX_SAFE_INTEGER);
          const value = base64Bytes(r[4], `${wj}[4]`);
          const lease = decimalBigint(r[5], `${wj}[5]`, 0n, LEASE_ID_MAX);
          if (prev) {
            if (version !== prev.version + 1 || createRevision !== prev.createRevision) imageFail(wj, `version ${version} created at ${createRevision} does not follow version ${prev.version} created at ${prev.createRevision}`);
          } else if (main > compactRev && (version !== 1 || createRevision !== main)) {
            imageFail(wj, `a new key's first version must be 1 created at its revision ${main}, got version ${version} created at ${createRevision}`);
          }
          kv = { key, createRevision, modRevision: main, version, value, lease };
        }
        h.push({ main, sub, kv });
        if (main > compactRev) {
          const e: KvEvent = kv
            ? { type: 'put', kv, ...(prev ? { prevKv: prev } : {}) }
            : { type: 'delete', kv: { key, createRevision: 0, modRevision: main, version: 0, value: EMPTY, lease: 0n }, prevKv: prev! };
          events.push({ main, sub, e });
        } else {
          // Here j === 0 and kv is a put (checked above): the entry compaction kept.
          const id = `${main}.${sub}`;
          if (compacted.has(id)) imageFail(wj, `revision ${id} appears twice`);
          compacted.add(id);
        }
        prev = kv;
      }
      if (prev && prev.lease !== 0n) leasedLive++;
      s.keys.set(k, h);
      s.histories.push({ key, h });
    }
    // The change log: every revision after the compact revision (and after the empty store's
    // 1) is made of sub-revisions 0..n-1, each once.
    events.sort((a, b) => a.main - b.main || a.sub - b.sub);
    let at = { main: Math.max(compactRev, 1), sub: -1 };
    for (const x of events) {
      const next = x.main === at.main ? x.sub === at.sub + 1 : x.main === at.main + 1 && x.sub === 0;
      if (!next) imageFail('store.keys', `revision ${x.main}.${x.sub} follows ${at.main}.${at.sub}: changes missing or repeated`);
      at = x;
    }
    if (at.main !== rev) imageFail('store.keys', `the changes end at revision ${at.main}, the store is at ${rev}`);
    const leases: { id: bigint; ttl: number }[] = [];
    let prevId = 0n;
    let leasedNamed = 0;
    const leaseList = arrayOf(o.leases, 'store.leases');
    for (let i = 0; i < leaseList.length; i++) {
      const w = `store.leases[${i}]`;
      const item = arrayOf(leaseList[i], w, 3);
      const id = decimalBigint(item[0], `${w}[0]`, 1n, LEASE_ID_MAX);
      if (id <= prevId) imageFail(`${w}[0]`, 'lease ids not sorted or not unique');
      prevId = id;
      const ttl = safeInt(item[1], `${w}[1]`, 0, Number.MAX_SAFE_INTEGER);
      const keys = new Set<string>();
      let prevKey: string | null = null;
      const named = arrayOf(item[2], `${w}[2]`);
      for (let j = 0; j < named.length; j++) {
        const k = bin(base64Bytes(named[j], `${w}[2][${j}]`));
        if (prevKey !== null && k <= prevKey) imageFail(`${w}[2][${j}]`, 'keys not sorted or not unique');
        prevKey = k;
        const live = kvAt(k, rev);
        if (!live || live.lease !== id) imageFail(`${w}[2][${j}]`, `the key is not live with lease ${id}`);
        keys.add(k);
      }
      leasedNamed += keys.size;
      leases.push({ id, ttl });
    }
    // Each named key is live with that lease (checked above), once per lease: equal counts
    // mean every live key with a lease is in its lease's set.
    if (leasedNamed !== leasedLive) imageFail('store.leases', `${leasedLive - leasedNamed} live keys with a lease are missing from their lease's keys`);
    return { rev, compactRev, histories: s.histories, leases };
  }
}

function sorter(target: SortTarget): (a: KeyValue, b: KeyValue) => number {
  switch (target) {
    case 'key':
      return (a, b) => compareBytes(a.key, b.key);
    case 'version':
      return (a, b) => a.version - b.version || compareBytes(a.key, b.key);
    case 'create':
      return (a, b) => a.createRevision - b.createRevision || compareBytes(a.key, b.key);
    case 'mod':
      return (a, b) => a.modRevision - b.modRevision || compareBytes(a.key, b.key);
    case 'value':
      return (a, b) => compareBytes(a.value, b.value) || compareBytes(a.key, b.key);
  }
}

function compareOne(c: Compare, kv: KeyValue): boolean {
  let d: number;
  switch (c.target) {
    case 'version':
      d = kv.version - c.value;
      break;
    case 'create':
      d = kv.createRevision - c.value;
      break;
    case 'mod':
      d = kv.modRevision - c.value;
      break;
    case 'lease':
      d = kv.lease < c.value ? -1 : kv.lease > c.value ? 1 : 0;
      break;
    case 'value':
      d = compareBytes(kv.value, c.value);
      break;
  }
  switch (c.result) {
    case 'equal':
      return d === 0;
    case 'greater':
      return d > 0;
    case 'less':
      return d < 0;
    case 'notEqual':
      return d !== 0;
  }
}
