/**
 * Auth in the state machine: etcd's answers for users, roles and permissions; permission checks
 * at apply with the identity and auth revision in the entry (a request checked against an older
 * auth revision is refused); a txn with one forbidden op refused whole; LeaseRevoke checked on
 * the attached keys; the auth state in the snapshot image, and hostile images refused.
 */
import { describe, expect, it } from 'vitest';
import { encodeRequest, encodeValue, type ApplyResult, type Command } from './commands.js';
import type { AuthCommand, AuthHeader } from './auth-store.js';
import { KvStateMachine, SnapshotImageError } from './state-machine.js';

const HASH = `$2a$10$${'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.'}`;
const b = (s: string) => new Uint8Array(Buffer.from(s));
const EMPTY = new Uint8Array(0);

function machine() {
  const sm = new KvStateMachine();
  let index = 0;
  const run = (command: Command, auth?: AuthHeader): ApplyResult => sm.apply({ index: ++index, term: 1, type: 'normal', data: encodeRequest(auth ? { id: 0n, command, auth } : { id: 0n, command }) });
  const err = (r: ApplyResult) => (r.ok ? 'ok' : r.error.message);
  return { sm, run, err };
}

/** root (root role), alice (role app: READWRITE on /app/ prefix, READ on /cfg), auth on. */
function withUsers() {
  const t = machine();
  const setup: AuthCommand[] = [
    { op: 'userAdd', name: 'root', hash: HASH, noPassword: false },
    { op: 'roleAdd', name: 'app' },
    { op: 'roleGrantPermission', name: 'app', perm: { permType: 'READWRITE', key: b('/app/'), rangeEnd: b('/app0') } },
    { op: 'roleGrantPermission', name: 'app', perm: { permType: 'READ', key: b('/cfg'), rangeEnd: EMPTY } },
    { op: 'userAdd', name: 'alice', hash: HASH, noPassword: false },
    { op: 'userGrantRole', user: 'alice', role: 'app' },
  ];
  for (const c of setup) expect(t.err(t.run(c))).toBe('ok');
  return t;
}

describe('auth state machine', () => {
  it("answers as etcd's auth store does", () => {
    const { sm, run, err } = withUsers();
    expect(err(run({ op: 'authEnable' }))).toBe('etcdserver: root user does not have root role');
    expect(err(run({ op: 'userAdd', name: '', hash: HASH, noPassword: false }))).toBe('etcdserver: user name is empty');
    expect(err(run({ op: 'userAdd', name: 'alice', hash: HASH, noPassword: false }))).toBe('etcdserver: user name already exists');
    expect(err(run({ op: 'roleAdd', name: '' }))).toBe('etcdserver: role name is empty');
    expect(err(run({ op: 'roleAdd', name: 'app' }))).toBe('etcdserver: role name already exists');
    expect(err(run({ op: 'userGrantRole', user: 'alice', role: 'nope' }))).toBe('etcdserver: role name not found');
    expect(err(run({ op: 'userGrantRole', user: 'bob', role: 'app' }))).toBe('etcdserver: user name not found');
    expect(err(run({ op: 'userRevokeRole', name: 'root', role: 'app' }))).toBe('etcdserver: role is not granted to the user');
    expect(err(run({ op: 'roleRevokePermission', role: 'app', key: b('/x'), rangeEnd: EMPTY }))).toBe('etcdserver: permission is not granted to the role');
    expect(err(run({ op: 'authenticate', name: 'alice', tokenPrefix: 'p' }))).toBe('etcdserver: authentication is not enabled');
    // Granting the root role needs no root role to exist (etcd's exception).
    expect(err(run({ op: 'userGrantRole', user: 'root', role: 'root' }))).toBe('ok');
    const before = sm.auth.revision;
    expect(err(run({ op: 'authEnable' }))).toBe('ok');
    expect(sm.auth.revision).toBe(before); // enabling does not move the revision (etcd)
    expect(err(run({ op: 'userDelete', name: 'root' }, { user: 'root', revision: sm.auth.revision }))).toBe('etcdserver: invalid auth management');
    expect(err(run({ op: 'userRevokeRole', name: 'root', role: 'root' }, { user: 'root', revision: sm.auth.revision }))).toBe('etcdserver: invalid auth management');
    expect(err(run({ op: 'roleDelete', role: 'root' }, { user: 'root', revision: sm.auth.revision }))).toBe('etcdserver: invalid auth management');
    // Administration needs root; no identity at all is the empty user.
    expect(err(run({ op: 'roleAdd', name: 'x' }, { user: 'alice', revision: sm.auth.revision }))).toBe('etcdserver: permission denied');
    expect(err(run({ op: 'roleAdd', name: 'x' }, { user: '', revision: 0 }))).toBe('etcdserver: user name is empty');
    expect(err(run({ op: 'roleAdd', name: 'x' }, { user: 'ghost', revision: sm.auth.revision }))).toBe('etcdserver: user name not found');
    // A simple token is the proposer's prefix and the entry's index.
    const r = run({ op: 'authenticate', name: 'alice', tokenPrefix: 'AbC' });
    expect(r.ok && r.value.op === 'authenticate' && r.value.simpleToken).toMatch(/^AbC\.\d+$/);
    expect(err(run({ op: 'authenticate', name: 'bob', tokenPrefix: 'AbC' }))).toBe('etcdserver: authentication failed, invalid user ID or password');
    // Deleting a role takes it from its users.
    expect(err(run({ op: 'roleDelete', role: 'app' }, { user: 'root', revision: sm.auth.revision }))).toBe('ok');
    expect(sm.auth.user('alice')!.roles).toEqual([]);
  });

  it('checks every write at apply with the identity in the entry, against the auth revision', () => {
    const { sm, run, err } = withUsers();
    run({ op: 'userGrantRole', user: 'root', role: 'root' });
    run({ op: 'authEnable' });
    const alice = (): AuthHeader => ({ user: 'alice', revision: sm.auth.revision });
    expect(err(run({ op: 'put', req: { key: b('/app/x'), value: b('1') } }, alice()))).toBe('ok');
    expect(err(run({ op: 'put', req: { key: b('/other'), value: b('1') } }, alice()))).toBe('etcdserver: permission denied');
    expect(err(run({ op: 'put', req: { key: b('/cfg'), value: b('1') } }, alice()))).toBe('etcdserver: permission denied');
    expect(err(run({ op: 'put', req: { key: b('/app/x'), value: b('1') } }, { user: '', revision: 0 }))).toBe('etcdserver: user name is empty');
    // prev_kv needs READ too; a delete with prev_kv on a write-only key is refused.
    expect(err(run({ op: 'deleteRange', req: { key: b('/app/'), rangeEnd: b('/app0'), prevKv: true } }, alice()))).toBe('ok');
    // A request checked against revision r, applied after an auth change: refused as old.
    const checkedAt = alice();
    expect(err(run({ op: 'roleAdd', name: 'other' }))).toBe('ok');
    expect(err(run({ op: 'put', req: { key: b('/app/x'), value: b('2') } }, checkedAt))).toBe('etcdserver: revision of auth store is old');
    expect(err(run({ op: 'put', req: { key: b('/app/x'), value: b('2') } }, alice()))).toBe('ok');
    // Without an identity (the member's own proposals: lease expiry) nothing is checked.
    expect(err(run({ op: 'put', req: { key: b('/other'), value: b('x') } }))).toBe('ok');
  });

  it('refuses a txn whole when one op (nested ones included) or one compare is forbidden', () => {
    const { sm, run, err } = withUsers();
    run({ op: 'userGrantRole', user: 'root', role: 'root' });
    run({ op: 'authEnable' });
    const alice = (): AuthHeader => ({ user: 'alice', revision: sm.auth.revision });
    const rev = sm.store.revision;
    const txn = (success: Command & { op: 'txn' }) => err(run(success, alice()));
    expect(txn({ op: 'txn', req: { compare: [], success: [{ put: { key: b('/app/y') } }, { put: { key: b('/other') } }], failure: [] } })).toBe('etcdserver: permission denied');
    expect(txn({ op: 'txn', req: { compare: [{ key: b('/other'), result: 'equal', target: 'version', value: 0 }], success: [{ put: { key: b('/app/y') } }], failure: [] } })).toBe('etcdserver: permission denied');
    expect(txn({ op: 'txn', req: { compare: [], success: [{ put: { key: b('/app/y') } }], failure: [{ deleteRange: { key: b('/other') } }] } })).toBe('etcdserver: permission denied');
    expect(txn({ op: 'txn', req: { compare: [], success: [{ txn: { compare: [], success: [{ put: { key: b('/other') } }], failure: [] } }], failure: [] } })).toBe('etcdserver: permission denied');
    expect(sm.store.revision).toBe(rev);
    expect(sm.store.range({ key: b('/app/y') }).kvs).toEqual([]);
    expect(txn({ op: 'txn', req: { compare: [{ key: b('/cfg'), result: 'equal', target: 'version', value: 0 }], success: [{ put: { key: b('/app/y') } }], failure: [] } })).toBe('ok');
  });

  it('LeaseRevoke and attaching a lease need WRITE on every key the lease holds', () => {
    const { sm, run, err } = withUsers();
    run({ op: 'userGrantRole', user: 'root', role: 'root' });
    run({ op: 'authEnable' });
    const alice = (): AuthHeader => ({ user: 'alice', revision: sm.auth.revision });
    run({ op: 'leaseGrant', id: 5n, ttl: 60 });
    expect(err(run({ op: 'put', req: { key: b('/other'), lease: 5n } }))).toBe('ok');
    expect(err(run({ op: 'leaseRevoke', id: 5n }, alice()))).toBe('etcdserver: permission denied');
    expect(err(run({ op: 'put', req: { key: b('/app/l'), lease: 5n } }, alice()))).toBe('etcdserver: permission denied');
    expect(err(run({ op: 'leaseRevoke', id: 5n }, { user: 'root', revision: sm.auth.revision }))).toBe('ok');
  });

  it('keeps the auth state in the snapshot image, and refuses hostile images whole', () => {
    const { sm, run } = withUsers();
    run({ op: 'userGrantRole', user: 'root', role: 'root' });
    run({ op: 'authEnable' });
    const image = sm.snapshot();
    const copy = new KvStateMachine();
    copy.restore(image, 10);
    expect(copy.auth.image()).toEqual(sm.auth.image());
    expect(copy.auth.enabled).toBe(true);
    expect(copy.snapshot()).toEqual(image);

    const parsed = JSON.parse(Buffer.from(image).toString()) as { auth: { enabled: boolean; revision: number; users: { name: string; hash: string; noPassword: boolean; roles: string[] }[]; roles: { name: string; perms: unknown[] }[] } };
    const bad = (f: (o: typeof parsed) => void, msg: RegExp) => {
      const o = structuredClone(parsed);
      f(o);
      const target = new KvStateMachine();
      expect(() => target.restore(encodeValue(o), 1)).toThrow(SnapshotImageError);
      expect(() => target.restore(encodeValue(o), 1)).toThrow(msg);
      expect(target.auth.userNames()).toEqual([]);
    };
    bad((o) => (o.auth.users = o.auth.users.filter((u) => u.name !== 'root')), /enabled without a root user/);
    bad((o) => (o.auth.users[0]!.roles = ['nope']), /role "nope" does not exist/);
    bad((o) => o.auth.users.reverse(), /not sorted or not unique/);
    bad((o) => (o.auth.users[0]!.hash = 'plaintext'), /not a bcrypt hash/);
    bad((o) => (o.auth.revision = 0), /out of range/);
    bad((o) => ((o.auth as Record<string, unknown>).extra = 1), /unknown field/);
    bad((o) => ((o.auth.roles[0]!.perms[0] as Record<string, unknown>).type = 3), /out of range/);
    // An image from before auth (no auth field) restores with auth off and no users.
    const old = structuredClone(parsed) as Record<string, unknown>;
    delete old.auth;
    const fresh = new KvStateMachine();
    fresh.restore(encodeValue(old), 1);
    expect(fresh.auth.enabled).toBe(false);
    expect(fresh.auth.userNames()).toEqual([]);
  });
});
