/**
 * The simulator's trace (`flotilla sim --seed S --trace FILE`): each simulated member keeps a
 * Lamport and a vector clock exactly as a real member does (src/trace/recorder.ts); a message
 * is stamped when sent and merged when delivered, and the simulator's notes about one member
 * (a role change, a snapshot, a crash, a restart, a pause) are local events. Times are virtual
 * milliseconds, so the same seed gives the same trace, byte for byte.
 *
 * A member's clocks survive its simulated crashes (the trace is an observer's record, not
 * member state), so causality across a restart stays exact. A duplicated message is one send
 * with two receives (same msgId); a lost one is a send without a receive.
 */
import type { Message } from '../raft/messages.js';
import type { NodeId } from '../raft/types.js';
import type { TraceEvent } from '../trace/event.js';
import { TraceRecorder, type Stamp } from '../trace/recorder.js';

/** Simulator notes that are local events of one member: the event type and the member. */
const LOCAL_NOTES: readonly [RegExp, string][] = [
  [/^n(\d+) is leader of term/, 'elected'],
  [/^n(\d+) is (?:follower|candidate|preCandidate|pre-candidate)\b/, 'role'],
  [/^n(\d+) took snapshot/, 'snapshotTaken'],
  [/^n(\d+) installed snapshot/, 'snapshotInstalled'],
  [/^FAULT crash n(\d+)/, 'crash'],
  [/^FAULT restart n(\d+)/, 'restart'],
  [/^FAULT pause n(\d+)/, 'pause'],
  [/^FAULT resume n(\d+)/, 'resume'],
];

export class SimTracer {
  private readonly members = new Map<NodeId, TraceRecorder>();

  constructor(
    private readonly emit: (e: TraceEvent) => void,
    private readonly nowMs: () => number,
  ) {}

  private of(id: NodeId): TraceRecorder {
    let r = this.members.get(id);
    if (!r) {
      r = new TraceRecorder(String(id), { ringEvents: 1, now: this.nowMs, onEvent: this.emit });
      this.members.set(id, r);
    }
    return r;
  }

  send(m: Message): Stamp {
    return this.of(m.from).sendMessage(String(m.to), m);
  }

  receive(m: Message, stamp: Stamp): void {
    this.of(m.to).receiveMessage(String(m.from), m, stamp);
  }

  /** A simulator note: a local event when it is about one member. */
  note(line: string): void {
    for (const [re, type] of LOCAL_NOTES) {
      const x = re.exec(line);
      if (x) {
        this.of(Number(x[1])).local(type, line);
        return;
      }
    }
  }
}
