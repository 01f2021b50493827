/**
 * Our CLI names the server side's TLS failures in words (issue 12: clear messages for every
 * failure), against a real member: a server certificate that has expired, one for another
 * host, and an endpoint that does not speak TLS. One member serves https on 127.0.0.1 and
 * 127.0.0.2 (both loopback) and plain http on a third port; it starts with an expired
 * certificate, which is then replaced on disk by a valid one for 127.0.0.1 only (the member
 * rotates it without a restart). (Our own certificate expired, the server's not signed by
 * --cacert, a client certificate required or refused: test/tls.test.ts.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAndWait } from '../src/lib/proc.js';
import { issue, makeCa, type KeyPair } from './support/certs.js';
import { FLOTILLA_BIN, freePort, runProcess, which } from './support/cluster.js';

const OPENSSL = which('openssl');
if (!OPENSSL) console.log('skipping the CLI TLS reasons: openssl not installed');

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runProcess(process.execPath, [FLOTILLA_BIN, ...args]).then((r) => ({ ...r, stderr: r.stderr.trim() }));
}

describe.skipIf(!OPENSSL)('our CLI: the server side\'s TLS failures, in words', () => {
  let dir: string;
  let ca: KeyPair;
  let served: KeyPair;
  let member: ChildProcess;
  let output = '';
  const ports = { a: 0, b: 0, plain: 0 };
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flotilla-cli-tls-'));
    ca = makeCa(dir, 'ca');
    // The files the member serves: first an expired certificate.
    const expired = issue(dir, ca, 'expired-server', { cn: 'server', expired: true });
    served = { cert: join(dir, 'served.pem'), key: join(dir, 'served-key.pem') };
    renameSync(expired.cert, served.cert);
    renameSync(expired.key, served.key);
    [ports.a, ports.b, ports.plain] = [await freePort(), await freePort(), await freePort()];
    const peer = `http://127.0.0.1:${await freePort()}`;
    member = spawn(process.execPath, [
      FLOTILLA_BIN, 'serve', '--name', 'm1', '--data-dir', join(dir, 'm1'),
      '--listen-client-urls', `https://127.0.0.1:${ports.a},https://127.0.0.2:${ports.b},http://127.0.0.1:${ports.plain}`,
      '--advertise-client-urls', `http://127.0.0.1:${ports.plain}`,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `m1=${peer}`,
      '--cert-file', served.cert, '--key-file', served.key,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    member.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    member.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const deadline = Date.now() + 30_000;
    for (;;) {
      const ok = await fetch(`http://127.0.0.1:${ports.plain}/health`).then((r) => r.ok, () => false);
      if (ok) break;
      if (Date.now() > deadline || member.exitCode !== null) throw new Error(`member not healthy:\n${output}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }, 60_000);
  afterAll(async () => {
    await killAndWait(member);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('expired, plain text to https, then (rotated) a certificate for another host', async () => {
    const get = (endpoint: string) => cli(['get', 'k', '--endpoints', endpoint, '--cacert', ca.cert]);
    const expired = await get(`https://127.0.0.1:${ports.a}`);
    expect(expired.code).toBe(1);
    expect(expired.stderr).toBe(`Error: cannot connect to 127.0.0.1:${ports.a}: the server's certificate has expired`);
    const plain = await get(`https://127.0.0.1:${ports.plain}`);
    expect(plain.code).toBe(1);
    expect(plain.stderr).toBe(`Error: cannot connect to 127.0.0.1:${ports.plain}: the endpoint does not speak TLS (use http:// and no TLS flags)`);

    // A valid certificate for 127.0.0.1 only, written over the served files.
    const fresh = issue(dir, ca, 'server', { cn: 'server', sans: ['IP:127.0.0.1'] });
    renameSync(fresh.key, served.key);
    renameSync(fresh.cert, served.cert);
    const deadline = Date.now() + 20_000;
    for (;;) {
      const r = await get(`https://127.0.0.1:${ports.a}`);
      if (r.code === 0) break;
      if (Date.now() > deadline) throw new Error(`the rotated certificate is not served: ${r.stderr}\n${output}`);
      await new Promise((res) => setTimeout(res, 300));
    }
    const otherHost = await get(`https://127.0.0.2:${ports.b}`);
    expect(otherHost.code).toBe(1);
    expect(otherHost.stderr).toMatch(new RegExp(`^Error: cannot connect to 127\\.0\\.0\\.2:${ports.b}: the server's certificate is not for 127\\.0\\.0\\.2: `));
  }, 90_000);
});
