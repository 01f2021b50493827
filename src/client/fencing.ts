/**
 * The resource side of fencing. A lease-based lock cannot by itself guarantee mutual exclusion:
 * a holder paused (GC, SIGSTOP, a slow disk) or cut off past its lease still believes it holds
 * the lock when it wakes, while someone else has taken it. Each acquisition carries a fencing
 * token that only grows (FlotillaClient.lock's `fencingToken`, an election's `rev`); the
 * resource remembers the highest token it has accepted per name and refuses anything older.
 */
export class StaleTokenError extends Error {
  override name = 'StaleTokenError';
  constructor(
    readonly resource: string,
    readonly token: bigint,
    readonly highest: bigint,
  ) {
    super(`stale fencing token ${token} for ${resource}: ${highest} has been seen`);
  }
}

export class FencingGuard {
  private readonly highest = new Map<string, bigint>();

  /** Accepts `token` for `resource` if no higher token was accepted before (equal: the same holder again). */
  check(resource: string, token: bigint): void {
    const h = this.highest.get(resource) ?? -1n;
    if (token < h) throw new StaleTokenError(resource, token, h);
    this.highest.set(resource, token);
  }

  /** The highest token accepted for `resource`, or undefined. */
  highestFor(resource: string): bigint | undefined {
    return this.highest.get(resource);
  }
}
