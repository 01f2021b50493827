import { afterEach, describe, expect, it } from 'vitest';
import type { Message } from '../raft/messages.js';
import { TcpTransport, type TransportObserver } from './tcp.js';

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

describe('TcpTransport observer (etcd_network_peer_* metrics)', () => {
  it('counts bytes per peer both ways and times a heartbeat until its answer', async () => {
    const seen = { sent: new Map<number, number>(), received: new Map<number, number>(), rtt: [] as [number, number][] };
    const add = (m: Map<number, number>, k: number, n: number) => m.set(k, (m.get(k) ?? 0) + n);
    const observer: TransportObserver = {
      sent: (to, n) => add(seen.sent, to, n),
      received: (from, n) => add(seen.received, from, n),
      roundTrip: (to, s) => seen.rtt.push([to, s]),
    };
    const a = await TcpTransport.start({ id: 1, clusterId: 'c', observer });
    const b = await TcpTransport.start({ id: 2, clusterId: 'c' });
    closers.push(() => a.close(), () => b.close());
    a.setPeer(2, { host: '127.0.0.1', port: b.port });
    b.setPeer(1, { host: '127.0.0.1', port: a.port });
    // b answers every heartbeat, as a follower does.
    b.listen((m) => {
      if (m.type === 'heartbeat') b.send([{ type: 'heartbeatResponse', from: 2, to: 1, term: m.term, round: m.round, needAppend: false } satisfies Message]);
    });
    const got: Message[] = [];
    a.listen((m) => got.push(m));
    a.send([{ type: 'heartbeat', from: 1, to: 2, term: 1, commit: 0, round: 0 }]);
    await until('the heartbeat answer', () => got.length === 1);
    expect(seen.rtt).toHaveLength(1);
    expect(seen.rtt[0]![0]).toBe(2);
    expect(seen.rtt[0]![1]).toBeGreaterThan(0);
    expect(seen.rtt[0]![1]).toBeLessThan(5);
    // Bytes out are what a wrote to its connection to 2 (the handshake goes on connect, uncounted).
    expect(seen.sent.get(2)).toBeGreaterThan(0);
    // Bytes in: before b's handshake named it, a chunk counts for peer 0 (etcd's From="0").
    const inbound = (seen.received.get(2) ?? 0) + (seen.received.get(0) ?? 0);
    expect(inbound).toBeGreaterThan(0);
    expect([...seen.received.keys()].every((k) => k === 0 || k === 2)).toBe(true);
    // Only answered heartbeats are timed: a message that is not one starts no clock.
    a.send([{ type: 'timeoutNow', from: 1, to: 2, term: 1 } as Message]);
    a.send([{ type: 'heartbeat', from: 1, to: 2, term: 1, commit: 0, round: 0 }]);
    await until('the second answer', () => got.length === 2);
    expect(seen.rtt).toHaveLength(2);
  });
});
