#!/usr/bin/env node
/**
 * Benchmark: commits per second of the 3-process example cluster (examples/counter) over TCP,
 * with real disks (WAL + fdatasync) and loopback networking.
 *
 *   node bench/cluster-throughput.js [--seconds S] [--clients C,C,...] [--dir DIR]
 *
 * Starts three counter members on free loopback ports, waits for a leader, then for each client
 * count C runs C concurrent HTTP clients that each POST /add to the leader one at a time for S
 * seconds. Prints commits per second (acknowledged writes: applied on the leader, so durable on
 * a majority) and the latency distribution. Members are stopped and their data removed at the end.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { freePort, sleep } from './lib.js';

const o = new Command()
  .option('--seconds <s>', 'seconds per client count', Number, 5)
  .option('--clients <list>', 'concurrent clients, comma-separated', '1,16,64,256')
  .option('--dir <dir>', 'where the members keep their data', tmpdir())
  .parse()
  .opts();

const script = join(dirname(fileURLToPath(import.meta.url)), '..', 'examples', 'counter', 'counter.js');

const root = await mkdtemp(join(o.dir, 'flotilla-clusterbench-'));
const members = [];
for (let id = 1; id <= 3; id++) members.push({ id, raft: await freePort(), http: await freePort(), data: join(root, `m${id}`) });
const peers = members.map((m) => `${m.id}=127.0.0.1:${m.raft}`).join(',');
const procs = members.map((m) =>
  spawn(process.execPath, [script, '--id', String(m.id), '--http', String(m.http), '--peers', peers, '--data', m.data, '--cluster', 'bench'], { stdio: ['ignore', 'ignore', 'inherit'] }),
);


async function status(m) {
  try {
    const r = await fetch(`http://127.0.0.1:${m.http}/status`);
    return await r.json();
  } catch {
    return null;
  }
}

async function findLeader() {
  for (let i = 0; i < 200; i++) {
    for (const m of members) {
      const s = await status(m);
      if (s?.role === 'leader') return m;
    }
    await sleep(50);
  }
  throw new Error('no leader within 10 s');
}

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

try {
  const leader = await findLeader();
  const url = `http://127.0.0.1:${leader.http}/add?n=1`;
  // Warm up: the first requests pay for connections and JIT.
  for (let i = 0; i < 200; i++) await fetch(url, { method: 'POST' }).then((r) => r.arrayBuffer());
  console.log(`leader: member ${leader.id}; ${o.seconds} s per case; data under ${o.dir}`);
  console.log('clients  commits/s   p50 ms   p99 ms  max ms  errors');
  for (const c of String(o.clients).split(',').map(Number)) {
    const latencies = [];
    let errors = 0;
    const end = performance.now() + o.seconds * 1000;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: c }, async () => {
        while (performance.now() < end) {
          const s = performance.now();
          const r = await fetch(url, { method: 'POST' });
          await r.arrayBuffer();
          if (r.ok) latencies.push(performance.now() - s);
          else errors++;
        }
      }),
    );
    const secs = (performance.now() - t0) / 1000;
    latencies.sort((a, b) => a - b);
    console.log(
      `${String(c).padStart(7)}  ${(latencies.length / secs).toFixed(0).padStart(9)}  ${pct(latencies, 50).toFixed(2).padStart(7)}  ${pct(latencies, 99).toFixed(2).padStart(7)}  ${latencies[latencies.length - 1].toFixed(1).padStart(6)}  ${errors}`,
    );
  }
} finally {
  for (const p of procs) p.kill('SIGTERM');
  await sleep(300);
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  await rm(root, { recursive: true, force: true });
}
