/**
 * The client port's HTTP/2 front (h2Front) as Node's HTTP/2 session sees it: a stream that
 * Node wraps in a JSStreamSocket, which allows one write or shutdown at a time and kills the
 * process with ERR_INTERNAL_ASSERTION when the session writes during one (it answers PING and
 * SETTINGS as it reads them). So nothing is handed to the session to read while its write is
 * under way — until Node has taken the write's completion — nor after it ended its side.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { h2Front } from './http.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const frame = (type: number, flags: number, stream: number, payload: Buffer): Buffer => {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
};
const PING = (n: number): Buffer => frame(0x6, 0, 0, Buffer.alloc(8, n));
const LIMITS = { headerTimeoutMs: 10_000, bodyTimeoutMs: 10_000, pingMinIntervalMs: 0, streamsMax: 100 };

let server: Server | null = null;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = null;
});

/** A loopback connection: the server side's socket and the client's, the client not reading. */
async function pair(o: { clientHalfOpen?: boolean } = {}): Promise<{ serverSide: Socket; client: Socket }> {
  const accepted = new Promise<Socket>((resolve) => {
    server = createServer((s) => resolve(s));
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
  const port = (server!.address() as { port: number }).port;
  // A half-open client keeps writing after the server's FIN.
  const client = connect({ port, host: '127.0.0.1', allowHalfOpen: o.clientHalfOpen ?? false });
  client.pause();
  const serverSide = await accepted;
  sockets.push(client, serverSide);
  return { serverSide, client };
}

/** What the session would write: DATA frames of 16 KiB on stream 1, `n` of them. */
const answer = (n: number): Buffer => Buffer.concat(Array.from({ length: n }, () => frame(0x0, 0, 1, Buffer.alloc(16_384, 7))));

describe('client port HTTP/2 front', () => {
  it('hands the session nothing to read while its write is under way, and what waited once Node has taken the completion', async () => {
    const { serverSide, client } = await pair();
    const d = h2Front(serverSide, PREFACE, LIMITS, undefined);
    const read: Buffer[] = [];
    d.on('data', (b: Buffer) => read.push(b));
    await vi.waitFor(() => expect(Buffer.concat(read)).toEqual(PREFACE));
    // A write the socket cannot take at once (the client does not read): under way until 'drain'.
    let done = false;
    d.write(answer(400), () => (done = true));
    expect(serverSide.writableNeedDrain).toBe(true);
    const before = serverSide.bytesRead;
    client.write(PING(1));
    await vi.waitFor(() => expect(serverSide.bytesRead).toBe(before + 17), { timeout: 10_000 });
    // Give the event loop a few turns: the ping is held, not read by the session.
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(Buffer.concat(read)).toEqual(PREFACE);
    expect(done).toBe(false);
    // The client reads: the write completes, then the session gets the ping.
    client.resume();
    await vi.waitFor(() => expect(done).toBe(true), { timeout: 10_000 });
    await vi.waitFor(() => expect(Buffer.concat(read)).toEqual(Buffer.concat([PREFACE, PING(1)])), { timeout: 10_000 });
  });

  it('the write completes at once when the socket takes it; the next frame is read after Node took that completion, not in the same turn', async () => {
    const { serverSide, client } = await pair();
    client.resume();
    const d = h2Front(serverSide, PREFACE, LIMITS, undefined);
    const read: Buffer[] = [];
    d.on('data', (b: Buffer) => read.push(b));
    await vi.waitFor(() => expect(read.length).toBe(1));
    const order: string[] = [];
    d.on('data', () => order.push('read'));
    // A small write, taken by the socket at once; a ping arrives right behind it.
    d.write(frame(0x4, 0x1, 0, Buffer.alloc(0)), () => {
      order.push('write done');
      // JSStreamSocket finishes the write in a setImmediate from here: the read comes after it.
      setImmediate(() => order.push('finishWrite'));
    });
    client.write(PING(2));
    await vi.waitFor(() => expect(order).toContain('read'), { timeout: 10_000 });
    expect(order.indexOf('read')).toBeGreaterThan(order.indexOf('finishWrite'));
  });

  it('after the session ends its side, what the client sends is dropped and the shutdown completes', async () => {
    const { serverSide, client } = await pair({ clientHalfOpen: true });
    client.resume();
    const d = h2Front(serverSide, PREFACE, LIMITS, undefined);
    const read: Buffer[] = [];
    d.on('data', (b: Buffer) => read.push(b));
    await vi.waitFor(() => expect(read.length).toBe(1));
    let finished = false;
    d.end(() => (finished = true));
    await vi.waitFor(() => expect(finished).toBe(true), { timeout: 10_000 });
    const before = serverSide.bytesRead;
    client.write(PING(3));
    await vi.waitFor(() => expect(serverSide.bytesRead).toBe(before + 17), { timeout: 10_000 });
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(read).toHaveLength(1);
  });
});
