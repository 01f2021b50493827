/**
 * The pure Raft core. It does no I/O, reads no clock and draws no randomness of its own:
 * inputs are tick(), step(message) and the proposal calls; output is a Ready that the driver
 * persists, sends and applies before calling advance(). The same code runs in the server and
 * in the simulator.
 *
 * Structure follows etcd-io/raft: Step() handles the term rules and the messages every role
 * treats alike, then dispatches to one step function per role (swapped on role change).
 * Rule citations refer to the Raft paper (§5.x) and Ongaro's thesis (§3.x, §4.x, §6.x, §9.x).
 */
import { assert, assertNever } from '../lib/assert.js';
import { resolveConfig, type InitialState, type RaftConfig, type ResolvedConfig } from './config.js';
import {
  applyConfChange,
  ConfChangeError,
  decodeConfChange,
  encodeConfChange,
  fromConfState,
  isJoint,
  isVoter,
  members,
  toConfState,
  type Configuration,
} from './confchange.js';
import { RaftLog } from './log.js';
import type {
  AppendMsg,
  AppendResponseMsg,
  HeartbeatMsg,
  HeartbeatResponseMsg,
  Message,
  ReadIndexMsg,
  ReadIndexResponseMsg,
  SnapshotMsg,
  VoteMsg,
  VoteResponseMsg,
} from './messages.js';
import { Progress } from './progress.js';
import { jointCommitted, jointVote, type VoteResult } from './quorum.js';
import type {
  ActionResult,
  ConfChange,
  ConfState,
  Entry,
  HardState,
  Index,
  NodeId,
  ProposeResult,
  ReadState,
  Refusal,
  RefusalReason,
  Role,
  Snapshot,
  SoftState,
  Term,
} from './types.js';
import type { Ready } from './ready.js';
import { ReadOnly } from './read-only.js';

const EMPTY = new Uint8Array(0);

type CampaignKind = 'preElection' | 'election' | 'transfer';

export interface ProgressStatus {
  readonly match: Index;
  readonly next: Index;
  readonly state: 'probe' | 'replicate' | 'snapshot';
  readonly isLearner: boolean;
  readonly recentActive: boolean;
  readonly inflight: number;
}

export interface Status {
  readonly id: NodeId;
  readonly term: Term;
  readonly vote: NodeId;
  readonly commit: Index;
  readonly applied: Index;
  readonly role: Role;
  readonly leader: NodeId;
  readonly firstIndex: Index;
  readonly lastIndex: Index;
  readonly confState: ConfState;
  readonly leadTransferee: NodeId;
  /** Only on the leader. */
  readonly progress?: ReadonlyMap<NodeId, ProgressStatus>;
}

export class RaftCore {
  readonly id: NodeId;
  protected readonly cfg: ResolvedConfig;
  protected readonly log: RaftLog;

  // Durable state (persisted through Ready.hardState).
  protected term: Term;
  protected vote: NodeId;

  // Volatile state.
  protected role: Role = 'follower';
  protected lead: NodeId = 0;
  protected config: Configuration;
  /** The log index whose configuration `config` reflects (a snapshot's or the last applied change's). */
  protected configIndex: Index = 0;
  /** Index of the applied change that took away this member's vote (0 while it is a voter). */
  protected removedAt: Index = 0;
  protected progress = new Map<NodeId, Progress>();
  protected votes = new Map<NodeId, boolean>();
  protected electionElapsed = 0;
  protected heartbeatElapsed = 0;
  protected randomizedElectionTimeout = 0;
  protected leadTransferee: NodeId = 0;
  /** Index of the last configuration change proposed by this leader; no new one until it is applied. */
  protected pendingConfIndex: Index = 0;
  protected uncommittedBytes = 0;
  /** Follower: the last index verified to match the current leader's log in this term. */
  protected verifiedIndex: Index = 0;
  /** Leader: whether an entry of the current term has committed (§6.4: no read before that). */
  protected committedInTerm = false;

  /** Ticks since this core was created (its notion of elapsed time). */
  private tickCount = 0;
  /** ReadIndex and lease bookkeeping (leader): read-only.ts. */
  private readonly reads: ReadOnly;

  // Latest snapshot this member holds (to send to followers whose entries are compacted).
  protected latestSnapshot: Snapshot;

  // Output buffers.
  protected msgs: Message[] = [];
  private readStates: ReadState[] = [];
  private pendingSnapshot: Snapshot | undefined;
  /** A broadcast of AppendEntries is due: proposals of one turn are coalesced into one message per peer. */
  private bcastDue = false;
  private prevHardState: HardState;
  private prevSoftState: SoftState;
  /** The Ready handed out and not yet advanced. */
  private outstanding: { lastEntry?: { index: Index; term: Term }; committedTo: Index } | null = null;

  constructor(config: RaftConfig, initial: InitialState) {
    this.cfg = resolveConfig(config);
    this.id = this.cfg.id;
    this.reads = new ReadOnly(this.cfg.readOnly === 'lease');
    const hs = initial.hardState;
    this.log = new RaftLog(initial.snapshot, initial.entries, hs.commit, initial.applied ?? initial.snapshot.meta.index);
    this.term = hs.term;
    this.vote = hs.vote;
    this.latestSnapshot = initial.snapshot;
    this.config = fromConfState(initial.snapshot.meta.confState);
    this.configIndex = initial.snapshot.meta.index;
    // Configuration changes in the log after the snapshot are re-applied as the driver
    // re-applies those entries; until then the snapshot's configuration is in force, except for
    // changes already applied before the restart, which we fold in here.
    for (let i = initial.snapshot.meta.index + 1; i <= this.log.applied; i++) {
      const e = this.log.entryAt(i);
      if (e && e.type === 'conf') {
        this.config = applyConfChange(this.config, decodeConfChange(e.data));
        this.configIndex = i;
      }
    }
    this.prevHardState = { term: this.term, vote: this.vote, commit: this.log.commit };
    this.prevSoftState = { leader: 0, role: 'follower' };
    this.becomeFollower(this.term, 0);
    this.cfg.logger.info(
      `${this.id} starting: term=${this.term} vote=${this.vote} commit=${this.log.commit} applied=${this.log.applied} ` +
        `lastIndex=${this.log.lastIndex()} lastTerm=${this.log.lastTerm()} voters=[${[...this.config.voters].join(',')}]`,
    );
  }

  // ---------------------------------------------------------------------------------------
  // Public inputs
  // ---------------------------------------------------------------------------------------

  /** One unit of logical time. */
  tick(): void {
    this.tickCount++;
    if (this.role === 'leader') this.tickHeartbeat();
    else this.tickElection();
  }

  /** Starts an election now (as if the election timeout had elapsed). */
  campaign(): void {
    this.hup(this.cfg.preVote ? 'preElection' : 'election');
  }

  /** A message from another member. Stale or unexpected messages are dropped, never trusted. */
  step(m: Message): void {
    if (m.to !== this.id || m.from === this.id || m.from <= 0) {
      this.cfg.logger.debug(`${this.id} ignored misaddressed ${m.type} from ${m.from} to ${m.to}`);
      return;
    }
    if (m.term > this.term) {
      if (m.type === 'vote') {
        // A member that heard from a live leader within the election timeout ignores vote
        // requests (thesis §4.2.3): a removed or partitioned member cannot disrupt the cluster.
        // With lease reads, a member that just started may have heard from a leader before it
        // crashed: it waits an election timeout before voting, or a leader's lease could end early.
        const inLease =
          this.cfg.checkQuorum && ((this.lead !== 0 && this.electionElapsed < this.cfg.electionTicks) || this.inBootWindow());
        if (!m.transfer && inLease) {
          this.cfg.logger.info(
            `${this.id} [term: ${this.term}] ignored ${m.preVote ? 'pre-vote' : 'vote'} from ${m.from} at term ${m.term}: lease not expired (${this.cfg.electionTicks - this.electionElapsed} ticks remaining)`,
          );
          return;
        }
      }
      if (m.type === 'vote' && m.preVote) {
        // A pre-vote never changes our term.
      } else if (m.type === 'voteResponse' && m.preVote && !m.reject) {
        // A granted pre-vote carries the future term; the term changes only if we win it.
      } else {
        this.cfg.logger.info(`${this.id} [term: ${this.term}] received a ${m.type} with higher term from ${m.from} [term: ${m.term}]`);
        const fromLeader = m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot';
        this.becomeFollower(m.term, fromLeader ? m.from : 0);
      }
    } else if (m.term < this.term) {
      if (m.type === 'append' || m.type === 'heartbeat') {
        // A stale leader must learn of our term: answer with it so it steps down (Raft paper
        // §5.1, Figure 2). We may be the one stuck: a member that raised its term while cut off
        // (or, with check-quorum, kept it while the others ignored its votes) cannot rejoin on
        // the leader's term, and only a fresh election at a higher term frees it. etcd-raft
        // answers only with check-quorum or pre-vote, relying otherwise on our vote requests
        // raising the leader's term; they never reach it when our configuration is out of date
        // (we missed the changes that replaced every other voter we know of), and we would
        // never catch up.
        this.send({ type: 'appendResponse', from: this.id, to: m.from, term: this.term, index: 0, reject: false, hintIndex: 0, hintTerm: 0 });
      } else if (m.type === 'vote' && m.preVote) {
        this.send({ type: 'voteResponse', from: this.id, to: m.from, term: this.term, preVote: true, reject: true });
      } else {
        this.cfg.logger.debug(`${this.id} [term: ${this.term}] ignored a ${m.type} with lower term from ${m.from} [term: ${m.term}]`);
      }
      return;
    }

    if (m.type === 'vote') {
      this.handleVoteRequest(m);
      return;
    }
    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        return;
      case 'candidate':
      case 'preCandidate':
        this.stepCandidate(m);
        return;
      case 'follower':
        this.stepFollower(m);
        return;
      default:
        assertNever(this.role, 'role');
    }
  }

  /** Proposes one entry. Refused with a reason, never silently dropped. */
  propose(data: Uint8Array): ProposeResult {
    return this.proposeBatch([data]);
  }

  /** Proposes several entries at once; the result names the first one's position. */
  proposeBatch(datas: readonly Uint8Array[]): ProposeResult {
    assert(datas.length > 0, 'proposeBatch needs at least one entry');
    const refused = this.checkProposal();
    if (refused) return refused;
    let bytes = 0;
    for (const d of datas) {
      if (d.length > this.cfg.entryBytesMax) {
        return this.refuse('tooLarge', `entry of ${d.length} bytes exceeds entryBytesMax (${this.cfg.entryBytesMax})`);
      }
      bytes += d.length;
    }
    if (this.uncommittedBytes > 0 && this.uncommittedBytes + bytes > this.cfg.uncommittedBytesMax) {
      return this.refuse('tooMuchUncommitted', `uncommitted entries would exceed uncommittedBytesMax (${this.cfg.uncommittedBytesMax} bytes)`);
    }
    const first = this.log.lastIndex() + 1;
    const ents: Entry[] = new Array<Entry>(datas.length);
    for (let i = 0; i < datas.length; i++) ents[i] = { term: this.term, index: first + i, type: 'normal', data: datas[i]! };
    this.appendEntries(ents);
    this.uncommittedBytes += bytes;
    return { ok: true, index: first, term: this.term };
  }

  /** Proposes a membership change; validated now against the current configuration. */
  proposeConfChange(cc: ConfChange): ProposeResult {
    const refused = this.checkProposal();
    if (refused) return refused;
    if (this.pendingConfIndex > this.log.applied) {
      return this.refuse('confChangePending', `configuration change at index ${this.pendingConfIndex} is not applied yet (applied ${this.log.applied})`);
    }
    try {
      applyConfChange(this.config, cc);
    } catch (e) {
      if (e instanceof ConfChangeError) return this.refuse('invalidConfChange', e.message);
      throw e;
    }
    const index = this.log.lastIndex() + 1;
    this.appendEntries([{ term: this.term, index, type: 'conf', data: encodeConfChange(cc) }]);
    this.pendingConfIndex = index;
    return { ok: true, index, term: this.term };
  }

  /**
   * Asks for a linearizable read point (thesis §6.4). The answer arrives later as a ReadState
   * with the same ctx: serve the read once the state machine has applied its index.
   */
  readIndex(ctx: string): ActionResult {
    if (this.role === 'leader') {
      this.handleReadRequest(this.id, ctx);
      return { ok: true };
    }
    if (this.lead === 0) return this.refuse('notLeader', 'no leader known to confirm a read');
    this.send({ type: 'readIndex', from: this.id, to: this.lead, term: this.term, ctx });
    return { ok: true };
  }

  /** Hands leadership to `to` (thesis §3.10). */
  transferLeader(to: NodeId): ActionResult {
    if (this.role !== 'leader') return this.refuse('notLeader', 'only the leader can transfer leadership');
    if (!this.config.voters.has(to)) return this.refuse('invalidTarget', `${to} is not a voter of the configuration`);
    if (to === this.id) return { ok: true };
    this.reads.transferStart();
    if (this.leadTransferee === to) return { ok: true };
    if (this.leadTransferee !== 0) this.cfg.logger.info(`${this.id} [term ${this.term}] abandons transfer to ${this.leadTransferee}`);
    this.cfg.logger.info(`${this.id} [term ${this.term}] starts to transfer leadership to ${to}`);
    this.leadTransferee = to;
    // The transfer must finish within one election timeout or it is abandoned.
    this.electionElapsed = 0;
    const pr = this.progress.get(to)!;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.sendAppend(to, true);
    return { ok: true };
  }

  /** The transport could not reach `id`: stop streaming to it and probe instead. */
  reportUnreachable(id: NodeId): void {
    if (this.role !== 'leader') return;
    const pr = this.progress.get(id);
    if (pr && pr.state === 'replicate') pr.becomeProbe();
  }

  /**
   * The transport reports that the snapshot being streamed to `id` made progress (a chunk
   * acknowledged, or the whole image received): the retry waits snapshotRetryTicks from now.
   * A large image on a slow or loaded link takes longer than that to send; counted from the
   * start, the retry sent another, larger one before the first was in, again and again.
   */
  snapshotProgress(id: NodeId): void {
    if (this.role !== 'leader') return;
    const pr = this.progress.get(id);
    if (pr && pr.state === 'snapshot') pr.stateTicks = 0;
  }

  /** The driver reports whether a snapshot sent to `id` arrived. */
  reportSnapshot(id: NodeId, ok: boolean): void {
    if (this.role !== 'leader') return;
    const pr = this.progress.get(id);
    if (!pr || pr.state !== 'snapshot') return;
    if (!ok) pr.pendingSnapshot = 0;
    pr.becomeProbe();
    // Wait for the follower's answer (or a heartbeat) before probing again.
    pr.probeSent = true;
  }

  /**
   * Captures the state machine image `data` at the applied index and compacts the log up to
   * it, keeping `retainEntries` entries below it so slightly lagging followers avoid a snapshot.
   * Returns undefined when the image would be out of date (a newer snapshot is pending install).
   */
  takeSnapshot(data: Uint8Array, retainEntries = 0): Snapshot | undefined {
    assert(this.outstanding === null || this.outstanding.committedTo <= this.log.applied, 'takeSnapshot while entries are being applied');
    const index = this.log.applied;
    const term = this.log.term(index);
    if (term === undefined || index <= this.latestSnapshot.meta.index) {
      // A newer snapshot from the leader replaced the log below our applied index (it is about
      // to be installed), or there is nothing new to capture: this image is already out of date.
      this.cfg.logger.info(`${this.id} skipped snapshot at applied index ${index}: the log holds a snapshot at ${this.latestSnapshot.meta.index}`);
      return undefined;
    }
    const snap: Snapshot = { meta: { index, term, confState: toConfState(this.config) }, data };
    this.latestSnapshot = snap;
    let compactTo = Math.max(0, index - Math.max(0, retainEntries));
    // A follower being sent a snapshot resumes from the log right after it: those entries stay.
    // Compacted past it, the entries written while the image travels and is installed (more
    // than retainEntries under a steady write load) would need the next snapshot, and that
    // follower would never catch up. Held for one snapshot at a time: a follower that does not
    // answer leaves snapshot state after snapshotRetryTicks, and the log goes with it.
    if (this.role === 'leader') {
      for (const [id, pr] of this.progress) if (id !== this.id && pr.state === 'snapshot' && pr.pendingSnapshot > 0) compactTo = Math.min(compactTo, pr.pendingSnapshot);
    }
    this.log.compact(compactTo);
    this.cfg.logger.info(`${this.id} took snapshot at index ${index} term ${term}; log starts at ${this.log.firstIndex()}`);
    return snap;
  }

  // ---------------------------------------------------------------------------------------
  // Ready / advance
  // ---------------------------------------------------------------------------------------

  hasReady(): boolean {
    if (this.outstanding !== null) return false;
    if (this.msgs.length > 0 || this.readStates.length > 0 || this.bcastDue || this.reads.hasOpenRound) return true;
    if (this.pendingSnapshot) return true;
    if (this.log.unstableFrom <= this.log.lastIndex()) return true;
    if (this.committedToApply() > this.log.applied) return true;
    const hs = this.hardState();
    if (!sameHardState(hs, this.prevHardState)) return true;
    return this.role !== this.prevSoftState.role || this.lead !== this.prevSoftState.leader;
  }

  ready(): Ready {
    assert(this.outstanding === null, 'ready() called again before advance()');
    this.flushBroadcasts();
    const entries = this.log.unstableEntries();
    const lastEntry = entries.length > 0 ? entries[entries.length - 1]! : undefined;
    this.log.unstableFrom = this.log.lastIndex() + 1;

    const snapshot = this.pendingSnapshot;
    this.pendingSnapshot = undefined;
    let from = this.log.applied + 1;
    if (snapshot) from = Math.max(from, snapshot.meta.index + 1);
    const to = this.committedToApply();
    const committedEntries = to >= from ? (this.log.slice(from, to + 1, this.cfg.applyBytesMax) ?? []) : [];
    const committedTo = committedEntries.length > 0 ? committedEntries[committedEntries.length - 1]!.index : from - 1;

    const hs = this.hardState();
    const hardState = sameHardState(hs, this.prevHardState) ? undefined : hs;
    const softChanged = this.role !== this.prevSoftState.role || this.lead !== this.prevSoftState.leader;
    const softState = softChanged ? { leader: this.lead, role: this.role } : undefined;
    const mustSync =
      entries.length > 0 ||
      snapshot !== undefined ||
      (hardState !== undefined && (hardState.term !== this.prevHardState.term || hardState.vote !== this.prevHardState.vote));

    // Built field by field, in the order Ready lists them, rather than with conditional spreads
    // (`...(x ? { x } : {})`): V8 copies those through a slow runtime path, and this runs for
    // every Ready (it was a tenth of the simulator's time).
    const rd: { -readonly [K in keyof Ready]: Ready[K] } = {} as Ready;
    if (softState) rd.softState = softState;
    if (hardState) rd.hardState = hardState;
    if (snapshot) rd.snapshot = snapshot;
    rd.entries = entries;
    rd.committedEntries = committedEntries;
    rd.messages = this.msgs;
    rd.readStates = this.readStates;
    rd.mustSync = mustSync;
    this.msgs = [];
    this.readStates = [];
    this.outstanding = lastEntry ? { lastEntry: { index: lastEntry.index, term: lastEntry.term }, committedTo } : { committedTo };
    if (softState) this.prevSoftState = softState;
    return rd;
  }

  /** The driver has done everything `rd` asked. */
  advance(rd: Ready): void {
    const out = this.outstanding;
    assert(out !== null, 'advance() without an outstanding ready()');
    this.outstanding = null;
    if (rd.hardState) this.prevHardState = rd.hardState;
    if (rd.snapshot) {
      this.log.applied = Math.max(this.log.applied, rd.snapshot.meta.index);
      this.log.stable = Math.max(this.log.stable, Math.min(rd.snapshot.meta.index, this.log.unstableFrom - 1));
    }
    if (out.lastEntry) {
      const { index, term } = out.lastEntry;
      // Entries are durable up to `index` unless the log was cut below it meanwhile (then the
      // next Ready carries the replacement).
      if (this.log.unstableFrom > index && this.log.term(index) === term) this.log.stable = Math.max(this.log.stable, index);
    }
    for (const e of rd.committedEntries) {
      assert(e.index === this.log.applied + 1, () => `advance: applying ${e.index} after ${this.log.applied}`);
      this.log.applied = e.index;
      // A snapshot restored while these entries were out for applying already carries their
      // configuration: a change at or below its index must not be applied twice.
      if (e.type === 'conf' && e.index > this.configIndex) this.applyConfEntry(e);
    }
    if (this.role === 'leader') {
      // Thesis §10.2.1: the leader counts itself towards a quorum only for what it has made durable.
      const self = this.progress.get(this.id);
      if (self && self.maybeUpdate(this.log.stable)) {
        if (this.maybeCommit()) this.bcastDue = true;
      }
      this.maybeAutoLeaveJoint();
    }
  }

  // ---------------------------------------------------------------------------------------
  // Read-only views
  // ---------------------------------------------------------------------------------------

  status(): Status {
    let progress: Map<NodeId, ProgressStatus> | undefined;
    if (this.role === 'leader') {
      progress = new Map();
      for (const [id, pr] of this.progress) {
        progress.set(id, { match: pr.match, next: pr.next, state: pr.state, isLearner: pr.isLearner, recentActive: pr.recentActive, inflight: pr.inflights.count });
      }
    }
    const st: { -readonly [K in keyof Status]: Status[K] } = {
      id: this.id,
      term: this.term,
      vote: this.vote,
      commit: this.log.commit,
      applied: this.log.applied,
      role: this.role,
      leader: this.lead,
      firstIndex: this.log.firstIndex(),
      lastIndex: this.log.lastIndex(),
      confState: toConfState(this.config),
      leadTransferee: this.leadTransferee,
    };
    if (progress) st.progress = progress;
    return st;
  }

  /** The configuration (what status().confState holds, without the rest of the status). */
  confState(): ConfState {
    return toConfState(this.config);
  }

  entryAt(index: Index): Entry | undefined {
    return this.log.entryAt(index);
  }

  termAt(index: Index): Term | undefined {
    return this.log.term(index);
  }

  firstIndex(): Index {
    return this.log.firstIndex();
  }

  lastIndex(): Index {
    return this.log.lastIndex();
  }

  get currentTerm(): Term {
    return this.term;
  }

  get currentRole(): Role {
    return this.role;
  }

  get leader(): NodeId {
    return this.lead;
  }

  get commitIndex(): Index {
    return this.log.commit;
  }

  get appliedIndex(): Index {
    return this.log.applied;
  }

  // ---------------------------------------------------------------------------------------
  // Hooks: small named rules of the protocol (also the places the simulator's mutation tests break)
  // ---------------------------------------------------------------------------------------

  /** §5.4.1 election restriction: grant a vote only to a log at least as up to date as ours. */
  protected candidateLogOk(lastIndex: Index, lastTerm: Term): boolean {
    return this.log.isUpToDate(lastIndex, lastTerm);
  }

  /** §5.4.2: the leader commits by counting replicas only entries of its own term. */
  protected commitRuleOk(index: Index): boolean {
    return this.log.term(index) === this.term;
  }

  /** §5.3 consistency check: the follower's log holds the leader's prevLogIndex/prevLogTerm. */
  protected prevMatches(prevIndex: Index, prevTerm: Term): boolean {
    return this.log.matchTerm(prevIndex, prevTerm);
  }

  /** Joint consensus (§4.3): an index is committed once a majority of both halves has matched it. */
  protected quorumMatched(acked: (id: NodeId) => Index): Index {
    return jointCommitted([...this.config.voters], [...this.config.outgoing], acked);
  }

  /**
   * A follower commits no further than the last entry of the append just accepted (`lastNew`):
   * entries beyond it may be a stale tail of an earlier term that this leader never verified.
   */
  protected followerCommitBound(lastNew: Index): Index {
    return lastNew;
  }

  /** What must be durable before the next messages leave. */
  protected hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.commit };
  }

  // ---------------------------------------------------------------------------------------
  // Role transitions
  // ---------------------------------------------------------------------------------------

  private reset(term: Term): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = 0;
      // An acknowledgement still waiting in the outbox speaks for entries of the old term that
      // are not durable yet, and the new term's leader may overwrite them before the next
      // Ready persists anything: the ack would then claim entries we never stored, and the old
      // leader could count it towards a commit. Drop it; a lost message is always safe.
      // (Found by the simulator, seed 771 with crash,partition,pause faults.)
      this.msgs = this.msgs.filter((m) => m.type !== 'appendResponse' || m.reject);
    }
    this.lead = 0;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.cfg.electionTicks + this.cfg.rng.int(0, this.cfg.electionTicks);
    this.leadTransferee = 0;
    this.votes.clear();
    this.verifiedIndex = 0;
    this.committedInTerm = false;
    this.reads.reset();
    this.bcastDue = false;
    this.uncommittedBytes = 0;
    this.progress.clear();
  }

  protected becomeFollower(term: Term, lead: NodeId): void {
    this.reset(term);
    this.role = 'follower';
    this.lead = lead;
    this.cfg.logger.info(`${this.id} became follower at term ${this.term}`);
  }

  private becomePreCandidate(): void {
    assert(this.role !== 'leader', 'invalid transition [leader -> pre-candidate]');
    // A pre-candidate keeps its term and vote: nothing durable changes until it can win.
    this.votes.clear();
    this.lead = 0;
    this.role = 'preCandidate';
    this.cfg.logger.info(`${this.id} became pre-candidate at term ${this.term}`);
  }

  private becomeCandidate(): void {
    assert(this.role !== 'leader', 'invalid transition [leader -> candidate]');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = 'candidate';
    this.cfg.logger.info(`${this.id} became candidate at term ${this.term}`);
  }

  private becomeLeader(): void {
    assert(this.role === 'candidate', () => `invalid transition [${this.role} -> leader]`);
    this.reset(this.term);
    this.role = 'leader';
    this.lead = this.id;
    const last = this.log.lastIndex();
    for (const id of members(this.config)) {
      const pr = this.newProgress(id, last + 1);
      if (id === this.id) {
        pr.match = this.log.stable;
        pr.becomeReplicate();
        pr.recentActive = true;
      }
      this.progress.set(id, pr);
    }
    // No configuration change until every earlier one in our log is applied: we cannot know
    // whether an unapplied entry holds one.
    this.pendingConfIndex = last;
    this.cfg.logger.info(`${this.id} became leader at term ${this.term}`);
    // §8 / thesis §6.4: an empty entry of the new term lets the leader learn what is committed.
    this.appendEntries([{ term: this.term, index: last + 1, type: 'normal', data: EMPTY }]);
    // A removed member that campaigned to hand its entries over does so now.
    if (!isVoter(this.config, this.id)) this.handOver();
  }

  private newProgress(id: NodeId, next: Index): Progress {
    const isLearner = !isVoter(this.config, id);
    return new Progress(next, this.cfg.inflightMsgsMax, this.cfg.inflightBytesMax, isLearner);
  }

  private promotable(): boolean {
    return isVoter(this.config, this.id);
  }

  /**
   * A member whose vote was just taken away may still be needed (thesis §4.2.2): if it led the
   * change and lost leadership before the others learned it had committed, they are still in
   * the old (or joint) configuration, where its vote counts, while its log holds entries they
   * lack, so it refuses them. It may then campaign itself (pre-vote first, its own vote not
   * counted), win with the votes of its configuration, bring them up to date and hand over.
   * Only while it holds entries it has not seen committed: otherwise it is not needed.
   */
  private removedButNeeded(): boolean {
    return this.removedAt > 0 && !isVoter(this.config, this.id) && this.log.lastIndex() > this.log.commit;
  }

  // ---------------------------------------------------------------------------------------
  // Ticks
  // ---------------------------------------------------------------------------------------

  private tickElection(): void {
    this.electionElapsed++;
    if (this.electionElapsed < this.randomizedElectionTimeout) return;
    if (this.promotable()) {
      this.electionElapsed = 0;
      this.hup(this.cfg.preVote ? 'preElection' : 'election');
    } else if (this.removedButNeeded()) {
      this.electionElapsed = 0;
      this.cfg.logger.info(`${this.id} was removed at index ${this.removedAt} but holds uncommitted entries up to ${this.log.lastIndex()}; campaigning to hand them over`);
      this.hup('preElection');
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.cfg.electionTicks) {
      this.electionElapsed = 0;
      // A leader removed from the configuration checks its quorum even without checkQuorum:
      // if it cannot reach the new configuration it cannot hand over, and nobody would ever
      // tell it that a successor exists.
      if (this.cfg.checkQuorum || !isVoter(this.config, this.id)) {
        if (!this.quorumActive()) {
          this.cfg.logger.warn(`${this.id} stepped down to follower since quorum is not active`);
          this.becomeFollower(this.term, 0);
          return;
        }
        for (const [id, pr] of this.progress) if (id !== this.id) pr.recentActive = false;
      }
      if (this.leadTransferee !== 0) {
        this.cfg.logger.info(`${this.id} [term ${this.term}] abandons transfer to ${this.leadTransferee}: timed out`);
        this.leadTransferee = 0;
      }
      // A leader removed from the configuration keeps trying to hand over.
      if (!isVoter(this.config, this.id)) this.handOver();
    }
    for (const [id, pr] of this.progress) {
      if (id === this.id || pr.state !== 'snapshot') continue;
      // A lost snapshot would otherwise stall this follower forever: retry after a while.
      if (++pr.stateTicks >= this.cfg.snapshotRetryTicks) {
        this.cfg.logger.info(`${this.id} snapshot to ${id} unanswered for ${pr.stateTicks} ticks, probing again`);
        pr.pendingSnapshot = 0;
        pr.becomeProbe();
      }
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      // With lease reads every heartbeat is a round whose acknowledgements extend the lease.
      this.bcastHeartbeat(this.cfg.readOnly === 'lease' ? this.reads.nextRound() : 0);
    }
  }

  /** Check-quorum: whether a (joint) quorum has been heard from within the last election timeout. */
  protected quorumActive(): boolean {
    const votes = (id: NodeId): boolean | undefined => (id === this.id ? true : (this.progress.get(id)?.recentActive ?? false));
    return this.jointVote(votes) === 'won';
  }

  // ---------------------------------------------------------------------------------------
  // Elections
  // ---------------------------------------------------------------------------------------

  private hasUnappliedConfChanges(): boolean {
    for (let i = this.log.applied + 1; i <= this.log.commit; i++) {
      const e = this.log.entryAt(i);
      if (e && e.type === 'conf') return true;
    }
    return false;
  }

  private hup(kind: CampaignKind): void {
    if (this.role === 'leader') {
      this.cfg.logger.debug(`${this.id} ignoring campaign: already leader`);
      return;
    }
    if (!this.promotable() && !this.removedButNeeded()) {
      this.cfg.logger.warn(`${this.id} is not a voter and cannot campaign`);
      return;
    }
    if (this.hasUnappliedConfChanges()) {
      // Our configuration may be about to change: campaigning on the old one could elect us
      // with a quorum that no longer counts.
      this.cfg.logger.warn(`${this.id} cannot campaign at term ${this.term}: committed configuration changes are not applied yet`);
      return;
    }
    this.cfg.logger.info(`${this.id} is starting a new election at term ${this.term}`);
    this.startCampaign(kind);
  }

  private startCampaign(kind: CampaignKind): void {
    const pre = kind === 'preElection';
    if (pre) this.becomePreCandidate();
    else this.becomeCandidate();
    const term = pre ? this.term + 1 : this.term;
    if (this.recordVote(this.id, true, pre) === 'won') {
      // A configuration of one: we already won.
      if (pre) this.startCampaign('election');
      else this.becomeLeader();
      return;
    }
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const id of this.voterIds()) {
      if (id === this.id) continue;
      this.cfg.logger.info(
        `${this.id} [logterm: ${lastTerm}, index: ${lastIndex}] sent ${pre ? 'pre-vote' : 'vote'} request to ${id} at term ${term}`,
      );
      this.send({ type: 'vote', from: this.id, to: id, term, preVote: pre, lastLogIndex: lastIndex, lastLogTerm: lastTerm, transfer: kind === 'transfer' });
    }
  }

  private voterIds(): NodeId[] {
    const ids = new Set<NodeId>([...this.config.voters, ...this.config.outgoing]);
    return [...ids].sort((a, b) => a - b);
  }

  private recordVote(from: NodeId, granted: boolean, pre: boolean): VoteResult {
    if (!this.votes.has(from)) {
      this.votes.set(from, granted);
      if (from !== this.id) {
        this.cfg.logger.info(`${this.id} received ${pre ? 'pre-vote' : 'vote'} ${granted ? 'grant' : 'rejection'} from ${from} at term ${this.term}`);
      }
    }
    return this.jointVote((id) => this.votes.get(id));
  }

  /** A (joint) decision among the voters: elections, check-quorum and lease rounds need both halves (§4.3). */
  protected jointVote(votes: (id: NodeId) => boolean | undefined): VoteResult {
    return jointVote([...this.config.voters], [...this.config.outgoing], votes);
  }

  private handleVoteRequest(m: VoteMsg): void {
    // We may vote again for the one we already voted for (a retransmission); otherwise only if
    // we have not voted in this term and know no leader in it. A pre-vote for a future term is
    // granted on the log check alone: it promises nothing.
    const canVote =
      this.vote === m.from || (this.vote === 0 && this.lead === 0) || (m.preVote && m.term > this.term);
    const kind = m.preVote ? 'pre-vote' : 'vote';
    if (canVote && this.candidateLogOk(m.lastLogIndex, m.lastLogTerm)) {
      this.cfg.logger.info(
        `${this.id} [logterm: ${this.log.lastTerm()}, index: ${this.log.lastIndex()}, vote: ${this.vote}] cast ${kind} for ${m.from} [logterm: ${m.lastLogTerm}, index: ${m.lastLogIndex}] at term ${this.term}`,
      );
      if (!m.preVote) {
        // The vote goes into the HardState of the next Ready, persisted before this reply leaves.
        this.electionElapsed = 0;
        this.vote = m.from;
      }
      this.send({ type: 'voteResponse', from: this.id, to: m.from, term: m.term, preVote: m.preVote, reject: false });
    } else {
      this.cfg.logger.info(
        `${this.id} [logterm: ${this.log.lastTerm()}, index: ${this.log.lastIndex()}, vote: ${this.vote}] rejected ${kind} from ${m.from} [logterm: ${m.lastLogTerm}, index: ${m.lastLogIndex}] at term ${this.term}`,
      );
      this.send({ type: 'voteResponse', from: this.id, to: m.from, term: this.term, preVote: m.preVote, reject: true });
    }
  }

  // ---------------------------------------------------------------------------------------
  // Per-role step functions
  // ---------------------------------------------------------------------------------------

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'append':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case 'snapshot':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case 'timeoutNow':
        if (!this.promotable()) {
          this.cfg.logger.info(`${this.id} received timeoutNow from ${m.from} but is not a voter`);
          return;
        }
        if (this.hasUnappliedConfChanges()) {
          // The configuration we would campaign in may be about to change; the leader retries.
          this.cfg.logger.info(`${this.id} [term ${this.term}] ignored timeoutNow from ${m.from}: committed configuration changes are not applied yet`);
          return;
        }
        this.cfg.logger.info(`${this.id} [term ${this.term}] received timeoutNow from ${m.from} and starts an election to get leadership`);
        // Leadership transfer skips pre-vote and overrides the lease check of the voters.
        this.startCampaign('transfer');
        return;
      case 'readIndex':
        this.send({ type: 'readIndexResponse', from: this.id, to: m.from, term: this.term, ctx: m.ctx, index: 0, reject: true });
        return;
      case 'readIndexResponse':
        this.handleReadIndexResponse(m);
        return;
      case 'appendResponse':
      case 'heartbeatResponse':
      case 'voteResponse':
        return; // answers to a role we no longer hold
      default:
        assertNever(m.type === 'vote' ? (undefined as never) : m, 'message');
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case 'append':
        this.becomeFollower(m.term, m.from);
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case 'snapshot':
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case 'voteResponse': {
        const pre = this.role === 'preCandidate';
        if (m.preVote !== pre) return; // an answer to an earlier phase
        const result = this.recordVote(m.from, !m.reject, pre);
        if (result === 'won') {
          if (pre) this.startCampaign('election');
          else {
            this.becomeLeader();
            this.bcastDue = true;
          }
        } else if (result === 'lost') {
          // A lost pre-vote or vote leaves us a follower in our current term.
          this.becomeFollower(this.term, 0);
        }
        return;
      }
      case 'readIndex':
        this.send({ type: 'readIndexResponse', from: this.id, to: m.from, term: this.term, ctx: m.ctx, index: 0, reject: true });
        return;
      case 'timeoutNow':
      case 'appendResponse':
      case 'heartbeatResponse':
      case 'readIndexResponse':
        return;
      default:
        assertNever(m.type === 'vote' ? (undefined as never) : m, 'message');
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case 'append':
      case 'heartbeat':
      case 'snapshot':
        // Two leaders in one term would break Election Safety (§5.2).
        assert(false, () => `${this.id} is leader of term ${this.term} but got ${m.type} from ${m.from} in the same term`);
        return;
      case 'appendResponse':
        this.handleAppendResponse(m);
        return;
      case 'heartbeatResponse':
        this.handleHeartbeatResponse(m);
        return;
      case 'readIndex':
        if (!this.progress.has(m.from)) return;
        this.handleReadRequest(m.from, m.ctx);
        return;
      case 'voteResponse':
      case 'timeoutNow':
      case 'readIndexResponse':
        return;
      default:
        assertNever(m.type === 'vote' ? (undefined as never) : m, 'message');
    }
  }

  // ---------------------------------------------------------------------------------------
  // Follower side of replication
  // ---------------------------------------------------------------------------------------

  private handleAppend(m: AppendMsg): void {
    const reply = (index: Index, reject: boolean, hintIndex = 0, hintTerm = 0): void =>
      this.send({ type: 'appendResponse', from: this.id, to: m.from, term: this.term, index, reject, hintIndex, hintTerm });
    if (m.prevLogIndex < this.log.commit) {
      // Everything up to our commit index is known to match any leader (Leader Completeness).
      reply(this.log.commit, false);
      return;
    }
    if (this.prevMatches(m.prevLogIndex, m.prevLogTerm)) {
      const lastNew = this.log.appendFromLeader(m.prevLogIndex, m.entries);
      this.verifiedIndex = Math.max(this.verifiedIndex, lastNew);
      // Never commit past what we have verified to match this leader.
      this.log.commitTo(Math.min(m.commit, this.followerCommitBound(lastNew)));
      reply(lastNew, false);
      return;
    }
    // Conflict hint: the last index at or below prevLogIndex whose term is <= prevLogTerm.
    const hintIndex = this.log.findConflictByTerm(Math.min(m.prevLogIndex, this.log.lastIndex()), m.prevLogTerm);
    const hintTerm = this.log.term(hintIndex) ?? 0;
    this.cfg.logger.debug(
      `${this.id} [logterm: ${this.log.term(m.prevLogIndex) ?? 0}, index: ${m.prevLogIndex}] rejected append [logterm: ${m.prevLogTerm}, index: ${m.prevLogIndex}] from ${m.from}`,
    );
    reply(m.prevLogIndex, true, hintIndex, hintTerm);
  }

  private handleHeartbeat(m: HeartbeatMsg): void {
    // The leader sends min(our match, its commit); we still only take what we verified this term.
    const commitBefore = this.log.commit;
    this.log.commitTo(Math.min(m.commit, this.verifiedIndex));
    const needAppend = m.commit > this.log.commit && m.commit > commitBefore;
    this.send({ type: 'heartbeatResponse', from: this.id, to: m.from, term: this.term, round: m.round, needAppend });
  }

  private handleSnapshot(m: SnapshotMsg): void {
    const s = m.snapshot.meta;
    const reply = (index: Index): void =>
      this.send({ type: 'appendResponse', from: this.id, to: m.from, term: this.term, index, reject: false, hintIndex: 0, hintTerm: 0 });
    if (s.index <= this.log.commit) {
      reply(this.log.commit);
      return;
    }
    if (this.log.matchTerm(s.index, s.term)) {
      // We already hold the snapshot's last entry: just fast-forward the commit index.
      this.cfg.logger.info(`${this.id} fast-forwarded commit to snapshot [index: ${s.index}, term: ${s.term}]`);
      this.log.commitTo(s.index);
      this.verifiedIndex = Math.max(this.verifiedIndex, s.index);
      reply(s.index);
      return;
    }
    this.cfg.logger.info(`${this.id} [commit: ${this.log.commit}] restoring snapshot [index: ${s.index}, term: ${s.term}]`);
    this.log.restore(m.snapshot);
    this.latestSnapshot = m.snapshot;
    this.pendingSnapshot = m.snapshot;
    this.config = fromConfState(s.confState);
    this.configIndex = s.index;
    if (isVoter(this.config, this.id)) this.removedAt = 0;
    this.verifiedIndex = s.index;
    reply(s.index);
  }

  private handleReadIndexResponse(m: ReadIndexResponseMsg): void {
    if (m.reject) {
      this.cfg.logger.debug(`${this.id} read ${m.ctx} refused by ${m.from}`);
      return;
    }
    this.readStates.push({ index: m.index, ctx: m.ctx });
  }

  // ---------------------------------------------------------------------------------------
  // Leader side of replication
  // ---------------------------------------------------------------------------------------

  private checkProposal(): Refusal | undefined {
    if (this.role !== 'leader') return this.refuse('notLeader', this.lead === 0 ? 'no leader is known' : `the leader is ${this.lead}`);
    if (this.leadTransferee !== 0) return this.refuse('transferInProgress', `leadership is being transferred to ${this.leadTransferee}`);
    if (!isVoter(this.config, this.id)) return this.refuse('transferInProgress', 'this leader was removed from the configuration and is handing over');
    return undefined;
  }

  /** A removed leader transfers leadership to the voter whose log is most complete. */
  private handOver(): void {
    if (this.role !== 'leader' || this.leadTransferee !== 0) return;
    let best: NodeId = 0;
    let bestMatch = -1;
    for (const id of this.config.voters) {
      const pr = this.progress.get(id);
      if (id !== this.id && pr && pr.match > bestMatch) {
        best = id;
        bestMatch = pr.match;
      }
    }
    if (best !== 0) this.transferLeader(best);
  }

  private refuse(reason: RefusalReason, detail: string): Refusal {
    return { ok: false, reason, leaderHint: this.lead === this.id ? this.id : this.lead, detail };
  }

  private appendEntries(ents: Entry[]): void {
    assert(this.role === 'leader', 'only the leader appends its own entries');
    this.log.truncateAndAppend(ents);
    this.bcastDue = true;
    // A single-member configuration commits as soon as its own write is durable (in advance()).
  }

  private flushBroadcasts(): void {
    if (this.role !== 'leader') {
      this.bcastDue = false;
      return;
    }
    if (this.bcastDue) {
      this.bcastDue = false;
      for (const id of this.progress.keys()) if (id !== this.id) this.sendAppend(id, false);
    }
    const round = this.reads.closeOpenRound();
    if (round > 0) {
      this.bcastHeartbeat(round);
      this.releaseConfirmedReads();
    }
  }

  /**
   * Sends the entries `to` needs (or a snapshot when they are compacted). With `sendIfEmpty`
   * an empty AppendEntries carries the commit index and probes the follower's log.
   */
  private sendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.progress.get(to);
    if (!pr || pr.isPaused()) return false;
    const last = this.log.lastIndex();
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    const ents = prevTerm === undefined ? undefined : this.log.slice(pr.next, last + 1, this.cfg.maxMsgBytes);
    if (prevTerm === undefined || ents === undefined) return this.sendSnapshot(to, pr);
    const commit = this.log.commit;
    if (ents.length === 0 && !sendIfEmpty && commit <= pr.sentCommit) return false;
    this.send({ type: 'append', from: this.id, to, term: this.term, prevLogIndex: prevIndex, prevLogTerm: prevTerm, entries: ents, commit });
    pr.sentCommit = commit;
    if (ents.length > 0) {
      const lastSent = ents[ents.length - 1]!.index;
      if (pr.state === 'replicate') {
        let bytes = 0;
        for (const e of ents) bytes += e.data.length;
        pr.optimisticUpdate(lastSent);
        pr.inflights.add(lastSent, bytes);
      } else {
        pr.probeSent = true;
      }
    } else if (pr.state === 'probe') {
      pr.probeSent = true;
    }
    return true;
  }

  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    if (!pr.recentActive) {
      this.cfg.logger.debug(`${this.id} not sending snapshot to ${to}: it has not been active recently`);
      return false;
    }
    const snap = this.latestSnapshot;
    this.cfg.logger.info(`${this.id} [firstindex: ${this.log.firstIndex()}, commit: ${this.log.commit}] sent snapshot [index: ${snap.meta.index}, term: ${snap.meta.term}] to ${to}`);
    pr.becomeSnapshot(snap.meta.index);
    this.send({ type: 'snapshot', from: this.id, to, term: this.term, snapshot: snap });
    return true;
  }

  private sendTimeoutNow(to: NodeId): void {
    this.cfg.logger.info(`${this.id} sends timeoutNow to ${to} immediately as ${to} already has up-to-date log`);
    this.send({ type: 'timeoutNow', from: this.id, to, term: this.term });
  }

  private bcastHeartbeat(round: number): void {
    this.reads.roundSent(round, this.tickCount);
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      // Never tell a follower to commit beyond what it is known to hold.
      const commit = Math.min(pr.match, this.log.commit);
      this.send({ type: 'heartbeat', from: this.id, to: id, term: this.term, commit, round });
    }
  }

  private handleAppendResponse(m: AppendResponseMsg): void {
    const pr = this.progress.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    if (m.reject) {
      // Back up a term at a time using the follower's hint (thesis §5.3 optimisation).
      let nextProbe = m.hintIndex;
      if (m.hintTerm > 0) nextProbe = this.log.findConflictByTerm(m.hintIndex, m.hintTerm);
      if (pr.maybeDecrTo(m.index, nextProbe)) {
        this.cfg.logger.debug(`${this.id} decreased progress of ${m.from} to next=${pr.next}`);
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(m.from, true);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) {
      if (wasPaused && !pr.isPaused()) this.sendAppend(m.from, false);
      return;
    }
    switch (pr.state) {
      case 'probe':
        pr.becomeReplicate();
        break;
      case 'snapshot':
        if (pr.match >= pr.pendingSnapshot) {
          pr.becomeProbe();
          pr.becomeReplicate();
        }
        break;
      case 'replicate':
        pr.inflights.freeLE(m.index);
        break;
    }
    if (this.maybeCommit()) {
      this.bcastDue = true;
    }
    // Keep the pipe full: send whatever the window now allows.
    while (this.sendAppend(m.from, false)) {
      if (pr.state !== 'replicate') break;
    }
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
      this.cfg.logger.info(`${this.id} sent timeoutNow to ${m.from} after it caught up`);
      this.sendTimeoutNow(m.from);
    }
  }

  private handleHeartbeatResponse(m: HeartbeatResponseMsg): void {
    const pr = this.progress.get(m.from);
    if (!pr) return;
    pr.recentActive = true;
    pr.probeSent = false;
    // The follower is alive; if the window is full, a message was probably lost: free a slot.
    if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirstOne();
    if (pr.match < this.log.lastIndex() || m.needAppend) this.sendAppend(m.from, true);
    if (m.round > 0 && m.round > pr.ackedRound) {
      pr.ackedRound = m.round;
      if (this.cfg.readOnly === 'lease') this.reads.extendLease((r) => this.roundConfirmed(r));
      this.releaseConfirmedReads();
    }
  }

  /**
   * The commit index a joint quorum has durably matched, if it is an entry of our term
   * (§5.4.2: earlier terms' entries commit only indirectly).
   */
  protected maybeCommit(): boolean {
    const acked = (id: NodeId): Index => this.progress.get(id)?.match ?? 0;
    const idx = this.quorumMatched(acked);
    if (idx <= this.log.commit || !Number.isFinite(idx)) return false;
    if (!this.commitRuleOk(idx)) return false;
    const prev = this.log.commit;
    this.log.commitTo(idx);
    for (let i = prev + 1; i <= idx; i++) {
      const e = this.log.entryAt(i);
      if (e && e.term === this.term) this.uncommittedBytes -= e.data.length;
    }
    if (this.uncommittedBytes < 0) this.uncommittedBytes = 0;
    if (!this.committedInTerm && this.log.term(idx) === this.term) {
      this.committedInTerm = true;
      for (const r of this.reads.takeAwaitingCommit()) this.handleReadRequest(r.from, r.ctx);
    }
    return true;
  }

  // ---------------------------------------------------------------------------------------
  // ReadIndex (leader)
  // ---------------------------------------------------------------------------------------

  private handleReadRequest(from: NodeId, ctx: string): void {
    if (!this.committedInTerm) {
      // Thesis §6.4: until an entry of our term commits we do not know the full commit index.
      this.reads.awaitCommit({ from, ctx });
      return;
    }
    if (this.cfg.readOnly === 'lease' && this.inLease()) {
      this.answerRead(from, ctx, this.log.commit);
      return;
    }
    this.reads.add({ from, ctx }, this.log.commit);
  }

  /** Whether a (joint) quorum has acknowledged heartbeat round `round` or a later one. */
  private roundConfirmed(round: number): boolean {
    return this.jointVote((id) => (id === this.id ? true : (this.progress.get(id)?.ackedRound ?? 0) >= round)) === 'won';
  }

  /** Whether this leader may answer a read without a heartbeat round (see RaftConfig.readOnly). */
  protected inLease(): boolean {
    return this.leadTransferee === 0 && this.reads.leaseValid(this.tickCount, this.cfg.electionTicks - this.cfg.leaseDriftTicks);
  }

  /** Lease reads: whether the lease was ever established this term (for tests of the rule). */
  protected leaseEstablished(): boolean {
    return this.reads.leaseEstablished;
  }

  /** Lease reads: whether a member that just started must still ignore votes (it may have acknowledged a leader's heartbeat before it crashed). */
  protected inBootWindow(): boolean {
    return this.cfg.readOnly === 'lease' && this.tickCount < this.cfg.electionTicks;
  }

  /** Releases every pending read round that a quorum has confirmed (by acking it or a later round). */
  private releaseConfirmedReads(): void {
    for (const a of this.reads.releaseConfirmed((r) => this.roundConfirmed(r))) this.answerRead(a.from, a.ctx, a.index);
  }

  private answerRead(from: NodeId, ctx: string, index: Index): void {
    if (from === this.id) this.readStates.push({ index, ctx });
    else this.send({ type: 'readIndexResponse', from: this.id, to: from, term: this.term, ctx, index, reject: false });
  }

  // ---------------------------------------------------------------------------------------
  // Membership
  // ---------------------------------------------------------------------------------------

  private applyConfEntry(e: Entry): void {
    const cc = decodeConfChange(e.data);
    // Proposals are validated against the configuration they will apply to, so a committed
    // change that does not apply is a bug.
    const next = applyConfChange(this.config, cc);
    this.configIndex = e.index;
    if (isVoter(this.config, this.id) && !isVoter(next, this.id)) this.removedAt = e.index;
    else if (isVoter(next, this.id)) this.removedAt = 0;
    this.cfg.logger.info(
      `${this.id} switched to configuration voters=(${[...next.voters].join(' ')})${isJoint(next) ? `&&(${[...next.outgoing].join(' ')})` : ''} learners=(${[...next.learners].join(' ')})`,
    );
    // A new configuration has new quorums: earlier acknowledgements prove nothing about them.
    this.reads.forgetLease();
    this.switchConfig(next);
  }

  private switchConfig(next: Configuration): void {
    this.config = next;
    if (this.role !== 'leader') return;
    const last = this.log.lastIndex();
    const ids = new Set(members(next));
    for (const id of [...this.progress.keys()]) if (!ids.has(id)) this.progress.delete(id);
    for (const id of ids) {
      const pr = this.progress.get(id);
      if (pr) pr.isLearner = !isVoter(next, id);
      else this.progress.set(id, this.newProgress(id, last + 1));
    }
    if (!isVoter(next, this.id)) {
      // Removed or demoted leader. Stepping down at once can wedge the cluster: the remaining
      // voters may not know yet that the change committed (they would still need our vote in
      // the old configuration), and our log may hold entries they lack, so we would refuse
      // them. Instead we keep leading (not counting ourselves) until a voter of the new
      // configuration has everything we have, then hand leadership to it (thesis §3.10).
      this.cfg.logger.info(`${this.id} is no longer a voter; handing leadership over`);
      this.handOver();
      if (this.maybeCommit()) this.bcastDue = true;
      this.bcastDue = true;
      return;
    }
    if (this.leadTransferee !== 0 && !next.voters.has(this.leadTransferee)) this.leadTransferee = 0;
    // The quorum changed: something may now be committed.
    if (this.maybeCommit()) this.bcastDue = true;
    this.bcastDue = true;
  }

  private maybeAutoLeaveJoint(): void {
    if (this.role !== 'leader' || !isJoint(this.config) || !this.config.autoLeave) return;
    if (this.pendingConfIndex > this.log.applied || this.leadTransferee !== 0) return;
    const r = this.proposeConfChange({ changes: [] });
    if (r.ok) this.cfg.logger.info(`${this.id} initiating automatic transition out of joint configuration at index ${r.index}`);
  }

  // ---------------------------------------------------------------------------------------

  private committedToApply(): Index {
    // Committed entries may be applied once the driver has them: they are in the log (durable
    // on a quorum) and the driver persists a Ready's entries before applying its committedEntries.
    return this.log.commit;
  }

  protected send(m: Message): void {
    this.msgs.push(m);
  }
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

export { EMPTY as EMPTY_DATA };
export type { ReadIndexMsg, VoteResponseMsg };
