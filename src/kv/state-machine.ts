/**
 * The key-value state machine every member applies: commands from the Raft log run against
 * the MVCC store. Deterministic — no clock or randomness is read here (lease ids are chosen by
 * the proposer, lease expiry is decided by the leader and arrives as a revoke command) — so
 * members that applied the same log hold the same store and the same HashKV.
 */
import type { StateMachine } from '../node/node.js';
import type { ConfChange, Entry, Index } from '../raft/types.js';
import { decodeRequest, encodeValue, type ApplyResult, type Command, type CommandValue, type MemberAttributes } from './commands.js';
import { KvError, type GrpcCode } from './errors.js';
import { decodeMemberChange, MemberTable, type MemberChange } from './membership.js';
import { MvccStore, type KvEvent, type MvccLimits } from './mvcc.js';
import { arrayOf, base64Bytes, decimalBigint, exactObject, imageFail, MEMBER_ID_MAX, parseImageJson, preview, SnapshotImageError } from './snapshot-image.js';

export { SnapshotImageError } from './snapshot-image.js';

/** The refusal every member gets for an entry whose bytes are not a command (decodeRequest's reason). */
export const malformedEntry = (reason: string): { code: GrpcCode; message: string } => ({ code: 'InvalidArgument', message: `etcdserver: malformed log entry: ${reason}` });

export type LeaseChange = { readonly kind: 'granted'; readonly id: bigint; readonly ttl: number } | { readonly kind: 'revoked'; readonly id: bigint };

interface SnapshotImage {
  /** 1: no member table (the bootstrap table applies); 2: with it. */
  readonly v: 1 | 2;
  readonly store: Uint8Array;
  readonly members: MemberAttributes[];
  readonly cluster?: ReturnType<MemberTable['toImage']>;
}

export interface KvStateMachineOptions extends Partial<MvccLimits> {
  /** The member table before any entry (the bootstrap members; none for a member that joins). */
  readonly bootstrapMembers?: readonly { readonly raftId: number; readonly id: bigint; readonly peerUrls: readonly string[] }[];
}

export class KvStateMachine implements StateMachine<ApplyResult> {
  private kv: MvccStore;
  private readonly limits: Partial<MvccLimits>;
  /** Published member attributes by API member id. */
  readonly members = new Map<bigint, MemberAttributes>();
  private commitListeners: ((events: readonly KvEvent[], rev: number) => void)[] = [];
  private restoreListeners: (() => void)[] = [];
  private leaseListeners: ((c: LeaseChange) => void)[] = [];
  private appliedListeners: ((requestId: bigint, index: Index, result: ApplyResult) => void)[] = [];
  private applied: Index = 0;
  private readonly bootstrapMembers: NonNullable<KvStateMachineOptions['bootstrapMembers']>;
  /** The replicated member table (membership.ts): changed only by configuration changes in the log. */
  private table: MemberTable;
  private membershipListeners: ((c: MemberChange | null) => void)[] = [];

  constructor(options: KvStateMachineOptions = {}) {
    const { bootstrapMembers, ...limits } = options;
    this.limits = limits;
    this.bootstrapMembers = bootstrapMembers ?? [];
    this.table = MemberTable.bootstrap(this.bootstrapMembers);
    this.kv = new MvccStore(limits);
    this.kv.onCommit((e, r) => this.emitCommit(e, r));
  }

  /** The store as of the last applied entry. Replaced wholesale when a snapshot is installed. */
  get store(): MvccStore {
    return this.kv;
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

  /** The member table as of the last applied entry. */
  get cluster(): MemberTable {
    return this.table;
  }

  /** After every applied configuration change (its member change, null if it carried none) and after a restore (null). */
  onMembership(fn: (c: MemberChange | null) => void): void {
    this.membershipListeners.push(fn);
  }

  /** A committed configuration change: the member change in its context updates the table (total: garbage changes nothing). */
  applyConfChange(cc: ConfChange, index: Index): void {
    this.applied = index;
    const c = decodeMemberChange(cc.context);
    if (c) this.table.apply(c);
    for (const l of this.membershipListeners) l(c);
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
    const result = req.ok ? this.runRequest(req.command) : { ok: false as const, error: malformedEntry(req.reason), revision: this.kv.revision };
    for (const l of this.appliedListeners) l(req.id, entry.index, result);
    return result;
  }

  private runRequest(cmd: Command): ApplyResult {
    try {
      const value = this.run(cmd);
      return { ok: true, value, revision: this.kv.revision };
    } catch (e) {
      if (e instanceof KvError) return { ok: false, error: { code: e.code, message: e.message }, revision: this.kv.revision };
      throw new Error(`applying a ${cmd.op} command broke an invariant: ${(e as Error)?.message ?? String(e)}`, { cause: e });
    }
  }

  private run(c: Command): CommandValue {
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
    const image: SnapshotImage = { v: 2, store: this.kv.snapshot(), members, cluster: this.table.toImage() };
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
    this.table = image.cluster ?? MemberTable.bootstrap(this.bootstrapMembers);
    this.members.clear();
    for (const m of image.members) this.members.set(m.id, m);
    this.applied = index;
    this.kv.onCommit((e, r) => this.emitCommit(e, r));
    for (const l of this.restoreListeners) l();
    for (const l of this.membershipListeners) l(null);
  }
}

/**
 * The state an image holds, or SnapshotImageError. The format is encodeValue's JSON of a
 * SnapshotImage (bytes as {"$b": base64}, ids as {"$n": decimal}), read field by field here
 * rather than by decodeValue (whose reviver recurses as deep as the image nests, and trusts
 * the shape); the store's own image is checked by MvccStore.restore. Empty bytes: an empty
 * state machine (what a member without a snapshot restores).
 */
function readImage(data: Uint8Array, limits: Partial<MvccLimits>): { store: MvccStore; members: MemberAttributes[]; cluster: MemberTable | null } {
  try {
    if (data.length === 0) return { store: new MvccStore(limits), members: [], cluster: null };
    const json = parseImageJson(data, 'image');
    if (json === null || typeof json !== 'object' || Array.isArray(json)) return exactObject(json, 'image', []) as never;
    const version = (json as Record<string, unknown>).v;
    if (version !== 1 && version !== 2) imageFail('image.v', `unknown state machine image version ${preview(version)}`);
    const o = exactObject(json, 'image', version === 1 ? ['v', 'store', 'members'] : ['v', 'store', 'members', 'cluster']);
    let cluster: MemberTable | null = null;
    if (version === 2) {
      const t = MemberTable.fromImage(o.cluster);
      if (typeof t === 'string') imageFail('image.cluster', t);
      cluster = t;
    }
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
    return { store: MvccStore.restore(storeBytes, limits), members, cluster };
  } catch (e) {
    if (e instanceof SnapshotImageError) throw new SnapshotImageError(`invalid state machine snapshot image: ${e.message}`, { cause: e });
    throw e;
  }
}
