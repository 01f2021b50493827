import { describe, expect, it } from 'vitest';
import { WAL_SLOW_FDATASYNC_MS } from './disk-check.js';
import { DISK_BUCKETS_S, MemberMetrics, RTT_BUCKETS_S } from './metrics.js';

const line = (text: string, re: RegExp) => text.split('\n').filter((l) => re.test(l));

describe('MemberMetrics', () => {
  it("etcd's buckets: 1 ms doubling 14 times; the round trip 0.1 ms doubling 16 times", () => {
    expect(DISK_BUCKETS_S).toEqual([0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192]);
    expect(RTT_BUCKETS_S[0]).toBe(0.0001);
    expect(RTT_BUCKETS_S[15]).toBe(3.2768);
    expect(RTT_BUCKETS_S).toHaveLength(16);
  });

  it('a WAL fdatasync over WAL_SLOW_FDATASYNC_MS is slow (counted and reported); at or under it is not', async () => {
    const slow: number[] = [];
    const m = new MemberMetrics({ slowFdatasync: (s) => slow.push(s) });
    const st = m.observers().storage!;
    st.walFsync!(WAL_SLOW_FDATASYNC_MS / 1000);
    st.walFsync!(0.0005);
    expect(slow).toEqual([]);
    st.walFsync!(WAL_SLOW_FDATASYNC_MS / 1000 + 0.1);
    expect(slow).toEqual([1.1]);
    expect(m.slowFdatasyncCount).toBe(1);
    const text = (await m.scrape()).body;
    expect(line(text, /^flotilla_disk_wal_slow_fdatasync_total /)).toEqual(['flotilla_disk_wal_slow_fdatasync_total 1']);
    expect(line(text, /^etcd_disk_wal_fsync_duration_seconds_count /)).toEqual(['etcd_disk_wal_fsync_duration_seconds_count 3']);
    expect(line(text, /^etcd_disk_wal_fsync_duration_seconds_bucket\{le="0.001"\} /)).toEqual(['etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"} 1']);
  });

  it('two members in one process keep separate registries', async () => {
    const a = new MemberMetrics();
    const b = new MemberMetrics();
    a.observers().node!.proposalFailed!();
    expect(line((await a.scrape()).body, /^etcd_server_proposals_failed_total /)).toEqual(['etcd_server_proposals_failed_total 1']);
    expect(line((await b.scrape()).body, /^etcd_server_proposals_failed_total /)).toEqual(['etcd_server_proposals_failed_total 0']);
  });

  it('gRPC counters: every code at 0 once a method is registered, then counted by Go code name', async () => {
    const m = new MemberMetrics();
    m.registerMethod('unary', 'etcdserverpb.KV', 'Put');
    m.grpcStart('unary', 'etcdserverpb.KV', 'Put');
    m.grpcDone('unary', 'etcdserverpb.KV', 'Put', 3);
    const text = (await m.scrape()).body;
    const handled = line(text, /^grpc_server_handled_total\{/);
    expect(handled).toHaveLength(17);
    expect(handled).toContain('grpc_server_handled_total{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Put",grpc_code="InvalidArgument"} 1');
    expect(handled).toContain('grpc_server_handled_total{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Put",grpc_code="Canceled"} 0');
    expect(line(text, /^grpc_server_started_total\{/)).toEqual(['grpc_server_started_total{grpc_type="unary",grpc_service="etcdserverpb.KV",grpc_method="Put"} 1']);
  });

  it('identity: member id in hex, server version, cluster version as major.minor', async () => {
    const m = new MemberMetrics();
    const member = {
      memberId: 0xbdae9bbc11dd390dn,
      members: () => [],
      memberIdOfRaft: () => 0n,
      node: { leader: 0, isLeader: false, status: () => ({ commit: 0 }), appliedIndex: 0, pendingProposals: 0 },
      sm: { store: { keyCount: 0, revision: 1, compactRevision: 0, dbSizeBytes: () => 0 } },
      dataSize: async () => 0,
    };
    m.attach(member as never, { server: '3.4.23', cluster: '3.4.0' });
    const text = (await m.scrape()).body;
    expect(line(text, /^etcd_server_id\{/)).toEqual(['etcd_server_id{server_id="bdae9bbc11dd390d"} 1']);
    expect(line(text, /^etcd_server_version\{/)).toEqual(['etcd_server_version{server_version="3.4.23"} 1']);
    expect(line(text, /^etcd_cluster_version\{/)).toEqual(['etcd_cluster_version{cluster_version="3.4"} 1']);
    // Never compacted: -1, as etcd.
    expect(line(text, /^etcd_debugging_mvcc_compact_revision /)).toEqual(['etcd_debugging_mvcc_compact_revision -1']);
  });

  it('leader changes: a new known leader counts, losing the leader does not', async () => {
    const seen: [bigint, number][] = [];
    const m = new MemberMetrics({ leaderChanged: (l, t) => seen.push([l, t]) });
    const node = m.observers().node!;
    node.leaderChanged!(2, 1);
    node.leaderChanged!(0, 2);
    node.leaderChanged!(3, 2);
    expect(line((await m.scrape()).body, /^etcd_server_leader_changes_seen_total /)).toEqual(['etcd_server_leader_changes_seen_total 2']);
    expect(seen).toEqual([[2n, 1], [0n, 2], [3n, 2]]);
  });
});
