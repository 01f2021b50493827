/**
 * Streamed snapshots between real member processes: a member that was down while the log
 * moved past its compaction point receives the leader's store as a stream of chunks; it is
 * SIGKILLed mid-receive, restarted, keeps the chunks it had made durable (its receive area's
 * manifest), and the leader's send goes on from there — the same stream, not from zero —
 * until the member holds the leader's HashKV.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SNAPSHOT_CHUNK_BYTES } from '../src/server/snapshot-stream-codec.js';
import { SNAPSHOT_INFLIGHT_CHUNKS_MAX } from '../src/server/snapshot-stream.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { rawClient } from './support/grpc.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The partial snapshot in a member's receive area: its stream id and how many chunks its manifest lists. */
function partial(dataDir: string): { id: string; chunks: number; complete: boolean } | null {
  const dir = join(dataDir, 'member', 'snap-recv');
  if (!existsSync(dir)) return null;
  for (const id of readdirSync(dir)) {
    try {
      const m = JSON.parse(readFileSync(join(dir, id, 'manifest.json'), 'utf8')) as { digests: string[]; meta: unknown };
      return { id, chunks: m.digests.length, complete: m.meta !== null };
    } catch {
      // Not written yet, or being replaced: look again.
    }
  }
  return null;
}

describe('streamed snapshot between member processes', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster('flotilla', { extraArgs: ['--snapshot-count', '20', '--snapshot-catchup-entries', '5'] });
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it('a member SIGKILLed while receiving a snapshot resumes the same stream after its restart and ends with the leader\'s HashKV', async () => {
    const [e1, e2, e3] = cluster.endpoints as [string, string, string];
    const c1 = rawClient(e1);
    cluster.kill(2);
    // About 32 MiB of values: a stream of some 32 chunks of 1 MiB.
    const value = Buffer.alloc(1 << 20, 'x');
    for (let i = 0; i < 32; i++) await c1.call('etcdserverpb.KV', 'Put', { key: Buffer.from(`big/${i}`), value: Buffer.concat([Buffer.from(`${i}:`), value]) }, 30_000);
    for (let i = 0; i < 30; i++) await c1.call('etcdserverpb.KV', 'Put', { key: Buffer.from(`small/${i}`), value: Buffer.from(`v${i}`) });

    const m3 = cluster.members[2]!;
    cluster.relaunch(2);
    let seen: ReturnType<typeof partial> = null;
    for (let i = 0; i < 6000 && !(seen && seen.chunks >= 3); i++) {
      seen = partial(m3.dataDir);
      if (!(seen && seen.chunks >= 3)) await sleep(5);
    }
    expect(seen, `no partial snapshot appeared\n${m3.output.slice(-2000)}`).not.toBeNull();
    cluster.kill(2);
    const kept = partial(m3.dataDir)!;
    expect(kept.complete, 'the member was killed mid-receive (the stream had not completed)').toBe(false);
    expect(kept.chunks).toBeGreaterThanOrEqual(3);
    const firstOutput = m3.output.length;

    await cluster.restart(2);
    const c3 = rawClient(e3);
    let hashes: string[] = [];
    for (let i = 0; i < 600; i++) {
      hashes = await Promise.all([e1, e2, e3].map(async (e) => String((await rawClient(e).call('etcdserverpb.Maintenance', 'HashKV', { revision: '0' })).hash)));
      const count = Number((await c3.call('etcdserverpb.KV', 'Range', { key: Buffer.from('small/'), range_end: Buffer.from('small0'), serializable: true, count_only: true })).count);
      if (count === 30 && new Set(hashes).size === 1) break;
      await sleep(100);
    }
    expect(new Set(hashes).size, hashes.join(' ')).toBe(1);

    // The restarted member kept its partial and received the rest of the same stream.
    const after = m3.output.slice(firstOutput);
    expect(after).toMatch(new RegExp(`kept partial snapshot ${kept.id} \\[index: \\d+\\] from \\d+: \\d+ chunks`));
    expect(after).toMatch(new RegExp(`received snapshot ${kept.id} \\[index: \\d+, term: \\d+\\] from \\d+`));
    expect(after, 'no stream started over after the restart').not.toMatch(/receiving snapshot [0-9a-f]{32}/);
    // After the restart the leader went back to the last chunk the member had acknowledged
    // (its acks may trail what it made durable by the chunks in flight), not to chunk 0. (A
    // resume from 0 can only happen before the first ack, when nothing was acknowledged.)
    const leaderLog = cluster.members.map((m) => m.output).join('\n');
    const resumed = [...leaderLog.matchAll(new RegExp(`snapshot ${kept.id} to \\d+: resuming from chunk (\\d+)`, 'g'))].map((m) => Number(m[1]));
    expect(resumed.length).toBeGreaterThan(0);
    expect(resumed.at(-1)).toBeGreaterThanOrEqual(Math.max(1, kept.chunks - SNAPSHOT_INFLIGHT_CHUNKS_MAX));
    const sentLine = new RegExp(`snapshot ${kept.id} to \\d+: sent, (\\d+) bytes in (\\d+) chunks`).exec(leaderLog);
    expect(sentLine).not.toBeNull();
    // Every chunk but the last holds at least SNAPSHOT_CHUNK_BYTES, and at most that plus one record (a 1 MiB value).
    const [bytes, chunks] = [Number(sentLine![1]), Number(sentLine![2])];
    expect(chunks).toBeLessThanOrEqual(Math.ceil(bytes / SNAPSHOT_CHUNK_BYTES));
    expect(chunks).toBeGreaterThanOrEqual(Math.floor(bytes / (SNAPSHOT_CHUNK_BYTES + (1 << 20) + 1024)));
  }, 120_000);
});
