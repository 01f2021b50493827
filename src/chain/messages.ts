/**
 * Messages between chain nodes. Every one carries the sender's epoch; a node drops any message
 * whose epoch is not its own (fencing: a node removed from the chain, or a delayed message from
 * an earlier configuration, cannot act in the current one).
 */
import type { Entry, Epoch, NodeName, Seq } from './types.js';
import type { ChainOp } from './types.js';

interface Base {
  readonly epoch: Epoch;
  readonly from: NodeName;
  readonly to: NodeName;
}

/** Downstream: one update. `prevAssignEpoch` names the update before it (as Raft's prevLogTerm). */
export interface UpdateMsg extends Base {
  readonly type: 'update';
  readonly seq: Seq;
  readonly assignEpoch: Epoch;
  readonly prevAssignEpoch: Epoch;
  readonly op: ChainOp;
}

/**
 * Upstream: `received`: the sender holds the history up to here durably; `committed`: the tail
 * holds it (the paper's acknowledgement, passed up the chain). A joiner's `committed` is ignored.
 */
export interface AckMsg extends Base {
  readonly type: 'ack';
  readonly received: Seq;
  /** The assign epoch of the update at `received` (an ack doubles as a syncReq for a predecessor that restarted). */
  readonly receivedAssignEpoch: Epoch;
  readonly committed: Seq;
}

/** Upstream, at the start of an epoch (repeated until answered): where my history ends. */
export interface SyncReqMsg extends Base {
  readonly type: 'syncReq';
  readonly lastSeq: Seq;
  readonly lastAssignEpoch: Epoch;
}

/** Downstream: everything up to `upTo` has been (re)sent in this epoch. */
export interface SyncDoneMsg extends Base {
  readonly type: 'syncDone';
  readonly upTo: Seq;
}

/** Downstream: a piece of the sender's committed state, when the receiver's history cannot be extended. */
export interface SnapshotChunkMsg extends Base {
  readonly type: 'snapshotChunk';
  readonly seq: Seq;
  readonly assignEpoch: Epoch;
  /** The end of the receiver's history this answers (its syncReq); -1: unasked (it lags beyond the sender's log). */
  readonly forSeq: Seq;
  readonly forAssignEpoch: Epoch;
  readonly index: number;
  readonly count: number;
  readonly entries: readonly Entry[];
}

/**
 * Upstream, for each snapshot chunk taken: of the snapshot (seq, assignEpoch) in `count`
 * chunks, the receiver holds chunks 0 .. have-1. The sender keeps CHAIN_SNAPSHOT_INFLIGHT_CHUNKS
 * beyond it; a `have` below what it knew means the receiver lost them (a restart): it goes back.
 */
export interface SnapshotAckMsg extends Base {
  readonly type: 'snapshotAck';
  readonly seq: Seq;
  readonly assignEpoch: Epoch;
  readonly count: number;
  readonly have: number;
}

/** CRAQ: to the tail, which version of `key` is committed? */
export interface VersionQueryMsg extends Base {
  readonly type: 'versionQuery';
  readonly qid: number;
  readonly key: string;
}

export interface VersionAnswerMsg extends Base {
  readonly type: 'versionAnswer';
  readonly qid: number;
  readonly key: string;
  /** null: the tail could not answer (no lease, not synced). */
  readonly version: Seq | null;
}

export type PeerMessage = UpdateMsg | AckMsg | SyncReqMsg | SyncDoneMsg | SnapshotChunkMsg | SnapshotAckMsg | VersionQueryMsg | VersionAnswerMsg;
export type PeerMessageType = PeerMessage['type'];

export function describePeerMessage(m: PeerMessage): string {
  const h = `${m.type} ${m.from}->${m.to} e${m.epoch}`;
  switch (m.type) {
    case 'update':
      return `${h} seq ${m.seq}@${m.assignEpoch} prev@${m.prevAssignEpoch} ${m.op.type} ${m.op.key}`;
    case 'ack':
      return `${h} received ${m.received} committed ${m.committed}`;
    case 'syncReq':
      return `${h} last ${m.lastSeq}@${m.lastAssignEpoch}`;
    case 'syncDone':
      return `${h} upTo ${m.upTo}`;
    case 'snapshotChunk':
      return `${h} seq ${m.seq}@${m.assignEpoch} chunk ${m.index + 1}/${m.count} (${m.entries.length} entries)`;
    case 'snapshotAck':
      return `${h} seq ${m.seq}@${m.assignEpoch} has ${m.have}/${m.count}`;
    case 'versionQuery':
      return `${h} q${m.qid} ${m.key}`;
    case 'versionAnswer':
      return `${h} q${m.qid} ${m.key} -> ${m.version}`;
  }
}
