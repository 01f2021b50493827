/**
 * The space quota (--quota-backend-bytes) as etcd 3.4 checks it (etcdserver/quota.go,
 * v3rpc/quota.go): a request that would grow the store is charged a cost; when the store's
 * size plus the cost reaches the quota, the request is refused with `etcdserver: mvcc: database
 * space exceeded` and the member raises the NOSPACE alarm through the log. While the alarm is
 * active, the state machine refuses puts, txns with a put and lease grants (applierV3Capped);
 * reads, deletes, compaction and lease revokes still work, and `etcdctl alarm disarm` clears it.
 */
import { statfs } from 'node:fs/promises';
import type { PutRequest, TxnRequest } from '../kv/mvcc.js';
import type { Logger } from '../raft/config.js';
import { QUOTA_BACKEND_BYTES_WARN } from './config.js';

/** etcd's kvOverhead: what a put costs beyond its key and value (an estimate of a key's metadata). */
export const QUOTA_PUT_OVERHEAD_BYTES = 256;
/** etcd's leaseOverhead: what a lease grant costs. */
export const QUOTA_LEASE_OVERHEAD_BYTES = 64;

export const costPut = (p: PutRequest): number => QUOTA_PUT_OVERHEAD_BYTES + p.key.length + (p.value?.length ?? 0);

/**
 * etcd's costTxn: the puts of the costlier branch (only one runs). etcd counts the top level's
 * puts only; here a nested txn counts as its own costlier branch, so no put escapes the quota.
 */
export function costTxn(t: TxnRequest): number {
  const branch = (ops: TxnRequest['success']): number => ops.reduce((n, op) => n + ('put' in op ? costPut(op.put) : 'txn' in op ? costTxn(op.txn) : 0), 0);
  return Math.max(branch(t.success), branch(t.failure));
}

/** etcd's backendQuota.Available: a request without cost always fits; otherwise size + cost must stay below the quota. */
export const quotaAvailable = (sizeBytes: number, cost: number, quotaBytes: number): boolean => cost === 0 || sizeBytes + cost < quotaBytes;

/** The store is at or over the quota: any write with a cost would be refused (what raises the alarm after an apply). */
export const overQuota = (sizeBytes: number, quotaBytes: number): boolean => sizeBytes >= quotaBytes;

/**
 * The warnings at start: a quota over etcd's recommended maximum, and a quota the file system
 * of the backend's directory (`<data-dir>/member`, where the database file grows; it may be
 * another file system than the WAL's) cannot hold — the alarm should come before the disk
 * fills: a member whose disk fills stops, as on any storage failure. Never throws: statfs may
 * be unavailable.
 */
export async function quotaStartWarnings(dbDir: string, quotaBytes: number, logger: Logger): Promise<void> {
  if (quotaBytes > QUOTA_BACKEND_BYTES_WARN) {
    logger.warn(`--quota-backend-bytes ${quotaBytes} exceeds the recommended maximum ${QUOTA_BACKEND_BYTES_WARN} (8 GiB): a larger store may degrade performance`);
  }
  try {
    const s = await statfs(dbDir);
    const freeBytes = Number(s.bavail) * Number(s.bsize);
    if (freeBytes < quotaBytes) {
      logger.warn(`--quota-backend-bytes ${quotaBytes} exceeds the free space of the backend's directory ${dbDir} (${freeBytes} bytes): the disk may fill before the NOSPACE alarm is raised, and a member whose disk fills stops`);
    }
  } catch (e) {
    logger.warn(`cannot read the free space of the backend's directory ${dbDir}: ${(e as Error).message}`);
  }
}
