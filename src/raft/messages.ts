/**
 * Messages exchanged between Raft members, as a discriminated union on `type`.
 * Every message carries the sender's term; `from`/`to` are member ids.
 */
import type { Entry, Index, NodeId, Snapshot, Term } from './types.js';

interface Base {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: Term;
}

/** AppendEntries (Raft §5.3). `commit` is the leader's commit index. */
export interface AppendMsg extends Base {
  readonly type: 'append';
  readonly prevLogIndex: Index;
  readonly prevLogTerm: Term;
  readonly entries: readonly Entry[];
  readonly commit: Index;
}

/**
 * Reply to AppendEntries or InstallSnapshot. On success `index` is the last index now known to
 * match the leader. On rejection `index` is the rejected prevLogIndex and (`hintIndex`,
 * `hintTerm`) a conflict hint: the follower's last index at or below `index` whose term is at
 * most the leader's prevLogTerm, so the leader can skip a whole term per round trip.
 */
export interface AppendResponseMsg extends Base {
  readonly type: 'appendResponse';
  readonly index: Index;
  readonly reject: boolean;
  readonly hintIndex: Index;
  readonly hintTerm: Term;
}

/** Heartbeat: carries min(follower's match, leader commit) and an optional ReadIndex round. */
export interface HeartbeatMsg extends Base {
  readonly type: 'heartbeat';
  readonly commit: Index;
  /** ReadIndex round this heartbeat confirms leadership for (0 = none). */
  readonly round: number;
}

export interface HeartbeatResponseMsg extends Base {
  readonly type: 'heartbeatResponse';
  readonly round: number;
  /** The follower could not take the leader's commit index because it has not verified its log. */
  readonly needAppend: boolean;
}

/** RequestVote or PreVote (thesis §9.6). A pre-vote carries the term the sender would use. */
export interface VoteMsg extends Base {
  readonly type: 'vote';
  readonly preVote: boolean;
  readonly lastLogIndex: Index;
  readonly lastLogTerm: Term;
  /** Sent because of a leadership transfer: overrides the "heard from a leader recently" rule. */
  readonly transfer: boolean;
}

export interface VoteResponseMsg extends Base {
  readonly type: 'voteResponse';
  readonly preVote: boolean;
  readonly reject: boolean;
}

export interface SnapshotMsg extends Base {
  readonly type: 'snapshot';
  readonly snapshot: Snapshot;
}

/** Leadership transfer (thesis §3.10): the recipient starts an election at once. */
export interface TimeoutNowMsg extends Base {
  readonly type: 'timeoutNow';
}

/** A follower asks the leader for a read index on behalf of a client read. */
export interface ReadIndexMsg extends Base {
  readonly type: 'readIndex';
  readonly ctx: string;
}

export interface ReadIndexResponseMsg extends Base {
  readonly type: 'readIndexResponse';
  readonly ctx: string;
  /** 0 when the leader could not serve it (e.g. it has not committed in its term yet). */
  readonly index: Index;
  readonly reject: boolean;
}

export type Message =
  | AppendMsg
  | AppendResponseMsg
  | HeartbeatMsg
  | HeartbeatResponseMsg
  | VoteMsg
  | VoteResponseMsg
  | SnapshotMsg
  | TimeoutNowMsg
  | ReadIndexMsg
  | ReadIndexResponseMsg;

export type MessageType = Message['type'];

/** Which messages are answers: the compiler keeps this table complete. */
export const isResponse: Record<MessageType, boolean> = {
  append: false,
  appendResponse: true,
  heartbeat: false,
  heartbeatResponse: true,
  vote: false,
  voteResponse: true,
  snapshot: false,
  timeoutNow: false,
  readIndex: false,
  readIndexResponse: true,
};
