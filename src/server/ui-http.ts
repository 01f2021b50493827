/**
 * The dashboard's routes on every client URL (issue 16), beside the JSON gateway:
 *
 * - `GET /ui/` and `GET /ui/<file>`: the bundled dashboard (`npm run build` writes it to
 *   dist/ui: index.html, app.js, app.css). Only the names in UI_FILES are served, from memory,
 *   each read once and bounded by UI_FILE_BYTES_MAX: a request path is looked up in that table,
 *   never joined onto a directory, so no path reaches the file system. `GET /ui` redirects to
 *   `/ui/`.
 * - `GET /ui/api/status`: this member's own view as JSON (UiStatus in src/ui/api.ts) — role,
 *   term, indexes, the leader's view of each follower (match, lag), last contact with each
 *   peer, the disk verdict, alarms, and the counters and histograms the charts are drawn from.
 *   Read-only, made without a Raft round. With auth on it needs a valid token in the
 *   `Authorization` header (as the gateway takes it), else 401.
 * - `GET /ui/api/history[?since=MS]`: the chart samples this member keeps (UiHistory;
 *   MetricHistory in ui-history.ts: one a second for the last ten minutes) that ended after
 *   `since` (ms since epoch, default 0: all). Same access rules as the status; a `since` that
 *   is not a whole number of ms is a 400.
 * - CORS for the dashboard of one member reading the others: `GET /ui/api/status`,
 *   `GET /ui/api/history` and `GET /debug/trace` answer cross-origin reads (and their preflight, for the Authorization
 *   header) only from the origins of the cluster's own client URLs. A page of any other origin
 *   gets no CORS headers, so a browser keeps the answer from it.
 */
import { readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { TRACE_PATH, UI_HISTORY_PATH, UI_PREFIX, UI_STATUS_PATH, type UiHistogram, type UiPeer, type UiStatus } from '../ui/api.js';
import type { EtcdMember } from './member.js';
import type { MemberMetrics } from './metrics.js';
import type { CounterReading, MetricHistory } from './ui-history.js';

/** The dashboard's files and their content types: the whole set the routes serve. */
export const UI_FILES: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};
/** A bundled file larger than this is not served (a broken build, not a dashboard). */
export const UI_FILE_BYTES_MAX = 4 * 1024 * 1024;
/** How long a browser may cache a CORS preflight answer, s. */
export const UI_CORS_MAX_AGE_S = 600;

/**
 * What the dashboard page may load and connect to: its own files only (no CDN, no inline
 * script), JSON from the cluster's members (other origins: the other members' client URLs),
 * and never inside another site's frame.
 */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self' http: https:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/** dist/ui, found from this module whether it runs from dist/server (the build) or src/server (tests importing sources). */
export function defaultUiDir(): string {
  const candidates = [new URL('../ui/', import.meta.url), new URL('../../dist/ui/', import.meta.url)].map((u) => fileURLToPath(u));
  for (const d of candidates) {
    try {
      if (statSync(`${d}app.js`).isFile()) return d;
    } catch {
      // not this one
    }
  }
  return candidates[0]!;
}

export interface UiRouteOptions {
  readonly member: EtcdMember;
  readonly metrics: MemberMetrics;
  /** The chart samples served at UI_HISTORY_PATH (none: that path answers 404). */
  readonly history?: MetricHistory;
  /** Where the bundle is (default: defaultUiDir()). */
  readonly dir?: string;
}

interface Loaded {
  readonly body: Buffer;
  readonly type: string;
}

/** A route handler that answers the dashboard's routes and returns true, or returns false for anything else. */
export function uiRoute(o: UiRouteOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  const dir = o.dir ?? defaultUiDir();
  const cache = new Map<string, Loaded | null>();
  const load = (name: string): Loaded | null => {
    if (cache.has(name)) return cache.get(name)!;
    let v: Loaded | null = null;
    try {
      const path = `${dir}${name}`;
      if (statSync(path).size <= UI_FILE_BYTES_MAX) v = { body: readFileSync(path), type: UI_FILES[name]! };
    } catch {
      v = null;
    }
    // A missing file is looked for again next time (the build may be running); a present one is kept.
    if (v) cache.set(name, v);
    return v;
  };
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === TRACE_PATH) {
      // The trace route is the ops routes'; here only its CORS for the dashboard.
      if (!cors(o.member, req, res)) return false;
      if (req.method === 'OPTIONS') return preflight(res), true;
      return false;
    }
    if (path === '/ui') {
      res.writeHead(301, { location: UI_PREFIX, 'content-type': 'text/plain; charset=utf-8' });
      res.end(`${UI_PREFIX}\n`);
      return true;
    }
    if (!path.startsWith(UI_PREFIX)) return false;
    if (path === UI_STATUS_PATH || (path === UI_HISTORY_PATH && o.history)) {
      const allowed = cors(o.member, req, res);
      if (req.method === 'OPTIONS' && allowed) return preflight(res), true;
      if (req.method !== 'GET') return methodNotAllowed(res), true;
      void serveJson(o, req, res, path === UI_STATUS_PATH ? () => uiStatus(o.member, o.metrics) : () => historySince(o.history!, req.url ?? ''));
      return true;
    }
    const name = path === UI_PREFIX ? 'index.html' : path.slice(UI_PREFIX.length);
    if (!Object.hasOwn(UI_FILES, name)) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' });
      res.end('Not Found\n');
      return true;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return methodNotAllowed(res), true;
    const f = load(name);
    if (!f) {
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' });
      res.end(`the dashboard is not built (no ${name} in ${dir}): run \`npm run build\`\n`);
      return true;
    }
    res.writeHead(200, {
      'content-type': f.type,
      'content-length': f.body.length,
      'x-content-type-options': 'nosniff',
      'cache-control': 'no-cache',
      'content-security-policy': CSP,
      'referrer-policy': 'no-referrer',
    });
    res.end(req.method === 'HEAD' ? undefined : f.body);
    return true;
  };
}

function methodNotAllowed(res: ServerResponse): void {
  res.writeHead(405, { allow: 'GET', 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' });
  res.end('Method Not Allowed\n');
}

/** The origins of the cluster's client URLs (the only ones given CORS). */
function clusterOrigins(m: EtcdMember): Set<string> {
  const out = new Set<string>();
  for (const u of [...m.config.advertiseClientUrls, ...m.members().flatMap((x) => x.clientUrls)]) {
    try {
      out.add(new URL(u).origin);
    } catch {
      // a URL that does not parse gives no origin
    }
  }
  return out;
}

/** Sets the CORS headers when the request's Origin is one of the cluster's; true if it is. */
function cors(m: EtcdMember, req: IncomingMessage, res: ServerResponse): boolean {
  const origin = req.headers.origin;
  res.setHeader('vary', 'Origin');
  if (typeof origin !== 'string' || !clusterOrigins(m).has(origin)) return false;
  res.setHeader('access-control-allow-origin', origin);
  return true;
}

function preflight(res: ServerResponse): void {
  res.writeHead(204, { 'access-control-allow-methods': 'GET', 'access-control-allow-headers': 'authorization', 'access-control-max-age': String(UI_CORS_MAX_AGE_S) });
  res.end();
}

/** A request the route refuses with a 400 (its message goes to the caller). */
class BadRequest extends Error {}

/** Largest `since` accepted: 16 decimal digits of ms. */
const SINCE_RE = /^[0-9]{1,16}$/;

function historySince(h: MetricHistory, url: string): ReturnType<MetricHistory['since']> {
  const q = url.indexOf('?');
  const since = q < 0 ? null : new URLSearchParams(url.slice(q + 1)).get('since');
  if (since !== null && !SINCE_RE.test(since)) throw new BadRequest('since must be a whole number of milliseconds since the epoch');
  return h.since(since === null ? 0 : Number(since));
}

/** A JSON answer made by `make`, after the auth check (a valid token while auth is on). */
async function serveJson(o: UiRouteOptions, req: IncomingMessage, res: ServerResponse, make: () => unknown): Promise<void> {
  const json = (code: number, body: unknown): void => {
    res.writeHead(code, { 'content-type': 'application/json', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
    res.end(JSON.stringify(body));
  };
  try {
    if (o.member.sm.auth.enabled) {
      const token = req.headers.authorization;
      if (typeof token !== 'string' || token === '') return json(401, { error: 'etcdserver: user name is empty', code: 16 });
      try {
        await o.member.authInfoFromToken(token);
      } catch (e) {
        return json(401, { error: (e as Error).message, code: 16 });
      }
    }
    json(200, await make());
  } catch (e) {
    if (e instanceof BadRequest) return json(400, { error: e.message, code: 3 });
    json(500, { error: `status failed: ${(e as Error).message}`, code: 13 });
  }
}

const KV = 'etcdserverpb.KV';
const WRITE_METHODS = new Set(['Put', 'DeleteRange', 'Txn', 'Compact']);

/** This member's view (UiStatus). */
export async function uiStatus(m: EtcdMember, metrics: MemberMetrics): Promise<UiStatus> {
  const st = m.node.status();
  const members = m.members();
  const self = members.find((x) => x.id === m.memberId);
  const peers: UiPeer[] = [];
  for (const x of members) {
    if (x.id === m.memberId) continue;
    const raftId = m.raftIdOfMember(x.id);
    const pr = st.progress?.get(raftId);
    peers.push({
      id: x.id.toString(16),
      raftId,
      lastContactMs: m.peerHeardFrom(raftId),
      ...(pr ? { match: pr.match, lag: Math.max(0, st.lastIndex - pr.match), state: pr.state } : {}),
    });
  }
  const c = await uiCounters(metrics);
  const disk = metrics.diskCheck;
  return {
    now: Date.now(),
    name: m.config.name,
    id: m.memberId.toString(16),
    clusterId: m.clusterId.toString(16),
    raftId: m.raftId,
    role: st.role,
    isLearner: self?.isLearner ?? false,
    term: st.term,
    leader: m.leaderId === 0n ? '' : m.leaderId.toString(16),
    commitIndex: st.commit,
    appliedIndex: m.node.appliedIndex,
    lastIndex: st.lastIndex,
    revision: m.sm.store.revision,
    compactRevision: m.sm.store.compactRevision,
    keys: m.sm.store.keyCount,
    dbSizeBytes: m.sm.store.dbSizeBytes(),
    authEnabled: m.sm.auth.enabled,
    disk: disk ? { verdict: disk.verdict, good: disk.good, p99Ms: disk.p99Ms, slowFdatasyncs: metrics.slowFdatasyncCount } : null,
    alarms: m.sm.alarms().map((a) => ({ memberId: a.memberId.toString(16), alarm: a.alarm })),
    members: members.map((x) => ({ id: x.id.toString(16), name: x.name, clientUrls: x.clientUrls, peerUrls: x.peerUrls, isLearner: x.isLearner })),
    peers,
    counters: { reads: c.reads, writes: c.writes, leaderChanges: c.leaderChanges, proposalsFailed: c.proposalsFailed },
    latency: c.latency,
    walFsync: c.walFsync,
  };
}

/** The member's cumulative counters and histograms the charts are drawn from (the status's, and each history sample's). */
export async function uiCounters(metrics: MemberMetrics): Promise<CounterReading & { readonly proposalsFailed: number }> {
  const handled = await values(metrics, 'grpc_server_handled_total');
  let reads = 0;
  let writes = 0;
  for (const v of handled) {
    if (v.labels['grpc_service'] !== KV) continue;
    if (v.labels['grpc_method'] === 'Range') reads += v.value;
    else if (WRITE_METHODS.has(String(v.labels['grpc_method']))) writes += v.value;
  }
  const one = async (name: string): Promise<number> => (await values(metrics, name)).reduce((a, v) => a + v.value, 0);
  return {
    reads,
    writes,
    leaderChanges: await one('etcd_server_leader_changes_seen_total'),
    proposalsFailed: await one('etcd_server_proposals_failed_total'),
    latency: histogram(await values(metrics, 'grpc_server_handling_seconds'), (l) => l['grpc_service'] === KV),
    walFsync: histogram(await values(metrics, 'etcd_disk_wal_fsync_duration_seconds'), () => true),
  };
}

type Labels = Record<string, string | number | undefined>;
interface MetricValue {
  readonly value: number;
  readonly labels: Labels;
  readonly metricName?: string;
}

async function values(metrics: MemberMetrics, name: string): Promise<MetricValue[]> {
  const metric = metrics.registry.getSingleMetric(name);
  if (!metric) return [];
  return (await metric.get()).values as MetricValue[];
}

/** Sums the bucket series of the label sets `keep` accepts into one cumulative histogram. */
function histogram(vs: readonly MetricValue[], keep: (l: Labels) => boolean): UiHistogram {
  const byBound = new Map<number, number>();
  let count = 0;
  for (const v of vs) {
    if (!keep(v.labels)) continue;
    if (v.metricName?.endsWith('_bucket')) {
      const le = v.labels['le'];
      if (le === '+Inf' || le === undefined) continue;
      const b = Number(le);
      byBound.set(b, (byBound.get(b) ?? 0) + v.value);
    } else if (v.metricName?.endsWith('_count')) count += v.value;
  }
  const bounds = [...byBound.keys()].sort((a, b) => a - b);
  return { bounds, counts: bounds.map((b) => byBound.get(b)!), count };
}
