/**
 * The space-time view's logic, without the DOM (unit-tested in node): reading a trace (JSON
 * lines of TraceEvent), pairing a message's send with its receive, and an event's causal past
 * and future from the vector clocks (src/lib/vector-clock.ts, bundled, not copied).
 */
import { compareClocks, type ClockOrder, type VectorClock } from '../../lib/vector-clock.js';
import type { TraceEvent } from '../../trace/event.js';

/** Events a loaded trace keeps (a bigger file is cut: the first ones, and a note says so). */
export const TRACE_EVENTS_MAX = 20_000;
/** Characters of a trace file read (a bigger file is cut at the last whole line before it). */
export const TRACE_CHARS_MAX = 32 * 1024 * 1024;
/** Longest string field (node, type, peer, msgId, text) kept as is; longer ones are cut. */
export const TRACE_FIELD_CHARS_MAX = 256;
/** Members in one vector clock beyond which an event is refused (clusters have 3 to 7). */
export const TRACE_CLOCK_ENTRIES_MAX = 64;

export interface ParsedTrace {
  readonly events: TraceEvent[];
  /** Lines that were not a TraceEvent: how many, and the first few reasons. */
  readonly refused: number;
  readonly reasons: string[];
  /** True when the trace had more than TRACE_EVENTS_MAX events or TRACE_CHARS_MAX characters. */
  readonly truncated: boolean;
}

const KINDS = new Set(['send', 'receive', 'local']);
const cut = (s: string): string => (s.length > TRACE_FIELD_CHARS_MAX ? `${s.slice(0, TRACE_FIELD_CHARS_MAX)}…` : s);

/** One TraceEvent from untrusted JSON, or the reason it is not one. */
export function toEvent(x: unknown): TraceEvent | string {
  if (x === null || typeof x !== 'object' || Array.isArray(x)) return 'not an object';
  const o = x as Record<string, unknown>;
  if (typeof o['t'] !== 'number' || !Number.isFinite(o['t'])) return 't is not a number';
  if (typeof o['node'] !== 'string' || o['node'] === '') return 'node is not a string';
  if (typeof o['lamport'] !== 'number' || !Number.isSafeInteger(o['lamport']) || o['lamport'] < 0) return 'lamport is not a count';
  if (typeof o['kind'] !== 'string' || !KINDS.has(o['kind'])) return 'kind is not send, receive or local';
  if (typeof o['type'] !== 'string') return 'type is not a string';
  const vcIn = o['vc'];
  if (vcIn === null || typeof vcIn !== 'object' || Array.isArray(vcIn)) return 'vc is not an object';
  const entries = Object.entries(vcIn as Record<string, unknown>);
  if (entries.length > TRACE_CLOCK_ENTRIES_MAX) return `vc has more than ${TRACE_CLOCK_ENTRIES_MAX} entries`;
  const vc: Record<string, number> = {};
  for (const [k, v] of entries) {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) return `vc[${JSON.stringify(cut(k))}] is not a count`;
    Object.defineProperty(vc, cut(k), { value: v, enumerable: true, writable: true, configurable: true });
  }
  const opt = (k: string): string | undefined => (typeof o[k] === 'string' ? cut(o[k] as string) : undefined);
  const peer = opt('peer');
  const msgId = opt('msgId');
  const text = opt('text');
  return {
    t: o['t'] as number,
    node: cut(o['node'] as string),
    lamport: o['lamport'] as number,
    vc,
    kind: o['kind'] as TraceEvent['kind'],
    type: cut(o['type'] as string),
    ...(peer !== undefined ? { peer } : {}),
    ...(msgId !== undefined ? { msgId } : {}),
    ...(text !== undefined ? { text } : {}),
  };
}

/** Reads a trace: one JSON object per line; blank lines skipped; bad lines counted, not fatal. */
export function parseTrace(text: string): ParsedTrace {
  let truncated = false;
  if (text.length > TRACE_CHARS_MAX) {
    truncated = true;
    text = text.slice(0, text.lastIndexOf('\n', TRACE_CHARS_MAX) + 1);
  }
  const events: TraceEvent[] = [];
  const reasons: string[] = [];
  let refused = 0;
  let lineNo = 0;
  for (const line of text.split('\n')) {
    lineNo++;
    if (line.trim() === '') continue;
    if (events.length >= TRACE_EVENTS_MAX) {
      truncated = true;
      break;
    }
    let e: TraceEvent | string;
    try {
      e = toEvent(JSON.parse(line));
    } catch {
      e = 'not JSON';
    }
    if (typeof e === 'string') {
      refused++;
      if (reasons.length < 5) reasons.push(`line ${lineNo}: ${e}`);
    } else events.push(e);
  }
  return { events, refused, reasons, truncated };
}

export interface MessageArrow {
  /** Indexes into the events array. */
  readonly send: number;
  readonly receive: number;
  readonly type: string;
}

/** Each message's send paired with its receive (same msgId); unpaired sends (lost messages) have none. */
export function pairMessages(events: readonly TraceEvent[]): MessageArrow[] {
  const sends = new Map<string, number>();
  events.forEach((e, i) => {
    if (e.kind === 'send' && e.msgId !== undefined && !sends.has(e.msgId)) sends.set(e.msgId, i);
  });
  const out: MessageArrow[] = [];
  events.forEach((e, i) => {
    if (e.kind !== 'receive' || e.msgId === undefined) return;
    const s = sends.get(e.msgId);
    if (s !== undefined) out.push({ send: s, receive: i, type: events[s]!.type });
  });
  return out;
}

/** The events that happened before event `i` (its causal past) and after it (its future), by vector clock. */
export function causalSets(events: readonly TraceEvent[], i: number): { past: Set<number>; future: Set<number> } {
  const me = events[i]!.vc;
  const past = new Set<number>();
  const future = new Set<number>();
  events.forEach((e, j) => {
    if (j === i) return;
    const o = compareClocks(e.vc, me);
    if (o === 'before') past.add(j);
    else if (o === 'after') future.add(j);
  });
  return { past, future };
}

/** How event a relates to event b. */
export function relation(a: VectorClock, b: VectorClock): ClockOrder {
  return compareClocks(a, b);
}

/** The base kind of a message type, for its colour: 'appendResponse' -> 'append', 'preVote' -> 'vote'. */
export function messageFamily(type: string): string {
  const t = type.replace(/Response$/, '');
  if (t === 'preVote' || t === 'vote') return 'vote';
  if (t === 'append' || t === 'heartbeat' || t === 'snapshot' || t === 'timeoutNow' || t === 'readIndex') return t;
  return 'other';
}
