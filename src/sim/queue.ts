/**
 * The simulator's agenda: events ordered by virtual time, ties broken by insertion order so a
 * run is a pure function of its seed.
 */
/**
 * A line of the failure trace: the text, or a function that builds it, called only if the line
 * is ever shown (most runs pass, and a message's description per delivery is not free). The
 * function must build the same text whenever it is called: it reads only values that never
 * change (a message, captured copies of mutable fields).
 */
export type TraceLine = string | (() => string);

export interface SimEvent {
  readonly time: number;
  readonly seq: number;
  /** Shown in failure traces ('': not shown). */
  readonly label: TraceLine;
  readonly run: () => void;
}

export class EventQueue {
  private heap: SimEvent[] = [];
  private seq = 0;

  get size(): number {
    return this.heap.length;
  }

  push(time: number, label: TraceLine, run: () => void): void {
    const ev: SimEvent = { time, seq: this.seq++, label, run };
    const h = this.heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(ev, h[p]!)) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = ev;
  }

  peekTime(): number {
    return this.heap.length > 0 ? this.heap[0]!.time : Infinity;
  }

  pop(): SimEvent | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    const n = h.length;
    if (n === 0) return top;
    // Bottom-up (Floyd): move the hole at the root down along the earlier child to a leaf, then
    // sift `last` up from there. `last` came from the bottom, so it seldom rises far: about half
    // the comparisons of sifting it down from the root. Keys are unique (seq), so the order of
    // pops is the same whatever the heap's shape.
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const c = l + 1 < n && before(h[l + 1]!, h[l]!) ? l + 1 : l;
      h[i] = h[c]!;
      i = c;
    }
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(last, h[p]!)) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = last;
    return top;
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}
