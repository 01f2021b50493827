/**
 * Auth as etcd has it: one etcdctl 3.4 session (users, roles, a prefix permission, auth enable,
 * refused without credentials, allowed with --user, denied outside the prefix, a txn with one
 * forbidden op refused whole, a watch outside the permission cancelled, lock and elect inside
 * and outside the permission, a lease revoke refused for a key the lease holds, admin-only calls,
 * revocations, auth disable) against a Flotilla cluster and against real etcd, transcripts
 * compared step by step. Then the etcd3 npm client with auth against Flotilla, and the JSON
 * gateway with an Authorization header. Skipped with the reason when etcd/etcdctl are absent.
 */
import { Etcd3 } from 'etcd3';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, which, type Cluster } from './support/cluster.js';
import { Background, etcdctl, Normalizer, type Step } from './support/etcdctl-session.js';

const ETCDCTL = which('etcdctl');
const ETCD = which('etcd');
const missing = [!ETCDCTL && 'etcdctl', !ETCD && 'etcd'].filter(Boolean);
if (missing.length > 0) console.log(`skipping the etcdctl auth comparison: ${missing.join(' and ')} not installed (apt-get install -y etcd-client etcd-server)`);

async function authSession(cluster: Cluster): Promise<Step[]> {
  const steps: Step[] = [];
  const n = new Normalizer(cluster);
  /** Lease ids (hex) as they appear in output, replaced by placeholders in order of appearance. */
  let lease = '';
  const step = async (name: string, args: string[], input?: string): Promise<void> => {
    const r = await etcdctl(ETCDCTL!, cluster.endpoints, args, input === undefined ? {} : { input });
    lease ||= /lease ([0-9a-f]+) granted/.exec(r.stdout)?.[1] ?? '';
    const out = n.text(`exit ${r.code}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`);
    steps.push({ name, out: lease ? out.split(lease).join(n.lease(lease)) : out });
  };
  const alice = ['--user', 'alice:apw'];
  const root = ['--user', 'root:rootpw'];

  await step('user add root', ['user', 'add', 'root:rootpw']);
  await step('user add alice', ['user', 'add', 'alice:apw']);
  await step('user add alice again', ['user', 'add', 'alice:x']);
  await step('role add app', ['role', 'add', 'app']);
  await step('grant readwrite /app/ --prefix', ['role', 'grant-permission', 'app', 'readwrite', '/app/', '--prefix']);
  await step('grant read /cfg', ['role', 'grant-permission', 'app', 'read', '/cfg']);
  await step('grant write --from-key', ['role', 'grant-permission', 'app', 'write', '/zz', '--from-key']);
  await step('role get app', ['role', 'get', 'app']);
  await step('grant to a missing role', ['user', 'grant-role', 'alice', 'nope']);
  await step('user grant-role', ['user', 'grant-role', 'alice', 'app']);
  await step('user get alice', ['user', 'get', 'alice']);
  await step('put before auth', ['put', '/app/x', 'one']);
  await step('auth enable', ['auth', 'enable']);
  await step('put without credentials', ['put', '/app/x', '1']);
  await step('get without credentials', ['get', '/app/x']);
  await step('put with --user', [...alice, 'put', '/app/x', '1']);
  await step('get with --user and --password', ['--user', 'alice', '--password', 'apw', 'get', '/app/x']);
  await step('get --prefix inside', [...alice, 'get', '/app/', '--prefix']);
  await step('put outside the prefix', [...alice, 'put', '/other', '1']);
  await step('get outside the prefix', [...alice, 'get', '/other']);
  await step('get a range wider than the prefix', [...alice, 'get', '/app', '--prefix']);
  await step('put on read-only /cfg', [...alice, 'put', '/cfg', 'v']);
  await step('put from-key permission', [...alice, 'put', '/zzz', 'v']);
  await step('wrong password', ['--user', 'alice:wrong', 'get', '/app/x']);
  await step('unknown user', ['--user', 'bob:x', 'get', '/app/x']);
  await step('txn with one forbidden op', [...alice, 'txn'], 'value("/app/x") = "1"\n\nput /app/y 2\nput /other 3\n\nput /app/z 4\n\n');
  await step('txn with a forbidden compare', [...alice, 'txn'], 'value("/other") = "1"\n\nput /app/y 2\n\n\n');
  await step('nothing of the txns was written', [...alice, 'get', '/app/', '--prefix']);
  await step('watch outside the permission', [...alice, 'watch', '/other']);
  // Lock and Election check the caller's permission on their prefix (etcd's v3lock/v3election
  // act through the KV API with the caller's credentials).
  await step('lock inside the prefix, with a command', [...alice, 'lock', '/app/l', 'echo', 'held']);
  await step('lock outside the prefix', [...alice, 'lock', '/other-lock', 'echo', 'held']);
  await step('lock without credentials', ['lock', '/app/l', 'echo', 'held']);
  await step('elect outside the prefix', [...alice, 'elect', '/other-elect', 'p1']);
  const elected = new Background(ETCDCTL!, cluster.endpoints, [...alice, 'elect', '/app/e', 'p1']);
  const won = await elected.waitFor(/p1\n/);
  await elected.stop('SIGINT');
  steps.push({ name: 'elect inside the prefix', out: `elected: ${won}\n${elected.stdout.replace(/\/app\/e\/[0-9a-f]+/g, '/app/e/<lease>')}` });
  // A lease holding a key outside alice's permission: she may not revoke it (etcd checks every attached key).
  await step('lease grant as root', [...root, 'lease', 'grant', '100']);
  await step('put /other-leased with the lease as root', [...root, 'put', '/other-leased', 'v', `--lease=${lease}`]);
  await step('lease revoke by alice', [...alice, 'lease', 'revoke', lease]);
  await step('lease timetolive --keys by alice', [...alice, 'lease', 'timetolive', lease, '--keys']);
  await step('lease revoke by root', [...root, 'lease', 'revoke', lease]);
  await step('del --prefix inside', [...alice, 'del', '/app/x']);
  await step('user list as alice', [...alice, 'user', 'list']);
  await step('user get self as alice', [...alice, 'user', 'get', 'alice']);
  await step('role get own role as alice', [...alice, 'role', 'get', 'app']);
  await step('role add as alice', [...alice, 'role', 'add', 'x']);
  await step('snapshot save as alice', [...alice, 'snapshot', 'save', join(cluster.dir, 'denied.db')]);
  await step('snapshot save without credentials', ['snapshot', 'save', join(cluster.dir, 'denied.db')]);
  await step('watch everything as alice', [...alice, 'watch', '--prefix', '']);
  await step('defrag as alice', [...alice, 'defrag']);
  await step('endpoint hashkv as alice', [...alice, 'endpoint', 'hashkv']);
  await step('endpoint hashkv without credentials', ['endpoint', 'hashkv']);
  await step('alarm list as alice', [...alice, 'alarm', 'list']);
  await step('member remove as alice', [...alice, 'member', 'remove', '1234']);
  await step('member remove without credentials', ['member', 'remove', '1234']);
  await step('compaction as alice', [...alice, 'compaction', '1']);
  await step('user list as root', [...root, 'user', 'list']);
  await step('role list as root', [...root, 'role', 'list']);
  await step('root reads anything', [...root, 'get', '/app/x', '--prefix']);
  await step('delete root while enabled', [...root, 'user', 'delete', 'root']);
  await step('revoke root role from root', [...root, 'user', 'revoke-role', 'root', 'root']);
  await step('revoke-permission', [...root, 'role', 'revoke-permission', 'app', '/app/', '--prefix']);
  await step('revoke a permission not granted', [...root, 'role', 'revoke-permission', 'app', '/nothing']);
  await step('denied after revoke', [...alice, 'get', '/app/x']);
  await step('user passwd', [...root, 'user', 'passwd', 'alice', '--interactive=false'], 'newpw\n');
  await step('old password refused', [...alice, 'get', '/cfg']);
  await step('new password', ['--user', 'alice:newpw', 'get', '/cfg']);
  await step('user revoke-role', [...root, 'user', 'revoke-role', 'alice', 'app']);
  await step('revoke a role not granted', [...root, 'user', 'revoke-role', 'alice', 'app']);
  await step('role delete', [...root, 'role', 'delete', 'app']);
  await step('user delete', [...root, 'user', 'delete', 'alice']);
  await step('auth disable', [...root, 'auth', 'disable']);
  await step('get after disable', ['get', '/app/', '--prefix']);
  return steps;
}

describe.skipIf(missing.length > 0)('auth: etcdctl answers as with etcd', () => {
  let flotilla: Cluster;
  let etcd: Cluster;
  let ours: Step[] = [];
  let theirs: Step[] = [];
  beforeAll(async () => {
    [flotilla, etcd] = await Promise.all([startCluster('flotilla'), startCluster('etcd')]);
    [ours, theirs] = await Promise.all([authSession(flotilla), authSession(etcd)]);
  }, 240_000);
  afterAll(async () => {
    await Promise.all([flotilla?.stop(), etcd?.stop()]);
  });

  it('the same auth session gives the same transcript, step by step', () => {
    expect(ours.map((s) => s.name)).toEqual(theirs.map((s) => s.name));
    for (let i = 0; i < theirs.length; i++) expect(ours[i]!.out, `step "${theirs[i]!.name}"`).toBe(theirs[i]!.out);
    // What the session is about, so that two clusters equally broken (nothing refused) fail it.
    const out = (name: string) => ours.find((s) => s.name === name)?.out ?? '';
    expect(out('put without credentials')).toContain('Error: etcdserver: user name is empty');
    expect(out('put with --user')).toMatch(/^exit 0\n--- stdout\nOK/);
    expect(out('put outside the prefix')).toContain('Error: etcdserver: permission denied');
    expect(out('txn with one forbidden op')).toContain('Error: etcdserver: permission denied');
    expect(out('nothing of the txns was written')).not.toContain('/app/y');
    expect(out('watch outside the permission')).toContain('permission denied');
    expect(out('lock inside the prefix, with a command')).toMatch(/^exit 0\n--- stdout\nheld\n/);
    expect(out('lock outside the prefix')).toContain('permission denied');
    expect(out('elect outside the prefix')).toContain('permission denied');
    expect(out('elect inside the prefix')).toMatch(/^elected: true\n\/app\/e\/<lease>\np1\n/);
    expect(out('lease revoke by alice')).toContain('permission denied');
    expect(out('lease revoke by root')).toMatch(/^exit 0/);
    expect(out('wrong password')).toContain('authentication failed, invalid user ID or password');
    expect(out('get after disable')).toMatch(/^exit 0/);
  });

  it('the etcd3 npm client and the JSON gateway work with auth on Flotilla', async () => {
    // The session left auth off, with root (password rootpw, root role) in place.
    const admin = new Etcd3({ hosts: flotilla.endpoints.map((e) => `http://${e}`) });
    try {
      const role = await admin.role('svc').create();
      await role.grant({ permission: 'Readwrite', range: admin.range({ prefix: 'svc/' }) });
      await (await admin.user('svc').create('svcpw')).addRole('svc');
      await admin.auth.authEnable();
    } finally {
      admin.close();
    }
    const svc = new Etcd3({ hosts: flotilla.endpoints.map((e) => `http://${e}`), auth: { username: 'svc', password: 'svcpw' } });
    const anon = new Etcd3({ hosts: flotilla.endpoints.map((e) => `http://${e}`) });
    try {
      await svc.put('svc/a').value('1');
      expect(await svc.get('svc/a').string()).toBe('1');
      await expect(svc.put('elsewhere').value('1')).rejects.toThrow(/permission denied/);
      await expect(anon.get('svc/a').string()).rejects.toThrow(/user name is empty/);
      // The gateway: authenticate, then the token in the Authorization header.
      const url = `http://${flotilla.endpoints[0]}`;
      const post = (path: string, body: unknown, token?: string) =>
        fetch(`${url}${path}`, { method: 'POST', body: JSON.stringify(body), headers: token ? { Authorization: token } : {} }).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> }));
      const auth = await post('/v3/auth/authenticate', { name: 'svc', password: 'svcpw' });
      expect(auth.status).toBe(200);
      const token = String(auth.body.token);
      const key = Buffer.from('svc/a').toString('base64');
      const got = await post('/v3/kv/range', { key }, token);
      expect(got.status).toBe(200);
      expect((got.body.kvs as { value: string }[])[0]!.value).toBe(Buffer.from('1').toString('base64'));
      const denied = await post('/v3/kv/range', { key: Buffer.from('elsewhere').toString('base64') }, token);
      expect(denied).toMatchObject({ status: 403, body: { error: 'etcdserver: permission denied', code: 7 } });
      const badToken = await post('/v3/kv/range', { key }, 'garbage');
      expect(badToken).toMatchObject({ status: 401, body: { error: 'etcdserver: invalid auth token', code: 16 } });
      const noToken = await post('/v3/kv/range', { key });
      expect(noToken).toMatchObject({ status: 400, body: { error: 'etcdserver: user name is empty' } });
    } finally {
      svc.close();
      anon.close();
    }
  }, 60_000);
});
