/**
 * A member that was down while the log moved past its compaction point catches up through a
 * snapshot of the key-value state machine, and ends with the same HashKV as the others; a
 * watch on a member cut off from the leader ends with `etcdserver: no leader` (hasleader).
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientConstructor } from '../src/api/proto.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { rawClient } from './support/grpc.js';

type Wire = Record<string, unknown>;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('member recovery', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster('flotilla', { extraArgs: ['--snapshot-count', '50', '--snapshot-catchup-entries', '10'] });
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it('a member behind a compacted log catches up by snapshot; HashKV equal everywhere', async () => {
    const [e1, e2, e3] = cluster.endpoints as [string, string, string];
    const c1 = rawClient(e1);
    cluster.kill(2);
    const lease = await c1.call('etcdserverpb.Lease', 'LeaseGrant', { TTL: '600' });
    for (let i = 0; i < 300; i++) {
      await c1.call('etcdserverpb.KV', 'Put', { key: Buffer.from(`snap/${i}`), value: Buffer.from(`v${i}`), lease: i % 10 === 0 ? lease.ID : '0' });
    }
    const mid = Number(((await c1.call('etcdserverpb.KV', 'Range', { key: Buffer.from('snap/0') })).header as Wire).revision);
    await c1.call('etcdserverpb.KV', 'Compact', { revision: String(mid - 100) });
    await cluster.restart(2);
    const c3 = rawClient(e3);
    // Wait until member 3 applied everything (serializable reads show its own state).
    let count = 0;
    for (let i = 0; i < 100 && count !== 300; i++) {
      count = Number((await c3.call('etcdserverpb.KV', 'Range', { key: Buffer.from('snap/'), range_end: Buffer.from('snap0'), serializable: true, count_only: true })).count);
      if (count !== 300) await sleep(100);
    }
    expect(count).toBe(300);
    expect(cluster.members[2]!.output, 'member 3 installed a snapshot from the leader').toMatch(/restoring snapshot \[index: \d+/);
    expect(cluster.members[2]!.output, 'the snapshot was streamed (snapshot-stream.ts)').toMatch(/received snapshot [0-9a-f]{32} \[index: \d+, term: \d+\] from \d+: \d+ bytes in \d+ chunks/);
    const hashes = await Promise.all([e1, e2, e3].map((e) => rawClient(e).call('etcdserverpb.Maintenance', 'HashKV', { revision: String(mid) })));
    expect(new Set(hashes.map((h) => h.hash)).size, JSON.stringify(hashes.map((h) => [h.hash, h.compact_revision]))).toBe(1);
    expect(hashes.every((h) => Number(h.compact_revision) === mid - 100)).toBe(true);
    // The lease came through the snapshot too.
    const ttl = await c3.call('etcdserverpb.Lease', 'LeaseTimeToLive', { ID: lease.ID, keys: true });
    expect((ttl.keys as Buffer[]).length).toBe(30);
    // History after the compaction point is there on member 3: a watch from it replays it.
    const Watch = clientConstructor('etcdserverpb.Watch');
    const w = new Watch(e3, grpc.credentials.createInsecure()) as unknown as { Watch(): grpc.ClientDuplexStream<Wire, Wire>; close(): void };
    const s = w.Watch();
    const revs: number[] = [];
    s.on('data', (r: Wire) => revs.push(...((r.events as Wire[]) ?? []).map((e) => Number((e.kv as Wire).mod_revision))));
    s.on('error', () => {});
    s.write({ create_request: { key: Buffer.from('snap/'), range_end: Buffer.from('snap0'), start_revision: String(mid - 50) } });
    for (let i = 0; i < 50 && revs.length < 51; i++) await sleep(50);
    expect(revs).toEqual(Array.from({ length: 51 }, (_, i) => mid - 50 + i));
    s.cancel();
    w.close();
  }, 60_000);

  it('a watch asking hasleader on a member with no leader ends with "etcdserver: no leader"', async () => {
    const Watch = clientConstructor('etcdserverpb.Watch');
    const w = new Watch(cluster.endpoints[0]!, grpc.credentials.createInsecure()) as unknown as { Watch(md: grpc.Metadata): grpc.ClientDuplexStream<Wire, Wire>; close(): void };
    const md = new grpc.Metadata();
    md.set('hasleader', 'true');
    const s = w.Watch(md);
    const ended = new Promise<grpc.ServiceError>((resolve) => s.on('error', resolve));
    s.on('data', () => {});
    s.write({ create_request: { key: Buffer.from('x') } });
    await sleep(300);
    cluster.kill(1);
    cluster.kill(2);
    const t0 = Date.now();
    const e = await ended;
    expect(e.code).toBe(grpc.status.UNAVAILABLE);
    expect(e.details).toBe('etcdserver: no leader');
    expect(Date.now() - t0).toBeLessThan(15_000);
    w.close();
  }, 30_000);
});
