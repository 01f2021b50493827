/**
 * The lessor against a fake log (every member's KvStateMachine applies what the leader
 * proposed, when the test commits) and a manual clock: deadlines from the heap and one timer,
 * checkpoints carried to the next leader, renews clearing them, rate-limited revokes, and no
 * proposal from a member that does not lead.
 */
import { describe, expect, it } from 'vitest';
import { decodeRequest, encodeCommand, LEASE_CHECKPOINT_BATCH_MAX, type ApplyResult, type Command } from '../kv/commands.js';
import { KvStateMachine } from '../kv/state-machine.js';
import type { Clock } from '../node/node.js';
import { LEASE_CHECKPOINT_INTERVAL_MS, LEASE_REVOKE_BURST, LEASE_REVOKE_RATE_PER_S, LEASE_REVOKE_RETRY_MS, Lessor } from './lessor.js';

class ManualClock implements Clock {
  t = 1000;
  fired = 0;
  private timers: { at: number; fn: () => void; live: boolean }[] = [];
  now = (): number => this.t;
  setTimer(ms: number, fn: () => void): { cancel(): void } {
    const timer = { at: this.t + ms, fn, live: true };
    this.timers.push(timer);
    return { cancel: () => void (timer.live = false) };
  }
  /** Runs the timers due up to now + ms, in time order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.timers = this.timers.filter((x) => x.live);
      const next = this.timers.sort((a, b) => a.at - b.at)[0];
      if (!next || next.at > end) break;
      this.t = Math.max(this.t, next.at);
      next.live = false;
      this.fired++;
      next.fn();
    }
    this.t = end;
  }
}

/** Members sharing one log; `leader` proposes, `commit()` applies everything proposed to every member. */
class FakeCluster {
  readonly clock = new ManualClock();
  readonly members: { sm: KvStateMachine; lessor: Lessor; leading: (l: boolean) => void; isLeader: boolean }[] = [];
  readonly proposed: { from: number; command: Command }[] = [];
  private pending: { data: Uint8Array; resolve: (r: ApplyResult) => void; reject: (e: Error) => void }[] = [];
  private index = 0;
  readonly revokedLatency: number[] = [];

  constructor(n: number) {
    for (let i = 0; i < n; i++) {
      const sm = new KvStateMachine();
      let listener: (leading: boolean, term: number) => void = () => {};
      const member = { sm, lessor: null as unknown as Lessor, leading: (l: boolean) => listener(l, 1), isLeader: false };
      const node = {
        get isLeader() {
          return member.isLeader;
        },
        propose: (data: Uint8Array): Promise<ApplyResult> => {
          if (!member.isLeader) return Promise.reject(new Error('not leader'));
          const d = decodeRequest(data);
          if (d.ok) this.proposed.push({ from: i, command: d.command });
          return new Promise((resolve, reject) => this.pending.push({ data, resolve, reject }));
        },
        onLeadershipChange: (fn: (leading: boolean, term: number) => void) => void (listener = fn),
      };
      member.lessor = new Lessor(
        { sm, node, config: { electionMs: 1000, requestTimeoutMs: 5000 } },
        { clock: this.clock, onExpiredRevoked: (_id, deadline, at) => this.revokedLatency.push(at - deadline) },
      );
      member.lessor.start();
      this.members.push(member);
    }
  }

  /** A command as if a client's request had been committed. */
  client(c: Command): void {
    this.pending.push({ data: encodeCommand(c), resolve: () => {}, reject: () => {} });
    this.commit();
  }

  commit(): void {
    const batch = this.pending;
    this.pending = [];
    for (const p of batch) {
      this.index++;
      let result: ApplyResult | undefined;
      for (const m of this.members) result = m.sm.apply({ index: this.index, term: 1, type: 'normal', data: p.data });
      p.resolve(result!);
    }
  }

  /** Every proposal not committed fails (as entries replaced in the log). */
  drop(): void {
    const batch = this.pending;
    this.pending = [];
    for (const p of batch) p.reject(new Error('dropped'));
  }

  /** Leadership moves to member i (the old leader is told first; the new one once the log is applied). */
  lead(i: number | null): void {
    for (const m of this.members) {
      if (m.isLeader) {
        m.isLeader = false;
        m.leading(false);
      }
    }
    this.pending = []; // what was not committed is lost with the old leader's term
    if (i === null) return;
    this.members[i]!.isLeader = true;
    this.members[i]!.leading(true);
  }

  ops(op: Command['op'], from?: number): Command[] {
    return this.proposed.filter((p) => p.command.op === op && (from === undefined || p.from === from)).map((p) => p.command);
  }
}

const settle = () => new Promise((r) => setTimeout(r, 0));

describe('Lessor', () => {
  it('revokes at the deadline from one timer, not a poll; the revoke applies on every member', () => {
    const c = new FakeCluster(3);
    c.lead(0);
    c.client({ op: 'leaseGrant', id: 1n, ttl: 5 }); // TTL = the interval: never checkpointed
    c.client({ op: 'leaseGrant', id: 2n, ttl: 3 });
    const fired = c.clock.fired;
    c.clock.advance(2999);
    expect(c.ops('leaseRevoke')).toEqual([]);
    expect(c.clock.fired).toBe(fired); // nothing woke up before the first deadline
    c.clock.advance(1);
    expect(c.ops('leaseRevoke')).toEqual([{ op: 'leaseRevoke', id: 2n }]);
    c.commit();
    for (const m of c.members) expect(m.sm.store.lease(2n)).toBeUndefined();
    c.clock.advance(2000);
    expect(c.ops('leaseRevoke')).toEqual([
      { op: 'leaseRevoke', id: 2n },
      { op: 'leaseRevoke', id: 1n },
    ]);
    expect(c.clock.fired - fired).toBe(2);
    expect(c.ops('leaseRevoke', 1)).toEqual([]);
  });

  it('checkpoints through the log; a new leader continues from the remaining time, not the full TTL', () => {
    const c = new FakeCluster(3);
    c.lead(0);
    c.client({ op: 'leaseGrant', id: 7n, ttl: 10 });
    c.clock.advance(LEASE_CHECKPOINT_INTERVAL_MS);
    expect(c.ops('leaseCheckpoint')).toEqual([{ op: 'leaseCheckpoint', checkpoints: [{ id: 7n, remainingMs: 10_000 - LEASE_CHECKPOINT_INTERVAL_MS }] }]);
    c.commit();
    for (const m of c.members) expect(m.sm.leaseRemainingMs(7n)).toBe(10_000 - LEASE_CHECKPOINT_INTERVAL_MS);
    c.clock.advance(1000);
    c.lead(1);
    expect(c.members[1]!.lessor.remaining(7n)).toBe(Math.ceil((10_000 - LEASE_CHECKPOINT_INTERVAL_MS) / 1000));
    expect(c.members[0]!.lessor.remaining(7n)).toBeNull(); // not the leader: ask it
    c.clock.advance(10_000 - LEASE_CHECKPOINT_INTERVAL_MS - 1);
    expect(c.ops('leaseRevoke')).toEqual([]);
    c.clock.advance(1);
    expect(c.ops('leaseRevoke', 1)).toEqual([{ op: 'leaseRevoke', id: 7n }]);
  });

  it('leader changes faster than the interval: a handover checkpoint (MoveLeader) keeps the lease on time', async () => {
    const c = new FakeCluster(3);
    c.lead(0);
    c.client({ op: 'leaseGrant', id: 7n, ttl: 10 });
    let leader = 0;
    for (let t = 0; t < 8; t++) {
      c.clock.advance(1000);
      const done = c.members[leader]!.lessor.checkpointAll();
      c.commit();
      expect(await done).toBe(true);
      leader = (leader + 1) % 3;
      c.lead(leader);
    }
    expect(c.ops('leaseRevoke')).toEqual([]);
    c.clock.advance(1999);
    expect(c.ops('leaseRevoke')).toEqual([]);
    c.clock.advance(1);
    expect(c.ops('leaseRevoke')).toEqual([{ op: 'leaseRevoke', id: 7n }]);
  });

  it('without checkpoints every new leader would start the full TTL again (the bug this fixes)', () => {
    const c = new FakeCluster(3);
    c.lead(0);
    c.client({ op: 'leaseGrant', id: 7n, ttl: 10 });
    for (let t = 0; t < 10; t++) {
      c.clock.advance(2000);
      c.lead((t + 1) % 3);
    }
    // 20 s passed, each leader lived 2 s < the interval: nobody checkpointed, nobody revoked.
    expect(c.ops('leaseCheckpoint')).toEqual([]);
    expect(c.ops('leaseRevoke')).toEqual([]);
  });

  it('a renew clears the checkpoint through the log before it answers, so the next leader gives the full TTL', async () => {
    const c = new FakeCluster(2);
    c.lead(0);
    c.client({ op: 'leaseGrant', id: 7n, ttl: 10 });
    c.clock.advance(LEASE_CHECKPOINT_INTERVAL_MS);
    c.commit();
    expect(c.members[1]!.sm.leaseRemainingMs(7n)).toBe(5000);
    let answered: number | null | undefined;
    const p = c.members[0]!.lessor.renew(7n).then((r) => (answered = r));
    await settle();
    expect(answered).toBeUndefined(); // waits for the clear to apply
    expect(c.ops('leaseCheckpoint').at(-1)).toEqual({ op: 'leaseCheckpoint', checkpoints: [{ id: 7n, remainingMs: 0 }] });
    c.commit();
    await p;
    expect(answered).toBe(10);
    expect(c.members[1]!.sm.leaseRemainingMs(7n)).toBeUndefined();
    // A second renew with no checkpoint writes nothing.
    const before = c.proposed.length;
    expect(await c.members[0]!.lessor.renew(7n)).toBe(10);
    expect(c.proposed.length).toBe(before);
    c.lead(1);
    expect(c.members[1]!.lessor.remaining(7n)).toBe(10);
    expect(await c.members[0]!.lessor.renew(7n)).toBeNull();
    expect(await c.members[1]!.lessor.renew(99n)).toBe(0);
    expect(c.members[1]!.lessor.remaining(99n)).toBe(-1);
  });

  it('rate-limits revokes on mass expiry: a burst, then LEASE_REVOKE_RATE_PER_S', () => {
    const c = new FakeCluster(1);
    c.lead(0);
    const n = 3000;
    for (let i = 1; i <= n; i++) c.client({ op: 'leaseGrant', id: BigInt(i), ttl: 2 });
    c.clock.advance(2000);
    expect(c.ops('leaseRevoke').length).toBe(LEASE_REVOKE_BURST);
    c.commit();
    c.clock.advance(1000);
    const afterOneSecond = c.ops('leaseRevoke').length;
    expect(afterOneSecond).toBeGreaterThanOrEqual(LEASE_REVOKE_BURST + LEASE_REVOKE_RATE_PER_S - 1);
    expect(afterOneSecond).toBeLessThanOrEqual(LEASE_REVOKE_BURST + LEASE_REVOKE_RATE_PER_S + 1);
    c.commit();
    for (let t = 0; t < 20; t++) {
      c.clock.advance(100);
      c.commit();
    }
    expect(c.members[0]!.sm.store.leaseIds()).toEqual([]);
    expect(c.revokedLatency.length).toBe(n);
    // The last lease waited for the others' share of the rate (committed within the 100 ms step).
    expect(Math.max(...c.revokedLatency)).toBeGreaterThanOrEqual(((n - LEASE_REVOKE_BURST) / LEASE_REVOKE_RATE_PER_S) * 1000 - 2);
    expect(Math.max(...c.revokedLatency)).toBeLessThanOrEqual(((n - LEASE_REVOKE_BURST) / LEASE_REVOKE_RATE_PER_S) * 1000 + 100);
  });

  it('a member that lost leadership proposes nothing; its uncommitted revoke is retried by nobody but the next leader', () => {
    const c = new FakeCluster(2);
    c.lead(0);
    c.client({ op: 'leaseGrant', id: 7n, ttl: 3 });
    c.clock.advance(3000);
    expect(c.ops('leaseRevoke', 0)).toEqual([{ op: 'leaseRevoke', id: 7n }]);
    // Deposed before the revoke committed: the entry is lost.
    c.members[0]!.isLeader = false; // the core stepped down; the event is not delivered yet
    c.clock.advance(LEASE_REVOKE_RETRY_MS);
    expect(c.ops('leaseRevoke', 0).length).toBe(1);
    c.lead(1);
    expect(c.members[1]!.sm.store.lease(7n)).toBeDefined();
    // The new leader had no checkpoint (TTL 3 s <= the interval): the full TTL from its promotion.
    c.clock.advance(2999);
    expect(c.ops('leaseRevoke', 1)).toEqual([]);
    c.clock.advance(1);
    expect(c.ops('leaseRevoke', 0).length).toBe(1);
    expect(c.ops('leaseRevoke', 1)).toEqual([{ op: 'leaseRevoke', id: 7n }]);
  });

  it('a revoke still in the log is not proposed again; a failed one is, after LEASE_REVOKE_RETRY_MS, while still leader', async () => {
    const c = new FakeCluster(1);
    c.lead(0);
    c.client({ op: 'leaseGrant', id: 7n, ttl: 3 });
    c.clock.advance(3000);
    expect(c.members[0]!.lessor.remaining(7n)).toBe(0);
    expect(await c.members[0]!.lessor.renew(7n)).toBe(0); // expired: not renewed
    c.clock.advance(3 * LEASE_REVOKE_RETRY_MS);
    expect(c.ops('leaseRevoke').length).toBe(1); // still pending: no duplicate
    c.drop();
    await settle();
    c.clock.advance(LEASE_REVOKE_RETRY_MS - 1);
    expect(c.ops('leaseRevoke').length).toBe(1);
    c.clock.advance(1);
    expect(c.ops('leaseRevoke').length).toBe(2);
    c.commit();
    expect(c.members[0]!.lessor.pending).toEqual({ leases: 0, revoking: 0, checkpoints: 0 });
  });

  it('checkpoints go in batches of at most LEASE_CHECKPOINT_BATCH_MAX', async () => {
    const c = new FakeCluster(1);
    c.lead(0);
    const n = 2 * LEASE_CHECKPOINT_BATCH_MAX + 5;
    for (let i = 1; i <= n; i++) c.client({ op: 'leaseGrant', id: BigInt(i), ttl: 60 });
    c.clock.advance(LEASE_CHECKPOINT_INTERVAL_MS);
    const sizes = c.ops('leaseCheckpoint').map((x) => (x.op === 'leaseCheckpoint' ? x.checkpoints.length : 0));
    expect(sizes).toEqual([LEASE_CHECKPOINT_BATCH_MAX, LEASE_CHECKPOINT_BATCH_MAX, 5]);
    c.commit();
    const all = c.members[0]!.lessor.checkpointAll();
    await settle();
    c.commit();
    await settle();
    c.commit();
    await settle();
    c.commit();
    expect(await all).toBe(true);
    expect(c.ops('leaseCheckpoint').length).toBe(6);
  });
});
