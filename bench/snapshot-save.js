#!/usr/bin/env node
/**
 * Benchmark: making `etcdctl snapshot save`'s file (Maintenance.Snapshot: the store as a bbolt
 * file in etcd 3.4's schema, then its SHA-256) from a store on LMDB, as the handler makes it,
 * without the network: the call's synchronous start (what holds the event loop before the
 * first byte), then every page drained and hashed. Measured in CPU time (process.cpuUsage:
 * user + system, all threads), not wall time: the layout (before the first byte), the whole
 * making, and the longest piece of work between two points where the handler can yield to
 * the event loop; and the memory the making holds: heap used plus array buffers, sampled
 * during the layout and every 1,024 pages, minus what was in use before the call
 * (--gc-samples: after a full GC, i.e. what is retained).
 *
 *   node --expose-gc bench/snapshot-save.js [--keys 200000] [--value-bytes 1024] [--dir DIR]
 *                                           [--dist DIST] [--gc-samples] [--out FILE]
 *
 * The store (--keys distinct keys of --value-bytes random bytes) is written once into
 * `<dir>/db` and reused by later runs with the same --dir. --dist points at another build
 * (one of an older commit, node_modules beside it): a build without MvccStore.snapshotSource
 * makes the file as the handler did before issue 11's read view source — MvccStore.snapshot()
 * (the whole store as one JSON string), then etcdSnapshot parsing it and sorting every
 * revision.
 */
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command } from 'commander';

const o = new Command()
  .option('--keys <n>', 'keys in the store', Number, 200_000)
  .option('--value-bytes <n>', 'bytes per value', Number, 1024)
  .option('--dir <dir>', 'directory of the store (reused when it holds one)', join(tmpdir(), 'flotilla-bench-snapshot-save'))
  .option('--dist <dir>', 'the build to measure', new URL('../dist', import.meta.url).pathname)
  .option('--out <file>', 'also write the file there (to compare builds: etcdctl snapshot status)')
  .option('--gc-samples', 'a full GC before each memory sample: the peak retained, not the peak in use (CPU figures not comparable)', false)
  .parse()
  .opts();

const dist = resolve(o.dist);
const load = (p) => import(pathToFileURL(join(dist, p)).href);
const { KvStateMachine } = await load('kv/state-machine.js');
const { LmdbBackend } = await load('kv/backend-lmdb.js');
const { MvccStore } = await load('kv/mvcc.js');
const { etcdSnapshot, etcdSnapshotSteps } = await load('kv/etcd-snapshot.js');
if (typeof globalThis.gc !== 'function') throw new Error('run with node --expose-gc');

const MiB = 2 ** 20;
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const inUse = () => {
  const m = process.memoryUsage();
  return { heap: m.heapUsed, buffers: m.arrayBuffers };
};

mkdirSync(o.dir, { recursive: true });
const fresh = !existsSync(join(o.dir, 'db'));
const sm = new KvStateMachine({}, LmdbBackend.open(join(o.dir, 'db'), { batchIntervalMs: 0 }));
if (fresh) {
  const t0 = performance.now();
  const value = new Uint8Array(o.valueBytes);
  for (let i = 0; i < o.keys; i++) {
    randomFillSync(value);
    sm.store.put({ key: new TextEncoder().encode(`key/${String(i).padStart(8, '0')}`), value });
    if (i % 10_000 === 9_999) sm.backend.commit();
  }
  sm.backend.commit();
  console.error(`filled ${o.keys} keys of ${o.valueBytes} B in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
const keys = sm.store.keyCount;
const members = [{ id: 1n, name: 'bench', peerUrls: ['http://127.0.0.1:2380'], clientUrls: [], isLearner: false }];
const newPath = typeof MvccStore.snapshotSource === 'function';

globalThis.gc();
globalThis.gc();
const base = inUse();
const peak = { heap: 0, buffers: 0, both: 0 };
/** --gc-samples: a full GC before each sample, so the peak is what the making retains (the CPU figures of such a run are not comparable). */
const sample = () => {
  if (o.gcSamples) globalThis.gc();
  const m = inUse();
  const [heap, buffers] = [m.heap - base.heap, m.buffers - base.buffers];
  peak.heap = Math.max(peak.heap, heap);
  peak.buffers = Math.max(peak.buffers, buffers);
  peak.both = Math.max(peak.both, heap + buffers);
};
const load0 = loadavg()[0];
const t0 = cpuMs();
const w0 = performance.now();
let view = null;
let snap;
/** CPU of the longest piece of work between two points where the handler can yield to the event loop. */
let longestStep = 0;
let layoutCpu = 0;
/** CPU from the call to the first point where the handler can yield (the view and the steps; before: everything up to the file's size). */
let firstYield = 0;
if (newPath) {
  // As the handler: the view and the steps now; the layout a step at a time (a leaf page each),
  // which the handler takes in time slices.
  view = sm.snapshotView(sm.appliedIndex);
  const steps = etcdSnapshotSteps({ store: MvccStore.snapshotSource(view), members, consistentIndex: sm.appliedIndex });
  longestStep = firstYield = cpuMs() - t0;
  for (let n = 0; ; n++) {
    const c0 = cpuMs();
    const r = steps.next();
    longestStep = Math.max(longestStep, cpuMs() - c0);
    if (r.done) {
      snap = r.value;
      break;
    }
    if (n % 4096 === 0) sample();
  }
  layoutCpu = cpuMs() - t0;
} else {
  // As the handler was: the image, then its parse, sort and layout, all before it could yield.
  const image = sm.store.snapshot();
  sample();
  snap = etcdSnapshot({ storeImage: image, members, consistentIndex: sm.appliedIndex });
  longestStep = layoutCpu = firstYield = cpuMs() - t0;
}
sample();
let pages = 0;
let bytes = 0;
const h = createHash('sha256');
const out = o.out ? openSync(o.out, 'w') : null;
for (;;) {
  const c0 = cpuMs();
  const next = snap.chunks.next();
  longestStep = Math.max(longestStep, cpuMs() - c0);
  if (next.done) break;
  h.update(next.value);
  if (out !== null) writeSync(out, next.value);
  bytes += next.value.length;
  if (++pages % 1024 === 0) sample();
}
sample();
view?.close();
if (out !== null) closeSync(out);
const totalCpu = cpuMs() - t0;
const wall = performance.now() - w0;
if (bytes !== snap.size) throw new Error(`${bytes} bytes made, ${snap.size} announced`);
console.log(
  JSON.stringify({
    path: newPath ? 'read view source' : 'store image',
    keys,
    valueBytes: o.valueBytes,
    fileMiB: +(bytes / MiB).toFixed(1),
    firstYieldCpuMs: +firstYield.toFixed(1),
    layoutCpuMs: Math.round(layoutCpu),
    totalCpuMs: Math.round(totalCpu),
    longestStepCpuMs: +longestStep.toFixed(1),
    wallMs: Math.round(wall),
    // After a full GC (--gc-samples): what the making retains; else what it has in use, garbage included.
    [o.gcSamples ? 'peakRetained' : 'peakInUse']: { heapMiB: +(peak.heap / MiB).toFixed(1), arrayBuffersMiB: +(peak.buffers / MiB).toFixed(1), sumMiB: +(peak.both / MiB).toFixed(1) },
    rssMiB: Math.round(process.memoryUsage().rss / MiB),
    sha256: h.digest('hex').slice(0, 16),
    load1: +load0.toFixed(1),
  }),
);
await sm.backend.close();
