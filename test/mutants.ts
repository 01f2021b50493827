/**
 * Deliberately broken Raft cores, used only by tests to show the simulator catches real bugs.
 * Each overrides one of the core's protected rule hooks. Nothing here is reachable from the
 * product: a user cannot configure the real core into any of these.
 */
import type { InitialState, RaftConfig } from '../src/raft/config.js';
import { RaftCore } from '../src/raft/raft.js';
import type { HardState, Index, Term } from '../src/raft/types.js';
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
