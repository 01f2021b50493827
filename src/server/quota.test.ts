import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Logger } from '../raft/config.js';
import { QUOTA_BACKEND_BYTES_WARN } from './config.js';
import { costPut, costTxn, overQuota, QUOTA_LEASE_OVERHEAD_BYTES, QUOTA_PUT_OVERHEAD_BYTES, quotaAvailable, quotaStartWarnings } from './quota.js';

const b = (s: string) => new Uint8Array(Buffer.from(s));

describe('quota (etcd 3.4 quota.go)', () => {
  it('costs: a put is 256 + key + value; a txn its costlier branch, nested txns included; a lease grant 64', () => {
    expect(QUOTA_PUT_OVERHEAD_BYTES).toBe(256);
    expect(QUOTA_LEASE_OVERHEAD_BYTES).toBe(64);
    expect(costPut({ key: b('ab'), value: b('xyz') })).toBe(261);
    expect(costPut({ key: b('ab') })).toBe(258);
    expect(costTxn({ compare: [], success: [{ range: { key: b('a') } }, { deleteRange: { key: b('a') } }], failure: [] })).toBe(0);
    const put = (k: string, v: string) => ({ put: { key: b(k), value: b(v) } });
    expect(costTxn({ compare: [], success: [put('a', '1'), put('b', '22')], failure: [put('c', '1234567')] })).toBe(2 * 256 + 2 + 3);
    expect(costTxn({ compare: [], success: [put('a', '1')], failure: [put('c', '1234567')] })).toBe(256 + 8);
    expect(costTxn({ compare: [], success: [{ txn: { compare: [], success: [put('a', '')], failure: [put('a', '12')] } }], failure: [] })).toBe(256 + 3);
  });

  it('a request fits while size + cost stays below the quota; one without cost always fits', () => {
    expect(quotaAvailable(900, 99, 1000)).toBe(true);
    expect(quotaAvailable(900, 100, 1000)).toBe(false);
    expect(quotaAvailable(5000, 0, 1000)).toBe(true);
    expect(overQuota(999, 1000)).toBe(false);
    expect(overQuota(1000, 1000)).toBe(true);
  });

  const dir = mkdtempSync(join(tmpdir(), 'flotilla-quota-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const warnings = async (quota: number, at = dir): Promise<string[]> => {
    const lines: string[] = [];
    const logger: Logger = { debug() {}, info() {}, warn: (m) => lines.push(m) };
    await quotaStartWarnings(at, quota, logger);
    return lines;
  };

  it('warns at start when the quota exceeds the free space of the backend\'s directory, or 8 GiB', async () => {
    expect(await warnings(1024)).toEqual([]);
    const huge = await warnings(Number.MAX_SAFE_INTEGER);
    expect(huge).toHaveLength(2);
    expect(huge[0]).toMatch(/exceeds the recommended maximum 8589934592/);
    expect(huge[1]).toMatch(/exceeds the free space of the backend's directory .*flotilla-quota-.* \(\d+ bytes\)/);
    expect(await warnings(QUOTA_BACKEND_BYTES_WARN)).not.toContainEqual(expect.stringMatching(/recommended maximum/));
    expect(await warnings(1024, join(dir, 'missing'))).toEqual([expect.stringMatching(/cannot read the free space of the backend's directory/)]);
  });
});
