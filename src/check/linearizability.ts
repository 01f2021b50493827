/**
 * Linearizability checking of a register history, per key (P-compositionality: a history of
 * independent registers is linearizable iff each key's sub-history is).
 *
 * The search is Wing & Gong's, with Lowe's memoisation (as in Porcupine and Knossos' "wgl"):
 * walk the call/return events in time order; at a call, try to linearize that operation now
 * (apply it to the model state, lift its call and return out of the list); at a return whose
 * operation was not linearized yet, backtrack. A (set of linearized ops, state) pair already
 * explored is never explored again, which is what makes real histories tractable.
 *
 * Operations whose outcome is unknown (ok: null) may take effect at any time after their call,
 * or never: their return is placed at +infinity, and the search succeeds as soon as every
 * operation with a known outcome is linearized. Reads with unknown outcome constrain nothing
 * and are dropped; operations that definitely failed (ok: false) are dropped.
 *
 * Intervals that touch (one returns at t, another is called at t) count as concurrent.
 *
 * Unknown-outcome writes are what makes the search expensive (each may or may not have taken
 * effect, at any later point). Most are never observed: no read returns their value and no CAS
 * expects it. So each key is first checked with those dropped, which is sound (a linearization
 * that omits them is allowed: they may never have taken effect); only if that fails is the full
 * search run.
 */
import type { HistoryOp } from './history.js';

export interface CheckOptions {
  /** Explored (linearized set, state) pairs per key before the search gives up on that key. */
  readonly maxStatesPerKey?: number;
}

export interface CheckFailure {
  readonly key: string;
  readonly message: string;
  /** The operations involved at the point the search got furthest: the last linearized, then those that could not be placed. */
  readonly ops: readonly HistoryOp[];
}

export interface CheckResult {
  readonly ok: boolean;
  readonly keysChecked: number;
  readonly opsChecked: number;
  /** Keys whose search exhausted its budget without a verdict. */
  readonly timedOutKeys: readonly string[];
  readonly failure?: CheckFailure;
}

export const DEFAULT_MAX_STATES_PER_KEY = 2_000_000;

type State = string | null;

interface Op {
  readonly id: number;
  readonly h: HistoryOp;
  readonly call: number;
  readonly ret: number; // Infinity when the outcome is unknown
  readonly known: boolean;
}

interface Node {
  readonly op: Op;
  readonly isCall: boolean;
  readonly time: number;
  prev: Node | null;
  next: Node | null;
  /** For a call: its return node. */
  match: Node | null;
}

/** Applies `op` to `state`: undefined if the op cannot take effect here (its output disagrees). */
function step(state: State, op: Op): { state: State } | undefined {
  const h = op.h;
  switch (h.op) {
    case 'read':
      return (h.output ?? null) === state ? { state } : undefined;
    case 'write':
      return { state: h.value ?? null };
    case 'delete':
      return { state: null };
    case 'cas': {
      const swaps = state === (h.expected ?? null);
      if (op.known && h.output !== swaps) return undefined;
      return { state: swaps ? (h.value ?? null) : state };
    }
  }
}

export function describeOp(h: HistoryOp): string {
  const args =
    h.op === 'read' || h.op === 'delete'
      ? ''
      : h.op === 'write'
        ? ` ${JSON.stringify(h.value ?? null)}`
        : ` ${JSON.stringify(h.expected ?? null)}->${JSON.stringify(h.value ?? null)}`;
  const out = h.ok === null ? ' (outcome unknown)' : h.output !== undefined ? ` => ${JSON.stringify(h.output)}` : '';
  return `p${h.process} ${h.op} ${h.key}${args}${out} [${h.call}, ${h.ok === null ? '...' : h.return}]`;
}

/** Splits a history into the operations each key's check must consider. */
function relevant(history: readonly HistoryOp[]): Map<string, HistoryOp[]> {
  const byKey = new Map<string, HistoryOp[]>();
  for (const h of history) {
    if (h.ok === false) continue;
    if (h.ok === null && h.op === 'read') continue;
    let list = byKey.get(h.key);
    if (!list) byKey.set(h.key, (list = []));
    list.push(h);
  }
  return byKey;
}

type KeyVerdict = { kind: 'ok' } | { kind: 'timeout' } | { kind: 'fail'; message: string; ops: HistoryOp[] };

function checkKey(key: string, hs: readonly HistoryOp[], maxStates: number): KeyVerdict {
  const ops: Op[] = hs.map((h, id) => ({ id, h, call: h.call, known: h.ok === true, ret: h.ok === true ? (h.return ?? Infinity) : Infinity }));
  for (const o of ops) {
    if (o.known && o.ret < o.call) return { kind: 'fail', message: `${describeOp(o.h)} returns before it is called`, ops: [o.h] };
  }
  // The event list: calls before returns at equal times (touching intervals are concurrent).
  const events: Node[] = [];
  for (const op of ops) {
    const call: Node = { op, isCall: true, time: op.call, prev: null, next: null, match: null };
    const ret: Node = { op, isCall: false, time: op.ret, prev: null, next: null, match: null };
    call.match = ret;
    events.push(call, ret);
  }
  events.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? a.op.id - b.op.id : a.isCall ? -1 : 1));
  const head: Node = { op: ops[0]!, isCall: false, time: -Infinity, prev: null, next: null, match: null };
  let prev = head;
  for (const e of events) {
    prev.next = e;
    e.prev = prev;
    prev = e;
  }

  const lift = (call: Node): void => {
    call.prev!.next = call.next;
    if (call.next) call.next.prev = call.prev;
    const ret = call.match!;
    ret.prev!.next = ret.next;
    if (ret.next) ret.next.prev = ret.prev;
  };
  const unlift = (call: Node): void => {
    const ret = call.match!;
    ret.prev!.next = ret;
    if (ret.next) ret.next.prev = ret;
    call.prev!.next = call;
    if (call.next) call.next.prev = call;
  };

  const words = Math.ceil(ops.length / 32);
  const linearized = new Uint32Array(words);
  const seen = new Set<string>();
  const stack: { call: Node; before: State }[] = [];
  let state: State = null;
  let deepest = -1;
  let deepestInfo: { done: Op[]; blocked: Op; pending: Op[]; state: State } | undefined;

  let entry = head.next;
  while (entry !== null) {
    if (entry.isCall) {
      const r = step(state, entry.op);
      if (r) {
        const id = entry.op.id;
        linearized[id >>> 5]! |= 1 << (id & 31);
        const memo = `${linearized.join(',')}|${r.state === null ? '\u0000' : r.state}`;
        if (!seen.has(memo)) {
          seen.add(memo);
          if (seen.size > maxStates) return { kind: 'timeout' };
          stack.push({ call: entry, before: state });
          state = r.state;
          lift(entry);
          entry = head.next;
          continue;
        }
        linearized[id >>> 5]! &= ~(1 << (id & 31));
      }
      entry = entry.next;
      continue;
    }
    // A return whose operation is not linearized yet.
    if (entry.time === Infinity) return { kind: 'ok' }; // only unknown-outcome ops remain
    if (stack.length > deepest) {
      deepest = stack.length;
      const pending: Op[] = [];
      for (let n = head.next; n !== null && n !== entry; n = n.next) if (n.isCall) pending.push(n.op);
      deepestInfo = { done: stack.map((s) => s.call.op), blocked: entry.op, pending, state };
    }
    const top = stack.pop();
    if (!top) break;
    const id = top.call.op.id;
    linearized[id >>> 5]! &= ~(1 << (id & 31));
    state = top.before;
    unlift(top.call);
    entry = top.call.next;
  }
  if (head.next === null) return { kind: 'ok' };
  const info = deepestInfo!;
  const last = info.done.slice(-3).map((o) => describeOp(o.h));
  const others = info.pending.filter((o) => o !== info.blocked).map((o) => describeOp(o.h));
  const message =
    `no linearization of key ${JSON.stringify(key)}: after ${info.done.length} of ${ops.length} ops` +
    (last.length > 0 ? ` (last: ${last.join('; ')})` : '') +
    `, with the register at ${JSON.stringify(info.state)}, ${describeOp(info.blocked.h)} cannot take effect before it returns` +
    (others.length > 0 ? `; also unplaced: ${others.slice(0, 5).join('; ')}${others.length > 5 ? `; and ${others.length - 5} more` : ''}` : '');
  return { kind: 'fail', message, ops: [...info.done.slice(-3), info.blocked, ...info.pending.filter((o) => o !== info.blocked)].map((o) => o.h) };
}

/** Drops unknown-outcome writes and CASes whose value nobody observed. */
function withoutUnobserved(hs: readonly HistoryOp[]): HistoryOp[] {
  const observed = new Set<string | null>();
  for (const h of hs) {
    if (h.ok !== true) continue;
    if (h.op === 'read' && typeof h.output === 'string') observed.add(h.output);
    if (h.op === 'cas') observed.add(h.expected ?? null);
  }
  return hs.filter((h) => !(h.ok === null && (h.op === 'write' || h.op === 'cas') && !observed.has(h.value ?? null)));
}

function checkKeyFast(key: string, hs: readonly HistoryOp[], maxStates: number): KeyVerdict {
  const reduced = withoutUnobserved(hs);
  if (reduced.length < hs.length) {
    const v = checkKey(key, reduced, maxStates);
    if (v.kind === 'ok') return v;
  }
  return checkKey(key, hs, maxStates);
}

export function checkLinearizable(history: readonly HistoryOp[], opts: CheckOptions = {}): CheckResult {
  const maxStates = opts.maxStatesPerKey ?? DEFAULT_MAX_STATES_PER_KEY;
  const byKey = relevant(history);
  const timedOutKeys: string[] = [];
  let opsChecked = 0;
  let keysChecked = 0;
  for (const [key, hs] of byKey) {
    keysChecked++;
    opsChecked += hs.length;
    const v = checkKeyFast(key, hs, maxStates);
    if (v.kind === 'timeout') timedOutKeys.push(key);
    else if (v.kind === 'fail') {
      return { ok: false, keysChecked, opsChecked, timedOutKeys, failure: { key, message: v.message, ops: v.ops } };
    }
  }
  return { ok: true, keysChecked, opsChecked, timedOutKeys };
}
