/**
 * `etcdctl check perf --load=s` against a Flotilla cluster: 60 s of 150 puts/s, with etcdctl's
 * own verdicts on throughput (PASS at 90% of the rate asked for), slowest request (0.5 s) and
 * spread. `npm test` runs this file alone, after the others.
 *
 * The run must be clean whatever the machine does: every put answered without an error and
 * the rate held. The two latency verdicts are a performance target, and a test must not depend
 * on how fast the machine is: they are asserted when the machine was ours during the run (the
 * CPU time of processes other than this test, its cluster and etcdctl stayed under
 * OTHER_CPU_SHARE_MAX of one core, read from /proc); on a machine shared with something busy
 * the test prints the verdicts and that share instead. The benchmark
 * (`npm run bench:check-perf`, bench/README.md) records the verdicts on a quiet machine.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, which, type Cluster } from './support/cluster.js';
import { etcdctl } from './support/etcdctl-session.js';

const ETCDCTL = which('etcdctl');
if (!ETCDCTL) console.log('skipping check perf: etcdctl not installed (apt-get install -y etcd-client)');

/** Above this share of one core used by other processes during the run, the latency verdicts are not asserted. */
const OTHER_CPU_SHARE_MAX = 0.15;

/** Clock ticks of a process (user + system; with `children`, also its waited-for children's), from /proc/PID/stat. */
function ticks(pid: number | 'self', children = false): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces), numbered from 3 (state).
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
    const [utime, stime, cutime, cstime] = [f[11]!, f[12]!, f[13]!, f[14]!];
    return utime + stime + (children ? cutime + cstime : 0);
  } catch {
    return 0;
  }
}

/** Busy clock ticks of the whole machine (every CPU, all but idle and iowait), from /proc/stat. */
function machineBusyTicks(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = cpu as [number, number, number, number, number, number, number, number];
  return user + nice + system + irq + softirq + steal;
}

describe.skipIf(!ETCDCTL)('etcdctl check perf', () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await startCluster('flotilla');
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it('--load=s: every put answered at the rate asked; the latency verdicts PASS on a machine that is ours', async () => {
    const ours = (): number => ticks('self', true) + cluster.members.reduce((n, m) => n + (m.proc?.pid ? ticks(m.proc.pid) : 0), 0);
    const busy0 = machineBusyTicks();
    const ours0 = ours();
    const started = performance.now();
    const r = await etcdctl(ETCDCTL!, cluster.endpoints, ['check', 'perf', '--load=s'], { timeoutMs: 120_000 });
    // USER_HZ is 100 on Linux: a tick is 10 ms.
    const otherShare = ((machineBusyTicks() - busy0 - (ours() - ours0)) * 10) / (performance.now() - started);
    const out = r.stdout + r.stderr;
    const verdicts = out.split(/\r|\n/).filter((l) => /PASS|FAIL|took too long|too low|too high/.test(l));
    // No put failed (etcdctl prints "FAIL: too many errors" and one "FAIL: ERROR(...)" line per kind).
    expect(out, 'check perf output').not.toMatch(/ERROR|too many errors/);
    expect(verdicts[0], 'check perf verdicts').toMatch(/^PASS: Throughput is \d+ writes\/s$/);
    expect(verdicts, 'check perf verdicts').toHaveLength(4);
    const latency = [expect.stringMatching(/^PASS: Slowest request took [\d.]+s$/), expect.stringMatching(/^PASS: Stddev is [\d.]+s$/), 'PASS'];
    if (otherShare <= OTHER_CPU_SHARE_MAX) {
      expect(verdicts.slice(1), `check perf verdicts (other processes used ${(otherShare * 100).toFixed(0)}% of a core)`).toEqual(latency);
      expect(r.code).toBe(0);
    } else {
      console.log(`check perf: other processes used ${(otherShare * 100).toFixed(0)}% of a core during the run (over ${OTHER_CPU_SHARE_MAX * 100}%): latency verdicts not asserted: ${verdicts.slice(1).join(' | ')}`);
    }
  }, 130_000);
});
