/**
 * Live charts (uPlot): writes/s and reads/s summed over the members that answer, p50/p99 of
 * client call latency and of WAL fdatasync (from the members' histograms, bucket deltas between
 * two polls), and the leader changes the serving member saw. Kept for CHART_WINDOW_S in the page.
 */
import uPlot from 'uplot';
import type { UiHistogram, UiStatus } from '../api.js';
import type { ClusterView } from './cluster.js';
import { byId } from './dom.js';
import { quantileOfDelta } from './histogram.js';

/** Seconds of history the charts keep (one point per cluster poll). */
export const CHART_WINDOW_S = 300;

interface Series {
  t: number[];
  writes: number[];
  reads: number[];
  latP50: (number | null)[];
  latP99: (number | null)[];
  fsyncP50: (number | null)[];
  fsyncP99: (number | null)[];
  leaderChanges: number[];
}

const data: Series = { t: [], writes: [], reads: [], latP50: [], latP99: [], fsyncP50: [], fsyncP99: [], leaderChanges: [] };
const prev = new Map<string, UiStatus>();
let prevLeaderChanges = 0;
let plots: uPlot[] = [];

function mergeDelta(hs: { now: UiHistogram; before: UiHistogram | undefined }[]): { now: UiHistogram; before: UiHistogram } | null {
  const bounds = hs.find((x) => x.now.bounds.length > 0)?.now.bounds;
  if (!bounds) return null;
  const nowC = bounds.map(() => 0);
  const befC = bounds.map(() => 0);
  let nowN = 0;
  let befN = 0;
  for (const x of hs) {
    if (x.now.bounds.length !== bounds.length) continue;
    x.now.counts.forEach((c, i) => (nowC[i]! += c));
    x.before?.counts.forEach((c, i) => (befC[i]! += c));
    nowN += x.now.count;
    befN += x.before?.count ?? 0;
  }
  return { now: { bounds, counts: nowC, count: nowN }, before: { bounds, counts: befC, count: befN } };
}

export function addSample(v: ClusterView): void {
  const t = Date.now() / 1000;
  let writes = 0;
  let reads = 0;
  const lat: { now: UiHistogram; before: UiHistogram | undefined }[] = [];
  const fsync: { now: UiHistogram; before: UiHistogram | undefined }[] = [];
  let any = false;
  for (const m of v.members) {
    const s = m.status;
    if (!s) continue;
    const p = prev.get(s.id);
    prev.set(s.id, s);
    // A member seen for the first time, or restarted (counters went back): no rate yet.
    if (!p || s.counters.writes < p.counters.writes || s.now <= p.now) continue;
    const dt = (s.now - p.now) / 1000;
    writes += (s.counters.writes - p.counters.writes) / dt;
    reads += (s.counters.reads - p.counters.reads) / dt;
    lat.push({ now: s.latency, before: p.latency });
    fsync.push({ now: s.walFsync, before: p.walFsync });
    any = true;
  }
  const self = v.self;
  if (!any) {
    if (self) prevLeaderChanges = self.counters.leaderChanges;
    return;
  }
  const l = mergeDelta(lat);
  const f = mergeDelta(fsync);
  const ms = (x: number | null): number | null => (x === null ? null : x * 1000);
  data.t.push(t);
  data.writes.push(writes);
  data.reads.push(reads);
  data.latP50.push(ms(l ? quantileOfDelta(l.now, l.before, 0.5) : null));
  data.latP99.push(ms(l ? quantileOfDelta(l.now, l.before, 0.99) : null));
  data.fsyncP50.push(ms(f ? quantileOfDelta(f.now, f.before, 0.5) : null));
  data.fsyncP99.push(ms(f ? quantileOfDelta(f.now, f.before, 0.99) : null));
  const lc = self ? self.counters.leaderChanges : prevLeaderChanges;
  data.leaderChanges.push(Math.max(0, lc - prevLeaderChanges));
  prevLeaderChanges = lc;
  while (data.t.length > 0 && data.t[0]! < t - CHART_WINDOW_S) for (const k of Object.keys(data) as (keyof Series)[]) data[k].shift();
  redraw();
}

function make(el: HTMLElement, title: string, series: { label: string; stroke: string; unit: string }[], bars = false): uPlot {
  const opts: uPlot.Options = {
    title,
    width: Math.max(300, el.clientWidth || 560),
    height: 200,
    series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.stroke, width: 2, spanGaps: true, value: (_u: uPlot, v: number | null) => (v === null ? '—' : `${v.toFixed(2)} ${s.unit}`), ...(bars ? { paths: uPlot.paths.bars!({ size: [0.6, 8] }), fill: s.stroke } : {}) }))],
    axes: [{}, { size: 60 }],
    scales: { y: { range: (_u, min, max) => [0, Math.max(max, min + 1)] } },
  };
  return new uPlot(opts, [[], ...series.map(() => [])], el);
}

export function initCharts(): void {
  plots = [
    make(byId('chart-ops'), 'Client calls per second (all members)', [
      { label: 'writes/s', stroke: '#d9480f', unit: '/s' },
      { label: 'reads/s', stroke: '#1971c2', unit: '/s' },
    ]),
    make(byId('chart-latency'), 'KV call latency, ms', [
      { label: 'p50', stroke: '#2f9e44', unit: 'ms' },
      { label: 'p99', stroke: '#e03131', unit: 'ms' },
    ]),
    make(byId('chart-fsync'), 'WAL fdatasync latency, ms', [
      { label: 'p50', stroke: '#6741d9', unit: 'ms' },
      { label: 'p99', stroke: '#c2255c', unit: 'ms' },
    ]),
    make(byId('chart-leader'), 'Leader changes seen by this member', [{ label: 'changes', stroke: '#f08c00', unit: '' }], true),
  ];
}

function redraw(): void {
  if (plots.length === 0) return;
  const [ops, lat, fs, lc] = plots;
  ops!.setData([data.t, data.writes, data.reads]);
  lat!.setData([data.t, data.latP50, data.latP99]);
  fs!.setData([data.t, data.fsyncP50, data.fsyncP99]);
  lc!.setData([data.t, data.leaderChanges]);
}

/** Charts drawn while hidden have no width: resize them when their tab shows. */
export function resizeCharts(): void {
  for (const p of plots) {
    const w = p.root.parentElement?.clientWidth ?? 0;
    if (w > 0) p.setSize({ width: w, height: 200 });
  }
}
