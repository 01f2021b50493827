/**
 * The key-value state machine every member applies: commands from the Raft log run against
 * the MVCC store. Deterministic — no clock or randomness is read here (lease ids are chosen by
 * the proposer, lease expiry is decided by the leader and arrives as a revoke command) — so
 * members that applied the same log hold the same store and the same HashKV.
 */
import type { StateMachine } from '../node/node.js';
import type { ConfChange, Entry, Index } from '../raft/types.js';
import { AuthStore, isAuthCommand, type AuthCommand, type AuthHeader, type AuthImage } from './auth-store.js';
import { ALARM_TYPES, decodeRequest, encodeValue, type AlarmCommand, type AlarmMember, type AlarmType, type ApplyResult, type Command, type CommandValue, type LeaseCheckpoint, type MemberAttributes } from './commands.js';
import { ERR, KvError, type ErrorCode } from './errors.js';
import { decodeMemberChange, MemberTable, type MemberChange } from './membership.js';
import { MemoryBackend, type Backend, type BackendReadView } from './backend.js';
import { metaKey, MvccStore, u64Bytes, u64Of, type KvEvent, type MvccLimits, type TxnRequest, type ValidatedStoreImage } from './mvcc.js';
import { arrayOf, base64Bytes, decimalBigint, exactObject, imageFail, MEMBER_ID_MAX, parseImageJson, preview, readLeaseCheckpoints, safeInt, SnapshotImageError } from './snapshot-image.js';

export { SnapshotImageError } from './snapshot-image.js';

const EMPTY = new Uint8Array(0);

/** The refusal every member gets for an entry whose bytes are not a command (decodeRequest's reason). */
export const malformedEntry = (reason: string): { code: ErrorCode; message: string } => ({ code: 'malformedEntry', message: `etcdserver: malformed log entry: ${reason}` });

export type LeaseChange = { readonly kind: 'granted'; readonly id: bigint; readonly ttl: number } | { readonly kind: 'revoked'; readonly id: bigint };

interface SnapshotImage {
  /** 1: no member table (the bootstrap table applies); 2: with it. */
  readonly v: 1 | 2;
  readonly store: Uint8Array;
  readonly members: MemberAttributes[];
  /** The active alarms as [member id (decimal), type], sorted; absent when there is none. */
  readonly alarms?: [string, AlarmType][];
  /** Checkpointed remaining times, by lease id ascending (optional when reading: images from before checkpoints have none). */
  readonly leaseCheckpoints?: { id: bigint; remainingMs: number }[];
  /** Users, roles, the auth flag and revision (absent in images written before auth: nothing). */
  readonly auth?: AuthImage;
  readonly cluster?: ReturnType<MemberTable['toImage']>;
}

export interface KvStateMachineOptions extends Partial<MvccLimits> {
  /** The member table before any entry (the bootstrap members; none for a member that joins). */
  readonly bootstrapMembers?: readonly { readonly raftId: number; readonly id: bigint; readonly peerUrls: readonly string[] }[];
  /** The backend holds a store streamed by a peer: verified whole at open (MvccOpenOptions.verify), refused with SnapshotImageError. */
  readonly streamedStore?: boolean;
}

/**
 * Alarms held at once. Any client may raise an alarm for any member id (as in etcd), so the
 * table is bounded: an activation beyond it is refused (ERR.tooManyAlarms) and changes nothing.
 */
export const ALARMS_MAX = 256;

/** etcd's applierV3Corrupt: while CORRUPT is active these are refused (reads served without the log still work). */
const CORRUPT_REFUSES: ReadonlySet<Command['op']> = new Set(['put', 'deleteRange', 'txn', 'compact', 'leaseGrant', 'leaseRevoke']);

/** Whether a txn holds a put in either branch (nested txns included): what the NOSPACE alarm refuses. */
function txnHasPut(t: TxnRequest): boolean {
  return [...t.success, ...t.failure].some((op) => 'put' in op || ('txn' in op && txnHasPut(op.txn)));
}

const alarmOrder = (a: AlarmMember, b: AlarmMember): number => (a.memberId < b.memberId ? -1 : a.memberId > b.memberId ? 1 : ALARM_TYPES.indexOf(a.alarm) - ALARM_TYPES.indexOf(b.alarm));

/**
 * The image of a state machine whose state is in its own durable backend: the snapshot taken
 * at `applied` only records that the backend holds everything up to there (the Raft log below
 * can be released). Restoring it is possible only into that backend (a no-op there).
 */
interface StoredImage {
  readonly v: 'stored';
  readonly applied: number;
}

/**
 * The image of a snapshot streamed from the leader (src/server/snapshot-stream.ts): the store
 * itself was received, checked and kept in a staging backend under the stream's id; restoring
 * this image installs that backend. What the core and the snapshot file see is only this.
 */
export interface StreamedImage {
  readonly v: 'streamed';
  readonly index: number;
  readonly id: string;
}

/** The bytes of a StreamedImage (what the receiving side hands its core in the snapshot message). */
export function streamedImage(index: Index, id: string): Uint8Array {
  const image: StreamedImage = { v: 'streamed', index, id };
  return new TextEncoder().encode(JSON.stringify(image));
}

/** Where restore finds the staging backend a stream with this id filled (null: none complete). */
export type StreamedSnapshots = (id: string, index: Index) => Backend | null;

/** A snapshot stream's id: what snapshot-stream.ts makes (hex), checked wherever an image names one. */
export const STREAM_ID_PATTERN = /^[0-9a-f]{32}$/;

/**
 * Backend metadata, written in the same batch as the entry that changed it, so that a member
 * that restarts from its backend (replaying only the log after its applied index) holds
 * everything the log gave it: the applied index, the published members, and the replicated
 * state beside the key space (member table, auth, alarms: each as its snapshot image section;
 * lease checkpoints: one key per lease).
 */
const META_APPLIED = metaKey('applied');
const META_MEMBERS = metaKey('members');
const META_CLUSTER = metaKey('cluster');
const META_AUTH = metaKey('auth');
const META_ALARMS = metaKey('alarms');
const checkpointKey = (id: bigint): Uint8Array => metaKey(`lease-checkpoint/${id}`);

export class KvStateMachine implements StateMachine<ApplyResult> {
  private kv: MvccStore;
  private authState = new AuthStore();
  private readonly limits: Partial<MvccLimits>;
  /** Published member attributes by API member id. */
  readonly members = new Map<bigint, MemberAttributes>();
  /**
   * Lease checkpoints (etcd's Lease.remainingTTL): ms a lease had left when the leader last
   * recorded it. Absent: no checkpoint, a new leader gives the lease its full TTL. Invariant:
   * every id here is a lease of the store, with 0 < remaining <= its TTL.
   */
  private readonly leaseRemaining = new Map<bigint, number>();
  private commitListeners: ((events: readonly KvEvent[], rev: number) => void)[] = [];
  private restoreListeners: (() => void)[] = [];
  private leaseListeners: ((c: LeaseChange) => void)[] = [];
  private appliedListeners: ((requestId: bigint, index: Index, result: ApplyResult) => void)[] = [];
  private applied: Index = 0;
  /** Active alarms, sorted by member id then type (alarmOrder), each once. */
  private alarmList: AlarmMember[] = [];
  private readonly bootstrapMembers: NonNullable<KvStateMachineOptions['bootstrapMembers']>;
  /** The replicated member table (membership.ts): changed only by configuration changes in the log. */
  private table: MemberTable;
  private membershipListeners: ((c: MemberChange | null) => void)[] = [];
  private streamed: StreamedSnapshots = () => null;

  /** Where the store, the applied index and the rest of the replicated state are kept. */
  readonly backend: Backend;

  /**
   * A state machine over `backend` (default: a fresh in-memory one), holding what the backend
   * holds — an LMDB backend reopened after a restart gives the state as of its last commit.
   */
  constructor(options: KvStateMachineOptions = {}, backend: Backend = new MemoryBackend()) {
    const { bootstrapMembers, streamedStore, ...limits } = options;
    this.limits = limits;
    this.bootstrapMembers = bootstrapMembers ?? [];
    this.table = MemberTable.bootstrap(this.bootstrapMembers);
    this.backend = backend;
    this.kv = new MvccStore(limits, backend, { verify: streamedStore === true });
    this.applied = u64Of(backend.get(META_APPLIED));
    explainImage(() => this.loadState());
    this.kv.onCommit((e, r) => this.emitCommit(e, r));
  }

  /** The state beside the key space as this backend holds it (our own file: read with the image checks all the same). */
  private loadState(): void {
    for (const m of readMembers(this.backend.get(META_MEMBERS))) this.members.set(m.id, m);
    const section = (key: Uint8Array, what: string): unknown => {
      const b = this.backend.get(key);
      return b === undefined ? undefined : parseImageJson(b, what);
    };
    const cluster = section(META_CLUSTER, 'image.cluster');
    if (cluster !== undefined) {
      const t = MemberTable.fromImage(cluster);
      if (typeof t === 'string') imageFail('image.cluster', t);
      this.table = t;
    }
    const auth = section(META_AUTH, 'image.auth');
    if (auth !== undefined) this.authState = AuthStore.fromImage(auth, 'image.auth');
    const alarms = section(META_ALARMS, 'image.alarms');
    if (alarms !== undefined) this.alarmList = alarms === null ? [] : readAlarms(alarms);
    for (const id of this.kv.leaseIds()) {
      const b = this.backend.get(checkpointKey(id));
      if (b !== undefined) this.leaseRemaining.set(id, u64Of(b));
    }
  }

  private saveCluster(): void {
    this.backend.put(META_CLUSTER, encodeValue(this.table.toImage()));
  }

  private saveAuth(): void {
    this.backend.put(META_AUTH, encodeValue(this.authState.image()));
  }

  private saveAlarms(): void {
    this.backend.put(META_ALARMS, this.alarmList.length === 0 ? encodeValue(null) : encodeValue(this.alarmList.map((a): [string, AlarmType] => [a.memberId.toString(), a.alarm])));
  }

  private saveCheckpoint(id: bigint): void {
    const ms = this.leaseRemaining.get(id);
    if (ms === undefined) this.backend.del(checkpointKey(id));
    else this.backend.put(checkpointKey(id), u64Bytes(ms));
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

  /** The lease's checkpointed remaining time in ms, or undefined when it has none (or does not exist). */
  leaseRemainingMs(id: bigint): number | undefined {
    return this.kv.lease(id) ? this.leaseRemaining.get(id) : undefined;
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
    this.backend.put(META_APPLIED, u64Bytes(index));
    const c = decodeMemberChange(cc.context);
    if (c) {
      this.table.apply(c);
      this.saveCluster();
    }
    this.backend.maybeCommit();
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

  /** The active alarms (of one type, or all), sorted by member id then type. */
  alarms(type?: AlarmType): AlarmMember[] {
    return this.alarmList.filter((a) => type === undefined || a.alarm === type);
  }

  hasAlarm(type: AlarmType, memberId?: bigint): boolean {
    return this.alarmList.some((a) => a.alarm === type && (memberId === undefined || a.memberId === memberId));
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
    const result = req.ok ? this.runRequest(req.command, req.auth, entry.index) : { ok: false as const, error: malformedEntry(req.reason), revision: this.kv.revision };
    if (req.ok && result.ok && isAuthCommand(req.command)) this.saveAuth();
    this.backend.maybeCommit();
    for (const l of this.appliedListeners) l(req.id, entry.index, result);
    return result;
  }

  /**
   * Installs the staging backend a snapshot stream filled: it is checked first as this
   * member's own backend is at open (a layout 1 store migrated, the state sections read with
   * the image checks), its store's records verified against each other (MvccOpenOptions.verify:
   * once, here), and must record `index` as applied; only then does the backend adopt it
   * (atomically) and the state reload from it (the store taken over from the check). Refused: SnapshotImageError, nothing changed.
   */
  private installStreamed(id: string, index: Index): void {
    // Already installed (a restart after the install, before the snapshot was superseded).
    if (this.applied >= index) return;
    const staged = this.streamed(id, index);
    if (!staged) imageFail('image', `the snapshot at index ${index} was streamed (id ${id}), but no complete received image with that id is kept: was the receive area lost?`);
    const probe = explainImage(() => new KvStateMachine({ ...this.limits, bootstrapMembers: this.bootstrapMembers, streamedStore: true }, staged));
    if (probe.applied !== index) imageFail('image', `the received store records index ${probe.applied} as applied, not the snapshot's ${index}`);
    this.backend.adopt(staged);
    // The probe opened (and, if need be, migrated) the staged store, which this backend now is: taken over, not opened again.
    this.kv = MvccStore.takeOver(probe.store, this.limits, this.backend);
    this.authState = new AuthStore();
    this.table = MemberTable.bootstrap(this.bootstrapMembers);
    this.members.clear();
    this.alarmList = [];
    this.leaseRemaining.clear();
    this.applied = u64Of(this.backend.get(META_APPLIED));
    explainImage(() => this.loadState());
    this.kv.onCommit((e, r) => this.emitCommit(e, r));
    for (const l of this.restoreListeners) l();
    for (const l of this.membershipListeners) l(null);
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

  /** Writes the applied index and the whole state beside the key space into the backend (not committed). */
  private saveState(): void {
    this.backend.put(META_APPLIED, u64Bytes(this.applied));
    this.backend.put(META_MEMBERS, writeMembers(this.members));
    this.saveCluster();
    this.saveAuth();
    this.saveAlarms();
    for (const id of this.leaseRemaining.keys()) this.saveCheckpoint(id);
  }

  /**
   * persistTo(index) of a state machine whose store was written into its backend from outside
   * (snapshot restore: MvccStore.importRevisions), with nothing applied yet: records `index` as
   * applied and the state beside the key space (the bootstrap member table, no auth, no
   * alarms) as restoring an image at `index` would, so the backend is what a member that
   * applied the store and took a snapshot at `index` holds.
   */
  persistImported(index: Index): Uint8Array {
    if (this.applied !== 0) throw new Error(`persistImported of a state machine that applied up to ${this.applied}`);
    this.applied = index;
    this.saveState();
    return this.persistTo(index);
  }

  /**
   * A consistent view of the whole state at `index` (the applied index), to stream to a
   * lagging member: the backend is committed with `index` recorded as applied (as persistTo),
   * then read in one read transaction. The caller closes the view.
   */
  snapshotView(index: Index): BackendReadView {
    this.persistTo(index);
    return this.backend.readView();
  }

  /** Where `restore` of a streamed image finds its staging backend (set by the snapshot stream's receiver). */
  setStreamedSnapshots(source: StreamedSnapshots): void {
    this.streamed = source;
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
      // alarm and leaseCheckpoint: proposed by members themselves (the NOSPACE alarm, the lessor); etcd 3.4 checks neither.
      case 'authenticate':
      case 'compact':
      case 'leaseGrant':
      case 'publish':
      case 'alarm':
      case 'leaseCheckpoint':
        return;
      default:
        // Every other auth command is an administrator's (etcd's needAdminPermission).
        return a.checkAdmin(h);
    }
  }

  private run(c: Exclude<Command, AuthCommand>): CommandValue {
    // As etcd's applierV3Corrupt and applierV3Capped, which replace its applier while the alarm is active.
    if (CORRUPT_REFUSES.has(c.op) && this.hasAlarm('CORRUPT')) throw ERR.corrupt();
    if ((c.op === 'put' || c.op === 'leaseGrant' || (c.op === 'txn' && txnHasPut(c.req))) && this.hasAlarm('NOSPACE')) throw ERR.noSpace();
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
        this.leaseRemaining.delete(c.id);
        for (const l of this.leaseListeners) l({ kind: 'granted', id: c.id, ttl: c.ttl });
        return { op: 'leaseGrant', id: c.id, ttl: c.ttl };
      case 'leaseRevoke':
        this.kv.revokeLease(c.id);
        this.leaseRemaining.delete(c.id);
        this.saveCheckpoint(c.id);
        for (const l of this.leaseListeners) l({ kind: 'revoked', id: c.id });
        return { op: 'leaseRevoke' };
      case 'publish':
        this.members.set(c.member.id, c.member);
        this.backend.put(META_MEMBERS, writeMembers(this.members));
        return { op: 'publish' };
      case 'alarm': {
        const alarms = this.runAlarm(c);
        this.saveAlarms();
        return { op: 'alarm', alarms };
      }
      case 'leaseCheckpoint':
        this.checkpoint(c.checkpoints);
        return { op: 'leaseCheckpoint' };
    }
  }

  /**
   * As etcd's lessor.Checkpoint: a checkpoint of a lease that no longer exists is ignored (it
   * was revoked after the leader proposed it); a remaining time beyond the TTL is held to it.
   */
  private checkpoint(cps: readonly LeaseCheckpoint[]): void {
    for (const cp of cps) {
      const l = this.kv.lease(cp.id);
      if (!l) continue;
      const ms = Math.min(cp.remainingMs, l.ttl * 1000);
      if (ms === 0) this.leaseRemaining.delete(cp.id);
      else this.leaseRemaining.set(cp.id, ms);
      this.saveCheckpoint(cp.id);
    }
  }

  /** etcd's AlarmStore Activate / Deactivate: the alarm as it is (or was) active, or nothing. */
  private runAlarm(c: AlarmCommand): AlarmMember[] {
    const i = this.alarmList.findIndex((a) => alarmOrder(a, c.member) === 0);
    if (c.action === 'activate') {
      if (i >= 0) return [this.alarmList[i]!];
      if (this.alarmList.length >= ALARMS_MAX) throw ERR.tooManyAlarms();
      const m = { memberId: c.member.memberId, alarm: c.member.alarm };
      this.alarmList = [...this.alarmList, m].sort(alarmOrder);
      return [m];
    }
    if (i < 0) return [];
    const [m] = this.alarmList.splice(i, 1);
    return [m!];
  }

  private emitCommit(events: readonly KvEvent[], rev: number): void {
    for (const l of this.commitListeners) l(events, rev);
  }

  snapshot(): Uint8Array {
    const members = [...this.members.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const alarms = this.alarmList.map((a): [string, AlarmType] => [a.memberId.toString(), a.alarm]);
    // Only leases the store holds (the invariant; kept even if a lease left the store some other way).
    const leaseCheckpoints = [...this.leaseRemaining]
      .filter(([id]) => this.kv.lease(id) !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([id, remainingMs]) => ({ id, remainingMs }));
    // Optional sections are written only when non-empty: an image without them is byte-identical to one from before they existed.
    const image: SnapshotImage = { v: 2, store: this.kv.snapshot(), members, cluster: this.table.toImage(), auth: this.authState.image(), ...(leaseCheckpoints.length > 0 ? { leaseCheckpoints } : {}), ...(alarms.length > 0 ? { alarms } : {}) };
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
    if (image.streamed !== undefined) return this.installStreamed(image.streamed, index);
    // Everything was checked above; MvccStore.restoreValidated rewrites the backend (as one
    // batch, committed below), then the state beside the key space is written with it.
    this.kv = MvccStore.restoreValidated(image.store, this.limits, this.backend);
    this.authState = image.auth;
    this.table = image.cluster ?? MemberTable.bootstrap(this.bootstrapMembers);
    this.members.clear();
    for (const m of image.members) this.members.set(m.id, m);
    this.alarmList = image.alarms;
    this.leaseRemaining.clear();
    for (const cp of image.leaseCheckpoints) this.leaseRemaining.set(cp.id, cp.remainingMs);
    this.applied = index;
    this.saveState();
    this.backend.commit();
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
function readImage(data: Uint8Array, index: Index, held: Index): { streamed?: undefined; store: ValidatedStoreImage; members: MemberAttributes[]; cluster: MemberTable | null; leaseCheckpoints: LeaseCheckpoint[]; alarms: AlarmMember[]; auth: AuthStore } | { streamed: string } | 'stored' {
  try {
    if (data.length === 0) return { store: MvccStore.validate(data), members: [], cluster: null, leaseCheckpoints: [], alarms: [], auth: new AuthStore() };
    const json = parseImageJson(data, 'image');
    if (json !== null && typeof json === 'object' && !Array.isArray(json) && (json as Record<string, unknown>).v === 'stored') {
      const o = exactObject(json, 'image', ['v', 'applied']);
      safeInt(o.applied, 'image.applied', index, index);
      if (held < index) imageFail('image', `the snapshot at index ${index} is kept in the store's own backend, which holds only up to index ${held}: was the backend file lost?`);
      return 'stored';
    }
    if (json !== null && typeof json === 'object' && !Array.isArray(json) && (json as Record<string, unknown>).v === 'streamed') {
      const o = exactObject(json, 'image', ['v', 'index', 'id']);
      safeInt(o.index, 'image.index', index, index);
      if (typeof o.id !== 'string' || !STREAM_ID_PATTERN.test(o.id)) imageFail('image.id', `not a snapshot stream id: ${preview(o.id)}`);
      return { streamed: o.id };
    }
    if (json === null || typeof json !== 'object' || Array.isArray(json)) return exactObject(json, 'image', []) as never;
    const version = (json as Record<string, unknown>).v;
    if (version !== 1 && version !== 2) imageFail('image.v', `unknown state machine image version ${preview(version)}`);
    // Version 2 adds the member table; the other sections are optional in both (written only when not empty).
    const o = exactObject(json, 'image', version === 1 ? ['v', 'store', 'members'] : ['v', 'store', 'members', 'cluster'], ['leaseCheckpoints', 'alarms', 'auth']);
    let cluster: MemberTable | null = null;
    if (version === 2) {
      const t = MemberTable.fromImage(o.cluster);
      if (typeof t === 'string') imageFail('image.cluster', t);
      cluster = t;
    }
    const auth = Object.prototype.hasOwnProperty.call(o, 'auth') ? AuthStore.fromImage(o.auth, 'image.auth') : new AuthStore();
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
    const alarms = o.alarms === undefined ? [] : readAlarms(o.alarms);
    const store = MvccStore.validate(storeBytes);
    const ttls = new Map(store.leases.map((l) => [l.id, l.ttl]));
    const leaseCheckpoints = o.leaseCheckpoints === undefined ? [] : readLeaseCheckpoints(o.leaseCheckpoints, 'image.leaseCheckpoints', (id) => ttls.get(id));
    return { store, members, cluster, leaseCheckpoints, alarms, auth };
  } catch (e) {
    if (e instanceof SnapshotImageError) throw new SnapshotImageError(`invalid state machine snapshot image: ${e.message}`, { cause: e });
    throw e;
  }
}

/** image.alarms: a non-empty list (none is written as no field) of [member id, type], sorted and unique, at most ALARMS_MAX. */
function readAlarms(v: unknown): AlarmMember[] {
  const list = arrayOf(v, 'image.alarms');
  if (list.length === 0) imageFail('image.alarms', 'empty (no alarm is written as no field)');
  if (list.length > ALARMS_MAX) imageFail('image.alarms', `${list.length} alarms, more than ${ALARMS_MAX}`);
  const alarms: AlarmMember[] = [];
  for (let i = 0; i < list.length; i++) {
    const w = `image.alarms[${i}]`;
    const item = arrayOf(list[i], w, 2);
    const memberId = decimalBigint(item[0], `${w}[0]`, 0n, MEMBER_ID_MAX);
    const alarm = ALARM_TYPES.find((t) => t === item[1]) ?? imageFail(`${w}[1]`, `not an alarm type: ${preview(item[1])}`);
    const m = { memberId, alarm };
    const prev = alarms.at(-1);
    if (prev && alarmOrder(prev, m) >= 0) imageFail(w, 'alarms not sorted or not unique');
    alarms.push(m);
  }
  return alarms;
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
