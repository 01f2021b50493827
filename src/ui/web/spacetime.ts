/**
 * The space-time diagram (issue 16 item 4): members as horizontal lines, events as dots,
 * messages as arrows from send to receive coloured by kind; x is the Lamport clock (every
 * arrow points right) or the recorded time. A trace comes from a file (TraceEvent JSON lines:
 * `flotilla sim --trace`, or the members' trace rings) dropped or chosen on the page, or live
 * from the members' GET /debug/trace. Click an event: its causal past and future (by vector
 * clock) are highlighted; shift-click a second one: "before", "after" or "concurrent".
 */
import type { TraceEvent } from '../../trace/event.js';
import { TRACE_PATH } from '../api.js';
import { causalSets, messageFamily, pairMessages, parseTrace, relation, TRACE_CHARS_MAX, TRACE_EVENTS_MAX } from './causal.js';
import { clusterView } from './cluster.js';
import { byId } from './dom.js';
import { authToken } from './gateway.js';

/** Live mode keeps the events of the last LIVE_WINDOW_MS. */
export const LIVE_WINDOW_MS = 30_000;
export const LIVE_POLL_MS = 1_000;
/** Widest diagram drawn, px (beyond it events are squeezed). */
const WIDTH_MAX_PX = 60_000;

const SVG = 'http://www.w3.org/2000/svg';
const COLOURS: Record<string, string> = { append: '#1971c2', heartbeat: '#adb5bd', vote: '#e8590c', snapshot: '#7048e8', timeoutNow: '#c2255c', readIndex: '#2f9e44', other: '#495057' };

let events: TraceEvent[] = [];
let primary: number | null = null;
let secondary: number | null = null;
let xMode: 'lamport' | 'time' = 'lamport';
let live: { timer: ReturnType<typeof setTimeout> | null; since: Map<string, number>; seen: Set<string> } | null = null;

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, ...children: (SVGElement | string)[]): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c);
  return el;
}

function describe(e: TraceEvent, i: number): string {
  const clock = Object.entries(e.vc)
    .map(([k, v]) => `${k}:${v}`)
    .join(' ');
  const what = e.kind === 'local' ? e.type : `${e.kind} ${e.type} ${e.kind === 'send' ? 'to' : 'from'} ${e.peer ?? '?'}`;
  return `#${i} at ${e.node}: ${what}${e.text ? ` (${e.text})` : ''}; lamport ${e.lamport}; vc {${clock}}; t ${e.t}`;
}

/** Shows `list` (a loaded file, or the live window). */
export function setEvents(list: TraceEvent[], note: string): void {
  events = list;
  primary = null;
  secondary = null;
  byId('st-note').textContent = note;
  render();
}

function render(): void {
  const nodes = [...new Set(events.map((e) => e.node))].sort();
  const row = new Map(nodes.map((n, i) => [n, i]));
  const left = 90;
  const top = 30;
  const gap = 70;
  let x: (e: TraceEvent) => number;
  let width: number;
  if (xMode === 'lamport') {
    const ranks = [...new Set(events.map((e) => e.lamport))].sort((a, b) => a - b);
    const rank = new Map(ranks.map((l, i) => [l, i]));
    const step = Math.max(2, Math.min(18, WIDTH_MAX_PX / Math.max(1, ranks.length)));
    x = (e) => left + 10 + rank.get(e.lamport)! * step;
    width = left + 40 + ranks.length * step;
  } else {
    const t0 = Math.min(...events.map((e) => e.t));
    const t1 = Math.max(...events.map((e) => e.t));
    width = Math.min(WIDTH_MAX_PX, Math.max(900, events.length * 6));
    x = (e) => left + 10 + ((e.t - t0) / Math.max(1e-9, t1 - t0)) * (width - left - 40);
  }
  width = Math.max(width, 600);
  const height = top + Math.max(1, nodes.length) * gap;
  const y = (e: TraceEvent): number => top + row.get(e.node)! * gap;
  const root = svg('svg', { id: 'st-svg', width, height, viewBox: `0 0 ${width} ${height}` });
  const defs = svg('defs', {});
  for (const [fam, colour] of Object.entries(COLOURS)) {
    defs.append(svg('marker', { id: `arrow-${fam}`, viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 6, markerHeight: 6, orient: 'auto-start-reverse' }, svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: colour })));
  }
  root.append(defs);
  nodes.forEach((n, i) => {
    root.append(svg('text', { x: 8, y: top + i * gap + 4, class: 'st-label' }, n));
    root.append(svg('line', { x1: left, y1: top + i * gap, x2: width - 10, y2: top + i * gap, class: 'st-line' }));
  });
  for (const m of pairMessages(events)) {
    const a = events[m.send]!;
    const b = events[m.receive]!;
    const fam = messageFamily(m.type);
    const line = svg('line', { x1: x(a), y1: y(a), x2: x(b), y2: y(b), stroke: COLOURS[fam]!, class: `msg msg-${fam}`, 'marker-end': `url(#arrow-${fam})`, 'data-send': m.send, 'data-receive': m.receive });
    line.append(svg('title', {}, `${m.type}: ${a.node} → ${b.node}`));
    root.append(line);
  }
  events.forEach((e, i) => {
    const fam = e.kind === 'local' ? 'local' : messageFamily(e.type);
    const c = svg('circle', { cx: x(e), cy: y(e), r: 5, class: `ev ev-${e.kind}`, fill: e.kind === 'local' ? '#212529' : COLOURS[fam]!, 'data-i': i, 'data-node': e.node, 'data-lamport': e.lamport });
    c.append(svg('title', {}, describe(e, i)));
    root.append(c);
  });
  byId('st-canvas').replaceChildren(root);
  byId('st-count').textContent = `${events.length} events, ${nodes.length} members`;
  highlight();
}

function highlight(): void {
  const circles = byId('st-canvas').querySelectorAll<SVGCircleElement>('circle.ev');
  const sets = primary !== null ? causalSets(events, primary) : null;
  circles.forEach((c) => {
    const i = Number(c.getAttribute('data-i'));
    c.classList.toggle('sel', i === primary);
    c.classList.toggle('sel2', i === secondary);
    c.classList.toggle('past', sets?.past.has(i) ?? false);
    c.classList.toggle('future', sets?.future.has(i) ?? false);
    c.classList.toggle('dimmed', sets !== null && i !== primary && !sets.past.has(i) && !sets.future.has(i));
  });
  byId('st-canvas').classList.toggle('selecting', sets !== null);
  const rel = byId('st-relation');
  const info = byId('st-info');
  if (primary === null) {
    info.textContent = 'Click an event: its causal past turns blue, its future orange, the concurrent events fade. Shift-click a second event to compare the two.';
    rel.textContent = '';
    rel.removeAttribute('data-rel');
    return;
  }
  info.textContent = `${describe(events[primary]!, primary)} — ${sets!.past.size} events before it, ${sets!.future.size} after it, ${events.length - 1 - sets!.past.size - sets!.future.size} concurrent.`;
  if (secondary === null) {
    rel.textContent = '';
    rel.removeAttribute('data-rel');
    return;
  }
  const r = relation(events[primary]!.vc, events[secondary]!.vc);
  rel.setAttribute('data-rel', r);
  rel.textContent = r === 'equal' ? `#${primary} and #${secondary} have equal clocks` : `#${primary} is ${r === 'concurrent' ? 'concurrent with' : `${r}`} #${secondary}`;
}

async function loadFile(f: File): Promise<void> {
  stopLive();
  // Never more than TRACE_CHARS_MAX bytes of the file in memory.
  const big = f.size > TRACE_CHARS_MAX;
  const p = parseTrace(await (big ? f.slice(0, TRACE_CHARS_MAX) : f).text());
  const notes = [`${f.name}: ${p.events.length} events`];
  if (p.truncated || big) notes.push(`cut at ${p.events.length} events (at most ${TRACE_EVENTS_MAX} events and ${TRACE_CHARS_MAX / 1024 / 1024} MiB are read)`);
  if (p.refused) notes.push(`${p.refused} lines refused (${p.reasons.join('; ')})`);
  setEvents(p.events, notes.join('; '));
}

function stopLive(): void {
  if (live?.timer) clearTimeout(live.timer);
  live = null;
  byId('st-live').textContent = 'Live';
}

async function pollLive(): Promise<void> {
  if (!live) return;
  const state = live;
  const members = clusterView().members;
  let missing = 0;
  let reached = 0;
  const fresh: TraceEvent[] = [];
  await Promise.all(
    members.map(async (m) => {
      const since = state.since.get(m.id) ?? 0;
      const headers: Record<string, string> = {};
      const t = authToken();
      if (t) headers['authorization'] = t;
      try {
        const r = await fetch(`${m.base}${TRACE_PATH}?since=${since}`, { headers, signal: AbortSignal.timeout(2000) });
        if (r.status === 404) {
          missing++;
          return;
        }
        if (!r.ok) return;
        reached++;
        const p = parseTrace(await r.text());
        for (const e of p.events) {
          if (e.lamport > (state.since.get(m.id) ?? 0)) state.since.set(m.id, e.lamport);
          const key = `${e.node}|${e.lamport}|${e.kind}|${e.msgId ?? ''}|${e.type}`;
          if (state.seen.has(key)) continue;
          state.seen.add(key);
          fresh.push(e);
        }
      } catch {
        // a member that does not answer: its events come when it does
      }
    }),
  );
  if (live !== state) return;
  if (reached === 0 && missing > 0) {
    stopLive();
    byId('st-note').textContent = `No member serves ${TRACE_PATH} (it comes with the logical clocks on peer messages, issue 16 item 2). Load a trace file instead: flotilla sim --seed S --trace FILE.`;
    return;
  }
  const cutoff = Date.now() - LIVE_WINDOW_MS;
  let list = events.concat(fresh).filter((e) => e.t >= cutoff);
  list.sort((a, b) => a.lamport - b.lamport);
  if (list.length > TRACE_EVENTS_MAX) list = list.slice(list.length - TRACE_EVENTS_MAX);
  if (state.seen.size > 4 * TRACE_EVENTS_MAX) state.seen = new Set(list.map((e) => `${e.node}|${e.lamport}|${e.kind}|${e.msgId ?? ''}|${e.type}`));
  const keepSel = primary !== null ? events[primary] : undefined;
  events = list;
  primary = keepSel ? Math.max(-1, events.indexOf(keepSel)) : null;
  if (primary === -1) primary = null;
  secondary = null;
  byId('st-note').textContent = `live: the last ${LIVE_WINDOW_MS / 1000} s from ${reached} members`;
  render();
  state.timer = setTimeout(() => void pollLive(), LIVE_POLL_MS);
}

export function initSpacetime(): void {
  const input = byId<HTMLInputElement>('trace-file');
  input.addEventListener('change', () => {
    const f = input.files?.[0];
    if (f) void loadFile(f);
  });
  const drop = byId('st-drop');
  drop.addEventListener('dragover', (ev) => {
    ev.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev) => {
    ev.preventDefault();
    drop.classList.remove('over');
    const f = ev.dataTransfer?.files?.[0];
    if (f) void loadFile(f);
  });
  byId('st-live').addEventListener('click', () => {
    if (live) return stopLive();
    live = { timer: null, since: new Map(), seen: new Set() };
    byId('st-live').textContent = 'Stop live';
    setEvents([], 'live: asking the members…');
    void pollLive();
  });
  byId<HTMLSelectElement>('st-x').addEventListener('change', (ev) => {
    xMode = (ev.target as HTMLSelectElement).value === 'time' ? 'time' : 'lamport';
    render();
  });
  byId('st-canvas').addEventListener('click', (ev) => {
    const c = (ev.target as Element).closest('circle.ev');
    if (!c) {
      primary = null;
      secondary = null;
      return highlight();
    }
    const i = Number(c.getAttribute('data-i'));
    if (ev.shiftKey && primary !== null && i !== primary) secondary = i;
    else {
      primary = i;
      secondary = null;
    }
    highlight();
  });
  render();
}
