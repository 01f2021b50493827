/**
 * The errors of the key-value layer and of the server around it, as sentinels: each has a
 * neutral code (what code matches on, never the text) and etcd's exact text (clients match on
 * the text). The API gives every code its gRPC status in one table (api/status.ts), as etcd's
 * api/v3rpc/util.go maps its sentinel errors; nothing below the API names gRPC.
 */
export const ERROR_CODES = [
  // ERR (below)
  'emptyKey', 'compacted', 'futureRev', 'leaseNotFound', 'leaseExists', 'valueProvided', 'leaseProvided', 'keyNotFound', 'tooManyOps', 'txnTooDeep',
  'duplicateKey', 'requestTooLarge', 'noLeader', 'notLeader', 'leaderChanged', 'timedOut', 'tooManyRequests', 'stopped', 'memberNotFound', 'badLeaderTransferee',
  'leaseTtlTooLarge', 'electionNotLeader', 'electionNoLeader', 'missingLeaderKey', 'recipeEmptyKey', 'invalidSortOption', 'emptyRequestOp', 'sessionExpired', 'noSpace', 'corrupt',
  'tooManyAlarms',
  // AUTH_ERR (auth-store.ts)
  'rootUserNotExist', 'rootRoleNotExist', 'userAlreadyExist', 'userEmpty', 'userNotFound', 'roleAlreadyExist', 'roleNotFound', 'roleEmpty', 'authFailed', 'permissionDenied',
  'roleNotGranted', 'permissionNotGranted', 'authNotEnabled', 'invalidAuthToken', 'invalidAuthMgmt', 'authOldRevision', 'noPasswordUser',
  // MEMBER_ERR (server/member.ts)
  'memberBadUrls', 'memberExists', 'memberPeerUrlExists', 'memberNotEnoughStarted', 'memberNotLearner', 'memberLearnerNotReady', 'memberTooManyLearners', 'memberUnhealthy', 'memberRaftIdsExhausted',
  // Errors with a text of their own: a log entry that does not decode; a request that is not
  // valid (a field out of range, an unknown name); a request refused by the state of things (a
  // configuration change or transfer the core refuses); a fault of ours; a plain error, as etcd
  // returns some unconverted (the auth store's to the Maintenance service).
  'malformedEntry', 'badRequest', 'refused', 'internal', 'plain',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

const CODE_SET: ReadonlySet<string> = new Set(ERROR_CODES);

/** A code as another member sent it (member-channel answers): one of ERROR_CODES. */
export const isErrorCode = (v: unknown): v is ErrorCode => typeof v === 'string' && CODE_SET.has(v);

export class KvError extends Error {
  override name = 'KvError';
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export const ERR = {
  emptyKey: () => new KvError('emptyKey', 'etcdserver: key is not provided'),
  compacted: () => new KvError('compacted', 'etcdserver: mvcc: required revision has been compacted'),
  futureRev: () => new KvError('futureRev', 'etcdserver: mvcc: required revision is a future revision'),
  leaseNotFound: () => new KvError('leaseNotFound', 'etcdserver: requested lease not found'),
  leaseExists: () => new KvError('leaseExists', 'etcdserver: lease already exists'),
  valueProvided: () => new KvError('valueProvided', 'etcdserver: value is provided'),
  leaseProvided: () => new KvError('leaseProvided', 'etcdserver: lease is provided'),
  keyNotFound: () => new KvError('keyNotFound', 'etcdserver: key not found'),
  tooManyOps: () => new KvError('tooManyOps', 'etcdserver: too many operations in txn request'),
  /** Our own limit (TXN_NESTING_MAX), worded as etcd's txn errors are. */
  txnTooDeep: () => new KvError('txnTooDeep', 'etcdserver: too many nested txns in txn request'),
  duplicateKey: () => new KvError('duplicateKey', 'etcdserver: duplicate key given in txn request'),
  requestTooLarge: () => new KvError('requestTooLarge', 'etcdserver: request is too large'),
  noLeader: () => new KvError('noLeader', 'etcdserver: no leader'),
  notLeader: () => new KvError('notLeader', 'etcdserver: not leader'),
  leaderChanged: () => new KvError('leaderChanged', 'etcdserver: leader changed'),
  timedOut: () => new KvError('timedOut', 'etcdserver: request timed out'),
  tooManyRequests: () => new KvError('tooManyRequests', 'etcdserver: too many requests'),
  stopped: () => new KvError('stopped', 'etcdserver: server stopped'),
  memberNotFound: () => new KvError('memberNotFound', 'etcdserver: member not found'),
  badLeaderTransferee: () => new KvError('badLeaderTransferee', 'etcdserver: bad leader transferee'),
  leaseTtlTooLarge: () => new KvError('leaseTtlTooLarge', 'etcdserver: too large lease TTL'),
  // v3election / v3lock return clientv3's plain errors: gRPC code Unknown (HTTP 500 on the gateway).
  electionNotLeader: () => new KvError('electionNotLeader', 'election: not leader'),
  electionNoLeader: () => new KvError('electionNoLeader', 'election: no leader'),
  missingLeaderKey: () => new KvError('missingLeaderKey', '"leader" field must be provided'),
  recipeEmptyKey: () => new KvError('recipeEmptyKey', 'etcdserver: key is not provided'),
  /** etcd 3.5's text (3.4 panics on an unknown sort target). */
  invalidSortOption: () => new KvError('invalidSortOption', 'etcdserver: invalid sort option'),
  /** A RequestOp with no request: etcd's checkRequestOp answers ErrGRPCKeyNotFound. */
  emptyRequestOp: () => new KvError('emptyRequestOp', 'etcdserver: key not found'),
  sessionExpired: () => new KvError('sessionExpired', 'lock: session expired'),
  /** etcd's ErrGRPCNoSpace: the NOSPACE alarm is active, or this write would take the store over its quota. */
  noSpace: () => new KvError('noSpace', 'etcdserver: mvcc: database space exceeded'),
  /** etcd's ErrGRPCCorrupt: the CORRUPT alarm is active. */
  corrupt: () => new KvError('corrupt', 'etcdserver: corrupt cluster'),
  /** Our own limit (ALARMS_MAX), worded as etcd's errors are. */
  tooManyAlarms: () => new KvError('tooManyAlarms', 'etcdserver: too many alarms'),
} as const;
