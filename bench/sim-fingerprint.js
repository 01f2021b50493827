// What each seed of the simulator does, as one hash per seed: a check that a change meant to make
// the simulator faster (or to restructure it) leaves every run exactly as it was.
//   node bench/sim-fingerprint.js --seed 1 --runs 300 --driver core [--faults K,..] [--store real] > before.txt
//   (change, npm run build) ... > after.txt; diff before.txt after.txt
// A seed's hash covers every event taken off the agenda (its virtual time and sequence number),
// every line of the run's trace (each labelled event and note, kept in full here), every trace
// event with its logical clocks (the messages sent and received), the setting, the statistics,
// the client history and the outcome. The last line is a hash over all seeds.
import { createHash } from 'node:crypto';
import { Simulation } from '../dist/sim/simulation.js';

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}

const first = Number(arg('seed', '1'));
const runs = Number(arg('runs', '10'));
const driver = arg('driver', 'node');
const faults = arg('faults', undefined);
const store = arg('store', 'sim');
if (!Number.isInteger(first) || !Number.isInteger(runs) || runs < 1) throw new Error('--seed and --runs must be integers');

const all = createHash('sha256');
for (let seed = first; seed < first + runs; seed++) {
  const h = createHash('sha256');
  const sim = new Simulation({
    seed,
    driver,
    store,
    traceLength: Number.MAX_SAFE_INTEGER,
    ...(faults ? { faults: faults.split(',') } : {}),
    onTrace: (e) => h.update(`T ${JSON.stringify(e)}\n`),
  });
  // The agenda is private; wrap its pop to see every event in the order it runs.
  const queue = sim.queue;
  const pop = queue.pop.bind(queue);
  queue.pop = () => {
    const ev = pop();
    if (ev) h.update(`E ${ev.time} ${ev.seq}\n`);
    return ev;
  };
  const r = await sim.run();
  // The full trace of notes and labelled events, however the simulation keeps it.
  const lines = typeof sim.traceLines === 'function' ? sim.traceLines() : sim.trace;
  for (const l of lines) h.update(`L ${l}\n`);
  h.update(`S ${r.setting}\n${JSON.stringify(r.stats)}\n${JSON.stringify(r.history)}\n${r.ok}\n`);
  if (r.failure) h.update(`F ${r.failure.invariant} ${r.failure.message} ${r.failure.timeMs}\n${r.failure.trace.join('\n')}\n`);
  const d = h.digest('hex').slice(0, 16);
  all.update(d);
  console.log(`${seed} ${r.ok ? 'ok' : 'FAIL'} ${r.stats.events} ${lines.length} ${d}`);
}
console.log(`all ${all.digest('hex').slice(0, 16)}`);
