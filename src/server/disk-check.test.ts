import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DISK_CHECK_SYNCS, FDATASYNC_P99_GOOD_MS, measureFdatasync, quantile, verdictOf } from './disk-check.js';

describe('disk self-check', () => {
  it('quantile: nearest rank', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(quantile(xs, 0.99)).toBe(99);
    expect(quantile(xs, 0.5)).toBe(50);
    expect(quantile([3], 0.99)).toBe(3);
    expect(quantile([], 0.99)).toBe(0);
    // With the 32 syncs of the check, p99 is the slowest one: a single stall shows.
    expect(quantile(Array.from({ length: DISK_CHECK_SYNCS }, (_, i) => (i === 7 ? 50 : 1)).sort((a, b) => a - b), 0.99)).toBe(50);
  });

  it('verdict: under 10 ms good for Raft, else slow with etcd\'s recommendation', () => {
    expect(verdictOf(0.2)).toEqual({ good: true, verdict: 'fdatasync p99 0.2 ms: good for Raft' });
    expect(verdictOf(FDATASYNC_P99_GOOD_MS - 0.01).good).toBe(true);
    expect(verdictOf(FDATASYNC_P99_GOOD_MS)).toEqual({ good: false, verdict: 'fdatasync p99 10 ms: slow: etcd recommends under 10 ms' });
    expect(verdictOf(37.4).verdict).toBe('fdatasync p99 37 ms: slow: etcd recommends under 10 ms');
  });

  it('measures real syncs in the directory and leaves nothing behind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-disk-'));
    try {
      const m = await measureFdatasync(dir);
      expect(m.syncs).toBe(DISK_CHECK_SYNCS);
      expect(m.p50Ms).toBeGreaterThan(0);
      expect(m.p99Ms).toBeGreaterThanOrEqual(m.p50Ms);
      expect(m.maxMs).toBeGreaterThanOrEqual(m.p99Ms);
      expect(m.verdict).toBe(verdictOf(m.p99Ms).verdict);
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
