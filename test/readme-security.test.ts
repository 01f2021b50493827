/**
 * The `sh` snippets of README.md's "Security: TLS, client certificates, peers" and
 * "Authentication and role-based access" run as written (issue 12), with only the ports, the
 * data directory and `npx flotilla` / `flotilla` (the built CLI) substituted:
 * - the TLS one makes its certificates with openssl, starts a member with mutual TLS on both
 *   ports, waits for /health with curl, writes with etcdctl and reads with our CLI, and our CLI
 *   without a client certificate prints the reason the README shows;
 * - the auth one drives our CLI's user, role and auth commands (FLOTILLA_ENDPOINTS, --user)
 *   and the gateway with a token against a real member, and every command answers as its
 *   comment says; then --password, FLOTILLA_USER / FLOTILLA_PASSWORD and a --user without a
 *   password.
 * Skipped with the reason when openssl, curl or etcdctl are missing.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLOTILLA_BIN, freePort, ROOT, startCluster, which, type Cluster } from './support/cluster.js';

const TLS_SECTION = '### Security: TLS, client certificates, peers';
const AUTH_SECTION = '### Authentication and role-based access';
const missing = ['openssl', 'curl', 'etcdctl', 'bash'].filter((t) => !which(t));
if (missing.length > 0) console.log(`skipping the README security snippets: ${missing.join(', ')} not installed`);

function snippet(section: string): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf(section);
  if (start < 0) throw new Error(`README.md has no section "${section}"`);
  const end = readme.indexOf('\n### ', start + section.length);
  const blocks = [...readme.slice(start, end < 0 ? undefined : end).matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  expect(blocks, section).toHaveLength(1);
  return blocks[0]!;
}

const CLI = `${JSON.stringify(process.execPath)} ${JSON.stringify(FLOTILLA_BIN)}`;

/** Runs a bash script in `cwd`; every process it leaves in the background is killed at the end. */
function bash(script: string, cwd: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn('bash', ['-c', `${script}\nstatus=$?\nkill $(jobs -p) 2>/dev/null; wait\nexit $status`], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 90_000);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe.skipIf(missing.length > 0)('README: security and auth snippets, as written', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('the TLS snippet: mutual TLS on both ports; etcdctl writes, our CLI reads, and without a certificate says why', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-readme-tls-'));
    dirs.push(dir);
    const [cp, pp] = [await freePort(), await freePort()];
    const block = snippet(TLS_SECTION);
    expect(block).toContain('flotilla serve');
    // The health wait, bounded (the member might not start): the until-loop's command as a function.
    const port = (t: string) => t.replaceAll('127.0.0.1:2379', `127.0.0.1:${cp}`).replaceAll('127.0.0.1:2380', `127.0.0.1:${pp}`);
    const health = /^until (.*); do sleep 0\.5; done$/m.exec(block)![1]!;
    const script = port(block)
      .replaceAll(/^flotilla /gm, `${CLI} `)
      .replace(/^until .*$/m, 'for i in $(seq 1 120); do health && break; sleep 0.5; done');
    const r = await bash(`health() { ${port(health)}; }\n${script}`, dir);
    // The README's comment under the last command is what it prints.
    const expected = [...block.matchAll(/^# (.*)$/gm)].map((m) => m[1]!).join(' ');
    expect(expected).toMatch(/^Error: cannot connect to 127\.0\.0\.1:2379: /);
    // (The member, started in the background, logs to the same stderr.)
    expect(r.stderr.split('\n'), r.stderr).toContain(expected.replace('127.0.0.1:2379', `127.0.0.1:${cp}`));
    expect(r.stdout, r.stderr).toContain('{"health":"true"');
    // The health answer (curl adds no newline), etcdctl's put, then our get.
    expect(r.stdout).toMatch(/\}OK\nk\nv\n$/);
    expect(r.code).toBe(1);
  }, 120_000);

  describe('the auth snippet', () => {
    let cluster: Cluster;
    beforeAll(async () => {
      cluster = await startCluster('flotilla', { size: 1 });
    }, 60_000);
    afterAll(async () => {
      await cluster?.stop();
    });

    it('every command answers as its comment says', async () => {
      const block = snippet(AUTH_SECTION);
      const endpoint = cluster.endpoints[0]!;
      const lines = block.split('\n').filter((l) => l.trim() !== '');
      // Each command between markers on both streams, so its output can be told apart.
      const script = lines.map((l, i) => `printf '@@%d\\n' ${i}; printf '@@%d\\n' ${i} >&2; ${l.replaceAll('npx flotilla', CLI).replaceAll('127.0.0.1:2379', endpoint)}`).join('\n');
      const r = await bash(script, cluster.dir);
      const part = (s: string, i: number) => s.split(`@@${i}\n`)[1]?.split(/@@\d+\n/)[0] ?? '';
      const find = (prefix: string) => {
        const i = lines.findIndex((l) => l.startsWith(prefix));
        expect(i, `the snippet has "${prefix}"`).toBeGreaterThanOrEqual(0);
        return { out: part(r.stdout, i), err: part(r.stderr, i), comment: /#\s*(.*)$/.exec(lines[i]!)?.[1] ?? '' };
      };
      for (const [cmd, out] of [
        ['npx flotilla user add root:rootpw', 'User root created\n'],
        ['npx flotilla role add app', 'Role app created\n'],
        ['npx flotilla role grant-permission app readwrite /app/ --prefix', 'Role app updated\n'],
        ['npx flotilla user add alice:apw', 'User alice created\n'],
        ['npx flotilla user grant-role alice app', 'Role app is granted to user alice\n'],
        ['npx flotilla auth enable', 'Authentication Enabled\n'],
        ['npx flotilla auth disable', 'Authentication Disabled\n'],
      ] as const) {
        const x = find(cmd);
        expect(x.out, `${cmd}: ${x.err}`).toBe(out);
      }
      // The commands with their answer in the comment.
      const noUser = find('npx flotilla put /app/x 1  ');
      expect(noUser.comment).toBe('Error: etcdserver: user name is empty');
      expect(noUser.err.trim()).toBe(noUser.comment);
      const ok = find('npx flotilla put /app/x 1 --user alice:apw');
      expect(ok.out.trim()).toBe(ok.comment);
      const denied = find('npx flotilla put /other 1 --user alice:apw');
      expect(denied.err.trim()).toBe(denied.comment);
      const status = find('npx flotilla auth status');
      expect(status.out.trim()).toBe(status.comment.replace(' / ', '\n'));
      // The gateway, with the token the line before it got: /app/x is there.
      const gw = find('curl -s -H "Authorization: $TOKEN"');
      expect(gw.comment).toContain('/app/x');
      const body = JSON.parse(gw.out) as { kvs: { key: string; value: string }[] };
      expect(body.kvs.map((kv) => [Buffer.from(kv.key, 'base64').toString(), Buffer.from(kv.value, 'base64').toString()])).toEqual([['/app/x', '1']]);
      expect(r.code, r.stderr).toBe(0);
    }, 120_000);

    it('after it: our CLI\'s --password, FLOTILLA_USER / FLOTILLA_PASSWORD, and a --user without a password', async () => {
      // The snippet left alice, root and auth off.
      const env = { FLOTILLA_ENDPOINTS: cluster.endpoints[0]! };
      const run = (line: string, extra: NodeJS.ProcessEnv = {}) => bash(`${CLI} ${line}`, cluster.dir, { ...env, ...extra });
      expect((await run('auth enable')).stdout).toBe('Authentication Enabled\n');
      expect(await run('get /app/x --user alice --password apw')).toMatchObject({ code: 0, stdout: '/app/x\n1\n' });
      expect(await run('get /app/x', { FLOTILLA_USER: 'alice', FLOTILLA_PASSWORD: 'apw' })).toMatchObject({ code: 0, stdout: '/app/x\n1\n' });
      expect(await run('get /app/x', { FLOTILLA_USER: 'alice:apw' })).toMatchObject({ code: 0, stdout: '/app/x\n1\n' });
      expect(await run('get /app/x --user alice --password wrong')).toMatchObject({ code: 1, stderr: 'Error: etcdserver: authentication failed, invalid user ID or password\n' });
      const noPassword = await run('get /app/x --user alice');
      expect(noPassword.code).toBe(2);
      expect(noPassword.stderr).toMatch(/--user alice has no password: give --user name:password, --password, or FLOTILLA_PASSWORD/);
      expect(await run('auth disable --user root --password rootpw')).toMatchObject({ code: 0, stdout: 'Authentication Disabled\n' });
    }, 60_000);
  });
});
