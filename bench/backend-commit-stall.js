#!/usr/bin/env node
/**
 * Benchmark: how long a backend batch commit holds the event loop (issue 11 item 8).
 *
 *   node bench/backend-commit-stall.js [--seconds 5] [--dist DIR]
 *
 * An LmdbBackend with etcd's batch limits (a commit every BACKEND_BATCH_INTERVAL_MS) takes two
 * puts of 256-byte values every millisecond (about what a member applies at a few hundred
 * writes per second) for --seconds. Prints the main thread's time per batch commit (the
 * backend's `write` — the whole transaction and its fsync — where commits are synchronous, or
 * `writeInBackground` — packing the batch for the commit thread — where they are not), and the
 * event loop's delay (perf_hooks) over the run. `--dist DIR` runs another build's dist/ (for an
 * A/B in the same window).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';

const o = new Command()
  .option('--seconds <s>', 'how long to write', Number, 5)
  .option('--dist <dir>', 'the dist/ directory of the build to run', join(dirname(fileURLToPath(import.meta.url)), '..', 'dist'))
  .parse()
  .opts();

const { LmdbBackend } = await import(join(o.dist, 'kv', 'backend-lmdb.js'));
const spent = [];
for (const m of ['write', 'writeInBackground']) {
  const f = LmdbBackend.prototype[m];
  if (!f) continue;
  LmdbBackend.prototype[m] = function (...a) {
    const t = performance.now();
    try {
      return f.apply(this, a);
    } finally {
      spent.push(performance.now() - t);
    }
  };
}
const dir = mkdtempSync(join(tmpdir(), 'flotilla-commit-stall-'));
try {
  const b = LmdbBackend.open(join(dir, 'db'));
  const value = new Uint8Array(256).fill(1);
  const delay = monitorEventLoopDelay({ resolution: 1 });
  let puts = 0;
  delay.enable();
  const t0 = performance.now();
  await new Promise((resolve) => {
    const t = setInterval(() => {
      for (let j = 0; j < 2; j++) b.put(new TextEncoder().encode(`k${puts++ % 5000}`), value);
      b.maybeCommit();
      if (performance.now() - t0 > o.seconds * 1000) {
        clearInterval(t);
        resolve();
      }
    }, 1);
  });
  delay.disable();
  await b.close();
  spent.sort((a, c) => a - c);
  const q = (p) => spent[Math.min(spent.length - 1, Math.floor(p * spent.length))].toFixed(2);
  const ms = (ns) => (ns / 1e6).toFixed(2);
  console.log(`${o.dist}: ${puts} puts, ${spent.length} batch commits; main thread per commit p50 ${q(0.5)} ms, p99 ${q(0.99)} ms, max ${q(1)} ms; event-loop delay p50 ${ms(delay.percentile(50))} ms, p99 ${ms(delay.percentile(99))} ms, max ${ms(delay.max)} ms`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
