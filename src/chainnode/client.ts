/**
 * ChainClient: put / get / delete / compare-and-swap against a chain, following its
 * configuration in the control cluster: writes go to the head, reads to the tail (or any member
 * with CRAQ), each request carries the configuration's epoch; a refusal (another epoch, not the
 * head or tail, not yet caught up, busy) reads the configuration again and retries, until the
 * deadline. A write whose outcome is unknown (a timeout, a head that lost its role with it in
 * flight) is not retried: it fails with ChainOutcomeUnknownError.
 */
import type { Socket } from 'node:net';
import { FlotillaClient } from '../client/client.js';
import type { ClientTlsOptions } from '../client/tls.js';
import { dialNode } from './tls.js';
import { decodeClientReply, encodeClientRequest } from '../chain/codec.js';
import type { ClientOp, ClientReply, OpResult, ReadMode } from '../chain/types.js';
import { checkChainName, readChain, type ChainView } from './control.js';
import { AssemblyBudget, helloFrame, readMessages, writeMessage } from './wire.js';
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

  constructor(private readonly o: ChainClientOptions) {
    checkChainName(o.chain);
    this.control = new FlotillaClient({ endpoints: [...o.control], requestTimeoutMs: 3000 });
  }

  async status(): Promise<ChainView> {
    this.view = await readChain(this.control, this.o.chain);
    return this.view;
  }

  async put(key: string, value: Uint8Array | string): Promise<OpResult & { type: 'put' }> {
    return (await this.run({ type: 'put', key, value: bytes(value) })) as OpResult & { type: 'put' };
  }
  async get(key: string): Promise<OpResult & { type: 'get' }> {
    return (await this.run({ type: 'get', key })) as OpResult & { type: 'get' };
  }
  async delete(key: string): Promise<OpResult & { type: 'delete' }> {
    return (await this.run({ type: 'delete', key })) as OpResult & { type: 'delete' };
  }
  async cas(key: string, expectedVersion: number, value: Uint8Array | string): Promise<OpResult & { type: 'cas' }> {
    return (await this.run({ type: 'cas', key, expectedVersion, value: bytes(value) })) as OpResult & { type: 'cas' };
  }

  private async run(op: ClientOp): Promise<OpResult> {
    const deadline = performance.now() + (this.o.timeoutMs ?? 10_000);
    let last = 'no configuration';
    for (let attempt = 0; performance.now() < deadline; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(500, 50 * attempt)));
      const v = this.view?.config ? this.view : await this.status().catch((e: Error) => ((last = e.message), null));
      const c = v?.config;
      if (!v || !c) continue;
      const members = c.members;
      const target = op.type !== 'get' ? members[0]! : this.o.reads === 'craq' ? members[Math.floor(Math.random() * members.length)]! : members[members.length - 1]!;
      const address = v.nodes.get(target)?.address;
      if (!address) {
        this.view = null;
        last = `${target} is not registered`;
        continue;
      }
      let reply: ClientReply;
      try {
        reply = await this.call(address, target, { client: 'c', id: this.nextId++, epoch: c.epoch, op }, deadline);
      } catch (e) {
        if (op.type !== 'get' && (e as Error).message !== 'not sent') throw new ChainOutcomeUnknownError(`${op.type} ${op.key}: outcome unknown (${(e as Error).message})`);
        this.view = null;
        last = (e as Error).message;
        continue;
      }
      if (reply.ok === true) return reply.result;
      if (reply.ok === null) throw new ChainOutcomeUnknownError(`${op.type} ${op.key}: outcome unknown (the head changed with it in flight)`);
      if (reply.reason === 'invalid') throw new Error(`${op.type} ${op.key}: ${reply.detail ?? 'invalid'}`);
      last = `${target}: ${reply.reason}${reply.detail ? ` (${reply.detail})` : ''}`;
      this.view = null;
    }
    throw new Error(`chain ${this.o.chain}: ${op.type} ${op.key} did not complete in time: ${last}`);
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
        if (r instanceof Error) reject(c.ready ? r : new Error('not sent'));
        else resolve(r);
      });
      writeMessage(c.socket, encodeClientRequest(q));
    });
  }

  async close(): Promise<void> {
    for (const c of this.conns.values()) c.socket.destroy();
    await this.control.close();
  }
}

function bytes(v: Uint8Array | string): Uint8Array {
  return typeof v === 'string' ? new TextEncoder().encode(v) : v;
}
