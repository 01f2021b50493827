/**
 * Between the wire objects (proto-loader shape: snake_case, int64 as decimal strings, enums as
 * names, bytes as Buffer) and the key-value layer's types.
 */
import { ERR, KvError } from '../kv/errors.js';
import {
  checkPutRequest,
  checkTxnIntervals,
  TXN_NESTING_MAX,
  TXN_OPS_TOTAL_MAX,
  txnSize,
  type Compare,
  type CompareResult,
  type DeleteRangeRequest,
  type KeyValue,
  type KvEvent,
  type PutRequest,
  type RangeRequest,
  type RangeResult,
  type RequestOp,
  type ResponseOp,
  type SortOrder,
  type SortTarget,
  type TxnRequest,
  type TxnResult,
} from '../kv/mvcc.js';

/** A wire object: fields by name. */
export type Wire = Record<string, unknown>;

export const buf = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/** A bytes field (absent = empty, as protobuf has it). */
export const bytes = (v: unknown): Uint8Array => (v instanceof Uint8Array ? v : typeof v === 'string' ? Buffer.from(v) : new Uint8Array(0));

/** An int64 field as a number (revisions, counts). Values beyond 2^53 are refused. */
export function num(v: unknown, field: string): number {
  if (v === undefined || v === null || v === '') return 0;
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isSafeInteger(n)) throw new KvError('badRequest', `etcdserver: ${field} ${String(v)} is out of range`);
  return n;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** An int64 field as a bigint (lease ids); outside int64 is refused (the gateway's JSON can say anything). */
/** A uint64 field (member ids): 0 .. 2^64-1. */
export function bigU64(v: unknown): bigint {
  if (typeof v === 'string' && /^\d{1,20}$/.test(v) && BigInt(v) <= 0xffff_ffff_ffff_ffffn) return BigInt(v);
  return big(v);
}

export function big(v: unknown): bigint {
  if (v === undefined || v === null || v === '') return 0n;
  let n: bigint;
  try {
    n = BigInt(v as string | number);
  } catch {
    throw new KvError('badRequest', `etcdserver: "${String(v)}" is not an integer`);
  }
  if (n < INT64_MIN || n > INT64_MAX) throw new KvError('badRequest', `etcdserver: ${n} is out of range`);
  return n;
}

const SORT_ORDER: Record<string, SortOrder> = { NONE: 'none', ASCEND: 'ascend', DESCEND: 'descend' };
const SORT_TARGET: Record<string, SortTarget> = { KEY: 'key', VERSION: 'version', CREATE: 'create', MOD: 'mod', VALUE: 'value' };
const COMPARE_RESULT: Record<string, CompareResult> = { EQUAL: 'equal', GREATER: 'greater', LESS: 'less', NOT_EQUAL: 'notEqual' };

function enumOf<T>(table: Record<string, T>, v: unknown, field: string): T {
  const r = Object.hasOwn(table, String(v ?? '')) ? table[String(v)] : undefined;
  if (r === undefined) throw new KvError('badRequest', `etcdserver: unknown ${field} ${String(v)}`);
  return r;
}

function sortOption<T>(table: Record<string, T>, v: unknown): T {
  const r = Object.hasOwn(table, String(v)) ? table[String(v)] : undefined;
  if (r === undefined) throw ERR.invalidSortOption();
  return r;
}

export function rangeRequest(w: Wire): RangeRequest {
  return {
    key: bytes(w.key),
    rangeEnd: bytes(w.range_end),
    limit: num(w.limit, 'limit'),
    revision: num(w.revision, 'revision'),
    sortOrder: sortOption(SORT_ORDER, w.sort_order ?? 'NONE'),
    sortTarget: sortOption(SORT_TARGET, w.sort_target ?? 'KEY'),
    keysOnly: Boolean(w.keys_only),
    countOnly: Boolean(w.count_only),
    minModRevision: num(w.min_mod_revision, 'min_mod_revision'),
    maxModRevision: num(w.max_mod_revision, 'max_mod_revision'),
    minCreateRevision: num(w.min_create_revision, 'min_create_revision'),
    maxCreateRevision: num(w.max_create_revision, 'max_create_revision'),
  };
}

export function putRequest(w: Wire): PutRequest {
  return {
    key: bytes(w.key),
    value: bytes(w.value),
    lease: big(w.lease),
    prevKv: Boolean(w.prev_kv),
    ignoreValue: Boolean(w.ignore_value),
    ignoreLease: Boolean(w.ignore_lease),
  };
}

export function deleteRangeRequest(w: Wire): DeleteRangeRequest {
  return { key: bytes(w.key), rangeEnd: bytes(w.range_end), prevKv: Boolean(w.prev_kv) };
}

function compare(w: Wire): Compare {
  const key = bytes(w.key);
  const rangeEnd = bytes(w.range_end);
  const result = enumOf(COMPARE_RESULT, w.result ?? 'EQUAL', 'compare result');
  switch (String(w.target ?? 'VERSION')) {
    case 'VERSION':
      return { key, rangeEnd, result, target: 'version', value: num(w.version, 'version') };
    case 'CREATE':
      return { key, rangeEnd, result, target: 'create', value: num(w.create_revision, 'create_revision') };
    case 'MOD':
      return { key, rangeEnd, result, target: 'mod', value: num(w.mod_revision, 'mod_revision') };
    case 'VALUE':
      return { key, rangeEnd, result, target: 'value', value: bytes(w.value) };
    case 'LEASE':
      return { key, rangeEnd, result, target: 'lease', value: big(w.lease) };
    default:
      throw new KvError('badRequest', `etcdserver: unknown compare target ${String(w.target)}`);
  }
}

const obj = (v: unknown): Wire => (v !== null && typeof v === 'object' ? (v as Wire) : {});

function requestOp(w: Wire, depth: number): RequestOp {
  switch (w.request) {
    case 'request_range':
      return { range: rangeRequest(obj(w.request_range)) };
    case 'request_put':
      return { put: putRequest(obj(w.request_put)) };
    case 'request_delete_range':
      return { deleteRange: deleteRangeRequest(obj(w.request_delete_range)) };
    case 'request_txn':
      return { txn: txnRequest(obj(w.request_txn), depth + 1) };
    default:
      throw ERR.emptyRequestOp();
  }
}

/** `depth`: how many txns enclose this one. Deeper than TXN_NESTING_MAX is refused before it is converted. */
export function txnRequest(w: Wire, depth = 0): TxnRequest {
  if (depth > TXN_NESTING_MAX) throw ERR.txnTooDeep();
  const list = (v: unknown): Wire[] => (Array.isArray(v) ? (v as Wire[]) : []);
  return {
    compare: list(w.compare).map((c) => compare(obj(c))),
    success: list(w.success).map((op) => requestOp(obj(op), depth)),
    failure: list(w.failure).map((op) => requestOp(obj(op), depth)),
  };
}

export { checkPutRequest };

/**
 * etcd's checkTxnRequest (v3rpc/key.go): at each level the largest of the compares, success
 * and failure counts must not exceed the budget, which starts at --max-txn-ops and shrinks by
 * that count for the txns nested below; keys must be given; an op must hold a request. Then
 * our own bounds: nesting (TXN_NESTING_MAX, checked while converting) and the whole tree's size
 * (TXN_OPS_TOTAL_MAX, as the store checks it at apply); then etcd's duplicate-key rule.
 */
export function checkTxnRequest(t: TxnRequest, maxTxnOps: number): void {
  const check = (t: TxnRequest, budget: number): void => {
    const opc = Math.max(t.compare.length, t.success.length, t.failure.length);
    if (opc > budget) throw ERR.tooManyOps();
    for (const c of t.compare) if (c.key.length === 0) throw ERR.emptyKey();
    for (const op of [...t.success, ...t.failure]) {
      if ('range' in op) {
        if (op.range.key.length === 0) throw ERR.emptyKey();
      } else if ('put' in op) checkPutRequest(op.put);
      else if ('deleteRange' in op) {
        if (op.deleteRange.key.length === 0) throw ERR.emptyKey();
      } else check(op.txn, budget - opc);
    }
  };
  check(t, maxTxnOps);
  if (txnSize(t) > Math.max(TXN_OPS_TOTAL_MAX, 2 * maxTxnOps)) throw ERR.tooManyOps();
  checkTxnIntervals(t);
}

/** True when the txn (with nested ones) only reads: it can be served without the log. */
export function txnReadOnly(t: TxnRequest): boolean {
  const ops = (xs: readonly RequestOp[]): boolean => xs.every((op) => ('range' in op ? true : 'txn' in op ? txnReadOnly(op.txn) : false));
  return ops(t.success) && ops(t.failure);
}

export function keyValue(kv: KeyValue): Wire {
  return {
    key: buf(kv.key),
    create_revision: String(kv.createRevision),
    mod_revision: String(kv.modRevision),
    version: String(kv.version),
    value: buf(kv.value),
    lease: kv.lease.toString(),
  };
}

export function event(e: KvEvent): Wire {
  return { type: e.type === 'put' ? 'PUT' : 'DELETE', kv: keyValue(e.kv), prev_kv: e.prevKv ? keyValue(e.prevKv) : null };
}

export function rangeResponse(r: RangeResult, header: Wire): Wire {
  return { header, kvs: r.kvs.map(keyValue), more: r.more, count: String(r.count) };
}

function responseOp(r: ResponseOp, header: Wire): Wire {
  if ('range' in r) return { response_range: rangeResponse(r.range, header) };
  if ('put' in r) return { response_put: { header, prev_kv: r.put.prevKv ? keyValue(r.put.prevKv) : null } };
  if ('deleteRange' in r) return { response_delete_range: { header, deleted: String(r.deleteRange.deleted), prev_kvs: r.deleteRange.prevKvs.map(keyValue) } };
  return { response_txn: txnResponse(r.txn, header) };
}

export function txnResponse(t: TxnResult, header: Wire): Wire {
  // Responses inside a txn carry only the revision in their header, as etcd's do.
  const inner = { revision: header.revision };
  return { header, succeeded: t.succeeded, responses: t.responses.map((r) => responseOp(r, inner)) };
}
