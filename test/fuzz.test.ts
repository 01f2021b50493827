/**
 * The fuzz harness through its real entry point: `flotilla fuzz` against a real 3-member
 * cluster (grpc, gateway, peer) and the WAL and snapshot readers, a few hundred inputs per
 * surface from a fixed seed; exit code 0 means every member stayed alive, answered a
 * linearizable read and agreed on HashKV after every batch, and no reader misbehaved.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../bin/flotilla.js', import.meta.url));


function run(args: string[], timeoutMs: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

describe('flotilla fuzz', () => {
  it('runs every surface briefly from a fixed seed with no failure', async () => {
    const r = await run(['fuzz', '--surface', 'all', '--runs', '300', '--batch', '150', '--seed', '7'], 170_000);
    expect(r.out, r.out).toContain('no failures');
    expect(r.code, r.out).toBe(0);
    for (const s of ['grpc', 'gateway', 'peer', 'wal', 'snapshot']) expect(r.out).toMatch(new RegExp(`^${s}\\s+300 inputs in .* inputs/s, failures: 0, peak RSS: `, 'm'));
  }, 180_000);

  it('refuses an unknown surface and an unknown method', async () => {
    const a = await run(['fuzz', '--surface', 'nope'], 30_000);
    expect(a.code).toBe(2);
    expect(a.out).toContain('unknown surface nope');
    const b = await run(['fuzz', '--surface', 'wal', '--runs', '1', '--exclude', 'etcdserverpb.KV/Nope'], 30_000);
    expect(b.out).toContain('no gRPC method etcdserverpb.KV/Nope');
    expect(b.code).toBe(2);
  }, 60_000);
});
