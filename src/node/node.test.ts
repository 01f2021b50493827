import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { ConfState, Entry, NodeId } from '../raft/types.js';
import { DiskStorage, MemoryStorage, type Storage } from '../storage/storage.js';
import { MemoryNetwork } from '../transport/memory.js';
import { TcpTransport } from '../transport/tcp.js';
import { NotLeaderError, RaftNode, StoppedError, type StateMachine } from './node.js';

/** A replicated counter: each entry adds its number; apply returns the new total. */
class Counter implements StateMachine<number> {
  total = 0;
  apply(e: Entry): number {
    this.total += Number(new TextDecoder().decode(e.data));
    return this.total;
  }
  snapshot(): Uint8Array {
    return new TextEncoder().encode(String(this.total));
  }
  restore(data: Uint8Array): void {
    this.total = data.length ? Number(new TextDecoder().decode(data)) : 0;
  }
}

const conf: ConfState = { voters: [1, 2, 3], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false };
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const root = mkdtempSync(join(tmpdir(), 'flotilla-node-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

interface Member {
  node: RaftNode<number>;
  sm: Counter;
}
let running: RaftNode<number>[] = [];
afterEach(async () => {
  for (const n of running) await n.stop().catch(() => {});
  running = [];
});

async function startMember(net: MemoryNetwork, id: NodeId, storage: Storage): Promise<Member> {
  const sm = new Counter();
  const node = await RaftNode.start<number>({ id, storage, transport: net.endpoint(id), stateMachine: sm, tickMs: 5, electionTicks: 10, seed: id, snapshotEntries: 20, snapshotRetain: 2 });
  running.push(node);
  return { node, sm };
}

async function waitFor<T>(what: string, f: () => T | undefined, ms = 5000): Promise<T> {
  const start = Date.now();
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const leaderOf = (ms: Member[]): Member | undefined => ms.find((m) => m.node.isLeader);

describe('RaftNode', () => {
  it('elects a leader; a proposal resolves with the state machine result on every member', async () => {
    const net = new MemoryNetwork();
    const ms = await Promise.all([1, 2, 3].map((id) => startMember(net, id, new MemoryStorage(conf))));
    const leader = await waitFor('a leader', () => leaderOf(ms));
    expect(await leader.node.propose(enc('5'))).toBe(5);
    expect(await leader.node.propose(enc('7'))).toBe(12);
    await waitFor('followers to apply', () => (ms.every((m) => m.sm.total === 12) ? true : undefined));
  });

  it('leadership as events: true once the leader applied its term\'s first entry, false when it steps down', async () => {
    const net = new MemoryNetwork();
    const ms = await Promise.all([1, 2, 3].map((id) => startMember(net, id, new MemoryStorage(conf))));
    const events: string[] = [];
    for (const m of ms) m.node.onLeadershipChange((leading, term) => events.push(`${m.node.id} ${leading ? 'leads' : 'stops'} ${term}`));
    const leader = await waitFor('a leader', () => leaderOf(ms));
    await waitFor('its event', () => (events.length > 0 ? true : undefined));
    const term = leader.node.status().term;
    expect(events).toEqual([`${leader.node.id} leads ${term}`]);
    const target = ms.find((m) => m !== leader)!;
    leader.node.transferLeadership(target.node.id);
    await waitFor('the new leader\'s event', () => (events.length === 3 ? true : undefined));
    const term2 = target.node.status().term;
    expect(events).toEqual([`${leader.node.id} leads ${term}`, `${leader.node.id} stops ${term}`, `${target.node.id} leads ${term2}`]);
    // A listener added while leading is told at once; stopping ends the leadership.
    const late: boolean[] = [];
    target.node.onLeadershipChange((l) => late.push(l));
    expect(late).toEqual([true]);
    await target.node.stop();
    expect(late).toEqual([true, false]);
  });

  it('a follower refuses proposals naming the leader, and serves linearizable reads', async () => {
    const net = new MemoryNetwork();
    const ms = await Promise.all([1, 2, 3].map((id) => startMember(net, id, new MemoryStorage(conf))));
    const leader = await waitFor('a leader', () => leaderOf(ms));
    await leader.node.propose(enc('3'));
    const follower = ms.find((m) => m !== leader)!;
    await waitFor('the follower to know the leader', () => (follower.node.leader === leader.node.id ? true : undefined));
    const err = await follower.node.propose(enc('1')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotLeaderError);
    expect((err as NotLeaderError).leaderHint).toBe(leader.node.id);
    await leader.node.propose(enc('4'));
    // After the barrier the follower has applied the write acknowledged above.
    await follower.node.linearizableRead();
    expect(follower.sm.total).toBe(7);
  });

  it('survives the loss of the leader: the others elect a new one and keep committing', async () => {
    const net = new MemoryNetwork();
    const ms = await Promise.all([1, 2, 3].map((id) => startMember(net, id, new MemoryStorage(conf))));
    const first = await waitFor('a leader', () => leaderOf(ms));
    await first.node.propose(enc('1'));
    net.isolate(first.node.id, [1, 2, 3]);
    const rest = ms.filter((m) => m !== first);
    const second = await waitFor('a new leader', () => leaderOf(rest));
    expect(await second.node.propose(enc('10'))).toBe(11);
    net.heal();
    await waitFor('the old leader to catch up', () => (first.sm.total === 11 && !first.node.isLeader ? true : undefined));
  });

  it('a snapshot the state machine refuses stops the member, naming the snapshot (from the leader, or its own at start)', async () => {
    const net = new MemoryNetwork();
    net.isolate(3, [1, 2, 3]);
    const ms = await Promise.all([1, 2].map((id) => startMember(net, id, new MemoryStorage(conf))));
    const leader = await waitFor('a leader', () => leaderOf(ms));
    for (let i = 1; i <= 50; i++) await leader.node.propose(enc('1'));
    /** Refuses every image (as KvStateMachine refuses a garbage one). */
    class Refusing extends Counter {
      override restore(data: Uint8Array): void {
        if (data.length) throw new Error('the image is garbage');
      }
    }
    const storage3 = new MemoryStorage(conf);
    const node3 = await RaftNode.start<number>({ id: 3, storage: storage3, transport: net.endpoint(3), stateMachine: new Refusing(), tickMs: 5, electionTicks: 10, seed: 3 });
    running.push(node3);
    net.heal();
    // The leader's log was compacted past member 3's: it sends a snapshot.
    const err = await node3.fatal;
    expect(err.message).toMatch(/^restoring the leader's snapshot \(index \d+, term \d+\): the image is garbage$/);
    // At start, from its own storage (which saved the snapshot before the apply failed).
    const started = await RaftNode.start<number>({ id: 3, storage: storage3, transport: new MemoryNetwork().endpoint(3), stateMachine: new Refusing(), tickMs: 5 }).catch((e: unknown) => e);
    expect((started as Error).message).toMatch(/^restoring this member's snapshot \(index \d+, term \d+\): the image is garbage$/);
  });

  it('restarts from disk with its state, through snapshots', async () => {
    const net = new MemoryNetwork();
    const dirs = [1, 2, 3].map((id) => join(root, `m${id}-${Date.now()}`));
    let ms = await Promise.all([1, 2, 3].map(async (id) => startMember(net, id, await DiskStorage.open(dirs[id - 1]!, conf, { segmentBytes: 64 * 1024 }))));
    const leader = await waitFor('a leader', () => leaderOf(ms));
    let total = 0;
    for (let i = 1; i <= 50; i++) total = await leader.node.propose(enc('1'));
    expect(total).toBe(50);
    await waitFor('all to apply', () => (ms.every((m) => m.sm.total === 50) ? true : undefined));
    for (const m of ms) await m.node.stop();
    running = [];
    const net2 = new MemoryNetwork();
    ms = await Promise.all([1, 2, 3].map(async (id) => startMember(net2, id, await DiskStorage.open(dirs[id - 1]!, conf, { segmentBytes: 64 * 1024 }))));
    const again = await waitFor('a leader after restart', () => leaderOf(ms));
    expect(await again.node.propose(enc('1'))).toBe(51);
  });

  it('a storage failure stops the node: fatal resolves, it no longer leads, pending work fails, stop closes it', async () => {
    const net = new MemoryNetwork();
    const ms = await Promise.all([1, 2, 3].map((id) => startMember(net, id, new MemoryStorage(conf))));
    const leader = await waitFor('a leader', () => leaderOf(ms));
    await leader.node.propose(enc('1'));
    // The leader's disk fills: its next save fails as the WAL reports ENOSPC.
    const storage = (leader.node as unknown as { o: { storage: Storage } }).o.storage;
    let closed = false;
    storage.save = () => Promise.reject(Object.assign(new Error('WAL write failed: ENOSPC: no space left on device, write'), { code: 'ENOSPC' }));
    const close = storage.close.bind(storage);
    storage.close = async () => {
      closed = true;
      await close();
    };
    const pending = leader.node.propose(enc('2')).catch((e: unknown) => e);
    const err = await leader.node.fatal;
    expect(err.message).toContain('ENOSPC');
    expect(leader.node.failure).toBe(err);
    expect(leader.node.isLeader).toBe(false);
    expect(leader.node.leader).toBe(0);
    // Failed at once, not at stop(): a client must not wait for a member that cannot go on.
    expect(await pending).toBeInstanceOf(StoppedError);
    await expect(leader.node.propose(enc('3'))).rejects.toBeInstanceOf(StoppedError);
    await expect(leader.node.linearizableRead()).rejects.toBeInstanceOf(StoppedError);
    await expect(leader.node.stop()).rejects.toBe(err);
    expect(closed).toBe(true);
    running = running.filter((n) => n !== leader.node);
    // The other two go on without it.
    const rest = ms.filter((m) => m !== leader);
    const next = await waitFor('a new leader', () => leaderOf(rest), 10_000);
    expect(await next.node.propose(enc('10'))).toBeGreaterThanOrEqual(11);
  });

  it('fail(): a failure found outside the Ready loop (the state machine\'s own storage) stops the node as one in it does; the first is reported', async () => {
    const net = new MemoryNetwork();
    const ms = await Promise.all([1, 2, 3].map((id) => startMember(net, id, new MemoryStorage(conf))));
    const leader = await waitFor('a leader', () => leaderOf(ms));
    await leader.node.propose(enc('1'));
    // A proposal that cannot commit (the leader cut off) is pending when the failure comes.
    net.isolate(leader.node.id, [1, 2, 3]);
    const pending = leader.node.propose(enc('2')).catch((e: unknown) => e);
    const err = new Error('backend commit to /x/member/db failed: No space left on device (ENOSPC)');
    leader.node.fail(err);
    leader.node.fail(new Error('a second failure'));
    expect(await leader.node.fatal).toBe(err);
    expect(leader.node.failure).toBe(err);
    expect(leader.node.isLeader).toBe(false);
    expect(leader.node.leader).toBe(0);
    expect(await pending).toBeInstanceOf(StoppedError);
    await expect(leader.node.propose(enc('3'))).rejects.toBeInstanceOf(StoppedError);
    await expect(leader.node.stop()).rejects.toBe(err);
    running = running.filter((n) => n !== leader.node);
  });

  it('fails pending work with StoppedError on stop', async () => {
    const net = new MemoryNetwork();
    const m = await startMember(net, 1, new MemoryStorage({ ...conf, voters: [1, 2, 3] }));
    const read = m.node.linearizableRead().catch((e: unknown) => e);
    await m.node.stop();
    running = [];
    const e = await read;
    expect(e instanceof StoppedError || e instanceof NotLeaderError).toBe(true);
    await expect(m.node.propose(enc('1'))).rejects.toBeInstanceOf(StoppedError);
  });

  it('runs three members over real TCP with disk storage', async () => {
    const ts = await Promise.all([1, 2, 3].map((id) => TcpTransport.start({ id, clusterId: 'node-test' })));
    for (const t of ts) for (const u of ts) if (t !== u) t.setPeer([1, 2, 3][ts.indexOf(u)]!, { host: '127.0.0.1', port: u.port });
    const ms = await Promise.all(
      [1, 2, 3].map(async (id) => {
        const sm = new Counter();
        const storage = await DiskStorage.open(join(root, `tcp${id}-${Date.now()}`), conf, { segmentBytes: 64 * 1024 });
        const node = await RaftNode.start<number>({ id, storage, transport: ts[id - 1]!, stateMachine: sm, tickMs: 10, seed: id });
        running.push(node);
        return { node, sm };
      }),
    );
    const leader = await waitFor('a leader over TCP', () => leaderOf(ms));
    let total = 0;
    for (let i = 0; i < 20; i++) total = await leader.node.propose(enc('2'));
    expect(total).toBe(40);
    await waitFor('everyone to apply', () => (ms.every((m) => m.sm.total === 40) ? true : undefined));
    for (const t of ts) expect(t.stats.malformed + t.stats.refused).toBe(0);
  });
});
