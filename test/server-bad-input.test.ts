/**
 * Bad input gets etcd's error and loses nothing: every case below is answered with etcd's
 * code and text, and the member keeps serving (a write and a read succeed afterwards).
 */
import * as grpc from '@grpc/grpc-js';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type Cluster } from './support/cluster.js';
import { rawClient, type RawClient } from './support/grpc.js';

const b = (s: string) => Buffer.from(s);

describe('bad input through the gRPC API', () => {
  let cluster: Cluster;
  let c: RawClient;
  beforeAll(async () => {
    cluster = await startCluster('flotilla');
    c = rawClient(cluster.endpoints[1]!);
  }, 60_000);
  afterAll(async () => {
    c?.close();
    await cluster?.stop();
  });

  const fails = async (p: Promise<unknown>, code: grpc.status, details: string | RegExp) => {
    const e = (await p.then(
      () => null,
      (err: unknown) => err,
    )) as grpc.ServiceError | null;
    expect(e, 'the call should fail').not.toBeNull();
    expect(e!.code).toBe(code);
    if (typeof details === 'string') expect(e!.details).toBe(details);
    else expect(e!.details).toMatch(details);
  };

  const stillServes = async () => {
    const key = b(`alive-${Math.random()}`);
    await c.call('etcdserverpb.KV', 'Put', { key, value: b('yes') });
    const r = await c.call('etcdserverpb.KV', 'Range', { key });
    expect((r.kvs as Wire[]).map((kv) => String(kv.value))).toEqual(['yes']);
  };
  type Wire = Record<string, unknown>;

  it('empty key', async () => {
    await fails(c.call('etcdserverpb.KV', 'Put', { key: b(''), value: b('v') }), grpc.status.INVALID_ARGUMENT, 'etcdserver: key is not provided');
    await fails(c.call('etcdserverpb.KV', 'Range', { key: b('') }), grpc.status.INVALID_ARGUMENT, 'etcdserver: key is not provided');
    await stillServes();
  });

  it('a value over the request limit (1.5 MiB) and over the gRPC limit (2 MiB)', async () => {
    await fails(c.call('etcdserverpb.KV', 'Put', { key: b('big'), value: Buffer.alloc(1.6 * 1024 * 1024, 1) }), grpc.status.INVALID_ARGUMENT, 'etcdserver: request is too large');
    await fails(c.call('etcdserverpb.KV', 'Put', { key: b('big'), value: Buffer.alloc(2 * 1024 * 1024, 1) }), grpc.status.RESOURCE_EXHAUSTED, /larger than max/i);
    const r = await c.call('etcdserverpb.KV', 'Range', { key: b('big') });
    expect(r.count, 'nothing of a refused put is stored').toBe('0');
    await stillServes();
  });

  it('a txn of 129 operations, and duplicate keys in a txn', async () => {
    const ops = Array.from({ length: 129 }, (_, i) => ({ request_put: { key: b(`t${i}`), value: b('v') } }));
    await fails(c.call('etcdserverpb.KV', 'Txn', { compare: [], success: ops, failure: [] }), grpc.status.INVALID_ARGUMENT, 'etcdserver: too many operations in txn request');
    const dup = [{ request_put: { key: b('d'), value: b('1') } }, { request_put: { key: b('d'), value: b('2') } }];
    await fails(c.call('etcdserverpb.KV', 'Txn', { compare: [], success: dup, failure: [] }), grpc.status.INVALID_ARGUMENT, 'etcdserver: duplicate key given in txn request');
    const ok = await c.call('etcdserverpb.KV', 'Txn', { compare: [], success: ops.slice(0, 128), failure: [] });
    expect(ok.succeeded).toBe(true);
    await stillServes();
  });

  it('an unknown lease', async () => {
    await fails(c.call('etcdserverpb.KV', 'Put', { key: b('k'), value: b('v'), lease: '12345' }), grpc.status.NOT_FOUND, 'etcdserver: requested lease not found');
    await fails(c.call('etcdserverpb.Lease', 'LeaseRevoke', { ID: '12345' }), grpc.status.NOT_FOUND, 'etcdserver: requested lease not found');
    const ttl = await c.call('etcdserverpb.Lease', 'LeaseTimeToLive', { ID: '12345' });
    expect(ttl.TTL).toBe('-1');
    await stillServes();
  });

  it('compacted and future revisions', async () => {
    const r1 = await c.call('etcdserverpb.KV', 'Put', { key: b('c'), value: b('1') });
    const rev = Number((r1.header as Wire).revision);
    await c.call('etcdserverpb.KV', 'Put', { key: b('c'), value: b('2') });
    await c.call('etcdserverpb.KV', 'Compact', { revision: String(rev + 1) });
    await fails(c.call('etcdserverpb.KV', 'Range', { key: b('c'), revision: String(rev) }), grpc.status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted');
    await fails(c.call('etcdserverpb.KV', 'Range', { key: b('c'), revision: String(rev + 1000) }), grpc.status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision');
    await fails(c.call('etcdserverpb.KV', 'Compact', { revision: String(rev) }), grpc.status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted');
    const at = await c.call('etcdserverpb.KV', 'Range', { key: b('c'), revision: String(rev + 1) });
    expect((at.kvs as Wire[]).map((kv) => String(kv.value))).toEqual(['2']);
    await stillServes();
  });

  it('garbage bytes on the client port and on the peer port', async () => {
    const garbage = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) & 0xff));
    const send = (hostPort: string, data: Buffer) =>
      new Promise<void>((resolve) => {
        const [host, port] = hostPort.split(':');
        const s = connect(Number(port), host!, () => s.end(data));
        s.on('error', () => resolve());
        s.on('close', () => resolve());
        s.setTimeout(3000, () => s.destroy());
      });
    for (const m of cluster.members) {
      await send(m.clientUrl.replace('http://', ''), garbage);
      await send(m.peerUrl.replace('http://', ''), garbage);
      await send(m.clientUrl.replace('http://', ''), Buffer.concat([b('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), garbage]));
    }
    await stillServes();
    for (const m of cluster.members) expect(m.proc?.exitCode ?? null).toBeNull();
  });
});
