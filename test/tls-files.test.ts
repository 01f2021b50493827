/**
 * TlsFiles (src/lib/tls-files.ts): certificate files are looked at no more often than
 * TLS_FILES_CHECK_INTERVAL_MS, a change is picked up after it, files that do not load are kept
 * out (logged once, the previous material served), files over TLS_FILE_BYTES_MAX are refused,
 * and ensureSelfSigned makes a certificate for the hosts given.
 */
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureSelfSigned, TLS_FILE_BYTES_MAX, TLS_FILES_CHECK_INTERVAL_MS, TlsFiles } from '../src/lib/tls-files.js';
import { issue, makeCa, type KeyPair } from './support/certs.js';

let dir: string;
let a: KeyPair;
let b: KeyPair;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'flotilla-tls-files-'));
  const ca = makeCa(dir, 'ca');
  a = issue(dir, ca, 'a', { cn: 'a' });
  b = issue(dir, ca, 'b', { cn: 'b' });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cn = (pem: unknown) => new X509Certificate(pem as Buffer).subject;

describe('TlsFiles', () => {
  it('looks at the files at most every TLS_FILES_CHECK_INTERVAL_MS; keeps the old material when the new does not load', () => {
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    copyFileSync(a.cert, cert);
    copyFileSync(a.key, key);
    let now = 1_000_000;
    const log: string[] = [];
    const f = new TlsFiles({ certFile: cert, keyFile: key }, { info: (m) => log.push(m), warn: (m) => log.push(m) }, 'test TLS', () => now);
    expect(cn(f.current().options.cert)).toBe('CN=a');
    // A certificate without its key: not loaded, logged once, the old one kept.
    now += TLS_FILES_CHECK_INTERVAL_MS;
    copyFileSync(b.cert, cert);
    expect(cn(f.current().options.cert)).toBe('CN=a');
    now += TLS_FILES_CHECK_INTERVAL_MS;
    expect(cn(f.current().options.cert)).toBe('CN=a');
    expect(log.filter((l) => /do not load/.test(l))).toHaveLength(1);
    // The key follows: within the interval nothing is looked at; after it, the new pair.
    copyFileSync(b.key, key);
    now += TLS_FILES_CHECK_INTERVAL_MS - 1;
    expect(cn(f.current().options.cert)).toBe('CN=a');
    now += 1;
    const m = f.current();
    expect(cn(m.options.cert)).toBe('CN=b');
    expect(m.generation).toBe(1);
    expect(log.some((l) => /test TLS: reloaded .*CN=b/.test(l))).toBe(true);
  });

  it('refuses a file over TLS_FILE_BYTES_MAX', () => {
    const big = join(dir, 'big.pem');
    writeFileSync(big, Buffer.concat([readFileSync(a.cert), Buffer.alloc(TLS_FILE_BYTES_MAX)]));
    expect(() => new TlsFiles({ certFile: big, keyFile: a.key }, { info() {}, warn() {} }, 'x')).toThrow(/more than 1048576/);
  });

  it('ensureSelfSigned: a certificate for the hosts given, made once', () => {
    const cert = join(dir, 'auto/cert.pem');
    const key = join(dir, 'auto/key.pem');
    const log: string[] = [];
    ensureSelfSigned(cert, key, ['127.0.0.1', 'localhost'], { info: (m) => log.push(m), warn: (m) => log.push(m) });
    const c = new X509Certificate(readFileSync(cert));
    expect(c.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(c.checkHost('localhost')).toBe('localhost');
    ensureSelfSigned(cert, key, ['127.0.0.1'], { info: (m) => log.push(m), warn: (m) => log.push(m) });
    expect(log).toHaveLength(1);
  });
});
