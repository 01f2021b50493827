/**
 * ChainClient: put / get / delete / compare-and-swap against a chain, following its
 * configuration in the control cluster: writes go to the head, reads to the tail (or any member
 * with CRAQ), each request carries the configuration's epoch; a refusal (another epoch, not the
 * head or tail, not yet caught up, busy) reads the configuration again and retries, until the
 * deadline. A write whose outcome is unknown (a timeout, a head that lost its role with it in
 * flight) is not retried: it fails with ChainOutcomeUnknownError. A refusal of the control
 * cluster that no retry cures (a wrong password, no permission, a TLS failure: controlRefusal)
 * fails at once with etcd's text.
 *
 * Large values stream: putStream and casStream send a value from a Readable in pieces as they
 * read them, and getStream hands the value on as a Readable as its pieces arrive (pausing the
 * connection while the reader is behind), each on a connection of its own, so the client holds
 * about a piece of a 64 MiB value, not all of it. put, cas and get carry the value as one buffer.
 */
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import type { FlotillaClient } from '../client/client.js';
import type { ClientTlsOptions } from '../client/tls.js';
import { dialNode } from './tls.js';
import { FrameError } from '../transport/codec.js';
import { ChainCodecError, decodeClientReply, decodeGetReplyHead, encodeClientRequest, encodeClientRequestHead, GET_REPLY_HEAD_BYTES } from '../chain/codec.js';
import { CHAIN_VALUE_BYTES_MAX, type ClientOp, type ClientReply, type ClientRequest, type OpResult, type ReadMode } from '../chain/types.js';
import { checkChainName, controlClient, controlRefusal, readChain, type ChainView, type ControlAccess } from './control.js';
import { AssemblyBudget, ConnectionClosedError, helloFrame, PartReader, readMessages, writeMessage, writeMessageFrom } from './wire.js';
import { splitHostPort } from './node-process.js';

export class ChainOutcomeUnknownError extends Error {
  override name = 'ChainOutcomeUnknownError';
}

export interface ChainClientOptions {
  readonly chain: string;
  readonly control: readonly string[];
  readonly reads?: ReadMode;
  /** How long one operation may take, retries included (default 10 s). */
  readonly timeoutMs?: number;
  /**
   * TLS to the chain's nodes (not the control cluster): the CA that signed their certificates
   * and this client's certificate and key (nodes require one). A node must present a
   * certificate whose CN is its name.
   */
  readonly tls?: ClientTlsOptions;
  /** TLS and credentials for the control cluster (etcdctl's --cacert/--cert/--key, --user). */
  readonly controlAccess?: ControlAccess;
}

/** A value read by getStream: its version, its size, and its bytes as they arrive. */
export interface StreamedValue {
  readonly version: number;
  readonly size: number;
  readonly value: Readable;
}

/** Where putStream reads the value: a stream (one attempt), or a function opening it anew for each attempt. */
export type ValueSource = Readable | (() => Readable);

/** What one attempt at an operation sends and receives (a whole request, or a streamed one). */
type Attempt = (address: string, node: string, q: ClientRequest, deadline: number) => Promise<{ reply: ClientReply; streamed?: StreamedValue }>;

/** The value given to putStream is not what it said (more or fewer bytes), or cannot be read again: nothing was applied. */
export class ChainValueSourceError extends Error {
  override name = 'ChainValueSourceError';
}

/** Not sent: the connection failed before it was established (safe to retry any request). */
class NotSentError extends Error {
  override name = 'NotSentError';
  constructor() {
    super('not sent');
  }
}

interface Conn {
  socket: Socket;
  /** Requests written now reach the node (connected; with TLS, the handshake done). */
  ready: boolean;
  waiting: Map<number, (r: ClientReply | Error) => void>;
}

export class ChainClient {
  private readonly control: FlotillaClient;
  private view: ChainView | null = null;
  private readonly conns = new Map<string, Conn>();
  private nextId = 1;
  /** What replies arriving in pieces may hold (CHAIN_ASSEMBLY_BYTES_MAX). */
  private readonly budget = new AssemblyBudget();
  /** The connections of streams under way (closed with the client). */
  private readonly streams = new Set<Socket>();

  constructor(private readonly o: ChainClientOptions) {
    checkChainName(o.chain);
    this.control = controlClient(o.control, o.controlAccess);
  }

  async status(): Promise<ChainView> {
    this.view = await readChain(this.control, this.o.chain);
    return this.view;
  }

  async put(key: string, value: Uint8Array | string): Promise<OpResult & { type: 'put' }> {
    return (await this.run({ type: 'put', key, value: bytes(value) })).result as OpResult & { type: 'put' };
  }
  async get(key: string): Promise<OpResult & { type: 'get' }> {
    return (await this.run({ type: 'get', key })).result as OpResult & { type: 'get' };
  }
  async delete(key: string): Promise<OpResult & { type: 'delete' }> {
    return (await this.run({ type: 'delete', key })).result as OpResult & { type: 'delete' };
  }
  async cas(key: string, expectedVersion: number, value: Uint8Array | string): Promise<OpResult & { type: 'cas' }> {
    return (await this.run({ type: 'cas', key, expectedVersion, value: bytes(value) })).result as OpResult & { type: 'cas' };
  }

  /**
   * Puts a value of `size` bytes read from `source` as it is sent (in pieces, waiting for the
   * connection to take each). Given a function, it opens the value again for a retry (a refusal
   * arrives only after the whole value was sent); given a stream, a refusal is final.
   */
  async putStream(key: string, source: ValueSource, size: number): Promise<OpResult & { type: 'put' }> {
    return (await this.writeStream({ type: 'put', key, value: new Uint8Array(0) }, source, size)) as OpResult & { type: 'put' };
  }

  /**
   * Compare-and-swap with a streamed value: sets the key to `size` bytes read from `source` if
   * its version is `expectedVersion` (0: absent), as cas does; the value is sent as putStream
   * sends it (so a refused attempt needs a function to open it again).
   */
  async casStream(key: string, expectedVersion: number, source: ValueSource, size: number): Promise<OpResult & { type: 'cas' }> {
    return (await this.writeStream({ type: 'cas', key, expectedVersion, value: new Uint8Array(0) }, source, size)) as OpResult & { type: 'cas' };
  }

  /** putStream and casStream: `op` with its value (of `size` bytes) from `source`. */
  private async writeStream(op: ClientOp & { readonly type: 'put' | 'cas' }, source: ValueSource, size: number): Promise<OpResult> {
    const key = op.key;
    if (!(Number.isSafeInteger(size) && size >= 0 && size <= CHAIN_VALUE_BYTES_MAX)) throw new Error(`${op.type} ${key}: value exceeds ${CHAIN_VALUE_BYTES_MAX} bytes (or is not a size: ${size})`);
    let used = false;
    const open = (): Readable => {
      if (typeof source === 'function') return source();
      if (used) throw new ChainValueSourceError(`${op.type} ${key}: the value must be sent again (refused, or the connection failed while sending it), and a stream cannot be read twice (give a function that opens it again)`);
      used = true;
      return source;
    };
    return (await this.run(op, (address, node, q, deadline) => this.sendStreamed(address, node, q, open, size, deadline))).result;
  }

  /**
   * Reads a key's value as a stream (null: the key is absent). A refusal before the value
   * begins is retried as get's; a failure after it began errors the stream.
   */
  async getStream(key: string): Promise<StreamedValue | null> {
    const r = await this.run({ type: 'get', key }, (address, node, q, deadline) => this.receiveStreamed(address, node, q, deadline));
    if (r.streamed) return r.streamed;
    const res = r.result as OpResult & { type: 'get' };
    if (res.value === null) return null;
    return { version: res.version, size: res.value.length, value: Readable.from([Buffer.from(res.value.buffer, res.value.byteOffset, res.value.length)]) };
  }

  private async run(op: ClientOp, attempt: Attempt = (address, node, q, deadline) => this.call(address, node, q, deadline).then((reply) => ({ reply }))): Promise<{ result: OpResult; streamed?: StreamedValue }> {
    const deadline = performance.now() + (this.o.timeoutMs ?? 10_000);
    let last = 'no configuration';
    for (let n = 0; performance.now() < deadline; n++) {
      if (n > 0) await new Promise((r) => setTimeout(r, Math.min(500, 50 * n)));
      let v = this.view?.config ? this.view : null;
      if (!v) {
        try {
          v = await this.status();
        } catch (e) {
          const refused = controlRefusal(e);
          if (refused !== null) throw new Error(`chain ${this.o.chain}: the control cluster refused: ${refused}`);
          last = (e as Error).message;
          continue;
        }
      }
      const c = v.config;
      if (!c) continue;
      const members = c.members;
      const target = op.type !== 'get' ? members[0]! : this.o.reads === 'craq' ? members[Math.floor(Math.random() * members.length)]! : members[members.length - 1]!;
      const address = v.nodes.get(target)?.address;
      if (!address) {
        this.view = null;
        last = `${target} is not registered`;
        continue;
      }
      let r: Awaited<ReturnType<Attempt>>;
      try {
        r = await attempt(address, target, { client: 'c', id: this.nextId++, epoch: c.epoch, op }, deadline);
      } catch (e) {
        if (e instanceof ChainValueSourceError) throw e;
        if (op.type !== 'get' && !(e instanceof NotSentError)) throw new ChainOutcomeUnknownError(`${op.type} ${op.key}: outcome unknown (${(e as Error).message})`);
        this.view = null;
        last = (e as Error).message;
        continue;
      }
      const reply = r.reply;
      if (reply.ok === true) return { result: reply.result, ...(r.streamed ? { streamed: r.streamed } : {}) };
      if (reply.ok === null) throw new ChainOutcomeUnknownError(`${op.type} ${op.key}: outcome unknown (the head changed with it in flight)`);
      if (reply.reason === 'invalid') throw new Error(`${op.type} ${op.key}: ${reply.detail ?? 'invalid'}`);
      last = `${target}: ${reply.reason}${reply.detail ? ` (${reply.detail})` : ''}`;
      this.view = null;
    }
    throw new Error(`chain ${this.o.chain}: ${op.type} ${op.key} did not complete in time: ${last}`);
  }

  /** A connection of its own to node `name` (a stream holds its connection until it ends). */
  private dial(address: string, name: string): { socket: Socket; ready: Promise<void> } {
    const [host, port] = splitHostPort(address);
    const socket = dialNode(host, port, name, this.o.tls ? { pem: this.o.tls } : null);
    socket.setNoDelay(true);
    socket.on('error', () => {});
    const ready = new Promise<void>((resolve, reject) => {
      socket.once(this.o.tls ? 'secureConnect' : 'connect', () => resolve());
      socket.once('close', () => reject(new NotSentError()));
    });
    ready.catch(() => {});
    socket.write(helloFrame('client', this.o.chain, 'client'));
    this.streams.add(socket);
    socket.once('close', () => this.streams.delete(socket));
    return { socket, ready };
  }

  /** putStream's (casStream's) attempt: the request's head, then the value from `body` in pieces; then the reply. */
  private async sendStreamed(address: string, name: string, q: ClientRequest, open: () => Readable, size: number, deadline: number): Promise<{ reply: ClientReply }> {
    const { socket, ready } = this.dial(address, name);
    // Not connected (by the deadline): nothing was read of the value, which the next attempt may still send.
    const connecting = setTimeout(() => socket.destroy(), Math.max(1, deadline - performance.now()));
    await ready.finally(() => clearTimeout(connecting));
    let body: Readable;
    try {
      body = open();
    } catch (e) {
      socket.destroy();
      throw e;
    }
    const reply = new Promise<ClientReply>((resolve, reject) => {
      readMessages(socket, this.budget, { hello: false }, (b) => {
        const d = decodeClientReply(b);
        if (d.id === q.id) resolve(d.reply);
      });
      socket.once('close', () => reject(new Error('connection closed')));
    });
    reply.catch(() => {});
    try {
      // Nothing of a value that is still arriving reaches the node unless all of it does: a
      // failure here (a short file, a closed connection) leaves the request incomplete.
      await writeMessageFrom(socket, encodeClientRequestHead(q as ClientRequest & { op: { type: 'put' | 'cas' } }, size), body, size);
    } catch (e) {
      socket.destroy();
      body.destroy();
      // An incomplete message is never a request: the node drops it.
      if (e instanceof FrameError || e instanceof ChainCodecError) throw new ChainValueSourceError(`${q.op.type} ${q.op.key}: ${e.message}`);
      // The source failed (a file that cannot be read) or the connection closed.
      throw e instanceof Error && !(e instanceof ConnectionClosedError) ? new ChainValueSourceError(`${q.op.type} ${q.op.key}: ${e.message}`) : new NotSentError();
    }
    const timer = setTimeout(() => socket.destroy(), Math.max(1, deadline - performance.now()));
    try {
      return { reply: await reply };
    } finally {
      clearTimeout(timer);
      socket.destroy();
    }
  }

  /**
   * getStream's attempt: a small reply is read whole; a reply in pieces hands its value on as a
   * Readable from its first piece on, the connection paused while the reader is behind.
   */
  private receiveStreamed(address: string, name: string, q: ClientRequest, deadline: number): Promise<{ reply: ClientReply; streamed?: StreamedValue }> {
    const { socket } = this.dial(address, name);
    const parts = new PartReader({ hello: false });
    return new Promise((resolve, reject) => {
      let value: Readable | null = null;
      let head: Uint8Array = new Uint8Array(0);
      let total = 0;
      let started = false;
      let ended = false;
      const timer = setTimeout(() => socket.destroy(new Error('timed out')), Math.max(1, deadline - performance.now()));
      const begin = (bytes: Uint8Array): void => {
        // The head may arrive in more than one piece: keep its bytes (at most GET_REPLY_HEAD_BYTES) until whole.
        const have = new Uint8Array(head.length + bytes.length);
        have.set(head, 0);
        have.set(bytes, head.length);
        if (have.length < GET_REPLY_HEAD_BYTES) {
          head = have;
          return;
        }
        const h = decodeGetReplyHead(have, total);
        if (h.id !== q.id) throw new ChainCodecError(`a reply to request ${h.id}, not ${q.id}`);
        started = true;
        clearTimeout(timer);
        value = new Readable({ read: () => socket.resume() });
        value.on('close', () => socket.destroy());
        resolve({ reply: { ok: true, result: { type: 'get', version: h.version, value: null } }, streamed: { version: h.version, size: h.valueBytes, value } });
        const rest = have.subarray(GET_REPLY_HEAD_BYTES);
        if (rest.length > 0) push(rest);
      };
      const push = (piece: Uint8Array): void => {
        if (!value!.push(piece)) socket.pause();
      };
      socket.on('data', (chunk: Buffer) => {
        try {
          for (const p of parts.push(chunk).parts) {
            if (p.type === 'whole') {
              if (started) throw new ChainCodecError('a message after the value');
              const d = decodeClientReply(p.body);
              clearTimeout(timer);
              socket.destroy();
              resolve({ reply: d.reply });
              return;
            }
            if (p.type === 'first') {
              if (started) throw new ChainCodecError('a message after the value');
              total = p.total;
              begin(p.piece);
            } else if (!started) begin(p.piece);
            else push(p.piece);
            if (p.type === 'more' && p.last) {
              ended = true;
              value!.push(null);
              socket.destroy();
              return;
            }
          }
        } catch (e) {
          socket.destroy(e as Error);
        }
      });
      socket.once('close', () => {
        clearTimeout(timer);
        const e = new Error('connection closed');
        if (!started) reject(e);
        else if (!ended) value!.destroy(e);
      });
      writeMessage(socket, encodeClientRequest(q));
    });
  }

  private conn(address: string, name: string): Conn {
    const key = `${name}@${address}`;
    const have = this.conns.get(key);
    if (have && !have.socket.destroyed) return have;
    const [host, port] = splitHostPort(address);
    const socket = dialNode(host, port, name, this.o.tls ? { pem: this.o.tls } : null);
    socket.setNoDelay(true);
    const c: Conn = { socket, ready: false, waiting: new Map() };
    socket.once(this.o.tls ? 'secureConnect' : 'connect', () => (c.ready = true));
    readMessages(socket, this.budget, { hello: false }, (b) => {
      const { id, reply } = decodeClientReply(b);
      c.waiting.get(id)?.(reply);
      c.waiting.delete(id);
    });
    const fail = (e: Error): void => {
      for (const w of c.waiting.values()) w(e);
      c.waiting.clear();
    };
    socket.on('error', (e: NodeJS.ErrnoException) => {
      // A TLS alert is the node refusing the handshake (our certificate: TLS 1.3 reports it
      // after our side finished): it accepted no request on this connection.
      if (/^ERR_SSL_.*ALERT/.test(e.code ?? '')) c.ready = false;
      fail(e);
    });
    socket.on('close', () => fail(new Error('connection closed')));
    socket.write(helloFrame('client', this.o.chain, 'client'));
    this.conns.set(key, c);
    return c;
  }

  private call(address: string, name: string, q: Parameters<typeof encodeClientRequest>[0], deadline: number): Promise<ClientReply> {
    const c = this.conn(address, name);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        c.waiting.delete(q.id);
        reject(new Error('timed out'));
      }, Math.max(1, deadline - performance.now()));
      c.waiting.set(q.id, (r) => {
        clearTimeout(timer);
        // A connection that failed before it was ever established cannot have carried the request.
        if (r instanceof Error) reject(c.ready ? r : new NotSentError());
        else resolve(r);
      });
      writeMessage(c.socket, encodeClientRequest(q));
    });
  }

  async close(): Promise<void> {
    for (const c of this.conns.values()) c.socket.destroy();
    for (const s of this.streams) s.destroy();
    await this.control.close();
  }
}

function bytes(v: Uint8Array | string): Uint8Array {
  return typeof v === 'string' ? new TextEncoder().encode(v) : v;
}
