/**
 * `flotilla trace merge`: reads members' log files and trace files, and puts all their events
 * on one timeline ordered consistently with happens-before.
 *
 * Input, line by line (other lines are skipped and counted):
 *   - TraceEvent JSON lines (GET /debug/trace, `flotilla sim --trace`);
 *   - JSON log lines with `node`, `lamport`, `vc` (serve --log-format json), as local events;
 *   - text log lines ending in ` node=<id> lamport=<n> vc=<JSON>` (the default log format).
 * Everything is validated (a file is outside input): numbers are non-negative safe integers,
 * vectors have at most TRACE_VC_KEYS_MAX components, lines at most TRACE_LINE_CHARS_MAX
 * characters, at most TRACE_MERGE_EVENTS_MAX events in all.
 *
 * Order: the same event read twice (a member's log and its /debug/trace dump) counts once (a
 * member's Lamport time names its events). Happens-before is what the vector clocks say (event
 * e at member i follows the latest event of member j whose own component is at most e.vc[j]),
 * plus each member's own order and each message's send before its receives. The output is a
 * topological order of that graph, smallest Lamport time first among the events ready, so it is
 * a linear extension of happens-before; each event concurrent with the one printed before it is
 * marked. A trace whose clocks contradict themselves (a cycle) is still printed, the cycle
 * broken at the smallest Lamport time, and counted in `inconsistent`.
 */
import { compareClocks, type VectorClock } from '../lib/vector-clock.js';
import type { TraceEvent } from './event.js';
import { logEventType } from './messages.js';

/** Events one merge reads in all; more is refused. */
export const TRACE_MERGE_EVENTS_MAX = 2_000_000;
/** Longest line read; longer lines are skipped. */
export const TRACE_LINE_CHARS_MAX = 64 * 1024;
/** Vector components per event; an event with more is skipped. */
export const TRACE_VC_KEYS_MAX = 64;

export class TraceInputError extends Error {
  override name = 'TraceInputError';
}

export interface ParseResult {
  readonly events: TraceEvent[];
  /** Lines that were neither a trace event nor a log line with clocks. */
  readonly skipped: number;
}

const TEXT_LOG = /^(\S+) (debug|info|warn|error) \[[^\]]*\] (.*) node=(\S+) lamport=(\d{1,16}) vc=(\{[^ ]*\})$/;
const KINDS = new Set(['send', 'receive', 'local']);

const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
const isTime = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x) && x >= 0;
const isId = (x: unknown): x is string => typeof x === 'string' && x.length > 0 && x.length <= 64 && !/\s/.test(x);

function vectorOf(x: unknown): VectorClock | null {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return null;
  const keys = Object.keys(x);
  if (keys.length > TRACE_VC_KEYS_MAX) return null;
  const out: Record<string, number> = {};
  for (const k of keys) {
    const v = (x as Record<string, unknown>)[k];
    if (!isId(k) || !isCount(v)) return null;
    out[k] = v;
  }
  return out;
}

function fromJson(o: Record<string, unknown>): TraceEvent | null {
  const vc = vectorOf(o.vc);
  if (!vc || !isCount(o.lamport) || !isId(o.node)) return null;
  if (typeof o.kind === 'string') {
    // A TraceEvent.
    if (!KINDS.has(o.kind) || typeof o.type !== 'string' || o.type.length > 64 || !isTime(o.t)) return null;
    if (o.peer !== undefined && !isId(o.peer)) return null;
    if (o.msgId !== undefined && (typeof o.msgId !== 'string' || o.msgId.length > 128)) return null;
    if (o.text !== undefined && typeof o.text !== 'string') return null;
    return {
      t: o.t,
      node: o.node,
      lamport: o.lamport,
      vc,
      kind: o.kind as TraceEvent['kind'],
      type: o.type,
      ...(o.peer !== undefined ? { peer: o.peer } : {}),
      ...(o.msgId !== undefined ? { msgId: o.msgId as string } : {}),
      ...(o.text !== undefined ? { text: o.text } : {}),
    };
  }
  // A JSON log line.
  if (typeof o.msg !== 'string' || typeof o.ts !== 'string') return null;
  const t = Date.parse(o.ts);
  return { t: Number.isFinite(t) ? t : 0, node: o.node, lamport: o.lamport, vc, kind: 'local', type: logEventType(o.msg), text: o.msg };
}

/** The events in one file's text. */
export function parseTrace(text: string): ParseResult {
  const events: TraceEvent[] = [];
  let skipped = 0;
  for (const raw of text.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') continue;
    if (line.length > TRACE_LINE_CHARS_MAX) {
      skipped++;
      continue;
    }
    let e: TraceEvent | null = null;
    if (line.startsWith('{')) {
      try {
        const o: unknown = JSON.parse(line);
        if (typeof o === 'object' && o !== null && !Array.isArray(o)) e = fromJson(o as Record<string, unknown>);
      } catch {
        e = null;
      }
    } else {
      const m = TEXT_LOG.exec(line);
      if (m) {
        let vc: VectorClock | null = null;
        try {
          vc = vectorOf(JSON.parse(m[6]!));
        } catch {
          vc = null;
        }
        const lamport = Number(m[5]);
        const t = Date.parse(m[1]!);
        if (vc && isId(m[4]) && Number.isSafeInteger(lamport)) {
          e = { t: Number.isFinite(t) ? t : 0, node: m[4]!, lamport, vc, kind: 'local', type: logEventType(m[3]!), text: m[3]! };
        }
      }
    }
    if (e) {
      if (events.length >= TRACE_MERGE_EVENTS_MAX) throw new TraceInputError(`more than ${TRACE_MERGE_EVENTS_MAX} events`);
      events.push(e);
    } else skipped++;
  }
  return { events, skipped };
}

export interface MergeResult {
  /** Every distinct event, in an order consistent with happens-before. */
  readonly events: TraceEvent[];
  /** concurrent[i]: events[i] is concurrent with events[i - 1]. */
  readonly concurrent: boolean[];
  /** Events read more than once (left out after the first). */
  readonly duplicates: number;
  /** Cycles broken (clocks that contradict each other); 0 for a consistent trace. */
  readonly inconsistent: number;
}

/** Min-heap of event indexes by (Lamport time, node, own counter). */
class Ready {
  private readonly h: number[] = [];
  constructor(private readonly less: (a: number, b: number) => boolean) {}
  get size(): number {
    return this.h.length;
  }
  push(x: number): void {
    const h = this.h;
    h.push(x);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }
  pop(): number {
    const h = this.h;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

/** The events of all inputs on one timeline (see the top of this file). */
export function mergeTraces(inputs: readonly (readonly TraceEvent[])[]): MergeResult {
  const seen = new Set<string>();
  const ev: TraceEvent[] = [];
  let duplicates = 0;
  for (const list of inputs) {
    for (const e of list) {
      const key = `${e.node} ${e.lamport}`;
      if (seen.has(key)) {
        duplicates++;
        continue;
      }
      seen.add(key);
      ev.push(e);
    }
  }
  const own = (i: number): number => ev[i]!.vc[ev[i]!.node] ?? 0;
  // Each member's events in its own order.
  const byNode = new Map<string, number[]>();
  for (let i = 0; i < ev.length; i++) {
    const l = byNode.get(ev[i]!.node);
    if (l) l.push(i);
    else byNode.set(ev[i]!.node, [i]);
  }
  for (const l of byNode.values()) l.sort((a, b) => own(a) - own(b) || ev[a]!.lamport - ev[b]!.lamport);
  const succ: number[][] = ev.map(() => []);
  const indeg = new Array<number>(ev.length).fill(0);
  const edge = (a: number, b: number): void => {
    if (a === b) return;
    succ[a]!.push(b);
    indeg[b]!++;
  };
  for (const l of byNode.values()) for (let k = 1; k < l.length; k++) edge(l[k - 1]!, l[k]!);
  // What the vectors say: e follows the latest event of member j with own component <= e.vc[j].
  for (let i = 0; i < ev.length; i++) {
    const e = ev[i]!;
    for (const j of Object.keys(e.vc)) {
      if (j === e.node) continue;
      const l = byNode.get(j);
      const c = e.vc[j]!;
      if (!l || c <= 0) continue;
      let lo = 0;
      let hi = l.length; // first index with own > c
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (own(l[mid]!) <= c) lo = mid + 1;
        else hi = mid;
      }
      if (lo > 0) edge(l[lo - 1]!, i);
    }
  }
  // Sends before their receives.
  const sendOf = new Map<string, number>();
  for (let i = 0; i < ev.length; i++) if (ev[i]!.kind === 'send' && ev[i]!.msgId !== undefined) sendOf.set(ev[i]!.msgId!, i);
  for (let i = 0; i < ev.length; i++) {
    const e = ev[i]!;
    if (e.kind !== 'receive' || e.msgId === undefined) continue;
    const s = sendOf.get(e.msgId);
    if (s !== undefined && ev[s]!.node !== e.node) edge(s, i);
  }
  const less = (a: number, b: number): boolean => {
    const x = ev[a]!;
    const y = ev[b]!;
    if (x.lamport !== y.lamport) return x.lamport < y.lamport;
    if (x.node !== y.node) return x.node < y.node;
    return own(a) < own(b);
  };
  const ready = new Ready(less);
  for (let i = 0; i < ev.length; i++) if (indeg[i] === 0) ready.push(i);
  const done = new Array<boolean>(ev.length).fill(false);
  const order: number[] = [];
  let inconsistent = 0;
  while (order.length < ev.length) {
    if (ready.size === 0) {
      // A cycle: take the smallest remaining event.
      inconsistent++;
      let best = -1;
      for (let i = 0; i < ev.length; i++) if (!done[i] && (best < 0 || less(i, best))) best = i;
      indeg[best] = 0;
      ready.push(best);
    }
    const i = ready.pop();
    if (done[i]) continue;
    done[i] = true;
    order.push(i);
    for (const s of succ[i]!) if (!done[s] && --indeg[s]! === 0) ready.push(s);
  }
  const events = order.map((i) => ev[i]!);
  const concurrent = events.map((e, k) => k > 0 && compareClocks(events[k - 1]!.vc, e.vc) === 'concurrent');
  return { events, concurrent, duplicates, inconsistent };
}

/** One event as a line of the text timeline. */
export function formatEvent(e: TraceEvent, concurrent: boolean): string {
  const arrow = e.kind === 'send' ? ` -> ${e.peer ?? '?'}` : e.kind === 'receive' ? ` <- ${e.peer ?? '?'}` : '';
  const id = e.msgId !== undefined ? ` #${e.msgId}` : '';
  const text = e.text ? `  ${e.text.replace(/[\r\n]/g, ' ')}` : '';
  return `${String(e.lamport).padStart(8)} ${concurrent ? '||' : '  '} ${e.node.padEnd(3)} ${e.kind.padEnd(7)} ${e.type}${arrow}${id}${text}  ${JSON.stringify(e.vc)}`;
}

/** The text timeline: a header, then one line per event. */
export function formatTimeline(r: MergeResult): string {
  const lines = [`# ${r.events.length} events in happens-before order (lamport, || = concurrent with the line above, node, kind, type, peer, #msgId, text, vector clock)`];
  r.events.forEach((e, k) => lines.push(formatEvent(e, r.concurrent[k]!)));
  return `${lines.join('\n')}\n`;
}

/** ShiViz's parser regular expression for `formatShiViz` output (first line of the file). */
export const SHIVIZ_REGEX = '(?<host>\\S*) (?<clock>{.*})\\n(?<event>.*)';

/**
 * The ShiViz log format: the parser regex on the first line, an empty delimiter line, then two
 * lines per event (`host {clock}` and the event's description), in merge order. ShiViz wants
 * each host's own clock to start at 1 and grow by exactly 1 per event, and every component to
 * name an event in the log; a trace has gaps (a member's clocks start at its start time, and
 * events before its ring or log are missing), so each component is renumbered: member j's
 * component becomes how many of j's events in this trace have an own component at most that
 * value. That keeps every happens-before relation between the events shown.
 */
export function formatShiViz(r: MergeResult): string {
  const owns = new Map<string, number[]>();
  for (const e of r.events) {
    const l = owns.get(e.node);
    const v = e.vc[e.node] ?? 0;
    if (l) l.push(v);
    else owns.set(e.node, [v]);
  }
  for (const l of owns.values()) l.sort((a, b) => a - b);
  const rank = (node: string, c: number): number => {
    const l = owns.get(node);
    if (!l) return 0;
    let lo = 0;
    let hi = l.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (l[mid]! <= c) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const lines = [SHIVIZ_REGEX, ''];
  for (const e of r.events) {
    const vc: Record<string, number> = {};
    for (const j of Object.keys(e.vc).sort()) {
      const c = rank(j, e.vc[j]!);
      if (c > 0) vc[j] = c;
    }
    const peer = e.kind === 'send' ? ` to ${e.peer ?? '?'}` : e.kind === 'receive' ? ` from ${e.peer ?? '?'}` : '';
    const text = e.text ? ` ${e.text.replace(/[\r\n]/g, ' ')}` : '';
    lines.push(`${e.node} ${JSON.stringify(vc)}`);
    lines.push(`${e.kind} ${e.type}${peer}${e.msgId !== undefined ? ` #${e.msgId}` : ''} lamport ${e.lamport}${text}`);
  }
  return `${lines.join('\n')}\n`;
}
