/**
 * The range permission check of etcd's auth (auth/range_perm_cache.go): a user's permissions,
 * merged over its roles, are sets of half-open key intervals; a request is permitted when the
 * interval it touches is covered entirely by the union of the user's intervals of that kind.
 *
 * Intervals: a permission on one key (empty range end) is [key, key\0) — exactly that key; a
 * range end of "\0" means every key from `key` on, [key, +inf); otherwise [key, rangeEnd).
 * A request is read the same way. Pure and total; tested against a naive model (every key of a
 * small alphabet) in range-perms.test.ts.
 */

/** [begin, end); end null = no upper bound. */
export interface KeyInterval {
  readonly begin: Uint8Array;
  readonly end: Uint8Array | null;
}

const cmp = (a: Uint8Array, b: Uint8Array): number => Buffer.compare(a, b);

/** end vs end, null = +inf. */
function cmpEnd(a: Uint8Array | null, b: Uint8Array | null): number {
  if (a === null) return b === null ? 0 : 1;
  if (b === null) return -1;
  return cmp(a, b);
}

/** key + "\0": the smallest key above `key`. */
function successor(key: Uint8Array): Uint8Array {
  const out = new Uint8Array(key.length + 1);
  out.set(key);
  return out;
}

/** The interval a permission or a request (key, rangeEnd) names, as etcd reads it. */
export function intervalOf(key: Uint8Array, rangeEnd: Uint8Array): KeyInterval {
  if (rangeEnd.length === 0) return { begin: key, end: successor(key) };
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return { begin: key, end: null };
  return { begin: key, end: rangeEnd };
}

/**
 * The union of intervals as disjoint, sorted, non-adjacent intervals (empty ones dropped).
 * Two intervals merge when they overlap or touch: a gap [a, b) with a < b always holds the key
 * a, so what does not merge leaves a real key uncovered.
 */
export function mergeIntervals(list: readonly KeyInterval[]): KeyInterval[] {
  const live = list.filter((i) => i.end === null || cmp(i.begin, i.end) < 0);
  live.sort((a, b) => cmp(a.begin, b.begin));
  const out: { begin: Uint8Array; end: Uint8Array | null }[] = [];
  for (const i of live) {
    const last = out.at(-1);
    if (last && (last.end === null || cmp(i.begin, last.end) <= 0)) {
      if (cmpEnd(i.end, last.end) > 0) last.end = i.end;
    } else out.push({ begin: i.begin, end: i.end });
  }
  return out;
}

/**
 * Whether merged intervals (mergeIntervals' output) cover the request interval entirely. An
 * empty request interval (an end at or below its key) is refused: etcd's interval tree has no
 * defined answer for it, and refusing cannot leak anything.
 */
export function covers(merged: readonly KeyInterval[], req: KeyInterval): boolean {
  if (req.end !== null && cmp(req.begin, req.end) >= 0) return false;
  // The one merged interval that starts at or below req.begin (they are disjoint and sorted).
  let lo = 0;
  let hi = merged.length - 1;
  let at = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (cmp(merged[mid]!.begin, req.begin) <= 0) {
      at = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  if (at < 0) return false;
  return cmpEnd(merged[at]!.end, req.end) >= 0;
}
