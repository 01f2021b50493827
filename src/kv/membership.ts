/**
 * The replicated member table: which members the cluster has (API member id, Raft id, peer
 * URLs, learner or voter) and which member ids were removed for good. It changes only by the
 * configuration changes in the Raft log: each carries a MemberChange as its context (etcd puts
 * the member in its ConfChange's context the same way), and every member applies them in log
 * order (KvStateMachine.applyConfChange), so every member holds the same table; it travels in
 * the state machine's snapshot image. Names and client URLs are not here: a member publishes
 * them itself once it runs (KvStateMachine.members), as etcd's attributes.
 *
 * A cluster bootstrapped with --initial-cluster-state new starts from the table its flags give
 * (Raft ids 1..n by name, ids as etcd computes them): every bootstrap member computes the same.
 * A member that joins (--initial-cluster-state existing) starts empty and receives the table
 * with its first snapshot.
 */
import { createHash } from 'node:crypto';

/** Raft ids fit the 16 member bits of a request id (peer-calls.ts); they are never reused, so a cluster admits this many members over its life. */
export const RAFT_ID_MAX = 0xffff;
/** Peer URLs one member may have. */
export const MEMBER_PEER_URLS_MAX = 16;
/** Bytes of one peer URL. */
export const PEER_URL_BYTES_MAX = 256;
/** Learners at once, as etcd 3.4's maxLearners. */
export const LEARNERS_MAX = 1;

export interface ClusterMember {
  readonly raftId: number;
  readonly id: bigint;
  readonly peerUrls: readonly string[];
  readonly isLearner: boolean;
}

/** What a configuration change does to the table (its ConfChange context). */
export type MemberChange =
  | { readonly op: 'add'; readonly raftId: number; readonly id: bigint; readonly peerUrls: readonly string[]; readonly isLearner: boolean }
  | { readonly op: 'remove'; readonly raftId: number; readonly id: bigint }
  | { readonly op: 'update'; readonly raftId: number; readonly id: bigint; readonly peerUrls: readonly string[] }
  | { readonly op: 'promote'; readonly raftId: number; readonly id: bigint };

const U64_MAX = (1n << 64n) - 1n;

/**
 * etcd's id for a member added at runtime (membership.NewMember as etcd's MemberAdd calls it:
 * no cluster name, the time in seconds): SHA-1 of the sorted peer URLs, then the Unix time in
 * decimal; the first 8 bytes, big-endian.
 */
export function newMemberId(peerUrls: readonly string[], nowSeconds: number): bigint {
  const h = createHash('sha1').update([...peerUrls].sort().join('') + String(Math.floor(nowSeconds))).digest();
  return h.readBigUInt64BE(0);
}

/**
 * A peer URL as etcd accepts one in MemberAdd / MemberUpdate (scheme://host:port, http or
 * https), normalised to scheme://host:port; null when it is not one.
 */
export function normalisePeerUrl(s: unknown): string | null {
  if (typeof s !== 'string' || s.length === 0 || s.length > PEER_URL_BYTES_MAX) return null;
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return null;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
  if (!u.port || (u.pathname !== '/' && u.pathname !== '') || u.search || u.hash || u.username || u.password) return null;
  return `${u.protocol}//${u.host}`;
}

/** A list of peer URLs, normalised, or null when any is not one (or there are none, or too many). */
export function normalisePeerUrls(list: readonly unknown[]): string[] | null {
  if (list.length === 0 || list.length > MEMBER_PEER_URLS_MAX) return null;
  const out: string[] = [];
  for (const s of list) {
    const u = normalisePeerUrl(s);
    if (u === null) return null;
    out.push(u);
  }
  return out;
}

export function encodeMemberChange(c: MemberChange): string {
  return JSON.stringify({ ...c, id: c.id.toString() });
}

/** The change a context names, or null (a context from elsewhere, or garbage: the table ignores it). */
export function decodeMemberChange(s: string | undefined): MemberChange | null {
  if (s === undefined) return null;
  let v: unknown;
  try {
    v = JSON.parse(s);
  } catch {
    return null;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
  const o = v as Record<string, unknown>;
  const raftId = o.raftId;
  if (typeof raftId !== 'number' || !Number.isInteger(raftId) || raftId < 1 || raftId > RAFT_ID_MAX) return null;
  if (typeof o.id !== 'string' || !/^\d{1,20}$/.test(o.id)) return null;
  const id = BigInt(o.id);
  if (id === 0n || id > U64_MAX) return null;
  const urls = (): string[] | null => (Array.isArray(o.peerUrls) ? normalisePeerUrls(o.peerUrls) : null);
  switch (o.op) {
    case 'add': {
      const peerUrls = urls();
      if (!peerUrls || typeof o.isLearner !== 'boolean') return null;
      return { op: 'add', raftId, id, peerUrls, isLearner: o.isLearner };
    }
    case 'update': {
      const peerUrls = urls();
      return peerUrls ? { op: 'update', raftId, id, peerUrls } : null;
    }
    case 'remove':
    case 'promote':
      return { op: o.op, raftId, id };
    default:
      return null;
  }
}

/** The table as it travels in a snapshot image (ids as decimal strings). */
export interface MemberTableImage {
  readonly nextRaftId: number;
  readonly members: { raftId: number; id: string; peerUrls: string[]; isLearner: boolean }[];
  readonly removed: string[];
}

export class MemberTable {
  /** By Raft id. */
  private readonly byRaft = new Map<number, ClusterMember>();
  /** Member ids removed for good (etcd refuses them again: `member already removed`). */
  private readonly removedIds = new Set<bigint>();
  /** The next Raft id to give; ids are never reused. */
  nextRaftId = 1;

  static bootstrap(initial: readonly { readonly raftId: number; readonly id: bigint; readonly peerUrls: readonly string[] }[]): MemberTable {
    const t = new MemberTable();
    for (const m of initial) t.byRaft.set(m.raftId, { raftId: m.raftId, id: m.id, peerUrls: [...m.peerUrls], isLearner: false });
    t.nextRaftId = Math.max(1, ...initial.map((m) => m.raftId + 1));
    return t;
  }

  /** Members in member id order, as etcd lists them. */
  list(): ClusterMember[] {
    return [...this.byRaft.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  get size(): number {
    return this.byRaft.size;
  }

  byRaftId(raftId: number): ClusterMember | undefined {
    return this.byRaft.get(raftId);
  }

  byMemberId(id: bigint): ClusterMember | undefined {
    for (const m of this.byRaft.values()) if (m.id === id) return m;
    return undefined;
  }

  isRemoved(id: bigint): boolean {
    return this.removedIds.has(id);
  }

  /** Applies a committed change. Total and deterministic: a change that does not fit the table changes only what it can. */
  apply(c: MemberChange): void {
    switch (c.op) {
      case 'add':
        this.byRaft.set(c.raftId, { raftId: c.raftId, id: c.id, peerUrls: [...c.peerUrls], isLearner: c.isLearner });
        this.nextRaftId = Math.max(this.nextRaftId, c.raftId + 1);
        return;
      case 'remove': {
        const m = this.byRaft.get(c.raftId);
        if (m && m.id === c.id) this.byRaft.delete(c.raftId);
        this.removedIds.add(c.id);
        this.nextRaftId = Math.max(this.nextRaftId, c.raftId + 1);
        return;
      }
      case 'update': {
        const m = this.byRaft.get(c.raftId);
        if (m && m.id === c.id) this.byRaft.set(c.raftId, { ...m, peerUrls: [...c.peerUrls] });
        return;
      }
      case 'promote': {
        const m = this.byRaft.get(c.raftId);
        if (m && m.id === c.id) this.byRaft.set(c.raftId, { ...m, isLearner: false });
        return;
      }
    }
  }

  toImage(): MemberTableImage {
    return {
      nextRaftId: this.nextRaftId,
      members: [...this.byRaft.values()].sort((a, b) => a.raftId - b.raftId).map((m) => ({ raftId: m.raftId, id: m.id.toString(), peerUrls: [...m.peerUrls], isLearner: m.isLearner })),
      removed: [...this.removedIds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).map(String),
    };
  }

  /** A table from an image, or the reason it is not one (the caller wraps it as its image error). */
  static fromImage(v: unknown): MemberTable | string {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return 'expected an object';
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o).sort().join(',');
    if (keys !== 'members,nextRaftId,removed') return `expected exactly the fields members, nextRaftId, removed; got ${keys.slice(0, 80)}`;
    const t = new MemberTable();
    if (typeof o.nextRaftId !== 'number' || !Number.isInteger(o.nextRaftId) || o.nextRaftId < 1 || o.nextRaftId > RAFT_ID_MAX + 1) return 'nextRaftId: not a Raft id';
    t.nextRaftId = o.nextRaftId;
    if (!Array.isArray(o.members) || !Array.isArray(o.removed)) return 'members and removed must be arrays';
    const seenIds = new Set<bigint>();
    for (const [i, x] of o.members.entries()) {
      if (x === null || typeof x !== 'object' || Array.isArray(x)) return `members[${i}]: expected an object`;
      const m = x as Record<string, unknown>;
      if (Object.keys(m).sort().join(',') !== 'id,isLearner,peerUrls,raftId') return `members[${i}]: expected exactly the fields id, isLearner, peerUrls, raftId`;
      const c = decodeMemberChange(JSON.stringify({ op: 'add', raftId: m.raftId, id: m.id, peerUrls: m.peerUrls, isLearner: m.isLearner }));
      if (!c || c.op !== 'add') return `members[${i}]: not a member (raft id 1..${RAFT_ID_MAX}, a uint64 id, 1..${MEMBER_PEER_URLS_MAX} peer URLs, isLearner)`;
      if (c.raftId >= t.nextRaftId || t.byRaft.has(c.raftId) || seenIds.has(c.id)) return `members[${i}]: raft id or member id repeated, or not below nextRaftId`;
      seenIds.add(c.id);
      t.byRaft.set(c.raftId, { raftId: c.raftId, id: c.id, peerUrls: c.peerUrls, isLearner: c.isLearner });
    }
    if (o.removed.length > RAFT_ID_MAX) return 'removed: more ids than Raft ids exist';
    for (const [i, x] of o.removed.entries()) {
      if (typeof x !== 'string' || !/^\d{1,20}$/.test(x) || BigInt(x) > U64_MAX) return `removed[${i}]: not a uint64 in decimal`;
      t.removedIds.add(BigInt(x));
    }
    return t;
  }
}
