/**
 * The leader's bookkeeping for linearizable reads (thesis §6.4), as etcd-io/raft keeps it in
 * read_only.go: ReadIndex requests batched into heartbeat rounds, rounds released once a (joint)
 * quorum acknowledged them, reads held until an entry of the term commits, and, with lease
 * reads, the lease: when the newest round a quorum acknowledged was sent. Pure state; RaftCore
 * decides when a round is confirmed (its progress) and sends what the answers say.
 */
import type { Index, NodeId } from './types.js';

/** One ReadIndex request: who asked (the leader itself or a follower) and its context. */
export interface ReadRequest {
  readonly from: NodeId;
  readonly ctx: string;
}

/** A read to answer: the request and the read point it may be served at. */
export interface ReadAnswer extends ReadRequest {
  readonly index: Index;
}

/** A batch of ReadIndex requests confirmed together by one heartbeat round. */
interface ReadRound {
  readonly round: number;
  /** The commit index when the last request joined the batch: every read waits for it. */
  index: Index;
  readonly requests: ReadRequest[];
}

export class ReadOnly {
  private roundSeq = 0;
  /** Lease reads: the tick at which each unconfirmed heartbeat round was sent. */
  private readonly roundSentTick = new Map<number, number>();
  /** Lease reads: when the newest heartbeat round a quorum acknowledged was sent. */
  private leaseStartTick = -Infinity;
  /** Lease reads: a transfer was started this term (its target may win at once, lease or not). */
  private transferStarted = false;
  private openRound: ReadRound | null = null;
  private pendingRounds: ReadRound[] = [];
  /** Reads that arrived before the leader committed an entry of its term. */
  private awaitingCommit: ReadRequest[] = [];

  /** `lease`: reads may be answered within the lease (RaftConfig.readOnly === 'lease'). */
  constructor(private readonly lease: boolean) {}

  /** A new term: every round, waiting read and the lease are gone (the round numbers go on). */
  reset(): void {
    this.openRound = null;
    this.pendingRounds = [];
    this.awaitingCommit = [];
    this.roundSentTick.clear();
    this.leaseStartTick = -Infinity;
    this.transferStarted = false;
  }

  /** A new configuration has new quorums: earlier acknowledgements prove nothing about them. */
  forgetLease(): void {
    this.leaseStartTick = -Infinity;
    this.roundSentTick.clear();
  }

  /** A leadership transfer was started: no lease reads for the rest of the term. */
  transferStart(): void {
    this.transferStarted = true;
  }

  /** The number of a new heartbeat round. */
  nextRound(): number {
    return ++this.roundSeq;
  }

  /** Heartbeat round `round` was sent at `tick` (remembered for the lease). */
  roundSent(round: number, tick: number): void {
    if (round > 0 && this.lease) this.roundSentTick.set(round, tick);
  }

  /** Holds a read until an entry of the leader's term commits (the commit index is unknown before). */
  awaitCommit(r: ReadRequest): void {
    this.awaitingCommit.push(r);
  }

  /** The reads held by awaitCommit, in arrival order; none are held afterwards. */
  takeAwaitingCommit(): ReadRequest[] {
    const waiting = this.awaitingCommit;
    this.awaitingCommit = [];
    return waiting;
  }

  /** Adds a read to the open round (opening one), to be served at `commit` or later. */
  add(r: ReadRequest, commit: Index): void {
    let round = this.openRound;
    if (!round) {
      round = { round: this.nextRound(), index: commit, requests: [] };
      this.openRound = round;
    }
    // Commit only grows, so the batch's index covers every request in it.
    round.index = commit;
    round.requests.push(r);
  }

  get hasOpenRound(): boolean {
    return this.openRound !== null;
  }

  /** Closes the open round (now waiting for its acknowledgements) and returns its number; 0 when none is open. */
  closeOpenRound(): number {
    const r = this.openRound;
    if (!r) return 0;
    this.openRound = null;
    this.pendingRounds.push(r);
    return r.round;
  }

  /** The reads of every pending round that `confirmed` says a quorum acknowledged, oldest round first. */
  releaseConfirmed(confirmed: (round: number) => boolean): ReadAnswer[] {
    const out: ReadAnswer[] = [];
    while (this.pendingRounds.length > 0) {
      const r = this.pendingRounds[0]!;
      if (!confirmed(r.round)) break;
      this.pendingRounds.shift();
      for (const q of r.requests) out.push({ from: q.from, ctx: q.ctx, index: r.index });
    }
    return out;
  }

  /** Moves the lease start to when the newest round a quorum has acknowledged was sent. */
  extendLease(confirmed: (round: number) => boolean): void {
    // Rounds are kept in the order sent, and a quorum that acknowledged a round acknowledged
    // every earlier one: take confirmed rounds from the front.
    for (const [round, sentAt] of this.roundSentTick) {
      if (!confirmed(round)) return;
      this.leaseStartTick = Math.max(this.leaseStartTick, sentAt);
      this.roundSentTick.delete(round);
    }
  }

  /** Whether the lease holds at `tick`, for `ticks` from its start (no transfer started this term). */
  leaseValid(tick: number, ticks: number): boolean {
    return !this.transferStarted && tick < this.leaseStartTick + ticks;
  }

  /** Whether the lease was ever established this term. */
  get leaseEstablished(): boolean {
    return this.leaseStartTick > -Infinity;
  }
}
