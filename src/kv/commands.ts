/**
 * The commands the key-value state machine applies, and their encoding in the Raft log (and
 * between members when a follower forwards a write to the leader).
 *
 * Encoding: JSON where bytes are `{"$b": base64}` and 63-bit integers `{"$n": "decimal"}`, so
 * a command decodes to exactly the values that were proposed. One format for commands and
 * results keeps forwarding generic: a follower sends the command, the leader answers with the
 * apply result in the same encoding.
 */
import type { DeleteRangeRequest, KeyValue, PutRequest, RangeResult, TxnRequest, TxnResult } from './mvcc.js';
import { KvError, type GrpcCode } from './errors.js';

/** A member's published attributes (etcd publishes these through the log once it starts). */
export interface MemberAttributes {
  /** The API member id (64-bit). */
  readonly id: bigint;
  readonly name: string;
  readonly clientUrls: readonly string[];
}

export type Command =
  | { readonly op: 'put'; readonly req: PutRequest }
  | { readonly op: 'deleteRange'; readonly req: DeleteRangeRequest }
  | { readonly op: 'txn'; readonly req: TxnRequest }
  | { readonly op: 'compact'; readonly revision: number }
  /** The id is chosen by the member that proposes (apply reads no randomness). */
  | { readonly op: 'leaseGrant'; readonly id: bigint; readonly ttl: number }
  | { readonly op: 'leaseRevoke'; readonly id: bigint }
  | { readonly op: 'publish'; readonly member: MemberAttributes };

export type CommandValue =
  | { readonly op: 'put'; readonly prevKv?: KeyValue }
  | { readonly op: 'deleteRange'; readonly deleted: number; readonly prevKvs: KeyValue[] }
  | { readonly op: 'txn'; readonly result: TxnResult }
  | { readonly op: 'compact' }
  | { readonly op: 'leaseGrant'; readonly id: bigint; readonly ttl: number }
  | { readonly op: 'leaseRevoke' }
  | { readonly op: 'publish' };

/**
 * What applying a command gave: the value, or the deterministic error every member got (a
 * refused command still uses its log entry, and changes nothing). `revision` is the store's
 * revision after the apply: the header revision of the response.
 */
export type ApplyResult =
  | { readonly ok: true; readonly value: CommandValue; readonly revision: number }
  | { readonly ok: false; readonly error: { readonly code: GrpcCode; readonly message: string }; readonly revision: number };

export type { RangeResult };

function reviver(_key: string, v: unknown): unknown {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    if (typeof o.$n === 'string' && Object.keys(o).length === 1) return BigInt(o.$n);
    if (typeof o.$b === 'string' && Object.keys(o).length === 1) return new Uint8Array(Buffer.from(o.$b, 'base64'));
  }
  return v;
}

/** Bytes and bigints as tagged objects (before JSON.stringify: a Buffer's toJSON would win). */
function tag(v: unknown): unknown {
  if (typeof v === 'bigint') return { $n: v.toString() };
  if (v instanceof Uint8Array) return { $b: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') };
  if (Array.isArray(v)) return v.map(tag);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = tag(x);
    return out;
  }
  return v;
}

export function encodeValue(v: unknown): Uint8Array {
  return new Uint8Array(Buffer.from(JSON.stringify(tag(v))));
}

export function decodeValue<T>(b: Uint8Array): T {
  return JSON.parse(Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8'), reviver) as T;
}

/**
 * A command as it travels in the log: the request id chosen by the member that proposed it
 * (unique per proposing member; 0n when nobody waits for it) and the command. Every member
 * applies the entry; the proposer recognises its own by the id (see KvStateMachine.onApplied).
 */
export interface LogRequest {
  readonly id: bigint;
  readonly command: Command;
}

/** What decoding a log entry gave: the request, or why its bytes are not one (apply turns that into an error result). */
export type DecodedRequest = ({ readonly ok: true } & LogRequest) | { readonly ok: false; readonly id: bigint; readonly reason: string };

export const encodeRequest = (r: LogRequest): Uint8Array => encodeValue({ id: r.id, command: r.command });

export function decodeRequest(b: Uint8Array): DecodedRequest {
  const r = decodeValue<LogRequest>(b);
  return { ok: true, id: r.id, command: r.command };
}

/** A command with no waiter (request id 0n): tests and tools. */
export const encodeCommand = (c: Command): Uint8Array => encodeRequest({ id: 0n, command: c });

export function resultError(r: ApplyResult & { ok: false }): KvError {
  return new KvError(r.error.code, r.error.message);
}
