/**
 * One Flotilla member: a RaftNode (WAL + snapshots on disk, TCP to the peers) applying the
 * key-value state machine, with the watch hub, the lessor, and the paths every API call takes:
 * writes go through the log on the leader (a follower forwards them), linearizable reads wait
 * for a ReadIndex, serializable reads read the local store.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { assertNever } from '../lib/assert.js';
import { decodeRequest, encodeRequest, requestTooLarge, type ApplyResult, type Command, type CommandValue } from '../kv/commands.js';
import { AUTH_ERR, type AuthHeader } from '../kv/auth-store.js';
import { ERR, isErrorCode, KvError, type ErrorCode } from '../kv/errors.js';
import { LEARNERS_MAX, MemberTable, RAFT_ID_MAX, encodeMemberChange, newMemberId, normalisePeerUrls, type ClusterMember, type MemberChange } from '../kv/membership.js';
import { LmdbBackend } from '../kv/backend-lmdb.js';
import type { Backend, BackendBatchLimits } from '../kv/backend.js';
import { SNAPSHOT_ANSWER_WAIT_MS, SnapshotStreamTransport } from './snapshot-stream.js';
import { KvStateMachine } from '../kv/state-machine.js';
import { WatchHub } from '../kv/watch.js';
import { NotLeaderError, ProposalDroppedError, ProposalOutcomeUnknownError, ProposalRefusedError, RaftNode, ReadTimeoutError, realClock, StoppedError, type Clock, type NodeObserver, type Transport } from '../node/node.js';
import type { Logger } from '../raft/config.js';
import type { ConfChange, NodeId } from '../raft/types.js';
import { DiskStorage, type StorageObserver } from '../storage/storage.js';
import type { FileSystem } from '../storage/fs.js';
import { FRAME_BYTES_MAX, MEMBER_FRAME_HEADER_BYTES } from '../transport/codec.js';
import { loadTls } from './tls.js';
import { clockStartOf, TraceRecorder } from '../trace/recorder.js';
import { PEER_IDLE_TIMEOUT_MS, TcpTransport, type MemberChannel, type PeerAddress, type PeerLink, type TransportObserver } from '../transport/tcp.js';
import { queryJoin, type JoinTls } from '../transport/join.js';
import type { TlsFiles } from '../lib/tls-files.js';
import type { ServerConfig } from './config.js';
import { faultyClock, faultyFs, faultyTransport, noFaults, type FaultState } from './faults.js';
import { ApplyWaits } from './apply-waits.js';
import { Lessor } from './lessor.js';
import { overQuota, quotaAvailable, quotaStartWarnings } from './quota.js';
import { AUTH_TOKEN_BYTES_MAX, tokenProvider, type AuthInfo, type TokenProvider } from './auth-tokens.js';
import { decodePeerCall, encodePeerCall, FORWARD_HEADER_BYTES, RequestIdGenerator, requestIdMember, type ForwardOutcome, type LeaseOp, type PeerCall } from './peer-calls.js';
import { Deadline, RETRY_PAUSE_MS, retryForLeader, sleep, waitUntil, withDeadline, type LeaderWait } from './wait.js';

/**
 * This member was removed from the cluster (it applied its own removal, or a peer that did
 * told it so): it stops, and its data directory refuses to start again.
 */
export class MemberRemovedError extends Error {
  override name = 'MemberRemovedError';
}

/** etcd's words for a removed member's data directory. */
export const REMOVED_MESSAGE = 'the member has been permanently removed from the cluster';
/** A removed member stops this long after it learns it (etcd's stopWithDelay), so its last answers still leave (ms). */
export const REMOVED_STOP_DELAY_MS = 1_000;
/** Peers keep a removed member's address this long, so the notice that it was removed reaches it (ms). */
export const REMOVED_PEER_GRACE_MS = 2_000;
/** How long a member with --initial-cluster-state existing and no data tries to reach the cluster (ms). */
export const JOIN_TIMEOUT_MS = 30_000;
/** etcd's HealthInterval: a peer counts as up for membership checks if heard from within this (ms). */
export const PEER_ACTIVE_WINDOW_MS = 5_000;
/** etcd's learner promotion rule: its match index at least this fraction of the leader's. */
export const LEARNER_READY_FRACTION = 0.9;

/**
 * Who this member is, kept in its data directory (member.json): its ids, whether it
 * bootstrapped the cluster from its flags or joined one (then the peers it learned when it
 * joined), and whether it was removed. Written once at first start (and on removal), so a
 * restart never re-derives ids from flags that may have changed since.
 */
interface Identity {
  readonly memberId: bigint;
  readonly raftId: number;
  readonly clusterId: bigint;
  readonly bootstrap: 'new' | 'joined';
  /** A joined member: the other members when it joined (it reaches them before its first snapshot). */
  readonly peers: readonly ClusterMember[];
  readonly removed: boolean;
}

const IDENTITY_FILE = 'member.json';

async function readIdentity(dir: string): Promise<Identity | null> {
  let text: string;
  try {
    text = await readFile(join(dir, IDENTITY_FILE), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  const bad = (why: string): never => {
    throw new Error(`${join(dir, IDENTITY_FILE)} is damaged (${why}); it says which member this data directory belongs to`);
  };
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return bad('not JSON');
  }
  if (o === null || typeof o !== 'object') return bad('not an object');
  const hex = (v: unknown, what: string): bigint => (typeof v === 'string' && /^[0-9a-f]{1,16}$/.test(v) ? BigInt(`0x${v}`) : bad(what));
  const raftId = o.raftId;
  if (typeof raftId !== 'number' || !Number.isInteger(raftId) || raftId < 1 || raftId > RAFT_ID_MAX) return bad('raftId');
  if (o.bootstrap !== 'new' && o.bootstrap !== 'joined') return bad('bootstrap');
  const table = MemberTable.fromImage({ nextRaftId: RAFT_ID_MAX + 1, members: Array.isArray(o.peers) ? o.peers : bad('peers'), removed: [] });
  if (typeof table === 'string') return bad(`peers: ${table}`);
  return {
    memberId: hex(o.memberId, 'memberId'),
    raftId,
    clusterId: hex(o.clusterId, 'clusterId'),
    bootstrap: o.bootstrap,
    peers: table.list(),
    removed: o.removed === true,
  };
}

async function writeIdentity(dir: string, id: Identity): Promise<void> {
  const body = JSON.stringify({
    memberId: id.memberId.toString(16),
    raftId: id.raftId,
    clusterId: id.clusterId.toString(16),
    bootstrap: id.bootstrap,
    // In the member table's image form.
    peers: id.peers.map((p) => ({ raftId: p.raftId, id: p.id.toString(), peerUrls: [...p.peerUrls], isLearner: p.isLearner })),
    removed: id.removed,
  });
  const tmp = join(dir, `${IDENTITY_FILE}.tmp`);
  const f = await open(tmp, 'w');
  try {
    await f.writeFile(body);
    await f.sync();
  } finally {
    await f.close();
  }
  await rename(tmp, join(dir, IDENTITY_FILE));
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/** The TLS of a join query to `peerUrl`: this member's peer certificate when the URL is https:// (undefined: plain TCP). */
function joinTls(peerUrl: string, files: TlsFiles | null, config: ServerConfig): JoinTls | undefined {
  if (new URL(peerUrl).protocol !== 'https:' || !files) return undefined;
  return { secureContext: files.current().context, rejectUnauthorized: !config.peerTls?.autoTls };
}

const addressOf = (peerUrl: string): PeerAddress => {
  const u = new URL(peerUrl);
  return { host: u.hostname, port: Number(u.port), tls: u.protocol === 'https:' };
};

/** A membership request as the Cluster API takes it (peer URLs already checked and normalised). */
export type MemberOp =
  | { readonly op: 'add'; readonly peerUrls: readonly string[]; readonly isLearner: boolean }
  | { readonly op: 'remove'; readonly id: bigint }
  | { readonly op: 'update'; readonly id: bigint; readonly peerUrls: readonly string[] }
  | { readonly op: 'promote'; readonly id: bigint };

/** etcd's membership errors. */
export const MEMBER_ERR = {
  badUrls: () => new KvError('memberBadUrls', 'etcdserver: given member URLs are invalid'),
  exists: () => new KvError('memberExists', 'etcdserver: member ID already exist'),
  peerUrlExists: () => new KvError('memberPeerUrlExists', 'etcdserver: Peer URLs already exists'),
  notEnoughStarted: () => new KvError('memberNotEnoughStarted', 'etcdserver: re-configuration failed due to not enough started members'),
  notLearner: () => new KvError('memberNotLearner', 'etcdserver: can only promote a learner member'),
  learnerNotReady: () => new KvError('memberLearnerNotReady', 'etcdserver: can only promote a learner member which is in sync with leader'),
  tooManyLearners: () => new KvError('memberTooManyLearners', 'etcdserver: too many learner members in cluster'),
  unhealthy: () => new KvError('memberUnhealthy', 'etcdserver: unhealthy cluster'),
  raftIdsExhausted: () => new KvError('memberRaftIdsExhausted', `etcdserver: no Raft id left for a new member (${RAFT_ID_MAX} members were added over the cluster's life)`),
};

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

/** Observers of the member's parts, for metrics (src/server/metrics.ts). */
export interface MemberObservers {
  readonly node?: NodeObserver;
  readonly storage?: StorageObserver;
  readonly transport?: TransportObserver;
}

/**
 * A lease call to the leader unanswered this long is sent again (renew and time-to-live are
 * idempotent, so a lost call or answer costs only a retry).
 */
export const LEASE_CALL_ATTEMPT_MS = 1_000;

/**
 * What a member runs on besides its configuration. By default: TCP between members, the WAL
 * and snapshots on the disk, the key-value store in LMDB. The in-process server harness
 * (test/support/in-process.ts) gives memory instead: a MemoryNetwork link, a MemFs, a
 * MemoryBackend; such a member bootstraps only, and does not ask its peers at start whether it
 * was removed (joins and that question go over TCP).
 */
export interface MemberEnv {
  /** This member's peer link, by Raft id (default: TcpTransport on --listen-peer-urls). */
  readonly peerLink?: (raftId: NodeId) => PeerLink;
  /** The file system of the WAL and snapshots (default: the disk). */
  readonly fs?: FileSystem;
  /** Size of a WAL segment file (default the WAL's, 64 MiB; a MemFs copies a file on every sync). */
  readonly walSegmentBytes?: number;
  /** Opens a key-value backend at `path` (default: LMDB). */
  readonly openBackend?: (path: string, limits: BackendBatchLimits) => Backend;
}

const openLmdb = (path: string, limits: BackendBatchLimits): Backend => LmdbBackend.open(path, limits);

export class EtcdMember {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  readonly sm: KvStateMachine;
  readonly hub: WatchHub;
  readonly lessor: Lessor;
  node!: RaftNode<ApplyResult>;
  private transport!: PeerLink;
  /** The transport as Raft and the member channel use it (with fault injection when enabled). */
  private channel!: Transport & MemberChannel;
  /** The channel with snapshots streamed (the last layer of `channel`). */
  private streams!: SnapshotStreamTransport;
  /** This member's Raft id (from its identity: the bootstrap flags, or the cluster it joined). */
  readonly raftId: number;
  private readonly requestIds: RequestIdGenerator;
  private readonly identity: Identity;
  /** Resolves when this member learns it was removed (see `fatal`). */
  private removedFatal!: (e: Error) => void;
  private readonly removedPromise = new Promise<Error>((resolve) => (this.removedFatal = resolve));
  private removing = false;
  /** Removed peers kept until then (ms since epoch), so the notice reaches them. */
  private readonly peerGrace = new Map<NodeId, number>();
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
  /** The clock Raft's ticks and the lessor read: the real one, or under injected clock faults. */
  private readonly clock: Clock;
  private publishLoop: Promise<void> = Promise.resolve();
  /** This member's NOSPACE activation in flight (one at a time; callers wait for it). */
  private noSpaceRaise: Promise<void> | null = null;
  /** Auth tokens (--auth-token): kept or checked by this member, never replicated. */
  tokens!: TokenProvider;
  /** This member's peer certificate (--peer-cert-file ...), for its join queries to https:// peers. */
  private peerTlsFiles: TlsFiles | null = null;
  private removalCheck: Promise<void> = Promise.resolve();
  /** This member's logical clocks and trace ring (null with --trace-clocks=false). */
  clocks: TraceRecorder | null = null;

  private constructor(
    readonly config: ServerConfig,
    private readonly logger: Logger,
    identity: Identity,
    private readonly env: MemberEnv,
  ) {
    this.identity = identity;
    this.memberId = identity.memberId;
    this.clusterId = identity.clusterId;
    this.raftId = identity.raftId;
    // The key-value store on disk: <data-dir>/member/db (LMDB), beside the WAL and snapshots.
    const backend = (env.openBackend ?? openLmdb)(join(config.dataDir, 'member', 'db'), { batchIntervalMs: config.backendBatchIntervalMs, batchOpsMax: config.backendBatchLimit });
    this.sm = new KvStateMachine({ maxTxnOps: config.maxTxnOps, bootstrapMembers: identity.bootstrap === 'new' ? config.initialCluster : [] }, backend);
    this.hub = new WatchHub(this.sm, { progressIntervalMs: config.watchProgressNotifyIntervalMs });
    this.clock = config.unsafeFaultInjection ? faultyClock(this.faults) : realClock;
    this.lessor = new Lessor(this, { clock: this.clock });
    this.requestIds = new RequestIdGenerator(identity.raftId);
    this.sm.onApplied((requestId, index, result) => this.waits.applied(requestId, index, result));
    this.sm.onRestore(() => this.waits.restored(this.sm.appliedIndex));
    this.sm.onApplied((_id, _index, r) => {
      if (r.ok && r.value.op === 'alarm') this.logger.warn(`alarms now active: ${this.sm.alarms().map((a) => `${a.alarm} (member ${a.memberId.toString(16)})`).join(', ') || 'none'}`);
    });
    // Tokens follow the applied auth state on every member (etcd's tokenProvider calls in auth/store.go).
    this.sm.onApplied((_id, _index, r) => {
      if (!r.ok) return;
      const v = r.value;
      if (v.op === 'authenticate' && v.simpleToken !== '') this.tokens.assignSimple(v.user, v.simpleToken);
      else if (v.op === 'auth' && (v.kind === 'userDelete' || v.kind === 'userChangePassword')) this.tokens.invalidateUser(v.name);
      else if (v.op === 'auth' && v.kind === 'authDisable') this.tokens.disable();
    });
    this.sm.onRestore(() => {
      if (!this.sm.auth.enabled) this.tokens.disable();
    });
  }

  /**
   * Who this member is: from its data directory's member.json; else, with no data and
   * --initial-cluster-state existing, by asking the cluster (join); else from the flags, as a
   * bootstrap member. A removed member's directory refuses to start.
   */
  private static async identify(config: ServerConfig, logger: Logger, peerTls: TlsFiles | null): Promise<Identity> {
    await mkdir(config.dataDir, { recursive: true });
    const known = await readIdentity(config.dataDir);
    if (known?.removed) throw new MemberRemovedError(`${REMOVED_MESSAGE} (member ${known.memberId.toString(16)}; data directory ${config.dataDir})`);
    if (known) return known;
    const hasData = (await readdir(config.dataDir)).length > 0;
    const identity: Identity =
      config.initialClusterState === 'existing' && !hasData
        ? await EtcdMember.join(config, logger, peerTls)
        : { memberId: config.self.id, raftId: config.self.raftId, clusterId: config.clusterId, bootstrap: 'new', peers: [], removed: false };
    await writeIdentity(config.dataDir, identity);
    return identity;
  }

  /** Asks the members of --initial-cluster (their peer ports) for the cluster, and finds this member in it by its peer URLs. */
  private static async join(config: ServerConfig, logger: Logger, peerTls: TlsFiles | null): Promise<Identity> {
    const mine = [...config.initialAdvertisePeerUrls].sort().join(',');
    const targets = config.initialCluster.filter((x) => x.name !== config.name).flatMap((x) => x.peerUrls);
    if (targets.length === 0) throw new Error('--initial-cluster-state existing: --initial-cluster names no other member to join');
    const deadline = Deadline.in(JOIN_TIMEOUT_MS);
    for (;;) {
      for (const url of targets) {
        const a = addressOf(url);
        const answer = await queryJoin(a.host, a.port, config.initialClusterToken, undefined, joinTls(url, peerTls, config));
        const cluster = answer ? readJoinAnswer(answer) : null;
        if (!cluster) continue;
        const self = cluster.table.list().find((m) => [...m.peerUrls].sort().join(',') === mine);
        if (!self) {
          throw new Error(
            `the cluster (asked at ${url}) has no member with this member's peer URLs ${mine}: add it first (flotilla member add ${config.name} --peer-urls ${mine}); its members: ${cluster.table
              .list()
              .map((m) => `${m.id.toString(16)}=${m.peerUrls.join(',')}`)
              .join(' ')}`,
          );
        }
        logger.info(`joining cluster ${cluster.clusterId.toString(16)} as member ${self.id.toString(16)} (asked ${url}); waiting for the leader`);
        return {
          memberId: self.id,
          raftId: self.raftId,
          clusterId: cluster.clusterId,
          bootstrap: 'joined',
          peers: cluster.table.list().filter((m) => m.raftId !== self.raftId),
          removed: false,
        };
      }
      if (deadline.passed) throw new Error(`cannot fetch cluster info from peer urls: could not retrieve cluster information from the given URLs (${targets.join(', ')}; same --initial-cluster-token?)`);
      await sleep(500);
    }
  }

  static async start(config: ServerConfig, logger: Logger, observers: MemberObservers = {}, env: MemberEnv = {}): Promise<EtcdMember> {
    // Before storage is opened: unusable certificate files stop the member at once.
    const peerTls = config.peerTls ? loadTls('peer', config.peerTls, [...config.listenPeerUrls, ...config.initialAdvertisePeerUrls.map((u) => new URL(u))], logger) : null;
    const identity = await EtcdMember.identify(config, logger, peerTls);
    const m = new EtcdMember(config, logger, identity, env);
    m.peerTlsFiles = peerTls;
    m.tokens = await tokenProvider(config.authToken, config.authTokenTtlMs);
    await quotaStartWarnings(join(config.dataDir, 'member'), config.quotaBackendBytes, logger);
    // A joining member starts with no configuration: it learns it (and the data) from the
    // leader's snapshot. Bootstrap members start from the one their flags give.
    const voters = identity.bootstrap === 'new' ? config.initialCluster.map((x) => x.raftId) : [];
    const storage = await DiskStorage.open(
      config.dataDir,
      { voters, votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false },
      {
        ...(config.unsafeFaultInjection ? { fs: faultyFs(m.faults, env.fs) } : env.fs ? { fs: env.fs } : {}),
        ...(env.walSegmentBytes ? { segmentBytes: env.walSegmentBytes } : {}),
        ...(observers.storage ? { observer: observers.storage } : {}),
      },
    );
    const listen = config.listenPeerUrls[0]!;
    const initialPeers = identity.bootstrap === 'new' ? config.initialCluster : identity.peers;
    const peers = new Map(initialPeers.filter((x) => x.raftId !== identity.raftId).map((x) => [x.raftId, addressOf(x.peerUrls[0]!)] as const));
    // A forward carries a request of up to --max-request-bytes in one peer frame.
    if (config.maxRequestBytes + FORWARD_HEADER_BYTES + MEMBER_FRAME_HEADER_BYTES > FRAME_BYTES_MAX) throw new Error(`--max-request-bytes ${config.maxRequestBytes} exceeds the peer frame limit`);
    if (config.traceClocks !== false) m.clocks = new TraceRecorder(String(identity.raftId), { start: clockStartOf(Date.now()) });
    m.transport = env.peerLink ? m.linkTo(env.peerLink, peers) : await TcpTransport.start({
      ...(m.clocks ? { clocks: m.clocks } : {}),
      id: identity.raftId,
      clusterId: `${config.initialClusterToken}/${identity.clusterId.toString(16)}`,
      onJoinQuery: (token) => m.answerJoin(token),
      listenHost: listen.hostname,
      listenPort: Number(listen.port),
      peers,
      // Far longer than any heartbeat interval: a leader's heartbeats keep its connections busy.
      idleTimeoutMs: Math.max(PEER_IDLE_TIMEOUT_MS, 3 * config.electionMs),
      ...(peerTls
        ? {
            tls: {
              files: peerTls,
              listen: listen.protocol === 'https:',
              clientCertAuth: config.peerTls!.clientCertAuth,
              allowedCn: config.peerTls!.allowedCn,
              verifyPeer: !config.peerTls!.autoTls,
            },
          }
        : {}),
      logger,
      ...(observers.transport ? { observer: observers.transport } : {}),
    });
    // Snapshots for lagging members are streamed in chunks beside Raft's message (snapshot-stream.ts).
    m.streams = new SnapshotStreamTransport(config.unsafeFaultInjection ? faultyTransport(m.transport, m.faults) : m.transport, {
      id: identity.raftId,
      openView: (index) => m.sm.snapshotView(index),
      receiveDir: join(config.dataDir, 'member', 'snap-recv'),
      openStaging: (path) => (env.openBackend ?? openLmdb)(path, { batchIntervalMs: 0, batchOpsMax: Number.MAX_SAFE_INTEGER }),
      // Started below; a stream only runs once the node does.
      onProgress: (to) => m.node?.snapshotProgress(to),
      onFailed: (to) => m.node?.snapshotFailed(to),
      logger,
    });
    m.sm.setStreamedSnapshots((id, index) => m.streams.takeStreamed(id, index));
    m.channel = m.streams;
    m.channel.onMember((from, body) => m.onPeerCall(from, body));
    m.sm.onMembership((c) => m.onMembershipChange(c));
    m.node = await RaftNode.start<ApplyResult>({
      id: identity.raftId,
      storage,
      transport: m.channel,
      stateMachine: m.sm,
      tickMs: config.heartbeatMs,
      clock: m.clock,
      electionTicks: Math.round(config.electionMs / config.heartbeatMs),
      heartbeatTicks: 1,
      snapshotEntries: config.snapshotCount,
      snapshotRetain: config.snapshotCatchupEntries,
      readTimeoutMs: config.requestTimeoutMs,
      raft: {
        preVote: true,
        checkQuorum: true,
        snapshotRetryTicks: Math.ceil(SNAPSHOT_ANSWER_WAIT_MS / config.heartbeatMs),
        ...(config.leaseReads ? { readOnly: 'lease' as const, leaseDriftTicks: Math.ceil(config.leaseDriftMs / config.heartbeatMs) } : {}),
      },
      logger,
      ...(observers.node ? { observer: observers.node } : {}),
    });
    // A backend commit that fails in the background (the disk under <data-dir>/member/db full)
    // stops the member at once, as a WAL failure does: nothing waits for that commit to hear it.
    m.sm.backend.onFailure((e) => m.node.fail(e));
    m.node.onLeadershipChange((leading) => {
      if (!leading) m.streams.abortSends();
    });
    m.syncPeers();
    m.lessor.start();
    m.publishLoop = m.publish();
    // (Asked over TCP, as joins are: not on a peer link of the environment's, which has no join queries.)
    m.removalCheck = env.peerLink ? Promise.resolve() : m.checkStillMember();
    return m;
  }

  /**
   * A member removed while it was down never applies its removal and no peer accepts its
   * connections any more: at start it asks its peers (the join query) whether the cluster still
   * has it, and stops as removed if the cluster lists it so. Best effort: no answer, no verdict.
   */
  private async checkStillMember(): Promise<void> {
    const peers = this.sm.cluster.size > 0 ? this.sm.cluster.list() : this.identity.peers;
    for (const p of peers) {
      if (this.stopped || p.raftId === this.raftId) continue;
      const a = addressOf(p.peerUrls[0]!);
      const answer = await queryJoin(a.host, a.port, this.config.initialClusterToken, undefined, joinTls(p.peerUrls[0]!, this.peerTlsFiles, this.config));
      const cluster = answer ? readJoinAnswer(answer) : null;
      if (!cluster || cluster.clusterId !== this.clusterId) continue;
      if (!cluster.table.byRaftId(this.raftId) && cluster.table.isRemoved(this.memberId)) this.learnRemoved(`member ${p.raftId} lists it as removed`);
      return;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Identity and membership
  // ---------------------------------------------------------------------------------------

  memberIdOfRaft(raftId: number): bigint {
    return this.sm.cluster.byRaftId(raftId)?.id ?? 0n;
  }

  raftIdOfMember(id: bigint): number {
    return this.sm.cluster.byMemberId(id)?.raftId ?? 0;
  }

  /** The API member id of the leader, 0n when none is known. */
  get leaderId(): bigint {
    return this.memberIdOfRaft(this.node.leader);
  }

  /** When a frame from peer `raftId` last arrived (ms since epoch; 0 if never): for the dashboard's "last contact". */
  peerHeardFrom(raftId: number): number {
    return this.transport.heardFrom(raftId);
  }

  /** The replicated member table (in member id order, as etcd lists them), with each member's published name and client URLs. */
  members(): MemberInfo[] {
    return this.sm.cluster.list().map((m) => this.memberInfo(m));
  }

  private memberInfo(m: ClusterMember): MemberInfo {
    const published = this.sm.members.get(m.id);
    return { id: m.id, name: published?.name ?? '', peerUrls: m.peerUrls, clientUrls: published?.clientUrls ?? [], isLearner: m.isLearner };
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
   * Resolves with the error that stopped this member's Raft node — a WAL, snapshot or backend
   * (LMDB) failure (ENOSPC, EIO), an error in the Ready loop — and never for a clean stop. From then on the
   * member neither leads nor follows; its server closes and `flotilla serve` exits (see server.ts).
   */
  get fatal(): Promise<Error> {
    return Promise.race([this.node.fatal, this.removedPromise]);
  }

  // ---------------------------------------------------------------------------------------
  // Membership changes (etcd's AddMember, RemoveMember, UpdateMember, PromoteMember)
  // ---------------------------------------------------------------------------------------

  /** The answer to a join query naming our token: the cluster id and the member table. */
  private answerJoin(token: string): Uint8Array | null {
    if (token !== this.config.initialClusterToken || this.stopped || this.sm.cluster.size === 0) return null;
    return new TextEncoder().encode(JSON.stringify({ clusterId: this.clusterId.toString(16), cluster: this.sm.cluster.toImage() }));
  }

  /** After every applied configuration change and every restore (null). */
  private onMembershipChange(c: MemberChange | null): void {
    if (c?.op === 'add') {
      // A member that joins has no log: it must start from a snapshot, so no member may keep
      // the log from its start (whoever leads next sends it, see RaftNode.requestSnapshot).
      this.node?.requestSnapshot(0);
    }
    if (c?.op === 'remove' && c.raftId === this.raftId) {
      this.learnRemoved(`applied its own removal`);
      return;
    }
    if (c?.op === 'remove') {
      // It may not learn the commit of its own removal from us any more: tell it.
      this.channel?.sendMember(c.raftId, encodePeerCall({ type: 'removed', callId: 0 }));
      this.peerGrace.set(c.raftId, Date.now() + REMOVED_PEER_GRACE_MS);
      setTimeout(() => this.syncPeers(), REMOVED_PEER_GRACE_MS + 10).unref();
    }
    this.syncPeers();
  }

  /** The transport's peers follow the member table: added, moved (updated peer URLs), removed (after a grace period). */
  private syncPeers(): void {
    if (!this.transport || this.stopped) return;
    const table = this.sm.cluster;
    // A joining member knows nobody until its first snapshot: keep the peers it was told of.
    if (table.size === 0) return;
    for (const m of table.list()) if (m.raftId !== this.raftId) this.transport.setPeer(m.raftId, addressOf(m.peerUrls[0]!));
    const now = Date.now();
    for (const id of this.transport.peerIds()) {
      if (table.byRaftId(id)) continue;
      if ((this.peerGrace.get(id) ?? 0) > now) continue;
      this.peerGrace.delete(id);
      this.transport.removePeer(id);
    }
  }

  /** This member is no longer in the cluster: remember it in the data directory, then stop (etcd stops with a delay too). */
  private learnRemoved(how: string): void {
    if (this.removing || this.stopped) return;
    this.removing = true;
    this.logger.warn(`this member (${this.memberId.toString(16)}) was removed from the cluster (${how}); stopping in ${REMOVED_STOP_DELAY_MS} ms`);
    void writeIdentity(this.config.dataDir, { ...this.identity, removed: true })
      .catch((e: unknown) => this.logger.warn(`could not record the removal in ${this.config.dataDir}: ${(e as Error).message}`))
      .then(() => sleep(REMOVED_STOP_DELAY_MS))
      .then(() => this.removedFatal(new MemberRemovedError(`this member was removed from the cluster: ${REMOVED_MESSAGE}`)));
  }

  /**
   * Makes a membership change and returns once this member has applied it (so its member list
   * shows it): on the leader directly, from a follower through the leader (member channel).
   * Waits for a leader up to the request timeout, like a write.
   */
  async changeMembership(op: MemberOp): Promise<{ member?: MemberInfo }> {
    const w = this.leaderWait();
    const done = await retryForLeader(w, () => this.onLeaderOrForward(() => this.leaderMemberOp(op, w.deadline), (leader) => this.memberCall(leader, op, w.deadline)));
    await waitUntil(() => this.node.appliedIndex >= done.index, { deadline: w.deadline, pollMs: 10, stopped: () => this.stopped });
    const m = this.sm.cluster.byRaftId(done.raftId);
    return m ? { member: this.memberInfo(m) } : {};
  }

  /** A wait for the leader up to the request timeout (see retryForLeader). */
  private leaderWait(): LeaderWait {
    return { deadline: Deadline.in(this.config.requestTimeoutMs), stopped: () => this.stopped, hasLeader: () => this.node.leader !== 0 };
  }

  /** One attempt of a request: `onLeader` when this member leads, `onFollower` with the leader it knows; null when no leader is known. */
  private onLeaderOrForward<T>(onLeader: () => Promise<T | null>, onFollower: (leader: NodeId) => Promise<T | null>): Promise<T | null> {
    const leader = this.node.leader;
    if (this.node.isLeader) return onLeader();
    return leader !== 0 ? onFollower(leader) : Promise.resolve(null);
  }

  /** Members whose name is published (etcd's IsStarted) among the voters, except `except`. */
  private startedVoters(except = 0): { voters: number; started: number } {
    let voters = 0;
    let started = 0;
    for (const m of this.sm.cluster.list()) {
      if (m.isLearner || m.raftId === except) continue;
      voters++;
      if (this.sm.members.get(m.id)?.name) started++;
    }
    return { voters, started };
  }

  /**
   * Leader: checks the change as etcd does (strict reconfiguration checks on), proposes it and
   * waits for it to apply. Returns the index it applied at and the member's Raft id; null when
   * this member is not (or no longer) the leader: the caller tries again where the leader is.
   */
  private async leaderMemberOp(op: MemberOp, deadline: Deadline): Promise<{ index: number; raftId: number } | null> {
    const table = this.sm.cluster;
    const urlTaken = (urls: readonly string[], except: number): boolean => table.list().some((m) => m.raftId !== except && m.peerUrls.some((u) => urls.includes(u)));
    let cc: ConfChange;
    let raftId: number;
    // etcd asks its transport whether each peer is active (ActiveSince); we ask when it was last
    // heard from. A leader elected a moment ago may not have heard from every follower yet (they
    // talk only to the leader): the voters get an election timeout to answer before the verdict.
    const active = (id: number): boolean => id === this.raftId || this.transport.heardFrom(id) >= Date.now() - PEER_ACTIVE_WINDOW_MS;
    const voters = table.list().filter((m) => !m.isLearner);
    for (const settle = Deadline.in(this.config.electionMs); !voters.every((m) => active(m.raftId)) && !settle.passed; ) await sleep(RETRY_PAUSE_MS);
    switch (op.op) {
      case 'add': {
        // In etcd's order: the strict reconfiguration checks (mayAddMember), then those of
        // ValidateConfigurationChange (removed id, id taken, peer URL taken, learners).
        if (!op.isLearner) {
          // etcd's IsReadyToAddVotingMember: a quorum of the grown voters already started.
          const { voters, started } = this.startedVoters();
          if (!(started === 1 && voters === 1) && started < Math.floor((voters + 1) / 2) + 1) throw MEMBER_ERR.notEnoughStarted();
        }
        // etcd's isConnectedFullySince: every voter reachable.
        if (!voters.every((m) => active(m.raftId))) throw MEMBER_ERR.unhealthy();
        // The id has the time in seconds: the same URLs within one second give the same id.
        const id = newMemberId(op.peerUrls, Date.now() / 1000);
        if (table.isRemoved(id)) throw ERR.memberNotFound();
        if (table.byMemberId(id)) throw MEMBER_ERR.exists();
        if (urlTaken(op.peerUrls, 0)) throw MEMBER_ERR.peerUrlExists();
        if (op.isLearner && table.list().filter((m) => m.isLearner).length >= LEARNERS_MAX) throw MEMBER_ERR.tooManyLearners();
        raftId = table.nextRaftId;
        if (raftId > RAFT_ID_MAX) throw MEMBER_ERR.raftIdsExhausted();
        const change: MemberChange = { op: 'add', raftId, id, peerUrls: op.peerUrls, isLearner: op.isLearner };
        cc = { changes: [{ kind: op.isLearner ? 'addLearner' : 'addVoter', nodeId: raftId }], ...JOINT(!op.isLearner), context: encodeMemberChange(change) };
        break;
      }
      case 'remove': {
        const m = table.byMemberId(op.id);
        if (!m) throw ERR.memberNotFound();
        raftId = m.raftId;
        if (!m.isLearner) {
          const { voters: n, started } = this.startedVoters(m.raftId);
          if (started < Math.floor(n / 2) + 1) throw MEMBER_ERR.notEnoughStarted();
          // etcd's quorum protection: a member that is down may go; otherwise the active voters
          // left must still be a quorum.
          if (active(m.raftId)) {
            const up = voters.filter((v) => active(v.raftId)).length;
            if (up - 1 < 1 + Math.floor((voters.length - 1) / 2)) throw MEMBER_ERR.unhealthy();
          }
        }
        if (m.raftId === this.raftId) {
          // Removing the leader: hand leadership over first, then the new leader removes us.
          await this.handOver(deadline);
          return null;
        }
        // A single-voter change, not joint: leaving a joint configuration needs a quorum of the
        // old voters, which for two voters becoming one includes the member that is stopping.
        cc = { changes: [{ kind: 'removeNode', nodeId: m.raftId }], context: encodeMemberChange({ op: 'remove', raftId: m.raftId, id: m.id }) };
        break;
      }
      case 'update': {
        const m = table.byMemberId(op.id);
        if (!m) throw ERR.memberNotFound();
        raftId = m.raftId;
        if (urlTaken(op.peerUrls, m.raftId)) throw MEMBER_ERR.peerUrlExists();
        // The same role again: the configuration does not change, the context carries the URLs.
        cc = { changes: [{ kind: m.isLearner ? 'addLearner' : 'addVoter', nodeId: m.raftId }], context: encodeMemberChange({ op: 'update', raftId: m.raftId, id: m.id, peerUrls: op.peerUrls }) };
        break;
      }
      case 'promote': {
        const m = table.byMemberId(op.id);
        // etcd checks the learner's progress first (isLearnerReady), then the rest.
        const progress = this.node.status().progress;
        if (m && progress) {
          const learner = progress.get(m.raftId);
          const leaderMatch = progress.get(this.raftId)?.match ?? this.node.status().lastIndex;
          if (learner && learner.match < leaderMatch * LEARNER_READY_FRACTION) throw MEMBER_ERR.learnerNotReady();
        }
        if (!m) throw ERR.memberNotFound();
        if (!m.isLearner) throw MEMBER_ERR.notLearner();
        raftId = m.raftId;
        const { voters, started } = this.startedVoters();
        if (started + 1 < Math.floor((voters + 1) / 2) + 1) throw MEMBER_ERR.notEnoughStarted();
        cc = { changes: [{ kind: 'addVoter', nodeId: m.raftId }], ...JOINT(true), context: encodeMemberChange({ op: 'promote', raftId: m.raftId, id: m.id }) };
        break;
      }
    }
    for (;;) {
      if (!this.node.isLeader) return null;
      try {
        await withDeadline(this.node.proposeConfChange(cc), deadline);
        return { index: this.node.appliedIndex, raftId };
      } catch (e) {
        if (e instanceof NotLeaderError) return null;
        if (e instanceof ProposalRefusedError && (e.reason === 'notLeader' || e.reason === 'transferInProgress')) return null;
        if (e instanceof ProposalRefusedError && e.reason === 'confChangePending') {
          // Another change (or the automatic leave of a joint configuration) is being applied.
          if (deadline.passed) throw ERR.timedOut();
          await sleep(RETRY_PAUSE_MS);
          continue;
        }
        if (e instanceof ProposalRefusedError && e.reason === 'invalidConfChange') throw new KvError('refused', `etcdserver: ${e.message}`);
        if (e instanceof ProposalDroppedError) throw ERR.leaderChanged();
        if (e instanceof ProposalOutcomeUnknownError) throw ERR.timedOut();
        if (e instanceof StoppedError) throw ERR.stopped();
        throw e;
      }
    }
  }

  /** Leader: transfers leadership to the voter with the most of the log, and waits until it leads (or the deadline). */
  private async handOver(deadline: Deadline): Promise<void> {
    const s = this.node.status();
    let best = 0;
    let bestMatch = -1;
    for (const [id, p] of s.progress ?? []) {
      if (id === this.raftId || p.isLearner) continue;
      if (p.match > bestMatch) {
        best = id;
        bestMatch = p.match;
      }
    }
    if (best === 0) throw MEMBER_ERR.notEnoughStarted();
    this.logger.info(`removing this member, the leader: handing leadership to ${best} first`);
    try {
      this.node.transferLeadership(best);
    } catch {
      // A transfer already under way: wait for it as well.
    }
    await waitUntil(() => !this.node.isLeader, { deadline, pollMs: 20 });
  }

  /** Asks the leader to make the change; null when it is not the leader (or the call never left): try again. */
  private memberCall(leader: NodeId, op: MemberOp, deadline: Deadline): Promise<{ index: number; raftId: number } | null> {
    return this.callPeer<{ index: number; raftId: number } | null>({
      peer: leader,
      deadline,
      request: (callId) => ({ type: 'member', callId, request: encodeMemberOp(op) }),
      onTimeout: (settle) => settle.reject(ERR.timedOut()),
      notSent: null,
      onAnswer: (c, settle) => {
        if (c.type !== 'memberAnswer') return;
        const a = readMemberAnswer(c.answer);
        if (!a) return settle.reject(new KvError('internal', 'etcdserver: the leader sent an undecodable answer'));
        if (a.kind === 'retry') return settle.resolve(null);
        if (a.kind === 'error') return settle.reject(new KvError(a.code, a.message));
        settle.resolve({ index: a.index, raftId: a.raftId });
      },
    });
  }

  /** Leader: a follower's membership change. */
  private answerMemberCall(from: NodeId, callId: number, request: Uint8Array): void {
    const send = (a: MemberAnswer): void => void this.channel.sendMember(from, encodePeerCall({ type: 'memberAnswer', callId, answer: encodeMemberAnswer(a) }));
    const op = decodeMemberOp(request);
    if (!op) return send({ kind: 'error', code: 'badRequest', message: 'etcdserver: malformed membership request' });
    if (!this.node.isLeader) return send({ kind: 'retry' });
    this.leaderMemberOp(op, Deadline.in(this.config.requestTimeoutMs)).then(
      (r) => send(r ? { kind: 'done', index: r.index, raftId: r.raftId } : { kind: 'retry' }),
      (e: unknown) => send(e instanceof KvError ? { kind: 'error', code: e.code, message: e.message } : { kind: 'error', code: 'plain', message: `etcdserver: ${(e as Error).message}` }),
    );
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
  async propose(cmd: Command, auth?: AuthHeader): Promise<{ value: CommandValue; revision: number }> {
    const w = this.leaderWait();
    const id = this.requestIds.next();
    const data = encodeRequest(auth ? { id, command: cmd, auth } : { id, command: cmd });
    // As etcd checks the marshalled InternalRaftRequest against --max-request-bytes.
    if (requestTooLarge(data, this.config.maxRequestBytes)) throw ERR.requestTooLarge();
    const r = await retryForLeader(w, () => this.onLeaderOrForward(() => this.proposeLocal(data, w.deadline), (leader) => this.forward(leader, id, data, w.deadline)));
    if (!r.ok) throw new KvError(r.error.code, r.error.message);
    // This write took the store to its quota: the alarm is in before the answer (as etcd's
    // applier raises it when an apply exceeds the quota).
    if ((cmd.op === 'put' || cmd.op === 'txn' || cmd.op === 'leaseGrant') && overQuota(this.sm.store.quotaSizeBytes(), this.config.quotaBackendBytes)) await this.raiseNoSpace('is at or over');
    return { value: r.value, revision: r.revision };
  }

  /** null: not proposed (no longer leader), try again. */
  private async proposeLocal(data: Uint8Array, deadline: Deadline): Promise<ApplyResult | null> {
    try {
      return await withDeadline(this.node.propose(data), deadline);
    } catch (e) {
      const refusal = refusalOf(e);
      if (refusal === 'notLeader' || refusal === 'transferInProgress') return null;
      if (refusal === 'tooLarge') throw ERR.requestTooLarge();
      if (refusal === 'tooManyRequests') throw ERR.tooManyRequests();
      if (e instanceof ProposalDroppedError) throw ERR.leaderChanged();
      if (e instanceof ProposalOutcomeUnknownError) throw ERR.timedOut();
      if (e instanceof StoppedError) throw ERR.stopped();
      throw e;
    }
  }

  /**
   * Sends the encoded request to the leader and waits for this member's apply of the entry with
   * request id `id`. null: it surely did not enter the log (refused, or never left), try again.
   * Anything ambiguous (no answer, a lost connection) waits for the apply until the deadline:
   * retrying then could apply the request twice.
   */
  private forward(leader: NodeId, id: bigint, data: Uint8Array, deadline: Deadline): Promise<ApplyResult | null> {
    return this.callPeer<ApplyResult | null>({
      peer: leader,
      deadline,
      request: (callId) => ({ type: 'forward', callId, request: data }),
      onTimeout: (settle) => settle.reject(ERR.timedOut()),
      // Dropped before it left (no connection, full queue): surely not in the log.
      notSent: null,
      hold: (settle) => {
        this.waits.add(
          id,
          (r) => settle.resolve(r),
          (why) => settle.reject(why === 'leaderChanged' ? ERR.leaderChanged() : ERR.timedOut()),
        );
        return () => this.waits.remove(id);
      },
      onAnswer: (c, settle) => {
        if (c.type !== 'forwardAnswer') return;
        const outcome: ForwardOutcome = c.outcome;
        switch (outcome) {
          case 'accepted':
            return this.waits.accepted(id, c.index);
          case 'notLeader':
          case 'transferInProgress':
            return settle.resolve(null);
          case 'tooLarge':
            return settle.reject(ERR.requestTooLarge());
          case 'tooManyRequests':
            return settle.reject(ERR.tooManyRequests());
          case 'forbidden':
            return settle.reject(new KvError('refused', 'etcdserver: the leader refused the forwarded request'));
          default:
            assertNever(outcome);
        }
      },
    });
  }

  /**
   * One call to `peer` over the member channel: sends `request(callId)` and hands every answer
   * the peer sends to that call id to `onAnswer`, until the call settles — through `settle`
   * (from onAnswer, onTimeout or `hold`), at `deadline` (onTimeout), when this member stops
   * (`server stopped`), or at once with `notSent` when the call could not leave (no connection,
   * a full queue: surely not received). Settles once; what it registered is released then.
   */
  private callPeer<T>(o: {
    readonly peer: NodeId;
    readonly deadline: Deadline;
    readonly request: (callId: number) => PeerCall;
    readonly onAnswer: (c: PeerCall, settle: Settle<T>) => void;
    readonly onTimeout: (settle: Settle<T>) => void;
    readonly notSent: T;
    /** Something else the call waits for beside the answer (a forward: its apply here); returns its release. */
    readonly hold?: (settle: Settle<T>) => () => void;
  }): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const callId = ++this.callSeq;
      let settled = false;
      let release = (): void => undefined;
      const end = (): boolean => {
        if (settled) return false;
        settled = true;
        clearTimeout(timer);
        this.calls.delete(callId);
        this.inFlight.delete(onStop);
        release();
        return true;
      };
      const settle: Settle<T> = {
        resolve: (v) => void (end() && resolve(v)),
        reject: (e) => void (end() && reject(e)),
      };
      const onStop = (e: KvError): void => settle.reject(e);
      const timer = setTimeout(() => o.onTimeout(settle), o.deadline.remainingMs);
      this.inFlight.add(onStop);
      if (o.hold) release = o.hold(settle);
      this.calls.set(callId, { peer: o.peer, answer: (c) => o.onAnswer(c, settle) });
      if (!this.channel.sendMember(o.peer, encodePeerCall(o.request(callId)))) settle.resolve(o.notSent);
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
      case 'member':
        return this.answerMemberCall(from, c.callId, c.request);
      case 'removed':
        // Only a member of the cluster (an authenticated peer) can say so, and only after it
        // applied our removal: a committed change.
        return this.learnRemoved(`member ${from} applied its removal`);
      case 'memberAnswer':
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
    const send = (ttl: number | null): void => void this.channel.sendMember(from, encodePeerCall({ type: 'leaseAnswer', callId, ok: ttl !== null, ttl: ttl ?? 0 }));
    // Not the primary lessor (yet, or any more): ok false, the follower asks again.
    if (op === 'renew') this.lessor.renew(leaseId).then(send, () => send(null));
    else send(this.lessor.remaining(leaseId));
  }

  /** Renews a lease on the leader (asked of it over the peer channel from a follower); TTL 0 when unknown. */
  leaseRenew(id: bigint): Promise<number> {
    return this.onLeader('renew', id);
  }

  /** Seconds left on a lease as the leader sees them; -1 when unknown. */
  leaseRemaining(id: bigint): Promise<number> {
    return this.onLeader('timeToLive', id);
  }

  private onLeader(op: LeaseOp, leaseId: bigint): Promise<number> {
    const w = this.leaderWait();
    return retryForLeader(w, () =>
      this.onLeaderOrForward(
        // null: not the primary lessor yet (its term's first entry not applied) or any more.
        async () => (op === 'renew' ? await this.lessor.renew(leaseId) : this.lessor.remaining(leaseId)),
        (leader) => this.leaseCall(leader, op, leaseId, w.deadline.within(LEASE_CALL_ATTEMPT_MS)),
      ),
    );
  }

  /** The leader's answer, or null (not leader, or no answer by `until`). */
  private leaseCall(leader: NodeId, op: LeaseOp, leaseId: bigint, until: Deadline): Promise<number | null> {
    return this.callPeer<number | null>({
      peer: leader,
      deadline: until,
      request: (callId) => ({ type: 'lease', callId, op, leaseId }),
      onTimeout: (settle) => settle.resolve(null),
      notSent: null,
      onAnswer: (c, settle) => void (c.type === 'leaseAnswer' && settle.resolve(c.ok ? c.ttl : null)),
    });
  }

  /**
   * etcd's quotaKVServer / quotaLeaseServer check, before a request that costs `costBytes` is
   * proposed: if the store cannot take it within --quota-backend-bytes, this member's NOSPACE
   * alarm is raised through the log (and applied) and the request refused.
   */
  async checkQuota(costBytes: number): Promise<void> {
    if (quotaAvailable(this.sm.store.quotaSizeBytes(), costBytes, this.config.quotaBackendBytes)) return;
    await this.raiseNoSpace(`cannot take a request of ${costBytes} bytes within`);
    throw ERR.noSpace();
  }

  /** Proposes this member's NOSPACE alarm unless it is active or on its way; failures are logged (the next write tries again). */
  private raiseNoSpace(why: string): Promise<void> {
    if (this.stopped || this.sm.hasAlarm('NOSPACE', this.memberId)) return Promise.resolve();
    this.noSpaceRaise ??= (async () => {
      this.logger.warn(`the store (${this.sm.store.quotaSizeBytes()} bytes) ${why} the quota of ${this.config.quotaBackendBytes} bytes (--quota-backend-bytes): raising the NOSPACE alarm`);
      try {
        await this.propose({ op: 'alarm', action: 'activate', member: { memberId: this.memberId, alarm: 'NOSPACE' } });
      } catch (e) {
        this.logger.warn(`raising the NOSPACE alarm failed: ${(e as Error).message}`);
      } finally {
        this.noSpaceRaise = null;
      }
    })();
    return this.noSpaceRaise;
  }

  /** A linearizable read barrier: afterwards the local store reflects every write acknowledged before. */
  async readBarrier(): Promise<void> {
    await retryForLeader(this.leaderWait(), async () => {
      try {
        await this.node.linearizableRead();
        return true;
      } catch (e) {
        if (e instanceof ReadTimeoutError) throw ERR.timedOut();
        if (e instanceof StoppedError) throw ERR.stopped();
        if (!(e instanceof NotLeaderError) && !(e instanceof ProposalRefusedError)) throw e;
        return null;
      }
    });
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

  /**
   * The identity an auth token carries (etcd's AuthInfoFromCtx), checked by this member's token
   * provider; `etcdserver: invalid auth token` when it is not one this member accepts.
   */
  async authInfoFromToken(token: string): Promise<AuthInfo> {
    const info = token.length <= AUTH_TOKEN_BYTES_MAX ? await this.tokens.info(token, this.sm.auth.revision, (index) => this.waitApplied(index)) : null;
    if (!info) throw AUTH_ERR.invalidAuthToken();
    return info;
  }

  /** True once this member applied `index`; false when the request timeout passes first. */
  async waitApplied(index: number): Promise<boolean> {
    return waitUntil(() => this.node.appliedIndex >= index, { deadline: Deadline.in(this.config.requestTimeoutMs), pollMs: 5, stopped: () => this.stopped }).then(
      () => true,
      () => false,
    );
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

  /** The environment's peer link (MemberEnv.peerLink) for this member, with its initial peers. */
  private linkTo(make: (raftId: NodeId) => PeerLink, peers: ReadonlyMap<NodeId, PeerAddress>): PeerLink {
    const link = make(this.raftId);
    for (const [id, a] of peers) link.setPeer(id, a);
    return link;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.lessor.stop();
    this.tokens?.close();
    this.hub.close();
    for (const fail of [...this.inFlight]) fail(ERR.stopped());
    try {
      await this.node.stop();
    } finally {
      await this.transport.close();
      await this.publishLoop.catch(() => undefined);
      // Not awaited: a query to an unreachable peer may take JOIN_QUERY_TIMEOUT_MS; once stopped, its verdict is ignored.
      this.removalCheck.catch(() => undefined);
      await this.sm.backend.close();
    }
  }
}

/**
 * A voter added or promoted goes through joint consensus (thesis §4.3): the old and the new
 * voters must both agree until the leader leaves the joint configuration, which it does on its
 * own (autoLeave) once the change is applied. Learner changes touch no quorum and are direct;
 * removals are single-voter changes (see leaderMemberOp).
 */
const JOINT = (voters: boolean): { joint?: boolean; autoLeave?: boolean } => (voters ? { joint: true, autoLeave: true } : {});

/** The cluster in a join answer, checked (it is a peer's bytes), or null. */
function readJoinAnswer(b: Uint8Array): { clusterId: bigint; table: MemberTable } | null {
  try {
    const o = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(b)) as { clusterId?: unknown; cluster?: unknown };
    if (typeof o.clusterId !== 'string' || !/^[0-9a-f]{1,16}$/.test(o.clusterId)) return null;
    const table = MemberTable.fromImage(o.cluster);
    if (typeof table === 'string' || table.size === 0) return null;
    return { clusterId: BigInt(`0x${o.clusterId}`), table };
  } catch {
    return null;
  }
}

type MemberAnswer = { kind: 'done'; index: number; raftId: number } | { kind: 'retry' } | { kind: 'error'; code: ErrorCode; message: string };

function encodeMemberOp(op: MemberOp): Uint8Array {
  return new TextEncoder().encode(JSON.stringify('id' in op ? { ...op, id: op.id.toString() } : op));
}

function decodeMemberOp(b: Uint8Array): MemberOp | null {
  try {
    const o = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(b)) as Record<string, unknown>;
    const id = typeof o.id === 'string' && /^\d{1,20}$/.test(o.id) && BigInt(o.id) < 1n << 64n ? BigInt(o.id) : null;
    const urls = Array.isArray(o.peerUrls) ? normalisePeerUrls(o.peerUrls) : null;
    switch (o.op) {
      case 'add':
        return urls && typeof o.isLearner === 'boolean' ? { op: 'add', peerUrls: urls, isLearner: o.isLearner } : null;
      case 'remove':
      case 'promote':
        return id !== null ? { op: o.op, id } : null;
      case 'update':
        return id !== null && urls ? { op: 'update', id, peerUrls: urls } : null;
      default:
        return null;
    }
  } catch {
    return null;
  }
}

function encodeMemberAnswer(a: MemberAnswer): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(a));
}

function readMemberAnswer(b: Uint8Array): MemberAnswer | null {
  try {
    const o = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(b)) as Record<string, unknown>;
    if (o.kind === 'retry') return { kind: 'retry' };
    if (o.kind === 'done' && Number.isSafeInteger(o.index) && Number.isInteger(o.raftId)) return { kind: 'done', index: o.index as number, raftId: o.raftId as number };
    if (o.kind === 'error' && isErrorCode(o.code) && typeof o.message === 'string') return { kind: 'error', code: o.code, message: o.message.slice(0, 1000) };
    return null;
  } catch {
    return null;
  }
}

/** How a pending member-channel call ends (see EtcdMember.callPeer). */
interface Settle<T> {
  resolve(v: T): void;
  reject(e: KvError): void;
}

/** A proposal refusal as the forward outcome that names it; null for anything else. */
function refusalOf(e: unknown): Exclude<ForwardOutcome, 'accepted' | 'forbidden'> | null {
  if (e instanceof NotLeaderError) return 'notLeader';
  if (!(e instanceof ProposalRefusedError)) return null;
  if (e.reason === 'notLeader' || e.reason === 'transferInProgress') return e.reason;
  if (e.reason === 'tooLarge') return 'tooLarge';
  return 'tooManyRequests';
}

