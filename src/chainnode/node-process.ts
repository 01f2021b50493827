/**
 * `flotilla chain-node`: a ChainNode with durable storage (ChainStorage), TCP to its peers and
 * clients, and the control cluster as its master's medium: it registers under a lease at
 * /flotilla/chains/NAME/nodes/NODE and follows /flotilla/chains/NAME/config by watching the
 * chain's keys (each change reads the configuration and the registrations again, in one
 * linearizable range read), and by polling every pollMs in case a watch event is missed.
 *
 * Registration: the key must be under THIS run's lease. A write of the node's previous run (same
 * name, restarted) can arrive late, and a blind put would move the key under that run's lease:
 * the key would then vanish when that lease expires, the master would drop the node for good,
 * and the node, keeping its own lease alive, would never notice. So: the registration is a txn
 * comparing the key's mod revision with the one just read (a delayed registration of an earlier
 * run, compared against an older revision, cannot land after it); the reports (caughtUp, synced)
 * are txns comparing the key's lease with this run's; and every read of the chain's keys checks
 * the key: missing or under another lease → stop serving reads and register again (a new lease,
 * the old one revoked); under this lease but with another value → report again.
 *
 * Time: the core's ticks follow the clock (missed ticks are delivered at once), so the read
 * lease computed in ticks never outlives the real one: it ends TTL less CHAIN_LEASE_MARGIN_MS
 * after the keep-alive that renewed it was sent.
 */
import type { Server, Socket } from 'node:net';
import type { Server as TlsServer } from 'node:tls';
import type { TlsFiles } from '../lib/tls-files.js';
import type { FlotillaClient } from '../client/client.js';
import { decodeClientRequest, decodePeerMessage, encodeClientReply, encodeGetReplyHead, peerMessageParts } from '../chain/codec.js';
import { ChainNode, type ChainEffect } from '../chain/node.js';
import type { PeerMessage } from '../chain/messages.js';
import type { ReadMode } from '../chain/types.js';
import { Cmp, Op } from '../client/requests.js';
import { ChainStorage, type RegistrationEpochs } from './storage.js';
import type { Watcher } from '../client/watch.js';
import { chainPrefix, checkChainName, configKey, controlClient, controlRefusal, nodesPrefix, readChain, type ControlAccess } from './control.js';
import { chainServer, dialNode, loadChainTls, peerCommonName, type ChainTlsFileNames } from './tls.js';
import { AssemblyBudget, CHAIN_IDLE_TIMEOUT_MS, CHAIN_PIECE_BYTES, decodeHello, helloFrame, messageFramesOf, readMessages, writeFrames, writeMessage, writeMessageOf } from './wire.js';

/** Bytes queued for one peer before further messages to it are dropped (the protocol resends). */
export const CHAIN_PEER_QUEUE_BYTES_MAX = 256 * 1024 * 1024;
/** Connections (peers and clients) one node accepts. */
export const CHAIN_CONNECTIONS_MAX = 1024;
/** How much earlier than the control cluster's lease the node stops serving reads. */
export const CHAIN_LEASE_MARGIN_MS = 1000;
/** A connection must say who it is (its first frame) within this time. */
export const CHAIN_HELLO_TIMEOUT_MS = 5000;

export interface ChainNodeProcessOptions {
  readonly chain: string;
  readonly name: string;
  readonly dataDir: string;
  /** host:port to listen on (port 0: any). */
  readonly listen: string;
  /** host:port others dial (default: the listening address). */
  readonly advertise?: string;
  readonly control: readonly string[];
  /** TLS and credentials for the control cluster (etcdctl's --cacert/--cert/--key, --user). */
  readonly controlAccess?: ControlAccess;
  readonly reads?: ReadMode;
  readonly leaseTtlSec?: number;
  readonly tickMs?: number;
  readonly pollMs?: number;
  readonly log?: (line: string) => void;
  /** TLS on the chain port with certificates as identities (tls.ts); none: plain TCP. */
  readonly tls?: ChainTlsFileNames;
  /** Limits (tests set them lower): CHAIN_CONNECTIONS_MAX, CHAIN_HELLO_TIMEOUT_MS, CHAIN_IDLE_TIMEOUT_MS. */
  readonly connectionsMax?: number;
  readonly helloTimeoutMs?: number;
  readonly idleTimeoutMs?: number;
  /** CHAIN_PEER_QUEUE_BYTES_MAX (tests set it lower). */
  readonly peerQueueBytesMax?: number;
  /** Monotonic milliseconds the ticks and the read lease follow (default performance.now; tests pass their own). */
  readonly clock?: () => number;
}

interface Peer {
  socket: Socket | null;
  address: string;
  queued: number;
  /** The most bytes ever queued for it, and the bytes of messages dropped at the queue bound. */
  queuedMax: number;
  droppedBytes: number;
}

export class ChainNodeProcess {
  private core!: ChainNode;
  private storage!: ChainStorage;
  private server!: Server | TlsServer;
  private tls: TlsFiles | null = null;
  private control!: FlotillaClient;
  private readonly peers = new Map<string, Peer>();
  private readonly clients = new Map<string, Socket>();
  /** Every accepted connection (peers' too): closed when the node stops. */
  private readonly accepted = new Set<Socket>();
  /** What all connections hold for messages arriving in pieces (CHAIN_ASSEMBLY_BYTES_MAX). */
  private readonly budget = new AssemblyBudget();
  private nextConn = 1;
  private connections = 0;
  private startedAt = 0;
  private ticks = 0;
  private timers: NodeJS.Timeout[] = [];
  private leaseId = 0n;
  private registeredRev = 0;
  /** False from finding the key gone or under another lease until registered again: no reads meanwhile. */
  private keyMine = true;
  /** When the last re-registration began (performance.now): at most one per pollMs. */
  private reRegisteredAt = -Infinity;
  /**
   * The registration epochs as reported (durable in the data directory first: ChainStorage
   * saveEpochs, loaded at start), and as decided from the core's effects (maybe not yet durable).
   */
  private caughtUpEpoch: number | null = null;
  private syncedEpoch: number | null = null;
  private decided: RegistrationEpochs = { caughtUpEpoch: null, syncedEpoch: null };
  private stopped = false;
  private polling = false;
  private repoll = false;
  private watcher: Watcher | null = null;
  private failWith!: (e: Error) => void;
  /** Resolves when the node stops for good on an error (storage failure, lost data directory...). */
  readonly fatal: Promise<Error> = new Promise((r) => (this.failWith = r));
  address = '';

  private constructor(private readonly o: ChainNodeProcessOptions) {}

  static async start(o: ChainNodeProcessOptions): Promise<ChainNodeProcess> {
    checkChainName(o.chain);
    checkChainName(o.name, 'node name');
    const p = new ChainNodeProcess(o);
    await p.init();
    return p;
  }

  private log(line: string): void {
    this.o.log?.(`chain ${this.o.chain} node ${this.o.name}: ${line}`);
  }

  private now(): number {
    return this.o.clock ? this.o.clock() : performance.now();
  }

  /** What is queued for peer `name` (bytes), the most ever queued, and the bytes dropped at the bound. */
  peerQueue(name: string): { queued: number; queuedMax: number; droppedBytes: number } | null {
    const p = this.peers.get(name);
    return p ? { queued: p.socket?.writableLength ?? 0, queuedMax: p.queuedMax, droppedBytes: p.droppedBytes } : null;
  }

  private get tickMs(): number {
    return this.o.tickMs ?? 50;
  }

  private async init(): Promise<void> {
    const { storage, state } = await ChainStorage.open(this.o.dataDir, (token) => {
      this.core.persisted(token);
      this.drain();
    });
    this.storage = storage;
    this.decided = state.epochs;
    this.caughtUpEpoch = state.epochs.caughtUpEpoch;
    this.syncedEpoch = state.epochs.syncedEpoch;
    this.core = new ChainNode({ name: this.o.name, reads: this.o.reads ?? 'tail', resendTicks: 10, syncRetryTicks: 4 }, state);
    this.log(`recovered ${state.snapshot ? `a snapshot at ${state.snapshot.seq} and ` : ''}${state.updates.length} updates`);
    this.tls = this.o.tls ? loadChainTls(this.o.tls, { info: (m) => this.log(m), warn: (m) => this.log(m) }) : null;
    this.server = chainServer(this.tls, (s) => this.accept(s));
    const [host, port] = splitHostPort(this.o.listen);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    const addr = this.server.address();
    this.address = this.o.advertise ?? (typeof addr === 'object' && addr ? `${host}:${addr.port}` : this.o.listen);
    this.control = controlClient(this.o.control, this.o.controlAccess);
    this.startedAt = this.now();
    this.timers.push(setInterval(() => this.tick(), this.tickMs));
    this.timers.push(setInterval(() => void this.poll(), this.o.pollMs ?? 1000));
    const ttl = this.o.leaseTtlSec ?? 5;
    this.timers.push(setInterval(() => void this.keepAlive(), Math.max(200, (ttl * 1000) / 3)));
    const refused = await this.register().then(
      () => null,
      (e: Error) => {
        this.log(`registration failed (will retry): ${e.message}`);
        return controlRefusal(e);
      },
    );
    if (refused !== null) {
      // A wrong password or missing permissions: no retry will cure it.
      await this.stop();
      throw new Error(`the control cluster refused: ${refused}`);
    }
    this.watcher = this.control.watch(chainPrefix(this.o.chain), { prefix: true }, () => void this.poll());
    await this.poll();
  }

  private tick(): void {
    if (this.stopped) return;
    // Deliver every tick the clock says is due (timers run late on a busy machine).
    const due = Math.floor((this.now() - this.startedAt) / this.tickMs);
    while (this.ticks < due) {
      this.ticks++;
      this.core.tick();
    }
    this.drain();
    if (this.storage.compactionDue) {
      const image = this.core.committedImage();
      if (image !== null) {
        this.storage.compact(image);
        this.log(`compacting the WAL: a snapshot at ${image.seq} (${image.entries.length} keys)`);
      }
    }
    const f = this.storage.failure;
    if (f) void this.fail(f);
  }

  private registrationValue(): string {
    return JSON.stringify({ address: this.address, caughtUpEpoch: this.caughtUpEpoch, syncedEpoch: this.syncedEpoch });
  }

  private registering: Promise<void> | null = null;

  /** One registration at a time (the keep-alive timer may ask while one is under way). */
  private register(): Promise<void> {
    this.registering ??= this.registerOnce().finally(() => (this.registering = null));
    return this.registering;
  }

  private get registrationKey(): string {
    return nodesPrefix(this.o.chain) + this.o.name;
  }

  /**
   * A new lease, and the key put under it by a compare-and-swap on the key's mod revision as just
   * read (whatever is there: nothing, this run's key, or a previous run's under its lease). It
   * fails if the key changed in between; the keep-alive timer or the next read tries again.
   */
  private async registerOnce(): Promise<void> {
    const key = this.registrationKey;
    const ttl = this.o.leaseTtlSec ?? 5;
    const sentAt = this.now();
    const g = await this.control.leaseGrant(ttl);
    let createRevision: bigint;
    try {
      const seen = (await this.control.get(key)).kvs[0];
      const r = await this.control.txn({ compare: [Cmp.modRevision(key, '=', seen?.modRevision ?? 0n)], success: [Op.put(key, this.registrationValue(), { lease: g.id }), Op.get(key)] });
      const got = r.succeeded && r.responses[1]?.type === 'range' ? r.responses[1].range.kvs[0] : undefined;
      if (!got || got.lease !== g.id) throw new Error('the registration key changed under way');
      createRevision = got.createRevision;
    } catch (e) {
      void this.control.leaseRevoke(g.id).catch(() => {});
      throw e;
    }
    const previous = this.leaseId;
    this.leaseId = g.id;
    this.registeredRev = Number(createRevision);
    this.keyMine = true;
    this.setLease(sentAt, g.ttl);
    if (previous !== 0n && previous !== g.id) void this.control.leaseRevoke(previous).catch(() => {});
    this.log(`registered (lease ${g.id.toString(16)}, ttl ${g.ttl} s) at ${this.address}`);
  }

  /** The registration's value again, only while the key is under this run's lease. */
  private async report(): Promise<void> {
    const lease = this.leaseId;
    if (lease === 0n || this.registering) return;
    const key = this.registrationKey;
    const r = await this.control.txn({ compare: [Cmp.lease(key, '=', lease)], success: [Op.put(key, this.registrationValue(), { lease })] });
    if (!r.succeeded && this.leaseId === lease) this.reRegister('the registration key is under another lease (or gone)');
  }

  /**
   * The key is not this run's: no reads until it is again, then a new registration — at most one
   * per pollMs (two processes misconfigured with one name would otherwise take the key from each
   * other as fast as the control cluster answers; the timer's poll finds it again).
   */
  private reRegister(why: string): void {
    this.keyMine = false;
    this.core.setReadLease(this.core.tickNow, this.registeredRev + 1);
    if (this.stopped || this.registering || performance.now() - this.reRegisteredAt < (this.o.pollMs ?? 1000)) return;
    this.reRegisteredAt = performance.now();
    this.log(`${why}: registering again`);
    this.register().catch((e: Error) => {
      this.log(`registration failed (will retry): ${e.message}`);
      this.refused(e);
    });
  }

  private setLease(sentAt: number, ttlSec: number): void {
    if (!this.keyMine) return; // a keep-alive of a lease the key is no longer under
    const validUntil = sentAt + ttlSec * 1000 - CHAIN_LEASE_MARGIN_MS;
    const ticks = Math.floor((validUntil - this.now()) / this.tickMs);
    this.core.setReadLease(this.core.tickNow + ticks, this.registeredRev + 1);
  }

  private async keepAlive(): Promise<void> {
    if (this.stopped) return;
    if (this.leaseId === 0n) {
      await this.register().catch((e: Error) => this.refused(e));
      return;
    }
    const sentAt = this.now();
    const lease = this.leaseId;
    try {
      const r = await this.control.leaseKeepAliveOnce(lease);
      if (this.leaseId !== lease) return; // registered again meanwhile (the old lease revoked)
      if (r.ttl > 0) this.setLease(sentAt, r.ttl);
      else {
        this.log('the lease expired: registering again');
        this.leaseId = 0n;
        await this.register();
      }
    } catch (e) {
      // An unreachable control cluster: the lease runs out on its own. A refusal: stop.
      this.refused(e);
    }
  }

  /** Stops the node if `e` is a refusal of the control cluster that retrying will not cure. */
  private refused(e: unknown): void {
    const why = controlRefusal(e);
    if (why !== null) void this.fail(new Error(`the control cluster refused: ${why}`));
  }

  private async poll(): Promise<void> {
    if (this.stopped) return;
    if (this.polling) {
      this.repoll = true; // a change arrived during a read: read again after it
      return;
    }
    this.polling = true;
    this.repoll = false;
    const lease = this.leaseId;
    try {
      const v = await readChain(this.control, this.o.chain);
      const mine = v.nodes.get(this.o.name);
      if (lease !== 0n && this.leaseId === lease && !this.registering) {
        if (mine?.lease !== lease) this.reRegister(mine ? `the registration key is under another lease (${mine.lease.toString(16)})` : 'the registration key is gone');
        else if (mine.address !== this.address || mine.registration.caughtUpEpoch !== this.caughtUpEpoch || mine.registration.syncedEpoch !== this.syncedEpoch) void this.report().catch((e: unknown) => this.refused(e));
      }
      for (const [name, info] of v.nodes) {
        const p = this.peers.get(name);
        if (!p) this.peers.set(name, { socket: null, address: info.address, queued: 0, queuedMax: 0, droppedBytes: 0 });
        else if (p.address !== info.address) {
          p.socket?.destroy();
          p.socket = null;
          p.address = info.address;
        }
      }
      if (v.config && v.config.epoch > this.core.epoch) {
        this.log(`configuration epoch ${v.config.epoch}: [${v.config.members.join(', ')}]${v.config.joining ? ` joining ${v.config.joining}` : ''}`);
        this.core.setConfig(v.config);
        this.drain();
      }
    } catch (e) {
      // Try again at the next poll (or stop on a refusal).
      this.refused(e);
    } finally {
      this.polling = false;
    }
    if (this.repoll) void this.poll();
  }

  private drain(): void {
    for (const e of this.core.takeEffects()) this.effect(e);
  }

  private effect(e: ChainEffect): void {
    switch (e.type) {
      case 'send':
        this.sendPeer(e.msg);
        break;
      case 'reply': {
        const s = this.clients.get(e.client);
        if (!s || s.destroyed) break;
        const r = e.reply;
        // A large value goes out as itself, after the reply's head (no copy into the reply).
        if (r.ok === true && r.result.type === 'get' && r.result.value !== null && r.result.value.length > CHAIN_PIECE_BYTES) writeMessageOf(s, encodeGetReplyHead(e.id, r.result.version, r.result.value.length), r.result.value);
        else writeMessage(s, encodeClientReply(e.id, r));
        break;
      }
      case 'persist':
        this.storage.persist(e);
        break;
      case 'persistSnapshot':
        this.log(`installing a snapshot at ${e.image.seq} (${e.image.entries.length} keys)`);
        this.storage.persist(e);
        break;
      case 'caughtUp':
      case 'synced': {
        const d = this.decided;
        let next: RegistrationEpochs;
        if (e.type === 'caughtUp') next = { caughtUpEpoch: e.epoch, syncedEpoch: d.syncedEpoch };
        else if (d.caughtUpEpoch !== null && (d.syncedEpoch === null || d.syncedEpoch <= d.caughtUpEpoch)) next = { caughtUpEpoch: d.caughtUpEpoch, syncedEpoch: e.epoch };
        else break;
        this.decided = next;
        // Durable before the master hears it: a restart registers what was reported, never less.
        // (A failed write stops the node: tick() finds storage.failure.)
        this.storage.saveEpochs(next).then(
          () => {
            this.caughtUpEpoch = next.caughtUpEpoch;
            this.syncedEpoch = next.syncedEpoch;
            void this.report().catch((err: unknown) => this.refused(err));
          },
          () => {},
        );
        break;
      }
      case 'newerEpoch':
        void this.poll();
        break;
    }
  }

  private sendPeer(m: PeerMessage): void {
    const p = this.peers.get(m.to);
    if (!p) return;
    if (!p.socket || p.socket.destroyed) {
      const [host, port] = splitHostPort(p.address);
      const s = dialNode(host, port, m.to, this.tls ? { files: this.tls } : null);
      s.setNoDelay(true);
      s.on('error', () => {});
      s.on('close', () => {
        if (p.socket === s) p.socket = null;
      });
      s.on('drain', () => (p.queued = s.writableLength));
      s.setTimeout(CHAIN_IDLE_TIMEOUT_MS, () => s.destroy());
      s.write(helloFrame('peer', this.o.chain, this.o.name));
      p.socket = s;
    }
    // In parts (peerMessageParts): a large update's value, and a snapshot chunk's large values,
    // go out as themselves (no copy per hop; a chunk is never built as one buffer). One bound
    // for every message, however large, on the bytes queued (frame headers included).
    const frames = messageFramesOf(peerMessageParts(m));
    let bytes = 0;
    for (const f of frames) bytes += f.length;
    if (p.socket.writableLength + bytes > (this.o.peerQueueBytesMax ?? CHAIN_PEER_QUEUE_BYTES_MAX)) {
      p.droppedBytes += bytes; // dropped: resent later
      return;
    }
    writeFrames(p.socket, frames);
    p.queuedMax = Math.max(p.queuedMax, p.socket.writableLength);
  }

  private accept(s: Socket): void {
    if (this.stopped || this.connections >= (this.o.connectionsMax ?? CHAIN_CONNECTIONS_MAX)) {
      s.destroy();
      return;
    }
    this.connections++;
    this.accepted.add(s);
    s.setNoDelay(true);
    const id = `c${this.nextConn++}`;
    let peer: string | null = null;
    s.on('error', () => {});
    s.on('close', () => {
      this.connections--;
      this.accepted.delete(s);
      this.clients.delete(id);
    });
    // A connection that does not say who it is within a few seconds is closed.
    const helloDeadline = setTimeout(() => s.destroy(), this.o.helloTimeoutMs ?? CHAIN_HELLO_TIMEOUT_MS);
    readMessages(s, this.budget, { hello: true, idleMs: this.o.idleTimeoutMs ?? CHAIN_IDLE_TIMEOUT_MS }, (body, first) => {
      if (first) {
        clearTimeout(helloDeadline);
        const h = decodeHello(body);
        if (h.chain !== this.o.chain) throw new Error('another chain');
        // With TLS a node is who its certificate says (its CN), and no one else.
        if (h.role === 'peer' && this.tls && peerCommonName(s) !== h.name) throw new Error('a peer whose certificate names another');
        if (h.role === 'peer') peer = h.name;
        else this.clients.set(id, s);
        return;
      }
      if (peer !== null) {
        const m = decodePeerMessage(body);
        // A peer speaks only for itself. (Peers are not authenticated yet: see README.)
        if (m.from !== peer || m.to !== this.o.name) throw new Error('a message for someone else');
        this.core.step(m);
      } else {
        const q = decodeClientRequest(body);
        this.core.request({ ...q, client: id });
      }
      this.drain();
    });
  }

  private async fail(e: Error): Promise<void> {
    if (this.stopped) return;
    this.log(`fatal: ${e.message}`);
    this.failWith(e);
    await this.stop();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    await this.watcher?.cancel().catch(() => {});
    for (const p of this.peers.values()) p.socket?.destroy();
    for (const s of this.accepted) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
    if (this.leaseId !== 0n) await this.control.leaseRevoke(this.leaseId).catch(() => {});
    await this.control.close();
    await this.storage.close();
  }
}

export function splitHostPort(a: string): [string, number] {
  const m = /^(.*):(\d{1,5})$/.exec(a.replace(/^[a-z]+:\/\//, ''));
  if (!m || Number(m[2]) > 65535) throw new Error(`expected host:port, got ${JSON.stringify(a)}`);
  return [m[1]!.replace(/^\[|\]$/g, ''), Number(m[2])];
}

export { configKey };
