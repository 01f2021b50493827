/**
 * Helpers for tests that watch real member processes fail and exit (test/member-exit.test.ts,
 * test/backend-enospc.test.ts): how a process ended, whether a port refuses, waiting for a
 * condition, a writer that remembers what was acknowledged, and the check that every
 * acknowledged write is there.
 */
import type { ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { expect } from 'vitest';
import { FlotillaClient } from '../../src/client/index.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves with how the process ended (listening from now on: call it while it runs). */
export function exitOf(p: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve({ code: p.exitCode, signal: p.signalCode });
  return new Promise((resolve) => p.once('exit', (code, signal) => resolve({ code, signal })));
}

/** True when a TCP connection to host:port is refused (nothing listens there). */
export function refused(hostPort: string): Promise<boolean> {
  const [host, port] = hostPort.replace(/^http:\/\//, '').split(':') as [string, string];
  return new Promise((resolve) => {
    const s = connect({ host, port: Number(port) });
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED'));
  });
}

export async function waitFor<T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** The index of the member the given ones agree is leader. */
export function leaderAmong(client: FlotillaClient, endpoints: readonly string[], indexes: readonly number[]): Promise<number> {
  return waitFor('a leader', async () => {
    const st = await Promise.all(indexes.map((i) => client.status(endpoints[i]!)));
    const at = st.findIndex((s) => s.leader !== 0n && s.leader === s.header.memberId);
    return at >= 0 && st.every((s) => s.leader === st[at]!.leader) ? indexes[at] : undefined;
  });
}

/** Writes unique keys under `prefix` (values of `valueBytes`, default a few bytes), remembering those acknowledged. */
export class Writer {
  readonly acked = new Map<string, string>();
  private n = 0;
  constructor(
    private readonly client: FlotillaClient,
    private readonly prefix: string,
    private readonly valueBytes = 0,
  ) {}
  async write(): Promise<boolean> {
    const k = `${this.prefix}${String(this.n).padStart(4, '0')}`;
    const v = `v${this.n++}`.padEnd(this.valueBytes, '.');
    try {
      await this.client.put(k, v);
      this.acked.set(k, v);
      return true;
    } catch {
      return false;
    }
  }
}

/** Every acknowledged write is there, read linearizably through `endpoint`. */
export async function expectAllPresent(endpoint: string, prefix: string, acked: ReadonlyMap<string, string>): Promise<void> {
  const c = new FlotillaClient({ endpoints: [endpoint] });
  try {
    const r = await c.get(prefix, { prefix: true });
    const got = new Map(r.kvs.map((kv) => [kv.keyString(), kv.valueString()]));
    const missing = [...acked].filter(([k, v]) => got.get(k) !== v).map(([k]) => k);
    expect(missing, `acknowledged writes missing on ${endpoint}`).toEqual([]);
  } finally {
    await c.close();
  }
}

export const fatalLines = (log: string) => log.split('\n').filter((l) => l.includes('fatal: '));

/** Clients made for one test, closed together in its afterEach. */
export class ClientSet {
  private readonly made: FlotillaClient[] = [];
  client(endpoints: string[]): FlotillaClient {
    const c = new FlotillaClient({ endpoints });
    this.made.push(c);
    return c;
  }
  async closeAll(): Promise<void> {
    await Promise.all(this.made.splice(0).map((c) => c.close()));
  }
}
