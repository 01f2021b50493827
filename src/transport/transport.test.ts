import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Message } from '../raft/messages.js';
import type { Transport } from '../node/node.js';
import { encodeHandshake, encodeMessage } from './codec.js';
import { MemoryNetwork } from './memory.js';
import { TcpTransport, type PeerLink } from './tcp.js';

const hb = (from: number, to: number, commit: number): Message => ({ type: 'heartbeat', from, to, term: 1, commit, round: 0 });
const app = (from: number, to: number, size: number): Message => ({
  type: 'append',
  from,
  to,
  term: 2,
  prevLogIndex: 5,
  prevLogTerm: 1,
  commit: 4,
  entries: [{ index: 6, term: 2, type: 'normal', data: new Uint8Array(size).fill(7) }],
});

async function until(what: string, f: () => boolean, ms = 5000): Promise<void> {
  const start = Date.now();
  while (!f()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

interface Pair {
  a: Transport;
  b: Transport;
}

const kinds: { name: string; make(): Promise<Pair> }[] = [
  {
    name: 'memory',
    async make() {
      const net = new MemoryNetwork();
      return { a: net.endpoint(1), b: net.endpoint(2) };
    },
  },
  {
    name: 'tcp',
    async make() {
      return makeTcpLinks();
    },
  },
  {
    name: 'memory link',
    async make() {
      return makeMemoryLinks();
    },
  },
];

async function makeTcpLinks(): Promise<{ a: PeerLink; b: PeerLink }> {
  const a = await TcpTransport.start({ id: 1, clusterId: 'c1' });
  const b = await TcpTransport.start({ id: 2, clusterId: 'c1' });
  a.setPeer(2, { host: '127.0.0.1', port: b.port });
  b.setPeer(1, { host: '127.0.0.1', port: a.port });
  closers.push(() => a.close(), () => b.close());
  return { a, b };
}

async function makeMemoryLinks(): Promise<{ a: PeerLink; b: PeerLink }> {
  const net = new MemoryNetwork();
  const a = net.link(1);
  const b = net.link(2);
  a.setPeer(2, { host: 'unused', port: 0 });
  b.setPeer(1, { host: 'unused', port: 0 });
  closers.push(() => a.close(), () => b.close());
  return { a, b };
}

/** What a server member needs of its peer link (PeerLink): TcpTransport and MemoryNetwork.link alike. */
for (const k of [{ name: 'tcp', make: makeTcpLinks }, { name: 'memory link', make: makeMemoryLinks }]) {
  describe(`peer link conformance: ${k.name}`, () => {
    it('member frames, heardFrom, the peer set; a removed peer gets nothing more', async () => {
      const { a, b } = await k.make();
      const atB: [number, string][] = [];
      let raftAtB = 0;
      b.onMember((from, body) => atB.push([from, Buffer.from(body).toString()]));
      b.listen(() => raftAtB++);
      a.onMember(() => undefined);
      a.listen(() => undefined);
      expect(b.heardFrom(1)).toBe(0);
      // Raft's traffic first: member frames go only over a live connection (TCP dials on a send).
      a.send([hb(1, 2, 1)]);
      await until('a heartbeat', () => raftAtB === 1);
      expect(b.heardFrom(1)).toBeGreaterThan(0);
      expect(a.sendMember(2, Buffer.from('one'))).toBe(true);
      expect(a.sendMember(2, Buffer.from('two'))).toBe(true);
      await until('member frames', () => atB.length === 2);
      expect(atB).toEqual([
        [1, 'one'],
        [1, 'two'],
      ]);
      expect(a.peerIds()).toEqual([2]);
      // An unknown peer: dropped at once.
      expect(a.sendMember(3, Buffer.from('x'))).toBe(false);
      a.removePeer(2);
      expect(a.peerIds()).toEqual([]);
      expect(a.sendMember(2, Buffer.from('three'))).toBe(false);
      expect(atB.length).toBe(2);
    });
  });
}

for (const k of kinds) {
  describe(`transport conformance: ${k.name}`, () => {
    it('delivers messages both ways, in order, with their bytes intact', async () => {
      const { a, b } = await k.make();
      const atA: Message[] = [];
      const atB: Message[] = [];
      a.listen((m) => atA.push(m));
      b.listen((m) => atB.push(m));
      a.send([hb(1, 2, 1), app(1, 2, 5000), hb(1, 2, 2)]);
      b.send([hb(2, 1, 9)]);
      await until('delivery', () => atB.length === 3 && atA.length === 1);
      expect(atB.map((m) => m.type)).toEqual(['heartbeat', 'append', 'heartbeat']);
      expect(atB[1]).toEqual(app(1, 2, 5000));
      expect(atA[0]).toEqual(hb(2, 1, 9));
    });
  });
}

describe('TCP transport', () => {
  it('refuses a peer from another cluster and says why', async () => {
    const warnings: string[] = [];
    const logger = { debug() {}, info() {}, warn: (m: string) => warnings.push(m) };
    const b = await TcpTransport.start({ id: 2, clusterId: 'prod', logger });
    const a = await TcpTransport.start({ id: 1, clusterId: 'staging' });
    closers.push(() => a.close(), () => b.close());
    a.setPeer(2, { host: '127.0.0.1', port: b.port });
    const got: Message[] = [];
    b.listen((m) => got.push(m));
    a.send([hb(1, 2, 1)]);
    await until('refusal', () => b.stats.refused === 1);
    expect(got).toEqual([]);
    expect(warnings.join('\n')).toContain('cluster id "staging" does not match ours ("prod")');
  });

  it('survives garbage, truncated frames and oversized lengths on its port', async () => {
    const b = await TcpTransport.start({ id: 2, clusterId: 'c', frameBytesMax: 1 << 20 });
    closers.push(() => b.close());
    b.setPeer(1, { host: '127.0.0.1', port: 1 });
    const got: Message[] = [];
    b.listen((m) => got.push(m));
    const blast = (bytes: Uint8Array): Promise<void> =>
      new Promise((resolve) => {
        const s = connect({ host: '127.0.0.1', port: b.port }, () => s.end(bytes));
        s.on('close', () => resolve());
        s.on('error', () => resolve());
      });
    await blast(new TextEncoder().encode('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await blast(Uint8Array.of(0xff, 0xff, 0xff, 0x7f, 1, 2, 3));
    const hs = encodeHandshake({ clusterId: 'c', from: 1, to: 2, version: 1 });
    const good = encodeMessage(hb(1, 2, 3));
    await blast(Buffer.concat([hs, good, Uint8Array.of(9, 0, 0, 0, 200, 1, 2)]));
    const bad = Buffer.from(encodeMessage(hb(1, 2, 4)));
    bad[4] = 99; // unknown kind
    await blast(Buffer.concat([hs, bad]));
    await until('the member to process all of it', () => b.stats.refused + b.stats.malformed >= 3);
    // The one well-formed message got through; the rest only closed their connections.
    expect(got).toEqual([hb(1, 2, 3)]);
    // And the member still works.
    const a = await TcpTransport.start({ id: 1, clusterId: 'c' });
    closers.push(() => a.close());
    a.setPeer(2, { host: '127.0.0.1', port: b.port });
    a.send([hb(1, 2, 5)]);
    await until('a real peer', () => got.length === 2);
  });

  it('reconnects after the peer restarts on the same port', async () => {
    const a = await TcpTransport.start({ id: 1, clusterId: 'c', backoffMs: [10, 50] });
    let b = await TcpTransport.start({ id: 2, clusterId: 'c' });
    const port = b.port;
    closers.push(() => a.close());
    a.setPeer(2, { host: '127.0.0.1', port });
    b.setPeer(1, { host: '127.0.0.1', port: a.port });
    let got = 0;
    b.listen(() => got++);
    a.send([hb(1, 2, 1)]);
    await until('first delivery', () => got === 1);
    await b.close();
    b = await TcpTransport.start({ id: 2, clusterId: 'c', listenPort: port });
    closers.push(() => b.close());
    b.setPeer(1, { host: '127.0.0.1', port: a.port });
    let got2 = 0;
    b.listen(() => got2++);
    // Raft keeps sending (heartbeats); some are lost while the link is down, later ones arrive.
    await until('delivery after restart', () => {
      a.send([hb(1, 2, 2)]);
      return got2 > 0;
    });
  });

  it('drops and counts messages beyond the per-peer queue bound', async () => {
    const a = await TcpTransport.start({ id: 1, clusterId: 'c', queueMessagesMax: 10 });
    closers.push(() => a.close());
    a.setPeer(2, { host: '127.0.0.1', port: 1 }); // nobody listens there
    a.send(Array.from({ length: 25 }, (_, i) => hb(1, 2, i)));
    expect(a.stats.dropped).toBe(15);
  });
});
