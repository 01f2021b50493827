import { describe, expect, it } from 'vitest';
import type { UiHistogram } from '../ui/api.js';
import { MetricHistory, UI_HISTORY_INTERVAL_MS, UI_HISTORY_SAMPLES, type CounterReading } from './ui-history.js';

const hist = (counts: number[], count: number, bounds = [0.001, 0.01, 0.1]): UiHistogram => ({ bounds: counts.length ? bounds : [], counts, count });

/** A member's counters that a test moves by hand, read by a MetricHistory on a hand-moved clock. */
function fixture(samplesMax?: number) {
  let t = 1_000_000;
  const r: { reads: number; writes: number; leaderChanges: number; latency: UiHistogram; walFsync: UiHistogram } = { reads: 0, writes: 0, leaderChanges: 0, latency: hist([], 0), walFsync: hist([], 0) };
  const h = new MetricHistory(async (): Promise<CounterReading> => ({ ...r }), { now: () => t, ...(samplesMax ? { samplesMax } : {}) });
  return { h, r, tick: (ms = 1000) => (t += ms), at: () => t };
}

describe('MetricHistory (the charts\' samples)', () => {
  it('keeps what changed in each interval, from the second reading on', async () => {
    const f = fixture();
    await f.h.sample();
    expect(f.h.since(0).samples).toEqual([]);
    f.r.writes = 7;
    f.r.reads = 30;
    f.r.latency = hist([2, 6, 7], 7);
    f.r.walFsync = hist([1, 1, 1], 1);
    f.tick(1000);
    await f.h.sample();
    f.r.writes = 10;
    f.r.leaderChanges = 1;
    f.r.latency = hist([2, 8, 10], 10);
    f.tick(2500); // a late sample covers the longer interval
    await f.h.sample();
    const got = f.h.since(0);
    expect(got.latencyBounds).toEqual([0.001, 0.01, 0.1]);
    expect(got.intervalMs).toBe(UI_HISTORY_INTERVAL_MS);
    expect(got.samplesMax).toBe(UI_HISTORY_SAMPLES);
    expect(got.samples).toEqual([
      // The histograms appeared during the first interval: their counts are all new.
      { t: 1_001_000, dtMs: 1000, writes: 7, reads: 30, leaderChanges: 0, latency: { counts: [2, 6, 7], count: 7 }, walFsync: { counts: [1, 1, 1], count: 1 } },
      { t: 1_003_500, dtMs: 2500, writes: 3, reads: 0, leaderChanges: 1, latency: { counts: [0, 2, 3], count: 3 }, walFsync: { counts: [], count: 0 } },
    ]);
    expect(f.h.since(1_001_000).samples.map((s) => s.t)).toEqual([1_003_500]);
    expect(f.h.since(1_003_500).samples).toEqual([]);
  });

  it('keeps at most samplesMax samples, the newest', async () => {
    const f = fixture(5);
    for (let i = 0; i <= 12; i++) {
      f.r.writes = i * i;
      await f.h.sample();
      f.tick();
    }
    const s = f.h.since(0).samples;
    expect(s).toHaveLength(5);
    expect(s.map((x) => x.writes)).toEqual([8, 9, 10, 11, 12].map((i) => i * i - (i - 1) * (i - 1)));
  });

  it('refuses sizes that are not positive integers', () => {
    const read = async (): Promise<CounterReading> => ({ reads: 0, writes: 0, leaderChanges: 0, latency: hist([], 0), walFsync: hist([], 0) });
    expect(() => new MetricHistory(read, { samplesMax: 0 })).toThrow(RangeError);
    expect(() => new MetricHistory(read, { intervalMs: 0.5 })).toThrow(RangeError);
  });

  it('samples on its own once started, until stopped', async () => {
    let reads = 0;
    const h = new MetricHistory(async () => ({ reads: reads++, writes: 0, leaderChanges: 0, latency: hist([], 0), walFsync: hist([], 0) }), { intervalMs: 20 });
    h.start();
    const deadline = Date.now() + 10_000;
    while (h.since(0).samples.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    h.stop();
    const s = h.since(0).samples;
    expect(s.length).toBeGreaterThanOrEqual(2);
    expect(s.every((x) => x.reads === 1 && x.dtMs > 0)).toBe(true);
    const n = reads;
    await new Promise((r) => setTimeout(r, 100));
    expect(reads).toBe(n);
  });
});
