/** The client commands of `flotilla` against a running cluster, through the real binary. */
import { spawn, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLOTILLA_BIN, startCluster, type Cluster } from './support/cluster.js';

describe('flotilla client commands', () => {
  let cluster: Cluster;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    cluster = await startCluster('flotilla');
    env = { ...process.env, FLOTILLA_ENDPOINTS: cluster.endpoints.join(',') };
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });
  const cli = (...args: string[]) => {
    const r = spawnSync(process.execPath, [FLOTILLA_BIN, ...args], { env, encoding: 'utf8', timeout: 20_000 });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };

  it('put, get (prefix, json, serializable), del', () => {
    expect(cli('put', 'app/a', '1')).toMatchObject({ code: 0, out: 'OK\n' });
    expect(cli('put', 'app/b', '2').code).toBe(0);
    expect(cli('get', 'app/', '--prefix').out).toBe('app/a\n1\napp/b\n2\n');
    expect(cli('get', 'app/', '--prefix', '--keys-only', '--consistency', 's').out).toBe('app/a\napp/b\n');
    expect(cli('get', 'app/', '--prefix', '--count-only').out).toBe('2\n');
    expect(cli('get', 'app/', '--prefix', '--sort-by', 'VALUE', '--order', 'DESCEND', '--limit', '1').out).toBe('app/b\n2\n');
    const j = JSON.parse(cli('get', 'app/a', '-w', 'json').out) as { kvs: { key: string; value: string }[]; count: string };
    expect(j.kvs[0]).toMatchObject({ key: Buffer.from('app/a').toString('base64'), value: Buffer.from('1').toString('base64') });
    expect(cli('del', 'app/', '--prefix').out).toBe('2\n');
    expect(cli('get', 'app/', '--prefix').out).toBe('');
  });

  it('txn from stdin in etcdctl format, both branches; a bad line is refused', () => {
    const txn = (input: string) => {
      const r = spawnSync(process.execPath, [FLOTILLA_BIN, 'txn'], { env, input, encoding: 'utf8', timeout: 20_000 });
      return { code: r.status, out: r.stdout, err: r.stderr };
    };
    expect(cli('put', 'tx', 'v1').code).toBe(0);
    expect(txn('value("tx") = "v1"\nmod("tx") > "0"\n\nput tx v2\nget tx\n\nput tx no\n')).toMatchObject({ code: 0, out: 'SUCCESS\n\nOK\n\ntx\nv2\n' });
    expect(txn('value("tx") = "v1"\n\nput tx v3\n\ndel tx\n')).toMatchObject({ code: 0, out: 'FAILURE\n\n1\n' });
    expect(txn('value(tx) == 1\n\nput a b\n\n')).toMatchObject({ code: 1, out: '' });
  });

  it('leases: grant, attach, timetolive, keep-alive, revoke', () => {
    const g = cli('lease', 'grant', '30');
    const id = /^lease ([0-9a-f]+) granted with TTL\(30s\)$/m.exec(g.out)?.[1];
    expect(id, g.out + g.err).toBeDefined();
    expect(cli('put', 'leased', 'v', '--lease', id!).code).toBe(0);
    expect(cli('lease', 'timetolive', id!, '--keys').out).toMatch(new RegExp(`lease ${id} granted with TTL\\(30s\\), remaining\\(\\d+s\\), attached keys\\(\\[leased\\]\\)`));
    expect(cli('lease', 'list').out).toContain(id);
    expect(cli('lease', 'keep-alive', '--once', id!).out).toBe(`lease ${id} keepalived with TTL(30)\n`);
    expect(cli('lease', 'revoke', id!).out).toBe(`lease ${id} revoked\n`);
    expect(cli('get', 'leased').out).toBe('');
  });

  it('watch prints events as they happen', async () => {
    const w = spawn(process.execPath, [FLOTILLA_BIN, 'watch', 'wk', '--prefix'], { env });
    let out = '';
    w.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise((r) => setTimeout(r, 800));
    cli('put', 'wk1', 'x');
    cli('del', 'wk1');
    for (let i = 0; i < 100 && !out.includes('DELETE'); i++) await new Promise((r) => setTimeout(r, 50));
    w.kill('SIGKILL');
    expect(out).toBe('PUT\nwk1\nx\nDELETE\nwk1\n\n');
  });

  it('member list and endpoint status/health --cluster', () => {
    const ml = cli('member', 'list').out.trim().split('\n');
    expect(ml).toHaveLength(3);
    for (const l of ml) expect(l).toMatch(/^[0-9a-f]+, started, m\d, http:\/\/127\.0\.0\.1:\d+, http:\/\/127\.0\.0\.1:\d+, false$/);
    const st = cli('endpoint', 'status', '--cluster').out.trim().split('\n');
    expect(st).toHaveLength(3);
    expect(st.filter((l) => l.includes(', true, false, ')).length).toBe(1);
    const h = cli('endpoint', 'health', '--cluster');
    expect(h.out.match(/is healthy: successfully committed proposal: took = [\d.]+ms\n/g), h.out + h.err).toHaveLength(3);
  });

  it('bad input: a readable error, exit 1, nothing on stdout', () => {
    expect(cli('get', '')).toMatchObject({ code: 1, out: '', err: 'Error: etcdserver: key is not provided\n' });
    expect(cli('put', 'k', 'v', '--lease', 'abc')).toMatchObject({ code: 1, out: '', err: 'Error: etcdserver: requested lease not found\n' });
    expect(cli('get', 'k', '--consistency', 'x')).toMatchObject({ code: 1, out: '' });
    expect(cli('lease', 'revoke', 'zz').code).not.toBe(0);
  });
});
