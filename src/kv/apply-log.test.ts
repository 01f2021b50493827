/**
 * Apply is total, through a real Raft log: three RaftNodes (memory network, disk storage in a
 * temp dir) apply KvStateMachine; random bytes, truncated and mutated encodings and
 * well-formed-but-invalid commands are proposed straight into the log between valid writes.
 * Every proposal resolves with a result (nothing stops), the members keep serving and hold the
 * same HashKV, and after a restart from their files (WAL replay and snapshots) they still do.
 */
import fc from 'fast-check';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { NotLeaderError, ProposalDroppedError, RaftNode } from '../node/node.js';
import type { ConfState, NodeId } from '../raft/types.js';
import { DiskStorage } from '../storage/storage.js';
import { MemoryNetwork } from '../transport/memory.js';
import { encodeCommand, encodeRequest, type ApplyResult, type Command } from './commands.js';
import { TXN_NESTING_MAX, type TxnRequest } from './mvcc.js';
import { KvStateMachine } from './state-machine.js';

const conf: ConfState = { voters: [1, 2, 3], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false };
const root = mkdtempSync(join(tmpdir(), 'flotilla-apply-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

interface Member {
  node: RaftNode<ApplyResult>;
  sm: KvStateMachine;
}
let running: RaftNode<ApplyResult>[] = [];
afterEach(async () => {
  for (const n of running) await n.stop().catch(() => {});
  running = [];
});

async function startMember(net: MemoryNetwork, id: NodeId, dir: string): Promise<Member> {
  const sm = new KvStateMachine();
  const storage = await DiskStorage.open(dir, conf, { segmentBytes: 256 * 1024 });
  const node = await RaftNode.start<ApplyResult>({ id, storage, transport: net.endpoint(id), stateMachine: sm, tickMs: 5, electionTicks: 10, seed: id, snapshotEntries: 50, snapshotRetain: 2 });
  running.push(node);
  return { node, sm };
}

async function waitFor<T>(what: string, f: () => T | undefined, ms = 10_000): Promise<T> {
  const start = Date.now();
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const b = (s: string) => new Uint8Array(Buffer.from(s));

function nested(depth: number): TxnRequest {
  let t: TxnRequest = { compare: [], success: [{ put: { key: b('deep') } }], failure: [] };
  for (let i = 0; i < depth; i++) t = { compare: [], success: [{ txn: t }], failure: [] };
  return t;
}

/** Commands that decode but that the store refuses (or takes in an odd corner), as etcd would. */
const invalid: Command[] = [
  { op: 'put', req: { key: new Uint8Array(0) } },
  { op: 'put', req: { key: b('k'), lease: 12345n } },
  { op: 'put', req: { key: b('nokey'), ignoreValue: true } },
  { op: 'put', req: { key: b('k'), value: b('v'), ignoreValue: true } },
  { op: 'deleteRange', req: { key: new Uint8Array(0) } },
  { op: 'deleteRange', req: { key: b('z'), rangeEnd: b('a') } },
  { op: 'deleteRange', req: { key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]), prevKv: true } },
  { op: 'txn', req: { compare: [{ key: new Uint8Array(0), result: 'equal', target: 'version', value: 0 }], success: [], failure: [] } },
  { op: 'txn', req: { compare: [], success: [{ put: { key: b('d') } }, { put: { key: b('d') } }], failure: [] } },
  { op: 'txn', req: { compare: [], success: [{ deleteRange: { key: b('a'), rangeEnd: b('z') } }, { txn: { compare: [], success: [{ put: { key: b('m') } }], failure: [] } }], failure: [] } },
  { op: 'txn', req: { compare: [], success: [{ range: { key: b('a'), revision: Number.MAX_SAFE_INTEGER } }], failure: [] } },
  { op: 'txn', req: { compare: [], success: [{ range: { key: b('a'), limit: Number.MAX_SAFE_INTEGER, rangeEnd: new Uint8Array([0]), maxModRevision: -1 } }], failure: [] } },
  { op: 'txn', req: nested(TXN_NESTING_MAX) },
  { op: 'txn', req: { compare: [], success: Array.from({ length: 129 }, (_, i) => ({ put: { key: b(`t${i}`) } })), failure: [] } },
  { op: 'compact', revision: Number.MAX_SAFE_INTEGER },
  { op: 'compact', revision: -5 },
  { op: 'compact', revision: 0 },
  { op: 'leaseGrant', id: 1n, ttl: 0 },
  { op: 'leaseGrant', id: 1n, ttl: 5 },
  { op: 'leaseRevoke', id: 0n },
  { op: 'leaseRevoke', id: -(2n ** 63n) },
  { op: 'publish', member: { id: 2n ** 64n - 1n, name: '', clientUrls: [] } },
];

describe('apply is total through the Raft log', () => {
  it('random, truncated, mutated and invalid entries: every member keeps applying and serving, with equal HashKV, also after a restart', async () => {
    const net = new MemoryNetwork();
    const dirs = [1, 2, 3].map((id) => join(root, `m${id}`));
    let ms = await Promise.all([1, 2, 3].map((id) => startMember(net, id, dirs[id - 1]!)));
    let leader = await waitFor('a leader', () => ms.find((m) => m.node.isLeader));

    // Inputs from a fixed seed: the run replays exactly.
    const valid = (i: number): Command => ({ op: 'put', req: { key: b(`k${i % 7}`), value: b(`v${i}`), lease: i % 5 === 0 ? 1n : 0n } });
    const randomBytes = fc.sample(fc.uint8Array({ minLength: 1, maxLength: 120 }), { seed: 10, numRuns: 150 });
    const mutations = fc.sample(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat()), { seed: 11, numRuns: 150 });
    const inputs: Uint8Array[] = [];
    for (let i = 0; i < 150; i++) {
      inputs.push(encodeCommand(valid(i)));
      inputs.push(randomBytes[i]!);
      const good = encodeRequest({ id: BigInt(i + 1), command: i % 2 ? valid(i) : invalid[i % invalid.length]! });
      const [at, byte, cut] = mutations[i]!;
      const mutated = Uint8Array.from(good);
      mutated[at % mutated.length] = byte;
      inputs.push(mutated);
      inputs.push(good.slice(0, 1 + (cut % (good.length - 1))));
      inputs.push(encodeRequest({ id: BigInt(i + 1), command: invalid[i % invalid.length]! }));
    }
    const outcomes = { ok: 0, refused: 0 };
    for (const data of inputs) {
      // A leader change under load drops or refuses a proposal that surely did not apply: propose it again to the new leader.
      for (;;) {
        try {
          const r = await leader.node.propose(data);
          if (r.ok) outcomes.ok++;
          else outcomes.refused++;
          break;
        } catch (e) {
          if (!(e instanceof NotLeaderError || e instanceof ProposalDroppedError)) throw e;
          leader = await waitFor('a leader', () => ms.find((m) => m.node.isLeader));
        }
      }
    }
    expect(outcomes.ok).toBeGreaterThan(150);
    expect(outcomes.refused).toBeGreaterThan(300);

    const serves = async (ms: Member[]) => {
      for (const m of ms) expect(m.node.failure).toBeNull();
      const l = await waitFor('a leader', () => ms.find((m) => m.node.isLeader));
      const r = await l.node.propose(encodeCommand({ op: 'put', req: { key: b('alive'), value: b('yes') } }));
      expect(r.ok).toBe(true);
      for (const m of ms) {
        await m.node.linearizableRead().catch(async () => {
          // A follower's read can race a leader change; one retry after the leader settles.
          await waitFor('a leader', () => ms.find((x) => x.node.isLeader));
          await m.node.linearizableRead();
        });
        expect(m.sm.store.range({ key: b('alive') }).kvs.map((kv) => Buffer.from(kv.value).toString())).toEqual(['yes']);
      }
      const index = Math.max(...ms.map((m) => m.node.appliedIndex));
      await waitFor('every member to apply everything', () => (ms.every((m) => m.node.appliedIndex === index) ? true : undefined));
      const hashes = ms.map((m) => m.sm.store.hashKv(0));
      expect(new Set(hashes.map((h) => `${h.hash}/${h.revision}/${h.compactRevision}`)).size).toBe(1);
      return hashes[0]!;
    };
    const before = await serves(ms);
    expect(before.revision).toBeGreaterThan(150);

    // Restart every member from its files: the WAL (and snapshots) replay the same entries.
    for (const m of ms) await m.node.stop();
    running = [];
    const net2 = new MemoryNetwork();
    ms = await Promise.all([1, 2, 3].map((id) => startMember(net2, id, dirs[id - 1]!)));
    leader = await waitFor('a leader after restart', () => ms.find((m) => m.node.isLeader));
    const after = await serves(ms);
    expect(after.revision).toBe(before.revision + 1);
  });
});
