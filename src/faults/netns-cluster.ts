/**
 * The fault harness on a network lab (`flotilla faults --net netns`, root only): each member
 * runs in a network namespace of its own (src/faults/netns.ts) with its own address, listens on
 * the standard ports (2379 clients, 2380 peers) and is known to its peers and clients by a DNS
 * name resolved through the lab's hosts files. Partitions are nftables drop rules inside the
 * members' namespaces; with link faults, a proxy in each member's namespace (netproxy.ts) sits
 * on its connections to its peers (an nftables redirect) to add latency, jitter and bandwidth
 * limits and to reset connections.
 *
 * Two processes: the one the user started creates the lab, runs itself again inside the lab's
 * driver namespace (`ip netns exec`, with the lab's description in FLOTILLA_NETNS_LAB), and
 * removes the lab when that exits, fails or is interrupted. The inner one runs the workload.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { killAndWait } from '../lib/proc.js';
import { BIN, FaultCluster, type Faults, type Member } from './cluster.js';
import { labUnavailableReason, NetnsLab, PROXY_UID, type LabDescription } from './netns.js';
import { NO_SHAPE, type LinkShape } from './netproxy.js';
import type { FaultTarget } from './run.js';

export const CLIENT_PORT = 2379;
export const PEER_PORT = 2380;
/** The proxy in member A's namespace listens for A's connections to member B on PROXY_PORT_BASE + B's lab index. */
export const PROXY_PORT_BASE = 20000;
/** The proxy's control port, on its member's address. */
export const PROXY_CONTROL_PORT = 29000;
/** How long to wait for a member's /health after (re)starting it in the lab. */
export const LAB_MEMBER_READY_TIMEOUT_MS = 90_000;
/** How long a proxy has to start. */
const PROXY_READY_TIMEOUT_MS = 30_000;
/** The environment variable that carries the lab to the driver process inside it. */
export const LAB_ENV = 'FLOTILLA_NETNS_LAB';
const PROXY_JS = fileURLToPath(new URL('./netproxy.js', import.meta.url));

/** The lab this process runs inside, if any. */
export function labFromEnv(): LabDescription | null {
  const s = process.env[LAB_ENV];
  return s ? (JSON.parse(s) as LabDescription) : null;
}

export class NetnsCluster extends FaultCluster implements FaultTarget {
  private readonly proxies: ChildProcess[] = [];
  private lab!: NetnsLab;
  private proxied = false;
  private log: (l: string) => void = () => {};

  /** Starts members in the lab's member namespaces (m1, m2, ...), with proxies on their peer links when `proxy`. */
  static async startIn(lab: NetnsLab, size: number, serveArgs: readonly string[], o: { proxy: boolean; log?: (l: string) => void }): Promise<NetnsCluster> {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-netns-'));
    const members: Member[] = [];
    for (let i = 0; i < size; i++) {
      const h = lab.host(`m${i + 1}`);
      members.push({
        name: h.name,
        client: `${h.fqdn}:${CLIENT_PORT}`,
        peerUrl: `http://${h.fqdn}:${PEER_PORT}`,
        listenClientUrl: `http://0.0.0.0:${CLIENT_PORT}`,
        listenPeerUrl: `http://0.0.0.0:${PEER_PORT}`,
        dataDir: join(dir, h.name),
        proc: null,
        paused: false,
        log: '',
      });
    }
    const c = new NetnsCluster(members, dir, `netns-${process.pid}-${Date.now()}`, serveArgs);
    c.lab = lab;
    if (o.log) c.log = o.log;
    try {
      await Promise.all(members.map((m) => NetnsLab.setFilter(lab.host(m.name).ns, { dropTo: [], dropFrom: [], redirects: [] })));
      if (o.proxy) await c.startProxies();
      o.log?.(`network lab: ${members.map((m) => `${m.name}=${lab.host(m.name).ip} (${lab.host(m.name).fqdn}, namespace ${lab.host(m.name).ns})`).join(', ')}; partitions are nftables drop rules${o.proxy ? '; peer links through a delay proxy' : ''}`);
      await c.launchAll();
    } catch (e) {
      await c.stop();
      throw e;
    }
    return c;
  }

  /** Members in a lab start slower (a namespace each, names to resolve): more time than on loopback. */
  override waitReady(m: Member, timeoutMs = LAB_MEMBER_READY_TIMEOUT_MS): Promise<void> {
    return super.waitReady(m, timeoutMs);
  }

  protected override command(m: Member, args: string[]): [string, string[]] {
    return ['ip', ['netns', 'exec', this.lab.host(m.name).ns, process.execPath, BIN, ...args]];
  }

  private async startProxies(): Promise<void> {
    for (const m of this.members) {
      const self = this.lab.host(m.name);
      const peers = this.members.filter((x) => x !== m).map((x) => this.lab.host(x.name));
      const args = [PROXY_JS, '--control', `${self.ip}:${PROXY_CONTROL_PORT}`, '--uid', String(PROXY_UID), ...peers.flatMap((p) => ['--route', `${p.name}=${PROXY_PORT_BASE + p.index}=${p.fqdn}:${PEER_PORT}`])];
      const p = spawn('ip', ['netns', 'exec', self.ns, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      this.proxies.push(p);
      await new Promise<void>((resolve, reject) => {
        let out = '';
        const t = setTimeout(() => reject(new Error(`the proxy in ${self.ns} did not start: ${out}`)), PROXY_READY_TIMEOUT_MS);
        const seen = (d: Buffer) => {
          out += d.toString();
          if (out.includes('proxy ready')) {
            clearTimeout(t);
            resolve();
          }
        };
        p.stdout!.on('data', seen);
        p.stderr!.on('data', seen);
        p.once('exit', (code) => {
          clearTimeout(t);
          reject(new Error(`the proxy in ${self.ns} exited (code ${code}): ${out}`));
        });
      });
      await NetnsLab.setFilter(self.ns, { dropTo: [], dropFrom: [], redirects: peers.map((p) => ({ ip: p.ip, port: PEER_PORT, to: PROXY_PORT_BASE + p.index })) });
    }
    this.proxied = true;
  }

  /** Partitions as nftables drop rules in the member's namespace; everything else through its /debug/faults. */
  override async setFaults(i: number, f: Faults): Promise<void> {
    const m = this.members[i]!;
    const { dropTo, dropFrom, ...rest } = f;
    if (dropTo !== undefined || dropFrom !== undefined) {
      const ips = (names: string[] | undefined) => (names ?? []).map((n) => this.lab.host(n).ip);
      await NetnsLab.setFilter(this.lab.host(m.name).ns, { dropTo: ips(dropTo), dropFrom: ips(dropFrom) });
    }
    if (Object.keys(rest).length > 0) await super.setFaults(i, rest);
  }

  readonly links = {
    shape: async (i: number, shape: LinkShape, to?: string): Promise<void> => this.control(i, '/shape', { ...shape, ...(to ? { to } : {}) }),
    reset: async (i: number, to?: string): Promise<void> => this.control(i, '/reset', to ? { to } : {}),
  };

  private async control(i: number, path: string, body: unknown): Promise<void> {
    if (!this.proxied) throw new Error('link faults need the proxies (start the cluster with proxy: true)');
    const h = this.lab.host(this.members[i]!.name);
    const r = await fetch(`http://${h.ip}:${PROXY_CONTROL_PORT}${path}`, { method: 'POST', body: JSON.stringify(body), signal: AbortSignal.timeout(3000) });
    if (!r.ok) throw new Error(`proxy of ${h.name}: ${path} answered ${r.status}: ${await r.text()}`);
  }

  override async healAll(): Promise<void> {
    if (this.proxied) await Promise.all(this.members.map((_, i) => this.links.shape(i, NO_SHAPE).catch(() => undefined)));
    await super.healAll();
  }

  override async stop(): Promise<void> {
    if (this.proxied) {
      // What went through the proxies: evidence that peer traffic really took the shaped path.
      let connections = 0;
      let bytes = 0;
      for (const m of this.members) {
        const r = await fetch(`http://${this.lab.host(m.name).ip}:${PROXY_CONTROL_PORT}/stats`, { signal: AbortSignal.timeout(3000) }).catch(() => null);
        const stats = r?.ok ? ((await r.json()) as Record<string, { connections: number; bytes: number }>) : {};
        for (const s of Object.values(stats)) {
          connections += s.connections;
          bytes += s.bytes;
        }
      }
      this.log(`peer links through the proxies: ${connections} connections, ${bytes} bytes`);
    }
    await super.stop();
    await Promise.all(this.proxies.map((p) => killAndWait(p)));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * The outer process of `flotilla faults --net netns`: makes the lab (one namespace per member
 * and one for the driver), runs `flotilla <args>` again inside the driver's namespace, and
 * removes the lab afterwards, also when the run fails or this process is interrupted.
 * Returns the exit code. `script` is the program run inside (default: the flotilla command).
 */
export async function runInLab(members: number, args: readonly string[], log: (l: string) => void = console.error, script: string = BIN): Promise<number> {
  const why = await labUnavailableReason();
  if (why !== null) {
    log(`flotilla faults --net netns: cannot run: ${why}`);
    return 2;
  }
  const lab = await NetnsLab.create({ prefix: `flt${process.pid}`, members: Array.from({ length: members }, (_, i) => `m${i + 1}`) });
  let child: ChildProcess | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    log(`${sig}: stopping the run and removing the network lab`);
    child?.kill('SIGKILL');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    child = spawn('ip', ['netns', 'exec', lab.host('driver').ns, process.execPath, script, ...args], { stdio: 'inherit', env: { ...process.env, [LAB_ENV]: JSON.stringify(lab.desc) } });
    const c = child;
    return await new Promise<number>((resolve) => c.once('exit', (code, sig) => resolve(code ?? (sig ? 1 : 0))));
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await lab.destroy();
  }
}
