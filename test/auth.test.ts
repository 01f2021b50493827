/**
 * Auth through server members (in this process: support/in-process.ts) and our client: writes through each member (followers
 * forward them; the identity travels in the entry and the leader's apply checks it like every
 * member's), simple tokens good on every member and gone after --auth-token-ttl (the client
 * authenticates again by itself), Lock and Maintenance checked, LeaseRevoke checked on the
 * attached keys; JWT tokens (ES256 keys made by openssl here) signed by one member and verified
 * by another, refreshed after an auth change; a bad --auth-token stops `flotilla serve` (a real
 * process).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlotillaClient } from '../src/client/index.js';
import { AUTH_TOKEN_BYTES_MAX } from '../src/server/auth-tokens.js';
import { FLOTILLA_BIN, which } from './support/cluster.js';
import { startInProcessCluster, type InProcessCluster } from './support/in-process.js';

const TTL_S = 2;

async function setUp(endpoints: string[]): Promise<void> {
  const admin = new FlotillaClient({ endpoints });
  try {
    await admin.userAdd('root', 'rootpw');
    await admin.userGrantRole('root', 'root');
    await admin.roleAdd('app');
    await admin.roleGrantPermission('app', 'READWRITE', '/app/', '/app0');
    await admin.userAdd('alice', 'apw');
    await admin.userGrantRole('alice', 'app');
    await admin.authEnable();
  } finally {
    await admin.close();
  }
}

const post = (endpoint: string, path: string, body: unknown, token?: string) =>
  fetch(`http://${endpoint}${path}`, { method: 'POST', body: JSON.stringify(body), headers: token ? { Authorization: token } : {} }).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> }));
const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('auth with simple tokens on a 3-member cluster', () => {
  let cluster: InProcessCluster;
  beforeAll(async () => {
    cluster = await startInProcessCluster({ settings: { authTokenTtl: TTL_S } });
    await setUp(cluster.endpoints);
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it('checks writes sent to every member (followers forward them with the identity)', async () => {
    for (const [i, ep] of cluster.endpoints.entries()) {
      const alice = new FlotillaClient({ endpoints: [ep], auth: { user: 'alice', password: 'apw' } });
      try {
        await alice.put(`/app/${i}`, 'v');
        expect((await alice.get(`/app/${i}`)).kvs[0]?.valueString()).toBe('v');
        await expect(alice.put('/other', 'v')).rejects.toMatchObject({ code: 'PERMISSION_DENIED', details: 'etcdserver: permission denied' });
        await expect(alice.txn({ compare: [], success: [{ put: { key: '/app/t', value: 'x' } }, { put: { key: '/other', value: 'x' } }], failure: [] })).rejects.toMatchObject({ details: 'etcdserver: permission denied' });
      } finally {
        await alice.close();
      }
    }
    const root = new FlotillaClient({ endpoints: cluster.endpoints, auth: { user: 'root', password: 'rootpw' } });
    try {
      expect((await root.get('/app/t')).kvs).toEqual([]);
      expect((await root.get('/other')).kvs).toEqual([]);
    } finally {
      await root.close();
    }
  }, 60_000);

  it('a simple token is good on every member, expires after the TTL, and the client authenticates again', async () => {
    const [a, b, c] = cluster.endpoints as [string, string, string];
    const auth = await post(a, '/v3/auth/authenticate', { name: 'alice', password: 'apw' });
    expect(auth.status).toBe(200);
    const token = String(auth.body.token);
    expect(token).toMatch(/^[A-Za-z]{16}\.\d+$/);
    for (const ep of [a, b, c]) expect((await post(ep, '/v3/kv/range', { key: b64('/app/0') }, token)).status).toBe(200);
    // A token longer than AUTH_TOKEN_BYTES_MAX is not looked at.
    expect(await post(a, '/v3/kv/range', { key: b64('/app/0') }, `${token}${'x'.repeat(AUTH_TOKEN_BYTES_MAX)}`)).toMatchObject({ status: 401, body: { error: 'etcdserver: invalid auth token' } });
    const alice = new FlotillaClient({ endpoints: [b], auth: { user: 'alice', password: 'apw' } });
    try {
      await alice.get('/app/0');
      // Unused for longer than the TTL (the member drops expired tokens every second).
      await new Promise((r) => setTimeout(r, TTL_S * 1000 + 1500));
      expect(await post(a, '/v3/kv/range', { key: b64('/app/0') }, token)).toMatchObject({ status: 401, body: { error: 'etcdserver: invalid auth token' } });
      expect((await alice.get('/app/0')).kvs[0]?.valueString()).toBe('v');
    } finally {
      await alice.close();
    }
  }, 30_000);

  it('checks Lock, Maintenance and LeaseRevoke', async () => {
    const root = new FlotillaClient({ endpoints: cluster.endpoints, auth: { user: 'root', password: 'rootpw' } });
    const alice = new FlotillaClient({ endpoints: cluster.endpoints, auth: { user: 'alice', password: 'apw' } });
    try {
      const l = await alice.lock('/app/lock', { ttl: 10 });
      await alice.unlock(l.key);
      await expect(alice.lock('elsewhere', { ttl: 10 })).rejects.toMatchObject({ details: 'etcdserver: permission denied' });
      // etcd 3.4's maintenance calls answer with the auth store's own error (code Unknown).
      await expect(alice.hashKv(cluster.endpoints[0]!)).rejects.toMatchObject({ code: 'UNKNOWN', details: 'auth: permission denied' });
      expect((await root.hashKv(cluster.endpoints[0]!)).hash).toBeGreaterThanOrEqual(0);
      await expect(alice.userList()).rejects.toMatchObject({ details: 'etcdserver: permission denied' });
      const lease = await root.leaseGrant(30);
      await root.put('/other', 'x', { lease: lease.id });
      await expect(alice.leaseRevoke(lease.id)).rejects.toMatchObject({ details: 'etcdserver: permission denied' });
      await root.leaseRevoke(lease.id);
      // A stream with credentials the cluster refuses ends with that refusal (no endless retries).
      const wrong = new FlotillaClient({ endpoints: cluster.endpoints, auth: { user: 'alice', password: 'wrong' } });
      try {
        const w = wrong.watch('/app/', { prefix: true }, () => undefined);
        expect(await w.done).toMatchObject({ details: 'etcdserver: authentication failed, invalid user ID or password' });
      } finally {
        await wrong.close();
      }
    } finally {
      await Promise.all([root.close(), alice.close()]);
    }
  }, 60_000);
});

const OPENSSL = which('openssl');

describe.skipIf(!OPENSSL)('auth with JWT tokens', () => {
  let cluster: InProcessCluster;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flotilla-jwt-'));
    const priv = join(dir, 'jwt.key');
    const pub = join(dir, 'jwt.pub');
    expect(spawnSync(OPENSSL!, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', priv]).status).toBe(0);
    expect(spawnSync(OPENSSL!, ['ec', '-in', priv, '-pubout', '-out', pub]).status).toBe(0);
    cluster = await startInProcessCluster({ settings: { authToken: `jwt,pub-key=${pub},priv-key=${priv},sign-method=ES256,ttl=10m` } });
    await setUp(cluster.endpoints);
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('signs on one member, verifies on another, and the client refreshes after an auth change', async () => {
    const [a, b] = cluster.endpoints as [string, string];
    const auth = await post(a, '/v3/auth/authenticate', { name: 'alice', password: 'apw' });
    const token = String(auth.body.token);
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
    expect(claims).toMatchObject({ username: 'alice', revision: expect.any(Number) });
    expect(claims.exp).toEqual(expect.any(Number));
    expect(await post(b, '/v3/kv/put', { key: b64('/app/j'), value: b64('1') }, token)).toMatchObject({ status: 200 });
    // A forged token (claims changed, signature kept) is refused.
    const forged = [token.split('.')[0], Buffer.from(JSON.stringify({ ...claims, username: 'root' })).toString('base64url'), token.split('.')[2]].join('.');
    expect(await post(b, '/v3/kv/range', { key: b64('/other') }, forged)).toMatchObject({ status: 401, body: { error: 'etcdserver: invalid auth token' } });

    const alice = new FlotillaClient({ endpoints: [b], auth: { user: 'alice', password: 'apw' } });
    const root = new FlotillaClient({ endpoints: [a], auth: { user: 'root', password: 'rootpw' } });
    try {
      await alice.put('/app/j', '2');
      // Any auth change makes older JWTs old; the client authenticates again and repeats the call.
      await root.roleAdd('another');
      expect(await post(b, '/v3/kv/range', { key: b64('/app/j') }, token)).toMatchObject({ status: 400, body: { error: 'etcdserver: revision of auth store is old' } });
      await alice.put('/app/j', '3');
      expect((await alice.get('/app/j')).kvs[0]?.valueString()).toBe('3');
    } finally {
      await Promise.all([alice.close(), root.close()]);
    }
  }, 30_000);

  it('a bad --auth-token stops flotilla serve with exit code 2', () => {
    const keyFile = join(dir, 'not-a-key');
    writeFileSync(keyFile, 'garbage');
    for (const spec of ['jwt,sign-method=XX256,priv-key=' + keyFile, 'jwt,sign-method=RS256', 'bogus', `jwt,sign-method=ES256,priv-key=${keyFile}`]) {
      const r = spawnSync(process.execPath, [FLOTILLA_BIN, 'serve', '--data-dir', join(dir, 'd'), '--listen-client-urls', 'http://127.0.0.1:0', '--auth-token', spec], { encoding: 'utf8', timeout: 20_000 });
      expect(r.status, `${spec}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(/--auth-token/);
    }
  }, 60_000);
});
