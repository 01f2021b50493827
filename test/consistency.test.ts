/**
 * Read consistency levels on a follower that lags (its Raft traffic from the leader is dropped
 * through the test-only fault injection): a serializable read there is stale; a session read
 * waits until the follower has applied what the client saw, then reads the client's own write;
 * a linearizable read never returns the stale value. Also through the CLI with a session file.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlotillaClient } from '../src/client/index.js';
import { FLOTILLA_BIN, startCluster, type Cluster } from './support/cluster.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('consistency levels', () => {
  let cluster: Cluster;
  let leader = -1;
  let follower = -1;
  const faults = (i: number, body: object) => fetch(`${cluster.members[i]!.clientUrl}/debug/faults`, { method: 'POST', body: JSON.stringify(body) }).then((r) => expect(r.status).toBe(200));
  beforeAll(async () => {
    cluster = await startCluster('flotilla', { extraArgs: ['--unsafe-fault-injection'] });
    const admin = new FlotillaClient({ endpoints: cluster.endpoints });
    const st = await Promise.all(cluster.endpoints.map((e) => admin.status(e)));
    leader = st.findIndex((s) => s.leader === s.header.memberId);
    follower = (leader + 1) % 3;
    await admin.close();
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it('serializable may be stale; session reads your writes; linearizable is never stale', async () => {
    const writer = new FlotillaClient({ endpoints: [cluster.endpoints[leader]!] });
    await writer.put('c/k', 'old');
    const onFollower = new FlotillaClient({ endpoints: [cluster.endpoints[follower]!], requestTimeoutMs: 10_000 });
    for (let i = 0; i < 50 && (await onFollower.get('c/k', { consistency: 'serializable' })).kvs[0]?.valueString() !== 'old'; i++) await sleep(50);
    // Cut the follower off from the leader's appends, then write.
    await faults(follower, { dropFrom: [cluster.members[leader]!.name] });
    const put = await writer.put('c/k', 'new');
    expect((await onFollower.get('c/k', { consistency: 'serializable' })).kvs[0]?.valueString(), 'a serializable read on the lagging follower').toBe('old');

    // A session read carrying the writer's revision waits for the follower to catch up.
    onFollower.seen(put.header.revision);
    const session = onFollower.get('c/k', { consistency: 'session' });
    let settled = false;
    void session.then(() => (settled = true));
    await sleep(700);
    expect(settled, 'the session read waits while the follower lags').toBe(false);
    await faults(follower, { dropFrom: [] });
    expect((await session).kvs[0]?.valueString()).toBe('new');
    expect((await onFollower.get('c/k')).kvs[0]?.valueString()).toBe('new');

    // Linearizable reads on a lagging follower do not return the stale value either.
    await faults(follower, { dropFrom: [cluster.members[leader]!.name] });
    await writer.put('c/k', 'newer');
    const lin = onFollower.get('c/k');
    await sleep(300);
    await faults(follower, { dropFrom: [] });
    expect((await lin).kvs[0]?.valueString()).toBe('newer');
    await writer.close();
    await onFollower.close();
  }, 60_000);

  it('the CLI: a session file carries the revision from one command to the next', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-session-'));
    const session = join(dir, 'session');
    const args = (ep: string, ...a: string[]) => [FLOTILLA_BIN, ...a, '--endpoints', ep, '--session-file', session];
    const cli = (ep: string, ...a: string[]) => spawnSync(process.execPath, args(ep, ...a), { encoding: 'utf8', timeout: 20_000 });
    try {
      await faults(follower, { dropFrom: [cluster.members[leader]!.name] });
      expect(cli(cluster.endpoints[leader]!, 'put', 'c/cli', 'mine').stdout).toBe('OK\n');
      expect(cli(cluster.endpoints[follower]!, 'get', 'c/cli', '--consistency', 's').stdout, 'stale on the lagging follower').toBe('');
      // The session read waits on the follower until it has caught up, then sees the write.
      const p = spawn(process.execPath, args(cluster.endpoints[follower]!, 'get', 'c/cli', '--consistency', 'session'));
      let out = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((r) => p.on('exit', r));
      await sleep(800);
      expect(out, 'still waiting').toBe('');
      await faults(follower, { dropFrom: [] });
      expect(await exited).toBe(0);
      expect(out).toBe('c/cli\nmine\n');
    } finally {
      await faults(follower, { dropFrom: [] });
      rmSync(dir, { recursive: true, force: true });
    }
    const noFile = spawnSync(process.execPath, [FLOTILLA_BIN, 'get', 'c/cli', '--consistency', 'session', '--endpoints', cluster.endpoints[0]!], { encoding: 'utf8', env: { ...process.env, FLOTILLA_SESSION_FILE: '' } });
    expect(noFile.status).toBe(2);
    expect(noFile.stderr).toContain('--consistency session needs --session-file');
  }, 60_000);
});
