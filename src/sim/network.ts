/**
 * The simulated network between members: every message gets its own delay drawn from the
 * run's delay distribution (so messages reorder), may be lost or duplicated, and is dropped
 * when a partition blocks its link at delivery time. Links are directed, so one-way and
 * non-transitive partitions are expressible.
 */
import type { Rng } from '../lib/prng.js';
import type { NodeId } from '../raft/types.js';

export type DelayKind = 'uniform' | 'exponential' | 'bimodal' | 'pareto';

export interface NetworkProfile {
  readonly delay: DelayKind;
  /** Typical one-way delay, microseconds. */
  readonly baseUs: number;
  /** Probability that a message is lost (at most 0.3 in generated profiles). */
  readonly loss: number;
  /** Probability that a message is delivered twice. */
  readonly dup: number;
}

export function randomProfile(rng: Rng): NetworkProfile {
  return {
    delay: rng.pick(['uniform', 'exponential', 'bimodal', 'pareto'] as const),
    baseUs: rng.pick([100, 500, 1000, 3000]),
    loss: rng.pick([0, 0, 0.01, 0.05, 0.1, 0.2, 0.3]),
    dup: rng.pick([0, 0, 0.01, 0.05, 0.1]),
  };
}

export class Network {
  /** Blocked directed links "from>to". */
  private blocked = new Set<string>();
  profile: NetworkProfile;
  /** While false, loss and duplication are off (the liveness phase). */
  faulty = true;
  /** Bumped on every change of the blocked links (observers re-evaluate reachability). */
  version = 0;

  constructor(
    profile: NetworkProfile,
    private readonly rng: Rng,
  ) {
    this.profile = profile;
  }

  delayUs(): number {
    const b = this.profile.baseUs;
    const r = this.rng;
    switch (this.profile.delay) {
      case 'uniform':
        return Math.round(b / 2 + r.next() * b);
      case 'exponential':
        return Math.round(Math.min(50 * b, -Math.log(1 - r.next()) * b)) + 1;
      case 'bimodal':
        return r.chance(0.05) ? Math.round(20 * b + r.next() * 80 * b) : Math.round(b / 2 + r.next() * b / 2);
      case 'pareto':
        return Math.round(Math.min(100 * b, b / 2 / Math.pow(1 - r.next(), 1 / 1.5)));
    }
  }

  /** How many copies of a message to deliver: 0 (lost), 1, or 2 (duplicated). */
  copies(): number {
    if (!this.faulty) return 1;
    if (this.rng.chance(this.profile.loss)) return 0;
    return this.rng.chance(this.profile.dup) ? 2 : 1;
  }

  canPass(from: NodeId, to: NodeId): boolean {
    return !this.blocked.has(`${from}>${to}`);
  }

  block(from: NodeId, to: NodeId): void {
    if (from !== to) this.blocked.add(`${from}>${to}`);
    this.version++;
  }

  /** Cuts both directions between every member of `a` and every member of `b`. */
  split(a: readonly NodeId[], b: readonly NodeId[]): void {
    for (const x of a) {
      for (const y of b) {
        this.block(x, y);
        this.block(y, x);
      }
    }
  }

  healAll(): void {
    this.blocked.clear();
    this.version++;
  }

  describe(): string {
    return this.blocked.size === 0 ? 'fully connected' : `blocked ${[...this.blocked].sort().join(' ')}`;
  }
}
