/**
 * The fault harness's checkers other than linearizability (src/check): pure functions over
 * what the watchers and clients recorded, so each can be tested against histories that break it.
 */
import { describeOp, type HistoryOp } from '../check/index.js';
import { FencingGuard, StaleTokenError } from '../client/fencing.js';

export interface WatchedEvent {
  readonly rev: bigint;
  readonly type: string;
  readonly key: string;
  readonly value: string;
}

export interface WatchRecord {
  /** Who watched (a member name, or "reference"). */
  readonly member: string;
  readonly events: WatchedEvent[];
}

export interface Verdict {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

const line = (e: WatchedEvent) => `${e.rev} ${e.type} ${e.key}=${e.value}`;

/**
 * Ordered and unique (revisions strictly grow), reliable (nothing missing) and nothing
 * invented: each watcher's events must be exactly the reference history of changes.
 */
export function checkWatches(watchers: readonly WatchRecord[], reference: WatchRecord): Verdict {
  const ref = reference.events.map(line);
  const problems: string[] = [];
  for (const w of watchers) {
    for (let i = 1; i < w.events.length; i++) {
      if (w.events[i]!.rev <= w.events[i - 1]!.rev) problems.push(`${w.member}: revision ${w.events[i]!.rev} after ${w.events[i - 1]!.rev} (duplicate or out of order)`);
    }
    const got = w.events.map(line);
    const diff = got.findIndex((l, i) => l !== ref[i]);
    if (diff >= 0 || got.length !== ref.length) {
      const at = diff >= 0 ? diff : Math.min(got.length, ref.length);
      problems.push(`${w.member}: ${got.length} events vs ${ref.length} in the history; first difference at #${at}: got ${got[at] ?? '(nothing)'}, history has ${ref[at] ?? '(nothing)'}`);
    }
  }
  return {
    name: 'watch guarantees',
    ok: problems.length === 0,
    detail: problems.length ? problems.slice(0, 5).join('\n') : `${watchers.length} watchers, ${ref.length} events each, in order, no gap, no duplicate`,
  };
}

/** Every acknowledged write and successful CAS appears as a PUT of its value in the history of changes. */
export function checkAcknowledged(history: readonly HistoryOp[], reference: WatchRecord): Verdict {
  const puts = new Set(reference.events.filter((e) => e.type === 'PUT').map((e) => `${e.key}=${e.value}`));
  const acked = history.filter((h) => h.ok === true && (h.op === 'write' || (h.op === 'cas' && h.output === true)));
  const missing = acked.filter((h) => !puts.has(`${h.key}=${h.value}`));
  return {
    name: 'acknowledged writes',
    ok: missing.length === 0,
    detail: missing.length ? `${missing.length} missing, e.g. ${missing.slice(0, 3).map(describeOp).join('; ')}` : `${acked.length} acknowledged writes all present`,
  };
}

/** All members report the same HashKV at the same revision. */
export function checkHashes(rev: bigint, hashes: readonly { member: string; hash: string | null }[]): Verdict {
  const ok = hashes.every((h) => h.hash !== null) && new Set(hashes.map((h) => h.hash)).size === 1;
  return { name: 'HashKV equal', ok, detail: `at revision ${rev}: ${hashes.map((h) => `${h.member}=${h.hash ?? 'unavailable'}`).join(' ')}` };
}

/**
 * The resource behind the harness's lock: a FencingGuard, and a record of what happened. The
 * verdict: every acquisition got its own token (the lock service's promise), and the store
 * accepted writes only in token order (a holder that lost its lock without knowing —
 * its lease expired during a partition — was refused, not allowed to interleave).
 */
export class FencedStoreModel {
  private readonly guard = new FencingGuard();
  readonly acquisitions: { holder: number; token: bigint }[] = [];
  readonly accepted: { holder: number; token: bigint; value: string }[] = [];
  refused = 0;

  acquired(holder: number, token: bigint): void {
    this.acquisitions.push({ holder, token });
  }

  write(holder: number, token: bigint, value: string): boolean {
    try {
      this.guard.check('resource', token);
    } catch (e) {
      if (!(e instanceof StaleTokenError)) throw e;
      this.refused++;
      return false;
    }
    this.accepted.push({ holder, token, value });
    return true;
  }

  verdict(): Verdict {
    const problems: string[] = [];
    // Every acquisition gets its own token (a new key's create revision). (Their order as seen
    // here need not be token order: a response can arrive late.)
    const byToken = new Map<bigint, number>();
    for (const a of this.acquisitions) {
      const other = byToken.get(a.token);
      if (other !== undefined) problems.push(`token ${a.token} given to two acquisitions (holders ${other} and ${a.holder})`);
      byToken.set(a.token, a.holder);
    }
    for (let i = 1; i < this.accepted.length; i++) {
      const [a, b] = [this.accepted[i - 1]!, this.accepted[i]!];
      if (b.token < a.token) problems.push(`the store accepted token ${b.token} after ${a.token}`);
      if (b.token === a.token && b.holder !== a.holder) problems.push(`token ${b.token} used by two holders (${a.holder}, ${b.holder})`);
    }
    return {
      name: 'locks and fencing',
      ok: problems.length === 0 && this.acquisitions.length > 0,
      detail: problems.length
        ? problems.slice(0, 5).join('\n')
        : this.acquisitions.length === 0
          ? 'no lock was ever acquired'
          : `${this.acquisitions.length} acquisitions, each with its own token; ${this.accepted.length} fenced writes accepted in token order, ${this.refused} stale ones refused`,
    };
  }
}
