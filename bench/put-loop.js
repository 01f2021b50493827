#!/usr/bin/env node
/**
 * Benchmark: one client's sequential puts on a fresh 3-member cluster, with each member's CPU
 * and context switches per put (issue 11 item 8).
 *
 *   node bench/put-loop.js [--puts 300] [--root DIR]
 *
 * Starts the cluster from `--root` (a checkout or a copy of one with its dist/, bin/, proto/
 * and node_modules: the A/B of two builds in the same window), writes 200 puts as a warm-up,
 * then `--puts` puts of 256-byte values one after the other, and prints per member (L: the
 * leader, F: a follower) the CPU time (user + system, /proc) and the context switches
 * (voluntary + involuntary) per put, and the puts per second.
 */
import * as grpc from '@grpc/grpc-js';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { cpuMs, freePort, sleep } from './lib.js';

const o = new Command()
  .option('--puts <n>', 'measured puts', Number, 300)
  .option('--root <dir>', 'the checkout to run', join(dirname(fileURLToPath(import.meta.url)), '..'))
  .parse()
  .opts();

const { clientConstructor } = await import(join(o.root, 'dist', 'api', 'proto.js'));
const KV = clientConstructor('etcdserverpb.KV');
const Maint = clientConstructor('etcdserverpb.Maintenance');
const call = (c, m, r, ms = 10_000) => new Promise((res, rej) => c[m](r, { deadline: Date.now() + ms }, (e, x) => (e ? rej(e) : res(x))));
const switches = (pid) => {
  const t = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/\nvoluntary_ctxt_switches:\s+(\d+)/.exec(t)[1]) + Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(t)[1]);
};

const dir = mkdtempSync(join(tmpdir(), 'flotilla-put-loop-'));
const ms = [];
try {
  for (let i = 0; i < 3; i++) ms.push({ name: `p${i + 1}`, client: await freePort(), peer: await freePort() });
  const initial = ms.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(',');
  const url = (p) => `http://127.0.0.1:${p}`;
  for (const m of ms) {
    const flags = ['--name', m.name, '--data-dir', join(dir, m.name), '--listen-client-urls', url(m.client), '--advertise-client-urls', url(m.client), '--listen-peer-urls', url(m.peer), '--initial-advertise-peer-urls', url(m.peer), '--initial-cluster', initial, '--initial-cluster-token', 'bench-put-loop', '--initial-cluster-state', 'new'];
    m.proc = spawn(process.execPath, [join(o.root, 'bin', 'flotilla.js'), 'serve', ...flags], { stdio: 'ignore' });
  }
  let leader;
  while (!leader) {
    for (const m of ms) {
      const c = new Maint(`127.0.0.1:${m.client}`, grpc.credentials.createInsecure());
      const s = await call(c, 'Status', {}, 500).catch(() => null);
      c.close();
      if (s && s.leader !== '0' && s.leader === s.header.member_id) leader = m;
    }
    if (!leader) await sleep(200);
  }
  const kv = new KV(`127.0.0.1:${leader.client}`, grpc.credentials.createInsecure());
  const value = Buffer.alloc(256, 7);
  for (let i = 0; i < 200; i++) await call(kv, 'Put', { key: Buffer.from(`bench/${i % 1000}`), value });
  const cpu0 = ms.map((m) => cpuMs(m.proc.pid));
  const sw0 = ms.map((m) => switches(m.proc.pid));
  const t0 = performance.now();
  for (let i = 0; i < o.puts; i++) await call(kv, 'Put', { key: Buffer.from(`bench/${i % 1000}`), value });
  const seconds = (performance.now() - t0) / 1000;
  const per = ms.map((m, i) => `${m === leader ? 'L' : 'F'} ${(((cpuMs(m.proc.pid) - cpu0[i]) / o.puts) * 1000).toFixed(0)} µs CPU, ${((switches(m.proc.pid) - sw0[i]) / o.puts).toFixed(1)} switches`);
  kv.close();
  console.log(`${o.root}: ${(o.puts / seconds).toFixed(0)} puts/s; per put: ${per.join('; ')}`);
} finally {
  for (const m of ms) m.proc?.kill('SIGKILL');
  await sleep(300);
  rmSync(dir, { recursive: true, force: true });
}
