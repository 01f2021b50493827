/**
 * `flotilla start` (what `npm start` runs): a local 3-member cluster, each member its own
 * `flotilla serve` process, on 127.0.0.1:2379/22379/32379 (peers 2380/22380/32380), data under
 * ./data kept across runs. Prints the endpoints and commands to try, members coming up and
 * the leader; Ctrl-C stops the members cleanly.
 */
import * as grpc from '@grpc/grpc-js';
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { clientConstructor } from '../api/proto.js';

const BIN = fileURLToPath(new URL('../../bin/flotilla.js', import.meta.url));
/** How often the leader is polled for the "leader is" lines. */
const POLL_MS = 500;
/** How long members get to stop on Ctrl-C before they are killed. */
const STOP_GRACE_MS = 5000;

interface StartOptions {
  fresh?: boolean;
  dataDir: string;
  clientPorts: string;
  peerPorts: string;
  host: string;
}

function ports(flag: string, v: string): number[] {
  const list = v.split(',').map((s) => s.trim());
  if (list.length !== 3 || list.some((p) => !/^\d+$/.test(p) || Number(p) < 1 || Number(p) > 65535)) {
    throw new Error(`${flag} must be three ports, e.g. 2379,22379,32379; got "${v}"`);
  }
  return list.map(Number);
}

type StatusClient = grpc.Client & { Status(req: object, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: { leader: string; header: { member_id: string; raft_term: string } }) => void): void };

export function registerStart(program: Command): void {
  program
    .command('start')
    .description('run a local 3-member cluster (127.0.0.1:2379, 22379, 32379), data under ./data')
    .option('--fresh', 'delete the data directory first and start an empty cluster')
    .option('--data-dir <dir>', 'where the members keep their data', './data')
    .option('--client-ports <list>', 'the three client ports', '2379,22379,32379')
    .option('--peer-ports <list>', 'the three peer ports', '2380,22380,32380')
    .option('--host <ip>', 'loopback address to listen on', '127.0.0.1')
    .action(async (o: StartOptions) => {
      let client: number[];
      let peer: number[];
      try {
        client = ports('--client-ports', o.clientPorts);
        peer = ports('--peer-ports', o.peerPorts);
      } catch (e) {
        console.error(`flotilla start: ${(e as Error).message}`);
        process.exitCode = 2;
        return;
      }
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

      const children: ChildProcess[] = names.map((n, i) => {
        const log = createWriteStream(join(dir, `${n}.log`), { flags: 'a' });
        const child = spawn(
          process.execPath,
          [
            BIN, 'serve',
            '--name', n,
            '--data-dir', join(dir, n),
            '--listen-client-urls', clientUrl(i),
            '--advertise-client-urls', clientUrl(i),
            '--listen-peer-urls', peerUrl(i),
            '--initial-advertise-peer-urls', peerUrl(i),
            '--initial-cluster', cluster,
            '--initial-cluster-state', 'new',
            '--initial-cluster-token', 'flotilla-local',
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        child.stdout!.pipe(log);
        child.stderr!.pipe(log);
        child.on('exit', (code, sig) => {
          if (!stopping) console.log(`${n} exited (${sig ?? `code ${code}`}); see ${join(dir, `${n}.log`)}`);
        });
        return child;
      });

      let stopping = false;
      const Ctor = clientConstructor('etcdserverpb.Maintenance');
      const clients = client.map((p) => new Ctor(`${o.host}:${p}`, grpc.credentials.createInsecure()) as unknown as StatusClient);
      const up = names.map(() => false);
      let leader = '';
      let ready = false;
      const poll = setInterval(() => {
        clients.forEach((c, i) => {
          c.Status({}, { deadline: Date.now() + POLL_MS }, (err, r) => {
            if (stopping) return;
            if (err || !r) {
              if (up[i]) console.log(`${names[i]} is down`);
              up[i] = false;
              return;
            }
            if (!up[i]) console.log(`${names[i]} is up (member ${BigInt(r.header.member_id).toString(16)})`);
            up[i] = true;
            if (r.leader !== '0' && r.leader !== leader && r.leader === r.header.member_id) {
              leader = r.leader;
              console.log(`leader is ${names[i]} (term ${r.header.raft_term})`);
            }
            if (!ready && up.every(Boolean) && leader) {
              ready = true;
              console.log(`cluster ready: ${endpoints}   (Ctrl-C stops it)`);
            }
          });
        });
      }, POLL_MS);

      const stop = () => {
        if (stopping) return;
        stopping = true;
        clearInterval(poll);
        for (const c of clients) c.close();
        console.log('\nstopping the members...');
        const killTimer = setTimeout(() => children.forEach((ch) => ch.kill('SIGKILL')), STOP_GRACE_MS);
        Promise.all(children.map((ch) => (ch.exitCode !== null || ch.signalCode !== null ? Promise.resolve() : new Promise((r) => ch.once('exit', r))))).then(() => {
          clearTimeout(killTimer);
          console.log('stopped');
          process.exit(0);
        });
        children.forEach((ch) => ch.kill('SIGTERM'));
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
}
