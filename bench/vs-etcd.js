#!/usr/bin/env node
/**
 * Benchmark: Flotilla against real etcd on the same machine, same client, same workload.
 *
 *   node bench/vs-etcd.js [--seconds S] [--clients 1,16,64] [--etcd /usr/bin/etcd] [--kinds etcd,flotilla]
 *                         [--rounds N] [--warmup S] [--base DIR] [--ops put,get]
 *
 * --kinds picks the clusters, in order: etcd, flotilla, flotilla-noclocks (Flotilla with
 * --trace-clocks=false: the A/B for the cost of logical clocks on peer traffic), and
 * flotilla-base (the build in --base DIR: another checkout or a copy of one with its dist/,
 * bin/ and node_modules, for an A/B of two builds in the same window). --rounds runs
 * them N times, the order reversed every other round (A B, B A, ...), and the ratios are of the
 * medians: the cluster measured first must not always be the one measured on a cold client.
 * Each cluster first gets --warmup seconds of puts and gets (not counted), which also warms up
 * this process's gRPC client code.
 *
 * Starts a 3-member cluster of each (separate processes, loopback, real disks in a temp dir,
 * default timings), then for each client count runs that many concurrent gRPC clients (one
 * HTTP/2 connection each) doing back-to-back puts (256-byte values, 1,000 keys) against the
 * leader, then linearizable gets, for S seconds each. Prints operations per second and
 * latency percentiles, and the Flotilla/etcd ratio.
 */
import * as grpc from '@grpc/grpc-js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { clientConstructor } from '../dist/api/proto.js';
import { sleep, spawnCluster } from './lib.js';

const o = new Command()
  .option('--seconds <s>', 'seconds per case', Number, 5)
  .option('--clients <list>', 'concurrent clients per case', '1,16,64')
  .option('--etcd <path>', 'etcd binary', '/usr/bin/etcd')
  .option('--kinds <list>', 'clusters to run: etcd, flotilla, flotilla-noclocks', 'etcd,flotilla')
  .option('--rounds <n>', 'times each cluster kind is run, order reversed every other round', Number, 1)
  .option('--warmup <s>', 'seconds of puts and then gets on each cluster before measuring', Number, 1)
  .option('--base <dir>', 'checkout whose bin/flotilla.js runs the flotilla-base kind')
  .option('--ops <list>', 'operations to measure, in order: put, get', 'put,get')
  .parse()
  .opts();

const bin = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'flotilla.js');
const KV = clientConstructor('etcdserverpb.KV');
const Maint = clientConstructor('etcdserverpb.Maintenance');
const call = (c, method, req, ms = 5000) => new Promise((resolve, reject) => c[method](req, { deadline: Date.now() + ms }, (e, r) => (e ? reject(e) : resolve(r))));

async function startCluster(kind, dir) {
  const flotilla = kind === 'flotilla-base' ? join(o.base, 'bin', 'flotilla.js') : bin;
  const members = await spawnCluster(kind, dir, (args) => {
    if (kind === 'flotilla-noclocks') args.push('--trace-clocks', 'false');
    return kind === 'etcd' ? [o.etcd, args] : [process.execPath, [flotilla, 'serve', ...args]];
  });
  // Wait for a leader that commits.
  for (;;) {
    for (const m of members) {
      const c = new Maint(`127.0.0.1:${m.client}`, grpc.credentials.createInsecure());
      try {
        const s = await call(c, 'Status', {}, 500);
        if (s.leader !== '0' && s.leader === s.header.member_id) {
          const kv = new KV(`127.0.0.1:${m.client}`, grpc.credentials.createInsecure());
          await call(kv, 'Put', { key: Buffer.from('warm'), value: Buffer.from('1') });
          kv.close();
          c.close();
          return { members, leader: m };
        }
      } catch {
        // not yet
      } finally {
        c.close();
      }
    }
    await sleep(200);
  }
}

async function run(endpoint, clients, seconds, op) {
  const value = Buffer.alloc(256, 7);
  const conns = Array.from({ length: clients }, (_, i) => new KV(endpoint, grpc.credentials.createInsecure(), { 'grpc.channel_id': i }));
  const lat = [];
  const until = performance.now() + seconds * 1000;
  await Promise.all(
    conns.map(async (c, i) => {
      let n = 0;
      while (performance.now() < until) {
        const key = Buffer.from(`bench/${(i * 7919 + n++) % 1000}`);
        const t0 = performance.now();
        if (op === 'put') await call(c, 'Put', { key, value });
        else await call(c, 'Range', { key });
        lat.push(performance.now() - t0);
      }
    }),
  );
  conns.forEach((c) => c.close());
  lat.sort((a, b) => a - b);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
  return { ops: lat.length / seconds, p50: q(0.5), p99: q(0.99) };
}

const dir = await mkdtemp(join(tmpdir(), 'flotilla-vs-etcd-'));
const clusters = [];
try {
  const results = {};
  const kinds = String(o.kinds).split(',');
  const counts = String(o.clients).split(',').map(Number);
  const opsList = String(o.ops).split(',');
  if (kinds.includes('flotilla-base') && !o.base) throw new Error('--kinds flotilla-base needs --base DIR');
  const median = (xs) => {
    const v = [...xs].sort((a, b) => a - b);
    return v.length % 2 ? v[v.length >> 1] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  };
  for (let round = 0; round < o.rounds; round++) {
    for (const kind of round % 2 === 0 ? kinds : [...kinds].reverse()) {
      const c = await startCluster(kind, join(dir, String(clusters.length)));
      clusters.push(c);
      const ep = `127.0.0.1:${c.leader.client}`;
      if (o.warmup > 0) for (const op of opsList) await run(ep, Math.max(...counts), o.warmup, op);
      for (const op of opsList) {
        for (const n of counts) {
          const r = await run(ep, n, o.seconds, op);
          (results[`${kind} ${op} ${n}`] ??= []).push(r);
          console.log(`${o.rounds > 1 ? `round ${round + 1} ` : ''}${kind.padEnd(17)} ${op} ${String(n).padStart(3)} clients: ${r.ops.toFixed(0).padStart(7)} ops/s  p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms`);
        }
      }
      for (const m of c.members) m.proc.kill('SIGKILL');
    }
  }
  const ops = (key) => median(results[key].map((r) => r.ops));
  const p99 = (key) => median(results[key].map((r) => r.p99));
  for (const [a, b] of [['flotilla', 'etcd'], ['flotilla-base', 'etcd'], ['flotilla', 'flotilla-base'], ['flotilla', 'flotilla-noclocks']]) {
    if (!kinds.includes(a) || !kinds.includes(b)) continue;
    console.log(`\n${a} / ${b} (ops/s${o.rounds > 1 ? `, medians of ${o.rounds} rounds` : ''}):`);
    for (const op of opsList) {
      for (const n of counts) {
        console.log(`  ${op} ${String(n).padStart(3)} clients: ${(ops(`${a} ${op} ${n}`) / ops(`${b} ${op} ${n}`)).toFixed(2)}  (p99 ${p99(`${a} ${op} ${n}`).toFixed(2)} vs ${p99(`${b} ${op} ${n}`).toFixed(2)} ms)`);
      }
    }
  }
} finally {
  for (const c of clusters) for (const m of c.members) m.proc.kill('SIGKILL');
  await sleep(300);
  await rm(dir, { recursive: true, force: true });
}
