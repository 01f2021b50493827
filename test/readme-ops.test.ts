/**
 * The `sh` snippets of README.md's "Watching a cluster: metrics, health, logs" run as written
 * against a real cluster (only its addresses, and `npx flotilla` for the built CLI, are
 * substituted): each command exits 0 and prints something. The `flotilla serve` snippet starts
 * a member that logs JSON lines.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAndWait } from '../src/lib/proc.js';
import { FLOTILLA_BIN, freePort, startCluster, type Cluster } from './support/cluster.js';
import { shSnippets } from './support/readme.js';

const run = promisify(execFile);
const SECTION = '### Watching a cluster: metrics, health, logs';

const snippets = (): string[] => shSnippets(SECTION);

const commands = (block: string) => block.split('\n').map((l) => l.replace(/\s+#.*$/, '').trim()).filter((l) => l !== '' && !l.startsWith('#'));

describe('README: watching a cluster', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await startCluster('flotilla');
  });
  afterAll(async () => {
    await c?.stop();
  });

  const blocks = snippets();
  it('the section has its snippets', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(2);
  });

  it('every command of the cluster snippets runs and prints', async () => {
    const cli = `${JSON.stringify(process.execPath)} ${JSON.stringify(FLOTILLA_BIN)}`;
    const lines = blocks.filter((b) => !b.includes('flotilla serve')).flatMap(commands);
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      const cmd = line.replaceAll('npx flotilla', cli).replaceAll('127.0.0.1:2379', c.endpoints[0]!);
      const r = await run('sh', ['-c', cmd], { timeout: 20_000 }).catch((e: Error & { stdout?: string; stderr?: string }) => {
        throw new Error(`README command failed: ${line}\n${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
      });
      expect(r.stdout.trim(), line).not.toBe('');
    }
  });

  it('the `flotilla serve --log-format json` snippet starts a member that logs JSON lines', async () => {
    const block = blocks.find((b) => b.includes('flotilla serve'));
    expect(block).toBeDefined();
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-readme-'));
    const [cp, pp] = [await freePort(), await freePort()];
    const line = commands(block!)[0]!
      .replace('npx flotilla', `${JSON.stringify(process.execPath)} ${JSON.stringify(FLOTILLA_BIN)}`)
      .replaceAll('127.0.0.1:2379', `127.0.0.1:${cp}`)
      .replaceAll('127.0.0.1:2380', `127.0.0.1:${pp}`)
      .replace('/tmp/solo.etcd', join(dir, 'solo.etcd'));
    const p = spawn('sh', ['-c', `exec ${line}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    try {
      const deadline = Date.now() + 20_000;
      while (!out.includes('elected leader')) {
        if (Date.now() > deadline || p.exitCode !== null) throw new Error(`no election logged:\n${out}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const objs = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      // The disk verdict first: info when good for Raft, warn when slow (a loaded machine).
      expect(objs[0]).toMatchObject({ member: 'solo', term: 0 });
      expect(`${String(objs[0]!.level)} ${String(objs[0]!.msg)}`).toMatch(/^(info fdatasync p99 [\d.]+ ms: good for Raft|warn fdatasync p99 [\d.]+ ms: slow: etcd recommends under 10 ms)$/);
      expect(objs.find((o) => String(o.msg).includes('elected leader'))!.term).toBeGreaterThanOrEqual(1);
    } finally {
      await killAndWait(p);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
