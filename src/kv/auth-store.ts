/**
 * The replicated auth state of etcd 3.4 (auth/store.go): users with bcrypt password hashes,
 * roles with key permissions, the enabled flag and the auth revision; and the checks every
 * member makes at apply (etcdserver/apply_auth.go) with the identity a command carries.
 *
 * Deterministic and total like the rest of the state machine: passwords arrive already hashed
 * (the member that received the request hashed them; apply never runs bcrypt), refusals are
 * KvErrors with etcd's code and text. Tokens are not state: they live on each member
 * (src/server/auth-tokens.ts).
 */
import { KvError } from './errors.js';
import { intervalOf, mergeIntervals, covers, type KeyInterval } from './range-perms.js';
import { arrayOf, base64Bytes, exactObject, imageFail, preview, safeInt } from './snapshot-image.js';

export const ROOT_USER = 'root';
export const ROOT_ROLE = 'root';

export type PermType = 'READ' | 'WRITE' | 'READWRITE';
/** etcd's authpb.Permission.Type numbers. */
export const PERM_TYPES: readonly PermType[] = ['READ', 'WRITE', 'READWRITE'];

export interface Permission {
  readonly permType: PermType;
  readonly key: Uint8Array;
  readonly rangeEnd: Uint8Array;
}

export interface AuthUser {
  readonly name: string;
  /** bcrypt hash; '' for a user without password (etcd's no_password: certificate CN only). */
  readonly hash: string;
  readonly noPassword: boolean;
  /** Sorted, unique. */
  readonly roles: readonly string[];
}

export interface AuthRole {
  readonly name: string;
  /** Sorted by key, then range end; (key, range end) unique. */
  readonly perms: readonly Permission[];
}

/**
 * Who a command is from, as the receiving member established it (etcd's RequestHeader username
 * and auth_revision): the user and the auth revision the request was checked against. A command
 * without one was proposed by a member itself (lease expiry, publish), which etcd does as root.
 */
export interface AuthHeader {
  readonly user: string;
  readonly revision: number;
}

/** A bcrypt hash as bcrypt libraries write it ($2a$/$2b$/$2y$, cost 04..31, 53 characters of salt and hash). */
export const BCRYPT_HASH = /^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$/;

export const AUTH_ERR = {
  rootUserNotExist: () => new KvError('rootUserNotExist', 'etcdserver: root user does not exist'),
  rootRoleNotExist: () => new KvError('rootRoleNotExist', 'etcdserver: root user does not have root role'),
  userAlreadyExist: () => new KvError('userAlreadyExist', 'etcdserver: user name already exists'),
  userEmpty: () => new KvError('userEmpty', 'etcdserver: user name is empty'),
  userNotFound: () => new KvError('userNotFound', 'etcdserver: user name not found'),
  roleAlreadyExist: () => new KvError('roleAlreadyExist', 'etcdserver: role name already exists'),
  roleNotFound: () => new KvError('roleNotFound', 'etcdserver: role name not found'),
  roleEmpty: () => new KvError('roleEmpty', 'etcdserver: role name is empty'),
  authFailed: () => new KvError('authFailed', 'etcdserver: authentication failed, invalid user ID or password'),
  permissionDenied: () => new KvError('permissionDenied', 'etcdserver: permission denied'),
  roleNotGranted: () => new KvError('roleNotGranted', 'etcdserver: role is not granted to the user'),
  permissionNotGranted: () => new KvError('permissionNotGranted', 'etcdserver: permission is not granted to the role'),
  authNotEnabled: () => new KvError('authNotEnabled', 'etcdserver: authentication is not enabled'),
  invalidAuthToken: () => new KvError('invalidAuthToken', 'etcdserver: invalid auth token'),
  invalidAuthMgmt: () => new KvError('invalidAuthMgmt', 'etcdserver: invalid auth management'),
  authOldRevision: () => new KvError('authOldRevision', 'etcdserver: revision of auth store is old'),
  /** etcd's auth.ErrNoPasswordUser is not mapped to a gRPC error: clients see its plain text (code Unknown). */
  noPasswordUser: () => new KvError('noPasswordUser', 'auth: authentication failed, password was given for no password user'),
} as const;

/** The auth commands (the Raft log carries them; see commands.ts). */
export type AuthCommand =
  | { readonly op: 'authEnable' }
  | { readonly op: 'authDisable' }
  /** The password was checked by the proposer; `tokenPrefix` is its random simple-token prefix ('' for JWT). */
  | { readonly op: 'authenticate'; readonly name: string; readonly tokenPrefix: string }
  | { readonly op: 'userAdd'; readonly name: string; readonly hash: string; readonly noPassword: boolean }
  | { readonly op: 'userDelete'; readonly name: string }
  | { readonly op: 'userChangePassword'; readonly name: string; readonly hash: string }
  | { readonly op: 'userGrantRole'; readonly user: string; readonly role: string }
  | { readonly op: 'userRevokeRole'; readonly name: string; readonly role: string }
  | { readonly op: 'roleAdd'; readonly name: string }
  | { readonly op: 'roleDelete'; readonly role: string }
  | { readonly op: 'roleGrantPermission'; readonly name: string; readonly perm: Permission }
  | { readonly op: 'roleRevokePermission'; readonly role: string; readonly key: Uint8Array; readonly rangeEnd: Uint8Array };

export const AUTH_OPS: readonly AuthCommand['op'][] = [
  'authEnable',
  'authDisable',
  'authenticate',
  'userAdd',
  'userDelete',
  'userChangePassword',
  'userGrantRole',
  'userRevokeRole',
  'roleAdd',
  'roleDelete',
  'roleGrantPermission',
  'roleRevokePermission',
];

export const isAuthCommand = (c: { readonly op: string }): c is AuthCommand => (AUTH_OPS as readonly string[]).includes(c.op);

/** What applying an auth command gave (the member that proposed it answers from this). */
export type AuthValue =
  /** Every member registers a simple token `<prefix>.<index>` for the user; JWTs are signed by the proposer. */
  | { readonly op: 'authenticate'; readonly user: string; readonly revision: number; readonly simpleToken: string }
  | { readonly op: 'auth'; readonly kind: Exclude<AuthCommand['op'], 'authenticate'>; readonly name: string };

/** Strings in byte order, as etcd's bolt buckets list them. */
const byteOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));
const permOrder = (a: Permission, b: Permission): number => Buffer.compare(a.key, b.key) || Buffer.compare(a.rangeEnd, b.rangeEnd);
const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(a, b) === 0;

interface MergedPerms {
  readonly read: KeyInterval[];
  readonly write: KeyInterval[];
}

export class AuthStore {
  private enabledFlag = false;
  /** etcd starts its auth revision at 1 (NewAuthStore commits one when it finds 0). */
  private rev = 1;
  private readonly users = new Map<string, AuthUser>();
  private readonly roles = new Map<string, AuthRole>();
  /** etcd's rangePermCache: merged intervals per user, dropped on every change. */
  private permCache = new Map<string, MergedPerms>();

  get enabled(): boolean {
    return this.enabledFlag;
  }

  get revision(): number {
    return this.rev;
  }

  user(name: string): AuthUser | undefined {
    return this.users.get(name);
  }

  role(name: string): AuthRole | undefined {
    return this.roles.get(name);
  }

  userNames(): string[] {
    return [...this.users.keys()].sort(byteOrder);
  }

  roleNames(): string[] {
    return [...this.roles.keys()].sort(byteOrder);
  }

  hasRole(user: string, role: string): boolean {
    return this.users.get(user)?.roles.includes(role) ?? false;
  }

  private commit(): void {
    this.rev++;
    this.permCache.clear();
  }

  // -----------------------------------------------------------------------------------------
  // Checks (auth/store.go isOpPermitted, IsAdminPermitted)
  // -----------------------------------------------------------------------------------------

  /** Root may do anything; otherwise the user must hold the root role. */
  checkAdmin(h: AuthHeader | null): void {
    if (!this.enabledFlag) return;
    if (!h || h.user === '') throw AUTH_ERR.userEmpty();
    const u = this.users.get(h.user);
    if (!u) throw AUTH_ERR.userNotFound();
    if (!u.roles.includes(ROOT_ROLE)) throw AUTH_ERR.permissionDenied();
  }

  /** READ on [key, rangeEnd) (a key alone when rangeEnd is empty). */
  checkRange(h: AuthHeader | null, key: Uint8Array, rangeEnd: Uint8Array): void {
    this.checkOp(h, key, rangeEnd, 'read');
  }

  checkPut(h: AuthHeader | null, key: Uint8Array): void {
    this.checkOp(h, key, new Uint8Array(0), 'write');
  }

  checkDeleteRange(h: AuthHeader | null, key: Uint8Array, rangeEnd: Uint8Array): void {
    this.checkOp(h, key, rangeEnd, 'write');
  }

  private checkOp(h: AuthHeader | null, key: Uint8Array, rangeEnd: Uint8Array, kind: 'read' | 'write'): void {
    if (!this.enabledFlag) return;
    // Revision 0 only when no user was given.
    if (!h || h.revision === 0) throw AUTH_ERR.userEmpty();
    if (h.revision < this.rev) throw AUTH_ERR.authOldRevision();
    const u = this.users.get(h.user);
    if (!u) throw AUTH_ERR.permissionDenied();
    if (u.roles.includes(ROOT_ROLE)) return;
    if (!covers(this.merged(u)[kind], intervalOf(key, rangeEnd))) throw AUTH_ERR.permissionDenied();
  }

  private merged(u: AuthUser): MergedPerms {
    let m = this.permCache.get(u.name);
    if (!m) {
      const read: KeyInterval[] = [];
      const write: KeyInterval[] = [];
      for (const r of u.roles) {
        for (const p of this.roles.get(r)?.perms ?? []) {
          const i = intervalOf(p.key, p.rangeEnd);
          if (p.permType !== 'WRITE') read.push(i);
          if (p.permType !== 'READ') write.push(i);
        }
      }
      m = { read: mergeIntervals(read), write: mergeIntervals(write) };
      this.permCache.set(u.name, m);
    }
    return m;
  }

  // -----------------------------------------------------------------------------------------
  // Applying auth commands (auth/store.go). `index` is the entry's: simple tokens end with it.
  // -----------------------------------------------------------------------------------------

  apply(c: AuthCommand, index: number): AuthValue {
    const done = (name: string): AuthValue => ({ op: 'auth', kind: c.op as Exclude<AuthCommand['op'], 'authenticate'>, name });
    switch (c.op) {
      case 'authEnable': {
        if (this.enabledFlag) return done('');
        const root = this.users.get(ROOT_USER);
        if (!root) throw AUTH_ERR.rootUserNotExist();
        if (!root.roles.includes(ROOT_ROLE)) throw AUTH_ERR.rootRoleNotExist();
        this.enabledFlag = true;
        this.permCache.clear();
        return done('');
      }
      case 'authDisable':
        if (!this.enabledFlag) return done('');
        this.enabledFlag = false;
        this.commit();
        return done('');
      case 'authenticate': {
        if (!this.enabledFlag) throw AUTH_ERR.authNotEnabled();
        const u = this.users.get(c.name);
        if (!u) throw AUTH_ERR.authFailed();
        if (u.noPassword) throw AUTH_ERR.authFailed();
        return { op: 'authenticate', user: c.name, revision: this.rev, simpleToken: c.tokenPrefix === '' ? '' : `${c.tokenPrefix}.${index}` };
      }
      case 'userAdd':
        if (c.name === '') throw AUTH_ERR.userEmpty();
        if (this.users.has(c.name)) throw AUTH_ERR.userAlreadyExist();
        this.users.set(c.name, { name: c.name, hash: c.noPassword ? '' : c.hash, noPassword: c.noPassword, roles: [] });
        this.commit();
        return done(c.name);
      case 'userDelete': {
        if (this.enabledFlag && c.name === ROOT_USER) throw AUTH_ERR.invalidAuthMgmt();
        if (!this.users.delete(c.name)) throw AUTH_ERR.userNotFound();
        this.commit();
        return done(c.name);
      }
      case 'userChangePassword': {
        const u = this.users.get(c.name);
        if (!u) throw AUTH_ERR.userNotFound();
        this.users.set(c.name, { ...u, hash: c.hash });
        this.commit();
        return done(c.name);
      }
      case 'userGrantRole': {
        const u = this.users.get(c.user);
        if (!u) throw AUTH_ERR.userNotFound();
        // etcd lets the root role be granted before it exists as a role.
        if (c.role !== ROOT_ROLE && !this.roles.has(c.role)) throw AUTH_ERR.roleNotFound();
        if (u.roles.includes(c.role)) return done(c.user);
        this.users.set(c.user, { ...u, roles: [...u.roles, c.role].sort(byteOrder) });
        this.commit();
        return done(c.user);
      }
      case 'userRevokeRole': {
        if (this.enabledFlag && c.name === ROOT_USER && c.role === ROOT_ROLE) throw AUTH_ERR.invalidAuthMgmt();
        const u = this.users.get(c.name);
        if (!u) throw AUTH_ERR.userNotFound();
        if (!u.roles.includes(c.role)) throw AUTH_ERR.roleNotGranted();
        this.users.set(c.name, { ...u, roles: u.roles.filter((r) => r !== c.role) });
        this.commit();
        return done(c.name);
      }
      case 'roleAdd':
        if (c.name === '') throw AUTH_ERR.roleEmpty();
        if (this.roles.has(c.name)) throw AUTH_ERR.roleAlreadyExist();
        this.roles.set(c.name, { name: c.name, perms: [] });
        this.commit();
        return done(c.name);
      case 'roleDelete': {
        if (this.enabledFlag && c.role === ROOT_ROLE) throw AUTH_ERR.invalidAuthMgmt();
        if (!this.roles.delete(c.role)) throw AUTH_ERR.roleNotFound();
        for (const u of [...this.users.values()]) {
          if (u.roles.includes(c.role)) this.users.set(u.name, { ...u, roles: u.roles.filter((r) => r !== c.role) });
        }
        this.commit();
        return done(c.role);
      }
      case 'roleGrantPermission': {
        const r = this.roles.get(c.name);
        if (!r) throw AUTH_ERR.roleNotFound();
        const perm: Permission = { permType: c.perm.permType, key: Uint8Array.from(c.perm.key), rangeEnd: Uint8Array.from(c.perm.rangeEnd) };
        // The same (key, range end) is updated in place; anything else is added.
        const others = r.perms.filter((p) => !(sameBytes(p.key, perm.key) && sameBytes(p.rangeEnd, perm.rangeEnd)));
        this.roles.set(c.name, { name: c.name, perms: [...others, perm].sort(permOrder) });
        this.commit();
        return done(c.name);
      }
      case 'roleRevokePermission': {
        const r = this.roles.get(c.role);
        if (!r) throw AUTH_ERR.roleNotFound();
        const kept = r.perms.filter((p) => !(sameBytes(p.key, c.key) && sameBytes(p.rangeEnd, c.rangeEnd)));
        if (kept.length === r.perms.length) throw AUTH_ERR.permissionNotGranted();
        this.roles.set(c.role, { name: c.role, perms: kept });
        this.commit();
        return done(c.role);
      }
    }
  }

  // -----------------------------------------------------------------------------------------
  // The snapshot image
  // -----------------------------------------------------------------------------------------

  /** A plain object for the state machine's image (encodeValue tags the bytes). */
  image(): AuthImage {
    return {
      enabled: this.enabledFlag,
      revision: this.rev,
      users: this.userNames().map((n) => {
        const u = this.users.get(n)!;
        return { name: u.name, hash: u.hash, noPassword: u.noPassword, roles: [...u.roles] };
      }),
      roles: this.roleNames().map((n) => {
        const r = this.roles.get(n)!;
        return { name: r.name, perms: r.perms.map((p) => ({ type: PERM_TYPES.indexOf(p.permType), key: p.key, rangeEnd: p.rangeEnd })) };
      }),
    };
  }

  /**
   * An auth store from the (already JSON-parsed) `auth` field of an image: hostile, so every
   * field is checked for type and range, names sorted and unique, users' roles existing (or
   * root), hashes bcrypt hashes, and an enabled store holding root with the root role (what
   * apply guarantees). SnapshotImageError otherwise.
   */
  static fromImage(v: unknown, where: string): AuthStore {
    const o = exactObject(v, where, ['enabled', 'revision', 'users', 'roles']);
    const s = new AuthStore();
    if (typeof o.enabled !== 'boolean') imageFail(`${where}.enabled`, `expected a boolean, got ${preview(o.enabled)}`);
    s.rev = safeInt(o.revision, `${where}.revision`, 1, Number.MAX_SAFE_INTEGER);
    const name = (x: unknown, w: string): string => (typeof x === 'string' ? x : imageFail(w, `expected a string, got ${preview(x)}`));
    const sortedUnique = (names: string[], w: string): void => {
      for (let i = 1; i < names.length; i++) if (byteOrder(names[i - 1]!, names[i]!) >= 0) imageFail(w, 'names not sorted or not unique');
    };
    const roles = arrayOf(o.roles, `${where}.roles`).map((x, i) => {
      const w = `${where}.roles[${i}]`;
      const r = exactObject(x, w, ['name', 'perms']);
      const perms = arrayOf(r.perms, `${w}.perms`).map((y, j) => {
        const pw = `${w}.perms[${j}]`;
        const p = exactObject(y, pw, ['type', 'key', 'rangeEnd']);
        return {
          permType: PERM_TYPES[safeInt(p.type, `${pw}.type`, 0, PERM_TYPES.length - 1)]!,
          key: base64Bytes(exactObject(p.key, `${pw}.key`, ['$b']).$b, `${pw}.key.$b`),
          rangeEnd: base64Bytes(exactObject(p.rangeEnd, `${pw}.rangeEnd`, ['$b']).$b, `${pw}.rangeEnd.$b`),
        };
      });
      for (let j = 1; j < perms.length; j++) if (permOrder(perms[j - 1]!, perms[j]!) >= 0) imageFail(`${w}.perms`, 'permissions not sorted or not unique');
      const n = name(r.name, `${w}.name`);
      if (n === '') imageFail(`${w}.name`, 'empty role name');
      return { name: n, perms };
    });
    sortedUnique(
      roles.map((r) => r.name),
      `${where}.roles`,
    );
    for (const r of roles) s.roles.set(r.name, r);
    const users = arrayOf(o.users, `${where}.users`).map((x, i) => {
      const w = `${where}.users[${i}]`;
      const u = exactObject(x, w, ['name', 'hash', 'noPassword', 'roles']);
      const n = name(u.name, `${w}.name`);
      if (n === '') imageFail(`${w}.name`, 'empty user name');
      if (typeof u.noPassword !== 'boolean') imageFail(`${w}.noPassword`, `expected a boolean, got ${preview(u.noPassword)}`);
      const hash = name(u.hash, `${w}.hash`);
      // A user added without password has none, until a password change gives it one.
      if (!BCRYPT_HASH.test(hash) && !(u.noPassword && hash === '')) imageFail(`${w}.hash`, 'not a bcrypt hash');
      const ur = arrayOf(u.roles, `${w}.roles`).map((y, j) => name(y, `${w}.roles[${j}]`));
      sortedUnique(ur, `${w}.roles`);
      for (const r of ur) if (r !== ROOT_ROLE && !s.roles.has(r)) imageFail(`${w}.roles`, `role ${preview(r)} does not exist`);
      return { name: n, hash, noPassword: u.noPassword, roles: ur };
    });
    sortedUnique(
      users.map((u) => u.name),
      `${where}.users`,
    );
    for (const u of users) s.users.set(u.name, u);
    if (o.enabled) {
      const root = s.users.get(ROOT_USER);
      if (!root || !root.roles.includes(ROOT_ROLE)) imageFail(`${where}.enabled`, 'auth is enabled without a root user holding the root role');
    }
    s.enabledFlag = o.enabled;
    return s;
  }
}

export interface AuthImage {
  readonly enabled: boolean;
  readonly revision: number;
  readonly users: { name: string; hash: string; noPassword: boolean; roles: string[] }[];
  readonly roles: { name: string; perms: { type: number; key: Uint8Array; rangeEnd: Uint8Array }[] }[];
}
