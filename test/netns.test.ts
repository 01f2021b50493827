/**
 * Members on a real network (root only; skipped with the reason printed otherwise): network
 * namespaces with their own addresses and DNS names (src/faults/netns.ts).
 *
 * - The fault harness with `--net netns`: nftables partitions and proxy-shaped links. In the
 *   default suite the short run of README.md's "Proving it under faults" as written (3 members,
 *   10 s of partitions and delays, its seed; `sudo` dropped: the lab needs root already), in a
 *   temp directory (its history goes to data/faults-history.jsonl there); with
 *   FLOTILLA_NETNS_FULL=1 (`npm run test:netns`) the full run: 5 members, 120 s, every kind, a
 *   seed of the moment.
 * - The deployment entrypoint (deploy/entrypoint.sh) started as a StatefulSet starts it
 *   (hostnames flotilla-0..2, names under the headless Service), driven by real etcdctl from
 *   inside the lab; then one member's host vanishes without a goodbye (its packets dropped,
 *   the process killed, the namespace deleted) and comes back under the same name with a new
 *   address: it rejoins without anyone touching the others.
 *
 * Everything a test creates (namespaces, /etc/netns dirs, processes) is removed at its end,
 * also when it fails.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { labUnavailableReason, NetnsLab, inNs, LAB_SUBNET } from '../src/faults/netns.js';
import { FLOTILLA_BIN, ROOT, which } from './support/cluster.js';
import { lines, onlyBlock } from './support/readme.js';

const run = promisify(execFile);
const unavailable = await labUnavailableReason();
const etcdctl = which('etcdctl');
const skipReason = unavailable ?? (etcdctl ? null : 'etcdctl is not installed');
if (skipReason) console.log(`test/netns.test.ts skipped: ${skipReason}`);
const FULL = process.env.FLOTILLA_NETNS_FULL === '1';

const namespaces = async () => (await run('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]!).filter(Boolean);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** What the run prints for each fault kind it injects. */
const INJECTED: Record<string, string> = { kill: 'kill m', pause: 'pause m', partition: 'partition ', slowdisk: 'slow disk on m', clock: 'clock on m', delay: 'delay ', reset: 'reset m' };

/** The README's short run: `flotilla faults ...` arguments, as written (its one line, `sudo node bin/flotilla.js` dropped). */
function readmeRun(): string[] {
  const ls = lines(onlyBlock('Proving it under faults'));
  expect(ls.length).toBe(1);
  const m = /^sudo node bin\/flotilla\.js (faults --net netns .*)$/.exec(ls[0]!.text);
  expect(m, ls[0]!.text).not.toBeNull();
  return m![1]!.split(/\s+/);
}

describe.skipIf(skipReason !== null)('members on a real network (network namespaces)', () => {
  it(FULL ? 'flotilla faults --net netns: 5 members, 120 s, every fault kind, no violation' : 'README: Proving it under faults: the short run as written, no violation, nothing left behind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-netns-test-'));
    const seed = Date.now() % 1_000_000;
    const args = FULL ? ['faults', '--net', 'netns', '--members', '5', '--time', '120', '--faults', 'all', '--seed', String(seed)] : readmeRun();
    const faults = args[args.indexOf('--faults') + 1]!;
    console.log(`netns fault run: flotilla ${args.join(' ')}`);
    try {
      const p = spawn(process.execPath, [FLOTILLA_BIN, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      p.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const code = await new Promise<number | null>((r) => p.on('exit', r));
      console.log(out);
      expect(out).toContain('partitions are nftables drop rules; peer links through a delay proxy');
      expect(out).toMatch(/m1=10\.77\.0\.11 \(m1\.flotilla\.test/);
      expect(out, 'peer traffic went through the proxies').toMatch(/peer links through the proxies: [1-9]\d* connections, [1-9]\d* bytes/);
      const kinds = faults === 'all' ? Object.values(INJECTED) : faults.split(',').map((k) => INJECTED[k]!);
      expect(kinds.length).toBeGreaterThan(0);
      for (const kind of kinds) expect(out, `injected ${kind}`).toContain(kind);
      for (const verdict of ['linearizable', 'watch guarantees', 'acknowledged writes', 'locks and fencing', 'HashKV equal']) expect(out).toMatch(new RegExp(`^PASS ${verdict}:`, 'm'));
      expect(code, args.join(' ')).toBe(0);
      // The history where the README says it goes, every operation the verdict counted.
      const ops = Number(/^PASS linearizable: (\d+) ops/m.exec(out)![1]);
      expect(ops).toBeGreaterThan(0);
      expect(readFileSync(join(dir, 'data/faults-history.jsonl'), 'utf8').trim().split('\n').length).toBe(ops);
      // The lab is gone: its namespaces were named flt<pid of the command>-*.
      expect((await namespaces()).filter((n) => n.startsWith(`flt${p.pid}-`))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, FULL ? 600_000 : 180_000);

  describe('the StatefulSet entrypoint on three hosts', () => {
    let lab: NetnsLab | null = null;
    const procs: ChildProcess[] = [];
    let dir = '';
    afterEach(async () => {
      for (const p of procs) p.kill('SIGKILL');
      await lab?.destroy();
      lab = null;
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('starts flotilla-0..2 from their hostnames; a member that comes back with a new address under its name rejoins', async () => {
      dir = mkdtempSync(join(tmpdir(), 'flotilla-netns-sts-'));
      const names = ['flotilla-0', 'flotilla-1', 'flotilla-2'];
      lab = await NetnsLab.create({ prefix: `fltt${process.pid}`, members: names, domain: 'flotilla.default.svc.cluster.local' });
      const l = lab;
      const logs = new Map<string, string>();
      const start = (name: string) => {
        const p = spawn('ip', ['netns', 'exec', l.host(name).ns, 'sh', join(ROOT, 'deploy/entrypoint.sh')], {
          env: { PATH: process.env.PATH, HOSTNAME: name, FLOTILLA_REPLICAS: '3', POD_NAMESPACE: 'default', FLOTILLA_DATA_DIR: join(dir, name), FLOTILLA_COMMAND: `${process.execPath} ${FLOTILLA_BIN}` },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        const keep = (d: Buffer) => logs.set(name, ((logs.get(name) ?? '') + d.toString()).slice(-8000));
        p.stdout!.on('data', keep);
        p.stderr!.on('data', keep);
        procs.push(p);
      };
      const dns = (name: string) => l.host(name).fqdn;
      const ctl = (args: string[], endpoints = names) => inNs(l.host('driver').ns, etcdctl!, [`--endpoints=${endpoints.map((n) => `${dns(n)}:2379`).join(',')}`, '--dial-timeout=2s', '--command-timeout=3s', ...args]);
      const until = async (what: string, f: () => Promise<boolean>, timeoutMs = 60_000) => {
        const deadline = Date.now() + timeoutMs;
        while (!(await f().catch(() => false))) {
          if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms\n${[...logs].map(([n, s]) => `--- ${n}\n${s.slice(-2000)}`).join('\n')}`);
          await sleep(250);
        }
      };
      for (const n of names) start(n);
      // etcdctl endpoint health exits non-zero unless every endpoint is healthy.
      const allHealthy = async () => (await ctl(['endpoint', 'health']), true);
      await until('all three healthy', allHealthy);
      const members = await ctl(['member', 'list']);
      for (const n of names) expect(members).toContain(`${n}, http://${dns(n)}:2380, http://${dns(n)}:2379`);
      await ctl(['put', 'before', '1']);

      // flotilla-1's host vanishes without a goodbye: its packets are dropped first, so no FIN
      // or RST reaches the others (their connections to it just go silent), then it is killed
      // and its namespace deleted. It comes back with a new address under the same name.
      const oldIp = l.host('flotilla-1').ip;
      await NetnsLab.setFilter(l.host('flotilla-1').ns, { dropTo: [`${LAB_SUBNET}.0/24`], dropFrom: [`${LAB_SUBNET}.0/24`] });
      await sleep(500);
      await l.readdress('flotilla-1', `${LAB_SUBNET}.51`);
      expect(l.host('flotilla-1').ip).not.toBe(oldIp);
      // (If flotilla-1 led, the other two elect a leader first: the put is retried until then.)
      await until('a write while flotilla-1 is away', async () => (await ctl(['put', 'during', '2'], ['flotilla-0', 'flotilla-2'])).includes('OK'));
      start('flotilla-1');
      // It catches up: a serializable read on flotilla-1 itself sees a write made after it came back...
      await until('a write after flotilla-1 is back', async () => (await ctl(['put', 'after', '3'], ['flotilla-0', 'flotilla-2'])).includes('OK'));
      await until('flotilla-1 serves the latest write from its own state', async () => (await ctl(['get', 'after', '--consistency=s', '--print-value-only'], ['flotilla-1'])).trim() === '3');
      // ...and takes writes and linearizable reads through its new address.
      await until('flotilla-1 takes a write', async () => (await ctl(['put', 'via-1', '4'], ['flotilla-1'])).includes('OK'));
      expect((await ctl(['get', 'during', '--print-value-only'], ['flotilla-1'])).trim()).toBe('2');
      await until('all three healthy again', allHealthy);
    }, 180_000);
  });
});
