/**
 * The JSON gateway surface: POST /v3/... with JSON bodies for every route (valid requests from
 * the .proto reflection, then mutated as JSON: values replaced by huge numbers, wrong types,
 * deep nesting, unknown fields; or mutated as text), invalid JSON, and raw HTTP/1 garbage
 * (mutated request heads, bogus Content-Length and chunking, random bytes, an HTTP/2 preface
 * followed by junk). Well-formed HTTP goes over keep-alive connections (sometimes a fresh one);
 * garbage over a fresh socket each, closed after a bounded time.
 */
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import protobuf from 'protobufjs';
import { rng, type Rng } from '../lib/prng.js';
import type { FaultCluster } from '../faults/cluster.js';
import type { FuzzInput, Surface } from './harness.js';
import { concat, inputSeed, mutate, randomBytes } from './mutate.js';
import { jsonText, mutateJson } from './json.js';
import { protoRoot } from '../api/proto.js';
import { randomObject } from './protogen.js';

/** How long a unary gateway request may take before it is abandoned. */
export const GATEWAY_REQUEST_TIMEOUT_MS = 3000;
/** How long a streaming route (watch, keepalive, observe, snapshot) or a raw socket stays open. */
export const GATEWAY_STREAM_OPEN_MS = 150;

/**
 * The gateway's routes (src/api/http.ts's table, which is not exported: a route added there
 * must be added here; the fuzzer also sends random paths).
 */
export const GATEWAY_ROUTES: Record<string, string> = {
  'kv/range': 'etcdserverpb.KV/Range',
  'kv/put': 'etcdserverpb.KV/Put',
  'kv/deleterange': 'etcdserverpb.KV/DeleteRange',
  'kv/txn': 'etcdserverpb.KV/Txn',
  'kv/compaction': 'etcdserverpb.KV/Compact',
  watch: 'etcdserverpb.Watch/Watch',
  'lease/grant': 'etcdserverpb.Lease/LeaseGrant',
  'lease/revoke': 'etcdserverpb.Lease/LeaseRevoke',
  'kv/lease/revoke': 'etcdserverpb.Lease/LeaseRevoke',
  'lease/keepalive': 'etcdserverpb.Lease/LeaseKeepAlive',
  'lease/timetolive': 'etcdserverpb.Lease/LeaseTimeToLive',
  'kv/lease/timetolive': 'etcdserverpb.Lease/LeaseTimeToLive',
  'lease/leases': 'etcdserverpb.Lease/LeaseLeases',
  'kv/lease/leases': 'etcdserverpb.Lease/LeaseLeases',
  'cluster/member/add': 'etcdserverpb.Cluster/MemberAdd',
  'cluster/member/remove': 'etcdserverpb.Cluster/MemberRemove',
  'cluster/member/update': 'etcdserverpb.Cluster/MemberUpdate',
  'cluster/member/list': 'etcdserverpb.Cluster/MemberList',
  'cluster/member/promote': 'etcdserverpb.Cluster/MemberPromote',
  'maintenance/alarm': 'etcdserverpb.Maintenance/Alarm',
  'maintenance/status': 'etcdserverpb.Maintenance/Status',
  'maintenance/defragment': 'etcdserverpb.Maintenance/Defragment',
  'maintenance/hash': 'etcdserverpb.Maintenance/HashKV',
  'maintenance/snapshot': 'etcdserverpb.Maintenance/Snapshot',
  'maintenance/transfer-leadership': 'etcdserverpb.Maintenance/MoveLeader',
  'lock/lock': 'v3lockpb.Lock/Lock',
  'lock/unlock': 'v3lockpb.Lock/Unlock',
  'election/campaign': 'v3electionpb.Election/Campaign',
  'election/proclaim': 'v3electionpb.Election/Proclaim',
  'election/leader': 'v3electionpb.Election/Leader',
  'election/observe': 'v3electionpb.Election/Observe',
  'election/resign': 'v3electionpb.Election/Resign',
};
const STREAMING = new Set(['etcdserverpb.Watch/Watch', 'etcdserverpb.Lease/LeaseKeepAlive', 'etcdserverpb.Maintenance/Snapshot', 'v3electionpb.Election/Observe']);
const PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';

interface Route {
  readonly path: string;
  readonly method: string;
  readonly request: protobuf.Type;
}

interface GatewayInput extends FuzzInput {
  readonly member: number;
  /** Raw bytes on a fresh socket; else a POST of `bytes` to `path`. */
  readonly raw: boolean;
  readonly path: string;
  readonly fresh: boolean;
  readonly streaming: boolean;
}

function deepJson(r: Rng): string {
  const depth = r.chance(0.5) ? r.int(100, 2000) : r.int(2000, 200_000);
  const open = r.chance(0.5) ? '[' : '{"a":';
  const close = open === '[' ? ']' : '}';
  return open.repeat(depth) + '1' + (r.chance(0.7) ? close.repeat(depth) : '');
}

export class GatewaySurface implements Surface {
  readonly name = 'gateway';
  readonly concurrency = 64;
  private readonly routes: Route[];
  /** Picks are made from every route (an excluded one is picked again), so an input's route does not depend on --exclude. */
  private readonly all: Route[];
  private readonly agents: Agent[];

  constructor(
    private readonly cluster: FaultCluster,
    private readonly seed: number,
    exclude: ReadonlySet<string>,
  ) {
    const root = protoRoot();
    this.all = Object.entries(GATEWAY_ROUTES).map(([path, method]) => {
      const [svc, m] = method.split('/') as [string, string];
      const pm = root.lookupService(svc).methods[m]!;
      pm.resolve();
      return { path: `/v3/${path}`, method, request: pm.resolvedRequestType! };
    });
    this.routes = this.all.filter((x) => !exclude.has(x.method) && !exclude.has(`gateway:${x.method}`) && !exclude.has(x.path));
    if (this.routes.length === 0) throw new Error('--exclude leaves no gateway route to fuzz');
    this.agents = cluster.members.map(() => new Agent({ keepAlive: true, maxSockets: 8 }));
  }

  make(index: number): GatewayInput {
    const r = rng(inputSeed(this.seed, 2, index));
    const member = r.int(0, this.cluster.members.length);
    let route = r.pick(this.all);
    while (!this.routes.includes(route)) route = r.pick(this.all);
    const host = this.cluster.members[member]!.client;
    const validJson = (): string => {
      const t = route.request;
      const o = t.toObject(t.fromObject(randomObject(r, t)), { longs: String, enums: String, bytes: String });
      return JSON.stringify(o);
    };
    const x = r.next();
    let body: string | Uint8Array;
    let kind: string;
    let raw = false;
    let path = route.path;
    if (x < 0.15) {
      kind = 'valid';
      body = validJson();
    } else if (x < 0.5) {
      kind = 'json-mutated';
      body = jsonText(mutateJson(r, JSON.parse(validJson()) as unknown));
    } else if (x < 0.65) {
      kind = 'text-mutated';
      body = mutate(r, Buffer.from(validJson()), { other: Buffer.from(validJson()), maxBytes: 2_200_000 });
    } else if (x < 0.7) {
      kind = 'deep';
      body = deepJson(r);
    } else if (x < 0.75) {
      kind = 'random-body';
      body = randomBytes(r, 4096);
      if (r.chance(0.3)) path = r.pick(['/v3/', '/v3/kv', '/v3beta/kv/put', '/v3alpha/kv/range', '/health', '/version', `/v3/${'x'.repeat(r.int(0, 9000))}`, '/v3/kv/range?x=1', '/%00', '//v3/kv/put']);
    } else {
      raw = true;
      const head = `POST ${route.path} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\n`;
      const json = validJson();
      const y = r.next();
      let b: Uint8Array;
      if (y < 0.3) {
        kind = 'raw-mutated-request';
        b = mutate(r, Buffer.from(`${head}Content-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}`));
      } else if (y < 0.45) {
        kind = 'raw-content-length';
        b = Buffer.from(`${head}Content-Length: ${r.pick(['-1', '18446744073709551616', '99999999999', '1, 2', '', 'abc', String(r.int(0, 1 << 30))])}\r\n\r\n${json}`);
      } else if (y < 0.6) {
        kind = 'raw-chunked';
        const size = r.pick(['ffffffffffffffff', '-1', 'zz', String(r.int(0, 0x7fffffff).toString(16)), '0']);
        b = Buffer.from(`${head}Transfer-Encoding: chunked\r\n\r\n${size}\r\n${json}\r\n${r.chance(0.5) ? '0\r\n\r\n' : ''}`);
      } else if (y < 0.7) {
        kind = 'raw-headers';
        b = Buffer.from(`${head}${`X-${'a'.repeat(r.int(1, 100))}: ${'b'.repeat(r.int(0, 20_000))}\r\n`.repeat(r.int(1, 200))}\r\n`);
      } else if (y < 0.8) {
        kind = 'raw-h2';
        b = concat([Buffer.from(PREFACE), randomBytes(r, 4096)]);
      } else {
        kind = 'raw-random';
        b = randomBytes(r, 16384);
      }
      body = b;
    }
    const bytes = typeof body === 'string' ? Buffer.from(body) : body;
    const fresh = raw || r.chance(0.05);
    return { index, label: `${raw ? '' : `POST ${path} `}-> ${this.cluster.members[member]!.name}: ${kind}`, bytes, member, raw, path, fresh, streaming: STREAMING.has(route.method) };
  }

  run(input: FuzzInput): Promise<string | null> {
    const x = input as GatewayInput;
    const [host, port] = this.cluster.members[x.member]!.client.split(':') as [string, string];
    if (x.raw) {
      return new Promise((resolve) => {
        const s = connect({ host, port: Number(port) });
        const timer = setTimeout(() => s.destroy(), GATEWAY_STREAM_OPEN_MS);
        s.on('error', () => undefined);
        let answered = false;
        s.on('data', () => (answered = true));
        s.on('close', () => {
          clearTimeout(timer);
          this.count(answered ? 'raw: answered' : 'raw: no answer');
          resolve(null);
        });
        s.write(x.bytes);
      });
    }
    return new Promise((resolve) => {
      const req = request({ host, port: Number(port), method: 'POST', path: x.path, agent: x.fresh ? false : this.agents[x.member], headers: { 'content-type': 'application/json', 'content-length': x.bytes.length } });
      const timer = setTimeout(() => req.destroy(), x.streaming ? GATEWAY_STREAM_OPEN_MS : GATEWAY_REQUEST_TIMEOUT_MS);
      let status = 'no answer';
      let finished = false;
      const done = () => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        this.count(status);
        resolve(null);
      };
      req.on('error', done);
      req.on('response', (res) => {
        status = String(res.statusCode);
        let head = '';
        res.on('data', (d: Buffer) => {
          // A 500 is an error the handlers did not expect: keep what it says, for the summary.
          if (res.statusCode === 500 && head.length < 200) head += d.toString();
        });
        res.on('end', () => {
          if (res.statusCode === 500) status = `500 ${/"message":"([^"]{0,80})/.exec(head)?.[1] ?? head.slice(0, 80)}`;
          done();
        });
        res.on('error', done);
        res.on('close', done);
      });
      req.end(x.bytes);
    });
  }

  private readonly tally = new Map<string, number>();
  private count(k: string): void {
    this.tally.set(k, (this.tally.get(k) ?? 0) + 1);
  }

  stats(): string {
    return `HTTP statuses: ${[...this.tally].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ')}`;
  }

  async close(): Promise<void> {
    for (const a of this.agents) a.destroy();
  }
}
