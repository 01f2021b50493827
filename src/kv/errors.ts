/**
 * Errors of the key-value layer with etcd's exact texts and gRPC status names, so the API can
 * map them to the wire unchanged (clients match on the text).
 */
export type GrpcCode =
  | 'InvalidArgument'
  | 'OutOfRange'
  | 'NotFound'
  | 'FailedPrecondition'
  | 'ResourceExhausted'
  | 'Unavailable'
  | 'Unimplemented'
  | 'DeadlineExceeded'
  | 'Cancelled'
  | 'Internal'
  /** etcd's ErrGRPCCorrupt. */
  | 'DataLoss'
  /** Auth (src/kv/auth-store.ts): `etcdserver: permission denied`. */
  | 'PermissionDenied'
  /** Auth: `etcdserver: invalid auth token`. */
  | 'Unauthenticated'
  /** What a plain Go error becomes in gRPC: etcd's Lock and Election services answer with it. */
  | 'Unknown';

export class KvError extends Error {
  override name = 'KvError';
  constructor(
    readonly code: GrpcCode,
    message: string,
  ) {
    super(message);
  }
}

export const ERR = {
  emptyKey: () => new KvError('InvalidArgument', 'etcdserver: key is not provided'),
  compacted: () => new KvError('OutOfRange', 'etcdserver: mvcc: required revision has been compacted'),
  futureRev: () => new KvError('OutOfRange', 'etcdserver: mvcc: required revision is a future revision'),
  leaseNotFound: () => new KvError('NotFound', 'etcdserver: requested lease not found'),
  leaseExists: () => new KvError('FailedPrecondition', 'etcdserver: lease already exists'),
  valueProvided: () => new KvError('InvalidArgument', 'etcdserver: value is provided'),
  leaseProvided: () => new KvError('InvalidArgument', 'etcdserver: lease is provided'),
  keyNotFound: () => new KvError('InvalidArgument', 'etcdserver: key not found'),
  tooManyOps: () => new KvError('InvalidArgument', 'etcdserver: too many operations in txn request'),
  /** Our own limit (TXN_NESTING_MAX), worded as etcd's txn errors are. */
  txnTooDeep: () => new KvError('InvalidArgument', 'etcdserver: too many nested txns in txn request'),
  duplicateKey: () => new KvError('InvalidArgument', 'etcdserver: duplicate key given in txn request'),
  requestTooLarge: () => new KvError('InvalidArgument', 'etcdserver: request is too large'),
  noLeader: () => new KvError('Unavailable', 'etcdserver: no leader'),
  notLeader: () => new KvError('FailedPrecondition', 'etcdserver: not leader'),
  leaderChanged: () => new KvError('Unavailable', 'etcdserver: leader changed'),
  timedOut: () => new KvError('Unavailable', 'etcdserver: request timed out'),
  tooManyRequests: () => new KvError('ResourceExhausted', 'etcdserver: too many requests'),
  stopped: () => new KvError('Unavailable', 'etcdserver: server stopped'),
  memberNotFound: () => new KvError('NotFound', 'etcdserver: member not found'),
  badLeaderTransferee: () => new KvError('FailedPrecondition', 'etcdserver: bad leader transferee'),
  leaseTtlTooLarge: () => new KvError('OutOfRange', 'etcdserver: too large lease TTL'),
  // v3election / v3lock return clientv3's plain errors: gRPC code Unknown (HTTP 500 on the gateway).
  electionNotLeader: () => new KvError('Unknown', 'election: not leader'),
  electionNoLeader: () => new KvError('Unknown', 'election: no leader'),
  missingLeaderKey: () => new KvError('Unknown', '"leader" field must be provided'),
  recipeEmptyKey: () => new KvError('Unknown', 'etcdserver: key is not provided'),
  /** etcd 3.5's text (3.4 panics on an unknown sort target). */
  invalidSortOption: () => new KvError('InvalidArgument', 'etcdserver: invalid sort option'),
  /** A RequestOp with no request: etcd's checkRequestOp answers ErrGRPCKeyNotFound. */
  emptyRequestOp: () => new KvError('InvalidArgument', 'etcdserver: key not found'),
  sessionExpired: () => new KvError('FailedPrecondition', 'lock: session expired'),
  /** etcd's ErrGRPCNoSpace: the NOSPACE alarm is active, or this write would take the store over its quota. */
  noSpace: () => new KvError('ResourceExhausted', 'etcdserver: mvcc: database space exceeded'),
  /** etcd's ErrGRPCCorrupt: the CORRUPT alarm is active. */
  corrupt: () => new KvError('DataLoss', 'etcdserver: corrupt cluster'),
  /** Our own limit (ALARMS_MAX), worded as etcd's errors are. */
  tooManyAlarms: () => new KvError('ResourceExhausted', 'etcdserver: too many alarms'),
} as const;
