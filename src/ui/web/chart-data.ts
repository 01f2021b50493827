/**
 * The charts' data (pure: unit-tested in node): the members' history samples (GET
 * /ui/api/history, one per member per second) added up per second — writes/s and reads/s over
 * all members, latency quantiles from the sum of their histograms — and the leader changes the
 * serving member saw. Each member's samples are taken once (a cursor per member: the next call
 * asks only for newer ones), and seconds older than CHART_WINDOW_S before the newest are dropped.
 */
import type { UiHistogramDelta, UiHistory } from '../api.js';
import { quantileOfDelta } from './histogram.js';

/** Seconds the charts show: what a member keeps (UI_HISTORY_SAMPLES at one per second). */
export const CHART_WINDOW_S = 600;

interface Second {
  writes: number;
  reads: number;
  lat: number[] | null;
  latN: number;
  fsync: number[] | null;
  fsyncN: number;
  leaderChanges: number;
}

export interface ChartSeries {
  readonly t: number[];
  readonly writes: number[];
  readonly reads: number[];
  readonly latP50: (number | null)[];
  readonly latP99: (number | null)[];
  readonly fsyncP50: (number | null)[];
  readonly fsyncP99: (number | null)[];
  readonly leaderChanges: number[];
}

function addInto(into: number[] | null, d: UiHistogramDelta, bounds: readonly number[]): number[] | null {
  if (d.count <= 0 || d.counts.length !== bounds.length || bounds.length === 0) return into;
  const out = into ?? bounds.map(() => 0);
  d.counts.forEach((c, i) => (out[i]! += c));
  return out;
}

export class ChartData {
  private readonly seconds = new Map<number, Second>();
  private readonly cursor = new Map<string, number>();
  private latencyBounds: readonly number[] = [];
  private walFsyncBounds: readonly number[] = [];

  /** Where member `key`'s next history call starts (ms; 0: everything it keeps). */
  sinceOf(key: string): number {
    return this.cursor.get(key) ?? 0;
  }

  /** Adds the samples of member `key` newer than its cursor; `self`: the serving member (its leader changes are charted). */
  add(key: string, h: UiHistory, self: boolean): void {
    if (h.latencyBounds.length > 0) this.latencyBounds = h.latencyBounds;
    if (h.walFsyncBounds.length > 0) this.walFsyncBounds = h.walFsyncBounds;
    let last = this.sinceOf(key);
    for (const s of h.samples) {
      if (!(s.t > last) || !(s.dtMs > 0)) continue;
      last = s.t;
      const sec = Math.floor(s.t / 1000);
      let x = this.seconds.get(sec);
      if (!x) this.seconds.set(sec, (x = { writes: 0, reads: 0, lat: null, latN: 0, fsync: null, fsyncN: 0, leaderChanges: 0 }));
      const dt = s.dtMs / 1000;
      x.writes += s.writes / dt;
      x.reads += s.reads / dt;
      if (h.latencyBounds.length === this.latencyBounds.length) {
        x.lat = addInto(x.lat, s.latency, this.latencyBounds);
        if (s.latency.counts.length === this.latencyBounds.length) x.latN += s.latency.count;
      }
      if (h.walFsyncBounds.length === this.walFsyncBounds.length) {
        x.fsync = addInto(x.fsync, s.walFsync, this.walFsyncBounds);
        if (s.walFsync.counts.length === this.walFsyncBounds.length) x.fsyncN += s.walFsync.count;
      }
      if (self) x.leaderChanges += s.leaderChanges;
    }
    this.cursor.set(key, last);
    let newest = -Infinity;
    for (const k of this.seconds.keys()) newest = Math.max(newest, k);
    for (const k of [...this.seconds.keys()]) if (k < newest - CHART_WINDOW_S) this.seconds.delete(k);
  }

  /** The charts' series, one point per second that has a sample, oldest first (t in seconds). */
  series(): ChartSeries {
    const out: ChartSeries = { t: [], writes: [], reads: [], latP50: [], latP99: [], fsyncP50: [], fsyncP99: [], leaderChanges: [] };
    const q = (counts: number[] | null, n: number, bounds: readonly number[], p: number): number | null =>
      counts && n > 0 ? (quantileOfDelta({ bounds, counts, count: n }, undefined, p) ?? 0) * 1000 : null;
    for (const sec of [...this.seconds.keys()].sort((a, b) => a - b)) {
      const x = this.seconds.get(sec)!;
      out.t.push(sec);
      out.writes.push(x.writes);
      out.reads.push(x.reads);
      out.latP50.push(q(x.lat, x.latN, this.latencyBounds, 0.5));
      out.latP99.push(q(x.lat, x.latN, this.latencyBounds, 0.99));
      out.fsyncP50.push(q(x.fsync, x.fsyncN, this.walFsyncBounds, 0.5));
      out.fsyncP99.push(q(x.fsync, x.fsyncN, this.walFsyncBounds, 0.99));
      out.leaderChanges.push(x.leaderChanges);
    }
    return out;
  }
}
