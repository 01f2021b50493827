/**
 * `flotilla sim --chain`: the simulator's chain mode (src/sim/chain-sim.ts) over consecutive
 * seeds. A failure prints the seed, the broken invariant and the last events; exit code 1.
 */
import type { ReadMode } from '../chain/types.js';
import { CHAIN_FAULT_KINDS, formatChainFailure, runChainSimulation, type ChainFaultKind } from '../sim/chain-sim.js';

export interface ChainSimCommandOptions {
  readonly seed: number;
  readonly runs: number;
  readonly nodes?: number;
  readonly reads?: string;
  readonly faults?: string;
  readonly faultMs?: number;
  /** on | off (default: by seed). */
  readonly compaction?: string;
  readonly verbose?: boolean;
  readonly history?: boolean;
}

export function runChainSimCommand(o: ChainSimCommandOptions, out: (line: string) => void): number {
  if (o.nodes !== undefined && !(o.nodes >= 3 && o.nodes <= 6)) {
    out(`flotilla sim --chain: --nodes must be in 3..6 for a chain, got ${o.nodes}`);
    return 2;
  }
  let reads: ReadMode | undefined;
  if (o.reads !== undefined) {
    if (o.reads !== 'tail' && o.reads !== 'craq') {
      out(`flotilla sim --chain: --reads must be tail or craq, got "${o.reads}"`);
      return 2;
    }
    reads = o.reads;
  }
  let faults: ChainFaultKind[] | undefined;
  if (o.faults !== undefined && o.faults !== 'random') {
    const kinds = o.faults === 'all' ? [...CHAIN_FAULT_KINDS] : o.faults === 'none' ? [] : o.faults.split(',').map((s) => s.trim());
    const bad = kinds.filter((k) => !(CHAIN_FAULT_KINDS as readonly string[]).includes(k));
    if (bad.length > 0) {
      out(`flotilla sim --chain: unknown fault kind "${bad[0]}" (known: ${CHAIN_FAULT_KINDS.join(', ')}, or all, none, random)`);
      return 2;
    }
    faults = kinds as ChainFaultKind[];
  }
  let compaction: boolean | undefined;
  if (o.compaction !== undefined) {
    if (o.compaction !== 'on' && o.compaction !== 'off') {
      out(`flotilla sim --chain: --compaction must be on or off, got "${o.compaction}"`);
      return 2;
    }
    compaction = o.compaction === 'on';
  }
  const started = performance.now();
  let failed = 0;
  let ops = 0;
  let epochs = 0;
  let compactions = 0;
  let restartsFromCompaction = 0;
  for (let seed = o.seed; seed < o.seed + o.runs; seed++) {
    const r = runChainSimulation({
      seed,
      ...(o.nodes !== undefined ? { nodes: o.nodes } : {}),
      ...(reads ? { reads } : {}),
      ...(faults ? { faults } : {}),
      ...(o.faultMs !== undefined ? { faultPhaseMs: o.faultMs } : {}),
      ...(compaction !== undefined ? { compaction } : {}),
    });
    ops += r.stats.ops;
    epochs += r.stats.epochs;
    compactions += r.stats.compactionsDurable;
    restartsFromCompaction += r.stats.restartsFromCompaction;
    if (o.verbose) {
      const s = r.stats;
      out(`seed ${seed}: ${r.ok ? 'ok' : 'FAIL'}  ${r.setting}  | ${s.events} events, ${s.epochs} epochs, ${s.opsOk}/${s.ops} ops ok, ${s.crashes} crashes, ${s.partitions} partitions, ${s.replays} replays, ${s.snapshots} snapshot chunks, ${s.compactionsDurable} compactions, ${s.restartsFromCompaction} restarts from one, final seq ${s.finalSeq}`);
      if (o.history) for (const h of r.history) out(`  ${JSON.stringify(h)}`);
    }
    if (!r.ok) {
      failed++;
      out(formatChainFailure(r));
      break;
    }
  }
  const secs = ((performance.now() - started) / 1000).toFixed(1);
  out(failed === 0 ? `chain: ${o.runs} runs ok (seeds ${o.seed}..${o.seed + o.runs - 1}), ${ops} operations, ${epochs} configuration changes, ${compactions} compactions (${restartsFromCompaction} restarts from one), ${secs} s` : `chain: FAILED (replay: flotilla sim --chain --seed <seed> --runs 1 -v)`);
  return failed === 0 ? 0 : 1;
}
