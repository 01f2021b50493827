/**
 * Channels to the configured endpoints and the failover policy for unary calls.
 *
 * One grpc-js channel per endpoint carries every service. A call first waits (up to the dial
 * timeout) for its endpoint's channel to be connected; an endpoint that cannot be reached is
 * skipped. Failover rules, modelled on etcd's clientv3:
 * - reads (`retry: 'read'`) move to the next endpoint on UNAVAILABLE or DEADLINE_EXCEEDED;
 * - writes (`retry: 'write'`) move on only when the request certainly never left the client
 *   (no connection could be made), because a write that reached a server may have been applied;
 * - calls pinned to one endpoint (`endpoint`) never fail over.
 * After a full round of endpoints fails, the client waits a little and tries another round, up to
 * MAX_ROUNDS, which rides out a leader election.
 *
 * With credentials (`auth: {user, password}`), the client authenticates before its first call
 * and sends the token as metadata `token` on every call (streams included, by an interceptor).
 * A call refused for its token (`invalid auth token`: expired, or the member forgot it;
 * `revision of auth store is old`; `user name is empty` while the client believed auth off)
 * makes the client authenticate again and repeat that call once, as etcd's clientv3 does.
 */
import * as grpc from '@grpc/grpc-js';
import { clientConstructor } from '../api/proto.js';
import { ClientError, DialError, neverSent, toClientError } from './errors.js';
import { channelCredentials, diagnoseTls, type ClientTlsOptions } from './tls.js';
import type { Wire } from './types.js';

/** Full rounds over the endpoints before a retryable failure is given up. */
export const MAX_ROUNDS = 3;
/** Pause after a failed round, multiplied by the round number. */
export const ROUND_BACKOFF_MS = 250;
/** grpc-js reconnect backoff: short, so a restarted member is usable again quickly. */
const RECONNECT_BACKOFF_MS = { initial: 100, max: 2_000 };
/** Largest message the client sends or accepts (etcd's server accepts 1.5 MiB requests). */
const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/** The etcd v3 services the client uses. */
export type Service =
  | 'etcdserverpb.KV'
  | 'etcdserverpb.Watch'
  | 'etcdserverpb.Lease'
  | 'etcdserverpb.Cluster'
  | 'etcdserverpb.Maintenance'
  | 'v3lockpb.Lock'
  | 'v3electionpb.Election'
  | 'etcdserverpb.Auth';

/** A user's name and password, for clusters with auth enabled. */
export interface Credentials {
  readonly user: string;
  readonly password: string;
}

/** Refusals that a fresh token may cure (the call is repeated once after authenticating again). */
export const TOKEN_REFUSALS = /^etcdserver: (invalid auth token|revision of auth store is old|user name is empty)$/;
const AUTHENTICATE_PATH = '/etcdserverpb.Auth/Authenticate';

type UnaryMethod = (req: Wire, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: Wire) => void) => grpc.ClientUnaryCall;
/** A generated client: its methods are the service's RPC names (`Range`, `Watch`, ...). */
export type ServiceClient = grpc.Client & Record<string, (...args: never[]) => unknown>;

const constructors = new Map<Service, grpc.ServiceClientConstructor>();

/** How a unary call may be retried on another endpoint. */
export type RetryPolicy = 'read' | 'write';

export interface UnaryOptions {
  retry: RetryPolicy;
  /** Pin the call to this endpoint (no failover). */
  endpoint?: string;
  /** Per-attempt deadline in ms; null for calls that block until the server answers (lock, campaign). */
  timeoutMs?: number | null;
  metadata?: grpc.Metadata;
}

/** True when any endpoint is given as https:// (TLS then applies to every endpoint, as in etcdctl). */
export function httpsEndpoints(endpoints: readonly string[]): boolean {
  return endpoints.some((e) => /^https:\/\//i.test(e.trim()));
}

/** `http://host:port` or `host:port` -> `host:port`. */
export function normalizeEndpoint(e: string): string {
  return e.trim().replace(/^https?:\/\//, '').replace(/\/+$/, '');
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The channels of one client and its failover policy. */
export class Connections {
  readonly endpoints: string[];
  private readonly channels = new Map<string, grpc.Channel>();
  private readonly clients = new Map<string, ServiceClient>();
  /** Index of the endpoint tried first: the last one that answered. */
  private preferred = 0;
  private closed = false;
  /** TLS settings (null: plain text); with TLS every endpoint is dialled with them. */
  readonly tls: ClientTlsOptions | null;
  private readonly credentials: grpc.ChannelCredentials;
  /** The token sent on every call: undefined until authenticated, null when the cluster has auth off. */
  private token: string | null | undefined;
  private authenticating: Promise<void> | null = null;

  constructor(
    endpoints: string[],
    readonly dialTimeoutMs: number,
    readonly requestTimeoutMs: number,
    tls?: ClientTlsOptions | null,
    /** A user's credentials (auth): the client authenticates and sends the token on every call. */
    private readonly auth?: Credentials,
  ) {
    this.tls = tls ?? (httpsEndpoints(endpoints) ? {} : null);
    this.endpoints = endpoints.map(normalizeEndpoint).filter((e) => e !== '');
    if (this.endpoints.length === 0) throw new ClientError(grpc.status.INVALID_ARGUMENT, 'no endpoints given');
    try {
      this.credentials = channelCredentials(this.tls);
    } catch (e) {
      throw new ClientError(grpc.status.INVALID_ARGUMENT, (e as Error).message);
    }
  }

  /** Authenticates unless a token (or "auth is off") is known; every call awaits this first. */
  ensureAuth(): Promise<void> {
    if (!this.auth || this.token !== undefined) return Promise.resolve();
    return (this.authenticating ??= this.authenticate().finally(() => (this.authenticating = null)));
  }

  /** Forget the token: the next call authenticates again. */
  dropToken(): void {
    this.token = undefined;
  }

  private async authenticate(): Promise<void> {
    const { user, password } = this.auth!;
    try {
      const r = await this.unaryOnce('etcdserverpb.Auth', 'Authenticate', { name: user, password }, { retry: 'read' });
      this.token = String(r.token ?? '');
    } catch (e) {
      // As clientv3: credentials given to a cluster without auth are not an error.
      if (e instanceof ClientError && e.details === 'etcdserver: authentication is not enabled') this.token = null;
      else throw e;
    }
  }

  /** Adds the token to every call but Authenticate, and forgets it when a call is refused for it. */
  private readonly interceptor: grpc.Interceptor = (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start: (metadata, _listener, next) => {
        const path = options.method_definition.path;
        if (this.auth && path !== AUTHENTICATE_PATH && this.token) metadata.set('token', this.token);
        next(metadata, {
          onReceiveMetadata: (md, nxt: (m: grpc.Metadata) => void) => nxt(md),
          onReceiveMessage: (msg, nxt: (m: unknown) => void) => nxt(msg),
          onReceiveStatus: (status, nxt: (s: grpc.StatusObject) => void) => {
            if (this.auth && path !== AUTHENTICATE_PATH && TOKEN_REFUSALS.test(status.details)) this.dropToken();
            nxt(status);
          },
        });
      },
    });

  /** Endpoints in the order a new attempt should try them: the preferred one first. */
  order(): string[] {
    const n = this.endpoints.length;
    return Array.from({ length: n }, (_, i) => this.endpoints[(this.preferred + i) % n]!);
  }

  /** Remember that `endpoint` answered, so later calls start there. */
  markOk(endpoint: string): void {
    const i = this.endpoints.indexOf(endpoint);
    if (i >= 0) this.preferred = i;
  }

  /** Move the preference past `endpoint` if it is the preferred one. */
  markFailed(endpoint: string): void {
    if (this.endpoints[this.preferred] === endpoint) this.preferred = (this.preferred + 1) % this.endpoints.length;
  }

  private channel(endpoint: string): grpc.Channel {
    if (this.closed) throw new ClientError(grpc.status.CANCELLED, 'client is closed');
    let ch = this.channels.get(endpoint);
    if (!ch) {
      ch = new grpc.Channel(endpoint, this.credentials, {
        'grpc.initial_reconnect_backoff_ms': RECONNECT_BACKOFF_MS.initial,
        'grpc.max_reconnect_backoff_ms': RECONNECT_BACKOFF_MS.max,
        'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
        'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      });
      this.channels.set(endpoint, ch);
    }
    return ch;
  }

  /** The client of `service` on `endpoint` (sharing the endpoint's channel). */
  client(endpoint: string, service: Service): ServiceClient {
    const id = `${endpoint}|${service}`;
    let c = this.clients.get(id);
    if (!c) {
      let Ctor = constructors.get(service);
      if (!Ctor) constructors.set(service, (Ctor = clientConstructor(service)));
      c = new Ctor(endpoint, this.credentials, { channelOverride: this.channel(endpoint), interceptors: [this.interceptor] }) as ServiceClient;
      this.clients.set(id, c);
    }
    return c;
  }

  /**
   * Resolves once `endpoint`'s channel is connected; rejects with a DialError when the
   * connection fails or takes longer than the dial timeout.
   */
  async dial(endpoint: string): Promise<void> {
    const ch = this.channel(endpoint);
    const deadline = Date.now() + this.dialTimeoutMs;
    const { READY, TRANSIENT_FAILURE, SHUTDOWN } = grpc.connectivityState;
    let state = ch.getConnectivityState(true);
    while (state !== READY) {
      if (state === SHUTDOWN) throw new DialError(endpoint, 'client is closed');
      // Failing now or still backing off from a failure: grpc-js reconnects after its backoff.
      if (state === TRANSIENT_FAILURE) {
        const why = await diagnoseTls(endpoint, this.tls);
        throw why ? new DialError(endpoint, why, true) : new DialError(endpoint, 'connection failed');
      }
      const changed = await new Promise<boolean>((resolve) => ch.watchConnectivityState(state, deadline, (err) => resolve(!err)));
      if (!changed) throw new DialError(endpoint, `dial timeout (${this.dialTimeoutMs} ms)`);
      state = ch.getConnectivityState(true);
    }
  }

  /** One unary call on one endpoint, no retries. */
  callOnce(endpoint: string, service: Service, method: string, req: Wire, o: UnaryOptions): Promise<Wire> {
    const c = this.client(endpoint, service);
    const fn = c[method] as unknown as UnaryMethod;
    const timeout = o.timeoutMs === undefined ? this.requestTimeoutMs : o.timeoutMs;
    const opts: grpc.CallOptions = timeout === null ? {} : { deadline: Date.now() + timeout };
    return new Promise((resolve, reject) => {
      fn.call(c, req, o.metadata ?? new grpc.Metadata(), opts, (e, r) => (e ? reject(toClientError(e, endpoint)) : resolve(r!)));
    });
  }

  /**
   * A unary call with endpoint failover as described in the module comment; with credentials,
   * authenticated first, and repeated once after authenticating again when refused for its token.
   */
  async unary(service: Service, method: string, req: Wire, o: UnaryOptions): Promise<Wire> {
    if (!this.auth) return this.unaryOnce(service, method, req, o);
    await this.ensureAuth();
    try {
      return await this.unaryOnce(service, method, req, o);
    } catch (e) {
      if (!(e instanceof ClientError) || !TOKEN_REFUSALS.test(e.details)) throw e;
      this.dropToken();
      await this.ensureAuth();
      return this.unaryOnce(service, method, req, o);
    }
  }

  private async unaryOnce(service: Service, method: string, req: Wire, o: UnaryOptions): Promise<Wire> {
    if (o.endpoint !== undefined) {
      const ep = normalizeEndpoint(o.endpoint);
      await this.dial(ep);
      return this.callOnce(ep, service, method, req, o);
    }
    let last: ClientError | undefined;
    /** The failures of the last round, one per endpoint. */
    let failures: ClientError[] = [];
    for (let round = 1; round <= MAX_ROUNDS; round++) {
      // Every endpoint failed at TLS (certificates): another round would fail the same way.
      let tlsOnly = true;
      failures = [];
      for (const ep of this.order()) {
        try {
          await this.dial(ep);
          const r = await this.callOnce(ep, service, method, req, o);
          this.markOk(ep);
          return r;
        } catch (e) {
          last = toClientError(e, ep);
          if (this.closed || !retryable(last, o.retry)) throw last;
          if (!(last instanceof DialError && last.tls)) tlsOnly = false;
          failures.push(last);
          this.markFailed(ep);
        }
      }
      if (tlsOnly) break;
      if (round < MAX_ROUNDS) await sleep(ROUND_BACKOFF_MS * round);
    }
    // No endpoint reachable: say so for each one, not only the last.
    throw DialError.ofAll(failures.length > 0 ? failures : [last!]);
  }

  /** Close every channel; calls in flight fail with CANCELLED. */
  close(): void {
    this.closed = true;
    for (const c of this.clients.values()) c.close();
    for (const ch of this.channels.values()) ch.close();
    this.clients.clear();
    this.channels.clear();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

/** Whether a failed attempt may be repeated on another endpoint under `policy`. */
export function retryable(e: ClientError, policy: RetryPolicy): boolean {
  if (neverSent(e)) return true;
  return policy === 'read' && (e.status === grpc.status.UNAVAILABLE || e.status === grpc.status.DEADLINE_EXCEEDED);
}

/** Metadata asking the server to fail the call when it has no leader (as etcdctl's watch does). */
export function requireLeader(): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('hasleader', 'true');
  return md;
}
