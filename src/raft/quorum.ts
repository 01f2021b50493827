/**
 * Quorum arithmetic for a majority configuration and a joint one (thesis §4.3).
 * Pure functions over member ids; kept small so they can be checked against naive versions.
 */
import type { Index, NodeId } from './types.js';

export type VoteResult = 'pending' | 'lost' | 'won';

/**
 * The largest index acknowledged by a majority of `voters`, where `acked(id)` is what `id` has
 * durably matched. An empty configuration imposes no constraint (Infinity), so that joint
 * computations reduce to the other half.
 */
export function majorityCommitted(voters: readonly NodeId[], acked: (id: NodeId) => Index): Index {
  const n = voters.length;
  if (n === 0) return Infinity;
  if (n === 1) return acked(voters[0]!);
  const xs = new Array<number>(n);
  for (let i = 0; i < n; i++) xs[i] = acked(voters[i]!);
  xs.sort((a, b) => b - a);
  // Sorted descending, position n/2 (rounded down) is the highest index that at least
  // floor(n/2)+1 members have reached.
  return xs[n >> 1]!;
}

/** Outcome of an election among `voters` given the answers so far (true = granted). */
export function majorityVote(voters: readonly NodeId[], votes: (id: NodeId) => boolean | undefined): VoteResult {
  const n = voters.length;
  if (n === 0) return 'won'; // an empty half never blocks a joint decision
  let yes = 0;
  let missing = 0;
  for (const id of voters) {
    const v = votes(id);
    if (v === undefined) missing++;
    else if (v) yes++;
  }
  const q = (n >> 1) + 1;
  if (yes >= q) return 'won';
  if (yes + missing >= q) return 'pending';
  return 'lost';
}

/** Joint consensus: an index is committed only once both halves have committed it. */
export function jointCommitted(incoming: readonly NodeId[], outgoing: readonly NodeId[], acked: (id: NodeId) => Index): Index {
  return Math.min(majorityCommitted(incoming, acked), majorityCommitted(outgoing, acked));
}

/** Joint consensus: an election is won only when both halves are won, lost when either is lost. */
export function jointVote(
  incoming: readonly NodeId[],
  outgoing: readonly NodeId[],
  votes: (id: NodeId) => boolean | undefined,
): VoteResult {
  const a = majorityVote(incoming, votes);
  const b = majorityVote(outgoing, votes);
  if (a === 'lost' || b === 'lost') return 'lost';
  if (a === 'won' && b === 'won') return 'won';
  return 'pending';
}
