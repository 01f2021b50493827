/**
 * A worker thread of a parallel sweep (parallel-sweep.ts): runs each batch of seeds it is sent
 * with runSweep, sends back the results asked for and the batch's summary, and ends when told.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { FromWorker, ToWorker, WorkerSetup } from './parallel-sweep.js';
import { runSweep } from './sweep.js';

const port = parentPort;
if (!port) throw new Error('sweep-worker.js runs as a worker thread of runParallelSweep');
const setup = workerData as WorkerSetup;

port.on('message', (m: ToWorker) => {
  if (m.type === 'stop') {
    port.close();
    return;
  }
  void runSweep({
    ...setup.sim,
    firstSeed: m.firstSeed,
    runs: m.runs,
    stopOnFailure: setup.stopOnFailure,
    onResult: (r) => {
      if (setup.allResults || !r.ok) port.postMessage({ type: 'result', result: r } satisfies FromWorker);
    },
  }).then((summary) => port.postMessage({ type: 'summary', summary } satisfies FromWorker));
});
