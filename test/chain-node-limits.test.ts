/**
 * The chain node's connection limits, on one in-process node (a 1-member control cluster):
 * CHAIN_CONNECTIONS_MAX, CHAIN_HELLO_TIMEOUT_MS, CHAIN_IDLE_TIMEOUT_MS (set lower here through
 * the options that default to them), and the names it refuses (CHAIN_NAME_MAX).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CHAIN_NAME_MAX } from '../src/chainnode/control.js';
import { ChainNodeProcess } from '../src/chainnode/node-process.js';
import { helloFrame } from '../src/chainnode/wire.js';
import { startCluster, type Cluster } from './support/cluster.js';

const dir = mkdtempSync(join(tmpdir(), 'flotilla-chain-limits-'));
let cluster: Cluster | null = null;
let node: ChainNodeProcess | null = null;
const sockets: Socket[] = [];

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await node?.stop();
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A connection to the node; `closed` resolves with the time the node closed it. */
function open(address: string, first?: Buffer): { socket: Socket; closed: Promise<number>; isClosed: () => boolean } {
  const [host, port] = address.split(':');
  const socket = connect(Number(port), host);
  sockets.push(socket);
  let done = false;
  socket.on('error', () => {});
  if (first) socket.on('connect', () => socket.write(first));
  const closed = new Promise<number>((r) =>
    socket.on('close', () => {
      done = true;
      r(performance.now());
    }),
  );
  return { socket, closed, isClosed: () => done };
}

describe('chain node limits', () => {
  it('refuses connections beyond its limit, closes one that says nothing and one that goes idle', async () => {
    cluster = await startCluster('flotilla', { size: 1 });
    node = await ChainNodeProcess.start({ chain: 'l', name: 'n1', dataDir: join(dir, 'n1'), listen: '127.0.0.1:0', control: cluster.endpoints, connectionsMax: 2, helloTimeoutMs: 400, idleTimeoutMs: 1500 });
    const hello = helloFrame('client', 'l', 'c');
    // Two connections that said who they are; a third is closed at once.
    const a = open(node.address, hello);
    const b = open(node.address, hello);
    await new Promise((r) => setTimeout(r, 200));
    const c = open(node.address, hello);
    await c.closed;
    expect(a.isClosed() || b.isClosed()).toBe(false);
    // Both go idle: closed after the idle time, and a connection is accepted again.
    await Promise.all([a.closed, b.closed]);
    // A connection that sends no hello is closed after the hello time; one with a hello is not.
    const t0 = performance.now();
    const silent = open(node.address);
    const talker = open(node.address, hello);
    const t = await silent.closed;
    expect(t - t0).toBeGreaterThanOrEqual(350);
    expect(talker.isClosed()).toBe(false);
    // A hello for another chain: closed.
    const stranger = open(node.address, helloFrame('client', 'other', 'c'));
    await stranger.closed;
  }, 60_000);

  it(`refuses chain and node names beyond ${CHAIN_NAME_MAX} characters or of other characters`, async () => {
    const base = { dataDir: join(dir, 'x'), listen: '127.0.0.1:0', control: ['127.0.0.1:1'] };
    await expect(ChainNodeProcess.start({ ...base, chain: 'c'.repeat(CHAIN_NAME_MAX + 1), name: 'n' })).rejects.toThrow(/chain name must be 1\.\.64/);
    await expect(ChainNodeProcess.start({ ...base, chain: 'c', name: 'a b' })).rejects.toThrow(/node name must be/);
    await expect(ChainNodeProcess.start({ ...base, chain: '', name: 'n' })).rejects.toThrow(/chain name must be/);
  });
});
