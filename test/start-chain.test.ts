/**
 * `flotilla start --chain NAME`: the local cluster, then a 3-node chain and its master beside it
 * (the cluster as its control plane); the chain serves; Ctrl-C stops everything.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ChainClient } from '../src/chainnode/client.js';
import { FLOTILLA_BIN, freePorts } from './support/cluster.js';

describe('flotilla start --chain', () => {
  it('starts a 3-node chain beside the cluster; it serves; SIGINT stops all', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-start-chain-'));
    // Nine distinct ports (probes one after another once returned a member's port for a chain node).
    const all = await freePorts(9);
    const [client, peer, chainPorts] = [all.slice(0, 3), all.slice(3, 6), all.slice(6, 9)];
    const p = spawn(process.execPath, [FLOTILLA_BIN, 'start', '--data-dir', dir, '--client-ports', client.join(','), '--peer-ports', peer.join(','), '--chain', 'photos', '--chain-ports', chainPorts.join(',')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => p.on('exit', (code) => r(code)));
    const endpoints = client.map((c) => `127.0.0.1:${c}`);
    try {
      for (let i = 0; i < 900 && !out.includes('chain photos ready'); i++) await new Promise((r) => setTimeout(r, 100));
      expect(out, out).toMatch(/chain photos ready: head n\d, tail n\d \(epoch \d+\)/);
      expect(out).toContain(`npx flotilla chain put photos greeting hello --control ${endpoints.join(',')}`);
      const c = new ChainClient({ chain: 'photos', control: endpoints, timeoutMs: 30_000 });
      try {
        const v = await c.status();
        expect([...v.nodes.values()].map((n) => n.address).sort()).toEqual(chainPorts.map((x) => `127.0.0.1:${x}`).sort());
        const put = await c.put('greeting', 'hello');
        const got = await c.get('greeting');
        expect(got.version).toBe(put.version);
        expect(Buffer.from(got.value!).toString()).toBe('hello');
      } finally {
        await c.close();
      }
    } finally {
      p.kill('SIGINT');
      expect(await exited).toBe(0);
      rmSync(dir, { recursive: true, force: true });
    }
    expect(out).toContain('stopped');
    expect(out).not.toMatch(/chain photos \S+ exited/);
  }, 150_000);

  it('refuses bad chain ports and names (exit 2)', () => {
    const ports = spawnSync(process.execPath, [FLOTILLA_BIN, 'start', '--chain', 'x', '--chain-ports', '1,2'], { encoding: 'utf8', timeout: 10_000 });
    expect(ports.status).toBe(2);
    expect(ports.stderr).toContain('--chain-ports must be 3 ports');
    const name = spawnSync(process.execPath, [FLOTILLA_BIN, 'start', '--chain', 'a/b'], { encoding: 'utf8', timeout: 10_000 });
    expect(name.status).toBe(2);
    expect(name.stderr).toContain('--chain must be');
  });
});
