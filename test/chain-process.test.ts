/**
 * Chain replication through real processes: a 3-member Flotilla cluster as the control plane,
 * two `flotilla chain-master` processes, four `flotilla chain-node` processes, and a writer and
 * a reader (ChainClient) running throughout. SIGKILL the head, a middle node, the tail (each
 * restarted from its data directory: it rejoins through the tail) and the active master in
 * turn; afterwards every acknowledged write is read back and the whole history must be
 * linearizable.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkLinearizable, type HistoryOp } from '../src/check/index.js';
import { connect } from 'node:net';
import { ChainClient, ChainOutcomeUnknownError } from '../src/chainnode/client.js';
import { helloFrame } from '../src/chainnode/wire.js';
import { chainProcessesEnv, until as untilTrue } from './support/chain.js';
import { FLOTILLA_BIN, freePort } from './support/cluster.js';

const { dir, procs, startCluster } = chainProcessesEnv('flotilla-chain-');

const until = <T>(what: string, f: () => Promise<T | null | undefined | false>, timeoutMs = 60_000): Promise<T> =>
  untilTrue(what, f, timeoutMs, { intervalMs: 200, detail: () => procs.logs(8) });

describe('chain replication on real processes', () => {
  it('survives SIGKILL of the head, a middle node, the tail and the active master, losing no acknowledged write', async () => {
    const cluster = await startCluster('flotilla', { size: 3 });
    const control = cluster.endpoints.join(',');
    for (const m of ['m1', 'm2']) procs.launch(m, ['chain-master', '--chain', 't', '--name', m, '--control', control, '--bootstrap-members', '3', '--members-max', '4']);
    const ports = new Map<string, number>();
    for (const n of ['a', 'b', 'c', 'd']) {
      const port = await freePort();
      ports.set(n, port);
      procs.launch(n, ['chain-node', '--chain', 't', '--name', n, '--data-dir', join(dir, n), '--listen', `127.0.0.1:${port}`, '--control', control, '--lease-ttl', '2']);
    }
    const client = new ChainClient({ chain: 't', control: cluster.endpoints, timeoutMs: 20_000 });
    const members = async (): Promise<string[]> => (await client.status()).config?.members.slice() ?? [];
    await until('a chain of four', async () => (await members()).length === 4);
    // A large value streams in pieces (wire.ts) through all four nodes and back from the tail.
    const large = new Uint8Array(2 * 1024 * 1024 + 17).map((_, i) => (i * 31) & 255);
    const putLarge = await until('a large put', async () => client.put('large', large));
    const gotLarge = await client.get('large');
    expect(gotLarge.version).toBe(putLarge.version);
    expect(Buffer.compare(Buffer.from(gotLarge.value!), Buffer.from(large))).toBe(0);

    // The workload: one writer (unique values on rotating keys), one reader.
    const history: HistoryOp[] = [];
    const ns = (): number => Math.round(performance.now() * 1e6);
    let stop = false;
    let acked = 0;
    const keys = ['k0', 'k1', 'k2'];
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        const key = keys[i % keys.length]!;
        const value = `w${i}`;
        const call = ns();
        try {
          await client.put(key, value);
          history.push({ process: 0, op: 'write', key, value, ok: true, call, return: ns() });
          acked++;
        } catch (e) {
          history.push({ process: 0, op: 'write', key, value, ok: e instanceof ChainOutcomeUnknownError ? null : false, call, return: null });
          if (!(e instanceof ChainOutcomeUnknownError)) history.pop(); // never sent or refused: it did not happen
        }
      }
    })();
    const readerClient = new ChainClient({ chain: 't', control: cluster.endpoints, timeoutMs: 20_000 });
    const reader = (async () => {
      for (let i = 0; !stop; i++) {
        const key = keys[i % keys.length]!;
        const call = ns();
        try {
          const r = await readerClient.get(key);
          history.push({ process: 1, op: 'read', key, ok: true, output: r.value === null ? null : Buffer.from(r.value).toString(), call, return: ns() });
        } catch {
          // a read that failed constrains nothing
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    })();

    const progress = async (what: string): Promise<void> => {
      const before = acked;
      await until(`writes to continue after ${what}`, async () => acked > before + 5);
    };
    await progress('the start');

    // Hostile bytes on a node's port: a length beyond the hello limit, then garbage after a
    // valid hello; each connection is closed, and the chain keeps serving.
    const closedAfter = (bytes: Buffer[]): Promise<boolean> =>
      new Promise((resolve) => {
        const s = connect(ports.get('a')!, '127.0.0.1');
        s.on('error', () => {});
        s.on('close', () => resolve(true));
        s.on('connect', () => bytes.forEach((b) => s.write(b)));
      });
    const frame = (body: Uint8Array): Buffer => Buffer.concat([Buffer.from(new Uint32Array([body.length]).buffer), body]);
    const huge = Buffer.alloc(4);
    huge.writeUInt32LE(0xfffffff0, 0);
    expect(await closedAfter([huge])).toBe(true);
    expect(await closedAfter([helloFrame('peer', 't', 'x'), frame(new Uint8Array([0, 1, 2, 3, 4, 5]))])).toBe(true);
    expect(await closedAfter([helloFrame('client', 't', 'x'), frame(new Uint8Array([0, 1, 99]))])).toBe(true);
    await progress('garbage on a node\'s port');
    for (const pick of ['head', 'middle', 'tail'] as const) {
      const m = await until('the configuration', async () => {
        const ms = await members();
        return ms.length === 4 && ms;
      });
      const victim = pick === 'head' ? m[0]! : pick === 'tail' ? m[m.length - 1]! : m[1]!;
      procs.kill(victim);
      await until(`${victim} (${pick}) to leave the chain`, async () => !(await members()).includes(victim));
      await progress(`killing the ${pick} ${victim}`);
      procs.restart(victim);
      await until(`${victim} to rejoin`, async () => (await members()).length === 4);
      await progress(`${victim} rejoining`);
    }
    // The active master: whichever it is, kill both in turn with a restart between.
    for (const m of ['m1', 'm2']) {
      procs.kill(m);
      await progress(`killing master ${m}`);
      procs.restart(m);
    }
    const victim = (await until('the configuration', async () => {
      const ms = await members();
      return ms.length === 4 && ms;
    }))[1]!;
    procs.kill(victim);
    await until(`${victim} to leave the chain under the new master`, async () => !(await members()).includes(victim));
    procs.restart(victim);
    await until(`${victim} to rejoin under the new master`, async () => (await members()).length === 4);

    stop = true;
    await Promise.all([writer, reader]);
    // Every acknowledged write is there: a final read of each key, checked with everything else.
    for (const key of keys) {
      await until(`a final read of ${key}`, async () => {
        const call = ns();
        const r = await client.get(key);
        history.push({ process: 2, op: 'read', key, ok: true, output: r.value === null ? null : Buffer.from(r.value).toString(), call, return: ns() });
        return true;
      });
    }
    await client.close();
    await readerClient.close();
    console.log(`chain processes: ${acked} writes acknowledged, ${history.filter((h) => h.op === "read").length} reads, ${history.filter((h) => h.ok === null).length} writes with unknown outcome`);
    expect(acked).toBeGreaterThan(30);
    const check = checkLinearizable(history);
    expect(check.failure?.message ?? '').toBe('');
    expect(check.ok).toBe(true);
    // The same history through the command line: `flotilla check FILE`.
    const file = join(dir, 'history.jsonl');
    writeFileSync(file, history.map((h) => JSON.stringify(h)).join('\n') + '\n');
    const cli = spawnSync(process.execPath, [FLOTILLA_BIN, 'check', file], { encoding: 'utf8', timeout: 120_000 });
    expect(cli.stdout + cli.stderr).toMatch(/^linearizable: \d+ ops over \d+ keys/);
    expect(cli.status).toBe(0);
  }, 600_000);
});
