/**
 * A short fault run through the real command (`flotilla faults`): every fault kind (SIGKILL and
 * restart, SIGSTOP/SIGCONT, partitions, slow fsync) against 3 member processes under a
 * register workload with watchers; every verdict must pass. The seed is printed: a failure
 * reproduces with `npm run faults -- --seed <seed>`.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { parseHistory } from '../src/check/index.js';
import { FLOTILLA_BIN } from './support/cluster.js';

it('flotilla faults: every fault kind, no violation', async () => {
  const seed = Date.now() % 1_000_000;
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-faults-test-'));
  const history = join(dir, 'history.jsonl');
  console.log(`fault run seed ${seed}`);
  try {
    const p = spawn(process.execPath, [FLOTILLA_BIN, 'faults', '--time', '40', '--faults', 'all', '--seed', String(seed), '--history', history], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((r) => p.on('exit', r));
    console.log(out);
    for (const kind of ['kill m', 'pause m', 'partition ', 'slow disk on m']) expect(out, `injected ${kind}`).toContain(kind);
    for (const verdict of ['linearizable', 'watch guarantees', 'acknowledged writes', 'locks and fencing', 'HashKV equal']) expect(out).toMatch(new RegExp(`^PASS ${verdict}:`, 'm'));
    expect(code, `seed ${seed}`).toBe(0);
    const ops = parseHistory(readFileSync(history, 'utf8'));
    // The workload ran: every kind of operation completed at least once (how many fit in the
    // run's 40 s depends on the machine's speed, not on the system's correctness).
    for (const op of ['read', 'write', 'cas']) expect(ops.some((o) => o.op === op && o.ok === true), `an ok ${op}`).toBe(true);
    expect(new Set(ops.map((o) => o.op))).toEqual(new Set(['read', 'write', 'cas']));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 150_000);
