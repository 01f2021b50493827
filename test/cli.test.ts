import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

// These go through the real entry point, bin/flotilla.js over the build (npm test builds first).
const root = join(import.meta.dirname, '..');
const bin = join(root, 'bin', 'flotilla.js');
const built = existsSync(join(root, 'dist', 'cli', 'main.js'));
const dir = mkdtempSync(join(tmpdir(), 'flotilla-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function flotilla(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe.skipIf(!built)('flotilla command', () => {
  it('sim runs seeds and reports a clean sweep', () => {
    const r = flotilla('sim', '--seed', '1', '--runs', '5');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/5 runs clean \(seeds 1\.\.5\)/);
  });

  it('sim reproduces one run exactly from its seed', () => {
    const a = flotilla('sim', '--seed', '77', '--runs', '1', '-v');
    const b = flotilla('sim', '--seed', '77', '--runs', '1', '-v');
    expect(a.code).toBe(0);
    const line = (s: string): string => s.split('\n').find((l) => l.startsWith('seed 77:'))!;
    expect(line(a.out)).toBeDefined();
    expect(line(a.out)).toBe(line(b.out));
  });

  it('sim --store real runs members on the real store, and names it in the setting and the replay command', () => {
    const r = flotilla('sim', '--seed', '3', '--runs', '1', '-v', '--store', 'real');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/seed 3: ok .* store=real batch=\d+ commitEvery=\d+ms/);
    const bad = flotilla('sim', '--store', 'lmdb');
    expect(bad.code).toBe(2);
    expect(bad.out).toContain('unknown store "lmdb" (known: sim, real)');
    const core = flotilla('sim', '--store', 'real', '--driver', 'core');
    expect(core.code).toBe(2);
    expect(core.out).toContain('--store real runs under the node driver only');
  });

  it('sim --jobs shares the seeds among worker threads and reports what one thread reports', () => {
    const summary = (out: string): string[] => out.split('\n').filter((l) => !l.startsWith('...')).map((l) => l.replace(/ in [\d.]+s/, ''));
    const one = flotilla('sim', '--seed', '20', '--runs', '6', '--driver', 'core');
    const two = flotilla('sim', '--seed', '20', '--runs', '6', '--driver', 'core', '--jobs', '2');
    expect(two.err).toBe('');
    expect(two.code).toBe(0);
    expect(two.out).toMatch(/6 runs clean \(seeds 20\.\.25\)/);
    expect(summary(two.out)).toEqual(summary(one.out));
    const chain = flotilla('sim', '--chain', '--jobs', '2');
    expect(chain.code).toBe(2);
    expect(chain.out).toContain('--jobs is for the Raft simulator');
  });

  it('sim refuses bad flags with a clear message', () => {
    const r = flotilla('sim', '--runs', 'many');
    expect(r.code).not.toBe(0);
    expect(r.err).toContain('--runs must be an integer');
    const f = flotilla('sim', '--faults', 'meteor');
    expect(f.code).toBe(2);
    expect(f.out).toContain('unknown fault kind "meteor"');
    const n = flotilla('sim', '--nodes', '9');
    expect(n.code).not.toBe(0);
    expect(n.err).toContain('--nodes must be in [3, 7]');
  });

  it('check accepts a linearizable history and rejects a stale read', () => {
    const good = join(dir, 'good.jsonl');
    writeFileSync(
      good,
      [
        { process: 1, op: 'write', key: 'k', value: 'a', ok: true, call: 0, return: 10 },
        { process: 2, op: 'read', key: 'k', ok: true, output: 'a', call: 20, return: 30 },
      ]
        .map((o) => JSON.stringify(o))
        .join('\n'),
    );
    const g = flotilla('check', good);
    expect(g.code).toBe(0);
    expect(g.out).toContain('linearizable: 2 ops over 1 keys');

    const bad = join(dir, 'bad.jsonl');
    writeFileSync(
      bad,
      [
        { process: 1, op: 'write', key: 'k', value: 'a', ok: true, call: 0, return: 10 },
        { process: 1, op: 'write', key: 'k', value: 'b', ok: true, call: 20, return: 30 },
        { process: 2, op: 'read', key: 'k', ok: true, output: 'a', call: 40, return: 50 },
      ]
        .map((o) => JSON.stringify(o))
        .join('\n'),
    );
    const b = flotilla('check', bad);
    expect(b.code).toBe(1);
    expect(b.out).toContain('NOT linearizable: key k');

    // Recorded histories are kept gzipped.
    writeFileSync(`${bad}.gz`, gzipSync(readFileSync(bad)));
    const bz = flotilla('check', `${bad}.gz`);
    expect(bz.code).toBe(1);
    expect(bz.out).toContain('NOT linearizable: key k');
    writeFileSync(join(dir, 'notgz.gz'), 'plain text');
    const nz = flotilla('check', join(dir, 'notgz.gz'));
    expect(nz.code).toBe(2);
    expect(nz.err).toContain('cannot read');
  });

  it('check reports unreadable and malformed files', () => {
    const missing = flotilla('check', join(dir, 'nope.jsonl'));
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('cannot read');
    const junk = join(dir, 'junk.jsonl');
    writeFileSync(junk, '{"process": 1, "op": "write"\n');
    const j = flotilla('check', junk);
    expect(j.code).toBe(2);
    expect(j.err).toContain('line 1: not JSON');
  });

  it('demo narrates an election, replication and a leader crash', () => {
    const r = flotilla('demo', '--pause-ms', '0');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/leader/i);
    expect(r.out).toMatch(/crash/i);
  });
});
