/**
 * Shared setup of the chain tests: a temp directory with its cleanup list (run in reverse after
 * the file's tests), a condition poll, the in-process control cluster with a ChainMaster and
 * ChainNodeProcesses on it, and `flotilla chain-*` processes launched with their output in logs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { ChainMaster } from '../../src/chainnode/master-process.js';
import { ChainNodeProcess } from '../../src/chainnode/node-process.js';
import { FLOTILLA_BIN, startCluster, type Cluster } from './cluster.js';
import { startInProcessCluster, type InProcessCluster } from './in-process.js';

export interface ChainTestEnv {
  dir: string;
  /** Undone in reverse after the file's tests (errors ignored), before dir is removed. */
  cleanup: (() => Promise<unknown>)[];
  /** A 1-member in-process control cluster, stopped by cleanup. */
  controlCluster(): Promise<InProcessCluster>;
  /** A ChainMaster on its timer (intervalMs 100, `members` both bootstrap and maximum), stopped by cleanup. */
  startMaster(chain: string, control: readonly string[], members: number): ChainMaster;
  /** A ChainNodeProcess, stopped by cleanup. */
  startNode(o: Parameters<typeof ChainNodeProcess.start>[0]): Promise<ChainNodeProcess>;
}

/** A fresh temp directory (prefix `prefix`) and a cleanup list, both undone after the calling file's tests. Call at a test file's top level. */
export function chainTestEnv(prefix: string): ChainTestEnv {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const cleanup: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const f of cleanup.reverse()) await f().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    dir,
    cleanup,
    async controlCluster() {
      const c = await startInProcessCluster({ size: 1 });
      cleanup.push(() => c.stop());
      return c;
    },
    startMaster(chain, control, members) {
      const m = new ChainMaster({ chain, control, name: 'm', intervalMs: 100, membersMax: members, bootstrapMembers: members });
      m.start();
      cleanup.push(() => m.stop());
      return m;
    },
    async startNode(o) {
      const n = await ChainNodeProcess.start(o);
      cleanup.push(() => n.stop());
      return n;
    },
  };
}

/** Polls f until it returns a truthy value (errors are retried; the last one is in the timeout's message, followed by detail()). */
export async function until<T>(
  what: string,
  f: () => T | null | undefined | false | Promise<T | null | undefined | false>,
  timeoutMs = 30_000,
  { intervalMs = 20, detail }: { intervalMs?: number; detail?: () => string } = {},
): Promise<T> {
  const end = performance.now() + timeoutMs;
  let last: unknown;
  while (performance.now() < end) {
    try {
      const v = await f();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}${detail ? `\n${detail()}` : ''}`);
}

/** The lease a ChainNodeProcess registered under (its private field). */
export const leaseOf = (n: ChainNodeProcess): bigint => (n as unknown as { leaseId: bigint }).leaseId;

/**
 * `flotilla` processes (bin/flotilla.js ARGS), each with stdout and stderr appended to
 * DIR/NAME.log; by name: kill, restart with the same arguments, the last lines of every log.
 */
export class LoggedProcesses {
  private readonly procs = new Map<string, { proc: ChildProcess | null; args: string[]; log: string }>();
  private readonly all: ChildProcess[] = [];

  constructor(private readonly dir: string) {}

  launch(name: string, args: string[]): void {
    const log = join(this.dir, `${name}.log`);
    const fd = openSync(log, 'a');
    const proc = spawn(process.execPath, [FLOTILLA_BIN, ...args], { stdio: ['ignore', fd, fd] });
    this.all.push(proc);
    this.procs.set(name, { proc, args, log });
  }

  /** SIGKILLs NAME's current process. */
  kill(name: string): void {
    const p = this.procs.get(name)!;
    p.proc?.kill('SIGKILL');
    p.proc = null;
  }

  /** Launches NAME again with its arguments (same log). */
  restart(name: string): void {
    this.launch(name, this.procs.get(name)!.args);
  }

  logPath(name: string): string {
    return this.procs.get(name)!.log;
  }

  /** The last `lines` lines of each name's log, headed `--- NAME`. */
  logs(lines: number): string {
    return [...this.procs.entries()].map(([n, p]) => `--- ${n}\n${readFileSync(p.log, 'utf8').split('\n').slice(-lines).join('\n')}`).join('\n');
  }

  /** SIGKILLs every process ever launched. */
  killAll(): void {
    for (const p of this.all) p.kill('SIGKILL');
  }
}

/**
 * A fresh temp directory, LoggedProcesses in it and a startCluster whose cluster is kept: after
 * the calling file's tests every process is SIGKILLed, the cluster stopped and the directory
 * removed. Call at a test file's top level.
 */
export function chainProcessesEnv(prefix: string): { dir: string; procs: LoggedProcesses; startCluster: typeof startCluster } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const procs = new LoggedProcesses(dir);
  let cluster: Cluster | null = null;
  afterAll(async () => {
    procs.killAll();
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    dir,
    procs,
    startCluster: async (...args) => (cluster = await startCluster(...args)),
  };
}
