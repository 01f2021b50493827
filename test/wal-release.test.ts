/**
 * WAL segments covered by a durable backend commit are released (issue 11 item 2), through
 * real `flotilla serve` processes: under a long run of large puts (several 64 MiB segments'
 * worth on every member), each member's <data-dir>/wal/ keeps a bounded number of segments —
 * the oldest are deleted once a snapshot (a commit of the LMDB store recording the applied
 * index) covers them — and its size stops growing while the log keeps growing. A member
 * SIGKILLed at the end restarts from its store's applied index over the WAL that is left, and
 * every acknowledged put is there; HashKV equal.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SEGMENT_BYTES_DEFAULT } from '../src/storage/wal.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { leaderIndex, rawClient, type Wire } from './support/grpc.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Segments each member must have started (and so written about this many segments' worth of log). */
const SEGMENTS_WRITTEN_MIN = 4;
/**
 * Segments a member may hold at once: the open one, the one before it until the next snapshot
 * covers its last entry, and one more while a snapshot is being written. With a snapshot every
 * SNAPSHOT_COUNT entries (a few MiB of log here) a segment is released soon after it closes.
 */
const SEGMENTS_HELD_MAX = 3;
const SNAPSHOT_COUNT = 50;
/** Large values so that 64 MiB segments fill in a few hundred puts. */
const VALUE_BYTES = 512 * 1024;
const WRITERS = 6;
/** Keys the writers overwrite (the store's history grows, its key space does not). */
const KEYS = 32;

interface WalSample {
  names: string[];
  bytes: number;
}

function walOf(dataDir: string): WalSample {
  const dir = join(dataDir, 'wal');
  let names: string[] = [];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.wal')).sort();
  } catch {
    return { names: [], bytes: 0 };
  }
  let bytes = 0;
  for (const n of names) {
    try {
      bytes += statSync(join(dir, n)).size;
    } catch {
      // Deleted between the listing and the stat: released.
    }
  }
  return { names, bytes };
}

/** A segment's sequence number (the first 16 hex digits of its name). */
const seqOf = (name: string) => parseInt(name.slice(0, 16), 16);

describe('WAL segments are released under a long write run', () => {
  let cluster: Cluster | undefined;
  afterAll(async () => {
    await cluster?.stop();
  });

  it('each member keeps at most SEGMENTS_HELD_MAX segments while it writes SEGMENTS_WRITTEN_MIN or more; the oldest are deleted; a restart after it loses nothing', async () => {
    cluster = await startCluster('flotilla', { extraArgs: ['--snapshot-count', String(SNAPSHOT_COUNT), '--snapshot-catchup-entries', '20'] });
    const c = cluster;
    const dump = () => c.members.map((m) => `--- ${m.name}\n${m.output.slice(-3000)}`).join('\n');
    const acked = new Map<string, string>();
    let stop = false;
    let failures = 0;
    const writer = async (w: number): Promise<void> => {
      const cl = rawClient(c.endpoints[w % c.endpoints.length]!);
      const pad = Buffer.alloc(VALUE_BYTES, 'w');
      for (let seq = 0; !stop; seq++) {
        // One writer per key: its last acknowledged value is what the key must hold.
        const key = `wal/${String(w).padStart(2, '0')}/${seq % (KEYS / WRITERS | 0)}`;
        const head = `${key}#${seq}`;
        try {
          await cl.call('etcdserverpb.KV', 'Put', { key: Buffer.from(key), value: Buffer.concat([Buffer.from(head), pad]) }, 30_000);
          acked.set(key, head);
        } catch {
          failures++;
          acked.delete(key);
          await sleep(50);
        }
      }
      cl.close();
    };
    const writers = Array.from({ length: WRITERS }, (_, w) => writer(w));

    const seen = c.members.map(() => new Set<string>());
    const heldMax = c.members.map(() => 0);
    const bytesMax = c.members.map(() => 0);
    const deadline = Date.now() + 400_000;
    for (;;) {
      for (const [i, m] of c.members.entries()) {
        const s = walOf(m.dataDir);
        for (const n of s.names) seen[i]!.add(n);
        heldMax[i] = Math.max(heldMax[i]!, s.names.length);
        bytesMax[i] = Math.max(bytesMax[i]!, s.bytes);
      }
      const started = seen.map((names) => Math.max(...[...names].map(seqOf)) + 1);
      if (started.every((n) => n >= SEGMENTS_WRITTEN_MIN)) break;
      if (Date.now() > deadline) throw new Error(`segments started per member: ${started.join(', ')} (${acked.size} keys, ${failures} failed puts)\n${dump()}`);
      await sleep(200);
    }
    stop = true;
    await Promise.all(writers);

    for (const [i, m] of c.members.entries()) {
      const now = walOf(m.dataDir);
      const names = [...seen[i]!].sort();
      // The oldest segments are gone from the directory: released, not kept.
      expect(now.names, `${m.name}: segments seen ${names.join(' ')}`).not.toContain(names[0]);
      expect(now.names.length).toBeLessThanOrEqual(SEGMENTS_HELD_MAX);
      expect(heldMax[i], `${m.name}: most segments held at once`).toBeLessThanOrEqual(SEGMENTS_HELD_MAX);
      // The directory stayed bounded while more than that went through it.
      expect(bytesMax[i]).toBeLessThanOrEqual(SEGMENTS_HELD_MAX * SEGMENT_BYTES_DEFAULT);
      expect(Math.max(...names.map(seqOf)) + 1).toBeGreaterThan(SEGMENTS_HELD_MAX);
    }

    // A member SIGKILLed now restarts from its store's applied index over what is left of its WAL.
    const victim = (await leaderIndex(c.endpoints) + 1) % 3;
    const vm = c.members[victim]!;
    c.kill(victim);
    vm.output = '';
    await c.restart(victim);
    const applied = Number(/starting: .* applied=(\d+)/.exec(vm.output)?.[1] ?? -1);
    expect(applied, `${vm.name} resumed from its store\n${vm.output.slice(0, 3000)}`).toBeGreaterThan(SEGMENTS_WRITTEN_MIN * (SEGMENT_BYTES_DEFAULT / VALUE_BYTES) / 2);

    const clients = c.endpoints.map((e) => rawClient(e));
    const rev = Number(((await clients[await leaderIndex(c.endpoints)]!.call('etcdserverpb.KV', 'Range', { key: Buffer.from('wal/') })).header as Wire).revision);
    for (const [j, cl] of clients.entries()) {
      for (let i = 0; ; i++) {
        const r = await cl.call('etcdserverpb.KV', 'Range', { key: Buffer.from('wal/'), serializable: true }).catch(() => null);
        if (r && Number((r.header as Wire).revision) >= rev) break;
        if (i === 600) throw new Error(`member ${j + 1} does not reach revision ${rev}\n${dump()}`);
        await sleep(100);
      }
      const wrong: string[] = [];
      for (const [k, head] of acked) {
        const r = await cl.call('etcdserverpb.KV', 'Range', { key: Buffer.from(k), serializable: true, revision: String(rev) });
        const v = (r.kvs as Wire[])[0]?.value as Buffer | undefined;
        if (!v || v.subarray(0, head.length).toString() !== head || v.length !== head.length + VALUE_BYTES) wrong.push(k);
      }
      expect(wrong, `acknowledged puts missing or different on member ${j + 1}`).toEqual([]);
    }
    const hashes = await Promise.all(clients.map((cl) => cl.call('etcdserverpb.Maintenance', 'HashKV', { revision: String(rev) })));
    expect(new Set(hashes.map((h) => String(h.hash))).size, JSON.stringify(hashes)).toBe(1);
    for (const cl of clients) cl.close();
  }, 600_000);
});
