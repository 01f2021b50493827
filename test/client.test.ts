/**
 * FlotillaClient against a real 3-member cluster (Flotilla by default; FLOTILLA_TEST_TARGET=etcd
 * runs the same tests against etcd): every method, watch resumption after the member the watch
 * is connected to is SIGKILLed, background lease keep-alive, lock contention and elections.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientError, Cmp, FlotillaClient, Op, type KeyValue, type WatchEvent } from '../src/client/index.js';
import { FLOTILLA_BIN, startCluster, which, type Cluster, type Target } from './support/cluster.js';

const TARGET = (process.env.FLOTILLA_TEST_TARGET ?? 'flotilla') as Target;
const missing = TARGET === 'etcd' ? (which('etcd') ? null : 'etcd is not installed') : existsSync(FLOTILLA_BIN) ? null : 'bin/flotilla.js is missing';
if (missing) console.log(`skipping the client tests against ${TARGET}: ${missing}`);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const keys = (kvs: KeyValue[]): string[] => kvs.map((kv) => kv.keyString());

/** Waits until `cond()` holds (polling), failing after `ms`. */
async function until(cond: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** The error a promise rejects with. */
async function failure(p: Promise<unknown>): Promise<ClientError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ClientError);
    return e as ClientError;
  }
  throw new Error('expected a failure');
}

describe.skipIf(missing !== null)(`FlotillaClient against ${TARGET}`, () => {
  let cluster: Cluster;
  let c: FlotillaClient;
  const clients: FlotillaClient[] = [];
  const client = (endpoints = cluster.endpoints, requestTimeoutMs?: number): FlotillaClient => {
    const x = new FlotillaClient({ endpoints, ...(requestTimeoutMs ? { requestTimeoutMs } : {}) });
    clients.push(x);
    return x;
  };

  beforeAll(async () => {
    cluster = await startCluster(TARGET);
    c = client();
  }, 60_000);
  afterAll(async () => {
    await Promise.all(clients.map((x) => x.close()));
    await cluster?.stop();
  });

  it('put, get (ranges, limits, sorting, revisions), delete', async () => {
    const p1 = await c.put('kv/a', '1');
    await c.put('kv/b', Buffer.from('2'));
    await c.put('kv/c', '3');
    await c.put('kw', 'outside');
    const one = await c.get('kv/a');
    expect(keys(one.kvs)).toEqual(['kv/a']);
    expect(one.kvs[0]!.valueString()).toBe('1');
    expect(one.kvs[0]!.version).toBe(1n);
    expect(one.kvs[0]!.createRevision).toBe(p1.header.revision);
    expect((await c.get('kv/nope')).kvs).toEqual([]); // a single missing key is not a range
    expect(keys((await c.get('kv/', { prefix: true })).kvs)).toEqual(['kv/a', 'kv/b', 'kv/c']);
    expect(keys((await c.get('kv/b', { fromKey: true })).kvs)).toEqual(['kv/b', 'kv/c', 'kw']);
    expect(keys((await c.get('kv/a', { rangeEnd: 'kv/c' })).kvs)).toEqual(['kv/a', 'kv/b']);
    const limited = await c.get('kv/', { prefix: true, limit: 2 });
    expect([keys(limited.kvs), limited.more, limited.count]).toEqual([['kv/a', 'kv/b'], true, 3n]);
    expect(keys((await c.get('kv/', { prefix: true, sortTarget: 'VALUE', sortOrder: 'DESCEND' })).kvs)).toEqual(['kv/c', 'kv/b', 'kv/a']);
    const ko = await c.get('kv/', { prefix: true, keysOnly: true, serializable: true });
    expect(ko.kvs.map((kv) => kv.value.length)).toEqual([0, 0, 0]);
    const co = await c.get('kv/', { prefix: true, countOnly: true });
    expect([co.kvs.length, co.count]).toEqual([0, 3n]);
    expect(keys((await c.get('kv/', { prefix: true, minModRevision: p1.header.revision + 1n })).kvs)).toEqual(['kv/b', 'kv/c']);

    const p2 = await c.put('kv/a', 'one', { prevKv: true });
    expect(p2.prevKv?.valueString()).toBe('1');
    expect((await c.get('kv/a', { revision: p1.header.revision })).kvs[0]!.valueString()).toBe('1');
    await c.put('kv/a', '', { ignoreValue: true, prevKv: true });
    expect((await c.get('kv/a')).kvs[0]!.valueString()).toBe('one');

    const d = await c.delete('kv/', { prefix: true, prevKv: true });
    expect(d.deleted).toBe(3n);
    expect(keys(d.prevKvs).sort()).toEqual(['kv/a', 'kv/b', 'kv/c']);
    expect((await c.delete('kv/none')).deleted).toBe(0n);
    expect((await c.delete('kw', { fromKey: true })).deleted).toBeGreaterThanOrEqual(1n);
  });

  it('surfaces the server\'s status and exact message', async () => {
    const e1 = await failure(c.get(''));
    expect([e1.code, e1.details]).toEqual(['INVALID_ARGUMENT', 'etcdserver: key is not provided']);
    const e2 = await failure(c.get('x', { revision: 1_000_000 }));
    expect([e2.code, e2.details]).toEqual(['OUT_OF_RANGE', 'etcdserver: mvcc: required revision is a future revision']);
    const e3 = await failure(c.put('x', 'v', { lease: 0x1234n }));
    expect([e3.code, e3.details]).toEqual(['NOT_FOUND', 'etcdserver: requested lease not found']);
    const e4 = await failure(c.put('never-written', '', { ignoreValue: true }));
    expect(e4.details).toBe('etcdserver: key not found');
    const e5 = await failure(c.leaseRevoke(0x4321n));
    expect([e5.code, e5.details]).toEqual(['NOT_FOUND', 'etcdserver: requested lease not found']);
  });

  it('txn with the builders and with plain objects', async () => {
    await c.put('tx/k', 'v1');
    const t = await c.txn({
      compare: [Cmp.value('tx/k', '=', 'v1'), Cmp.version('tx/k', '>', 0), Cmp.createRevision('tx/new', '=', 0)],
      success: [Op.put('tx/k', 'v2', { prevKv: true }), Op.get('tx/k'), Op.put('tx/new', 'n'), Op.delete('tx/none')],
      failure: [Op.get('tx/k')],
    });
    expect(t.succeeded).toBe(true);
    expect(t.responses.map((r) => r.type)).toEqual(['put', 'range', 'put', 'delete']);
    const [put, range] = t.responses;
    expect(put?.type === 'put' && put.put.prevKv?.valueString()).toBe('v1');
    expect(range?.type === 'range' && range.range.kvs[0]!.valueString()).toBe('v2');

    const f = await c.txn({
      compare: [{ key: 'tx/k', target: 'MOD', result: 'LESS', value: 1 }],
      success: [{ put: { key: 'tx/k', value: 'never' } }],
      failure: [{ get: { key: 'tx/', prefix: true } }, { txn: { success: [Op.get('tx/new')] } }],
    });
    expect(f.succeeded).toBe(false);
    const [fr, nested] = f.responses;
    expect(fr?.type === 'range' && keys(fr.range.kvs)).toEqual(['tx/k', 'tx/new']);
    expect(nested?.type === 'txn' && nested.txn.succeeded).toBe(true);
    const dup = await failure(c.txn({ success: [Op.put('tx/d', '1'), Op.put('tx/d', '2')] }));
    expect(dup.details).toBe('etcdserver: duplicate key given in txn request');
  });

  it('watch: events in order with prev_kv, filters, history from a start revision, cancel', async () => {
    const start = (await c.put('w/a', '0')).header.revision + 1n;
    const seen: WatchEvent[] = [];
    const w = c.watch('w/', { prefix: true, prevKv: true }, (evs) => seen.push(...evs));
    await w.ready;
    const noPuts: WatchEvent[] = [];
    const wf = c.watch('w/', { prefix: true, filters: ['NOPUT'] }, (evs) => noPuts.push(...evs));
    await wf.ready;
    await c.put('w/a', '1');
    await c.put('w/b', '2');
    await c.delete('w/a');
    await until(() => seen.length === 3 && noPuts.length === 1, 10_000, 'watch events');
    expect(seen.map((e) => `${e.type} ${e.kv.keyString()} ${e.kv.valueString()} ${e.prevKv?.valueString() ?? '-'}`)).toEqual(['PUT w/a 1 0', 'PUT w/b 2 -', 'DELETE w/a  1']);
    expect(noPuts.map((e) => e.type)).toEqual(['DELETE']);
    expect(seen.map((e) => e.kv.modRevision)).toEqual([start, start + 1n, start + 2n]);

    const history: WatchEvent[] = [];
    const wh = c.watch('w/', { prefix: true, startRevision: start }, (evs) => history.push(...evs));
    await until(() => history.length === 3, 10_000, 'history');
    expect(history.map((e) => e.kv.modRevision)).toEqual([start, start + 1n, start + 2n]);

    await w.cancel();
    expect(await w.done).toBeUndefined();
    await c.put('w/c', 'after cancel');
    await until(() => history.length === 4);
    expect(seen).toHaveLength(3);
    await wf.cancel();
    await wh.cancel();
  });

  it('leases: grant, time-to-live with keys, list, keep-alive once, revoke deletes the keys', async () => {
    const g = await c.leaseGrant(60);
    expect(g.ttl).toBe(60);
    expect(g.id).toBeGreaterThan(0n);
    const mine = await c.leaseGrant(30, 0x7777n);
    expect(mine.id).toBe(0x7777n);
    expect((await failure(c.leaseGrant(30, 0x7777n))).details).toBe('etcdserver: lease already exists');
    await c.put('lease/k', 'v', { lease: g.id });
    const ttl = await c.leaseTimeToLive(g.id, { keys: true });
    expect([ttl.grantedTtl, ttl.keys.map(String)]).toEqual([60, ['lease/k']]);
    expect(ttl.ttl).toBeGreaterThan(0);
    expect((await c.get('lease/k')).kvs[0]!.lease).toBe(g.id);
    expect((await c.leaseLeases()).leases).toEqual(expect.arrayContaining([g.id, mine.id]));
    expect((await c.leaseKeepAliveOnce(g.id)).ttl).toBe(60);
    await c.leaseRevoke(g.id);
    await c.leaseRevoke(mine.id);
    expect((await c.get('lease/k')).kvs).toEqual([]);
    expect((await c.leaseTimeToLive(g.id)).ttl).toBe(-1);
    expect((await c.leaseKeepAliveOnce(g.id)).ttl).toBe(0);
  });

  it('lease keep-alive keeps a short lease alive and reports when it is revoked', async () => {
    const { id, ttl } = await c.leaseGrant(2);
    await c.put('ka/k', 'v', { lease: id });
    const renewals: number[] = [];
    const errors: ClientError[] = [];
    const ka = c.leaseKeepAlive(id, { onKeepAlive: (r) => renewals.push(r.ttl), onError: (e) => errors.push(e) });
    await sleep(ttl * 1000 * 2 + 500);
    expect((await c.get('ka/k')).kvs).toHaveLength(1);
    expect(renewals.length).toBeGreaterThanOrEqual(4);
    await c.leaseRevoke(id);
    const end = await ka.done;
    expect(end?.details).toBe('etcdserver: requested lease not found');
    expect(errors).toHaveLength(1);
  });

  it('lock: a second client waits until the first unlocks', async () => {
    const c1 = client();
    const c2 = client();
    const l1 = await c1.lock('locks/x');
    expect(l1.key.toString()).toMatch(/^locks\/x\/[0-9a-f]+$/);
    let second: Awaited<ReturnType<FlotillaClient['lock']>> | undefined;
    const waiting = c2.lock('locks/x').then((l) => (second = l));
    await sleep(700);
    expect(second).toBeUndefined();
    await c1.unlock(l1.key);
    await waiting;
    expect(second!.key.equals(l1.key)).toBe(false);
    expect(second!.revision).toBeGreaterThan(l1.revision);
    // The first lock's session lease was revoked by unlock.
    expect((await c.leaseTimeToLive(l1.lease)).ttl).toBe(-1);
    await c2.unlock(second!.key);
    expect((await c.get('locks/x', { prefix: true })).kvs).toEqual([]);
  });

  it('election: campaign, leader, proclaim, observe, resign hands over', async () => {
    const c1 = client();
    const c2 = client();
    const observed: string[] = [];
    const ob = c.observe('elect/e', (kv) => observed.push(kv.valueString()));
    expect(await c.leader('elect/e')).toBeUndefined();
    const l1 = await c1.campaign('elect/e', 'a');
    expect((await c.leader('elect/e'))?.valueString()).toBe('a');
    let l2: Awaited<ReturnType<FlotillaClient['campaign']>> | undefined;
    const waiting = c2.campaign('elect/e', 'b').then((l) => (l2 = l));
    await c1.proclaim(l1, 'a2');
    await until(() => observed.includes('a2'), 10_000, 'proclaimed value');
    await sleep(300);
    expect(l2).toBeUndefined();
    await c1.resign(l1);
    await waiting;
    expect((await c.leader('elect/e'))?.valueString()).toBe('b');
    await until(() => observed.at(-1) === 'b', 10_000, 'new leader observed');
    expect(observed).toEqual(['a', 'a2', 'b']);
    await c2.resign(l2!);
    expect(await c.leader('elect/e')).toBeUndefined();
    await ob.cancel();
  });

  it('members, status, health and hashKV of each endpoint', async () => {
    const ml = await c.memberList();
    expect(ml.members.map((m) => m.name).sort()).toEqual(['m1', 'm2', 'm3']);
    expect(ml.members.flatMap((m) => m.clientURLs).map((u) => u.replace('http://', '')).sort()).toEqual([...cluster.endpoints].sort());
    const statuses = await Promise.all(cluster.endpoints.map((ep) => c.status(ep)));
    expect(new Set(statuses.map((s) => s.leader)).size).toBe(1);
    expect(statuses.filter((s) => s.leader === s.header.memberId)).toHaveLength(1);
    for (const s of statuses) expect(s.version).not.toBe('');
    for (const ep of cluster.endpoints) expect(await c.health(ep)).toMatchObject({ endpoint: ep, health: true });
    expect((await c.health('127.0.0.1:1')).health).toBe(false);
    const rev = (await c.put('hash/k', 'v')).header.revision;
    // A member may not have applied `rev` yet (the future-revision error): ask again shortly.
    const hashAt = async (ep: string): Promise<number> => {
      for (let i = 0; ; i++) {
        try {
          return (await c.hashKv(ep, rev)).hash;
        } catch (e) {
          if (i > 50 || (e as ClientError).code !== 'OUT_OF_RANGE') throw e;
          await sleep(50);
        }
      }
    };
    const hashes = await Promise.all(cluster.endpoints.map(hashAt));
    expect(new Set(hashes).size, `HashKV at revision ${rev}: ${hashes.join(", ")}`).toBe(1);
  });

  it('fails over to the next endpoint when the first is down', async () => {
    const f = client(['127.0.0.1:1', ...cluster.endpoints]);
    await f.put('fo/k', 'v');
    expect((await f.get('fo/k')).kvs[0]!.valueString()).toBe('v');
  });

  it('watch resumes on another member after its member is killed: every event once, in order', async () => {
    // Watch through a follower, so killing it does not force an election.
    const statuses = await Promise.all(cluster.endpoints.map((ep) => c.status(ep)));
    const leader = statuses.findIndex((s) => s.leader === s.header.memberId);
    const follower = (leader + 1) % cluster.endpoints.length;
    const eps = cluster.endpoints;
    const wc = client([...eps.slice(follower), ...eps.slice(0, follower)]);
    const start = (await c.put('wr/start', '-')).header.revision + 1n;
    const seen: WatchEvent[] = [];
    const w = wc.watch('wr/', { prefix: true, startRevision: start }, (evs) => seen.push(...evs));
    await w.ready;
    expect(w.endpoint).toBe(eps[follower]);

    const survivors = eps.filter((_, i) => i !== follower);
    const writer = client(survivors, 3000);
    const putSome = async (from: number, to: number): Promise<void> => {
      for (let i = from; i < to; i++) {
        for (let attempt = 0; ; attempt++) {
          try {
            await writer.put(`wr/${String(i).padStart(3, '0')}`, `v${i}`);
            break;
          } catch (e) {
            if (attempt > 20) throw e;
            await sleep(100);
          }
        }
      }
    };
    await putSome(0, 20);
    cluster.kill(follower);
    await putSome(20, 60);
    const last = (await writer.get('wr/', { prefix: true, serializable: false })).header.revision;
    await until(() => (seen.at(-1)?.kv.modRevision ?? 0n) >= last, 15_000, 'the watcher to catch up');
    expect(w.endpoint).not.toBe(eps[follower]);

    const truth: WatchEvent[] = [];
    const t = writer.watch('wr/', { prefix: true, startRevision: start }, (evs) => truth.push(...evs));
    await until(() => (truth.at(-1)?.kv.modRevision ?? 0n) >= last, 10_000, 'the reference history');
    await t.cancel();
    const fmt = (evs: WatchEvent[]): string[] => evs.map((e) => `${e.kv.modRevision} ${e.type} ${e.kv.keyString()}=${e.kv.valueString()}`);
    expect(fmt(seen)).toEqual(fmt(truth));
    expect(seen).toHaveLength(60);
    await w.cancel();
  }, 60_000);

  it('compaction: reads below it and watches resuming below it fail with the compacted error', async () => {
    const live = cluster.members.map((m, i) => (m.proc ? cluster.endpoints[i]! : null)).filter((e): e is string => e !== null);
    const k = client(live);
    const r1 = (await k.put('cp/k', '1')).header.revision;
    const r2 = (await k.put('cp/k', '2')).header.revision;
    await k.compact(r2, { physical: true });
    const e = await failure(k.get('cp/k', { revision: r1 }));
    expect([e.code, e.details]).toEqual(['OUT_OF_RANGE', 'etcdserver: mvcc: required revision has been compacted']);
    expect((await k.get('cp/k', { revision: r2 })).kvs[0]!.valueString()).toBe('2');
    const errors: ClientError[] = [];
    const w = k.watch('cp/k', { startRevision: r1, onError: (x) => errors.push(x) }, () => undefined);
    const end = await w.done;
    expect(end?.details).toBe('etcdserver: mvcc: required revision has been compacted');
    expect(w.compactRevision).toBe(r2);
    expect(errors).toHaveLength(1);
  });
});
