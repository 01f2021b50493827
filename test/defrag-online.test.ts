/**
 * `etcdctl defrag` (the real etcdctl 3.4) against three `flotilla serve` processes while
 * WRITERS clients put through every member (issue 11 item 4): the store holds LIVE_MIB of live
 * values and as much again deleted and compacted away; defrag of every member succeeds, each
 * member logs the bytes it reclaimed and its file shrinks, puts are acknowledged while the
 * leader's defragmentation runs (an online copy, not a stop-the-world pause), and afterwards
 * every acknowledged put holds its value on every member and HashKV agrees. Needs etcdctl.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startCluster, which, type Cluster } from './support/cluster.js';
import { etcdctl } from './support/etcdctl-session.js';
import { leaderIndex, rawClient, type Wire } from './support/grpc.js';

const ETCDCTL = which('etcdctl');
if (!ETCDCTL) console.log('skipping the online defrag test: etcdctl not installed (apt-get install -y etcd-client)');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Live data the defragmenting copy has to carry (MiB, in values of 1 MiB). */
const LIVE_MIB = 96;
/** Deleted and compacted data, whose pages the copy leaves behind. */
const DEAD_MIB = 96;
const WRITERS = 8;

/** A setup call tried again (up to 5 times) after an error: the fill is idempotent. */
async function retryCall<T>(f: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await f();
    } catch (e) {
      if (i >= 4) throw e;
      await sleep(500);
    }
  }
}

describe.skipIf(!ETCDCTL)('defrag while a writer runs', () => {
  let cluster: Cluster | undefined;
  afterAll(async () => {
    await cluster?.stop();
  });

  it('etcdctl defrag of every member under concurrent puts: writes acknowledged during the leader\'s copy, bytes reclaimed, nothing acknowledged lost, HashKV equal', async () => {
    cluster = await startCluster('flotilla');
    const c = cluster;
    const dump = () => c.members.map((m) => `--- ${m.name}\n${m.output.slice(-3000)}`).join('\n');
    const leader = await leaderIndex(c.endpoints);
    const lc = rawClient(c.endpoints[leader]!);
    const mib = Buffer.alloc(1 << 20, 'd');
    for (let i = 0; i < LIVE_MIB + DEAD_MIB; i++) {
      const key = i < LIVE_MIB ? `live/${i}` : `dead/${i}`;
      // The same put again after a timeout (a loaded machine): it writes the same value.
      await retryCall(() => lc.call('etcdserverpb.KV', 'Put', { key: Buffer.from(key), value: Buffer.concat([Buffer.from(`${key}:`), mib]) }, 30_000));
    }
    await retryCall(() => lc.call('etcdserverpb.KV', 'DeleteRange', { key: Buffer.from('dead/'), range_end: Buffer.from('dead0') }));
    const rev = Number(((await lc.call('etcdserverpb.KV', 'Range', { key: Buffer.from('live/0') })).header as Wire).revision);
    await lc.call('etcdserverpb.KV', 'Compact', { revision: String(rev), physical: true });
    lc.close();
    const dbBytes = () => c.members.map((m) => statSync(join(m.dataDir, 'member', 'db')).size);
    const before = dbBytes();

    // Writers: small puts through every member, each acknowledgement timed.
    const acked = new Map<string, string>();
    const ackTimes: number[] = [];
    let stop = false;
    const writer = async (w: number): Promise<void> => {
      const cl = rawClient(c.endpoints[w % 3]!);
      for (let seq = 0; !stop; seq++) {
        const key = `w/${w}/${seq}`;
        try {
          await cl.call('etcdserverpb.KV', 'Put', { key: Buffer.from(key), value: Buffer.from(`${key}=${seq}`) }, 10_000);
          acked.set(key, `${key}=${seq}`);
          ackTimes.push(Date.now());
        } catch {
          await sleep(20);
        }
      }
      cl.close();
    };
    const writers = Array.from({ length: WRITERS }, (_, w) => writer(w));
    while (acked.size < 100) await sleep(20);

    const outputStart = c.members.map((m) => m.output.length);
    const r = await etcdctl(ETCDCTL!, c.endpoints, ['defrag'], { timeoutMs: 120_000 });
    const acksAtDefragEnd = acked.size;
    // Writes go on after it, too.
    while (acked.size < acksAtDefragEnd + 100) await sleep(20);
    stop = true;
    await Promise.all(writers);

    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout.split('\n').filter((l) => /^Finished defragmenting etcd member\[127\.0\.0\.1:\d+\]$/.test(l))).toHaveLength(3);
    const after = dbBytes();
    for (const [i, m] of c.members.entries()) {
      const log = m.output.slice(outputStart[i]);
      const started = /^(\S+) info .*defragmenting the backend /m.exec(log);
      const done = /^(\S+) info .*finished defragmenting the backend in (\d+) ms: (\d+) -> (\d+) bytes, (\d+) bytes reclaimed/m.exec(log);
      expect(started, `${m.name} logged its defragmentation\n${log.slice(-3000)}`).not.toBeNull();
      expect(done, `${m.name} logged its defragmentation\n${log.slice(-3000)}`).not.toBeNull();
      // The dead megabytes are reclaimed; the file shrank by about as much.
      expect(Number(done![5]), `${m.name} reclaimed`).toBeGreaterThan((DEAD_MIB / 2) << 20);
      expect(after[i]!, `${m.name}'s file shrank`).toBeLessThan(before[i]! - ((DEAD_MIB / 2) << 20));
      if (i === leader) {
        const [from, to] = [Date.parse(started![1]!), Date.parse(done![1]!)];
        const during = ackTimes.filter((t) => t > from && t < to).length;
        console.log(`defrag-online: ${during} puts acknowledged during the leader's ${to - from} ms defragmentation (${done![5]} bytes reclaimed)`);
        expect(during, `puts acknowledged during the leader's ${to - from} ms defragmentation`).toBeGreaterThan(0);
      }
    }

    // Every acknowledged put, and the live values, on every member; HashKV equal.
    const clients = c.endpoints.map((e) => rawClient(e));
    const now = await leaderIndex(c.endpoints);
    const at = Number(((await clients[now]!.call('etcdserverpb.KV', 'Range', { key: Buffer.from('w/') })).header as Wire).revision);
    for (const [j, cl] of clients.entries()) {
      for (let i = 0; ; i++) {
        const got = await cl.call('etcdserverpb.KV', 'Range', { key: Buffer.from('w/'), serializable: true, count_only: true });
        if (Number((got.header as Wire).revision) >= at) break;
        if (i === 600) throw new Error(`member ${j + 1} does not reach revision ${at}\n${dump()}`);
        await sleep(100);
      }
      const got = await cl.call('etcdserverpb.KV', 'Range', { key: Buffer.from('w/'), range_end: Buffer.from('w0'), serializable: true, revision: String(at) }, 30_000);
      const have = new Map((got.kvs as Wire[]).map((kv) => [(kv.key as Buffer).toString(), (kv.value as Buffer).toString()]));
      expect([...acked].filter(([k, v]) => have.get(k) !== v), `acknowledged puts missing on member ${j + 1}`).toEqual([]);
      const live = await cl.call('etcdserverpb.KV', 'Range', { key: Buffer.from('live/'), range_end: Buffer.from('live0'), serializable: true, keys_only: true });
      expect(Number(live.count)).toBe(LIVE_MIB);
    }
    const hashes = await Promise.all(clients.map((cl) => cl.call('etcdserverpb.Maintenance', 'HashKV', { revision: String(at) })));
    expect(new Set(hashes.map((h) => String(h.hash))).size, JSON.stringify(hashes)).toBe(1);
    for (const cl of clients) cl.close();
  }, 300_000);
});
