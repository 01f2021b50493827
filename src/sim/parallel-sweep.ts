/**
 * A sweep over worker threads, so a soak uses every core: the seeds are handed out in batches
 * to `jobs` workers (sweep-worker.ts), each runs runSweep on its batch, and the summaries are
 * added up. A run is a pure function of its seed and options, so a seed does the same whichever
 * worker runs it; only the order in which results arrive differs from runSweep's.
 *
 * Runs from the compiled module only (dist/sim): the worker loads sweep-worker.js beside it.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { SimOptions, SimResult } from './settings.js';
import { addSummary, emptySummary, type SweepSummary } from './sweep.js';

/** The options every run of a parallel sweep shares: the ones that can be sent to a worker thread (no functions). */
export type SharedSimOptions = Omit<SimOptions, 'seed' | 'makeCore' | 'reopenBackend' | 'wrapStorage' | 'onTrace'>;

export interface ParallelSweepOptions {
  readonly firstSeed: number;
  readonly runs: number;
  /** Worker threads (default: one per CPU, os.availableParallelism()); never more than there are runs. */
  readonly jobs?: number;
  readonly sim: SharedSimOptions;
  /**
   * Stop at a failing seed (default true): no further batches are handed out; the batches under
   * way finish (each stops at its own first failure). Failures are listed in seed order.
   */
  readonly stopOnFailure?: boolean;
  /** Told of every run as it completes (in completion order); without it workers send only failures. */
  readonly onResult?: (r: SimResult) => void;
  /** Told after each batch how many runs are done. */
  readonly onProgress?: (runsDone: number) => void;
}

/**
 * Seeds per batch at most: a batch is the unit of balance between workers (a worker that drew
 * slow seeds takes fewer batches), so batches stay small next to a worker's share.
 */
export const SWEEP_BATCH_RUNS_MAX = 50;
/** Batches per worker the runs are cut into, at least (when there are enough runs). */
const BATCHES_PER_JOB_MIN = 8;

/** What the main thread sends a worker. */
export type ToWorker = { readonly type: 'batch'; readonly firstSeed: number; readonly runs: number } | { readonly type: 'stop' };
/** What a worker sends back: a run's result (all, or failures only), then its batch's summary. */
export type FromWorker = { readonly type: 'result'; readonly result: SimResult } | { readonly type: 'summary'; readonly summary: SweepSummary };
/** A worker's workerData. */
export interface WorkerSetup {
  readonly sim: SharedSimOptions;
  readonly stopOnFailure: boolean;
  /** Send every run's result, not only failures. */
  readonly allResults: boolean;
}

export function defaultJobs(): number {
  return availableParallelism();
}

export async function runParallelSweep(o: ParallelSweepOptions): Promise<SweepSummary> {
  const total = emptySummary();
  if (o.runs <= 0) return total;
  const jobs = Math.max(1, Math.min(o.jobs ?? defaultJobs(), o.runs));
  const batchRuns = Math.max(1, Math.min(SWEEP_BATCH_RUNS_MAX, Math.ceil(o.runs / (jobs * BATCHES_PER_JOB_MIN))));
  const stopOnFailure = o.stopOnFailure ?? true;
  const setup: WorkerSetup = { sim: o.sim, stopOnFailure, allResults: o.onResult !== undefined };
  let handedOut = 0;
  let stopped = false;
  const workers: Worker[] = [];
  await new Promise<void>((resolve, reject) => {
    let running = jobs;
    let failed = false;
    const fail = (e: unknown): void => {
      if (failed) return;
      failed = true;
      for (const w of workers) void w.terminate();
      reject(e instanceof Error ? e : new Error(String(e)));
    };
    const next = (w: Worker): void => {
      if (stopped || handedOut >= o.runs) {
        w.postMessage({ type: 'stop' } satisfies ToWorker);
        return;
      }
      const runs = Math.min(batchRuns, o.runs - handedOut);
      w.postMessage({ type: 'batch', firstSeed: o.firstSeed + handedOut, runs } satisfies ToWorker);
      handedOut += runs;
    };
    for (let i = 0; i < jobs; i++) {
      const w = new Worker(new URL('./sweep-worker.js', import.meta.url), { workerData: setup });
      workers.push(w);
      w.on('message', (m: FromWorker) => {
        if (failed) return;
        try {
          if (m.type === 'result') {
            o.onResult?.(m.result);
            return;
          }
          addSummary(total, m.summary);
          o.onProgress?.(total.runs);
          if (stopOnFailure && m.summary.failures.length > 0) stopped = true;
          next(w);
        } catch (e) {
          fail(e);
        }
      });
      w.on('error', fail);
      w.on('exit', (code) => {
        if (code !== 0) fail(new Error(`sweep worker ${i} exited with code ${code}`));
        else if (--running === 0 && !failed) resolve();
      });
      next(w);
    }
  });
  total.failures.sort((a, b) => a.seed - b.seed);
  return total;
}
