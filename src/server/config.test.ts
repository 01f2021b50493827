import { describe, expect, it } from 'vitest';
import { clusterIdOf, ConfigError, memberIdOf, resolveConfig, withEnv } from './config.js';

const three = 'a=http://127.0.0.1:2380,b=http://127.0.0.1:22380,c=http://127.0.0.1:32380';

describe('server config', () => {
  it('derives member and cluster ids as etcd does', () => {
    // etcd 3.4 for `--initial-cluster default=http://localhost:2380` and the default token
    // reports member 8e9e05c52164694d and cluster cdf818194e3a8c32.
    const id = memberIdOf(['http://localhost:2380'], 'etcd-cluster');
    expect(id.toString(16)).toBe('8e9e05c52164694d');
    expect(clusterIdOf([id]).toString(16)).toBe('cdf818194e3a8c32');
  });

  it('takes etcd flags, with FLOTILLA_* variables under them', () => {
    const c = resolveConfig(
      withEnv(
        { name: 'b', initialCluster: three, initialAdvertisePeerUrls: 'http://127.0.0.1:22380' },
        { FLOTILLA_DATA_DIR: '/tmp/x', FLOTILLA_NAME: 'ignored', FLOTILLA_HEARTBEAT_INTERVAL: '50', FLOTILLA_ELECTION_TIMEOUT: '500' },
      ),
    );
    expect(c.name).toBe('b');
    expect(c.dataDir).toBe('/tmp/x');
    expect(c.heartbeatMs).toBe(50);
    expect(c.electionMs).toBe(500);
    expect(c.self.raftId).toBe(2);
    expect(c.initialCluster.map((m) => m.name)).toEqual(['a', 'b', 'c']);
    expect(c.maxRequestBytes).toBe(1.5 * 1024 * 1024);
    expect(c.maxTxnOps).toBe(128);
    expect(c.leaseReads).toBe(false);
  });

  it('lease reads: off by default; on by flag or variable; the drift margin defaults to a fifth of the election timeout', () => {
    expect(resolveConfig({ leaseReads: true })).toMatchObject({ leaseReads: true, leaseDriftMs: 200 });
    expect(resolveConfig(withEnv({}, { FLOTILLA_LEASE_READS: 'true', FLOTILLA_LEASE_DRIFT: '300' }))).toMatchObject({ leaseReads: true, leaseDriftMs: 300 });
    expect(resolveConfig({ leaseReads: true, electionTimeout: '2000' }).leaseDriftMs).toBe(400);
  });

  it('refuses bad settings with a message naming the flag', () => {
    const bad: [Record<string, string>, RegExp][] = [
      [{ name: 'x', initialCluster: three }, /--initial-cluster has no member named "x"/],
      [{ name: 'a', initialCluster: three, initialAdvertisePeerUrls: 'http://127.0.0.1:9999' }, /--initial-advertise-peer-urls/],
      [{ listenClientUrls: 'https://127.0.0.1:2379' }, /TLS is not supported yet/],
      [{ listenClientUrls: 'localhost:2379' }, /--listen-client-urls: "localhost:2379" must start with http:\/\//],
      [{ listenClientUrls: 'http://127.0.0.1' }, /has no port/],
      [{ initialClusterState: 'old' }, /--initial-cluster-state: "old" must be new or existing/],
      [{ heartbeatInterval: 'fast' }, /--heartbeat-interval: "fast" is not a non-negative integer/],
      [{ heartbeatInterval: '500', electionTimeout: '1000' }, /at least 5 times --heartbeat-interval/],
      [{ maxTxnOps: '0' }, /--max-txn-ops: 0 is outside/],
      [{ leaseReads: 'yes' }, /--lease-reads: "yes" must be true or false/],
      [{ leaseReads: 'true', leaseDrift: '1000' }, /--lease-drift \(1000 ms, in whole heartbeats\) must be less than --election-timeout/],
      [{ leaseReads: 'true', leaseDrift: '950' }, /--lease-drift/],
      [{ leaseDrift: '-5' }, /--lease-drift/],
      [{ name: 'bad name' }, /--name: "bad name"/],
      [{ initialCluster: 'a=http://127.0.0.1:1,b=http://127.0.0.1:1', name: 'a', initialAdvertisePeerUrls: 'http://127.0.0.1:1' }, /given for both a and b/],
    ];
    for (const [raw, re] of bad) {
      expect(() => resolveConfig(raw), JSON.stringify(raw)).toThrow(ConfigError);
      expect(() => resolveConfig(raw)).toThrow(re);
    }
  });
});
