/**
 * A member's configuration from etcd-style flags and FLOTILLA_* environment variables,
 * validated up front with readable errors. Member and cluster ids are derived from the
 * initial cluster exactly as etcd derives them (SHA-1 of the sorted peer URLs and the cluster
 * token), so every member computes the same ids from the same flags.
 */
import { BACKEND_BATCH_INTERVAL_MS, BACKEND_BATCH_OPS_MAX } from '../kv/backend.js';
import { createHash } from 'node:crypto';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface InitialMember {
  readonly name: string;
  readonly peerUrls: readonly string[];
  /** The API member id (uint64). */
  readonly id: bigint;
  /** The Raft node id (1..n, by name). */
  readonly raftId: number;
}

export interface ServerConfig {
  readonly name: string;
  readonly dataDir: string;
  readonly listenClientUrls: readonly URL[];
  readonly advertiseClientUrls: readonly string[];
  readonly listenPeerUrls: readonly URL[];
  readonly initialAdvertisePeerUrls: readonly string[];
  readonly initialCluster: readonly InitialMember[];
  readonly initialClusterState: 'new' | 'existing';
  readonly initialClusterToken: string;
  readonly clusterId: bigint;
  readonly self: InitialMember;
  /** Milliseconds per Raft tick = the heartbeat interval. */
  readonly heartbeatMs: number;
  readonly electionMs: number;
  /**
   * Lease reads: the leader answers linearizable reads from its lease (a quorum acknowledged a
   * heartbeat within the election timeout minus leaseDriftMs) without a heartbeat round.
   * Safe only while clocks run at about the same rate and pauses are seen (see README).
   */
  readonly leaseReads: boolean;
  /** Lease reads: the margin for clock-rate differences, ms (rounded up to whole heartbeats). */
  readonly leaseDriftMs: number;
  /** Applied entries between snapshots. */
  readonly snapshotCount: number;
  /** Entries kept below a snapshot so a slightly lagging follower catches up without one. */
  readonly snapshotCatchupEntries: number;
  /** Commit the backend (LMDB) at least this often, ms (etcd --backend-batch-interval). */
  readonly backendBatchIntervalMs: number;
  /** Commit the backend once this many writes wait (etcd --backend-batch-limit). */
  readonly backendBatchLimit: number;
  /** Largest client request accepted (etcd --max-request-bytes). */
  readonly maxRequestBytes: number;
  /** Operations per txn branch (etcd --max-txn-ops). */
  readonly maxTxnOps: number;
  /** How long a write or a linearizable read may wait, ms. */
  readonly requestTimeoutMs: number;
  /** Interval of watch progress notifications to watchers that asked (0 = off). */
  readonly watchProgressNotifyIntervalMs: number;
  /** HTTP/2 streams one client connection may have open (etcd --max-concurrent-streams). */
  readonly maxConcurrentStreams: number;
  /** Client connections open at once over every client URL; more are closed at once. */
  readonly maxClientConnections: number;
  /** An HTTP/2 client connection with no open stream this long is closed, ms (0 = never). */
  readonly clientIdleTimeoutMs: number;
  /** First bytes of a client connection, and an HTTP/1 request head, must arrive within, ms. */
  readonly clientHeaderTimeoutMs: number;
  /** An HTTP/1 request (head and body) must arrive within, ms. */
  readonly clientBodyTimeoutMs: number;
  /** Clients pinging more often get GOAWAY ENHANCE_YOUR_CALM, ms (etcd --grpc-keepalive-min-time; 0 = never). */
  readonly grpcKeepaliveMinTimeMs: number;
  /** The server pings an HTTP/2 client connection this often, ms (etcd --grpc-keepalive-interval). */
  readonly grpcKeepaliveIntervalMs: number;
  /** ... and closes it if the ping is not answered within, ms (etcd --grpc-keepalive-timeout). */
  readonly grpcKeepaliveTimeoutMs: number;
  /** Test-only: per-link drops and slow fsync, driven over POST /debug/faults (never in production). */
  readonly unsafeFaultInjection: boolean;
}

/** Defaults as etcd 3.4's. */
export const CONFIG_DEFAULTS = {
  name: 'default',
  listenClientUrls: 'http://localhost:2379',
  listenPeerUrls: 'http://localhost:2380',
  initialAdvertisePeerUrls: 'http://localhost:2380',
  initialClusterState: 'new',
  initialClusterToken: 'etcd-cluster',
  heartbeatMs: 100,
  electionMs: 1000,
  snapshotCount: 10_000,
  /** etcd's snapshotCatchUpEntries. */
  snapshotCatchupEntries: 5000,
  backendBatchIntervalMs: BACKEND_BATCH_INTERVAL_MS,
  backendBatchLimit: BACKEND_BATCH_OPS_MAX,
  /** 1.5 MiB, etcd's default. */
  maxRequestBytes: 1.5 * 1024 * 1024,
  maxTxnOps: 128,
  requestTimeoutMs: 5000,
  watchProgressNotifyIntervalMs: 10 * 60 * 1000,
  /**
   * etcd 3.4 leaves it unbounded (math.MaxUint32); a bound keeps one connection's in-flight
   * requests (each up to the gRPC receive limit) finite while leaving room for a client that
   * multiplexes many watches and calls over one connection, as etcd's clients do.
   */
  maxConcurrentStreams: 1000,
  maxClientConnections: 1024,
  clientIdleTimeoutMs: 120_000,
  clientHeaderTimeoutMs: 10_000,
  clientBodyTimeoutMs: 30_000,
  /** etcd's defaults (5 s, 2 h, 20 s). */
  grpcKeepaliveMinTimeMs: 5_000,
  grpcKeepaliveIntervalMs: 2 * 3600_000,
  grpcKeepaliveTimeoutMs: 20_000,
} as const;

/** The raw settings: flag values, or the same from FLOTILLA_* environment variables. */
export interface RawConfig {
  name?: string;
  dataDir?: string;
  listenClientUrls?: string;
  advertiseClientUrls?: string;
  listenPeerUrls?: string;
  initialAdvertisePeerUrls?: string;
  initialCluster?: string;
  initialClusterState?: string;
  initialClusterToken?: string;
  heartbeatInterval?: string | number;
  electionTimeout?: string | number;
  leaseReads?: string | boolean;
  leaseDrift?: string | number;
  snapshotCount?: string | number;
  snapshotCatchupEntries?: string | number;
  backendBatchInterval?: string | number;
  backendBatchLimit?: string | number;
  maxRequestBytes?: string | number;
  maxTxnOps?: string | number;
  requestTimeout?: string | number;
  watchProgressNotifyInterval?: string | number;
  maxConcurrentStreams?: string | number;
  maxClientConnections?: string | number;
  clientIdleTimeout?: string | number;
  clientHeaderTimeout?: string | number;
  clientBodyTimeout?: string | number;
  grpcKeepaliveMinTime?: string | number;
  grpcKeepaliveInterval?: string | number;
  grpcKeepaliveTimeout?: string | number;
  unsafeFaultInjection?: string | boolean;
}

/** camelCase setting -> FLOTILLA_SNAKE_CASE variable. */
export function envName(key: string): string {
  return `FLOTILLA_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

/** Flags win over the environment. */
export function withEnv(raw: RawConfig, env: NodeJS.ProcessEnv = process.env): RawConfig {
  const keys: (keyof RawConfig)[] = [
    'name', 'dataDir', 'listenClientUrls', 'advertiseClientUrls', 'listenPeerUrls', 'initialAdvertisePeerUrls', 'initialCluster',
    'initialClusterState', 'initialClusterToken', 'heartbeatInterval', 'electionTimeout', 'leaseReads', 'leaseDrift', 'snapshotCount', 'snapshotCatchupEntries', 'backendBatchInterval', 'backendBatchLimit', 'maxRequestBytes', 'maxTxnOps',
    'requestTimeout', 'watchProgressNotifyInterval', 'maxConcurrentStreams', 'maxClientConnections', 'clientIdleTimeout', 'clientHeaderTimeout',
    'clientBodyTimeout', 'grpcKeepaliveMinTime', 'grpcKeepaliveInterval', 'grpcKeepaliveTimeout', 'unsafeFaultInjection',
  ];
  const out: RawConfig = { ...raw };
  for (const k of keys) {
    const v = env[envName(k)];
    if (out[k] === undefined && v !== undefined && v !== '') (out as Record<string, unknown>)[k] = v;
  }
  return out;
}

function urls(flag: string, v: string): URL[] {
  const list = v.split(',').map((s) => s.trim()).filter(Boolean);
  if (list.length === 0) throw new ConfigError(`--${flag}: no URL given`);
  return list.map((s) => {
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      throw new ConfigError(`--${flag}: "${s}" is not a URL (expected http://host:port)`);
    }
    if (u.protocol === 'https:') throw new ConfigError(`--${flag}: "${s}": TLS is not supported yet; use http://`);
    if (u.protocol !== 'http:') throw new ConfigError(`--${flag}: "${s}" must start with http://`);
    if (!u.port) throw new ConfigError(`--${flag}: "${s}" has no port`);
    if (u.pathname !== '/' || u.search || u.hash) throw new ConfigError(`--${flag}: "${s}" must be scheme://host:port only`);
    return u;
  });
}

const urlString = (u: URL): string => `${u.protocol}//${u.host}`;

function int(flag: string, v: string | number | undefined, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt;
  const s = String(v).trim();
  if (!/^\d+$/.test(s)) throw new ConfigError(`--${flag}: "${s}" is not a non-negative integer`);
  const n = Number(s);
  if (n < min || n > max) throw new ConfigError(`--${flag}: ${n} is outside [${min}, ${max}]`);
  return n;
}

const DURATION_UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3600_000 };

/**
 * A duration flag, in ms: a Go duration as etcd takes it ("5s", "2h", "1m30s", "500ms"), or a
 * bare integer meaning ms, as our other ms flags.
 */
export function durationMs(flag: string, v: string | number | undefined, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt;
  const s = String(v).trim();
  let ms: number;
  if (/^\d+$/.test(s)) ms = Number(s);
  else if (/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(s)) {
    ms = 0;
    for (const m of s.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(m[1]) * DURATION_UNIT_MS[m[2]!]!;
    ms = Math.round(ms);
  } else throw new ConfigError(`--${flag}: "${s}" is not a duration (e.g. 5s, 2h, 500ms, or a number of ms)`);
  if (ms < min || ms > max) throw new ConfigError(`--${flag}: ${ms} ms is outside [${min}, ${max}] ms`);
  return ms;
}

function bool(flag: string, v: string | boolean | undefined): boolean {
  if (v === undefined || v === false) return false;
  if (v === true || v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new ConfigError(`--${flag}: "${v}" must be true or false`);
}

/** etcd's member id: SHA-1 of the sorted peer URLs joined, then the cluster token; first 8 bytes. */
export function memberIdOf(peerUrls: readonly string[], token: string): bigint {
  const h = createHash('sha1').update([...peerUrls].sort().join('') + token).digest();
  return h.readBigUInt64BE(0);
}

/** etcd's cluster id: SHA-1 of the sorted member ids as 8-byte big-endian; first 8 bytes. */
export function clusterIdOf(memberIds: readonly bigint[]): bigint {
  const sorted = [...memberIds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const b = Buffer.alloc(8 * sorted.length);
  sorted.forEach((id, i) => b.writeBigUInt64BE(id, 8 * i));
  return createHash('sha1').update(b).digest().readBigUInt64BE(0);
}

export function parseInitialCluster(v: string, token: string): InitialMember[] {
  const byName = new Map<string, string[]>();
  for (const part of v.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--initial-cluster: "${part}" is not name=http://host:port`);
    const name = part.slice(0, eq);
    const url = urlString(urls('initial-cluster', part.slice(eq + 1))[0]!);
    byName.set(name, [...(byName.get(name) ?? []), url]);
  }
  if (byName.size === 0) throw new ConfigError('--initial-cluster: no member given');
  const names = [...byName.keys()].sort();
  const members = names.map((name, i) => {
    const peerUrls = byName.get(name)!;
    return { name, peerUrls, id: memberIdOf(peerUrls, token), raftId: i + 1 };
  });
  const seen = new Map<string, string>();
  for (const m of members) {
    for (const u of m.peerUrls) {
      const other = seen.get(u);
      if (other) throw new ConfigError(`--initial-cluster: peer URL ${u} is given for both ${other} and ${m.name}`);
      seen.set(u, m.name);
    }
  }
  return members;
}

export function resolveConfig(input: RawConfig): ServerConfig {
  const raw = input;
  const name = raw.name ?? CONFIG_DEFAULTS.name;
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new ConfigError(`--name: "${name}" may contain only letters, digits, '.', '_' and '-'`);
  const listenClientUrls = urls('listen-client-urls', raw.listenClientUrls ?? CONFIG_DEFAULTS.listenClientUrls);
  const advertiseClientUrls = urls('advertise-client-urls', raw.advertiseClientUrls ?? listenClientUrls.map(urlString).join(',')).map(urlString);
  const listenPeerUrls = urls('listen-peer-urls', raw.listenPeerUrls ?? CONFIG_DEFAULTS.listenPeerUrls);
  const initialAdvertisePeerUrls = urls('initial-advertise-peer-urls', raw.initialAdvertisePeerUrls ?? CONFIG_DEFAULTS.initialAdvertisePeerUrls).map(urlString);
  const token = raw.initialClusterToken ?? CONFIG_DEFAULTS.initialClusterToken;
  if (token.length === 0) throw new ConfigError('--initial-cluster-token: must not be empty');
  const initialCluster = parseInitialCluster(raw.initialCluster ?? `${name}=${initialAdvertisePeerUrls.join(`,${name}=`)}`, token);
  const self = initialCluster.find((m) => m.name === name);
  if (!self) throw new ConfigError(`--initial-cluster has no member named "${name}" (--name); it lists ${initialCluster.map((m) => m.name).join(', ')}`);
  const mine = [...initialAdvertisePeerUrls].sort().join(',');
  if ([...self.peerUrls].sort().join(',') !== mine) {
    throw new ConfigError(`--initial-cluster gives ${name} the peer URLs ${self.peerUrls.join(',')} but --initial-advertise-peer-urls is ${initialAdvertisePeerUrls.join(',')}`);
  }
  const state = raw.initialClusterState ?? CONFIG_DEFAULTS.initialClusterState;
  if (state !== 'new' && state !== 'existing') throw new ConfigError(`--initial-cluster-state: "${state}" must be new or existing`);
  const heartbeatMs = int('heartbeat-interval', raw.heartbeatInterval, CONFIG_DEFAULTS.heartbeatMs, 1, 60_000);
  const electionMs = int('election-timeout', raw.electionTimeout, CONFIG_DEFAULTS.electionMs, 1, 600_000);
  if (electionMs < 5 * heartbeatMs) throw new ConfigError(`--election-timeout (${electionMs} ms) must be at least 5 times --heartbeat-interval (${heartbeatMs} ms)`);
  const leaseReads = bool('lease-reads', raw.leaseReads);
  const leaseDriftMs = int('lease-drift', raw.leaseDrift, Math.ceil(electionMs / 5), 0, 600_000);
  if (Math.ceil(leaseDriftMs / heartbeatMs) >= Math.round(electionMs / heartbeatMs)) {
    throw new ConfigError(`--lease-drift (${leaseDriftMs} ms, in whole heartbeats) must be less than --election-timeout (${electionMs} ms)`);
  }
  const clientHeaderTimeoutMs = durationMs('client-header-timeout', raw.clientHeaderTimeout, CONFIG_DEFAULTS.clientHeaderTimeoutMs, 100, 3600_000);
  const clientBodyTimeoutMs = durationMs('client-body-timeout', raw.clientBodyTimeout, CONFIG_DEFAULTS.clientBodyTimeoutMs, 100, 24 * 3600_000);
  if (clientBodyTimeoutMs < clientHeaderTimeoutMs) {
    throw new ConfigError(`--client-body-timeout (${clientBodyTimeoutMs} ms) must be at least --client-header-timeout (${clientHeaderTimeoutMs} ms): it covers the head too`);
  }
  return {
    name,
    dataDir: raw.dataDir ?? `${name}.etcd`,
    listenClientUrls,
    advertiseClientUrls,
    listenPeerUrls,
    initialAdvertisePeerUrls,
    initialCluster,
    initialClusterState: state,
    initialClusterToken: token,
    clusterId: clusterIdOf(initialCluster.map((m) => m.id)),
    self,
    heartbeatMs,
    electionMs,
    leaseReads,
    leaseDriftMs,
    snapshotCount: int('snapshot-count', raw.snapshotCount, CONFIG_DEFAULTS.snapshotCount, 1, 10_000_000),
    snapshotCatchupEntries: int('snapshot-catchup-entries', raw.snapshotCatchupEntries, CONFIG_DEFAULTS.snapshotCatchupEntries, 0, 10_000_000),
    backendBatchIntervalMs: int('backend-batch-interval', raw.backendBatchInterval, CONFIG_DEFAULTS.backendBatchIntervalMs, 1, 60_000),
    backendBatchLimit: int('backend-batch-limit', raw.backendBatchLimit, CONFIG_DEFAULTS.backendBatchLimit, 1, 10_000_000),
    maxRequestBytes: int('max-request-bytes', raw.maxRequestBytes, CONFIG_DEFAULTS.maxRequestBytes, 1024, 64 * 1024 * 1024),
    maxTxnOps: int('max-txn-ops', raw.maxTxnOps, CONFIG_DEFAULTS.maxTxnOps, 1, 100_000),
    requestTimeoutMs: int('request-timeout', raw.requestTimeout, CONFIG_DEFAULTS.requestTimeoutMs, 100, 600_000),
    watchProgressNotifyIntervalMs: int('watch-progress-notify-interval', raw.watchProgressNotifyInterval, CONFIG_DEFAULTS.watchProgressNotifyIntervalMs, 0, 24 * 3600_000),
    maxConcurrentStreams: int('max-concurrent-streams', raw.maxConcurrentStreams, CONFIG_DEFAULTS.maxConcurrentStreams, 1, 2 ** 32 - 1),
    maxClientConnections: int('max-client-connections', raw.maxClientConnections, CONFIG_DEFAULTS.maxClientConnections, 1, 1_000_000),
    clientIdleTimeoutMs: durationMs('client-idle-timeout', raw.clientIdleTimeout, CONFIG_DEFAULTS.clientIdleTimeoutMs, 0, 2 ** 31 - 2),
    clientHeaderTimeoutMs,
    clientBodyTimeoutMs,
    grpcKeepaliveMinTimeMs: durationMs('grpc-keepalive-min-time', raw.grpcKeepaliveMinTime, CONFIG_DEFAULTS.grpcKeepaliveMinTimeMs, 0, 2 ** 31 - 2),
    grpcKeepaliveIntervalMs: durationMs('grpc-keepalive-interval', raw.grpcKeepaliveInterval, CONFIG_DEFAULTS.grpcKeepaliveIntervalMs, 1000, 2 ** 31 - 2),
    grpcKeepaliveTimeoutMs: durationMs('grpc-keepalive-timeout', raw.grpcKeepaliveTimeout, CONFIG_DEFAULTS.grpcKeepaliveTimeoutMs, 1000, 2 ** 31 - 2),
    unsafeFaultInjection: bool('unsafe-fault-injection', raw.unsafeFaultInjection),
  };
}
