/**
 * TLS on the client port, through the real servers: one Flotilla member and one real etcd 3.4
 * member with the same certificates (made here with openssl) and the same flags
 * (--cert-file --key-file --trusted-ca-file --client-cert-auth), and the same etcdctl session
 * against both: TLS put/get; no client certificate, another CA's, an expired one, a CA that did
 * not sign the server's, plain text to the TLS port: refused alike. Then our CLI against
 * Flotilla (the same answers, and a reason in words for each refusal), the etcd3 npm client
 * over TLS against both, and the JSON gateway over HTTPS.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLOTILLA_BIN, runProcess, startCluster, which, type Cluster } from './support/cluster.js';
import { makeTestCerts, type TestCerts } from './support/certs.js';

const ETCDCTL = which('etcdctl');
const ETCD = which('etcd');
const OPENSSL = which('openssl');
const missing = [!ETCDCTL && 'etcdctl', !ETCD && 'etcd', !OPENSSL && 'openssl'].filter(Boolean);
if (missing.length > 0) console.log(`skipping the TLS comparison: ${missing.join(', ')} not installed`);

interface Result {
  code: number | null;
  stdout: string;
  /** The last line on stderr (etcdctl logs a JSON line before it). */
  error: string;
}

function run(bin: string[], args: string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  return runProcess(bin[0]!, [...bin.slice(1), ...args], { ...process.env, ETCDCTL_API: '3', ...env }).then((r) => ({ code: r.code, stdout: r.stdout, error: r.stderr.trim().split('\n').pop() ?? '' }));
}

/** The session: [name, flags], each a `get` or `put` on one endpoint. */
function session(c: TestCerts, httpsEndpoint: string): [string, string[]][] {
  const good = ['--cacert', c.ca.cert, '--cert', c.client.cert, '--key', c.client.key];
  const e = `--endpoints=${httpsEndpoint}`;
  return [
    ['put over TLS with a client certificate', [e, ...good, 'put', 'tls-key', 'tls-value']],
    ['get over TLS with a client certificate', [e, ...good, 'get', 'tls-key']],
    ['no client certificate: refused', [e, '--cacert', c.ca.cert, 'get', 'tls-key']],
    ['a client certificate from another CA: refused', [e, '--cacert', c.ca.cert, '--cert', c.otherClient.cert, '--key', c.otherClient.key, 'get', 'tls-key']],
    ['an expired client certificate: refused', [e, '--cacert', c.ca.cert, '--cert', c.expiredClient.cert, '--key', c.expiredClient.key, 'get', 'tls-key']],
    ['--cacert of another CA: the server is not trusted', [e, '--cacert', c.otherCa.cert, '--cert', c.client.cert, '--key', c.client.key, 'get', 'tls-key']],
    ['--insecure-skip-tls-verify with a client certificate', [e, '--insecure-skip-tls-verify', '--cert', c.client.cert, '--key', c.client.key, 'get', 'tls-key']],
    ['plain text to the TLS port: refused', [`--endpoints=${httpsEndpoint.replace('https://', 'http://')}`, 'get', 'tls-key']],
  ];
}

describe.skipIf(missing.length > 0)('TLS on the client port: Flotilla answers as etcd does', () => {
  let dir: string;
  let certs: TestCerts;
  let flotilla: Cluster;
  let etcd: Cluster;
  const tlsFlags = (c: TestCerts) => ['--cert-file', c.server.cert, '--key-file', c.server.key, '--trusted-ca-file', c.ca.cert, '--client-cert-auth'];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flotilla-tls-'));
    certs = makeTestCerts(dir);
    const o = { size: 1, clientTls: true, extraArgs: tlsFlags(certs), healthTls: { ca: certs.ca.cert, cert: certs.client.cert, key: certs.client.key } };
    [flotilla, etcd] = await Promise.all([startCluster('flotilla', o), startCluster('etcd', o)]);
  }, 90_000);
  afterAll(async () => {
    await Promise.all([flotilla?.stop(), etcd?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('etcdctl: the same session gives the same answers (stdout, exit code, last error line)', async () => {
    const timeouts = ['--dial-timeout=1s', '--command-timeout=2s'];
    const steps = (c: Cluster) => session(certs, c.members[0]!.clientUrl);
    // put first (the gets read it), then the rest at once.
    const ordered = async (c: Cluster) => {
      const [put, ...rest] = steps(c);
      const first = await run([ETCDCTL!], [...timeouts, ...put![1]]);
      const others = await Promise.all(rest.map(([, a]) => run([ETCDCTL!], [...timeouts, ...a])));
      return [first, ...others];
    };
    const [ours, theirs] = await Promise.all([ordered(flotilla), ordered(etcd)]);
    const names = steps(etcd).map(([n]) => n);
    for (let i = 0; i < names.length; i++) expect(ours[i], names[i]).toEqual(theirs[i]);
    // And the answers are the expected ones (not the same failure on both sides).
    expect(theirs.map((r) => r.code)).toEqual([0, 0, 1, 1, 1, 1, 0, 1]);
    expect(theirs[1]!.stdout).toBe('tls-key\ntls-value\n');
    expect(theirs[6]!.stdout).toBe('tls-key\ntls-value\n');
  }, 60_000);

  it('our CLI: the same answers, and each refusal says why', async () => {
    // Our CLI takes the command first, then its flags. The put first (the gets read it), then the rest at once.
    const ours = (a: string[]) => {
      const i = a.findIndex((x) => x === 'put' || x === 'get');
      return run([process.execPath, FLOTILLA_BIN], [...a.slice(i), ...a.slice(0, i)]);
    };
    const [put, ...rest] = session(certs, flotilla.members[0]!.clientUrl);
    const results = [await ours(put![1]), ...(await Promise.all(rest.map(([, a]) => ours(a))))];
    expect(results.map((r) => r.code)).toEqual([0, 0, 1, 1, 1, 1, 0, 1]);
    expect(results[0]!.stdout).toBe('OK\n');
    expect(results[1]!.stdout).toBe('tls-key\ntls-value\n');
    expect(results[2]!.error).toMatch(/^Error: cannot connect to 127\.0\.0\.1:\d+: the server closed the connection after the TLS handshake: it requires a client certificate \(--cert and --key\)$/);
    expect(results[3]!.error).toMatch(/does not accept our client certificate/);
    expect(results[4]!.error).toMatch(/our client certificate \(CN=old\) expired on Jan {2}2 00:00:00 2020 GMT/);
    expect(results[5]!.error).toMatch(/the server's certificate is not signed by a trusted CA \(SELF_SIGNED_CERT_IN_CHAIN\): is --cacert the CA that signed it\?/);
    expect(results[6]!.stdout).toBe('tls-key\ntls-value\n');
    expect(results[7]!.error).toMatch(/the endpoint speaks TLS: use https:\/\//);
    // Nothing on stderr for the successes (no Node deprecation noise).
    expect(results[1]!.error).toBe('');
  }, 60_000);

  it('the etcd3 npm client over TLS: works with a client certificate, refused without', async () => {
    for (const c of [flotilla, etcd]) {
      const hosts = c.members[0]!.clientUrl;
      const ok = new Etcd3({ hosts, credentials: { rootCertificate: readFileSync(certs.ca.cert), certChain: readFileSync(certs.client.cert), privateKey: readFileSync(certs.client.key) } });
      const noCert = new Etcd3({ hosts, credentials: { rootCertificate: readFileSync(certs.ca.cert) }, dialTimeout: 1000 });
      try {
        await ok.put(`etcd3-${c.target}`).value('v');
        expect(await ok.get(`etcd3-${c.target}`).string(), c.target).toBe('v');
        await expect(noCert.get('x').string(), c.target).rejects.toThrow();
      } finally {
        ok.close();
        noCert.close();
      }
    }
  }, 60_000);

  it.skipIf(!which('curl'))('the JSON gateway over HTTPS: curl (offering h2 and http/1.1) gets HTTP/1.1 by ALPN and the gateway', async () => {
    const url = `${flotilla.members[0]!.clientUrl}/v3/kv/range`;
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const curl = ['-sS', '--cacert', certs.ca.cert, '--cert', certs.client.cert, '--key', certs.client.key, '-w', '\n%{http_version}'];
    const put = await run(['curl'], [...curl, url.replace('range', 'put'), '-d', JSON.stringify({ key: b64('gw-key'), value: b64('gw-value') })]);
    expect(put.stdout.split('\n')[1]).toBe('1.1');
    const r = await run(['curl'], [...curl, url, '-d', JSON.stringify({ key: b64('gw-key') })]);
    const [body, version] = r.stdout.split('\n');
    expect(version).toBe('1.1');
    expect(JSON.parse(body!).kvs[0].value).toBe(b64('gw-value'));
    // Without a client certificate: no answer at all.
    const refused = await run(['curl'], ['-sS', '--cacert', certs.ca.cert, url, '-d', '{}']);
    expect(refused.code).not.toBe(0);
    expect(refused.stdout).toBe('');
  });
});

describe.skipIf(missing.length > 0)('--auto-tls and --peer-auto-tls: self-signed certificates in the data dir, as etcd', () => {
  let flotilla: Cluster;
  let etcd: Cluster;
  beforeAll(async () => {
    const o = { size: 1, clientTls: true, peerTls: true, extraArgs: ['--auto-tls', '--peer-auto-tls'], healthTls: { insecure: true } };
    [flotilla, etcd] = await Promise.all([startCluster('flotilla', o), startCluster('etcd', o)]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([flotilla?.stop(), etcd?.stop()]);
  });

  it('etcdctl --insecure-skip-tls-verify: the same answers; the certificate is in <data-dir>/fixtures/client; our CLI says it is self-signed', async () => {
    const session = async (c: Cluster) => {
      const e = [`--endpoints=${c.members[0]!.clientUrl}`, '--dial-timeout=1s', '--command-timeout=2s'];
      const skip = ['--insecure-transport=false', '--insecure-skip-tls-verify'];
      return [
        await run([ETCDCTL!], [...e, ...skip, 'put', 'auto', 'tls']),
        await run([ETCDCTL!], [...e, ...skip, 'get', 'auto']),
        // etcdctl 3.4's quirk: --insecure-skip-tls-verify alone keeps TLS off (fails on both).
        await run([ETCDCTL!], [...e, '--insecure-skip-tls-verify', 'get', 'auto']),
        // TLS, verifying the self-signed certificate with the system's CAs: refused.
        await run([ETCDCTL!], [...e, '--insecure-transport=false', 'get', 'auto']),
      ];
    };
    const [ours, theirs] = await Promise.all([session(flotilla), session(etcd)]);
    expect(ours).toEqual(theirs);
    expect(theirs.map((r) => r.code)).toEqual([0, 0, 1, 1]);
    expect(theirs[1]!.stdout).toBe('auto\ntls\n');
    const cert = new X509Certificate(readFileSync(join(flotilla.members[0]!.dataDir, 'fixtures/client/cert.pem')));
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(existsSync(join(flotilla.members[0]!.dataDir, 'fixtures/peer/key.pem'))).toBe(true);
    const cli = await run([process.execPath, FLOTILLA_BIN], ['get', 'auto', `--endpoints=${flotilla.members[0]!.clientUrl}`]);
    expect(cli.error).toMatch(/the server's certificate is not signed by a trusted CA \(DEPTH_ZERO_SELF_SIGNED_CERT\)/);
  }, 60_000);
});
