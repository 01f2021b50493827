/**
 * Disk self-diagnosis. At start a member measures how long fdatasync takes in its data
 * directory (the WAL's every acknowledged write waits for one) and says whether that is good
 * enough for Raft; at run time a WAL fdatasync over WAL_SLOW_FDATASYNC_MS is warned about, as
 * etcd does (`slow fdatasync`). etcd's hardware guide: the 99th percentile of the WAL's
 * fdatasync should stay under 10 ms, or heartbeats and elections suffer.
 */
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';

/** Synced writes the start-up measurement makes. */
export const DISK_CHECK_SYNCS = 32;
/** Bytes of each of them (a small WAL append). */
export const DISK_CHECK_WRITE_BYTES = 512;
/** etcd's recommendation for the WAL's fdatasync p99, ms. */
export const FDATASYNC_P99_GOOD_MS = 10;
/** A WAL fdatasync slower than this is logged as `slow fdatasync` (etcd's warnSyncDuration: 1 s). */
export const WAL_SLOW_FDATASYNC_MS = 1000;
/** The measurement's scratch file in the data directory (removed afterwards, and before, if a crash left it). */
export const DISK_CHECK_FILE = '.fdatasync-check.tmp';

export interface FdatasyncMeasurement {
  readonly syncs: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly good: boolean;
  /** The log line: `fdatasync p99 0.2 ms: good for Raft` or `... slow: etcd recommends under 10 ms`. */
  readonly verdict: string;
}

/** The q-quantile (0..1) of `sorted` (ascending), nearest rank. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function verdictOf(p99Ms: number): { good: boolean; verdict: string } {
  const shown = p99Ms < 10 ? p99Ms.toFixed(1) : p99Ms.toFixed(0);
  const good = p99Ms < FDATASYNC_P99_GOOD_MS;
  return { good, verdict: good ? `fdatasync p99 ${shown} ms: good for Raft` : `fdatasync p99 ${shown} ms: slow: etcd recommends under ${FDATASYNC_P99_GOOD_MS} ms` };
}

/**
 * Writes DISK_CHECK_SYNCS blocks of DISK_CHECK_WRITE_BYTES to a scratch file in `dir`, each
 * followed by fdatasync, and returns the latency distribution of the syncs. `dir` must exist.
 */
export async function measureFdatasync(dir: string, syncs = DISK_CHECK_SYNCS): Promise<FdatasyncMeasurement> {
  const path = join(dir, DISK_CHECK_FILE);
  await rm(path, { force: true });
  const block = Buffer.alloc(DISK_CHECK_WRITE_BYTES, 0x5a);
  const took: number[] = [];
  const fh = await open(path, 'w');
  try {
    for (let i = 0; i < syncs; i++) {
      await fh.write(block, 0, block.length, i * block.length);
      const t0 = performance.now();
      await fh.datasync();
      took.push(performance.now() - t0);
    }
  } finally {
    await fh.close();
    await rm(path, { force: true });
  }
  took.sort((a, b) => a - b);
  const p99Ms = quantile(took, 0.99);
  return { syncs, p50Ms: quantile(took, 0.5), p99Ms, maxMs: took[took.length - 1] ?? 0, ...verdictOf(p99Ms) };
}
