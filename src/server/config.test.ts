import { describe, expect, it } from 'vitest';
import { clusterIdOf, ConfigError, configWarnings, memberIdOf, plainPeerWarnings, QUOTA_BACKEND_BYTES_DEFAULT, resolveConfig, withEnv } from './config.js';

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

  it('--quota-backend-bytes: 2 GiB by default and for 0 (as etcd), by flag or FLOTILLA_QUOTA_BACKEND_BYTES', () => {
    expect(QUOTA_BACKEND_BYTES_DEFAULT).toBe(2 * 1024 * 1024 * 1024);
    expect(resolveConfig({}).quotaBackendBytes).toBe(QUOTA_BACKEND_BYTES_DEFAULT);
    expect(resolveConfig({ quotaBackendBytes: '0' }).quotaBackendBytes).toBe(QUOTA_BACKEND_BYTES_DEFAULT);
    expect(resolveConfig({ quotaBackendBytes: '1048576' }).quotaBackendBytes).toBe(1048576);
    expect(resolveConfig(withEnv({}, { FLOTILLA_QUOTA_BACKEND_BYTES: '4096' })).quotaBackendBytes).toBe(4096);
    // Over etcd's recommended 8 GiB: accepted (a warning at start).
    expect(resolveConfig({ quotaBackendBytes: String(16 * 1024 ** 3) }).quotaBackendBytes).toBe(16 * 1024 ** 3);
    for (const v of ['-1', '2GiB', '1e9', String(2 ** 53)]) expect(() => resolveConfig({ quotaBackendBytes: v }), v).toThrow(/--quota-backend-bytes/);
  });

  it('refuses bad settings with a message naming the flag', () => {
    const bad: [Record<string, string>, RegExp][] = [
      [{ name: 'x', initialCluster: three }, /--initial-cluster has no member named "x"/],
      [{ name: 'a', initialCluster: three, initialAdvertisePeerUrls: 'http://127.0.0.1:9999' }, /--initial-advertise-peer-urls/],
      [{ listenClientUrls: 'https://127.0.0.1:2379' }, /TLS key\/cert \(--cert-file, --key-file\) must be provided for client URLs with the https scheme/],
      [{ listenPeerUrls: 'https://127.0.0.1:2380' }, /TLS key\/cert \(--peer-cert-file, --peer-key-file\) must be provided for peer URLs/],
      [{ listenClientUrls: 'https://127.0.0.1:2379', certFile: 'c.pem' }, /--cert-file is given without --key-file/],
      [{ listenClientUrls: 'https://127.0.0.1:2379', autoTls: 'true', clientCertAuth: 'true' }, /--client-cert-auth needs --trusted-ca-file/],
      [{ listenPeerUrls: 'https://127.0.0.1:2380', peerAutoTls: 'true', peerCertAllowedCn: 'x' }, /--peer-cert-allowed-cn needs --peer-client-cert-auth/],
      [{ cipherSuites: 'TLS_RSA_WITH_RC4_128_SHA' }, /--cipher-suites: unexpected TLS cipher suite "TLS_RSA_WITH_RC4_128_SHA"/],
      [{ listenClientUrls: 'localhost:2379' }, /--listen-client-urls: "localhost:2379" must start with http:\/\/ or https:\/\//],
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

  it('TLS: etcd\'s flags and FLOTILLA_* variables; https:// URLs; --trusted-ca-file alone requires client certificates, as in etcd', () => {
    const peers = 'a=https://127.0.0.1:2380';
    const c = resolveConfig(
      withEnv(
        { name: 'a', dataDir: '/d', listenClientUrls: 'https://127.0.0.1:2379', certFile: 's.pem', keyFile: 's-key.pem', listenPeerUrls: 'https://127.0.0.1:2380', initialAdvertisePeerUrls: 'https://127.0.0.1:2380', initialCluster: peers },
        { FLOTILLA_TRUSTED_CA_FILE: 'ca.pem', FLOTILLA_PEER_AUTO_TLS: 'true', FLOTILLA_CIPHER_SUITES: 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305' },
      ),
    );
    expect(c.clientTls).toEqual({ certFile: 's.pem', keyFile: 's-key.pem', trustedCaFile: 'ca.pem', clientCertAuth: true, certCnIsUser: false, autoTls: false, allowedCn: null, ciphers: 'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305' });
    // The CN is a user only with --client-cert-auth itself (FLOTILLA_CLIENT_CERT_AUTH), as etcd's ClientCertAuthEnabled.
    const tlsFlags = { listenClientUrls: 'https://127.0.0.1:2379', certFile: 's.pem', keyFile: 's-key.pem', trustedCaFile: 'ca.pem' };
    expect(resolveConfig(withEnv(tlsFlags, { FLOTILLA_CLIENT_CERT_AUTH: 'true' })).clientTls).toMatchObject({ clientCertAuth: true, certCnIsUser: true });
    expect(c.peerTls).toMatchObject({ certFile: '/d/fixtures/peer/cert.pem', keyFile: '/d/fixtures/peer/key.pem', autoTls: true, clientCertAuth: false });
    expect(c.advertiseClientUrls).toEqual(['https://127.0.0.1:2379']);
    // https changes the member id, as in etcd (the id hashes the peer URLs).
    expect(c.self.id).toBe(memberIdOf(['https://127.0.0.1:2380'], 'etcd-cluster'));
    // http:// URLs: no TLS, and certificate flags are ignored with a warning.
    expect(resolveConfig({ certFile: 's.pem', keyFile: 'k.pem' }).clientTls).toBeNull();
    expect(configWarnings({ certFile: 's.pem', keyFile: 'k.pem' })).toEqual([expect.stringMatching(/the client URLs are http:\/\/: --cert-file, --key-file, --trusted-ca-file and --auto-tls are ignored/)]);
    expect(resolveConfig({ listenPeerUrls: 'https://127.0.0.1:2380', peerCertFile: 'p.pem', peerKeyFile: 'pk.pem', peerTrustedCaFile: 'ca.pem', peerCertAllowedCn: 'member' }).peerTls).toMatchObject({ clientCertAuth: true, certCnIsUser: false, allowedCn: 'member' });
  });

  it('a plain peer URL beyond loopback is warned about; loopback and https are not', () => {
    const warn = (listenPeerUrls: string, extra: Record<string, string> = {}) => plainPeerWarnings(resolveConfig({ listenPeerUrls, initialAdvertisePeerUrls: 'http://127.0.0.1:2380', initialCluster: 'default=http://127.0.0.1:2380', ...extra }));
    expect(warn('http://0.0.0.0:2380')).toEqual([expect.stringMatching(/the peer URL http:\/\/0\.0\.0\.0:2380 listens beyond loopback without TLS/)]);
    expect(warn('http://10.1.2.3:2380')).toHaveLength(1);
    expect(warn('http://127.0.0.1:2380')).toEqual([]);
    expect(warn('http://localhost:2380')).toEqual([]);
    expect(warn('http://[::1]:2380')).toEqual([]);
    expect(warn('https://0.0.0.0:2380', { peerAutoTls: 'true' })).toEqual([]);
  });

  it('client port limits: etcd defaults for keepalive, ours for the rest; Go durations or ms', () => {
    expect(resolveConfig({})).toMatchObject({
      maxConcurrentStreams: 1000,
      maxClientConnections: 1024,
      clientIdleTimeoutMs: 120_000,
      clientHeaderTimeoutMs: 10_000,
      clientBodyTimeoutMs: 30_000,
      grpcKeepaliveMinTimeMs: 5000,
      grpcKeepaliveIntervalMs: 2 * 3600_000,
      grpcKeepaliveTimeoutMs: 20_000,
    });
    const c = resolveConfig(
      withEnv(
        { maxConcurrentStreams: '4', grpcKeepaliveMinTime: '1m30s', clientIdleTimeout: '0', clientHeaderTimeout: '1500' },
        { FLOTILLA_MAX_CLIENT_CONNECTIONS: '8', FLOTILLA_GRPC_KEEPALIVE_INTERVAL: '2h', FLOTILLA_GRPC_KEEPALIVE_TIMEOUT: '2.5s', FLOTILLA_CLIENT_BODY_TIMEOUT: '1m' },
      ),
    );
    expect(c).toMatchObject({
      maxConcurrentStreams: 4,
      maxClientConnections: 8,
      grpcKeepaliveMinTimeMs: 90_000,
      grpcKeepaliveIntervalMs: 7_200_000,
      grpcKeepaliveTimeoutMs: 2500,
      clientIdleTimeoutMs: 0,
      clientHeaderTimeoutMs: 1500,
      clientBodyTimeoutMs: 60_000,
    });
    // The body deadline covers the head too: it cannot be shorter.
    expect(() => resolveConfig({ clientBodyTimeout: '500ms' })).toThrow(/--client-body-timeout \(500 ms\) must be at least --client-header-timeout \(10000 ms\)/);
    const bad: [Record<string, string>, RegExp][] = [
      [{ maxConcurrentStreams: '0' }, /--max-concurrent-streams: 0 is outside/],
      [{ maxConcurrentStreams: String(2 ** 32) }, /--max-concurrent-streams/],
      [{ maxClientConnections: '-1' }, /--max-client-connections: "-1" is not a non-negative integer/],
      [{ grpcKeepaliveMinTime: '5 s' }, /--grpc-keepalive-min-time: "5 s" is not a duration/],
      [{ grpcKeepaliveMinTime: '5d' }, /--grpc-keepalive-min-time: "5d" is not a duration/],
      [{ grpcKeepaliveInterval: '10ms' }, /--grpc-keepalive-interval: 10 ms is outside/],
      [{ clientHeaderTimeout: '0' }, /--client-header-timeout: 0 ms is outside/],
    ];
    for (const [raw, re] of bad) expect(() => resolveConfig(raw), JSON.stringify(raw)).toThrow(re);
  });
});
