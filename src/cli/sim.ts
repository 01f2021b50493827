/**
 * `flotilla sim`: runs the deterministic simulator over consecutive seeds. A failure prints the
 * seed, the broken invariant and the last events, and the exit code is 1.
 */
import { FAULT_KINDS, type FaultKind } from '../sim/simulation.js';
import { defaultJobs, runParallelSweep } from '../sim/parallel-sweep.js';
import { formatFailure, runSweep, type SweepSummary } from '../sim/sweep.js';
import type { SimResult } from '../sim/settings.js';
import type { TraceEvent } from '../trace/event.js';
import { closeSync, openSync, writeSync } from 'node:fs';

/** Trace events as JSON lines, written in batches of about a MiB. */
class TraceFile {
  private readonly fd: number;
  private pending: string[] = [];
  private pendingChars = 0;
  private count = 0;

  constructor(path: string) {
    this.fd = openSync(path, 'w');
  }

  write(e: TraceEvent): void {
    const line = `${JSON.stringify(e)}\n`;
    this.pending.push(line);
    this.pendingChars += line.length;
    this.count++;
    if (this.pendingChars >= 1 << 20) this.flush();
  }

  private flush(): void {
    if (this.pending.length > 0) writeSync(this.fd, this.pending.join(''));
    this.pending = [];
    this.pendingChars = 0;
  }

  /** Flushes and closes; returns the number of events written. */
  close(): number {
    this.flush();
    closeSync(this.fd);
    return this.count;
  }
}

export interface SimCommandOptions {
  readonly seed: number;
  readonly runs: number;
  readonly nodes?: number;
  readonly faults?: string;
  readonly faultMs?: number;
  readonly driver?: string;
  /** What members apply the log to: sim or real (node driver only). */
  readonly store?: string;
  readonly verbose?: boolean;
  readonly history?: boolean;
  /** Write the run's trace to this file (one run only). */
  readonly trace?: string;
  /** Worker threads that share the seeds (default 1: this thread; 0: one per CPU). */
  readonly jobs?: number;
}

export function parseFaults(s: string | undefined): FaultKind[] | undefined {
  if (s === undefined || s === 'random') return undefined;
  if (s === 'all') return [...FAULT_KINDS];
  if (s === 'none') return [];
  const kinds = s.split(',').map((x) => x.trim());
  for (const k of kinds) {
    if (!(FAULT_KINDS as readonly string[]).includes(k)) throw new Error(`unknown fault kind "${k}" (known: ${FAULT_KINDS.join(', ')}, or all, none, random)`);
  }
  return kinds as FaultKind[];
}

export async function runSimCommand(o: SimCommandOptions, out: (line: string) => void): Promise<number> {
  const driver = o.driver ?? 'node';
  if (driver !== 'node' && driver !== 'core') {
    out(`flotilla sim: unknown driver "${driver}" (known: node, core)`);
    return 2;
  }
  const store = o.store ?? 'sim';
  if (store !== 'sim' && store !== 'real') {
    out(`flotilla sim: unknown store "${store}" (known: sim, real)`);
    return 2;
  }
  if (store === 'real' && driver !== 'node') {
    out('flotilla sim: --store real runs under the node driver only');
    return 2;
  }
  let faults: FaultKind[] | undefined;
  try {
    faults = parseFaults(o.faults);
  } catch (e) {
    out(`flotilla sim: ${(e as Error).message}`);
    return 2;
  }
  if (o.trace !== undefined && o.runs !== 1) {
    out('flotilla sim: --trace writes the trace of one run: use it with --runs 1');
    return 2;
  }
  const jobs = o.jobs === 0 ? defaultJobs() : (o.jobs ?? 1);
  let trace: TraceFile | null = null;
  if (o.trace !== undefined) {
    try {
      trace = new TraceFile(o.trace);
    } catch (e) {
      out(`flotilla sim: cannot write the trace: ${(e as Error).message}`);
      return 2;
    }
  }
  const started = performance.now();
  let lastReport = started;
  const sim = {
    driver,
    store,
    ...(o.nodes !== undefined ? { nodes: o.nodes } : {}),
    ...(faults ? { faults } : {}),
    ...(o.faultMs !== undefined ? { faultPhaseMs: o.faultMs } : {}),
  } as const;
  const onResult = (r: SimResult): void => {
    if (o.verbose) {
      const s = r.stats;
      out(
        `seed ${r.seed}: ${r.ok ? 'ok' : 'FAIL'}  ${r.setting}  | ${s.events} events, term ${s.maxTerm}, ${s.leaders} leaders, ` +
          `${s.opsOk}/${s.ops} ops ok, ${s.crashes} crashes, ${s.partitions} partitions, commit ${s.commitIndex}, leader ${s.leaderAfterHealMs}ms after heal`,
      );
      if (o.history) for (const h of r.history) out(`  ${JSON.stringify(h)}`);
    } else if (performance.now() - lastReport > 5000) {
      lastReport = performance.now();
      out(`... seed ${r.seed} done`);
    }
  };
  const onProgress = (runsDone: number): void => {
    if (performance.now() - lastReport > 5000) {
      lastReport = performance.now();
      out(`... ${runsDone} of ${o.runs} runs done`);
    }
  };
  const summary: SweepSummary =
    jobs === 1 || trace
      ? await runSweep({ ...sim, firstSeed: o.seed, runs: o.runs, ...(trace ? { onTrace: (e: TraceEvent) => trace.write(e) } : {}), onResult })
      : // Without --verbose, workers send back only failures and each batch's summary.
        await runParallelSweep({ sim, firstSeed: o.seed, runs: o.runs, jobs, ...(o.verbose ? { onResult } : {}), onProgress });
  if (trace) out(`trace: ${trace.close()} events written to ${o.trace}`);
  const secs = (performance.now() - started) / 1000;
  if (summary.failures.length > 0) {
    for (const f of summary.failures) out(formatFailure(f));
    return 1;
  }
  const t = summary.totals;
  out(
    `${summary.runs} runs clean (seeds ${o.seed}..${o.seed + summary.runs - 1}) in ${secs.toFixed(1)}s: ` +
      `${t.events} events, ${t.leaders} leaders elected, ${t.opsOk}/${t.ops} client ops ok, ${t.crashes} crashes, ` +
      `${t.partitions} partitions, ${t.pauses} pauses, ${t.transfers} transfers, ${t.confChanges} conf changes, ` +
      `${t.snapshotsInstalled} snapshots installed, ${t.jointChanges} joint replaces, ${t.clockFaults} clock faults, ` +
      `${t.divergences} divergent tails, ${t.hunts} hunts for a deposed leader, ${(t.virtualMs / 1000).toFixed(0)}s virtual`,
  );
  out(`  sizes: ${Object.entries(summary.sizes).map(([k, v]) => `${k} members x${v}`).join(', ')}`);
  out(`  fault kinds: ${Object.entries(summary.faultRuns).map(([k, v]) => `${k} x${v}`).join(', ')}`);
  return 0;
}
