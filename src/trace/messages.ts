/**
 * How a Raft message appears in a trace: its TraceEvent `type` (the message kind in lower camel
 * case, pre-votes told apart from votes) and a short `text` for people (term and indexes; never
 * entry payloads, which hold users' keys and values). Shared by the member transport and the
 * simulator so both traces name messages alike.
 *
 * A member records a message as its numbers (MESSAGE_FIELDS of them, `messageFields`) and makes
 * the text only when someone reads the trace (`messageFieldsText`): building strings for every
 * message would cost more than the clocks themselves.
 */
import type { Message } from '../raft/messages.js';

/** Numbers kept per message event: the term and up to four more. */
export const MESSAGE_FIELDS = 5;

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

/** Writes the message's numbers at `out[at..at + MESSAGE_FIELDS)`. */
export function messageFields(m: Message, out: Float64Array, at: number): void {
  out[at] = m.term;
  out[at + 1] = 0;
  out[at + 2] = 0;
  out[at + 3] = 0;
  out[at + 4] = 0;
  switch (m.type) {
    case 'append':
      out[at + 1] = m.prevLogIndex;
      out[at + 2] = m.prevLogTerm;
      out[at + 3] = m.entries.length;
      out[at + 4] = m.commit;
      break;
    case 'appendResponse':
      out[at + 1] = m.index;
      out[at + 2] = m.reject ? 1 : 0;
      out[at + 3] = m.hintIndex;
      out[at + 4] = m.hintTerm;
      break;
    case 'heartbeat':
      out[at + 1] = m.commit;
      break;
    case 'vote':
      out[at + 1] = m.lastLogIndex;
      out[at + 2] = m.lastLogTerm;
      out[at + 3] = m.transfer ? 1 : 0;
      break;
    case 'voteResponse':
      out[at + 1] = m.reject ? 1 : 0;
      break;
    case 'snapshot':
      out[at + 1] = m.snapshot.meta.index;
      out[at + 2] = m.snapshot.meta.term;
      break;
    case 'readIndexResponse':
      out[at + 1] = m.index;
      out[at + 2] = m.reject ? 1 : 0;
      break;
    default:
      break;
  }
}

/** The text of a message event of trace type `type` from its numbers. */
export function messageFieldsText(type: string, f: Float64Array, at: number): string {
  const term = f[at]!;
  const a = f[at + 1]!;
  const b = f[at + 2]!;
  const c = f[at + 3]!;
  const d = f[at + 4]!;
  switch (type) {
    case 'append':
      return `term ${term} prev ${a}/${b} entries ${c} commit ${d}`;
    case 'appendResponse':
      return `term ${term} index ${a}${b ? ` reject hint ${c}/${d}` : ''}`;
    case 'heartbeat':
      return `term ${term} commit ${a}`;
    case 'vote':
    case 'preVote':
      return `term ${term} last ${a}/${b}${c ? ' transfer' : ''}`;
    case 'voteResponse':
    case 'preVoteResponse':
      return `term ${term}${a ? ' rejected' : ' granted'}`;
    case 'snapshot':
      return `term ${term} snapshot ${a}/${b}`;
    case 'readIndexResponse':
      return `term ${term} index ${a}${b ? ' reject' : ''}`;
    default:
      return `term ${term}`;
  }
}

const scratch = new Float64Array(MESSAGE_FIELDS);

export function messageTraceText(m: Message): string {
  messageFields(m, scratch, 0);
  return messageFieldsText(messageTraceType(m), scratch, 0);
}

/** A log line's event type in a trace: leader changes get their own, the rest are 'log'. */
export function logEventType(msg: string): string {
  if (/ elected leader /.test(msg)) return 'elected';
  if (/ lost leader /.test(msg)) return 'leaderLost';
  return 'log';
}
