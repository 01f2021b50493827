/**
 * The history behind the dashboard's charts (issue 16): every UI_HISTORY_INTERVAL_MS the member
 * reads its own counters and histograms (client writes and reads, leader changes, KV call
 * latency, WAL fdatasync latency) and keeps what changed during the interval, in a ring of the
 * last UI_HISTORY_SAMPLES samples. GET /ui/api/history (ui-http.ts) serves them, so a page
 * opened or reloaded draws the last minutes at once.
 *
 * Samples are taken on whole seconds of the wall clock (a few ms after), so the samples of
 * different members of one second can be added up by the page. A sample late by more than an
 * interval (a stalled event loop) covers the longer interval: its `dtMs` says so.
 */
import type { UiHistogram, UiHistogramDelta, UiHistory, UiSample } from '../ui/api.js';

/** One sample per this many ms. */
export const UI_HISTORY_INTERVAL_MS = 1_000;
/** Samples kept: 10 minutes at one per second. */
export const UI_HISTORY_SAMPLES = 600;
/** Samples are taken this long after the whole second (timers never fire early; this keeps them in their second). */
const SAMPLE_OFFSET_MS = 5;

/** The member's cumulative counters and histograms at one moment (uiCounters in ui-http.ts). */
export interface CounterReading {
  readonly reads: number;
  readonly writes: number;
  readonly leaderChanges: number;
  readonly latency: UiHistogram;
  readonly walFsync: UiHistogram;
}

export interface MetricHistoryOptions {
  readonly intervalMs?: number;
  readonly samplesMax?: number;
  /** The clock (default Date.now). */
  readonly now?: () => number;
}

const NONE: UiHistogramDelta = { counts: [], count: 0 };

/** The observations between two readings of a histogram ([] counts when none; bounds that appeared count from zero). */
function delta(now: UiHistogram, before: UiHistogram): UiHistogramDelta {
  const count = now.count - before.count;
  if (count <= 0) return NONE;
  const same = before.bounds.length === now.bounds.length;
  return { counts: now.counts.map((c, i) => c - (same ? before.counts[i]! : 0)), count };
}

export class MetricHistory {
  readonly intervalMs: number;
  readonly samplesMax: number;
  private readonly now: () => number;
  private readonly ring: UiSample[] = [];
  private prev: { t: number; r: CounterReading } | null = null;
  private latencyBounds: readonly number[] = [];
  private walFsyncBounds: readonly number[] = [];
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly read: () => Promise<CounterReading>,
    o: MetricHistoryOptions = {},
  ) {
    this.intervalMs = o.intervalMs ?? UI_HISTORY_INTERVAL_MS;
    this.samplesMax = o.samplesMax ?? UI_HISTORY_SAMPLES;
    if (!Number.isInteger(this.intervalMs) || this.intervalMs < 1) throw new RangeError(`history interval ${this.intervalMs} ms must be a positive integer`);
    if (!Number.isInteger(this.samplesMax) || this.samplesMax < 1) throw new RangeError(`history size ${this.samplesMax} must be a positive integer`);
    this.now = o.now ?? Date.now;
  }

  /** Reads the counters; from the second reading on, each adds a sample (the oldest beyond samplesMax is dropped). */
  async sample(): Promise<void> {
    const r = await this.read();
    const t = this.now();
    const p = this.prev;
    this.prev = { t, r };
    if (r.latency.bounds.length > 0) this.latencyBounds = r.latency.bounds;
    if (r.walFsync.bounds.length > 0) this.walFsyncBounds = r.walFsync.bounds;
    if (!p || t <= p.t) return;
    this.ring.push({
      t,
      dtMs: t - p.t,
      writes: Math.max(0, r.writes - p.r.writes),
      reads: Math.max(0, r.reads - p.r.reads),
      leaderChanges: Math.max(0, r.leaderChanges - p.r.leaderChanges),
      latency: delta(r.latency, p.r.latency),
      walFsync: delta(r.walFsync, p.r.walFsync),
    });
    if (this.ring.length > this.samplesMax) this.ring.splice(0, this.ring.length - this.samplesMax);
  }

  /** Samples every interval, on the wall clock's whole intervals, until stop(). */
  start(): void {
    if (this.timer || this.stopped) return;
    const next = (): void => {
      const wait = this.intervalMs - (this.now() % this.intervalMs) + SAMPLE_OFFSET_MS;
      this.timer = setTimeout(() => {
        this.sample().then(
          () => !this.stopped && next(),
          () => !this.stopped && next(), // a failed reading leaves a gap, not a stop
        );
      }, wait);
      this.timer.unref();
    };
    next();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** The samples that ended after `sinceMs`, oldest first. */
  since(sinceMs: number): UiHistory {
    let i = this.ring.length;
    while (i > 0 && this.ring[i - 1]!.t > sinceMs) i--;
    return {
      now: this.now(),
      intervalMs: this.intervalMs,
      samplesMax: this.samplesMax,
      latencyBounds: this.latencyBounds,
      walFsyncBounds: this.walFsyncBounds,
      samples: this.ring.slice(i),
    };
  }
}
