/**
 * The client port's TLS layer in this process (serveOnOnePort with a small echo service):
 * the verified client certificate's CN reaches each gRPC call (clientCertCommonName) and no
 * client can claim one by sending the metadata itself; the TLS handshake has a deadline; the
 * connection budget counts TLS connections; a rotated certificate is served to new connections
 * without a restart, and a broken replacement is refused (the old one kept).
 */
import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConnectionBudget, serveOnOnePort, type Listener } from '../src/api/http.js';
import { CLIENT_CN_METADATA, clientCertCommonName } from '../src/api/tls-identity.js';
import { TlsFiles } from '../src/lib/tls-files.js';
import { opensslCiphers } from '../src/server/config.js';
import { issue, makeCa, type KeyPair } from './support/certs.js';

const ident = (b: Buffer) => b;
const ECHO: grpc.ServiceDefinition = {
  WhoAmI: { path: '/test.Identity/WhoAmI', requestStream: false, responseStream: false, requestSerialize: ident, requestDeserialize: ident, responseSerialize: ident, responseDeserialize: ident, originalName: 'WhoAmI' },
};
const Client = grpc.makeGenericClientConstructor(ECHO, 'Identity');

let dir: string;
let ca: KeyPair;
let server: KeyPair;
let server2: KeyPair;
let alice: KeyPair;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'flotilla-client-tls-'));
  ca = makeCa(dir, 'ca');
  server = issue(dir, ca, 'server', { cn: 'server-1' });
  server2 = issue(dir, ca, 'server2', { cn: 'server-2' });
  alice = issue(dir, ca, 'alice', { cn: 'alice', sans: [] });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

const log: string[] = [];
const tlsLog = { info: (m: string) => log.push(m), warn: (m: string) => log.push(m) };

async function listen(o: { tls: boolean; certFile?: string; keyFile?: string; handshakeTimeoutMs?: number; budget?: ConnectionBudget; ciphers?: string }): Promise<Listener> {
  const g = new grpc.Server();
  g.addService(ECHO, { WhoAmI: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from(clientCertCommonName(call) ?? '(none)')) });
  const files = o.tls ? new TlsFiles({ certFile: o.certFile ?? server.cert, keyFile: o.keyFile ?? server.key, caFile: ca.cert, ciphers: o.ciphers ?? null }, tlsLog, 'client TLS') : null;
  const l = await serveOnOnePort({
    host: '127.0.0.1',
    port: 0,
    grpcServer: g,
    http: (_req, res) => res.end(),
    limits: { headerTimeoutMs: 5000, bodyTimeoutMs: 5000, pingMinIntervalMs: 0, streamsMax: 100 },
    budget: o.budget ?? new ConnectionBudget(100),
    ...(files ? { tls: { files, clientCertAuth: true, log: tlsLog, ...(o.handshakeTimeoutMs ? { handshakeTimeoutMs: o.handshakeTimeoutMs } : {}) } } : {}),
  });
  closers.push(() => l.close());
  closers.push(() => g.forceShutdown());
  return l;
}

function whoAmI(port: number, creds: grpc.ChannelCredentials, forged?: string): Promise<string> {
  const c = new Client(`127.0.0.1:${port}`, creds);
  closers.push(() => c.close());
  const md = new grpc.Metadata();
  if (forged !== undefined) md.set(CLIENT_CN_METADATA, Buffer.from(forged));
  // The client (its connection) is closed once answered: the budget tests count connections.
  return new Promise<string>((resolve, reject) =>
    (c as unknown as { WhoAmI: (r: Buffer, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: Error | null, r?: Buffer) => void) => void }).WhoAmI(Buffer.alloc(0), md, { deadline: Date.now() + 5000 }, (e, r) => (e ? reject(e) : resolve(r!.toString()))),
  ).finally(() => c.close());
}

const mtls = () => grpc.credentials.createSsl(readFileSync(ca.cert), readFileSync(alice.key), readFileSync(alice.cert));

/** The serial of the certificate a new TLS connection to `port` is served. */
function servedSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca: readFileSync(ca.cert), cert: readFileSync(alice.cert), key: readFileSync(alice.key) }, () => {
      resolve(s.getPeerCertificate().serialNumber);
      s.destroy();
    });
    s.on('error', reject);
  });
}

/** Resolves once `check()` holds; polls, bounded by UNTIL_TIMEOUT_MS (a condition, not a pause). */
const UNTIL_TIMEOUT_MS = 20_000;
async function until(check: () => boolean, what: string): Promise<void> {
  for (const start = Date.now(); !check(); await new Promise((r) => setTimeout(r, 10))) {
    if (Date.now() - start > UNTIL_TIMEOUT_MS) throw new Error(`timed out waiting for ${what}`);
  }
}

const serialOf = (f: string) => new X509Certificate(readFileSync(f)).serialNumber;

describe('client port TLS', () => {
  it('the verified certificate\'s CN reaches each call; a forged CN header is replaced (TLS) or dropped (plain)', async () => {
    const secure = await listen({ tls: true });
    expect(await whoAmI(secure.port, mtls())).toBe('alice');
    expect(await whoAmI(secure.port, mtls(), 'root')).toBe('alice');
    const plain = await listen({ tls: false });
    expect(await whoAmI(plain.port, grpc.credentials.createInsecure(), 'root')).toBe('(none)');
    expect(await whoAmI(plain.port, grpc.credentials.createInsecure())).toBe('(none)');
  });

  it('a connection that does not complete its TLS handshake is closed at the deadline', async () => {
    const l = await listen({ tls: true, handshakeTimeoutMs: 300 });
    const s = netConnect({ host: '127.0.0.1', port: l.port });
    s.on('error', () => {});
    closers.push(() => void s.destroy());
    const start = Date.now();
    await new Promise((r) => s.once('close', r));
    expect(Date.now() - start).toBeGreaterThanOrEqual(250);
    expect(log.some((m) => /TLS handshake with a client from .* failed/.test(m))).toBe(true);
  });

  it('the connection budget counts TLS connections before their handshake', async () => {
    const budget = new ConnectionBudget(1);
    const l = await listen({ tls: true, budget });
    const first = netConnect({ host: '127.0.0.1', port: l.port });
    first.on('error', () => {});
    closers.push(() => void first.destroy());
    await new Promise((r) => first.once('connect', r));
    await until(() => budget.open === 1, 'the server to count the first connection');
    await expect(whoAmI(l.port, mtls())).rejects.toThrow(/UNAVAILABLE/);
    // Its place comes back once the server has seen it close (not after some time: a loaded
    // machine may take longer than any fixed pause to deliver the close).
    first.destroy();
    await until(() => budget.open === 0, 'the server to give the closed connection\'s place back');
    expect(await whoAmI(l.port, mtls())).toBe('alice');
    // A connection the server closes (a refused certificate) gives its place back too.
    for (let i = 0; i < 3; i++) {
      await until(() => budget.open === 0, 'the answered connection\'s place back');
      await expect(whoAmI(l.port, grpc.credentials.createSsl(readFileSync(ca.cert)))).rejects.toThrow(/UNAVAILABLE/);
      await until(() => budget.open === 0, 'the refused connection\'s place back');
      expect(await whoAmI(l.port, mtls())).toBe('alice');
    }
  });

  it('rotation: new connections get the certificate written over the old files; a broken one is refused and the old kept', async () => {
    const certFile = join(dir, 'rot.pem');
    const keyFile = join(dir, 'rot-key.pem');
    copyFileSync(server.cert, certFile);
    copyFileSync(server.key, keyFile);
    const l = await listen({ tls: true, certFile, keyFile });
    expect(await servedSerial(l.port)).toBe(serialOf(server.cert));
    // A key that does not match: logged, the old certificate stays.
    writeFileSync(`${keyFile}.tmp`, readFileSync(server2.key));
    renameSync(`${keyFile}.tmp`, keyFile);
    for (const start = Date.now(); !log.some((m) => /do not load/.test(m)); ) {
      if (Date.now() - start > 10_000) throw new Error('no log line for the broken files');
      expect(await servedSerial(l.port)).toBe(serialOf(server.cert));
      await new Promise((r) => setTimeout(r, 100));
    }
    // Then the matching certificate: served to new connections.
    writeFileSync(`${certFile}.tmp`, readFileSync(server2.cert));
    renameSync(`${certFile}.tmp`, certFile);
    for (const start = Date.now(); (await servedSerial(l.port)) !== serialOf(server2.cert); ) {
      if (Date.now() - start > 10_000) throw new Error('the rotated certificate was not served');
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await whoAmI(l.port, mtls())).toBe('alice');
  });

  it('--cipher-suites (mapped to OpenSSL names) limits TLS 1.2; TLS 1.3 keeps its suites, as in Go', async () => {
    const l = await listen({ tls: true, ciphers: opensslCiphers('TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305')! });
    const hello = (o: { maxVersion?: 'TLSv1.2'; ciphers?: string }) =>
      new Promise<string>((resolve) => {
        const s = tlsConnect({ host: '127.0.0.1', port: l.port, ca: readFileSync(ca.cert), cert: readFileSync(alice.cert), key: readFileSync(alice.key), ...o }, () => {
          resolve(`${s.getProtocol()} ${s.getCipher().name}`);
          s.destroy();
        });
        s.on('error', (e: NodeJS.ErrnoException) => resolve(`refused: ${e.code}`));
      });
    expect(await hello({ maxVersion: 'TLSv1.2' })).toBe('TLSv1.2 ECDHE-ECDSA-CHACHA20-POLY1305');
    expect(await hello({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' })).toMatch(/^refused: /);
    expect(await hello({})).toMatch(/^TLSv1\.3 /);
  });
});
