/**
 * Errors on the wire: one table from every error code of the server (kv/errors.ts: etcd's
 * sentinel errors and ours) to its gRPC status, as etcd's api/v3rpc/util.go maps them; the
 * status of any error; and the unary handler plumbing every service uses.
 */
import * as grpc from '@grpc/grpc-js';
import { KvError, type ErrorCode } from '../kv/errors.js';
import type { Wire } from './convert.js';

const S = grpc.status;

/** The gRPC status of each error code (the texts stay the errors' own: clients match on them). */
export const GRPC_STATUS: Readonly<Record<ErrorCode, grpc.status>> = {
  // kv/errors.ts ERR
  emptyKey: S.INVALID_ARGUMENT,
  compacted: S.OUT_OF_RANGE,
  futureRev: S.OUT_OF_RANGE,
  leaseNotFound: S.NOT_FOUND,
  leaseExists: S.FAILED_PRECONDITION,
  valueProvided: S.INVALID_ARGUMENT,
  leaseProvided: S.INVALID_ARGUMENT,
  keyNotFound: S.INVALID_ARGUMENT,
  tooManyOps: S.INVALID_ARGUMENT,
  txnTooDeep: S.INVALID_ARGUMENT,
  duplicateKey: S.INVALID_ARGUMENT,
  requestTooLarge: S.INVALID_ARGUMENT,
  noLeader: S.UNAVAILABLE,
  notLeader: S.FAILED_PRECONDITION,
  leaderChanged: S.UNAVAILABLE,
  timedOut: S.UNAVAILABLE,
  tooManyRequests: S.RESOURCE_EXHAUSTED,
  stopped: S.UNAVAILABLE,
  memberNotFound: S.NOT_FOUND,
  badLeaderTransferee: S.FAILED_PRECONDITION,
  leaseTtlTooLarge: S.OUT_OF_RANGE,
  electionNotLeader: S.UNKNOWN,
  electionNoLeader: S.UNKNOWN,
  missingLeaderKey: S.UNKNOWN,
  recipeEmptyKey: S.UNKNOWN,
  invalidSortOption: S.INVALID_ARGUMENT,
  emptyRequestOp: S.INVALID_ARGUMENT,
  sessionExpired: S.FAILED_PRECONDITION,
  noSpace: S.RESOURCE_EXHAUSTED,
  corrupt: S.DATA_LOSS,
  tooManyAlarms: S.RESOURCE_EXHAUSTED,
  // kv/auth-store.ts AUTH_ERR
  rootUserNotExist: S.FAILED_PRECONDITION,
  rootRoleNotExist: S.FAILED_PRECONDITION,
  userAlreadyExist: S.FAILED_PRECONDITION,
  userEmpty: S.INVALID_ARGUMENT,
  userNotFound: S.FAILED_PRECONDITION,
  roleAlreadyExist: S.FAILED_PRECONDITION,
  roleNotFound: S.FAILED_PRECONDITION,
  roleEmpty: S.INVALID_ARGUMENT,
  authFailed: S.INVALID_ARGUMENT,
  permissionDenied: S.PERMISSION_DENIED,
  roleNotGranted: S.FAILED_PRECONDITION,
  permissionNotGranted: S.FAILED_PRECONDITION,
  authNotEnabled: S.FAILED_PRECONDITION,
  invalidAuthToken: S.UNAUTHENTICATED,
  invalidAuthMgmt: S.INVALID_ARGUMENT,
  authOldRevision: S.INVALID_ARGUMENT,
  noPasswordUser: S.UNKNOWN,
  // server/member.ts MEMBER_ERR
  memberBadUrls: S.INVALID_ARGUMENT,
  memberExists: S.FAILED_PRECONDITION,
  memberPeerUrlExists: S.FAILED_PRECONDITION,
  memberNotEnoughStarted: S.FAILED_PRECONDITION,
  memberNotLearner: S.FAILED_PRECONDITION,
  memberLearnerNotReady: S.FAILED_PRECONDITION,
  memberTooManyLearners: S.FAILED_PRECONDITION,
  memberUnhealthy: S.UNAVAILABLE,
  memberRaftIdsExhausted: S.FAILED_PRECONDITION,
  // Errors with a text of their own.
  malformedEntry: S.INVALID_ARGUMENT,
  badRequest: S.INVALID_ARGUMENT,
  refused: S.FAILED_PRECONDITION,
  internal: S.INTERNAL,
  plain: S.UNKNOWN,
};

/** Any error as a gRPC status: KvErrors keep etcd's code and text; others are Internal. */
export function toStatus(e: unknown): Partial<grpc.StatusObject> & { code: grpc.status; details: string } {
  if (e instanceof KvError) return { code: GRPC_STATUS[e.code], details: e.message };
  return { code: grpc.status.INTERNAL, details: `etcdserver: ${(e as Error)?.message ?? String(e)}` };
}

/** gRPC status codes by the names Go's codes.Code.String() gives (etcd's grpc_code label). */
export const GRPC_CODE_NAMES: Readonly<Record<number, string>> = {
  [grpc.status.OK]: 'OK',
  [grpc.status.CANCELLED]: 'Canceled',
  [grpc.status.UNKNOWN]: 'Unknown',
  [grpc.status.INVALID_ARGUMENT]: 'InvalidArgument',
  [grpc.status.DEADLINE_EXCEEDED]: 'DeadlineExceeded',
  [grpc.status.NOT_FOUND]: 'NotFound',
  [grpc.status.ALREADY_EXISTS]: 'AlreadyExists',
  [grpc.status.PERMISSION_DENIED]: 'PermissionDenied',
  [grpc.status.RESOURCE_EXHAUSTED]: 'ResourceExhausted',
  [grpc.status.FAILED_PRECONDITION]: 'FailedPrecondition',
  [grpc.status.ABORTED]: 'Aborted',
  [grpc.status.OUT_OF_RANGE]: 'OutOfRange',
  [grpc.status.UNIMPLEMENTED]: 'Unimplemented',
  [grpc.status.INTERNAL]: 'Internal',
  [grpc.status.UNAVAILABLE]: 'Unavailable',
  [grpc.status.DATA_LOSS]: 'DataLoss',
  [grpc.status.UNAUTHENTICATED]: 'Unauthenticated',
};

/** A unary handler from an async function; errors become etcd's status. */
export function unary(f: (req: Wire, call: grpc.ServerUnaryCall<Wire, Wire>) => Promise<Wire>): grpc.handleUnaryCall<Wire, Wire> {
  return (call, cb) => {
    f(call.request, call).then(
      (r) => cb(null, r),
      (e: unknown) => cb(toStatus(e)),
    );
  };
}
