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
import type { VectorClock } from '../lib/vector-clock.js';
import type { Message } from '../raft/messages.js';
import type { TraceEvent } from './event.js';
import { MESSAGE_FIELDS, messageFields, messageFieldsText, messageTraceType } from './messages.js';

/** Recent events a member keeps (older ones are overwritten): the span GET /debug/trace can answer. */
export const TRACE_RING_EVENTS = 8192;
/** Member ids a trace ring keeps vector components for (members ever seen; more are left out of its events). */
export const TRACE_VC_COLUMNS_MAX = 64;
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

const KINDS = ['send', 'receive', 'local'] as const;
const SEND = 0;
const RECEIVE = 1;
const LOCAL = 2;

/**
 * A member's clocks, as the clock envelope reads them on a send (transport/clock-envelope.ts):
 * the Lamport time, and the vector as `count` columns of (member id, component).
 */
export interface DenseClock {
  readonly lamport: number;
  /** Columns in use. */
  readonly columnCount: number;
  /** Each column's member id as a number (0: an id that is not a decimal u32 above 0). */
  readonly columnIds: readonly number[];
  /** Each column's component (0 = none). */
  readonly vector: Float64Array;
}

/**
 * The clocks and the ring are kept as numbers, so that stamping a peer message allocates
 * nothing: the vector clock is one dense row (a column per member id, this member's first),
 * the ring holds events as columns of numbers and shared strings, and TraceEvents, msgIds and
 * message texts are made only when the trace is read (`since`). The transport's hot path
 * (`stampSend`, `stampReceive`) takes and gives clocks in that dense form; the methods that
 * take and return Stamp objects (`send`, `receive`, ... : the simulator, the log, tests) do the
 * same work plus one object.
 *
 * A vector has at most TRACE_VC_COLUMNS_MAX components: ids beyond that many (a cluster with a
 * very long membership history) are left out of this member's clock and of its events.
 */
export class TraceRecorder implements DenseClock {
  private lamportNow: number;
  /** This member's vector clock: component of column c at vector[c]; length = vcWidth. */
  vector: Float64Array;
  private readonly slots: number;
  private readonly tAt: Float64Array;
  private readonly lamportAt: Float64Array;
  private readonly kindAt: Uint8Array;
  /** The sender's Lamport time at the send: with the sender, the msgId (0 for a local event). */
  private readonly msgLamportAt: Float64Array;
  private readonly typeAt: string[];
  private readonly peerAt: (string | undefined)[];
  /**
   * Vector clocks as rows of numbers (one column per member id, in `columns` order; 0 = absent),
   * not as the stamp objects: objects kept in a ring live long enough to be promoted to the old
   * generation and make every message cost a share of a major GC.
   */
  private vcCells: Float64Array;
  private vcWidth = 8;
  private readonly columns: string[] = [];
  readonly columnIds: number[] = [];
  private readonly columnOf = new Map<string, number>();
  private readonly columnOfId = new Map<number, number>();
  private readonly textAt: (string | undefined)[];
  /** A message's numbers (messages.ts), when hasFieldsAt says so; its text is made from them. */
  private readonly fieldsAt: Float64Array;
  private readonly hasFieldsAt: Uint8Array;
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
    const n = o.ringEvents ?? TRACE_RING_EVENTS;
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`trace ring size ${n} must be a positive integer`);
    const start = o.start ?? 0;
    this.lamportNow = start;
    this.vector = new Float64Array(this.vcWidth);
    this.column(node);
    this.vector[0] = start;
    this.slots = n;
    this.tAt = new Float64Array(n);
    this.lamportAt = new Float64Array(n);
    this.kindAt = new Uint8Array(n);
    this.msgLamportAt = new Float64Array(n);
    this.typeAt = new Array<string>(n).fill('');
    this.peerAt = new Array<string | undefined>(n).fill(undefined);
    this.vcCells = new Float64Array(n * this.vcWidth);
    this.textAt = new Array<string | undefined>(n).fill(undefined);
    this.fieldsAt = new Float64Array(n * MESSAGE_FIELDS);
    this.hasFieldsAt = new Uint8Array(n);
    this.now = o.now ?? Date.now;
    this.onEvent = o.onEvent;
  }

  /** This member's Lamport time (that of its latest event). */
  get lamport(): number {
    return this.lamportNow;
  }

  /** Columns of the vector in use. */
  get columnCount(): number {
    return this.columns.length;
  }

  /** This member's vector clock as an object (a copy). */
  get vc(): VectorClock {
    const vc: Record<string, number> = {};
    for (let c = 0; c < this.columns.length; c++) if (this.vector[c]! > 0) vc[this.columns[c]!] = this.vector[c]!;
    return vc;
  }

  // ---- The transport's path: no objects made ----

  /** A send to `peer` (a Raft message, or null for a member frame): the clocks tick; read them from this object (DenseClock). */
  stampSend(peer: string, m: Message | null): void {
    this.tick();
    this.push(SEND, m ? messageTraceType(m) : 'member', peer, this.lamportNow, undefined, m);
  }

  /**
   * A receive from `peer` of a message stamped (lamport, ids[i] -> values[i] for i < count),
   * already validated (clock-envelope.ts): merge, tick, record.
   */
  stampReceive(peer: string, m: Message | null, lamport: number, ids: ArrayLike<number>, values: ArrayLike<number>, count: number): void {
    for (let i = 0; i < count; i++) {
      const id = ids[i]!;
      let c = this.columnOfId.get(id);
      if (c === undefined) c = this.column(String(id));
      if (c > 0 && values[i]! > this.vector[c]!) this.vector[c] = values[i]!;
    }
    this.receiveTick(lamport);
    this.push(RECEIVE, m ? messageTraceType(m) : 'member', peer, lamport, undefined, m);
  }

  // ---- Stamps as objects (simulator, log lines, tests) ----

  /** A send to `peer`: the stamp the message carries (its msgId is `<node>-<stamp.lamport>`). */
  send(peer: string, type: string, text?: string): Stamp {
    this.tick();
    this.push(SEND, type, peer, this.lamportNow, text, null);
    return this.stamp();
  }

  /** A Raft message sent to `peer` (its text is made only when the trace is read). */
  sendMessage(peer: string, m: Message): Stamp {
    this.tick();
    this.push(SEND, messageTraceType(m), peer, this.lamportNow, undefined, m);
    return this.stamp();
  }

  /** A receive from `peer` of a message stamped `stamp` (already validated). */
  receive(peer: string, type: string, stamp: Stamp, text?: string): Stamp {
    this.mergeObject(stamp);
    this.push(RECEIVE, type, peer, stamp.lamport, text, null);
    return this.stamp();
  }

  /** A Raft message from `peer` stamped `stamp` (already validated). */
  receiveMessage(peer: string, m: Message, stamp: Stamp): Stamp {
    this.mergeObject(stamp);
    this.push(RECEIVE, messageTraceType(m), peer, stamp.lamport, undefined, m);
    return this.stamp();
  }

  /** A local event (a log line, an election won...). */
  local(type: string, text?: string): Stamp {
    this.tick();
    this.push(LOCAL, type, undefined, 0, text, null);
    return this.stamp();
  }

  /** The events the ring holds with a Lamport time above `lamport`, oldest first. */
  since(lamport: number): TraceEvent[] {
    const out: TraceEvent[] = [];
    const n = this.slots;
    for (let i = 0; i < this.size; i++) {
      const k = (this.head - this.size + i + n) % n;
      if (this.lamportAt[k]! > lamport) out.push(this.event(k));
    }
    return out;
  }

  // ---- The clocks (seed texts 001, 002: a local event or send ticks; a receive merges, then ticks) ----

  private tick(): void {
    this.lamportNow += 1;
    this.vector[0] = this.vector[0]! + 1;
  }

  private receiveTick(lamport: number): void {
    if (lamport > this.lamportNow) this.lamportNow = lamport;
    this.tick();
  }

  private mergeObject(stamp: Stamp): void {
    const vc = stamp.vc;
    for (const id in vc) {
      let c = this.columnOf.get(id);
      if (c === undefined) c = this.column(id);
      const y = vc[id]!;
      if (c > 0 && y > this.vector[c]!) this.vector[c] = y;
    }
    this.receiveTick(stamp.lamport);
  }

  private stamp(): Stamp {
    return { lamport: this.lamportNow, vc: this.vc };
  }

  /** The column of member id `id`, made if new: -1 once TRACE_VC_COLUMNS_MAX ids are known (left out). */
  private column(id: string): number {
    const known = this.columnOf.get(id);
    if (known !== undefined) return known;
    if (this.columns.length === TRACE_VC_COLUMNS_MAX) return -1;
    const c = this.columns.length;
    this.columns.push(id);
    this.columnOf.set(id, c);
    const n = Number(id);
    const num = Number.isInteger(n) && n > 0 && n <= 0xffffffff && String(n) === id ? n : 0;
    this.columnIds.push(num);
    if (num !== 0) this.columnOfId.set(num, c);
    if (c === this.vcWidth) this.widen();
    return c;
  }

  private event(k: number): TraceEvent {
    const kind = KINDS[this.kindAt[k]!]!;
    const type = this.typeAt[k]!;
    const peer = this.peerAt[k];
    const text = this.hasFieldsAt[k] ? messageFieldsText(type, this.fieldsAt, k * MESSAGE_FIELDS) : this.textAt[k];
    const vc: Record<string, number> = {};
    const row = k * this.vcWidth;
    for (let c = 0; c < this.columns.length; c++) {
      const v = this.vcCells[row + c]!;
      if (v > 0) vc[this.columns[c]!] = v;
    }
    const e: { -readonly [K in keyof TraceEvent]: TraceEvent[K] } = { t: this.tAt[k]!, node: this.node, lamport: this.lamportAt[k]!, vc, kind, type };
    if (peer !== undefined) e.peer = peer;
    if (kind !== 'local') e.msgId = `${kind === 'send' ? this.node : peer}-${this.msgLamportAt[k]}`;
    if (text) e.text = cut(text);
    return e;
  }

  /** Doubles the columns of the vector and of the ring's rows. */
  private widen(): void {
    const w = this.vcWidth * 2;
    const cells = new Float64Array(this.slots * w);
    for (let k = 0; k < this.slots; k++) cells.set(this.vcCells.subarray(k * this.vcWidth, (k + 1) * this.vcWidth), k * w);
    this.vcCells = cells;
    const v = new Float64Array(w);
    v.set(this.vector);
    this.vector = v;
    this.vcWidth = w;
  }

  private push(kind: number, type: string, peer: string | undefined, msgLamport: number, text: string | undefined, m: Message | null): void {
    const k = this.head;
    this.tAt[k] = this.now();
    this.lamportAt[k] = this.lamportNow;
    this.kindAt[k] = kind;
    this.msgLamportAt[k] = msgLamport;
    this.typeAt[k] = type;
    this.peerAt[k] = peer;
    // A loop: TypedArray#set costs a call into the runtime, more than copying a few numbers.
    const cells = this.vcCells;
    const vector = this.vector;
    const row = k * this.vcWidth;
    for (let c = 0; c < vector.length; c++) cells[row + c] = vector[c]!;
    this.textAt[k] = text;
    if (m) messageFields(m, this.fieldsAt, k * MESSAGE_FIELDS);
    this.hasFieldsAt[k] = m ? 1 : 0;
    this.head = k + 1 === this.slots ? 0 : k + 1;
    if (this.size < this.slots) this.size++;
    this.recorded++;
    if (this.onEvent) this.onEvent(this.event(k));
  }
}

function cut(s: string): string {
  return s.length <= TRACE_TEXT_CHARS_MAX ? s : `${s.slice(0, TRACE_TEXT_CHARS_MAX - 1)}…`;
}
