/**
 * `flotilla start` (what `npm start` runs): a local 3-member cluster, each member its own
 * `flotilla serve` process, on 127.0.0.1:2379/22379/32379 (peers 2380/22380/32380), data under
 * ./data kept across runs. Prints the endpoints and commands to try, members coming up and
 * the leader; Ctrl-C stops the members cleanly.
 *
 * It reports `cluster ready` only once each of its own three processes is alive and has
 * answered on its client port with the member and cluster id computed from its configuration
 * (another process holding a port is not taken for a member). A member that exits is reported
 * with its own last words (`fatal: ...`) and exit code; before the cluster was ready that ends
 * `flotilla start` too (the others are stopped; exit code EXIT_MEMBER_EXITED).
 *
 * With --chain NAME, once the cluster is ready it also starts a local 3-node chain with its
 * master, the cluster as its control plane (start-chain.ts).
 */
import type * as grpc from '@grpc/grpc-js';
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { RawConfig } from '../server/config.js';

const BIN = fileURLToPath(new URL('../../bin/flotilla.js', import.meta.url));
/** How often the leader is polled for the "leader is" lines. */
const POLL_MS = 500;
/** How long members get to stop on Ctrl-C before they are killed. */
const STOP_GRACE_MS = 5000;
/** Exit code when one of the members exited before the cluster was ready. */
export const EXIT_MEMBER_EXITED = 1;
/** Characters of each member's output kept in memory to report why it exited. */
const OUTPUT_TAIL_CHARS = 4096;

interface StartOptions {
  fresh?: boolean;
  dataDir: string;
  clientPorts: string;
  peerPorts: string;
  host: string;
  chain?: string;
  chainPorts: string;
}

/** A word as a POSIX shell reads it back: bare when safe, single-quoted otherwise. */
function shellWord(w: string): string {
  return /^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}

function ports(flag: string, v: string): number[] {
  const list = v.split(',').map((s) => s.trim());
  if (list.length !== 3 || list.some((p) => !/^\d+$/.test(p) || Number(p) < 1 || Number(p) > 65535)) {
    throw new Error(`${flag} must be three ports, e.g. 2379,22379,32379; got "${v}"`);
  }
  return list.map(Number);
}

type StatusClient = grpc.Client & {
  Status(req: object, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: { leader: string; header: { cluster_id: string; member_id: string; raft_term: string } }) => void): void;
};

/** The last `fatal: ...` line of a member's output (its own account of why it ended), or its last line. */
export function lastWords(output: string): string {
  const lines = output.split('\n').map((l) => l.trim()).filter(Boolean);
  const fatal = lines.filter((l) => l.includes('fatal: ')).at(-1);
  if (fatal) return fatal.slice(fatal.indexOf('fatal: '));
  return lines.at(-1) ?? '';
}

export function registerStart(program: Command): void {
  program
    .command('start')
    .description('run a local 3-member cluster (127.0.0.1:2379, 22379, 32379), data under ./data')
    .option('--fresh', 'delete the data directory first and start an empty cluster')
    .option('--data-dir <dir>', 'where the members keep their data', './data')
    .option('--client-ports <list>', 'the three client ports', '2379,22379,32379')
    .option('--peer-ports <list>', 'the three peer ports', '2380,22380,32380')
    .option('--host <ip>', 'loopback address to listen on', '127.0.0.1')
    .option('--chain <name>', 'also start a local 3-node chain (chain replication) with its master, this cluster as its control plane')
    .option('--chain-ports <list>', 'with --chain: the three chain nodes\' ports', '4301,4302,4303')
    .action(async (o: StartOptions) => {
      let client: number[];
      let peer: number[];
      let chainPortList: number[] = [];
      try {
        client = ports('--client-ports', o.clientPorts);
        peer = ports('--peer-ports', o.peerPorts);
        if (o.chain !== undefined) {
          const { checkChainName } = await import('../chainnode/control.js');
          checkChainName(o.chain, '--chain');
          chainPortList = (await import('./start-chain.js')).chainPorts(o.chainPorts);
        }
      } catch (e) {
        console.error(`flotilla start: ${(e as Error).message}`);
        process.exitCode = 2;
        return;
      }
      // Loaded here, not at the top: the other commands start without gRPC and the server's modules.
      const { credentials } = await import('@grpc/grpc-js');
      const { clientConstructor } = await import('../api/proto.js');
      const { resolveConfig } = await import('../server/config.js');
      const dir = resolve(o.dataDir);
      if (o.fresh) rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      const names = ['node1', 'node2', 'node3'];
      const peerUrl = (i: number) => `http://${o.host}:${peer[i]}`;
      const clientUrl = (i: number) => `http://${o.host}:${client[i]}`;
      const cluster = names.map((n, i) => `${n}=${peerUrl(i)}`).join(',');
      const endpoints = client.map((p) => `${o.host}:${p}`).join(',');
      console.log(`Flotilla: a local 3-member cluster, data in ${dir}${o.fresh ? ' (fresh)' : ''}`);
      names.forEach((n, i) => console.log(`  ${n}: client ${clientUrl(i)}  peer ${peerUrl(i)}  log ${join(dir, `${n}.log`)}`));
      console.log('\nTry:');
      console.log(`  etcdctl --endpoints=${endpoints} put greeting hello`);
      console.log(`  etcdctl --endpoints=${endpoints} get greeting -w json`);
      console.log(`  npx flotilla endpoint status --cluster --endpoints ${endpoints}`);
      console.log(`  npx flotilla watch greeting --endpoints ${endpoints}`);
      console.log('');

      // One configuration per member: its flags, and the member and cluster ids it must answer with.
      const raws: RawConfig[] = names.map((n, i) => ({
        name: n,
        dataDir: join(dir, n),
        listenClientUrls: clientUrl(i),
        advertiseClientUrls: clientUrl(i),
        listenPeerUrls: peerUrl(i),
        initialAdvertisePeerUrls: peerUrl(i),
        initialCluster: cluster,
        initialClusterState: 'new',
        initialClusterToken: 'flotilla-local',
      }));
      const expected = raws.map((r) => {
        const c = resolveConfig(r);
        return { memberId: c.self.id.toString(), clusterId: c.clusterId.toString() };
      });
      const flags = (r: RawConfig): string[] =>
        Object.entries(r).flatMap(([k, v]) => [`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`, String(v)]);

      let stopping = false;
      let ready = false;
      let chain: { close(): void } | null = null;
      const tails = names.map(() => '');
      const alive = (ch: ChildProcess) => ch.exitCode === null && ch.signalCode === null;
      const children: ChildProcess[] = names.map((n, i) => {
        const logPath = join(dir, `${n}.log`);
        const log = createWriteStream(logPath, { flags: 'a' });
        const child = spawn(process.execPath, [BIN, 'serve', ...flags(raws[i]!)], { stdio: ['ignore', 'pipe', 'pipe'] });
        const keep = (d: Buffer) => (tails[i] = (tails[i] + d.toString()).slice(-OUTPUT_TAIL_CHARS));
        child.stdout!.on('data', keep).pipe(log);
        child.stderr!.on('data', keep).pipe(log);
        // 'close' (not 'exit'): the member's last output has been read by then.
        child.on('close', (code, sig) => {
          if (stopping) return;
          const why = lastWords(tails[i]!);
          console.log(`${n} exited (${sig ?? `code ${code}`})${why ? `: ${why}` : ''}; see ${logPath}`);
          if (!ready) {
            console.log(`flotilla start: ${n} exited before the cluster was ready; stopping the others`);
            stop(EXIT_MEMBER_EXITED);
          } else {
            const left = children.filter(alive).length;
            console.log(`the cluster runs on with ${left} of ${names.length} members${left < 2 ? ' (no quorum: it cannot serve)' : ''}; Ctrl-C stops it. To restart ${n} with its data (in another terminal; Ctrl-C here does not stop it then):`);
            console.log(`  ${[process.execPath, BIN, 'serve', ...flags(raws[i]!)].map(shellWord).join(' ')}`);
          }
        });
        return child;
      });

      const Ctor = clientConstructor('etcdserverpb.Maintenance');
      const clients = client.map((p) => new Ctor(`${o.host}:${p}`, credentials.createInsecure()) as unknown as StatusClient);
      const up = names.map(() => false);
      const impostor = names.map(() => false);
      let leader = '';
      const poll = setInterval(() => {
        clients.forEach((c, i) => {
          c.Status({}, { deadline: Date.now() + POLL_MS }, (err, r) => {
            if (stopping) return;
            // Before the cluster is ready only its own processes count; afterwards a member
            // restarted by hand (the command printed when it exited) is welcomed back by its ids.
            if (err || !r || (!ready && !alive(children[i]!))) {
              if (up[i]) console.log(`${names[i]} is down`);
              up[i] = false;
              return;
            }
            const want = expected[i]!;
            if (r.header.member_id !== want.memberId || r.header.cluster_id !== want.clusterId) {
              // Someone else answers on this member's port (another cluster holds it).
              if (!impostor[i]) {
                console.log(
                  `${names[i]}: ${clientUrl(i)} is answered by another server (member ${BigInt(r.header.member_id).toString(16)} of cluster ${BigInt(r.header.cluster_id).toString(16)}), not by the member started here (${BigInt(want.memberId).toString(16)} of ${BigInt(want.clusterId).toString(16)})`,
                );
              }
              impostor[i] = true;
              up[i] = false;
              return;
            }
            impostor[i] = false;
            if (!up[i]) console.log(`${names[i]} is up (member ${BigInt(r.header.member_id).toString(16)})`);
            up[i] = true;
            if (r.leader !== '0' && r.leader !== leader && r.leader === r.header.member_id) {
              leader = r.leader;
              console.log(`leader is ${names[i]} (term ${r.header.raft_term})`);
            }
            if (!ready && up.every(Boolean) && leader) {
              ready = true;
              console.log(`cluster ready: ${endpoints}   (Ctrl-C stops it)`);
              console.log(`dashboard: ${clientUrl(0)}/ui/   (every member serves it at /ui/)`);
              if (o.chain !== undefined) {
                const name = o.chain;
                void import('./start-chain.js').then(({ startLocalChain }) => {
                  if (stopping) return;
                  const c = startLocalChain({ bin: BIN, chain: name, dir, host: o.host, ports: chainPortList, endpoints, pollMs: POLL_MS, isStopping: () => stopping, lastWords, shellWord });
                  chain = c;
                  children.push(...c.children);
                });
              }
            }
          });
        });
      }, POLL_MS);

      function stop(code: number): void {
        if (stopping) return;
        stopping = true;
        clearInterval(poll);
        chain?.close();
        for (const c of clients) c.close();
        console.log('\nstopping the members...');
        const killTimer = setTimeout(() => children.forEach((ch) => ch.kill('SIGKILL')), STOP_GRACE_MS);
        Promise.all(children.map((ch) => (alive(ch) ? new Promise((r) => ch.once('exit', r)) : Promise.resolve()))).then(() => {
          clearTimeout(killTimer);
          console.log('stopped');
          process.exit(code);
        });
        children.forEach((ch) => ch.kill('SIGTERM'));
      }
      process.on('SIGINT', () => stop(0));
      process.on('SIGTERM', () => stop(0));
    });
}
