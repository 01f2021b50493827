/**
 * The key-value state machine every member applies: commands from the Raft log run against
 * the MVCC store. Deterministic — no clock or randomness is read here (lease ids are chosen by
 * the proposer, lease expiry is decided by the leader and arrives as a revoke command) — so
 * members that applied the same log hold the same store and the same HashKV.
 */
import type { StateMachine } from '../node/node.js';
import type { Entry, Index } from '../raft/types.js';
import { decodeRequest, encodeValue, type ApplyResult, type Command, type CommandValue, type MemberAttributes } from './commands.js';
import { KvError, type GrpcCode } from './errors.js';
import { MemoryBackend, type Backend } from './backend.js';
import { metaKey, MvccStore, u64Bytes, u64Of, type KvEvent, type MvccLimits } from './mvcc.js';
import { arrayOf, base64Bytes, decimalBigint, exactObject, imageFail, MEMBER_ID_MAX, parseImageJson, preview, safeInt, SnapshotImageError } from './snapshot-image.js';

export { SnapshotImageError } from './snapshot-image.js';

/** The refusal every member gets for an entry whose bytes are not a command (decodeRequest's reason). */
export const malformedEntry = (reason: string): { code: GrpcCode; message: string } => ({ code: 'InvalidArgument', message: `etcdserver: malformed log entry: ${reason}` });

export type LeaseChange = { readonly kind: 'granted'; readonly id: bigint; readonly ttl: number } | { readonly kind: 'revoked'; readonly id: bigint };

/** A whole state machine image, at the index of the snapshot it travels under. */
interface SnapshotImage {
  readonly v: 1;
  readonly store: Uint8Array;
  readonly members: MemberAttributes[];
}

/**
 * The image of a state machine whose state is in its own durable backend: the snapshot taken
 * at `applied` only records that the backend holds everything up to there (the Raft log below
 * can be released). Restoring it is possible only into that backend (a no-op there).
 */
interface StoredImage {
  readonly v: 'stored';
  readonly applied: number;
}

/** Backend metadata: the last applied Raft index, written in the same batch as its effects. */
const META_APPLIED = metaKey('applied');
/** Backend metadata: the published member attributes, as JSON. */
const META_MEMBERS = metaKey('members');

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
  /** Where the store, the applied index and the members are kept. */
  readonly backend: Backend;

  /**
   * A state machine over `backend` (default: a fresh in-memory one), holding what the backend
   * holds — an LMDB backend reopened after a restart gives the state as of its last commit.
   */
  constructor(limits: Partial<MvccLimits> = {}, backend: Backend = new MemoryBackend()) {
    this.limits = limits;
    this.backend = backend;
    this.kv = new MvccStore(limits, backend);
    this.kv.onCommit((e, r) => this.emitCommit(e, r));
    this.applied = u64Of(backend.get(META_APPLIED));
    for (const m of readMembers(backend.get(META_MEMBERS))) this.members.set(m.id, m);
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
    // In the same backend batch as the entry's effects: a commit never holds one without the other.
    this.backend.put(META_APPLIED, u64Bytes(entry.index));
    const req = decodeRequest(entry.data);
    const result = req.ok ? this.runRequest(req.command) : { ok: false as const, error: malformedEntry(req.reason), revision: this.kv.revision };
    this.backend.maybeCommit();
    for (const l of this.appliedListeners) l(req.id, entry.index, result);
    return result;
  }

  /** The last index whose effects the state holds (what the backend held at open, then every apply or restore). */
  lastAppliedIndex(): Index {
    return this.applied;
  }

  /**
   * Commits the backend with everything applied so far, recording `index` (the Raft applied
   * index: entries after the last one with data carried none) as applied. Returns the image
   * for a Raft snapshot at `index`: a small StoredImage when the backend is durable (the log
   * below it can go: the backend has it all), else the whole image.
   */
  persistTo(index: Index): Uint8Array {
    if (index > this.applied) {
      this.applied = index;
      this.backend.put(META_APPLIED, u64Bytes(index));
    }
    this.backend.commit();
    if (!this.backend.durable) return this.snapshot();
    const image: StoredImage = { v: 'stored', applied: this.applied };
    return new TextEncoder().encode(JSON.stringify(image));
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
        this.backend.put(META_MEMBERS, writeMembers(this.members));
        return { op: 'publish' };
    }
  }

  private emitCommit(events: readonly KvEvent[], rev: number): void {
    for (const l of this.commitListeners) l(events, rev);
  }

  /** The whole state, at the last applied index (whole-store serialisation: not for the steady state). */
  snapshot(): Uint8Array {
    const members = sortedMembers(this.members);
    const image: SnapshotImage = { v: 1, store: this.kv.snapshot(), members };
    return encodeValue(image);
  }

  /**
   * Replaces the state by an image (from this member's snapshot file or the leader's snapshot
   * message: hostile bytes either way). The image is checked whole first (readImage); an image
   * no state machine could have written is a SnapshotImageError, and this state machine is
   * left as it was.
   */
  restore(data: Uint8Array, index: Index): void {
    const image = readImage(data, index, this.applied);
    if (image === 'stored') return;
    // MvccStore.restore checks the store's image whole before it rewrites the backend (as one
    // batch, committed below): a refused image leaves everything as it was.
    this.kv = explainImage(() => MvccStore.restore(image.store, this.limits, this.backend));
    this.members.clear();
    for (const m of image.members) this.members.set(m.id, m);
    this.applied = index;
    this.backend.put(META_APPLIED, u64Bytes(this.applied));
    this.backend.put(META_MEMBERS, writeMembers(this.members));
    this.backend.commit();
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
function readImage(data: Uint8Array, index: Index, held: Index): { store: Uint8Array; members: MemberAttributes[] } | 'stored' {
  return explainImage(() => {
    if (data.length === 0) return { store: new Uint8Array(0), members: [] };
    const json = parseImageJson(data, 'image');
    if (json !== null && typeof json === 'object' && !Array.isArray(json) && (json as Record<string, unknown>).v === 'stored') {
      const o = exactObject(json, 'image', ['v', 'applied']);
      const applied = safeInt(o.applied, 'image.applied', index, index);
      if (held < applied) imageFail('image', `the snapshot at index ${index} is kept in the store's own backend, which holds only up to index ${held}: was the backend file lost?`);
      return 'stored';
    }
    const o = exactObject(json, 'image', ['v', 'store', 'members']);
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
    // The store's own image is checked by MvccStore.restore, whole, before it writes anything.
    return { store: storeBytes, members };
  });
}

/** f's SnapshotImageError, saying it is about a state machine image. */
function explainImage<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof SnapshotImageError) throw new SnapshotImageError(`invalid state machine snapshot image: ${e.message}`, { cause: e });
    throw e;
  }
}

function sortedMembers(members: Map<bigint, MemberAttributes>): MemberAttributes[] {
  return [...members.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

function writeMembers(members: Map<bigint, MemberAttributes>): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(sortedMembers(members).map((m) => ({ id: m.id.toString(), name: m.name, clientUrls: m.clientUrls }))));
}

/** The members as writeMembers wrote them into this member's own backend. */
function readMembers(b: Uint8Array | undefined): MemberAttributes[] {
  if (b === undefined) return [];
  const list = JSON.parse(new TextDecoder().decode(b)) as { id: string; name: string; clientUrls: string[] }[];
  return list.map((m) => ({ id: BigInt(m.id), name: m.name, clientUrls: m.clientUrls }));
}
