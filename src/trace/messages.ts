/**
 * How a Raft message appears in a trace: its TraceEvent `type` (the message kind in lower camel
 * case, pre-votes told apart from votes) and a short `text` for people (term and indexes; never
 * entry payloads, which hold users' keys and values). Shared by the member transport and the
 * simulator so both traces name messages alike.
 */
import type { Message } from '../raft/messages.js';

export function messageTraceType(m: Message): string {
  switch (m.type) {
    case 'vote':
      return m.preVote ? 'preVote' : 'vote';
    case 'voteResponse':
      return m.preVote ? 'preVoteResponse' : 'voteResponse';
    default:
      return m.type;
  }
}

export function messageTraceText(m: Message): string {
  switch (m.type) {
    case 'append':
      return `term ${m.term} prev ${m.prevLogIndex}/${m.prevLogTerm} entries ${m.entries.length} commit ${m.commit}`;
    case 'appendResponse':
      return `term ${m.term} index ${m.index}${m.reject ? ` reject hint ${m.hintIndex}/${m.hintTerm}` : ''}`;
    case 'heartbeat':
      return `term ${m.term} commit ${m.commit}`;
    case 'vote':
      return `term ${m.term} last ${m.lastLogIndex}/${m.lastLogTerm}${m.transfer ? ' transfer' : ''}`;
    case 'voteResponse':
      return `term ${m.term}${m.reject ? ' rejected' : ' granted'}`;
    case 'snapshot':
      return `term ${m.term} snapshot ${m.snapshot.meta.index}/${m.snapshot.meta.term}`;
    case 'readIndexResponse':
      return `term ${m.term} index ${m.index}${m.reject ? ' reject' : ''}`;
    default:
      return `term ${m.term}`;
  }
}

/** A log line's event type in a trace: leader changes get their own, the rest are 'log'. */
export function logEventType(msg: string): string {
  if (/ elected leader /.test(msg)) return 'elected';
  if (/ lost leader /.test(msg)) return 'leaderLost';
  return 'log';
}
