/**
 * The join query on the peer port (a joining member asks for the cluster before any handshake)
 * and the peer table changing at runtime (a member added, moved, removed).
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { Message } from '../raft/messages.js';
import { decodeJoinQuery, encodeJoinQuery, queryJoin } from './join.js';
import { TcpTransport } from './tcp.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

async function transport(id: number, onJoinQuery?: (token: string) => Uint8Array | null): Promise<TcpTransport> {
  const t = await TcpTransport.start({ id, clusterId: 'c', backoffMs: [10, 50], ...(onJoinQuery ? { onJoinQuery } : {}) });
  closers.push(() => t.close());
  return t;
}

async function waitFor(f: () => boolean, what: string, ms = 5000): Promise<void> {
  for (const deadline = Date.now() + ms; !f(); await new Promise((r) => setTimeout(r, 10))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
}

const heartbeat = (from: number, to: number): Message => ({ type: 'heartbeat', from, to, term: 1, commit: 0, round: 0 });

describe('join query', () => {
  it('the query codec round-trips; other bodies are not queries (and never throw)', () => {
    const q = encodeJoinQuery('my-token');
    expect(decodeJoinQuery(q.subarray(4))).toBe('my-token');
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (b) => void decodeJoinQuery(b)));
  });

  it('is answered only for the cluster token, then the connection closes; without a handler it is refused', async () => {
    const t = await transport(1, (token) => (token === 'tok' ? new TextEncoder().encode('the cluster') : null));
    const answer = await queryJoin('127.0.0.1', t.port, 'tok');
    expect(answer && new TextDecoder().decode(answer)).toBe('the cluster');
    expect(await queryJoin('127.0.0.1', t.port, 'other', 2000)).toBeNull();
    expect(t.stats.refused).toBe(1);
    const none = await transport(2);
    expect(await queryJoin('127.0.0.1', none.port, 'tok', 2000)).toBeNull();
    expect(none.stats.refused).toBe(1);
  });

  it('peers added, moved and removed at runtime: a removed peer is no longer sent to, and its handshakes are refused', async () => {
    const a = await transport(1);
    const b = await transport(2);
    const c = await transport(3);
    const got: Message[] = [];
    b.listen((m) => got.push(m));
    // b learns of a (a joined), a of b.
    b.setPeer(1, { host: '127.0.0.1', port: a.port });
    a.setPeer(2, { host: '127.0.0.1', port: b.port });
    a.send([heartbeat(1, 2)]);
    await waitFor(() => got.length === 1, 'the first heartbeat');
    expect(b.heardFrom(1)).toBeGreaterThan(0);
    // Moved (a member update): the open connection stays in use, as etcd's UpdatePeer keeps its
    // streams (the member is still where it was until it restarts elsewhere).
    a.setPeer(2, { host: '127.0.0.1', port: c.port });
    a.send([heartbeat(1, 2)]);
    await waitFor(() => got.length === 2, 'the heartbeat over the open connection');
    expect(c.stats.refused).toBe(0);
    // Removed: b forgets a and closes its connection; a's next dial goes to the new address (c,
    // which does not know a, so refuses it).
    b.removePeer(1);
    expect(b.peerIds()).toEqual([]);
    expect(b.heardFrom(1)).toBe(0);
    await waitFor(() => (a.send([heartbeat(1, 2)]), c.stats.refused >= 1), 'c refusing the handshake');
    // Moved back to b: b refuses the removed peer.
    a.setPeer(2, { host: '127.0.0.1', port: b.port });
    const refusedBefore = b.stats.refused;
    await waitFor(() => (a.send([heartbeat(1, 2)]), b.stats.refused > refusedBefore), 'b refusing the removed peer');
    expect(got.length).toBe(2);
  });
});
