// A soak sweep of the simulator that prints one row of the soak table in bench/README.md:
//   node bench/sim-soak.js --seed 1000000 --runs 2000 --driver core [--faults joint,crash]
// (build first: npm run build). Seeds run one after another; a violation prints its report
// (seed, invariant, last events) on stderr and counts in the row, and the sweep goes on.
import { formatFailure, runSweep } from '../dist/sim/sweep.js';

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}

const seed = Number(arg('seed', '1'));
const runs = Number(arg('runs', '100'));
const driver = arg('driver', 'node');
const faults = arg('faults', undefined);
if (!Number.isInteger(seed) || !Number.isInteger(runs) || runs < 1) throw new Error('--seed and --runs must be integers');

const started = Date.now();
const s = await runSweep({
  firstSeed: seed,
  runs,
  driver,
  stopOnFailure: false,
  ...(faults ? { faults: faults.split(',') } : {}),
  onResult: (r) => {
    if (!r.ok) console.error(formatFailure(r));
  },
});
const t = s.totals;
const injected = t.crashes + t.partitions + t.pauses + t.transfers + t.confChanges + t.clockFaults + t.divergences;
const mix = faults ? faults.replaceAll(',', '+') : 'random (all kinds)';
const day = new Date().toISOString().slice(0, 10);
console.log(
  `| ${day} | ${seed}..${seed + s.runs - 1} | ${s.runs} | ${driver} / ${mix} | ${t.events} | ${injected} (${t.crashes} crashes, ${t.partitions} partitions, ` +
    `${t.pauses} pauses, ${t.confChanges} conf changes (${t.jointChanges} joint replaces), ${t.clockFaults} clock, ${t.divergences} divergent tails; ${t.hunts} hunts) | ${s.failures.length} | ${((Date.now() - started) / 1000).toFixed(0)} s |`,
);
