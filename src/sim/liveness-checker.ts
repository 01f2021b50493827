/**
 * What must eventually happen, checked by the simulation: a leader cut off from a quorum steps
 * down (check-quorum, during the faults); after the faults a leader every member of its
 * configuration follows, members that converge on one state, every acknowledged write applied
 * everywhere; and the client history is linearizable.
 */
import { checkLinearizable } from '../check/linearizability.js';
import type { HistoryOp, OpKind } from '../check/history.js';
import { jointVote } from '../raft/quorum.js';
import type { NodeId } from '../raft/types.js';
import { currentLeader, roles, type SimNode, type SimWorld } from './cluster.js';
import { InvariantViolation } from './violation.js';

export class LivenessChecker {
  /** Minority-leader check: per leader, the term and its tick count when it was first seen cut off. */
  private readonly cutOff = new Map<NodeId, { term: number; sinceTicks: number; netVersion: number; liveEpoch: number; evalTicks: number; reach: string; reachable: ReadonlySet<NodeId> }>();

  constructor(private readonly world: SimWorld) {}

  /**
   * Check-quorum liveness: a leader cut off from a quorum of its configuration (both halves of a
   * joint one) — by partitions, crashes or pauses of the others — stops leading within two
   * election timeouts of its own ticks (plus one: the first check may still see answers from
   * just before the cut), while the partition is still up. A paused leader is not held to it
   * until it runs again.
   */
  checkMinorityLeaders(): void {
    const w = this.world;
    const bound = 2 * w.setting.electionTicks + 1;
    for (const n of w.nodes.values()) {
      const core = n.core;
      if (!n.up || !core || core.currentRole !== 'leader' || n.paused) {
        if (this.cutOff.size > 0) this.cutOff.delete(n.id);
        continue;
      }
      const term = core.currentTerm;
      let c = this.cutOff.get(n.id);
      if (!c || c.term !== term) {
        c = { term, sinceTicks: n.ticks, netVersion: -1, liveEpoch: -1, evalTicks: -1, reach: '', reachable: new Set() };
        this.cutOff.set(n.id, c);
      }
      if (c.netVersion !== w.net.version || c.liveEpoch !== w.liveEpoch || c.evalTicks !== n.ticks) {
        // The clock starts again whenever the set of members the leader can reach changes: a
        // check-quorum round that spans the change may count answers from both sides of it.
        const [reach, reachable] = this.cutOffReach(n);
        if (reach !== c.reach) c.sinceTicks = n.ticks;
        c.reach = reach;
        c.reachable = reachable;
        c.netVersion = w.net.version;
        c.liveEpoch = w.liveEpoch;
        c.evalTicks = n.ticks;
      }
      if (c.reach !== '' && n.ticks - c.sinceTicks > bound) {
        throw new InvariantViolation(
          'minority leader steps down',
          `n${n.id} still leads term ${term} after ${n.ticks - c.sinceTicks} of its ticks cut off from a quorum, reaching only ${c.reach} (check-quorum: at most ${bound}, two election timeouts): ${w.net.describe()}; ${roles(w.nodes)}`,
        );
      }
    }
  }

  /**
   * If leader `l` cannot exchange messages with a quorum of its configuration right now, the
   * members it can reach (as a key); '' if it can reach a quorum.
   */
  private cutOffReach(l: SimNode): [string, ReadonlySet<NodeId>] {
    const w = this.world;
    const cs = l.core!.confState();
    const reach = (id: NodeId): boolean => {
      if (id === l.id) return true;
      const x = w.nodes.get(id);
      return !!x && x.up && !x.paused && w.net.canPass(l.id, id) && w.net.canPass(id, l.id);
    };
    const reachable = new Set([...w.nodes.keys()].filter(reach));
    if (jointVote(cs.voters, cs.votersOutgoing, reach) === 'won') return ['', reachable];
    return [`[${[...reachable].join(',')}] of (${cs.voters.join(',')})${cs.votersOutgoing.length ? `&&(${cs.votersOutgoing.join(',')})` : ''}`, reachable];
  }

  /** A transfer restarts the leader's election timer (as etcd's does): its check-quorum round waits for it. */
  transferStarted(l: SimNode): void {
    const c = this.cutOff.get(l.id);
    if (c) c.sinceTicks = l.ticks;
  }

  /**
   * A message reached a leader from a member it is cut off from: one sent before a crash or a
   * pause, arriving late. The leader has heard from that member, so its two election timeouts
   * start again.
   */
  heardFrom(to: SimNode, from: NodeId): void {
    const c = this.cutOff.get(to.id);
    if (c && c.reach !== '' && !c.reachable.has(from)) c.sinceTicks = to.ticks;
  }

  /** The members of the leader's configuration (both halves of a joint one, and learners). */
  private finalMembers(leader: SimNode): SimNode[] {
    const cs = leader.core!.confState();
    const ids = new Set([...cs.voters, ...cs.votersOutgoing, ...cs.learners]);
    return [...ids].map((id) => this.world.nodes.get(id)!);
  }

  /** The leader that every member of its configuration follows, in its term; undefined if none. */
  stableLeader(): SimNode | undefined {
    const l = currentLeader(this.world.nodes);
    if (!l) return undefined;
    for (const n of this.finalMembers(l)) if (!n.up || !n.core || n.core.leader !== l.id || n.core!.currentTerm !== l.core!.currentTerm) return undefined;
    return l;
  }

  /**
   * Why the members of the final configuration have not converged yet (undefined once they
   * have): a stable leader whose term has committed, and every member applied up to its commit
   * index with the same state. `withIndex`: the state machine counts every entry (core driver),
   * not only the ones with data (node driver: the shell hands it only those).
   */
  converged(withIndex: boolean): string | undefined {
    const l = this.stableLeader();
    if (!l) return `no stable leader: ${roles(this.world.nodes)}`;
    const commit = l.core!.commitIndex;
    // Until an entry of its own term commits, a new leader does not know the full commit index.
    if (l.core!.termAt(commit) !== l.core!.currentTerm) return `leader n${l.id} has not committed an entry of term ${l.core!.currentTerm} yet`;
    const digest = l.state.digest(withIndex);
    for (const n of this.finalMembers(l)) {
      if (n.core!.appliedIndex !== commit || (withIndex && n.state.appliedIndex !== commit)) return `n${n.id} applied ${n.core!.appliedIndex} of ${commit}`;
      if (n.state.digest(withIndex) !== digest) return `n${n.id} state ${n.state.digest()} differs from leader n${l.id} state ${digest}`;
    }
    return undefined;
  }

  /** No acknowledged write lost: every member of the final configuration applied each one. */
  checkAckedEverywhere(acked: readonly { opId: string; op: OpKind }[]): void {
    const l = this.stableLeader()!;
    for (const n of this.finalMembers(l)) {
      for (const a of acked) {
        if (!n.state.hasApplied(a.opId)) {
          throw new InvariantViolation('acknowledged write lost', `${a.op} ${a.opId} was acknowledged to its client but member n${n.id} never applied it`);
        }
      }
    }
  }
}

/** The clients' history is linearizable (src/check). */
export function checkHistory(history: readonly HistoryOp[]): void {
  const r = checkLinearizable(history);
  if (!r.ok) throw new InvariantViolation('linearizability', r.failure ? `key ${r.failure.key}: ${r.failure.message}` : 'history is not linearizable');
}
