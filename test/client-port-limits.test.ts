/**
 * The client port is bounded before any trust: through a real member process with short
 * limits, hostile and lazy connections are closed, memory stays bounded, and the member keeps
 * serving. Raw sockets stand in for the attacker (node:net, HTTP/2 frames by hand).
 */
import hpack from 'hpack.js';
import { readFileSync } from 'node:fs';
import { connect as h2connect } from 'node:http2';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GATEWAY_KEEPALIVE_TIMEOUT_MS } from '../src/api/http.js';
import { H2_SESSION_MEMORY_MB } from '../src/server/server.js';
import { H2_ERROR, H2_FRAME_PAYLOAD_MAX } from '../src/api/h2-authority.js';
import { startCluster, type Cluster } from './support/cluster.js';
import { rawClient } from './support/grpc.js';

const IDLE_MS = 1000;
const HEADER_MS = 1500;
const BODY_MS = 2500;
const STREAMS_MAX = 4;
const CONNECTIONS_MAX = 16;
const KEEPALIVE_INTERVAL_MS = 2000;
const KEEPALIVE_TIMEOUT_MS = 1000;

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const T = { DATA: 0x0, HEADERS: 0x1, RST_STREAM: 0x3, SETTINGS: 0x4, PING: 0x6, GOAWAY: 0x7 } as const;

function frame(type: number, flags: number, stream: number, payload: Buffer, declared = payload.length): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(declared, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly stream: number;
  readonly payload: Buffer;
}

/** A raw TCP connection that records what it receives, its close time, and (optionally) parses HTTP/2 frames. */
class Raw {
  readonly socket: Socket;
  readonly opened = Date.now();
  received = Buffer.alloc(0);
  readonly frames: Frame[] = [];
  closedAt: number | null = null;
  readonly closed: Promise<number>;
  private parsed = 0;
  private waiters: (() => void)[] = [];

  constructor(
    port: number,
    private readonly h2 = false,
    /** HTTP/2: acknowledge the server's SETTINGS and PINGs, as a live client does. */
    private readonly polite = true,
  ) {
    this.socket = connect(port, '127.0.0.1');
    this.socket.on('error', () => undefined);
    this.socket.on('data', (d: Buffer) => this.onData(d));
    this.closed = new Promise((resolve) => this.socket.on('close', () => resolve((this.closedAt = Date.now()) - this.opened)));
  }

  private onData(d: Buffer): void {
    this.received = Buffer.concat([this.received, d]);
    while (this.h2 && this.received.length - this.parsed >= 9) {
      const len = this.received.readUIntBE(this.parsed, 3);
      if (this.received.length - this.parsed < 9 + len) break;
      const f = {
        type: this.received[this.parsed + 3]!,
        flags: this.received[this.parsed + 4]!,
        stream: this.received.readUInt32BE(this.parsed + 5) & 0x7fffffff,
        payload: this.received.subarray(this.parsed + 9, this.parsed + 9 + len),
      };
      this.parsed += 9 + len;
      this.frames.push(f);
      if (this.polite && f.type === T.SETTINGS && !(f.flags & 1)) this.write(frame(T.SETTINGS, 1, 0, Buffer.alloc(0)));
      if (this.polite && f.type === T.PING && !(f.flags & 1)) this.write(frame(T.PING, 1, 0, f.payload));
    }
    for (const w of this.waiters.splice(0)) w();
  }

  write(b: Buffer | string): boolean {
    return !this.socket.destroyed && this.socket.write(b);
  }

  /** Resolves when `cond` holds (checked on every arrival), or rejects after `ms` or on close. */
  async until(cond: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (this.closedAt !== null) throw new Error(`closed before ${what}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await Promise.race([new Promise<void>((r) => this.waiters.push(r)), this.closed, new Promise((r) => setTimeout(r, 50))]);
    }
  }

  /** The socket's close, or an error after `ms` (the server kept it open). */
  closedWithin(ms: number, what: string): Promise<number> {
    return Promise.race([
      this.closed,
      new Promise<number>((_, reject) => setTimeout(() => reject(new Error(`${what}: still open after ${ms} ms`)), ms).unref()),
    ]);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** An HTTP/2 client connection by hand: preface and an empty SETTINGS. */
function rawH2(port: number, polite = true): Raw {
  const r = new Raw(port, true, polite);
  r.write(Buffer.concat([PREFACE, frame(T.SETTINGS, 0, 0, Buffer.alloc(0))]));
  return r;
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

describe('the client port bounded before trust', () => {
  let cluster: Cluster;
  let port: number;
  let endpoint: string;

  beforeAll(async () => {
    cluster = await startCluster('flotilla', {
      size: 1,
      extraArgs: [
        '--client-idle-timeout', `${IDLE_MS}ms`,
        '--client-header-timeout', `${HEADER_MS}ms`,
        '--client-body-timeout', `${BODY_MS}ms`,
        '--max-concurrent-streams', String(STREAMS_MAX),
        '--max-client-connections', String(CONNECTIONS_MAX),
        '--grpc-keepalive-interval', `${KEEPALIVE_INTERVAL_MS}ms`,
        '--grpc-keepalive-timeout', `${KEEPALIVE_TIMEOUT_MS}ms`,
      ],
    });
    endpoint = cluster.endpoints[0]!;
    port = Number(endpoint.split(':')[1]);
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  const stillServes = async () => {
    const c = rawClient(endpoint);
    try {
      const key = Buffer.from(`alive-${Math.random()}`);
      await c.call('etcdserverpb.KV', 'Put', { key, value: Buffer.from('yes') });
      const r = await c.call('etcdserverpb.KV', 'Range', { key });
      expect((r.kvs as { value: Buffer }[]).map((kv) => String(kv.value))).toEqual(['yes']);
    } finally {
      c.close();
    }
    expect(cluster.members[0]!.proc?.exitCode ?? null).toBeNull();
  };

  it('advertises SETTINGS_MAX_FRAME_SIZE = H2_FRAME_PAYLOAD_MAX and --max-concurrent-streams', async () => {
    const s = h2connect(`http://${endpoint}`);
    try {
      const settings = await new Promise<import('node:http2').Settings>((resolve, reject) => {
        s.once('remoteSettings', resolve);
        s.once('error', reject);
      });
      expect(settings.maxFrameSize).toBe(H2_FRAME_PAYLOAD_MAX);
      expect(settings.maxConcurrentStreams).toBe(STREAMS_MAX);
    } finally {
      s.destroy();
    }
  });

  it('frames claiming 16 MiB: each connection closed at the frame header, RSS stays bounded, the member serves', async () => {
    const pid = cluster.members[0]!.proc!.pid!;
    const before = rssBytes(pid);
    const claimed = 2 ** 24 - 1;
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const conns = Array.from({ length: 10 }, () => rawH2(port, false));
    // Each sends a DATA frame header claiming 16 MiB and then keeps sending its payload
    // until the server closes the connection (or all of it is sent).
    await Promise.all(
      conns.map(async (c) => {
        c.write(frame(T.DATA, 0, 1, Buffer.from('abc'), claimed));
        for (let sent = 3; sent < claimed && c.closedAt === null; sent += chunk.length) {
          if (!c.write(chunk)) await Promise.race([new Promise((r) => c.socket.once('drain', r)), c.closed]);
        }
        await c.closedWithin(10_000, 'a connection sending a 16 MiB frame');
      }),
    );
    for (const c of conns) {
      // Closed long before its frame could have been read whole.
      expect(c.socket.bytesWritten).toBeLessThan(claimed);
    }
    const grown = rssBytes(pid) - before;
    expect(grown, `RSS grew by ${(grown / 1e6).toFixed(1)} MB`).toBeLessThan(40 * 1024 * 1024);
    await stillServes();
  });

  it('header-only HTTP/2 connections (preface + SETTINGS) get GOAWAY and are closed after --client-idle-timeout', async () => {
    const conns = Array.from({ length: 10 }, () => rawH2(port));
    const lifetimes = await Promise.all(conns.map((c) => c.closedWithin(IDLE_MS + 8000, 'a header-only HTTP/2 connection')));
    for (const [i, ms] of lifetimes.entries()) {
      expect(ms).toBeGreaterThanOrEqual(IDLE_MS - 50);
      expect(conns[i]!.frames.some((f) => f.type === T.GOAWAY && f.payload.readUInt32BE(4) === 0)).toBe(true);
    }
    await stillServes();
  });

  it('a connection that sends nothing is closed after --client-header-timeout', async () => {
    const c = new Raw(port);
    const ms = await c.closedWithin(HEADER_MS + 5000, 'a silent connection');
    expect(ms).toBeGreaterThanOrEqual(HEADER_MS - 50);
  });

  it('an HTTP/1 slowloris (a header byte at a time) is closed after --client-header-timeout', async () => {
    const c = new Raw(port);
    c.write('GET /version HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    const drip = setInterval(() => c.write('a'), 200);
    try {
      const ms = await c.closedWithin(HEADER_MS + 5000, 'a slowloris');
      expect(ms).toBeGreaterThanOrEqual(HEADER_MS - 50);
      expect(c.received.toString()).not.toMatch(/200 OK/);
    } finally {
      clearInterval(drip);
    }
  });

  it('an HTTP/1 request whose body trickles is closed after --client-body-timeout', async () => {
    const c = new Raw(port);
    c.write('POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"key":"');
    const drip = setInterval(() => c.write('YQ'), 200);
    try {
      const ms = await c.closedWithin(BODY_MS + 5000, 'a slow body');
      expect(ms).toBeGreaterThanOrEqual(BODY_MS - 50);
      expect(c.received.toString()).toMatch(/^HTTP\/1\.1 408/);
    } finally {
      clearInterval(drip);
    }
  });

  it('an idle HTTP/1 keep-alive connection is closed after GATEWAY_KEEPALIVE_TIMEOUT_MS', async () => {
    const c = new Raw(port);
    c.write('GET /version HTTP/1.1\r\nHost: x\r\n\r\n');
    await c.until(() => /etcdserver/.test(c.received.toString()), 5000, 'the /version answer');
    const answered = Date.now();
    await c.closedWithin(GATEWAY_KEEPALIVE_TIMEOUT_MS + 5000, 'an idle keep-alive connection');
    expect(c.closedAt! - answered).toBeGreaterThanOrEqual(GATEWAY_KEEPALIVE_TIMEOUT_MS - 100);
  });

  it('--max-client-connections: the connection over the cap is closed at once, earlier ones still work', async () => {
    const version = async (c: Raw): Promise<void> => {
      const n = c.received.length;
      c.write('GET /version HTTP/1.1\r\nHost: x\r\n\r\n');
      await c.until(() => /etcdserver/.test(c.received.subarray(n).toString()), 3000, 'a /version answer');
    };
    // Connections of earlier tests (and of the fixture's health checks) may still be closing:
    // try until the cap's worth of connections are all served.
    const deadline = Date.now() + 20_000;
    for (;;) {
      const held: Raw[] = [];
      try {
        for (let i = 0; i < CONNECTIONS_MAX; i++) {
          const c = new Raw(port);
          held.push(c);
          await version(c);
        }
      } catch (e) {
        for (const c of held) c.destroy();
        if (Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      try {
        const over = new Raw(port);
        over.write('GET /version HTTP/1.1\r\nHost: x\r\n\r\n');
        await over.closedWithin(2000, 'the connection over the cap');
        expect(over.received.length, 'nothing is answered over the cap').toBe(0);
        await version(held[0]!);
        await version(held[CONNECTIONS_MAX - 1]!);
      } finally {
        for (const c of held) c.destroy();
      }
      break;
    }
    await new Promise((r) => setTimeout(r, 100)); // let the member see the closes before the next test
  });

  it('--max-concurrent-streams: streams over it are refused by HTTP/2, the ones under it are served', async () => {
    const c = rawH2(port);
    await c.until(() => c.frames.some((f) => f.type === T.SETTINGS && f.flags & 1), 3000, 'our SETTINGS acknowledged');
    const comp = hpack.compressor.create({ table: { maxSize: 4096 } });
    // A Watch stream, left open (no END_STREAM): it holds its slot.
    const watchHeaders = (path = '/etcdserverpb.Watch/Watch'): Buffer => {
      comp.write([
        { name: ':method', value: 'POST' },
        { name: ':scheme', value: 'http' },
        { name: ':path', value: path },
        { name: ':authority', value: endpoint },
        { name: 'content-type', value: 'application/grpc' },
        { name: 'te', value: 'trailers' },
      ]);
      return comp.read()!;
    };
    const ids = Array.from({ length: STREAMS_MAX + 2 }, (_, i) => 2 * i + 1);
    for (const id of ids) c.write(frame(T.HEADERS, 0x4, id, watchHeaders()));
    const extra = ids.slice(STREAMS_MAX);
    await c.until(() => extra.every((id) => c.frames.some((f) => f.type === T.RST_STREAM && f.stream === id)), 5000, 'the extra streams reset');
    for (const id of extra) expect(c.frames.find((f) => f.type === T.RST_STREAM && f.stream === id)!.payload.readUInt32BE(0)).toBe(H2_ERROR.REFUSED_STREAM);
    for (const id of ids.slice(0, STREAMS_MAX)) {
      expect(c.frames.some((f) => f.type === T.RST_STREAM && f.stream === id), `stream ${id} is not reset`).toBe(false);
    }
    // The connection lives on: a DATA frame the client sent on a refused stream is dropped,
    // and once one stream ends, a new one is taken and answered (a Status call).
    c.write(frame(T.DATA, 0, extra[0]!, Buffer.from([0, 0, 0, 0, 0])));
    const code = Buffer.alloc(4);
    code.writeUInt32BE(0x8); // CANCEL
    c.write(frame(T.RST_STREAM, 0, ids[0]!, code));
    const next = ids[ids.length - 1]! + 2;
    c.write(frame(T.HEADERS, 0x4, next, watchHeaders('/etcdserverpb.Maintenance/Status')));
    c.write(frame(T.DATA, 0x1, next, Buffer.alloc(5)));
    await c.until(() => c.frames.some((f) => f.type === T.DATA && f.stream === next), 5000, 'an answer on a stream opened after one ended');
    expect(c.frames.some((f) => f.type === T.RST_STREAM && f.stream === next)).toBe(false);
    expect(c.closedAt).toBeNull();
    c.destroy();
    await stillServes();
  });

  it('per-connection memory (H2_SESSION_MEMORY_MB): while a connection holds more unread answers, its new streams are refused', async () => {
    // Values worth more than the session memory limit, read on one stream that never opens its
    // flow-control window: the answer waits in the member, counted against the connection.
    const c0 = rawClient(endpoint);
    const valueBytes = 1024 * 1024;
    const n = H2_SESSION_MEMORY_MB + 2;
    try {
      for (let i = 0; i < n; i++) await c0.call('etcdserverpb.KV', 'Put', { key: Buffer.from(`mem/${i}`), value: Buffer.alloc(valueBytes, 0x61) });
    } finally {
      c0.close();
    }
    const c = rawH2(port);
    await c.until(() => c.frames.some((f) => f.type === T.SETTINGS && f.flags & 1), 3000, 'our SETTINGS acknowledged');
    const comp = hpack.compressor.create({ table: { maxSize: 4096 } });
    const call = (id: number, path: string, msg: Buffer): void => {
      comp.write([
        { name: ':method', value: 'POST' },
        { name: ':scheme', value: 'http' },
        { name: ':path', value: path },
        { name: ':authority', value: endpoint },
        { name: 'content-type', value: 'application/grpc' },
        { name: 'te', value: 'trailers' },
      ]);
      const prefix = Buffer.alloc(5);
      prefix.writeUInt32BE(msg.length, 1);
      c.write(Buffer.concat([frame(T.HEADERS, 0x4, id, comp.read()!), frame(T.DATA, 0x1, id, Buffer.concat([prefix, msg]))]));
    };
    // RangeRequest{key: "mem/", range_end: "mem0"}
    call(1, '/etcdserverpb.KV/Range', Buffer.concat([Buffer.from([0x0a, 4]), Buffer.from('mem/'), Buffer.from([0x12, 4]), Buffer.from('mem0')]));
    await c.until(() => c.frames.some((f) => f.type === T.HEADERS && f.stream === 1), 5000, 'the range answer starting');
    // The member needs a moment to hand the whole answer to its HTTP/2 session: ask until refused.
    let id = 3;
    const refusedOrAnswered = (sid: number) => c.frames.some((f) => f.stream === sid && (f.type === T.RST_STREAM || f.type === T.DATA));
    for (;; id += 2) {
      call(id, '/etcdserverpb.Maintenance/Status', Buffer.alloc(0));
      await c.until(() => refusedOrAnswered(id), 5000, `stream ${id} answered or refused`);
      const rst = c.frames.find((f) => f.stream === id && f.type === T.RST_STREAM);
      if (rst) {
        expect(rst.payload.readUInt32BE(0)).toBe(H2_ERROR.ENHANCE_YOUR_CALM);
        break;
      }
      expect(id, 'a new stream refused while the answer waits').toBeLessThan(41);
      await new Promise((r) => setTimeout(r, 100));
    }
    // Other connections are not affected.
    c.destroy();
    await stillServes();
  });

  it('a client pinging more often than --grpc-keepalive-min-time gets GOAWAY ENHANCE_YOUR_CALM "too_many_pings" and is closed', async () => {
    const c = rawH2(port);
    await c.until(() => c.frames.some((f) => f.type === T.SETTINGS && f.flags & 1), 3000, 'our SETTINGS acknowledged');
    const flood = setInterval(() => c.write(frame(T.PING, 0, 0, Buffer.alloc(8))), 20);
    try {
      await c.closedWithin(5000, 'a ping flood');
    } finally {
      clearInterval(flood);
    }
    const goaway = c.frames.find((f) => f.type === T.GOAWAY);
    expect(goaway, 'a GOAWAY before the close').toBeDefined();
    expect(goaway!.payload.readUInt32BE(4)).toBe(H2_ERROR.ENHANCE_YOUR_CALM);
    expect(goaway!.payload.subarray(8).toString()).toBe('too_many_pings');
    await stillServes();
  });

  it('a connection that does not answer the server\'s keepalive ping is closed after --grpc-keepalive-timeout', async () => {
    // Not polite: it never acknowledges a PING. A stream held open keeps the idle deadline away.
    const c = rawH2(port, false);
    c.write(frame(T.SETTINGS, 1, 0, Buffer.alloc(0)));
    const comp = hpack.compressor.create({ table: { maxSize: 4096 } });
    comp.write([
      { name: ':method', value: 'POST' },
      { name: ':scheme', value: 'http' },
      { name: ':path', value: '/etcdserverpb.Watch/Watch' },
      { name: ':authority', value: endpoint },
      { name: 'content-type', value: 'application/grpc' },
      { name: 'te', value: 'trailers' },
    ]);
    c.write(frame(T.HEADERS, 0x4, 1, comp.read()!));
    const ms = await c.closedWithin(KEEPALIVE_INTERVAL_MS + KEEPALIVE_TIMEOUT_MS + 5000, 'a connection ignoring pings');
    expect(c.frames.some((f) => f.type === T.PING && !(f.flags & 1)), 'the server pinged').toBe(true);
    expect(ms).toBeGreaterThanOrEqual(KEEPALIVE_INTERVAL_MS + KEEPALIVE_TIMEOUT_MS - 100);
    await stillServes();
  });
});
