/**
 * Test fixture: a 3-member cluster on loopback with random free ports and a temp data dir,
 * either Flotilla (`node bin/flotilla.js serve`, built by `npm test` first) or real etcd
 * (`/usr/bin/etcd`, for side-by-side comparisons). Both take the same etcd-style flags.
 * Members are separate processes; `stop()` kills them all and removes the data.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, freePorts, killAndWait } from '../../src/lib/proc.js';

export { freePort, freePorts };

export type Target = 'flotilla' | 'etcd';

/**
 * How long startCluster, restart and join wait for a member's /health by default (ms). Three
 * members starting at once on a loaded 2-core machine (several test files in parallel) take
 * well over 20 s at times; a healthy cluster answers long before this.
 */
export const CLUSTER_READY_TIMEOUT_MS = 60_000;

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const FLOTILLA_BIN = join(ROOT, 'bin/flotilla.js');

/** Path of a tool on PATH (or a usual location), or null: tests that need it skip with a reason. */
export function which(tool: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
  const p = r.stdout.trim();
  if (p) return p;
  for (const d of ['/usr/bin', '/usr/local/bin']) if (existsSync(join(d, tool))) return join(d, tool);
  return null;
}

export interface MemberProc {
  readonly name: string;
  readonly clientUrl: string;
  /** Changed by a test that moves the member (member update, then restart it there). */
  peerUrl: string;
  readonly dataDir: string;
  proc: ChildProcess | null;
  /** Everything the process printed (stdout and stderr), for failure messages. */
  output: string;
}

export interface Cluster {
  readonly target: Target;
  readonly members: MemberProc[];
  /** host:port of each member's client port, e.g. for etcdctl --endpoints. */
  readonly endpoints: string[];
  readonly dir: string;
  /** --initial-cluster-token (with the cluster id, what a peer's handshake must name). */
  readonly token: string;
  /** SIGKILL one member. */
  kill(i: number): void;
  /** Start a killed member again with its data. */
  restart(i: number): Promise<void>;
  /** A new member (ports, data dir) appended to `members`, not started: add it (member add), then `join` it. */
  prepare(name: string): Promise<MemberProc>;
  /**
   * Starts member i with --initial-cluster-state existing and --initial-cluster naming `cluster`
   * (the members as the cluster has them now, itself included); waits for its /health.
   */
  join(i: number, cluster: readonly MemberProc[]): Promise<void>;
  /** Starts member i again as `restart` does, without waiting for it (for a member expected to refuse). */
  relaunch(i: number): void;
  /** Deletes member i's data directory (it must not be running). */
  wipe(i: number): void;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  readonly size?: number;
  /** Extra flags for every member. */
  readonly extraArgs?: string[];
  /** ms to wait for every member's /health (default CLUSTER_READY_TIMEOUT_MS). */
  readonly readyTimeoutMs?: number;
  /** https:// client URLs (pass the certificate flags in extraArgs or memberArgs). */
  readonly clientTls?: boolean;
  /** https:// peer URLs (the --peer-* flags likewise). */
  readonly peerTls?: boolean;
  /** Extra flags for member i (0-based), after extraArgs. */
  readonly memberArgs?: (i: number) => string[];
  /** With clientTls: the CA (and client certificate, if the members require one) /health is checked with. */
  readonly healthTls?: HealthTls;
  /** Environment variables for every member process, over the test's own (FLOTILLA_* settings, etcd's ETCD_*). */
  readonly env?: NodeJS.ProcessEnv;
}

export interface HealthTls {
  /** Check the server's certificate with this CA; without it, `insecure` must be set. */
  readonly ca?: string;
  /** Do not verify the server's certificate (auto TLS). */
  readonly insecure?: boolean;
  readonly cert?: string;
  readonly key?: string;
}

function args(m: MemberProc, all: readonly MemberProc[], token: string, state: 'new' | 'existing'): string[] {
  return [
    '--name', m.name,
    '--data-dir', m.dataDir,
    '--listen-client-urls', m.clientUrl,
    '--advertise-client-urls', m.clientUrl,
    '--listen-peer-urls', m.peerUrl,
    '--initial-advertise-peer-urls', m.peerUrl,
    '--initial-cluster', all.map((x) => `${x.name}=${x.peerUrl}`).join(','),
    '--initial-cluster-state', state,
    '--initial-cluster-token', token,
  ];
}

function httpsHealthy(url: string, t: HealthTls): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpsRequest(
      `${url}/health`,
      { ...(t.ca ? { ca: readFileSync(t.ca) } : {}), rejectUnauthorized: !t.insecure, ...(t.cert ? { cert: readFileSync(t.cert), key: readFileSync(t.key!) } : {}), timeout: 1000 },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve(res.statusCode === 200 && body.includes('"health":"true"')));
        res.on('error', () => resolve(false));
      },
    );
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

async function healthy(url: string, t?: HealthTls): Promise<boolean> {
  if (url.startsWith('https:')) return t ? httpsHealthy(url, t) : false;
  try {
    const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
    if (!r.ok) return false;
    const body = (await r.json()) as { health?: string };
    return body.health === 'true';
  } catch {
    return false;
  }
}

export async function waitHealthy(urls: string[], timeoutMs: number, what: () => string, t?: HealthTls): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await Promise.all(urls.map((u) => healthy(u, t)));
    if (ok.every(Boolean)) return;
    if (Date.now() > deadline) throw new Error(`cluster not healthy within ${timeoutMs} ms\n${what()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Attempts at starting a cluster when a member's port was taken between the probe and its bind. */
const START_ATTEMPTS = 3;

/** A member could not bind its port: another process took it after freePort() found it free. */
class PortTakenError extends Error {}

export async function startCluster(target: Target, o: ClusterOptions = {}): Promise<Cluster> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startClusterOnce(target, o);
    } catch (e) {
      // Other test files start servers in parallel: a probed port can be gone by the time a
      // member binds it. New ports, new cluster.
      if (!(e instanceof PortTakenError) || attempt >= START_ATTEMPTS) throw e;
    }
  }
}

async function startClusterOnce(target: Target, o: ClusterOptions): Promise<Cluster> {
  const size = o.size ?? 3;
  const dir = mkdtempSync(join(tmpdir(), `flotilla-${target}-`));
  const members: MemberProc[] = [];
  const ports = await freePorts(2 * size);
  for (let i = 0; i < size; i++) {
    members.push({
      name: `m${i + 1}`,
      clientUrl: `${o.clientTls ? 'https' : 'http'}://127.0.0.1:${ports[2 * i]!}`,
      peerUrl: `${o.peerTls ? 'https' : 'http'}://127.0.0.1:${ports[2 * i + 1]!}`,
      dataDir: join(dir, `m${i + 1}`),
      proc: null,
      output: '',
    });
  }
  const token = `test-${process.pid}-${Date.now()}`;
  const initial: readonly MemberProc[] = [...members];
  const launch = (m: MemberProc, state: 'new' | 'existing', all: readonly MemberProc[] = initial) => {
    const a = args(m, all, token, state).concat(o.extraArgs ?? [], o.memberArgs?.(members.indexOf(m)) ?? []);
    const spawnOptions = { stdio: ['ignore', 'pipe', 'pipe'] as ['ignore', 'pipe', 'pipe'], ...(o.env ? { env: { ...process.env, ...o.env } } : {}) };
    const p = target === 'etcd' ? spawn(which('etcd') ?? 'etcd', a, spawnOptions) : spawn(process.execPath, [FLOTILLA_BIN, 'serve', ...a], spawnOptions);
    p.stdout!.on('data', (d: Buffer) => (m.output += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (m.output += d.toString()));
    m.proc = p;
  };
  for (const m of members) launch(m, 'new');
  const dump = () => members.map((m) => `--- ${m.name} (exit ${m.proc?.exitCode})\n${m.output.slice(-3000)}`).join('\n');
  const cluster: Cluster = {
    target,
    members,
    get endpoints() {
      return members.map((m) => m.clientUrl.replace(/^https?:\/\//, ''));
    },
    dir,
    token,
    kill(i) {
      members[i]!.proc?.kill('SIGKILL');
      members[i]!.proc = null;
    },
    relaunch(i) {
      launch(members[i]!, 'existing', initial.includes(members[i]!) ? initial : [...initial, members[i]!]);
    },
    async restart(i) {
      launch(members[i]!, 'existing', initial.includes(members[i]!) ? initial : [...initial, members[i]!]);
      await waitHealthy([members[i]!.clientUrl], o.readyTimeoutMs ?? CLUSTER_READY_TIMEOUT_MS, dump, o.healthTls);
    },
    async prepare(name) {
      const m: MemberProc = {
        name,
        clientUrl: `${o.clientTls ? 'https' : 'http'}://127.0.0.1:${await freePort()}`,
        peerUrl: `${o.peerTls ? 'https' : 'http'}://127.0.0.1:${await freePort()}`,
        dataDir: join(dir, `${name}-${members.length}`),
        proc: null,
        output: '',
      };
      members.push(m);
      return m;
    },
    async join(i, all) {
      launch(members[i]!, 'existing', all);
      await waitHealthy([members[i]!.clientUrl], o.readyTimeoutMs ?? CLUSTER_READY_TIMEOUT_MS, dump, o.healthTls);
    },
    wipe(i) {
      rmSync(members[i]!.dataDir, { recursive: true, force: true });
    },
    async stop() {
      await Promise.all(members.map((m) => killAndWait(m.proc)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const portTaken = new Promise<never>((_, reject) => {
    for (const m of members) m.proc!.once('close', () => /EADDRINUSE/.test(m.output) && reject(new PortTakenError(`${m.name} could not bind its port:\n${m.output.slice(-1000)}`)));
  });
  portTaken.catch(() => undefined);
  try {
    const healthy = waitHealthy(members.map((m) => m.clientUrl), o.readyTimeoutMs ?? CLUSTER_READY_TIMEOUT_MS, dump, o.healthTls);
    // Left behind when a port was taken: it polls the stopped members until its deadline.
    healthy.catch(() => undefined);
    await Promise.race([healthy, portTaken]);
  } catch (e) {
    await cluster.stop();
    throw e;
  }
  return cluster;
}

/** A command's outcome: its exit code (null when killed) and its whole output. */
export interface ProcessRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The longest a one-shot command may run before it is SIGKILLed (a hung CLI fails its test, not the suite). */
export const PROCESS_RUN_TIMEOUT_MS = 30_000;

/** Runs `cmd args` to its end, collecting stdout and stderr; killed after PROCESS_RUN_TIMEOUT_MS. */
export function runProcess(cmd: string, args: readonly string[], env?: NodeJS.ProcessEnv): Promise<ProcessRun> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), PROCESS_RUN_TIMEOUT_MS);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
