/**
 * The Prometheus metrics of one member, in a Registry of its own (several members may run in
 * one process, in tests). Named, typed and labelled as etcd 3.4 names them wherever etcd has
 * the metric, so etcd's dashboards and alerts work unchanged; test/metrics.test.ts compares
 * them with a real etcd's /metrics. The node, the storage and the transport only report
 * observations (NodeObserver, StorageObserver, TransportObserver); this file maps them to
 * metrics. Gauges of state (leader, indexes, keys, sizes) are read when scraped.
 *
 * Differences from etcd, where the parts differ:
 * - etcd_disk_backend_commit_duration_seconds: etcd's bbolt commit makes applied state durable;
 *   ours is the state machine's snapshot file (written, synced, renamed).
 * - etcd_network_peer_round_trip_time_seconds: etcd probes every peer from every member; ours
 *   is the leader's heartbeat round trip to each follower.
 * - etcd_server_proposals_pending: proposals of this member in the log, not yet applied (a
 *   follower's forwarded writes count on the leader).
 */
import { readFileSync } from 'node:fs';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { NodeObserver } from '../node/node.js';
import type { StorageObserver } from '../storage/storage.js';
import type { TransportObserver } from '../transport/tcp.js';
import { WAL_SLOW_FDATASYNC_MS, type FdatasyncMeasurement } from './disk-check.js';
import type { EtcdMember, MemberObservers } from './member.js';
import { GRPC_CODE_NAMES } from '../api/status.js';

/** etcd's buckets of the disk histograms: 1 ms doubling to 8.192 s (prometheus.ExponentialBuckets(0.001, 2, 14)). */
export const DISK_BUCKETS_S = exponentialBuckets(0.001, 2, 14);
/** etcd's buckets of the peer round trip: 0.1 ms doubling to 3.2768 s (ExponentialBuckets(0.0001, 2, 16)). */
export const RTT_BUCKETS_S = exponentialBuckets(0.0001, 2, 16);
/**
 * Buckets of grpc_server_handling_seconds: Prometheus' DefBuckets (go-grpc-prometheus's, as
 * etcd --metrics=extensive has them) with finer ones below 5 ms, where a local member's calls fall.
 */
export const HANDLING_BUCKETS_S = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Resolution of the event-loop delay monitor (nodejs_eventloop_lag_* metrics), ms. */
export const EVENT_LOOP_MONITOR_MS = 10;

function exponentialBuckets(start: number, factor: number, count: number): number[] {
  const out: number[] = [];
  for (let i = 0, v = start; i < count; i++, v *= factor) out.push(Number(v.toPrecision(12)));
  return out;
}

export type GrpcType = 'unary' | 'client_stream' | 'server_stream' | 'bidi_stream';

export interface MetricsHooks {
  /** Called for a WAL fdatasync over WAL_SLOW_FDATASYNC_MS (the server logs it). */
  slowFdatasync?(seconds: number): void;
  /** Called when the known leader changes (the server logs it). */
  leaderChanged?(leader: bigint, term: number): void;
}

export class MemberMetrics {
  readonly registry = new Registry();
  private member: EtcdMember | null = null;
  private readonly grpcStarted: Counter<'grpc_type' | 'grpc_service' | 'grpc_method'>;
  private readonly grpcHandled: Counter<'grpc_type' | 'grpc_service' | 'grpc_method' | 'grpc_code'>;
  private readonly grpcHandling: Histogram<'grpc_type' | 'grpc_service' | 'grpc_method'>;
  private readonly walFsync: Histogram;
  private readonly backendCommit: Histogram;
  private readonly rtt: Histogram<'To'>;
  private readonly peerSent: Counter<'To'>;
  private readonly peerReceived: Counter<'From'>;
  private readonly leaderChanges: Counter;
  private readonly proposalsFailed: Counter;
  private readonly slowFsyncs: Counter;
  private readonly startupP99: Gauge;
  /** gRPC message bytes from and to clients (the JSON gateway's HTTP bodies are not counted). */
  readonly clientReceived: Counter;
  readonly clientSent: Counter;
  private identity: (memberId: bigint, serverVersion: string, clusterVersion: string) => void = () => {};
  /** Slow WAL fdatasyncs since start (also in `endpoint status -w json`). */
  slowFdatasyncCount = 0;
  /** The start-up fdatasync measurement, once made. */
  diskCheck: FdatasyncMeasurement | null = null;
  /** Raft id -> member id in hex (etcd's To/From label values); 0 -> "0". */
  private peerLabel: (raftId: number) => string = (id) => String(id);

  constructor(private readonly hooks: MetricsHooks = {}) {
    const registers = [this.registry];
    const m = (): EtcdMember | null => this.member;
    new Gauge({
      name: 'etcd_server_has_leader',
      help: 'Whether or not a leader exists. 1 is existence, 0 is not.',
      registers,
      collect() {
        this.set(m() && m()!.node.leader !== 0 ? 1 : 0);
      },
    });
    new Gauge({
      name: 'etcd_server_is_leader',
      help: 'Whether or not this member is a leader. 1 if is, 0 otherwise.',
      registers,
      collect() {
        this.set(m()?.node.isLeader ? 1 : 0);
      },
    });
    this.leaderChanges = new Counter({ name: 'etcd_server_leader_changes_seen_total', help: 'The number of leader changes seen.', registers });
    // etcd 3.4 exposes the two as gauges set to the commit and applied index.
    new Gauge({
      name: 'etcd_server_proposals_committed_total',
      help: 'The total number of consensus proposals committed.',
      registers,
      collect() {
        const x = m();
        if (x) this.set(x.node.status().commit);
      },
    });
    new Gauge({
      name: 'etcd_server_proposals_applied_total',
      help: 'The total number of consensus proposals applied.',
      registers,
      collect() {
        const x = m();
        if (x) this.set(x.node.appliedIndex);
      },
    });
    new Gauge({
      name: 'etcd_server_proposals_pending',
      help: 'The current number of pending proposals to commit.',
      registers,
      collect() {
        this.set(m()?.node.pendingProposals ?? 0);
      },
    });
    this.proposalsFailed = new Counter({ name: 'etcd_server_proposals_failed_total', help: 'The total number of failed proposals seen.', registers });
    this.walFsync = new Histogram({ name: 'etcd_disk_wal_fsync_duration_seconds', help: 'The latency distributions of fsync called by WAL.', buckets: DISK_BUCKETS_S, registers });
    this.backendCommit = new Histogram({ name: 'etcd_disk_backend_commit_duration_seconds', help: 'The latency distributions of commit called by backend.', buckets: DISK_BUCKETS_S, registers });
    this.rtt = new Histogram({ name: 'etcd_network_peer_round_trip_time_seconds', help: 'Round-Trip-Time histogram between peers', labelNames: ['To'], buckets: RTT_BUCKETS_S, registers });
    this.peerSent = new Counter({ name: 'etcd_network_peer_sent_bytes_total', help: 'The total number of bytes sent to peers.', labelNames: ['To'], registers });
    this.peerReceived = new Counter({ name: 'etcd_network_peer_received_bytes_total', help: 'The total number of bytes received from peers.', labelNames: ['From'], registers });
    new Gauge({
      name: 'etcd_mvcc_db_total_size_in_bytes',
      help: 'Total size of the underlying database physically allocated in bytes.',
      registers,
      async collect() {
        const x = m();
        if (x) this.set(await dbSizeBytes(x));
      },
    });
    new Gauge({
      name: 'etcd_debugging_mvcc_keys_total',
      help: 'Total number of keys.',
      registers,
      collect() {
        const x = m();
        if (x) this.set(x.sm.store.keyCount);
      },
    });
    // More of etcd's: identity, versions, revisions, client traffic.
    new Gauge({
      name: 'etcd_server_is_learner',
      help: 'Whether or not this member is a learner. 1 if is, 0 otherwise.',
      registers,
      collect() {
        const x = m();
        this.set(x?.members().find((y) => y.id === x.memberId)?.isLearner ? 1 : 0);
      },
    });
    const ids = new Gauge({ name: 'etcd_server_id', help: 'Server or member ID in hexadecimal format. 1 for \'server_id\' label with current ID.', labelNames: ['server_id'], registers });
    const serverVersion = new Gauge({ name: 'etcd_server_version', help: 'Which version is running. 1 for \'server_version\' label with current version.', labelNames: ['server_version'], registers });
    const clusterVersion = new Gauge({ name: 'etcd_cluster_version', help: 'Which version is running. 1 for \'cluster_version\' label with current cluster version', labelNames: ['cluster_version'], registers });
    this.identity = (memberId, server, cluster) => {
      ids.set({ server_id: memberId.toString(16) }, 1);
      serverVersion.set({ server_version: server }, 1);
      // etcd labels the cluster version major.minor.
      clusterVersion.set({ cluster_version: cluster.split('.').slice(0, 2).join('.') }, 1);
    };
    new Gauge({
      name: 'etcd_debugging_mvcc_current_revision',
      help: 'The current revision of store.',
      registers,
      collect() {
        const x = m();
        if (x) this.set(x.sm.store.revision);
      },
    });
    new Gauge({
      name: 'etcd_debugging_mvcc_compact_revision',
      help: 'The revision of the last compaction in store.',
      registers,
      collect() {
        const x = m();
        // etcd: -1 until the first compaction.
        if (x) this.set(x.sm.store.compactRevision || -1);
      },
    });
    new Gauge({
      name: 'etcd_mvcc_db_total_size_in_use_in_bytes',
      help: 'Total size of the underlying database logically in use in bytes.',
      registers,
      async collect() {
        const x = m();
        if (x) this.set(await dbSizeBytes(x));
      },
    });
    this.clientReceived = new Counter({ name: 'etcd_network_client_grpc_received_bytes_total', help: 'The total number of bytes received from grpc clients.', registers });
    this.clientSent = new Counter({ name: 'etcd_network_client_grpc_sent_bytes_total', help: 'The total number of bytes sent to grpc clients.', registers });
    this.grpcStarted = new Counter({ name: 'grpc_server_started_total', help: 'Total number of RPCs started on the server.', labelNames: ['grpc_type', 'grpc_service', 'grpc_method'], registers });
    this.grpcHandled = new Counter({
      name: 'grpc_server_handled_total',
      help: 'Total number of RPCs completed on the server, regardless of success or failure.',
      labelNames: ['grpc_type', 'grpc_service', 'grpc_method', 'grpc_code'],
      registers,
    });
    // go-grpc-prometheus's handling time (etcd has it with --metrics=extensive): unary calls only.
    this.grpcHandling = new Histogram({
      name: 'grpc_server_handling_seconds',
      help: 'Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.',
      labelNames: ['grpc_type', 'grpc_service', 'grpc_method'],
      buckets: HANDLING_BUCKETS_S,
      registers,
    });
    // Flotilla's own: the disk self-diagnosis (etcd only logs these).
    this.slowFsyncs = new Counter({ name: 'flotilla_disk_wal_slow_fdatasync_total', help: `WAL fdatasyncs that took longer than ${WAL_SLOW_FDATASYNC_MS} ms (each also logged as "slow fdatasync").`, registers });
    this.startupP99 = new Gauge({ name: 'flotilla_disk_fdatasync_startup_p99_seconds', help: 'The 99th percentile of fdatasync in the data directory, measured at start.', registers });
    // process_* and nodejs_* (nodejs_eventloop_lag_seconds and its percentiles among them).
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_MONITOR_MS });
    // Go's process collector has this one too; prom-client does not (Linux: the address-space limit).
    if (process.platform === 'linux') {
      new Gauge({
        name: 'process_virtual_memory_max_bytes',
        help: 'Maximum amount of virtual memory available in bytes.',
        registers,
        collect() {
          const v = addressSpaceLimit();
          if (v !== null) this.set(v);
        },
      });
    }
  }

  /** Records the start-up disk measurement. */
  setDiskCheck(d: FdatasyncMeasurement): void {
    this.diskCheck = d;
    this.startupP99.set(d.p99Ms / 1000);
  }

  /**
   * The observers to give EtcdMember.start. `memberIdOf` names peers (raft id -> member id)
   * until the member is attached (peers may talk before EtcdMember.start returns).
   */
  observers(memberIdOf?: (raftId: number) => bigint): MemberObservers {
    if (memberIdOf && !this.member) this.peerLabel = (id) => memberIdOf(id).toString(16);
    const node: NodeObserver = {
      leaderChanged: (leader, term) => {
        // As etcd: a change to a known leader (not the loss of one) is a leader change seen.
        if (leader !== 0) this.leaderChanges.inc();
        this.hooks.leaderChanged?.(this.member?.memberIdOfRaft(leader) ?? memberIdOf?.(leader) ?? BigInt(leader), term);
      },
      proposalFailed: () => this.proposalsFailed.inc(),
    };
    const storage: StorageObserver = {
      walFsync: (s) => {
        this.walFsync.observe(s);
        if (s * 1000 > WAL_SLOW_FDATASYNC_MS) {
          this.slowFdatasyncCount++;
          this.slowFsyncs.inc();
          this.hooks.slowFdatasync?.(s);
        }
      },
      snapshotSaved: (s) => this.backendCommit.observe(s),
    };
    const transport: TransportObserver = {
      sent: (to, n) => this.peerSent.inc({ To: this.peerLabel(to) }, n),
      received: (from, n) => this.peerReceived.inc({ From: from === 0 ? '0' : this.peerLabel(from) }, n),
      roundTrip: (to, s) => this.rtt.observe({ To: this.peerLabel(to) }, s),
    };
    return { node, storage, transport };
  }

  /** Binds the gauges read at scrape time to the running member. */
  attach(member: EtcdMember, versions: { server: string; cluster: string }): void {
    this.member = member;
    this.identity(member.memberId, versions.server, versions.cluster);
    this.peerLabel = (id) => member.memberIdOfRaft(id).toString(16);
  }

  /** Initialises the gRPC counters of a method (as go-grpc-prometheus does: every method, every code, at 0). */
  registerMethod(type: GrpcType, service: string, method: string): void {
    this.grpcStarted.inc({ grpc_type: type, grpc_service: service, grpc_method: method }, 0);
    for (const code of Object.values(GRPC_CODE_NAMES)) this.grpcHandled.inc({ grpc_type: type, grpc_service: service, grpc_method: method, grpc_code: code }, 0);
  }

  grpcStart(type: GrpcType, service: string, method: string): void {
    this.grpcStarted.inc({ grpc_type: type, grpc_service: service, grpc_method: method });
  }

  /** A call ended with `code`; `seconds`: how long a unary call took (recorded in grpc_server_handling_seconds). */
  grpcDone(type: GrpcType, service: string, method: string, code: number, seconds?: number): void {
    this.grpcHandled.inc({ grpc_type: type, grpc_service: service, grpc_method: method, grpc_code: GRPC_CODE_NAMES[code] ?? 'Unknown' });
    if (seconds !== undefined) this.grpcHandling.observe({ grpc_type: type, grpc_service: service, grpc_method: method }, seconds);
  }

  /** The exposition text and its content type. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/** The soft "Max address space" of /proc/self/limits in bytes (unlimited: 2^64 - 1, as Go reports it); null if unreadable. */
function addressSpaceLimit(): number | null {
  try {
    const m = /^Max address space\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (!m) return null;
    return m[1] === 'unlimited' ? 2 ** 64 - 1 : Number(m[1]);
  } catch {
    return null;
  }
}

/** The size of the member's database: the store's own figure (the one the quota is checked against). */
async function dbSizeBytes(m: EtcdMember): Promise<number> {
  return Promise.resolve(m.sm.store.dbSizeBytes());
}
