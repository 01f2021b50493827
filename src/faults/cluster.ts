/**
 * Real member processes for the fault harness: `flotilla serve --unsafe-fault-injection` on
 * loopback with random free ports and a temp data dir, and the faults applied to them —
 * SIGKILL and restart with data, SIGSTOP/SIGCONT, per-link drops and slow fsync through each
 * member's `POST /debug/faults`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePorts, killAndWait } from '../lib/proc.js';

export const BIN = fileURLToPath(new URL('../../bin/flotilla.js', import.meta.url));
/** How long to wait for a member's /health after (re)starting it. */
export const MEMBER_READY_TIMEOUT_MS = 30_000;
/** Starts of a new cluster made at most, each on new ports, when a member finds its port taken. */
export const FAULT_CLUSTER_START_ATTEMPTS = 3;

export interface Member {
  readonly name: string;
  readonly client: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  /** Where it listens, when not on its client address and peer URL (a member in a lab namespace listens on all its addresses). */
  readonly listenClientUrl?: string;
  readonly listenPeerUrl?: string;
  proc: ChildProcess | null;
  paused: boolean;
  log: string;
}

export interface Faults {
  dropTo?: string[];
  dropFrom?: string[];
  fsyncDelayMs?: number;
  /** Writes and/or fsyncs (diskErrorOn, default both) fail with this error; null clears it. */
  diskError?: 'ENOSPC' | 'EIO' | null;
  diskErrorOn?: 'write' | 'fsync' | 'all';
  /** The member's clock: an offset (a jump when it changes) and a rate (1: real time). */
  clockOffsetMs?: number;
  clockRate?: number;
}

export class FaultCluster {
  protected constructor(
    readonly members: Member[],
    readonly dir: string,
    private readonly token: string,
    /** Extra `flotilla serve` flags for every member (e.g. --lease-reads). */
    private readonly serveArgs: readonly string[],
  ) {}

  /** The command that runs member `m` with `flotilla` arguments `args` (a lab puts it in its namespace). */
  protected command(_m: Member, args: string[]): [string, string[]] {
    return [process.execPath, [BIN, ...args]];
  }

  /**
   * `beforeLaunch` runs once the members' data directories are chosen (none exists yet) and
   * before any member starts: a test prepares a member's disk there (e.g. a small file system
   * mounted where its database will be).
   */
  static async start(size: number, serveArgs: readonly string[] = [], o: { beforeLaunch?: (members: readonly Member[]) => void } = {}): Promise<FaultCluster> {
    // A probed port can be taken by another process before the member binds it (tests run
    // side by side): a start whose member found its port in use begins again on new ports,
    // unless the caller prepared the members' disks (beforeLaunch), which is theirs to undo.
    const attempts = o.beforeLaunch ? 1 : FAULT_CLUSTER_START_ATTEMPTS;
    for (let attempt = 1; ; attempt++) {
      const dir = mkdtempSync(join(tmpdir(), 'flotilla-faults-'));
      const ports = await freePorts(2 * size);
      const members: Member[] = [];
      for (let i = 0; i < size; i++) {
        members.push({ name: `m${i + 1}`, client: `127.0.0.1:${ports[2 * i]}`, peerUrl: `http://127.0.0.1:${ports[2 * i + 1]}`, dataDir: join(dir, `m${i + 1}`), proc: null, paused: false, log: '' });
      }
      const c = new FaultCluster(members, dir, `faults-${process.pid}-${Date.now()}`, serveArgs);
      try {
        o.beforeLaunch?.(members);
      } catch (e) {
        rmSync(dir, { recursive: true, force: true });
        throw e;
      }
      try {
        await c.launchAll();
        return c;
      } catch (e) {
        const portTaken = members.some((m) => m.log.includes('EADDRINUSE'));
        if (!portTaken || attempt >= attempts) {
          // Nothing of a start that failed is left running (a prepared disk is the caller's).
          await Promise.all(members.map((m) => killAndWait(m.proc)));
          if (!o.beforeLaunch) rmSync(dir, { recursive: true, force: true });
          throw e;
        }
        await c.stop();
      }
    }
  }

  /** Starts every member (a new cluster) and waits until each is healthy. */
  protected async launchAll(): Promise<void> {
    for (const m of this.members) this.launch(m, 'new');
    await Promise.all(this.members.map((m) => this.waitReady(m)));
  }

  get endpoints(): string[] {
    return this.members.map((m) => m.client);
  }

  protected launch(m: Member, state: 'new' | 'existing'): void {
    const [cmd, args] = this.command(m, [
      'serve', '--unsafe-fault-injection',
      '--name', m.name, '--data-dir', m.dataDir,
      '--listen-client-urls', m.listenClientUrl ?? `http://${m.client}`, '--advertise-client-urls', `http://${m.client}`,
      '--listen-peer-urls', m.listenPeerUrl ?? m.peerUrl, '--initial-advertise-peer-urls', m.peerUrl,
      '--initial-cluster', this.members.map((x) => `${x.name}=${x.peerUrl}`).join(','),
      '--initial-cluster-state', state, '--initial-cluster-token', this.token,
      ...this.serveArgs,
    ]);
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d: Buffer) => {
      m.log = (m.log + d.toString()).slice(-20_000);
    };
    p.stdout!.on('data', keep);
    p.stderr!.on('data', keep);
    m.proc = p;
    m.paused = false;
  }

  async waitReady(m: Member, timeoutMs = MEMBER_READY_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const r = await fetch(`http://${m.client}/health`, { signal: AbortSignal.timeout(1000) });
        if (r.ok) return;
      } catch {
        // not up yet
      }
      const p = m.proc;
      if (p && (p.exitCode !== null || p.signalCode !== null)) throw new Error(`${m.name} exited (${p.exitCode ?? p.signalCode}) before it was healthy; its log ends:\n${m.log.slice(-3000)}`);
      if (Date.now() > deadline) throw new Error(`${m.name} not healthy within ${timeoutMs} ms; its log ends:\n${m.log.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  kill(i: number): void {
    const m = this.members[i]!;
    m.proc?.kill('SIGKILL');
    m.proc = null;
    m.paused = false;
  }

  /** Starts a killed member, or one that exited by itself, again with its data (and no faults). */
  async restart(i: number): Promise<void> {
    const m = this.members[i]!;
    if (m.proc && m.proc.exitCode === null && m.proc.signalCode === null) return;
    this.launch(m, 'existing');
    await this.waitReady(m);
  }

  pause(i: number): void {
    const m = this.members[i]!;
    if (m.proc && !m.paused) {
      m.proc.kill('SIGSTOP');
      m.paused = true;
    }
  }

  resume(i: number): void {
    const m = this.members[i]!;
    if (m.proc && m.paused) {
      m.proc.kill('SIGCONT');
      m.paused = false;
    }
  }

  /** Sets a member's injected faults (fields left out keep their value). */
  async setFaults(i: number, f: Faults): Promise<void> {
    const m = this.members[i]!;
    if (!m.proc || m.paused) return;
    const r = await fetch(`http://${m.client}/debug/faults`, { method: 'POST', body: JSON.stringify(f), signal: AbortSignal.timeout(3000) });
    if (!r.ok) throw new Error(`${m.name}: /debug/faults answered ${r.status}: ${await r.text()}`);
  }

  /** Every member running, unpaused, with no injected faults, and healthy. */
  async healAll(): Promise<void> {
    for (let i = 0; i < this.members.length; i++) this.resume(i);
    await Promise.all(this.members.map((_, i) => this.restart(i)));
    await Promise.all(this.members.map((_, i) => this.setFaults(i, { dropTo: [], dropFrom: [], fsyncDelayMs: 0, clockOffsetMs: 0, clockRate: 1 }).catch(() => undefined)));
    await Promise.all(this.members.map((m) => this.waitReady(m)));
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => killAndWait(m.proc)));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
