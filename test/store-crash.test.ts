/**
 * The key-value store on disk (LMDB, <data-dir>/member/db) through real `flotilla serve`
 * processes: while WRITERS concurrent clients put (new keys and overwrites, each value unique),
 * the leader is SIGKILLed, then a follower, for KILL_ROUNDS rounds, each restarted from its
 * data directory alone; at the end all three at once. Each member resumes from the applied
 * index its store committed (the WAL replayed only after it). Afterwards every acknowledged put
 * is on every member with its value (or, for a key overwritten, the value of a put whose
 * outcome the client never learned), and the members' HashKV agree at a common revision.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startCluster, waitHealthy, type Cluster } from './support/cluster.js';
import { leaderIndex, rawClient, type Wire } from './support/grpc.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Concurrent clients, each with a connection of its own to each member. */
const WRITERS = 24;
/** Rounds of (SIGKILL the leader, restart it, SIGKILL a follower, restart it) before the all-at-once kill. */
const KILL_ROUNDS = 3;
/** Acknowledged puts to wait for between two faults: writes go on around every kill and restart. */
const ACKS_BETWEEN_FAULTS = 150;
/** Keys each writer cycles through: most puts overwrite (history), the first pass makes keys. */
const KEYS_PER_WRITER = 40;
/** Padding of each value (the head of a value is its key and a sequence number: unique). */
const VALUE_PAD = Buffer.alloc(1000, 'p');

/**
 * What a key may hold after the run: the value of its last acknowledged put, or the value of a
 * put whose outcome is unknown (timed out or the member died: it may have been applied, even
 * after a later put was acknowledged, if it waited in a forwarding queue).
 */
interface KeyWrites {
  acked: string | null;
  unknown: string[];
}

describe('the store on disk under SIGKILL', () => {
  let cluster: Cluster | undefined;
  afterAll(async () => {
    await cluster?.stop();
  });

  it('loses no acknowledged put when the leader and followers are SIGKILLed during heavy writes; HashKV equal after restart', async () => {
    // Small snapshot interval: metadata-only snapshots release the WAL many times over the run.
    cluster = await startCluster('flotilla', { extraArgs: ['--snapshot-count', '300', '--snapshot-catchup-entries', '50'], readyTimeoutMs: 60_000 });
    const c = cluster;
    dumpOutputs = () => c.members.map((m) => `--- ${m.name} (exit ${m.proc?.exitCode} ${m.proc?.signalCode})\n${m.output.slice(-4000)}`).join('\n');
    const writes = new Map<string, KeyWrites>();
    let ackCount = 0;
    let stop = false;
    const writer = async (w: number): Promise<void> => {
      const clients = c.endpoints.map((e) => rawClient(e));
      let target = w % clients.length;
      for (let seq = 0; !stop; seq++) {
        const key = `crash/${String(w).padStart(2, '0')}/${String(seq % KEYS_PER_WRITER).padStart(3, '0')}`;
        const value = `${key}#${seq}:`;
        const kw = writes.get(key) ?? { acked: null, unknown: [] };
        writes.set(key, kw);
        try {
          await clients[target]!.call('etcdserverpb.KV', 'Put', { key: Buffer.from(key), value: Buffer.concat([Buffer.from(value), VALUE_PAD]) }, 3000);
          kw.acked = value;
          ackCount++;
        } catch {
          // Refused before the log (no leader, not reachable) or lost: either way maybe applied.
          kw.unknown.push(value);
          target = (target + 1) % clients.length;
          await sleep(20);
        }
      }
      for (const cl of clients) cl.close();
    };
    const writers = Array.from({ length: WRITERS }, (_, w) => writer(w));
    /** Waits for `n` more acknowledged puts (the writers go on through every fault). */
    const moreAcks = async (n: number, what: string): Promise<void> => {
      const target = ackCount + n;
      const deadline = Date.now() + 60_000;
      while (ackCount < target) {
        if (Date.now() > deadline) throw new Error(`writes stopped (${what}): ${ackCount} acknowledged, waiting for ${target}\n${dumpOutputs()}`);
        await sleep(50);
      }
    };
    const kills: string[] = [];
    await moreAcks(ACKS_BETWEEN_FAULTS, 'start');
    for (let round = 0; round < KILL_ROUNDS; round++) {
      const leader = await leaderIndex(c.endpoints);
      kills.push(`round ${round}: leader ${c.members[leader]!.name}`);
      c.kill(leader);
      await moreAcks(ACKS_BETWEEN_FAULTS, `after killing the leader ${c.members[leader]!.name}`);
      await c.restart(leader);
      await moreAcks(ACKS_BETWEEN_FAULTS, `after restarting ${c.members[leader]!.name}`);
      const now = await leaderIndex(c.endpoints);
      const follower = [0, 1, 2].find((i) => i !== now && i !== leader) ?? [0, 1, 2].find((i) => i !== now)!;
      kills.push(`round ${round}: follower ${c.members[follower]!.name}`);
      c.kill(follower);
      await moreAcks(ACKS_BETWEEN_FAULTS, `after killing the follower ${c.members[follower]!.name}`);
      await c.restart(follower);
      await moreAcks(ACKS_BETWEEN_FAULTS, `after restarting ${c.members[follower]!.name}`);
    }
    // Every member at once: each restarts from what its own store and WAL made durable.
    for (let i = 0; i < 3; i++) c.kill(i);
    stop = true;
    await Promise.all(writers);
    expect(kills).toHaveLength(2 * KILL_ROUNDS);
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
    const acked = [...writes].filter(([, kw]) => kw.acked !== null);
    expect(acked.length, 'puts were acknowledged').toBeGreaterThan(WRITERS);
    expect(ackCount).toBeGreaterThanOrEqual(ACKS_BETWEEN_FAULTS * (1 + 4 * KILL_ROUNDS));
    for (const [j, f] of fresh.entries()) {
      const r = await retry(() => f.call('etcdserverpb.KV', 'Range', { key: Buffer.from('crash/'), range_end: Buffer.from('crash0'), serializable: true }, 30_000));
      const have = new Map((r.kvs as Wire[]).map((kv) => [(kv.key as Buffer).toString(), (kv.value as Buffer).subarray(0, (kv.value as Buffer).length - VALUE_PAD.length).toString()]));
      const wrong = acked.filter(([k, kw]) => {
        const v = have.get(k);
        return v !== kw.acked && !(v !== undefined && kw.unknown.includes(v));
      });
      expect(
        wrong.map(([k, kw]) => `${k}: has ${have.get(k) ?? 'nothing'}, acknowledged ${kw.acked}`),
        `acknowledged puts missing or with another value on ${c.members[j]!.name}`,
      ).toEqual([]);
    }
    const hashes = await Promise.all(fresh.map((f) => retry(() => f.call('etcdserverpb.Maintenance', 'HashKV', { revision: String(rev) }))));
    expect(new Set(hashes.map((h) => String(h.hash))).size, JSON.stringify(hashes)).toBe(1);
    expect(new Set(hashes.map((h) => String((h.header as Wire).revision))).size, 'every member at the same revision').toBe(1);
    for (const f of fresh) f.close();
  }, 420_000);
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
