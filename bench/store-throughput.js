#!/usr/bin/env node
/**
 * Benchmark: the key-value state machine alone (no Raft, no network), the way a member applies
 * its log: put commands of 1 KiB values on distinct keys, encoded as log entries and applied
 * one by one to a KvStateMachine over its backend (LMDB in a temp dir, batched commits as a
 * member does them). Reported per chunk: applies/s, RSS and heap; at the end the database
 * file, then the restart: reopening the store (wall and CPU time) — what a member
 * does before it replays the WAL after its applied index.
 *
 *   node bench/store-throughput.js [--keys 200000] [--chunk 50000] [--value-bytes 1024]
 *                                  [--dir DIR] [--dist DIST]
 *
 * --dist points at another build (e.g. one of an older commit, with node_modules beside it):
 * without LMDB there, the store is the in-memory one, and "restart" is what it was for it:
 * serialising the whole store to a snapshot image and restoring from it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command } from 'commander';

const o = new Command()
  .option('--keys <n>', 'keys to write', Number, 200_000)
  .option('--chunk <n>', 'keys per reported chunk', Number, 50_000)
  .option('--value-bytes <n>', 'bytes per value', Number, 1024)
  .option('--dir <dir>', 'directory for the database (a temp dir is made inside it)', tmpdir())
  .option('--dist <dir>', 'the build to measure', new URL('../dist', import.meta.url).pathname)
  .parse()
  .opts();

const dist = resolve(o.dist);
const load = (p) => import(pathToFileURL(join(dist, p)).href);
const { KvStateMachine } = await load('kv/state-machine.js');
const { encodeRequest } = await load('kv/commands.js');
let LmdbBackend = null;
try {
  ({ LmdbBackend } = await load('kv/backend-lmdb.js'));
} catch {
  // an older build: the store lives in the heap
}
const root = await mkdtemp(join(o.dir, 'flotilla-storebench-'));
const dbPath = join(root, 'member', 'db');
const mib = (b) => (b / 1048576).toFixed(0);
const value = new Uint8Array(o.valueBytes).fill(0x61);
const enc = new TextEncoder();

let sm = LmdbBackend ? new KvStateMachine({}, LmdbBackend.open(dbPath)) : new KvStateMachine();
console.log(`store: ${LmdbBackend ? `LMDB at ${dbPath}` : 'in memory (older build)'}; ${o.keys} keys of ${o.valueBytes} B`);
console.log('| keys written | applies/s | applies per CPU s | RSS MiB | heap MiB |');
console.log('|---:|---:|---:|---:|---:|');
let index = 0;
for (let from = 0; from < o.keys; from += o.chunk) {
  const to = Math.min(o.keys, from + o.chunk);
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  for (let i = from; i < to; i++) {
    const data = encodeRequest({ id: 0n, command: { op: 'put', req: { key: enc.encode(`key/${String(i).padStart(8, '0')}`), value } } });
    sm.apply({ index: ++index, term: 1, type: 'normal', data });
    // Let the batch timer run now and then, as a member's event loop would.
    if (i % 1000 === 999) await new Promise((r) => setImmediate(r));
  }
  const s = (to - from) / ((performance.now() - t0) / 1000);
  const c = process.cpuUsage(c0);
  const perCpu = (to - from) / ((c.user + c.system) / 1e6);
  const m = process.memoryUsage();
  console.log(`| ${from.toLocaleString('en')} to ${to.toLocaleString('en')} | ${Math.round(s).toLocaleString('en')} | ${Math.round(perCpu).toLocaleString('en')} | ${mib(m.rss)} | ${mib(m.heapUsed)} |`);
}
const hash = sm.store.hashKv().hash;
if (LmdbBackend) {
  await sm.backend.close();
  console.log(`database file: ${mib(sm.store.dbSizeBytes())} MiB`);
  globalThis.gc?.();
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  sm = new KvStateMachine({}, LmdbBackend.open(dbPath));
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(c0);
  console.log(`restart (open the store): ${Math.round(ms)} ms, CPU ${Math.round((cpu.user + cpu.system) / 1000)} ms; applied index ${sm.lastAppliedIndex()}, ${sm.store.keyCount} keys, RSS ${mib(process.memoryUsage().rss)} MiB`);
} else {
  const t0 = performance.now();
  const image = sm.snapshot();
  const t1 = performance.now();
  const again = new KvStateMachine();
  again.restore(image, index);
  const t2 = performance.now();
  console.log(`snapshot image: ${mib(image.length)} MiB in ${Math.round(t1 - t0)} ms; restore from it: ${Math.round(t2 - t1)} ms; RSS ${mib(process.memoryUsage().rss)} MiB`);
  sm = again;
}
if (sm.store.hashKv().hash !== hash) throw new Error('the restarted store differs');
if (LmdbBackend) await sm.backend.close();
await rm(root, { recursive: true, force: true });
