/**
 * The typed Flotilla client: etcd's v3 API over gRPC with endpoint failover, resumable watches,
 * background lease keep-alive, Lock and Election; keys and values as Buffers, 64-bit integers as
 * bigints, failures as ClientError (gRPC status name + the server's exact message).
 */
export { FlotillaClient, DEFAULT_DIAL_TIMEOUT_MS, DEFAULT_REQUEST_TIMEOUT_MS, DEFAULT_SESSION_TTL } from './client.js';
export type { ClientOptions, CompactOptions, Lock, ObserveHandle, Permission, SessionOptions } from './client.js';
export type { Credentials } from './connection.js';
export { ClientError, DialError } from './errors.js';
export type { StatusName } from './errors.js';
export type { ClientTlsOptions } from './tls.js';
export { Cmp, Op, prefixEnd } from './requests.js';
export type { Compare, CompareOp, CompareResult, CompareTarget, Consistency, DeleteOptions, GetOptions, PutOptions, RangeSelector, SortOrder, SortTarget, TxnOp, TxnRequest } from './requests.js';
export { KeyValue } from './types.js';
export type {
  Bytes,
  DeleteResult,
  HashKvResult,
  HealthResult,
  LeaderKey,
  LeaseGrantResult,
  LeaseKeepAliveResult,
  LeaseLeasesResult,
  LeaseTimeToLiveResult,
  Member,
  MemberListResult,
  MemberAddResult,
  PutResult,
  RangeResult,
  ResponseHeader,
  StatusResult,
  TxnOpResult,
  TxnResult,
  WatchEvent,
} from './types.js';
export { Watcher } from './watch.js';
export type { WatchCallback, WatchOptions } from './watch.js';
export { LeaseKeepAlive } from './lease.js';
export type { KeepAliveOptions } from './lease.js';
export type { ObserveCallback } from './observe.js';
export { FencingGuard, StaleTokenError } from './fencing.js';
