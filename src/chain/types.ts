/**
 * Chain replication (van Renesse & Schneider, OSDI 2004): the types of the pure protocol core.
 *
 * A chain is an ordered list of nodes, head first. The head orders updates with sequence numbers
 * (`seq`, 1, 2, ...), every node applies them in that order and forwards them to its successor,
 * the tail's acknowledgement travels back up. Which nodes form the chain is decided by the
 * control plane (the master, on Flotilla's Raft cluster) and published as a ChainConfig whose
 * `epoch` is the revision of that write in the control cluster: epochs only grow, and every
 * message between nodes carries one (a fencing token).
 */

export type NodeName = string;
/** The control cluster's revision of the configuration write: > 0, only grows. */
export type Epoch = number;
/** A position in the history: 1 is the first update; 0 is the empty history. */
export type Seq = number;

export interface ChainConfig {
  readonly epoch: Epoch;
  /** Head first, tail last; never empty, no duplicates. */
  readonly members: readonly NodeName[];
  /**
   * A node being brought up to date from the tail (snapshot, then the tail's updates as they
   * commit); the master appends it as the new tail once it reported itself caught up in this
   * epoch. It serves nothing and its acknowledgements count for nothing.
   */
  readonly joining: NodeName | null;
}

/** How non-tail nodes answer reads: refuse (`tail`) or CRAQ's apportioned reads (`craq`). */
export type ReadMode = 'tail' | 'craq';

export type ChainOp =
  | { readonly type: 'put'; readonly key: string; readonly value: Uint8Array }
  | { readonly type: 'delete'; readonly key: string }
  /** Sets `value` iff the key's version is `expectedVersion` (0: the key is absent). */
  | { readonly type: 'cas'; readonly key: string; readonly expectedVersion: Seq; readonly value: Uint8Array };

export type ClientOp = ChainOp | { readonly type: 'get'; readonly key: string };

/**
 * One update of the history. Its identity is (seq, assignEpoch): the head that assigned it did so
 * in `assignEpoch`, and a head persists an update before anyone else can see it, so two different
 * updates never share both (see ChainNode.request).
 */
export interface Update {
  readonly seq: Seq;
  readonly assignEpoch: Epoch;
  readonly op: ChainOp;
}

/**
 * A key's state. `version` is the seq of the update that last set it (as etcd's mod revision),
 * so versions are unique along the committed history; an absent key has version 0.
 */
export interface Entry {
  readonly key: string;
  readonly value: Uint8Array;
  readonly version: Seq;
}

export type OpResult =
  | { readonly type: 'put'; readonly version: Seq }
  | { readonly type: 'delete'; readonly deleted: boolean }
  | { readonly type: 'cas'; readonly swapped: boolean; readonly version: Seq }
  | { readonly type: 'get'; readonly value: Uint8Array | null; readonly version: Seq };

export type RefusalReason =
  /** The request's epoch is not the node's (the client must read the configuration again). */
  | 'epoch'
  /** A write at a node that is not the head in its epoch. */
  | 'not-head'
  /** A read at a node that does not serve reads (not the tail with `reads: 'tail'`, or not a member). */
  | 'not-tail'
  /** The node's read lease from the control plane is not known valid: it may have been removed. */
  | 'no-lease'
  /** A new tail that has not yet caught up with its predecessor in this epoch. */
  | 'not-synced'
  /** Too many updates in flight (CHAIN_INFLIGHT_UPDATES_MAX / _BYTES_MAX) or reads waiting. */
  | 'busy'
  /** The request breaks a limit (key or value size). */
  | 'invalid';

export type ClientReply =
  | { readonly ok: true; readonly result: OpResult }
  /** Definitely not applied. */
  | { readonly ok: false; readonly reason: RefusalReason; readonly epoch: Epoch; readonly detail?: string }
  /** The node stopped being head with the write in flight: it may or may not be applied. */
  | { readonly ok: null; readonly reason: 'unknown'; readonly epoch: Epoch };

export interface ClientRequest {
  readonly client: string;
  /** Chosen by the client; echoed in the reply. */
  readonly id: number;
  /** The configuration the client believes in; a node answers only requests of its own epoch. */
  readonly epoch: Epoch;
  readonly op: ClientOp;
}

/** What a node's durable state is rebuilt from: its last snapshot, then the updates after it. */
export interface SnapshotImage {
  readonly seq: Seq;
  /** The assign epoch of the update at `seq` (0 when seq is 0). */
  readonly assignEpoch: Epoch;
  readonly entries: readonly Entry[];
}

// ---- Named limits -------------------------------------------------------------------------

/** Longest key, in UTF-8 bytes. */
export const CHAIN_KEY_BYTES_MAX = 4096;
/** Largest value. The protocol core carries a value whole in one update; the wire streams it. */
export const CHAIN_VALUE_BYTES_MAX = 64 * 1024 * 1024;
/** Updates the head lets be in flight (assigned, not yet acknowledged by the tail). */
export const CHAIN_INFLIGHT_UPDATES_MAX = 1024;
/** Value bytes the head lets be in flight. */
export const CHAIN_INFLIGHT_BYTES_MAX = 256 * 1024 * 1024;
/** Updates a node sends its successor ahead of the successor's last acknowledgement. */
export const CHAIN_SEND_WINDOW_UPDATES = 256;
/**
 * Value bytes a node sends ahead of the successor's last acknowledgement (at least one update
 * always goes), and a receiver keeps of updates that arrived ahead of a gap.
 */
export const CHAIN_SEND_WINDOW_BYTES = 128 * 1024 * 1024;
/** A resend to a successor without progress doubles the wait for the next, up to 2^this times resendTicks. */
export const CHAIN_RESEND_BACKOFF_MAX = 3;
/** Value bytes of one snapshot chunk (a single larger entry travels alone). */
export const CHAIN_SNAPSHOT_CHUNK_BYTES_MAX = 4 * 1024 * 1024;
/**
 * Chunks of a snapshot a sender has out beyond the receiver's acknowledgement (snapshotAck): a
 * large store streams a few chunks at a time, as fast as the receiver takes them, instead of
 * all at once into the connection.
 */
export const CHAIN_SNAPSHOT_INFLIGHT_CHUNKS = 4;
/** Chunks of one snapshot a receiver assembles at most. */
export const CHAIN_SNAPSHOT_CHUNKS_MAX = 1_000_000;
/** Updates the tail keeps for a lagging joiner beyond what is committed; past it, a snapshot. */
export const CHAIN_LOG_RETAIN_MAX = 4096;
/** CRAQ reads waiting for the tail's answer at one node. */
export const CHAIN_PENDING_READS_MAX = 1024;

export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** Why `op` breaks a limit, or null. */
export function opProblem(op: ClientOp): string | null {
  if (op.key.length === 0) return 'key is empty';
  if (utf8Length(op.key) > CHAIN_KEY_BYTES_MAX) return `key exceeds ${CHAIN_KEY_BYTES_MAX} bytes`;
  if ((op.type === 'put' || op.type === 'cas') && op.value.length > CHAIN_VALUE_BYTES_MAX) return `value exceeds ${CHAIN_VALUE_BYTES_MAX} bytes`;
  if (op.type === 'cas' && !(Number.isSafeInteger(op.expectedVersion) && op.expectedVersion >= 0)) return 'expected version must be a non-negative integer';
  return null;
}

/** Whether `c` is a well-formed configuration (members non-empty and distinct, joiner not a member). */
export function configProblem(c: ChainConfig): string | null {
  if (!(Number.isSafeInteger(c.epoch) && c.epoch > 0)) return 'epoch must be a positive integer';
  if (c.members.length === 0) return 'members must not be empty';
  if (new Set(c.members).size !== c.members.length) return 'members must be distinct';
  if (c.joining !== null && c.members.includes(c.joining)) return 'the joining node is already a member';
  return null;
}
