/**
 * Every read the API serves as linearizable goes through the read barrier, also on a follower
 * that lags behind: its fsyncs slowed by fault injection, so it applies what the leader and the
 * other follower already committed and acknowledged a while later. Asked through its own client
 * port right after a write was acknowledged, it must wait and answer fresh, never from its stale
 * state. One case per class of read: key-value ranges, lease time-to-live (with keys) and the
 * lease list, the election's leader. (Status, Hash/HashKV and MemberList are this member's own
 * view, as in etcd 3.4: not linearizable by design.) Server members in this process (support/in-process.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlotillaClient } from '../src/client/index.js';
import { startInProcessCluster, type InProcessCluster } from './support/in-process.js';

/** Added to every fsync of the lagging follower: far above a round trip to the leader. */
const LAG_FSYNC_MS = 1500;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('linearizable reads on a lagging follower', () => {
  let cluster: InProcessCluster;
  let viaLeader: FlotillaClient;
  let viaFollower: FlotillaClient;
  let follower = -1;

  beforeAll(async () => {
    // A request may wait long on a loaded machine: the follower catches up through slow fsyncs.
    cluster = await startInProcessCluster({ settings: { unsafeFaultInjection: true, requestTimeout: 20000 }, readyTimeoutMs: 60_000 });
    const admin = new FlotillaClient({ endpoints: cluster.endpoints });
    let leader = -1;
    for (const deadline = Date.now() + 30_000; leader < 0; await sleep(100)) {
      if (Date.now() > deadline) throw new Error('no leader');
      for (let i = 0; i < cluster.endpoints.length; i++) {
        const s = await admin.status(cluster.endpoints[i]!).catch(() => null);
        if (s && s.leader !== 0n && s.leader === s.header.memberId) leader = i;
      }
    }
    await admin.close();
    follower = (leader + 1) % cluster.endpoints.length;
    viaLeader = new FlotillaClient({ endpoints: [cluster.endpoints[leader]!], requestTimeoutMs: 30_000 });
    viaFollower = new FlotillaClient({ endpoints: [cluster.endpoints[follower]!], requestTimeoutMs: 30_000 });
  }, 120_000);

  afterAll(async () => {
    await viaLeader?.close();
    await viaFollower?.close();
    await cluster?.stop();
  });

  const setLag = async (ms: number): Promise<void> => {
    const r = await fetch(`${cluster.members[follower]!.clientUrl}/debug/faults`, { method: 'POST', body: JSON.stringify({ fsyncDelayMs: ms }) });
    expect(r.status).toBe(200);
  };

  /** `write` through the leader while the follower lags, then `read` through the follower. */
  const lagging = async <T,>(write: () => Promise<unknown>, read: () => Promise<T>): Promise<T> => {
    await setLag(LAG_FSYNC_MS);
    try {
      await write();
      return await read();
    } finally {
      await setLag(0);
    }
  };

  it('range', async () => {
    const r = await lagging(() => viaLeader.put('lag/kv', 'fresh'), () => viaFollower.get('lag/kv'));
    expect(r.kvs.map((kv) => kv.valueString())).toEqual(['fresh']);
  }, 60_000);

  it('lease time-to-live with keys, and the lease list', async () => {
    let id = 0n;
    const ttl = await lagging(
      async () => {
        id = (await viaLeader.leaseGrant(60)).id;
        await viaLeader.put('lag/leased', 'x', { lease: id });
      },
      () => viaFollower.leaseTimeToLive(id, { keys: true }),
    );
    expect(ttl.ttl).toBeGreaterThan(0);
    expect(ttl.grantedTtl).toBe(60);
    expect(ttl.keys.map((k) => k.toString())).toEqual(['lag/leased']);

    let other = 0n;
    const list = await lagging(
      async () => (other = (await viaLeader.leaseGrant(60)).id),
      () => viaFollower.leaseLeases(),
    );
    expect(list.leases).toContain(other);
  }, 60_000);

  it("the election's leader", async () => {
    const l = await viaLeader.campaign('lag-elect', 'first');
    const kv = await lagging(() => viaLeader.proclaim(l, 'second'), () => viaFollower.leader('lag-elect'));
    expect(kv?.valueString()).toBe('second');
    await viaLeader.resign(l);
  }, 60_000);
});
