/**
 * Auth tokens, as etcd 3.4 makes them (auth/simple_token.go, auth/jwt.go). Tokens are not
 * replicated state: each member keeps or checks them itself.
 *
 * - simple (etcd's default): `<16 random letters>.<log index>`. Authenticate goes through the
 *   log with the random prefix chosen by the member that received it, and every member that
 *   applies the entry registers the token for the user (so it is good on every member of the
 *   cluster that applied it, until it goes unused for --auth-token-ttl, the user is deleted or
 *   changes password, auth is disabled, or that member restarts: tokens live in memory).
 *   A token naming an index this member has not applied yet waits for it (etcd's indexWaiter).
 * - jwt: signed (jose) by the member that received Authenticate with claims {username,
 *   revision, exp}; any member with the key verifies it. The revision is the auth revision
 *   when it was issued: after any auth change the token's requests are refused as `revision of
 *   auth store is old` and the client authenticates again.
 */
import { createPrivateKey, createPublicKey, createSecretKey, randomInt, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { jwtVerify, SignJWT } from 'jose';
import type { AuthTokenSpec, JwtSignMethod } from './config.js';

/** Who a token (or a certificate) says the caller is, and the auth revision it is checked against. */
export interface AuthInfo {
  readonly user: string;
  readonly revision: number;
}

/** etcd's defaultSimpleTokenLength. */
export const SIMPLE_TOKEN_PREFIX_LENGTH = 16;
/** Simple tokens a member keeps at once; the least recently used goes first beyond it (etcd has no bound). */
export const SIMPLE_TOKENS_MAX = 100_000;
/** Bytes of a token the server looks at; a longer one is invalid at once. */
export const AUTH_TOKEN_BYTES_MAX = 8192;

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

export interface TokenProvider {
  readonly kind: 'simple' | 'jwt';
  /** The random prefix of a simple token ('' for JWT). */
  genTokenPrefix(): string;
  /** Registers a simple token applied at every member (no-op for JWT). */
  assignSimple(user: string, token: string): void;
  /** A JWT for the user at this auth revision (simple: the token applied). */
  assignJwt(user: string, revision: number): Promise<string>;
  /**
   * The identity a token carries, or null when it is not valid. `currentRevision` is this
   * member's auth revision (simple tokens are checked against it, as etcd's are).
   * `waitApplied(index)` resolves true once this member applied that log index (false: timed out).
   */
  info(token: string, currentRevision: number, waitApplied: (index: number) => Promise<boolean>): Promise<AuthInfo | null>;
  invalidateUser(user: string): void;
  /** Auth was disabled: every token is dropped. */
  disable(): void;
  close(): void;
}

export class SimpleTokens implements TokenProvider {
  readonly kind = 'simple' as const;
  /** token -> user and expiry (ms); Map order = least recently used first. */
  private readonly tokens = new Map<string, { user: string; expiresAt: number }>();
  private readonly sweep: NodeJS.Timeout;

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {
    // etcd's simpleTokenTTLResolution: expired tokens are dropped every second.
    this.sweep = setInterval(() => this.dropExpired(), 1000);
    this.sweep.unref();
  }

  genTokenPrefix(): string {
    let s = '';
    for (let i = 0; i < SIMPLE_TOKEN_PREFIX_LENGTH; i++) s += LETTERS[randomInt(LETTERS.length)];
    return s;
  }

  assignSimple(user: string, token: string): void {
    this.tokens.delete(token);
    this.tokens.set(token, { user, expiresAt: this.now() + this.ttlMs });
    while (this.tokens.size > SIMPLE_TOKENS_MAX) this.tokens.delete(this.tokens.keys().next().value!);
  }

  assignJwt(): Promise<string> {
    return Promise.reject(new Error('simple token provider signs no JWT'));
  }

  async info(token: string, currentRevision: number, waitApplied: (index: number) => Promise<boolean>): Promise<AuthInfo | null> {
    const m = /^[A-Za-z]+\.(\d{1,15})$/.exec(token);
    if (!m) return null;
    if (!this.tokens.has(token) && !(await waitApplied(Number(m[1])))) return null;
    const t = this.tokens.get(token);
    if (!t || t.expiresAt <= this.now()) {
      this.tokens.delete(token);
      return null;
    }
    // Used: its TTL starts again (etcd's resetSimpleToken).
    this.tokens.delete(token);
    this.tokens.set(token, { user: t.user, expiresAt: this.now() + this.ttlMs });
    return { user: t.user, revision: currentRevision };
  }

  invalidateUser(user: string): void {
    for (const [k, v] of this.tokens) if (v.user === user) this.tokens.delete(k);
  }

  disable(): void {
    this.tokens.clear();
  }

  private dropExpired(): void {
    const now = this.now();
    for (const [k, v] of this.tokens) if (v.expiresAt <= now) this.tokens.delete(k);
  }

  /** Tokens held now (tests). */
  get size(): number {
    return this.tokens.size;
  }

  close(): void {
    clearInterval(this.sweep);
  }
}

export class JwtTokens implements TokenProvider {
  readonly kind = 'jwt' as const;

  private constructor(
    private readonly alg: JwtSignMethod,
    private readonly signKey: KeyObject | null,
    private readonly verifyKey: KeyObject,
    private readonly ttlMs: number,
  ) {}

  /** Reads and checks the key files (a wrong or missing key stops the member from starting). */
  static async load(spec: Extract<AuthTokenSpec, { kind: 'jwt' }>): Promise<JwtTokens> {
    const read = async (file: string, what: string): Promise<Buffer> => {
      try {
        return await readFile(file);
      } catch (e) {
        throw new Error(`--auth-token: cannot read the ${what} ${file}: ${(e as Error).message}`, { cause: e });
      }
    };
    /** The key in `bytes`, or why it is not a key for this method. */
    const parse = <K,>(make: (b: Buffer) => K, bytes: Buffer): K => {
      try {
        return make(bytes);
      } catch (e) {
        throw new Error(`--auth-token: the key is not a ${spec.signMethod} key: ${(e as Error).message}`, { cause: e });
      }
    };
    const hmac = spec.signMethod.startsWith('HS');
    let signKey: KeyObject | null = null;
    let verifyKey: KeyObject | null = null;
    if (spec.privKeyFile) signKey = parse(hmac ? createSecretKey : createPrivateKey, await read(spec.privKeyFile, 'private key'));
    if (spec.pubKeyFile && !hmac) verifyKey = parse(createPublicKey, await read(spec.pubKeyFile, 'public key'));
    if (!signKey && (!verifyKey || hmac)) throw new Error('--auth-token: missing key data');
    const expected = spec.signMethod.startsWith('ES') ? 'ec' : hmac ? 'secret' : 'rsa';
    for (const k of [signKey, verifyKey]) {
      if (k && expected !== 'secret' && k.asymmetricKeyType !== expected && !(expected === 'rsa' && k.asymmetricKeyType === 'rsa-pss')) {
        throw new Error(`--auth-token: a ${k.asymmetricKeyType ?? 'secret'} key cannot sign ${spec.signMethod}`);
      }
    }
    if (signKey && !hmac) {
      const derived = createPublicKey(signKey);
      if (verifyKey && !derived.equals(verifyKey)) throw new Error("--auth-token: public and private keys don't match");
      verifyKey = derived;
    }
    return new JwtTokens(spec.signMethod, signKey, verifyKey ?? signKey!, spec.ttlMs);
  }

  genTokenPrefix(): string {
    return '';
  }

  assignSimple(): void {}

  async assignJwt(user: string, revision: number): Promise<string> {
    if (!this.signKey) throw new Error('auth: token signing attempted with verify-only key');
    return new SignJWT({ username: user, revision })
      .setProtectedHeader({ alg: this.alg, typ: 'JWT' })
      .setExpirationTime(Math.floor((Date.now() + this.ttlMs) / 1000))
      .sign(this.signKey);
  }

  async info(token: string): Promise<AuthInfo | null> {
    try {
      const { payload } = await jwtVerify(token, this.verifyKey, { algorithms: [this.alg] });
      const user = payload.username;
      const revision = payload.revision;
      if (typeof user !== 'string' || typeof revision !== 'number' || !Number.isSafeInteger(revision) || revision < 0) return null;
      return { user, revision };
    } catch {
      return null;
    }
  }

  invalidateUser(): void {}
  disable(): void {}
  close(): void {}
}

export async function tokenProvider(spec: AuthTokenSpec, simpleTtlMs: number): Promise<TokenProvider> {
  return spec.kind === 'simple' ? new SimpleTokens(simpleTtlMs) : JwtTokens.load(spec);
}
