/**
 * A deliberately simple, exponential linearizability checker: tries every subset of the
 * unknown-outcome operations and every order of the chosen operations that respects real time.
 * Only for tiny histories; it is the test oracle for the real checker.
 */
import type { HistoryOp } from './history.js';

type State = string | null;

function apply(state: State, h: HistoryOp): State | undefined {
  switch (h.op) {
    case 'read':
      return (h.output ?? null) === state ? state : undefined;
    case 'write':
      return h.value ?? null;
    case 'delete':
      return null;
    case 'cas': {
      const swaps = state === (h.expected ?? null);
      if (h.ok === true && h.output !== swaps) return undefined;
      return swaps ? (h.value ?? null) : state;
    }
  }
}

function keyOk(ops: readonly HistoryOp[]): boolean {
  const known = ops.filter((o) => o.ok === true);
  const unknown = ops.filter((o) => o.ok === null && o.op !== 'read');
  const end = (o: HistoryOp): number => (o.ok === true ? (o.return ?? Infinity) : Infinity);
  for (let mask = 0; mask < 1 << unknown.length; mask++) {
    const chosen = [...known, ...unknown.filter((_, i) => (mask >> i) & 1)];
    const used = new Array<boolean>(chosen.length).fill(false);
    const search = (state: State, left: number): boolean => {
      if (left === 0) return true;
      for (let i = 0; i < chosen.length; i++) {
        if (used[i]) continue;
        const o = chosen[i]!;
        // o may go next only if no other remaining op finished strictly before o was called.
        let blocked = false;
        for (let j = 0; j < chosen.length && !blocked; j++) if (!used[j] && j !== i && end(chosen[j]!) < o.call) blocked = true;
        if (blocked) continue;
        const next = apply(state, o);
        if (next === undefined) continue;
        used[i] = true;
        const ok = search(next, left - 1);
        used[i] = false;
        if (ok) return true;
      }
      return false;
    };
    if (search(null, chosen.length)) return true;
  }
  return false;
}

export function checkLinearizableNaive(history: readonly HistoryOp[]): boolean {
  const byKey = new Map<string, HistoryOp[]>();
  for (const h of history) {
    if (h.ok === false) continue;
    byKey.set(h.key, [...(byKey.get(h.key) ?? []), h]);
  }
  for (const ops of byKey.values()) if (!keyOk(ops)) return false;
  return true;
}
