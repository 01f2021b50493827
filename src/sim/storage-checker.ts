/**
 * Node driver: what a member recovers from its files after a crash is what its completed
 * writes made durable (TigerBeetle's storage checker). The record of those writes is the
 * member's SimDisk; a crash only ever loses or tears unsynced writes.
 */
import type { InitialState } from '../raft/config.js';
import type { SimNode } from './cluster.js';
import type { SimDisk } from './disk.js';
import { InvariantViolation } from './violation.js';

/**
 * What a member recovers from its files after a crash holds everything its completed writes
 * made durable (the record in `n.disk`): the same term and vote, and, unless a newer snapshot
 * was being installed, the same log. A crash only ever tears an unsynced write, so recovery
 * finds nothing more either. On success the record becomes what was recovered.
 */
export function checkRecovered(n: SimNode, got: InitialState): void {
  // A torn write whose missing bytes happen to be zeros (as in the preallocated file) is
  // whole: recovery may then also hold the first unfinished save.
  let why = recoveredDiffers(n, n.disk, got);
  for (let i = 0; why && i < n.unsynced.length; i++) {
    const further = n.disk.copy();
    try {
      for (const rd of n.unsynced.slice(0, i + 1)) further.persist(rd);
    } catch {
      break;
    }
    if (recoveredDiffers(n, further, got) === undefined) why = undefined;
  }
  n.unsynced = [];
  if (why) throw why;
  n.disk.reset(got);
}

function recoveredDiffers(n: SimNode, want: SimDisk, got: InitialState): InvariantViolation | undefined {
  const hs = got.hardState;
  const was = want.hardState;
  if (hs.term !== was.term || hs.vote !== was.vote) {
    return new InvariantViolation('durable state', `n${n.id} recovered term ${hs.term} vote ${hs.vote} from its files, but term ${was.term} vote ${was.vote} had been made durable`);
  }
  const snap = got.snapshot.meta.index;
  if (snap < want.snapshot.meta.index) {
    return new InvariantViolation('durable state', `n${n.id} recovered a snapshot at ${snap}, but one at ${want.snapshot.meta.index} had been made durable`);
  }
  if (snap === want.snapshot.meta.index) {
    const a = got.entries.map((e) => `${e.index}/${e.term}`).join(' ');
    const b = want.entries.map((e) => `${e.index}/${e.term}`).join(' ');
    if (a !== b) return new InvariantViolation('durable log', `n${n.id} recovered log [${a}] after snapshot ${snap}, but [${b}] had been made durable`);
  }
  return undefined;
}
