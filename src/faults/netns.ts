/**
 * A private network of Linux network namespaces for the fault harness (`flotilla faults --net
 * netns`, root only): one namespace per host, each with its own address on a bridge, and names
 * resolved through a per-namespace hosts file (`ip netns exec` bind-mounts /etc/netns/NS/hosts
 * over /etc/hosts, so the lab changes a name's address by rewriting that file in place).
 *
 * Isolation: the bridge lives in a namespace of its own (the "hub"), so nothing is added to the
 * machine's own network namespace; the lab's addresses (LAB_SUBNET) exist only inside the lab's
 * namespaces, which have no route anywhere else. Everything the lab creates is named with its
 * prefix; creating refuses to start when any such name already exists, and destroy() removes
 * exactly what it created (processes in its namespaces, the namespaces, their /etc/netns dirs).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The lab's /24: only ever used inside the lab's own namespaces. */
export const LAB_SUBNET = '10.77.0';
/** The first host address of members (10.77.0.11, .12, ...); the driver is .2. */
export const LAB_MEMBER_HOST_BASE = 11;
/** The most hosts a lab holds (addresses stay within the /24). */
export const LAB_HOSTS_MAX = 40;
/** Where per-namespace resolver files live (ip-netns(8)). */
const ETC_NETNS = '/etc/netns';

export interface LabHost {
  /** The host's name as the cluster knows it (member name, or "driver"). */
  readonly name: string;
  /** Its DNS name, resolved through the lab's hosts files. */
  readonly fqdn: string;
  readonly ns: string;
  ip: string;
  /** The veth's index (its name in the hub is v<index>). */
  readonly index: number;
}

/** What a process inside the lab needs to know of it (passed as JSON in FLOTILLA_NETNS_LAB). */
export interface LabDescription {
  readonly prefix: string;
  readonly domain: string;
  readonly hub: string;
  readonly hosts: LabHost[];
}

/** Why the lab cannot run here (not root, no `ip` or `nft`), or null when it can. */
export async function labUnavailableReason(): Promise<string | null> {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'network namespaces need root (run as root: sudo npm run test:netns)';
  for (const [cmd, args] of [['ip', ['-V']], ['nft', ['--version']]] as const) {
    try {
      await run(cmd, [...args]);
    } catch {
      return `the ${cmd} command is not installed`;
    }
  }
  return null;
}

export async function sh(cmd: string, args: readonly string[], input?: string): Promise<string> {
  if (input === undefined) {
    try {
      return (await run(cmd, [...args])).stdout;
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new Error(`${cmd} ${args.join(' ')}: ${(err.stderr ?? '').trim() || err.message}`);
    }
  }
  return new Promise((resolve, reject) => {
    const p = execFile(cmd, [...args], (e, stdout, stderr) => (e ? reject(new Error(`${cmd} ${args.join(' ')}: ${stderr.trim() || e.message}`)) : resolve(stdout)));
    p.stdin!.end(input);
  });
}

/** Runs a command inside namespace `ns`. */
export const inNs = (ns: string, cmd: string, args: readonly string[], input?: string) => sh('ip', ['netns', 'exec', ns, cmd, ...args], input);

async function listNamespaces(): Promise<string[]> {
  const out = await sh('ip', ['netns', 'list']);
  return out.split('\n').map((l) => l.split(' ')[0]!).filter(Boolean);
}

export class NetnsLab {
  /** Set only in the process that created the lab: it alone tears it down. */
  private owned = false;

  private constructor(readonly desc: LabDescription) {}

  get hosts(): readonly LabHost[] {
    return this.desc.hosts;
  }

  host(name: string): LabHost {
    const h = this.desc.hosts.find((x) => x.name === name);
    if (!h) throw new Error(`no lab host named ${name}`);
    return h;
  }

  /** A process inside the lab (the driver) attaches to the lab its creator made. */
  static attach(desc: LabDescription): NetnsLab {
    return new NetnsLab(desc);
  }

  /**
   * Creates the hub with its bridge, a namespace for the driver (`driver`, at .2) and one per
   * member name. Refuses when a namespace or /etc/netns dir with the lab's prefix exists.
   */
  static async create(o: { prefix: string; members: readonly string[]; domain?: string }): Promise<NetnsLab> {
    if (!/^[a-z][a-z0-9-]{0,20}$/.test(o.prefix)) throw new Error(`lab prefix ${JSON.stringify(o.prefix)}: lower-case letters, digits and -, at most 21`);
    if (o.members.length + 1 > LAB_HOSTS_MAX) throw new Error(`a lab holds at most ${LAB_HOSTS_MAX} hosts`);
    const taken = (await listNamespaces()).filter((n) => n.startsWith(`${o.prefix}-`));
    const takenEtc = existsSync(ETC_NETNS) ? readdirSync(ETC_NETNS).filter((n) => n.startsWith(`${o.prefix}-`)) : [];
    if (taken.length > 0 || takenEtc.length > 0) {
      throw new Error(`refusing to create the network lab: ${[...taken.map((n) => `namespace ${n}`), ...takenEtc.map((n) => `${ETC_NETNS}/${n}`)].join(', ')} already exist(s) and this run did not create them (left by an earlier run? remove them with ip netns del NAME; rm -r ${ETC_NETNS}/NAME)`);
    }
    const domain = o.domain ?? 'flotilla.test';
    const names = ['driver', ...o.members];
    const hosts: LabHost[] = names.map((name, index) => ({
      name,
      fqdn: `${name}.${domain}`,
      ns: `${o.prefix}-${name}`,
      ip: `${LAB_SUBNET}.${index === 0 ? 2 : LAB_MEMBER_HOST_BASE + index - 1}`,
      index,
    }));
    const lab = new NetnsLab({ prefix: o.prefix, domain, hub: `${o.prefix}-hub`, hosts });
    lab.owned = true;
    try {
      await sh('ip', ['netns', 'add', lab.desc.hub]);
      await sh('ip', ['-n', lab.desc.hub, 'link', 'add', 'br0', 'type', 'bridge']);
      await sh('ip', ['-n', lab.desc.hub, 'link', 'set', 'br0', 'up']);
      for (const h of hosts) await lab.addHost(h);
      lab.writeHostsFiles();
    } catch (e) {
      await lab.destroy();
      throw e;
    }
    return lab;
  }

  private async addHost(h: LabHost): Promise<void> {
    const hub = this.desc.hub;
    mkdirSync(`${ETC_NETNS}/${h.ns}`, { recursive: true });
    await sh('ip', ['netns', 'add', h.ns]);
    await sh('ip', ['-n', h.ns, 'link', 'set', 'lo', 'up']);
    await sh('ip', ['-n', hub, 'link', 'add', `v${h.index}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.ns]);
    await sh('ip', ['-n', hub, 'link', 'set', `v${h.index}`, 'master', 'br0']);
    await sh('ip', ['-n', hub, 'link', 'set', `v${h.index}`, 'up']);
    await sh('ip', ['-n', h.ns, 'addr', 'add', `${h.ip}/24`, 'dev', 'eth0']);
    await sh('ip', ['-n', h.ns, 'link', 'set', 'eth0', 'up']);
  }

  /**
   * Every namespace's hosts file: every lab host by short name and DNS name. Rewritten in place
   * (same file), so processes already running in a namespace see the change on their next lookup.
   * resolv.conf names no server: a name not in the file fails at once, nothing is sent.
   */
  private writeHostsFiles(): void {
    const lines = ['127.0.0.1 localhost', '::1 localhost', ...this.desc.hosts.map((h) => `${h.ip} ${h.fqdn} ${h.name}`)].join('\n') + '\n';
    for (const h of this.desc.hosts) {
      writeFileSync(`${ETC_NETNS}/${h.ns}/hosts`, lines);
      writeFileSync(`${ETC_NETNS}/${h.ns}/resolv.conf`, 'options attempts:1 timeout:1\nnameserver 127.0.0.1\n');
    }
  }

  /** Kills every process inside the namespace (they are the lab's own: it created the namespace). */
  private async killAllIn(ns: string): Promise<void> {
    const pids = (await sh('ip', ['netns', 'pids', ns]).catch(() => '')).split('\n').map(Number).filter((p) => p > 1 && p !== process.pid);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  }

  /**
   * Moves host `name` to a new address, as a rescheduled pod: its processes are killed, its
   * namespace deleted and made again with `ip`, and every hosts file now maps its name there.
   */
  async readdress(name: string, ip: string): Promise<void> {
    if (!ip.startsWith(`${LAB_SUBNET}.`)) throw new Error(`${ip} is not in the lab's subnet ${LAB_SUBNET}.0/24`);
    if (this.desc.hosts.some((h) => h.ip === ip)) throw new Error(`${ip} is taken`);
    const h = this.host(name);
    await this.killAllIn(h.ns);
    await sh('ip', ['-n', this.desc.hub, 'link', 'del', `v${h.index}`]).catch(() => undefined);
    await sh('ip', ['netns', 'del', h.ns]);
    h.ip = ip;
    await this.addHost(h);
    this.writeHostsFiles();
  }

  /** Removes everything the lab created; safe to call more than once and after a partial create. */
  async destroy(): Promise<void> {
    if (!this.owned) return;
    const existing = new Set(await listNamespaces().catch(() => [] as string[]));
    for (const ns of [...this.desc.hosts.map((h) => h.ns), this.desc.hub]) {
      if (existing.has(ns)) {
        await this.killAllIn(ns);
        await sh('ip', ['netns', 'del', ns]).catch(() => undefined);
      }
      rmSync(`${ETC_NETNS}/${ns}`, { recursive: true, force: true });
    }
    this.owned = false;
  }

  /**
   * Sets namespace `ns`'s packet filter: packets to the addresses in `dropTo` and from those in
   * `dropFrom` are dropped (TCP sees silence, not a closed socket), and, when `redirects` is
   * given, new TCP connections to those address:port pairs go to a local port instead (the
   * delay proxy, whose own connections, made as uid PROXY_UID, are not redirected).
   */
  static async setFilter(ns: string, f: { dropTo: readonly string[]; dropFrom: readonly string[]; redirects?: readonly { ip: string; port: number; to: number }[] }): Promise<void> {
    const rules = [
      'table ip flotilla {',
      '  chain out { type filter hook output priority 0; policy accept; }',
      '  chain in { type filter hook input priority 0; policy accept; }',
      '  chain nat_out { type nat hook output priority -100; policy accept; }',
      '}',
      'flush chain ip flotilla out',
      'flush chain ip flotilla in',
      ...(f.dropTo.length ? [`add rule ip flotilla out ip daddr { ${f.dropTo.join(', ')} } drop`] : []),
      ...(f.dropFrom.length ? [`add rule ip flotilla in ip saddr { ${f.dropFrom.join(', ')} } drop`] : []),
      ...(f.redirects
        ? ['flush chain ip flotilla nat_out', ...f.redirects.map((r) => `add rule ip flotilla nat_out meta skuid != ${PROXY_UID} ip daddr ${r.ip} tcp dport ${r.port} redirect to :${r.to}`)]
        : []),
    ];
    await inNs(ns, 'nft', ['-f', '-'], rules.join('\n') + '\n');
  }
}

/** The uid the delay proxy runs as (nobody): its connections are the ones not redirected. */
export const PROXY_UID = 65534;
