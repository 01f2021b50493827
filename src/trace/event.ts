import type { VectorClock } from '../lib/vector-clock.js';

/**
 * One event of a trace: what `flotilla trace merge` reads and prints, what members keep in
 * their trace ring and log lines, what `flotilla sim --trace FILE` writes (one JSON object per
 * line), and what the dashboard's space-time view draws.
 *
 * A message is two events with the same `msgId`: a 'send' at the sender (peer = receiver) and a
 * 'receive' at the receiver (peer = sender). A 'local' event has no peer (an election won, a
 * commit advance, a crash...).
 */
export interface TraceEvent {
  /** Milliseconds: wall clock for a real member, simulated time for the simulator. */
  readonly t: number;
  /** The member (node) id the event happened at. */
  readonly node: string;
  readonly lamport: number;
  readonly vc: VectorClock;
  readonly kind: 'send' | 'receive' | 'local';
  /**
   * What happened: for messages the Raft message kind in lower camel case ('append',
   * 'appendResponse', 'vote', 'voteResponse', 'preVote', 'preVoteResponse', 'heartbeat',
   * 'heartbeatResponse', 'snapshot', 'timeoutNow', 'readIndex', ...); for local events a word
   * such as 'elected', 'stepDown', 'commit', 'crash', 'restart'.
   */
  readonly type: string;
  /** The other end of a message (receiver of a send, sender of a receive). */
  readonly peer?: string;
  /** Equal on a message's send and receive events; unique per message within a trace. */
  readonly msgId?: string;
  /** Free text for people (term, indexes...). */
  readonly text?: string;
}
