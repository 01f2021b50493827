/**
 * `etcdctl check perf --load=s` passes against a Flotilla cluster: 60 s of 150 puts/s, with
 * etcdctl's own thresholds on throughput, slowest request (0.5 s) and spread. A performance
 * check, so `npm test` runs this file alone, after the others, on a quiet machine.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, which, type Cluster } from './support/cluster.js';
import { etcdctl } from './support/etcdctl-session.js';

const ETCDCTL = which('etcdctl');
if (!ETCDCTL) console.log('skipping check perf: etcdctl not installed (apt-get install -y etcd-client)');

describe.skipIf(!ETCDCTL)('etcdctl check perf', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster('flotilla');
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it('--load=s passes', async () => {
    const r = await etcdctl(ETCDCTL!, cluster.endpoints, ['check', 'perf', '--load=s'], { timeoutMs: 120_000 });
    const verdicts = (r.stdout + r.stderr).split(/\r|\n/).filter((l) => /PASS|FAIL|took too long|too low|too high/.test(l));
    expect(verdicts, 'check perf verdicts').toEqual([expect.stringMatching(/^PASS: Throughput is \d+ writes\/s$/), expect.stringMatching(/^PASS: Slowest request took [\d.]+s$/), expect.stringMatching(/^PASS: Stddev is [\d.]+s$/), 'PASS']);
    expect(r.code).toBe(0);
  }, 130_000);
});
