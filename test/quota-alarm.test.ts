/**
 * The space quota and the NOSPACE alarm through real processes and the real etcdctl 3.4, the
 * same session against a Flotilla cluster and a real etcd 3.4 cluster (both 3 members, both
 * with --quota-backend-bytes QUOTA_BYTES), transcripts compared step by step: fill the store
 * until a put is refused with `database space exceeded`, a put through a follower is refused
 * too, `alarm list` and `endpoint status` show NOSPACE, /health is false, lease grants and txns
 * with a put are refused; reads, read-only txns, deletes and compaction still work; after
 * deleting, compacting and defragmenting, `alarm disarm` clears the alarm and puts work again.
 * Where sizes differ by nature (how many puts fit, revisions, how many members raised the
 * alarm) the transcript keeps the fact, not the number. Needs etcdctl and etcd.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, which, type Cluster } from './support/cluster.js';
import { etcdctl, Normalizer, type RunResult, type Step } from './support/etcdctl-session.js';

const ETCDCTL = which('etcdctl');
const ETCD = which('etcd');
const missing = [!ETCDCTL && 'etcdctl', !ETCD && 'etcd'].filter(Boolean);
if (missing.length > 0) console.log(`skipping the quota and alarm session: ${missing.join(' and ')} not installed (apt-get install -y etcd-client etcd-server)`);

/** Small enough to fill in a few seconds, large enough for etcd's own bbolt file (about 20 KB empty). */
const QUOTA_BYTES = 2 * 1024 * 1024;
/** Under etcdctl's one-argument limit (MAX_ARG_STRLEN, 128 KiB). */
const VALUE_BYTES = 100_000;
/** Puts tried before giving up on filling the quota (QUOTA_BYTES / VALUE_BYTES is about 21). */
const FILL_PUTS_MAX = 60;

const NOSPACE = 'database space exceeded';

/** The member id (decimal, as `alarm list` prints it) and client endpoint of each member, and which leads. */
async function roles(bin: string, c: Cluster): Promise<{ leaderEp: string; followerEp: string }> {
  const r = await etcdctl(bin, c.endpoints, ['endpoint', 'status', '-w', 'json']);
  // uint64 ids do not survive JSON.parse: read them as text.
  const eps = [...r.stdout.matchAll(/"Endpoint":"([^"]+)","Status":\{"header":\{"cluster_id":\d+,"member_id":(\d+).*?"leader":(\d+)/g)].map((m) => ({ ep: m[1]!, id: m[2]!, leader: m[3]! }));
  const leader = eps.find((e) => e.id === e.leader);
  const follower = eps.find((e) => e.id !== e.leader);
  if (!leader || !follower) throw new Error(`no leader and follower in ${r.stdout} ${r.stderr}`);
  return { leaderEp: leader.ep, followerEp: follower.ep };
}

async function session(bin: string, c: Cluster): Promise<{ steps: Step[]; fillOk: number; alarmsRaised: number }> {
  const steps: Step[] = [];
  const n = new Normalizer(c);
  const { leaderEp, followerEp } = await roles(bin, c);
  const ctl = (args: string[], o: { ep?: string; input?: string } = {}) => etcdctl(bin, [o.ep ?? leaderEp], args, o.input === undefined ? {} : { input: o.input });
  const norm = (s: string) => n.text(s).replace(/memberID:\d+/g, 'memberID:<ID>');
  const out = (r: RunResult) => `exit ${r.code}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;
  /** Lines as a sorted set: alarms come one per member that raised it, in map order. */
  const lineSet = (s: string) => [...new Set(norm(s).split('\n').filter(Boolean))].sort().join('\n');
  const record = (name: string, text: string) => steps.push({ name, out: norm(text) });
  const health = async () => {
    const r = await fetch(`http://${leaderEp}/health`, { signal: AbortSignal.timeout(5000) });
    const body = (await r.json()) as { health: string };
    return `${r.status} health=${body.health}`;
  };

  // --- fill through the leader until a put is refused
  const value = 'v'.repeat(VALUE_BYTES);
  let fillOk = 0;
  let refused: RunResult | null = null;
  for (let i = 0; i < FILL_PUTS_MAX && !refused; i++) {
    const r = await ctl(['put', `k${String(i).padStart(3, '0')}`, value]);
    if (r.code === 0) fillOk++;
    else refused = r;
  }
  record('fill until refused', `puts accepted: ${fillOk > 0 ? 'some' : 'none'}\n${refused ? out(refused) : 'never refused'}`);
  record('put through a follower', out(await ctl(['put', 'small', 'x'], { ep: followerEp })));
  record('put an empty value', out(await ctl(['put', 'k000', ''])));
  const list = await ctl(['alarm', 'list']);
  const alarmsRaised = list.stdout.split('\n').filter(Boolean).length;
  record('alarm list', `exit ${list.code}\n${lineSet(list.stdout)}\n${list.stderr}`);
  const status = await etcdctl(bin, c.endpoints, ['endpoint', 'status', '-w', 'json']);
  const errors = [...status.stdout.matchAll(/"errors":\[([^\]]*)\]/g)].map((m) => lineSet(m[1]!.split(',').join('\n')));
  record('endpoint status errors', `exit ${status.code}\n${errors.join('\n')}`);
  record('/health', await health());
  record('lease grant', out(await ctl(['lease', 'grant', '60'])));
  record('txn with a put', out(await ctl(['txn'], { input: '\nput t1 x\n\n\n' })));
  record('txn read-only', out(await ctl(['txn'], { input: '\nget k000 --keys-only\n\n\n' })));
  record('get', out(await ctl(['get', 'k000', '--keys-only'], { ep: followerEp })));

  // --- free space: delete, compact (physically), defragment every member; still alarmed
  // etcd applies the put that finds the quota gone at apply time and still answers it with
  // NOSPACE (its quota applier), so the keys present are the accepted puts, or one more.
  const present = Number(JSON.parse((await ctl(['get', 'k', '--prefix', '--keys-only', '-w', 'json'])).stdout).count ?? 0);
  const del = await ctl(['del', 'k', '--prefix'], { ep: followerEp });
  const presentOk = present === fillOk || present === fillOk + 1;
  record('del --prefix', `exit ${del.code} deleted every key present: ${del.stdout.trim() === String(present)}, each an accepted put or the refused one: ${presentOk}\n${del.stderr}`);
  const rev = Number(JSON.parse((await ctl(['get', 'k000', '-w', 'json'])).stdout).header.revision);
  record('compact --physical', norm(out(await ctl(['compact', String(rev), '--physical']))).replace(String(rev), '<rev>'));
  const defrag = await etcdctl(bin, c.endpoints, ['defrag']);
  record('defrag', `exit ${defrag.code}\n${lineSet(defrag.stdout)}\n${defrag.stderr}`);
  record('put while alarmed', out(await ctl(['put', 'after', 'x'])));

  // --- disarm: puts work again
  const disarm = await ctl(['alarm', 'disarm']);
  record('alarm disarm', `exit ${disarm.code}\n${lineSet(disarm.stdout)}\n${disarm.stderr}`);
  record('alarm list after disarm', out(await ctl(['alarm', 'list'])));
  record('alarm disarm again', out(await ctl(['alarm', 'disarm'])));
  record('/health after disarm', await health());
  record('put after disarm', out(await ctl(['put', 'after', 'x'])));
  record('put through a follower after disarm', out(await ctl(['put', 'after2', 'y'], { ep: followerEp })));
  record('lease grant after disarm', out(await ctl(['lease', 'grant', '60'])).replace(/lease [0-9a-f]+ granted/, 'lease <id> granted'));
  return { steps, fillOk, alarmsRaised };
}

describe.skipIf(missing.length > 0)('quota and NOSPACE alarm: etcdctl against Flotilla answers as against etcd 3.4', () => {
  let flotilla: Cluster;
  let etcd: Cluster;
  let ours: Awaited<ReturnType<typeof session>>;
  let theirs: Awaited<ReturnType<typeof session>>;
  beforeAll(async () => {
    const extraArgs = ['--quota-backend-bytes', String(QUOTA_BYTES)];
    [flotilla, etcd] = await Promise.all([startCluster('flotilla', { extraArgs }), startCluster('etcd', { extraArgs })]);
    [ours, theirs] = await Promise.all([session(ETCDCTL!, flotilla), session(ETCDCTL!, etcd)]);
  }, 180_000);
  afterAll(async () => {
    await Promise.all([flotilla?.stop(), etcd?.stop()]);
  });

  it('Flotilla refuses writes at the quota, lists and reports the alarm, and recovers after disarm', () => {
    const step = (name: string) => ours.steps.find((s) => s.name === name)?.out ?? `no step ${name}`;
    // The store filled to about the quota: 2 MiB of 100 KB values is about 20 puts.
    expect(ours.fillOk).toBeGreaterThan(QUOTA_BYTES / VALUE_BYTES - 5);
    // The size the quota compares is the database file plus what is written but not yet
    // durable in it, so no more fit than the quota holds, however batch commits are timed.
    expect(ours.fillOk).toBeLessThanOrEqual(QUOTA_BYTES / VALUE_BYTES);
    expect(step('fill until refused')).toContain(`Error: etcdserver: mvcc: ${NOSPACE}`);
    expect(step('put through a follower')).toContain(NOSPACE);
    expect(step('alarm list')).toBe('exit 0\nmemberID:<ID> alarm:NOSPACE \n');
    expect(ours.alarmsRaised).toBeGreaterThanOrEqual(1);
    expect(step('/health')).toBe('503 health=false');
    expect(step('get')).toContain('k000');
    expect(step('lease grant')).toContain(`failed to grant lease (etcdserver: mvcc: ${NOSPACE})`);
    expect(step('txn with a put')).toContain(NOSPACE);
    expect(step('txn read-only')).toMatch(/^exit 0\n--- stdout\nSUCCESS\n\nk000\n/);
    expect(step('endpoint status errors')).toBe('exit 0\n"memberID:<ID> alarm:NOSPACE "\n"memberID:<ID> alarm:NOSPACE "\n"memberID:<ID> alarm:NOSPACE "');
    expect(step('put while alarmed')).toContain(NOSPACE);
    expect(step('alarm disarm')).toBe('exit 0\nmemberID:<ID> alarm:NOSPACE \n');
    expect(step('alarm list after disarm')).toBe('exit 0\n--- stdout\n--- stderr\n');
    expect(step('/health after disarm')).toBe('200 health=true');
    expect(step('put after disarm')).toBe('exit 0\n--- stdout\nOK\n--- stderr\n');
  });

  it('the same session gives the same transcript, step by step', () => {
    expect(ours.steps.map((s) => s.name)).toEqual(theirs.steps.map((s) => s.name));
    for (let i = 0; i < theirs.steps.length; i++) expect(ours.steps[i]!.out, `step "${theirs.steps[i]!.name}"`).toBe(theirs.steps[i]!.out);
  });
});
