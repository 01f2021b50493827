#!/usr/bin/env node
/**
 * Benchmark: the MVCC store's key index at scale (issue 11), on LMDB, CPU time per step
 * (process.cpuUsage: the machine may be loaded). One process per step, so each open is cold:
 *
 *   node bench/store-index.js build DIR [--keys 1000000]   one-revision keys key/00000000.. in a
 *                                                          scattered order, 16 B values
 *   node bench/store-index.js open DIR                     open the store: CPU, heap, RSS
 *   node bench/store-index.js range DIR                    a prefix range over 10,000 keys (all,
 *                                                          limit 500, count only), a count over
 *                                                          every key, single-key gets
 *   node bench/store-index.js put DIR [--puts 200000] [--new]   puts of existing keys (or new
 *                                                          ones), then a compaction
 *
 * --dist points at another build (its node_modules beside it), e.g. the main branch's, to compare.
 * A store built by one layout and opened by a build of the next is migrated at that open.
 */
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command } from 'commander';

const cmd = new Command()
  .argument('<step>', 'build, open, range or put')
  .argument('<dir>', 'directory of the database')
  .option('--keys <n>', 'keys to build', Number, 1_000_000)
  .option('--puts <n>', 'puts to make', Number, 200_000)
  .option('--new', 'put new keys instead of existing ones')
  .option('--dist <dir>', 'the build to measure', new URL('../dist', import.meta.url).pathname)
  .parse();
const [step, dir] = cmd.args;
const o = cmd.opts();
const load = (p) => import(pathToFileURL(join(resolve(o.dist), p)).href);
const { LmdbBackend } = await load('kv/backend-lmdb.js');
const { MvccStore } = await load('kv/mvcc.js');
const enc = new TextEncoder();
const mib = (b) => (b / 2 ** 20).toFixed(0);
const cpuMs = (c) => (c.user + c.system) / 1000;
const keyOf = (i) => enc.encode(`key/${String(i).padStart(8, '0')}`);

const c0 = process.cpuUsage();
const t0 = performance.now();
const backend = LmdbBackend.open(join(dir, 'db'));
const store = new MvccStore({}, backend);
const opened = { cpu: cpuMs(process.cpuUsage(c0)), ms: performance.now() - t0 };
const m = process.memoryUsage();
console.log(`open: ${opened.ms.toFixed(0)} ms, CPU ${opened.cpu.toFixed(0)} ms; ${store.keyCount} keys; heap ${mib(m.heapUsed)} MiB, RSS ${mib(m.rss)} MiB`);

/** Runs f n times after one warm-up call: CPU and wall time per call. */
function time(name, n, f) {
  f(0);
  const c = process.cpuUsage();
  const t = performance.now();
  let r;
  for (let i = 0; i < n; i++) r = f(i);
  console.log(`${name}: CPU ${(cpuMs(process.cpuUsage(c)) / n).toFixed(3)} ms, wall ${((performance.now() - t) / n).toFixed(3)} ms per call (${n} calls; ${r})`);
}

if (step === 'build') {
  const v = new Uint8Array(16);
  const c = process.cpuUsage();
  for (let i = 0; i < o.keys; i++) {
    store.put({ key: keyOf((i * 7919) % o.keys), value: v });
    if (i % 5000 === 4999) backend.commit();
  }
  backend.commit();
  console.log(`built ${o.keys} keys: CPU ${(cpuMs(process.cpuUsage(c)) / 1000).toFixed(1)} s; file ${mib(store.dbSizeBytes())} MiB`);
} else if (step === 'range') {
  const [from, to] = [enc.encode('key/0001'), enc.encode('key/0002')];
  time('prefix range, 10,000 keys', 5, () => store.range({ key: from, rangeEnd: to }).kvs.length);
  time('prefix range, limit 500', 20, () => store.range({ key: from, rangeEnd: to, limit: 500 }).kvs.length);
  time('prefix range, count only', 20, () => store.range({ key: from, rangeEnd: to, countOnly: true }).count);
  time('count only, every key', 3, () => store.range({ key: Uint8Array.of(0), rangeEnd: Uint8Array.of(0), countOnly: true }).count);
  const keys = Array.from({ length: 10_000 }, (_, i) => keyOf((i * 7919) % store.keyCount));
  time('single-key get', keys.length, (i) => store.range({ key: keys[i] }).kvs.length);
} else if (step === 'put') {
  const v = new Uint8Array(16);
  const keys = Array.from({ length: o.puts }, (_, i) => (o.new ? enc.encode(`new/${String((i * 7919) % o.puts).padStart(8, '0')}`) : keyOf((i * 104729 + 17) % store.keyCount)));
  const c = process.cpuUsage();
  for (const key of keys) {
    store.put({ key, value: v });
    backend.maybeCommit();
  }
  backend.commit();
  const u = process.cpuUsage(c);
  console.log(`${o.puts} puts of ${o.new ? 'new' : 'existing'} keys: CPU ${(cpuMs(u) * 1000 / o.puts).toFixed(2)} µs per put (user ${(u.user / o.puts).toFixed(2)}, system ${(u.system / o.puts).toFixed(2)})`);
  // Then a compaction at the current revision (the puts of existing keys leave a revision each to drop).
  const cc = process.cpuUsage();
  store.compact(store.revision);
  const compacted = cpuMs(process.cpuUsage(cc));
  backend.commit();
  console.log(`compaction: CPU ${cpuMs(process.cpuUsage(cc)).toFixed(0)} ms (${compacted.toFixed(0)} ms, then the backend commit)`);
} else if (step !== 'open') throw new Error(`unknown step ${step}`);
await backend.close();
