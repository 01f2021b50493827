/**
 * Why a lock needs fencing, end to end: worker A takes the lock and is paused (SIGSTOP) past
 * its lease; the lease expires, worker B takes the lock and writes; A resumes and writes with
 * its old token: the fenced store refuses it. Real processes: the cluster, the store
 * (examples/fenced-store/store.js) and the two workers (worker.js).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FencingGuard, StaleTokenError } from '../src/client/index.js';
import { freePort, ROOT, startCluster, type Cluster } from './support/cluster.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class Proc {
  out = '';
  readonly p: ChildProcess;
  constructor(script: string, args: string[]) {
    this.p = spawn(process.execPath, [join(ROOT, 'examples/fenced-store', script), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.p.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
    this.p.stderr!.on('data', (d: Buffer) => (this.out += d.toString()));
  }
  async waitFor(re: RegExp, ms = 20_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + ms;
    for (;;) {
      const m = re.exec(this.out);
      if (m) return m;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${re}; output:\n${this.out}`);
      await sleep(50);
    }
  }
  send(line: string): void {
    this.p.stdin!.write(`${line}\n`);
  }
  kill(): void {
    this.p.kill('SIGKILL');
  }
}

describe('fencing tokens', () => {
  it('the guard keeps the highest token per resource', () => {
    const g = new FencingGuard();
    g.check('r', 5n);
    g.check('r', 5n);
    g.check('r', 9n);
    expect(() => g.check('r', 7n)).toThrow(StaleTokenError);
    g.check('other', 1n);
    expect(g.highestFor('r')).toBe(9n);
  });

  let cluster: Cluster;
  const procs: Proc[] = [];
  beforeAll(async () => {
    cluster = await startCluster('flotilla');
  }, 60_000);
  afterAll(async () => {
    procs.forEach((p) => p.kill());
    await cluster?.stop();
  });

  it('a holder paused past its lease is refused by the fenced store after another took the lock', async () => {
    const port = await freePort();
    const store = new Proc('store.js', ['--port', String(port)]);
    procs.push(store);
    await store.waitFor(/fenced store on/);
    const common = ['--endpoints', cluster.endpoints.join(','), '--store', `http://127.0.0.1:${port}`, '--name', 'job', '--ttl', '2'];
    const a = new Proc('worker.js', [...common, '--id', 'A']);
    procs.push(a);
    const tokenA = BigInt((await a.waitFor(/LOCKED (\d+)/))[1]!);
    a.send('write');
    await a.waitFor(/WROTE/);

    // B waits for the lock while A holds it.
    const b = new Proc('worker.js', [...common, '--id', 'B']);
    procs.push(b);
    await sleep(1000);
    expect(b.out).not.toMatch(/LOCKED/);

    // A stops (think: a long GC pause) past its 2 s lease: the leader revokes it, B gets the lock.
    a.p.kill('SIGSTOP');
    const tokenB = BigInt((await b.waitFor(/LOCKED (\d+)/, 15_000))[1]!);
    expect(tokenB).toBeGreaterThan(tokenA);
    b.send('write');
    await b.waitFor(/WROTE/);

    // A wakes up, still believing it holds the lock, and writes with its old token: refused.
    a.p.kill('SIGCONT');
    a.send('write');
    const refused = await a.waitFor(/REFUSED (.*)/);
    expect(refused[1]).toContain(`stale fencing token ${tokenA}`);
    const final = (await (await fetch(`http://127.0.0.1:${port}/data/job`)).json()) as { value: string; token: string };
    expect(final).toEqual({ value: 'B write 1', token: String(tokenB) });
    const log = (await (await fetch(`http://127.0.0.1:${port}/log`)).json()) as { value: string }[];
    expect(log.map((l) => l.value)).toEqual(['A write 1', 'B write 1']);
  }, 60_000);
});
