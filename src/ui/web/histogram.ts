/** Quantiles from Prometheus histograms, for the charts (pure: unit-tested in node). */
import type { UiHistogram } from '../api.js';

/** The q-quantile of the observations between two cumulative histograms (Prometheus' histogram_quantile), null when none. */
export function quantileOfDelta(now: UiHistogram, before: UiHistogram | undefined, q: number): number | null {
  const counts = now.counts.map((c, i) => c - (before?.counts[i] ?? 0));
  const total = now.count - (before?.count ?? 0);
  if (total <= 0) return null;
  const rank = q * total;
  let lastBound = 0;
  let lastCount = 0;
  for (let i = 0; i < now.bounds.length; i++) {
    const c = counts[i]!;
    if (c >= rank) {
      const inBucket = c - lastCount;
      return inBucket <= 0 ? now.bounds[i]! : lastBound + ((now.bounds[i]! - lastBound) * (rank - lastCount)) / inBucket;
    }
    lastBound = now.bounds[i]!;
    lastCount = c;
  }
  // Beyond the last finite bucket: its bound is all we know.
  return lastBound;
}
