import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, closeSync, writeSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from './support/cluster.js';

/**
 * Crash tests through real processes: three examples/counter members on loopback, SIGKILLed
 * while a client writes, restarted from their data directories. Every write acknowledged to
 * the client must be present on every member afterwards, and the members must agree.
 */
const root = join(import.meta.dirname, '..');
const script = join(root, 'examples', 'counter', 'counter.js');
const built = existsSync(join(root, 'dist', 'index.js'));
const dir = mkdtempSync(join(tmpdir(), 'flotilla-crash-'));

interface Member {
  id: number;
  http: number;
  raft: number;
  data: string;
  logFile: string;
  proc: ChildProcess | null;
  /** Exits that were not our SIGKILL or SIGTERM. */
  unexpected: string[];
}

class Cluster {
  members: Member[] = [];
  constructor(readonly name: string) {}

  async init(): Promise<void> {
    for (let id = 1; id <= 3; id++) {
      this.members.push({ id, http: await freePort(), raft: await freePort(), data: join(dir, `${this.name}-${id}`), logFile: join(dir, `${this.name}-${id}.log`), proc: null, unexpected: [] });
    }
  }

  peers(): string {
    return this.members.map((m) => `${m.id}=127.0.0.1:${m.raft}`).join(',');
  }

  start(m: Member): ChildProcess {
    const p = spawn(process.execPath, [script, '--id', String(m.id), '--http', String(m.http), '--peers', this.peers(), '--data', m.data, '--cluster', this.name, '--tick-ms', '20', '--snapshot-entries', '200'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    p.stdout!.on('data', (b: Buffer) => appendFileSync(m.logFile, b));
    p.stderr!.on('data', (b: Buffer) => appendFileSync(m.logFile, b));
    p.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL' && signal !== 'SIGTERM' && !(code === 0 && signal === null && p.killed)) m.unexpected.push(`exit code ${code} signal ${signal}`);
    });
    m.proc = p;
    return p;
  }

  kill(m: Member): void {
    m.proc?.kill('SIGKILL');
    m.proc = null;
  }

  async stopAll(): Promise<void> {
    for (const m of this.members) {
      const p = m.proc;
      if (!p) continue;
      const done = new Promise((r) => p.once('exit', r));
      p.kill('SIGKILL');
      await done;
      m.proc = null;
    }
  }
}

async function http(port: number, method: string, path: string): Promise<{ status: number; body: Record<string, unknown> } | undefined> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}${path}`, { method, signal: AbortSignal.timeout(1500) });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  } catch {
    return undefined;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Writes until `stop()` is true, following leader hints; returns the acknowledged op ids. */
async function writer(c: Cluster, stop: (acked: number) => boolean, prefix: string): Promise<{ acked: string[]; attempts: number }> {
  const acked: string[] = [];
  let target = c.members[0]!;
  let k = 0;
  let attempts = 0;
  while (!stop(acked.length)) {
    const id = `${prefix}${k++}`;
    attempts++;
    const r = await http(target.http, 'POST', `/add?n=1&id=${id}`);
    if (r?.status === 200) {
      acked.push(id);
      continue;
    }
    const hint = r?.status === 421 ? Number(r.body.leader) : 0;
    target = c.members.find((m) => m.id === hint) ?? c.members[(c.members.indexOf(target) + 1) % 3]!;
    await sleep(20);
  }
  return { acked, attempts };
}

/** Every acknowledged write is in every given member's state. */
function expectNoneMissing(states: readonly { ops: string[] }[], acked: readonly string[]): void {
  for (const s of states) {
    const have = new Set(s.ops);
    expect(acked.filter((id) => !have.has(id)), 'acknowledged writes missing').toEqual([]);
  }
}

async function converged(c: Cluster, timeoutMs: number): Promise<{ ops: string[]; digest: string }[]> {
  const start = Date.now();
  for (;;) {
    const states = await Promise.all(c.members.map((m) => http(m.http, 'GET', '/state')));
    if (states.every((s) => s?.status === 200)) {
      const bodies = states.map((s) => s!.body as { ops: string[]; digest: string });
      if (bodies.every((b) => b.digest === bodies[0]!.digest)) return bodies;
    }
    if (Date.now() - start > timeoutMs) throw new Error(`members did not converge: ${JSON.stringify(states.map((s) => s?.body.digest))}`);
    await sleep(200);
  }
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!built)('counter example under SIGKILL (real processes)', () => {
  it('loses no acknowledged write while members, mostly the leader, are killed for 30 s', async () => {
    const c = new Cluster('kill');
    await c.init();
    try {
      for (const m of c.members) c.start(m);
      let stopped = false;
      let progress = 0;
      const w = writer(c, (n) => ((progress = n), stopped), 'k');
      const end = Date.now() + 30_000;
      let kills = 0;
      // At least 30 s, at least 7 kills and more than 50 acknowledged writes (conditions, not
      // counts in a time: a slow machine stretches the run rather than thinning it).
      while (Date.now() < end || kills < 7 || progress <= 50) {
        await sleep(2500 + Math.floor(Math.random() * 1500));
        const statuses = await Promise.all(c.members.map((m) => http(m.http, 'GET', '/status')));
        const leader = c.members.find((_, i) => statuses[i]?.body.role === 'leader');
        const victim = leader && Math.random() < 0.7 ? leader : c.members[Math.floor(Math.random() * 3)]!;
        c.kill(victim);
        kills++;
        await sleep(300 + Math.floor(Math.random() * 1200));
        c.start(victim);
      }
      stopped = true;
      const { acked, attempts } = await w;
      const states = await converged(c, 20_000);
      console.log(`kill test: ${kills} kills, ${acked.length}/${attempts} writes acknowledged, ${states[0]!.ops.length} applied`);
      expectNoneMissing(states, acked);
      for (const s of states) expect(new Set(s.ops).size, 'an op applied twice').toBe(s.ops.length);
      for (const m of c.members) expect(m.unexpected, `member ${m.id} died on its own`).toEqual([]);
    } finally {
      await c.stopAll();
    }
  }, 180_000);

  it('loses no acknowledged write when the whole cluster is killed at once', async () => {
    const c = new Cluster('all');
    await c.init();
    try {
      for (const m of c.members) c.start(m);
      let stopped = false;
      let progress = 0;
      const w = writer(c, (n) => ((progress = n), stopped), 'a');
      // Kill while writes are being acknowledged (a condition, not a time: start-up may be slow).
      while (progress < 15) await sleep(50);
      for (const m of c.members) c.kill(m);
      stopped = true;
      const { acked } = await w;
      await sleep(200);
      for (const m of c.members) c.start(m);
      const states = await converged(c, 20_000);
      expect(acked.length).toBeGreaterThan(10);
      expectNoneMissing(states, acked);
      // And the cluster serves writes again.
      const again = await writer(c, (n) => n >= 1, 'b');
      expect(again.acked.length).toBeGreaterThan(0);
    } finally {
      await c.stopAll();
    }
  }, 60_000);

  it('refuses to start on a flipped byte mid-WAL, naming the file and offset; starts after a torn tail', async () => {
    const c = new Cluster('wal');
    await c.init();
    try {
      for (const m of c.members) c.start(m);
      // Until 20 writes are acknowledged (a condition: no count in a time).
      const { acked } = await writer(c, (n) => n > 20, 'w');
      await converged(c, 30_000);
      await c.stopAll();
      const m = c.members[0]!;
      const walDir = join(m.data, 'wal');
      const seg = join(walDir, readdirSync(walDir).sort()[0]!);
      const bytes = readFileSync(seg);
      let end = bytes.length;
      while (end > 0 && bytes[end - 1] === 0) end--;
      // Torn tail: zero the last 20 bytes written. The member starts and catches up.
      const fd = openSync(seg, 'r+');
      writeSync(fd, new Uint8Array(20), 0, 20, end - 20);
      closeSync(fd);
      for (const x of c.members) c.start(x);
      const states = await converged(c, 30_000);
      expectNoneMissing(states.slice(0, 1), acked);
      await c.stopAll();
      // A flipped byte in the middle of the log: refuse to start, say where.
      const fd2 = openSync(seg, 'r+');
      const mid = Math.floor(end / 2);
      writeSync(fd2, Uint8Array.of(bytes[mid]! ^ 0x20), 0, 1, mid);
      closeSync(fd2);
      const p = c.start(m);
      const code = await new Promise<number | null>((r) => p.once('exit', (c2) => r(c2)));
      m.proc = null;
      m.unexpected = [];
      expect(code).toBe(2);
      const logText = readFileSync(m.logFile, 'utf8');
      expect(logText).toMatch(new RegExp(`WAL corrupt: .*${seg.split('/').pop()!.replace('.', '\\.')} at offset \\d+`));
    } finally {
      await c.stopAll();
    }
  }, 120_000);
});
