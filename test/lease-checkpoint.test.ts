/**
 * Leases across leader changes, real member processes: leadership moves every 2 s for 30 s
 * (MoveLeader through the API). A 10 s lease without keep-alives still expires, within 10 s and
 * 10 s + one checkpoint interval (observed by a watch on its key: the revoke applied); its
 * LeaseTimeToLive never jumps back towards the full TTL at a new leader; a lease with
 * keep-alives survives the same changes. Before checkpoints, every new leader gave every lease
 * its full TTL again, so the first lease would have lived as long as leaders kept changing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlotillaClient, type WatchEvent } from '../src/client/index.js';
import { LEASE_CHECKPOINT_INTERVAL_MS } from '../src/server/lessor.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { rawClient } from './support/grpc.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const TTL_S = 10;
const MOVE_EVERY_MS = 2000;
const MOVES_FOR_MS = 30_000;

describe('leases across leader changes', () => {
  let cluster: Cluster;
  let c: FlotillaClient;

  beforeAll(async () => {
    cluster = await startCluster('flotilla');
    c = new FlotillaClient({ endpoints: cluster.endpoints, requestTimeoutMs: 10_000 });
  }, 60_000);

  afterAll(async () => {
    await c?.close();
    await cluster?.stop();
  });

  /** Index of the member that says it leads, or -1. */
  async function leaderIndex(): Promise<number> {
    for (let i = 0; i < cluster.endpoints.length; i++) {
      const s = await c.status(cluster.endpoints[i]!).catch(() => null);
      if (s && s.leader !== 0n && s.leader === s.header.memberId) return i;
    }
    return -1;
  }

  it('a lease without keep-alives expires within its TTL plus one checkpoint interval; a kept-alive one survives', async () => {
    // Member ids (asked again while a loaded machine is slow to answer).
    const ids: bigint[] = [];
    for (const e of cluster.endpoints) {
      for (let tries = 1; ; tries++) {
        const s = await c.status(e).catch((err: unknown) => {
          if (tries >= 20) throw err;
          return null;
        });
        if (s) {
          ids.push(s.header.memberId);
          break;
        }
      }
    }
    const deletes = new Map<string, number>();
    const w = c.watch('lc/', { prefix: true, filters: ['NOPUT'] }, (evs: WatchEvent[]) => {
      for (const e of evs) deletes.set(e.kv.key.toString(), Date.now());
    });
    await w.ready;

    const kept = await c.leaseGrant(TTL_S);
    await c.put('lc/kept', 'k', { lease: kept.id });
    const ka = c.leaseKeepAlive(kept.id);
    const t0 = Date.now();
    const free = await c.leaseGrant(TTL_S);
    const t1 = Date.now();
    await c.put('lc/free', 'f', { lease: free.id });

    // Leadership moves every 2 s, from whoever leads to the next member.
    let moves = 0;
    const moveErrors: string[] = [];
    const mover = (async () => {
      const end = Date.now() + MOVES_FOR_MS;
      while (Date.now() < end) {
        const started = Date.now();
        const l = await leaderIndex();
        if (l >= 0) {
          const raw = rawClient(cluster.endpoints[l]!);
          try {
            await raw.call('etcdserverpb.Maintenance', 'MoveLeader', { targetID: ids[(l + 1) % ids.length]!.toString() }, 5000);
            moves++;
          } catch (e) {
            moveErrors.push(String(e));
          } finally {
            raw.close();
          }
        }
        await sleep(Math.max(0, MOVE_EVERY_MS - (Date.now() - started)));
      }
    })();

    // The time to live as clients see it, while the lease lives: never back up towards the full TTL.
    const readings: { at: number; ttl: number }[] = [];
    while (!deletes.has('lc/free') && Date.now() - t1 < TTL_S * 1000 + LEASE_CHECKPOINT_INTERVAL_MS + 10_000) {
      const r = await c.leaseTimeToLive(free.id).catch(() => null);
      if (r && r.ttl > 0) readings.push({ at: Date.now(), ttl: r.ttl });
      await sleep(300);
    }
    await mover;
    const kaAlive = ka.ttl;
    await ka.stop();
    w.cancel();

    const expiredAt = deletes.get('lc/free');
    expect(expiredAt, `the 10 s lease never expired while leadership moved (${moves} moves)`).toBeDefined();
    // Never early: the revoke applied no sooner than the TTL after the grant was sent.
    expect(expiredAt! - t0).toBeGreaterThanOrEqual(TTL_S * 1000);
    // Not late by more than one checkpoint interval (each handover costs the lease only the transfer).
    expect(expiredAt! - t1).toBeLessThanOrEqual(TTL_S * 1000 + LEASE_CHECKPOINT_INTERVAL_MS);
    // Leadership really moved, several times while the lease lived.
    expect(moves, moveErrors.join('\n')).toBeGreaterThanOrEqual(MOVES_FOR_MS / MOVE_EVERY_MS / 2);
    for (let i = 1; i < readings.length; i++) expect(readings[i]!.ttl, JSON.stringify(readings)).toBeLessThanOrEqual(readings[i - 1]!.ttl + 1);
    expect(readings.length).toBeGreaterThan(10);

    // The kept-alive lease lived through all of it, with its key.
    expect(deletes.has('lc/kept')).toBe(false);
    expect(kaAlive).toBe(TTL_S);
    const ttl = await c.leaseTimeToLive(kept.id);
    expect(ttl.ttl).toBeGreaterThan(0);
    expect((await c.get('lc/kept')).kvs.map((kv) => kv.valueString())).toEqual(['k']);
    console.log(`lease expired ${expiredAt! - t1} ms after its grant (TTL ${TTL_S * 1000} ms, checkpoint interval ${LEASE_CHECKPOINT_INTERVAL_MS} ms), ${moves} leader moves`);
  }, 120_000);
});
