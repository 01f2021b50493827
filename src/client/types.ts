/**
 * The client's view of etcd's messages: camelCase fields, keys and values as Buffers, every
 * 64-bit integer (revisions, counts, lease and member ids) as a bigint, and conversions from the
 * wire objects @grpc/proto-loader produces (snake_case, int64 as decimal strings).
 */

/** A key or value: a string (UTF-8) or raw bytes. */
export type Bytes = string | Uint8Array;

/** An object as @grpc/proto-loader decodes it (or as we hand it to grpc-js to encode). */
export type Wire = Record<string, unknown>;

/** Bytes as a Buffer (strings are UTF-8). */
export function toBuffer(b: Bytes): Buffer {
  return typeof b === 'string' ? Buffer.from(b, 'utf8') : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** A decoded int64/uint64 (decimal string, number or absent) as a bigint. */
export function big(v: unknown): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' || (typeof v === 'string' && v !== '')) return BigInt(v);
  return 0n;
}

function buf(v: unknown): Buffer {
  return Buffer.isBuffer(v) ? v : Buffer.alloc(0);
}

/** Every response's header. */
export interface ResponseHeader {
  clusterId: bigint;
  memberId: bigint;
  revision: bigint;
  raftTerm: bigint;
}

export function header(w: unknown): ResponseHeader {
  const h = (w ?? {}) as Wire;
  return { clusterId: big(h.cluster_id), memberId: big(h.member_id), revision: big(h.revision), raftTerm: big(h.raft_term) };
}

/** A key-value pair at some revision (mvccpb.KeyValue). */
export class KeyValue {
  constructor(
    readonly key: Buffer,
    readonly value: Buffer,
    readonly createRevision: bigint,
    readonly modRevision: bigint,
    readonly version: bigint,
    /** The attached lease, 0n for none. */
    readonly lease: bigint,
  ) {}

  /** The key decoded as UTF-8. */
  keyString(): string {
    return this.key.toString('utf8');
  }

  /** The value decoded as UTF-8. */
  valueString(): string {
    return this.value.toString('utf8');
  }

  static fromWire(w: unknown): KeyValue {
    const kv = (w ?? {}) as Wire;
    return new KeyValue(buf(kv.key), buf(kv.value), big(kv.create_revision), big(kv.mod_revision), big(kv.version), big(kv.lease));
  }
}

/** A KeyValue, or undefined for an absent (null) message field. */
export function optionalKv(w: unknown): KeyValue | undefined {
  return w ? KeyValue.fromWire(w) : undefined;
}

/** Result of a Range (`get`). */
export interface RangeResult {
  header: ResponseHeader;
  kvs: KeyValue[];
  /** True when `limit` cut the result short. */
  more: boolean;
  /** Number of keys in the range (ignoring limit). */
  count: bigint;
}

/** Result of a Put. */
export interface PutResult {
  header: ResponseHeader;
  /** The previous pair, when `prevKv` was asked and the key existed. */
  prevKv: KeyValue | undefined;
}

/** Result of a DeleteRange. */
export interface DeleteResult {
  header: ResponseHeader;
  deleted: bigint;
  prevKvs: KeyValue[];
}

/** One op's response in a Txn. */
export type TxnOpResult =
  | { type: 'range'; range: RangeResult }
  | { type: 'put'; put: PutResult }
  | { type: 'delete'; delete: DeleteResult }
  | { type: 'txn'; txn: TxnResult };

/** Result of a Txn: which branch ran and its op results, in order. */
export interface TxnResult {
  header: ResponseHeader;
  succeeded: boolean;
  responses: TxnOpResult[];
}

export function rangeResult(w: Wire): RangeResult {
  return { header: header(w.header), kvs: ((w.kvs ?? []) as unknown[]).map(KeyValue.fromWire), more: Boolean(w.more), count: big(w.count) };
}

export function putResult(w: Wire): PutResult {
  return { header: header(w.header), prevKv: optionalKv(w.prev_kv) };
}

export function deleteResult(w: Wire): DeleteResult {
  return { header: header(w.header), deleted: big(w.deleted), prevKvs: ((w.prev_kvs ?? []) as unknown[]).map(KeyValue.fromWire) };
}

export function txnResult(w: Wire): TxnResult {
  const responses = ((w.responses ?? []) as Wire[]).map((r): TxnOpResult => {
    switch (r.response) {
      case 'response_range':
        return { type: 'range', range: rangeResult(r.response_range as Wire) };
      case 'response_put':
        return { type: 'put', put: putResult(r.response_put as Wire) };
      case 'response_delete_range':
        return { type: 'delete', delete: deleteResult(r.response_delete_range as Wire) };
      default:
        return { type: 'txn', txn: txnResult(r.response_txn as Wire) };
    }
  });
  return { header: header(w.header), succeeded: Boolean(w.succeeded), responses };
}

/** A watch event (mvccpb.Event). A DELETE's kv carries only the key and the delete revision. */
export interface WatchEvent {
  type: 'PUT' | 'DELETE';
  kv: KeyValue;
  /** The pair before this event, when the watch asked for `prevKv` and it existed. */
  prevKv: KeyValue | undefined;
}

export function watchEvent(w: Wire): WatchEvent {
  return { type: w.type === 'DELETE' ? 'DELETE' : 'PUT', kv: KeyValue.fromWire(w.kv), prevKv: optionalKv(w.prev_kv) };
}

/** Result of LeaseGrant. */
export interface LeaseGrantResult {
  header: ResponseHeader;
  id: bigint;
  /** The granted TTL in seconds (the server may raise it to its minimum). */
  ttl: number;
}

/** Result of one keep-alive: `ttl` is the renewed TTL in seconds, 0 when the lease is gone. */
export interface LeaseKeepAliveResult {
  header: ResponseHeader;
  id: bigint;
  ttl: number;
}

/** Result of LeaseTimeToLive: `ttl` is -1 when the lease does not exist (or has expired). */
export interface LeaseTimeToLiveResult {
  header: ResponseHeader;
  id: bigint;
  ttl: number;
  grantedTtl: number;
  keys: Buffer[];
}

/** Result of LeaseLeases. */
export interface LeaseLeasesResult {
  header: ResponseHeader;
  leases: bigint[];
}

/** A cluster member. */
export interface Member {
  id: bigint;
  /** Empty until the member has started (joined). */
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

export function member(w: unknown): Member {
  const m = (w ?? {}) as Wire;
  return { id: big(m.ID), name: String(m.name ?? ''), peerURLs: (m.peerURLs ?? []) as string[], clientURLs: (m.clientURLs ?? []) as string[], isLearner: Boolean(m.isLearner) };
}

/** Result of MemberList. */
export interface MemberListResult {
  header: ResponseHeader;
  members: Member[];
}

/** Result of MemberAdd: the new member (no name until it starts) and every member. */
export interface MemberAddResult {
  header: ResponseHeader;
  member: Member;
  members: Member[];
}

/** One endpoint's Maintenance.Status. `leader` is the leader's member id (0n when none). */
export interface StatusResult {
  header: ResponseHeader;
  version: string;
  dbSize: bigint;
  leader: bigint;
  raftIndex: bigint;
  raftTerm: bigint;
  raftAppliedIndex: bigint;
  errors: string[];
  dbSizeInUse: bigint;
  isLearner: boolean;
  /** Flotilla only (0 from etcd): fdatasync p99 in the data directory measured at start, ms. */
  fdatasyncP99Ms: number;
  /** Flotilla only (0 from etcd): WAL fdatasyncs over 1 s since start. */
  slowFdatasyncs: bigint;
}

export function statusResult(w: Wire): StatusResult {
  return {
    header: header(w.header),
    version: String(w.version ?? ''),
    dbSize: big(w.dbSize),
    leader: big(w.leader),
    raftIndex: big(w.raftIndex),
    raftTerm: big(w.raftTerm),
    raftAppliedIndex: big(w.raftAppliedIndex),
    errors: (w.errors ?? []) as string[],
    dbSizeInUse: big(w.dbSizeInUse),
    isLearner: Boolean(w.isLearner),
    fdatasyncP99Ms: Number(w.fdatasyncP99Ms ?? 0),
    slowFdatasyncs: big(w.slowFdatasyncs),
  };
}

/** One endpoint's health, as `etcdctl endpoint health` judges it. */
export interface HealthResult {
  endpoint: string;
  health: boolean;
  /** Milliseconds the check took. */
  tookMs: number;
  /** Why the endpoint is unhealthy. */
  error?: string;
}

/** Result of Maintenance.HashKV. */
export interface HashKvResult {
  header: ResponseHeader;
  hash: number;
  compactRevision: bigint;
}

/** An election's leadership, as Campaign returns it; pass it to proclaim and resign. */
export interface LeaderKey {
  name: Buffer;
  key: Buffer;
  rev: bigint;
  lease: bigint;
}

export function leaderKey(w: unknown): LeaderKey {
  const l = (w ?? {}) as Wire;
  return { name: buf(l.name), key: buf(l.key), rev: big(l.rev), lease: big(l.lease) };
}

export function leaderKeyToWire(l: LeaderKey): Wire {
  return { name: l.name, key: l.key, rev: l.rev.toString(), lease: l.lease.toString() };
}
