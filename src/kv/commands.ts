/**
 * The commands the key-value state machine applies, and their binary encoding in the Raft log
 * (encodeRequest / decodeRequest, versioned; see the layout below).
 *
 * encodeValue (JSON where bytes are `{"$b": base64}` and 63-bit integers `{"$n": "decimal"}`)
 * remains for the state machine's snapshot image only (read back field by field by
 * KvStateMachine.restore, never trusted); commands never use it (a follower forwards the
 * encoded request over the peer transport and answers from its own apply, so no result is
 * ever encoded).
 */
import { assertNever } from '../lib/assert.js';
import { ByteReader, ByteWriter } from '../lib/bytes.js';
import { AUTH_OPS, BCRYPT_HASH, PERM_TYPES, isAuthCommand, type AuthCommand, type AuthHeader, type AuthValue } from './auth-store.js';
import { KvError, type ErrorCode } from './errors.js';
import {
  TXN_NESTING_MAX,
  type Compare,
  type CompareResult,
  type DeleteRangeRequest,
  type KeyValue,
  type PutRequest,
  type RangeRequest,
  type RangeResult,
  type RequestOp,
  type SortOrder,
  type SortTarget,
  type TxnRequest,
  type TxnResult,
} from './mvcc.js';

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
  | { readonly op: 'publish'; readonly member: MemberAttributes }
  | AlarmCommand
  /**
   * etcd's LeaseCheckpoint: the leader records how long leases have left, so that a new leader
   * continues from there instead of from the full TTL. remainingMs 0 clears a checkpoint (the
   * lease was renewed: a new leader gives it its full TTL again).
   */
  | { readonly op: 'leaseCheckpoint'; readonly checkpoints: readonly LeaseCheckpoint[] }
  /** Users, roles, permissions, auth on/off, authenticate (auth-store.ts). */
  | AuthCommand;

export interface LeaseCheckpoint {
  readonly id: bigint;
  /** Milliseconds left on the leader's clock when it proposed the checkpoint; 0 = none (full TTL). */
  readonly remainingMs: number;
}

/** Checkpoints in one leaseCheckpoint entry (etcd's maxLeaseCheckpointBatchSize); the decoder refuses more. */
export const LEASE_CHECKPOINT_BATCH_MAX = 1000;
/** The largest remaining time a checkpoint can hold: the largest TTL (etcd's MaxLeaseTTL, 9,000,000,000 s) in ms. */
export const LEASE_REMAINING_MS_MAX = 9_000_000_000_000;

export type CommandValue =
  | { readonly op: 'put'; readonly prevKv?: KeyValue }
  | { readonly op: 'deleteRange'; readonly deleted: number; readonly prevKvs: KeyValue[] }
  | { readonly op: 'txn'; readonly result: TxnResult }
  | { readonly op: 'compact' }
  | { readonly op: 'leaseGrant'; readonly id: bigint; readonly ttl: number }
  | { readonly op: 'leaseRevoke' }
  | { readonly op: 'publish' }
  | { readonly op: 'alarm'; readonly alarms: AlarmMember[] }
  | { readonly op: 'leaseCheckpoint' }
  | AuthValue;

// -------------------------------------------------------------------------------------------
// Alarms (etcd's AlarmRequest ACTIVATE / DEACTIVATE through the log; GET reads the state).
// -------------------------------------------------------------------------------------------

/** The alarms etcd 3.4 knows (AlarmType without NONE, which names no alarm). */
export type AlarmType = 'NOSPACE' | 'CORRUPT';
export const ALARM_TYPES: readonly AlarmType[] = ['NOSPACE', 'CORRUPT'];

/** One raised alarm: which member raised it and what it is (etcd's AlarmMember). */
export interface AlarmMember {
  /** uint64 member id (any: etcd does not check that the member exists). */
  readonly memberId: bigint;
  readonly alarm: AlarmType;
}

/** Raise or clear one member's alarm. Applying it is idempotent. */
export interface AlarmCommand {
  readonly op: 'alarm';
  readonly action: 'activate' | 'deactivate';
  readonly member: AlarmMember;
}

/**
 * The alarm command's tag: apart from the OPS table's 1, 2, ... so that commands added to the
 * table elsewhere never take its number.
 */
export const ALARM_COMMAND_TAG = 64;

/**
 * What applying a command gave: the value, or the deterministic error every member got (a
 * refused command still uses its log entry, and changes nothing). `revision` is the store's
 * revision after the apply: the header revision of the response.
 */
export type ApplyResult =
  | { readonly ok: true; readonly value: CommandValue; readonly revision: number }
  | { readonly ok: false; readonly error: { readonly code: ErrorCode; readonly message: string }; readonly revision: number };

export type { RangeResult };

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

/**
 * A command as it travels in the log: the request id chosen by the member that proposed it
 * (unique per proposing member; 0n when nobody waits for it) and the command. Every member
 * applies the entry; the proposer recognises its own by the id (see KvStateMachine.onApplied).
 */
export interface LogRequest {
  readonly id: bigint;
  readonly command: Command;
  /**
   * Who asked, as the receiving member established it (user and the auth revision it checked
   * against); every member checks the command's permissions at apply with it. None: the member
   * itself proposed it (lease expiry, publish), which is not checked (etcd does those as root).
   */
  readonly auth?: AuthHeader;
}

/** What decoding a log entry gave: the request, or why its bytes are not one (apply turns that into an error result). */
export type DecodedRequest = ({ readonly ok: true; readonly auth: AuthHeader | undefined } & LogRequest) | { readonly ok: false; readonly id: bigint; readonly reason: string };

// -------------------------------------------------------------------------------------------
// The binary encoding of a LogRequest (like etcd's InternalRaftRequest, our own codec):
//
//   version:u8 (COMMAND_FORMAT_VERSION)  id:u64  command
//   command   = tag:u8 then its fields (little-endian; bytes = u32 length + bytes; int = i64
//               holding a safe integer; lease and member ids = i64 / u64 bigints)
//   put       = 1 key value lease:i64 flags:u8 (1 prevKv, 2 ignoreValue, 4 ignoreLease)
//   delete    = 2 key rangeEnd flags:u8 (1 prevKv)
//   txn       = 3 n:u32 compare*n  n:u32 op*n (success)  n:u32 op*n (failure)
//   compact   = 4 revision:int
//   leaseGrant= 5 id:i64 ttl:int          leaseRevoke = 6 id:i64
//   publish   = 7 member:u64 name:str n:u32 url:str*n   (str = u16 length + UTF-8)
//   alarm     = 64 action:u8 (1 activate, 2 deactivate) member:u64 alarm:u8 (1 NOSPACE, 2 CORRUPT)
//   leaseCheckpoint = 8 n:u32 (id:i64 remainingMs:int)*n   (n <= LEASE_CHECKPOINT_BATCH_MAX)
//   withAuth  = 31 user:text authRevision:int command    (the identity of the request; only
//               around the request's own command, never nested)  (text = u32 length + UTF-8)
//   auth commands = 32 + their index in AUTH_OPS, then (by op):
//     authEnable, authDisable: nothing      authenticate: name:text tokenPrefix:text
//     userAdd: name:text hash:text noPassword:u8 (hash '' exactly when noPassword; else bcrypt)
//     userDelete: name:text                 userChangePassword: name:text hash:text (bcrypt)
//     userGrantRole: user:text role:text    userRevokeRole: name:text role:text
//     roleAdd: name:text                    roleDelete: role:text
//     roleGrantPermission: name:text permType:u8 key rangeEnd
//     roleRevokePermission: role:text key rangeEnd
//   compare   = key rangeEnd result:u8 target:u8 value (int | i64 | bytes by target)
//   op        = 1 range | 2 put-fields | 3 delete-fields | 4 txn-fields
//   range     = key rangeEnd limit revision sortOrder:u8 sortTarget:u8 flags:u8 (1 keysOnly,
//               2 countOnly) minMod maxMod minCreate maxCreate (ints)
// Enum codes are etcd's protobuf numbers. Decoding is total (see decodeRequest).
// -------------------------------------------------------------------------------------------

/** The format of encodeRequest; a decoder refuses versions it does not know. */
export const COMMAND_FORMAT_VERSION = 1;

/** The tag of the identity header around a request's command. */
const TAG_WITH_AUTH = 31;
/** The first auth command's tag (a range of its own, apart from the key-value commands' 1, 2, ...). */
const TAG_AUTH_BASE = 32;

/** Why bytes are not a command (raised inside the decoder only; decodeRequest returns it as a reason). */
class CommandDecodeError extends Error {}

const SORT_ORDERS: readonly SortOrder[] = ['none', 'ascend', 'descend'];
const SORT_TARGETS: readonly SortTarget[] = ['key', 'version', 'create', 'mod', 'value'];
const COMPARE_RESULTS: readonly CompareResult[] = ['equal', 'greater', 'less', 'notEqual'];
const COMPARE_TARGETS: readonly Compare['target'][] = ['version', 'create', 'mod', 'value', 'lease'];
const OPS: readonly Exclude<Command['op'], 'alarm' | AuthCommand['op']>[] = ['put', 'deleteRange', 'txn', 'compact', 'leaseGrant', 'leaseRevoke', 'publish', 'leaseCheckpoint'];

const EMPTY = new Uint8Array(0);

function code<T>(table: readonly T[], v: T): number {
  const i = table.indexOf(v);
  if (i < 0) throw new RangeError(`cannot encode ${String(v)}`);
  return i;
}

/** A safe integer as i64 (a command holding anything else is a caller's bug). */
function writeInt(w: ByteWriter, v: number | undefined): void {
  const n = v ?? 0;
  if (!Number.isSafeInteger(n)) throw new RangeError(`cannot encode ${n}: not a safe integer`);
  w.bigI64(BigInt(n));
}

function writeRange(w: ByteWriter, r: RangeRequest): void {
  w.bytes(r.key);
  w.bytes(r.rangeEnd ?? EMPTY);
  writeInt(w, r.limit);
  writeInt(w, r.revision);
  w.u8(code(SORT_ORDERS, r.sortOrder ?? 'none'));
  w.u8(code(SORT_TARGETS, r.sortTarget ?? 'key'));
  w.u8((r.keysOnly ? 1 : 0) | (r.countOnly ? 2 : 0));
  writeInt(w, r.minModRevision);
  writeInt(w, r.maxModRevision);
  writeInt(w, r.minCreateRevision);
  writeInt(w, r.maxCreateRevision);
}

function writePut(w: ByteWriter, r: PutRequest): void {
  w.bytes(r.key);
  w.bytes(r.value ?? EMPTY);
  w.bigI64(r.lease ?? 0n);
  w.u8((r.prevKv ? 1 : 0) | (r.ignoreValue ? 2 : 0) | (r.ignoreLease ? 4 : 0));
}

function writeDelete(w: ByteWriter, r: DeleteRangeRequest): void {
  w.bytes(r.key);
  w.bytes(r.rangeEnd ?? EMPTY);
  w.u8(r.prevKv ? 1 : 0);
}

function writeCompare(w: ByteWriter, c: Compare): void {
  w.bytes(c.key);
  w.bytes(c.rangeEnd ?? EMPTY);
  w.u8(code(COMPARE_RESULTS, c.result));
  w.u8(code(COMPARE_TARGETS, c.target));
  if (c.target === 'value') w.bytes(c.value);
  else if (c.target === 'lease') w.bigI64(c.value);
  else writeInt(w, c.value);
}

function writeTxn(w: ByteWriter, t: TxnRequest): void {
  w.u32(t.compare.length);
  for (const c of t.compare) writeCompare(w, c);
  for (const branch of [t.success, t.failure]) {
    w.u32(branch.length);
    for (const op of branch) {
      if ('range' in op) {
        w.u8(1);
        writeRange(w, op.range);
      } else if ('put' in op) {
        w.u8(2);
        writePut(w, op.put);
      } else if ('deleteRange' in op) {
        w.u8(3);
        writeDelete(w, op.deleteRange);
      } else {
        w.u8(4);
        writeTxn(w, op.txn);
      }
    }
  }
}

const text = (w: ByteWriter, s: string): void => w.bytes(new TextEncoder().encode(s));

function writeAuthCommand(w: ByteWriter, c: AuthCommand): void {
  w.u8(TAG_AUTH_BASE + code(AUTH_OPS, c.op));
  switch (c.op) {
    case 'authEnable':
    case 'authDisable':
      return;
    case 'authenticate':
      text(w, c.name);
      return text(w, c.tokenPrefix);
    case 'userAdd':
      text(w, c.name);
      text(w, c.hash);
      return w.u8(c.noPassword ? 1 : 0);
    case 'userDelete':
    case 'roleAdd':
      return text(w, c.name);
    case 'roleDelete':
      return text(w, c.role);
    case 'userChangePassword':
      text(w, c.name);
      return text(w, c.hash);
    case 'userGrantRole':
      text(w, c.user);
      return text(w, c.role);
    case 'userRevokeRole':
      text(w, c.name);
      return text(w, c.role);
    case 'roleGrantPermission':
      text(w, c.name);
      w.u8(code(PERM_TYPES, c.perm.permType));
      w.bytes(c.perm.key);
      return w.bytes(c.perm.rangeEnd);
    case 'roleRevokePermission':
      text(w, c.role);
      w.bytes(c.key);
      return w.bytes(c.rangeEnd);
    default:
      assertNever(c);
  }
}

function writeCommand(w: ByteWriter, c: Command): void {
  if (c.op === 'alarm') {
    w.u8(ALARM_COMMAND_TAG);
    w.u8(c.action === 'activate' ? 1 : 2);
    w.bigU64(c.member.memberId);
    w.u8(code(ALARM_TYPES, c.member.alarm) + 1);
    return;
  }
  if (isAuthCommand(c)) return writeAuthCommand(w, c);
  w.u8(code(OPS, c.op) + 1);
  switch (c.op) {
    case 'put':
      return writePut(w, c.req);
    case 'deleteRange':
      return writeDelete(w, c.req);
    case 'txn':
      return writeTxn(w, c.req);
    case 'compact':
      return writeInt(w, c.revision);
    case 'leaseGrant':
      w.bigI64(c.id);
      return writeInt(w, c.ttl);
    case 'leaseRevoke':
      return w.bigI64(c.id);
    case 'publish':
      w.bigU64(c.member.id);
      w.str(c.member.name);
      w.u32(c.member.clientUrls.length);
      for (const u of c.member.clientUrls) w.str(u);
      return;
    case 'leaseCheckpoint':
      w.u32(c.checkpoints.length);
      for (const cp of c.checkpoints) {
        w.bigI64(cp.id);
        writeInt(w, cp.remainingMs);
      }
      return;
    default:
      // Auth commands were written above.
      return assertNever(c as never);
  }
}

/** The entry bytes of a request. Throws RangeError only for a command no decoder would accept (a caller's bug). */
export function encodeRequest(r: LogRequest): Uint8Array {
  // A put (the common write) is sized up front: its value is copied once.
  const c = r.command;
  const w = new ByteWriter(c.op === 'put' ? 40 + c.req.key.length + (c.req.value?.length ?? 0) : 64);
  w.u8(COMMAND_FORMAT_VERSION);
  w.bigU64(r.id);
  if (r.auth) {
    w.u8(TAG_WITH_AUTH);
    text(w, r.auth.user);
    writeInt(w, r.auth.revision);
  }
  writeCommand(w, r.command);
  // The writer is not used again: its view is the result.
  return w.written();
}

/** A command with no waiter (request id 0n): tests and tools. */
export const encodeCommand = (c: Command): Uint8Array => encodeRequest({ id: 0n, command: c });

/**
 * Whether an encoded request is over the request size limit (etcd's --max-request-bytes, which
 * etcd checks on the marshalled InternalRaftRequest): the proposer checks the bytes it is about
 * to propose, `if (requestTooLarge(data, config.maxRequestBytes)) throw ERR.requestTooLarge()`.
 */
export const requestTooLarge = (encoded: Uint8Array, maxRequestBytes: number): boolean => encoded.length > maxRequestBytes;

/** A password hash as a command may carry it: '' exactly for a user without password, else a bcrypt hash. */
function checkHash(h: string, noPassword: boolean, fail: (m: string) => never): void {
  if (noPassword ? h !== '' : !BCRYPT_HASH.test(h)) fail(noPassword ? 'a user without password has a hash' : 'the password hash is not a bcrypt hash');
}

class Decoder {
  private readonly r: ByteReader;

  constructor(private readonly bytesIn: Uint8Array) {
    this.r = new ByteReader(bytesIn, (m) => new CommandDecodeError(m));
  }

  get reader(): ByteReader {
    return this.r;
  }

  private fail(m: string): never {
    throw new CommandDecodeError(m);
  }

  /** A count of items that take at least `minBytes` each: never more than the input can hold. */
  private count(minBytes: number, what: string): number {
    const n = this.r.u32();
    if (n * minBytes > this.r.remaining) this.fail(`${n} ${what} cannot fit in ${this.r.remaining} bytes`);
    return n;
  }

  private enumOf<T>(table: readonly T[], what: string): T {
    const c = this.r.u8();
    const v = table[c];
    if (v === undefined) this.fail(`unknown ${what} ${c}`);
    return v;
  }

  int(what: string): number {
    const v = this.r.bigI64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) this.fail(`${what} ${v} is out of range`);
    return Number(v);
  }

  private flags(max: number, what: string): number {
    const f = this.r.u8();
    if (f > max) this.fail(`bad ${what} flags ${f}`);
    return f;
  }

  range(): RangeRequest {
    const key = this.r.bytes();
    const rangeEnd = this.r.bytes();
    const limit = this.int('limit');
    const revision = this.int('revision');
    const sortOrder = this.enumOf(SORT_ORDERS, 'sort order');
    const sortTarget = this.enumOf(SORT_TARGETS, 'sort target');
    const f = this.flags(3, 'range');
    return {
      key,
      rangeEnd,
      limit,
      revision,
      sortOrder,
      sortTarget,
      keysOnly: (f & 1) !== 0,
      countOnly: (f & 2) !== 0,
      minModRevision: this.int('min_mod_revision'),
      maxModRevision: this.int('max_mod_revision'),
      minCreateRevision: this.int('min_create_revision'),
      maxCreateRevision: this.int('max_create_revision'),
    };
  }

  put(): PutRequest {
    const key = this.r.bytes();
    const value = this.r.bytes();
    const lease = this.r.bigI64();
    const f = this.flags(7, 'put');
    return { key, value, lease, prevKv: (f & 1) !== 0, ignoreValue: (f & 2) !== 0, ignoreLease: (f & 4) !== 0 };
  }

  deleteRange(): DeleteRangeRequest {
    const key = this.r.bytes();
    const rangeEnd = this.r.bytes();
    return { key, rangeEnd, prevKv: this.flags(1, 'delete') === 1 };
  }

  compare(): Compare {
    const key = this.r.bytes();
    const rangeEnd = this.r.bytes();
    const result = this.enumOf(COMPARE_RESULTS, 'compare result');
    const target = this.enumOf(COMPARE_TARGETS, 'compare target');
    switch (target) {
      case 'value':
        return { key, rangeEnd, result, target, value: this.r.bytes() };
      case 'lease':
        return { key, rangeEnd, result, target, value: this.r.bigI64() };
      default:
        return { key, rangeEnd, result, target, value: this.int('compare value') };
    }
  }

  /** `depth`: how many txns enclose this one (0 for the command's own). */
  txn(depth: number): TxnRequest {
    if (depth > TXN_NESTING_MAX) this.fail(`txn nested deeper than ${TXN_NESTING_MAX}`);
    // The smallest compare is 4 + 4 + 1 + 1 + 4 bytes; the smallest op 1 + 4 + 4 + 1.
    const compare: Compare[] = [];
    for (let i = this.count(14, 'compares'); i > 0; i--) compare.push(this.compare());
    const branch = (): RequestOp[] => {
      const ops: RequestOp[] = [];
      for (let i = this.count(10, 'operations'); i > 0; i--) {
        const tag = this.r.u8();
        if (tag === 1) ops.push({ range: this.range() });
        else if (tag === 2) ops.push({ put: this.put() });
        else if (tag === 3) ops.push({ deleteRange: this.deleteRange() });
        else if (tag === 4) ops.push({ txn: this.txn(depth + 1) });
        else this.fail(`unknown txn operation ${tag}`);
      }
      return ops;
    };
    const success = branch();
    const failure = branch();
    return { compare, success, failure };
  }

  alarm(): AlarmCommand {
    const action = this.r.u8();
    if (action !== 1 && action !== 2) this.fail(`unknown alarm action ${action}`);
    const memberId = this.r.bigU64();
    const alarm = ALARM_TYPES[this.r.u8() - 1];
    if (alarm === undefined) this.fail('unknown alarm type');
    return { op: 'alarm', action: action === 1 ? 'activate' : 'deactivate', member: { memberId, alarm } };
  }

  text(what: string): string {
    const b = this.r.bytes();
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(b);
    } catch {
      return this.fail(`${what} is not valid UTF-8`);
    }
  }

  /** The identity header, if the request has one, then its command. */
  request(): { auth: AuthHeader | undefined; command: Command } {
    if (this.r.remaining > 0 && this.peekTag() === TAG_WITH_AUTH) {
      this.r.u8();
      const user = this.text('user name');
      const revision = this.int('auth revision');
      if (revision < 0) this.fail(`auth revision ${revision} is negative`);
      return { auth: { user, revision }, command: this.command() };
    }
    return { auth: undefined, command: this.command() };
  }

  private peekTag(): number {
    return this.bytesIn[this.r.pos]!;
  }

  private hash(): string {
    const h = this.text('password hash');
    checkHash(h, false, (m) => this.fail(m));
    return h;
  }

  authCommand(tag: number): AuthCommand {
    const op = AUTH_OPS[tag - TAG_AUTH_BASE];
    if (op === undefined) this.fail(`unknown command ${tag}`);
    switch (op) {
      case 'authEnable':
      case 'authDisable':
        return { op };
      case 'authenticate':
        return { op, name: this.text('user name'), tokenPrefix: this.text('token prefix') };
      case 'userAdd': {
        const name = this.text('user name');
        const hash = this.text('password hash');
        const noPassword = this.flags(1, 'user add') === 1;
        checkHash(hash, noPassword, (m) => this.fail(m));
        return { op, name, hash, noPassword };
      }
      case 'userDelete':
      case 'roleAdd':
        return { op, name: this.text(op === 'roleAdd' ? 'role name' : 'user name') };
      case 'roleDelete':
        return { op, role: this.text('role name') };
      case 'userChangePassword':
        return { op, name: this.text('user name'), hash: this.hash() };
      case 'userGrantRole':
        return { op, user: this.text('user name'), role: this.text('role name') };
      case 'userRevokeRole':
        return { op, name: this.text('user name'), role: this.text('role name') };
      case 'roleGrantPermission': {
        const name = this.text('role name');
        const permType = this.enumOf(PERM_TYPES, 'permission type');
        return { op, name, perm: { permType, key: this.r.bytes(), rangeEnd: this.r.bytes() } };
      }
      case 'roleRevokePermission':
        return { op, role: this.text('role name'), key: this.r.bytes(), rangeEnd: this.r.bytes() };
      default:
        return assertNever(op);
    }
  }

  command(): Command {
    const tag = this.r.u8();
    if (tag === ALARM_COMMAND_TAG) return this.alarm();
    if (tag >= TAG_AUTH_BASE) return this.authCommand(tag);
    const op = OPS[tag - 1];
    if (op === undefined) this.fail(`unknown command ${tag}`);
    switch (op) {
      case 'put':
        return { op, req: this.put() };
      case 'deleteRange':
        return { op, req: this.deleteRange() };
      case 'txn':
        return { op, req: this.txn(0) };
      case 'compact':
        return { op, revision: this.int('compact revision') };
      case 'leaseGrant': {
        const id = this.r.bigI64();
        if (id <= 0n) this.fail(`lease id ${id} is not positive`);
        const ttl = this.int('lease TTL');
        if (ttl < 0) this.fail(`lease TTL ${ttl} is negative`);
        return { op, id, ttl };
      }
      case 'leaseRevoke':
        return { op, id: this.r.bigI64() };
      case 'publish': {
        const id = this.r.bigU64();
        const name = this.r.str();
        const clientUrls: string[] = [];
        for (let i = this.count(2, 'client URLs'); i > 0; i--) clientUrls.push(this.r.str());
        return { op, member: { id, name, clientUrls } };
      }
      case 'leaseCheckpoint': {
        const n = this.count(16, 'lease checkpoints');
        if (n > LEASE_CHECKPOINT_BATCH_MAX) this.fail(`${n} lease checkpoints in one entry (at most ${LEASE_CHECKPOINT_BATCH_MAX})`);
        const checkpoints: LeaseCheckpoint[] = [];
        for (let i = 0; i < n; i++) {
          const id = this.r.bigI64();
          if (id <= 0n) this.fail(`lease id ${id} is not positive`);
          const remainingMs = this.int('lease remaining time');
          if (remainingMs < 0 || remainingMs > LEASE_REMAINING_MS_MAX) this.fail(`lease remaining time ${remainingMs} ms is out of range [0, ${LEASE_REMAINING_MS_MAX}]`);
          checkpoints.push({ id, remainingMs });
        }
        return { op, checkpoints };
      }
      default:
        assertNever(op);
    }
  }
}

/**
 * The request in an entry's bytes. Total: any bytes give either a well-formed command the
 * state machine can run (whose only failures are KvErrors: etcd's refusals) or ok:false with
 * the reason; the work is linear in the input (counts are bounded by the bytes left, txn
 * nesting by TXN_NESTING_MAX). The id is reported whenever it could be read, so the proposer
 * of a malformed entry still gets its answer.
 */
export function decodeRequest(b: Uint8Array): DecodedRequest {
  if (b.length === 0) return { ok: false, id: 0n, reason: 'empty entry' };
  if (b[0] !== COMMAND_FORMAT_VERSION) return { ok: false, id: 0n, reason: `unknown command format version ${b[0]}` };
  if (b.length < 9) return { ok: false, id: 0n, reason: 'entry ends before the request id' };
  const d = new Decoder(b);
  d.reader.u8();
  const id = d.reader.bigU64();
  try {
    const { auth, command } = d.request();
    d.reader.end();
    return { ok: true, id, command, auth };
  } catch (e) {
    if (e instanceof CommandDecodeError) return { ok: false, id, reason: e.message };
    throw e;
  }
}

export function resultError(r: ApplyResult & { ok: false }): KvError {
  return new KvError(r.error.code, r.error.message);
}
