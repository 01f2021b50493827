import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { AUTH_ERR } from '../kv/auth-store.js';
import { ERR, ERROR_CODES, isErrorCode, KvError } from '../kv/errors.js';
import { MEMBER_ERR } from '../server/member.js';
import { GRPC_CODE_NAMES, GRPC_STATUS, toStatus } from './status.js';

describe('errors by code', () => {
  it('every sentinel has its own code, and every code one gRPC status', () => {
    const made = [...Object.values(ERR), ...Object.values(AUTH_ERR), ...Object.values(MEMBER_ERR)].map((f) => f());
    for (const e of made) expect(isErrorCode(e.code), e.message).toBe(true);
    expect(new Set(made.map((e) => e.code)).size).toBe(made.length);
    for (const [name, f] of [...Object.entries(ERR), ...Object.entries(AUTH_ERR)]) expect(f().code).toBe(name);
    expect(Object.keys(GRPC_STATUS).sort()).toEqual([...ERROR_CODES].sort());
    expect(isErrorCode('InvalidArgument')).toBe(false);
  });

  it("keeps etcd's status and text on the wire", () => {
    expect(toStatus(ERR.noLeader())).toEqual({ code: grpc.status.UNAVAILABLE, details: 'etcdserver: no leader' });
    expect(toStatus(ERR.compacted())).toEqual({ code: grpc.status.OUT_OF_RANGE, details: 'etcdserver: mvcc: required revision has been compacted' });
    expect(toStatus(ERR.corrupt()).code).toBe(grpc.status.DATA_LOSS);
    // The same text under two statuses: the code tells them apart.
    expect(toStatus(ERR.emptyKey()).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(toStatus(ERR.recipeEmptyKey()).code).toBe(grpc.status.UNKNOWN);
    expect(toStatus(AUTH_ERR.permissionDenied()).code).toBe(grpc.status.PERMISSION_DENIED);
    expect(toStatus(AUTH_ERR.invalidAuthToken()).code).toBe(grpc.status.UNAUTHENTICATED);
    expect(toStatus(MEMBER_ERR.unhealthy())).toEqual({ code: grpc.status.UNAVAILABLE, details: 'etcdserver: unhealthy cluster' });
    expect(toStatus(new KvError('badRequest', 'etcdserver: x')).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(toStatus(new Error('boom'))).toEqual({ code: grpc.status.INTERNAL, details: 'etcdserver: boom' });
    expect(GRPC_CODE_NAMES[grpc.status.PERMISSION_DENIED]).toBe('PermissionDenied');
    expect(GRPC_CODE_NAMES[grpc.status.CANCELLED]).toBe('Canceled');
  });
});
