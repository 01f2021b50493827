/**
 * SIGKILL of the leader during a stream of puts with open watches: every watch resumes on
 * another member without a gap or a duplicate, every acknowledged put is readable afterwards,
 * and the cluster elects a new leader and takes writes again. (How fast is a benchmark:
 * `npm run bench:failover`.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlotillaClient, type WatchEvent } from '../src/client/index.js';
import { startCluster, type Cluster } from './support/cluster.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('leader killed under writes and watches', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster('flotilla');
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it('watches resume without gap or duplicate; acknowledged puts survive; writes resume', async () => {
    const eps = cluster.endpoints;
    const admin = new FlotillaClient({ endpoints: eps });
    let leader = -1;
    for (let i = 0; i < eps.length; i++) {
      const s = await admin.status(eps[i]!);
      if (s.leader === s.header.memberId) leader = i;
    }
    expect(leader).toBeGreaterThanOrEqual(0);
    const start = Number((await admin.get('fo/', { prefix: true })).header.revision) + 1;

    // One watcher starting on each member (so one of them is on the leader that dies).
    const seen: WatchEvent[][] = eps.map(() => []);
    const watchClients = eps.map((_, i) => new FlotillaClient({ endpoints: [...eps.slice(i), ...eps.slice(0, i)] }));
    const watchers = watchClients.map((c, i) => c.watch('fo/', { prefix: true, startRevision: start }, (evs) => seen[i]!.push(...evs)));
    await Promise.all(watchers.map((w) => w.ready));

    // The writer goes through the leader first, then fails over.
    const writer = new FlotillaClient({ endpoints: [...eps.slice(leader), ...eps.slice(0, leader)], requestTimeoutMs: 3000 });
    const acked = new Map<string, string>();
    let n = 0;
    let killedAt = 0;
    let firstAckAfterKill = 0;
    let stop = false;
    const writing = (async () => {
      while (!stop) {
        const key = `fo/${String(n).padStart(5, '0')}`;
        const value = `v${n++}`;
        const sentAt = Date.now();
        try {
          await writer.put(key, value);
          acked.set(key, value);
          if (killedAt && sentAt > killedAt && !firstAckAfterKill) firstAckAfterKill = Date.now();
        } catch {
          await sleep(20);
        }
      }
    })();
    await sleep(1500);
    killedAt = Date.now();
    cluster.kill(leader);
    for (let i = 0; i < 200 && !firstAckAfterKill; i++) await sleep(50);
    await sleep(1500);
    stop = true;
    await writing;
    expect(firstAckAfterKill, 'a put sent after the kill was acknowledged').toBeGreaterThan(0);
    console.log(`leader killed: writes acknowledged again after ${firstAckAfterKill - killedAt} ms; ${acked.size} puts acknowledged`);

    // Every acknowledged put is readable (linearizably, from a surviving member).
    const survivors = eps.filter((_, i) => i !== leader);
    const reader = new FlotillaClient({ endpoints: survivors });
    const all = await reader.get('fo/', { prefix: true });
    const stored = new Map(all.kvs.map((kv) => [kv.keyString(), kv.valueString()]));
    for (const [k, v] of acked) expect(stored.get(k), `acknowledged ${k}`).toBe(v);

    // The authoritative history, from a fresh watch on a survivor.
    const finalRev = Number(all.header.revision);
    const truth: WatchEvent[] = [];
    const t = reader.watch('fo/', { prefix: true, startRevision: start }, (evs) => truth.push(...evs));
    const lastRev = (evs: WatchEvent[]) => Number(evs.at(-1)?.kv.modRevision ?? 0);
    for (let i = 0; i < 100 && lastRev(truth) < finalRev; i++) await sleep(50);
    await t.cancel();
    const fmt = (evs: WatchEvent[]) => evs.map((e) => `${e.kv.modRevision} ${e.type} ${e.kv.keyString()}=${e.kv.valueString()}`);
    for (let i = 0; i < eps.length; i++) {
      for (let j = 0; j < 100 && lastRev(seen[i]!) < finalRev; j++) await sleep(50);
      expect(fmt(seen[i]!), `watcher that started on member ${i + 1}${i === leader ? ' (the killed leader)' : ''}`).toEqual(fmt(truth));
    }
    await Promise.all(watchers.map((w) => w.cancel()));
    await Promise.all([admin, writer, reader, ...watchClients].map((c) => c.close()));
  }, 90_000);
});
