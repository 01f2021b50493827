// A soak sweep of the simulator that prints one row of the soak table in bench/README.md:
//   node bench/sim-soak.js --seed 1000000 --runs 2000 --driver core [--faults joint,crash] [--jobs N]
// (build first: npm run build). The seeds are shared out among --jobs worker threads (default:
// one per CPU, os.availableParallelism()); --jobs 1 runs them one after another in this thread.
// A seed's run is the same whichever worker runs it. A violation prints its report (seed,
// invariant, last events) on stderr and counts in the row, and the sweep goes on. The time is
// wall-clock time.
import { defaultJobs, runParallelSweep } from '../dist/sim/parallel-sweep.js';
import { formatFailure, runSweep } from '../dist/sim/sweep.js';

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}

const seed = Number(arg('seed', '1'));
const runs = Number(arg('runs', '100'));
const driver = arg('driver', 'node');
const faults = arg('faults', undefined);
const jobs = Number(arg('jobs', String(defaultJobs())));
if (!Number.isInteger(seed) || !Number.isInteger(runs) || runs < 1) throw new Error('--seed and --runs must be integers');
if (!Number.isInteger(jobs) || jobs < 1) throw new Error('--jobs must be a positive integer');

const started = Date.now();
const sim = { driver, ...(faults ? { faults: faults.split(',') } : {}) };
const onResult = (r) => {
  if (!r.ok) console.error(formatFailure(r));
};
const s =
  jobs === 1
    ? await runSweep({ ...sim, firstSeed: seed, runs, stopOnFailure: false, onResult })
    : await runParallelSweep({ sim, firstSeed: seed, runs, jobs, stopOnFailure: false, onResult });
const t = s.totals;
const injected = t.crashes + t.partitions + t.pauses + t.transfers + t.confChanges + t.clockFaults + t.divergences;
const mix = faults ? faults.replaceAll(',', '+') : 'random (all kinds)';
const day = new Date().toISOString().slice(0, 10);
console.log(
  `| ${day} | ${seed}..${seed + s.runs - 1} | ${s.runs} | ${driver} / ${mix} | ${t.events} | ${injected} (${t.crashes} crashes, ${t.partitions} partitions, ` +
    `${t.pauses} pauses, ${t.confChanges} conf changes (${t.jointChanges} joint replaces), ${t.clockFaults} clock, ${t.divergences} divergent tails; ${t.hunts} hunts) | ${s.failures.length} | ${((Date.now() - started) / 1000).toFixed(0)} s |`,
);
