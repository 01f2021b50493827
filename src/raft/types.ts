/**
 * The vocabulary of the pure Raft core: ids, entries, configuration, snapshots, refusals
 * (Ready, which carries messages, is in ready.ts: messages.ts builds on these types).
 * Everything here is plain data, so it can be persisted, sent and compared by the shell.
 */

/** A member id. 0 is never a valid id (it means "none" on the wire). */
export type NodeId = number;
export type Term = number;
export type Index = number;

export type EntryType = 'normal' | 'conf';

/**
 * One log entry. `data` is opaque to the core for 'normal' entries (an empty `data` is the
 * leader's no-op); for 'conf' entries it is an encoded ConfChange (see confchange.ts).
 */
export interface Entry {
  readonly term: Term;
  readonly index: Index;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/** The durable part of a member's state: must be on disk before any message that depends on it leaves. */
export interface HardState {
  readonly term: Term;
  readonly vote: NodeId; // 0 = none
  readonly commit: Index;
}

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/** The volatile, informational part of a member's state. */
export interface SoftState {
  readonly leader: NodeId; // 0 = unknown
  readonly role: Role;
}

/**
 * A membership configuration (thesis §4.3). Outside joint consensus `votersOutgoing` is empty.
 * During a joint configuration decisions need a majority of `voters` AND of `votersOutgoing`.
 * `learnersNext` holds voters being demoted to learners: they become learners when the joint
 * configuration is left (a member is never a voter and a learner of the same half at once).
 */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly votersOutgoing: readonly NodeId[];
  readonly learners: readonly NodeId[];
  readonly learnersNext: readonly NodeId[];
  /** Leave the joint configuration automatically once it is applied. */
  readonly autoLeave: boolean;
}

export interface SnapshotMeta {
  readonly index: Index;
  readonly term: Term;
  readonly confState: ConfState;
}

/** A state-machine image at `meta.index`, with the configuration in force there. */
export interface Snapshot {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
}

export type ConfChangeKind = 'addVoter' | 'addLearner' | 'removeNode';

export interface ConfChangeSingle {
  readonly kind: ConfChangeKind;
  readonly nodeId: NodeId;
}

/**
 * A membership change. An empty `changes` list means "leave the joint configuration".
 * A change that alters at most one voter is applied directly (a "simple" change) unless
 * `joint` is set; anything else goes through joint consensus.
 */
export interface ConfChange {
  readonly changes: readonly ConfChangeSingle[];
  readonly joint?: boolean;
  /** With `joint`: false keeps the joint configuration until an explicit leave is proposed. */
  readonly autoLeave?: boolean;
  /**
   * Opaque to the core: what the application replicates with the change (etcd's ConfChange
   * context; the server puts the member's id and peer URLs here). Bounded by the entry size.
   */
  readonly context?: string;
}

/** A ReadIndex answer: once the state machine has applied `index`, the read `ctx` may be served. */
export interface ReadState {
  readonly index: Index;
  readonly ctx: string;
}

/** Why a proposal (or a read, a transfer, a configuration change) was refused. */
export type RefusalReason =
  | 'notLeader'
  | 'transferInProgress'
  | 'tooMuchUncommitted'
  | 'confChangePending'
  | 'invalidConfChange'
  | 'tooLarge'
  | 'invalidTarget'
  | 'readNotReady';

export interface Refusal {
  readonly ok: false;
  readonly reason: RefusalReason;
  /** The leader this member believes in, when known (0 = unknown): retry there. */
  readonly leaderHint: NodeId;
  readonly detail: string;
}

export interface Accepted {
  readonly ok: true;
  /** The proposal's entry sits at (index, term): it succeeded iff that exact entry is applied. */
  readonly index: Index;
  readonly term: Term;
}

export type ProposeResult = Accepted | Refusal;
export type ActionResult = { readonly ok: true } | Refusal;
