import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { CHAIN_MESSAGE_BYTES_MAX } from '../chain/codec.js';
import { FrameError } from '../transport/codec.js';
import { AssemblyBudget, CHAIN_FRAME_BYTES_MAX, CHAIN_HELLO_BYTES_MAX, CHAIN_PIECE_BYTES, decodeHello, helloFrame, MessageReader, messageParts, messageFramesOf, readMessages, writeMessageFrom, writeMessageOf, writeMessageParts } from './wire.js';

const pattern = (n: number): Uint8Array => new Uint8Array(n).map((_, i) => (i * 7 + (i >> 9)) & 255);
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n, 0);
  return b;
};
/** Each frame of a message, header and piece joined. */
const messageFrames = (body: Uint8Array): Buffer[] => {
  const parts = messageParts(body);
  const out: Buffer[] = [];
  for (let i = 0; i < parts.length; i += 2) out.push(Buffer.concat([parts[i]!, parts[i + 1]!]));
  return out;
};
const rawFrame = (body: number[] | Uint8Array): Buffer => Buffer.concat([u32(body.length), Buffer.from(body)]);

/** Feeds `bytes` in slices of pseudo-random sizes. */
function feed(r: MessageReader, bytes: Buffer, seed = 1): { hellos: Uint8Array[]; messages: Uint8Array[] } {
  const out = { hellos: [] as Uint8Array[], messages: [] as Uint8Array[] };
  let x = seed;
  for (let at = 0; at < bytes.length; ) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    const n = 1 + (x % 300_000);
    const got = r.push(bytes.subarray(at, at + n));
    if (got.hello) out.hellos.push(got.hello);
    out.messages.push(...got.messages);
    at += n;
  }
  return out;
}

describe('chain wire framing', () => {
  it('carries a hello, then small and large messages, a large one in pieces of CHAIN_PIECE_BYTES', () => {
    const small = pattern(100);
    const large = pattern(3 * CHAIN_PIECE_BYTES + 5);
    const frames = messageFrames(large);
    expect(frames.length).toBe(4);
    for (const f of frames) expect(f.length - 4).toBeLessThanOrEqual(CHAIN_FRAME_BYTES_MAX);
    const budget = new AssemblyBudget();
    const r = new MessageReader(budget, { hello: true });
    const got = feed(r, Buffer.concat([helloFrame('peer', 'c', 'n1'), ...messageFrames(small), ...frames, ...messageFrames(small)]));
    expect(got.hellos.map((h) => decodeHello(h))).toEqual([{ role: 'peer', chain: 'c', name: 'n1' }]);
    expect(got.messages.map((m) => m.length)).toEqual([100, large.length, 100]);
    expect(Buffer.compare(Buffer.from(got.messages[1]!), Buffer.from(large))).toBe(0);
    expect(budget.used).toBe(0);
  });

  it('writeMessageOf: a head and a tail as one message, the tail\'s pieces views of it', () => {
    for (const n of [10, CHAIN_PIECE_BYTES, 3 * CHAIN_PIECE_BYTES + 7]) {
      const written: Uint8Array[] = [];
      const socket = { cork: () => {}, uncork: () => {}, write: (b: Uint8Array) => written.push(b) } as unknown as Socket;
      const head = pattern(40);
      const tail = pattern(n);
      writeMessageOf(socket, head, tail);
      const got = feed(new MessageReader(new AssemblyBudget(), { hello: false }), Buffer.concat(written));
      expect(got.messages.length).toBe(1);
      expect(Buffer.compare(Buffer.from(got.messages[0]!), Buffer.concat([head, tail]))).toBe(0);
      if (n > CHAIN_PIECE_BYTES) expect(written.filter((b) => b.buffer === tail.buffer).length).toBe(Math.ceil(n / CHAIN_PIECE_BYTES));
    }
  });

  it('writeMessageParts (messageFramesOf): parts (empty ones too) as one message, each part\'s pieces views of it, every frame within CHAIN_FRAME_BYTES_MAX', () => {
    const cases: number[][] = [[5], [0, 7, 0, 3], [40, 0, 3 * CHAIN_PIECE_BYTES + 7], [CHAIN_PIECE_BYTES + 1], [12, 300, CHAIN_PIECE_BYTES - 100, 2 * CHAIN_PIECE_BYTES, 0, 9]];
    for (const sizes of cases) {
      const written: Uint8Array[] = [];
      const socket = { cork: () => {}, uncork: () => {}, write: (b: Uint8Array) => written.push(b) } as unknown as Socket;
      const parts = sizes.map((n, i) => pattern(n).map((b) => b ^ i));
      const queued = writeMessageParts(socket, parts);
      const bytes = Buffer.concat(written);
      expect(queued).toBe(bytes.length);
      // What a sender counts against a queue bound before writing: exactly what is queued.
      expect(messageFramesOf(parts).reduce((n, f) => n + f.length, 0)).toBe(queued);
      const got = feed(new MessageReader(new AssemblyBudget(), { hello: false }), bytes);
      expect(got.messages.length).toBe(1);
      expect(Buffer.compare(Buffer.from(got.messages[0]!), Buffer.concat(parts))).toBe(0);
      for (let at = 0; at < bytes.length; ) {
        const n = bytes.readUInt32LE(at);
        expect(n).toBeLessThanOrEqual(CHAIN_FRAME_BYTES_MAX);
        at += 4 + n;
      }
      const total = sizes.reduce((a, b) => a + b, 0);
      if (total > CHAIN_PIECE_BYTES) for (const p of parts) if (p.length > 0) expect(written.filter((b) => b.buffer === p.buffer).length, `${sizes}`).toBe(Math.ceil(p.length / CHAIN_PIECE_BYTES));
    }
    const socket = { cork: () => {}, uncork: () => {}, write: () => true } as unknown as Socket;
    expect(() => writeMessageParts(socket, [new Uint8Array(0)])).toThrow(FrameError);
    expect(() => writeMessageParts(socket, [new Uint8Array(CHAIN_MESSAGE_BYTES_MAX), new Uint8Array(1)])).toThrow(FrameError);
  });

  it('refuses frames and messages beyond their limits, and pieces out of order', () => {
    const bad = (bytes: Buffer, hello = false): void => {
      expect(() => new MessageReader(new AssemblyBudget(), { hello }).push(bytes)).toThrow(FrameError);
    };
    bad(u32(CHAIN_HELLO_BYTES_MAX + 1), true); // a hello too long
    bad(u32(CHAIN_FRAME_BYTES_MAX + 1)); // a frame too long
    bad(rawFrame([1, ...u32(CHAIN_MESSAGE_BYTES_MAX + 1), 1])); // a message too long
    bad(rawFrame([1, ...u32(CHAIN_PIECE_BYTES), 1])); // a small message in pieces
    bad(rawFrame([2, 1])); // a piece of no message
    bad(rawFrame([7, 1])); // an unknown kind
    bad(rawFrame([0])); // an empty message
    const first = messageFrames(pattern(CHAIN_PIECE_BYTES + 10))[0]!;
    bad(Buffer.concat([first, rawFrame([0, 1])])); // a whole message inside one in pieces
    bad(Buffer.concat([first, first])); // a message beginning inside another
    bad(Buffer.concat([first, rawFrame([2, ...new Uint8Array(11)])])); // beyond the announced size
    expect(() => messageParts(new Uint8Array(CHAIN_MESSAGE_BYTES_MAX + 1))).toThrow(FrameError);
  });

  it('bounds what all connections hold for messages in pieces (AssemblyBudget), and returns it on close', () => {
    const budget = new AssemblyBudget(3 * CHAIN_PIECE_BYTES);
    const msg = pattern(2 * CHAIN_PIECE_BYTES);
    const [first] = messageFrames(msg);
    const a = new MessageReader(budget, { hello: false });
    a.push(first!);
    expect(budget.used).toBe(msg.length);
    const b = new MessageReader(budget, { hello: false });
    expect(() => b.push(first!)).toThrow(/no room/);
    a.close();
    expect(budget.used).toBe(0);
    const c = new MessageReader(budget, { hello: false });
    expect(feed(c, Buffer.concat(messageFrames(msg))).messages.length).toBe(1);
    expect(budget.used).toBe(0);
  });

  describe('on a socket', () => {
    let server: Server | null = null;
    const sockets: Socket[] = [];
    afterEach(async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
      server = null;
    });

    /** A server that reads with readMessages; resolves with the client socket and when the server closed it. */
    async function serve(opts: { idleMs?: number; assemblyTimeoutMs?: number }, budget: AssemblyBudget): Promise<{ client: Socket; closed: Promise<number>; messages: Uint8Array[] }> {
      const messages: Uint8Array[] = [];
      let closedAt!: (t: number) => void;
      const closed = new Promise<number>((r) => (closedAt = r));
      server = createServer((s) => {
        sockets.push(s);
        s.on('close', () => closedAt(performance.now()));
        readMessages(s, budget, { hello: false, ...opts }, (m) => messages.push(m));
      });
      await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
      const port = (server.address() as { port: number }).port;
      const client = connect(port, '127.0.0.1');
      client.on('error', () => {});
      sockets.push(client);
      await new Promise((r) => client.once('connect', r));
      return { client, closed, messages };
    }

    it('closes a connection whose message in pieces is not whole in time, returning its reservation', async () => {
      const budget = new AssemblyBudget();
      const { client, closed, messages } = await serve({ assemblyTimeoutMs: 300 }, budget);
      const frames = messageFrames(pattern(2 * CHAIN_PIECE_BYTES));
      client.write(frames[0]!);
      const start = performance.now();
      const t = await closed;
      expect(t - start).toBeGreaterThanOrEqual(250);
      expect(messages.length).toBe(0);
      expect(budget.used).toBe(0);
    });

    it('closes an idle connection', async () => {
      const { client, closed, messages } = await serve({ idleMs: 300 }, new AssemblyBudget());
      client.write(messageFrames(pattern(10))[0]!);
      await closed;
      expect(messages.length).toBe(1);
    });

    it('closes a connection that breaks the framing', async () => {
      const { client, closed } = await serve({}, new AssemblyBudget());
      client.write(rawFrame([2, 1, 2, 3]));
      await closed;
    });

    it('writeMessageFrom reads the tail of a message only as fast as the connection takes it, and refuses one of another size', async () => {
      const MiB = 1024 * 1024;
      let accepted!: (s: Socket) => void;
      const peer = new Promise<Socket>((r) => (accepted = r));
      server = createServer((s) => {
        sockets.push(s);
        s.pause(); // a receiver that does not read yet
        accepted(s);
      });
      await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
      const client = connect((server.address() as { port: number }).port, '127.0.0.1');
      client.on('error', () => {});
      sockets.push(client);
      await new Promise((r) => client.once('connect', r));
      const receiver = await peer;
      const total = 48 * MiB;
      const chunk = pattern(64 * 1024);
      let pulled = 0;
      async function* source(): AsyncGenerator<Uint8Array> {
        for (; pulled < total; pulled += chunk.length) yield chunk;
      }
      const head = new Uint8Array([9, 8, 7]);
      const sent = writeMessageFrom(client, head, source(), total);
      // Stalled on the receiver: what was read of the source is what the socket buffers hold.
      let last = -1;
      while (pulled !== last) {
        last = pulled;
        await new Promise((r) => setTimeout(r, 300));
      }
      console.log(`writeMessageFrom to a receiver that does not read: ${(pulled / MiB).toFixed(1)} MiB of ${total / MiB} read from the source`);
      expect(pulled).toBeLessThan(24 * MiB);
      const messages: Uint8Array[] = [];
      readMessages(receiver, new AssemblyBudget(), { hello: false }, (m) => messages.push(m));
      receiver.resume();
      await sent;
      while (messages.length === 0) await new Promise((r) => setTimeout(r, 20));
      expect(messages[0]!.length).toBe(head.length + total);
      expect(Buffer.compare(Buffer.from(messages[0]!.subarray(0, 3 + chunk.length)), Buffer.concat([head, chunk]))).toBe(0);
      // A source shorter or longer than announced: refused (the caller closes the connection).
      await expect(writeMessageFrom(client, head, (async function* () { yield chunk; })(), 2 * MiB)).rejects.toThrow(/ended after 65536 of the 2097152 bytes/);
      await expect(writeMessageFrom(client, head, (async function* () { yield pattern(100); })(), 10)).rejects.toThrow(/more than the 10 bytes/);
    });
  });
});
