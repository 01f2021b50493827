/**
 * What members say to each other beside Raft, over the peer transport's member channel
 * (TcpTransport.sendMember / onMember): a follower forwards a proposal to the leader, and asks
 * it to renew a lease or tell a lease's time to live. Nothing here is reachable from the client
 * port.
 *
 * A forward carries the encoded log request as is (the bytes the leader proposes); the leader
 * answers only whether it took it into its log, at which (index, term), or why not. The result
 * never travels back: the follower waits for its own apply of the entry with its request id.
 *
 *   forward        = 1 | callId:u64 | request bytes (the rest)
 *   forward answer = 2 | callId:u64 | outcome:u8 | index:u64 | term:u64
 *   lease call     = 3 | callId:u64 | op:u8 (1 renew, 2 time to live) | leaseId:i64
 *   lease answer   = 4 | callId:u64 | outcome:u8 (0 ok, 1 not leader) | ttl:i64
 *   member call    = 5 | callId:u64 | request (JSON: a membership change for the leader to make)
 *   member answer  = 6 | callId:u64 | answer (JSON: done at an index, or etcd's error)
 *   removed        = 7 | callId:u64 (0): "you were removed from the cluster" (from a member that applied it)
 *
 * Integers are big-endian. A frame that does not decode is null (the caller logs and drops it).
 */

/** Why a leader took or refused a forwarded request. Every refusal means it did not enter the log. */
export const FORWARD_OUTCOMES = ['accepted', 'notLeader', 'transferInProgress', 'tooLarge', 'tooManyRequests', 'forbidden'] as const;
export type ForwardOutcome = (typeof FORWARD_OUTCOMES)[number];

export type LeaseOp = 'renew' | 'timeToLive';

export type PeerCall =
  | { readonly type: 'forward'; readonly callId: number; readonly request: Uint8Array }
  | { readonly type: 'forwardAnswer'; readonly callId: number; readonly outcome: ForwardOutcome; readonly index: number; readonly term: number }
  | { readonly type: 'lease'; readonly callId: number; readonly op: LeaseOp; readonly leaseId: bigint }
  | { readonly type: 'leaseAnswer'; readonly callId: number; readonly ok: boolean; readonly ttl: number }
  | { readonly type: 'member'; readonly callId: number; readonly request: Uint8Array }
  | { readonly type: 'memberAnswer'; readonly callId: number; readonly answer: Uint8Array }
  | { readonly type: 'removed'; readonly callId: number };

const FORWARD = 1;
const FORWARD_ANSWER = 2;
const LEASE = 3;
const LEASE_ANSWER = 4;
const MEMBER = 5;
const MEMBER_ANSWER = 6;
const REMOVED = 7;
/** Bytes of a forward before the request: the peer frame must admit --max-request-bytes plus this. */
export const FORWARD_HEADER_BYTES = 9;

export function encodePeerCall(c: PeerCall): Uint8Array {
  const size =
    c.type === 'forward' || c.type === 'member'
      ? FORWARD_HEADER_BYTES + c.request.length
      : c.type === 'memberAnswer'
        ? FORWARD_HEADER_BYTES + c.answer.length
        : c.type === 'removed'
          ? FORWARD_HEADER_BYTES
          : c.type === 'forwardAnswer'
            ? 26
            : 18;
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  v.setBigUint64(1, BigInt(c.callId));
  switch (c.type) {
    case 'forward':
      v.setUint8(0, FORWARD);
      out.set(c.request, FORWARD_HEADER_BYTES);
      break;
    case 'forwardAnswer':
      v.setUint8(0, FORWARD_ANSWER);
      v.setUint8(9, FORWARD_OUTCOMES.indexOf(c.outcome));
      v.setBigUint64(10, BigInt(c.index));
      v.setBigUint64(18, BigInt(c.term));
      break;
    case 'lease':
      v.setUint8(0, LEASE);
      v.setUint8(9, c.op === 'renew' ? 1 : 2);
      v.setBigInt64(10, c.leaseId);
      break;
    case 'leaseAnswer':
      v.setUint8(0, LEASE_ANSWER);
      v.setUint8(9, c.ok ? 0 : 1);
      v.setBigInt64(10, BigInt(c.ttl));
      break;
    case 'member':
      v.setUint8(0, MEMBER);
      out.set(c.request, FORWARD_HEADER_BYTES);
      break;
    case 'memberAnswer':
      v.setUint8(0, MEMBER_ANSWER);
      out.set(c.answer, FORWARD_HEADER_BYTES);
      break;
    case 'removed':
      v.setUint8(0, REMOVED);
      break;
  }
  return out;
}

/** A member-channel body as a call, or null when it is not one. */
export function decodePeerCall(b: Uint8Array): PeerCall | null {
  if (b.length < FORWARD_HEADER_BYTES) return null;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const big = v.getBigUint64(1);
  if (big > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  const callId = Number(big);
  const safe = (x: bigint): number | null => (x >= BigInt(Number.MIN_SAFE_INTEGER) && x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : null);
  switch (v.getUint8(0)) {
    case FORWARD:
      return { type: 'forward', callId, request: b.subarray(FORWARD_HEADER_BYTES) };
    case FORWARD_ANSWER: {
      if (b.length !== 26) return null;
      const outcome = FORWARD_OUTCOMES[v.getUint8(9)];
      const index = safe(v.getBigUint64(10));
      const term = safe(v.getBigUint64(18));
      if (outcome === undefined || index === null || term === null) return null;
      return { type: 'forwardAnswer', callId, outcome, index, term };
    }
    case LEASE: {
      if (b.length !== 18) return null;
      const op = v.getUint8(9);
      if (op !== 1 && op !== 2) return null;
      return { type: 'lease', callId, op: op === 1 ? 'renew' : 'timeToLive', leaseId: v.getBigInt64(10) };
    }
    case LEASE_ANSWER: {
      if (b.length !== 18) return null;
      const ok = v.getUint8(9);
      const ttl = safe(v.getBigInt64(10));
      if (ok > 1 || ttl === null) return null;
      return { type: 'leaseAnswer', callId, ok: ok === 0, ttl };
    }
    case MEMBER:
      return { type: 'member', callId, request: b.subarray(FORWARD_HEADER_BYTES) };
    case MEMBER_ANSWER:
      return { type: 'memberAnswer', callId, answer: b.subarray(FORWARD_HEADER_BYTES) };
    case REMOVED:
      return b.length === FORWARD_HEADER_BYTES ? { type: 'removed', callId } : null;
    default:
      return null;
  }
}

/** Bits of a request id below the member's raft id (etcd's idutil: 16 member bits, 48 counter bits). */
export const REQUEST_ID_COUNTER_BITS = 48n;
const COUNTER_MASK = (1n << REQUEST_ID_COUNTER_BITS) - 1n;

/**
 * Request ids unique to one proposing member, as etcd's idutil.Generator: the member's raft id in
 * the high 16 bits, a counter in the low 48 that starts at the clock's milliseconds (low 40 bits)
 * shifted by 8. A restart therefore starts past every id the member used before, unless it had
 * been issuing more than 256 ids per millisecond since its previous start.
 */
export class RequestIdGenerator {
  private readonly prefix: bigint;
  private counter: bigint;

  constructor(raftId: number, nowMs: number = Date.now()) {
    if (!Number.isInteger(raftId) || raftId < 1 || raftId > 0xffff) throw new RangeError(`raft id ${raftId} does not fit a request id's 16 member bits`);
    this.prefix = BigInt(raftId) << REQUEST_ID_COUNTER_BITS;
    this.counter = (BigInt(Math.floor(nowMs)) & ((1n << 40n) - 1n)) << 8n;
  }

  next(): bigint {
    this.counter = (this.counter + 1n) & COUNTER_MASK;
    return this.prefix | this.counter;
  }
}

/** The raft id of the member that made a request id. */
export const requestIdMember = (id: bigint): number => Number(id >> REQUEST_ID_COUNTER_BITS);
