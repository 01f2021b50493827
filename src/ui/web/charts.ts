/**
 * Live charts (uPlot): writes/s and reads/s summed over the members that answer, p50/p99 of
 * client call latency and of WAL fdatasync (the members' histograms added up per second), and
 * the leader changes the serving member saw. Drawn from the samples each member keeps (GET
 * /ui/api/history, chart-data.ts): a page opened or reloaded shows the last minutes at once;
 * each cluster poll then asks every member for its samples since the last one it gave.
 */
import uPlot from 'uplot';
import { ChartData } from './chart-data.js';
import type { ClusterView } from './cluster.js';
import { byId } from './dom.js';
import { memberHistory } from './gateway.js';

const data = new ChartData();
/** Members whose history call is under way (one at a time each: a slow member is not asked twice). */
const asking = new Set<string>();
let plots: uPlot[] = [];

/** Asks every member that answers for its newer samples, and redraws as each answers. */
export function refreshCharts(v: ClusterView): void {
  for (const m of v.members) {
    if (!m.status || asking.has(m.id)) continue;
    asking.add(m.id);
    memberHistory(m.base, data.sinceOf(m.id)).then(
      (h) => {
        data.add(m.id, h, m.base === '');
        redraw();
      },
      () => undefined, // unreachable for now: the cluster page says so; its samples come next time
    ).finally(() => asking.delete(m.id));
  }
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
  const d = data.series();
  const [ops, lat, fs, lc] = plots;
  ops!.setData([d.t, d.writes, d.reads]);
  lat!.setData([d.t, d.latP50, d.latP99]);
  fs!.setData([d.t, d.fsyncP50, d.fsyncP99]);
  lc!.setData([d.t, d.leaderChanges]);
  // What the charts hold, for people reading the page's HTML and for the browser test.
  const el = byId('charts');
  el.dataset['points'] = String(d.t.length);
  el.dataset['firstT'] = String(d.t[0] ?? '');
  el.dataset['writes'] = String(d.writes.reduce((a, b) => a + b, 0));
}

/** Charts drawn while hidden have no width: resize them when their tab shows. */
export function resizeCharts(): void {
  for (const p of plots) {
    const w = p.root.parentElement?.clientWidth ?? 0;
    if (w > 0) p.setSize({ width: w, height: 200 });
  }
}
