/**
 * Reading a state machine snapshot image, which is hostile input: it comes from the member's
 * own snapshot file (checksummed, but a file can hold anything) or from the leader's snapshot
 * message over the peer port. The readers here never trust a shape: every value is checked
 * for its exact type and range as it is taken, and anything else is one SnapshotImageError
 * saying where and what. The work is linear in the image (no recursion on its nesting: JSON is
 * parsed without a reviver, only the fields of the format are walked).
 *
 * No import of mvcc.ts or state-machine.ts (both use these; no cycle).
 */

/** The image of a state machine (or of its store) is not one that a store could have written. */
export class SnapshotImageError extends Error {
  override name = 'SnapshotImageError';
}

export function imageFail(where: string, what: string): never {
  throw new SnapshotImageError(`${where}: ${what}`);
}

/** Lease ids are positive int64s (etcd's LeaseID), kv leases are 0 or one of them. */
export const LEASE_ID_MAX = (1n << 63n) - 1n;
/** Member ids are uint64s. */
export const MEMBER_ID_MAX = (1n << 64n) - 1n;

/** A short, safe rendering of a value for a message. */
export function preview(v: unknown): string {
  let s: string;
  if (v === undefined) return 'nothing';
  try {
    s = typeof v === 'string' ? JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v) : Array.isArray(v) ? `an array of ${v.length}` : v !== null && typeof v === 'object' ? 'an object' : String(v);
  } catch {
    s = typeof v;
  }
  return s;
}

/** The bytes as UTF-8 JSON text (strict: invalid UTF-8 is refused, not replaced), parsed. */
export function parseImageJson(b: Uint8Array, where: string): unknown {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(b);
  } catch {
    return imageFail(where, 'not UTF-8');
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    return imageFail(where, `not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
}

/** A plain JSON object with exactly these fields (own properties; no more, no fewer), and perhaps the optional ones. */
export function exactObject(v: unknown, where: string, fields: readonly string[], optional: readonly string[] = []): Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return imageFail(where, `expected an object, got ${preview(v)}`);
  const o = v as Record<string, unknown>;
  const own = Object.keys(o);
  for (const f of own) if (!fields.includes(f) && !optional.includes(f)) imageFail(where, `unknown field ${preview(f)}`);
  for (const f of fields) if (!Object.prototype.hasOwnProperty.call(o, f)) imageFail(where, `missing field ${preview(f)}`);
  return o;
}

export function arrayOf(v: unknown, where: string, length?: number | readonly number[]): unknown[] {
  if (!Array.isArray(v)) return imageFail(where, `expected an array, got ${preview(v)}`);
  if (length !== undefined && !(typeof length === 'number' ? [length] : length).includes(v.length)) imageFail(where, `expected an array of ${typeof length === 'number' ? length : length.join(' or ')}, got ${v.length}`);
  return v as unknown[];
}

/** A safe integer in [min, max]. */
export function safeInt(v: unknown, where: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) return imageFail(where, `expected a safe integer, got ${preview(v)}`);
  if (v < min || v > max) imageFail(where, `${v} is out of range [${min}, ${max}]`);
  return v;
}

/** A decimal integer string in canonical form (what bigint.toString() writes) in [min, max]. */
export function decimalBigint(v: unknown, where: string, min: bigint, max: bigint): bigint {
  if (typeof v !== 'string' || v.length > 21 || !/^(0|-?[1-9][0-9]*)$/.test(v)) return imageFail(where, `expected a decimal integer string, got ${preview(v)}`);
  const n = BigInt(v);
  if (n < min || n > max) imageFail(where, `${v} is out of range [${min}, ${max}]`);
  return n;
}

/** Canonical (padded, as Buffer writes it) base64 of some bytes; a fresh Uint8Array. */
export function base64Bytes(v: unknown, where: string): Uint8Array {
  if (typeof v !== 'string') return imageFail(where, `expected a base64 string, got ${preview(v)}`);
  const buf = Buffer.from(v, 'base64');
  if (buf.toString('base64') !== v) imageFail(where, `not canonical base64: ${preview(v)}`);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength).slice();
}

/**
 * The lease checkpoints of a state machine image: `[{id: {"$n": decimal}, remainingMs}]`, ids
 * ascending and unique, each a lease the store holds (`ttlOf` gives its TTL in seconds, or
 * undefined), 0 < remainingMs <= that TTL in ms (what KvStateMachine's checkpoint apply keeps).
 */
export function readLeaseCheckpoints(v: unknown, where: string, ttlOf: (id: bigint) => number | undefined): { id: bigint; remainingMs: number }[] {
  const out: { id: bigint; remainingMs: number }[] = [];
  const list = arrayOf(v, where);
  for (let i = 0; i < list.length; i++) {
    const w = `${where}[${i}]`;
    const cp = exactObject(list[i], w, ['id', 'remainingMs']);
    const id = decimalBigint(exactObject(cp.id, `${w}.id`, ['$n']).$n, `${w}.id.$n`, 1n, LEASE_ID_MAX);
    const prev = out.at(-1);
    if (prev && id <= prev.id) imageFail(`${w}.id`, 'lease checkpoint ids not sorted or not unique');
    const ttl = ttlOf(id);
    if (ttl === undefined) imageFail(`${w}.id`, `a checkpoint of lease ${id}, which the store does not hold`);
    const remainingMs = safeInt(cp.remainingMs, `${w}.remainingMs`, 1, ttl * 1000);
    out.push({ id, remainingMs });
  }
  return out;
}
