/**
 * A member that cannot go on exits, and `flotilla start` tells the truth — through real member
 * processes with injected disk faults (`--unsafe-fault-injection`, POST /debug/faults):
 * - a follower whose disk fills (ENOSPC) exits with one `fatal:` line and code 1; no write a
 *   client got OK for (through it or not) is missing on the survivors; its ports refuse
 *   connections; the other two serve;
 * - a leader whose fsync fails (EIO) exits; the other two elect a leader and serve; restarted
 *   with a healthy disk it replays its WAL, catches up, and HashKV is equal on all three;
 * - `flotilla start` with a port held by another process (a bare listener, or a whole other
 *   cluster on its client ports) reports the member's own EADDRINUSE and exits non-zero,
 *   never printing `cluster ready`; with free ports it reports ready only for members that
 *   answered with the ids computed from their configuration, and reports a member that exits
 *   later;
 * - embedded (startServer in this process): the failed member's server closes its listeners and
 *   transport instead of exiting; a server whose client port is taken leaves nothing running.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FlotillaClient } from '../src/client/index.js';
import { FaultCluster } from '../src/faults/cluster.js';
import { memberIdOf, resolveConfig } from '../src/server/config.js';
import { startServer } from '../src/server/server.js';
import { FLOTILLA_BIN, freePort, startCluster, type Cluster } from './support/cluster.js';
import { ClientSet, exitOf, expectAllPresent, fatalLines, leaderAmong, refused, sleep, waitFor, Writer } from './support/members.js';

/** How long a member whose disk failed may take to exit while writes keep coming. */
const EXIT_WAIT_MS = 20_000;

/** Writes through `w` until `gone()` (the member exited), for at most EXIT_WAIT_MS. */
async function writeUntil(w: Writer, gone: () => boolean): Promise<void> {
  const deadline = Date.now() + EXIT_WAIT_MS;
  while (!gone() && Date.now() < deadline) {
    if (!(await w.write())) await sleep(20);
  }
  expect(gone(), `the member did not exit within ${EXIT_WAIT_MS} ms of its disk failing`).toBe(true);
}

describe('a member that cannot go on exits', () => {
  let cluster: FaultCluster | null = null;
  const clients = new ClientSet();
  const client = (endpoints: string[]) => clients.client(endpoints);
  afterEach(async () => {
    await clients.closeAll();
    await cluster?.stop();
    cluster = null;
  });

  it('a follower whose disk fills (ENOSPC) exits with one fatal line and code 1; no acknowledged write is missing; its ports refuse; the others serve', async () => {
    const c = (cluster = await FaultCluster.start(3));
    const all = client(c.endpoints);
    const li = await leaderAmong(all, c.endpoints, [0, 1, 2]);
    const fi = (li + 1) % 3;
    const f = c.members[fi]!;
    const exited = exitOf(f.proc!);
    let gone = false;
    void exited.then(() => (gone = true));
    const through = new Writer(client([f.client]), 'a/');
    for (let i = 0; i < 10; i++) expect(await through.write()).toBe(true);

    await c.setFaults(fi, { diskError: 'ENOSPC', diskErrorOn: 'write' });
    // Writes keep coming through the follower until its process is gone (each one fails or is
    // acknowledged; the first entry it must persist fails its WAL write).
    await writeUntil(through, () => gone);
    const { code, signal } = await exited;
    expect(signal).toBeNull();
    expect(code).toBe(1);
    const lines = fatalLines(f.log);
    expect(lines, f.log).toHaveLength(1);
    expect(lines[0]).toMatch(/fatal: WAL write failed: ENOSPC: no space left on device, write '.*\.wal' \(injected\); exiting with code 1( node=\d+ lamport=\d+ vc=\{.*\})?$/);
    // Nothing lingers: both ports refuse, writes through it fail.
    expect(await refused(f.client)).toBe(true);
    expect(await refused(f.peerUrl)).toBe(true);
    expect(await through.write()).toBe(false);

    const survivors = [0, 1, 2].filter((i) => i !== fi);
    const rest = new Writer(client(survivors.map((i) => c.endpoints[i]!)), 'a/after/');
    for (let i = 0; i < 5; i++) expect(await rest.write()).toBe(true);
    for (const i of survivors) {
      await expectAllPresent(c.endpoints[i]!, 'a/', through.acked);
      await expectAllPresent(c.endpoints[i]!, 'a/after/', rest.acked);
    }
  }, 120_000);

  it('a leader whose fsync fails (EIO) exits; a new leader serves; restarted on a healthy disk it catches up, HashKV equal on all three', async () => {
    const c = (cluster = await FaultCluster.start(3));
    const all = client(c.endpoints);
    const li = await leaderAmong(all, c.endpoints, [0, 1, 2]);
    const l = c.members[li]!;
    const exited = exitOf(l.proc!);
    let gone = false;
    void exited.then(() => (gone = true));
    const before = new Writer(all, 'b/');
    for (let i = 0; i < 10; i++) expect(await before.write()).toBe(true);

    await c.setFaults(li, { diskError: 'EIO', diskErrorOn: 'fsync' });
    const through = new Writer(client([l.client]), 'b/leader/');
    await writeUntil(through, () => gone);
    const { code, signal } = await exited;
    expect(signal).toBeNull();
    expect(code).toBe(1);
    const lines = fatalLines(l.log);
    expect(lines, l.log).toHaveLength(1);
    expect(lines[0]).toMatch(/fatal: WAL fsync failed: EIO: i\/o error, fdatasync '.*\.wal' \(injected\); exiting with code 1( node=\d+ lamport=\d+ vc=\{.*\})?$/);
    expect(await refused(l.client)).toBe(true);

    const survivors = [0, 1, 2].filter((i) => i !== li);
    const next = await leaderAmong(all, c.endpoints, survivors);
    expect(survivors).toContain(next);
    const after = new Writer(client(survivors.map((i) => c.endpoints[i]!)), 'b/after/');
    for (let i = 0; i < 10; i++) expect(await after.write()).toBe(true);

    // Restarted without the fault (a healthy disk): it replays its WAL and catches up.
    await c.restart(li);
    const rev = (await all.get('b/', { prefix: true })).header.revision;
    const hashes = await waitFor(
      'every member to reach the same HashKV',
      async () => {
        const hs = await Promise.all(c.endpoints.map((e) => all.hashKv(e, rev)));
        return new Set(hs.map((h) => h.hash)).size === 1 ? hs : undefined;
      },
      30_000,
    );
    expect(hashes).toHaveLength(3);
    for (const e of c.endpoints) {
      await expectAllPresent(e, 'b/', new Map([...before.acked, ...through.acked, ...after.acked]));
    }
  }, 120_000);
});

describe('a member that cannot start exits', () => {
  it('storage that cannot be opened: one fatal line naming it, exit 2, nothing listening', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-start-fail-'));
    try {
      const data = join(dir, 'm1');
      mkdirSync(data);
      writeFileSync(join(data, 'snap'), 'not a directory');
      const [cp, pp] = [await freePort(), await freePort()];
      const peer = `http://127.0.0.1:${pp}`;
      const p = spawn(process.execPath, [FLOTILLA_BIN, 'serve', '--name', 'm1', '--data-dir', data, '--listen-client-urls', `http://127.0.0.1:${cp}`, '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      p.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const { code } = await exitOf(p);
      expect(code, out).toBe(2);
      const lines = fatalLines(out);
      expect(lines, out).toHaveLength(1);
      expect(lines[0]).toMatch(/fatal: cannot start: snapshot read in .*snap failed: EEXIST: .*; exiting with code 2$/);
      expect(await refused(`127.0.0.1:${cp}`)).toBe(true);
      expect(await refused(`127.0.0.1:${pp}`)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe('flotilla start tells the truth', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const f of cleanups.splice(0).reverse()) await f();
  });

  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-start-exit-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  };

  /** Runs `flotilla start`; `out` collects stdout and stderr. */
  const start = (dir: string, client: number[], peer: number[]) => {
    const p = spawn(process.execPath, [FLOTILLA_BIN, 'start', '--data-dir', dir, '--client-ports', client.join(','), '--peer-ports', peer.join(',')], { stdio: ['ignore', 'pipe', 'pipe'] });
    const run = { p, out: '', exited: exitOf(p) };
    p.stdout.on('data', (d: Buffer) => (run.out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (run.out += d.toString()));
    cleanups.push(async () => {
      if (p.exitCode === null && p.signalCode === null) {
        p.kill('SIGINT');
        await run.exited;
      }
    });
    return run;
  };

  const hold = async (port: number): Promise<Server> => {
    const s = createServer((sock) => sock.destroy());
    await new Promise<void>((r) => s.listen(port, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => s.close(() => r())));
    return s;
  };

  const ports = async () => [await freePort(), await freePort(), await freePort()];

  it('a peer port held by another process: reports the member\'s EADDRINUSE, exits 1, never ready; nothing of it lingers', async () => {
    const client = await ports();
    const peer = await ports();
    await hold(peer[1]!);
    const run = start(tempDir(), client, peer);
    const { code } = await run.exited;
    expect(code, run.out).toBe(1);
    expect(run.out).not.toContain('cluster ready');
    expect(run.out).toMatch(new RegExp(`node2 exited \\(code 2\\): fatal: cannot start: listen EADDRINUSE: address already in use 127\\.0\\.0\\.1:${peer[1]}; exiting with code 2`));
    expect(run.out).toContain('node2 exited before the cluster was ready');
    for (const p of client) expect(await refused(`127.0.0.1:${p}`)).toBe(true);
    for (const p of [peer[0]!, peer[2]!]) expect(await refused(`127.0.0.1:${p}`)).toBe(true);
  }, 60_000);

  it('its client ports held by another cluster (the one it would talk to): exits 1, never ready', async () => {
    const other: Cluster = await startCluster('flotilla');
    cleanups.push(() => other.stop());
    const client = other.endpoints.map((e) => Number(e.split(':')[1]));
    const run = start(tempDir(), client, await ports());
    const { code } = await run.exited;
    expect(code, run.out).toBe(1);
    expect(run.out).not.toContain('cluster ready');
    expect(run.out).toMatch(/node\d exited \(code 2\): fatal: cannot start: listen EADDRINUSE: address already in use 127\.0\.0\.1:\d+; exiting with code 2/);
  }, 60_000);

  it('with free ports: ready only once its own three members answered with their ids; a member exiting later is reported', async () => {
    const client = await ports();
    const peer = await ports();
    const run = start(tempDir(), client, peer);
    await waitFor('cluster ready', async () => (run.out.includes('cluster ready') ? true : undefined), 60_000);
    const readyAt = run.out.indexOf('cluster ready');
    for (let i = 0; i < 3; i++) {
      const id = memberIdOf([`http://127.0.0.1:${peer[i]}`], 'flotilla-local').toString(16);
      const up = run.out.indexOf(`node${i + 1} is up (member ${id})`);
      expect(up, run.out).toBeGreaterThanOrEqual(0);
      expect(up).toBeLessThan(readyAt);
    }
    // node2 stops (SIGTERM to its own process): start says so, with its exit code.
    const children = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(run.p.pid)], { encoding: 'utf8' });
    const node2 = children.split('\n').find((l) => l.includes('--name node2'));
    expect(node2, children).toBeDefined();
    process.kill(Number(node2!.trim().split(/\s+/)[0]), 'SIGTERM');
    await waitFor('the exit to be reported', async () => (run.out.includes('node2 exited (code 0)') ? true : undefined));
    await waitFor('the count of members left', async () => (run.out.includes('the cluster runs on with 2 of 3 members') ? true : undefined));
    // It prints the one command that restarts node2; run as printed, node2 is welcomed back.
    const restart = await waitFor('the restart command', async () => /To restart node2 .*\n {2}(.+)\n/.exec(run.out)?.[1]);
    expect(restart).not.toMatch(/'/);
    const [cmd, ...args] = restart.split(' ');
    const again = spawn(cmd!, args, { stdio: 'ignore' });
    cleanups.push(async () => {
      again.kill('SIGKILL');
      await exitOf(again);
    });
    const before = run.out.length;
    await waitFor('node2 back up', async () => (run.out.slice(before).includes('node2 is up') ? true : undefined), 60_000);
    run.p.kill('SIGINT');
    expect((await run.exited).code).toBe(0);
  }, 90_000);
});

describe('embedded: startServer in this process', () => {
  const quiet = { debug() {}, info() {}, warn() {} };
  const solo = async (clientPort: number, peerPort: number, dataDir: string) =>
    resolveConfig({
      name: 'solo',
      dataDir,
      listenClientUrls: `http://127.0.0.1:${clientPort}`,
      listenPeerUrls: `http://127.0.0.1:${peerPort}`,
      initialAdvertisePeerUrls: `http://127.0.0.1:${peerPort}`,
      electionTimeout: 500,
      unsafeFaultInjection: true,
    });

  it('a failed member closes its server (client and peer listeners) and reports fatal; the process lives on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-embedded-exit-'));
    const [cp, pp] = [await freePort(), await freePort()];
    const server = await startServer(await solo(cp, pp, dir), quiet);
    const c = new FlotillaClient({ endpoints: [`127.0.0.1:${cp}`] });
    try {
      await c.put('k', 'before');
      server.member.faults.diskErrorOn = 'fsync';
      server.member.faults.diskError = 'EIO';
      await expect(c.put('k', 'after')).rejects.toThrow();
      const err = await server.fatal;
      expect(err.message).toMatch(/^WAL fsync failed: EIO: i\/o error, fdatasync/);
      expect(server.member.node.isLeader).toBe(false);
      expect(server.member.leaderId).toBe(0n);
      await expect(server.close()).rejects.toBe(err);
      expect(await refused(`127.0.0.1:${cp}`)).toBe(true);
      expect(await refused(`127.0.0.1:${pp}`)).toBe(true);
    } finally {
      await c.close();
      await server.close().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);

  it('a client port already taken: startServer rejects with EADDRINUSE and leaves nothing listening', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-embedded-exit-'));
    const [cp, pp] = [await freePort(), await freePort()];
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(cp, '127.0.0.1', r));
    try {
      await expect(startServer(await solo(cp, pp, dir), quiet)).rejects.toThrow(/EADDRINUSE/);
      expect(await refused(`127.0.0.1:${pp}`)).toBe(true);
    } finally {
      await new Promise((r) => taken.close(r));
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
