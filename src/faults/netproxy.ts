/**
 * A small userspace TCP proxy for the network lab (the kernel's netem qdisc is not available
 * here): each route listens on a local port and forwards to a target host:port, delaying each
 * chunk by a one-way delay plus jitter, limiting bandwidth, and resetting connections on
 * demand. Order is kept (it is TCP); buffering is bounded (a full buffer pauses the reading
 * side, so TCP's flow control reaches the sender).
 *
 * In the lab one proxy runs in each member's namespace and an nftables rule there redirects the
 * member's connections to its peers' port into it (src/faults/netns.ts). The driver shapes links
 * over a small HTTP control port: `POST /shape {to?, delayMs, jitterMs, bandwidthBytesPerS}`,
 * `POST /reset {to?}` (`to` names a route; all routes without it), `GET /stats`.
 *
 * Run as a program: `node netproxy.js --control HOST:PORT --route NAME=LOCALPORT=HOST:PORT ...
 * [--uid N]` (after listening it switches to uid/gid N, so the lab's redirect rule skips its own
 * connections).
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { pathToFileURL } from 'node:url';

/** Bytes held per connection and direction before the reading side is paused. */
export const PROXY_BUFFER_BYTES_MAX = 4 << 20;
/** The largest one-way delay or jitter accepted (ms). */
export const PROXY_DELAY_MS_MAX = 10_000;
/** The smallest bandwidth limit accepted (bytes/s; 0 means unlimited). */
export const PROXY_BANDWIDTH_MIN = 1024;
/** A control request body larger than this is refused. */
const CONTROL_BODY_BYTES_MAX = 4096;

export interface LinkShape {
  readonly delayMs: number;
  readonly jitterMs: number;
  /** 0: unlimited. */
  readonly bandwidthBytesPerS: number;
}

export const NO_SHAPE: LinkShape = { delayMs: 0, jitterMs: 0, bandwidthBytesPerS: 0 };

export interface ProxyRoute {
  readonly name: string;
  readonly listenPort: number;
  readonly targetHost: string;
  readonly targetPort: number;
}

export interface ProxyStats {
  connections: number;
  resets: number;
  bytes: number;
  /** The most bytes held at once for one connection and direction. */
  heldMax: number;
}

/** Checks a shape from outside (the control port); throws with what is wrong. */
export function parseShape(o: unknown): LinkShape {
  if (typeof o !== 'object' || o === null) throw new Error('the shape must be a JSON object');
  const r = o as Record<string, unknown>;
  const num = (k: string, max: number, min = 0): number => {
    const v = r[k] ?? 0;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) throw new Error(`${k} must be a number in [${min}, ${max}]`);
    return v;
  };
  const bw = num('bandwidthBytesPerS', Number.MAX_SAFE_INTEGER);
  if (bw !== 0 && bw < PROXY_BANDWIDTH_MIN) throw new Error(`bandwidthBytesPerS must be 0 (unlimited) or at least ${PROXY_BANDWIDTH_MIN}`);
  return { delayMs: num('delayMs', PROXY_DELAY_MS_MAX), jitterMs: num('jitterMs', PROXY_DELAY_MS_MAX), bandwidthBytesPerS: bw };
}

/**
 * Forwards `src` to `dst` under the shape `shape()` reads at each chunk: a chunk leaves once
 * its bytes have passed the bandwidth limit and then the delay (+ a uniform jitter), never
 * before the chunk ahead of it.
 */
function shapedPipe(src: Socket, dst: Socket, shape: () => LinkShape, stats: ProxyStats): void {
  const queue: { at: number; chunk: Buffer }[] = [];
  let queued = 0;
  let lastTx = 0;
  let lastAt = 0;
  let timer: NodeJS.Timeout | null = null;
  let ended = false;
  const pump = (): void => {
    timer = null;
    const now = performance.now();
    while (queue.length > 0 && queue[0]!.at <= now) {
      const { chunk } = queue.shift()!;
      queued -= chunk.length;
      stats.bytes += chunk.length;
      if (!dst.destroyed) dst.write(chunk);
    }
    if (queued <= PROXY_BUFFER_BYTES_MAX / 2 && src.isPaused()) src.resume();
    if (queue.length > 0) timer = setTimeout(pump, Math.max(0, queue[0]!.at - now));
    else if (ended) dst.end();
  };
  src.on('data', (chunk: Buffer) => {
    const s = shape();
    const now = performance.now();
    const tx = s.bandwidthBytesPerS > 0 ? Math.max(now, lastTx) + (chunk.length * 1000) / s.bandwidthBytesPerS : now;
    lastTx = tx;
    const at = Math.max(lastAt, tx + s.delayMs + (s.jitterMs > 0 ? Math.random() * s.jitterMs : 0));
    lastAt = at;
    if (queue.length === 0 && at <= now) {
      stats.bytes += chunk.length;
      dst.write(chunk);
      return;
    }
    queue.push({ at, chunk });
    queued += chunk.length;
    stats.heldMax = Math.max(stats.heldMax, queued);
    if (queued > PROXY_BUFFER_BYTES_MAX) src.pause();
    if (timer === null) timer = setTimeout(pump, Math.max(0, queue[0]!.at - now));
  });
  src.on('end', () => {
    ended = true;
    if (queue.length === 0) dst.end();
  });
  src.on('close', () => {
    if (timer !== null && dst.destroyed) clearTimeout(timer);
  });
}

export class NetProxy {
  private readonly shapes = new Map<string, LinkShape>();
  private readonly open = new Map<string, Set<Socket>>();
  readonly stats = new Map<string, ProxyStats>();
  private readonly servers: Server[] = [];
  private control: HttpServer | null = null;

  private constructor(readonly routes: readonly ProxyRoute[]) {
    for (const r of routes) {
      this.shapes.set(r.name, NO_SHAPE);
      this.open.set(r.name, new Set());
      this.stats.set(r.name, { connections: 0, resets: 0, bytes: 0, heldMax: 0 });
    }
  }

  static async start(o: { routes: readonly ProxyRoute[]; listenHost?: string; control?: { host: string; port: number } }): Promise<NetProxy> {
    const p = new NetProxy(o.routes);
    for (const r of o.routes) {
      const server = createServer((s) => p.accept(r, s));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(r.listenPort, o.listenHost ?? '127.0.0.1', () => resolve());
      });
      p.servers.push(server);
    }
    if (o.control) {
      const c = createHttpServer((req, res) => p.handle(req, res));
      await new Promise<void>((resolve, reject) => {
        c.once('error', reject);
        c.listen(o.control!.port, o.control!.host, () => resolve());
      });
      p.control = c;
    }
    return p;
  }

  /** Shapes the route `to` (every route when undefined). */
  shape(shape: LinkShape, to?: string): void {
    for (const r of this.routes) if (to === undefined || r.name === to) this.shapes.set(r.name, shape);
  }

  /** Resets (TCP RST) every open connection of route `to` (every route when undefined), both sides. */
  reset(to?: string): number {
    let n = 0;
    for (const r of this.routes) {
      if (to !== undefined && r.name !== to) continue;
      const open = [...this.open.get(r.name)!];
      for (const s of open) s.resetAndDestroy();
      this.stats.get(r.name)!.resets += open.length;
      n += open.length;
    }
    return n;
  }

  private accept(r: ProxyRoute, down: Socket): void {
    const stats = this.stats.get(r.name)!;
    stats.connections++;
    const up = connect({ host: r.targetHost, port: r.targetPort });
    const open = this.open.get(r.name)!;
    open.add(down);
    open.add(up);
    down.setNoDelay(true);
    up.setNoDelay(true);
    const shape = () => this.shapes.get(r.name)!;
    shapedPipe(down, up, shape, stats);
    shapedPipe(up, down, shape, stats);
    const close = (s: Socket, other: Socket) => () => {
      open.delete(s);
      // A reset on one side is passed on as a reset.
      if (!other.destroyed) other.destroy();
    };
    down.on('close', close(down, up));
    up.on('close', close(up, down));
    down.on('error', () => undefined);
    up.on('error', () => undefined);
  }

  private handle(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): void {
    const reply = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && path === '/stats') return reply(200, Object.fromEntries(this.stats));
    if (req.method !== 'POST' || (path !== '/shape' && path !== '/reset')) return reply(404, { error: 'POST /shape, POST /reset or GET /stats' });
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString();
      if (body.length > CONTROL_BODY_BYTES_MAX) req.destroy();
    });
    req.on('end', () => {
      try {
        const o = JSON.parse(body || '{}') as { to?: unknown };
        if (o.to !== undefined && !this.routes.some((r) => r.name === o.to)) throw new Error(`no route named ${JSON.stringify(o.to)}`);
        const to = o.to as string | undefined;
        if (path === '/shape') {
          this.shape(parseShape(o), to);
          reply(200, { ok: true });
        } else reply(200, { reset: this.reset(to) });
      } catch (e) {
        reply(400, { error: (e as Error).message });
      }
    });
  }

  async close(): Promise<void> {
    this.reset();
    await Promise.all([...this.servers, ...(this.control ? [this.control] : [])].map((s) => new Promise((r) => s.close(r))));
  }
}

/** `--route NAME=LOCALPORT=HOST:PORT` */
export function parseRoute(s: string): ProxyRoute {
  const m = /^([A-Za-z0-9_.-]+)=(\d+)=([A-Za-z0-9_.-]+):(\d+)$/.exec(s);
  if (!m) throw new Error(`--route ${s}: expected NAME=LOCALPORT=HOST:PORT`);
  return { name: m[1]!, listenPort: Number(m[2]), targetHost: m[3]!, targetPort: Number(m[4]) };
}

async function main(argv: string[]): Promise<void> {
  const routes: ProxyRoute[] = [];
  let control: { host: string; port: number } | undefined;
  let uid: number | undefined;
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, v] = [argv[i], argv[i + 1] ?? ''];
    if (flag === '--route') routes.push(parseRoute(v));
    else if (flag === '--control') {
      const m = /^(.+):(\d+)$/.exec(v);
      if (!m) throw new Error(`--control ${v}: expected HOST:PORT`);
      control = { host: m[1]!, port: Number(m[2]) };
    } else if (flag === '--uid') uid = Number(v);
    else throw new Error(`unknown flag ${flag}`);
  }
  await NetProxy.start({ routes, ...(control ? { control } : {}) });
  if (uid !== undefined) {
    process.setgid!(uid);
    process.setuid!(uid);
  }
  console.log(`proxy ready: ${routes.map((r) => `${r.name} :${r.listenPort} -> ${r.targetHost}:${r.targetPort}`).join(', ')}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((e: Error) => {
    console.error(`netproxy: ${e.message}`);
    process.exit(2);
  });
}
