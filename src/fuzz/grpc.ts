/**
 * The gRPC surface: raw request bytes to every method of every service the client port serves
 * (enumerated from the .proto files; nothing is skipped unless --exclude names it). grpc-js
 * clients with identity serializers send arbitrary bytes. Streams (Watch, LeaseKeepAlive,
 * Observe, Snapshot) are opened, written and cancelled after a bounded time.
 *
 * Not skipped on purpose: MoveLeader (flapping leadership is a fault the cluster must ride
 * out), Defragment and Snapshot (harmless reads here), Compact (the cluster check reads a key
 * written after the batch, at a revision no compaction can have reached).
 */
import * as grpc from '@grpc/grpc-js';
import { rng } from '../lib/prng.js';
import type { FaultCluster } from '../faults/cluster.js';
import type { FuzzInput, Surface } from './harness.js';
import { concat, inputSeed, mutate, randomBytes } from './mutate.js';
import { allMethods, deepNesting, randomRequest, repeated, type FuzzMethod } from './protogen.js';

/** Deadline of a unary call (Lock and Campaign may wait on a contended name). */
export const GRPC_UNARY_DEADLINE_MS = 2000;
/** How long a stream stays open before it is cancelled. */
export const GRPC_STREAM_OPEN_MS = 150;
/** Connections kept per member and reused; one input in 20 uses a fresh connection. */
const CLIENTS_PER_MEMBER = 2;
const FRESH_CONNECTION_P = 0.05;
/** Largest input (a little past the server's receive limit, so that limit is exercised too). */
const INPUT_BYTES_MAX = 2_200_000;

const identity = (b: Buffer): Buffer => b;

interface GrpcInput extends FuzzInput {
  readonly method: FuzzMethod;
  readonly member: number;
  readonly fresh: boolean;
  readonly messages: Uint8Array[];
}

export class GrpcSurface implements Surface {
  readonly name = 'grpc';
  readonly concurrency = 64;
  readonly methods: FuzzMethod[];
  /** Picks are made from every method (an excluded one is picked again), so an input's method does not depend on --exclude. */
  private readonly all: FuzzMethod[];
  private readonly clients: grpc.Client[][];
  private rr = 0;
  /** Calls by final status. */
  private readonly tally = new Map<string, number>();

  constructor(
    private readonly cluster: FaultCluster,
    private readonly seed: number,
    exclude: ReadonlySet<string>,
  ) {
    const all = allMethods();
    this.all = all;
    this.methods = all.filter((m) => !exclude.has(m.name) && !exclude.has(`grpc:${m.name}`));
    if (this.methods.length === 0) throw new Error('--exclude leaves no gRPC method to fuzz');
    this.clients = cluster.members.map((m) => Array.from({ length: CLIENTS_PER_MEMBER }, () => newClient(m.client)));
  }

  make(index: number): GrpcInput {
    const r = rng(inputSeed(this.seed, 1, index));
    let method = r.pick(this.all);
    while (!this.methods.includes(method)) method = r.pick(this.all);
    const member = r.int(0, this.cluster.members.length);
    const count = method.requestStream ? r.int(1, 5) : 1;
    const messages: Uint8Array[] = [];
    const kinds: string[] = [];
    for (let i = 0; i < count; i++) {
      const x = r.next();
      const valid = () => randomRequest(r, method.request);
      let b: Uint8Array;
      let kind: string;
      if (x < 0.1) {
        kind = 'random';
        b = randomBytes(r, 8192);
      } else if (x < 0.3) {
        kind = 'valid';
        b = valid();
      } else if (x < 0.75) {
        kind = 'mutated';
        b = mutate(r, valid(), { other: valid(), maxBytes: INPUT_BYTES_MAX });
      } else if (x < 0.85) {
        kind = 'spliced';
        const a = valid();
        b = concat([a.subarray(0, r.int(0, a.length + 1)), valid()]);
      } else if (x < 0.93) {
        const levels = r.chance(0.5) ? r.int(2, 64) : r.int(64, 5000);
        const deep = deepNesting(method.request, levels, r.chance(0.5) ? valid() : new Uint8Array(0));
        kind = deep ? `nested ${levels}` : 'mutated';
        b = deep ?? mutate(r, valid());
      } else {
        const one = valid();
        const times = one.length === 0 ? 1 : Math.min(r.chance(0.7) ? r.int(2, 1000) : r.int(1000, 100_000), Math.floor(INPUT_BYTES_MAX / one.length));
        kind = `repeated x${times}`;
        b = repeated(one, Math.max(1, times));
      }
      kinds.push(kind);
      messages.push(b);
    }
    const fresh = r.chance(FRESH_CONNECTION_P);
    return { index, label: `${method.name} -> ${this.cluster.members[member]!.name}${fresh ? ' (fresh connection)' : ''}: ${kinds.join(', ')}`, bytes: concat(messages), method, member, fresh, messages };
  }

  async run(input: FuzzInput): Promise<string | null> {
    const x = input as GrpcInput;
    const client = x.fresh ? newClient(this.cluster.members[x.member]!.client) : this.clients[x.member]![this.rr++ % CLIENTS_PER_MEMBER]!;
    try {
      const name = await send(client, x);
      this.tally.set(name, (this.tally.get(name) ?? 0) + 1);
    } finally {
      if (x.fresh) client.close();
    }
    return null;
  }

  stats(): string {
    return `statuses: ${[...this.tally].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ')}`;
  }

  async close(): Promise<void> {
    for (const cs of this.clients) for (const c of cs) c.close();
  }
}

function newClient(endpoint: string): grpc.Client {
  return new grpc.Client(endpoint, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': -1, 'grpc.max_receive_message_length': -1 });
}

/** Sends the input's messages; resolves when the call ends (its status is not judged: only the cluster's health is). */
/** The final status of a call: its code, and for INTERNAL and UNKNOWN (errors nobody expected) what it said. */
function send(c: grpc.Client, x: GrpcInput): Promise<string> {
  const { method } = x;
  const bufs = x.messages.map((m) => Buffer.from(m.buffer, m.byteOffset, m.byteLength));
  const name = (code: number, details?: string): string => {
    const n = grpc.status[code] ?? String(code);
    return code === grpc.status.INTERNAL || code === grpc.status.UNKNOWN ? `${n} (${(details ?? '').replace(/\d+/g, 'N').slice(0, 60)})` : n;
  };
  return new Promise<string>((resolve) => {
    const deadline = Date.now() + (method.requestStream || method.responseStream ? GRPC_STREAM_OPEN_MS * 10 : GRPC_UNARY_DEADLINE_MS);
    if (!method.requestStream && !method.responseStream) {
      c.makeUnaryRequest(method.path, identity, identity, bufs[0]!, new grpc.Metadata(), { deadline }, (e) => resolve(e ? name(e.code, e.details) : 'OK'));
      return;
    }
    let call: grpc.ClientDuplexStream<Buffer, Buffer> | grpc.ClientReadableStream<Buffer> | grpc.ClientWritableStream<Buffer>;
    if (method.requestStream && method.responseStream) call = c.makeBidiStreamRequest(method.path, identity, identity, new grpc.Metadata(), { deadline });
    else if (method.responseStream) call = c.makeServerStreamRequest(method.path, identity, identity, bufs[0]!, new grpc.Metadata(), { deadline });
    else call = c.makeClientStreamRequest(method.path, identity, identity, new grpc.Metadata(), { deadline }, () => undefined);
    let finished = false;
    const finish = (st?: grpc.StatusObject) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      resolve(st ? name(st.code, st.details) : 'no status');
    };
    call.on('error', () => undefined);
    call.on('status', finish);
    if ('read' in call) call.on('data', () => undefined);
    if ('write' in call) {
      for (const b of bufs) call.write(b);
      if (x.index % 2 === 0) call.end();
    }
    const timer = setTimeout(() => {
      call.cancel();
      // A cancelled call reports its status; this is the backstop should it not.
      setTimeout(() => finish(), GRPC_STREAM_OPEN_MS);
    }, GRPC_STREAM_OPEN_MS);
  });
}
