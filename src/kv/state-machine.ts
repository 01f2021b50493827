/**
 * The key-value state machine every member applies: commands from the Raft log run against
 * the MVCC store. Deterministic — no clock or randomness is read here (lease ids are chosen by
 * the proposer, lease expiry is decided by the leader and arrives as a revoke command) — so
 * members that applied the same log hold the same store and the same HashKV.
 */
import type { StateMachine } from '../node/node.js';
import type { Entry, Index } from '../raft/types.js';
import { AuthStore, isAuthCommand, type AuthCommand, type AuthHeader, type AuthImage } from './auth-store.js';
import { decodeRequest, encodeValue, type ApplyResult, type Command, type CommandValue, type MemberAttributes } from './commands.js';
import { KvError, type GrpcCode } from './errors.js';
import { MvccStore, type KvEvent, type MvccLimits, type TxnRequest } from './mvcc.js';
import { arrayOf, base64Bytes, decimalBigint, exactObject, imageFail, MEMBER_ID_MAX, parseImageJson, preview, SnapshotImageError } from './snapshot-image.js';

export { SnapshotImageError } from './snapshot-image.js';

const EMPTY = new Uint8Array(0);

/** The refusal every member gets for an entry whose bytes are not a command (decodeRequest's reason). */
export const malformedEntry = (reason: string): { code: GrpcCode; message: string } => ({ code: 'InvalidArgument', message: `etcdserver: malformed log entry: ${reason}` });

export type LeaseChange = { readonly kind: 'granted'; readonly id: bigint; readonly ttl: number } | { readonly kind: 'revoked'; readonly id: bigint };

interface SnapshotImage {
  readonly v: 1;
  readonly store: Uint8Array;
  readonly members: MemberAttributes[];
  /** Users, roles, the auth flag and revision (absent in images written before auth: nothing). */
  readonly auth?: AuthImage;
}

export class KvStateMachine implements StateMachine<ApplyResult> {
  private kv: MvccStore;
  private authState = new AuthStore();
  private readonly limits: Partial<MvccLimits>;
  /** Published member attributes by API member id. */
  readonly members = new Map<bigint, MemberAttributes>();
  private commitListeners: ((events: readonly KvEvent[], rev: number) => void)[] = [];
  private restoreListeners: (() => void)[] = [];
  private leaseListeners: ((c: LeaseChange) => void)[] = [];
  private appliedListeners: ((requestId: bigint, index: Index, result: ApplyResult) => void)[] = [];
  private applied: Index = 0;

  constructor(limits: Partial<MvccLimits> = {}) {
    this.limits = limits;
    this.kv = new MvccStore(limits);
    this.kv.onCommit((e, r) => this.emitCommit(e, r));
  }

  /** The store as of the last applied entry. Replaced wholesale when a snapshot is installed. */
  get store(): MvccStore {
    return this.kv;
  }

  /** Users, roles and permissions (replaced wholesale when a snapshot is installed). */
  get auth(): AuthStore {
    return this.authState;
  }

  get appliedIndex(): Index {
    return this.applied;
  }

  /** Every revision written, with its events (the watch hub and the lock waiters listen). */
  onCommit(fn: (events: readonly KvEvent[], rev: number) => void): void {
    this.commitListeners.push(fn);
  }

  /** After a snapshot replaced the store: listeners must re-read what they depend on. */
  onRestore(fn: () => void): void {
    this.restoreListeners.push(fn);
  }

  /** Both listeners at once, with a function that removes them (for short-lived waiters). */
  listen(commit: (events: readonly KvEvent[], rev: number) => void, restore: () => void): () => void {
    this.commitListeners.push(commit);
    this.restoreListeners.push(restore);
    return () => {
      this.commitListeners = this.commitListeners.filter((f) => f !== commit);
      this.restoreListeners = this.restoreListeners.filter((f) => f !== restore);
    };
  }

  onLease(fn: (c: LeaseChange) => void): void {
    this.leaseListeners.push(fn);
  }

  /**
   * After every applied entry: its request id (0n when none), index and result. The member
   * that proposed the entry answers its client from here (forwarded proposals included).
   */
  onApplied(fn: (requestId: bigint, index: Index, result: ApplyResult) => void): void {
    this.appliedListeners.push(fn);
  }

  /**
   * Total: whatever bytes the entry holds, every member gets the same result — a command's
   * value or etcd's refusal (a KvError), a malformed entry MALFORMED_ENTRY's refusal. Anything
   * else thrown here is a broken invariant of our own (a bug), and stops the member.
   */
  apply(entry: Entry): ApplyResult {
    this.applied = entry.index;
    const req = decodeRequest(entry.data);
    const result = req.ok ? this.runRequest(req.command, req.auth, entry.index) : { ok: false as const, error: malformedEntry(req.reason), revision: this.kv.revision };
    for (const l of this.appliedListeners) l(req.id, entry.index, result);
    return result;
  }

  private runRequest(cmd: Command, auth: AuthHeader | undefined, index: Index): ApplyResult {
    try {
      if (auth) this.checkPermission(cmd, auth);
      const value = isAuthCommand(cmd) ? this.authState.apply(cmd, index) : this.run(cmd);
      return { ok: true, value, revision: this.kv.revision };
    } catch (e) {
      if (e instanceof KvError) return { ok: false, error: { code: e.code, message: e.message }, revision: this.kv.revision };
      throw new Error(`applying a ${cmd.op} command broke an invariant: ${(e as Error)?.message ?? String(e)}`, { cause: e });
    }
  }

  /**
   * etcd's authApplierV3: the command's permissions checked against the auth state at this
   * entry (the same on every member), with the identity the receiving member put in it. A
   * request checked against an older auth revision than this entry's is refused (`revision of
   * auth store is old`), so a permission revoked while the request was under way is honoured.
   */
  private checkPermission(c: Command, h: AuthHeader): void {
    const a = this.authState;
    // With auth off everything is permitted (and a lease's keys need not be listed).
    if (!a.enabled) return;
    const leasePuts = (id: bigint): void => {
      for (const k of this.kv.lease(id)?.keys ?? []) a.checkPut(h, k);
    };
    const ops = (t: TxnRequest): void => {
      for (const cmp of t.compare) a.checkRange(h, cmp.key, cmp.rangeEnd ?? EMPTY);
      for (const op of [...t.success, ...t.failure]) {
        if ('range' in op) a.checkRange(h, op.range.key, op.range.rangeEnd ?? EMPTY);
        else if ('put' in op) a.checkPut(h, op.put.key);
        else if ('deleteRange' in op) {
          if (op.deleteRange.prevKv) a.checkRange(h, op.deleteRange.key, op.deleteRange.rangeEnd ?? EMPTY);
          a.checkDeleteRange(h, op.deleteRange.key, op.deleteRange.rangeEnd ?? EMPTY);
        } else ops(op.txn); // etcd 3.4 does not look into nested txns; every op is checked here.
      }
    };
    switch (c.op) {
      case 'put':
        a.checkPut(h, c.req.key);
        // A lease already attached to keys this user may not write cannot be attached here either.
        if (c.req.lease) leasePuts(c.req.lease);
        if (c.req.prevKv) a.checkRange(h, c.req.key, EMPTY);
        return;
      case 'deleteRange':
        a.checkDeleteRange(h, c.req.key, c.req.rangeEnd ?? EMPTY);
        if (c.req.prevKv) a.checkRange(h, c.req.key, c.req.rangeEnd ?? EMPTY);
        return;
      case 'txn':
        return ops(c.req);
      case 'leaseRevoke':
        return leasePuts(c.id);
      case 'authenticate':
      case 'compact':
      case 'leaseGrant':
      case 'publish':
        return;
      default:
        // Every other auth command is an administrator's (etcd's needAdminPermission).
        return a.checkAdmin(h);
    }
  }

  private run(c: Exclude<Command, AuthCommand>): CommandValue {
    switch (c.op) {
      case 'put':
        return { op: 'put', ...this.kv.put(c.req) };
      case 'deleteRange':
        return { op: 'deleteRange', ...this.kv.deleteRange(c.req) };
      case 'txn':
        return { op: 'txn', result: this.kv.txn(c.req) };
      case 'compact':
        this.kv.compact(c.revision);
        return { op: 'compact' };
      case 'leaseGrant':
        this.kv.grantLease(c.id, c.ttl);
        for (const l of this.leaseListeners) l({ kind: 'granted', id: c.id, ttl: c.ttl });
        return { op: 'leaseGrant', id: c.id, ttl: c.ttl };
      case 'leaseRevoke':
        this.kv.revokeLease(c.id);
        for (const l of this.leaseListeners) l({ kind: 'revoked', id: c.id });
        return { op: 'leaseRevoke' };
      case 'publish':
        this.members.set(c.member.id, c.member);
        return { op: 'publish' };
    }
  }

  private emitCommit(events: readonly KvEvent[], rev: number): void {
    for (const l of this.commitListeners) l(events, rev);
  }

  snapshot(): Uint8Array {
    const members = [...this.members.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const image: SnapshotImage = { v: 1, store: this.kv.snapshot(), members, auth: this.authState.image() };
    return encodeValue(image);
  }

  /**
   * Replaces the state by an image (from this member's snapshot file or the leader's snapshot
   * message: hostile bytes either way). The image is checked whole first (readImage); an image
   * no state machine could have written is a SnapshotImageError, and this state machine is
   * left as it was.
   */
  restore(data: Uint8Array, index: Index): void {
    const image = readImage(data, this.limits);
    this.kv = image.store;
    this.authState = image.auth;
    this.members.clear();
    for (const m of image.members) this.members.set(m.id, m);
    this.applied = index;
    this.kv.onCommit((e, r) => this.emitCommit(e, r));
    for (const l of this.restoreListeners) l();
  }
}

/**
 * The state an image holds, or SnapshotImageError. The format is encodeValue's JSON of a
 * SnapshotImage (bytes as {"$b": base64}, ids as {"$n": decimal}), read field by field here
 * rather than by decodeValue (whose reviver recurses as deep as the image nests, and trusts
 * the shape); the store's own image is checked by MvccStore.restore. Empty bytes: an empty
 * state machine (what a member without a snapshot restores).
 */
function readImage(data: Uint8Array, limits: Partial<MvccLimits>): { store: MvccStore; members: MemberAttributes[]; auth: AuthStore } {
  try {
    if (data.length === 0) return { store: new MvccStore(limits), members: [], auth: new AuthStore() };
    const parsed = parseImageJson(data, 'image');
    const hasAuth = parsed !== null && typeof parsed === 'object' && Object.prototype.hasOwnProperty.call(parsed, 'auth');
    const o = exactObject(parsed, 'image', hasAuth ? ['v', 'store', 'members', 'auth'] : ['v', 'store', 'members']);
    const auth = hasAuth ? AuthStore.fromImage(o.auth, 'image.auth') : new AuthStore();
    if (o.v !== 1) imageFail('image.v', `unknown state machine image version ${preview(o.v)}`);
    const storeBytes = base64Bytes(exactObject(o.store, 'image.store', ['$b']).$b, 'image.store.$b');
    const members: MemberAttributes[] = [];
    const list = arrayOf(o.members, 'image.members');
    for (let i = 0; i < list.length; i++) {
      const w = `image.members[${i}]`;
      const m = exactObject(list[i], w, ['id', 'name', 'clientUrls']);
      const id = decimalBigint(exactObject(m.id, `${w}.id`, ['$n']).$n, `${w}.id.$n`, 0n, MEMBER_ID_MAX);
      const prev = members.at(-1);
      if (prev && id <= prev.id) imageFail(`${w}.id`, 'member ids not sorted or not unique');
      if (typeof m.name !== 'string') imageFail(`${w}.name`, `expected a string, got ${preview(m.name)}`);
      const clientUrls = arrayOf(m.clientUrls, `${w}.clientUrls`).map((u, j) => (typeof u === 'string' ? u : imageFail(`${w}.clientUrls[${j}]`, `expected a string, got ${preview(u)}`)));
      members.push({ id, name: m.name, clientUrls });
    }
    return { store: MvccStore.restore(storeBytes, limits), members, auth };
  } catch (e) {
    if (e instanceof SnapshotImageError) throw new SnapshotImageError(`invalid state machine snapshot image: ${e.message}`, { cause: e });
    throw e;
  }
}
