/**
 * A whole Flotilla server process's work: the member, the gRPC services and the JSON gateway
 * on each client URL (one port carries both), /health and /version, /metrics, /livez and
 * /readyz, the dashboard at /ui/; the disk check at start.
 */
import * as grpc from '@grpc/grpc-js';
import { mkdir } from 'node:fs/promises';
import { ConnectionBudget, createGateway, serveOnOnePort } from '../api/http.js';
import { serviceDefinition } from '../api/proto.js';
import { buildHandlers, CLUSTER_VERSION, ETCD_API_VERSION } from '../api/services.js';
import type { Wire } from '../api/convert.js';
import { clientCertCommonName, type CallWithMetadata } from '../api/tls-identity.js';
import { checkAdmin } from '../api/auth.js';
import { KvError } from '../kv/errors.js';
import type { IncomingMessage } from 'node:http';
import type { Logger } from '../raft/config.js';
import type { ServerConfig } from './config.js';
import { faultRoute } from './faults.js';
import { EtcdMember, type MemberEnv } from './member.js';
import { measureFdatasync, WAL_SLOW_FDATASYNC_MS } from './disk-check.js';
import { logWith, OperatorLog } from './log.js';
import { MemberMetrics, type GrpcType } from './metrics.js';
import { opsRoute, type ProbeCheck } from './ops-http.js';
import { loadTls } from './tls.js';
import { Deadline, withDeadline } from './wait.js';
import { uiCounters, uiRoute } from './ui-http.js';
import { MetricHistory } from './ui-history.js';

/** gRPC's receive limit (etcd: max request bytes + 512 KiB; 2 MiB at the default). */
export const GRPC_RECEIVE_BYTES_MAX = 2 * 1024 * 1024;
/**
 * nghttp2's memory per client connection, MB (Node's default; grpc-js would lift it to
 * unlimited): while a session is over it, its new streams are refused with ENHANCE_YOUR_CALM.
 */
export const H2_SESSION_MEMORY_MB = 10;
/** How long /health waits for a linearizable read. */
export const HEALTH_TIMEOUT_MS = 1000;
/**
 * How long closing the server after its member failed may take before its owner gives up on a
 * clean close (`flotilla serve` then exits anyway: it must never linger accepting connections).
 */
export const FATAL_CLOSE_MS_MAX = 2000;

export interface RunningServer {
  readonly member: EtcdMember;
  /** This member's Prometheus metrics (served at /metrics). */
  readonly metrics: MemberMetrics;
  /** The bound client ports, in --listen-client-urls order. */
  readonly clientPorts: number[];
  /**
   * Resolves with the error that stopped the member (a WAL or disk failure, an error in the
   * Ready loop); never for a clean close. The server closes itself at once: the client
   * listeners first (no new connection is accepted, open ones are cut), then the gRPC server
   * and the member with its peer transport. A process owning it should exit (serve.ts does).
   */
  readonly fatal: Promise<Error>;
  /** Closes everything (idempotent: every call returns the same close). */
  close(): Promise<void>;
}

export interface ServerOptions {
  /** The user a call's verified client certificate names (TLS with client cert auth): see src/api/auth.ts. */
  readonly identityFromCall?: (call: unknown) => string | undefined;
  /** What the member runs on (default: TCP, the disk, LMDB); see MemberEnv. */
  readonly env?: MemberEnv;
}

export async function startServer(config: ServerConfig, logger: Logger, opts: ServerOptions = {}): Promise<RunningServer> {
  const metrics = new MemberMetrics({
    slowFdatasync: (s) => logWith(logger, 'warn', 'slow fdatasync', { took: `${(s * 1000).toFixed(1)}ms`, 'expected-duration': `${WAL_SLOW_FDATASYNC_MS}ms` }),
    leaderChanged: (leader, term) =>
      logWith(logger, 'info', leader ? `raft.node: ${config.self.id.toString(16)} elected leader ${leader.toString(16)} at term ${term}` : `raft.node: ${config.self.id.toString(16)} lost leader at term ${term}`),
  });
  // Disk self-diagnosis: how long fdatasync takes where the WAL will live.
  await mkdir(config.dataDir, { recursive: true });
  // (Not with the WAL in memory: there is no disk to measure.)
  const disk = opts.env?.fs ? null : await measureFdatasync(config.dataDir);
  if (disk) metrics.setDiskCheck(disk);
  // Before the member starts: unusable certificate files stop the server at once.
  const clientTls = config.clientTls ? loadTls('client', config.clientTls, [...config.listenClientUrls, ...config.advertiseClientUrls.map((u) => new URL(u))], logger) : null;
  if (disk) logWith(logger, disk.good ? 'info' : 'warn', disk.verdict, { syncs: disk.syncs, 'p50-ms': round3(disk.p50Ms), 'p99-ms': round3(disk.p99Ms), 'max-ms': round3(disk.maxMs), 'data-dir': config.dataDir });
  // Peers' member ids for metric labels: from the replicated member table once the member runs
  // (members added at runtime), from the flags before that.
  const initialIds = new Map(config.initialCluster.map((x) => [x.raftId, x.id]));
  let running: EtcdMember | null = null;
  const member = await EtcdMember.start(config, logger, metrics.observers((raftId) => running?.memberIdOfRaft(raftId) || initialIds.get(raftId) || 0n), opts.env);
  running = member;
  // Log lines carry the member's clocks from here on (each is a local event of its trace).
  if (logger instanceof OperatorLog) logger.traceTo(member.clocks);
  metrics.attach(member, { server: ETCD_API_VERSION, cluster: CLUSTER_VERSION });
  const sizes = new WeakMap<object, number>();
  const server = new grpc.Server({
    'grpc.max_receive_message_length': Math.max(GRPC_RECEIVE_BYTES_MAX, config.maxRequestBytes + 512 * 1024),
    'grpc.max_send_message_length': 2 ** 31 - 1,
    'grpc.max_concurrent_streams': config.maxConcurrentStreams,
    'grpc-node.max_session_memory': H2_SESSION_MEMORY_MB,
    // A connection without an open stream for this long gets GOAWAY and is closed (also one
    // that never opens a stream: the idle clock starts when it is handed to grpc-js).
    ...(config.clientIdleTimeoutMs > 0 ? { 'grpc.max_connection_idle_ms': config.clientIdleTimeoutMs } : {}),
    // etcd's --grpc-keepalive-interval / --grpc-keepalive-timeout: the server pings, and
    // closes a connection whose ping is not answered in time.
    'grpc.keepalive_time_ms': config.grpcKeepaliveIntervalMs,
    'grpc.keepalive_timeout_ms': config.grpcKeepaliveTimeoutMs,
  });
  const handlers = buildHandlers(member, {
    // The verified client certificate's CN is the user of a call without a token (etcd's --client-cert-auth).
    // (Only with --client-cert-auth itself: --trusted-ca-file alone makes no user of the CN, as in etcd.)
    identityFromCall: opts.identityFromCall ?? (config.clientTls?.certCnIsUser ? (call: unknown) => clientCertCommonName(call as CallWithMetadata) : undefined),
    // Requests from the JSON gateway were not received as protobuf: measure them encoded.
    requestBytes: (req: Wire, method: string) => sizes.get(req) ?? serviceDefinition('etcdserverpb.KV')[method]!.requestSerialize(req).length,
  });
  instrumentHandlers(handlers, metrics);
  addDiskStatus(handlers, metrics);
  for (const [name, impl] of Object.entries(handlers)) {
    // Record each request's size as received, for the request size limit.
    const def: Record<string, grpc.MethodDefinition<object, object>> = {};
    for (const [method, d] of Object.entries(serviceDefinition(name))) {
      def[method] = {
        ...(d as grpc.MethodDefinition<object, object>),
        requestDeserialize: (b: Buffer) => {
          const o = d.requestDeserialize(b) as object;
          sizes.set(o, b.length);
          metrics.clientReceived.inc(b.length);
          return o;
        },
        responseSerialize: (v: object) => {
          const b = d.responseSerialize(v);
          metrics.clientSent.inc(b.length);
          return b;
        },
      };
    }
    server.addService(def as grpc.ServiceDefinition, impl);
  }
  const health = async (): Promise<{ health: boolean; reason?: string }> => {
    if (member.node.failure) return { health: false, reason: member.node.failure.message };
    // As etcd 3.4's checkAlarms: any active alarm (of any member) makes every member unhealthy.
    const alarm = member.sm.alarms()[0];
    if (alarm) return { health: false, reason: `ALARM ${alarm.alarm}` };
    if (member.node.leader === 0) return { health: false, reason: 'RAFT NO LEADER' };
    if (!member.published) return { health: false, reason: 'member not yet published to the cluster' };
    try {
      await withDeadline(member.readBarrier(), Deadline.in(HEALTH_TIMEOUT_MS), () => new Error('linearizable read timed out'));
      return { health: true };
    } catch (e) {
      return { health: false, reason: (e as Error).message };
    }
  };
  const api = createGateway({
    handlers,
    version: { etcdserver: ETCD_API_VERSION, etcdcluster: CLUSTER_VERSION },
    health,
    refuseCertCn: () => Boolean(config.clientTls?.certCnIsUser) && member.sm.auth.enabled,
  });
  const ops = opsRoute({
    metrics: () => metrics.scrape(),
    ...probes(member),
    warn: (msg) => logWith(logger, 'warn', msg),
    trace: () => member.clocks,
    authorizeDebug: (req) => rootOnly(member, req),
  });
  const faultsRoute = config.unsafeFaultInjection ? faultRoute(member.faults, () => [
        // Bootstrap members not yet published go by their flags' Raft ids.
        ...(member.raftId === config.self.raftId ? config.initialCluster.filter((x) => !member.sm.members.has(x.id)) : []),
        ...member.members().filter((x) => x.name).map((x) => ({ name: x.name, raftId: member.raftIdOfMember(x.id) })),
      ]) : null;
  // The dashboard first: it also adds CORS headers to /debug/trace before the ops routes answer it.
  // The charts' history: sampled from now on, served at /ui/api/history.
  const history = new MetricHistory(() => uiCounters(metrics));
  history.start();
  const ui = uiRoute({ member, metrics, history });
  const gateway: typeof api = (req, res) => void (ui(req, res) || ops(req, res) || faultsRoute?.(req, res) || api(req, res));
  const listeners: { port: number; close(): Promise<void> }[] = [];
  const budget = new ConnectionBudget(config.maxClientConnections);
  const limits = { headerTimeoutMs: config.clientHeaderTimeoutMs, bodyTimeoutMs: config.clientBodyTimeoutMs, pingMinIntervalMs: config.grpcKeepaliveMinTimeMs, streamsMax: config.maxConcurrentStreams };
  let closing: Promise<void> | null = null;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      history.stop();
      await Promise.all(listeners.map((l) => l.close()));
      server.forceShutdown();
      await member.stop();
    })());
  try {
    for (const u of config.listenClientUrls) {
      const tls = u.protocol === 'https:' && clientTls ? { files: clientTls, clientCertAuth: config.clientTls!.clientCertAuth, log: logger } : undefined;
      listeners.push(await serveOnOnePort({ host: u.hostname, port: Number(u.port), grpcServer: server, http: gateway, limits, budget, tls }));
    }
  } catch (e) {
    // A port already taken (EADDRINUSE): nothing of this server may stay up.
    await close().catch(() => undefined);
    throw e;
  }
  const fatal = member.fatal.then((e) => {
    // The member failed; its node has already logged why. The error is the owner's to report.
    void close().catch(() => undefined);
    return e;
  });
  return { member, metrics, clientPorts: listeners.map((l) => l.port), fatal, close };
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

/** While auth is on, only root passes (a token in the Authorization header, as for the JSON gateway). */
async function rootOnly(member: EtcdMember, req: IncomingMessage): Promise<{ status: number; message: string } | null> {
  if (!member.sm.auth.enabled) return null;
  const token = req.headers.authorization;
  if (typeof token !== 'string' || token === '') return { status: 401, message: 'etcdserver: user name is empty' };
  try {
    checkAdmin(member, await member.authInfoFromToken(token));
    return null;
  } catch (e) {
    return { status: e instanceof KvError && e.code === 'invalidAuthToken' ? 401 : 403, message: (e as Error).message };
  }
}

/** Rejects after `ms` with `why`, unless `p` settles first. */
function within<T>(p: Promise<T>, ms: number, why: string): Promise<T> {
  return withDeadline(p, Deadline.in(ms), () => new Error(why));
}

/** The checks of /livez and /readyz (etcd 3.5's names and order). */
function probes(member: EtcdMember): { livez: ProbeCheck[]; readyz: ProbeCheck[] } {
  const serializableRead: ProbeCheck = {
    name: 'serializable_read',
    run: async () => {
      if (member.node.failure) throw new Error(`etcdserver: server stopped: ${member.node.failure.message}`);
      member.sm.store.range({ key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]), keysOnly: true, limit: 1 });
    },
  };
  const linearizableRead: ProbeCheck = {
    name: 'linearizable_read',
    run: async () => {
      if (member.node.failure) throw new Error(`etcdserver: server stopped: ${member.node.failure.message}`);
      if (member.node.leader === 0) throw new Error('etcdserver: no leader');
      await within(member.readBarrier(), HEALTH_TIMEOUT_MS, 'etcdserver: request timed out');
    },
  };
  const dataCorruption: ProbeCheck = {
    name: 'data_corruption',
    run: async () => {
      // As etcd 3.5: a CORRUPT alarm (of any member) makes the member not ready.
      if (member.sm.alarms('CORRUPT').length > 0) throw new Error('alarm activated: CORRUPT');
    },
  };
  const nonLearner: ProbeCheck = {
    name: 'non_learner',
    run: async () => {
      if (member.members().find((x) => x.id === member.memberId)?.isLearner) throw new Error('not supported for learner');
    },
  };
  return { livez: [serializableRead], readyz: [dataCorruption, serializableRead, linearizableRead, nonLearner] };
}

/**
 * Counts every call of every handler in grpc_server_started_total / grpc_server_handled_total
 * (calls through the JSON gateway too: etcd's gateway calls its own gRPC server).
 */
function instrumentHandlers(handlers: Record<string, Record<string, grpc.UntypedHandleCall>>, metrics: MemberMetrics): void {
  for (const [service, methods] of Object.entries(handlers)) {
    const defs = serviceDefinition(service);
    for (const [method, impl] of Object.entries(methods)) {
      const d = defs[method];
      const type: GrpcType = !d ? 'unary' : d.requestStream ? (d.responseStream ? 'bidi_stream' : 'client_stream') : d.responseStream ? 'server_stream' : 'unary';
      metrics.registerMethod(type, service, method);
      const f = impl as (...a: unknown[]) => void;
      if (type === 'unary' || type === 'client_stream') {
        methods[method] = ((call: unknown, callback: (err: { code?: number } | null, ...rest: unknown[]) => void) => {
          metrics.grpcStart(type, service, method);
          const started = performance.now();
          let done = false;
          f(call, (err: { code?: number } | null, ...rest: unknown[]) => {
            if (!done) {
              done = true;
              metrics.grpcDone(type, service, method, err ? (err.code ?? grpc.status.UNKNOWN) : grpc.status.OK, (performance.now() - started) / 1000);
            }
            callback(err, ...rest);
          });
        }) as grpc.UntypedHandleCall;
        continue;
      }
      methods[method] = ((call: { end: (...a: unknown[]) => unknown; emit: (ev: string | symbol, ...a: unknown[]) => boolean; on: (ev: string, f: () => void) => unknown }) => {
        metrics.grpcStart(type, service, method);
        let done = false;
        const finish = (code: number): void => {
          if (done) return;
          done = true;
          metrics.grpcDone(type, service, method, code);
        };
        const end = call.end.bind(call);
        call.end = (...a: unknown[]) => {
          finish(grpc.status.OK);
          return end(...a);
        };
        const emit = call.emit.bind(call);
        call.emit = (ev: string | symbol, ...a: unknown[]) => {
          if (ev === 'error') finish((a[0] as { code?: number } | undefined)?.code ?? grpc.status.UNKNOWN);
          return emit(ev, ...a);
        };
        call.on('cancelled', () => finish(grpc.status.CANCELLED));
        f(call);
      }) as unknown as grpc.UntypedHandleCall;
    }
  }
}

/** Maintenance.Status answers also carry the disk self-diagnosis (fields of ours, beyond etcd's). */
function addDiskStatus(handlers: Record<string, Record<string, grpc.UntypedHandleCall>>, metrics: MemberMetrics): void {
  const m = handlers['etcdserverpb.Maintenance'];
  const status = m?.['Status'] as ((call: unknown, cb: (err: unknown, value?: Record<string, unknown>) => void) => void) | undefined;
  if (!m || !status) return;
  m['Status'] = ((call: unknown, cb: (err: unknown, value?: Record<string, unknown>) => void) =>
    status(call, (err, value) =>
      cb(err, value && { ...value, fdatasyncP99Ms: round3(metrics.diskCheck?.p99Ms ?? 0), slowFdatasyncs: String(metrics.slowFdatasyncCount) }),
    )) as grpc.UntypedHandleCall;
}
