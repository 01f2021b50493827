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
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        let mv = last;
        if (l < h.length && before(h[l]!, mv)) {
          m = l;
          mv = h[l]!;
        }
        if (r < h.length && before(h[r]!, mv)) {
          m = r;
          mv = h[r]!;
        }
        if (m === i) break;
        h[i] = mv;
        i = m;
      }
      h[i] = last;
    }
    return top;
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}
