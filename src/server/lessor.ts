/**
 * Lease deadlines. Only the leader's count: it alone decides that a lease expired and
 * proposes a revoke through the log; keep-alives reset the deadline on the leader and are not
 * replicated. A member that becomes leader gives every lease a full TTL from that moment
 * (it cannot know how long the old leader's clients went without renewing), as etcd does.
 */
import { ERR, KvError } from '../kv/errors.js';
import type { EtcdMember } from './member.js';

/** How often the leader looks for expired leases. */
export const LEASE_CHECK_MS = 250;
/** Revokes proposed per check (the rest wait for the next check). */
export const LEASE_REVOKES_PER_CHECK = 500;
/** Largest TTL a lease may be granted (etcd's MaxLeaseTTL, 9,000,000,000 s). */
export const LEASE_TTL_MAX = 9_000_000_000;

export class Lessor {
  private readonly deadlines = new Map<bigint, number>();
  private readonly revoking = new Set<bigint>();
  private timer: NodeJS.Timeout | null = null;
  private wasLeader = false;

  constructor(private readonly member: EtcdMember) {
    member.sm.onLease((c) => {
      if (c.kind === 'granted') this.deadlines.set(c.id, Date.now() + c.ttl * 1000);
      else {
        this.deadlines.delete(c.id);
        this.revoking.delete(c.id);
      }
    });
    member.sm.onRestore(() => this.resetAll());
  }

  /** The smallest TTL granted: ceil(1.5 election timeouts) in seconds, as etcd. */
  get minTtl(): number {
    return Math.ceil((1.5 * this.member.config.electionMs) / 1000);
  }

  start(): void {
    this.timer = setInterval(() => this.check(), LEASE_CHECK_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private resetAll(): void {
    this.deadlines.clear();
    const now = Date.now();
    const store = this.member.sm.store;
    for (const id of store.leaseIds()) this.deadlines.set(id, now + store.lease(id)!.ttl * 1000);
  }

  /** Leader: resets the lease's deadline; returns its TTL, or 0 when it does not exist. */
  renew(id: bigint): number {
    if (!this.member.node.isLeader) throw ERR.notLeader();
    const l = this.member.sm.store.lease(id);
    if (!l || this.revoking.has(id)) return 0;
    this.deadlines.set(id, Date.now() + l.ttl * 1000);
    return l.ttl;
  }

  /** Leader: whole seconds left, or -1 when the lease does not exist. */
  remaining(id: bigint): number {
    if (!this.member.node.isLeader) throw ERR.notLeader();
    const l = this.member.sm.store.lease(id);
    if (!l) return -1;
    const d = this.deadlines.get(id) ?? Date.now() + l.ttl * 1000;
    return Math.max(0, Math.ceil((d - Date.now()) / 1000));
  }

  private check(): void {
    const leader = this.member.node.isLeader;
    if (leader && !this.wasLeader) this.resetAll();
    this.wasLeader = leader;
    if (!leader) return;
    const now = Date.now();
    let n = 0;
    for (const [id, d] of this.deadlines) {
      if (d > now || this.revoking.has(id)) continue;
      if (n++ >= LEASE_REVOKES_PER_CHECK) break;
      this.revoking.add(id);
      this.member
        .propose({ op: 'leaseRevoke', id })
        .catch((e: unknown) => {
          // Already gone is fine; anything else is retried at the next check.
          if (!(e instanceof KvError && e.message === ERR.leaseNotFound().message)) this.revoking.delete(id);
        });
    }
  }
}
