/**
 * One client port for gRPC and HTTP/1: connections that open with the HTTP/2 preface go to
 * the gRPC server, the rest to the JSON gateway (etcd's grpc-gateway: POST /v3/... with JSON
 * bodies, bytes as base64, 64-bit integers as strings, default values omitted) and to
 * GET /health and GET /version. The gateway calls the very handlers gRPC calls.
 *
 * With TLS (an https:// client URL) the port terminates TLS first (node:tls, certificates
 * reloaded from their files for each new connection: src/lib/tls-files.ts) and then routes the
 * decrypted stream the same way. ALPN offers http/1.1 before h2, so a client that speaks both
 * (curl, browsers) gets the JSON gateway over HTTP/1.1, and gRPC clients (which offer only h2)
 * get HTTP/2. With client certificate auth a client without a certificate from the trusted CA
 * is closed right after the handshake, before a byte of it is read, and the refusal logged;
 * the verified certificate's CN reaches the handlers as call metadata (src/api/tls-identity.ts).
 */
import * as grpc from '@grpc/grpc-js';
import { EventEmitter } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, TLSSocket } from 'node:tls';
import { Duplex } from 'node:stream';
import protobuf from 'protobufjs';
import { authorityRewriter, goawayFrame, H2RefusedError } from './h2-authority.js';
import { protoRoot } from './proto.js';
import type { Handlers } from './services.js';
import { CLIENT_CN_METADATA } from './tls-identity.js';
import { commonNameOf, TLS_HANDSHAKE_TIMEOUT_MS, type TlsFiles, type TlsLog } from '../lib/tls-files.js';

/** Largest JSON body the gateway reads (etcd's gRPC limit; the request size limit applies after). */
export const GATEWAY_BODY_BYTES_MAX = 2 * 1024 * 1024;
/** An HTTP/1 connection idle between requests this long is closed (Node's default keep-alive timeout). */
export const GATEWAY_KEEPALIVE_TIMEOUT_MS = 5_000;
/** A refused HTTP/2 connection (see h2-authority.ts) is destroyed this long after its GOAWAY. */
export const H2_REFUSED_GRACE_MS = 1000;
/** How often node:http checks its header and request deadlines (its default is 30 s: a deadline would be late by that much). */
const HTTP1_DEADLINE_CHECK_MS = 500;

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

export interface Listener {
  readonly port: number;
  close(): Promise<void>;
}

/** Deadlines and caps of the client port (ServerConfig's client* fields; see config.ts). */
export interface ClientPortLimits {
  /** Before the protocol is known: the first bytes; HTTP/1: the whole request head. */
  readonly headerTimeoutMs: number;
  /** HTTP/1: the whole request, head and body. */
  readonly bodyTimeoutMs: number;
  /** HTTP/2: etcd's --grpc-keepalive-min-time (0 = not enforced). */
  readonly pingMinIntervalMs: number;
  /** HTTP/2: etcd's --max-concurrent-streams (the grpc-js server must advertise the same). */
  readonly streamsMax: number;
}

/** TLS of one client listener (an https:// client URL). */
export interface ClientPortTls {
  readonly files: TlsFiles;
  /** Require a client certificate signed by the trusted CA (etcd --client-cert-auth / --trusted-ca-file). */
  readonly clientCertAuth: boolean;
  /** Default TLS_HANDSHAKE_TIMEOUT_MS. */
  readonly handshakeTimeoutMs?: number;
  readonly log: TlsLog;
}

/** The CN of a TLS connection's verified client certificate (undefined for plain or unverified connections). */
export function verifiedCommonName(socket: unknown): string | undefined {
  if (!(socket instanceof TLSSocket) || !socket.authorized) return undefined;
  return commonNameOf(socket.getPeerCertificate());
}

/**
 * Client connections open across every client listener: one more than `max` is closed at
 * once, before a byte of it is read.
 */
export class ConnectionBudget {
  open = 0;
  constructor(readonly max: number) {}
}

/** Serves gRPC and HTTP/1 on one TCP port (0 = a free one). */
export function serveOnOnePort(o: {
  host: string;
  port: number;
  grpcServer: grpc.Server;
  http: (req: IncomingMessage, res: ServerResponse) => void;
  limits: ClientPortLimits;
  budget: ConnectionBudget;
  tls?: ClientPortTls;
}): Promise<Listener> {
  const injector = o.grpcServer.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const http = createHttpServer(
    {
      headersTimeout: o.limits.headerTimeoutMs,
      requestTimeout: o.limits.bodyTimeoutMs,
      keepAliveTimeout: GATEWAY_KEEPALIVE_TIMEOUT_MS,
      connectionsCheckingInterval: Math.min(HTTP1_DEADLINE_CHECK_MS, o.limits.headerTimeoutMs),
    },
    o.http,
  );
  http.on('clientError', (err: NodeJS.ErrnoException, socket: Socket & { _httpMessage?: { headersSent?: boolean } }) => {
    // As node:http's default (a status line, then close), but never lingering: a request
    // past its deadline gets 408, a head over Node's 16 KiB 431, anything else 400.
    if (socket.writable && !socket._httpMessage?.headersSent) {
      const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
      socket.write(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    }
    socket.destroy();
  });
  // node:http starts checking its header and request deadlines when it starts listening; this
  // one never listens (we hand it connections), so start them here.
  http.emit('listening');
  const sockets = new Set<Socket>();
  /** A connection's plaintext (the socket itself, or its decrypted TLS stream): sniffed and routed. */
  const route = (socket: Socket): void => {
    socket.setTimeout(o.limits.headerTimeoutMs, () => socket.destroy());
    let seen = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      seen = Buffer.concat([seen, chunk]);
      const n = Math.min(seen.length, PREFACE.length);
      const h2 = seen.subarray(0, n).equals(PREFACE.subarray(0, n));
      if (h2 && seen.length < PREFACE.length) return; // could still be HTTP/2: wait for more
      socket.off('data', onData);
      socket.setTimeout(0);
      if (h2) {
        // Node's HTTP/2 reads the socket's handle directly and would miss bytes put back with
        // unshift: hand it a stream that replays them first. From here grpc-js's deadlines
        // apply (no stream for grpc.max_connection_idle_ms: GOAWAY and close).
        injector.injectConnection(h2Front(socket, seen, o.limits, verifiedCommonName(socket)));
      } else {
        socket.pause();
        socket.unshift(seen);
        http.emit('connection', socket);
        socket.resume();
      }
    };
    socket.on('data', onData);
  };
  const tlsServer = o.tls ? clientTlsServer(o.tls, route) : null;
  const net = createNetServer((socket) => {
    if (o.budget.open >= o.budget.max) {
      socket.destroy();
      return;
    }
    o.budget.open++;
    sockets.add(socket);
    // Small request/response exchanges: Nagle's algorithm would hold each answer ~40 ms.
    socket.setNoDelay(true);
    socket.on('close', () => {
      sockets.delete(socket);
      o.budget.open--;
    });
    socket.on('error', () => socket.destroy());
    if (tlsServer) {
      // The handshake has its own deadline (TLS_HANDSHAKE_TIMEOUT_MS); the first-bytes deadline starts after it.
      tlsServer.refresh();
      tlsServer.server.emit('connection', socket);
    } else route(socket);
  });
  return new Promise((resolve, reject) => {
    net.once('error', reject);
    net.listen(o.port, o.host, () => {
      const a = net.address();
      resolve({
        port: typeof a === 'object' && a ? a.port : o.port,
        close: () =>
          new Promise<void>((done) => {
            injector.destroy();
            for (const s of sockets) s.destroy();
            http.close();
            net.close(() => done());
          }),
      });
    });
  });
}

/**
 * A TLS server that never listens: the client listener hands it accepted sockets, and it hands
 * back each decrypted stream once the handshake is done and (with client certificate auth) the
 * client's certificate verified. `refresh()` before each connection picks up rotated files.
 */
function clientTlsServer(t: ClientPortTls, route: (s: Socket) => void): { server: ReturnType<typeof createTlsServer>; refresh(): void } {
  let material = t.files.current();
  const server = createTlsServer({
    ...material.options,
    // Verified below, so that a refusal is logged with its reason (Node's own rejection is silent).
    requestCert: t.clientCertAuth,
    rejectUnauthorized: false,
    // http/1.1 first: a client offering both gets the JSON gateway; gRPC clients offer only h2.
    ALPNProtocols: ['http/1.1', 'h2'],
    handshakeTimeout: t.handshakeTimeoutMs ?? TLS_HANDSHAKE_TIMEOUT_MS,
  });
  server.on('secureConnection', (s: TLSSocket) => {
    s.on('error', () => s.destroy());
    if (t.clientCertAuth && !s.authorized) {
      const why = !s.getPeerCertificate()?.raw ? 'no certificate' : String(s.authorizationError ?? 'unverified');
      t.log.warn(`refused a client connection from ${s.remoteAddress}:${s.remotePort}: its certificate is not trusted (${why})`);
      s.destroy();
      return;
    }
    route(s);
  });
  server.on('tlsClientError', (e: Error, s: TLSSocket) => {
    t.log.info(`TLS handshake with a client from ${s.remoteAddress}:${s.remotePort} failed: ${e.message}`);
    s.destroy();
  });
  return {
    server,
    refresh() {
      const m = t.files.current();
      if (m.generation !== material.generation) {
        material = m;
        server.setSecureContext(m.options);
      }
    },
  };
}

/**
 * A duplex over `socket` whose readable side yields `head` and then the socket's data, passed
 * through the HTTP/2 front (h2-authority.ts: `:authority` made acceptable to Node, frame and
 * header sizes checked before buffering, ping policy). A refused connection gets a GOAWAY with
 * the reason when the server's output is between frames, and is closed.
 *
 * Node runs an HTTP/2 session over a stream that is not a socket through JSStreamSocket, which
 * allows one write or shutdown at a time and asserts it (a failed assertion kills the process,
 * nodejs/node#35384). The session answers some frames (PING, SETTINGS) as it reads them, so
 * the front hands it nothing to read while a write of the session's is under way — from the call
 * until Node has taken its completion (JSStreamSocket finishes a write in a setImmediate after
 * the callback) — nor once the session has ended its side (its shutdown is under way until the
 * socket has sent what it holds; what the client still sends is read and dropped). What arrives
 * during a write waits here, the socket paused: at most what one read brought in.
 */
export function h2Front(socket: Socket, head: Buffer, limits: ClientPortLimits, clientCn: string | undefined): Duplex {
  const front = authorityRewriter({ pingMinIntervalMs: limits.pingMinIntervalMs, streamsMax: limits.streamsMax, clientCn });
  let refused = false;
  /** A write of the session's is under way (see above): inbound frames wait in `held`. */
  let writing = false;
  /** The session ended its side: nothing more is handed to it. */
  let ended = false;
  const held: Buffer[] = [];
  /** The client ended its side: the session reads the end once it has read what is held. */
  let eof = false;
  /** Hands held frames to the session while no write is under way (a frame may start one). */
  const deliver = (): boolean => {
    let ok = true;
    while (!writing && !ended && held.length > 0) ok = d.push(held.shift()!) && ok;
    // The end too (the session may answer it with a GOAWAY).
    if (eof && !writing && held.length === 0 && !ended && !d.readableEnded) d.push(null);
    return ok && held.length === 0;
  };
  const writeDone = (cb: (e?: Error | null) => void): void => {
    cb();
    // After the session's completion callback (next tick) has queued JSStreamSocket's
    // finishWrite (setImmediate): ours runs after it.
    process.nextTick(() =>
      setImmediate(() => {
        writing = false;
        if (deliver() && !refused && !ended) socket.resume();
      }),
    );
  };
  // The socket is corked until the end of the current tick, and a write is done for the
  // session as soon as the socket takes it without asking to wait (else at 'drain'): the
  // frames of an answer (HEADERS, DATA, trailers) leave in one system call, not one per frame
  // (issue 11 item 8). The same bytes in the same order; backpressure as the socket gives it.
  let corked = false;
  const uncork = (): void => {
    corked = false;
    socket.uncork();
  };
  const send = (parts: Buffer[], cb: (e?: Error | null) => void): void => {
    writing = true;
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    let ok = true;
    for (const p of parts) ok = socket.write(p);
    if (ok) writeDone(cb);
    else socket.once('drain', () => writeDone(cb));
  };
  const d = new Duplex({
    read() {
      if (!refused && !ended && held.length === 0) socket.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      if (refused) return cb();
      send(front.outbound(chunk), cb);
    },
    // What the HTTP/2 session hands over while a write is under way (the rest of an answer:
    // DATA, trailers) comes in one call.
    writev(chunks: { chunk: Buffer }[], cb) {
      if (refused) return cb();
      const parts: Buffer[] = [];
      for (const c of chunks) parts.push(...front.outbound(c.chunk));
      send(parts, cb);
    },
    final(cb) {
      ended = true;
      held.length = 0;
      if (!refused) socket.resume();
      socket.end(cb);
    },
    destroy(err, cb) {
      socket.destroy(err ?? undefined);
      cb(err);
    },
  });
  const feed = (c: Buffer): void => {
    if (refused || ended) return;
    try {
      held.push(...front.inbound(c));
    } catch (e) {
      refused = true;
      held.length = 0;
      // Nothing more is read from a refused connection: no CPU or memory for what it still sends.
      socket.off('data', feed);
      socket.pause();
      if (e instanceof H2RefusedError && front.outboundAtFrameBoundary) {
        socket.end(goawayFrame(front.lastStreamId, e.code, e.message));
        // Time for the GOAWAY to go out; then the socket goes, whatever the peer does.
        setTimeout(() => socket.destroy(), H2_REFUSED_GRACE_MS).unref();
      } else {
        socket.destroy();
      }
      return;
    }
    // Our own frames (refused streams) go out now if the server's output is between frames,
    // else with its next frame boundary.
    if (front.outboundAtFrameBoundary) for (const f of front.takeOwnFrames()) socket.write(f);
    if (!deliver()) socket.pause();
  };
  feed(head);
  socket.on('data', feed);
  socket.on('end', () => {
    eof = true;
    deliver();
  });
  socket.on('close', () => d.destroy());
  return d;
}

// -----------------------------------------------------------------------------------------
// The JSON gateway
// -----------------------------------------------------------------------------------------

type Kind = 'unary' | 'serverStream' | 'bidi';
interface Route {
  readonly service: string;
  readonly method: string;
  readonly kind: Kind;
  readonly request: protobuf.Type;
  readonly response: protobuf.Type;
}

const ROUTES: Record<string, [string, string, Kind]> = {
  'kv/range': ['etcdserverpb.KV', 'Range', 'unary'],
  'kv/put': ['etcdserverpb.KV', 'Put', 'unary'],
  'kv/deleterange': ['etcdserverpb.KV', 'DeleteRange', 'unary'],
  'kv/txn': ['etcdserverpb.KV', 'Txn', 'unary'],
  'kv/compaction': ['etcdserverpb.KV', 'Compact', 'unary'],
  watch: ['etcdserverpb.Watch', 'Watch', 'bidi'],
  'lease/grant': ['etcdserverpb.Lease', 'LeaseGrant', 'unary'],
  'lease/revoke': ['etcdserverpb.Lease', 'LeaseRevoke', 'unary'],
  'kv/lease/revoke': ['etcdserverpb.Lease', 'LeaseRevoke', 'unary'],
  'lease/keepalive': ['etcdserverpb.Lease', 'LeaseKeepAlive', 'bidi'],
  'lease/timetolive': ['etcdserverpb.Lease', 'LeaseTimeToLive', 'unary'],
  'kv/lease/timetolive': ['etcdserverpb.Lease', 'LeaseTimeToLive', 'unary'],
  'lease/leases': ['etcdserverpb.Lease', 'LeaseLeases', 'unary'],
  'kv/lease/leases': ['etcdserverpb.Lease', 'LeaseLeases', 'unary'],
  'cluster/member/add': ['etcdserverpb.Cluster', 'MemberAdd', 'unary'],
  'cluster/member/remove': ['etcdserverpb.Cluster', 'MemberRemove', 'unary'],
  'cluster/member/update': ['etcdserverpb.Cluster', 'MemberUpdate', 'unary'],
  'cluster/member/list': ['etcdserverpb.Cluster', 'MemberList', 'unary'],
  'cluster/member/promote': ['etcdserverpb.Cluster', 'MemberPromote', 'unary'],
  'maintenance/alarm': ['etcdserverpb.Maintenance', 'Alarm', 'unary'],
  'maintenance/status': ['etcdserverpb.Maintenance', 'Status', 'unary'],
  'maintenance/defragment': ['etcdserverpb.Maintenance', 'Defragment', 'unary'],
  'maintenance/hash': ['etcdserverpb.Maintenance', 'HashKV', 'unary'],
  'maintenance/snapshot': ['etcdserverpb.Maintenance', 'Snapshot', 'serverStream'],
  'maintenance/transfer-leadership': ['etcdserverpb.Maintenance', 'MoveLeader', 'unary'],
  'lock/lock': ['v3lockpb.Lock', 'Lock', 'unary'],
  'lock/unlock': ['v3lockpb.Lock', 'Unlock', 'unary'],
  'election/campaign': ['v3electionpb.Election', 'Campaign', 'unary'],
  'election/proclaim': ['v3electionpb.Election', 'Proclaim', 'unary'],
  'election/leader': ['v3electionpb.Election', 'Leader', 'unary'],
  'election/observe': ['v3electionpb.Election', 'Observe', 'serverStream'],
  'election/resign': ['v3electionpb.Election', 'Resign', 'unary'],
  'auth/enable': ['etcdserverpb.Auth', 'AuthEnable', 'unary'],
  'auth/disable': ['etcdserverpb.Auth', 'AuthDisable', 'unary'],
  'auth/status': ['etcdserverpb.Auth', 'AuthStatus', 'unary'],
  'auth/authenticate': ['etcdserverpb.Auth', 'Authenticate', 'unary'],
  'auth/user/add': ['etcdserverpb.Auth', 'UserAdd', 'unary'],
  'auth/user/get': ['etcdserverpb.Auth', 'UserGet', 'unary'],
  'auth/user/list': ['etcdserverpb.Auth', 'UserList', 'unary'],
  'auth/user/delete': ['etcdserverpb.Auth', 'UserDelete', 'unary'],
  'auth/user/changepw': ['etcdserverpb.Auth', 'UserChangePassword', 'unary'],
  'auth/user/grant': ['etcdserverpb.Auth', 'UserGrantRole', 'unary'],
  'auth/user/revoke': ['etcdserverpb.Auth', 'UserRevokeRole', 'unary'],
  'auth/role/add': ['etcdserverpb.Auth', 'RoleAdd', 'unary'],
  'auth/role/get': ['etcdserverpb.Auth', 'RoleGet', 'unary'],
  'auth/role/list': ['etcdserverpb.Auth', 'RoleList', 'unary'],
  'auth/role/delete': ['etcdserverpb.Auth', 'RoleDelete', 'unary'],
  'auth/role/grant': ['etcdserverpb.Auth', 'RoleGrantPermission', 'unary'],
  'auth/role/revoke': ['etcdserverpb.Auth', 'RoleRevokePermission', 'unary'],
};

/**
 * The auth token of a gateway request: the `Authorization` header, as etcd's grpc-gateway passes
 * it (metadata `authorization`), or grpc-gateway's `Grpc-Metadata-Token`.
 */
function copyToken(req: IncomingMessage, call: GatewayCall): void {
  const a = req.headers.authorization;
  if (typeof a === 'string') call.metadata.set('authorization', a);
  const t = req.headers['grpc-metadata-token'];
  if (typeof t === 'string') call.metadata.set('token', t);
}

/** grpc-gateway's HTTP status for a gRPC code. */
const HTTP_STATUS: Record<number, number> = {
  [grpc.status.OK]: 200,
  [grpc.status.CANCELLED]: 408,
  [grpc.status.UNKNOWN]: 500,
  [grpc.status.INVALID_ARGUMENT]: 400,
  [grpc.status.DEADLINE_EXCEEDED]: 504,
  [grpc.status.NOT_FOUND]: 404,
  [grpc.status.ALREADY_EXISTS]: 409,
  [grpc.status.PERMISSION_DENIED]: 403,
  [grpc.status.UNAUTHENTICATED]: 401,
  [grpc.status.RESOURCE_EXHAUSTED]: 429,
  [grpc.status.FAILED_PRECONDITION]: 400,
  [grpc.status.ABORTED]: 409,
  [grpc.status.OUT_OF_RANGE]: 400,
  [grpc.status.UNIMPLEMENTED]: 501,
  [grpc.status.INTERNAL]: 500,
  [grpc.status.UNAVAILABLE]: 503,
  [grpc.status.DATA_LOSS]: 500,
};

function route(path: string): Route | null {
  const m = /^\/v3(?:beta|alpha)?\/(.+)$/.exec(path);
  const r = m ? ROUTES[m[1]!] : undefined;
  if (!r) return null;
  const svc = protoRoot().lookupService(r[0]);
  const method = svc.methods[r[1]]!;
  method.resolve();
  return { service: r[0], method: r[1], kind: r[2], request: method.resolvedRequestType!, response: method.resolvedResponseType! };
}

/** Nesting of JSON objects and arrays the gateway accepts in a request body (a txn nests 2 levels per level). */
export const GATEWAY_JSON_DEPTH_MAX = 128;

const INT64 = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);
const INT32 = new Set(['int32', 'uint32', 'sint32', 'fixed32', 'sfixed32']);
const jsonKind = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/**
 * Checks a request body against the message type before it is converted: every field of the
 * type JSON allows it (bytes as base64 strings, 64-bit integers as strings or integers,
 * messages as objects, repeated fields as arrays), so what reaches the handlers has exactly the
 * shapes gRPC deserialization gives. Unknown field names are ignored, as etcd's gateway does.
 */
function checkJson(t: protobuf.Type, json: unknown, path: string, depth: number): void {
  if (depth > GATEWAY_JSON_DEPTH_MAX) throw new Error(`json: nesting deeper than ${GATEWAY_JSON_DEPTH_MAX} at ${path || 'the top'}`);
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error(`json: cannot unmarshal ${jsonKind(json)} into ${path || 'the request'} of type ${t.name}`);
  for (const [k, v] of Object.entries(json as Record<string, unknown>)) {
    const f = t.fields[k] ?? t.fieldsArray.find((x) => x.name === k || x.options?.json_name === k);
    const at = path ? `${path}.${k}` : k;
    // Unknown fields are ignored, as etcd's grpc-gateway (v1: AllowUnknownFields) does.
    if (!f) continue;
    if (v === null) continue;
    f.resolve();
    const values = f.repeated ? v : [v];
    if (f.repeated && !Array.isArray(v)) throw new Error(`json: cannot unmarshal ${jsonKind(v)} into ${at} of type []${f.type}`);
    for (const x of values as unknown[]) {
      if (f.resolvedType instanceof protobuf.Type) {
        checkJson(f.resolvedType, x, at, depth + 1);
      } else if (f.resolvedType instanceof protobuf.Enum) {
        if (typeof x === 'string' ? !(x in f.resolvedType.values) : !Number.isInteger(x)) throw new Error(`json: invalid value ${JSON.stringify(x)} for enum ${f.resolvedType.name} at ${at}`);
      } else if (f.type === 'bytes' || f.type === 'string') {
        if (typeof x !== 'string') throw new Error(`json: cannot unmarshal ${jsonKind(x)} into ${at} of type ${f.type}`);
        if (f.type === 'bytes' && !/^[A-Za-z0-9+/_-]*={0,2}$/.test(x)) throw new Error(`illegal base64 data in ${at}`);
      } else if (f.type === 'bool') {
        if (typeof x !== 'boolean') throw new Error(`json: cannot unmarshal ${jsonKind(x)} into ${at} of type bool`);
      } else if (INT64.has(f.type) || INT32.has(f.type)) {
        const ok = typeof x === 'string' ? /^-?\d{1,20}$/.test(x) : typeof x === 'number' && Number.isSafeInteger(x);
        if (!ok) throw new Error(`json: cannot unmarshal ${JSON.stringify(x)} into ${at} of type ${f.type}`);
      } else if (f.type === 'double' || f.type === 'float') {
        if (typeof x !== 'number' && typeof x !== 'string') throw new Error(`json: cannot unmarshal ${jsonKind(x)} into ${at} of type ${f.type}`);
      }
    }
  }
}

/**
 * JSON (etcd's encoding) -> the wire object the handlers take: checked field by field, then
 * encoded to protobuf and decoded again, so out-of-range integers wrap or fail exactly as they
 * would over gRPC and the handlers see one shape whichever way a request came.
 */
function fromJson(t: protobuf.Type, json: unknown): Record<string, unknown> {
  checkJson(t, json ?? {}, '', 0);
  const msg = t.decode(t.encode(t.fromObject((json ?? {}) as Record<string, unknown>)).finish());
  return t.toObject(msg, { longs: String, enums: String, bytes: Buffer, defaults: true, oneofs: true });
}

/** Drops default values, as etcd's JSON does (and proto-loader's virtual oneof names). */
function prune(t: protobuf.Type, o: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of t.fieldsArray) {
    const v = o[f.name];
    if (v === undefined || v === null) continue;
    f.resolve();
    const sub = f.resolvedType instanceof protobuf.Type ? f.resolvedType : null;
    const isDefault = (x: unknown): boolean => {
      if (sub) return false;
      if (f.resolvedType instanceof protobuf.Enum) return x === 0 || x === Object.keys(f.resolvedType.values)[0];
      if (x instanceof Uint8Array) return x.length === 0;
      return x === false || x === 0 || x === '0' || x === '';
    };
    if (f.repeated) {
      const arr = v as unknown[];
      if (arr.length === 0) continue;
      out[f.name] = sub ? arr.map((x) => prune(sub, x as Record<string, unknown>)) : arr;
    } else if (sub) {
      out[f.name] = prune(sub, v as Record<string, unknown>);
    } else if (!isDefault(v)) {
      out[f.name] = v;
    }
  }
  return out;
}

/** The wire object a handler returned -> etcd's JSON. */
function toJson(t: protobuf.Type, wire: Record<string, unknown>): unknown {
  const msg = t.fromObject(prune(t, wire));
  return t.toObject(msg, { longs: String, enums: String, bytes: String, defaults: false, oneofs: false });
}

function sendError(res: ServerResponse, code: number, message: string): void {
  if (!res.headersSent) {
    res.writeHead(HTTP_STATUS[code] ?? 500, { 'content-type': 'application/json' });
  }
  res.end(JSON.stringify({ error: message, message, code }));
}

/** A fake gRPC call: just what our handlers use. */
class GatewayCall extends EventEmitter {
  cancelled = false;
  readonly metadata = new grpc.Metadata();
  constructor(
    readonly request: Record<string, unknown>,
    private readonly out: (obj: Record<string, unknown>) => boolean,
    private readonly finish: (err?: { code?: number; details?: string }) => void,
  ) {
    super();
  }
  getPeer(): string {
    return 'gateway';
  }
  write(obj: Record<string, unknown>): boolean {
    return this.out(obj);
  }
  end(): void {
    this.finish();
  }
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'error') {
      // As grpc-js does: an emitted error ends the call with that status.
      this.finish(args[0] as { code?: number; details?: string });
      return this.listenerCount('error') > 0 ? super.emit(event, ...args) : true;
    }
    return super.emit(event, ...args);
  }
}

export interface GatewayOptions {
  readonly handlers: Handlers;
  readonly version: { etcdserver: string; etcdcluster: string };
  readonly health: () => Promise<{ health: boolean; reason?: string }>;
  /**
   * Whether a /v3/ request over TLS with a verified client certificate that has a CN is refused
   * (GATEWAY_CN_REFUSED): etcd 3.4 (since 3.4.10) does so with --client-cert-auth while auth is
   * enabled, since the gateway cannot pass the CN on as the user.
   */
  readonly refuseCertCn?: () => boolean;
}

/** etcd's answer (400, text) to a gateway request refused by refuseCertCn. */
export const GATEWAY_CN_REFUSED = 'CommonName of client sending a request against gateway will be ignored and not used as expected';

export function createGateway(o: GatewayOptions): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (req.method === 'GET' && path === '/version') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(o.version));
      return;
    }
    if (req.method === 'GET' && path === '/health') {
      o.health().then((h) => {
        res.writeHead(h.health ? 200 : 503, { 'content-type': 'application/json' });
        res.end(JSON.stringify(h.health ? { health: 'true' } : { health: 'false', reason: h.reason ?? '' }));
      });
      return;
    }
    if (path.startsWith('/v3/') && verifiedCommonName(req.socket) !== undefined && o.refuseCertCn?.()) {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' });
      res.end(`${GATEWAY_CN_REFUSED}\n`);
      return;
    }
    const r = route(path);
    if (!r || req.method !== 'POST') {
      // As etcd's gateway: a known path asked with another method than POST is 405, an unknown one 404.
      res.writeHead(r ? 405 : 404, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(r ? 'Method Not Allowed\n' : 'Not Found\n');
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > GATEWAY_BODY_BYTES_MAX) {
        if (!tooBig) {
          tooBig = true;
          res.writeHead(413, { 'content-type': 'application/json', connection: 'close' });
          res.end(JSON.stringify({ error: `request body over ${GATEWAY_BODY_BYTES_MAX} bytes`, message: `request body over ${GATEWAY_BODY_BYTES_MAX} bytes`, code: grpc.status.RESOURCE_EXHAUSTED }));
          req.destroy();
        }
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (tooBig) return;
      let request: Record<string, unknown>;
      try {
        const text = Buffer.concat(chunks).toString('utf8');
        request = fromJson(r.request, text.trim() === '' ? {} : JSON.parse(text));
      } catch (e) {
        sendError(res, grpc.status.INVALID_ARGUMENT, (e as Error).message);
        return;
      }
      serve(o.handlers, r, request, req, res);
    });
  };
}

/** The verified client certificate's CN into the call's metadata, as h2-authority.ts does for gRPC (see tls-identity.ts). */
function identify(call: GatewayCall, req: IncomingMessage): void {
  const cn = verifiedCommonName(req.socket);
  if (cn !== undefined) call.metadata.set(CLIENT_CN_METADATA, Buffer.from(cn, 'utf8'));
}

function serve(handlers: Handlers, r: Route, request: Record<string, unknown>, req: IncomingMessage, res: ServerResponse): void {
  const handler = handlers[r.service]?.[r.method] as unknown as ((...a: unknown[]) => void) | undefined;
  if (!handler) return sendError(res, grpc.status.UNIMPLEMENTED, `unknown method ${r.service}/${r.method}`);
  if (r.kind === 'unary') {
    const call = new GatewayCall(request, () => true, () => undefined);
    identify(call, req);
    copyToken(req, call);
    res.on('close', () => {
      call.cancelled = true;
      call.emit('cancelled');
    });
    handler(call, (err: { code?: number; details?: string } | null, out?: Record<string, unknown>) => {
      if (err) return sendError(res, err.code ?? grpc.status.UNKNOWN, err.details ?? 'error');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(toJson(r.response, out!)));
    });
    return;
  }
  // Streams: one JSON object per line, {"result": ...}, until the stream ends or the client goes.
  let ended = false;
  const call: GatewayCall = new GatewayCall(
    request,
    (obj) => {
      if (ended) return true;
      if (!res.headersSent) res.writeHead(200, { 'content-type': 'application/json' });
      return res.write(`${JSON.stringify({ result: toJson(r.response, obj) })}\n`);
    },
    (err?: { code?: number; details?: string }) => {
      if (ended) return;
      ended = true;
      if (err) {
        if (res.headersSent) res.end(`${JSON.stringify({ error: { code: err.code, message: err.details } })}\n`);
        else sendError(res, err.code ?? grpc.status.UNKNOWN, err.details ?? 'error');
      } else res.end();
    },
  );
  identify(call, req);
  copyToken(req, call);
  res.on('drain', () => call.emit('drain'));
  res.on('close', () => {
    if (!ended) {
      ended = true;
      call.cancelled = true;
      call.emit('cancelled');
    }
  });
  handler(call);
  if (r.kind === 'bidi') {
    call.emit('data', request);
    // A keep-alive answers once; a watch streams until the client disconnects.
    if (r.method === 'LeaseKeepAlive') call.emit('end');
  }
}
