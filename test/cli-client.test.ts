/**
 * The client commands (src/cli/client.ts) against a real 3-member cluster (Flotilla by default;
 * FLOTILLA_TEST_TARGET=etcd for etcd), run as a user would: a separate process per command, via
 * bin/flotilla.js over the build (`npm run build` first). Where etcdctl is
 * installed, the output of read-only commands is compared with etcdctl's byte for byte.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLOTILLA_BIN, ROOT, startCluster, which, type Cluster, type Target } from './support/cluster.js';

const TARGET = (process.env.FLOTILLA_TEST_TARGET ?? 'flotilla') as Target;
const RUNNER = FLOTILLA_BIN;
const BUILT = existsSync(join(ROOT, 'dist/cli/client.js'));
const ETCDCTL = which('etcdctl');
const missing = !BUILT
  ? 'dist/cli/client.js is missing (npm run build)'
  : TARGET === 'etcd'
    ? which('etcd') ? null : 'etcd is not installed'
    : existsSync(FLOTILLA_BIN) ? null : 'bin/flotilla.js is missing';
if (missing) console.log(`skipping the client CLI tests against ${TARGET}: ${missing}`);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Result {
  code: number | null;
  out: string;
  err: string;
}

/** A long-running command (watch, lock, elect) with its output so far. */
interface Running {
  proc: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<number | null>;
}

describe.skipIf(missing !== null)(`flotilla client commands against ${TARGET}`, () => {
  let cluster: Cluster;
  let env: NodeJS.ProcessEnv;
  const running: Running[] = [];
  beforeAll(async () => {
    cluster = await startCluster(TARGET);
    env = { ...process.env, FLOTILLA_ENDPOINTS: cluster.endpoints.join(',') };
  }, 60_000);
  afterAll(async () => {
    for (const r of running) r.proc.kill('SIGKILL');
    await cluster?.stop();
  });

  const cli = (args: string[], input?: string): Result => {
    const r = spawnSync(process.execPath, [RUNNER, ...args], { env, input, encoding: 'utf8', timeout: 20_000 });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  /** Both tools through the same (first) member, so headers agree: [ours, etcdctl's] stdout. */
  const both = (args: string[], input?: string): [string, string] => {
    const ep = cluster.endpoints[0]!;
    const theirs = spawnSync(ETCDCTL!, [`--endpoints=${ep}`, ...args], { input, encoding: 'utf8', timeout: 20_000 });
    return [cli([...args, '--endpoints', ep], input).out, theirs.stdout];
  };
  const start = (args: string[]): Running => {
    const proc = spawn(process.execPath, [RUNNER, ...args], { env });
    let out = '';
    let err = '';
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    const x = { proc, out: () => out, err: () => err, exited };
    running.push(x);
    return x;
  };
  // Bounded, and generous: on a loaded machine a client process takes seconds to start.
  const waitFor = async (cond: () => boolean, what: string, ms = 60_000, state?: () => string): Promise<void> => {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${state ? `: ${state()}` : ''}`);
      await sleep(25);
    }
  };

  it('put, get (prefix, keys-only, count-only, sort, limit, consistency, json), del', () => {
    expect(cli(['put', 'app/a', '1'])).toEqual({ code: 0, out: 'OK\n', err: '' });
    expect(cli(['put', 'app/b', '2']).code).toBe(0);
    expect(cli(['put', 'app/b', '22', '--prev-kv']).out).toBe('OK\napp/b\n2\n');
    expect(cli(['get', 'app/', '--prefix']).out).toBe('app/a\n1\napp/b\n22\n');
    expect(cli(['get', 'app/a', 'app/c']).out).toBe('app/a\n1\napp/b\n22\n');
    expect(cli(['get', 'app/', '--prefix', '--keys-only', '--consistency', 's']).out).toBe('app/a\n\napp/b\n\n');
    expect(cli(['get', 'app/', '--prefix', '--count-only']).out).toBe('2\n');
    expect(cli(['get', 'app/', '--prefix', '--sort-by', 'VALUE', '--order', 'DESCEND', '--limit', '1']).out).toBe('app/b\n22\n');
    expect(cli(['get', 'app/nope']).out).toBe('');
    const j = JSON.parse(cli(['get', 'app/a', '-w', 'json']).out) as { header: { revision: number }; kvs: { key: string; value: string; version: number }[]; count: number };
    expect(j.kvs[0]).toMatchObject({ key: Buffer.from('app/a').toString('base64'), value: Buffer.from('1').toString('base64'), version: 1 });
    expect(j.count).toBe(1);
    if (ETCDCTL) {
      for (const args of [['get', 'app/', '--prefix'], ['get', 'app/', '--prefix', '-w', 'json'], ['get', 'app/', '--from-key', '--keys-only'], ['get', 'app/', '--prefix', '--sort-by', 'MODIFY', '--order', 'DESCEND']]) {
        const [ours, theirs] = both(args);
        expect(ours, args.join(' ')).toBe(theirs);
      }
    }
    expect(cli(['del', 'app/a', '--prev-kv']).out).toBe('1\napp/a\n1\n');
    expect(cli(['del', 'app/', '--prefix']).out).toBe('1\n');
    expect(cli(['get', 'app/', '--prefix']).out).toBe('');
  });

  it('txn reads etcdctl\'s format from stdin', () => {
    cli(['put', 'tx', 'v1']);
    const input = 'value("tx") = "v1"\nmod("tx") > "0"\n\nput tx "v 2"\nget tx\ndel none\n\nput tx failed\n\n';
    const r = cli(['txn'], input);
    expect(r).toEqual({ code: 0, out: 'SUCCESS\n\nOK\n\ntx\nv 2\n\n0\n', err: '' });
    expect(cli(['txn'], 'ver("tx") = "1"\n\n\nget tx\n\n').out).toBe('FAILURE\n\ntx\nv 2\n');
    if (ETCDCTL) {
      const ro = 'create("tx") > "0"\n\nget tx\n\n\n';
      const [ours, theirs] = both(['txn', '-w', 'json'], ro);
      expect(ours).toBe(theirs);
    }
    expect(cli(['txn'], 'bogus\n\n\n')).toEqual({ code: 2, out: '', err: 'Error: malformed comparison: bogus\n' });
  });

  it('leases: grant, attach, timetolive, list, keep-alive --once, revoke', () => {
    const g = cli(['lease', 'grant', '30']);
    const id = /^lease ([0-9a-f]{16}) granted with TTL\(30s\)\n$/.exec(g.out)?.[1];
    expect(id, g.out + g.err).toBeDefined();
    expect(cli(['put', 'leased', 'v', '--lease', id!]).code).toBe(0);
    // The remaining TTL counts down in real time; a loaded machine may take seconds between the
    // grant and this call, so the check is that it is positive and no more than the grant.
    const ttl = cli(['lease', 'timetolive', id!, '--keys']).out;
    const left = new RegExp(`^lease ${id} granted with TTL\\(30s\\), remaining\\((\\d+)s\\), attached keys\\(\\[leased\\]\\)\n$`).exec(ttl)?.[1];
    expect(left, ttl).toBeDefined();
    expect(Number(left)).toBeGreaterThan(0);
    expect(Number(left)).toBeLessThanOrEqual(30);
    expect(cli(['lease', 'list']).out).toMatch(new RegExp(`^found \\d+ leases\n(.*\n)*${id}\n`));
    expect(cli(['lease', 'keep-alive', '--once', id!]).out).toBe(`lease ${id} keepalived with TTL(30)\n`);
    const kj = JSON.parse(cli(['lease', 'keep-alive', '--once', id!, '-w', 'json']).out) as { ID: number; TTL: number };
    expect(kj.TTL).toBe(30);
    if (ETCDCTL) {
      const [ours, theirs] = both(['lease', 'timetolive', id!, '--keys']).map((o) => o.replace(/remaining\(\d+s\)/, ''));
      expect(ours).toBe(theirs);
    }
    expect(cli(['lease', 'revoke', id!]).out).toBe(`lease ${id} revoked\n`);
    expect(cli(['get', 'leased']).out).toBe('');
    expect(cli(['lease', 'timetolive', id!]).out).toBe(`lease ${id} already expired\n`);
    expect(cli(['lease', 'keep-alive', '--once', id!])).toEqual({ code: 1, out: '', err: 'Error: etcdserver: requested lease not found\n' });
  });

  it('lease keep-alive renews until the lease is revoked', async () => {
    const id = /lease ([0-9a-f]+)/.exec(cli(['lease', 'grant', '3']).out)![1]!;
    const ka = start(['lease', 'keep-alive', id]);
    await waitFor(() => ka.out().split('\n').length > 3, 'three renewals');
    expect(ka.out()).toMatch(new RegExp(`^(lease ${id} keepalived with TTL\\(3\\)\n)+$`));
    cli(['lease', 'revoke', id]);
    expect(await ka.exited).toBe(0);
    expect(ka.out()).toMatch(new RegExp(`lease ${id} expired or revoked\\.\n$`));
  });

  it('watch prints events as etcdctl does (also with --prev-kv and -w json)', async () => {
    // The watches start at the next revision, so the puts below reach them however late each
    // watch process gets going (no sleep that a loaded machine outlasts).
    const header = JSON.parse(cli(['get', 'wk1', '-w', 'json']).out) as { header: { revision: number } };
    const from = String(header.header.revision + 1);
    const w = start(['watch', 'wk', '--prefix', '--rev', from]);
    const wp = start(['watch', 'wk1', '--prev-kv', '--rev', from]);
    const wj = start(['watch', 'wk1', '-w', 'json', '--rev', from]);
    for (const args of [['put', 'wk1', 'x'], ['put', 'wk1', 'y'], ['del', 'wk1']]) {
      const r = cli(args);
      expect(r.code, `${args.join(' ')}: ${r.err}`).toBe(0);
    }
    // What each watch printed (and said on stderr, and whether it exited) if it never completes.
    const seen = () => [w, wp, wj].map((x, i) => `watch ${i}: exit ${x.proc.exitCode} out ${JSON.stringify(x.out())} err ${JSON.stringify(x.err())}`).join('; ');
    await waitFor(() => w.out().includes('DELETE') && wp.out().includes('DELETE') && wj.out().split('\n').length > 3, 'the watch output', 60_000, seen);
    expect(w.out()).toBe('PUT\nwk1\nx\nPUT\nwk1\ny\nDELETE\nwk1\n\n');
    expect(wp.out()).toBe('PUT\nwk1\nx\nPUT\nwk1\nx\nwk1\ny\nDELETE\nwk1\ny\nwk1\n\n');
    const lines = wj.out().trim().split('\n').map((l) => JSON.parse(l) as { Events: { type?: number; kv: { key: string } }[]; Canceled: boolean });
    expect(lines.map((l) => l.Events[0]!.type ?? 0)).toEqual([0, 0, 1]);
    for (const x of [w, wp, wj]) x.proc.kill('SIGINT');
    expect(await w.exited).toBe(0);
  });

  it('lock: prints the key and holds; a second lock with a command waits, then runs it and exits with its code', async () => {
    const holder = start(['lock', 'lk']);
    await waitFor(() => holder.out().endsWith('\n'), 'the first lock');
    expect(holder.out()).toMatch(/^lk\/[0-9a-f]+\n$/);
    const waiter = start(['lock', 'lk', '--', 'sh', '-c', 'echo "got $ETCD_LOCK_KEY"; exit 3']);
    await sleep(800);
    expect(waiter.out()).toBe('');
    holder.proc.kill('SIGINT');
    expect(await holder.exited).toBe(0);
    expect(await waiter.exited).toBe(3);
    expect(waiter.out()).toMatch(/^got lk\/[0-9a-f]+\n$/);
    expect(cli(['get', 'lk', '--prefix']).out).toBe('');
  });

  it('elect: campaigns print the leader; observe prints every leader', async () => {
    const observer = start(['elect', 'el']);
    await sleep(500);
    const first = start(['elect', 'el', 'p1']);
    // The key and the value may arrive in separate chunks: wait for both lines.
    const twoLines = (out: string) => out.split('\n').length >= 3;
    await waitFor(() => twoLines(first.out()), 'the first leader');
    expect(first.out()).toMatch(/^el\/[0-9a-f]+\np1\n$/);
    const second = start(['elect', 'el', 'p2']);
    await sleep(800);
    expect(second.out()).toBe('');
    first.proc.kill('SIGINT');
    await waitFor(() => twoLines(second.out()), 'the second leader');
    expect(second.out()).toMatch(/^el\/[0-9a-f]+\np2\n$/);
    await waitFor(() => observer.out().includes('p2'), 'the observer');
    expect(observer.out()).toMatch(/^el\/[0-9a-f]+\np1\nel\/[0-9a-f]+\np2\n$/);
    second.proc.kill('SIGINT');
    observer.proc.kill('SIGINT');
    expect(await second.exited).toBe(0);
  });

  it('member list, endpoint status and health (with --cluster)', () => {
    const ml = cli(['member', 'list']).out.trim().split('\n');
    expect(ml).toHaveLength(3);
    for (const l of ml) expect(l).toMatch(/^[0-9a-f]+, started, m\d, http:\/\/127\.0\.0\.1:\d+, http:\/\/127\.0\.0\.1:\d+, false$/);
    if (ETCDCTL) {
      // -w table as etcdctl prints it, byte for byte.
      const [ours, theirs] = both(['member', 'list', '-w', 'table']);
      expect(ours).toBe(theirs);
      expect(ours).toMatch(/^(\+-+)+\+\n\|\s+ID\s+\|\s+STATUS\s+\|/);
    }
    const mj = JSON.parse(cli(['member', 'list', '-w', 'json']).out) as { members: { name: string }[] };
    expect(mj.members.map((m) => m.name).sort()).toEqual(['m1', 'm2', 'm3']);
    const st = cli(['endpoint', 'status', '--cluster']).out.split('\n').filter(Boolean);
    expect(st).toHaveLength(3);
    for (const l of st) expect(l).toMatch(/^http:\/\/127\.0\.0\.1:\d+, [0-9a-f]+, [\d.]+, \d+(\.\d)? [kMG]?B, (true|false), false, \d+, \d+, \d+, $/);
    expect(st.filter((l) => l.includes(', true, false, '))).toHaveLength(1);
    const sj = JSON.parse(cli(['endpoint', 'status', '-w', 'json']).out) as { Endpoint: string; Status: { version: string } }[];
    expect(sj.map((s) => s.Endpoint)).toEqual(cluster.endpoints);
    expect(cli(['endpoint', 'health', '--cluster']).out).toMatch(/^(http:\/\/127\.0\.0\.1:\d+ is healthy: successfully committed proposal: took = [\d.]+(µs|ms|s)\n){3}$/);
    const hj = JSON.parse(cli(['endpoint', 'health', '-w', 'json']).out) as { endpoint: string; health: boolean }[];
    expect(hj.map((h) => h.health)).toEqual([true, true, true]);
    const bad = cli(['endpoint', 'health', '--endpoints', '127.0.0.1:1']);
    expect(bad.code).toBe(1);
    expect(bad.out).toBe('');
    expect(bad.err).toMatch(/^127\.0\.0\.1:1 is unhealthy: failed to commit proposal: .*\nError: unhealthy cluster\n$/);
  });

  it('bad input: a readable error on stderr, nothing on stdout; exit 1 for a refused request, 2 for a command line not understood', () => {
    expect(cli(['get', ''])).toEqual({ code: 1, out: '', err: 'Error: etcdserver: key is not provided\n' });
    expect(cli(['put', 'k', 'v', '--lease', '1234'])).toEqual({ code: 1, out: '', err: 'Error: etcdserver: requested lease not found\n' });
    expect(cli(['put', 'k', 'v', '--lease', 'zz'])).toEqual({ code: 2, out: '', err: 'Error: bad lease ID "zz", expecting ID in hex\n' });
    expect(cli(['get', 'k', '--rev', '999999'])).toEqual({ code: 1, out: '', err: 'Error: etcdserver: mvcc: required revision is a future revision\n' });
    expect(cli(['lease', 'revoke', 'zz'])).toMatchObject({ code: 2, out: '' });
    const usage = [['get', 'k', '--consistency', 'x'], ['get', 'k', '--rev', 'many'], ['get', 'k', '-w', 'table'], ['get', 'k', '--sort-by', 'SIZE'], ['get', 'a', 'b', '--prefix'], ['get', 'k', '--bogus'], ['get'], ['member', 'remove', 'zz'], ['nope']];
    for (const args of usage) {
      const r = cli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.out, args.join(' ')).toBe('');
      expect(r.err, args.join(' ')).not.toBe('');
    }
    const txn = cli(['txn'], 'mod("k") ~ "0"\n');
    expect(txn).toEqual({ code: 2, out: '', err: 'Error: malformed comparison: mod("k") ~ "0"\n' });
    const down = cli(['get', 'k', '--endpoints', '127.0.0.1:1']);
    expect(down).toMatchObject({ code: 1, out: '' });
    expect(down.err).toMatch(/^Error: cannot connect to 127\.0\.0\.1:1/);
    // Every member down: each endpoint tried is named with its reason.
    const all = cli(['get', 'k', '--endpoints', '127.0.0.1:1,127.0.0.1:2,127.0.0.1:3']);
    expect(all).toMatchObject({ code: 1, out: '' });
    expect(all.err).toMatch(/^Error: cannot connect to 127\.0\.0\.1:(1|2|3): [^;\n]+; 127\.0\.0\.1:(1|2|3): [^;\n]+; 127\.0\.0\.1:(1|2|3): [^;\n]+\n$/);
    for (const p of ['1', '2', '3']) expect(all.err).toContain(`127.0.0.1:${p}: `);
  });
});
