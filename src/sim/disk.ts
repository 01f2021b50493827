/**
 * A member's simulated disk: what survives a crash. Writes land only when the driver finishes
 * persisting a Ready; a crash before that loses the whole Ready. Durable state is checked as
 * it is written: the term never goes back, and the commit index never decreases.
 */
import type { InitialState } from '../raft/config.js';
import type { ConfState, Entry, HardState, Snapshot } from '../raft/types.js';
import { InvariantViolation } from './violation.js';

export class SimDisk {
  hardState: HardState = { term: 0, vote: 0, commit: 0 };
  snapshot: Snapshot;
  /** Entries after snapshot.meta.index, contiguous. */
  entries: Entry[] = [];

  constructor(
    readonly id: number,
    confState: ConfState,
  ) {
    this.snapshot = { meta: { index: 0, term: 0, confState }, data: new Uint8Array(0) };
  }

  /** Makes a Ready's hard state, snapshot and entries durable (step 1 of the Ready contract). */
  persist(rd: { readonly hardState?: HardState; readonly entries: readonly Entry[]; readonly snapshot?: Snapshot }): void {
    if (rd.snapshot) {
      const s = rd.snapshot;
      this.snapshot = s;
      // Keep the log only if it continues the snapshot.
      const at = this.entries.findIndex((e) => e.index === s.meta.index);
      this.entries = at >= 0 && this.entries[at]!.term === s.meta.term ? this.entries.slice(at + 1) : [];
    }
    if (rd.entries.length > 0) {
      const first = rd.entries[0]!.index;
      const base = this.snapshot.meta.index + 1;
      if (first < base) throw new InvariantViolation('durable log', `member ${this.id} asked to persist entry ${first} below its snapshot at ${base - 1}`);
      const lastHeld = base + this.entries.length - 1;
      if (first > lastHeld + 1) throw new InvariantViolation('durable log', `member ${this.id} asked to persist entry ${first} leaving a gap after ${lastHeld}`);
      this.entries.length = first - base;
      for (const e of rd.entries) this.entries.push(e);
    }
    if (rd.hardState) {
      const hs = rd.hardState;
      const old = this.hardState;
      if (hs.term < old.term) throw new InvariantViolation('durable term', `member ${this.id} persisted term ${hs.term} after term ${old.term}`);
      if (hs.term === old.term && old.vote !== 0 && hs.vote !== old.vote) {
        throw new InvariantViolation('durable vote', `member ${this.id} changed its durable vote in term ${hs.term} from ${old.vote} to ${hs.vote}`);
      }
      if (hs.commit < old.commit) throw new InvariantViolation('commit monotonic', `member ${this.id} persisted commit ${hs.commit} after ${old.commit}`);
      this.hardState = hs;
    }
  }

  /** A snapshot the state machine took at its applied index: written atomically, entries below it dropped. */
  saveSnapshot(s: Snapshot): void {
    if (s.meta.index <= this.snapshot.meta.index) return;
    this.entries = this.entries.filter((e) => e.index > s.meta.index);
    this.snapshot = s;
  }

  /** True if the disk holds entry `index` (in the log or under the snapshot). */
  holds(index: number): boolean {
    return index <= this.snapshot.meta.index + this.entries.length;
  }

  copy(): SimDisk {
    const d = new SimDisk(this.id, this.snapshot.meta.confState);
    d.reset(this.load());
    return d;
  }

  /** Replaces the record by what a member recovered (node driver, after a restart). */
  reset(s: InitialState): void {
    this.hardState = s.hardState;
    this.snapshot = s.snapshot;
    this.entries = s.entries.slice();
  }

  load(): InitialState {
    return { hardState: this.hardState, snapshot: this.snapshot, entries: this.entries.slice(), applied: this.snapshot.meta.index };
  }
}
