/**
 * Peer URLs with names: each dial resolves the name again (a peer back under its name at a new
 * address is reached there), and a dial that hangs (a name that does not resolve, a SYN that
 * is never answered) is abandoned after the dial timeout and tried again. The peer that moves
 * and comes back without a goodbye is tested on real addresses in test/netns.test.ts.
 */
import type { LookupFunction } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import type { Message } from '../raft/messages.js';
import { TcpTransport } from './tcp.js';

const hb = (from: number, to: number, commit: number): Message => ({ type: 'heartbeat', from, to, term: 1, commit, round: 0 });

async function until(what: string, f: () => boolean, ms = 10_000): Promise<void> {
  const start = Date.now();
  while (!f()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

/** A resolver for one name whose answer the test sets; `hang` makes the next lookup never answer. */
function resolver(name: string) {
  const r = { address: '127.0.0.1', lookups: 0, hang: false };
  const lookup = ((host: string, opts: unknown, cb: (e: Error | null, address: string | { address: string; family: number }[], family?: number) => void) => {
    r.lookups++;
    if (host !== name) return cb(Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' }), '', 4);
    if (r.hang) {
      r.hang = false;
      return; // never answers
    }
    const all = typeof opts === 'object' && opts !== null && (opts as { all?: boolean }).all;
    if (all) cb(null, [{ address: r.address, family: 4 }]);
    else cb(null, r.address, 4);
  }) as unknown as LookupFunction;
  return { r, lookup };
}

it('resolves a peer\'s name on every dial: a peer back under its name at another address is reached there', async () => {
  const { r, lookup } = resolver('peer.test');
  const a = await TcpTransport.start({ id: 1, clusterId: 'c', listenHost: '127.0.0.1', lookup, backoffMs: [20, 100] });
  closers.push(() => a.close());
  const b1 = await TcpTransport.start({ id: 2, clusterId: 'c', listenHost: '127.0.0.2' });
  b1.setPeer(1, { host: '127.0.0.1', port: a.port });
  const got1: Message[] = [];
  b1.listen((m) => got1.push(m));
  r.address = '127.0.0.2';
  a.setPeer(2, { host: 'peer.test', port: b1.port });
  a.send([hb(1, 2, 1)]);
  await until('b1 gets a heartbeat', () => got1.length > 0);
  const firstLookups = r.lookups;

  // b1 stops; the name now points at 127.0.0.3, where member 2 starts again on the same port.
  const port = b1.port;
  await b1.close();
  r.address = '127.0.0.3';
  const b2 = await TcpTransport.start({ id: 2, clusterId: 'c', listenHost: '127.0.0.3', listenPort: port });
  closers.push(() => b2.close());
  b2.setPeer(1, { host: '127.0.0.1', port: a.port });
  const got2: Message[] = [];
  b2.listen((m) => got2.push(m));
  for (let commit = 2; got2.length === 0; commit++) {
    a.send([hb(1, 2, commit)]);
    await new Promise((res) => setTimeout(res, 20));
    if (commit > 500) throw new Error(`member 2 at its new address never got a heartbeat (lookups ${r.lookups}, stats ${JSON.stringify(a.stats)} ${JSON.stringify(b2.stats)})`);
  }
  expect(r.lookups).toBeGreaterThan(firstLookups);
});

it('abandons a dial that hangs after the dial timeout and dials again', async () => {
  const { r, lookup } = resolver('peer.test');
  const b = await TcpTransport.start({ id: 2, clusterId: 'c', listenHost: '127.0.0.1' });
  closers.push(() => b.close());
  const got: Message[] = [];
  b.listen((m) => got.push(m));
  const a = await TcpTransport.start({ id: 1, clusterId: 'c', listenHost: '127.0.0.1', lookup, dialTimeoutMs: 200, backoffMs: [20, 100] });
  closers.push(() => a.close());
  b.setPeer(1, { host: '127.0.0.1', port: a.port });
  r.hang = true; // the first dial's lookup never answers, as a SYN into a silent network
  a.setPeer(2, { host: 'peer.test', port: b.port });
  for (let commit = 1; got.length === 0; commit++) {
    a.send([hb(1, 2, commit)]);
    await new Promise((res) => setTimeout(res, 20));
    if (commit > 500) throw new Error('no heartbeat arrived: the hung dial was never abandoned');
  }
  expect(r.lookups).toBeGreaterThanOrEqual(2);
});
