/**
 * Runs the simulator over consecutive seeds and summarises what was covered.
 */
import { FAULT_KINDS, runSimulation, type FaultKind, type SimOptions, type SimResult } from './simulation.js';

export interface SweepOptions extends Omit<SimOptions, 'seed'> {
  readonly firstSeed: number;
  readonly runs: number;
  /** Stop at the first failing seed (default true). */
  readonly stopOnFailure?: boolean;
  readonly onResult?: (r: SimResult) => void;
}

export interface SweepSummary {
  runs: number;
  failures: SimResult[];
  /** Runs per fault kind enabled. */
  faultRuns: Record<FaultKind, number>;
  /** Runs per cluster size. */
  sizes: Record<number, number>;
  totals: {
    events: number;
    ops: number;
    opsOk: number;
    crashes: number;
    partitions: number;
    pauses: number;
    transfers: number;
    confChanges: number;
    snapshotsInstalled: number;
    leaders: number;
    virtualMs: number;
    jointChanges: number;
    clockFaults: number;
    divergences: number;
    hunts: number;
  };
}

/**
 * One turn of the event loop between two runs. A run with the core driver never leaves the
 * microtask queue, so without this a sweep of thousands of seeds would hold its process's event
 * loop for minutes: nothing else in the process (a test runner's RPC to its workers, which times
 * out after 60 s; a CLI's signal handlers) would run until it ended. No run reads time, so this
 * changes no result.
 */
function betweenRuns(): Promise<void> {
  // eslint-disable-next-line no-restricted-globals -- between independent runs; no time is read
  return new Promise<void>((resolve) => setImmediate(resolve));
}

/** The summary of no runs. */
export function emptySummary(): SweepSummary {
  const faultRuns = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  return {
    runs: 0,
    failures: [],
    faultRuns,
    sizes: {},
    totals: { events: 0, ops: 0, opsOk: 0, crashes: 0, partitions: 0, pauses: 0, transfers: 0, confChanges: 0, snapshotsInstalled: 0, leaders: 0, virtualMs: 0, jointChanges: 0, clockFaults: 0, divergences: 0, hunts: 0 },
  };
}

/** Adds the summary of other runs (another part of a sweep) to `into`. */
export function addSummary(into: SweepSummary, from: SweepSummary): void {
  into.runs += from.runs;
  for (const f of from.failures) into.failures.push(f);
  for (const k of FAULT_KINDS) into.faultRuns[k] += from.faultRuns[k];
  for (const [size, n] of Object.entries(from.sizes)) into.sizes[Number(size)] = (into.sizes[Number(size)] ?? 0) + n;
  const t = into.totals as Record<string, number>;
  for (const [k, v] of Object.entries(from.totals)) t[k] = (t[k] ?? 0) + v;
}

export async function runSweep(o: SweepOptions): Promise<SweepSummary> {
  const summary = emptySummary();
  const faultRuns = summary.faultRuns;
  for (let i = 0; i < o.runs; i++) {
    const seed = (o.firstSeed + i) >>> 0;
    const r = await runSimulation({ ...o, seed });
    summary.runs++;
    for (const f of r.faults) faultRuns[f]++;
    summary.sizes[r.nodes] = (summary.sizes[r.nodes] ?? 0) + 1;
    const t = summary.totals;
    const s = r.stats;
    t.events += s.events;
    t.ops += s.ops;
    t.opsOk += s.opsOk;
    t.crashes += s.crashes;
    t.partitions += s.partitions;
    t.pauses += s.pauses;
    t.transfers += s.transfers;
    t.confChanges += s.confChanges;
    t.snapshotsInstalled += s.snapshotsInstalled;
    t.leaders += s.leaders;
    t.virtualMs += s.virtualMs;
    t.jointChanges += s.jointChanges;
    t.clockFaults += s.clockFaults;
    t.divergences += s.divergences;
    t.hunts += s.hunts;
    o.onResult?.(r);
    await betweenRuns();
    if (!r.ok) {
      summary.failures.push(r);
      if (o.stopOnFailure ?? true) break;
    }
  }
  return summary;
}

/** A failure as a readable report: seed, setting, invariant, message, the last events. */
export function formatFailure(r: SimResult): string {
  const f = r.failure!;
  return [
    `FAILED seed ${r.seed}: ${f.invariant} violated at ${f.timeMs.toFixed(3)}ms`,
    `  ${f.message}`,
    `  setting: ${r.setting}`,
    // The fault kinds always: a sweep given --faults runs other kinds than the seed would choose.
    // Named explicitly, in the run's order, the seed's own choice replays the same run.
    `  reproduce: npx flotilla sim --seed ${r.seed} --runs 1${r.nodes ? ` --nodes ${r.nodes}` : ''} --faults ${r.faults.length > 0 ? r.faults.join(',') : 'none'}${r.setting.startsWith('driver=core') ? ' --driver core' : ''}${r.setting.includes(' store=real ') ? ' --store real' : ''}`,
    `  last events:`,
    ...f.trace.map((l) => `    ${l}`),
  ].join('\n');
}
