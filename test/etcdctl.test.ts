/**
 * etcdctl 3.4 against a Flotilla cluster gives the same answers as against real etcd: one
 * scripted session (KV, txn, watch, leases, lock, elect, members, endpoints, compaction,
 * errors, snapshot) runs against both, transcripts compared step by step. Needs etcdctl and
 * etcd (.ci/run installs them); skipped with the reason printed when they are absent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, which, type Cluster } from './support/cluster.js';
import { runSession, type Step } from './support/etcdctl-session.js';

const ETCDCTL = which('etcdctl');
const ETCD = which('etcd');
const missing = [!ETCDCTL && 'etcdctl', !ETCD && 'etcd'].filter(Boolean);
if (missing.length > 0) console.log(`skipping the etcdctl comparison: ${missing.join(' and ')} not installed (apt-get install -y etcd-client etcd-server)`);

describe.skipIf(missing.length > 0)('etcdctl: Flotilla answers as etcd does', () => {
  let flotilla: Cluster;
  let etcd: Cluster;
  let ours: Step[] = [];
  let theirs: Step[] = [];
  beforeAll(async () => {
    [flotilla, etcd] = await Promise.all([startCluster('flotilla'), startCluster('etcd')]);
    [ours, theirs] = await Promise.all([runSession(ETCDCTL!, flotilla), runSession(ETCDCTL!, etcd)]);
  }, 150_000);
  afterAll(async () => {
    await Promise.all([flotilla?.stop(), etcd?.stop()]);
  });

  it('the same session gives the same transcript, step by step', () => {
    expect(ours.map((s) => s.name)).toEqual(theirs.map((s) => s.name));
    for (let i = 0; i < theirs.length; i++) expect(ours[i]!.out, `step "${theirs[i]!.name}"`).toBe(theirs[i]!.out);
  });
});
