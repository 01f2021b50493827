/**
 * Authentication and role-based access on the client port (etcd 3.4): the Auth service, and
 * the identity of a call that the other services check.
 *
 * A call's identity (etcd's AuthInfoFromCtx): the token in gRPC metadata `token` (the JSON
 * gateway passes the `Authorization` header as metadata `authorization`); without one, the
 * user a client certificate names when the server was given `identityFromCall` (TLS with
 * --client-cert-auth: the CN is the user). Writes carry the identity in the log entry and every
 * member checks it at apply (state-machine.ts); reads are checked here on the member that
 * serves them, and refused if the auth revision moved while they ran (etcd's doSerialize).
 */
import type * as grpc from '@grpc/grpc-js';
import bcrypt from 'bcryptjs';
import { AUTH_ERR, PERM_TYPES, type AuthHeader, type PermType } from '../kv/auth-store.js';
import { ERR, KvError } from '../kv/errors.js';
import type { AuthInfo } from '../server/auth-tokens.js';
import type { EtcdMember } from '../server/member.js';
import { buf, bytes, type Wire } from './convert.js';
import { unary } from './status.js';

/** gRPC metadata keys of an auth token (etcd's rpctypes.TokenFieldNameGRPC and ...Swagger). */
export const TOKEN_METADATA = 'token';
export const GATEWAY_TOKEN_METADATA = 'authorization';
/** Password checks or hashes (bcrypt, ~50 ms of CPU each at cost 10) running at once on a member. */
export const BCRYPT_CONCURRENT_MAX = 2;
/** ... and waiting for their turn; beyond that `etcdserver: too many requests`. */
export const BCRYPT_QUEUE_MAX = 64;
/** Authenticate retries when the auth revision moved between the password check and the apply (etcd retries without bound). */
export const AUTHENTICATE_ATTEMPTS_MAX = 5;

export interface AuthOptions {
  /**
   * The user a call's verified client certificate names (its CN), when client certificate
   * auth is on; undefined otherwise. Asked only when the call carries no token, and never for
   * gateway requests (as etcd ignores the CN of grpc-gateway requests).
   */
  readonly identityFromCall?: (call: unknown) => string | undefined;
}

type AnyCall = { metadata?: grpc.Metadata; getPeer?: () => string };

/** The call's identity, null when it has none; throws `invalid auth token` for a bad token. */
export async function callIdentity(m: EtcdMember, call: AnyCall, o: AuthOptions): Promise<AuthInfo | null> {
  const md = call.metadata;
  const token = md?.get?.(TOKEN_METADATA)?.[0] ?? md?.get?.(GATEWAY_TOKEN_METADATA)?.[0];
  if (token !== undefined) return m.authInfoFromToken(String(token));
  if (o.identityFromCall && call.getPeer?.() !== 'gateway') {
    const cn = o.identityFromCall(call);
    if (cn) return { user: cn, revision: m.sm.auth.revision };
  }
  return null;
}

/** What a command carries: the identity, or the empty one (refused at apply while auth is on). */
export const headerOf = (ai: AuthInfo | null): AuthHeader => (ai ? { user: ai.user, revision: ai.revision } : { user: '', revision: 0 });

/**
 * A read served by this member (etcd's doSerialize): `check` runs against the auth state now,
 * then `read`; if the auth revision moved meanwhile the answer is refused.
 */
export function serialized<T>(m: EtcdMember, ai: AuthInfo | null, check: (h: AuthHeader) => void, read: () => T): T {
  check(headerOf(ai));
  const out = read();
  if (ai && ai.revision !== 0 && ai.revision !== m.sm.auth.revision) throw AUTH_ERR.authOldRevision();
  return out;
}

/** Root only (Maintenance, Cluster changes, the Auth service's administration). */
export function checkAdmin(m: EtcdMember, ai: AuthInfo | null): void {
  m.sm.auth.checkAdmin(ai ? headerOf(ai) : null);
}

/** Runs bcrypt work with at most BCRYPT_CONCURRENT_MAX at once. */
export class BcryptGate {
  private running = 0;
  private readonly queue: (() => void)[] = [];

  async run<T>(f: () => Promise<T>): Promise<T> {
    if (this.running >= BCRYPT_CONCURRENT_MAX) {
      if (this.queue.length >= BCRYPT_QUEUE_MAX) throw ERR.tooManyRequests();
      await new Promise<void>((r) => this.queue.push(r));
    } else this.running++;
    try {
      return await f();
    } finally {
      const next = this.queue.shift();
      if (next) next();
      else this.running--;
    }
  }
}

const str = (v: unknown): string => (typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v));

function permType(v: unknown): PermType {
  const s = str(v ?? 'READ');
  if ((PERM_TYPES as readonly string[]).includes(s)) return s as PermType;
  throw new KvError('badRequest', `etcdserver: unknown permission type ${s}`);
}

export function authService(m: EtcdMember, o: AuthOptions) {
  const h = (revision?: number): Wire => m.header(revision) as unknown as Wire;
  const gate = new BcryptGate();
  const who = (call: AnyCall) => callIdentity(m, call, o);
  const hash = (password: string) => gate.run(() => bcrypt.hash(password, m.config.bcryptCost));
  /** An administrator's change: refused here at once when the caller is not one (no bcrypt spent), checked again at apply. */
  const admin = async (call: AnyCall): Promise<AuthHeader> => {
    const ai = await who(call);
    checkAdmin(m, ai);
    return headerOf(ai);
  };
  const change = async (call: AnyCall, cmd: Parameters<EtcdMember['propose']>[0]): Promise<Wire> => {
    const r = await m.propose(cmd, await admin(call));
    return { header: h(r.revision) };
  };

  return {
    AuthEnable: unary(async (_req, call) => change(call, { op: 'authEnable' })),
    AuthDisable: unary(async (_req, call) => change(call, { op: 'authDisable' })),
    AuthStatus: unary(async () => {
      await m.readBarrier();
      return { header: h(), enabled: m.sm.auth.enabled, authRevision: String(m.sm.auth.revision) };
    }),
    Authenticate: unary(async (req) => {
      const name = str(req.name);
      const password = str(req.password);
      await m.readBarrier();
      for (let attempt = 1; ; attempt++) {
        // etcd's CheckPassword: on this member, before the log; the entry carries no password.
        const a = m.sm.auth;
        if (!a.enabled) throw AUTH_ERR.authNotEnabled();
        const u = a.user(name);
        if (!u) throw AUTH_ERR.authFailed();
        if (u.noPassword) throw AUTH_ERR.noPasswordUser();
        const checked = a.revision;
        const ok = await gate.run(() => bcrypt.compare(password, u.hash).catch(() => false));
        if (!ok) throw AUTH_ERR.authFailed();
        const r = await m.propose({ op: 'authenticate', name, tokenPrefix: m.tokens.genTokenPrefix() });
        if (r.value.op !== 'authenticate') throw new Error('authenticate answered with another command');
        if (checked === m.sm.auth.revision || attempt >= AUTHENTICATE_ATTEMPTS_MAX) {
          if (checked !== m.sm.auth.revision) throw AUTH_ERR.authOldRevision();
          const token = m.tokens.kind === 'simple' ? r.value.simpleToken : await m.tokens.assignJwt(r.value.user, r.value.revision);
          return { header: h(r.revision), token };
        }
      }
    }),
    UserAdd: unary(async (req, call) => {
      const auth = await admin(call);
      const name = str(req.name);
      const noPassword = Boolean((req.options as Wire | null | undefined)?.no_password);
      const hashed = noPassword ? '' : await hash(str(req.password));
      const r = await m.propose({ op: 'userAdd', name, hash: hashed, noPassword }, auth);
      return { header: h(r.revision) };
    }),
    UserGet: unary(async (req, call) => {
      const ai = await who(call);
      const name = str(req.name);
      await m.readBarrier();
      // etcd: an administrator, or the user asking about itself.
      if (!ai || ai.user !== name) checkAdmin(m, ai);
      const u = m.sm.auth.user(name);
      if (!u) throw AUTH_ERR.userNotFound();
      return { header: h(), roles: [...u.roles] };
    }),
    UserList: unary(async (_req, call) => {
      const ai = await who(call);
      await m.readBarrier();
      checkAdmin(m, ai);
      return { header: h(), users: m.sm.auth.userNames() };
    }),
    UserDelete: unary(async (req, call) => change(call, { op: 'userDelete', name: str(req.name) })),
    UserChangePassword: unary(async (req, call) => {
      const auth = await admin(call);
      const hashed = await hash(str(req.password));
      const r = await m.propose({ op: 'userChangePassword', name: str(req.name), hash: hashed }, auth);
      return { header: h(r.revision) };
    }),
    UserGrantRole: unary(async (req, call) => change(call, { op: 'userGrantRole', user: str(req.user), role: str(req.role) })),
    UserRevokeRole: unary(async (req, call) => change(call, { op: 'userRevokeRole', name: str(req.name), role: str(req.role) })),
    RoleAdd: unary(async (req, call) => change(call, { op: 'roleAdd', name: str(req.name) })),
    RoleGet: unary(async (req, call) => {
      const ai = await who(call);
      const role = str(req.role);
      await m.readBarrier();
      // etcd: an administrator, or a user holding the role.
      if (!ai || !m.sm.auth.hasRole(ai.user, role)) checkAdmin(m, ai);
      const r = m.sm.auth.role(role);
      if (!r) throw AUTH_ERR.roleNotFound();
      return { header: h(), perm: r.perms.map((p) => ({ permType: p.permType, key: buf(p.key), range_end: buf(p.rangeEnd) })) };
    }),
    RoleList: unary(async (_req, call) => {
      const ai = await who(call);
      await m.readBarrier();
      checkAdmin(m, ai);
      return { header: h(), roles: m.sm.auth.roleNames() };
    }),
    RoleDelete: unary(async (req, call) => change(call, { op: 'roleDelete', role: str(req.role) })),
    RoleGrantPermission: unary(async (req, call) => {
      const perm = req.perm as Wire | null | undefined;
      if (!perm) throw new KvError('badRequest', 'etcdserver: permission not given');
      return change(call, { op: 'roleGrantPermission', name: str(req.name), perm: { permType: permType(perm.permType), key: bytes(perm.key), rangeEnd: bytes(perm.range_end) } });
    }),
    RoleRevokePermission: unary(async (req, call) => change(call, { op: 'roleRevokePermission', role: str(req.role), key: bytes(req.key), rangeEnd: bytes(req.range_end) })),
  };
}
