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
import { BTree, binKey, binKeyFrom, MemoryBackend, unbinKey, type Backend } from './backend.js';
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
  readonly keys: Set<string>;
}

/**
 * A key's revisions since the compact revision (plus the one compaction keeps), in (main, sub)
 * order: what the in-memory index holds per key — numbers only, the key-values themselves are
 * in the backend. `subs[i] < 0` marks a tombstone at sub-revision -(subs[i] + 1).
 */
interface KeyHist {
  mains: number[];
  subs: number[];
}

/**
 * Appends a revision to key `k`'s history in the index. A key's first revision creates its
 * history with array literals, which V8 sizes to their elements: `[]` and then a push reserves
 * room for 17, about 280 bytes more per key on the heap, and most keys have one revision
 * (issue 11: the index is what a member's memory grows with).
 */
function addRevision(index: BTree<string, KeyHist>, k: string, main: number, sub: number): void {
  const h = index.get(k);
  if (h === undefined) {
    index.set(k, { mains: [main], subs: [sub] });
    return;
  }
  h.mains.push(main);
  h.subs.push(sub);
}

/** A live key-value found in the index: its key and the revision holding it in the backend. */
interface Ref {
  readonly k: string;
  readonly main: number;
  readonly sub: number;
}

const EMPTY = new Uint8Array(0);

// -----------------------------------------------------------------------------------------
// The store's layout in the backend (one ordered key space, a prefix byte per kind):
//   'r' main(8, big-endian) sub(8)  -> a revision: flags(1: 0 put, 1 tombstone) create(8)
//                                      version(8) lease(8) keyLength(4) key value
//   'k' main(8) sub(8)              -> the same revision's index entry: flags(1) lease(8) key
//                                      (what a restart scans to rebuild the index: no values)
//   'l' id(8)                       -> a lease: ttl(8)
//   'm' name                        -> metadata: 'rev', 'compact' (8 each); the state machine
//                                      adds its own ('applied', 'members': see state-machine.ts)
// Revision keys sort in revision order, so the change log is a scan from a revision on.
// -----------------------------------------------------------------------------------------

const REV = 0x72;
const IDX = 0x6b;
const LEASE = 0x6c;
const META = 0x6d;
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

function idxKey(main: number, sub: number): Uint8Array {
  const b = revKey(main, sub);
  b[0] = IDX;
  return b;
}

/** The index entry of a revision: tombstone flag, lease, key. */
function encodeIdx(key: Uint8Array, kv: KeyValue | null): Uint8Array {
  const b = new Uint8Array(9 + key.length);
  b[0] = kv ? 0 : 1;
  if (kv) new DataView(b.buffer).setBigUint64(1, kv.lease);
  b.set(key, 9);
  return b;
}

function leaseKey(id: bigint): Uint8Array {
  const b = new Uint8Array(9);
  b[0] = LEASE;
  new DataView(b.buffer).setBigUint64(1, id);
  return b;
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
 * before they are written. Cross-entry invariants are checked when a store opens over them.
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
      if (key.length !== 17) return `an index key of ${key.length} bytes (17)`;
      return value.length < 10 || value[0]! > 1 ? 'an index entry with a bad header' : null;
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

function tomb(sub: number): number {
  return -(sub + 1);
}

function realSub(s: number): number {
  return s < 0 ? -(s + 1) : s;
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

export class MvccStore {
  /** The store's revision: an empty store is at 1, the first write gets 2. */
  private rev = 1;
  private compactRev = 0;
  /** The index: key (binary string) -> its revisions, in key order. O(log n) per update. */
  private readonly index: BTree<string, KeyHist> = new BTree();
  private readonly leases = new Map<bigint, Lease>();
  /** Revision being written by the current write transaction, its next sub-revision, its events. */
  private writeMain = 0;
  private writeSub = 0;
  private events: KvEvent[] = [];
  private readonly limits: MvccLimits;
  private listeners: ((events: readonly KvEvent[], rev: number) => void)[] = [];
  /** Where the revisions live (an in-memory backend unless given one). */
  readonly backend: Backend;

  /**
   * A store over `backend` (default: a fresh in-memory one), holding what the backend holds:
   * the index is rebuilt from a scan of its revisions (like etcd's restore of its key index),
   * the leases and their keys from its lease records and the keys' latest versions.
   */
  constructor(limits: Partial<MvccLimits> = {}, backend: Backend = new MemoryBackend(), takeOverFrom?: MvccStore) {
    this.limits = { ...MVCC_LIMITS_DEFAULT, ...limits };
    this.backend = backend;
    if (takeOverFrom === undefined) {
      this.load();
      return;
    }
    // See takeOver.
    const from = takeOverFrom;
    assert(from.writeMain === 0 && from.events.length === 0, () => 'a store is taken over in the middle of a write');
    this.rev = from.rev;
    this.compactRev = from.compactRev;
    this.index = from.index;
    this.leases = from.leases;
  }

  /**
   * A store over `backend`, which now holds exactly what `from`'s backend holds (it adopted
   * that backend: Backend.adopt), taking over `from`'s index and leases instead of rebuilding
   * them by a scan: installing a streamed snapshot opens the staged store once to check it, and
   * that scan is the part of an install that grows with the store (issue 11: at 240,000
   * revisions it was most of the install, and it was done twice). `from` has no write under
   * way (a store just opened has none) and is not used afterwards; its listeners stay with it.
   */
  static takeOver(from: MvccStore, limits: Partial<MvccLimits>, backend: Backend): MvccStore {
    return new MvccStore(limits, backend, from);
  }

  private load(): void {
    const rev = this.backend.get(META_REV);
    if (rev !== undefined) this.rev = u64Of(rev);
    this.compactRev = u64Of(this.backend.get(META_COMPACT));
    /** The lease of each key whose latest revision is a put with a lease. */
    const leased = new Map<string, bigint>();
    for (const [rk, rec] of this.backend.scan(Uint8Array.of(IDX), Uint8Array.of(IDX + 1))) {
      const main = getU64(rk, 1);
      const sub = getU64(rk, 9);
      const k = binKeyFrom(rec, 9);
      const dead = rec[0] === 1;
      addRevision(this.index, k, main, dead ? tomb(sub) : sub);
      let lease = 0n;
      if (!dead && (rec[1]! | rec[2]! | rec[3]! | rec[4]! | rec[5]! | rec[6]! | rec[7]! | rec[8]!) !== 0) lease = new DataView(rec.buffer, rec.byteOffset, rec.byteLength).getBigUint64(1);
      if (lease === 0n) leased.delete(k);
      else leased.set(k, lease);
    }
    for (const [lk, v] of this.backend.scan(Uint8Array.of(LEASE), Uint8Array.of(LEASE + 1))) {
      const id = new DataView(lk.buffer, lk.byteOffset, lk.byteLength).getBigUint64(1);
      this.leases.set(id, { id, ttl: u64Of(v), keys: new Set() });
    }
    for (const [k, id] of leased) {
      const l = this.leases.get(id);
      assert(l !== undefined, () => `the store's key ${JSON.stringify(k)} is attached to lease ${id}, which the store does not hold`);
      l.keys.add(k);
    }
  }

  get revision(): number {
    return this.rev;
  }

  get compactRevision(): number {
    return this.compactRev;
  }

  get keyCount(): number {
    return this.index.size;
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
   * Counting and the common orders (by key, by mod revision) work on the index alone; only
   * the key-values returned are read from the backend, so a range with a limit reads `limit`
   * values whatever the range holds. Other orders and create-revision filters read them all.
   */
  private rangeAt(r: RangeRequest, at: number): RangeResult {
    const refs = this.collectRefs(keyInterval(r.key, r.rangeEnd), at);
    const count = refs.length;
    if (r.countOnly) return { kvs: [], more: false, count };
    let order = r.sortOrder ?? 'none';
    const target = r.sortTarget ?? 'key';
    if (order === 'none' && target !== 'key') order = 'ascend';
    const limit = r.limit && r.limit > 0 ? r.limit : 0;
    let kvs: KeyValue[];
    let more = false;
    if (!r.minCreateRevision && !r.maxCreateRevision && (target === 'key' || target === 'mod')) {
      let sel = refs;
      if (r.minModRevision) sel = sel.filter((x) => x.main >= r.minModRevision!);
      if (r.maxModRevision) sel = sel.filter((x) => x.main <= r.maxModRevision!);
      if (target === 'key' && order === 'descend') sel = sel.reverse();
      else if (target === 'mod' && order !== 'none') {
        const up = (a: Ref, b: Ref) => a.main - b.main || (a.k < b.k ? -1 : a.k > b.k ? 1 : 0);
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

  /** The live keys in the interval at revision `at`, in key order, from the index alone. */
  private collectRefs(iv: BinInterval, at: number): Ref[] {
    const out: Ref[] = [];
    const one = (k: string, h: KeyHist): void => {
      const i = posAt(h, at);
      if (i >= 0 && h.subs[i]! >= 0) out.push({ k, main: h.mains[i]!, sub: h.subs[i]! });
    };
    if (iv.end === null) {
      const h = this.index.get(iv.start);
      if (h) one(iv.start, h);
      return out;
    }
    for (const [k, h] of this.index.entries(iv.start)) {
      if (iv.end !== '' && k >= iv.end) break;
      one(k, h);
    }
    return out;
  }

  /** Live key-values in the interval at revision `at`, in key order. */
  private collect(iv: BinInterval, at: number): KeyValue[] {
    return this.collectRefs(iv, at).map((x) => this.read(x.main, x.sub)!);
  }

  /** The key-value a revision holds (null: a tombstone). */
  private read(main: number, sub: number): KeyValue | null {
    const rec = this.backend.get(revKey(main, sub));
    assert(rec !== undefined, () => `the index names revision ${main}.${sub}, which the backend does not hold`);
    return decodeRecord(rec, main);
  }

  private kvAt(k: string, at: number): KeyValue | null {
    const h = this.index.get(k);
    if (!h) return null;
    const i = posAt(h, at);
    if (i < 0 || h.subs[i]! < 0) return null;
    return this.read(h.mains[i]!, h.subs[i]!);
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
      const prevKv = this.previous(bin(key), main, sub);
      if (kv) out.push({ type: 'put', kv, ...(prevKv ? { prevKv } : {}) });
      else out.push({ type: 'delete', kv: { key, createRevision: 0, modRevision: main, version: 0, value: EMPTY, lease: 0n }, prevKv: prevKv! });
    }
    return out;
  }

  /** The key-value of `k` just before revision (main, sub), if that was a put. */
  private previous(k: string, main: number, sub: number): KeyValue | undefined {
    const h = this.index.get(k);
    assert(h !== undefined, () => `revision ${main}.${sub} of a key the index does not hold`);
    let i = posAt(h, main);
    while (i >= 0 && h.mains[i] === main && realSub(h.subs[i]!) >= sub) i--;
    if (i < 0 || h.subs[i]! < 0) return undefined;
    return this.read(h.mains[i]!, h.subs[i]!) ?? undefined;
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
   * put (etcd's compaction): from the index and from the backend, whose space is reused.
   */
  compact(revision: number): void {
    if (revision <= this.compactRev) throw ERR.compacted();
    if (revision > this.rev) throw ERR.futureRev();
    this.compactRev = revision;
    this.backend.put(META_COMPACT, u64Bytes(revision));
    const gone: string[] = [];
    this.index.forEach((h, k) => {
      const last = posAt(h, revision);
      if (last < 0) return;
      const keepFrom = h.subs[last]! < 0 ? last + 1 : last;
      if (keepFrom === 0) return;
      for (let i = 0; i < keepFrom; i++) {
        this.backend.del(revKey(h.mains[i]!, realSub(h.subs[i]!)));
        this.backend.del(idxKey(h.mains[i]!, realSub(h.subs[i]!)));
      }
      h.mains.splice(0, keepFrom);
      h.subs.splice(0, keepFrom);
      if (h.mains.length === 0) gone.push(k);
    });
    for (const k of gone) this.index.delete(k);
  }

  grantLease(id: bigint, ttl: number): void {
    if (id <= 0n) throw new RangeError(`lease id must be positive, got ${id}`);
    if (this.leases.has(id)) throw ERR.leaseExists();
    this.leases.set(id, { id, ttl, keys: new Set() });
    this.backend.put(leaseKey(id), u64Bytes(ttl));
  }

  /** Deletes every key attached to the lease in one revision, then the lease. */
  revokeLease(id: bigint): void {
    const l = this.leases.get(id);
    if (!l) throw ERR.leaseNotFound();
    const keys = [...l.keys].sort();
    this.write(() => {
      for (const k of keys) this.tombstone(k);
    });
    this.leases.delete(id);
    this.backend.del(leaseKey(id));
  }

  lease(id: bigint): { id: bigint; ttl: number; keys: Uint8Array[] } | undefined {
    const l = this.leases.get(id);
    return l && { id: l.id, ttl: l.ttl, keys: [...l.keys].sort().map(unbin) };
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
      if (!this.kvAt(bin(r.key), this.rev)) throw ERR.keyNotFound();
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
    const kvs = this.collect(keyInterval(c.key, c.rangeEnd), at);
    if (kvs.length === 0) {
      if (c.target === 'value') return false;
      return compareOne(c, { key: c.key, createRevision: 0, modRevision: 0, version: 0, value: EMPTY, lease: 0n });
    }
    return kvs.every((kv) => compareOne(c, kv));
  }

  private doPut(r: PutRequest): { prevKv?: KeyValue } {
    const k = bin(r.key);
    const prev = this.kvAt(k, Number.MAX_SAFE_INTEGER);
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
    if (prev && prev.lease !== 0n && prev.lease !== lease) this.leases.get(prev.lease)?.keys.delete(k);
    if (lease !== 0n) this.leases.get(lease)!.keys.add(k);
    this.append(k, kv, prev);
    return r.prevKv && prev ? { prevKv: prev } : {};
  }

  private doDelete(r: DeleteRangeRequest): { deleted: number; prevKvs: KeyValue[] } {
    const kvs = this.collect(keyInterval(r.key, r.rangeEnd), Number.MAX_SAFE_INTEGER);
    for (const kv of kvs) this.tombstone(bin(kv.key));
    return { deleted: kvs.length, prevKvs: r.prevKv ? kvs : [] };
  }

  private tombstone(k: string): void {
    const prev = this.kvAt(k, Number.MAX_SAFE_INTEGER);
    if (!prev) return;
    if (prev.lease !== 0n) this.leases.get(prev.lease)?.keys.delete(k);
    this.append(k, null, prev);
  }

  /** Writes the next sub-revision of the revision being written: `kv` for `k`, or its tombstone. */
  private append(k: string, kv: KeyValue | null, prev: KeyValue | null): void {
    const main = this.writeMain;
    const sub = this.writeSub++;
    const key = kv ? kv.key : prev!.key;
    const rec = encodeRecord(key, kv);
    this.backend.put(revKey(main, sub), rec);
    this.backend.put(idxKey(main, sub), encodeIdx(key, kv));
    addRevision(this.index, k, main, kv ? sub : tomb(sub));
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
    for (const [k, hist] of this.index.entries()) {
      for (let i = 0; i < hist.mains.length; i++) {
        const main = hist.mains[i]!;
        if (main > rev) break;
        const sub = realSub(hist.subs[i]!);
        const kv = hist.subs[i]! < 0 ? null : this.read(main, sub);
        h = crc32(enc.encode(`${main}.${sub}:${kv ? `${kv.createRevision}.${kv.version}.${kv.lease}` : 'x'}`), crc32(unbin(k), h));
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
    for (const [k, hist] of this.index.entries()) {
      keys.push([
        b64(unbin(k)),
        hist.mains.map((main, i) => {
          const s = hist.subs[i]!;
          if (s < 0) return [main, realSub(s)];
          const kv = this.read(main, s)!;
          return [main, s, kv.createRevision, kv.version, b64(kv.value), kv.lease.toString()];
        }),
      ]);
    }
    const leases = this.leaseIds().map((id) => {
      const l = this.leases.get(id)!;
      return [id.toString(), l.ttl, [...l.keys].sort().map((k) => b64(unbin(k)))];
    });
    return new TextEncoder().encode(JSON.stringify({ v: 1, rev: this.rev, compactRev: this.compactRev, keys, leases }));
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
      for (const r of h) {
        backend.put(revKey(r.main, r.sub), encodeRecord(key, r.kv));
        backend.put(idxKey(r.main, r.sub), encodeIdx(key, r.kv));
      }
    }
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

/** The position of the key's last revision with main <= at, or -1. */
function posAt(h: KeyHist, at: number): number {
  let lo = 0;
  let hi = h.mains.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (h.mains[mid]! <= at) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
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
