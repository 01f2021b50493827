#!/usr/bin/env node
/**
 * Benchmark (issue 17): chain replication beside Flotilla's Raft group, side by side in one run.
 *
 *   node bench/chain.js [--seconds S] [--clients C] [--sizes 4096,65536,1048576] [--lengths 2,3,4,5,6] [--rounds R] [--dir DIR]
 *
 * Starts a 3-member Flotilla cluster (`flotilla start` on free ports), then:
 * 1. a chain of 3 (`chain-node --reads craq` x3 and a `chain-master`) with the cluster as its
 *    control plane. For each value size: write throughput and p99 of C concurrent puts at the
 *    chain's head, and of C concurrent puts to the Raft group (FlotillaClient); then read
 *    throughput of C concurrent gets of clean keys at the chain's tail, with CRAQ (any node),
 *    and from the Raft group (linearizable reads) — S seconds each;
 * 2. a chain of each length L at once, measured in turns (--rounds rounds of S seconds per
 *    length, the order reversed every other round): the latency of one client's sequential 4 KiB
 *    puts (the cost the seed states: write latency grows with the length).
 * Everything is stopped and its data removed at the end. Run on the build (`npm run build`).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { ChainClient } from '../dist/chainnode/client.js';
import { FlotillaClient } from '../dist/client/client.js';
import { freePort, sleep } from './lib.js';

const o = new Command()
  .option('--seconds <s>', 'seconds per measurement', Number, 3)
  .option('--clients <n>', 'concurrent operations for throughput', Number, 8)
  .option('--sizes <list>', 'value sizes in bytes (empty: only the chain lengths)', '4096,65536,1048576')
  .option('--lengths <list>', 'chain lengths for the write latency', '2,3,4,5,6')
  .option('--rounds <n>', 'rounds of the chain-length measurement', Number, 4)
  .option('--dir <dir>', 'where the processes keep their data', tmpdir())
  .parse()
  .opts();
const sizes = o.sizes.split(',').filter(Boolean).map(Number);
const lengths = o.lengths.split(',').map(Number);
const bin = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'flotilla.js');
const root = await mkdtemp(join(o.dir, 'flotilla-chainbench-'));
const procs = [];

function launch(args, waitFor) {
  const p = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(p);
  let out = '';
  p.stderr.on('data', (d) => (out += d));
  return new Promise((resolve, reject) => {
    p.stdout.on('data', (d) => {
      out += d;
      if (waitFor && out.includes(waitFor)) resolve(p);
    });
    p.on('exit', (code) => reject(new Error(`flotilla ${args[0]} exited (${code}):\n${out.slice(-2000)}`)));
    if (!waitFor) resolve(p);
  });
}

async function startChain(name, n, reads) {
  const started = [await launch(['chain-master', '--chain', name, '--bootstrap-members', String(n), '--members-max', String(n), '--control', endpoints.join(',')])];
  for (let i = 1; i <= n; i++) {
    const port = await freePort();
    started.push(await launch(['chain-node', '--chain', name, '--name', `n${i}`, '--data-dir', join(root, `${name}-n${i}`), '--listen', `127.0.0.1:${port}`, '--control', endpoints.join(','), '--reads', reads], 'listening on'));
  }
  const c = new ChainClient({ chain: name, control: endpoints, timeoutMs: 30_000 });
  for (let i = 0; i < 600 && (await c.status()).config?.members.length !== n; i++) await sleep(100);
  await c.close();
  return started;
}

function stopAll(list) {
  for (const p of list) {
    p.removeAllListeners('exit');
    p.kill('SIGKILL');
  }
}

/** Runs `op` with `clients` concurrent loops for `seconds`; ops/s, p50, p99 (ms), errors. */
async function measure(clients, seconds, op) {
  const lat = [];
  let errors = 0;
  const why = new Map();
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async (_, w) => {
      for (let i = 0; performance.now() < end; i++) {
        const t0 = performance.now();
        try {
          await op(w, i);
          lat.push(performance.now() - t0);
        } catch (e) {
          errors++;
          const k = String(e?.message ?? e).replace(/\d+/g, 'N').slice(0, 90);
          why.set(k, (why.get(k) ?? 0) + 1);
        }
      }
    }),
  );
  lat.sort((a, b) => a - b);
  const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : NaN);
  return { ops: lat.length / seconds, p50: q(0.5), p99: q(0.99), errors, why: [...why].map(([k, n]) => `${n}x ${k}`).join('; ') };
}

const fmt = (r) => `${r.ops.toFixed(1).padStart(7)} ops/s  p50 ${r.p50.toFixed(1).padStart(6)} ms  p99 ${r.p99.toFixed(1).padStart(6)} ms${r.errors ? `  (${r.errors} errors: ${r.why})` : ''}`;

let endpoints = [];
let cluster = null;
try {
  const client = [await freePort(), await freePort(), await freePort()];
  const peer = [await freePort(), await freePort(), await freePort()];
  endpoints = client.map((p) => `127.0.0.1:${p}`);
  cluster = await launch(['start', '--fresh', '--data-dir', join(root, 'cluster'), '--client-ports', client.join(','), '--peer-ports', peer.join(',')], 'cluster ready');
  const raft = new FlotillaClient({ endpoints, requestTimeoutMs: 30_000 });
  const benchChain = await startChain('bench', 3, 'craq');
  const tailC = new ChainClient({ chain: 'bench', control: endpoints, timeoutMs: 30_000 });
  const craqC = new ChainClient({ chain: 'bench', control: endpoints, timeoutMs: 30_000, reads: 'craq' });
  console.log(`chain replication vs a Raft group of 3: ${o.clients} concurrent operations, ${o.seconds} s each\n`);
  const rows = [];
  for (const size of sizes) {
    const value = new Uint8Array(size).fill(120);
    const keys = 16;
    const r = {
      size,
      chainWrite: await measure(o.clients, o.seconds, (w, i) => tailC.put(`w${w}-${i % keys}`, value)),
      raftWrite: await measure(o.clients, o.seconds, (w, i) => raft.put(`w${w}-${i % keys}`, Buffer.from(value))),
    };
    // Reads of keys written before (clean at every node).
    for (let k = 0; k < keys; k++) await tailC.put(`r${k}`, value);
    await sleep(200);
    r.tailRead = await measure(o.clients, o.seconds, (w, i) => tailC.get(`r${(w + i) % keys}`));
    r.craqRead = await measure(o.clients, o.seconds, (w, i) => craqC.get(`r${(w + i) % keys}`));
    r.raftRead = await measure(o.clients, o.seconds, (w, i) => raft.get(`w${w}-${i % keys}`));
    for (const [k, v] of Object.entries(r)) if (k !== 'size') console.log(`${String(size).padStart(8)} B  ${k.padEnd(10)} ${fmt(v)}`);
    rows.push(r);
  }
  await tailC.close();
  await craqC.close();
  await raft.close();

  console.log('\n| value | chain write ops/s (p99 ms) | Raft write ops/s (p99 ms) | tail read ops/s (p99) | CRAQ read ops/s (p99) | Raft read ops/s (p99) |\n|---:|---:|---:|---:|---:|---:|');
  const cell = (x) => `${x.ops.toFixed(0)} (${x.p99.toFixed(0)})${x.errors ? ` [${x.errors} err]` : ''}`;
  for (const r of rows) console.log(`| ${r.size >= 1 << 20 ? `${r.size >> 20} MiB` : `${r.size >> 10} KiB`} | ${cell(r.chainWrite)} | ${cell(r.raftWrite)} | ${cell(r.tailRead)} | ${cell(r.craqRead)} | ${cell(r.raftRead)} |`);

  stopAll(benchChain);
  // All the chains run at once and are measured in turns, round after round, so that the load
  // of a shared machine falls on every length alike.
  console.log(`\nwrite latency by chain length: one client, sequential 4 KiB puts, ${o.rounds} rounds of ${o.seconds} s per length`);
  const value = new Uint8Array(4096).fill(121);
  const chains = [];
  for (const n of lengths) {
    await startChain(`len${n}`, n, 'tail');
    const c = new ChainClient({ chain: `len${n}`, control: endpoints, timeoutMs: 30_000 });
    await c.put('warm', value);
    chains.push({ n, c, lat: [], errors: 0 });
  }
  for (let round = 0; round < o.rounds; round++) {
    for (const ch of round % 2 === 0 ? chains : [...chains].reverse()) {
      const end = performance.now() + o.seconds * 1000;
      for (let i = 0; performance.now() < end; i++) {
        const t0 = performance.now();
        try {
          await ch.c.put(`k${i % 16}`, value);
          ch.lat.push(performance.now() - t0);
        } catch {
          ch.errors++;
        }
      }
    }
  }
  const byLength = chains.map(({ n, c, lat, errors }) => {
    void c.close();
    lat.sort((a, b) => a - b);
    const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
    const r = { ops: lat.length / (o.seconds * o.rounds), p10: q(0.1), p50: q(0.5), p99: q(0.99), errors, why: '' };
    console.log(`length ${n}: ${fmt(r)}  p10 ${r.p10.toFixed(1)} ms`);
    return { n, r };
  });
  // p10: the floor, what a write costs when the machine lets it; p50/p99 carry the machine's noise.
  console.log('\n| chain length | writes/s (1 client) | p10 ms | p50 ms | p99 ms |\n|---:|---:|---:|---:|---:|');
  for (const { n, r } of byLength) console.log(`| ${n} | ${r.ops.toFixed(0)} | ${r.p10.toFixed(1)} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} |`);
} finally {
  // `flotilla start` stops its members on SIGINT (a SIGKILL would leave them running).
  if (cluster) {
    cluster.removeAllListeners('exit');
    const exited = new Promise((r) => cluster.once('exit', r));
    cluster.kill('SIGINT');
    await Promise.race([exited, sleep(10_000)]);
  }
  stopAll(procs.filter((p) => p !== cluster));
  await sleep(300);
  await rm(root, { recursive: true, force: true });
}
process.exit(0);
