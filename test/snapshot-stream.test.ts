/**
 * Streamed snapshots between real member processes: a member that was down while the log
 * moved past its compaction point receives the leader's store as a stream of chunks.
 * - The receiver is SIGKILLed mid-receive, restarted, keeps the chunks it had made durable (its
 *   receive area's manifest), and the leader's send goes on from there — the same stream, not
 *   from zero — until the member holds the leader's HashKV.
 * - The sending leader is SIGKILLed mid-send and restarted: the receiver catches up from the
 *   next leader's stream.
 * Both end with every acknowledged put on every member, with its value, and HashKV equal at
 * a common revision.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SNAPSHOT_CHUNK_BYTES } from '../src/server/snapshot-stream-codec.js';
import { SNAPSHOT_INFLIGHT_CHUNKS_MAX } from '../src/server/snapshot-stream.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { leaderIndex, rawClient, type Wire } from './support/grpc.js';

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

/**
 * Waits until every member has applied what a linearizable read through `endpoints[via]` sees,
 * then checks on each member (serializable reads) that every acknowledged put holds its value,
 * and that HashKV at that revision is the same everywhere.
 */
async function converged(endpoints: readonly string[], acked: ReadonlyMap<string, Buffer>, what: () => string): Promise<void> {
  const clients = endpoints.map((e) => rawClient(e));
  try {
    const leader = await leaderIndex(endpoints, 60_000);
    let rev = 0;
    for (let i = 0; i < 600 && rev === 0; i++) {
      try {
        rev = Number(((await clients[leader]!.call('etcdserverpb.KV', 'Range', { key: Buffer.from('small/0') })).header as Wire).revision);
      } catch {
        await sleep(100);
      }
    }
    for (const [j, cl] of clients.entries()) {
      for (let i = 0; ; i++) {
        const got = await cl.call('etcdserverpb.KV', 'Range', { key: Buffer.from('small/0'), serializable: true }).catch(() => null);
        if (got && Number((got.header as Wire).revision) >= rev) break;
        if (i === 1200) throw new Error(`member ${j + 1} does not reach revision ${rev}\n${what()}`);
        await sleep(100);
      }
    }
    for (const [j, cl] of clients.entries()) {
      const wrong: string[] = [];
      for (const [k, v] of acked) {
        const r = await cl.call('etcdserverpb.KV', 'Range', { key: Buffer.from(k), serializable: true, revision: String(rev) }, 30_000);
        const kv = (r.kvs as Wire[])[0];
        if (!kv || !(kv.value as Buffer).equals(v)) wrong.push(k);
      }
      expect(wrong, `acknowledged puts missing or different on member ${j + 1}`).toEqual([]);
    }
    const hashes = await Promise.all(clients.map((cl) => cl.call('etcdserverpb.Maintenance', 'HashKV', { revision: String(rev) })));
    expect(new Set(hashes.map((h) => String(h.hash))).size, JSON.stringify(hashes)).toBe(1);
  } finally {
    for (const cl of clients) cl.close();
  }
}

/** About 32 MiB of values, then small puts: some 32 chunks of 1 MiB to stream. Every put is acknowledged (awaited); returns them. */
async function fill(endpoint: string, prefix: string): Promise<Map<string, Buffer>> {
  const acked = new Map<string, Buffer>();
  const cl = rawClient(endpoint);
  const value = Buffer.alloc(1 << 20, 'x');
  for (let i = 0; i < 32; i++) {
    const [k, v] = [`${prefix}big/${i}`, Buffer.concat([Buffer.from(`${prefix}${i}:`), value])];
    await cl.call('etcdserverpb.KV', 'Put', { key: Buffer.from(k), value: v }, 30_000);
    acked.set(k, v);
  }
  for (let i = 0; i < 30; i++) {
    const [k, v] = [`${prefix}small/${i}`, Buffer.from(`v${i}`)];
    await cl.call('etcdserverpb.KV', 'Put', { key: Buffer.from(k), value: v });
    acked.set(k, v);
  }
  cl.close();
  return acked;
}

/** Waits (polling the receive area) until member `dataDir` holds at least `chunks` chunks of a stream. */
async function partialWith(dataDir: string, chunks: number, what: () => string): Promise<NonNullable<ReturnType<typeof partial>>> {
  for (let i = 0; i < 12_000; i++) {
    const seen = partial(dataDir);
    if (seen && seen.chunks >= chunks) return seen;
    await sleep(5);
  }
  throw new Error(`no partial snapshot of ${chunks} chunks appeared\n${what()}`);
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
    cluster.kill(2);
    const acked = await fill(e1, '');

    const m3 = cluster.members[2]!;
    cluster.relaunch(2);
    await partialWith(m3.dataDir, 3, () => m3.output.slice(-2000));
    cluster.kill(2);
    const kept = partial(m3.dataDir)!;
    expect(kept.complete, 'the member was killed mid-receive (the stream had not completed)').toBe(false);
    expect(kept.chunks).toBeGreaterThanOrEqual(3);
    const firstOutput = m3.output.length;

    await cluster.restart(2);
    await converged([e1, e2, e3], acked, () => cluster.members.map((m) => m.output.slice(-2000)).join('\n'));

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
  }, 240_000);

  it('the leader SIGKILLed while it streams a snapshot: restarted, the receiver catches up from the next stream; nothing acknowledged lost, HashKV equal', async () => {
    const eps = cluster.endpoints;
    const dump = () => cluster.members.map((m) => `--- ${m.name}\n${m.output.slice(-3000)}`).join('\n');
    const leader = await leaderIndex(eps);
    const receiver = [0, 1, 2].find((i) => i !== leader)!;
    const rm = cluster.members[receiver]!;
    cluster.kill(receiver);
    const acked = await fill(eps[leader]!, 'lk/');
    const sentBefore = cluster.members[leader]!.output.length;
    const receivedBefore = rm.output.length;
    cluster.relaunch(receiver);
    const seen = await partialWith(rm.dataDir, 3, dump);
    // The stream is the leader's (its log names it), and the leader dies in the middle of it.
    expect(cluster.members[leader]!.output.slice(sentBefore)).toContain(`streaming snapshot ${seen.id}`);
    cluster.kill(leader);
    const kept = partial(rm.dataDir);
    expect(kept?.complete, 'the leader was killed mid-send (the stream had not completed)').toBe(false);

    // The remaining two elect the up-to-date member; the old leader comes back with its data.
    await cluster.restart(leader);
    await converged(eps, acked, dump);
    // The receiver installed a whole snapshot after the kill (the old leader's stream resumed
    // after its restart, or the next leader's).
    expect(rm.output.slice(receivedBefore)).toMatch(/received snapshot [0-9a-f]{32} \[index: \d+, term: \d+\] from \d+/);
    // And the cluster goes on.
    const cl = rawClient(eps[receiver]!);
    await cl.call('etcdserverpb.KV', 'Put', { key: Buffer.from('lk/after'), value: Buffer.from('x') });
    cl.close();
    await converged(eps, new Map([...acked, ['lk/after', Buffer.from('x')]]), dump);
  }, 300_000);
});
