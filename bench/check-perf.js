#!/usr/bin/env node
/**
 * Benchmark: `etcdctl check perf` against a 3-member cluster on this machine, its verdicts as
 * etcdctl prints them (throughput at 90% of the rate asked for, slowest request, spread).
 *
 *   node bench/check-perf.js [--load s] [--kinds flotilla,etcd] [--etcd /usr/bin/etcd] [--etcdctl /usr/bin/etcdctl]
 *
 * Each kind: a fresh cluster (separate processes, loopback, real disks in a temp dir, default
 * timings), `etcdctl check perf --load=L` against all three endpoints, then the cluster is
 * stopped. Prints, per kind, etcdctl's verdict lines and the share of one core that other
 * processes used meanwhile (the figures mean something on a quiet machine only).
 * test/etcdctl-perf.test.ts asserts the latency verdicts only when that share is small.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { cpuMs, sleep, spawnCluster } from './lib.js';

const o = new Command()
  .option('--load <l>', "etcdctl's --load: s, m, l, xl", 's')
  .option('--kinds <list>', 'clusters to run, in order: flotilla, etcd', 'flotilla')
  .option('--etcd <path>', 'etcd binary', '/usr/bin/etcd')
  .option('--etcdctl <path>', 'etcdctl binary', '/usr/bin/etcdctl')
  .parse()
  .opts();

const bin = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'flotilla.js');

function machineBusyMs() {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = cpu;
  return (user + nice + system + irq + softirq + steal) * 10;
}

async function startCluster(kind, dir) {
  const members = await spawnCluster(kind, dir, (args) => (kind === 'etcd' ? [o.etcd, args] : [process.execPath, [bin, 'serve', ...args]]));
  const endpoints = members.map((m) => `127.0.0.1:${m.client}`).join(',');
  // Healthy: etcdctl's own check, through every endpoint.
  for (;;) {
    const r = await etcdctl(['endpoint', 'health', `--endpoints=${endpoints}`]);
    if (r.code === 0) return { members, endpoints };
    await sleep(300);
  }
}

function etcdctl(args) {
  return new Promise((resolve) => {
    const p = spawn(o.etcdctl, args, { env: { ...process.env, ETCDCTL_API: '3' } });
    let out = '';
    p.stdout.on('data', (b) => (out += b));
    p.stderr.on('data', (b) => (out += b));
    p.on('close', (code) => resolve({ code, out, pid: p.pid }));
  });
}

const dir = await mkdtemp(join(tmpdir(), 'flotilla-check-perf-'));
try {
  for (const kind of o.kinds.split(',')) {
    const c = await startCluster(kind, dir);
    const pids = c.members.map((m) => m.proc.pid);
    const ours0 = pids.reduce((n, p) => n + cpuMs(p), 0) + process.cpuUsage().user / 1000 + process.cpuUsage().system / 1000;
    const busy0 = machineBusyMs();
    const t0 = performance.now();
    const child0 = readChildrenMs();
    const r = await etcdctl(['check', 'perf', `--load=${o.load}`, `--endpoints=${c.endpoints}`]);
    const wall = performance.now() - t0;
    const ours = pids.reduce((n, p) => n + cpuMs(p), 0) + process.cpuUsage().user / 1000 + process.cpuUsage().system / 1000 + (readChildrenMs() - child0) - ours0;
    const other = (machineBusyMs() - busy0 - ours) / wall;
    const verdicts = r.out.split(/\r|\n/).filter((l) => /PASS|FAIL|took too long|too low|too high/.test(l));
    console.log(`${kind}: etcdctl check perf --load=${o.load}: exit ${r.code}; ${verdicts.join(' | ')}; other processes used ${(Math.max(0, other) * 100).toFixed(0)}% of a core; load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
    for (const m of c.members) m.proc.kill('SIGKILL');
    await sleep(500);
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}

/** CPU ms of this process's waited-for children (etcdctl), from /proc/self/stat. */
function readChildrenMs() {
  const s = readFileSync('/proc/self/stat', 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ').map(Number);
  return (f[13] + f[14]) * 10;
}
