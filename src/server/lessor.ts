/**
 * Lease deadlines, as etcd's lessor (lease/lessor.go, 3.4 with checkpoints on). Only the
 * primary counts time: the leader, once it has applied every entry of earlier terms (RaftNode's
 * onLeadershipChange, like etcd's Promote after the leader's first entry). It alone decides
 * that a lease expired and proposes the revoke through the log; keep-alives reset the deadline
 * on the leader and are not replicated.
 *
 * - Deadlines live in a min-heap (DeadlineHeap: O(log n) per grant, renew and expiry) and one
 *   timer is armed for the earliest of them; nothing scans the leases.
 * - Checkpoints (etcd's LeaseCheckpoint): every LEASE_CHECKPOINT_INTERVAL_MS the leader records
 *   each lease's remaining time through the log, in batches; a new leader gives a lease that
 *   remaining time instead of its full TTL, so leader changes no longer keep leases alive
 *   forever (etcd #9395, #17132). A renew clears a lease's checkpoint (through the log, before
 *   it answers) so that a new leader never gives a kept-alive lease less than its TTL. A leader
 *   handing over leadership (MoveLeader) checkpoints every lease first: a planned change costs
 *   a lease almost nothing, an unplanned one at most an interval plus the election.
 * - Revokes on mass expiry, and checkpoint entries, are rate-limited (etcd's leaseRevokeRate,
 *   leaseCheckpointRate) so that they do not flood the log.
 * - A deposed leader never revokes: proposals go to this member's Raft node only (never
 *   forwarded), which refuses them once the core has stepped down; a proposal made just before
 *   carries the old term and cannot commit under the new leader.
 */
import { assert } from '../lib/assert.js';
import { DeadlineHeap } from '../lib/deadline-heap.js';
import { encodeRequest, LEASE_CHECKPOINT_BATCH_MAX, type ApplyResult, type Command, type LeaseCheckpoint } from '../kv/commands.js';
import type { KvStateMachine } from '../kv/state-machine.js';
import { realClock, type Clock, type RaftNode } from '../node/node.js';
import type { Term } from '../raft/types.js';

/** Largest TTL a lease may be granted (etcd's MaxLeaseTTL, 9,000,000,000 s). */
export const LEASE_TTL_MAX = 9_000_000_000;
/** Revokes proposed per second at most (etcd's leaseRevokeRate). */
export const LEASE_REVOKE_RATE_PER_S = 1000;
/** Revokes proposed at once after a quiet spell (etcd's loop proposes rate/2 every 500 ms). */
export const LEASE_REVOKE_BURST = 500;
/** An expired lease whose revoke has not applied is proposed again after this (etcd's expiredLeaseRetryInterval). */
export const LEASE_REVOKE_RETRY_MS = 3000;
/**
 * How often the leader checkpoints a lease's remaining time (etcd: 5 min, and off unless
 * --experimental-enable-lease-checkpoint). On here, and short for our TTLs (2 s up): a leader
 * that dies without handing over costs a lease at most this plus the election. A lease whose
 * TTL is not longer than the interval is not checkpointed (it would expire about as soon).
 * Cost: one 16-byte record per lease and interval (a million leases: 200,000 records/s).
 */
export const LEASE_CHECKPOINT_INTERVAL_MS = 5000;
/** Checkpoint entries proposed per second at most (etcd's leaseCheckpointRate). */
export const LEASE_CHECKPOINT_RATE_PER_S = 1000;
/** Checkpoint entries proposed at once after a quiet spell. */
export const LEASE_CHECKPOINT_BURST = 500;
/** Timers are armed at most this far ahead (setTimeout's limit is 2^31 - 1 ms); a lease further out is looked at again then. */
export const LEASE_TIMER_MS_MAX = 1_000_000_000;

/** What the lessor needs of its member (EtcdMember is one; tests give a fake). */
export interface LessorHost {
  readonly sm: KvStateMachine;
  readonly node: Pick<RaftNode<ApplyResult>, 'isLeader' | 'propose' | 'onLeadershipChange'>;
  readonly config: { readonly electionMs: number; readonly requestTimeoutMs: number };
}

export interface LessorOptions {
  readonly clock?: Clock;
  readonly checkpointIntervalMs?: number;
  /** Told when a lease this lessor expired has been revoked: its deadline and when the revoke applied (benchmarks). */
  readonly onExpiredRevoked?: (id: bigint, deadline: number, appliedAt: number) => void;
}

/** A token bucket: `rate` per second, at most `burst` saved up. */
class RateLimit {
  private tokens: number;
  private last: number;

  constructor(
    private readonly ratePerS: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  private refill(now: number): void {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.ratePerS) / 1000);
    this.last = now;
  }

  take(now: number): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** When the next token is there. */
  readyAt(now: number): number {
    this.refill(now);
    return this.tokens >= 1 ? now : now + ((1 - this.tokens) * 1000) / this.ratePerS;
  }
}

export class Lessor {
  private readonly clock: Clock;
  private readonly checkpointIntervalMs: number;
  /** Primary only: each lease's deadline (on the clock); an expired lease's retry time while it is being revoked. */
  private readonly expiry = new DeadlineHeap<bigint>();
  /** Primary only: when each lease is due for its next checkpoint. */
  private readonly checkpointDue = new DeadlineHeap<bigint>();
  /** Primary only: expired leases whose revoke was proposed and has not applied: their deadline, and whether a proposal is still outstanding. */
  private readonly revoking = new Map<bigint, { deadline: number; pending: boolean }>();
  /** Primary only: leases whose checkpoint a renew is clearing, with that proposal. */
  private readonly clearing = new Map<bigint, Promise<boolean>>();
  private primary = false;
  /** Bumped at every promote and demote: work begun under an earlier primacy ends quietly. */
  private generation = 0;
  private timer: { cancel(): void } | null = null;
  private timerAt = Infinity;
  private readonly revokeRate: RateLimit;
  private readonly checkpointRate: RateLimit;
  private stopped = false;

  constructor(
    private readonly host: LessorHost,
    private readonly o: LessorOptions = {},
  ) {
    this.clock = o.clock ?? realClock;
    this.checkpointIntervalMs = o.checkpointIntervalMs ?? LEASE_CHECKPOINT_INTERVAL_MS;
    assert(this.checkpointIntervalMs > 0, 'the checkpoint interval must be positive');
    this.revokeRate = new RateLimit(LEASE_REVOKE_RATE_PER_S, LEASE_REVOKE_BURST, this.clock.now());
    this.checkpointRate = new RateLimit(LEASE_CHECKPOINT_RATE_PER_S, LEASE_CHECKPOINT_BURST, this.clock.now());
    host.sm.onLease((c) => (c.kind === 'granted' ? this.granted(c.id, c.ttl) : this.revoked(c.id)));
    // A leader never installs a snapshot; should one replace the state anyway, start over from it.
    host.sm.onRestore(() => {
      if (this.primary) this.promote();
    });
  }

  /** The smallest TTL granted: ceil(1.5 election timeouts) in seconds, as etcd. */
  get minTtl(): number {
    return Math.ceil((1.5 * this.host.config.electionMs) / 1000);
  }

  /** True while this member is the primary lessor (it leads and has applied its term's first entry). */
  get isPrimary(): boolean {
    return this.primary;
  }

  /** Subscribes to the node's leadership (the node exists by now). */
  start(): void {
    this.host.node.onLeadershipChange((leading: boolean, _term: Term) => (leading ? this.promote() : this.demote()));
  }

  stop(): void {
    this.stopped = true;
    this.demote();
  }

  /** Pending work (tests and benchmarks): leases with a deadline, revokes in flight, checkpoints scheduled. */
  get pending(): { leases: number; revoking: number; checkpoints: number } {
    return { leases: this.expiry.size, revoking: this.revoking.size, checkpoints: this.checkpointDue.size };
  }

  // ---------------------------------------------------------------------------------------
  // Primacy
  // ---------------------------------------------------------------------------------------

  /**
   * Leader with every earlier entry applied: each lease gets its checkpointed remaining time,
   * or its full TTL when it has none (etcd's Promote; etcd also adds an election timeout for
   * clients to find the new leader, which we do not: a kept-alive lease's checkpoint was
   * cleared by its renew, so it gets its full TTL anyway, and the extension would add an
   * election timeout of life at every leader change).
   */
  private promote(): void {
    if (this.stopped) return;
    this.demote();
    this.primary = true;
    this.generation++;
    const now = this.clock.now();
    const { sm } = this.host;
    for (const id of sm.store.leaseIds()) {
      const ttl = sm.store.lease(id)!.ttl;
      this.expiry.set(id, now + (sm.leaseRemainingMs(id) ?? ttl * 1000));
      this.scheduleCheckpoint(id, ttl, now);
    }
    this.arm();
  }

  private demote(): void {
    this.primary = false;
    this.generation++;
    this.expiry.clear();
    this.checkpointDue.clear();
    this.revoking.clear();
    this.clearing.clear();
    this.timer?.cancel();
    this.timer = null;
    this.timerAt = Infinity;
  }

  private granted(id: bigint, ttl: number): void {
    if (!this.primary) return;
    const now = this.clock.now();
    this.expiry.set(id, now + ttl * 1000);
    this.scheduleCheckpoint(id, ttl, now);
    this.arm();
  }

  /** Applied on every member; only the primary has anything to drop. */
  private revoked(id: bigint): void {
    if (!this.primary) return;
    const r = this.revoking.get(id);
    if (r !== undefined) this.o.onExpiredRevoked?.(id, r.deadline, this.clock.now());
    this.forget(id);
  }

  private forget(id: bigint): void {
    this.expiry.delete(id);
    this.checkpointDue.delete(id);
    this.revoking.delete(id);
  }

  private scheduleCheckpoint(id: bigint, ttl: number, now: number): void {
    if (ttl * 1000 > this.checkpointIntervalMs) this.checkpointDue.set(id, now + this.checkpointIntervalMs);
    else this.checkpointDue.delete(id);
  }

  // ---------------------------------------------------------------------------------------
  // Keep-alive and time-to-live (primary only; null: ask the leader again)
  // ---------------------------------------------------------------------------------------

  /**
   * Resets the lease's deadline; its TTL, 0 when it does not exist (or has expired and is being
   * revoked), null when this member is not the primary lessor (the caller asks the leader
   * again). A lease with a checkpoint has it cleared through the log first (etcd's Renew), so a
   * new leader cannot give a lease renewed here less than its full TTL.
   */
  async renew(id: bigint): Promise<number | null> {
    if (!this.primary || !this.host.node.isLeader) return null;
    const gen = this.generation;
    if (!this.host.sm.store.lease(id) || this.revoking.has(id)) return 0;
    if (this.host.sm.leaseRemainingMs(id) !== undefined) {
      let clear = this.clearing.get(id);
      if (!clear) {
        clear = this.proposeAndWait({ op: 'leaseCheckpoint', checkpoints: [{ id, remainingMs: 0 }] }).finally(() => {
          if (this.clearing.get(id) === clear) this.clearing.delete(id);
        });
        this.clearing.set(id, clear);
      }
      if (!(await clear) || gen !== this.generation) return null;
    }
    const l = this.host.sm.store.lease(id);
    if (!l || this.revoking.has(id)) return 0;
    const now = this.clock.now();
    this.expiry.set(id, now + l.ttl * 1000);
    this.scheduleCheckpoint(id, l.ttl, now);
    this.arm();
    return l.ttl;
  }

  /** Whole seconds left (rounded up), -1 when the lease does not exist, null when not the primary. */
  remaining(id: bigint): number | null {
    if (!this.primary || !this.host.node.isLeader) return null;
    if (!this.host.sm.store.lease(id)) return -1;
    if (this.revoking.has(id)) return 0;
    const d = this.expiry.deadline(id);
    assert(d !== undefined, `lease ${id} exists but has no deadline on the primary`);
    return Math.max(0, Math.ceil((d - this.clock.now()) / 1000));
  }

  /**
   * Records every lease's remaining time through the log and waits for it (batches of
   * LEASE_CHECKPOINT_BATCH_MAX, one at a time): before this leader hands leadership over, so
   * that the next one continues from here. Ends early when leadership changes or the request
   * timeout passes; false then.
   */
  async checkpointAll(): Promise<boolean> {
    if (!this.primary) return false;
    const gen = this.generation;
    const deadline = this.clock.now() + this.host.config.requestTimeoutMs;
    const now = this.clock.now();
    const all: LeaseCheckpoint[] = [];
    for (const { key: id, at } of this.expiry.entries()) {
      if (!this.revoking.has(id) && at > now) all.push({ id, remainingMs: Math.ceil(at - now) });
    }
    for (let i = 0; i < all.length; i += LEASE_CHECKPOINT_BATCH_MAX) {
      if (gen !== this.generation || this.clock.now() > deadline) return false;
      if (!(await this.proposeAndWait({ op: 'leaseCheckpoint', checkpoints: all.slice(i, i + LEASE_CHECKPOINT_BATCH_MAX) }))) return false;
    }
    return gen === this.generation;
  }

  // ---------------------------------------------------------------------------------------
  // The timer: expiries and checkpoints
  // ---------------------------------------------------------------------------------------

  /** Arms the timer for the next thing due (an expiry or a checkpoint, when the rate allows). */
  private arm(): void {
    if (!this.primary || this.stopped) return;
    const now = this.clock.now();
    let at = Infinity;
    const e = this.expiry.peek();
    if (e) at = Math.max(e.at, this.revokeRate.readyAt(now));
    const c = this.checkpointDue.peek();
    if (c) at = Math.min(at, Math.max(c.at, this.checkpointRate.readyAt(now)));
    if (at === Infinity || at >= this.timerAt) return;
    this.timer?.cancel();
    this.timerAt = at;
    this.timer = this.clock.setTimer(Math.min(LEASE_TIMER_MS_MAX, Math.max(0, Math.ceil(at - now))), () => this.fire());
  }

  private fire(): void {
    this.timer = null;
    this.timerAt = Infinity;
    if (!this.primary || this.stopped) return;
    // Stepped down, the event not yet delivered: propose nothing (the node would refuse anyway).
    if (!this.host.node.isLeader) return;
    const now = this.clock.now();
    this.expire(now);
    this.checkpoint(now);
    this.arm();
  }

  /**
   * Proposes the revokes due, as the rate allows. A lease whose revoke is still in the log is
   * not proposed again (it is looked at again after LEASE_REVOKE_RETRY_MS): under a log slower
   * than the retry interval, re-proposing would spend the rate on duplicates and starve the
   * leases that expire next.
   */
  private expire(now: number): void {
    for (let top = this.expiry.peek(); top && top.at <= now; top = this.expiry.peek()) {
      const id = top.key;
      const r = this.revoking.get(id);
      if (r?.pending) {
        this.expiry.set(id, now + LEASE_REVOKE_RETRY_MS);
        continue;
      }
      if (!this.revokeRate.take(now)) return;
      // The first expiry's deadline is kept for onExpiredRevoked; a retry keeps it.
      const state = { deadline: r?.deadline ?? top.at, pending: true };
      this.revoking.set(id, state);
      this.expiry.set(id, now + LEASE_REVOKE_RETRY_MS);
      this.checkpointDue.delete(id);
      const gen = this.generation;
      this.propose({ op: 'leaseRevoke', id }).then(
        (res) => {
          state.pending = false;
          // Revoked meanwhile by a client (or an earlier attempt): nothing left to retry.
          if (!res.ok && gen === this.generation) this.forget(id);
        },
        // Not committed (leadership changed, refused): proposed again at the retry time while primary.
        () => void (state.pending = false),
      );
    }
  }

  private checkpoint(now: number): void {
    for (let top = this.checkpointDue.peek(); top && top.at <= now && this.checkpointRate.take(now); top = this.checkpointDue.peek()) {
      const batch: LeaseCheckpoint[] = [];
      for (let due = this.checkpointDue.popDue(now); due; due = batch.length < LEASE_CHECKPOINT_BATCH_MAX ? this.checkpointDue.popDue(now) : undefined) {
        const id = due.key;
        const at = this.expiry.deadline(id);
        if (at === undefined || this.revoking.has(id) || at <= now) continue;
        batch.push({ id, remainingMs: Math.ceil(at - now) });
        this.checkpointDue.set(id, now + this.checkpointIntervalMs);
      }
      // Best effort: a lost checkpoint only means a new leader would count from an older one.
      if (batch.length > 0) this.propose({ op: 'leaseCheckpoint', checkpoints: batch }).catch(() => undefined);
    }
  }

  /** To this member's node only: never forwarded, so never proposed by a member that does not lead. */
  private propose(c: Command): Promise<ApplyResult> {
    return this.host.node.propose(encodeRequest({ id: 0n, command: c }));
  }

  /** Proposes and waits for the apply, up to the request timeout: true when it applied. */
  private async proposeAndWait(c: Command): Promise<boolean> {
    let timer: { cancel(): void } | undefined;
    try {
      return await Promise.race([
        this.propose(c).then((r) => r.ok),
        new Promise<boolean>((resolve) => (timer = this.clock.setTimer(this.host.config.requestTimeoutMs, () => resolve(false)))),
      ]);
    } catch {
      return false;
    } finally {
      timer?.cancel();
    }
  }
}
