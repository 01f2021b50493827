/**
 * The MVCC store over its backend: a crash keeps exactly the state of the last backend commit
 * (applied index with it, through KvStateMachine), a reopened store equals that state (index,
 * leases, change log), and a range with a limit reads only the values it returns.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { MemoryBackend } from './backend.js';
import { LmdbBackend } from './backend-lmdb.js';
import { encodeRequest, type Command } from './commands.js';
import { encodeMemberChange } from './membership.js';
import { MvccStore } from './mvcc.js';
import { KvStateMachine } from './state-machine.js';
import { RaftNode } from '../node/node.js';
import type { ConfState } from '../raft/types.js';
import { decodeSnapshot } from '../storage/snapshots.js';
import { DiskStorage } from '../storage/storage.js';
import { MemoryNetwork } from '../transport/memory.js';
import type { ApplyResult } from './commands.js';

const b = (s: string): Uint8Array => new TextEncoder().encode(s);
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

type Op = { t: 'put'; k: number; v: number; lease: boolean } | { t: 'del'; k: number } | { t: 'compact' } | { t: 'grant' } | { t: 'revoke' } | { t: 'commit' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ t: fc.constant('put' as const), k: fc.nat(7), v: fc.nat(9), lease: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('del' as const), k: fc.nat(7) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('compact' as const) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('grant' as const) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('revoke' as const) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('commit' as const) }) },
);

/** The ops as log commands (commit is not one: the test commits the backend there). */
function command(o: Op, leases: bigint[], sm: KvStateMachine): Command | null {
  switch (o.t) {
    case 'put':
      return { op: 'put', req: { key: b(`k${o.k}`), value: b(`v${o.v}`), ...(o.lease && leases.length ? { lease: leases.at(-1)! } : {}) } };
    case 'del':
      return { op: 'deleteRange', req: { key: b(`k${o.k}`) } };
    case 'compact':
      return { op: 'compact', revision: Math.max(1, sm.store.revision - 1) };
    case 'grant':
      leases.push(BigInt(leases.length + 1));
      return { op: 'leaseGrant', id: leases.at(-1)!, ttl: 10 };
    case 'revoke':
      return leases.length ? { op: 'leaseRevoke', id: leases.shift()! } : null;
    case 'commit':
      return null;
  }
}

describe('MvccStore over a backend', () => {
  it('property: after a crash the reopened state machine is exactly the state at the last commit (memory backend)', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => {
        const backend = new MemoryBackend({ durable: true, batchOpsMax: 1_000_000 });
        const sm = new KvStateMachine({}, backend);
        const leases: bigint[] = [];
        let committed = { image: sm.snapshot(), applied: 0, hash: sm.store.hashKv().hash };
        let index = 0;
        for (const o of ops) {
          if (o.t === 'commit') {
            backend.commit();
            committed = { image: sm.snapshot(), applied: sm.lastAppliedIndex(), hash: sm.store.hashKv().hash };
            continue;
          }
          const c = command(o, leases, sm);
          if (c) sm.apply({ index: ++index, term: 1, type: 'normal', data: encodeRequest({ id: 0n, command: c }) });
        }
        const again = new KvStateMachine({}, backend.reopen());
        expect(again.lastAppliedIndex()).toBe(committed.applied);
        expect(again.snapshot()).toEqual(committed.image);
        expect(again.store.hashKv().hash).toBe(committed.hash);
        // ...and the reopened store is the one a snapshot image restores (index, leases, change log).
        const viaImage = new KvStateMachine();
        viaImage.restore(committed.image, committed.applied);
        expect(again.store.changesSince(0)).toEqual(viaImage.store.changesSince(0));
        for (const id of viaImage.store.leaseIds()) expect(again.store.lease(id)).toEqual(viaImage.store.lease(id));
      }),
      { numRuns: 200 },
    );
  });

  it('LMDB: a closed and reopened store holds what the in-memory store holds after the same commands', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-mvcc-'));
    dirs.push(dir);
    const ops = fc.sample(fc.array(opArb, { minLength: 200, maxLength: 200 }), { numRuns: 1, seed: 7 })[0]!;
    const disk = new KvStateMachine({}, LmdbBackend.open(join(dir, 'db'), { batchIntervalMs: 0, batchOpsMax: 50 }));
    const mem = new KvStateMachine();
    const leases = [[], []] as bigint[][];
    let index = 0;
    for (const o of ops) {
      index++;
      for (const [i, sm] of [disk, mem].entries()) {
        const c = command(o, leases[i]!, sm);
        if (c) sm.apply({ index, term: 1, type: 'normal', data: encodeRequest({ id: 0n, command: c }) });
      }
    }
    await disk.backend.close();
    const reopened = new KvStateMachine({}, LmdbBackend.open(join(dir, 'db'), { batchIntervalMs: 0 }));
    expect(reopened.snapshot()).toEqual(mem.snapshot());
    expect(reopened.store.hashKv()).toEqual(mem.store.hashKv());
    await reopened.backend.close();
  });

  it('LMDB: compaction deletes old revisions and later writes reuse their space (the file stops growing); without it the file grows', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-mvcc-'));
    dirs.push(dir);
    const KEYS = 200;
    const ROUNDS = 12;
    const value = new Uint8Array(4096).fill(0x61);
    const run = async (compact: boolean): Promise<number[]> => {
      const sm = new KvStateMachine({}, LmdbBackend.open(join(dir, compact ? 'compacted' : 'kept', 'db'), { batchIntervalMs: 0, batchOpsMax: 50 }));
      let index = 0;
      const apply = (c: Command) => sm.apply({ index: ++index, term: 1, type: 'normal', data: encodeRequest({ id: 0n, command: c }) });
      const sizes: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        for (let k = 0; k < KEYS; k++) apply({ op: 'put', req: { key: b(`k${k}`), value: value.map((x, i) => (i === 0 ? r : x)) } });
        if (compact) apply({ op: 'compact', revision: sm.store.revision });
        sm.persistTo(index);
        sizes.push(sm.backend.dbSizeBytes());
      }
      await sm.backend.close();
      return sizes;
    };
    const compacted = await run(true);
    const kept = await run(false);
    // Every round overwrites KEYS values of 4 KiB (about 0.8 MiB more history each round).
    expect(kept.at(-1)!, `without compaction: ${kept.join(' ')}`).toBeGreaterThan(kept[1]! * 3);
    // With it the file holds about two rounds' worth (the round being written and the one
    // compacted away, whose pages the next round reuses).
    expect(compacted.at(-1)!, `with compaction: ${compacted.join(' ')}`).toBeLessThanOrEqual(compacted[2]! * 1.25);
  });

  it('takeOver: a store over the backend that adopted another is the one opening it gives (leases, history, key count), made without a scan', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-mvcc-'));
    dirs.push(dir);
    const ops = fc.sample(fc.array(opArb, { minLength: 300, maxLength: 300 }), { numRuns: 1, seed: 11 })[0]!;
    const staged = LmdbBackend.open(join(dir, 'staged', 'db'), { batchIntervalMs: 0, batchOpsMax: 40 });
    const writer = new KvStateMachine({}, staged);
    const leases: bigint[] = [];
    let index = 0;
    for (const o of ops) {
      const c = command(o, leases, writer);
      if (c) writer.apply({ index: ++index, term: 1, type: 'normal', data: encodeRequest({ id: 0n, command: c }) });
    }
    staged.commit();
    const probe = new KvStateMachine({}, staged); // as installStreamed checks a received store
    const target = LmdbBackend.open(join(dir, 'member', 'db'), { batchIntervalMs: 0 });
    target.adopt(staged);
    const scan = vi.spyOn(target, 'scan');
    const taken = MvccStore.takeOver(probe.store, {}, target);
    expect(scan).not.toHaveBeenCalled();
    scan.mockRestore();
    const rebuilt = new MvccStore({}, target);
    expect(taken.revision).toBe(writer.store.revision);
    expect(taken.compactRevision).toBe(rebuilt.compactRevision);
    expect(taken.hashKv()).toEqual(rebuilt.hashKv());
    expect(taken.changesSince(0)).toEqual(rebuilt.changesSince(0));
    expect(taken.leaseIds()).toEqual(rebuilt.leaseIds());
    for (const id of rebuilt.leaseIds()) expect(taken.lease(id)).toEqual(rebuilt.lease(id));
    expect(taken.keyCount).toBe(rebuilt.keyCount);
    expect(taken.keyCount).toBeGreaterThan(0);
    await target.close();
  });

  it('a range with a limit reads only the values it returns; a count reads none', () => {
    let gets = 0;
    const backend = new MemoryBackend();
    const get = backend.get.bind(backend);
    backend.get = (k) => (gets++, get(k));
    const m = new MvccStore({}, backend);
    for (let i = 0; i < 1000; i++) m.put({ key: b(`k${String(i).padStart(4, '0')}`), value: b('x'.repeat(100)) });
    for (let i = 0; i < 1000; i += 2) m.put({ key: b(`k${String(i).padStart(4, '0')}`), value: b('y') });
    gets = 0;
    const r = m.range({ key: b('k'), rangeEnd: b('l'), limit: 10 });
    expect(r.kvs).toHaveLength(10);
    expect(r.count).toBe(1000);
    expect(r.more).toBe(true);
    expect(gets).toBe(10);
    gets = 0;
    expect(m.range({ key: b('k'), rangeEnd: b('l'), countOnly: true }).count).toBe(1000);
    expect(m.range({ key: b('k'), rangeEnd: b('l'), limit: 5, sortOrder: 'descend', sortTarget: 'mod' }).kvs.map((kv) => kv.modRevision)).toEqual([1501, 1500, 1499, 1498, 1497]);
    expect(gets).toBe(5);
  });
});

describe('RaftNode with a state machine on a durable backend', () => {
  const one: ConfState = { voters: [1], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false };

  async function start(dir: string, backend: MemoryBackend): Promise<{ node: RaftNode<ApplyResult>; sm: KvStateMachine; applied: number[] }> {
    const sm = new KvStateMachine({}, backend);
    const applied: number[] = [];
    sm.onApplied((_id, index) => applied.push(index));
    const net = new MemoryNetwork();
    const node = await RaftNode.start<ApplyResult>({ id: 1, storage: await DiskStorage.open(dir, one), transport: net.endpoint(1), stateMachine: sm, tickMs: 5, electionTicks: 10, seed: 1, snapshotEntries: 25, snapshotRetain: 5 });
    for (let i = 0; i < 400 && !node.isLeader; i++) await new Promise((r) => setTimeout(r, 5));
    expect(node.isLeader).toBe(true);
    return { node, sm, applied };
  }

  it('resumes at the applied index its backend committed: replays only later entries; snapshots are markers that release the WAL', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-node-backend-'));
    dirs.push(dir);
    const backend = new MemoryBackend({ durable: true, batchOpsMax: 1_000_000 });
    const first = await start(dir, backend);
    const put = (i: number) => first.node.propose(encodeRequest({ id: 0n, command: { op: 'put', req: { key: b(`k${i}`), value: b(`v${i}`) } } }));
    for (let i = 0; i < 60; i++) await put(i);
    // Snapshots were taken (every 25 entries) through a backend commit each: the store is
    // durable at least up to the last one, and the snapshot files hold no image.
    const snapDir = join(dir, 'snap');
    const files = readdirSync(snapDir).filter((f) => f.endsWith('.snap'));
    expect(files.length).toBeGreaterThan(0);
    const newest = decodeSnapshot(readFileSync(join(snapDir, files.sort().at(-1)!)), 'snap');
    expect(JSON.parse(new TextDecoder().decode(newest.data))).toEqual({ v: 'stored', applied: newest.meta.index });
    for (let i = 60; i < 70; i++) await put(i);
    const last = first.node.appliedIndex;
    const hash = first.sm.store.hashKv().hash;
    // A crash: the backend keeps its last commit (the writes since are lost), the WAL everything.
    await first.node.stop();
    const backend2 = backend.reopen();
    const durable = new KvStateMachine({}, backend2).lastAppliedIndex();
    expect(durable).toBeGreaterThanOrEqual(newest.meta.index);
    expect(durable).toBeLessThan(last);
    const restarted = await start(dir, backend2);
    for (let i = 0; i < 400 && restarted.node.appliedIndex < last; i++) await new Promise((r) => setTimeout(r, 5));
    expect(Math.min(...restarted.applied)).toBe(durable + 1);
    expect(restarted.sm.store.hashKv().hash).toBe(hash);
    await restarted.node.stop();
  });

  it('a marker snapshot cannot be restored into a store behind it: the member says its store was lost', () => {
    const sm = new KvStateMachine();
    expect(() => sm.restore(b(JSON.stringify({ v: 'stored', applied: 9 })), 9)).toThrow(/kept in the store's own backend, which holds only up to index 0: was the backend file lost\?/);
  });
});

describe('the state beside the key space survives a restart from the backend', () => {
  it('member table, auth, alarms, lease checkpoints and published members come back from the backend alone (no log replay)', () => {
    const backend = new MemoryBackend();
    const boot = [{ raftId: 1, id: 11n, peerUrls: ['http://127.0.0.1:2380'] }];
    const sm = new KvStateMachine({ bootstrapMembers: boot }, backend);
    let i = 0;
    const run = (c: Command): ApplyResult => sm.apply({ index: ++i, term: 1, type: 'normal', data: encodeRequest({ id: 0n, command: c }) });
    expect(run({ op: 'leaseGrant', id: 5n, ttl: 100 }).ok).toBe(true);
    expect(run({ op: 'leaseCheckpoint', checkpoints: [{ id: 5n, remainingMs: 42_000 }] }).ok).toBe(true);
    expect(run({ op: 'alarm', action: 'activate', member: { memberId: 7n, alarm: 'NOSPACE' } }).ok).toBe(true);
    expect(run({ op: 'roleAdd', name: 'reader' }).ok).toBe(true);
    expect(run({ op: 'publish', member: { id: 11n, name: 'n1', clientUrls: ['http://127.0.0.1:2379'] } }).ok).toBe(true);
    sm.applyConfChange({ changes: [{ kind: 'addLearner', nodeId: 2 }], context: encodeMemberChange({ op: 'add', raftId: 2, id: 22n, peerUrls: ['http://127.0.0.1:2390'], isLearner: true }) }, ++i);
    sm.persistTo(i);
    const committed = sm.snapshot();
    // Written after the last commit: lost in the crash.
    expect(run({ op: 'alarm', action: 'activate', member: { memberId: 8n, alarm: 'CORRUPT' } }).ok).toBe(true);
    backend.crash();
    const again = new KvStateMachine({ bootstrapMembers: boot }, backend.reopen());
    expect(again.lastAppliedIndex()).toBe(i - 1);
    expect(again.snapshot()).toEqual(committed);
    expect(again.alarms()).toEqual([{ memberId: 7n, alarm: 'NOSPACE' }]);
    expect(again.leaseRemainingMs(5n)).toBe(42_000);
    expect(again.auth.image()).toEqual(sm.auth.image());
    expect(again.cluster.toImage()).toEqual(sm.cluster.toImage());
    expect(again.cluster.list().map((m) => m.raftId)).toEqual([1, 2]);
    expect([...again.members.values()]).toEqual([...sm.members.values()]);
  });
});
