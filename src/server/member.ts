/**
 * One Flotilla member: a RaftNode (WAL + snapshots on disk, TCP to the peers) applying the
 * key-value state machine, with the watch hub, the lessor, and the paths every API call takes:
 * writes go through the log on the leader (a follower forwards them), linearizable reads wait
 * for a ReadIndex, serializable reads read the local store.
 */
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { clientConstructor, NOT_SENT_DETAILS } from '../api/proto.js';
import { decodeValue, encodeCommand, encodeValue, type ApplyResult, type Command, type CommandValue } from '../kv/commands.js';
import { ERR, KvError } from '../kv/errors.js';
import { KvStateMachine } from '../kv/state-machine.js';
import { WatchHub } from '../kv/watch.js';
import { NotLeaderError, ProposalDroppedError, ProposalOutcomeUnknownError, ProposalRefusedError, RaftNode, ReadTimeoutError, StoppedError } from '../node/node.js';
import type { Logger } from '../raft/config.js';
import { DiskStorage } from '../storage/storage.js';
import { TcpTransport } from '../transport/tcp.js';
import type { InitialMember, ServerConfig } from './config.js';
import { faultyFs, faultyTransport, noFaults, type FaultState } from './faults.js';
import { Lessor } from './lessor.js';

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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type InternalClient = grpc.Client & {
  Propose(req: { command: Buffer }, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: { result: Buffer }) => void): void;
  LeaseRenew(req: { ID: string }, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: { TTL: string }) => void): void;
  LeaseRemaining(req: { ID: string }, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: { TTL: string }) => void): void;
};

export class EtcdMember {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  readonly sm: KvStateMachine;
  readonly hub: WatchHub;
  readonly lessor: Lessor;
  node!: RaftNode<ApplyResult>;
  private transport!: TcpTransport;
  private readonly byRaftId = new Map<number, InitialMember>();
  private readonly forwardClients = new Map<string, InternalClient>();
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
    this.sm = new KvStateMachine({ maxTxnOps: config.maxTxnOps });
    this.hub = new WatchHub(this.sm, { progressIntervalMs: config.watchProgressNotifyIntervalMs });
    this.lessor = new Lessor(this);
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
    m.transport = await TcpTransport.start({
      id: config.self.raftId,
      clusterId: `${config.initialClusterToken}/${config.clusterId.toString(16)}`,
      listenHost: listen.hostname,
      listenPort: Number(listen.port),
      peers,
      logger,
    });
    m.node = await RaftNode.start<ApplyResult>({
      id: config.self.raftId,
      storage,
      transport: config.unsafeFaultInjection ? faultyTransport(m.transport, m.faults) : m.transport,
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
        if (this.node.isLeader) await this.propose({ op: 'publish', member: want });
        else if (this.leaderClientUrl()) await this.propose({ op: 'publish', member: want });
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

  /** The leader's advertised client URL, once it has published it. */
  leaderClientUrl(): string | null {
    const id = this.leaderId;
    if (id === 0n || id === this.memberId) return null;
    return this.sm.members.get(id)?.clientUrls[0] ?? null;
  }

  // ---------------------------------------------------------------------------------------
  // Writes and reads
  // ---------------------------------------------------------------------------------------

  /**
   * Runs a command through the log and returns its value, or throws the KvError every member
   * got applying it. On a follower the command is forwarded to the leader. Waits for a leader
   * up to the request timeout. Retries only where the command surely did not enter the log.
   */
  async propose(cmd: Command, forwarded = false): Promise<{ value: CommandValue; revision: number }> {
    const deadline = Date.now() + this.config.requestTimeoutMs;
    const data = encodeCommand(cmd);
    for (;;) {
      if (this.stopped) throw ERR.stopped();
      let r: ApplyResult | null = null;
      if (this.node.isLeader) {
        r = await this.proposeLocal(data, deadline);
      } else if (forwarded) {
        throw ERR.notLeader();
      } else {
        const url = this.leaderClientUrl();
        if (url) r = await this.forward(url, data, deadline);
      }
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
      if (e instanceof NotLeaderError) return null;
      if (e instanceof ProposalRefusedError) {
        if (e.reason === 'notLeader' || e.reason === 'transferInProgress') return null;
        if (e.reason === 'tooLarge') throw ERR.requestTooLarge();
        throw ERR.tooManyRequests();
      }
      if (e instanceof ProposalDroppedError) throw ERR.leaderChanged();
      if (e instanceof ProposalOutcomeUnknownError) throw ERR.timedOut();
      if (e instanceof StoppedError) throw ERR.stopped();
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  private internalClient(url: string): InternalClient {
    let c = this.forwardClients.get(url);
    if (!c) {
      const Ctor = clientConstructor('flotillapb.Internal');
      c = new Ctor(url.replace(/^http:\/\//, ''), grpc.credentials.createInsecure()) as unknown as InternalClient;
      this.forwardClients.set(url, c);
    }
    return c;
  }

  /** null: the target was not the leader or could not be reached before sending; try again. */
  private forward(url: string, data: Uint8Array, deadline: number): Promise<ApplyResult | null> {
    const md = new grpc.Metadata();
    md.set('flotilla-forwarded', '1');
    return new Promise((resolve, reject) => {
      this.internalClient(url).Propose({ command: Buffer.from(data) }, md, { deadline: new Date(deadline) }, (err, res) => {
        if (!err) return resolve(decodeValue<ApplyResult>(res!.result));
        if (err.code === grpc.status.FAILED_PRECONDITION && err.details === ERR.notLeader().message) return resolve(null);
        // Only where the request surely never left: a dropped connection may mean it was applied.
        if (err.code === grpc.status.UNAVAILABLE && NOT_SENT_DETAILS.test(err.details)) return resolve(null);
        if (err.code === grpc.status.DEADLINE_EXCEEDED) return reject(ERR.timedOut());
        reject(new KvError(grpcCodeName(err.code), err.details));
      });
    });
  }

  /** Renews a lease on the leader (forwarded from a follower); TTL 0 when unknown. */
  async leaseRenew(id: bigint): Promise<number> {
    return this.onLeader(
      () => this.lessor.renew(id),
      (c, md, o, cb) => c.LeaseRenew({ ID: id.toString() }, md, o, cb),
    );
  }

  /** Seconds left on a lease as the leader sees them; -1 when unknown. */
  async leaseRemaining(id: bigint): Promise<number> {
    return this.onLeader(
      () => this.lessor.remaining(id),
      (c, md, o, cb) => c.LeaseRemaining({ ID: id.toString() }, md, o, cb),
    );
  }

  private async onLeader(
    local: () => number,
    remote: (c: InternalClient, md: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: { TTL: string }) => void) => void,
  ): Promise<number> {
    const deadline = Date.now() + this.config.requestTimeoutMs;
    for (;;) {
      if (this.stopped) throw ERR.stopped();
      if (this.node.isLeader) return local();
      const url = this.leaderClientUrl();
      if (url) {
        const r = await new Promise<number | null>((resolve, reject) => {
          remote(this.internalClient(url), new grpc.Metadata(), { deadline: new Date(deadline) }, (err, res) => {
            if (!err) return resolve(Number(res!.TTL));
            if (err.code === grpc.status.FAILED_PRECONDITION || err.code === grpc.status.UNAVAILABLE) return resolve(null);
            reject(new KvError(grpcCodeName(err.code), err.details));
          });
        });
        if (r !== null) return r;
      }
      if (Date.now() >= deadline) throw this.node.leader === 0 ? ERR.noLeader() : ERR.timedOut();
      await sleep(RETRY_PAUSE_MS);
    }
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

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.lessor.stop();
    this.hub.close();
    for (const c of this.forwardClients.values()) c.close();
    await this.node.stop();
    await this.transport.close();
    await this.publishLoop.catch(() => undefined);
  }
}

export function grpcCodeName(code: number): KvError['code'] {
  switch (code) {
    case grpc.status.INVALID_ARGUMENT:
      return 'InvalidArgument';
    case grpc.status.OUT_OF_RANGE:
      return 'OutOfRange';
    case grpc.status.NOT_FOUND:
      return 'NotFound';
    case grpc.status.FAILED_PRECONDITION:
      return 'FailedPrecondition';
    case grpc.status.RESOURCE_EXHAUSTED:
      return 'ResourceExhausted';
    case grpc.status.UNIMPLEMENTED:
      return 'Unimplemented';
    case grpc.status.DEADLINE_EXCEEDED:
      return 'DeadlineExceeded';
    case grpc.status.CANCELLED:
      return 'Cancelled';
    case grpc.status.UNAVAILABLE:
      return 'Unavailable';
    default:
      return 'Internal';
  }
}

export { encodeValue };
