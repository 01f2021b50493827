/**
 * Leases across leader changes, real member processes: leadership moves every 2 s for 30 s
 * (MoveLeader through the API). A 10 s lease without keep-alives still expires, within 10 s and
 * 10 s + one checkpoint interval (observed by a watch on its key: the revoke applied); its
 * LeaseTimeToLive never jumps back towards the full TTL at a new leader; a lease with
 * keep-alives survives the same changes. Before checkpoints, every new leader gave every lease
 * its full TTL again, so the first lease would have lived as long as leaders kept changing.
 *
 * And a leader paused (SIGSTOP) past its leases' deadlines: the new leader's checkpointed
 * remaining time governs a lease without keep-alives (neither the paused leader's deadline nor a
 * full TTL), and the old leader, resumed and deposed, revokes nothing — a lease kept alive
 * through the new leader keeps its key although its deadline on the old leader's clock passed.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlotillaClient, type WatchEvent } from '../src/client/index.js';
import { LEASE_CHECKPOINT_INTERVAL_MS, LEASE_REVOKE_RETRY_MS } from '../src/server/lessor.js';
import { CLUSTER_READY_TIMEOUT_MS, startCluster, type Cluster } from './support/cluster.js';
import { rawClient } from './support/grpc.js';
import { scrape, valueOf } from './support/prom.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const TTL_S = 10;
const MOVE_EVERY_MS = 2000;
const MOVES_FOR_MS = 30_000;
/**
 * From the revoke's proposal to the watch event seen here: rate limiter, commit, apply,
 * delivery. The bounds are about when the leader decides that a lease expired; this process
 * sees it after that pipeline. (On a loaded machine a starved member may also miss heartbeats
 * and cause an unplanned election, which costs a lease the election on top of the interval,
 * lessor.ts; the measured scheduling delay below covers the rest of the starvation.) Small next
 * to what the bug this test is for costs: a lessor that gives a lease its full TTL at each of the
 * leader changes every MOVE_EVERY_MS keeps it alive as long as they go on (30 s and more).
 */
const REVOKE_SLACK_MS = 2000;
/** Leader moves while the first lease lived, at least (every MOVE_EVERY_MS over a 10 s lease: about 5). */
const MOVES_WHILE_LEASED_MIN = 3;

/**
 * How late the processes involved ran, at their worst, from `start()` to `end()`: the largest
 * event-loop delay of this process (perf_hooks) plus that of each member (their
 * nodejs_eventloop_lag_max_seconds, which a scrape resets), ms. On a loaded machine a timer
 * fires late and every step of a handover or a revoke waits for CPU; that time is the machine's,
 * not the lessor's, and a bound on the lessor adds it rather than failing on it.
 */
function schedulingDelay(urls: string[]) {
  const own = monitorEventLoopDelay({ resolution: 10 });
  const members = async (): Promise<number[]> =>
    Promise.all(urls.map((u) => scrape(u).then((f) => (valueOf(f, 'nodejs_eventloop_lag_max_seconds') ?? 0) * 1000, () => 0)));
  return {
    async start(): Promise<void> {
      await members();
      own.enable();
    },
    async end(): Promise<{ totalMs: number; parts: string }> {
      own.disable();
      const m = await members();
      const ownMs = own.max / 1e6;
      return { totalMs: ownMs + m.reduce((a, b) => a + b, 0), parts: `this process ${ownMs.toFixed(0)} ms, members ${m.map((x) => x.toFixed(0)).join('/')} ms` };
    },
  };
}

/**
 * Under `prefix`: a watch noting when each key is deleted (its lease revoked), a lease kept alive
 * with key `kept`, and a lease without keep-alives with key `free`, granted between t0 and t1.
 */
async function twoLeases(c: FlotillaClient, prefix: string, keptTtl: number, freeTtl: number) {
  const deletes = new Map<string, number>();
  const w = c.watch(prefix, { prefix: true, filters: ['NOPUT'] }, (evs: WatchEvent[]) => {
    for (const e of evs) deletes.set(e.kv.key.toString(), Date.now());
  });
  await w.ready;
  const kept = await c.leaseGrant(keptTtl);
  await c.put(`${prefix}kept`, 'k', { lease: kept.id });
  const ka = c.leaseKeepAlive(kept.id);
  const t0 = Date.now();
  const free = await c.leaseGrant(freeTtl);
  const t1 = Date.now();
  await c.put(`${prefix}free`, 'f', { lease: free.id });
  return { deletes, w, kept, ka, free, t0, t1 };
}

describe('leases across leader changes', () => {
  let cluster: Cluster;
  let c: FlotillaClient;

  beforeAll(async () => {
    cluster = await startCluster('flotilla');
    c = new FlotillaClient({ endpoints: cluster.endpoints, requestTimeoutMs: 10_000 });
  }, CLUSTER_READY_TIMEOUT_MS + 10_000);

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
    const delay = schedulingDelay(cluster.members.map((m) => m.clientUrl));
    await delay.start();
    const { deletes, w, kept, ka, free, t0, t1 } = await twoLeases(c, 'lc/', TTL_S, TTL_S);

    // Leadership moves every 2 s, from whoever leads to the next member.
    let moves = 0;
    const movedAt: number[] = [];
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
            movedAt.push(Date.now());
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
    while (!deletes.has('lc/free') && Date.now() - t1 < TTL_S * 1000 + LEASE_CHECKPOINT_INTERVAL_MS + REVOKE_SLACK_MS + 10_000) {
      const r = await c.leaseTimeToLive(free.id).catch(() => null);
      if (r && r.ttl > 0) readings.push({ at: Date.now(), ttl: r.ttl });
      await sleep(300);
    }
    const late = await delay.end();
    await mover;
    const kaAlive = ka.ttl;
    await ka.stop();
    w.cancel();

    const expiredAt = deletes.get('lc/free');
    expect(expiredAt, `the 10 s lease never expired while leadership moved (${moves} moves)`).toBeDefined();
    // Never early: the revoke applied no sooner than the TTL after the grant was sent.
    expect(expiredAt! - t0).toBeGreaterThanOrEqual(TTL_S * 1000);
    // Not late by more than one checkpoint interval (each handover costs the lease only the
    // transfer), plus the revoke's way here and the time the machine did not run us.
    expect(expiredAt! - t1, `scheduling delay ${late.parts}`).toBeLessThanOrEqual(TTL_S * 1000 + LEASE_CHECKPOINT_INTERVAL_MS + REVOKE_SLACK_MS + late.totalMs);
    // Leadership really moved, several times while the lease lived.
    expect(movedAt.filter((at) => at > t1 && at < expiredAt!).length, `${moves} moves: ${moveErrors.join('\n')}`).toBeGreaterThanOrEqual(MOVES_WHILE_LEASED_MIN);
    for (let i = 1; i < readings.length; i++) expect(readings[i]!.ttl, JSON.stringify(readings)).toBeLessThanOrEqual(readings[i - 1]!.ttl + 1);
    // The readings straddle leader changes (a time to live read before and after each of them).
    const straddled = movedAt.filter((at) => readings.some((r) => r.at < at) && readings.some((r) => r.at > at)).length;
    expect(straddled, JSON.stringify({ readings, movedAt })).toBeGreaterThanOrEqual(MOVES_WHILE_LEASED_MIN);

    // The kept-alive lease lived through all of it, with its key.
    expect(deletes.has('lc/kept')).toBe(false);
    expect(kaAlive).toBe(TTL_S);
    const ttl = await c.leaseTimeToLive(kept.id);
    expect(ttl.ttl).toBeGreaterThan(0);
    expect((await c.get('lc/kept')).kvs.map((kv) => kv.valueString())).toEqual(['k']);
    console.log(`lease expired ${expiredAt! - t1} ms after its grant (TTL ${TTL_S * 1000} ms, checkpoint interval ${LEASE_CHECKPOINT_INTERVAL_MS} ms), ${moves} leader moves; scheduling delay ${late.parts}`);
  }, 120_000);

  it('a paused leader never revokes, while paused or once deposed; the new leader continues from the checkpointed TTL', async () => {
    const PAUSED_TTL_S = 20;
    const KEPT_TTL_S = 10;
    // Paused after two checkpoint intervals: at least one checkpoint of the lease has committed.
    const PAUSE_AFTER_MS = 2 * LEASE_CHECKPOINT_INTERVAL_MS + 1000;
    let l = -1;
    for (const deadline = Date.now() + 20_000; l < 0; await sleep(100)) {
      expect(Date.now(), 'a leader').toBeLessThan(deadline);
      l = await leaderIndex();
    }
    const old = cluster.members[l]!;
    const others = cluster.endpoints.filter((_, i) => i !== l);
    // Everything through the two other members (their requests reach whoever leads).
    const f = new FlotillaClient({ endpoints: others, requestTimeoutMs: 10_000 });
    const paused = old.proc!.pid!;
    let stopped = false;
    try {
      // The members that keep running (the paused one's delay is the pause itself).
      const delay = schedulingDelay(cluster.members.filter((_, i) => i !== l).map((m) => m.clientUrl));
      await delay.start();
      const { deletes, w, kept, ka, t0, t1 } = await twoLeases(f, 'lp/', KEPT_TTL_S, PAUSED_TTL_S);
      // Waiting for a checkpoint to have committed (none is observable from outside).
      await sleep(Math.max(0, t1 + PAUSE_AFTER_MS - Date.now()));
      expect(await leaderIndex(), 'the leader did not change before the pause').toBe(l);

      const tPause = Date.now();
      process.kill(paused, 'SIGSTOP');
      stopped = true;
      let tNew = 0;
      for (const deadline = Date.now() + 30_000; tNew === 0; await sleep(50)) {
        expect(Date.now(), 'a new leader while the old one is paused').toBeLessThan(deadline);
        for (const e of others) {
          const s = await f.status(e).catch(() => null);
          if (s && s.leader !== 0n && s.leader === s.header.memberId) tNew = Date.now();
        }
      }
      // Paused until the free lease expired and past the kept lease's deadline on the paused clock.
      for (const deadline = Date.now() + PAUSED_TTL_S * 1000 + 20_000; !deletes.has('lp/free') || Date.now() < tPause + KEPT_TTL_S * 1000 + 1000; await sleep(100)) {
        expect(Date.now(), 'the free lease expires under the new leader').toBeLessThan(deadline);
      }
      const expiredAt = deletes.get('lp/free')!;
      const late = await delay.end();
      // Never early: not before its TTL from the grant.
      expect(expiredAt - t0).toBeGreaterThanOrEqual(PAUSED_TTL_S * 1000);
      // The new leader counted from the remaining time at the last checkpoint (no more than an
      // interval before the pause), not from the full TTL (that would be tNew + 20 s or later).
      const remainingAtCheckpointMax = t1 + PAUSED_TTL_S * 1000 - (tPause - LEASE_CHECKPOINT_INTERVAL_MS);
      expect(expiredAt, `expired ${expiredAt - tNew} ms after the new leader was seen; scheduling delay ${late.parts}`).toBeLessThanOrEqual(tNew + remainingAtCheckpointMax + REVOKE_SLACK_MS + late.totalMs);
      expect(deletes.has('lp/kept'), 'the kept-alive lease lives while the old leader is paused').toBe(false);

      // Resumed: its lease timers fire at once, past the kept lease's deadline on its clock. It is
      // deposed and must revoke nothing: wait until it follows the new leader and has applied
      // what the new leader had committed by then, plus a write after that.
      process.kill(paused, 'SIGCONT');
      stopped = false;
      const oldEp = cluster.endpoints[l]!;
      let caughtUp = false;
      for (const deadline = Date.now() + 30_000; !caughtUp; await sleep(100)) {
        expect(Date.now(), 'the resumed member follows the new leader and catches up').toBeLessThan(deadline);
        const s = await c.status(oldEp).catch(() => null);
        if (!s || s.leader === 0n || s.leader === s.header.memberId) continue;
        await f.put('lp/after', String(Date.now()));
        const committed = (await Promise.all(others.map((e) => f.status(e).then((x) => x.raftIndex, () => 0n)))).reduce((a, b) => (a > b ? a : b));
        for (const until = Date.now() + 10_000; !caughtUp && Date.now() < until; await sleep(100)) {
          const s2 = await c.status(oldEp).catch(() => null);
          caughtUp = s2 !== null && s2.raftAppliedIndex >= committed;
        }
      }
      // Longer than a revoke retry (a refused revoke is proposed again after LEASE_REVOKE_RETRY_MS
      // while the lessor believes it leads), then: the kept lease and its key live, everywhere.
      await sleep(LEASE_REVOKE_RETRY_MS + 1000);
      expect(deletes.has('lp/kept'), 'the deposed leader revoked a kept-alive lease').toBe(false);
      for (const e of cluster.endpoints) {
        const one = new FlotillaClient({ endpoints: [e], requestTimeoutMs: 10_000 });
        try {
          expect((await one.get('lp/kept', { serializable: true })).kvs.map((kv) => kv.valueString()), `lp/kept on ${e}`).toEqual(['k']);
        } finally {
          await one.close();
        }
      }
      expect((await f.leaseTimeToLive(kept.id)).ttl).toBeGreaterThan(0);
      expect(ka.ttl).toBe(KEPT_TTL_S);
      await ka.stop();
      w.cancel();
      console.log(`paused leader: the free lease expired ${expiredAt - t1} ms after its grant (TTL ${PAUSED_TTL_S * 1000} ms), ${expiredAt - tNew} ms after the new leader was seen; the kept one survived the old leader's resume`);
    } finally {
      if (stopped) process.kill(paused, 'SIGCONT');
      await f.close();
    }
  }, 150_000);
});
