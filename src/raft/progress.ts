/**
 * The leader's view of one member's log (etcd-io/raft's tracker.Progress).
 *
 *   probe:     next is a guess; send one AppendEntries at a time and wait for the answer.
 *   replicate: the follower is known to match up to `match`; stream entries optimistically,
 *              bounded by the inflights window.
 *   snapshot:  the entries the follower needs are compacted; a snapshot is on its way.
 *
 * Invariant: match < next.
 */
import { assert } from '../lib/assert.js';
import { Inflights } from './inflights.js';
import type { Index } from './types.js';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export class Progress {
  match: Index = 0;
  next: Index;
  state: ProgressState = 'probe';
  /** In probe state: an AppendEntries is outstanding, wait for its answer or a heartbeat answer. */
  probeSent = false;
  /** Index of the snapshot being sent, in snapshot state. */
  pendingSnapshot: Index = 0;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  /** Ticks spent in the current state (used to retry a lost snapshot). */
  stateTicks = 0;
  /** Highest ReadIndex round this member has confirmed. */
  ackedRound = 0;
  /** Last commit index we told this member about. */
  sentCommit: Index = 0;
  readonly inflights: Inflights;

  constructor(next: Index, inflightMsgsMax: number, inflightBytesMax: number, public isLearner: boolean) {
    this.next = next;
    this.inflights = new Inflights(inflightMsgsMax, inflightBytesMax);
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.stateTicks = 0;
    this.inflights.reset();
  }

  becomeProbe(): void {
    // After a snapshot, resume right after it: the follower has at least that much.
    if (this.state === 'snapshot') {
      const pending = this.pendingSnapshot;
      this.resetState('probe');
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState('probe');
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState('replicate');
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: Index): void {
    this.resetState('snapshot');
    this.pendingSnapshot = snapshotIndex;
  }

  /** An acknowledgement up to `n`. Returns false when it is stale (nothing new). */
  maybeUpdate(n: Index): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  /** Streaming: entries up to `n` were sent, assume they will arrive. */
  optimisticUpdate(n: Index): void {
    this.next = n + 1;
  }

  /**
   * A rejection of AppendEntries at `rejected` with the follower's conflict hint `matchHint`.
   * Returns false when the rejection is stale (it refers to an older probe).
   */
  maybeDecrTo(rejected: Index, matchHint: Index): boolean {
    if (this.state === 'replicate') {
      // A rejection at or below match was for an old message: the follower matches there.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // In probe state only the answer to the outstanding probe (at next-1) counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    assert(this.next > this.match, () => `progress: next ${this.next} <= match ${this.match}`);
    return true;
  }

  /** Whether sending more AppendEntries to this member must wait. */
  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }
}
