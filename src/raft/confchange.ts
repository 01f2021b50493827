/**
 * Membership configurations and their changes (thesis §4.3, etcd-io/raft's confchange).
 * Pure: a change is validated and applied to an immutable configuration value.
 */
import type { ConfChange, ConfChangeKind, ConfChangeSingle, ConfState, NodeId } from './types.js';

export interface Configuration {
  readonly voters: ReadonlySet<NodeId>;
  /** Non-empty only in a joint configuration. */
  readonly outgoing: ReadonlySet<NodeId>;
  readonly learners: ReadonlySet<NodeId>;
  readonly learnersNext: ReadonlySet<NodeId>;
  readonly autoLeave: boolean;
}

export function isJoint(c: Configuration): boolean {
  return c.outgoing.size > 0;
}

export function fromConfState(cs: ConfState): Configuration {
  return {
    voters: new Set(cs.voters),
    outgoing: new Set(cs.votersOutgoing),
    learners: new Set(cs.learners),
    learnersNext: new Set(cs.learnersNext),
    autoLeave: cs.autoLeave,
  };
}

const sorted = (s: ReadonlySet<NodeId>): NodeId[] => [...s].sort((a, b) => a - b);

export function toConfState(c: Configuration): ConfState {
  return {
    voters: sorted(c.voters),
    votersOutgoing: sorted(c.outgoing),
    learners: sorted(c.learners),
    learnersNext: sorted(c.learnersNext),
    autoLeave: c.autoLeave,
  };
}

/** Every member the configuration knows of, in id order (voters of both halves and learners). */
export function members(c: Configuration): NodeId[] {
  const all = new Set<NodeId>([...c.voters, ...c.outgoing, ...c.learners, ...c.learnersNext]);
  return sorted(all);
}

export function isVoter(c: Configuration, id: NodeId): boolean {
  return c.voters.has(id) || c.outgoing.has(id);
}

export class ConfChangeError extends Error {
  override name = 'ConfChangeError';
}

interface Mutable {
  voters: Set<NodeId>;
  outgoing: Set<NodeId>;
  learners: Set<NodeId>;
  learnersNext: Set<NodeId>;
  autoLeave: boolean;
}

function copy(c: Configuration): Mutable {
  return {
    voters: new Set(c.voters),
    outgoing: new Set(c.outgoing),
    learners: new Set(c.learners),
    learnersNext: new Set(c.learnersNext),
    autoLeave: c.autoLeave,
  };
}

function applyOne(m: Mutable, kind: ConfChangeKind, id: NodeId): void {
  if (!Number.isInteger(id) || id <= 0) throw new ConfChangeError(`invalid node id ${id}`);
  switch (kind) {
    case 'addVoter':
      m.voters.add(id);
      m.learners.delete(id);
      m.learnersNext.delete(id);
      return;
    case 'addLearner':
      m.voters.delete(id);
      m.learners.delete(id);
      m.learnersNext.delete(id);
      // A voter of the outgoing half cannot also be a learner: it becomes one on leaving the joint state.
      if (m.outgoing.has(id)) m.learnersNext.add(id);
      else m.learners.add(id);
      return;
    case 'removeNode':
      m.voters.delete(id);
      m.learners.delete(id);
      m.learnersNext.delete(id);
      return;
  }
}

function freeze(m: Mutable): Configuration {
  return m;
}

function symmetricDifference(a: ReadonlySet<NodeId>, b: ReadonlySet<NodeId>): number {
  let n = 0;
  for (const x of a) if (!b.has(x)) n++;
  for (const x of b) if (!a.has(x)) n++;
  return n;
}

/** Whether `cc` is a "leave joint" request. */
export function isLeaveJoint(cc: ConfChange): boolean {
  return cc.changes.length === 0;
}

/** Whether `cc` must go through joint consensus. */
export function needsJoint(c: Configuration, cc: ConfChange): boolean {
  if (cc.joint) return true;
  const m = copy(c);
  for (const ch of cc.changes) applyOne(m, ch.kind, ch.nodeId);
  return symmetricDifference(c.voters, m.voters) > 1;
}

/**
 * Applies `cc` to `c`, returning the new configuration or throwing ConfChangeError with a
 * readable reason. The same function validates a proposal and applies a committed entry.
 */
export function applyConfChange(c: Configuration, cc: ConfChange): Configuration {
  if (isLeaveJoint(cc)) {
    if (!isJoint(c)) throw new ConfChangeError('cannot leave a joint configuration: not in one');
    const m = copy(c);
    for (const id of m.learnersNext) m.learners.add(id);
    m.learnersNext.clear();
    m.outgoing.clear();
    m.autoLeave = false;
    return freeze(m);
  }
  if (isJoint(c)) throw new ConfChangeError('a configuration change is not allowed while in a joint configuration (leave it first)');
  const joint = needsJoint(c, cc);
  const m = copy(c);
  if (joint) {
    if (c.voters.size === 0) throw new ConfChangeError('cannot enter a joint configuration from an empty one');
    m.outgoing = new Set(c.voters);
    m.autoLeave = cc.autoLeave ?? true;
  }
  for (const ch of cc.changes) applyOne(m, ch.kind, ch.nodeId);
  if (m.voters.size === 0) throw new ConfChangeError('the change would remove all voters');
  return freeze(m);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeConfChange(cc: ConfChange): Uint8Array {
  return encoder.encode(JSON.stringify({ changes: cc.changes, joint: cc.joint ?? false, autoLeave: cc.autoLeave ?? true, ...(cc.context !== undefined ? { context: cc.context } : {}) }));
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  const v = JSON.parse(decoder.decode(data)) as { changes?: unknown; joint?: unknown; autoLeave?: unknown; context?: unknown };
  if (!Array.isArray(v.changes)) throw new ConfChangeError('conf change: changes must be an array');
  const changes = v.changes.map((x: unknown): ConfChangeSingle => {
    const o = x as { kind?: unknown; nodeId?: unknown };
    if (o.kind !== 'addVoter' && o.kind !== 'addLearner' && o.kind !== 'removeNode') throw new ConfChangeError(`conf change: bad kind ${String(o.kind)}`);
    if (typeof o.nodeId !== 'number') throw new ConfChangeError('conf change: nodeId must be a number');
    return { kind: o.kind, nodeId: o.nodeId };
  });
  if (v.context !== undefined && typeof v.context !== 'string') throw new ConfChangeError('conf change: context must be a string');
  return { changes, joint: v.joint === true, autoLeave: v.autoLeave !== false, ...(typeof v.context === 'string' ? { context: v.context } : {}) };
}
