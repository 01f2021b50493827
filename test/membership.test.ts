/**
 * Runtime membership changes on real processes, through `flotilla member ...`, while a writer
 * and two readers run against the cluster: grow 3 -> 5 -> 3, replace a SIGKILLed member
 * (remove, wipe, add as learner, promote once it caught up), remove the leader (it hands
 * leadership over, stops with a fatal line, and its data directory refuses to start again),
 * a member removed while it was down stops when it starts again, and a lagging learner's
 * promotion refused, a member moved to a new peer URL (member update sent to that very member,
 * then the member restarted there). After each case: every acknowledged write is on
 * every member, and the history of the registers is linearizable.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkLinearizable, describeOp, type HistoryOp } from '../src/check/index.js';
import { FlotillaClient } from '../src/client/index.js';
import { CLUSTER_READY_TIMEOUT_MS, FLOTILLA_BIN, freePort, runProcess, startCluster, type Cluster, type MemberProc } from './support/cluster.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const now = (): number => Number(process.hrtime.bigint());

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** `flotilla <args> --endpoints <eps>` (async: the workload keeps running meanwhile). */
function flotilla(eps: readonly string[], ...args: string[]): Promise<Run> {
  return runProcess(process.execPath, [FLOTILLA_BIN, ...args, '--endpoints', eps.join(',')]);
}

/** Runs a member command again while the cluster answers with `retryOn` (a refusal: nothing was changed), up to a bound. */
async function until(run: () => Promise<Run>, retryOn: RegExp, what: string, ms = 30_000): Promise<Run> {
  const deadline = Date.now() + ms;
  for (;;) {
    const r = await run();
    if (r.code === 0 || !retryOn.test(r.stderr)) return r;
    if (Date.now() > deadline) throw new Error(`${what}: still "${r.stderr.trim()}" after ${ms} ms`);
    await sleep(200);
  }
}

/** A writer (registers and unique keys) and two linearizable readers, recording the history. */
class Workload {
  readonly history: HistoryOp[] = [];
  /** Keys of acknowledged writes of unique keys. */
  readonly acked: string[] = [];
  private stopped = false;
  private loops: Promise<void>[] = [];
  private readonly clients: FlotillaClient[] = [];

  constructor(
    private readonly tag: string,
    private readonly endpoints: readonly string[],
  ) {}

  private client(): FlotillaClient {
    const c = new FlotillaClient({ endpoints: [...this.endpoints], requestTimeoutMs: 3000, dialTimeoutMs: 1000 });
    this.clients.push(c);
    return c;
  }

  start(): void {
    const w = this.client();
    this.loops.push(
      (async () => {
        for (let n = 1; !this.stopped; n++) {
          const key = `${this.tag}/reg/${n % 3}`;
          const value = `v${n}`;
          const call = now();
          try {
            await w.put(key, value);
            this.history.push({ process: 0, op: 'write', key, value, ok: true, call, return: now() });
          } catch {
            // Unknown outcome: it may still apply later.
            this.history.push({ process: 0, op: 'write', key, value, ok: null, call, return: null });
            await sleep(50);
            continue;
          }
          try {
            await w.put(`${this.tag}/w/${n}`, value);
            this.acked.push(`${this.tag}/w/${n}`);
          } catch {
            await sleep(50);
          }
        }
      })(),
    );
    for (const p of [1, 2]) {
      const r = this.client();
      this.loops.push(
        (async () => {
          for (let n = 0; !this.stopped; n++) {
            const key = `${this.tag}/reg/${(n + p) % 3}`;
            const call = now();
            try {
              const got = await r.get(key);
              this.history.push({ process: p, op: 'read', key, ok: true, output: got.kvs[0]?.valueString() ?? null, call, return: now() });
            } catch {
              await sleep(50);
            }
          }
        })(),
      );
    }
  }

  /** Waits until at least `n` more writes than now are acknowledged (the load ran across the change), then stops. */
  async stopAfter(n: number): Promise<void> {
    const want = this.acked.length + n;
    await expect.poll(() => this.acked.length, { timeout: 60_000, interval: 100 }).toBeGreaterThanOrEqual(want);
    await this.stop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
    await Promise.all(this.clients.map((c) => c.close()));
  }

  /** Every acknowledged write on every given member (a linearizable read on each), and the registers' history linearizable. */
  async check(endpoints: readonly string[]): Promise<void> {
    expect(this.acked.length, 'the writer got writes acknowledged').toBeGreaterThan(20);
    for (const ep of endpoints) {
      const c = new FlotillaClient({ endpoints: [ep], requestTimeoutMs: 10_000 });
      try {
        const got = await c.get(`${this.tag}/w/`, { prefix: true, keysOnly: true });
        const have = new Set(got.kvs.map((kv) => kv.keyString()));
        const lost = this.acked.filter((k) => !have.has(k));
        expect(lost, `acknowledged writes missing on ${ep}`).toEqual([]);
      } finally {
        await c.close();
      }
    }
    const r = checkLinearizable(this.history);
    expect(r.ok, r.ok ? '' : `not linearizable on ${r.failure?.key}: ${r.failure?.message}\n${(r.failure?.ops ?? []).slice(0, 20).map(describeOp).join('\n')}`).toBe(true);
  }
}

describe('membership changes on real processes, under load', () => {
  let cluster: Cluster;
  const live = new Set<MemberProc>();
  const eps = () => [...live].map((m) => m.clientUrl.replace('http://', ''));
  const byName = async (name: string) => {
    const c = new FlotillaClient({ endpoints: eps() });
    try {
      return (await c.memberList()).members.find((m) => m.name === name);
    } finally {
      await c.close();
    }
  };
  const members = async () => {
    const c = new FlotillaClient({ endpoints: eps() });
    try {
      return (await c.memberList()).members;
    } finally {
      await c.close();
    }
  };
  const leader = async (): Promise<MemberProc> => {
    const c = new FlotillaClient({ endpoints: eps() });
    try {
      for (const deadline = Date.now() + 20_000; Date.now() < deadline; await sleep(100)) {
        for (const m of live) {
          const s = await c.status(m.clientUrl.replace('http://', '')).catch(() => null);
          if (s && s.leader !== 0n && s.leader === s.header.memberId) return m;
        }
      }
      throw new Error('no leader');
    } finally {
      await c.close();
    }
  };
  const exited = async (m: MemberProc): Promise<number | null> => {
    for (const deadline = Date.now() + 20_000; m.proc && m.proc.exitCode === null; await sleep(50)) {
      if (Date.now() > deadline) throw new Error(`${m.name} did not exit\n${m.output.slice(-2000)}`);
    }
    return m.proc?.exitCode ?? null;
  };
  /** member add, then start it with the settings the command printed. */
  const add = async (name: string, o: { learner?: boolean; reuse?: MemberProc } = {}): Promise<MemberProc> => {
    const m = o.reuse ?? (await cluster.prepare(name));
    const r = await until(() => flotilla(eps(), 'member', 'add', name, '--peer-urls', m.peerUrl, ...(o.learner ? ['--learner'] : [])), /unhealthy cluster/, `member add ${name}`);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(new RegExp(`^Member +[0-9a-f]+ added to cluster +[0-9a-f]+\\n\\nETCD_NAME="${name}"\\nETCD_INITIAL_CLUSTER=".*"\\nETCD_INITIAL_ADVERTISE_PEER_URLS="${m.peerUrl}"\\nETCD_INITIAL_CLUSTER_STATE="existing"\\n$`));
    const initial = /ETCD_INITIAL_CLUSTER="([^"]*)"/.exec(r.stdout)![1]!.split(',').map((kv) => {
      const [n, url] = kv.split('=') as [string, string];
      const proc = cluster.members.find((x) => x.peerUrl === url);
      expect(proc, `${url} of ${n}`).toBeDefined();
      return { ...proc!, name: n };
    });
    await cluster.join(cluster.members.indexOf(m), initial);
    live.add(m);
    return m;
  };
  const remove = async (m: MemberProc): Promise<void> => {
    const id = (await byName(m.name))!.id;
    const r = await flotilla(eps().filter((e) => !m.clientUrl.endsWith(e)), 'member', 'remove', id.toString(16));
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(new RegExp(`^Member +${id.toString(16)} removed from cluster +[0-9a-f]+\\n$`));
    live.delete(m);
  };

  beforeAll(async () => {
    cluster = await startCluster('flotilla', { extraArgs: ['--unsafe-fault-injection'] });
    for (const m of cluster.members) live.add(m);
  }, CLUSTER_READY_TIMEOUT_MS + 30_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it('grows 3 -> 5 -> 3', async () => {
    const wl = new Workload('grow', eps());
    wl.start();
    const m4 = await add('m4');
    const m5 = await add('m5');
    await expect.poll(async () => (await members()).filter((m) => m.name && !m.isLearner).length, { timeout: 20_000 }).toBe(5);
    await remove(m4);
    expect(await exited(m4), 'm4 exits once removed').toBe(1);
    expect(m4.output).toMatch(/fatal: this member was removed from the cluster/);
    // m5 is removed while it is down: when it starts again, it asks its peers and stops.
    cluster.kill(cluster.members.indexOf(m5));
    await remove(m5);
    m5.output = '';
    cluster.relaunch(cluster.members.indexOf(m5));
    expect(await exited(m5), 'm5 exits when it learns it was removed').toBe(1);
    expect(m5.output).toMatch(/lists it as removed/);
    expect(m5.output).toMatch(/fatal: this member was removed from the cluster/);
    expect((await members()).map((m) => m.name).sort()).toEqual(['m1', 'm2', 'm3']);
    await wl.stopAfter(10);
    await wl.check(eps());
  }, 120_000);

  it('replaces a SIGKILLed member: remove, wipe, add as learner, promote', async () => {
    const wl = new Workload('replace', eps());
    wl.start();
    const lead = await leader();
    const victim = [...live].find((m) => m !== lead)!;
    const i = cluster.members.indexOf(victim);
    cluster.kill(i);
    live.delete(victim);
    const oldId = (await byName(victim.name))!.id;
    const r = await flotilla(eps(), 'member', 'remove', oldId.toString(16));
    expect(r.stderr).toBe('');
    cluster.wipe(i);
    victim.output = '';
    await add(victim.name, { learner: true, reuse: victim });
    const fresh = (await byName(victim.name))!;
    expect(fresh.id).not.toBe(oldId);
    expect(fresh.isLearner).toBe(true);
    const p = await until(() => flotilla(eps(), 'member', 'promote', fresh.id.toString(16)), /in sync with leader/, 'member promote');
    expect(p.stderr).toBe('');
    expect(p.stdout).toMatch(new RegExp(`^Member +${fresh.id.toString(16)} promoted in cluster +[0-9a-f]+\\n$`));
    expect((await members()).filter((m) => !m.isLearner).length).toBe(3);
    await wl.stopAfter(10);
    await wl.check(eps());
  }, 120_000);

  it('removes the leader: it hands leadership over, stops, and its data directory refuses to start', async () => {
    const wl = new Workload('leader', eps());
    wl.start();
    await sleep(300);
    const lead = await leader();
    await remove(lead);
    expect(await exited(lead)).toBe(1);
    expect(lead.output).toMatch(/fatal: this member was removed from the cluster/);
    expect(lead.output).toMatch(/handing leadership to \d+ first/);
    const next = await leader();
    expect(next).not.toBe(lead);
    await wl.stopAfter(10);
    await wl.check(eps());
    // Its data directory now refuses to start, with etcd's words.
    const i = cluster.members.indexOf(lead);
    lead.output = '';
    cluster.relaunch(i);
    expect(await exited(lead)).toBe(2);
    expect(lead.output).toMatch(/fatal: cannot start: the member has been permanently removed from the cluster/);
  }, 120_000);

  it('refuses to promote a lagging learner', async () => {
    const wl = new Workload('lag', eps());
    wl.start();
    const learner = await add('m6', { learner: true });
    const id = (await byName('m6'))!.id;
    const lead = await leader();
    // Cut the learner off from the leader, and let the log grow past what etcd calls in sync.
    const faults = (body: object) => fetch(`${learner.clientUrl}/debug/faults`, { method: 'POST', body: JSON.stringify(body) }).then((r) => expect(r.status).toBe(200));
    await faults({ dropFrom: [lead.name] });
    const c = new FlotillaClient({ endpoints: eps() });
    const ep = (m: MemberProc) => m.clientUrl.replace('http://', '');
    // Bursts of writes beside the workload, until the learner is below 80% of the leader's log.
    for (let burst = 0; ; burst++) {
      const [l, s] = await Promise.all([c.status(ep(lead)), c.status(ep(learner))]);
      if (Number(s.raftAppliedIndex) < 0.8 * Number(l.raftIndex)) break;
      expect(burst, 'bursts of writes until the learner lags').toBeLessThan(200);
      await Promise.all(Array.from({ length: 100 }, (_, k) => c.put(`lag/burst/${k}`, String(burst))));
    }
    const refused = await flotilla(eps(), 'member', 'promote', id.toString(16));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe('Error: etcdserver: can only promote a learner member which is in sync with leader\n');
    expect((await byName('m6'))!.isLearner).toBe(true);
    // Once it catches up, the same promotion goes through.
    await faults({ dropFrom: [] });
    const ok = await until(() => flotilla(eps(), 'member', 'promote', id.toString(16)), /in sync with leader/, 'member promote');
    expect(ok.stderr).toBe('');
    expect((await byName('m6'))!.isLearner).toBe(false);
    await c.close();
    await wl.stopAfter(10);
    await wl.check(eps());
  }, 150_000);

  it('moves a member: member update through the moving member answers, and it rejoins from its new URL', async () => {
    const wl = new Workload('move', eps());
    wl.start();
    const lead = await leader();
    // A follower, asked through its own endpoint: its answer needs the leader's commit to reach
    // it over the connection to the URL that is being replaced.
    const mover = [...live].find((m) => m !== lead)!;
    const id = (await byName(mover.name))!.id;
    const to = `http://127.0.0.1:${await freePort()}`;
    const r = await flotilla([mover.clientUrl.replace('http://', '')], 'member', 'update', id.toString(16), '--peer-urls', to);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Member +${id.toString(16)} updated in cluster +[0-9a-f]+\n$`));
    expect((await byName(mover.name))!.peerURLs).toEqual([to]);
    // Restarted listening there, it is reached at the new URL (the check reads every write on it).
    const i = cluster.members.indexOf(mover);
    cluster.kill(i);
    mover.peerUrl = to;
    mover.output = '';
    await cluster.restart(i);
    await wl.stopAfter(10);
    await wl.check(eps());
  }, 120_000);
});
