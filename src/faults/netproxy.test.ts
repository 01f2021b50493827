/**
 * The lab's delay proxy on loopback (no root needed): delay, order, bandwidth, resets, bounded
 * buffering, and the control port's checks; and the lab's refusals that come before it touches
 * anything.
 */
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { LAB_HOSTS_MAX, NetnsLab } from './netns.js';
import { NetProxy, parseRoute, parseShape, PROXY_BANDWIDTH_MIN, PROXY_BUFFER_BYTES_MAX, PROXY_DELAY_MS_MAX } from './netproxy.js';

const cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** An upstream that records what it receives, and echoes it back when `echo`. */
async function upstream(echo = false): Promise<{ server: Server; port: number; received: () => Buffer; sockets: Socket[] }> {
  const chunks: Buffer[] = [];
  const sockets: Socket[] = [];
  const server = createServer((s) => {
    sockets.push(s);
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => {
      chunks.push(d);
      if (echo) s.write(d);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanup.push(() => new Promise((r) => server.close(r)), () => sockets.forEach((s) => s.destroy()));
  return { server, port: (server.address() as { port: number }).port, received: () => Buffer.concat(chunks), sockets };
}

async function proxyTo(port: number): Promise<{ proxy: NetProxy; port: number }> {
  const probe = createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const listenPort = (probe.address() as { port: number }).port;
  await new Promise((r) => probe.close(r));
  const proxy = await NetProxy.start({ routes: [{ name: 'up', listenPort, targetHost: '127.0.0.1', targetPort: port }] });
  cleanup.push(() => proxy.close());
  return { proxy, port: listenPort };
}

async function dial(port: number): Promise<Socket> {
  const s = connect({ host: '127.0.0.1', port });
  s.on('error', () => undefined);
  await once(s, 'connect');
  cleanup.push(() => void s.destroy());
  return s;
}

async function until(what: string, f: () => boolean, ms = 10_000): Promise<void> {
  const start = Date.now();
  while (!f()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

it('delays each direction by the one-way delay and keeps the order under jitter', async () => {
  const up = await upstream(true);
  const { proxy, port } = await proxyTo(up.port);
  proxy.shape({ delayMs: 150, jitterMs: 50, bandwidthBytesPerS: 0 });
  const s = await dial(port);
  let back = '';
  s.on('data', (d: Buffer) => (back += d.toString()));
  const t0 = performance.now();
  for (let i = 0; i < 50; i++) s.write(`${i},`);
  const expected = Array.from({ length: 50 }, (_, i) => `${i},`).join('');
  await until('the echo', () => back === expected);
  // There and back: at least two one-way delays.
  expect(performance.now() - t0).toBeGreaterThanOrEqual(295);
  expect(up.received().toString()).toBe(expected);
});

it('limits bandwidth', async () => {
  const up = await upstream();
  const { proxy, port } = await proxyTo(up.port);
  proxy.shape({ delayMs: 0, jitterMs: 0, bandwidthBytesPerS: 64 * 1024 });
  const s = await dial(port);
  const t0 = performance.now();
  s.write(Buffer.alloc(32 * 1024, 1));
  await until('all bytes through', () => up.received().length === 32 * 1024);
  // 32 KiB at 64 KiB/s: half a second at least.
  expect(performance.now() - t0).toBeGreaterThanOrEqual(480);
});

it('resets both sides of a connection on demand', async () => {
  const up = await upstream();
  const { proxy, port } = await proxyTo(up.port);
  const s = await dial(port);
  s.write('x');
  await until('upstream connected', () => up.received().length === 1);
  let error = '';
  s.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? ''));
  expect(proxy.reset('up')).toBe(2);
  await until('the client sees the reset', () => s.destroyed);
  expect(error).toBe('ECONNRESET');
  await until('the upstream side is closed too', () => up.sockets[0]!.destroyed);
  expect(proxy.stats.get('up')!.resets).toBe(2);
});

it('holds at most PROXY_BUFFER_BYTES_MAX (and a little) per direction: a full buffer pauses the sender', async () => {
  const up = await upstream();
  const { proxy, port } = await proxyTo(up.port);
  proxy.shape({ delayMs: PROXY_DELAY_MS_MAX, jitterMs: 0, bandwidthBytesPerS: 0 });
  const s = await dial(port);
  const chunk = Buffer.alloc(1024 * 1024);
  // Write far more than the proxy may hold.
  for (let i = 0; i < 64; i++) s.write(chunk);
  await until('the proxy holds its fill', () => proxy.stats.get('up')!.heldMax >= PROXY_BUFFER_BYTES_MAX);
  await new Promise((r) => setTimeout(r, 1000));
  // Over the bound by at most one read (the check follows the read), not by what the client wrote.
  expect(proxy.stats.get('up')!.heldMax).toBeLessThanOrEqual(PROXY_BUFFER_BYTES_MAX + 1024 * 1024);
  expect(s.writableLength, 'the client is pushed back').toBeGreaterThan(0);
  expect(up.received().length).toBe(0);
});

it('checks shapes and routes from outside', () => {
  expect(parseShape({ delayMs: 5 })).toEqual({ delayMs: 5, jitterMs: 0, bandwidthBytesPerS: 0 });
  expect(() => parseShape({ delayMs: PROXY_DELAY_MS_MAX + 1 })).toThrow(/delayMs/);
  expect(() => parseShape({ jitterMs: -1 })).toThrow(/jitterMs/);
  expect(() => parseShape({ bandwidthBytesPerS: PROXY_BANDWIDTH_MIN - 1 })).toThrow(/at least/);
  expect(() => parseShape({ delayMs: '5' })).toThrow(/delayMs/);
  expect(() => parseShape(null)).toThrow(/object/);
  expect(parseRoute('m2=20012=m2.flotilla.test:2380')).toEqual({ name: 'm2', listenPort: 20012, targetHost: 'm2.flotilla.test', targetPort: 2380 });
  expect(() => parseRoute('m2=m2:2380')).toThrow(/NAME=LOCALPORT=HOST:PORT/);
});

it('the lab refuses a bad prefix and more than LAB_HOSTS_MAX hosts before creating anything', async () => {
  await expect(NetnsLab.create({ prefix: 'Bad Prefix', members: ['m1'] })).rejects.toThrow(/lab prefix/);
  await expect(NetnsLab.create({ prefix: 'x', members: Array.from({ length: LAB_HOSTS_MAX }, (_, i) => `m${i}`) })).rejects.toThrow(`at most ${LAB_HOSTS_MAX}`);
});
