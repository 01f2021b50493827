/**
 * ChainClient.casStream (issue 17: compare-and-swap on a version, values up to 64 MiB, streamed),
 * in process (a 1-member control cluster, a master and two nodes here too): a value of several
 * pieces (over CHAIN_PIECE_BYTES, so it travels as a message in pieces) is set only at the
 * expected version — 0 for an absent key, then the version it has — and a stale version is
 * refused with the current one, leaving the value as it was; a source shorter than announced
 * fails with ChainValueSourceError and changes nothing; a Readable (not a function) is sent once.
 * The values are read back by getStream and compared whole.
 */
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ChainClient, ChainValueSourceError } from '../src/chainnode/client.js';
import { CHAIN_PIECE_BYTES } from '../src/chainnode/wire.js';
import { chainTestEnv, until } from './support/chain.js';

const { dir, cleanup, controlCluster, startMaster, startNode } = chainTestEnv('flotilla-chain-cas-stream-');

const SIZE = 2 * CHAIN_PIECE_BYTES + 12_345;
const valueOf = (seed: number): Buffer => Buffer.from(new Uint8Array(SIZE).map((_, i) => (i * 31 + seed * 7 + (i >> 11)) & 255));
/** A source handing `b` on in pieces of 300 000 bytes (not aligned with the wire's pieces). */
const pieces = (b: Buffer): Readable => Readable.from((function* () {
  for (let at = 0; at < b.length; at += 300_000) yield b.subarray(at, at + 300_000);
})());

async function read(client: ChainClient, key: string): Promise<{ version: number; value: Buffer } | null> {
  const s = await client.getStream(key);
  if (s === null) return null;
  const parts: Buffer[] = [];
  for await (const c of s.value) parts.push(c as Buffer);
  const value = Buffer.concat(parts);
  expect(value.length).toBe(s.size);
  return { version: s.version, value };
}

describe('ChainClient.casStream', () => {
  it('sets a streamed value only at the expected version; a stale version or a short source changes nothing', async () => {
    const cluster = await controlCluster();
    startMaster('cs', cluster.endpoints, 2);
    const opts = { chain: 'cs', listen: '127.0.0.1:0', control: cluster.endpoints, tickMs: 20, pollMs: 200 };
    await startNode({ ...opts, name: 'n1', dataDir: join(dir, 'n1') });
    await startNode({ ...opts, name: 'n2', dataDir: join(dir, 'n2') });
    const client = new ChainClient({ chain: 'cs', control: cluster.endpoints, timeoutMs: 60_000 });
    cleanup.push(() => client.close());
    await until('a chain n1 -> n2', async () => (await client.status()).config?.members.join(',') === 'n1,n2');

    // Absent: version 0 swaps.
    const a = valueOf(1);
    const first = await client.casStream('k', 0, () => pieces(a), SIZE);
    expect(first).toMatchObject({ type: 'cas', swapped: true });
    let got = await read(client, 'k');
    expect(got?.version).toBe(first.version);
    expect(got!.value.equals(a)).toBe(true);

    // Stale (0 again, and a version that never was): refused with the current version, the value unchanged.
    for (const stale of [0, first.version + 1000]) {
      const r = await client.casStream('k', stale, () => pieces(valueOf(2)), SIZE);
      expect(r).toEqual({ type: 'cas', swapped: false, version: first.version });
    }
    got = await read(client, 'k');
    expect(got?.version).toBe(first.version);
    expect(got!.value.equals(a)).toBe(true);

    // The current version swaps, from a Readable given once.
    const b = valueOf(3);
    const second = await client.casStream('k', first.version, pieces(b), SIZE);
    expect(second.swapped).toBe(true);
    expect(second.version).toBeGreaterThan(first.version);
    got = await read(client, 'k');
    expect(got?.version).toBe(second.version);
    expect(got!.value.equals(b)).toBe(true);

    // A source shorter than announced: refused before anything is applied, at the right version too.
    await expect(client.casStream('k', second.version, () => pieces(valueOf(4).subarray(0, SIZE - 1)), SIZE)).rejects.toThrow(ChainValueSourceError);
    await expect(client.casStream('k', second.version, () => pieces(valueOf(4)), SIZE - 1)).rejects.toThrow(/more than the \d+ bytes announced/);
    got = await read(client, 'k');
    expect(got?.version).toBe(second.version);
    expect(got!.value.equals(b)).toBe(true);
    // A size beyond the limit is refused before anything is sent.
    await expect(client.casStream('k', second.version, () => pieces(b), 64 * 1024 * 1024 + 1)).rejects.toThrow(/exceeds/);
  }, 120_000);
});
