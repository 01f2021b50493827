/**
 * The peer port is bounded before trust: frame lengths checked against the connection's stage
 * before buffering, a handshake deadline, idle connections closed, caps on strangers'
 * connections (in total and per remote address) and one connection per member.
 */
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Message } from '../raft/messages.js';
import { encodeHandshake, encodeMemberFrame, encodeMessage, HANDSHAKE_FRAME_BYTES_MAX, PROTOCOL_VERSION } from './codec.js';
import { PEER_HANDSHAKE_TIMEOUT_MS, PEER_IDLE_TIMEOUT_MS, PEER_UNAUTHENTICATED_CONNECTIONS_MAX, PEER_UNAUTHENTICATED_PER_ADDRESS_MAX, TcpTransport, type TcpTransportOptions } from './tcp.js';

const hb = (from: number, to: number, commit: number): Message => ({ type: 'heartbeat', from, to, term: 1, commit, round: 0 });

async function until(what: string, f: () => boolean, ms = 5000): Promise<void> {
  const start = Date.now();
  while (!f()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

/** Member 2, with member 1 (and 3) as known peers that never listen. */
async function member2(o: Partial<TcpTransportOptions> = {}): Promise<TcpTransport> {
  const t = await TcpTransport.start({ id: 2, clusterId: 'c', ...o });
  t.setPeer(1, { host: '127.0.0.1', port: 1 });
  t.setPeer(3, { host: '127.0.0.1', port: 1 });
  closers.push(() => t.close());
  return t;
}

interface Conn {
  socket: Socket;
  closed: boolean;
}

/** A raw connection to `port` (from `localAddress`), tracking whether the other side closed it. */
async function open(port: number, localAddress = '127.0.0.1'): Promise<Conn> {
  const socket = connect({ host: '127.0.0.1', port, localAddress });
  const c: Conn = { socket, closed: false };
  socket.on('error', () => {});
  socket.on('close', () => (c.closed = true));
  closers.push(() => void socket.destroy());
  await new Promise<void>((resolve) => {
    socket.once('connect', () => resolve());
    socket.once('close', () => resolve());
  });
  return c;
}

const hello = (from: number) => encodeHandshake({ clusterId: 'c', from, to: 2, version: PROTOCOL_VERSION });

/** Lets the member handle everything sent so far (a round trip through its event loop). */
const settle = () => new Promise((r) => setTimeout(r, 100));

describe('peer port limits', () => {
  it('names its limits', () => {
    expect(HANDSHAKE_FRAME_BYTES_MAX).toBe(1024);
    expect(PEER_HANDSHAKE_TIMEOUT_MS).toBe(5000);
    expect(PEER_IDLE_TIMEOUT_MS).toBe(30_000);
    expect(PEER_UNAUTHENTICATED_CONNECTIONS_MAX).toBeGreaterThan(PEER_UNAUTHENTICATED_PER_ADDRESS_MAX);
  });

  it('refuses to start with a cluster id whose handshake peers would refuse', async () => {
    await expect(TcpTransport.start({ id: 1, clusterId: 'x'.repeat(HANDSHAKE_FRAME_BYTES_MAX) })).rejects.toThrow(/shorter --initial-cluster-token/);
  });

  it('a 256 MiB frame length before the handshake closes the connection at once, without buffering it', async () => {
    const b = await member2();
    const before = process.memoryUsage().arrayBuffers;
    const conns = await Promise.all([1, 2, 3, 4].map(() => open(b.port)));
    const head = Buffer.alloc(4);
    head.writeUInt32LE(256 << 20);
    // The length, and then a MiB of the body: the member must not wait for (or keep) any of it.
    for (const c of conns) c.socket.write(Buffer.concat([head, Buffer.alloc(1 << 20, 1)]));
    await until('every connection closed by the member', () => conns.every((c) => c.closed));
    expect(b.stats.refused).toBe(4);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 << 20);
    // A frame just over the handshake limit is refused too; one within it is read (and is not a handshake).
    const over = await open(b.port);
    head.writeUInt32LE(HANDSHAKE_FRAME_BYTES_MAX + 1);
    over.socket.write(head);
    await until('the over-limit connection closed', () => over.closed);
    expect(b.stats.refused).toBe(5);
  });

  it('after the handshake the data limit applies, also to frames in the handshake chunk', async () => {
    const b = await member2({ frameBytesMax: 1 << 20 });
    const got: Message[] = [];
    b.listen((m) => got.push(m));
    const members: [number, Uint8Array][] = [];
    b.onMember((from, body) => members.push([from, body]));
    const c = await open(b.port);
    const append: Message = { type: 'append', from: 1, to: 2, term: 2, prevLogIndex: 5, prevLogTerm: 1, commit: 4, entries: [{ index: 6, term: 2, type: 'normal', data: new Uint8Array(4 * 1024).fill(7) }] };
    // Both frames larger than a handshake may be.
    const body = new Uint8Array(2 * 1024).fill(9);
    c.socket.write(Buffer.concat([hello(1), encodeMessage(append), encodeMemberFrame(1, 2, body)]));
    await until('the append and the member frame', () => got.length === 1 && members.length === 1);
    expect(got[0]).toEqual(append);
    expect(members[0]).toEqual([1, body]);
    // A member frame naming another sender is malformed.
    c.socket.write(encodeMemberFrame(3, 2, body));
    await until('the forged member frame closes the connection', () => c.closed);
    expect(b.stats.malformed).toBe(1);
    expect(members.length).toBe(1);
  });

  it('closes a connection that has not completed its handshake by the deadline, even if it trickles bytes', async () => {
    const b = await member2({ handshakeTimeoutMs: 300 });
    const silent = await open(b.port);
    const trickle = await open(b.port);
    const h = hello(1);
    let i = 0;
    const timer = setInterval(() => {
      if (i < h.length - 1 && !trickle.closed) trickle.socket.write(h.subarray(i, ++i));
    }, 20);
    closers.push(() => clearInterval(timer));
    const t0 = Date.now();
    await until('both closed', () => silent.closed && trickle.closed);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(b.stats.timedOut).toBe(2);
    // A connection that completes its handshake in time stays.
    const good = await open(b.port);
    good.socket.write(hello(1));
    await new Promise((r) => setTimeout(r, 600));
    expect(good.closed).toBe(false);
  });

  it('closes an authenticated connection silent past the idle timeout; one that keeps talking stays', async () => {
    const b = await member2({ idleTimeoutMs: 300 });
    let got = 0;
    b.listen(() => got++);
    const quiet = await open(b.port);
    quiet.socket.write(hello(1));
    const talking = await open(b.port);
    talking.socket.write(hello(3));
    const timer = setInterval(() => talking.socket.write(encodeMessage(hb(3, 2, 1))), 50);
    closers.push(() => clearInterval(timer));
    await until('the quiet connection closed', () => quiet.closed);
    expect(b.stats.timedOut).toBe(1);
    const n = got;
    await until('more heartbeats on the talking connection', () => got > n + 5);
    expect(talking.closed).toBe(false);
  });

  it('caps connections waiting for their handshake, in total and per remote address', async () => {
    const b = await member2({ unauthenticatedMax: 5, unauthenticatedPerAddressMax: 3 });
    const fromA = [];
    for (let i = 0; i < 3; i++) fromA.push(await open(b.port, '127.0.0.1'));
    const fourthA = await open(b.port, '127.0.0.1');
    await until('the 4th from one address refused', () => fourthA.closed);
    expect(b.stats.overLimit).toBe(1);
    const fromB = [await open(b.port, '127.0.0.2'), await open(b.port, '127.0.0.2')];
    const sixth = await open(b.port, '127.0.0.3');
    await until('the 6th in total refused', () => sixth.closed);
    expect(b.stats.overLimit).toBe(2);
    await settle();
    expect([...fromA, ...fromB].every((c) => !c.closed)).toBe(true);
    // A handshake frees its slot.
    fromA[0]!.socket.write(hello(1));
    await settle();
    const again = await open(b.port, '127.0.0.1');
    await settle();
    expect(again.closed).toBe(false);
    expect(b.stats.overLimit).toBe(2);
  });

  it('keeps one connection per member (the newer wins) and refuses members it does not know', async () => {
    const b = await member2();
    const got: Message[] = [];
    b.listen((m) => got.push(m));
    const first = await open(b.port);
    first.socket.write(Buffer.concat([hello(1), encodeMessage(hb(1, 2, 1))]));
    await until('the first heartbeat', () => got.length === 1);
    const second = await open(b.port);
    second.socket.write(Buffer.concat([hello(1), encodeMessage(hb(1, 2, 2))]));
    await until('the first connection replaced', () => first.closed && got.length === 2);
    expect(second.closed).toBe(false);
    const stranger = await open(b.port);
    stranger.socket.write(encodeHandshake({ clusterId: 'c', from: 9, to: 2, version: PROTOCOL_VERSION }));
    await until('the unknown member refused', () => stranger.closed);
    const self = await open(b.port);
    self.socket.write(encodeHandshake({ clusterId: 'c', from: 2, to: 2, version: PROTOCOL_VERSION }));
    await until('a handshake claiming our own id refused', () => self.closed);
    expect(b.stats.refused).toBe(2);
  });

  it('a member channel between two transports, and its drop at a full queue', async () => {
    const a = await TcpTransport.start({ id: 1, clusterId: 'c', queueMessagesMax: 4 });
    const b = await member2();
    closers.push(() => a.close());
    a.setPeer(2, { host: '127.0.0.1', port: b.port });
    const got: string[] = [];
    b.onMember((from, body) => got.push(`${from}:${Buffer.from(body).toString()}`));
    // Not sent without a connection (the caller may retry at once); Raft's traffic makes one.
    expect(a.sendMember(2, Buffer.from('early'))).toBe(false);
    let raft = 0;
    b.listen(() => raft++);
    await until('a connection', () => {
      a.send([hb(1, 2, 1)]);
      return raft > 0;
    });
    expect(a.sendMember(2, Buffer.from('hello'))).toBe(true);
    await until('delivery', () => got.length === 1);
    expect(got).toEqual(['1:hello']);
    expect(a.sendMember(9, Buffer.from('nobody'))).toBe(false);
    const sent = [1, 2, 3, 4, 5, 6].map((i) => a.sendMember(2, Buffer.from(String(i))));
    expect(sent).toEqual([true, true, true, true, false, false]);
  });
});
