#!/usr/bin/env node
/**
 * Benchmark: how long the etcd API cluster is unable to take writes when its leader is
 * SIGKILLed, at default timings (heartbeat 100 ms, election timeout 1000 ms).
 *
 *   node bench/failover.js [--kills N] [--dir DIR]
 *
 * Starts three `flotilla serve` processes on free loopback ports. Each round: find the leader
 * (Maintenance.Status), run a writer that puts through the two other members back to back,
 * SIGKILL the leader, and measure from the kill to the first put acknowledged after it (a new
 * leader elected and committing). The killed member is restarted with its data before the next
 * round. Prints each round and the distribution (min, p50, p90, max).
 */
import * as grpc from '@grpc/grpc-js';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { clientConstructor } from '../dist/api/proto.js';
import { freePort, sleep } from './lib.js';

const o = new Command()
  .option('--kills <n>', 'leader kills', Number, 20)
  .option('--dir <dir>', 'where the members keep their data', tmpdir())
  .parse()
  .opts();

const bin = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'flotilla.js');

const dir = await mkdtemp(join(o.dir, 'flotilla-failover-'));
const members = [];
for (let i = 0; i < 3; i++) members.push({ name: `m${i + 1}`, client: await freePort(), peer: await freePort(), proc: null });
const cluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(',');
function launch(m) {
  m.proc = spawn(process.execPath, [
    bin, 'serve', '--name', m.name, '--data-dir', join(dir, m.name),
    '--listen-client-urls', `http://127.0.0.1:${m.client}`, '--advertise-client-urls', `http://127.0.0.1:${m.client}`,
    '--listen-peer-urls', `http://127.0.0.1:${m.peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${m.peer}`,
    '--initial-cluster', cluster, '--initial-cluster-token', 'failover-bench',
  ], { stdio: 'ignore' });
}
members.forEach(launch);

const KV = clientConstructor('etcdserverpb.KV');
const Maint = clientConstructor('etcdserverpb.Maintenance');
const call = (c, method, req, ms) =>
  new Promise((resolve, reject) => c[method](req, { deadline: Date.now() + ms }, (e, r) => (e ? reject(e) : resolve(r))));

async function leaderIndex() {
  for (;;) {
    for (let i = 0; i < 3; i++) {
      const c = new Maint(`127.0.0.1:${members[i].client}`, grpc.credentials.createInsecure());
      try {
        const s = await call(c, 'Status', {}, 500);
        if (s.leader !== '0' && s.leader === s.header.member_id) return i;
      } catch {
        // not up yet
      } finally {
        c.close();
      }
    }
    await sleep(100);
  }
}

async function writable(i) {
  const c = new KV(`127.0.0.1:${members[i].client}`, grpc.credentials.createInsecure());
  try {
    for (;;) {
      try {
        await call(c, 'Put', { key: Buffer.from('ready'), value: Buffer.from('1') }, 2000);
        return;
      } catch {
        await sleep(100);
      }
    }
  } finally {
    c.close();
  }
}

const results = [];
try {
  for (let i = 0; i < 3; i++) await writable(i);
  for (let round = 1; round <= o.kills; round++) {
    const li = await leaderIndex();
    const others = [0, 1, 2].filter((i) => i !== li);
    const clients = others.map((i) => new KV(`127.0.0.1:${members[i].client}`, grpc.credentials.createInsecure()));
    await Promise.all(clients.map((c) => call(c, 'Put', { key: Buffer.from('warm'), value: Buffer.from('1') }, 5000)));
    let killedAt = 0;
    let recovered = 0;
    let seq = 0;
    const writer = async (c) => {
      while (!recovered) {
        const startedAt = performance.now();
        try {
          await call(c, 'Put', { key: Buffer.from(`k${seq++ % 100}`), value: Buffer.from('v') }, 1000);
          // Only a put sent after the kill proves the new leader commits.
          if (killedAt && startedAt > killedAt && !recovered) recovered = performance.now();
        } catch {
          await sleep(10);
        }
      }
    };
    const writers = clients.map(writer);
    await sleep(300);
    killedAt = performance.now();
    members[li].proc.kill('SIGKILL');
    await Promise.all(writers);
    const ms = recovered - killedAt;
    results.push(ms);
    console.log(`round ${round}: killed ${members[li].name}, writes again after ${ms.toFixed(0)} ms`);
    clients.forEach((c) => c.close());
    launch(members[li]);
    await writable(li);
  }
  const s = [...results].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))].toFixed(0);
  console.log(`\n${s.length} leader kills: min ${s[0].toFixed(0)} ms, p50 ${q(0.5)} ms, p90 ${q(0.9)} ms, max ${s[s.length - 1].toFixed(0)} ms; within 2 s: ${s.filter((x) => x <= 2000).length}/${s.length}`);
} finally {
  for (const m of members) m.proc?.kill('SIGKILL');
  await sleep(200);
  await rm(dir, { recursive: true, force: true });
}
