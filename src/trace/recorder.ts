/**
 * A member's logical clocks and its trace: every peer message sent or received and every log
 * line is an event, stamped with the member's Lamport and vector clock (seed texts 001, 002)
 * and kept in a bounded ring of recent TraceEvents (served at GET /debug/trace, drawn by the
 * dashboard's space-time view, merged by `flotilla trace merge`).
 *
 * Node ids are Raft ids as decimal strings (what the peer wire carries). A message's msgId is
 * `<sender>-<sender's Lamport time at the send>`: unique, since a member's Lamport time grows
 * with every event, also across restarts (see `clockStartOf`).
 */
import { LogicalClock, type VectorClock } from '../lib/vector-clock.js';
import type { TraceEvent } from './event.js';

/** Recent events a member keeps (older ones are overwritten): the span GET /debug/trace can answer. */
export const TRACE_RING_EVENTS = 8192;
/** An event's `text` is cut to this many characters (log lines can be long). */
export const TRACE_TEXT_CHARS_MAX = 240;

export interface Stamp {
  readonly lamport: number;
  readonly vc: VectorClock;
}

export interface TraceRecorderOptions {
  /** Where both clocks start (default 0; a real member passes clockStartOf(Date.now())). */
  readonly start?: number;
  /** Ring size (default TRACE_RING_EVENTS). */
  readonly ringEvents?: number;
  /** The event time source, ms (default Date.now). */
  readonly now?: () => number;
  /** Told of every event as it is recorded (the simulator writes them all to its trace file). */
  readonly onEvent?: (e: TraceEvent) => void;
}

/**
 * Where a member's clocks start when it starts at wall time `nowMs`: its start time in
 * microseconds. A restarted member must stamp above everything it stamped before (else its new
 * events would look concurrent with its old ones); it keeps no clock on disk, so this holds as
 * long as it made fewer than a million events per second and its wall clock did not go back
 * across the restart.
 */
export function clockStartOf(nowMs: number): number {
  return Math.floor(nowMs) * 1000;
}

export class TraceRecorder {
  readonly clock: LogicalClock;
  private readonly ring: (TraceEvent | undefined)[];
  /** Index of the next slot to write. */
  private head = 0;
  private size = 0;
  private readonly now: () => number;
  private readonly onEvent: ((e: TraceEvent) => void) | undefined;
  /** Events recorded since start (also those the ring no longer holds). */
  recorded = 0;

  constructor(
    readonly node: string,
    o: TraceRecorderOptions = {},
  ) {
    this.clock = new LogicalClock(node, o.start ?? 0);
    const n = o.ringEvents ?? TRACE_RING_EVENTS;
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`trace ring size ${n} must be a positive integer`);
    this.ring = new Array<TraceEvent | undefined>(n);
    this.now = o.now ?? Date.now;
    this.onEvent = o.onEvent;
  }

  /** A send to `peer`: the stamp and msgId the message carries. */
  send(peer: string, type: string, text?: string): Stamp & { msgId: string } {
    const s = this.clock.tick();
    const msgId = `${this.node}-${s.lamport}`;
    this.push({ t: this.now(), node: this.node, lamport: s.lamport, vc: s.vc, kind: 'send', type, peer, msgId, ...(text ? { text: cut(text) } : {}) });
    return { ...s, msgId };
  }

  /** A receive from `peer` of a message stamped `stamp` (already validated). */
  receive(peer: string, type: string, stamp: Stamp, text?: string): Stamp {
    const s = this.clock.receive(stamp.lamport, stamp.vc);
    this.push({ t: this.now(), node: this.node, lamport: s.lamport, vc: s.vc, kind: 'receive', type, peer, msgId: `${peer}-${stamp.lamport}`, ...(text ? { text: cut(text) } : {}) });
    return s;
  }

  /** A local event (a log line, an election won...). */
  local(type: string, text?: string): Stamp {
    const s = this.clock.tick();
    this.push({ t: this.now(), node: this.node, lamport: s.lamport, vc: s.vc, kind: 'local', type, ...(text ? { text: cut(text) } : {}) });
    return s;
  }

  /** The events the ring holds with a Lamport time above `lamport`, oldest first. */
  since(lamport: number): TraceEvent[] {
    const out: TraceEvent[] = [];
    const n = this.ring.length;
    for (let i = 0; i < this.size; i++) {
      const e = this.ring[(this.head - this.size + i + n) % n]!;
      if (e.lamport > lamport) out.push(e);
    }
    return out;
  }

  private push(e: TraceEvent): void {
    this.ring[this.head] = e;
    this.head = (this.head + 1) % this.ring.length;
    if (this.size < this.ring.length) this.size++;
    this.recorded++;
    this.onEvent?.(e);
  }
}

function cut(s: string): string {
  return s.length <= TRACE_TEXT_CHARS_MAX ? s : `${s.slice(0, TRACE_TEXT_CHARS_MAX - 1)}…`;
}
