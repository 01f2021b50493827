/**
 * Lease reads (`flotilla serve --lease-reads`) through the real server: the leader answers a
 * linearizable read from its lease while it cannot reach anyone (a safe read would wait for a
 * heartbeat round), stops once the lease has run out, and — the case leases get wrong — a
 * leader paused by SIGSTOP past its lease, while the others elect a new leader and write, does
 * not answer from the lease it had when it stopped: on SIGCONT it sees the time that passed.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FlotillaClient } from '../src/client/index.js';
import { startCluster, type Cluster } from './support/cluster.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('lease reads', () => {
  let cluster: Cluster | undefined;
  const clients: FlotillaClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    await cluster?.stop();
    cluster = undefined;
  });

  const client = (endpoint: string, requestTimeoutMs = 2000): FlotillaClient => {
    const c = new FlotillaClient({ endpoints: [endpoint], requestTimeoutMs });
    clients.push(c);
    return c;
  };
  const faults = (c: Cluster, i: number, body: object) => fetch(`${c.members[i]!.clientUrl}/debug/faults`, { method: 'POST', body: JSON.stringify(body) }).then((r) => expect(r.status).toBe(200));
  /** Cuts member i off from every other member, both ways. */
  const isolate = async (c: Cluster, i: number) => {
    const others = c.members.filter((_, j) => j !== i).map((m) => m.name);
    await faults(c, i, { dropTo: others, dropFrom: others });
  };
  const leaderIndex = async (c: Cluster, except = -1): Promise<number> => {
    const admin = client(c.endpoints[0]!);
    for (let t = 0; t < 100; t++) {
      const st = await Promise.all(c.endpoints.map((e, i) => (i === except ? null : admin.status(e).catch(() => null))));
      const i = st.findIndex((s) => s !== null && s.leader === s.header.memberId);
      if (i >= 0) return i;
      await sleep(100);
    }
    throw new Error('no leader');
  };

  it('the leader answers from its lease while cut off, and not after the lease has run out', async () => {
    // A long election timeout (lease 3000 - 600 ms) keeps this test clear of a busy machine.
    const c = (cluster = await startCluster('flotilla', { extraArgs: ['--unsafe-fault-injection', '--lease-reads', '--election-timeout', '3000'] }));
    const L = await leaderIndex(c);
    const onLeader = client(c.endpoints[L]!, 1500);
    await onLeader.put('lr/k', 'v1');
    expect((await onLeader.get('lr/k')).kvs[0]?.valueString()).toBe('v1');
    await isolate(c, L);
    // Within the lease (election timeout minus the drift margin), no round trip.
    const t0 = performance.now();
    expect((await onLeader.get('lr/k')).kvs[0]?.valueString(), 'answered from the lease').toBe('v1');
    expect(performance.now() - t0).toBeLessThan(1500);
    await sleep(3500);
    await expect(onLeader.get('lr/k'), 'the lease has run out: no answer without a quorum').rejects.toThrow();
  }, 60_000);

  it('without --lease-reads the cut-off leader answers no linearizable read', async () => {
    const c = (cluster = await startCluster('flotilla', { extraArgs: ['--unsafe-fault-injection'] }));
    const L = await leaderIndex(c);
    const onLeader = client(c.endpoints[L]!, 1500);
    await onLeader.put('lr/k', 'v1');
    await isolate(c, L);
    await expect(onLeader.get('lr/k')).rejects.toThrow();
  }, 60_000);

  it('a leader paused past its lease does not answer from it after SIGCONT', async () => {
    const c = (cluster = await startCluster('flotilla', { extraArgs: ['--unsafe-fault-injection', '--lease-reads'] }));
    const L = await leaderIndex(c);
    const onOld = client(c.endpoints[L]!, 1500);
    await onOld.put('lr/p', 'old');
    expect((await onOld.get('lr/p')).kvs[0]?.valueString()).toBe('old');
    // Cut it off (so nothing the new leader sends can tell it), then freeze it at once.
    await isolate(c, L);
    const pid = c.members[L]!.proc!.pid!;
    process.kill(pid, 'SIGSTOP');
    try {
      const N = await leaderIndex(c, L);
      await client(c.endpoints[N]!, 5000).put('lr/p', 'new');
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    // Its timers fire once on waking; without catching up on the ticks it slept through it
    // would still believe in its lease and answer 'old'.
    const r = await onOld.get('lr/p').then(
      (x) => x.kvs[0]?.valueString(),
      (e: Error) => `refused: ${e.message}`,
    );
    expect(r).not.toBe('old');
  }, 60_000);
});
