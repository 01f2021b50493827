/**
 * Flotilla's TypeScript client for the etcd v3 API (works against etcd too): endpoint
 * failover, watches that resume from the last revision after a failure, lease keep-alive,
 * and the lock and election services. Wire objects as in src/api/convert.ts.
 */
import * as grpc from '@grpc/grpc-js';
import { clientConstructor } from '../api/proto.js';

export type Wire = Record<string, unknown>;
type Bytes = string | Uint8Array;

const buf = (b: Bytes): Buffer => (typeof b === 'string' ? Buffer.from(b) : Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** The end of the range of keys with `prefix` (etcd's GetPrefixRangeEnd). */
export function prefixEnd(prefix: Bytes): Buffer {
  const end = Buffer.from(buf(prefix));
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

/** A failed call: the server's gRPC status name and its exact message (etcd's text). */
export class ClientError extends Error {
  override name = 'ClientError';
  constructor(
    readonly code: string,
    readonly details: string,
  ) {
    super(details);
  }
}

export interface ClientOptions {
  /** host:port of each member. */
  readonly endpoints: readonly string[];
  /** Per-call deadline (default 10 s). */
  readonly requestTimeoutMs?: number;
}

export interface RangeOptions {
  readonly prefix?: boolean;
  readonly fromKey?: boolean;
  readonly rangeEnd?: Bytes;
  readonly revision?: number;
  readonly limit?: number;
  readonly sortOrder?: 'NONE' | 'ASCEND' | 'DESCEND';
  readonly sortTarget?: 'KEY' | 'VERSION' | 'CREATE' | 'MOD' | 'VALUE';
  readonly keysOnly?: boolean;
  readonly countOnly?: boolean;
  /** Served by the member from its own state (may be stale) instead of linearizably. */
  readonly serializable?: boolean;
}

export interface WatchOptions {
  readonly prefix?: boolean;
  readonly rangeEnd?: Bytes;
  readonly startRevision?: number;
  readonly prevKv?: boolean;
  readonly progressNotify?: boolean;
}

export interface WatchEvent {
  readonly type: 'PUT' | 'DELETE';
  readonly kv: Wire;
  readonly prevKv?: Wire;
  /** The event's revision (its kv's mod_revision). */
  readonly revision: number;
}

export interface Watcher {
  cancel(): void;
  /** Resolves once the first stream is created. */
  readonly ready: Promise<void>;
}

/** Why the call failed without reaching a server: safe to send to the next endpoint. */
function unreached(e: grpc.ServiceError): boolean {
  return e.code === grpc.status.UNAVAILABLE && /No connection established|ECONNREFUSED|ECONNRESET|connect|Connection dropped|write EPIPE/i.test(e.details);
}

function rangeEndOf(key: Bytes, o: { prefix?: boolean; fromKey?: boolean; rangeEnd?: Bytes }): Buffer {
  if (o.rangeEnd !== undefined) return buf(o.rangeEnd);
  if (o.fromKey) return Buffer.from([0]);
  if (o.prefix) return prefixEnd(key);
  return Buffer.alloc(0);
}

type Unary = (req: Wire, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: Wire) => void) => grpc.ClientUnaryCall;

export class FlotillaClient {
  private readonly endpoints: string[];
  private current = 0;
  private readonly timeoutMs: number;
  private readonly clients = new Map<string, grpc.Client>();
  private closed = false;

  constructor(o: ClientOptions) {
    if (o.endpoints.length === 0) throw new Error('no endpoints given');
    this.endpoints = o.endpoints.map((e) => e.replace(/^https?:\/\//, ''));
    this.timeoutMs = o.requestTimeoutMs ?? 10_000;
  }

  private client(service: string, endpoint: string): grpc.Client {
    const k = `${service}@${endpoint}`;
    let c = this.clients.get(k);
    if (!c) {
      const Ctor = clientConstructor(service);
      c = new Ctor(endpoint, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': -1 });
      this.clients.set(k, c);
    }
    return c;
  }

  /** One unary call on one endpoint. */
  callOn(endpoint: string, service: string, method: string, req: Wire): Promise<Wire> {
    const c = this.client(service, endpoint) as unknown as Record<string, Unary>;
    return new Promise((resolve, reject) => {
      c[method]!.call(c, req, new grpc.Metadata(), { deadline: Date.now() + this.timeoutMs }, (e, r) => (e ? reject(e) : resolve(r!)));
    });
  }

  /** A unary call with failover: the next endpoint is tried when one cannot be reached (or, for reads, is unavailable). */
  async call(service: string, method: string, req: Wire, idempotent = false): Promise<Wire> {
    let last: grpc.ServiceError | null = null;
    for (let i = 0; i < this.endpoints.length; i++) {
      const idx = (this.current + i) % this.endpoints.length;
      try {
        const r = await this.callOn(this.endpoints[idx]!, service, method, req);
        this.current = idx;
        return r;
      } catch (e) {
        const err = e as grpc.ServiceError;
        last = err;
        const retry = unreached(err) || (idempotent && (err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.DEADLINE_EXCEEDED));
        if (!retry) break;
      }
    }
    throw new ClientError(grpc.status[last!.code] ?? String(last!.code), last!.details);
  }

  // --- KV
  get(key: Bytes, o: RangeOptions = {}): Promise<Wire> {
    return this.call(
      'etcdserverpb.KV',
      'Range',
      {
        key: buf(key),
        range_end: rangeEndOf(key, o),
        revision: String(o.revision ?? 0),
        limit: String(o.limit ?? 0),
        sort_order: o.sortOrder ?? 'NONE',
        sort_target: o.sortTarget ?? 'KEY',
        keys_only: o.keysOnly ?? false,
        count_only: o.countOnly ?? false,
        serializable: o.serializable ?? false,
      },
      true,
    );
  }
  put(key: Bytes, value: Bytes, o: { lease?: bigint; prevKv?: boolean; ignoreValue?: boolean; ignoreLease?: boolean } = {}): Promise<Wire> {
    return this.call('etcdserverpb.KV', 'Put', { key: buf(key), value: buf(value), lease: String(o.lease ?? 0n), prev_kv: o.prevKv ?? false, ignore_value: o.ignoreValue ?? false, ignore_lease: o.ignoreLease ?? false });
  }
  delete(key: Bytes, o: { prefix?: boolean; fromKey?: boolean; rangeEnd?: Bytes; prevKv?: boolean } = {}): Promise<Wire> {
    return this.call('etcdserverpb.KV', 'DeleteRange', { key: buf(key), range_end: rangeEndOf(key, o), prev_kv: o.prevKv ?? false });
  }
  /** A transaction in wire form ({compare, success, failure}, see rpc.proto). */
  txn(t: { compare?: Wire[]; success?: Wire[]; failure?: Wire[] }): Promise<Wire> {
    return this.call('etcdserverpb.KV', 'Txn', { compare: t.compare ?? [], success: t.success ?? [], failure: t.failure ?? [] });
  }
  compact(revision: number): Promise<Wire> {
    return this.call('etcdserverpb.KV', 'Compact', { revision: String(revision) });
  }

  // --- Watch

  /**
   * Watches a key or range. Events arrive in revision order, each once: when the stream
   * fails (member gone), it is opened again on another endpoint from the last revision seen
   * plus one. `onError` is told when the watch cannot go on (e.g. its history was compacted).
   */
  watch(key: Bytes, o: WatchOptions, onEvents: (events: WatchEvent[], revision: number) => void, onError: (e: ClientError) => void = () => {}): Watcher {
    let next = o.startRevision ?? 0;
    let stopped = false;
    let stream: grpc.ClientDuplexStream<Wire, Wire> | null = null;
    let attempt = 0;
    let readyResolve: () => void = () => {};
    const ready = new Promise<void>((r) => (readyResolve = r));
    const open = () => {
      if (stopped || this.closed) return;
      const endpoint = this.endpoints[(this.current + attempt) % this.endpoints.length]!;
      const c = this.client('etcdserverpb.Watch', endpoint) as unknown as { Watch(md: grpc.Metadata): grpc.ClientDuplexStream<Wire, Wire> };
      const s = c.Watch(new grpc.Metadata());
      stream = s;
      let failed = false;
      const retry = () => {
        if (failed || stopped) return;
        failed = true;
        attempt++;
        setTimeout(open, Math.min(1000, 50 * attempt));
      };
      s.on('data', (r: Wire) => {
        if (r.created) {
          // "From now" is pinned to the revision the first stream started at, so a resumed
          // stream neither skips nor repeats.
          if (next === 0) next = Number((r.header as Wire).revision) + 1;
          readyResolve();
          attempt = 0;
        }
        if (r.canceled) {
          stopped = true;
          onError(new ClientError('OutOfRange', String(r.cancel_reason || 'watch canceled by the server')));
          s.cancel();
          return;
        }
        const events = ((r.events as Wire[]) ?? []).map((e) => {
          const kv = e.kv as Wire;
          return { type: e.type as 'PUT' | 'DELETE', kv, revision: Number(kv.mod_revision), ...(e.prev_kv ? { prevKv: e.prev_kv as Wire } : {}) };
        });
        const fresh = events.filter((e) => e.revision >= next);
        if (fresh.length > 0) {
          next = fresh[fresh.length - 1]!.revision + 1;
          onEvents(fresh, Number((r.header as Wire).revision));
        }
      });
      s.on('error', retry);
      s.on('end', retry);
      s.write({
        create_request: {
          key: buf(key),
          range_end: rangeEndOf(key, o),
          start_revision: String(next),
          prev_kv: o.prevKv ?? false,
          progress_notify: o.progressNotify ?? false,
        },
      });
    };
    open();
    return {
      ready,
      cancel: () => {
        stopped = true;
        stream?.cancel();
      },
    };
  }

  // --- Leases
  async leaseGrant(ttl: number, id = 0n): Promise<{ id: bigint; ttl: number }> {
    const r = await this.call('etcdserverpb.Lease', 'LeaseGrant', { TTL: String(ttl), ID: id.toString() });
    return { id: BigInt(r.ID as string), ttl: Number(r.TTL) };
  }
  leaseRevoke(id: bigint): Promise<Wire> {
    return this.call('etcdserverpb.Lease', 'LeaseRevoke', { ID: id.toString() });
  }
  leaseTimeToLive(id: bigint, keys = false): Promise<Wire> {
    return this.call('etcdserverpb.Lease', 'LeaseTimeToLive', { ID: id.toString(), keys }, true);
  }
  async leaseLeases(): Promise<bigint[]> {
    const r = await this.call('etcdserverpb.Lease', 'LeaseLeases', {}, true);
    return ((r.leases as Wire[]) ?? []).map((l) => BigInt(l.ID as string));
  }
  /** One keep-alive; resolves with the TTL granted again (0: the lease is gone). */
  leaseKeepAliveOnce(id: bigint): Promise<number> {
    return new Promise((resolve, reject) => {
      const endpoint = this.endpoints[this.current]!;
      const c = this.client('etcdserverpb.Lease', endpoint) as unknown as { LeaseKeepAlive(md: grpc.Metadata, o: grpc.CallOptions): grpc.ClientDuplexStream<Wire, Wire> };
      const s = c.LeaseKeepAlive(new grpc.Metadata(), { deadline: Date.now() + this.timeoutMs });
      s.on('data', (r: Wire) => {
        resolve(Number(r.TTL));
        s.end();
      });
      s.on('error', (e: grpc.ServiceError) => reject(new ClientError(grpc.status[e.code] ?? String(e.code), e.details)));
      s.write({ ID: id.toString() });
    });
  }
  /** Keeps a lease alive (every TTL/3) until stopped or the lease is gone (`onGone`). */
  leaseKeepAlive(id: bigint, ttl: number, onGone: () => void = () => {}): { stop(): void } {
    let stopped = false;
    let timer: NodeJS.Timeout | null = null;
    const tick = async () => {
      if (stopped || this.closed) return;
      try {
        const left = await this.leaseKeepAliveOnce(id);
        if (left <= 0) {
          stopped = true;
          onGone();
          return;
        }
      } catch {
        this.current = (this.current + 1) % this.endpoints.length;
      }
      if (!stopped) timer = setTimeout(() => void tick(), Math.max(100, (ttl * 1000) / 3));
    };
    void tick();
    return {
      stop: () => {
        stopped = true;
        if (timer) clearTimeout(timer);
      },
    };
  }

  // --- Lock and election (server-side recipes)
  async lock(name: Bytes, lease: bigint): Promise<{ key: Buffer; revision: number }> {
    const r = await this.call('v3lockpb.Lock', 'Lock', { name: buf(name), lease: lease.toString() });
    return { key: r.key as Buffer, revision: Number((r.header as Wire).revision) };
  }
  unlock(key: Bytes): Promise<Wire> {
    return this.call('v3lockpb.Lock', 'Unlock', { key: buf(key) });
  }
  async campaign(name: Bytes, value: Bytes, lease: bigint): Promise<Wire> {
    const r = await this.call('v3electionpb.Election', 'Campaign', { name: buf(name), value: buf(value), lease: lease.toString() });
    return r.leader as Wire;
  }
  proclaim(leader: Wire, value: Bytes): Promise<Wire> {
    return this.call('v3electionpb.Election', 'Proclaim', { leader, value: buf(value) });
  }
  async leader(name: Bytes): Promise<Wire | null> {
    try {
      const r = await this.call('v3electionpb.Election', 'Leader', { name: buf(name) }, true);
      return r.kv as Wire;
    } catch (e) {
      if (e instanceof ClientError && e.details === 'election: no leader') return null;
      throw e;
    }
  }
  /** Calls `onLeader` with each new leader's key-value until the returned function is called. */
  observe(name: Bytes, onLeader: (kv: Wire) => void): () => void {
    const c = this.client('v3electionpb.Election', this.endpoints[this.current]!) as unknown as { Observe(req: Wire): grpc.ClientReadableStream<Wire> };
    const s = c.Observe({ name: buf(name) });
    s.on('data', (r: Wire) => onLeader(r.kv as Wire));
    s.on('error', () => {});
    return () => s.cancel();
  }
  resign(leader: Wire): Promise<Wire> {
    return this.call('v3electionpb.Election', 'Resign', { leader });
  }

  // --- Cluster and maintenance
  async memberList(): Promise<Wire[]> {
    const r = await this.call('etcdserverpb.Cluster', 'MemberList', {}, true);
    return (r.members as Wire[]) ?? [];
  }
  status(endpoint: string): Promise<Wire> {
    return this.callOn(endpoint.replace(/^https?:\/\//, ''), 'etcdserverpb.Maintenance', 'Status', {});
  }
  /** Healthy when a linearizable read of "health" succeeds on that member (as etcdctl checks). */
  async health(endpoint: string): Promise<{ healthy: boolean; tookMs: number; error?: string }> {
    const t0 = performance.now();
    try {
      await this.callOn(endpoint.replace(/^https?:\/\//, ''), 'etcdserverpb.KV', 'Range', { key: Buffer.from('health') });
      return { healthy: true, tookMs: performance.now() - t0 };
    } catch (e) {
      return { healthy: false, tookMs: performance.now() - t0, error: (e as grpc.ServiceError).details };
    }
  }
  hashKv(endpoint: string, revision = 0): Promise<Wire> {
    return this.callOn(endpoint.replace(/^https?:\/\//, ''), 'etcdserverpb.Maintenance', 'HashKV', { revision: String(revision) });
  }

  close(): void {
    this.closed = true;
    for (const c of this.clients.values()) c.close();
  }
}
