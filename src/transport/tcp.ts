/**
 * TCP between members. Each member listens for its peers' connections and opens one outbound
 * connection per peer; a connection starts with a handshake (protocol version, cluster id,
 * sender and receiver ids) and then carries length-prefixed message frames one way.
 *
 * Sending never blocks Raft: messages go into a bounded queue per peer (overflow drops them and
 * counts it, which Raft tolerates), and each peer's queue is written in one go per event-loop
 * turn. A lost connection is re-established with exponential backoff on the next send.
 * Whatever arrives is distrusted: a bad handshake, an oversized or malformed frame closes that
 * connection with a log line; the member keeps running.
 *
 * Bounded before trust: a connection must complete its handshake within a deadline, and until
 * then its frames may be no larger than a handshake (the length is checked before the body is
 * buffered); strangers' connections are capped in total and per remote address; a handshake
 * must name a known peer, and a newer connection from that peer replaces the older one; an
 * authenticated connection silent for far longer than any heartbeat interval is closed.
 *
 * With TLS (https:// peer URLs) every connection is TLS first: the listener terminates it
 * (node:tls, certificates reloaded from their files for each new connection) within the same
 * handshake deadline and caps, and with peer client certificate auth a connection whose
 * certificate is missing, not signed by the trusted CA, or (with an allowed CN) has another
 * CN is closed right after the TLS handshake, before a byte of it is read, and logged. The
 * member handshake then runs inside TLS as without it. Outbound connections present this
 * member's certificate and verify the peer's against the trusted CA and the peer URL's host
 * (not with auto TLS, whose certificates are self-signed: etcd skips the check too).
 *
 * Besides Raft messages, a connection carries member-channel frames: opaque bodies between the
 * servers (forwarded proposals, lease calls), delivered to `onMember` with the sender's id as
 * the handshake named it.
 *
 * Logical clocks (option `clocks`): every Raft message and member frame sent is stamped with
 * this member's Lamport and vector clock in a clock envelope (clock-envelope.ts) and recorded
 * as a send event; an enveloped frame received is validated, merged and recorded as a receive
 * event (src/trace/recorder.ts). Envelopes are understood with or without the option.
 */
import { createServer, connect, isIP, type LookupFunction, type Server, type Socket } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { commonNameOf, TLS_HANDSHAKE_TIMEOUT_MS, type TlsFiles } from '../lib/tls-files.js';
import type { Logger } from '../raft/config.js';
import { silentLogger } from '../raft/config.js';
import type { Message } from '../raft/messages.js';
import type { NodeId } from '../raft/types.js';
import type { Transport } from '../node/node.js';
import {
  decodeHandshake,
  decodeMemberFrame,
  decodeMessage,
  encodeHandshake,
  encodeMemberFrame,
  encodeMessage,
  encodeMessageAfter,
  plainFrame,
  FRAME_BYTES_MAX,
  FrameError,
  FrameReader,
  HANDSHAKE_FRAME_BYTES_MAX,
  PROTOCOL_VERSION,
} from './codec.js';
import { decodeJoinQuery, encodeJoinAnswer } from './join.js';
import { CLOCK_HEADER_BYTES_MAX, ClockHeader, clockHeaderBytesMax, encodeClockEnvelopeFrom, envelopeInPlace, readClockEnvelope } from './clock-envelope.js';
import type { TraceRecorder } from '../trace/recorder.js';

/** A connection that has not completed its handshake by then is closed (ms). */
export const PEER_HANDSHAKE_TIMEOUT_MS = 5_000;
/** An authenticated inbound connection silent this long is closed (ms; heartbeats flow every heartbeat interval). */
export const PEER_IDLE_TIMEOUT_MS = 30_000;
/** Inbound connections not yet past their handshake, in total; more are closed at once. */
export const PEER_UNAUTHENTICATED_CONNECTIONS_MAX = 64;
/** Inbound connections not yet past their handshake from one remote address; more are closed at once. */
export const PEER_UNAUTHENTICATED_PER_ADDRESS_MAX = 8;
/** Authenticated inbound connections per member: a newer one replaces the older (a restarted peer's old connection may linger). */
export const PEER_CONNECTIONS_PER_MEMBER_MAX = 1;

/** A dial not connected (and, with TLS, past its TLS handshake) by then is abandoned and retried (ms): a silent network drops SYNs, and the kernel would wait for minutes. */
export const PEER_DIAL_TIMEOUT_MS = 3_000;

/** A heartbeat unanswered this long is taken as lost for the round-trip measurement (ms). */
export const PEER_RTT_PENDING_MS_MAX = 5_000;

/** Members' own messages beside Raft's: opaque bodies to and from peers (see src/server/peer-calls.ts). */
export interface MemberChannel {
  /** Queues `body` for member `to`; false when it was dropped at once (unknown peer, no connection, full queue): it surely never left. */
  sendMember(to: NodeId, body: Uint8Array): boolean;
  /** Registers the receiver of member frames; `from` is the peer the connection's handshake named. */
  onMember(receive: (from: NodeId, body: Uint8Array) => void): void;
}

/**
 * A member's link to its peers: Raft's messages, the member channel and the set of peers
 * (TcpTransport; MemoryNetwork.link in one process, for the in-process server harness).
 */
export interface PeerLink extends Transport, MemberChannel {
  /** Adds peer `id`, or moves it to a new address. */
  setPeer(id: NodeId, addr: PeerAddress): void;
  /** Forgets peer `id` (a removed member). */
  removePeer(id: NodeId): void;
  /** The peers' ids. */
  peerIds(): NodeId[];
  /** When a frame from peer `id` last arrived (ms since epoch); 0 if never. */
  heardFrom(id: NodeId): number;
}

/**
 * What the transport measures for metrics (etcd's etcd_network_peer_*): bytes per peer and the
 * round trip of a leader's heartbeat. Callbacks must not throw.
 */
export interface TransportObserver {
  /** `bytes` written to the connection to peer `to`. */
  sent?(to: NodeId, bytes: number): void;
  /** `bytes` read from a connection of peer `from` (0: before its handshake named it). */
  received?(from: NodeId | 0, bytes: number): void;
  /** A heartbeat to `to` was answered after `seconds` (measured on the leader). */
  roundTrip?(to: NodeId, seconds: number): void;
}

export interface PeerAddress {
  readonly host: string;
  readonly port: number;
  /** Dial with TLS (an https:// peer URL); needs TcpTransportOptions.tls. */
  readonly tls?: boolean;
}

/** TLS between members (etcd's --peer-* flags). */
export interface PeerTls {
  /** This member's certificate, key and trusted CA (reloaded when the files change). */
  readonly files: TlsFiles;
  /** The listener speaks TLS (an https:// listen peer URL). */
  readonly listen: boolean;
  /** Inbound: a certificate signed by the trusted CA is required (etcd --peer-client-cert-auth / --peer-trusted-ca-file). */
  readonly clientCertAuth: boolean;
  /** Inbound: ... and its CN must be this (etcd --peer-cert-allowed-cn). */
  readonly allowedCn?: string | null;
  /** Outbound: verify the peer's certificate (false with auto TLS). */
  readonly verifyPeer: boolean;
}

export interface TcpTransportOptions {
  readonly id: NodeId;
  readonly clusterId: string;
  readonly listenHost?: string;
  /** 0 picks a free port (see `port`). */
  readonly listenPort?: number;
  readonly peers?: ReadonlyMap<NodeId, PeerAddress>;
  /** Messages queued per peer before new ones are dropped (default 4096). */
  readonly queueMessagesMax?: number;
  /** Bytes queued per peer (including the socket's own buffer) before dropping (default 64 MiB). */
  readonly queueBytesMax?: number;
  /** Largest frame accepted after the handshake (default FRAME_BYTES_MAX). */
  readonly frameBytesMax?: number;
  /** Default PEER_HANDSHAKE_TIMEOUT_MS. */
  readonly handshakeTimeoutMs?: number;
  /** Default PEER_IDLE_TIMEOUT_MS. */
  readonly idleTimeoutMs?: number;
  /** Default PEER_UNAUTHENTICATED_CONNECTIONS_MAX. */
  readonly unauthenticatedMax?: number;
  /** Default PEER_UNAUTHENTICATED_PER_ADDRESS_MAX. */
  readonly unauthenticatedPerAddressMax?: number;
  /** TLS on the listener and to https:// peers. */
  readonly tls?: PeerTls;
  /** Default PEER_DIAL_TIMEOUT_MS. */
  readonly dialTimeoutMs?: number;
  /** Resolves peer URL host names (default: the system's, as node:net does; tests replace it). */
  readonly lookup?: LookupFunction;
  /** Reconnect backoff bounds, ms (default 50 .. 2000). */
  readonly backoffMs?: readonly [number, number];
  readonly logger?: Logger;
  readonly observer?: TransportObserver;
  /**
   * Answers a join query naming `token` (see join.ts) before any handshake: the bytes to send
   * back, or null to refuse. Without it, join queries are refused.
   */
  readonly onJoinQuery?: (token: string) => Uint8Array | null;
  /** This member's logical clocks and trace: peer frames are stamped and merged (see the top of this file). */
  readonly clocks?: TraceRecorder;
}

export interface TransportStats {
  sent: number;
  received: number;
  /** Dropped because a peer's queue was full or the peer is unknown. */
  dropped: number;
  /** Inbound connections refused (bad handshake, wrong cluster or member). */
  refused: number;
  /** Inbound connections closed for malformed frames. */
  malformed: number;
  /** Inbound connections closed for missing the handshake deadline or for idleness. */
  timedOut: number;
  /** Inbound connections closed at once by a connection cap. */
  overLimit: number;
}

interface Peer {
  addr: PeerAddress;
  socket: Socket | null;
  connected: boolean;
  connecting: boolean;
  queue: Uint8Array[];
  queuedBytes: number;
  backoff: number;
  nextAttempt: number;
  /** The last dial failure logged (a failing TLS dial is logged once per distinct reason). */
  lastError: string;
  /** The address this peer's last authenticated connection to us came from: when it changes, the peer has moved. */
  inboundFrom: string | null;
}

export class TcpTransport implements PeerLink {
  readonly stats: TransportStats = { sent: 0, received: 0, dropped: 0, refused: 0, malformed: 0, timedOut: 0, overLimit: 0 };
  private readonly peers = new Map<NodeId, Peer>();
  private readonly inbound = new Set<Socket>();
  /** Inbound connections before their handshake, and how many per remote address. */
  private readonly unauthenticated = new Set<Socket>();
  private readonly unauthenticatedByAddress = new Map<string, number>();
  /** The authenticated inbound connection of each member. */
  private readonly byMember = new Map<NodeId, Socket>();
  /** When each peer's last frame arrived (ms since epoch). */
  private readonly lastHeard = new Map<NodeId, number>();
  private receiver: (m: Message) => void = () => {};
  private memberReceiver: (from: NodeId, body: Uint8Array) => void = () => {};
  private flushScheduled = false;
  private closed = false;
  private readonly log: Logger;
  private readonly qMsgs: number;
  private readonly qBytes: number;
  private readonly backoff: readonly [number, number];
  /** When the oldest unanswered heartbeat to each peer was sent (performance.now()), for roundTrip. */
  private readonly heartbeatSentAt = new Map<NodeId, number>();

  /** The TLS listener's accept side (never listens: accepted sockets are handed to it), and where each handshake's outcome goes. */
  private tlsServer: ReturnType<typeof createTlsServer> | null = null;
  private tlsGeneration = -1;
  private readonly tlsPending = new Map<string, { secure(s: TLSSocket): void; failed(why: string): void }>();
  /** Every member id this transport was told of (self and peers, also removed ones): the ids a clock envelope may carry into our vector. */
  private readonly knownIds = new Set<NodeId>();
  private readonly idNames = new Map<NodeId, string>();
  /** The clock envelope of the frame being delivered (decoding is synchronous: one will do). */
  private readonly clockIn = new ClockHeader();
  private readonly isKnownId = (id: number): boolean => this.knownIds.has(id);

  private constructor(
    private readonly o: TcpTransportOptions,
    private readonly server: Server,
  ) {
    this.log = o.logger ?? silentLogger;
    this.qMsgs = o.queueMessagesMax ?? 4096;
    this.qBytes = o.queueBytesMax ?? 64 << 20;
    this.backoff = o.backoffMs ?? [50, 2000];
    this.knownIds.add(o.id);
    for (const [id, addr] of o.peers ?? []) this.setPeer(id, addr);
    if (o.tls?.listen) this.tlsServer = this.createTlsServer(o.tls);
  }

  private createTlsServer(t: PeerTls): ReturnType<typeof createTlsServer> {
    const m = t.files.current();
    this.tlsGeneration = m.generation;
    const server = createTlsServer({
      ...m.options,
      requestCert: t.clientCertAuth,
      // Checked in 'secureConnection', so that each refusal is logged with its reason.
      rejectUnauthorized: false,
      // The member handshake's deadline covers the TLS handshake as well; this one is a backstop.
      handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
    });
    const key = (s: Socket) => `${s.remoteAddress}:${s.remotePort}`;
    server.on('secureConnection', (s: TLSSocket) => {
      const p = this.tlsPending.get(key(s));
      this.tlsPending.delete(key(s));
      if (!p) return void s.destroy();
      if (t.clientCertAuth && !s.authorized) return p.failed(`TLS: the peer's certificate is not trusted (${!s.getPeerCertificate()?.raw ? 'no certificate' : String(s.authorizationError ?? 'unverified')})`);
      const cn = commonNameOf(s.getPeerCertificate());
      if (t.allowedCn && cn !== t.allowedCn) return p.failed(`TLS: the peer certificate's CN "${cn ?? ''}" is not the allowed CN "${t.allowedCn}"`);
      p.secure(s);
    });
    server.on('tlsClientError', (e: Error, s: TLSSocket) => {
      const p = this.tlsPending.get(key(s));
      this.tlsPending.delete(key(s));
      if (p) p.failed(`TLS handshake failed: ${e.message}`);
      s.destroy();
    });
    return server;
  }

  static async start(o: TcpTransportOptions): Promise<TcpTransport> {
    const hello = encodeHandshake({ clusterId: o.clusterId, from: o.id, to: o.id, version: PROTOCOL_VERSION });
    if (hello.length - 4 > HANDSHAKE_FRAME_BYTES_MAX) {
      throw new Error(`the cluster id makes a handshake of ${hello.length - 4} bytes, more than peers accept (${HANDSHAKE_FRAME_BYTES_MAX}): use a shorter --initial-cluster-token`);
    }
    const server = createServer();
    const t = new TcpTransport(o, server);
    server.on('connection', (s) => t.accept(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.listenPort ?? 0, o.listenHost ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (e) => t.log.warn(`${o.id} transport server error: ${e.message}`));
    return t;
  }

  /** The port this member listens on. */
  get port(): number {
    const a = this.server.address();
    return typeof a === 'object' && a ? a.port : 0;
  }

  /**
   * Adds peer `id`, or gives it a new address (a member update); the same address again changes
   * nothing. As etcd's rafthttp UpdatePeer: an open connection stays in use (the member is still
   * where it was until it restarts at the new address, and it must learn the commit of its own
   * update through it), and the new address is what the next dial uses.
   */
  setPeer(id: NodeId, addr: PeerAddress): void {
    const old = this.peers.get(id);
    if (old && old.addr.host === addr.host && old.addr.port === addr.port && old.addr.tls === addr.tls) return;
    if (old) {
      old.addr = addr;
      old.lastError = '';
      if (!old.connected && !old.connecting) {
        old.backoff = this.backoff[0];
        old.nextAttempt = 0;
      }
      return;
    }
    this.knownIds.add(id);
    this.peers.set(id, { addr, socket: null, connected: false, connecting: false, queue: [], queuedBytes: 0, backoff: this.backoff[0], nextAttempt: 0, lastError: '', inboundFrom: null });
  }

  /** Forgets peer `id` (a removed member): its queue is dropped, its connections closed, its handshakes refused from now on. */
  removePeer(id: NodeId): void {
    const p = this.peers.get(id);
    if (!p) return;
    this.peers.delete(id);
    this.lastHeard.delete(id);
    p.socket?.destroy();
    this.byMember.get(id)?.destroy();
  }

  /** When a frame from peer `id` last arrived (ms since epoch); 0 if never (membership checks: is it up?). */
  heardFrom(id: NodeId): number {
    return this.lastHeard.get(id) ?? 0;
  }

  /** The peers' ids. */
  peerIds(): NodeId[] {
    return [...this.peers.keys()];
  }

  listen(receive: (m: Message) => void): void {
    this.receiver = receive;
  }

  send(messages: readonly Message[]): void {
    if (this.closed) return;
    for (const m of messages) {
      const p = this.peers.get(m.to);
      if (p) {
        if (m.type === 'heartbeat' && this.o.observer?.roundTrip) {
          // Timed from the oldest unanswered heartbeat; one unanswered this long was lost (a
          // peer down or cut off) and must not make the next answer look like the round trip.
          const at = this.heartbeatSentAt.get(m.to);
          const now = performance.now();
          if (at === undefined || now - at > PEER_RTT_PENDING_MS_MAX) this.heartbeatSentAt.set(m.to, now);
        }
        this.enqueue(p, this.encodeStamped(m));
      } else this.stats.dropped++;
    }
  }

  onMember(receive: (from: NodeId, body: Uint8Array) => void): void {
    this.memberReceiver = receive;
  }

  sendMember(to: NodeId, body: Uint8Array): boolean {
    const p = this.peers.get(to);
    if (this.closed || !p) {
      this.stats.dropped++;
      return false;
    }
    if (!p.connected) {
      // Only on a live connection: a caller told "not sent" may retry at once (a frame held for a
      // later connection could arrive long after the caller gave up). Raft's traffic reconnects.
      this.stats.dropped++;
      this.dial(to, p);
      return false;
    }
    return this.enqueue(p, this.stamped(to, encodeMemberFrame(this.o.id, to, body), null));
  }

  private enqueue(p: Peer, frame: Uint8Array): boolean {
    const buffered = p.queuedBytes + (p.socket?.writableLength ?? 0);
    if (p.queue.length >= this.qMsgs || buffered + frame.length > this.qBytes) {
      this.stats.dropped++;
      return false;
    }
    p.queue.push(frame);
    p.queuedBytes += frame.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return true;
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.closed) return;
    for (const [id, p] of this.peers) {
      if (p.queue.length === 0) continue;
      if (!p.connected) {
        this.dial(id, p);
        continue;
      }
      const n = p.queue.length;
      const data = Buffer.concat(p.queue, p.queuedBytes);
      p.queue = [];
      p.queuedBytes = 0;
      p.socket!.write(data);
      this.stats.sent += n;
      this.o.observer?.sent?.(id, data.length);
    }
  }

  private dial(id: NodeId, p: Peer): void {
    if (p.connecting || Date.now() < p.nextAttempt) return;
    p.connecting = true;
    const t = this.o.tls;
    if (p.addr.tls && !t) {
      p.connecting = false;
      p.nextAttempt = Date.now() + this.backoff[1];
      this.log.warn(`${this.o.id} cannot dial ${id}: its peer URL is https:// but this member has no peer TLS`);
      return;
    }
    const s: Socket = p.addr.tls && t
      ? tlsConnect({
          host: p.addr.host,
          port: p.addr.port,
          secureContext: t.files.current().context,
          rejectUnauthorized: t.verifyPeer,
          ...(isIP(p.addr.host) ? {} : { servername: p.addr.host }),
        })
      : connect({ host: p.addr.host, port: p.addr.port, ...(this.o.lookup ? { lookup: this.o.lookup } : {}) });
    p.socket = s;
    s.setNoDelay(true);
    // The name in the peer URL is resolved by each dial (connect looks it up every time), so a
    // peer that moved to a new address under its name is found on the next reconnect.
    const dialMs = this.o.dialTimeoutMs ?? PEER_DIAL_TIMEOUT_MS;
    s.setTimeout(dialMs, () => s.destroy(new Error(`no connection within ${dialMs} ms`)));
    s.once(p.addr.tls ? 'secureConnect' : 'connect', () => {
      s.setTimeout(0);
      p.lastError = '';
      p.connecting = false;
      p.connected = true;
      p.backoff = this.backoff[0];
      s.write(encodeHandshake({ clusterId: this.o.clusterId, from: this.o.id, to: id, version: PROTOCOL_VERSION }));
      this.flush();
    });
    // Outbound connections carry nothing back; anything that arrives is ignored.
    s.on('data', () => {});
    s.on('error', (e: NodeJS.ErrnoException) => {
      // TLS failures (an untrusted certificate either way) need an operator: said once per reason.
      const tlsError = p.addr.tls && !/^(ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|EPIPE)$/.test(e.code ?? '');
      if (tlsError && e.message !== p.lastError) this.log.warn(`${this.o.id} -> ${id}: TLS: ${e.message}`);
      else this.log.debug(`${this.o.id} -> ${id}: ${e.message}`);
      if (tlsError) p.lastError = e.message;
    });
    s.once('close', () => {
      if (p.socket !== s) return;
      const was = p.connected;
      p.connected = false;
      p.connecting = false;
      p.socket = null;
      p.nextAttempt = Date.now() + p.backoff;
      p.backoff = Math.min(this.backoff[1], p.backoff * 2);
      if (was) this.log.info(`${this.o.id} lost its connection to ${id}; reconnecting`);
    });
  }

  /**
   * A peer's connection to us came from `addr`. When that differs from where its previous one
   * came from, the peer has moved (a host or pod back under its name with a new address), and
   * our connection to its old address may be silently dead (nothing told us: no FIN, no RST
   * from a host that vanished): it is closed, and the next send dials the name again.
   */
  private peerConnectedFrom(id: NodeId, addr: string): void {
    const p = this.peers.get(id);
    if (!p) return;
    const moved = p.inboundFrom !== null && p.inboundFrom !== addr;
    p.inboundFrom = addr;
    if (moved && p.socket && (p.connected || p.connecting)) {
      this.log.info(`${this.o.id}: member ${id} now connects from ${addr}: it moved; dialing it again`);
      p.nextAttempt = 0;
      p.backoff = this.backoff[0];
      p.socket.destroy();
    }
  }

  private accept(s: Socket): void {
    if (this.closed) {
      s.destroy();
      return;
    }
    const addr = s.remoteAddress ?? '?';
    const overLimit = (why: string): void => {
      this.stats.overLimit++;
      this.log.warn(`${this.o.id} closed a connection from ${addr}:${s.remotePort}: ${why}`);
      s.destroy();
    };
    const perAddress = this.unauthenticatedByAddress.get(addr) ?? 0;
    if (this.unauthenticated.size >= (this.o.unauthenticatedMax ?? PEER_UNAUTHENTICATED_CONNECTIONS_MAX)) {
      return overLimit(`${this.unauthenticated.size} connections are already waiting for their handshake`);
    }
    if (perAddress >= (this.o.unauthenticatedPerAddressMax ?? PEER_UNAUTHENTICATED_PER_ADDRESS_MAX)) {
      return overLimit(`${perAddress} connections from that address are already waiting for their handshake`);
    }
    this.inbound.add(s);
    this.unauthenticated.add(s);
    this.unauthenticatedByAddress.set(addr, perAddress + 1);
    let counted = true;
    const uncount = (): void => {
      if (!counted) return;
      counted = false;
      this.unauthenticated.delete(s);
      const n = (this.unauthenticatedByAddress.get(addr) ?? 1) - 1;
      if (n > 0) this.unauthenticatedByAddress.set(addr, n);
      else this.unauthenticatedByAddress.delete(addr);
    };
    s.setNoDelay(true);
    // The stream frames are read from: the socket itself, or its decrypted TLS stream.
    let io: Socket | null = null;
    // Until the handshake, no frame may be larger than a handshake.
    const reader = new FrameReader(HANDSHAKE_FRAME_BYTES_MAX);
    let peer: NodeId | 0 = 0;
    const drop = (why: string, counter: 'refused' | 'malformed' | 'timedOut'): void => {
      this.stats[counter]++;
      // An idle member's connection is routine (followers seldom talk to each other); the rest is not.
      const level = peer && counter === 'timedOut' ? 'info' : 'warn';
      this.log[level](`${this.o.id} closed a connection from ${addr}:${s.remotePort}${peer ? ` (member ${peer})` : ''}: ${why}`);
      io?.destroy();
      s.destroy();
    };
    const handshakeMs = this.o.handshakeTimeoutMs ?? PEER_HANDSHAKE_TIMEOUT_MS;
    const handshakeTimer = setTimeout(() => {
      if (!peer) drop(`no handshake within ${handshakeMs} ms`, 'timedOut');
    }, handshakeMs);
    handshakeTimer.unref();
    let answeredJoin = false;
    const authenticate = (body: Uint8Array): void => {
      // After a join answer the connection only closes: anything more is ignored.
      if (answeredJoin) return;
      const token = decodeJoinQuery(body);
      if (token !== null) {
        answeredJoin = true;
        const answer = this.o.onJoinQuery?.(token) ?? null;
        if (!answer) return drop('join query refused (unknown cluster token, or this member cannot answer)', 'refused');
        clearTimeout(handshakeTimer);
        this.log.info(`${this.o.id} answered a join query from ${addr}:${s.remotePort}`);
        // On the stream the query came on: the TLS socket with peer TLS (the raw socket would put the answer outside TLS).
        (io ?? s).end(encodeJoinAnswer(answer));
        return;
      }
      let h;
      try {
        h = decodeHandshake(body);
      } catch (e) {
        return drop(`bad handshake: ${(e as Error).message}`, 'refused');
      }
      if (h.version !== PROTOCOL_VERSION) return drop(`protocol version ${h.version}, expected ${PROTOCOL_VERSION}`, 'refused');
      if (h.clusterId !== this.o.clusterId) return drop(`cluster id "${h.clusterId}" does not match ours ("${this.o.clusterId}")`, 'refused');
      if (h.to !== this.o.id) return drop(`handshake is for member ${h.to}, we are ${this.o.id}`, 'refused');
      if (h.from === this.o.id || !this.peers.has(h.from)) return drop(`handshake from member ${h.from}, which is not a peer of ours`, 'refused');
      peer = h.from;
      clearTimeout(handshakeTimer);
      uncount();
      // One connection per member (PEER_CONNECTIONS_PER_MEMBER_MAX): the newer one wins.
      const old = this.byMember.get(peer);
      if (old && old !== s) {
        this.log.info(`${this.o.id}: a new connection from member ${peer} replaces its previous one`);
        old.destroy();
      }
      this.byMember.set(peer, s);
      this.peerConnectedFrom(peer, addr);
      reader.maxFrame = this.o.frameBytesMax ?? FRAME_BYTES_MAX;
      const idleMs = this.o.idleTimeoutMs ?? PEER_IDLE_TIMEOUT_MS;
      io!.setTimeout(idleMs, () => drop(`silent for ${idleMs} ms`, 'timedOut'));
    };
    const onData = (chunk: Buffer) => {
      this.o.observer?.received?.(peer, chunk.length);
      const frameError = (e: unknown) => drop((e as Error).message, peer ? 'malformed' : 'refused');
      try {
        reader.feed(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      } catch (e) {
        return frameError(e);
      }
      while (!s.destroyed) {
        let body: Uint8Array | null;
        try {
          body = reader.next();
        } catch (e) {
          return frameError(e);
        }
        if (!body) return;
        if (!peer) authenticate(body);
        else this.deliver(peer, body, drop);
      }
    };
    s.on('error', () => {});
    const tlsKey = `${addr}:${s.remotePort}`;
    if (this.tlsServer) {
      const m = this.o.tls!.files.current();
      if (m.generation !== this.tlsGeneration) {
        this.tlsGeneration = m.generation;
        this.tlsServer.setSecureContext(m.options);
      }
      this.tlsPending.set(tlsKey, {
        secure: (t) => {
          io = t;
          t.on('error', () => {});
          t.on('data', onData);
        },
        failed: (why) => drop(why, 'refused'),
      });
      this.tlsServer.emit('connection', s);
    } else {
      io = s;
      s.on('data', onData);
    }
    s.once('close', () => {
      this.tlsPending.delete(tlsKey);
      io?.destroy();
      clearTimeout(handshakeTimer);
      uncount();
      this.inbound.delete(s);
      if (peer && this.byMember.get(peer) === s) this.byMember.delete(peer);
    });
  }

  /** One frame from an authenticated peer: a Raft message or a member frame, each checked to come from that peer. */
  private deliver(peer: NodeId, body: Uint8Array, drop: (why: string, counter: 'malformed') => void): void {
    let member: ReturnType<typeof decodeMemberFrame>;
    let m: Message | null = null;
    let clocked = false;
    try {
      const at = readClockEnvelope(body, peer, this.isKnownId, this.clockIn);
      if (at > 0) {
        body = body.subarray(at);
        clocked = true;
      }
      member = decodeMemberFrame(body);
      if (!member) m = decodeMessage(body);
    } catch (e) {
      return drop(e instanceof FrameError ? e.message : `undecodable frame: ${(e as Error).message}`, 'malformed');
    }
    const from = member ? member.from : m!.from;
    const to = member ? member.to : m!.to;
    if (from !== peer || to !== this.o.id) return drop(`${member ? 'member frame' : 'message'} from ${from} to ${to} on a connection from ${peer}`, 'malformed');
    this.stats.received++;
    if (m?.type === 'heartbeatResponse') {
      const at = this.heartbeatSentAt.get(peer);
      if (at !== undefined) {
        this.heartbeatSentAt.delete(peer);
        this.o.observer?.roundTrip?.(peer, (performance.now() - at) / 1000);
      }
    }
    this.lastHeard.set(peer, Date.now());
    if (clocked) this.clockReceived(peer, m);
    if (member) this.memberReceiver(peer, member.body);
    else this.receiver(m!);
  }

  // ---- Logical clocks: stamping on send, merging on receive (the envelope is clock-envelope.ts) ----

  /**
   * A Raft message's frame, in a clock envelope with a new send stamp when clocks are on: the
   * body is encoded after room for the envelope, which is then written in front of it (no copy).
   */
  private encodeStamped(m: Message): Uint8Array {
    const c = this.o.clocks;
    if (!c) return encodeMessage(m);
    const body = encodeMessageAfter(m, 4 + clockHeaderBytesMax(c));
    // A frame so large that the envelope could push it over the receiver's limit goes unstamped.
    if (body.end - body.start + CLOCK_HEADER_BYTES_MAX > (this.o.frameBytesMax ?? FRAME_BYTES_MAX)) return plainFrame(body);
    c.stampSend(this.nameOf(m.to), m);
    return envelopeInPlace(c, body.buf, body.start, body.end);
  }

  /** `frame` in a clock envelope with a new send stamp (as is without clocks); `m` null for a member frame. */
  private stamped(to: NodeId, frame: Uint8Array, m: Message | null): Uint8Array {
    const c = this.o.clocks;
    // A frame so large that the envelope could push it over the receiver's limit goes unstamped.
    if (!c || frame.length - 4 + CLOCK_HEADER_BYTES_MAX > (this.o.frameBytesMax ?? FRAME_BYTES_MAX)) return frame;
    c.stampSend(this.nameOf(to), m);
    return encodeClockEnvelopeFrom(c, frame);
  }

  /** The envelope just read (clockIn) merged into this member's clocks. */
  private clockReceived(peer: NodeId, m: Message | null): void {
    const c = this.o.clocks;
    if (!c) return;
    const h = this.clockIn;
    c.stampReceive(this.nameOf(peer), m, h.lamport, h.ids, h.values, h.count);
  }

  /** A member id as the trace names it (one string per id, not one per message). */
  private nameOf(id: NodeId): string {
    let s = this.idNames.get(id);
    if (s === undefined) this.idNames.set(id, (s = String(id)));
    return s;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.peers.values()) p.socket?.destroy();
    for (const s of this.inbound) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
