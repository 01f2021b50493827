/**
 * Deliberately broken Raft cores, used only by tests to show the simulator catches real bugs.
 * Each overrides one of the core's protected rule hooks. Nothing here is reachable from the
 * product: a user cannot configure the real core into any of these.
 */
import type { InitialState, RaftConfig } from '../src/raft/config.js';
import { RaftCore } from '../src/raft/raft.js';
import { majorityCommitted, majorityVote, type VoteResult } from '../src/raft/quorum.js';
import type { HardState, Index, NodeId, Term } from '../src/raft/types.js';
import type { CoreFactory } from '../src/sim/simulation.js';

/** Grants votes without the §5.4.1 up-to-date check. */
class VoteWithoutLogCheck extends RaftCore {
  protected override candidateLogOk(): boolean {
    return true;
  }
}

/** Commits entries of earlier terms by counting replicas (the Figure 8 bug, §5.4.2). */
class CommitPriorTermByCounting extends RaftCore {
  protected override commitRuleOk(): boolean {
    return true;
  }
}

/** Accepts AppendEntries whenever prevLogIndex is in range, ignoring prevLogTerm (§5.3). */
class AppendWithoutPrevCheck extends RaftCore {
  protected override prevMatches(prevIndex: Index, _prevTerm: Term): boolean {
    return prevIndex >= this.firstIndex() - 1 && prevIndex <= this.lastIndex();
  }
}

/** Replies to a vote request before the vote is durable: the vote never reaches the HardState. */
class VoteBeforeDurable extends RaftCore {
  protected override hardState(): HardState {
    return { ...super.hardState(), vote: 0 };
  }
}

/** Joint consensus: commits once the incoming half has matched an index, ignoring the outgoing half. */
class CommitIncomingHalfOnly extends RaftCore {
  protected override quorumMatched(acked: (id: NodeId) => Index): Index {
    return majorityCommitted([...this.config.voters], acked);
  }
}

/** Joint consensus: elections (and check-quorum, lease rounds) decided by the incoming half alone. */
class VotesIncomingHalfOnly extends RaftCore {
  protected override jointVote(votes: (id: NodeId) => boolean | undefined): VoteResult {
    return majorityVote([...this.config.voters], votes);
  }
}

/** Joint consensus: commits once the outgoing half (the whole configuration when not joint) has matched an index. */
class CommitOutgoingHalfOnly extends RaftCore {
  protected override quorumMatched(acked: (id: NodeId) => Index): Index {
    return majorityCommitted([...(this.config.outgoing.size > 0 ? this.config.outgoing : this.config.voters)], acked);
  }
}

/** A follower commits up to the leader's commit index or its own last entry, verified or not. */
class CommitPastVerified extends RaftCore {
  protected override followerCommitBound(_lastNew: Index): Index {
    return this.lastIndex();
  }
}

/** Check-quorum that never finds the quorum missing: a leader cut off with a minority leads on. */
class NeverStepsDown extends RaftCore {
  protected override quorumActive(): boolean {
    return true;
  }
}

/** Lease reads: a member that just restarted votes at once (no boot window). */
class LeaseWithoutBootWindow extends RaftCore {
  protected override inBootWindow(): boolean {
    return false;
  }
}

const make =
  (C: new (c: RaftConfig, i: InitialState) => RaftCore): CoreFactory =>
  (config, initial) =>
    new C(config, initial);

export const MUTANTS: readonly { name: string; makeCore: CoreFactory }[] = [
  { name: 'vote granted without the up-to-date check', makeCore: make(VoteWithoutLogCheck) },
  { name: 'prior-term entry committed by counting replicas', makeCore: make(CommitPriorTermByCounting) },
  { name: 'AppendEntries accepted without the prevLogTerm check', makeCore: make(AppendWithoutPrevCheck) },
  { name: 'vote sent before it is durable', makeCore: make(VoteBeforeDurable) },
];

/**
 * Broken cores that only show under the workloads built for them (joint replaces under
 * partitions of one half, leaders cut off with a minority, lease reads under clock faults and
 * hunting readers, or a crafted append to a follower with a stale tail). Each names the targeted
 * sweep that catches it; test/mutants.test.ts runs them with fixed seeds.
 */
export const TARGETED_MUTANTS: readonly { name: string; makeCore: CoreFactory }[] = [
  { name: 'commits with only the incoming half of a joint configuration', makeCore: make(CommitIncomingHalfOnly) },
  { name: 'counts votes with only the incoming half of a joint configuration', makeCore: make(VotesIncomingHalfOnly) },
  { name: 'commits with only the outgoing half of a joint configuration', makeCore: make(CommitOutgoingHalfOnly) },
  { name: 'follower commits past the last entry verified against this leader', makeCore: make(CommitPastVerified) },
  { name: 'leader never steps down without a quorum (check-quorum)', makeCore: make(NeverStepsDown) },
  { name: 'lease read without the drift margin', makeCore: (config, initial) => new RaftCore({ ...config, leaseDriftTicks: 0 }, initial) },
  { name: 'lease read without the boot window after a restart', makeCore: make(LeaseWithoutBootWindow) },
];

/** Lease reads: once a quorum has acknowledged a heartbeat, the lease never runs out. */
class LeaseNeverExpires extends RaftCore {
  protected override inLease(): boolean {
    return this.leaseEstablished();
  }
}

/**
 * Broken lease-read rules: caught only as stale reads, by the linearizability checker. (The
 * boot window and the drift margin are rules the sweeps do not reach; src/raft/lease.test.ts
 * tests them directly.)
 */
export const LEASE_MUTANTS: readonly { name: string; makeCore: CoreFactory }[] = [
  { name: 'lease that never expires', makeCore: make(LeaseNeverExpires) },
];
