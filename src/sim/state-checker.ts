/**
 * The safety invariants of Raft, checked after every event and at the moment each could first
 * break (TigerBeetle's state checker): election safety, term and commit index monotonic, log
 * matching, state machine safety, leader completeness, and the Ready contract (what must be
 * durable before a message leaves).
 */
import type { Message } from '../raft/messages.js';
import type { Entry, NodeId } from '../raft/types.js';
import type { SimNode } from './cluster.js';
import type { SimStats } from './settings.js';
import { InvariantViolation } from './violation.js';

const decoder = new TextDecoder();

export interface MemberEvents {
  /** The member's role changed since it was last checked. */
  roleChanged(n: SimNode, role: string): void;
  /** The member is the first leader seen in its term. */
  newLeader(n: SimNode): void;
}

export class StateChecker {
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** "index:term" -> content and the term of the entry before it (Log Matching). */
  private readonly entryRecord = new Map<string, { content: string; prevTerm: number | undefined }>();
  /**
   * index -> the committed entry there (State Machine Safety, Leader Completeness), with the
   * term of the member that first saw it committed: an upper bound of the term it committed in.
   */
  private readonly committed = new Map<number, { term: number; content: string; commitTerm: number }>();
  private maxCommitted = 0;
  private readonly contentCache = new WeakMap<Entry, string>();

  constructor(private readonly stats: SimStats) {}

  private content(e: Entry): string {
    let c = this.contentCache.get(e);
    if (c === undefined) {
      c = `${e.type}:${decoder.decode(e.data)}`;
      this.contentCache.set(e, c);
    }
    return c;
  }

  /** Checked after every event, for a running member with a core. */
  checkMember(n: SimNode, events: MemberEvents): void {
    const core = n.core!;
    const term = core.currentTerm;
    if (term < n.lastTerm) throw new InvariantViolation('term monotonic', `n${n.id} went from term ${n.lastTerm} to ${term}`);
    n.lastTerm = term;
    if (term > this.stats.maxTerm) this.stats.maxTerm = term;
    const commit = core.commitIndex;
    if (commit < n.lastCommit) throw new InvariantViolation('commit monotonic', `n${n.id} commit index went from ${n.lastCommit} to ${commit}`);
    n.lastCommit = commit;
    if (commit > n.checkedCommit) this.recordCommitted(n, commit);
    const role = core.currentRole;
    if (role !== n.lastRole) {
      n.lastRole = role;
      events.roleChanged(n, role);
    }
    // Once checked as leader of a term, a member is that term's leader on record (a record is
    // never changed), so the checks below would find the same again: they run once per term.
    if (role === 'leader' && n.checkedLeaderTerm !== term) {
      const other = this.leaderOfTerm.get(term);
      if (other === undefined) {
        this.leaderOfTerm.set(term, n.id);
        events.newLeader(n);
      } else if (other !== n.id) {
        throw new InvariantViolation('election safety', `two leaders in term ${term}: n${other} and n${n.id}`);
      }
      n.checkedLeaderTerm = term;
      this.checkLeaderCompleteness(n);
    }
  }

  /** Records entries newly committed at `n`; a different entry already committed at an index is a safety violation. */
  private recordCommitted(n: SimNode, commit: number): void {
    const core = n.core!;
    for (let i = Math.max(n.checkedCommit + 1, core.firstIndex()); i <= commit; i++) {
      const e = core.entryAt(i);
      if (!e) continue;
      const c = this.content(e);
      const prev = this.committed.get(i);
      if (prev === undefined) {
        this.committed.set(i, { term: e.term, content: c, commitTerm: core.currentTerm });
        if (i > this.maxCommitted) this.maxCommitted = i;
      } else if (prev.term !== e.term || prev.content !== c) {
        throw new InvariantViolation(
          'state machine safety',
          `n${n.id} committed ${i}/${e.term} ${c} but ${i}/${prev.term} ${prev.content} was committed before`,
        );
      }
    }
    n.checkedCommit = commit;
  }

  /**
   * A leader holds every entry committed in an earlier term (§5.4.3). A leader of a stale term
   * (one that won while cut off) is only bound by what was committed before its term.
   */
  private checkLeaderCompleteness(n: SimNode): void {
    const core = n.core!;
    const term = core.currentTerm;
    for (let i = core.firstIndex(); i <= this.maxCommitted; i++) {
      const c = this.committed.get(i);
      if (!c || c.commitTerm >= term) continue;
      const t = core.termAt(i);
      if (t !== c.term) {
        throw new InvariantViolation(
          'leader completeness',
          `n${n.id} became leader of term ${term} holding ${t === undefined ? 'nothing' : `${i}/${t}`} at index ${i}, but ${i}/${c.term} was committed in term ${c.commitTerm} or earlier`,
        );
      }
    }
  }

  /** Log Matching (§5.3): an (index, term) pair names one entry, and one predecessor term. */
  checkNewEntries(n: SimNode, entries: readonly Entry[]): void {
    const core = n.core!;
    let prevTerm = entries.length > 0 ? core.termAt(entries[0]!.index - 1) : undefined;
    for (const e of entries) {
      const key = `${e.index}:${e.term}`;
      const c = this.content(e);
      const rec = this.entryRecord.get(key);
      if (rec === undefined) this.entryRecord.set(key, { content: c, prevTerm });
      else if (rec.content !== c) {
        throw new InvariantViolation('log matching', `n${n.id} holds ${e.index}/${e.term} ${c}, another log holds ${e.index}/${e.term} ${rec.content}`);
      } else if (rec.prevTerm !== undefined && prevTerm !== undefined && rec.prevTerm !== prevTerm) {
        throw new InvariantViolation(
          'log matching',
          `n${n.id} holds ${e.index}/${e.term} after an entry of term ${prevTerm}, another log holds it after an entry of term ${rec.prevTerm}`,
        );
      }
      prevTerm = e.term;
    }
  }

  /** State Machine Safety at apply time: every member applies the same entry at each index, in order. */
  checkApplied(n: SimNode, e: Entry): void {
    this.checkCommittedAt(n, e);
    if (e.index !== n.sm.appliedIndex + 1) {
      throw new InvariantViolation('state machine safety', `n${n.id} applied entry ${e.index} right after ${n.sm.appliedIndex}`);
    }
  }

  /**
   * Node driver: the shell hands the state machine only entries with data; the ones between
   * (leader no-ops, configuration changes), up to `upTo`, are checked here.
   */
  checkSkipped(n: SimNode, upTo: number, applying: number): void {
    for (let i = n.appliedSeen + 1; i <= upTo; i++) {
      const skipped = n.core!.entryAt(i);
      if (skipped) {
        if (skipped.type === 'normal' && skipped.data.length > 0) throw new InvariantViolation('state machine safety', `n${n.id} applied entry ${applying} after ${n.appliedSeen}, skipping entry ${i}`);
        this.checkCommittedAt(n, skipped);
      } else {
        // The core no longer holds it: a snapshot from the leader was stepped in while the Ready
        // that carries the entry was being persisted. What was committed there says what it was.
        const c = this.committed.get(i);
        if (!c || (c.content.startsWith('normal:') && c.content !== 'normal:')) {
          throw new InvariantViolation('state machine safety', `n${n.id} applied entry ${applying} after ${n.appliedSeen}, skipping entry ${i} (${c ? 'committed with data' : 'not known committed'}; its log starts at ${n.core!.firstIndex()})`);
        }
      }
      n.appliedSeen = i;
    }
  }

  /** The entry a member applies at its index is the one committed there. */
  checkCommittedAt(n: SimNode, e: Entry): void {
    const c = this.content(e);
    const prev = this.committed.get(e.index);
    if (prev === undefined) {
      this.committed.set(e.index, { term: e.term, content: c, commitTerm: n.core!.currentTerm });
      if (e.index > this.maxCommitted) this.maxCommitted = e.index;
    } else if (prev.term !== e.term || prev.content !== c) {
      throw new InvariantViolation('state machine safety', `n${n.id} applied ${e.index}/${e.term} ${c} but ${e.index}/${prev.term} ${prev.content} is committed there`);
    }
  }

  /** What must be durable before a message leaves (the Ready contract). */
  checkOutgoing(n: SimNode, m: Message): void {
    const hs = n.disk.hardState;
    if (m.type === 'voteResponse' && !m.reject && !m.preVote) {
      // The grant must be durable, or superseded by a durable later term (then this member can
      // never vote in the grant's term again either).
      if (hs.term < m.term || (hs.term === m.term && hs.vote !== m.to)) {
        throw new InvariantViolation('vote durability', `n${n.id} granted its vote to n${m.to} in term ${m.term} but its disk says term ${hs.term} vote ${hs.vote}`);
      }
    }
    if (m.type === 'appendResponse' && !m.reject && !n.disk.holds(m.index)) {
      throw new InvariantViolation('ack durability', `n${n.id} acknowledged index ${m.index} to n${m.to} but its disk holds only up to ${n.disk.snapshot.meta.index + n.disk.entries.length}`);
    }
  }
}
