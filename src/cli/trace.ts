/**
 * `flotilla trace merge FILES...`: one timeline of members' logs and trace files, in
 * happens-before order (src/trace/merge.ts); `--format shiviz` writes ShiViz's log format,
 * `--format json` the ordered TraceEvents as JSON lines; `--out FILE` instead of stdout.
 */
import type { Command } from 'commander';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { formatShiViz, formatTimeline, mergeTraces, parseTrace, TRACE_MERGE_EVENTS_MAX } from '../trace/merge.js';
import type { TraceEvent } from '../trace/event.js';

/** Largest input file read (bytes); a larger one is refused with a message. */
export const TRACE_FILE_BYTES_MAX = 1 << 30;
export const TRACE_FORMATS = ['text', 'shiviz', 'json'] as const;

export interface TraceMergeOptions {
  readonly format: string;
  readonly out?: string;
}

/** Runs `trace merge`; returns the exit code (2 for bad input or flags). */
export function runTraceMerge(files: readonly string[], o: TraceMergeOptions, out: (s: string) => void, err: (s: string) => void): number {
  if (!(TRACE_FORMATS as readonly string[]).includes(o.format)) {
    err(`flotilla trace merge: unknown format "${o.format}" (known: ${TRACE_FORMATS.join(', ')})`);
    return 2;
  }
  const inputs: TraceEvent[][] = [];
  let skipped = 0;
  let total = 0;
  for (const f of files) {
    let text: string;
    try {
      const size = statSync(f).size;
      if (size > TRACE_FILE_BYTES_MAX) throw new Error(`${size} bytes, more than ${TRACE_FILE_BYTES_MAX}`);
      text = readFileSync(f, 'utf8');
    } catch (e) {
      err(`flotilla trace merge: cannot read ${f}: ${(e as Error).message}`);
      return 2;
    }
    try {
      const r = parseTrace(text);
      total += r.events.length;
      if (total > TRACE_MERGE_EVENTS_MAX) throw new Error(`more than ${TRACE_MERGE_EVENTS_MAX} events in all`);
      inputs.push(r.events);
      skipped += r.skipped;
    } catch (e) {
      err(`flotilla trace merge: ${f}: ${(e as Error).message}`);
      return 2;
    }
  }
  if (total === 0) {
    err(`flotilla trace merge: no events with clocks in ${files.join(', ')} (a member's log lines carry clocks unless it runs with --trace-clocks=false)`);
    return 2;
  }
  const r = mergeTraces(inputs);
  const body = o.format === 'shiviz' ? formatShiViz(r) : o.format === 'json' ? r.events.map((e) => `${JSON.stringify(e)}\n`).join('') : formatTimeline(r);
  if (o.out) writeFileSync(o.out, body);
  else out(body);
  const notes = [`${r.events.length} events from ${files.length} file(s)`];
  if (r.duplicates) notes.push(`${r.duplicates} read twice`);
  if (skipped) notes.push(`${skipped} lines without clocks skipped`);
  if (r.inconsistent) notes.push(`${r.inconsistent} contradictions between clocks (cycles broken by Lamport time)`);
  err(`flotilla trace merge: ${notes.join(', ')}`);
  return 0;
}

export function registerTrace(program: Command): void {
  const trace = program.command('trace').description('logical-clock traces of a cluster or a simulated run');
  trace
    .command('merge')
    .description('merge members\' logs and trace files (GET /debug/trace, flotilla sim --trace) into one timeline in happens-before order; concurrent neighbours are marked ||')
    .argument('<files...>', 'log files (text or JSON format) and trace files (TraceEvent JSON lines)')
    .option('--format <f>', 'text (a timeline), shiviz (the ShiViz visualiser\'s log format), json (ordered TraceEvent lines)', 'text')
    .option('--out <file>', 'write there instead of stdout')
    .action((files: string[], o: TraceMergeOptions) => {
      process.exitCode = runTraceMerge(files, o, (s) => process.stdout.write(s), (s) => console.error(s));
    });
}
