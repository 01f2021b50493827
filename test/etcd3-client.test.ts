/**
 * The etcd3 npm client (1.1.2, a plain connection) works against a Flotilla cluster for KV,
 * txn, watch, lease, lock and election, unchanged. (The same client with TLS:
 * test/tls.test.ts; with auth: test/etcdctl-auth.test.ts; with both at once, next to etcd:
 * test/tls-auth-etcd.test.ts.)
 */
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInProcessCluster, type InProcessCluster } from './support/in-process.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the etcd3 npm client against Flotilla', () => {
  let cluster: InProcessCluster;
  let a: Etcd3;
  let b: Etcd3;
  beforeAll(async () => {
    cluster = await startInProcessCluster();
    const hosts = cluster.endpoints.map((e) => `http://${e}`);
    a = new Etcd3({ hosts });
    b = new Etcd3({ hosts: [...hosts].reverse() });
  }, 60_000);
  afterAll(async () => {
    a?.close();
    b?.close();
    await cluster?.stop();
  });

  it('KV: put, get, prefix, delete', async () => {
    await a.put('fruit/apple').value('red');
    await a.put('fruit/banana').value('yellow');
    expect(await a.get('fruit/apple').string()).toBe('red');
    expect(await b.getAll().prefix('fruit/').strings()).toEqual({ 'fruit/apple': 'red', 'fruit/banana': 'yellow' });
    expect(await a.getAll().prefix('fruit/').count()).toBe(2);
    await a.delete().key('fruit/apple');
    expect(await b.get('fruit/apple').string()).toBeNull();
  });

  it('txn: both branches', async () => {
    await a.put('cas').value('1');
    const ok = await a.if('cas', 'Value', '==', '1').then(a.put('cas').value('2')).else(a.put('cas').value('x')).commit();
    expect(ok.succeeded).toBe(true);
    const no = await a.if('cas', 'Value', '==', '1').then(a.put('cas').value('3')).else(a.get('cas')).commit();
    expect(no.succeeded).toBe(false);
    expect(await a.get('cas').string()).toBe('2');
  });

  it('watch: live events, and from a past revision', async () => {
    const seen: string[] = [];
    const w = await a.watch().prefix('w/').create();
    w.on('put', (kv) => seen.push(`put ${kv.key.toString()}=${kv.value.toString()}`));
    w.on('delete', (kv) => seen.push(`del ${kv.key.toString()}`));
    const first = await b.put('w/1').value('a').exec();
    await b.put('w/2').value('b');
    await b.delete().key('w/1');
    for (let i = 0; i < 50 && seen.length < 3; i++) await sleep(50);
    expect(seen).toEqual(['put w/1=a', 'put w/2=b', 'del w/1']);
    await w.cancel();
    const past: string[] = [];
    const h = await a.watch().prefix('w/').startRevision(first.header.revision).create();
    h.on('put', (kv) => past.push(kv.key.toString()));
    for (let i = 0; i < 50 && past.length < 2; i++) await sleep(50);
    expect(past).toEqual(['w/1', 'w/2']);
    await h.cancel();
  });

  it('lease: keys live with it; keep-alive; revoke deletes them', async () => {
    const lease = a.lease(3);
    let keptAlive = 0;
    lease.on('keepaliveSucceeded', () => keptAlive++);
    await lease.put('leased/1').value('v');
    await lease.put('leased/2').value('v');
    await sleep(4000);
    expect(await b.getAll().prefix('leased/').keys()).toEqual(['leased/1', 'leased/2']);
    expect(keptAlive).toBeGreaterThan(0);
    await lease.revoke();
    expect(await b.getAll().prefix('leased/').keys()).toEqual([]);
  }, 20_000);

  it('a lease that is not kept alive expires and its key goes', async () => {
    const id = (await a.lease(2, { autoKeepAlive: false }).grant()) as string;
    await a.put('expiring').value('v').lease(id);
    expect(await a.get('expiring').string()).toBe('v');
    for (let i = 0; i < 80 && (await a.get('expiring').string()) !== null; i++) await sleep(100);
    expect(await a.get('expiring').string()).toBeNull();
  }, 20_000);

  it('lock: mutual exclusion across two clients (etcd3 1.1.2 locks are try-locks)', async () => {
    const la = a.lock('the-lock').ttl(5);
    await la.acquire();
    await expect(b.lock('the-lock').ttl(5).acquire()).rejects.toThrow(/Failed to acquire a lock on the-lock/);
    await la.release();
    const lb = b.lock('the-lock').ttl(5);
    await lb.acquire();
    await expect(a.lock('the-lock').ttl(5).acquire()).rejects.toThrow(/Failed to acquire/);
    await lb.release();
    let ran = false;
    await a.lock('the-lock').do(async () => {
      ran = true;
    });
    expect(ran).toBe(true);
  }, 20_000);

  it('election: campaign, leader, observe, resign', async () => {
    const ea = a.election('the-election', 5);
    const eb = b.election('the-election', 5);
    const ca = ea.campaign('alice');
    await ca.wait();
    expect(await eb.leader()).toBe('alice');
    const observer = await eb.observe();
    const changes: (string | undefined)[] = [];
    observer.on('change', (v) => changes.push(v));
    const cb = eb.campaign('bob');
    let bobElected = false;
    cb.on('elected', () => (bobElected = true));
    await sleep(500);
    expect(bobElected).toBe(false);
    await ca.resign();
    await cb.wait();
    expect(bobElected).toBe(true);
    expect(await ea.leader()).toBe('bob');
    for (let i = 0; i < 40 && !changes.includes('bob'); i++) await sleep(50);
    expect(changes).toContain('bob');
    await observer.cancel();
    await cb.resign();
  }, 20_000);
});
