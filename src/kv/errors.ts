/**
 * Errors of the key-value layer with etcd's exact texts and gRPC status names, so the API can
 * map them to the wire unchanged (clients match on the text).
 */
export type GrpcCode = 'InvalidArgument' | 'OutOfRange' | 'NotFound' | 'FailedPrecondition' | 'ResourceExhausted' | 'Unavailable';

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
  duplicateKey: () => new KvError('InvalidArgument', 'etcdserver: duplicate key given in txn request'),
  requestTooLarge: () => new KvError('InvalidArgument', 'etcdserver: request is too large'),
} as const;
