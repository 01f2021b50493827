/**
 * Operating a cluster as one operates etcd (issue 13: metrics, health, disk self-diagnosis,
 * logs), through real processes: /metrics of a Flotilla cluster against a real etcd 3.4
 * cluster's (names, types, label names; values that must move); /health, /livez and /readyz
 * with and without a leader; `flotilla endpoint status|health -w table|json` against
 * etcdctl's output for the same cluster; a slow WAL fdatasync (injected) warned about, counted
 * in /metrics and shown by `endpoint status -w json`; `--log-format json` lines; `--log-level`
 * (one member at debug, one at the default info, one at warn) honoured.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLUSTER_READY_TIMEOUT_MS, FLOTILLA_BIN, startCluster, which, type Cluster } from './support/cluster.js';
import { mergeFamilies, scrape, valueOf, type Family } from './support/prom.js';

const run = promisify(execFile);
const ETCD = which('etcd');
const ETCDCTL = which('etcdctl');
const missing = [!ETCDCTL && 'etcdctl', !ETCD && 'etcd'].filter(Boolean);
if (missing.length > 0) console.log(`skipping the metrics comparison with etcd: ${missing.join(' and ')} not installed`);

/** The metrics issue 13 names (etcd's names): each must be in ours with etcd's type and labels. */
const ETCD_METRICS = [
  'etcd_server_has_leader',
  'etcd_server_is_leader',
  'etcd_server_leader_changes_seen_total',
  'etcd_server_proposals_committed_total',
  'etcd_server_proposals_applied_total',
  'etcd_server_proposals_pending',
  'etcd_server_proposals_failed_total',
  'etcd_disk_wal_fsync_duration_seconds',
  'etcd_disk_backend_commit_duration_seconds',
  'etcd_network_peer_round_trip_time_seconds',
  'etcd_network_peer_sent_bytes_total',
  'etcd_network_peer_received_bytes_total',
  'etcd_mvcc_db_total_size_in_bytes',
  'etcd_debugging_mvcc_keys_total',
  'grpc_server_started_total',
  'grpc_server_handled_total',
];
/** More of etcd's metrics we have: the same comparison. */
const MORE_ETCD_METRICS = [
  'etcd_server_is_learner',
  'etcd_server_id',
  'etcd_server_version',
  'etcd_cluster_version',
  'etcd_debugging_mvcc_current_revision',
  'etcd_debugging_mvcc_compact_revision',
  'etcd_mvcc_db_total_size_in_use_in_bytes',
  'etcd_network_client_grpc_received_bytes_total',
  'etcd_network_client_grpc_sent_bytes_total',
];
/** How long etcd may take to expose them all (its peer round trip is first observed after 5 s). */
const ETCD_METRICS_WAIT_MS = 30_000;

const b64 = (s: string) => Buffer.from(s).toString('base64');

async function put(clientUrl: string, key: string, value: string): Promise<void> {
  const r = await fetch(`${clientUrl}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key: b64(key), value: b64(value) }), signal: AbortSignal.timeout(5000) });
  if (!r.ok) throw new Error(`put ${key}: ${r.status} ${await r.text()}`);
}

async function scrapeAll(c: Cluster): Promise<Map<string, Family>> {
  return mergeFamilies(await Promise.all(c.members.filter((m) => m.proc).map((m) => scrape(m.clientUrl))));
}

/** Polls `f` until it returns a value (not undefined) or `ms` pass; then fails with `what`. */
async function until<T>(what: () => string, ms: number, f: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function get(url: string): Promise<{ status: number; body: string; type: string }> {
  const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return { status: r.status, body: await r.text(), type: r.headers.get('content-type') ?? '' };
}

const flotilla = (...args: string[]) => run(process.execPath, [FLOTILLA_BIN, ...args], { timeout: 20_000 });
const etcdctl = (...args: string[]) => run(ETCDCTL!, args, { timeout: 20_000, env: { ...process.env, ETCDCTL_API: '3' } });

/** --log-level per member: m1 debug, m2 the default (info), m3 warn (the member the slow fdatasync warning is made on). */
const LOG_LEVEL_ARGS: readonly string[][] = [['--log-level', 'debug'], [], ['--log-level', 'warn']];
const LEVELS = ['debug', 'info', 'warn', 'error'];
const levelsIn = (output: string): string[] => output.split('\n').filter((l) => l.trim() !== '').map((l) => String((JSON.parse(l) as { level: unknown }).level));

describe.skipIf(missing.length > 0)('operations: metrics, health, disk, logs', () => {
  let fl: Cluster;
  let et: Cluster;
  beforeAll(async () => {
    [fl, et] = await Promise.all([
      startCluster('flotilla', { extraArgs: ['--unsafe-fault-injection', '--log-format', 'json'], memberArgs: (i) => LOG_LEVEL_ARGS[i] ?? [] }),
      startCluster('etcd'),
    ]);
  }, CLUSTER_READY_TIMEOUT_MS + 30_000);
  afterAll(async () => {
    await Promise.all([fl?.stop(), et?.stop()]);
  });

  it("/metrics has etcd's metrics with etcd's types and label names, and process metrics", async () => {
    for (const c of [fl, et]) for (let i = 0; i < 3; i++) await put(c.members[i % 3]!.clientUrl, `k${i}`, 'v');
    const theirs = await until(() => 'etcd to expose every metric of the list', ETCD_METRICS_WAIT_MS, async () => {
      const f = await scrapeAll(et);
      return ETCD_METRICS.every((n) => f.get(n)?.samples.length) ? f : undefined;
    });
    const ours = await until(() => 'Flotilla to expose every metric of the list', ETCD_METRICS_WAIT_MS, async () => {
      const f = await scrapeAll(fl);
      return ETCD_METRICS.every((n) => f.get(n)?.samples.length) ? f : undefined;
    });
    for (const name of [...ETCD_METRICS, ...MORE_ETCD_METRICS]) {
      expect(theirs.get(name), `etcd has ${name}`).toBeDefined();
      expect(ours.get(name), `Flotilla has ${name}`).toBeDefined();
      const t = theirs.get(name)!;
      const o = ours.get(name)!;
      expect(o.type, `${name}: TYPE`).toBe(t.type);
      expect([...o.labelNames].sort(), `${name}: label names`).toEqual([...t.labelNames].sort());
      if (t.type === 'histogram') {
        // etcd's buckets, so dashboards' histogram_quantile reads the same.
        const le = (f: Family) => [...new Set(f.samples.filter((s) => s.name.endsWith('_bucket')).map((s) => s.labels.le))].sort();
        expect(le(o), `${name}: buckets`).toEqual(le(t));
      }
    }
    // The grpc_code values are Go's names (alerts match grpc_code!="OK").
    const codes = (f: Map<string, Family>) => [...new Set(f.get('grpc_server_handled_total')!.samples.map((s) => s.labels.grpc_code))].sort();
    expect(codes(ours)).toEqual(codes(theirs));
    // Identity and versions, labelled as etcd labels them.
    const id = (await etcdctl('--endpoints', fl.endpoints[0]!, 'endpoint', 'status')).stdout.split(', ')[1];
    expect(ours.get('etcd_server_id')!.samples.map((s) => s.labels.server_id)).toContain(id);
    expect(ours.get('etcd_cluster_version')!.samples[0]!.labels.cluster_version).toBe(theirs.get('etcd_cluster_version')!.samples[0]!.labels.cluster_version);
    // A peer's label is its member id in hex, as etcd's To/From.
    const ids = new Set((await etcdctl('--endpoints', fl.endpoints[0]!, 'member', 'list')).stdout.trim().split('\n').map((l) => l.split(',')[0]));
    for (const s of ours.get('etcd_network_peer_sent_bytes_total')!.samples) expect(ids.has(s.labels.To)).toBe(true);
    // Every process_* metric etcd has, with its type.
    for (const t of [...theirs.values()].filter((f) => f.name.startsWith('process_'))) {
      expect(ours.get(t.name)?.type, `${t.name}: TYPE`).toBe(t.type);
    }
    // Node's event-loop lag (ours only).
    expect(ours.get('nodejs_eventloop_lag_seconds')?.type).toBe('gauge');
    expect(ours.get('nodejs_eventloop_lag_p99_seconds')?.type).toBe('gauge');
  });

  it('values move: has_leader, one leader, proposals committed and applied grow with puts, keys counted, gRPC calls counted', async () => {
    const ep = fl.members[0]!.clientUrl;
    const before = await scrape(ep);
    const keysBefore = valueOf(before, 'etcd_debugging_mvcc_keys_total')!;
    for (let i = 0; i < 5; i++) await put(ep, `moving/${i}`, 'x');
    const after = await until(() => 'applied to reach committed', 5000, async () => {
      const f = await scrape(ep);
      return valueOf(f, 'etcd_server_proposals_applied_total') === valueOf(f, 'etcd_server_proposals_committed_total') ? f : undefined;
    });
    expect(valueOf(after, 'etcd_server_has_leader')).toBe(1);
    expect(valueOf(after, 'etcd_server_proposals_committed_total')! - valueOf(before, 'etcd_server_proposals_committed_total')!).toBeGreaterThanOrEqual(5);
    expect(valueOf(after, 'etcd_debugging_mvcc_keys_total')).toBe(keysBefore + 5);
    const puts = (f: Map<string, Family>) => valueOf(f, 'grpc_server_handled_total', { grpc_method: 'Put', grpc_code: 'OK' })!;
    expect(puts(after) - puts(before)).toBe(5);
    expect(valueOf(after, 'grpc_server_started_total', { grpc_method: 'Put' })! - valueOf(before, 'grpc_server_started_total', { grpc_method: 'Put' })!).toBe(5);
    expect(valueOf(after, 'etcd_mvcc_db_total_size_in_bytes')).toBeGreaterThan(0);
    expect(valueOf(after, 'etcd_disk_wal_fsync_duration_seconds_count')).toBeGreaterThan(valueOf(before, 'etcd_disk_wal_fsync_duration_seconds_count')!);
    // A refused request is counted with its code.
    await fetch(`${ep}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key: '' }) });
    const refused = await scrape(ep);
    expect(valueOf(refused, 'grpc_server_handled_total', { grpc_method: 'Put', grpc_code: 'InvalidArgument' })).toBe(1);
    const all = await scrapeAll(fl);
    expect(all.get('etcd_server_is_leader')!.samples.map((s) => s.value).sort()).toEqual([0, 0, 1]);
    expect(all.get('etcd_server_leader_changes_seen_total')!.samples.every((s) => s.value >= 1)).toBe(true);
    // The start-up disk check is in /metrics too.
    expect(valueOf(after, 'flotilla_disk_fdatasync_startup_p99_seconds')).toBeGreaterThan(0);
  });

  it('/health, /livez, /readyz answer as etcd', async () => {
    const ep = fl.members[1]!.clientUrl;
    expect(await get(`${ep}/health`)).toMatchObject({ status: 200, body: '{"health":"true"}' });
    expect(await get(`${ep}/livez`)).toEqual({ status: 200, body: 'ok\n', type: 'text/plain; charset=utf-8' });
    expect((await get(`${ep}/readyz?verbose`)).body).toBe('[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n[+]non_learner ok\nok\n');
    expect((await get(`${ep}/readyz?verbose&exclude=linearizable_read`)).body).toBe('[+]data_corruption ok\n[+]serializable_read ok\n[+]non_learner ok\nok\n');
    expect(await get(`${ep}/readyz/linearizable_read`)).toMatchObject({ status: 200, body: 'ok\n' });
    expect((await get(`${ep}/readyz/nonsense`)).status).toBe(404);
    expect((await fetch(`${ep}/livez`, { method: 'POST' })).status).toBe(405);
  });

  it('`endpoint status` and `endpoint health` print what etcdctl prints (-w table, json, --cluster)', async () => {
    const eps = fl.endpoints.join(',');
    // Nothing is written meanwhile: the two must print the very same table.
    const ours = (await flotilla('endpoint', 'status', '--endpoints', eps, '-w', 'table')).stdout;
    const theirs = (await etcdctl('--endpoints', eps, 'endpoint', 'status', '-w', 'table')).stdout;
    expect(ours).toBe(theirs);
    const oursCluster = (await flotilla('endpoint', 'status', '--endpoints', fl.endpoints[0]!, '--cluster', '-w', 'table')).stdout;
    const theirsCluster = (await etcdctl('--endpoints', fl.endpoints[0]!, 'endpoint', 'status', '--cluster', '-w', 'table')).stdout;
    expect(oursCluster).toBe(theirsCluster);
    // JSON: etcd's fields as etcdctl prints them, plus the disk self-diagnosis.
    const oj = JSON.parse((await flotilla('endpoint', 'status', '--endpoints', eps, '-w', 'json')).stdout) as { Status: Record<string, unknown> }[];
    const tj = JSON.parse((await etcdctl('--endpoints', eps, 'endpoint', 'status', '-w', 'json')).stdout) as { Status: Record<string, unknown> }[];
    for (const s of oj) {
      expect(s.Status.fdatasyncP99Ms).toBeGreaterThan(0);
      expect(s.Status.slowFdatasyncs).toBe(0);
      delete s.Status.fdatasyncP99Ms;
      delete s.Status.slowFdatasyncs;
    }
    expect(oj).toEqual(tj);
    // Health: the table's shape, with the durations masked.
    const mask = (t: string) => t.replace(/[\d.]+(ms|µs|s)\b/g, 'D').replace(/-+/g, '-').replace(/ +/g, ' ');
    const oh = (await flotilla('endpoint', 'health', '--endpoints', eps, '-w', 'table')).stdout;
    const th = (await etcdctl('--endpoints', eps, 'endpoint', 'health', '-w', 'table')).stdout;
    expect(mask(oh).split('\n').sort()).toEqual(mask(th).split('\n').sort());
    const hj = JSON.parse((await flotilla('endpoint', 'health', '--endpoints', eps, '-w', 'json')).stdout) as { endpoint: string; health: boolean }[];
    expect(hj.map((h) => [h.endpoint, h.health]).sort()).toEqual(fl.endpoints.map((e) => [e, true]).sort());
  });

  it('a WAL fdatasync over 1 s is warned about (`slow fdatasync`), counted in /metrics and shown by `endpoint status -w json`', async () => {
    const m = fl.members[2]!;
    const faults = async (body: object) => {
      const r = await fetch(`${m.clientUrl}/debug/faults`, { method: 'POST', body: JSON.stringify(body) });
      expect(r.status).toBe(200);
    };
    await faults({ fsyncDelayMs: 1100 });
    try {
      await put(fl.members[0]!.clientUrl, 'slow', 'disk');
      await until(() => `a slow fdatasync line in\n${m.output.slice(-2000)}`, 10_000, async () => (m.output.includes('"msg":"slow fdatasync"') ? true : undefined));
    } finally {
      await faults({ fsyncDelayMs: 0 });
    }
    const line = JSON.parse(m.output.split('\n').find((l) => l.includes('"msg":"slow fdatasync"'))!) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 'warn', member: m.name, msg: 'slow fdatasync', 'expected-duration': '1000ms' });
    expect(Number(String(line.took).replace('ms', ''))).toBeGreaterThan(1000);
    expect(valueOf(await scrape(m.clientUrl), 'flotilla_disk_wal_slow_fdatasync_total')).toBeGreaterThanOrEqual(1);
    const st = JSON.parse((await flotilla('endpoint', 'status', '--endpoints', m.clientUrl.replace('http://', ''), '-w', 'json')).stdout) as { Status: { slowFdatasyncs: number } }[];
    expect(st[0]!.Status.slowFdatasyncs).toBeGreaterThanOrEqual(1);
  });

  it('--log-format json: every line one object with ts, level, member, term, msg; the disk verdict at start', () => {
    for (const m of fl.members) {
      const lines = m.output.split('\n').filter((l) => l.trim() !== '');
      expect(lines.length).toBeGreaterThan(0);
      // The member at --log-level warn prints no verdict (an info line): its lines are checked below.
      if (m === fl.members[2]) continue;
      for (const l of lines) {
        const o = JSON.parse(l) as Record<string, unknown>;
        expect(Object.keys(o).slice(0, 5)).toEqual(['ts', 'level', 'member', 'term', 'msg']);
        expect(o.member).toBe(m.name);
        expect(Number.isNaN(Date.parse(String(o.ts)))).toBe(false);
        expect(typeof o.term).toBe('number');
      }
      const verdict = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((o) => /^fdatasync p99 [\d.]+ ms: (good for Raft|slow: etcd recommends under 10 ms)$/.test(String(o.msg)));
      expect(verdict, m.output.slice(0, 1000)).toMatchObject({ syncs: 32 });
      // Lines after the election carry the term.
      expect(lines.some((l) => (JSON.parse(l) as { term: number }).term >= 1)).toBe(true);
    }
  });

  it('without a leader: /health and /readyz fail with the reason, /livez stays ok, has_leader 0', async () => {
    const m = fl.members[0]!;
    fl.kill(1);
    fl.kill(2);
    // First its reads time out (the leader is gone, not yet noticed), then it has no leader.
    const noLeader = { status: 503, body: '{"health":"false","reason":"RAFT NO LEADER"}' };
    await until(() => 'member 0 to lose its leader', 15_000, async () => ((await get(`${m.clientUrl}/health`)).body === noLeader.body ? true : undefined));
    expect(await get(`${m.clientUrl}/health`)).toMatchObject(noLeader);
    expect(await get(`${m.clientUrl}/readyz`)).toMatchObject({
      status: 503,
      body: '[+]data_corruption ok\n[+]serializable_read ok\n[-]linearizable_read failed: etcdserver: no leader\n[+]non_learner ok\n\n',
    });
    expect(await get(`${m.clientUrl}/livez`)).toMatchObject({ status: 200, body: 'ok\n' });
    const f = await scrape(m.clientUrl);
    expect(valueOf(f, 'etcd_server_has_leader')).toBe(0);
    expect(valueOf(f, 'etcd_server_is_leader')).toBe(0);
    const h = await flotilla('endpoint', 'health', '--endpoints', fl.endpoints[0]!, '-w', 'table').catch((e: { stdout: string; stderr: string; code: number }) => e);
    expect((h as { code?: number }).code).toBe(1);
    expect(h.stdout).toMatch(/\| +false \|/);
  });

  it('--log-level: a member prints no line below its level (debug, the default info, warn)', async () => {
    const [debug, info, warn] = fl.members as [(typeof fl.members)[0], (typeof fl.members)[0], (typeof fl.members)[0]];
    // m1 lost both peers (above): its failing dials are logged at debug.
    await until(() => `a debug line from m1 in\n${debug.output.slice(-2000)}`, 15_000, async () => (levelsIn(debug.output).includes('debug') ? true : undefined));
    expect(levelsIn(debug.output)).toContain('info');
    const atInfo = levelsIn(info.output);
    expect(atInfo).toContain('info');
    expect(atInfo).not.toContain('debug');
    const atWarn = levelsIn(warn.output);
    // The slow fdatasync warning (above) is printed; nothing below warn is.
    expect(atWarn).toContain('warn');
    expect(atWarn.filter((l) => LEVELS.indexOf(l) < LEVELS.indexOf('warn'))).toEqual([]);
  });
});
