#!/usr/bin/env node
/**
 * Benchmark: the cost of auth. Put throughput with auth off, then on, for Flotilla and for
 * real etcd on the same machine, same client, same workload.
 *
 *   node bench/auth-throughput.js [--seconds S] [--clients 64] [--rounds 2] [--etcd /usr/bin/etcd] [--only flotilla|etcd]
 *
 * For each system: a 3-member cluster (separate processes, loopback, real disks in a temp dir,
 * default timings, simple tokens); `--clients` concurrent gRPC clients (one HTTP/2 connection
 * each) doing back-to-back puts (256-byte values, 1,000 keys under bench/) against the leader
 * for S seconds with auth off. Then root and a user `bench` with READWRITE on the bench/ prefix
 * are added, auth is enabled, every client authenticates once, and the same run is repeated with
 * the token in each call's metadata (every put checked against the user's permissions at apply).
 * Off and on alternate `--rounds` times on the same cluster (auth disabled again between them).
 * Prints ops/s, latency percentiles and the three members' CPU time (user + system, from /proc)
 * per acknowledged put, and the on/off ratios per system: on a shared machine throughput is set
 * by contention, CPU per operation much less so.
 */
import * as grpc from '@grpc/grpc-js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { clientConstructor } from '../dist/api/proto.js';
import { cpuMs, sleep, spawnCluster } from './lib.js';

const o = new Command()
  .option('--seconds <s>', 'seconds per case', Number, 5)
  .option('--clients <n>', 'concurrent clients', Number, 64)
  .option('--rounds <n>', 'off/on alternations', Number, 2)
  .option('--etcd <path>', 'etcd binary', '/usr/bin/etcd')
  .option('--only <system>', 'flotilla or etcd')
  .parse()
  .opts();

const bin = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'flotilla.js');
const KV = clientConstructor('etcdserverpb.KV');
const Auth = clientConstructor('etcdserverpb.Auth');
const Maint = clientConstructor('etcdserverpb.Maintenance');
const call = (c, method, req, md = new grpc.Metadata(), ms = 5000) => new Promise((resolve, reject) => c[method](req, md, { deadline: Date.now() + ms }, (e, r) => (e ? reject(e) : resolve(r))));

async function startCluster(kind, dir) {
  const members = await spawnCluster(kind, dir, (args) => (kind === 'etcd' ? [o.etcd, args] : [process.execPath, [bin, 'serve', ...args]]));
  for (;;) {
    for (const m of members) {
      const c = new Maint(`127.0.0.1:${m.client}`, grpc.credentials.createInsecure());
      try {
        const s = await call(c, 'Status', {}, undefined, 500);
        if (s.leader !== '0' && s.leader === s.header.member_id) {
          const kv = new KV(`127.0.0.1:${m.client}`, grpc.credentials.createInsecure());
          await call(kv, 'Put', { key: Buffer.from('warm'), value: Buffer.from('1') });
          kv.close();
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

/** run() with the members' CPU time per acknowledged put, ms. */
async function measured(c, endpoint, clients, seconds, tokens) {
  const cpu = () => c.members.reduce((a, m) => a + cpuMs(m.proc.pid), 0);
  const cpu0 = cpu();
  const r = await run(endpoint, clients, seconds, tokens);
  return { ...r, cpuMsPerOp: (cpu() - cpu0) / (r.ops * seconds) };
}

async function run(endpoint, clients, seconds, tokens) {
  const value = Buffer.alloc(256, 7);
  const conns = Array.from({ length: clients }, (_, i) => new KV(endpoint, grpc.credentials.createInsecure(), { 'grpc.channel_id': i }));
  const mds = conns.map((_, i) => {
    const md = new grpc.Metadata();
    if (tokens) md.set('token', tokens[i]);
    return md;
  });
  const lat = [];
  let errors = 0;
  const until = performance.now() + seconds * 1000;
  await Promise.all(
    conns.map(async (c, i) => {
      let n = 0;
      while (performance.now() < until) {
        const key = Buffer.from(`bench/${(i * 7919 + n++) % 1000}`);
        const t0 = performance.now();
        try {
          await call(c, 'Put', { key, value }, mds[i]);
          lat.push(performance.now() - t0);
        } catch {
          errors++;
        }
      }
    }),
  );
  conns.forEach((c) => c.close());
  lat.sort((a, b) => a - b);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN;
  return { ops: lat.length / seconds, p50: q(0.5), p99: q(0.99), errors };
}

async function authOn(endpoint, clients, first) {
  const a = new Auth(endpoint, grpc.credentials.createInsecure());
  if (first) {
    await call(a, 'UserAdd', { name: 'root', password: 'rootpw' });
    await call(a, 'UserGrantRole', { user: 'root', role: 'root' });
    await call(a, 'RoleAdd', { name: 'bench' });
    await call(a, 'RoleGrantPermission', { name: 'bench', perm: { permType: 'READWRITE', key: Buffer.from('bench/'), range_end: Buffer.from('bench0') } });
    await call(a, 'UserAdd', { name: 'bench', password: 'benchpw' });
    await call(a, 'UserGrantRole', { user: 'bench', role: 'bench' });
  }
  await call(a, 'AuthEnable', {});
  const tokens = [];
  for (let i = 0; i < clients; i++) tokens.push((await call(a, 'Authenticate', { name: 'bench', password: 'benchpw' }, undefined, 30_000)).token);
  a.close();
  return tokens;
}

async function authOff(endpoint) {
  const a = new Auth(endpoint, grpc.credentials.createInsecure());
  const { token } = await call(a, 'Authenticate', { name: 'root', password: 'rootpw' });
  const md = new grpc.Metadata();
  md.set('token', token);
  await call(a, 'AuthDisable', {}, md);
  a.close();
}

const dir = await mkdtemp(join(tmpdir(), 'flotilla-auth-bench-'));
const clusters = [];
const fmt = (r) => `${r.ops.toFixed(0).padStart(6)} ops/s  p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms  server CPU ${r.cpuMsPerOp.toFixed(3)} ms/put${r.errors ? `  (${r.errors} errors)` : ''}`;
try {
  const summary = [];
  for (const kind of o.only ? [o.only] : ['etcd', 'flotilla']) {
    const c = await startCluster(kind, dir);
    clusters.push(c);
    const ep = `127.0.0.1:${c.leader.client}`;
    const off = [];
    const on = [];
    const offCpu = [];
    const onCpu = [];
    for (let round = 0; round < o.rounds; round++) {
      const r0 = await measured(c, ep, o.clients, o.seconds, null);
      off.push(r0.ops);
      offCpu.push(r0.cpuMsPerOp);
      console.log(`${kind.padEnd(8)} round ${round + 1} auth off: ${fmt(r0)}`);
      const tokens = await authOn(ep, o.clients, round === 0);
      const r1 = await measured(c, ep, o.clients, o.seconds, tokens);
      on.push(r1.ops);
      onCpu.push(r1.cpuMsPerOp);
      console.log(`${kind.padEnd(8)} round ${round + 1} auth on:  ${fmt(r1)}`);
      await authOff(ep);
    }
    const avg = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
    summary.push(`${kind}: off ${avg(off).toFixed(0)} ops/s, on ${avg(on).toFixed(0)} ops/s, on/off ${(avg(on) / avg(off)).toFixed(2)}; server CPU ${avg(offCpu).toFixed(3)} -> ${avg(onCpu).toFixed(3)} ms/put, on/off ${(avg(onCpu) / avg(offCpu)).toFixed(2)}`);
    for (const m of c.members) m.proc.kill('SIGKILL');
  }
  console.log(`\n${o.clients} clients, puts, mean over ${o.rounds} rounds:`);
  for (const s of summary) console.log(`  ${s}`);
} finally {
  for (const c of clusters) for (const m of c.members) m.proc.kill('SIGKILL');
  await sleep(300);
  await rm(dir, { recursive: true, force: true });
}
