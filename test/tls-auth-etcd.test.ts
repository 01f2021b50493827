/**
 * TLS and auth together, configured by environment variables, against real etcd 3.4 (issue 12):
 * one Flotilla member set up with FLOTILLA_* variables only and one etcd member with the same
 * settings as ETCD_* variables — https:// client and peer URLs (listen and advertise), client
 * and peer mutual TLS, --peer-cert-allowed-cn, --cipher-suites, JWT tokens signed RS256 with
 * keys made here by openssl — and the same etcdctl session against both:
 * - with --client-cert-auth and auth enabled, the certificate's CN is the user (no --user
 *   needed); a CN that names no user, a password that wins over the CN, a txn with one
 *   forbidden op, admin calls by CN, the gateway refusing a certificate with a CN while auth is
 *   on (etcd 3.4.10+), the advertised https:// URLs in member list and health;
 * - the etcd3 npm client with TLS and auth at once;
 * - the cipher suites each side accepts over TLS 1.2 and 1.3;
 * - who can open the peer port: a member certificate, none, another CA's, another CN;
 * - the client port's certificate files replaced: new connections get the new certificate.
 * With --trusted-ca-file alone (no --client-cert-auth) a certificate is required but its CN is
 * no user, in etcdctl's answers and the gateway's. And `flotilla serve` warning about a plain
 * peer URL beyond loopback before it listens.
 * Skipped with the reason when etcd, etcdctl or openssl are missing.
 */
import { spawn, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issue, makeTestCerts, type KeyPair, type TestCerts } from './support/certs.js';
import { FLOTILLA_BIN, freePort, startCluster, which, type Cluster } from './support/cluster.js';
import { etcdctl } from './support/etcdctl-session.js';
import { waitFor } from './support/members.js';

const ETCDCTL = which('etcdctl');
const ETCD = which('etcd');
const OPENSSL = which('openssl');
const missing = [!ETCDCTL && 'etcdctl', !ETCD && 'etcd', !OPENSSL && 'openssl'].filter(Boolean);
if (missing.length > 0) console.log(`skipping TLS with auth against etcd: ${missing.join(', ')} not installed (apt-get install -y etcd-client etcd-server openssl)`);

/** The one cipher suite both servers are given (the certificates are ECDSA P-256). */
const ALLOWED_SUITE = 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256';

interface Certs extends TestCerts {
  readonly root: KeyPair;
  readonly nobody: KeyPair;
  readonly member: KeyPair;
  readonly intruder: KeyPair;
  readonly jwtPriv: string;
  readonly jwtPub: string;
}

/** Every setting as the variables of one side: FLOTILLA_CERT_FILE or ETCD_CERT_FILE, and so on. */
function environment(prefix: 'FLOTILLA' | 'ETCD', c: Certs): NodeJS.ProcessEnv {
  const v: Record<string, string> = {
    CERT_FILE: c.server.cert,
    KEY_FILE: c.server.key,
    TRUSTED_CA_FILE: c.ca.cert,
    CLIENT_CERT_AUTH: 'true',
    PEER_CERT_FILE: c.member.cert,
    PEER_KEY_FILE: c.member.key,
    PEER_TRUSTED_CA_FILE: c.ca.cert,
    PEER_CLIENT_CERT_AUTH: 'true',
    PEER_CERT_ALLOWED_CN: 'member',
    CIPHER_SUITES: ALLOWED_SUITE,
    AUTH_TOKEN: `jwt,pub-key=${c.jwtPub},priv-key=${c.jwtPriv},sign-method=RS256,ttl=10m`,
  };
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [`${prefix}_${k}`, x]));
}

interface Recorder {
  readonly steps: { name: string; out: string }[];
  /** etcdctl with `who`'s certificate. */
  step(name: string, who: KeyPair, args: string[], input?: string): Promise<void>;
  /** curl POST to the gateway with `who`'s certificate; the body and the HTTP status. */
  gateway(name: string, who: KeyPair, path: string, body: unknown): Promise<void>;
}

/** Steps against one member, each as "exit, stdout, stderr" with its ports and ids replaced. */
function recorder(cluster: Cluster, c: Certs): Recorder {
  const m = cluster.members[0]!;
  const steps: { name: string; out: string }[] = [];
  const clientPort = new URL(m.clientUrl).port;
  const peerPort = new URL(m.peerUrl).port;
  const normalize = (s: string) =>
    s
      .split('\n')
      .filter((l) => !l.startsWith('{"level":'))
      .join('\n')
      .split(`127.0.0.1:${clientPort}`)
      .join('<client>')
      .split(`127.0.0.1:${peerPort}`)
      .join('<peer>')
      .replace(/^[0-9a-f]{1,16}, started/gm, '<id>, started')
      .replace(/took = [\d.]+(ms|µs|s)/g, 'took = <t>');
  const as = (who: KeyPair) => ['--cacert', c.ca.cert, '--cert', who.cert, '--key', who.key];
  return {
    steps,
    async step(name, who, args, input) {
      const r = await etcdctl(ETCDCTL!, [m.clientUrl], [...as(who), ...args], input === undefined ? {} : { input });
      steps.push({ name, out: normalize(`exit ${r.code}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`) });
    },
    async gateway(name, who, path, body) {
      const out = await new Promise<string>((resolve) => {
        const p = spawn('curl', ['-sS', ...as(who), '-w', '\n%{http_code}', '-X', 'POST', `${m.clientUrl}${path}`, '-d', JSON.stringify(body)]);
        let o = '';
        p.stdout.on('data', (d: Buffer) => (o += d.toString()));
        p.on('close', () => resolve(o));
      });
      steps.push({ name, out: normalize(out) });
    },
  };
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** Users root and alice (READWRITE on /app/), auth enabled, with etcdctl presenting root's certificate. */
async function setUpAuth(r: Recorder, c: Certs): Promise<void> {
  await r.step('user add root (auth off)', c.root, ['user', 'add', 'root:rootpw']);
  await r.step('user grant-role root root', c.root, ['user', 'grant-role', 'root', 'root']);
  await r.step('role add app', c.root, ['role', 'add', 'app']);
  await r.step('grant readwrite /app/ --prefix', c.root, ['role', 'grant-permission', 'app', 'readwrite', '/app/', '--prefix']);
  await r.step('user add alice', c.root, ['user', 'add', 'alice:apw']);
  await r.step('user grant-role alice app', c.root, ['user', 'grant-role', 'alice', 'app']);
  await r.step('put outside before auth (CN alice)', c.client, ['put', '/other', 'before']);
  await r.step('auth enable (CN root)', c.root, ['auth', 'enable']);
}

/** The session with --client-cert-auth: the CN is the user. */
async function session(cluster: Cluster, c: Certs): Promise<{ name: string; out: string }[]> {
  const m = cluster.members[0]!;
  const r = recorder(cluster, c);
  const { steps } = r;
  const step = r.step.bind(r);
  await setUpAuth(r, c);
  await step('put inside, CN alice, no --user', c.client, ['put', '/app/x', '1']);
  await step('get inside, CN alice', c.client, ['get', '/app/x']);
  await step('put outside, CN alice: denied', c.client, ['put', '/other', '1']);
  await step('get outside, CN alice: denied', c.client, ['get', '/other']);
  await step('txn with one forbidden op, CN alice: refused whole', c.client, ['txn'], 'value("/app/x") = "1"\n\nput /app/y 2\nput /other 3\n\n\n');
  await step('nothing of the txn was written', c.client, ['get', '/app/', '--prefix']);
  await step('CN of no user', c.nobody, ['get', '/app/x']);
  await step('--user root wins over CN alice', c.client, ['--user', 'root:rootpw', 'put', '/other', '2']);
  await step('--user alice over CN root: denied outside', c.root, ['--user', 'alice:apw', 'get', '/other']);
  await step('wrong password over a good CN', c.client, ['--user', 'alice:wrong', 'get', '/app/x']);
  await step('user list, CN alice: denied', c.client, ['user', 'list']);
  await step('user list, CN root', c.root, ['user', 'list']);
  await step('role get app, CN root', c.root, ['role', 'get', 'app']);
  // etcd 3.4 refuses gateway requests with a CN'd certificate while auth is on (its gateway could not pass the CN on).
  await r.gateway('gateway, CN alice, no token', c.client, '/v3/kv/range', { key: b64('/app/x') });
  await r.gateway('gateway authenticate, CN alice', c.client, '/v3/auth/authenticate', { name: 'alice', password: 'apw' });
  await step('member list shows the https URLs', c.root, ['member', 'list']);
  await step('endpoint health --cluster (advertised https URL)', c.root, ['endpoint', 'health', '--cluster']);
  // The etcd3 npm client with TLS and a password at once.
  const tls = { rootCertificate: readFileSync(c.ca.cert), certChain: readFileSync(c.client.cert), privateKey: readFileSync(c.client.key) };
  const e3 = new Etcd3({ hosts: m.clientUrl, credentials: tls, auth: { username: 'alice', password: 'apw' } });
  const outcome = (p: Promise<unknown>) => p.then((v) => `ok ${JSON.stringify(v)}`, (e: Error) => `error ${e.message}`);
  try {
    steps.push({ name: 'etcd3 (TLS and auth): put inside', out: (await outcome(e3.put('/app/e3').value('v').then(() => 'put'))) });
    steps.push({ name: 'etcd3 (TLS and auth): get inside', out: await outcome(e3.get('/app/e3').string()) });
    steps.push({ name: 'etcd3 (TLS and auth): put outside', out: await outcome(e3.put('/other').value('v').then(() => 'put')) });
  } finally {
    e3.close();
  }
  const wrong = new Etcd3({ hosts: m.clientUrl, credentials: tls, auth: { username: 'alice', password: 'nope' } });
  try {
    steps.push({ name: 'etcd3 (TLS and auth): wrong password', out: await outcome(wrong.get('/app/e3').string()) });
  } finally {
    wrong.close();
  }
  await step('auth disable (CN root)', c.root, ['auth', 'disable']);
  await step('CN of no user after auth disable', c.nobody, ['get', '/other']);
  return steps;
}

/** One TLS connection to host:port with `o`; "open <protocol> <cipher>" when the server keeps it after the handshake, else "refused". */
function probe(port: number, o: { ca: string; cert?: KeyPair; maxVersion?: 'TLSv1.2' | 'TLSv1.3'; minVersion?: 'TLSv1.2' | 'TLSv1.3'; ciphers?: string }, holdMs = 1000): Promise<string> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (v: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const s: TLSSocket = tlsConnect({
      host: '127.0.0.1',
      port,
      ca: readFileSync(o.ca),
      ...(o.cert ? { cert: readFileSync(o.cert.cert), key: readFileSync(o.cert.key) } : {}),
      ...(o.maxVersion ? { maxVersion: o.maxVersion } : {}),
      ...(o.minVersion ? { minVersion: o.minVersion } : {}),
      ...(o.ciphers ? { ciphers: o.ciphers } : {}),
    });
    const timer = setTimeout(() => done('no answer'), 10_000);
    s.on('error', () => done('refused'));
    s.on('close', () => done('refused'));
    // TLS 1.3: a server refuses the client's certificate after the client thinks the handshake is done.
    s.once('secureConnect', () => setTimeout(() => done(`open ${s.getProtocol()}${s.getProtocol() === 'TLSv1.2' ? ` ${s.getCipher().name}` : ''}`), holdMs));
  });
}

describe.skipIf(missing.length > 0)('TLS and auth from environment variables: Flotilla answers as etcd 3.4', () => {
  let dir: string;
  let certs: Certs;
  let flotilla: Cluster;
  let etcd: Cluster;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flotilla-tls-auth-'));
    const base = makeTestCerts(dir);
    const jwtPriv = join(dir, 'jwt.key');
    const jwtPub = join(dir, 'jwt.pub');
    expect(spawnSync(OPENSSL!, ['genrsa', '-out', jwtPriv, '2048']).status).toBe(0);
    expect(spawnSync(OPENSSL!, ['rsa', '-in', jwtPriv, '-pubout', '-out', jwtPub]).status).toBe(0);
    certs = {
      ...base,
      root: issue(dir, base.ca, 'root', { cn: 'root', sans: [] }),
      nobody: issue(dir, base.ca, 'nobody', { cn: 'nobody', sans: [] }),
      member: issue(dir, base.ca, 'member', { cn: 'member' }),
      intruder: issue(dir, base.ca, 'intruder', { cn: 'intruder' }),
      jwtPriv,
      jwtPub,
    };
    const o = { size: 1, clientTls: true, peerTls: true, healthTls: { ca: certs.ca.cert, cert: certs.root.cert, key: certs.root.key } };
    [flotilla, etcd] = await Promise.all([startCluster('flotilla', { ...o, env: environment('FLOTILLA', certs) }), startCluster('etcd', { ...o, env: environment('ETCD', certs) })]);
  }, 90_000);
  afterAll(async () => {
    await Promise.all([flotilla?.stop(), etcd?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('etcdctl and the etcd3 client: the same session, the same answers; the CN is the user', async () => {
    const [ours, theirs] = await Promise.all([session(flotilla, certs), session(etcd, certs)]);
    expect(ours.map((s) => s.name)).toEqual(theirs.map((s) => s.name));
    for (let i = 0; i < theirs.length; i++) expect(ours[i]!.out, `step "${theirs[i]!.name}"`).toBe(theirs[i]!.out);
    // What the session is about, so that two sides broken alike fail it.
    const out = (name: string) => ours.find((s) => s.name === name)!.out;
    expect(out('put inside, CN alice, no --user')).toMatch(/^exit 0\n--- stdout\nOK\n/);
    expect(out('put outside, CN alice: denied')).toContain('Error: etcdserver: permission denied');
    expect(out('txn with one forbidden op, CN alice: refused whole')).toContain('Error: etcdserver: permission denied');
    expect(out('nothing of the txn was written')).not.toContain('/app/y');
    expect(out('--user root wins over CN alice')).toMatch(/^exit 0/);
    expect(out('--user alice over CN root: denied outside')).toContain('permission denied');
    expect(out('wrong password over a good CN')).toContain('authentication failed, invalid user ID or password');
    expect(out('user list, CN root')).toMatch(/^exit 0\n--- stdout\nalice\nroot\n/);
    expect(out('member list shows the https URLs')).toContain('https://<peer>, https://<client>');
    expect(out('gateway, CN alice, no token')).toBe('CommonName of client sending a request against gateway will be ignored and not used as expected\n\n400');
    expect(out('etcd3 (TLS and auth): get inside')).toBe('ok "v"');
    expect(out('etcd3 (TLS and auth): put outside')).toMatch(/permission denied/);
    expect(out('CN of no user after auth disable')).toMatch(/^exit 0\n--- stdout\n\/other\n2\n/);
    // The member configured by variables alone serves TLS on a loopback peer URL: no plain-peer warning.
    expect(flotilla.members[0]!.output).not.toMatch(/beyond loopback/);
  }, 120_000);

  it('--cipher-suites: the same suites accepted over TLS 1.2, TLS 1.3 untouched (as Go)', async () => {
    const cases = (port: number) => {
      const c = { ca: certs.ca.cert, cert: certs.client };
      return Promise.all([
        probe(port, { ...c, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' }),
        probe(port, { ...c, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384' }),
        probe(port, { ...c, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-CHACHA20-POLY1305' }),
        probe(port, { ...c, minVersion: 'TLSv1.3' }),
      ]);
    };
    const port = (cl: Cluster) => Number(new URL(cl.members[0]!.clientUrl).port);
    const [ours, theirs] = await Promise.all([cases(port(flotilla)), cases(port(etcd))]);
    expect(ours).toEqual(theirs);
    expect(theirs).toEqual(['open TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256', 'refused', 'refused', 'open TLSv1.3']);
  }, 60_000);

  it('the peer port: a member certificate gets in; none, another CA\'s, another CN than --peer-cert-allowed-cn, a suite not in --cipher-suites do not (and Flotilla logs why)', async () => {
    const cases = (port: number) =>
      Promise.all([
        probe(port, { ca: certs.ca.cert, cert: certs.member }),
        probe(port, { ca: certs.ca.cert }),
        probe(port, { ca: certs.ca.cert, cert: certs.otherClient }),
        probe(port, { ca: certs.ca.cert, cert: certs.intruder }),
        // --cipher-suites holds on the peer port too.
        probe(port, { ca: certs.ca.cert, cert: certs.member, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' }),
        probe(port, { ca: certs.ca.cert, cert: certs.member, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384' }),
      ]);
    const port = (cl: Cluster) => Number(new URL(cl.members[0]!.peerUrl).port);
    const [ours, theirs] = await Promise.all([cases(port(flotilla)), cases(port(etcd))]);
    expect(ours).toEqual(theirs);
    expect(theirs.map((r) => r.split(' ')[0])).toEqual(['open', 'refused', 'refused', 'refused', 'open', 'refused']);
    const log = flotilla.members[0]!.output;
    expect(log).toMatch(/certificate is not trusted \(no certificate\)/);
    expect(log).toMatch(/certificate is not trusted \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/);
    expect(log).toMatch(/CN "intruder" is not the allowed CN "member"/);
  }, 60_000);

  // Last: it replaces the client port's certificate files both members use.
  it('the client port certificate replaced on disk: both serve the new one to new connections, without a restart', async () => {
    const serial = (port: number) =>
      new Promise<string>((resolve) => {
        const s = tlsConnect({ host: '127.0.0.1', port, ca: readFileSync(certs.ca.cert), cert: readFileSync(certs.client.cert), key: readFileSync(certs.client.key) }, () => {
          resolve(s.getPeerCertificate().serialNumber);
          s.destroy();
        });
        s.on('error', () => resolve(''));
      });
    const ports = [flotilla, etcd].map((cl) => Number(new URL(cl.members[0]!.clientUrl).port));
    const old = new X509Certificate(readFileSync(certs.server.cert)).serialNumber;
    expect(await Promise.all(ports.map(serial))).toEqual([old, old]);
    // The new pair, each file by an atomic rename (key first).
    const fresh = issue(dir, certs.ca, 'server-rotated', { cn: 'flotilla-server' });
    renameSync(fresh.key, certs.server.key);
    renameSync(fresh.cert, certs.server.cert);
    const now = new X509Certificate(readFileSync(certs.server.cert)).serialNumber;
    expect(now).not.toBe(old);
    const start = Date.now();
    for (;;) {
      const got = await Promise.all(ports.map(serial));
      if (got.every((x) => x === now)) break;
      if (Date.now() - start > 20_000) throw new Error(`not rotated within 20 s: ${got.join(', ')} (want ${now})`);
      await new Promise((r) => setTimeout(r, 200));
    }
    // The member logs the reload as it serves the first new connection: the line can reach this
    // process after that connection's handshake did, so it is waited for, not read at once.
    await waitFor('the member to log the reload', async () => (/client TLS: reloaded/.test(flotilla.members[0]!.output) ? true : undefined), 20_000);
    // And etcdctl, on new connections, still gets its answers from both.
    const [a, b] = await Promise.all([flotilla, etcd].map((cl) => etcdctl(ETCDCTL!, [cl.members[0]!.clientUrl], ['--cacert', certs.ca.cert, '--cert', certs.client.cert, '--key', certs.client.key, 'get', '/other'])));
    expect(a).toEqual(b);
    expect(b!.stdout).toBe('/other\n2\n');
  }, 60_000);
});

describe.skipIf(missing.length > 0)('--trusted-ca-file without --client-cert-auth: a certificate is required, its CN is no user (as etcd 3.4)', () => {
  let dir: string;
  let certs: Certs;
  let flotilla: Cluster;
  let etcd: Cluster;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flotilla-tls-ca-only-'));
    const base = makeTestCerts(dir);
    // (No JWT keys or peer certificates here: simple tokens, plain peers.)
    certs = { ...base, root: issue(dir, base.ca, 'root', { cn: 'root', sans: [] }), nobody: base.otherClient, member: base.server, intruder: base.otherClient, jwtPriv: '', jwtPub: '' };
    const o = { size: 1, clientTls: true, extraArgs: ['--cert-file', certs.server.cert, '--key-file', certs.server.key, '--trusted-ca-file', certs.ca.cert], healthTls: { ca: certs.ca.cert, cert: certs.root.cert, key: certs.root.key } };
    [flotilla, etcd] = await Promise.all([startCluster('flotilla', o), startCluster('etcd', o)]);
  }, 90_000);
  afterAll(async () => {
    await Promise.all([flotilla?.stop(), etcd?.stop()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('etcdctl and the gateway: the same answers', async () => {
    const run = async (cl: Cluster) => {
      const r = recorder(cl, certs);
      await setUpAuth(r, certs);
      await r.step('get inside, CN alice, no --user', certs.client, ['get', '/app/x']);
      await r.step('put inside, CN alice, --user alice', certs.client, ['--user', 'alice:apw', 'put', '/app/x', '1']);
      await r.gateway('gateway, CN alice, no token', certs.client, '/v3/kv/range', { key: b64('/app/x') });
      await r.step('auth disable', certs.root, ['--user', 'root:rootpw', 'auth', 'disable']);
      return r.steps;
    };
    const [ours, theirs] = await Promise.all([run(flotilla), run(etcd)]);
    expect(ours.map((s) => s.name)).toEqual(theirs.map((s) => s.name));
    for (let i = 0; i < theirs.length; i++) expect(ours[i]!.out, `step "${theirs[i]!.name}"`).toBe(theirs[i]!.out);
    const out = (name: string) => ours.find((s) => s.name === name)!.out;
    expect(out('get inside, CN alice, no --user')).toContain('Error: etcdserver: user name is empty');
    expect(out('put inside, CN alice, --user alice')).toMatch(/^exit 0\n--- stdout\nOK\n/);
    expect(out('gateway, CN alice, no token')).toContain('etcdserver: user name is empty');
  }, 90_000);
});

describe.skipIf(!OPENSSL)('flotilla serve: a plain peer URL beyond loopback', () => {
  /**
   * The member is pointed at 192.0.2.1 (TEST-NET-1, never a local address): the warning must be
   * logged before anything listens, and the start then fails, so no port beyond loopback is
   * ever opened by the test. The same with https:// (auto TLS) logs no warning.
   */
  const serve = async (scheme: 'http' | 'https'): Promise<{ code: number | null; output: string }> => {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-plain-peer-'));
    const peer = `${scheme}://192.0.2.1:${await freePort()}`;
    const args = [FLOTILLA_BIN, 'serve', '--name', 'w', '--data-dir', join(dir, 'w'), '--listen-client-urls', `http://127.0.0.1:${await freePort()}`, '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `w=${peer}`, ...(scheme === 'https' ? ['--peer-auto-tls'] : [])];
    try {
      return await new Promise((resolve) => {
        const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
        let output = '';
        p.stdout.on('data', (d: Buffer) => (output += d.toString()));
        p.stderr.on('data', (d: Buffer) => (output += d.toString()));
        const timer = setTimeout(() => p.kill('SIGKILL'), 30_000);
        p.on('close', (code) => {
          clearTimeout(timer);
          resolve({ code, output });
        });
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it('is warned about before the member listens; an https:// one is not', async () => {
    const plain = await serve('http');
    expect(plain.output).toMatch(/the peer URL http:\/\/192\.0\.2\.1:\d+ listens beyond loopback without TLS: anyone who can reach it can act as a member/);
    // Then the address cannot be bound here: the member stops with its reason.
    expect(plain.output).toMatch(/fatal: cannot start: .*EADDRNOTAVAIL/);
    expect(plain.code).toBe(2);
    expect(plain.output.indexOf('beyond loopback')).toBeLessThan(plain.output.indexOf('fatal: cannot start'));
    const tls = await serve('https');
    expect(tls.output).toMatch(/fatal: cannot start: .*EADDRNOTAVAIL/);
    expect(tls.output).not.toMatch(/beyond loopback/);
  }, 60_000);
});
