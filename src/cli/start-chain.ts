/**
 * `flotilla start --chain NAME`: beside the local cluster, once it is ready, a chain master and a
 * 3-node chain (chain replication, issue 17) whose control plane is that cluster: one
 * `flotilla chain-master` and three `flotilla chain-node` processes on --chain-ports (default
 * 4301,4302,4303), data under DATA/chain-NAME-nI, logs beside the members'. Reports `chain NAME
 * ready` once the master configured all three nodes, and a chain process that exits (with its
 * last words and the command that restarts it). Stopped with the cluster.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';

/** The chain's nodes started by `flotilla start --chain`. */
export const START_CHAIN_NODES = 3;

export function chainPorts(v: string): number[] {
  const list = v.split(',').map((s) => s.trim());
  if (list.length !== START_CHAIN_NODES || list.some((p) => !/^\d+$/.test(p) || Number(p) < 1 || Number(p) > 65535)) {
    throw new Error(`--chain-ports must be ${START_CHAIN_NODES} ports, e.g. 4301,4302,4303; got "${v}"`);
  }
  return list.map(Number);
}

export interface LocalChain {
  readonly children: ChildProcess[];
  /** Stops polling for readiness (the children are stopped with the members). */
  close(): void;
}

export function startLocalChain(o: {
  bin: string;
  chain: string;
  dir: string;
  host: string;
  ports: readonly number[];
  endpoints: string;
  pollMs: number;
  isStopping: () => boolean;
  lastWords: (output: string) => string;
  shellWord: (w: string) => string;
}): LocalChain {
  const names = o.ports.map((_, i) => `n${i + 1}`);
  const runs: { name: string; args: string[] }[] = [
    { name: 'master', args: ['chain-master', '--chain', o.chain, '--name', 'master1', '--control', o.endpoints, '--bootstrap-members', String(names.length), '--members-max', String(names.length)] },
    ...names.map((n, i) => ({
      name: n,
      args: ['chain-node', '--chain', o.chain, '--name', n, '--data-dir', join(o.dir, `chain-${o.chain}-${n}`), '--listen', `${o.host}:${o.ports[i]}`, '--control', o.endpoints],
    })),
  ];
  console.log(`chain ${o.chain}: a master and ${names.length} nodes on ${o.ports.map((p) => `${o.host}:${p}`).join(', ')} (logs ${join(o.dir, `chain-${o.chain}-*.log`)})`);
  console.log(`  npx flotilla chain put ${o.chain} greeting hello --control ${o.endpoints}`);
  console.log(`  npx flotilla chain get ${o.chain} greeting --control ${o.endpoints}`);
  console.log(`  npx flotilla chain status ${o.chain} --control ${o.endpoints}`);
  const children = runs.map((r) => {
    const logPath = join(o.dir, `chain-${o.chain}-${r.name}.log`);
    const log = createWriteStream(logPath, { flags: 'a' });
    let tail = '';
    const child = spawn(process.execPath, [o.bin, ...r.args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d: Buffer): void => void (tail = (tail + d.toString()).slice(-4096));
    child.stdout!.on('data', keep).pipe(log);
    child.stderr!.on('data', keep).pipe(log);
    child.on('close', (code, sig) => {
      if (o.isStopping()) return;
      const why = o.lastWords(tail);
      console.log(`chain ${o.chain} ${r.name} exited (${sig ?? `code ${code}`})${why ? `: ${why}` : ''}; see ${logPath}. To restart it (in another terminal):`);
      console.log(`  ${[process.execPath, o.bin, ...r.args].map(o.shellWord).join(' ')}`);
    });
    return child;
  });
  // Ready once the master configured every node (read from the control cluster).
  let closed = false;
  let timer: NodeJS.Timeout | null = null;
  const poll = async (): Promise<void> => {
    const { ChainClient } = await import('../chainnode/client.js');
    const c = new ChainClient({ chain: o.chain, control: o.endpoints.split(',') });
    try {
      while (!closed) {
        const v = await c.status().catch(() => null);
        const m = v?.config?.members ?? [];
        if (m.length === names.length) {
          console.log(`chain ${o.chain} ready: head ${m[0]}, tail ${m[m.length - 1]} (epoch ${v!.config!.epoch})`);
          return;
        }
        await new Promise<void>((r) => (timer = setTimeout(r, o.pollMs)));
      }
    } finally {
      await c.close();
    }
  };
  void poll();
  return {
    children,
    close: () => {
      closed = true;
      if (timer) clearTimeout(timer);
    },
  };
}
