/**
 * The chain's master (the paper's "master", run as an elected role on the control cluster): a
 * pure function from what the control cluster holds — the configuration and the nodes'
 * registrations (each under the node's lease) — to the next configuration, or null when none is
 * due. The caller writes it by compare-and-swap on the configuration's revision, so two masters
 * can never both succeed, and the write's revision is the new epoch.
 */
import type { ChainConfig, Epoch, NodeName } from './types.js';

export interface Registration {
  readonly name: NodeName;
  /**
   * The revision at which the registration key was created: a new one after the node's lease
   * had lapsed (the key went with it), the same while the key lived.
   */
  readonly createRevision: number;
  /** From the registration value: the epoch in which this node, as the joiner, caught up with the tail. */
  readonly caughtUpEpoch: Epoch | null;
  /** From the registration value: the last epoch in which this node, as a member, caught up with its predecessor. */
  readonly syncedEpoch: Epoch | null;
}

/**
 * A member holds everything committed unless it was appended as the tail and has not yet caught
 * up with its predecessor as a member (the old tail may have committed more after the joiner
 * caught up): then it must not be left as the only survivor.
 */
export function holdsCommitted(r: Registration): boolean {
  return r.caughtUpEpoch === null || (r.syncedEpoch !== null && r.syncedEpoch > r.caughtUpEpoch);
}

export interface MasterOptions {
  /** Longest chain the master builds (joiners beyond it wait). */
  readonly membersMax: number;
  /** Registered nodes needed for the first configuration. */
  readonly bootstrapMembers: number;
}

export type ConfigProposal = Omit<ChainConfig, 'epoch'>;

export function nextConfig(current: ChainConfig | null, registered: readonly Registration[], o: MasterOptions): ConfigProposal | null {
  const regs = new Map(registered.map((r) => [r.name, r]));
  const names = [...regs.keys()].sort();
  if (current === null) {
    if (names.length < o.bootstrapMembers) return null;
    return { members: names.slice(0, Math.max(1, Math.min(o.membersMax, o.bootstrapMembers))), joining: null };
  }
  // A member whose lease expired is removed (paper §3: head, middle or tail failure), but never
  // the last one that holds everything committed: without one the chain waits for one to come back.
  let members = current.members.filter((m) => regs.has(m));
  if (!members.some((m) => holdsCommitted(regs.get(m)!))) members = [...current.members];
  const removed = members.length !== current.members.length;
  let joining = current.joining !== null && regs.has(current.joining) ? current.joining : null;
  if (joining !== null && !removed && regs.get(joining)!.caughtUpEpoch === current.epoch && members.length < o.membersMax) {
    // Caught up with the tail of this very configuration: append it as the new tail.
    members = [...members, joining];
    joining = null;
  }
  if (joining === null && members.length < o.membersMax) joining = names.find((n) => !members.includes(n)) ?? null;
  const changed = joining !== current.joining || members.length !== current.members.length || members.some((m, i) => m !== current.members[i]);
  // A member that registered again (a restart, or a lease that lapsed) serves reads only in an
  // epoch newer than that registration: give it one.
  const reRegistered = members.some((m) => (regs.get(m)?.createRevision ?? 0) > current.epoch);
  if (!changed && !reRegistered) return null;
  return { members, joining };
}
