/**
 * Simple tokens on one member: TTL renewed on use and expiry (an injected clock), the bound on
 * how many are kept (least recently used first), invalidation by user and on auth disable,
 * a token naming an index not yet applied; the bcrypt gate's bounds; --auth-token parsing.
 */
import { describe, expect, it } from 'vitest';
import { BcryptGate, BCRYPT_CONCURRENT_MAX, BCRYPT_QUEUE_MAX } from '../api/auth.js';
import { SIMPLE_TOKENS_MAX, SimpleTokens } from './auth-tokens.js';
import { ConfigError, parseAuthToken, resolveConfig } from './config.js';

describe('simple tokens', () => {
  it('expire after the TTL unused, and each use starts the TTL again', async () => {
    let now = 1_000;
    const t = new SimpleTokens(300_000, () => now);
    const applied = async () => true;
    try {
      expect(t.genTokenPrefix()).toMatch(/^[A-Za-z]{16}$/);
      t.assignSimple('alice', 'AbC.7');
      expect(await t.info('AbC.7', 5, applied)).toEqual({ user: 'alice', revision: 5 });
      now += 299_000;
      expect(await t.info('AbC.7', 5, applied)).not.toBeNull();
      now += 299_000;
      expect(await t.info('AbC.7', 6, applied)).toEqual({ user: 'alice', revision: 6 });
      now += 300_000;
      expect(await t.info('AbC.7', 6, applied)).toBeNull();
      // Malformed tokens never match; a token naming an index not applied in time is refused.
      expect(await t.info('garbage', 6, applied)).toBeNull();
      expect(await t.info('AbC.99', 6, async () => false)).toBeNull();
    } finally {
      t.close();
    }
  });

  it('are dropped for a user (password change, deletion), on auth disable, and beyond SIMPLE_TOKENS_MAX', async () => {
    const t = new SimpleTokens(300_000);
    const applied = async () => true;
    try {
      t.assignSimple('alice', 'A.1');
      t.assignSimple('bob', 'B.2');
      t.invalidateUser('alice');
      expect(await t.info('A.1', 1, applied)).toBeNull();
      expect(await t.info('B.2', 1, applied)).not.toBeNull();
      t.disable();
      expect(await t.info('B.2', 1, applied)).toBeNull();
      for (let i = 0; i < SIMPLE_TOKENS_MAX + 10; i++) t.assignSimple('u', `T.${i}`);
      expect(t.size).toBe(SIMPLE_TOKENS_MAX);
      expect(await t.info('T.0', 1, applied)).toBeNull();
      expect(await t.info(`T.${SIMPLE_TOKENS_MAX + 9}`, 1, applied)).not.toBeNull();
    } finally {
      t.close();
    }
  });
});

describe('bcrypt gate', () => {
  it(`runs ${BCRYPT_CONCURRENT_MAX} at once, queues ${BCRYPT_QUEUE_MAX}, refuses more`, async () => {
    const gate = new BcryptGate();
    let running = 0;
    let peak = 0;
    const release: (() => void)[] = [];
    const job = () =>
      gate.run(
        () =>
          new Promise<void>((r) => {
            running++;
            peak = Math.max(peak, running);
            release.push(() => {
              running--;
              r();
            });
          }),
      );
    const all = Array.from({ length: BCRYPT_CONCURRENT_MAX + BCRYPT_QUEUE_MAX }, job);
    await expect(job()).rejects.toThrow('etcdserver: too many requests');
    while (release.length > 0 || running > 0) {
      await new Promise((r) => setImmediate(r));
      release.shift()?.();
    }
    await Promise.all(all);
    expect(peak).toBe(BCRYPT_CONCURRENT_MAX);
  });
});

describe('--auth-token', () => {
  it('parses etcd\'s syntax and refuses what etcd refuses', () => {
    expect(parseAuthToken('simple')).toEqual({ kind: 'simple' });
    expect(parseAuthToken('jwt,pub-key=/k.pub,priv-key=/k,sign-method=RS256,ttl=10m')).toEqual({ kind: 'jwt', signMethod: 'RS256', pubKeyFile: '/k.pub', privKeyFile: '/k', ttlMs: 600_000 });
    expect(parseAuthToken('jwt,priv-key=/k,sign-method=ES256')).toMatchObject({ ttlMs: 300_000 });
    for (const bad of ['bogus', 'jwt,sign-method=XX', 'jwt,sign-method=RS256', 'jwt,priv-key=/k,sign-method=RS256,extra=1', 'jwt,priv-key', 'simple,ttl=1s']) {
      expect(() => parseAuthToken(bad), bad).toThrow(ConfigError);
    }
    const c = resolveConfig({});
    expect([c.authToken, c.authTokenTtlMs, c.bcryptCost]).toEqual([{ kind: 'simple' }, 300_000, 10]);
    expect(() => resolveConfig({ bcryptCost: 3 })).toThrow(/--bcrypt-cost/);
    expect(() => resolveConfig({ authTokenTtl: 0 })).toThrow(/--auth-token-ttl/);
  });
});
