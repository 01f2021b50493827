/**
 * A member whose key-value backend runs out of disk — a real full file system, not an injected
 * error: LMDB (src/kv/backend-lmdb.ts, `<data-dir>/member/db`) writes from native code, where
 * the fault injection of src/server/faults.ts cannot reach. One member of three has its
 * `<data-dir>/member` directory (the database and nothing else of its durable state: the WAL
 * is `<data-dir>/wal`, snapshots `<data-dir>/snap`) on a tmpfs of TMPFS_BYTES; writes of
 * VALUE_BYTES go through the other two until the tmpfs is full — once with that member a
 * follower, once the leader (MoveLeader). Then:
 * - the member exits with code 1 after one `fatal:` line naming the database file and ENOSPC,
 *   and leaves nothing listening;
 * - the other two serve, and every write a client got OK for is on both;
 * - given room (the tmpfs remounted larger, its content kept), the member restarts on its own
 *   data directory, catches up, and HashKV and the keys agree on all three.
 * Needs root (mount); skipped with the reason otherwise.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmdirSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FaultCluster } from '../src/faults/cluster.js';
import { killAndWait } from '../src/lib/proc.js';
import { QUOTA_BACKEND_BYTES_DEFAULT } from '../src/server/config.js';
import { rawClient } from './support/grpc.js';
import { ClientSet, exitOf, expectAllPresent, fatalLines, leaderAmong, refused, sleep, waitFor, Writer } from './support/members.js';

/** The small file system the member's database lives on. */
const TMPFS_BYTES = 4 * 1024 * 1024;
/** What it is remounted with to give the member room. */
const TMPFS_ROOM_BYTES = 64 * 1024 * 1024;
/** Each write's value: a few hundred fill the tmpfs. */
const VALUE_BYTES = 16 * 1024;
/** Writes in flight at once while filling it. */
const WRITERS = 4;
/** How long the writes may take to fill the tmpfs and the member to exit. */
const FILL_WAIT_MS = 90_000;
/** The member whose database is on the tmpfs (m3). */
const SMALL = 2;

/** Why this test cannot run here (not Linux, not root, mount refused), or null. */
function mountUnavailable(): string | null {
  if (process.platform !== 'linux') return 'a tmpfs needs Linux';
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'mounting a tmpfs needs root';
  const probe = mkdtempSync(join(tmpdir(), 'flotilla-enospc-probe-'));
  const run = (args: string[]): string | null => {
    try {
      execFileSync(args[0]!, args.slice(1), { stdio: 'pipe' });
      return null;
    } catch (e) {
      return `${args.join(' ')} failed: ${((e as { stderr?: Buffer }).stderr?.toString() || (e as Error).message).trim()}`;
    }
  };
  const reason = run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe]);
  // A probe still mounted (umount failed) is left as it is.
  const left = reason ?? run(['umount', probe]);
  if (reason !== null || left === null) rmdirSync(probe);
  return left;
}

const skipReason = mountUnavailable();
if (skipReason) console.log(`test/backend-enospc.test.ts skipped: ${skipReason}`);

/** Unmounts `dir` (lazily if a process still holds it: the test must not leave a mount behind). */
function unmount(dir: string): void {
  try {
    execFileSync('umount', [dir], { stdio: 'pipe' });
  } catch {
    execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
  }
}

const freeBytes = (dir: string) => {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
};

describe.skipIf(skipReason !== null)('a member whose backend\'s disk fills (a real ENOSPC, LMDB on a small tmpfs)', () => {
  let cluster: FaultCluster | null = null;
  let mnt: string | null = null;
  const clients = new ClientSet();
  const client = (endpoints: string[]) => clients.client(endpoints);
  afterEach(async () => {
    await clients.closeAll();
    // The processes first: the member's database is open on the tmpfs.
    await Promise.all((cluster?.members ?? []).map((m) => killAndWait(m.proc)));
    if (mnt) unmount(mnt);
    mnt = null;
    await cluster?.stop();
    cluster = null;
  });

  it.each(['follower', 'leader'] as const)('as %s: exits with one fatal line naming the database and ENOSPC, code 1; the others serve with every acknowledged write; given room it restarts, catches up, HashKV equal', async (role) => {
    const c = (cluster = await FaultCluster.start(3, [], {
      beforeLaunch: (members) => {
        const dir = join(members[SMALL]!.dataDir, 'member');
        mkdirSync(dir, { recursive: true });
        execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_BYTES}`, 'tmpfs', dir], { stdio: 'pipe' });
        mnt = dir;
      },
    }));
    const s = c.members[SMALL]!;
    const all = client(c.endpoints);
    // The member in the role asked for (MoveLeader: to it, or away from it).
    const leader = await leaderAmong(all, c.endpoints, [0, 1, 2]);
    if ((leader === SMALL) !== (role === 'leader')) {
      const to = role === 'leader' ? SMALL : (SMALL + 1) % 3;
      const targetID = (await all.status(c.endpoints[to]!)).header.memberId.toString();
      const raw = rawClient(c.endpoints[leader]!);
      try {
        await raw.call('etcdserverpb.Maintenance', 'MoveLeader', { targetID });
      } finally {
        raw.close();
      }
    }
    expect(await leaderAmong(all, c.endpoints, [0, 1, 2]) === SMALL).toBe(role === 'leader');
    console.log(`member ${s.name}, the ${role}, has its database on a ${TMPFS_BYTES}-byte tmpfs`);
    expect(existsSync(join(s.dataDir, 'member', 'db'))).toBe(true);
    // It said at start that the quota (2 GiB by default) does not fit where its database lives.
    expect(s.log).toMatch(/warn .*--quota-backend-bytes \d+ exceeds the free space of the backend's directory .*\/m3\/member \(\d+ bytes\)/);
    if (freeBytes(c.dir) > QUOTA_BACKEND_BYTES_DEFAULT) {
      for (const i of [0, 1, 2].filter((x) => x !== SMALL)) expect(c.members[i]!.log).not.toContain('exceeds the free space');
    }
    const exited = exitOf(s.proc!);
    let gone = false;
    void exited.then(() => (gone = true));

    // Writes through the other two until the member's tmpfs is full and it is gone.
    const survivors = [0, 1, 2].filter((i) => i !== SMALL);
    const w = new Writer(client(survivors.map((i) => c.endpoints[i]!)), 'f/', VALUE_BYTES);
    const deadline = Date.now() + FILL_WAIT_MS;
    while (!gone && Date.now() < deadline) {
      const ok = await Promise.all(Array.from({ length: WRITERS }, () => w.write()));
      if (!ok.every(Boolean)) await sleep(20);
    }
    expect(gone, `the member did not exit within ${FILL_WAIT_MS} ms; tmpfs free: ${freeBytes(mnt!)} bytes; its log ends:\n${s.log.slice(-3000)}`).toBe(true);
    const { code, signal } = await exited;
    const free = freeBytes(mnt!);
    console.log(`${s.name} exited (code ${code}, signal ${signal}) after ${w.acked.size} acknowledged writes of ${VALUE_BYTES} bytes; tmpfs free: ${free} bytes; WAL file system free: ${freeBytes(join(s.dataDir, 'wal'))} bytes`);
    const lines = fatalLines(s.log);
    console.log(`its log: ${s.log.split('\n').filter((l) => /stopping after|fatal: /.test(l)).join('\n')}`);
    expect(signal, s.log).toBeNull();
    expect(code, s.log).toBe(1);
    // The backend's file system is what filled; the WAL's still has room.
    expect(free).toBeLessThan(VALUE_BYTES);
    expect(freeBytes(join(s.dataDir, 'wal'))).toBeGreaterThan(TMPFS_ROOM_BYTES);
    expect(lines, s.log).toHaveLength(1);
    expect(lines[0]).toMatch(/fatal: backend commit to .*\/member\/db failed: .*ENOSPC.*; exiting with code 1( node=\d+ lamport=\d+ vc=\{.*\})?$/);
    // Nothing lingers.
    expect(await refused(s.client)).toBe(true);
    expect(await refused(s.peerUrl)).toBe(true);

    // The other two serve (a leader among them), with every acknowledged write.
    await leaderAmong(all, c.endpoints, survivors);
    const after = new Writer(client(survivors.map((i) => c.endpoints[i]!)), 'f/after/');
    for (let i = 0; i < 5; i++) expect(await after.write()).toBe(true);
    for (const i of survivors) {
      await expectAllPresent(c.endpoints[i]!, 'f/', new Map([...w.acked, ...after.acked]));
    }

    // Room (the same file system, larger: the database as the failed member left it): it
    // restarts on its own data directory and catches up.
    execFileSync('mount', ['-o', `remount,size=${TMPFS_ROOM_BYTES}`, mnt!], { stdio: 'pipe' });
    await c.restart(SMALL);
    const rev = (await client([c.endpoints[survivors[0]!]!]).get('f/', { prefix: true, keysOnly: true })).header.revision;
    const hashes = await waitFor(
      'every member to reach the same HashKV',
      async () => {
        const hs = await Promise.all(c.endpoints.map((e) => all.hashKv(e, rev)));
        return new Set(hs.map((h) => h.hash)).size === 1 ? hs : undefined;
      },
      60_000,
    );
    expect(hashes).toHaveLength(3);
    for (const e of c.endpoints) await expectAllPresent(e, 'f/', new Map([...w.acked, ...after.acked]));
    const keysOn = async (e: string) => (await client([e]).get('f/', { prefix: true, keysOnly: true })).kvs.map((kv) => kv.keyString());
    const keys = await Promise.all(c.endpoints.map(keysOn));
    expect(keys[SMALL]).toEqual(keys[survivors[0]!]);
    expect(keys[SMALL]).toEqual(keys[survivors[1]!]);
    // And it takes writes again, through itself.
    const through = new Writer(client([s.client]), 'f/again/');
    expect(await through.write()).toBe(true);
  }, 180_000);
});
