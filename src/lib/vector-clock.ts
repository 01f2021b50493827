/**
 * Logical clocks (seed texts 001 and 002): a Lamport clock orders events consistently with
 * happens-before; a vector clock tells exactly whether one event happened before another, after
 * it, or concurrently with it.
 *
 * Pure and dependency-free: used by members on peer traffic, by the simulator, by `flotilla trace`
 * and, bundled, by the dashboard's space-time view in the browser.
 */

/** One counter per member id (as a decimal or hex string); a missing id counts as 0. */
export type VectorClock = Readonly<Record<string, number>>;

export type ClockOrder = 'before' | 'after' | 'concurrent' | 'equal';

/**
 * How `a` relates to `b`: 'before' when a happened before b (a ≤ b component-wise and a ≠ b),
 * 'after' for the converse, 'equal' when identical, 'concurrent' otherwise.
 */
export function compareClocks(a: VectorClock, b: VectorClock): ClockOrder {
  let less = false;
  let greater = false;
  for (const id of Object.keys(a)) {
    const x = a[id] ?? 0;
    const y = b[id] ?? 0;
    if (x < y) less = true;
    else if (x > y) greater = true;
  }
  for (const id of Object.keys(b)) {
    if (id in a) continue;
    if ((b[id] ?? 0) > 0) less = true;
  }
  if (less && greater) return 'concurrent';
  if (less) return 'before';
  if (greater) return 'after';
  return 'equal';
}

/** True when the event stamped `a` happened before the event stamped `b`. */
export function happenedBefore(a: VectorClock, b: VectorClock): boolean {
  return compareClocks(a, b) === 'before';
}

/** The component-wise maximum of two clocks (a new object; neither argument changes). */
export function mergeClocks(a: VectorClock, b: VectorClock): Record<string, number> {
  const out: Record<string, number> = { ...a };
  for (const id of Object.keys(b)) {
    const y = b[id] ?? 0;
    if (y > (out[id] ?? 0)) out[id] = y;
  }
  return out;
}

/**
 * One process's clocks. `tick()` for a local or send event, `receive()` for a receive event:
 * both return the stamp of that event.
 */
export class LogicalClock {
  private lamportTime = 0;
  private readonly vector: Record<string, number> = {};

  /**
   * `start` (default 0) is where both clocks begin: a restarted member starts above every stamp
   * it gave before (its own vector component must never go back, or its new events would look
   * concurrent with, or before, its old ones).
   */
  constructor(
    readonly id: string,
    start = 0,
  ) {
    this.lamportTime = start;
    this.vector[id] = start;
  }

  /** A local event or a send: both clocks advance. */
  tick(): { lamport: number; vc: VectorClock } {
    this.lamportTime += 1;
    this.vector[this.id] = (this.vector[this.id] ?? 0) + 1;
    return { lamport: this.lamportTime, vc: { ...this.vector } };
  }

  /** A receive of a message stamped (lamport, vc): merge, then advance. */
  receive(lamport: number, vc: VectorClock): { lamport: number; vc: VectorClock } {
    if (lamport > this.lamportTime) this.lamportTime = lamport;
    for (const id of Object.keys(vc)) {
      const y = vc[id] ?? 0;
      if (id !== this.id && y > (this.vector[id] ?? 0)) this.vector[id] = y;
    }
    return this.tick();
  }

  get lamport(): number {
    return this.lamportTime;
  }

  get vc(): VectorClock {
    return { ...this.vector };
  }
}
