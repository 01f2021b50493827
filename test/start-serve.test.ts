/**
 * `flotilla start` (what `npm start` runs) brings up three members, says so, serves, and stops
 * cleanly on Ctrl-C; `flotilla serve` refuses bad flags with a readable message; MoveLeader
 * moves the leadership.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FlotillaClient } from '../src/client/index.js';
import { FLOTILLA_BIN, freePorts, startCluster } from './support/cluster.js';
import { rawClient } from './support/grpc.js';

describe('flotilla start', () => {
  it('starts a 3-member cluster, keeps its data across runs, stops on SIGINT', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-start-'));
    const all = await freePorts(6);
    const [client, peer] = [all.slice(0, 3), all.slice(3, 6)];
    const run = async (fresh: boolean, body: (eps: string[]) => Promise<void>) => {
      const args = [FLOTILLA_BIN, 'start', '--data-dir', dir, '--client-ports', client.join(','), '--peer-ports', peer.join(','), ...(fresh ? ['--fresh'] : [])];
      const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      p.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((r) => p.on('exit', (code) => r(code)));
      try {
        for (let i = 0; i < 300 && !out.includes('cluster ready'); i++) await new Promise((r) => setTimeout(r, 100));
        expect(out, out).toContain('cluster ready');
        expect(out).toMatch(/node1 is up/);
        expect(out).toMatch(/leader is node\d \(term \d+\)/);
        expect(out).toContain(`etcdctl --endpoints=${client.map((c) => `127.0.0.1:${c}`).join(',')} put greeting hello`);
        await body(client.map((c) => `127.0.0.1:${c}`));
      } finally {
        p.kill('SIGINT');
        expect(await exited).toBe(0);
      }
      expect(out).toContain('stopped');
    };
    try {
      await run(true, async (eps) => {
        const c = new FlotillaClient({ endpoints: eps });
        await c.put('kept', 'across runs');
        await c.close();
      });
      await run(false, async (eps) => {
        const c = new FlotillaClient({ endpoints: eps });
        const r = await c.get('kept');
        expect(r.kvs.map((kv) => kv.valueString())).toEqual(['across runs']);
        await c.close();
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);

  it('refuses bad ports', () => {
    const r = spawnSync(process.execPath, [FLOTILLA_BIN, 'start', '--client-ports', '1,2'], { encoding: 'utf8', timeout: 10_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--client-ports must be three ports');
  });
});

describe('flotilla serve', () => {
  it('refuses bad flags and environment with a readable message, exit 2', () => {
    const cases: [string[], NodeJS.ProcessEnv, RegExp][] = [
      [['--listen-client-urls', 'https://127.0.0.1:1'], {}, /flotilla serve: TLS key\/cert \(--cert-file, --key-file\) must be provided for client URLs with the https scheme \(or --auto-tls\)/],
      // Certificate files are loaded before anything starts (here the certificate from FLOTILLA_CERT_FILE).
      [['--listen-client-urls', 'https://127.0.0.1:1', '--key-file', '/nonexistent/k.pem'], { FLOTILLA_CERT_FILE: '/nonexistent/c.pem' }, /fatal: cannot start: ENOENT: no such file or directory, stat '\/nonexistent\/c\.pem'; exiting with code 2/],
      [['--name', 'x', '--initial-cluster', 'y=http://127.0.0.1:1'], {}, /--initial-cluster has no member named "x"/],
      [[], { FLOTILLA_ELECTION_TIMEOUT: 'soon' }, /--election-timeout: "soon" is not a non-negative integer/],
      [['--log-level', 'verbose'], {}, /flotilla serve: --log-level: "verbose" is not one of debug, info, warn, error/],
      [[], { FLOTILLA_LOG_FORMAT: 'xml' }, /flotilla serve: --log-format: "xml" is not one of text, json/],
    ];
    for (const [args, env, re] of cases) {
      const r = spawnSync(process.execPath, [FLOTILLA_BIN, 'serve', ...args], { encoding: 'utf8', timeout: 10_000, env: { ...process.env, ...env } });
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(re);
    }
  });

  it('MoveLeader hands the leadership to the member asked for', async () => {
    const cluster = await startCluster('flotilla');
    const c = new FlotillaClient({ endpoints: cluster.endpoints });
    try {
      const statuses = await Promise.all(cluster.endpoints.map((e) => c.status(e)));
      const leaderIdx = statuses.findIndex((s) => s.leader === s.header.memberId);
      const targetId = statuses[(leaderIdx + 1) % 3]!.header.memberId;
      await rawClient(cluster.endpoints[leaderIdx]!).call('etcdserverpb.Maintenance', 'MoveLeader', { targetID: targetId.toString() });
      const after = await c.status(cluster.endpoints[0]!);
      expect(after.leader).toBe(targetId);
      await c.put('after-move', 'ok');
    } finally {
      await c.close();
      await cluster.stop();
    }
  }, 60_000);
});
