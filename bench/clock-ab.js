#!/usr/bin/env node
/**
 * Benchmark: the cost of logical clocks on a real 3-member cluster, as CPU per operation.
 *
 *   node bench/clock-ab.js [--ops 3000] [--clients 16] [--rounds 2] [--clocks both|on|off] [--prof DIR]
 *
 * --clocks on (or off) runs only that kind, once per round: a whole process to time from
 * outside (the members are waited for after SIGTERM, so their CPU time is this process's
 * children's), e.g. `/usr/bin/time -v node bench/clock-ab.js --clocks on --rounds 1` against
 * the same with off. --prof runs the members under `node --cpu-prof` (profiles in DIR).
 *
 * Starts 3-member Flotilla clusters (loopback, temp dirs) alternately with clocks on (the
 * default) and off (--trace-clocks=false), runs a fixed number of puts (256-byte values) and
 * then linearizable gets from `--clients` concurrent gRPC clients against the leader, and reads
 * the CPU time (user + system, from /proc) the three member processes spent on them. CPU per
 * operation hardly depends on what else the machine runs; throughput on a shared machine does
 * (bench/vs-etcd.js --kinds flotilla,flotilla-noclocks measures that too).
 */
import * as grpc from '@grpc/grpc-js';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { clientConstructor } from '../dist/api/proto.js';
import { freePort, sleep } from './lib.js';

const o = new Command()
  .option('--ops <n>', 'operations per phase (puts, then gets)', Number, 3000)
  .option('--clients <n>', 'concurrent clients', Number, 16)
  .option('--rounds <n>', 'on/off pairs', Number, 2)
  .option('--clocks <which>', 'both (alternating), on or off (one cluster kind: a whole process to time from outside)', 'both')
  .option('--prof <dir>', 'members run with node --cpu-prof, profiles written to DIR when they stop')
  .parse()
  .opts();

const bin = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'flotilla.js');
const KV = clientConstructor('etcdserverpb.KV');
const Maint = clientConstructor('etcdserverpb.Maintenance');
const call = (c, method, req, ms = 10_000) => new Promise((resolve, reject) => c[method](req, { deadline: Date.now() + ms }, (e, r) => (e ? reject(e) : resolve(r))));
/** CPU seconds (user + system) of a process so far. */
const cpuOf = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
};

async function startCluster(dir, clocks) {
  const members = [];
  for (let i = 0; i < 3; i++) members.push({ name: `m${i + 1}`, client: await freePort(), peer: await freePort() });
  const initial = members.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(',');
  for (const m of members) {
    const args = [
      '--name', m.name, '--data-dir', join(dir, m.name),
      '--listen-client-urls', `http://127.0.0.1:${m.client}`, '--advertise-client-urls', `http://127.0.0.1:${m.client}`,
      '--listen-peer-urls', `http://127.0.0.1:${m.peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${m.peer}`,
      '--initial-cluster', initial, '--initial-cluster-token', 'bench-clocks', '--initial-cluster-state', 'new',
      '--trace-clocks', String(clocks),
    ];
    const prof = o.prof ? ['--cpu-prof', '--cpu-prof-dir', o.prof, '--cpu-prof-name', `${clocks ? 'on' : 'off'}-${m.name}-${Date.now()}.cpuprofile`] : [];
    m.proc = spawn(process.execPath, [...prof, bin, 'serve', ...args], { stdio: 'ignore' });
  }
  for (;;) {
    for (const m of members) {
      const c = new Maint(`127.0.0.1:${m.client}`, grpc.credentials.createInsecure());
      try {
        const s = await call(c, 'Status', {}, 500);
        if (s.leader !== '0' && s.leader === s.header.member_id) return { members, leader: m };
      } catch {
        // not yet
      } finally {
        c.close();
      }
    }
    await sleep(200);
  }
}

async function phase(endpoint, op) {
  const value = Buffer.alloc(256, 7);
  const conns = Array.from({ length: o.clients }, (_, i) => new KV(endpoint, grpc.credentials.createInsecure(), { 'grpc.channel_id': i }));
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    conns.map(async (c) => {
      while (next < o.ops) {
        const key = Buffer.from(`bench/${next++ % 1000}`);
        if (op === 'put') await call(c, 'Put', { key, value });
        else await call(c, 'Range', { key });
      }
    }),
  );
  conns.forEach((c) => c.close());
  return (performance.now() - t0) / 1000;
}

const rows = [];
for (let r = 0; r < o.rounds; r++) {
  for (const clocks of o.clocks === 'both' ? [true, false] : [o.clocks === 'on']) {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-clock-ab-'));
    const c = await startCluster(dir, clocks);
    try {
      const ep = `127.0.0.1:${c.leader.client}`;
      await phase(ep, 'put'); // warm-up (and the same store size for the measured phase)
      for (const op of ['put', 'get']) {
        const before = c.members.map((m) => cpuOf(m.proc.pid));
        const secs = await phase(ep, op);
        const cpu = c.members.map((m, i) => cpuOf(m.proc.pid) - before[i]).reduce((a, b) => a + b, 0);
        const row = { clocks, op, opsPerSec: o.ops / secs, cpuUsPerOp: (cpu * 1e6) / o.ops };
        rows.push(row);
        console.log(`clocks ${clocks ? 'on ' : 'off'} ${op}: ${row.opsPerSec.toFixed(0).padStart(6)} ops/s, member CPU ${row.cpuUsPerOp.toFixed(0)} µs per op (3 members)`);
      }
    } finally {
      // SIGTERM: a member stops cleanly (and writes its CPU profile); waited for, so its CPU
      // time counts in this process's children.
      await Promise.all(
        c.members.map((m) => {
          const gone = new Promise((r) => m.proc.once('exit', r));
          m.proc.kill('SIGTERM');
          const t = setTimeout(() => m.proc.kill('SIGKILL'), 10_000);
          return gone.then(() => clearTimeout(t));
        }),
      );
      await rm(dir, { recursive: true, force: true });
    }
  }
}
if (o.clocks !== 'both') process.exit(0);
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
for (const op of ['put', 'get']) {
  const on = rows.filter((x) => x.op === op && x.clocks);
  const off = rows.filter((x) => x.op === op && !x.clocks);
  console.log(
    `${op}: CPU per op ${mean(off.map((x) => x.cpuUsPerOp)).toFixed(0)} µs off -> ${mean(on.map((x) => x.cpuUsPerOp)).toFixed(0)} µs on; ` +
      `ops/s ${mean(off.map((x) => x.opsPerSec)).toFixed(0)} off, ${mean(on.map((x) => x.opsPerSec)).toFixed(0)} on`,
  );
}
