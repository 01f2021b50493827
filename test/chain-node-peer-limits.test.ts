/**
 * Two named limits of the chain node process (src/chainnode/node-process.ts), in process (the
 * control cluster is one in-process member, the master and the nodes run here too):
 *
 * - CHAIN_PEER_QUEUE_BYTES_MAX: a successor that does not read (its end of the connection
 *   paused: the kernel's buffers fill, then the predecessor's socket queue) makes the
 *   predecessor drop further messages to it at the bound — its queue never exceeds it while it
 *   keeps resending (go-back-N) — and once the successor reads again every update arrives:
 *   every write is acknowledged and read back at the tail.
 * - CHAIN_LEASE_MARGIN_MS: a node cut off from the control cluster serves reads until TTL less
 *   the margin after the send of the last keep-alive the cluster answered, and not a tick
 *   longer — the cluster keeps the lease at least TTL after that send, so the node stops at
 *   least the margin before the cluster can expire it and the master replace it. The node's
 *   clock is the test's (ChainNodeProcessOptions.clock): time moves only when the test moves
 *   it, and the node's ticks follow it (a late timer delivers every tick due at once).
 *   Writes need no lease: a removed head's updates are refused by its successor (another
 *   epoch), and the master never removes a lone member.
 */
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeClientReply, encodeClientRequest } from '../src/chain/codec.js';
import type { ClientReply } from '../src/chain/types.js';
import { ChainClient } from '../src/chainnode/client.js';
import { CHAIN_LEASE_MARGIN_MS, CHAIN_PEER_QUEUE_BYTES_MAX } from '../src/chainnode/node-process.js';
import { AssemblyBudget, CHAIN_PIECE_BYTES, helloFrame, readMessages, writeMessage } from '../src/chainnode/wire.js';
import { chainTestEnv, until } from './support/chain.js';

const { dir, cleanup, controlCluster, startMaster, startNode } = chainTestEnv('flotilla-chain-peer-limits-');

/** One get over a client connection of its own; the node's reply. */
async function rawGet(address: string, chain: string, epoch: number, key: string): Promise<ClientReply> {
  const [host, port] = address.split(':');
  const s: Socket = connect(Number(port), host);
  try {
    return await new Promise<ClientReply>((resolve, reject) => {
      s.on('error', reject);
      s.on('close', () => reject(new Error('closed')));
      readMessages(s, new AssemblyBudget(), { hello: false }, (b) => resolve(decodeClientReply(b).reply));
      s.write(helloFrame('client', chain, 'test'));
      writeMessage(s, encodeClientRequest({ client: 'test', id: 1, epoch, op: { type: 'get', key } }));
    });
  } finally {
    s.destroy();
  }
}

describe('chain node peer limits', () => {
  // Small updates are encoded whole; a large one (over CHAIN_PIECE_BYTES) goes out as its head
  // and then its value itself: the bound must hold on both paths.
  it.each([
    { what: 'small updates', chain: 'q', LIMIT: 1024 * 1024, VALUE: 64 * 1024, PUTS: 200 }, // 12.5 MiB in flight: past the loopback's socket buffers and the bound
    { what: 'large updates (over CHAIN_PIECE_BYTES, sent as their values)', chain: 'qq', LIMIT: 4 * 1024 * 1024, VALUE: CHAIN_PIECE_BYTES + CHAIN_PIECE_BYTES / 2, PUTS: 24 }, // 36 MiB
  ])('CHAIN_PEER_QUEUE_BYTES_MAX, $what: the queue to a successor that does not read stops at the bound; nothing is lost once it reads', async ({ chain, LIMIT, VALUE, PUTS }) => {
    expect(CHAIN_PEER_QUEUE_BYTES_MAX).toBeGreaterThanOrEqual(64 * 1024 * 1024); // a whole largest value fits
    const cluster = await controlCluster();
    startMaster(chain, cluster.endpoints, 2);
    const opts = { chain, listen: '127.0.0.1:0', control: cluster.endpoints, tickMs: 20, pollMs: 200, peerQueueBytesMax: LIMIT };
    const n1 = await startNode({ ...opts, name: 'n1', dataDir: join(dir, `${chain}1`) });
    const n2 = await startNode({ ...opts, name: 'n2', dataDir: join(dir, `${chain}2`) });
    const client = new ChainClient({ chain, control: cluster.endpoints, timeoutMs: 60_000 });
    cleanup.push(() => client.close());
    const view = await until('a chain n1 -> n2', async () => {
      const v = await client.status();
      return v.config?.members.join(',') === 'n1,n2' ? v : null;
    });
    expect(view.config!.joining).toBeNull();
    await until('a first write through both nodes', () => client.put('warm', 'up'));

    // The tail stops reading its predecessor's connection.
    const accepted = (n2 as unknown as { accepted: Set<Socket> }).accepted;
    expect(accepted.size).toBeGreaterThan(0);
    for (const s of accepted) s.pause();

    const value = (i: number): Uint8Array => new Uint8Array(VALUE).fill(i & 255).map((b, j) => (j < 4 ? (i >> (8 * j)) & 255 : b));
    const puts = Array.from({ length: PUTS }, (_, i) => client.put(`k${i}`, value(i)));
    for (const p of puts) p.catch(() => {}); // awaited below; a failure before that is the test's, not unhandled
    // The head keeps sending (and resending, without progress): it must drop at the bound.
    const q = await until('the head dropping messages to n2 at the bound', () => {
      const x = n1.peerQueue('n2');
      return x !== null && x.droppedBytes >= 4 * LIMIT ? x : null;
    });
    expect(q.queuedMax).toBeGreaterThan(0);
    expect(q.queuedMax).toBeLessThanOrEqual(LIMIT);
    expect(n1.peerQueue('n2')!.queued).toBeLessThanOrEqual(LIMIT);

    // It reads again: the head's resends bring everything across, every write is acknowledged.
    for (const s of accepted) s.resume();
    const results = await Promise.all(puts);
    expect(results.map((r) => r.type)).toEqual(Array(PUTS).fill('put'));
    for (let i = 0; i < PUTS; i++) {
      const got = await client.get(`k${i}`);
      expect(got.version).toBe(results[i]!.version);
      expect(Buffer.from(got.value!).equals(Buffer.from(value(i))), `k${i}`).toBe(true);
    }
    expect(n1.peerQueue('n2')!.queuedMax).toBeLessThanOrEqual(LIMIT);
    await until('the head\'s queue to n2 drained', () => n1.peerQueue('n2')!.queued === 0);
  }, 120_000);

  it('CHAIN_LEASE_MARGIN_MS: a node cut off from the control cluster stops serving reads TTL less the margin after its last keep-alive was sent', async () => {
    expect(CHAIN_LEASE_MARGIN_MS).toBeGreaterThan(0);
    const TTL_S = 5;
    const TICK_MS = 50;
    let now = 0; // the node's clock: it stands still until moved
    const cluster = await controlCluster();
    startMaster('l', cluster.endpoints, 1);
    const node = await startNode({ chain: 'l', name: 'n1', dataDir: join(dir, 'l1'), listen: '127.0.0.1:0', control: cluster.endpoints, tickMs: TICK_MS, pollMs: 200, leaseTtlSec: TTL_S, clock: () => now });
    const ticks = (): number => (node as unknown as { ticks: number }).ticks;
    const client = new ChainClient({ chain: 'l', control: cluster.endpoints, timeoutMs: 20_000 });
    cleanup.push(() => client.close());
    await until('a write', () => client.put('k', 'v1'));
    expect(new TextDecoder().decode((await client.get('k')).value!)).toBe('v1');
    const epoch = (await client.status()).config!.epoch;

    // Every keep-alive so far was sent at the node's time 0: the cluster holds the lease until
    // at least 0 + TTL on that clock. Cut the node off from it for good.
    await cluster.stop();
    const end = TTL_S * 1000 - CHAIN_LEASE_MARGIN_MS;

    const advance = async (to: number): Promise<void> => {
      now = to;
      const due = Math.floor(to / TICK_MS);
      await until(`the node's ticks at ${due}`, () => ticks() >= due);
    };
    // One tick before the margin: still served.
    await advance(end - TICK_MS);
    const before = await rawGet(node.address, 'l', epoch, 'k');
    expect(before.ok).toBe(true);
    // At TTL less the margin (the ticks delivered at once, as after a stalled event loop): refused.
    await advance(end);
    const at = await rawGet(node.address, 'l', epoch, 'k');
    expect(at).toMatchObject({ ok: false, reason: 'no-lease' });
    // And from then on (up to the cluster's earliest expiry and beyond).
    await advance(TTL_S * 1000);
    expect(await rawGet(node.address, 'l', epoch, 'k')).toMatchObject({ ok: false, reason: 'no-lease' });
  }, 60_000);
});
