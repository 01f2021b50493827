/**
 * A member whose snapshot file holds a state machine image no state machine could have written
 * (the checksum is valid: the file check passes) does not start: it exits with code 2 and a
 * `fatal:` line naming the snapshot and what is wrong with the image — never a TypeError, never
 * a member serving a broken store.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeSnapshot, encodeSnapshot } from '../src/storage/snapshots.js';
import { FLOTILLA_BIN, startCluster, type Cluster } from './support/cluster.js';
import { rawClient } from './support/grpc.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('a garbage state machine image in the snapshot file', () => {
  let cluster: Cluster | undefined;
  afterAll(async () => {
    await cluster?.stop();
  });

  it('stops the member at start with a clear fatal line (exit code 2)', async () => {
    cluster = await startCluster('flotilla', { size: 1, extraArgs: ['--snapshot-count', '5'] });
    const m = cluster.members[0]!;
    const c = rawClient(cluster.endpoints[0]!);
    const snapDir = join(m.dataDir, 'snap');
    const snaps = (): string[] => {
      try {
        return readdirSync(snapDir).filter((f) => f.endsWith('.snap'));
      } catch {
        return [];
      }
    };
    for (let i = 0; i < 200 && snaps().length === 0; i++) {
      await c.call('etcdserverpb.KV', 'Put', { key: Buffer.from(`k${i}`), value: Buffer.from('v') });
      if (snaps().length === 0) await sleep(20);
    }
    expect(snaps().length, m.output).toBeGreaterThan(0);
    const first = m.proc!;
    const exited = first.exitCode !== null || first.signalCode !== null ? Promise.resolve() : once(first, 'exit');
    cluster.kill(0);
    await exited;
    // The member's store on disk is lost, so it must restore its snapshot file at start (with
    // the store intact it would not read it: the store holds everything the snapshot covers).
    rmSync(join(m.dataDir, 'member'), { recursive: true, force: true });
    // The compact revision past the store's revision, in every snapshot file (valid checksums).
    const store = Buffer.from(JSON.stringify({ v: 1, rev: 3, compactRev: 9, keys: [], leases: [] })).toString('base64');
    const image = new TextEncoder().encode(JSON.stringify({ v: 1, store: { $b: store }, members: [] }));
    let index = 0;
    for (const f of snaps()) {
      const path = join(snapDir, f);
      const s = decodeSnapshot(readFileSync(path), path);
      index = Math.max(index, s.meta.index);
      writeFileSync(path, encodeSnapshot({ meta: s.meta, data: image }));
    }
    const p = spawn(
      process.execPath,
      [
        FLOTILLA_BIN, 'serve',
        '--name', m.name, '--data-dir', m.dataDir,
        '--listen-client-urls', m.clientUrl, '--advertise-client-urls', m.clientUrl,
        '--listen-peer-urls', m.peerUrl, '--initial-advertise-peer-urls', m.peerUrl,
        '--initial-cluster', `${m.name}=${m.peerUrl}`, '--initial-cluster-state', 'existing', '--initial-cluster-token', cluster.token,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 20_000);
    const code = await new Promise<number | null>((r) => p.on('exit', (x) => r(x)));
    clearTimeout(timer);
    expect(code, out).toBe(2);
    const fatal = out.split('\n').find((l) => l.includes('fatal: '));
    expect(fatal, out).toMatch(
      new RegExp(`fatal: cannot start: restoring this member's snapshot \\(index ${index}, term \\d+\\): invalid state machine snapshot image: store.compactRev: 9 is out of range \\[0, 3\\]; exiting with code 2$`),
    );
    expect(out).not.toMatch(/TypeError/);
  }, 60_000);
});
