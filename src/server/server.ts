/**
 * A whole Flotilla server process's work: the member, the gRPC services and the JSON gateway
 * on each client URL (one port carries both), /health and /version.
 */
import * as grpc from '@grpc/grpc-js';
import { ConnectionBudget, createGateway, serveOnOnePort } from '../api/http.js';
import { serviceDefinition } from '../api/proto.js';
import { buildHandlers, CLUSTER_VERSION, ETCD_API_VERSION } from '../api/services.js';
import type { Wire } from '../api/convert.js';
import type { Logger } from '../raft/config.js';
import type { ServerConfig } from './config.js';
import { faultRoute } from './faults.js';
import { EtcdMember } from './member.js';

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

export async function startServer(config: ServerConfig, logger: Logger): Promise<RunningServer> {
  const member = await EtcdMember.start(config, logger);
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
    // Requests from the JSON gateway were not received as protobuf: measure them encoded.
    requestBytes: (req: Wire, method: string) => sizes.get(req) ?? serviceDefinition('etcdserverpb.KV')[method]!.requestSerialize(req).length,
  });
  for (const [name, impl] of Object.entries(handlers)) {
    // Record each request's size as received, for the request size limit.
    const def: Record<string, grpc.MethodDefinition<object, object>> = {};
    for (const [method, d] of Object.entries(serviceDefinition(name))) {
      def[method] = {
        ...(d as grpc.MethodDefinition<object, object>),
        requestDeserialize: (b: Buffer) => {
          const o = d.requestDeserialize(b) as object;
          sizes.set(o, b.length);
          return o;
        },
      };
    }
    server.addService(def as grpc.ServiceDefinition, impl);
  }
  const health = async (): Promise<{ health: boolean; reason?: string }> => {
    if (member.node.failure) return { health: false, reason: member.node.failure.message };
    if (member.node.leader === 0) return { health: false, reason: 'RAFT NO LEADER' };
    if (!member.published) return { health: false, reason: 'member not yet published to the cluster' };
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        member.readBarrier(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('linearizable read timed out')), HEALTH_TIMEOUT_MS);
        }),
      ]);
      return { health: true };
    } catch (e) {
      return { health: false, reason: (e as Error).message };
    } finally {
      clearTimeout(timer);
    }
  };
  const api = createGateway({
    handlers,
    version: { etcdserver: ETCD_API_VERSION, etcdcluster: CLUSTER_VERSION },
    health,
  });
  const faultsRoute = config.unsafeFaultInjection ? faultRoute(member.faults, () => [
        // Bootstrap members not yet published go by their flags' Raft ids.
        ...(member.raftId === config.self.raftId ? config.initialCluster.filter((x) => !member.sm.members.has(x.id)) : []),
        ...member.members().filter((x) => x.name).map((x) => ({ name: x.name, raftId: member.raftIdOfMember(x.id) })),
      ]) : null;
  const gateway: typeof api = faultsRoute ? (req, res) => void (faultsRoute(req, res) || api(req, res)) : api;
  const listeners: { port: number; close(): Promise<void> }[] = [];
  const budget = new ConnectionBudget(config.maxClientConnections);
  const limits = { headerTimeoutMs: config.clientHeaderTimeoutMs, bodyTimeoutMs: config.clientBodyTimeoutMs, pingMinIntervalMs: config.grpcKeepaliveMinTimeMs, streamsMax: config.maxConcurrentStreams };
  let closing: Promise<void> | null = null;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      await Promise.all(listeners.map((l) => l.close()));
      server.forceShutdown();
      await member.stop();
    })());
  try {
    for (const u of config.listenClientUrls) {
      listeners.push(await serveOnOnePort({ host: u.hostname, port: Number(u.port), grpcServer: server, http: gateway, limits, budget }));
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
  return { member, clientPorts: listeners.map((l) => l.port), fatal, close };
}
