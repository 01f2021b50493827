/**
 * Waiting, the one way the server does it: deadlines on a monotonic clock (performance.now(),
 * the clock RaftNode ticks and the lessor counts on; Date.now() jumps with the wall clock),
 * a request retried until a leader answers it, a condition polled until it holds, and a promise
 * bounded by a deadline. Every wait ends with etcd's errors: `server stopped`, `no leader`,
 * `request timed out`.
 */
import { ERR, type KvError } from '../kv/errors.js';

/** Pause between attempts while a request waits for a leader (ms). */
export const RETRY_PAUSE_MS = 50;

/** Milliseconds on the monotonic clock every deadline of the server is measured on. */
export const monoNow = (): number => performance.now();

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A point on the monotonic clock after which a request gives up. */
export class Deadline {
  private constructor(readonly at: number) {}

  /** `ms` from now. */
  static in(ms: number): Deadline {
    return new Deadline(monoNow() + ms);
  }

  get passed(): boolean {
    return monoNow() >= this.at;
  }

  /** Milliseconds left, at least 1 (a timer armed with it still fires after the deadline). */
  get remainingMs(): number {
    return Math.max(1, this.at - monoNow());
  }

  /** The earlier of this and `ms` from now. */
  within(ms: number): Deadline {
    return new Deadline(Math.min(this.at, monoNow() + ms));
  }
}

/** What a wait for the leader looks at between attempts. */
export interface LeaderWait {
  readonly deadline: Deadline;
  /** True once the member stopped: the wait ends with `server stopped`. */
  readonly stopped: () => boolean;
  /** True when a leader is known: at the deadline, `request timed out` rather than `no leader`. */
  readonly hasLeader: () => boolean;
}

/**
 * Runs `attempt` until it answers (anything but null), pausing RETRY_PAUSE_MS between attempts
 * (a leader being elected, a refusal from a leader that just stepped down). Checks `stopped`
 * before every attempt; at the deadline throws `no leader` when none is known, else `request
 * timed out`. An attempt that throws ends the wait with its error.
 */
export async function retryForLeader<T>(w: LeaderWait, attempt: () => Promise<T | null>): Promise<T> {
  for (;;) {
    if (w.stopped()) throw ERR.stopped();
    const r = await attempt();
    if (r !== null) return r;
    if (w.deadline.passed) throw w.hasLeader() ? ERR.timedOut() : ERR.noLeader();
    await sleep(RETRY_PAUSE_MS);
  }
}

/**
 * Polls `holds` every `pollMs` until it is true. Throws `request timed out` (or `onTimeout()`)
 * when the deadline passes first, `server stopped` when `stopped` says so.
 */
export async function waitUntil(holds: () => boolean, o: { deadline: Deadline; pollMs: number; stopped?: () => boolean; onTimeout?: () => KvError }): Promise<void> {
  while (!holds()) {
    if (o.stopped?.()) throw ERR.stopped();
    if (o.deadline.passed) throw o.onTimeout?.() ?? ERR.timedOut();
    await sleep(o.pollMs);
  }
}

/**
 * `p`, or `request timed out` (or `onTimeout()`) when the deadline passes first (p goes on; its
 * outcome is then ignored).
 */
export function withDeadline<T>(p: Promise<T>, deadline: Deadline, onTimeout: () => Error = ERR.timedOut): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(onTimeout()), deadline.remainingMs);
    }),
  ]).finally(() => clearTimeout(timer));
}
