#!/usr/bin/env node
/**
 * Benchmark: CPU time per put on a 3-member cluster, summed over the members (issue 11 item 8).
 *
 *   node bench/write-cpu.js [--ops 2000] [--clients 16] [--rounds 3] [--idle-seconds 3] [--prof DIR]
 *
 * Each round starts a fresh cluster (loopback, temp dirs), writes `--ops` puts (256-byte
 * values, 1,000 keys) from `--clients` gRPC clients against the leader as a warm-up, measures
 * what the idle cluster burns per second (heartbeats, ticks, the backend's batch timer), then
 * the CPU (user + system, /proc) of the three members over `--ops` more puts. It prints the
 * gross CPU per put and the net one (minus the idle rate over the phase's duration): on a
 * machine shared with other work the throughput, and with it the idle share per put, varies
 * from run to run; the net figure does much less. `--prof DIR` runs the members under
 * `node --cpu-prof` (the profiles are written when they stop).
 */
import * as grpc from '@grpc/grpc-js';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { clientConstructor } from '../dist/api/proto.js';
import { cpuMs, freePort, sleep } from './lib.js';

const o = new Command()
  .option('--ops <n>', 'puts in the warm-up and in the measured phase', Number, 2000)
  .option('--clients <n>', 'concurrent clients', Number, 16)
  .option('--rounds <n>', 'clusters, one after the other', Number, 3)
  .option('--idle-seconds <n>', 'how long the idle CPU rate is measured', Number, 3)
  .option('--prof <dir>', 'members run with node --cpu-prof, profiles written to DIR')
  .parse()
  .opts();

const bin = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'flotilla.js');
const KV = clientConstructor('etcdserverpb.KV');
const Maint = clientConstructor('etcdserverpb.Maintenance');
const rpc = (c, method, req, ms = 10_000) => new Promise((resolve, reject) => c[method](req, { deadline: Date.now() + ms }, (e, r) => (e ? reject(e) : resolve(r))));
const cpuSum = (ms) => ms.reduce((a, m) => a + cpuMs(m.proc.pid), 0);

async function cluster(dir) {
  const ms = [];
  for (const name of ['w1', 'w2', 'w3']) ms.push({ name, client: await freePort(), peer: await freePort() });
  const initial = ms.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(',');
  for (const m of ms) {
    const url = (p) => `http://127.0.0.1:${p}`;
    const flags = ['--name', m.name, '--data-dir', join(dir, m.name), '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', 'bench-write-cpu'];
    flags.push('--listen-client-urls', url(m.client), '--advertise-client-urls', url(m.client), '--listen-peer-urls', url(m.peer), '--initial-advertise-peer-urls', url(m.peer));
    const prof = o.prof ? ['--cpu-prof', '--cpu-prof-dir', o.prof, '--cpu-prof-name', `${m.name}-${Date.now()}.cpuprofile`] : [];
    m.proc = spawn(process.execPath, [...prof, bin, 'serve', ...flags], { stdio: 'ignore' });
  }
  for (;;) {
    for (const m of ms) {
      const c = new Maint(`127.0.0.1:${m.client}`, grpc.credentials.createInsecure());
      const s = await rpc(c, 'Status', {}, 500).catch(() => null);
      c.close();
      if (s && s.leader !== '0' && s.leader === s.header.member_id) return { ms, leader: m };
    }
    await sleep(200);
  }
}

/** Puts `o.ops` keys; a request refused in a leader change is retried (the machine may be loaded). */
async function puts(endpoint) {
  const value = Buffer.alloc(256, 7);
  const conns = Array.from({ length: o.clients }, (_, i) => new KV(endpoint, grpc.credentials.createInsecure(), { 'grpc.channel_id': i }));
  let next = 0;
  let retried = 0;
  const t0 = performance.now();
  await Promise.all(
    conns.map(async (c) => {
      while (next < o.ops) {
        const key = Buffer.from(`bench/${next++ % 1000}`);
        for (;;) {
          try {
            await rpc(c, 'Put', { key, value });
            break;
          } catch {
            retried++;
            await sleep(100);
          }
        }
      }
    }),
  );
  conns.forEach((c) => c.close());
  return { secs: (performance.now() - t0) / 1000, retried };
}

const gross = [];
const net = [];
for (let r = 0; r < o.rounds; r++) {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-write-cpu-'));
  const c = await cluster(dir);
  try {
    const ep = `127.0.0.1:${c.leader.client}`;
    await puts(ep);
    const i0 = cpuSum(c.ms);
    await sleep(o.idleSeconds * 1000);
    const idlePerSec = (cpuSum(c.ms) - i0) / o.idleSeconds; // ms of CPU per second
    const p0 = cpuSum(c.ms);
    const { secs, retried } = await puts(ep);
    const cpu = cpuSum(c.ms) - p0;
    gross.push((cpu * 1000) / o.ops);
    net.push(((cpu - idlePerSec * secs) * 1000) / o.ops);
    console.log(
      `round ${r + 1}: ${(o.ops / secs).toFixed(0)} puts/s, member CPU ${gross.at(-1).toFixed(0)} µs per put, ` +
        `${net.at(-1).toFixed(0)} µs net of the idle ${idlePerSec.toFixed(0)} ms/s (3 members${retried ? `; ${retried} retried` : ''})`,
    );
  } finally {
    await Promise.all(
      c.ms.map((m) => {
        const gone = new Promise((res) => m.proc.once('exit', res));
        m.proc.kill('SIGTERM');
        const t = setTimeout(() => m.proc.kill('SIGKILL'), 10_000);
        return gone.then(() => clearTimeout(t));
      }),
    );
    await rm(dir, { recursive: true, force: true });
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
console.log(`median over ${o.rounds}: ${median(gross).toFixed(0)} µs per put gross, ${median(net).toFixed(0)} µs net (${o.clients} clients)`);
