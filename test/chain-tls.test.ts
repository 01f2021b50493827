/**
 * TLS on the chain port (src/chainnode/tls.ts): three chain nodes with certificates whose CN is
 * their name, a master, a 1-member control cluster. A client with a certificate the CA signed
 * writes and reads (a value in pieces streamed too); one without a certificate, or with one
 * another CA signed, is refused; a connection that says it is node n1 with a certificate for
 * someone else is closed.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { ChainClient } from '../src/chainnode/client.js';
import { ChainMaster } from '../src/chainnode/master-process.js';
import { ChainNodeProcess } from '../src/chainnode/node-process.js';
import { helloFrame } from '../src/chainnode/wire.js';
import { issue, makeCa } from './support/certs.js';
import { freePort, startCluster, type Cluster } from './support/cluster.js';

const dir = mkdtempSync(join(tmpdir(), 'flotilla-chain-tls-'));
let cluster: Cluster | null = null;
const nodes: ChainNodeProcess[] = [];
let master: ChainMaster | null = null;

afterAll(async () => {
  await master?.stop();
  for (const n of nodes) await n.stop();
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('chain TLS', () => {
  it('admits only certificates the CA signed, and a node only as the name its certificate bears', async () => {
    const ca = makeCa(dir, 'ca');
    const other = makeCa(dir, 'other');
    const certs = ['n1', 'n2', 'n3'].map((n) => issue(dir, ca, n, { cn: n }));
    const alice = issue(dir, ca, 'alice', { cn: 'alice', sans: [] });
    const mallory = issue(dir, other, 'mallory', { cn: 'mallory', sans: [] });
    cluster = await startCluster('flotilla', { size: 1 });
    const control = cluster.endpoints;
    master = new ChainMaster({ chain: 's', control, name: 'm', bootstrapMembers: 3, membersMax: 3 });
    master.start();
    for (const [i, n] of ['n1', 'n2', 'n3'].entries()) {
      const port = await freePort();
      nodes.push(await ChainNodeProcess.start({ chain: 's', name: n, dataDir: join(dir, n), listen: `127.0.0.1:${port}`, control, tls: { certFile: certs[i]!.cert, keyFile: certs[i]!.key, trustedCaFile: ca.cert } }));
    }
    const pem = (k: { cert: string; key: string }) => ({ ca: readFileSync(ca.cert), cert: readFileSync(k.cert), key: readFileSync(k.key) });
    const client = new ChainClient({ chain: 's', control, timeoutMs: 30_000, tls: pem(alice) });
    try {
      for (let i = 0; i < 300 && (await client.status()).config?.members.length !== 3; i++) await new Promise((r) => setTimeout(r, 100));
      const put = await client.put('k', 'over TLS');
      const got = await client.get('k');
      expect(got.version).toBe(put.version);
      expect(Buffer.from(got.value!).toString()).toBe('over TLS');
      // A value in pieces, streamed both ways over TLS (a connection of its own each).
      const big = Buffer.alloc(3 * 1024 * 1024 + 5, 'tls');
      const streamed = await client.putStream('big', () => Readable.from([big.subarray(0, 1000), big.subarray(1000)]), big.length);
      const back = await client.getStream('big');
      expect(back?.version).toBe(streamed.version);
      const chunks: Buffer[] = [];
      for await (const c of back!.value) chunks.push(c as Buffer);
      expect(Buffer.compare(Buffer.concat(chunks), big)).toBe(0);
    } finally {
      await client.close();
    }

    // Refused: no client certificate; a certificate another CA signed. Nothing was written.
    for (const tls of [{ ca: readFileSync(ca.cert) }, pem(mallory)]) {
      const c = new ChainClient({ chain: 's', control, timeoutMs: 5000, tls });
      try {
        await expect(c.put('k', 'refused')).rejects.toThrow();
        await expect(c.get('k')).rejects.toThrow();
      } finally {
        await c.close();
      }
    }
    const again = new ChainClient({ chain: 's', control, timeoutMs: 30_000, tls: pem(alice) });
    try {
      expect(Buffer.from((await again.get('k')).value!).toString()).toBe('over TLS');
    } finally {
      await again.close();
    }

    // Alice's valid certificate, saying she is node n1: the node closes the connection.
    const n2 = (await new ChainClient({ chain: 's', control }).status()).nodes.get('n2')!.address;
    const closed = await new Promise<boolean>((resolve) => {
      const [host, port] = n2.split(':');
      const s = tlsConnect({ host, port: Number(port), ca: readFileSync(ca.cert), cert: readFileSync(alice.cert), key: readFileSync(alice.key), checkServerIdentity: () => undefined });
      s.on('error', () => {});
      s.on('secureConnect', () => s.write(helloFrame('peer', 's', 'n1')));
      s.on('close', () => resolve(true));
    });
    expect(closed).toBe(true);
  }, 120_000);
});
