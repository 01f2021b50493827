/**
 * The core's in-memory view of its log: a compaction point (snapshot index and term) followed
 * by contiguous entries, plus the bookkeeping of what is durable, committed and applied.
 *
 * Invariants:
 *   compactIndex <= applied <= commit <= lastIndex          (applied: handed to the state machine)
 *   stable < unstableFrom <= lastIndex + 1                  (stable: durable on this member's disk)
 *   entries[i].index === compactIndex + 1 + i
 */
import { assert } from '../lib/assert.js';
import type { Entry, Index, Snapshot, Term } from './types.js';

export class RaftLog {
  /** Index and term of the last entry folded into a snapshot (0/0 for a fresh log). */
  private compactIndex: Index;
  private compactTerm: Term;
  private entries: Entry[];
  commit: Index;
  applied: Index;
  /** Highest index known durable. */
  stable: Index;
  /** First index not yet handed to the driver for persistence. */
  unstableFrom: Index;

  constructor(snapshot: Snapshot, entries: readonly Entry[], commit: Index, applied: Index) {
    this.compactIndex = snapshot.meta.index;
    this.compactTerm = snapshot.meta.term;
    this.entries = [];
    for (const e of entries) {
      if (e.index <= this.compactIndex) continue;
      assert(e.index === this.compactIndex + 1 + this.entries.length, () => `log: entry ${e.index} is not contiguous`);
      this.entries.push(e);
    }
    const last = this.lastIndex();
    assert(commit <= last, () => `log: commit ${commit} is out of range [lastIndex(${last})]`);
    this.commit = Math.max(commit, this.compactIndex);
    this.applied = Math.max(applied, this.compactIndex);
    assert(this.applied <= this.commit, () => `log: applied ${this.applied} > commit ${this.commit}`);
    this.stable = last;
    this.unstableFrom = last + 1;
  }

  firstIndex(): Index {
    return this.compactIndex + 1;
  }

  lastIndex(): Index {
    return this.compactIndex + this.entries.length;
  }

  lastTerm(): Term {
    const n = this.entries.length;
    return n === 0 ? this.compactTerm : this.entries[n - 1]!.term;
  }

  /** Term of the entry at `i`, or undefined when it is compacted away or beyond the end. */
  term(i: Index): Term | undefined {
    if (i === this.compactIndex) return this.compactTerm;
    if (i < this.compactIndex || i > this.lastIndex()) return undefined;
    return this.entries[i - this.compactIndex - 1]!.term;
  }

  entryAt(i: Index): Entry | undefined {
    if (i <= this.compactIndex || i > this.lastIndex()) return undefined;
    return this.entries[i - this.compactIndex - 1];
  }

  matchTerm(i: Index, t: Term): boolean {
    const have = this.term(i);
    return have !== undefined && have === t;
  }

  /** Raft §5.4.1: a log is at least as up to date if its last term is later, or equal with an index at least as long. */
  isUpToDate(lastIndex: Index, lastTerm: Term): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /** Entries [lo, hi) with at most `maxBytes` of payload (always at least one entry). Undefined if lo is compacted. */
  slice(lo: Index, hi: Index, maxBytes: number): Entry[] | undefined {
    if (lo <= this.compactIndex) return undefined;
    hi = Math.min(hi, this.lastIndex() + 1);
    if (lo >= hi) return [];
    const base = this.compactIndex + 1;
    let end = lo - base;
    const stop = hi - base;
    let bytes = 0;
    while (end < stop) {
      bytes += this.entries[end]!.data.length;
      if (bytes > maxBytes && end > lo - base) break;
      end++;
    }
    return this.entries.slice(lo - base, end);
  }

  /**
   * The index of the last entry at or below `index` whose term is <= `term`: the leader's and the
   * follower's logs cannot match anywhere above it (the conflict hint, thesis §5.3 optimisation).
   */
  findConflictByTerm(index: Index, term: Term): Index {
    index = Math.min(index, this.lastIndex());
    while (index > this.compactIndex) {
      const t = this.term(index)!;
      if (t <= term) break;
      index--;
    }
    return index;
  }

  /**
   * AppendEntries at the follower after the prev check passed: skip entries already present,
   * truncate at the first conflict, append the rest. Returns the last index now verified to
   * match the leader (prevIndex + entries.length).
   */
  appendFromLeader(prevIndex: Index, ents: readonly Entry[]): Index {
    const lastNew = prevIndex + ents.length;
    let k = 0;
    for (; k < ents.length; k++) {
      const e = ents[k]!;
      if (e.index <= this.compactIndex) continue; // already folded into our snapshot, so it matches
      const t = this.term(e.index);
      if (t === undefined || t !== e.term) break;
    }
    if (k < ents.length) {
      const first = ents[k]!.index;
      // Never rewrite a committed entry: that would break state machine safety.
      assert(first > this.commit, () => `log: entry ${first} conflicts with committed entry (commit ${this.commit})`);
      this.truncateAndAppend(ents.slice(k));
    }
    return lastNew;
  }

  /** Appends `ents`, cutting off whatever the log holds at and after ents[0].index. */
  truncateAndAppend(ents: readonly Entry[]): void {
    if (ents.length === 0) return;
    const first = ents[0]!.index;
    assert(first > this.compactIndex && first <= this.lastIndex() + 1, () => `log: append at ${first} outside (${this.compactIndex}, ${this.lastIndex() + 1}]`);
    assert(first > this.commit, () => `log: append at ${first} would overwrite committed ${this.commit}`);
    const keep = first - this.compactIndex - 1;
    if (keep < this.entries.length) this.entries.length = keep;
    for (const e of ents) this.entries.push(e);
    if (first < this.unstableFrom) this.unstableFrom = first;
    if (first <= this.stable) this.stable = first - 1;
  }

  commitTo(i: Index): boolean {
    if (i <= this.commit) return false; // never decreases
    assert(i <= this.lastIndex(), () => `log: tocommit(${i}) is out of range [lastIndex(${this.lastIndex()})]`);
    this.commit = i;
    return true;
  }

  /** Replaces the whole log by a snapshot received from the leader. */
  restore(s: Snapshot): void {
    assert(s.meta.index > this.commit, () => `log: restoring snapshot ${s.meta.index} at or below commit ${this.commit}`);
    this.compactIndex = s.meta.index;
    this.compactTerm = s.meta.term;
    this.entries = [];
    this.commit = s.meta.index;
    this.stable = s.meta.index;
    this.unstableFrom = s.meta.index + 1;
  }

  /** Drops entries up to and including `i` (already captured by a snapshot). */
  compact(i: Index): void {
    if (i <= this.compactIndex) return;
    assert(i <= this.applied, () => `log: compacting to ${i} beyond applied ${this.applied}`);
    const t = this.term(i)!;
    this.entries = this.entries.slice(i - this.compactIndex);
    this.compactIndex = i;
    this.compactTerm = t;
  }

  /** Entries not yet handed out for persistence. */
  unstableEntries(): Entry[] {
    if (this.unstableFrom > this.lastIndex()) return [];
    return this.entries.slice(this.unstableFrom - this.compactIndex - 1);
  }
}
