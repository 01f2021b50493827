/**
 * One Flotilla member: a RaftNode (WAL + snapshots on disk, TCP to the peers) applying the
 * key-value state machine, with the watch hub, the lessor, and the paths every API call takes:
 * writes go through the log on the leader (a follower forwards them), linearizable reads wait
 * for a ReadIndex, serializable reads read the local store.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { assertNever } from '../lib/assert.js';
import { decodeRequest, encodeRequest, requestTooLarge, type ApplyResult, type Command, type CommandValue } from '../kv/commands.js';
import { ERR, KvError } from '../kv/errors.js';
import { LmdbBackend } from '../kv/backend-lmdb.js';
import { KvStateMachine } from '../kv/state-machine.js';
import { WatchHub } from '../kv/watch.js';
import { NotLeaderError, ProposalDroppedError, ProposalOutcomeUnknownError, ProposalRefusedError, RaftNode, ReadTimeoutError, StoppedError, type Transport } from '../node/node.js';
import type { Logger } from '../raft/config.js';
import type { NodeId } from '../raft/types.js';
import { DiskStorage } from '../storage/storage.js';
import { FRAME_BYTES_MAX, MEMBER_FRAME_HEADER_BYTES } from '../transport/codec.js';
import { PEER_IDLE_TIMEOUT_MS, TcpTransport, type MemberChannel } from '../transport/tcp.js';
import type { InitialMember, ServerConfig } from './config.js';
import { faultyFs, faultyTransport, noFaults, type FaultState } from './faults.js';
import { ApplyWaits } from './apply-waits.js';
import { Lessor } from './lessor.js';
import { decodePeerCall, encodePeerCall, FORWARD_HEADER_BYTES, RequestIdGenerator, requestIdMember, type ForwardOutcome, type LeaseOp, type PeerCall } from './peer-calls.js';

export interface MemberInfo {
  readonly id: bigint;
  readonly name: string;
  readonly peerUrls: readonly string[];
  readonly clientUrls: readonly string[];
  readonly isLearner: boolean;
}

/** The fixed fields of every response header, as proto-loader objects (uint64 as strings). */
export interface Header {
  cluster_id: string;
  member_id: string;
  revision: string;
  raft_term: string;
}

/** Pause between attempts while a write or read waits for a leader. */
const RETRY_PAUSE_MS = 50;
/**
 * A lease call to the leader unanswered this long is sent again (renew and time-to-live are
 * idempotent, so a lost call or answer costs only a retry).
 */
export const LEASE_CALL_ATTEMPT_MS = 1_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


export class EtcdMember {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  readonly sm: KvStateMachine;
  readonly hub: WatchHub;
  readonly lessor: Lessor;
  node!: RaftNode<ApplyResult>;
  private transport!: TcpTransport;
  /** The transport as Raft and the member channel use it (with fault injection when enabled). */
  private channel!: Transport & MemberChannel;
  private readonly byRaftId = new Map<number, InitialMember>();
  private readonly requestIds: RequestIdGenerator;
  private callSeq = 0;
  /** Member-channel calls awaiting an answer: callId -> (the peer asked, the answer's handler). */
  private readonly calls = new Map<number, { peer: NodeId; answer: (c: PeerCall) => void }>();
  /** Forwarded requests waiting for this member's apply of their request id. */
  private readonly waits = new ApplyWaits();
  /** Every forward in flight, to end when the member stops. */
  private readonly inFlight = new Set<(e: KvError) => void>();
  private stopped = false;
  /** Test-only faults (see faults.ts); inert unless --unsafe-fault-injection. */
  readonly faults: FaultState = noFaults();
  private publishLoop: Promise<void> = Promise.resolve();

  private constructor(
    readonly config: ServerConfig,
    private readonly logger: Logger,
  ) {
    this.memberId = config.self.id;
    this.clusterId = config.clusterId;
    for (const m of config.initialCluster) this.byRaftId.set(m.raftId, m);
    // The key-value store on disk: <data-dir>/member/db (LMDB), beside the WAL and snapshots.
    const backend = LmdbBackend.open(join(config.dataDir, 'member', 'db'), { batchIntervalMs: config.backendBatchIntervalMs, batchOpsMax: config.backendBatchLimit });
    this.sm = new KvStateMachine({ maxTxnOps: config.maxTxnOps }, backend);
    this.hub = new WatchHub(this.sm, { progressIntervalMs: config.watchProgressNotifyIntervalMs });
    this.lessor = new Lessor(this);
    this.requestIds = new RequestIdGenerator(config.self.raftId);
    this.sm.onApplied((requestId, index, result) => this.waits.applied(requestId, index, result));
    this.sm.onRestore(() => this.waits.restored(this.sm.appliedIndex));
  }

  static async start(config: ServerConfig, logger: Logger): Promise<EtcdMember> {
    const m = new EtcdMember(config, logger);
    await mkdir(config.dataDir, { recursive: true });
    const voters = config.initialCluster.map((x) => x.raftId);
    const storage = await DiskStorage.open(
      config.dataDir,
      { voters, votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false },
      config.unsafeFaultInjection ? { fs: faultyFs(m.faults) } : {},
    );
    const listen = config.listenPeerUrls[0]!;
    const peers = new Map(
      config.initialCluster
        .filter((x) => x.raftId !== config.self.raftId)
        .map((x) => {
          const u = new URL(x.peerUrls[0]!);
          return [x.raftId, { host: u.hostname, port: Number(u.port) }] as const;
        }),
    );
    // A forward carries a request of up to --max-request-bytes in one peer frame.
    if (config.maxRequestBytes + FORWARD_HEADER_BYTES + MEMBER_FRAME_HEADER_BYTES > FRAME_BYTES_MAX) throw new Error(`--max-request-bytes ${config.maxRequestBytes} exceeds the peer frame limit`);
    m.transport = await TcpTransport.start({
      id: config.self.raftId,
      clusterId: `${config.initialClusterToken}/${config.clusterId.toString(16)}`,
      listenHost: listen.hostname,
      listenPort: Number(listen.port),
      peers,
      // Far longer than any heartbeat interval: a leader's heartbeats keep its connections busy.
      idleTimeoutMs: Math.max(PEER_IDLE_TIMEOUT_MS, 3 * config.electionMs),
      logger,
    });
    m.channel = config.unsafeFaultInjection ? faultyTransport(m.transport, m.faults) : m.transport;
    m.channel.onMember((from, body) => m.onPeerCall(from, body));
    m.node = await RaftNode.start<ApplyResult>({
      id: config.self.raftId,
      storage,
      transport: m.channel,
      stateMachine: m.sm,
      tickMs: config.heartbeatMs,
      electionTicks: Math.round(config.electionMs / config.heartbeatMs),
      heartbeatTicks: 1,
      snapshotEntries: config.snapshotCount,
      snapshotRetain: config.snapshotCatchupEntries,
      readTimeoutMs: config.requestTimeoutMs,
      raft: {
        preVote: true,
        checkQuorum: true,
        ...(config.leaseReads ? { readOnly: 'lease' as const, leaseDriftTicks: Math.ceil(config.leaseDriftMs / config.heartbeatMs) } : {}),
      },
      logger,
    });
    m.lessor.start();
    m.publishLoop = m.publish();
    return m;
  }

  // ---------------------------------------------------------------------------------------
  // Identity and membership
  // ---------------------------------------------------------------------------------------

  memberIdOfRaft(raftId: number): bigint {
    return this.byRaftId.get(raftId)?.id ?? 0n;
  }

  raftIdOfMember(id: bigint): number {
    for (const m of this.byRaftId.values()) if (m.id === id) return m.raftId;
    return 0;
  }

  /** The API member id of the leader, 0n when none is known. */
  get leaderId(): bigint {
    return this.memberIdOfRaft(this.node.leader);
  }

  members(): MemberInfo[] {
    const voters = new Set(this.node.status().confState.voters);
    // In member id order, as etcd lists them.
    const all = [...this.byRaftId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return all.map((m) => {
      const published = this.sm.members.get(m.id);
      return {
        id: m.id,
        name: published?.name ?? '',
        peerUrls: m.peerUrls,
        clientUrls: published?.clientUrls ?? [],
        isLearner: !voters.has(m.raftId),
      };
    });
  }

  header(revision: number = this.sm.store.revision): Header {
    return {
      cluster_id: this.clusterId.toString(),
      member_id: this.memberId.toString(),
      revision: String(revision),
      raft_term: String(this.node.status().term),
    };
  }

  /** Publishes this member's name and client URLs through the log (as etcd does) until it is in. */
  private async publish(): Promise<void> {
    const want = { id: this.memberId, name: this.config.name, clientUrls: [...this.config.advertiseClientUrls] };
    const same = () => {
      const p = this.sm.members.get(this.memberId);
      return p !== undefined && p.name === want.name && p.clientUrls.join(',') === want.clientUrls.join(',');
    };
    while (!this.stopped && !same()) {
      try {
        if (this.node.leader !== 0) await this.propose({ op: 'publish', member: want });
        else await sleep(RETRY_PAUSE_MS);
      } catch {
        await sleep(RETRY_PAUSE_MS * 4);
      }
    }
  }

  /** True once this member's name and client URLs are in the replicated member table (etcd serves clients only then). */
  get published(): boolean {
    const p = this.sm.members.get(this.memberId);
    return p !== undefined && p.name === this.config.name;
  }

  /**
   * Resolves with the error that stopped this member's Raft node — a WAL or disk failure
   * (ENOSPC, EIO), an error in the Ready loop — and never for a clean stop. From then on the
   * member neither leads nor follows; its server closes and `flotilla serve` exits (see server.ts).
   */
  get fatal(): Promise<Error> {
    return this.node.fatal;
  }

  // ---------------------------------------------------------------------------------------
  // Writes and reads
  // ---------------------------------------------------------------------------------------

  /**
   * Runs a command through the log and returns its value, or throws the KvError every member
   * got applying it. The leader proposes it; a follower forwards it to the leader over the peer
   * transport and waits for its own apply of the entry with the request's id. Waits for a
   * leader up to the request timeout. Retries only where the request surely did not enter the
   * log (the leader refused it, or it never left this member).
   */
  async propose(cmd: Command): Promise<{ value: CommandValue; revision: number }> {
    const deadline = Date.now() + this.config.requestTimeoutMs;
    const id = this.requestIds.next();
    const data = encodeRequest({ id, command: cmd });
    // As etcd checks the marshalled InternalRaftRequest against --max-request-bytes.
    if (requestTooLarge(data, this.config.maxRequestBytes)) throw ERR.requestTooLarge();
    for (;;) {
      if (this.stopped) throw ERR.stopped();
      let r: ApplyResult | null = null;
      const leader = this.node.leader;
      if (this.node.isLeader) r = await this.proposeLocal(data, deadline);
      else if (leader !== 0) r = await this.forward(leader, id, data, deadline);
      if (r) {
        if (!r.ok) throw new KvError(r.error.code, r.error.message);
        return { value: r.value, revision: r.revision };
      }
      if (Date.now() >= deadline) throw this.node.leader === 0 ? ERR.noLeader() : ERR.timedOut();
      await sleep(RETRY_PAUSE_MS);
    }
  }

  /** null: not proposed (no longer leader), try again. */
  private async proposeLocal(data: Uint8Array, deadline: number): Promise<ApplyResult | null> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.node.propose(data),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(ERR.timedOut()), Math.max(1, deadline - Date.now()));
        }),
      ]);
    } catch (e) {
      const refusal = refusalOf(e);
      if (refusal === 'notLeader' || refusal === 'transferInProgress') return null;
      if (refusal === 'tooLarge') throw ERR.requestTooLarge();
      if (refusal === 'tooManyRequests') throw ERR.tooManyRequests();
      if (e instanceof ProposalDroppedError) throw ERR.leaderChanged();
      if (e instanceof ProposalOutcomeUnknownError) throw ERR.timedOut();
      if (e instanceof StoppedError) throw ERR.stopped();
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Sends the encoded request to the leader and waits for this member's apply of the entry with
   * request id `id`. null: it surely did not enter the log (refused, or never left), try again.
   * Anything ambiguous (no answer, a lost connection) waits for the apply until the deadline:
   * retrying then could apply the request twice.
   */
  private forward(leader: NodeId, id: bigint, data: Uint8Array, deadline: number): Promise<ApplyResult | null> {
    return new Promise((resolve, reject) => {
      const callId = ++this.callSeq;
      const finish = (): void => {
        clearTimeout(timer);
        this.calls.delete(callId);
        this.waits.remove(id);
        this.inFlight.delete(fail);
      };
      const fail = (e: KvError): void => {
        finish();
        reject(e);
      };
      const timer = setTimeout(() => fail(ERR.timedOut()), Math.max(1, deadline - Date.now()));
      this.inFlight.add(fail);
      this.waits.add(
        id,
        (r) => {
          finish();
          resolve(r);
        },
        (why) => fail(why === 'leaderChanged' ? ERR.leaderChanged() : ERR.timedOut()),
      );
      this.calls.set(callId, {
        peer: leader,
        answer: (c) => {
          if (c.type !== 'forwardAnswer') return;
          this.calls.delete(callId);
          const outcome: ForwardOutcome = c.outcome;
          switch (outcome) {
            case 'accepted':
              return this.waits.accepted(id, c.index);
            case 'notLeader':
            case 'transferInProgress':
              finish();
              return resolve(null);
            case 'tooLarge':
              return fail(ERR.requestTooLarge());
            case 'tooManyRequests':
              return fail(ERR.tooManyRequests());
            case 'forbidden':
              return fail(new KvError('FailedPrecondition', 'etcdserver: the leader refused the forwarded request'));
            default:
              assertNever(outcome);
          }
        },
      });
      if (!this.channel.sendMember(leader, encodePeerCall({ type: 'forward', callId, request: data }))) {
        // Dropped before it left (no connection, full queue): surely not in the log.
        finish();
        resolve(null);
      }
    });
  }

  /** A member-channel frame from peer `from` (the id its connection's handshake named). */
  private onPeerCall(from: NodeId, body: Uint8Array): void {
    if (this.stopped) return;
    const c = decodePeerCall(body);
    if (!c) {
      this.logger.warn(`ignored an undecodable member frame from member ${from}`);
      return;
    }
    switch (c.type) {
      case 'forward':
        return this.answerForward(from, c.callId, c.request);
      case 'lease':
        return this.answerLease(from, c.callId, c.op, c.leaseId);
      case 'forwardAnswer':
      case 'leaseAnswer': {
        const call = this.calls.get(c.callId);
        // Only the peer asked may answer.
        if (call && call.peer === from) call.answer(c);
        return;
      }
      default:
        assertNever(c);
    }
  }

  /** Leader: takes a follower's request into the log, or says why not. The result is not sent back. */
  private answerForward(from: NodeId, callId: number, data: Uint8Array): void {
    const answer = (outcome: ForwardOutcome, index = 0, term = 0): void => {
      this.channel.sendMember(from, encodePeerCall({ type: 'forwardAnswer', callId, outcome, index, term }));
    };
    if (!this.node.isLeader) return answer('notLeader');
    if (requestTooLarge(data, this.config.maxRequestBytes)) return answer('tooLarge');
    const req = decodeRequest(data);
    // A member proposes only with its own request ids, and publishes only its own attributes.
    if (!req.ok || requestIdMember(req.id) !== from) return answer('forbidden');
    if (req.command.op === 'publish' && req.command.member.id !== this.memberIdOfRaft(from)) {
      this.logger.warn(`refused member ${from}'s forwarded publish of member ${req.command.member.id.toString(16)}'s attributes`);
      return answer('forbidden');
    }
    const before = this.node.status().lastIndex;
    const p = this.node.propose(data);
    const after = this.node.status();
    if (after.lastIndex > before) {
      // Taken into the log (the core appends synchronously): the follower waits for its apply.
      p.catch(() => undefined);
      return answer('accepted', after.lastIndex, after.term);
    }
    p.then(
      () => answer('notLeader'),
      (e: unknown) => answer(refusalOf(e) ?? 'notLeader'),
    );
  }

  /** Leader: renews a lease or reads its time to live for a follower. */
  private answerLease(from: NodeId, callId: number, op: LeaseOp, leaseId: bigint): void {
    let ttl: number | null = null;
    if (this.node.isLeader) {
      try {
        ttl = op === 'renew' ? this.lessor.renew(leaseId) : this.lessor.remaining(leaseId);
      } catch {
        ttl = null;
      }
    }
    this.channel.sendMember(from, encodePeerCall({ type: 'leaseAnswer', callId, ok: ttl !== null, ttl: ttl ?? 0 }));
  }

  /** Renews a lease on the leader (asked of it over the peer channel from a follower); TTL 0 when unknown. */
  leaseRenew(id: bigint): Promise<number> {
    return this.onLeader('renew', id);
  }

  /** Seconds left on a lease as the leader sees them; -1 when unknown. */
  leaseRemaining(id: bigint): Promise<number> {
    return this.onLeader('timeToLive', id);
  }

  private async onLeader(op: LeaseOp, leaseId: bigint): Promise<number> {
    const deadline = Date.now() + this.config.requestTimeoutMs;
    for (;;) {
      if (this.stopped) throw ERR.stopped();
      if (this.node.isLeader) return op === 'renew' ? this.lessor.renew(leaseId) : this.lessor.remaining(leaseId);
      const leader = this.node.leader;
      if (leader !== 0) {
        const r = await this.leaseCall(leader, op, leaseId, Math.min(deadline, Date.now() + LEASE_CALL_ATTEMPT_MS));
        if (r !== null) return r;
      }
      if (Date.now() >= deadline) throw this.node.leader === 0 ? ERR.noLeader() : ERR.timedOut();
      await sleep(RETRY_PAUSE_MS);
    }
  }

  /** The leader's answer, or null (not leader, or no answer by `until`). */
  private leaseCall(leader: NodeId, op: LeaseOp, leaseId: bigint, until: number): Promise<number | null> {
    return new Promise((resolve) => {
      const callId = ++this.callSeq;
      const done = (r: number | null): void => {
        clearTimeout(timer);
        this.calls.delete(callId);
        resolve(r);
      };
      const timer = setTimeout(() => done(null), Math.max(1, until - Date.now()));
      this.calls.set(callId, { peer: leader, answer: (c) => c.type === 'leaseAnswer' && done(c.ok ? c.ttl : null) });
      if (!this.channel.sendMember(leader, encodePeerCall({ type: 'lease', callId, op, leaseId }))) done(null);
    });
  }

  /** A linearizable read barrier: afterwards the local store reflects every write acknowledged before. */
  async readBarrier(): Promise<void> {
    const deadline = Date.now() + this.config.requestTimeoutMs;
    for (;;) {
      if (this.stopped) throw ERR.stopped();
      try {
        await this.node.linearizableRead();
        return;
      } catch (e) {
        if (e instanceof ReadTimeoutError) throw ERR.timedOut();
        if (e instanceof StoppedError) throw ERR.stopped();
        if (!(e instanceof NotLeaderError) && !(e instanceof ProposalRefusedError)) throw e;
      }
      if (Date.now() >= deadline) throw this.node.leader === 0 ? ERR.noLeader() : ERR.timedOut();
      await sleep(RETRY_PAUSE_MS);
    }
  }

  /** Resolves once the store's revision reaches `rev` (session reads); times out as a request. */
  waitRevision(rev: number): Promise<void> {
    if (this.sm.store.revision >= rev) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.sm.store.revision >= rev) done();
      };
      const off = this.sm.listen(check, check);
      const timer = setTimeout(() => {
        off();
        reject(ERR.timedOut());
      }, this.config.requestTimeoutMs);
      const done = () => {
        clearTimeout(timer);
        off();
        resolve();
      };
    });
  }

  /** A fresh lease id: positive, 63-bit, not in use. */
  newLeaseId(): bigint {
    for (;;) {
      const id = randomBytes(8).readBigUInt64BE(0) & 0x7fff_ffff_ffff_ffffn;
      if (id !== 0n && !this.sm.store.lease(id)) return id;
    }
  }

  /** Bytes of the data directory (WAL and snapshots): StatusResponse.dbSize. */
  async dataSize(): Promise<number> {
    let total = 0;
    const walk = async (dir: string): Promise<void> => {
      for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
        const p = join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else total += (await stat(p).catch(() => ({ size: 0 }))).size;
      }
    };
    await walk(this.config.dataDir);
    return total;
  }

  /**
   * etcd's Defragment: an online compacting copy of the backend (reads and writes go on; see
   * LmdbBackend.defragment), logged with the bytes it reclaimed.
   */
  async defragment(): Promise<{ beforeBytes: number; afterBytes: number }> {
    const startedMs = performance.now();
    this.logger.info(`defragmenting the backend ${join(this.config.dataDir, 'member', 'db')}`);
    const r = await this.sm.backend.defragment();
    this.logger.info(`finished defragmenting the backend in ${Math.round(performance.now() - startedMs)} ms: ${r.beforeBytes} -> ${r.afterBytes} bytes, ${r.beforeBytes - r.afterBytes} bytes reclaimed`);
    return r;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.lessor.stop();
    this.hub.close();
    for (const fail of [...this.inFlight]) fail(ERR.stopped());
    try {
      await this.node.stop();
    } finally {
      await this.transport.close();
      await this.publishLoop.catch(() => undefined);
      await this.sm.backend.close();
    }
  }
}

/** A proposal refusal as the forward outcome that names it; null for anything else. */
function refusalOf(e: unknown): Exclude<ForwardOutcome, 'accepted' | 'forbidden'> | null {
  if (e instanceof NotLeaderError) return 'notLeader';
  if (!(e instanceof ProposalRefusedError)) return null;
  if (e.reason === 'notLeader' || e.reason === 'transferInProgress') return e.reason;
  if (e.reason === 'tooLarge') return 'tooLarge';
  return 'tooManyRequests';
}

