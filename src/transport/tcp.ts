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
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { Logger } from '../raft/config.js';
import { silentLogger } from '../raft/config.js';
import type { Message } from '../raft/messages.js';
import type { NodeId } from '../raft/types.js';
import type { Transport } from '../node/node.js';
import { decodeHandshake, decodeMessage, encodeHandshake, encodeMessage, FRAME_BYTES_MAX, FrameError, FrameReader, PROTOCOL_VERSION } from './codec.js';

export interface PeerAddress {
  readonly host: string;
  readonly port: number;
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
  /** Largest frame accepted (default FRAME_BYTES_MAX). */
  readonly frameBytesMax?: number;
  /** Reconnect backoff bounds, ms (default 50 .. 2000). */
  readonly backoffMs?: readonly [number, number];
  readonly logger?: Logger;
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
}

export class TcpTransport implements Transport {
  readonly stats: TransportStats = { sent: 0, received: 0, dropped: 0, refused: 0, malformed: 0 };
  private readonly peers = new Map<NodeId, Peer>();
  private readonly inbound = new Set<Socket>();
  private receiver: (m: Message) => void = () => {};
  private flushScheduled = false;
  private closed = false;
  private readonly log: Logger;
  private readonly qMsgs: number;
  private readonly qBytes: number;
  private readonly backoff: readonly [number, number];

  private constructor(
    private readonly o: TcpTransportOptions,
    private readonly server: Server,
  ) {
    this.log = o.logger ?? silentLogger;
    this.qMsgs = o.queueMessagesMax ?? 4096;
    this.qBytes = o.queueBytesMax ?? 64 << 20;
    this.backoff = o.backoffMs ?? [50, 2000];
    for (const [id, addr] of o.peers ?? []) this.setPeer(id, addr);
  }

  static async start(o: TcpTransportOptions): Promise<TcpTransport> {
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

  setPeer(id: NodeId, addr: PeerAddress): void {
    const old = this.peers.get(id);
    if (old) old.socket?.destroy();
    this.peers.set(id, { addr, socket: null, connected: false, connecting: false, queue: [], queuedBytes: 0, backoff: this.backoff[0], nextAttempt: 0 });
  }

  listen(receive: (m: Message) => void): void {
    this.receiver = receive;
  }

  send(messages: readonly Message[]): void {
    if (this.closed) return;
    for (const m of messages) {
      const p = this.peers.get(m.to);
      if (!p) {
        this.stats.dropped++;
        continue;
      }
      const frame = encodeMessage(m);
      const buffered = p.queuedBytes + (p.socket?.writableLength ?? 0);
      if (p.queue.length >= this.qMsgs || buffered + frame.length > this.qBytes) {
        this.stats.dropped++;
        continue;
      }
      p.queue.push(frame);
      p.queuedBytes += frame.length;
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
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
    }
  }

  private dial(id: NodeId, p: Peer): void {
    if (p.connecting || Date.now() < p.nextAttempt) return;
    p.connecting = true;
    const s = connect({ host: p.addr.host, port: p.addr.port });
    p.socket = s;
    s.setNoDelay(true);
    s.once('connect', () => {
      p.connecting = false;
      p.connected = true;
      p.backoff = this.backoff[0];
      s.write(encodeHandshake({ clusterId: this.o.clusterId, from: this.o.id, to: id, version: PROTOCOL_VERSION }));
      this.flush();
    });
    // Outbound connections carry nothing back; anything that arrives is ignored.
    s.on('data', () => {});
    s.on('error', (e) => this.log.debug(`${this.o.id} -> ${id}: ${e.message}`));
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

  private accept(s: Socket): void {
    if (this.closed) {
      s.destroy();
      return;
    }
    this.inbound.add(s);
    s.setNoDelay(true);
    const reader = new FrameReader(this.o.frameBytesMax ?? FRAME_BYTES_MAX);
    let peer: NodeId | 0 = 0;
    const drop = (why: string, counter: 'refused' | 'malformed'): void => {
      this.stats[counter]++;
      this.log.warn(`${this.o.id} closed a connection from ${s.remoteAddress}:${s.remotePort}${peer ? ` (member ${peer})` : ''}: ${why}`);
      s.destroy();
    };
    s.on('data', (chunk: Buffer) => {
      let bodies: Uint8Array[];
      try {
        bodies = reader.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      } catch (e) {
        drop((e as Error).message, peer ? 'malformed' : 'refused');
        return;
      }
      for (const body of bodies) {
        if (s.destroyed) return;
        if (!peer) {
          try {
            const h = decodeHandshake(body);
            if (h.version !== PROTOCOL_VERSION) return drop(`protocol version ${h.version}, expected ${PROTOCOL_VERSION}`, 'refused');
            if (h.clusterId !== this.o.clusterId) return drop(`cluster id "${h.clusterId}" does not match ours ("${this.o.clusterId}")`, 'refused');
            if (h.to !== this.o.id) return drop(`handshake is for member ${h.to}, we are ${this.o.id}`, 'refused');
            peer = h.from;
          } catch (e) {
            return drop(`bad handshake: ${(e as Error).message}`, 'refused');
          }
          continue;
        }
        let m: Message;
        try {
          m = decodeMessage(body);
        } catch (e) {
          return drop(e instanceof FrameError ? e.message : `undecodable frame: ${(e as Error).message}`, 'malformed');
        }
        if (m.from !== peer || m.to !== this.o.id) return drop(`message from ${m.from} to ${m.to} on a connection from ${peer}`, 'malformed');
        this.stats.received++;
        this.receiver(m);
      }
    });
    s.on('error', () => {});
    s.once('close', () => this.inbound.delete(s));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.peers.values()) p.socket?.destroy();
    for (const s of this.inbound) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
