/**
 * The proposer's side of forwarding: requests this member sent to the leader, waiting for this
 * member's own apply of the entry with their request id. Fed every applied entry and every
 * snapshot restore, in order; told the index a leader accepted a request at.
 *
 * A request ends exactly once: with its apply result; `leaderChanged` when another entry applied
 * at the index it was accepted at (entries apply in order, so it is not in the log there, and
 * an accepted index is never reused for it: a leader proposes a request once); `unknown` when a
 * snapshot covered that index (what the entry held is not known here). A caller that gives up
 * (its deadline) removes it.
 */
import type { ApplyResult } from '../kv/commands.js';

export type LostReason = 'leaderChanged' | 'unknown';

interface Waiter {
  readonly id: bigint;
  readonly onResult: (r: ApplyResult) => void;
  readonly onLost: (why: LostReason) => void;
  index: number;
}

export class ApplyWaits {
  private readonly byId = new Map<bigint, Waiter>();
  private readonly byIndex = new Map<number, Set<Waiter>>();
  private appliedIndex = 0;
  /** Entries up to here came in a snapshot, not applied one by one here. */
  private restoredThrough = 0;

  get size(): number {
    return this.byId.size;
  }

  /** Waits for request `id` (a request id is waited for once at a time). */
  add(id: bigint, onResult: (r: ApplyResult) => void, onLost: (why: LostReason) => void): void {
    if (id === 0n || this.byId.has(id)) throw new Error(`request id ${id} is already waited for`);
    this.byId.set(id, { id, onResult, onLost, index: 0 });
  }

  remove(id: bigint): void {
    const w = this.byId.get(id);
    if (!w) return;
    this.byId.delete(id);
    if (w.index) {
      const set = this.byIndex.get(w.index);
      set?.delete(w);
      if (set?.size === 0) this.byIndex.delete(w.index);
    }
  }

  /** The leader took request `id` into its log at `index`. */
  accepted(id: bigint, index: number): void {
    const w = this.byId.get(id);
    if (!w || w.index) return;
    if (index <= this.appliedIndex) {
      // Already applied here, and it was not ours (that would have ended the wait).
      return this.lose(w, index <= this.restoredThrough ? 'unknown' : 'leaderChanged');
    }
    w.index = index;
    const set = this.byIndex.get(index) ?? new Set<Waiter>();
    set.add(w);
    this.byIndex.set(index, set);
  }

  /** Every applied entry, in order. */
  applied(requestId: bigint, index: number, result: ApplyResult): void {
    this.appliedIndex = index;
    const mine = requestId === 0n ? undefined : this.byId.get(requestId);
    if (mine) {
      this.remove(requestId);
      mine.onResult(result);
    }
    const others = this.byIndex.get(index);
    if (others) for (const w of [...others]) this.lose(w, 'leaderChanged');
  }

  /** The state machine was restored from a snapshot at `index`. */
  restored(index: number): void {
    this.appliedIndex = index;
    this.restoredThrough = index;
    for (const [i, set] of [...this.byIndex]) if (i <= index) for (const w of [...set]) this.lose(w, 'unknown');
  }

  private lose(w: Waiter, why: LostReason): void {
    this.remove(w.id);
    w.onLost(why);
  }
}
