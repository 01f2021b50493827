/**
 * Request options of the client and their wire form, plus the `Cmp`/`Op` builders for
 * transactions. Everything a builder returns is a plain object, so transactions can also be
 * written by hand.
 */
import { prefixEnd as prefixEndBytes } from '../lib/key-range.js';
import { toBuffer, type Bytes, type Wire } from './types.js';

/** Sort order of a range (etcd's RangeRequest.SortOrder). */
export type SortOrder = 'NONE' | 'ASCEND' | 'DESCEND';
/** Sort target of a range (etcd's RangeRequest.SortTarget). */
export type SortTarget = 'KEY' | 'VERSION' | 'CREATE' | 'MOD' | 'VALUE';

/** Which keys a get or delete covers: one key (default), a prefix, all keys >= key, or [key, rangeEnd). */
export interface RangeSelector {
  /** All keys starting with the key. */
  prefix?: boolean;
  /** All keys >= the key. */
  fromKey?: boolean;
  /** Explicit end (exclusive) of the range. */
  rangeEnd?: Bytes;
}

/** How fresh a read must be; see GetOptions.consistency. */
export type Consistency = 'linearizable' | 'serializable' | 'session';

/** Options of `get`. Revisions and limits accept number or bigint. */
export interface GetOptions extends RangeSelector {
  /** Read at this revision (0 = latest). */
  revision?: number | bigint;
  limit?: number | bigint;
  sortOrder?: SortOrder;
  sortTarget?: SortTarget;
  keysOnly?: boolean;
  countOnly?: boolean;
  /** Serve from the contacted member's local state (may be stale) instead of a linearizable read. */
  serializable?: boolean;
  /**
   * The consistency of the read (overrides `serializable`): 'linearizable' (default, ReadIndex
   * through the leader), 'serializable' (the member's applied state, possibly stale), or
   * 'session' (the member's state once it has applied at least every revision this client has
   * seen: read-your-writes and monotonic reads without going to the leader).
   */
  consistency?: Consistency;
  minModRevision?: number | bigint;
  maxModRevision?: number | bigint;
  minCreateRevision?: number | bigint;
  maxCreateRevision?: number | bigint;
}

/** Options of `put`. */
export interface PutOptions {
  /** Attach to this lease. */
  lease?: bigint;
  /** Return the previous pair. */
  prevKv?: boolean;
  /** Keep the current value (the value argument must be empty). */
  ignoreValue?: boolean;
  /** Keep the current lease. */
  ignoreLease?: boolean;
}

/** Options of `delete`. */
export interface DeleteOptions extends RangeSelector {
  /** Return the deleted pairs. */
  prevKv?: boolean;
}

const ZERO_BYTE = Buffer.from([0]);

/**
 * The end of the range of keys starting with `key`: the key with trailing 0xff bytes dropped and
 * its last byte incremented; `\0` (everything) when no such key exists (lib/key-range.ts).
 */
export function prefixEnd(key: Buffer): Buffer {
  const end = prefixEndBytes(key);
  return Buffer.from(end.buffer, end.byteOffset, end.byteLength);
}

/**
 * The wire key and range_end for a selector. An empty key with prefix/fromKey means all keys.
 * A single key has no range_end at all: etcd reads an explicitly encoded empty range_end as
 * `\0` (all keys >= key), and protobufjs encodes empty bytes fields that are present.
 */
export function rangeOf(key: Bytes, o: RangeSelector): { key: Buffer; range_end?: Buffer } {
  let k = toBuffer(key);
  const all = k.length === 0 && (o.prefix || o.fromKey);
  if (all) k = ZERO_BYTE;
  if (o.fromKey || all) return { key: k, range_end: ZERO_BYTE };
  if (o.prefix) return { key: k, range_end: prefixEnd(k) };
  return o.rangeEnd === undefined || toBuffer(o.rangeEnd).length === 0 ? { key: k } : { key: k, range_end: toBuffer(o.rangeEnd) };
}

const int = (v: number | bigint | undefined): string => String(v ?? 0);

export function rangeRequest(key: Bytes, o: GetOptions = {}): Wire {
  return {
    ...rangeOf(key, o),
    limit: int(o.limit),
    revision: int(o.revision),
    sort_order: o.sortOrder ?? 'NONE',
    sort_target: o.sortTarget ?? 'KEY',
    serializable: o.consistency === undefined ? Boolean(o.serializable) : o.consistency !== 'linearizable',
    keys_only: Boolean(o.keysOnly),
    count_only: Boolean(o.countOnly),
    min_mod_revision: int(o.minModRevision),
    max_mod_revision: int(o.maxModRevision),
    min_create_revision: int(o.minCreateRevision),
    max_create_revision: int(o.maxCreateRevision),
  };
}

export function putRequest(key: Bytes, value: Bytes, o: PutOptions = {}): Wire {
  return {
    key: toBuffer(key),
    value: toBuffer(value),
    lease: int(o.lease),
    prev_kv: Boolean(o.prevKv),
    ignore_value: Boolean(o.ignoreValue),
    ignore_lease: Boolean(o.ignoreLease),
  };
}

export function deleteRequest(key: Bytes, o: DeleteOptions = {}): Wire {
  return { ...rangeOf(key, o), prev_kv: Boolean(o.prevKv) };
}

/** What a comparison looks at. */
export type CompareTarget = 'VERSION' | 'CREATE' | 'MOD' | 'VALUE' | 'LEASE';
/** How a comparison compares (the target's value on the left). */
export type CompareResult = 'EQUAL' | 'GREATER' | 'LESS' | 'NOT_EQUAL';
/** Operator shorthands accepted by the `Cmp` builders. */
export type CompareOp = '=' | '==' | '!=' | '>' | '<';

/** One comparison of a transaction. `value` is bytes for VALUE, an integer otherwise. */
export interface Compare {
  key: Bytes;
  target: CompareTarget;
  result: CompareResult;
  value: Bytes | number | bigint;
  /** Compare every key in [key, rangeEnd) (all must satisfy it). */
  rangeEnd?: Bytes;
}

/** One operation of a transaction. */
export type TxnOp =
  | { get: { key: Bytes } & GetOptions }
  | { put: { key: Bytes; value: Bytes } & PutOptions }
  | { delete: { key: Bytes } & DeleteOptions }
  | { txn: TxnRequest };

/** A transaction: if every `compare` holds, run `success`, else `failure`. */
export interface TxnRequest {
  compare?: Compare[];
  success?: TxnOp[];
  failure?: TxnOp[];
}

const OPS: Record<CompareOp, CompareResult> = { '=': 'EQUAL', '==': 'EQUAL', '!=': 'NOT_EQUAL', '>': 'GREATER', '<': 'LESS' };

function cmp(target: CompareTarget, key: Bytes, op: CompareOp | CompareResult, value: Bytes | number | bigint): Compare {
  return { key, target, result: op in OPS ? OPS[op as CompareOp] : (op as CompareResult), value };
}

/** Builders for transaction comparisons, e.g. `Cmp.createRevision('k', '=', 0)`. */
export const Cmp = {
  value: (key: Bytes, op: CompareOp | CompareResult, value: Bytes): Compare => cmp('VALUE', key, op, value),
  version: (key: Bytes, op: CompareOp | CompareResult, version: number | bigint): Compare => cmp('VERSION', key, op, version),
  createRevision: (key: Bytes, op: CompareOp | CompareResult, rev: number | bigint): Compare => cmp('CREATE', key, op, rev),
  modRevision: (key: Bytes, op: CompareOp | CompareResult, rev: number | bigint): Compare => cmp('MOD', key, op, rev),
  lease: (key: Bytes, op: CompareOp | CompareResult, lease: number | bigint): Compare => cmp('LEASE', key, op, lease),
};

/** Builders for transaction operations, e.g. `Op.put('k', 'v', { prevKv: true })`. */
export const Op = {
  get: (key: Bytes, o: GetOptions = {}): TxnOp => ({ get: { key, ...o } }),
  put: (key: Bytes, value: Bytes, o: PutOptions = {}): TxnOp => ({ put: { key, value, ...o } }),
  delete: (key: Bytes, o: DeleteOptions = {}): TxnOp => ({ delete: { key, ...o } }),
  txn: (t: TxnRequest): TxnOp => ({ txn: t }),
};

const UNION_FIELD: Record<CompareTarget, string> = { VERSION: 'version', CREATE: 'create_revision', MOD: 'mod_revision', VALUE: 'value', LEASE: 'lease' };

function compareToWire(c: Compare): Wire {
  const field = UNION_FIELD[c.target];
  const value = c.target === 'VALUE' ? toBuffer(c.value as Bytes) : String(c.value);
  return { key: toBuffer(c.key), target: c.target, result: c.result, [field]: value, ...(c.rangeEnd === undefined ? {} : { range_end: toBuffer(c.rangeEnd) }) };
}

function opToWire(op: TxnOp): Wire {
  if ('get' in op) return { request_range: rangeRequest(op.get.key, op.get) };
  if ('put' in op) return { request_put: putRequest(op.put.key, op.put.value, op.put) };
  if ('delete' in op) return { request_delete_range: deleteRequest(op.delete.key, op.delete) };
  return { request_txn: txnRequest(op.txn) };
}

export function txnRequest(t: TxnRequest): Wire {
  return { compare: (t.compare ?? []).map(compareToWire), success: (t.success ?? []).map(opToWire), failure: (t.failure ?? []).map(opToWire) };
}

/** True when a transaction only reads (so it is safe to retry on another member). */
export function txnIsReadOnly(t: TxnRequest): boolean {
  return [...(t.success ?? []), ...(t.failure ?? [])].every((op) => 'get' in op || ('txn' in op && txnIsReadOnly(op.txn)));
}
