#!/usr/bin/env node
/**
 * Benchmark: `flotilla snapshot restore FILE` (restoreSnapshot: the new member's data dir from
 * an etcd-format snapshot file), as the CLI runs it, in this process. Measured in CPU time
 * (process.cpuUsage: user + system, all threads, GC included), not wall time (the machine may
 * be loaded); memory as the peak RSS of the process (getrusage's maxrss: the heap, array
 * buffers, and the pages of LMDB's memory map the restore touched) and the heap plus array
 * buffers in use, sampled every 10,000 revisions the import writes (after: a wrapped
 * MvccStore.importRevisions source) or around the store's image steps (before:
 * MvccStore.validate and restoreValidated, KvStateMachine.snapshot) — with --gc-samples after
 * a full GC (what the restore retains; the CPU of such a run is not comparable).
 *
 *   node --expose-gc bench/snapshot-restore.js --file FILE [--dist DIR] [--dir DIR] [--gc-samples]
 *
 * FILE: a snapshot file, e.g. made by bench/snapshot-save.js --keys 200000 --out FILE.
 * --dist points at another build (one of an older commit, node_modules beside it): a build
 * without MvccStore.importRevisions restores as before issue 11 item 6 (the whole store as one
 * JSON image, restored into an in-memory state machine, its image written as the Raft snapshot).
 * The data dir made (<dir>/restored) is removed after the run.
 */
import { rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command } from 'commander';

const o = new Command()
  .requiredOption('--file <file>', 'the snapshot file to restore')
  .option('--dir <dir>', 'where the data dir is made', join(tmpdir(), 'flotilla-bench-snapshot-restore'))
  .option('--dist <dir>', 'the build to measure', new URL('../dist', import.meta.url).pathname)
  .option('--gc-samples', 'a full GC before each memory sample: the peak retained, not the peak in use', false)
  .parse()
  .opts();

const dist = resolve(o.dist);
const load = (p) => import(pathToFileURL(join(dist, p)).href);
const { restoreSnapshot } = await load('cli/snapshot-restore.js');
const { MvccStore } = await load('kv/mvcc.js');
const { KvStateMachine } = await load('kv/state-machine.js');
if (typeof globalThis.gc !== 'function') throw new Error('run with node --expose-gc');

const MiB = 2 ** 20;
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const inUse = () => {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};
globalThis.gc();
const base = inUse();
let peak = 0;
const sample = () => {
  if (o.gcSamples) globalThis.gc();
  peak = Math.max(peak, inUse() - base);
};

const newPath = typeof MvccStore.importRevisions === 'function';
if (newPath) {
  const importRevisions = MvccStore.importRevisions;
  MvccStore.importRevisions = (backend, source) => {
    let n = 0;
    const sampled = {
      compactRevision: source.compactRevision,
      leases: (fn) => source.leases(fn),
      revisions: (fn) =>
        source.revisions((r) => {
          fn(r);
          if (++n % 10_000 === 0) sample();
        }),
    };
    const out = importRevisions.call(MvccStore, backend, sampled);
    sample();
    return out;
  };
} else {
  // Sampled where the image path holds the most: the image parsed and checked, the store restored, its image again.
  for (const [owner, name] of [[MvccStore, 'validate'], [MvccStore, 'restoreValidated'], [KvStateMachine.prototype, 'snapshot']]) {
    const f = owner[name];
    owner[name] = function (...args) {
      sample();
      const out = f.apply(this, args);
      sample();
      return out;
    };
  }
}

const dataDir = join(o.dir, 'restored');
rmSync(dataDir, { recursive: true, force: true });
const load0 = loadavg()[0];
const t0 = cpuMs();
const w0 = performance.now();
let result;
let error = null;
try {
  result = await restoreSnapshot(o.file, { name: 'bench', initialCluster: 'bench=http://127.0.0.1:2380', initialClusterToken: 'bench', initialAdvertisePeerUrls: 'http://127.0.0.1:2380', dataDir });
} catch (e) {
  error = `${e.name}: ${String(e.message).slice(0, 300)}`;
}
sample();
const totalCpu = cpuMs() - t0;
const wall = performance.now() - w0;
console.log(
  JSON.stringify({
    path: newPath ? 'streamed into LMDB' : 'store image',
    ...(error ? { error } : { revision: result.revision, keys: result.keys, hash: result.hash }),
    totalCpuMs: Math.round(totalCpu),
    wallMs: Math.round(wall),
    [o.gcSamples ? 'peakRetainedMiB' : 'peakInUseMiB']: +(peak / MiB).toFixed(1),
    maxRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
    load1: +load0.toFixed(1),
  }),
);
rmSync(dataDir, { recursive: true, force: true });
