/**
 * The key-value store on disk (LMDB, <data-dir>/member/db) through real processes: members
 * SIGKILLed while clients write — one member alone, then all three at once — restart from
 * their data directories, resuming from the applied index their store committed (the WAL is
 * replayed only after it). Every put acknowledged to a client is on every member afterwards,
 * and the members' HashKV agree.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startCluster, waitHealthy, type Cluster } from './support/cluster.js';
import { rawClient, type Wire } from './support/grpc.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const VALUE = Buffer.alloc(1024, 7);

describe('the store on disk under SIGKILL', () => {
  let cluster: Cluster | undefined;
  afterAll(async () => {
    await cluster?.stop();
  });

  it('loses no acknowledged put when members are killed during heavy writes; HashKV equal after restart', async () => {
    // Small snapshot interval: metadata-only snapshots release the WAL many times over the run.
    cluster = await startCluster('flotilla', { extraArgs: ['--snapshot-count', '300', '--snapshot-catchup-entries', '50'], readyTimeoutMs: 60_000 });
    const c = cluster;
    dumpOutputs = () => c.members.map((m) => `--- ${m.name} (exit ${m.proc?.exitCode} ${m.proc?.signalCode})\n${m.output.slice(-4000)}`).join('\n');
    const clients = c.endpoints.map((e) => rawClient(e));
    const acked = new Set<string>();
    let stop = false;
    let seq = 0;
    const writer = async (w: number): Promise<void> => {
      while (!stop) {
        const key = `crash/${w}/${seq++}`;
        // Spread over the members that are up; a refused or lost write is simply not acknowledged.
        const client = clients[(w + seq) % clients.length]!;
        try {
          await client.call('etcdserverpb.KV', 'Put', { key: Buffer.from(key), value: VALUE }, 3000);
          acked.add(key);
        } catch {
          await sleep(20);
        }
      }
    };
    const writers = Array.from({ length: 16 }, (_, w) => writer(w));
    const until = async (n: number): Promise<void> => {
      for (let i = 0; i < 600 && acked.size < n; i++) await sleep(50);
      expect(acked.size, 'writes go on').toBeGreaterThanOrEqual(n);
    };
    await until(400);
    c.kill(2);
    await until(800);
    await c.restart(2);
    await until(1200);
    // Every member at once: each restarts from what its own store and WAL made durable.
    for (let i = 0; i < 3; i++) c.kill(i);
    stop = true;
    await Promise.all(writers);
    for (const m of c.members) expect(existsSync(join(m.dataDir, 'member', 'db')), `${m.name} has its store file`).toBe(true);
    for (const m of c.members) m.output = '';
    await Promise.all([0, 1, 2].map((i) => c.restart(i)));
    await waitHealthy(
      c.members.map((m) => m.clientUrl),
      60_000,
      () => c.members.map((m) => m.output.slice(-2000)).join('\n'),
    );
    // Each member resumed at its store's applied index, not from scratch.
    for (const m of c.members) {
      const applied = Number(/starting: .* applied=(\d+)/.exec(m.output)?.[1] ?? -1);
      expect(applied, `${m.name} resumed from its store\n${m.output.slice(0, 3000)}`).toBeGreaterThan(1000);
    }
    // A linearizable read fixes a revision every member must reach; then compare.
    const fresh = c.endpoints.map((e) => rawClient(e));
    const rev = Number(((await retry(() => fresh[0]!.call('etcdserverpb.KV', 'Range', { key: Buffer.from('crash/') }))).header as Wire).revision);
    for (const [j, f] of fresh.entries()) {
      for (let i = 0; i < 200; i++) {
        const r = await retry(() => f.call('etcdserverpb.KV', 'Range', { key: Buffer.from('crash/'), range_end: Buffer.from('crash0'), serializable: true, count_only: true }));
        if (Number((r.header as Wire).revision) >= rev) break;
        if (i === 199) throw new Error(`member ${j + 1} stays at revision ${String((r.header as Wire).revision)}, below ${rev}`);
        await sleep(50);
      }
    }
    for (const f of fresh) {
      const r = await retry(() => f.call('etcdserverpb.KV', 'Range', { key: Buffer.from('crash/'), range_end: Buffer.from('crash0'), serializable: true, keys_only: true }));
      const have = new Set((r.kvs as Wire[]).map((kv) => (kv.key as Buffer).toString()));
      const lost = [...acked].filter((k) => !have.has(k));
      expect(lost, 'acknowledged puts missing').toEqual([]);
    }
    const hashes = await Promise.all(fresh.map((f) => retry(() => f.call('etcdserverpb.Maintenance', 'HashKV', { revision: String(rev) }))));
    expect(new Set(hashes.map((h) => h.hash)).size, JSON.stringify(hashes)).toBe(1);
    for (const cl of [...clients, ...fresh]) cl.close();
  }, 180_000);
});

let dumpOutputs: () => string = () => '';

async function retry<T>(f: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await f();
    } catch (e) {
      if (i >= 100) throw new Error(`${(e as Error).message} (${new Date().toISOString()})\n${dumpOutputs()}`);
      await sleep(100);
    }
  }
}


