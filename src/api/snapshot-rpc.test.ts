/**
 * Maintenance.Snapshot's handler against a state machine on LMDB, through a stand-in for the
 * gRPC call (a writable whose write() says when to wait for 'drain'): the file comes from the
 * one read view opened when the call starts, whatever is written, compacted, defragmented or
 * installed while the stream waits on a slow client; the view is closed when the stream ends, fails or
 * is cancelled (an LMDB read transaction left open keeps its pages from ever being reused).
 */
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BoltReader, bufferSource } from '../kv/bbolt.js';
import type { BackendReadView } from '../kv/backend.js';
import { LmdbBackend } from '../kv/backend-lmdb.js';
import { importEtcdSnapshot, snapshotStatus } from '../kv/etcd-snapshot.js';
import { metaKey, MvccStore, u64Of } from '../kv/mvcc.js';
import { KvStateMachine } from '../kv/state-machine.js';
import type { EtcdMember } from '../server/member.js';
import { Deadline, waitUntil } from '../server/wait.js';
import type { Wire } from './convert.js';
import { buildHandlers, SNAPSHOT_CHUNK_BYTES } from './services.js';

const enc = new TextEncoder();
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const WAIT = { deadline: Deadline.in(20_000), pollMs: 5 };
const within = () => ({ ...WAIT, deadline: Deadline.in(20_000) });

/** A server stream as the handler uses it: write() answers `ready` (false: wait for 'drain'). */
class FakeCall extends EventEmitter {
  readonly sent: Wire[] = [];
  ended = false;
  error: unknown = null;
  ready = true;
  /** As grpc-js's: set once the client cancelled. */
  cancelled = false;
  constructor() {
    super();
    this.on('error', (e: unknown) => (this.error = e));
  }
  write(msg: Wire): boolean {
    this.sent.push(msg);
    return this.ready;
  }
  end(): void {
    this.ended = true;
  }
  file(): Buffer {
    return Buffer.concat(this.sent.map((m) => m.blob as Uint8Array));
  }
}

/** A state machine on LMDB with ~400 KiB of revisions (a dozen messages), its read views counted. */
function setup(opts: { failPass?: number; slowEntryMs?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-snaprpc-'));
  dirs.push(dir);
  const backend = LmdbBackend.open(join(dir, 'db'), { batchIntervalMs: 0 });
  const sm = new KvStateMachine({}, backend);
  const s = sm.store;
  s.grantLease(5n, 100);
  for (let i = 0; i < 300; i++) s.put({ key: enc.encode(`key/${i % 120}`), value: new Uint8Array(1024).fill(i & 255), ...(i % 7 === 0 ? { lease: 5n } : {}) });
  s.txn({ compare: [], success: [{ put: { key: enc.encode('a'), value: enc.encode('1') } }, { deleteRange: { key: enc.encode('key/3') } }], failure: [] });
  s.compact(100);
  const views = { open: 0, opened: 0 };
  const readView = backend.readView.bind(backend);
  backend.readView = (): BackendReadView => {
    const v = readView();
    views.open++;
    views.opened++;
    let closed = false;
    let passes = 0;
    return {
      entries(after) {
        // A failing disk: the view's n-th scan of the revisions throws part way.
        if (opts.failPass !== undefined && after !== undefined && after[0] === 0x71 && ++passes === opts.failPass) {
          return (function* () {
            yield* [...v.entries(after)].slice(0, 50);
            throw new Error('MDB_CORRUPTED: the view cannot be read');
          })();
        }
        const slow = opts.slowEntryMs;
        if (slow === undefined) return v.entries(after);
        // A slow disk: each entry takes `slow` ms of the event loop.
        return (function* () {
          for (const e of v.entries(after)) {
            const until = performance.now() + slow;
            while (performance.now() < until);
            yield e;
          }
        })();
      },
      close() {
        if (!closed) views.open--;
        closed = true;
        v.close();
      },
    };
  };
  const m = {
    sm,
    config: { maxRequestBytes: 1 << 20 },
    header: (revision: number = sm.store.revision) => ({ cluster_id: '1', member_id: '2', revision: String(revision), raft_term: '3' }),
    members: () => [{ id: 2n, name: 'm', peerUrls: ['http://127.0.0.1:1'], clientUrls: [], isLearner: false }],
  } as unknown as EtcdMember;
  const handlers = buildHandlers(m, { requestBytes: () => 0 }) as unknown as Record<string, Record<string, (call: FakeCall) => void>>;
  const snapshot = (call: FakeCall) => handlers['etcdserverpb.Maintenance']!.Snapshot!(call);
  return { dir, backend, sm, views, snapshot };
}

/** The file a finished call streamed (its SHA-256 trailer checked by the import's caller in etcdctl; here its size and remaining_bytes). */
function fileOf(call: FakeCall): Buffer {
  const file = call.file();
  expect(call.sent.at(-1)!.remaining_bytes).toBe('0');
  expect(Number(call.sent[0]!.remaining_bytes) + (call.sent[0]!.blob as Uint8Array).length).toBe(file.length);
  return file;
}

describe('Maintenance.Snapshot from a read view', () => {
  it('writes, a compaction, a defragmentation and an installed snapshot while a slow client drains the stream do not change the file; the view is closed at the end', async () => {
    const { dir, backend, sm, views, snapshot } = setup();
    const fast = new FakeCall();
    snapshot(fast);
    await waitUntil(() => fast.ended || fast.error !== null, within());
    expect(fast.error).toBeNull();
    const want = fileOf(fast);
    expect(want.length).toBeGreaterThan(8 * SNAPSHOT_CHUNK_BYTES);
    const revision = sm.store.revision;

    const slow = new FakeCall();
    slow.ready = false;
    snapshot(slow);
    let round = 0;
    while (!slow.ended) {
      await waitUntil(() => slow.ended || slow.error !== null || slow.listenerCount('drain') > 0, within());
      expect(slow.error).toBeNull();
      if (slow.ended) break;
      expect(views.open).toBe(1);
      // Between messages: more revisions, a compaction that deletes some the view still reads,
      // a revoked lease, a defragmentation (a new database file under the backend), then a
      // snapshot installed (another store's file renamed over the backend's: Backend.adopt,
      // as KvStateMachine.restore does it; the state machine is not written after that).
      if (round < 4) {
        for (let i = 0; i < 40; i++) sm.store.put({ key: enc.encode(`key/${(round * 40 + i) % 150}`), value: enc.encode(`round ${round}`) });
        if (round === 1) sm.store.compact(sm.store.revision - 5);
        if (round === 2) sm.store.revokeLease(5n);
        backend.commit();
        if (round === 3) await backend.defragment();
      } else if (round === 4) {
        const staged = LmdbBackend.open(join(dir, 'staged'), { batchIntervalMs: 0 });
        new MvccStore({}, staged).put({ key: enc.encode('other'), value: enc.encode('store') });
        staged.commit();
        backend.adopt(staged);
        // The backend now holds the other store (at revision 2).
        expect(u64Of(backend.get(metaKey('rev')))).toBe(2);
      }
      round++;
      slow.emit('drain');
    }
    expect(round).toBeGreaterThan(5);
    expect(slow.error).toBeNull();
    const got = fileOf(slow);
    expect(got.equals(want)).toBe(true);
    expect(views).toEqual({ open: 0, opened: 2 });
    // The file is the store as it was when the call began.
    const r = BoltReader.open(bufferSource(got.subarray(0, got.length - 32)));
    expect(snapshotStatus(r).revision).toBe(revision);
    expect(importEtcdSnapshot(r).leases).toBe(1);
    expect(sm.store.revision).toBeGreaterThan(revision);
    await backend.close();
  });

  it('a layout longer than a slice yields to the event loop between slices; what is applied meanwhile is not in the file', async () => {
    const { backend, sm, views, snapshot } = setup({ slowEntryMs: 0.2 });
    const first = new FakeCall();
    snapshot(first);
    await waitUntil(() => first.ended || first.error !== null, within());
    const want = fileOf(first);
    const call = new FakeCall();
    snapshot(call);
    // Event-loop turns before the first message: each one a write committed to the backend.
    let turns = 0;
    const tick = (): void => {
      if (call.sent.length > 0 || call.error !== null) return;
      turns++;
      sm.store.put({ key: enc.encode(`during/${turns}`), value: enc.encode('layout') });
      backend.commit();
      setImmediate(tick);
    };
    setImmediate(tick);
    await waitUntil(() => call.ended || call.error !== null, within());
    expect(call.error).toBeNull();
    // ~300 revisions at 0.2 ms each: 60 ms of layout at least, so several SNAPSHOT_SLICE_MS slices.
    expect(turns).toBeGreaterThan(2);
    expect(fileOf(call).equals(want)).toBe(true);
    expect(views).toEqual({ open: 0, opened: 2 });
    await backend.close();
  });

  it('a client that cancels mid-stream: the view is closed and no more pages are made', async () => {
    const { backend, views, snapshot } = setup();
    const call = new FakeCall();
    call.ready = false;
    snapshot(call);
    await waitUntil(() => call.listenerCount('drain') > 0, within());
    expect(views.open).toBe(1);
    const sent = call.sent.length;
    call.emit('cancelled');
    expect(views).toEqual({ open: 0, opened: 1 });
    call.emit('drain');
    await new Promise((r) => setImmediate(r));
    expect([call.sent.length, call.ended, call.error]).toEqual([sent, false, null]);
    await backend.close();
  });

  it('a call cancelled before the handler ran (while its identity was checked) opens no view', async () => {
    const { backend, views, snapshot } = setup();
    const call = new FakeCall();
    call.cancelled = true;
    snapshot(call);
    // The handler runs after the identity check (a promise): a call that is answered meanwhile shows it ran.
    const probe = new FakeCall();
    snapshot(probe);
    await waitUntil(() => probe.ended, within());
    expect([call.sent.length, call.ended, views.opened]).toEqual([0, false, 1]);
    await backend.close();
  });

  it('a view that fails to read mid-stream ends the call with an error, not the process; the view is closed', async () => {
    // The second scan of the revisions (the pages', after the layout's) fails.
    const { backend, views, snapshot } = setup({ failPass: 2 });
    const call = new FakeCall();
    snapshot(call);
    await waitUntil(() => call.error !== null || call.ended, within());
    expect(call.ended).toBe(false);
    expect(String((call.error as { details?: string }).details ?? call.error)).toMatch(/MDB_CORRUPTED/);
    expect(views).toEqual({ open: 0, opened: 1 });
    await backend.close();
  });
});
