/**
 * Assertions for programmer errors. A failed assertion is a bug in Flotilla, never an expected
 * outcome: it is not caught inside the core (TigerBeetle style: crash loudly with context).
 */
export class AssertionError extends Error {
  override name = 'AssertionError';
}

export function assert(cond: unknown, msg: string | (() => string)): asserts cond {
  if (!cond) throw new AssertionError(typeof msg === 'function' ? msg() : msg);
}

export function assertNever(x: never, what = 'value'): never {
  throw new AssertionError(`unexpected ${what}: ${JSON.stringify(x)}`);
}
