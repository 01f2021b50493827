/**
 * Maintenance.Snapshot over real gRPC (an in-process member): a client that stops reading and
 * cancels mid-stream leaves no read view of the member's backend open (an LMDB read
 * transaction left open would keep its pages from ever being reused); a client that reads to
 * the end gets the store as it was when the call began, while puts go on.
 */
import type * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BoltReader, bufferSource } from '../src/kv/bbolt.js';
import type { BackendReadView } from '../src/kv/backend.js';
import { snapshotStatus } from '../src/kv/etcd-snapshot.js';
import { Deadline, waitUntil } from '../src/server/wait.js';
import { startInProcessCluster, type InProcessCluster } from './support/in-process.js';
import { rawClient, type RawClient } from './support/grpc.js';

/** 200 values of 40 KiB: an 8 MiB file, far more than gRPC and HTTP/2 buffer for a client that stops reading. */
const KEYS = 200;
const VALUE_BYTES = 40 * 1024;

describe('Maintenance.Snapshot over gRPC', () => {
  let cluster: InProcessCluster;
  let raw: RawClient;
  const views = { open: 0, opened: 0 };
  beforeAll(async () => {
    cluster = await startInProcessCluster({ size: 1 });
    raw = rawClient(cluster.endpoints[0]!);
    for (let i = 0; i < KEYS; i++) await raw.call('etcdserverpb.KV', 'Put', { key: Buffer.from(`k/${i}`), value: Buffer.alloc(VALUE_BYTES, i) });
    const backend = cluster.members[0]!.server.member.sm.backend;
    const readView = backend.readView.bind(backend);
    backend.readView = (): BackendReadView => {
      const v = readView();
      views.open++;
      views.opened++;
      let closed = false;
      return {
        entries: (after) => v.entries(after),
        close() {
          if (!closed) views.open--;
          closed = true;
          v.close();
        },
      };
    };
  });
  afterAll(async () => {
    raw?.close();
    await cluster?.stop();
  });

  const open = () => raw.client('etcdserverpb.Maintenance').Snapshot!({}) as grpc.ClientReadableStream<{ blob: Buffer; remaining_bytes: string }>;

  it('a client that stops reading and cancels: the member closes the read view', async () => {
    const stream = open();
    const got: number[] = [];
    stream.on('error', () => undefined);
    await new Promise<void>((resolve) =>
      stream.on('data', (m: { remaining_bytes: string }) => {
        got.push(Number(m.remaining_bytes));
        if (got.length === 1) {
          stream.pause();
          resolve();
        }
      }),
    );
    expect(got[0]).toBeGreaterThan(KEYS * VALUE_BYTES / 2);
    expect(views.open).toBe(1);
    stream.cancel();
    await waitUntil(() => views.open === 0, { deadline: Deadline.in(10_000), pollMs: 10 });
    expect(views.opened).toBe(1);
  });

  it('a client that reads to the end gets the store as at the call, while puts go on; the view is closed', async () => {
    const status = (await raw.call('etcdserverpb.Maintenance', 'Status', {})) as { header: { revision: string } };
    const revision = Number(status.header.revision);
    const stream = open();
    const blobs: Buffer[] = [];
    let puts = 0;
    await new Promise<void>((resolve, reject) => {
      stream.on('data', (m: { blob: Buffer }) => {
        blobs.push(m.blob);
        if (blobs.length !== 10) return;
        // Ten messages in: the client stops reading while 20 puts are applied, then goes on.
        stream.pause();
        void (async () => {
          for (; puts < 20; puts++) await raw.call('etcdserverpb.KV', 'Put', { key: Buffer.from(`during/${puts}`), value: Buffer.from('x') });
          stream.resume();
        })().catch(reject);
      });
      stream.on('end', resolve);
      stream.on('error', reject);
    });
    const file = Buffer.concat(blobs);
    const r = BoltReader.open(bufferSource(file.subarray(0, file.length - 32)));
    expect(snapshotStatus(r).revision).toBe(revision);
    expect(puts).toBe(20);
    await waitUntil(() => views.open === 0, { deadline: Deadline.in(10_000), pollMs: 10 });
    expect(views.opened).toBe(2);
  });
});
