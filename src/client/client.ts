/**
 * FlotillaClient: an etcd v3 client over @grpc/grpc-js for Flotilla (or etcd) clusters, with
 * endpoint failover (see connection.ts for the retry rules), resumable watches, background lease
 * keep-alive, and the Lock and Election services.
 *
 * Keys and values are accepted as string or bytes and returned as Buffers (KeyValue has
 * keyString()/valueString()); 64-bit integers (revisions, counts, lease and member ids) are
 * bigints. Every failure is a ClientError carrying the gRPC status name and the server's message.
 */
import * as grpc from '@grpc/grpc-js';
import { MIN_REVISION_METADATA } from '../api/proto.js';
import { ClientError } from './errors.js';
import { Connections, normalizeEndpoint, type Credentials, type RetryPolicy, type Service } from './connection.js';
import type { ClientTlsOptions } from './tls.js';
import { LeaseKeepAlive, type KeepAliveOptions } from './lease.js';
import { Observer, type ObserveCallback } from './observe.js';
import {
  deleteRequest,
  putRequest,
  rangeRequest,
  txnIsReadOnly,
  txnRequest,
  type DeleteOptions,
  type GetOptions,
  type PutOptions,
  type TxnRequest,
} from './requests.js';
import {
  big,
  deleteResult,
  header,
  KeyValue,
  leaderKey,
  leaderKeyToWire,
  member,
  putResult,
  rangeResult,
  statusResult,
  toBuffer,
  txnResult,
  type Bytes,
  type DeleteResult,
  type HashKvResult,
  type HealthResult,
  type LeaderKey,
  type LeaseGrantResult,
  type LeaseKeepAliveResult,
  type LeaseLeasesResult,
  type LeaseTimeToLiveResult,
  type MemberListResult,
  type MemberAddResult,
  type PutResult,
  type RangeResult,
  type ResponseHeader,
  type StatusResult,
  type TxnResult,
  type Wire,
} from './types.js';
import { Watcher, type WatchCallback, type WatchOptions } from './watch.js';

/** Default time to wait for a connection to an endpoint. */
export const DEFAULT_DIAL_TIMEOUT_MS = 2_000;
/** Default deadline of one unary request attempt (etcdctl's --command-timeout). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 5_000;
/** TTL (s) of the session lease lock() and campaign() create when not given one (clientv3's default). */
export const DEFAULT_SESSION_TTL = 60;
/** What the Election service answers when an election has no leader. */
const NO_LEADER = 'election: no leader';

export interface ClientOptions {
  /** `host:port` (or `http://host:port`) of the members to talk to. */
  endpoints: string[];
  /** Time to wait for a connection to one endpoint (default 2 s). */
  dialTimeoutMs?: number;
  /** Deadline of one request attempt (default 5 s). Lock and campaign wait without one. */
  requestTimeoutMs?: number;
  /**
   * TLS to every endpoint (etcdctl's --cacert, --cert, --key, --insecure-skip-tls-verify).
   * Without it, https:// endpoints use TLS with Node's bundled CAs, the rest plain text.
   */
  tls?: ClientTlsOptions;
  /**
   * A user's credentials when the cluster has auth enabled: the client authenticates, sends the
   * token with every call, and authenticates again when a token expires or is refused.
   */
  auth?: Credentials;
}

/** A permission of a role (etcd's authpb.Permission). */
export interface Permission {
  permType: 'READ' | 'WRITE' | 'READWRITE';
  key: Buffer;
  /** Empty: the key alone; "\0": every key from `key` on; else [key, rangeEnd). */
  rangeEnd: Buffer;
}

/** Options of `compact`. */
export interface CompactOptions {
  /** Wait until the compaction is physically applied to the backend. */
  physical?: boolean;
}

/** Options of lock() and campaign(): hold the lock / candidacy with this lease, or a new one of `ttl` seconds. */
export interface SessionOptions {
  /** An existing lease (kept alive by the caller). */
  lease?: bigint;
  /** TTL of the session lease the client creates and keeps alive when no lease is given (default 60). */
  ttl?: number;
}

/** A held lock. */
export interface Lock {
  /** The lock's key (name/lease-hex): pass it to unlock(). */
  key: Buffer;
  /** The lease the lock lives on. */
  lease: bigint;
  /** The revision at which the lock was acquired. */
  revision: bigint;
  /**
   * The fencing token: the lock key's create revision. It only grows from one holder to the
   * next, so a resource that remembers the highest token it has seen (FencingGuard) can refuse a
   * holder that lost the lock without knowing it (paused past its lease, partitioned).
   */
  fencingToken: bigint;
}

/** A running election observation. */
export interface ObserveHandle {
  /** Stop observing. */
  cancel(): Promise<void>;
  /** Resolves when the observation ends (undefined when canceled). */
  readonly done: Promise<ClientError | undefined>;
}

/** etcd's client API over one or more endpoints. */
export class FlotillaClient {
  private readonly conns: Connections;
  /** Session leases this client created for lock()/campaign(), by lock key / leader key (hex). */
  private readonly sessions = new Map<string, LeaseKeepAlive>();
  private readonly streams = new Set<{ cancel(): Promise<void> } | LeaseKeepAlive>();

  constructor(o: ClientOptions) {
    this.conns = new Connections(o.endpoints, o.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS, o.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS, o.tls, o.auth);
  }

  /** The endpoints this client uses (normalised to host:port). */
  get endpoints(): string[] {
    return [...this.conns.endpoints];
  }

  private async call(service: Service, method: string, req: Wire, retry: RetryPolicy, extra: { endpoint?: string; timeoutMs?: number | null; metadata?: grpc.Metadata } = {}): Promise<Wire> {
    const r = await this.conns.unary(service, method, req, { retry, ...extra });
    const rev = (r.header as Wire | undefined)?.revision;
    if (rev !== undefined && rev !== null) this.seen(BigInt(rev as string));
    return r;
  }

  private sessionRev = 0n;

  /** The highest store revision this client has seen in any response: what a 'session' read waits for. */
  get sessionRevision(): bigint {
    return this.sessionRev;
  }

  /** Raise the session revision (e.g. from another process of the same session). */
  seen(revision: bigint): void {
    if (revision > this.sessionRev) this.sessionRev = revision;
  }

  // ---- KV ----

  /** Range: one key, or a range with `prefix`, `fromKey` or `rangeEnd`. */
  async get(key: Bytes, o: GetOptions = {}): Promise<RangeResult> {
    let metadata: grpc.Metadata | undefined;
    if (o.consistency === 'session' && this.sessionRev > 0n) {
      metadata = new grpc.Metadata();
      metadata.set(MIN_REVISION_METADATA, this.sessionRev.toString());
    }
    return rangeResult(await this.call('etcdserverpb.KV', 'Range', rangeRequest(key, o), 'read', metadata ? { metadata } : {}));
  }

  /** Put a key. */
  async put(key: Bytes, value: Bytes, o: PutOptions = {}): Promise<PutResult> {
    return putResult(await this.call('etcdserverpb.KV', 'Put', putRequest(key, value, o), 'write'));
  }

  /** DeleteRange: one key, or a range with `prefix`, `fromKey` or `rangeEnd`. */
  async delete(key: Bytes, o: DeleteOptions = {}): Promise<DeleteResult> {
    return deleteResult(await this.call('etcdserverpb.KV', 'DeleteRange', deleteRequest(key, o), 'write'));
  }

  /** A transaction; build compares with `Cmp` and ops with `Op`, or write the objects by hand. */
  async txn(t: TxnRequest): Promise<TxnResult> {
    return txnResult(await this.call('etcdserverpb.KV', 'Txn', txnRequest(t), txnIsReadOnly(t) ? 'read' : 'write'));
  }

  /** Compact the history up to `revision`. */
  async compact(revision: number | bigint, o: CompactOptions = {}): Promise<ResponseHeader> {
    const r = await this.call('etcdserverpb.KV', 'Compact', { revision: String(revision), physical: Boolean(o.physical) }, 'write');
    return header(r.header);
  }

  // ---- Watch ----

  /**
   * Watch a key or range. `onEvents` receives each batch of events, every event exactly once and
   * in revision order, across endpoint failures. Returns the running Watcher (cancel(), ready,
   * done, endpoint).
   */
  watch(key: Bytes, o: WatchOptions, onEvents: WatchCallback): Watcher {
    const w = new Watcher(this.conns, key, o, onEvents);
    this.track(w);
    return w;
  }

  // ---- Lease ----

  /** Grant a lease of `ttl` seconds; `id` 0n (default) lets the server pick the id. */
  async leaseGrant(ttl: number, id = 0n): Promise<LeaseGrantResult> {
    const r = await this.call('etcdserverpb.Lease', 'LeaseGrant', { TTL: String(ttl), ID: id.toString() }, 'write');
    if (r.error) throw new ClientError(grpc.status.UNKNOWN, String(r.error));
    return { header: header(r.header), id: big(r.ID), ttl: Number(big(r.TTL)) };
  }

  /** Revoke a lease, deleting its keys. */
  async leaseRevoke(id: bigint): Promise<ResponseHeader> {
    return header((await this.call('etcdserverpb.Lease', 'LeaseRevoke', { ID: id.toString() }, 'write')).header);
  }

  /** Renew a lease once (over the keep-alive stream, with failover). `ttl` is 0 when the lease does not exist. */
  leaseKeepAliveOnce(id: bigint): Promise<LeaseKeepAliveResult> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const ka = new LeaseKeepAlive(this.conns, id, {
        onKeepAlive: (r) => {
          settled = true;
          void ka.stop();
          resolve(r);
        },
      });
      const timer = setTimeout(() => void ka.stop(), this.conns.requestTimeoutMs * this.conns.endpoints.length);
      void ka.done.then((e) => {
        clearTimeout(timer);
        if (settled) return;
        if (e?.status === grpc.status.NOT_FOUND) resolve({ header: header(undefined), id, ttl: 0 });
        else reject(e ?? new ClientError(grpc.status.DEADLINE_EXCEEDED, 'lease keep-alive timed out'));
      });
    });
  }

  /** Keep a lease alive in the background (every TTL/3) until stop() or the lease is gone. */
  leaseKeepAlive(id: bigint, o: KeepAliveOptions = {}): LeaseKeepAlive {
    const ka = new LeaseKeepAlive(this.conns, id, o);
    this.track(ka);
    return ka;
  }

  /** A lease's remaining TTL (-1 when it does not exist) and, with `keys`, its keys. */
  async leaseTimeToLive(id: bigint, o: { keys?: boolean } = {}): Promise<LeaseTimeToLiveResult> {
    const r = await this.call('etcdserverpb.Lease', 'LeaseTimeToLive', { ID: id.toString(), keys: Boolean(o.keys) }, 'read');
    return { header: header(r.header), id: big(r.ID), ttl: Number(big(r.TTL)), grantedTtl: Number(big(r.grantedTTL)), keys: (r.keys ?? []) as Buffer[] };
  }

  /** All leases. */
  async leaseLeases(): Promise<LeaseLeasesResult> {
    const r = await this.call('etcdserverpb.Lease', 'LeaseLeases', {}, 'read');
    return { header: header(r.header), leases: ((r.leases ?? []) as Wire[]).map((l) => big(l.ID)) };
  }

  // ---- Lock and Election (server-side recipes) ----

  /** A session lease for lock()/campaign(): the given one, or a new kept-alive one. */
  private async session(o: SessionOptions): Promise<{ lease: bigint; ka?: LeaseKeepAlive }> {
    if (o.lease !== undefined) return { lease: o.lease };
    const { id } = await this.leaseGrant(o.ttl ?? DEFAULT_SESSION_TTL);
    return { lease: id, ka: this.leaseKeepAlive(id) };
  }

  private async endSession(ka: LeaseKeepAlive | undefined): Promise<void> {
    if (!ka) return;
    await ka.stop();
    this.streams.delete(ka);
    await this.leaseRevoke(ka.id).catch(() => undefined);
  }

  /** Acquire the lock `name`, waiting while others hold it. */
  async lock(name: Bytes, o: SessionOptions = {}): Promise<Lock> {
    const s = await this.session(o);
    try {
      const r = await this.call('v3lockpb.Lock', 'Lock', { name: toBuffer(name), lease: s.lease.toString() }, 'write', { timeoutMs: null });
      const key = r.key as Buffer;
      // The token is the key's create revision; a linearizable read of the key gives it (and
      // proves the lock is still held at that point).
      const kv = (await this.get(key)).kvs[0];
      if (!kv || kv.lease !== s.lease) throw new ClientError(grpc.status.FAILED_PRECONDITION, 'lock: session expired before the lock could be confirmed');
      if (s.ka) this.sessions.set(key.toString('hex'), s.ka);
      return { key, lease: s.lease, revision: header(r.header).revision, fencingToken: kv.createRevision };
    } catch (e) {
      await this.endSession(s.ka);
      throw e;
    }
  }

  /** Release a lock by its key (and end the session lease lock() created for it, if any). */
  async unlock(key: Bytes): Promise<void> {
    const k = toBuffer(key);
    await this.call('v3lockpb.Lock', 'Unlock', { key: k }, 'write');
    const ka = this.sessions.get(k.toString('hex'));
    this.sessions.delete(k.toString('hex'));
    await this.endSession(ka);
  }

  /** Campaign in election `name` with `value`, waiting until elected. */
  async campaign(name: Bytes, value: Bytes, o: SessionOptions = {}): Promise<LeaderKey> {
    const s = await this.session(o);
    try {
      const r = await this.call('v3electionpb.Election', 'Campaign', { name: toBuffer(name), lease: s.lease.toString(), value: toBuffer(value) }, 'write', { timeoutMs: null });
      const leader = leaderKey(r.leader);
      if (s.ka) this.sessions.set(leader.key.toString('hex'), s.ka);
      return leader;
    } catch (e) {
      await this.endSession(s.ka);
      throw e;
    }
  }

  /** As the leader, publish a new value. */
  async proclaim(leader: LeaderKey, value: Bytes): Promise<ResponseHeader> {
    return header((await this.call('v3electionpb.Election', 'Proclaim', { leader: leaderKeyToWire(leader), value: toBuffer(value) }, 'write')).header);
  }

  /** The current leader's key-value, or undefined when the election has none. */
  async leader(name: Bytes): Promise<KeyValue | undefined> {
    try {
      const r = await this.call('v3electionpb.Election', 'Leader', { name: toBuffer(name) }, 'read');
      return r.kv ? KeyValue.fromWire(r.kv) : undefined;
    } catch (e) {
      if (e instanceof ClientError && e.details === NO_LEADER) return undefined;
      throw e;
    }
  }

  /** Follow an election: `cb` gets every new leader (and proclaimed value). */
  observe(name: Bytes, cb: ObserveCallback): ObserveHandle {
    const ob = new Observer(this.conns, toBuffer(name), cb);
    this.track(ob);
    return ob;
  }

  /** Give up leadership (and end the session lease campaign() created, if any). */
  async resign(leader: LeaderKey): Promise<void> {
    await this.call('v3electionpb.Election', 'Resign', { leader: leaderKeyToWire(leader) }, 'write');
    const ka = this.sessions.get(leader.key.toString('hex'));
    this.sessions.delete(leader.key.toString('hex'));
    await this.endSession(ka);
  }

  // ---- Cluster and maintenance ----

  /** The cluster's members. */
  async memberList(): Promise<MemberListResult> {
    const r = await this.call('etcdserverpb.Cluster', 'MemberList', {}, 'read');
    return { header: header(r.header), members: ((r.members ?? []) as unknown[]).map(member) };
  }

  /**
   * Adds a member with these peer URLs (a learner with `isLearner`); the cluster gives it an
   * id. Start it afterwards with --initial-cluster-state existing.
   */
  async memberAdd(peerURLs: string[], o: { isLearner?: boolean } = {}): Promise<MemberAddResult> {
    const r = await this.call('etcdserverpb.Cluster', 'MemberAdd', { peerURLs, isLearner: o.isLearner ?? false }, 'write');
    return { header: header(r.header), member: member(r.member), members: ((r.members ?? []) as unknown[]).map(member) };
  }

  /** Removes a member (removing the leader hands leadership over first). */
  async memberRemove(id: bigint): Promise<MemberListResult> {
    const r = await this.call('etcdserverpb.Cluster', 'MemberRemove', { ID: id.toString() }, 'write');
    return { header: header(r.header), members: ((r.members ?? []) as unknown[]).map(member) };
  }

  /** Changes a member's peer URLs. */
  async memberUpdate(id: bigint, peerURLs: string[]): Promise<MemberListResult> {
    const r = await this.call('etcdserverpb.Cluster', 'MemberUpdate', { ID: id.toString(), peerURLs }, 'write');
    return { header: header(r.header), members: ((r.members ?? []) as unknown[]).map(member) };
  }

  /** Makes a learner a voter; refused unless it has caught up with the leader. */
  async memberPromote(id: bigint): Promise<MemberListResult> {
    const r = await this.call('etcdserverpb.Cluster', 'MemberPromote', { ID: id.toString() }, 'write');
    return { header: header(r.header), members: ((r.members ?? []) as unknown[]).map(member) };
  }

  /** Maintenance.Status of one endpoint. */
  async status(endpoint: string): Promise<StatusResult> {
    return statusResult(await this.call('etcdserverpb.Maintenance', 'Status', {}, 'read', { endpoint }));
  }

  /** Whether one endpoint can serve a linearizable read (a Range of key "health", like etcdctl). */
  async health(endpoint: string): Promise<HealthResult> {
    const ep = normalizeEndpoint(endpoint);
    const t0 = performance.now();
    try {
      await this.call('etcdserverpb.KV', 'Range', rangeRequest('health'), 'read', { endpoint: ep });
      return { endpoint: ep, health: true, tookMs: performance.now() - t0 };
    } catch (e) {
      // etcdctl counts permission denied as healthy: the request went through consensus.
      const err = e instanceof ClientError ? e : new ClientError(grpc.status.UNKNOWN, String(e));
      if (err.status === grpc.status.PERMISSION_DENIED) return { endpoint: ep, health: true, tookMs: performance.now() - t0 };
      return { endpoint: ep, health: false, tookMs: performance.now() - t0, error: err.details };
    }
  }

  /** The active alarms (Maintenance.Alarm GET, etcdctl alarm list): who raised what. */
  async alarmList(): Promise<{ memberId: bigint; alarm: string }[]> {
    const r = await this.call('etcdserverpb.Maintenance', 'Alarm', { action: 'GET', memberID: '0', alarm: 'NONE' }, 'read');
    return ((r.alarms ?? []) as Wire[]).map((a) => ({ memberId: BigInt(String(a.memberID ?? '0')), alarm: String(a.alarm) }));
  }

  /** Clears one alarm (Maintenance.Alarm DEACTIVATE, as etcdctl alarm disarm does for each listed alarm). */
  async alarmDisarm(memberId: bigint, alarm: string): Promise<void> {
    await this.call('etcdserverpb.Maintenance', 'Alarm', { action: 'DEACTIVATE', memberID: memberId.toString(), alarm }, 'write');
  }

  /** Maintenance.HashKV of one endpoint at `revision` (0 = latest). */
  async hashKv(endpoint: string, revision: number | bigint = 0): Promise<HashKvResult> {
    const r = await this.call('etcdserverpb.Maintenance', 'HashKV', { revision: String(revision) }, 'read', { endpoint });
    return { header: header(r.header), hash: Number(r.hash ?? 0), compactRevision: big(r.compact_revision) };
  }

  // ---- Auth (etcd's Auth service; administration needs the root role once auth is on) ----

  private async auth(method: string, req: Wire = {}, retry: RetryPolicy = 'write'): Promise<Wire> {
    return this.call('etcdserverpb.Auth', method, req, retry);
  }

  async authEnable(): Promise<void> {
    await this.auth('AuthEnable');
  }

  async authDisable(): Promise<void> {
    await this.auth('AuthDisable');
  }

  /** Whether auth is on, and the auth revision (etcd 3.5's AuthStatus; Flotilla has it). */
  async authStatus(): Promise<{ enabled: boolean; authRevision: bigint }> {
    const r = await this.auth('AuthStatus', {}, 'read');
    return { enabled: Boolean(r.enabled), authRevision: big(r.authRevision) };
  }

  /** A user; `noPassword` users can only be authenticated by a client certificate's CN. */
  async userAdd(name: string, password: string, o: { noPassword?: boolean } = {}): Promise<void> {
    await this.auth('UserAdd', { name, password, options: { no_password: o.noPassword ?? false } });
  }

  /** The roles of a user. */
  async userGet(name: string): Promise<string[]> {
    return ((await this.auth('UserGet', { name }, 'read')).roles ?? []) as string[];
  }

  async userList(): Promise<string[]> {
    return ((await this.auth('UserList', {}, 'read')).users ?? []) as string[];
  }

  async userDelete(name: string): Promise<void> {
    await this.auth('UserDelete', { name });
  }

  async userChangePassword(name: string, password: string): Promise<void> {
    await this.auth('UserChangePassword', { name, password });
  }

  async userGrantRole(user: string, role: string): Promise<void> {
    await this.auth('UserGrantRole', { user, role });
  }

  async userRevokeRole(name: string, role: string): Promise<void> {
    await this.auth('UserRevokeRole', { name, role });
  }

  async roleAdd(name: string): Promise<void> {
    await this.auth('RoleAdd', { name });
  }

  /** The permissions of a role. */
  async roleGet(role: string): Promise<Permission[]> {
    const r = await this.auth('RoleGet', { role }, 'read');
    return ((r.perm ?? []) as Wire[]).map((p) => ({ permType: String(p.permType ?? 'READ') as Permission['permType'], key: toBuffer(p.key as Bytes), rangeEnd: toBuffer((p.range_end ?? Buffer.alloc(0)) as Bytes) }));
  }

  async roleList(): Promise<string[]> {
    return ((await this.auth('RoleList', {}, 'read')).roles ?? []) as string[];
  }

  async roleDelete(role: string): Promise<void> {
    await this.auth('RoleDelete', { role });
  }

  /** Grants (or changes) a permission on a key, [key, rangeEnd), or everything from key (rangeEnd "\0"). */
  async roleGrantPermission(role: string, permType: Permission['permType'], key: Bytes, rangeEnd: Bytes = Buffer.alloc(0)): Promise<void> {
    await this.auth('RoleGrantPermission', { name: role, perm: { permType, key: toBuffer(key), range_end: toBuffer(rangeEnd) } });
  }

  async roleRevokePermission(role: string, key: Bytes, rangeEnd: Bytes = Buffer.alloc(0)): Promise<void> {
    await this.auth('RoleRevokePermission', { role, key: toBuffer(key), range_end: toBuffer(rangeEnd) });
  }

  /** Stop every watch, keep-alive and observation, and close the connections. */
  async close(): Promise<void> {
    await Promise.all([...this.streams].map((s) => (s instanceof LeaseKeepAlive ? s.stop() : s.cancel())));
    this.streams.clear();
    this.sessions.clear();
    this.conns.close();
  }

  private track(s: Watcher | LeaseKeepAlive | Observer): void {
    this.streams.add(s);
    void s.done.then(() => this.streams.delete(s));
  }
}
