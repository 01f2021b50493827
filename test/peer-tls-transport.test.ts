/**
 * TLS between members at the transport (TcpTransport with peer mTLS, in this process): members
 * with certificates from the cluster's CA exchange messages; a stranger that knows everything
 * else (cluster id, member ids, the frame format) — without a certificate, with one from another
 * CA, or with the right CA but another CN than --peer-cert-allowed-cn — gets the connection
 * closed after the TLS handshake, not one frame delivered, and the refusal logged. The control:
 * the same forged frames from a connection with a member's certificate *are* delivered (which a
 * Byzantine member could do; TLS keeps out non-members), so the test sees an accepted message
 * when there is one.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TlsFiles } from '../src/lib/tls-files.js';
import type { Message } from '../src/raft/messages.js';
import { encodeHandshake, encodeMessage, PROTOCOL_VERSION } from '../src/transport/codec.js';
import { TcpTransport, type PeerTls } from '../src/transport/tcp.js';
import { issue, makeCa, type KeyPair } from './support/certs.js';

let dir: string;
let ca: KeyPair;
let member: KeyPair;
let otherCa: KeyPair;
let stranger: KeyPair;
let wrongCn: KeyPair;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'flotilla-peer-tls-'));
  ca = makeCa(dir, 'ca');
  otherCa = makeCa(dir, 'other-ca');
  member = issue(dir, ca, 'member', { cn: 'member' });
  stranger = issue(dir, otherCa, 'stranger', { cn: 'member' });
  wrongCn = issue(dir, ca, 'wrong-cn', { cn: 'intruder' });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

const forgedAppend = (term: number): Message => ({ type: 'append', from: 1, to: 2, term, prevLogIndex: 0, prevLogTerm: 0, commit: 1, entries: [{ term, index: 1, type: 'normal', data: new Uint8Array([1, 2, 3]) }] });
const forgedTimeoutNow: Message = { type: 'timeoutNow', from: 1, to: 2, term: 5 };
const hello = encodeHandshake({ clusterId: 'c', from: 1, to: 2, version: PROTOCOL_VERSION });

async function until(what: string, f: () => boolean, ms = 5000): Promise<void> {
  const start = Date.now();
  while (!f()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function peerTls(o: Partial<PeerTls> = {}): PeerTls {
  const files = new TlsFiles({ certFile: member.cert, keyFile: member.key, caFile: ca.cert }, { info() {}, warn() {} }, 'peer TLS');
  return { files, listen: true, clientCertAuth: true, allowedCn: 'member', verifyPeer: true, ...o };
}

/** Member 2 with peer mTLS; everything it receives and logs. */
async function member2(): Promise<{ t: TcpTransport; got: Message[]; log: string[] }> {
  const log: string[] = [];
  const t = await TcpTransport.start({ id: 2, clusterId: 'c', tls: peerTls(), logger: { debug() {}, info: (m) => log.push(m), warn: (m) => log.push(m) } });
  t.setPeer(1, { host: '127.0.0.1', port: 1, tls: true });
  const got: Message[] = [];
  t.listen((m) => got.push(m));
  closers.push(() => t.close());
  return { t, got, log };
}

/** Connects (plain, or TLS with `cert`), sends the handshake and the forged messages; resolves when the member closed the connection or after `ms`. */
async function attack(port: number, cert: KeyPair | 'none-tls' | null, ms = 1500): Promise<{ closed: boolean; secure: boolean }> {
  let secure = false;
  const s: Socket = cert === null
    ? netConnect({ host: '127.0.0.1', port })
    : tlsConnect({ host: '127.0.0.1', port, ca: readFileSync(ca.cert), ...(cert === 'none-tls' ? {} : { cert: readFileSync(cert.cert), key: readFileSync(cert.key) }) });
  closers.push(() => void s.destroy());
  s.on('error', () => {});
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ closed: false, secure }), ms);
    s.once('close', () => {
      clearTimeout(timer);
      resolve({ closed: true, secure });
    });
    s.once(cert === null ? 'connect' : 'secureConnect', () => {
      secure = cert !== null;
      s.write(Buffer.concat([hello, encodeMessage(forgedAppend(3)), encodeMessage(forgedTimeoutNow)]));
    });
  });
}

describe('peer mTLS at the transport', () => {
  it('members with the CA\'s certificate exchange messages', async () => {
    const m2 = await member2();
    const t1 = await TcpTransport.start({ id: 1, clusterId: 'c', tls: peerTls(), peers: new Map([[2, { host: '127.0.0.1', port: m2.t.port, tls: true }]]) });
    closers.push(() => t1.close());
    t1.send([{ type: 'heartbeat', from: 1, to: 2, term: 1, commit: 0, round: 0 }]);
    await until('the heartbeat', () => m2.got.length === 1);
    expect(m2.got[0]!.type).toBe('heartbeat');
  });

  it('control: forged frames on a connection with a member certificate are delivered (the attack itself works)', async () => {
    const m2 = await member2();
    await attack(m2.t.port, member, 300);
    await until('the forged messages', () => m2.got.length === 2);
    expect(m2.got.map((m) => m.type)).toEqual(['append', 'timeoutNow']);
  });

  it('no certificate, plain TCP, another CA\'s certificate, another CN: closed, nothing delivered, logged', async () => {
    const m2 = await member2();
    const cases: [string, KeyPair | 'none-tls' | null, RegExp][] = [
      ['plain TCP', null, /TLS handshake failed/],
      ['TLS without a certificate', 'none-tls', /certificate is not trusted \(no certificate\)/],
      ['a certificate from another CA', stranger, /certificate is not trusted \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/],
      ['the right CA, another CN', wrongCn, /CN "intruder" is not the allowed CN "member"/],
    ];
    for (const [what, cert, logged] of cases) {
      const before = m2.log.length;
      const r = await attack(m2.t.port, cert);
      expect(r.closed, what).toBe(true);
      await until(`the refusal of ${what} in the log`, () => m2.log.slice(before).some((l) => logged.test(l)));
    }
    expect(m2.got).toEqual([]);
    expect(m2.t.stats.received).toBe(0);
    expect(m2.t.stats.refused).toBe(cases.length);
  });
});
