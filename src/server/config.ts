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
  /**
   * Logical clocks on peer traffic (--trace-clocks, default true; undefined counts as true):
   * Lamport and vector stamps on every peer frame, on log lines, and the trace ring served at
   * GET /debug/trace. Off only for measuring their cost.
   */
  readonly traceClocks?: boolean;
  /** The store size (MvccStore.dbSizeBytes) at which this member raises the NOSPACE alarm (etcd --quota-backend-bytes). */
  readonly quotaBackendBytes: number;
  /** TLS of the https:// client URLs (null: no client URL is https). */
  readonly clientTls: TlsSettings | null;
  /** TLS of the peer port and of connections to https:// peers (null: no peer URL is https). */
  readonly peerTls: TlsSettings | null;
  /** How auth tokens are made (etcd --auth-token): simple, or jwt with its options. */
  readonly authToken: AuthTokenSpec;
  /** A simple token unused this long expires, ms (etcd --auth-token-ttl, in seconds there). */
  readonly authTokenTtlMs: number;
  /** bcrypt cost for password hashes (etcd --bcrypt-cost). */
  readonly bcryptCost: number;
}

/** JWT signing methods (etcd's, from jwt-go): RSA, RSA-PSS, ECDSA and HMAC. */
export const JWT_SIGN_METHODS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'HS256', 'HS384', 'HS512'] as const;
export type JwtSignMethod = (typeof JWT_SIGN_METHODS)[number];

/** --auth-token parsed as etcd parses it (auth/store.go decomposeOpts, auth/options.go). Key files are read at start. */
export type AuthTokenSpec =
  | { readonly kind: 'simple' }
  | { readonly kind: 'jwt'; readonly signMethod: JwtSignMethod; readonly pubKeyFile?: string; readonly privKeyFile?: string; readonly ttlMs: number };

/** etcd's JWT default TTL (auth/options.go DefaultTTL). */
export const JWT_TTL_DEFAULT_MS = 5 * 60_000;

export function parseAuthToken(v: string): AuthTokenSpec {
  const parts = v.split(',');
  const kind = parts[0]!.trim();
  const opts = new Map<string, string>();
  for (const p of parts.slice(1)) {
    const pair = p.split('=');
    if (pair.length !== 2) throw new ConfigError(`--auth-token: invalid token option "${p}" (expected key=value)`);
    if (opts.has(pair[0]!)) throw new ConfigError(`--auth-token: option ${pair[0]} given twice`);
    opts.set(pair[0]!, pair[1]!);
  }
  if (kind === 'simple') {
    if (opts.size > 0) throw new ConfigError('--auth-token: simple tokens take no options');
    return { kind };
  }
  if (kind !== 'jwt') throw new ConfigError(`--auth-token: unknown token type "${kind}" (simple or jwt)`);
  for (const k of opts.keys()) if (!['sign-method', 'pub-key', 'priv-key', 'ttl'].includes(k)) throw new ConfigError(`--auth-token: unknown JWT option "${k}" (sign-method, pub-key, priv-key, ttl)`);
  const signMethod = opts.get('sign-method') ?? '';
  if (!(JWT_SIGN_METHODS as readonly string[]).includes(signMethod)) throw new ConfigError(`--auth-token: invalid auth signature method "${signMethod}" (one of ${JWT_SIGN_METHODS.join(', ')})`);
  const pub = opts.get('pub-key') || undefined;
  const priv = opts.get('priv-key') || undefined;
  if (!pub && !priv) throw new ConfigError('--auth-token: jwt needs priv-key (to sign) or pub-key (to verify only)');
  const ttlMs = opts.get('ttl') ? durationMs('auth-token ttl', opts.get('ttl'), JWT_TTL_DEFAULT_MS, 1000, 2 ** 31 - 2) : JWT_TTL_DEFAULT_MS;
  return { kind, signMethod: signMethod as JwtSignMethod, ...(pub ? { pubKeyFile: pub } : {}), ...(priv ? { privKeyFile: priv } : {}), ttlMs };
}

/**
 * One side's TLS (etcd's TLSInfo): the files are read at start and again whenever they change
 * (src/lib/tls-files.ts). With autoTls the cert and key are generated into the data dir
 * (etcd's <data-dir>/fixtures/{client,peer}) when absent.
 */
export interface TlsSettings {
  readonly certFile: string;
  readonly keyFile: string;
  /** Clients (peers) must present a certificate signed by this CA (etcd: --trusted-ca-file alone already requires one). */
  readonly trustedCaFile: string | null;
  /** A client (peer) certificate from trustedCaFile is required at the handshake. */
  readonly clientCertAuth: boolean;
  /**
   * Client side: --client-cert-auth as given. A verified certificate's CN is then the user of a
   * call without a token, and the gateway refuses certificates with a CN while auth is on (both
   * as etcd 3.4); --trusted-ca-file alone requires a certificate but makes no user of its CN.
   */
  readonly certCnIsUser: boolean;
  /** The cert and key are self-signed ones generated in the data dir: peers dial without verifying (etcd's InsecureSkipVerify). */
  readonly autoTls: boolean;
  /** Peers only: the client certificate's CN must be exactly this (etcd --peer-cert-allowed-cn). */
  readonly allowedCn: string | null;
  /** OpenSSL cipher list for TLS 1.2 from --cipher-suites (null: Node's default); TLS 1.3 suites are not configurable, as in Go. */
  readonly ciphers: string | null;
}

/** etcd's DefaultQuotaBytes: --quota-backend-bytes 0 (or none) means this. */
export const QUOTA_BACKEND_BYTES_DEFAULT = 2 * 1024 ** 3;
/** etcd's MaxQuotaBytes: a larger quota is accepted with a warning at start (etcd: "may lead to degraded performance"). */
export const QUOTA_BACKEND_BYTES_WARN = 8 * 1024 ** 3;

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
  authToken: 'simple',
  /** etcd's --auth-token-ttl default, 300 s. */
  authTokenTtlMs: 300_000,
  /** bcrypt.DefaultCost, as etcd. */
  bcryptCost: 10,
} as const;

/** bcrypt's cost bounds (golang.org/x/crypto/bcrypt MinCost, MaxCost). */
export const BCRYPT_COST_MIN = 4;
export const BCRYPT_COST_MAX = 31;

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
  traceClocks?: string | boolean;
  quotaBackendBytes?: string | number;
  certFile?: string;
  keyFile?: string;
  trustedCaFile?: string;
  clientCertAuth?: string | boolean;
  autoTls?: string | boolean;
  peerCertFile?: string;
  peerKeyFile?: string;
  peerTrustedCaFile?: string;
  peerClientCertAuth?: string | boolean;
  peerAutoTls?: string | boolean;
  peerCertAllowedCn?: string;
  cipherSuites?: string;
  authToken?: string;
  authTokenTtl?: string | number;
  bcryptCost?: string | number;
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
    'traceClocks', 'quotaBackendBytes',
    'certFile', 'keyFile', 'trustedCaFile', 'clientCertAuth', 'autoTls', 'peerCertFile', 'peerKeyFile', 'peerTrustedCaFile', 'peerClientCertAuth', 'peerAutoTls',
    'peerCertAllowedCn', 'cipherSuites',
    'authToken', 'authTokenTtl', 'bcryptCost',
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
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError(`--${flag}: "${s}" must start with http:// or https://`);
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

/**
 * etcd's --cipher-suites names (Go's crypto/tls constants, as etcd 3.4's pkg/tlsutil lists them)
 * and OpenSSL's names for the same suites. Go's RC4 suites are left out: OpenSSL 3 no longer has them.
 */
export const CIPHER_SUITES: Readonly<Record<string, string>> = {
  TLS_RSA_WITH_3DES_EDE_CBC_SHA: 'DES-CBC3-SHA',
  TLS_RSA_WITH_AES_128_CBC_SHA: 'AES128-SHA',
  TLS_RSA_WITH_AES_256_CBC_SHA: 'AES256-SHA',
  TLS_RSA_WITH_AES_128_CBC_SHA256: 'AES128-SHA256',
  TLS_RSA_WITH_AES_128_GCM_SHA256: 'AES128-GCM-SHA256',
  TLS_RSA_WITH_AES_256_GCM_SHA384: 'AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: 'ECDHE-ECDSA-AES128-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: 'ECDHE-ECDSA-AES256-SHA',
  TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA: 'ECDHE-RSA-DES-CBC3-SHA',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: 'ECDHE-RSA-AES128-SHA',
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: 'ECDHE-RSA-AES256-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256: 'ECDHE-ECDSA-AES128-SHA256',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256: 'ECDHE-RSA-AES128-SHA256',
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 'ECDHE-RSA-AES128-GCM-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 'ECDHE-RSA-AES256-GCM-SHA384',
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305: 'ECDHE-ECDSA-CHACHA20-POLY1305',
};

/** --cipher-suites (comma-separated etcd names) -> an OpenSSL cipher list; null when not given. */
export function opensslCiphers(v: string | undefined): string | null {
  if (v === undefined || v.trim() === '') return null;
  return v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((name) => {
      const o = CIPHER_SUITES[name];
      if (!o) throw new ConfigError(`--cipher-suites: unexpected TLS cipher suite "${name}" (known: ${Object.keys(CIPHER_SUITES).join(', ')})`);
      return o;
    })
    .join(':');
}

/**
 * One side's TLS settings as etcd reads them: needed when a URL of that side is https (given
 * cert and key win over auto TLS); files given for an http-only side are ignored with a warning
 * (`warnings`), as etcd does.
 */
function tlsSettings(
  side: 'client' | 'peer',
  o: { https: boolean; certFile?: string; keyFile?: string; trustedCaFile?: string; clientCertAuth: boolean; autoTls: boolean; allowedCn?: string; ciphers: string | null; dataDir: string },
  warnings: string[],
): TlsSettings | null {
  const f = (flag: string) => (side === 'peer' ? `--peer-${flag}` : `--${flag}`);
  if (!o.https) {
    if (o.certFile || o.keyFile || o.trustedCaFile || o.autoTls) warnings.push(`the ${side} URLs are http://: ${f('cert-file')}, ${f('key-file')}, ${f('trusted-ca-file')} and ${f('auto-tls')} are ignored`);
    return null;
  }
  if (Boolean(o.certFile) !== Boolean(o.keyFile)) throw new ConfigError(`${o.certFile ? f('cert-file') : f('key-file')} is given without ${o.certFile ? f('key-file') : f('cert-file')}`);
  const given = Boolean(o.certFile);
  if (!given && !o.autoTls) throw new ConfigError(`TLS key/cert (${f('cert-file')}, ${f('key-file')}) must be provided for ${side} URLs with the https scheme (or ${f('auto-tls')})`);
  if (o.clientCertAuth && !o.trustedCaFile) throw new ConfigError(`${f('client-cert-auth')} needs ${f('trusted-ca-file')}: the CA client certificates must be signed by`);
  const fixtures = `${o.dataDir}/fixtures/${side}`;
  return {
    certFile: given ? o.certFile! : `${fixtures}/cert.pem`,
    keyFile: given ? o.keyFile! : `${fixtures}/key.pem`,
    trustedCaFile: o.trustedCaFile || null,
    clientCertAuth: o.clientCertAuth || Boolean(o.trustedCaFile),
    certCnIsUser: side === 'client' && o.clientCertAuth,
    autoTls: !given,
    allowedCn: o.allowedCn || null,
    ciphers: o.ciphers,
  };
}

/** Settings that etcd accepts but ignores, each as a line for the log (see tlsSettings). */
export function configWarnings(input: RawConfig): string[] {
  const warnings: string[] = [];
  try {
    resolveWith(input, warnings);
  } catch {
    // resolveConfig reports it.
  }
  return warnings;
}

export function resolveConfig(input: RawConfig): ServerConfig {
  return resolveWith(input, []);
}

function resolveWith(input: RawConfig, warnings: string[]): ServerConfig {
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
  const dataDir = raw.dataDir ?? `${name}.etcd`;
  const ciphers = opensslCiphers(raw.cipherSuites);
  const clientTls = tlsSettings(
    'client',
    { https: listenClientUrls.some((u) => u.protocol === 'https:'), certFile: raw.certFile, keyFile: raw.keyFile, trustedCaFile: raw.trustedCaFile, clientCertAuth: bool('client-cert-auth', raw.clientCertAuth), autoTls: bool('auto-tls', raw.autoTls), ciphers, dataDir },
    warnings,
  );
  const peerHttps = listenPeerUrls.some((u) => u.protocol === 'https:') || initialCluster.some((m) => m.peerUrls.some((u) => u.startsWith('https:')));
  const peerTls = tlsSettings(
    'peer',
    {
      https: peerHttps,
      certFile: raw.peerCertFile,
      keyFile: raw.peerKeyFile,
      trustedCaFile: raw.peerTrustedCaFile,
      clientCertAuth: bool('peer-client-cert-auth', raw.peerClientCertAuth),
      autoTls: bool('peer-auto-tls', raw.peerAutoTls),
      allowedCn: raw.peerCertAllowedCn,
      ciphers,
      dataDir,
    },
    warnings,
  );
  if (raw.peerCertAllowedCn && !peerTls?.clientCertAuth) throw new ConfigError('--peer-cert-allowed-cn needs --peer-client-cert-auth (or --peer-trusted-ca-file): only a verified certificate has a CN to check');
  return {
    name,
    dataDir,
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
    traceClocks: raw.traceClocks === undefined ? true : bool('trace-clocks', raw.traceClocks),
    // 0 means the default, as in etcd (etcd's negative "no quota" is refused: use a large value).
    quotaBackendBytes: int('quota-backend-bytes', raw.quotaBackendBytes, 0, 0, Number.MAX_SAFE_INTEGER) || QUOTA_BACKEND_BYTES_DEFAULT,
    clientTls,
    peerTls,
    authToken: parseAuthToken(raw.authToken ?? CONFIG_DEFAULTS.authToken),
    // Seconds, as etcd's flag.
    authTokenTtlMs: 1000 * int('auth-token-ttl', raw.authTokenTtl, CONFIG_DEFAULTS.authTokenTtlMs / 1000, 1, 2 ** 31 / 1000 - 1),
    bcryptCost: int('bcrypt-cost', raw.bcryptCost, CONFIG_DEFAULTS.bcryptCost, BCRYPT_COST_MIN, BCRYPT_COST_MAX),
  };
}

/** Loopback: 127.0.0.0/8, ::1 and localhost. */
const isLoopback = (host: string): boolean => /^127\.\d+\.\d+\.\d+$/.test(host) || host === '[::1]' || host === '::1' || host === 'localhost';

/**
 * A plain (http://) peer URL listening beyond loopback: whoever reaches the port can send Raft
 * messages as a member (README: Security).
 */
export function plainPeerWarnings(config: Pick<ServerConfig, 'listenPeerUrls'>): string[] {
  return config.listenPeerUrls
    .filter((u) => u.protocol === 'http:' && !isLoopback(u.hostname))
    .map((u) => `the peer URL ${u.protocol}//${u.host} listens beyond loopback without TLS: anyone who can reach it can act as a member (forge Raft messages); use https:// peer URLs with --peer-client-cert-auth, or make the port reachable by members only`);
}
