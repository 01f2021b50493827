/**
 * Benchmark: entries committed per second by three in-memory Raft cores in one process.
 * Storage is an in-memory log (the Ready contract is followed: persist, send, apply, advance);
 * messages are delivered in order with no loss. What is measured is the core's own cost.
 */
import { rng } from '../lib/prng.js';
import type { Message } from '../raft/messages.js';
import { RaftCore } from '../raft/raft.js';
import { emptyConfState, freshDisk, persistReady, type Disk } from '../raft/testing/cluster.js';

export type ProposalMode = 'sequential' | 'pipelined' | 'batched';

export interface BenchCase {
  readonly entryBytes: number;
  readonly mode: ProposalMode;
  /** Entries per proposeBatch call (batched) or propose calls per driver turn (pipelined). */
  readonly perTurn: number;
  readonly entries: number;
}

export interface BenchResult extends BenchCase {
  readonly seconds: number;
  readonly entriesPerSec: number;
  readonly mbPerSec: number;
}

interface Member {
  core: RaftCore;
  disk: Disk;
  applied: number;
}

function makeCluster(): Map<number, Member> {
  const ids = [1, 2, 3];
  const root = rng(1);
  const members = new Map<number, Member>();
  for (const id of ids) {
    const disk = freshDisk(emptyConfState(ids));
    const core = new RaftCore(
      { id, electionTicks: 10, heartbeatTicks: 1, rng: root.fork(), inflightMsgsMax: 256, uncommittedBytesMax: 1 << 30 },
      { hardState: disk.hardState, snapshot: disk.snapshot, entries: [] },
    );
    members.set(id, { core, disk, applied: 0 });
  }
  return members;
}

/** One driver turn: every member handles its Ready, then all queued messages are delivered. */
function turn(members: Map<number, Member>, queue: Message[]): boolean {
  let moved = false;
  for (const m of members.values()) {
    while (m.core.hasReady()) {
      const rd = m.core.ready();
      persistReady(m.disk, rd);
      for (const msg of rd.messages) queue.push(msg);
      m.applied += rd.committedEntries.length;
      m.core.advance(rd);
      moved = true;
    }
    // Keep the in-memory "disk" bounded: the benchmark measures the core, not array growth.
    if (m.disk.entries.length > 100_000) m.disk.entries = m.disk.entries.slice(-1000);
  }
  if (queue.length > 0) {
    const batch = queue.splice(0, queue.length);
    for (const msg of batch) members.get(msg.to)!.core.step(msg);
    moved = true;
  }
  return moved;
}

export function runCase(c: BenchCase): BenchResult {
  const members = makeCluster();
  const queue: Message[] = [];
  const leader = members.get(1)!;
  leader.core.campaign();
  while (turn(members, queue));
  const payload = new Uint8Array(c.entryBytes).fill(7);
  const base = leader.applied;
  const target = base + c.entries;
  let proposed = 0;
  const batch: Uint8Array[] = new Array<Uint8Array>(c.perTurn).fill(payload);
  const t0 = performance.now();
  while (leader.applied < target) {
    if (c.mode === 'sequential') {
      // One proposal, then run the cluster until it is applied at the leader.
      if (proposed < c.entries) {
        const r = leader.core.propose(payload);
        if (!r.ok) throw new Error(`proposal refused: ${r.detail}`);
        proposed++;
      }
      const want = base + proposed;
      while (leader.applied < want) turn(members, queue);
      continue;
    }
    const n = Math.min(c.perTurn, c.entries - proposed);
    if (n > 0) {
      if (c.mode === 'batched') {
        const r = leader.core.proposeBatch(n === c.perTurn ? batch : batch.slice(0, n));
        if (!r.ok) throw new Error(`proposal refused: ${r.detail}`);
      } else {
        for (let i = 0; i < n; i++) {
          const r = leader.core.propose(payload);
          if (!r.ok) throw new Error(`proposal refused: ${r.detail}`);
        }
      }
      proposed += n;
    }
    turn(members, queue);
  }
  const seconds = (performance.now() - t0) / 1000;
  // Every member must have applied everything: the benchmark checks it measured real replication.
  while (turn(members, queue));
  for (const [id, m] of members) {
    if (m.applied < target) {
      for (let i = 0; i < 3; i++) for (const mm of members.values()) mm.core.tick();
      while (turn(members, queue));
      if (m.applied < target) throw new Error(`member ${id} applied ${m.applied} < ${target}`);
    }
  }
  const entriesPerSec = c.entries / seconds;
  return { ...c, seconds, entriesPerSec, mbPerSec: (entriesPerSec * c.entryBytes) / (1 << 20) };
}

export const defaultCases: BenchCase[] = [
  { entryBytes: 64, mode: 'sequential', perTurn: 1, entries: 20_000 },
  { entryBytes: 1024, mode: 'sequential', perTurn: 1, entries: 20_000 },
  { entryBytes: 64, mode: 'pipelined', perTurn: 256, entries: 300_000 },
  { entryBytes: 1024, mode: 'pipelined', perTurn: 256, entries: 300_000 },
  { entryBytes: 64, mode: 'batched', perTurn: 1024, entries: 1_000_000 },
  { entryBytes: 1024, mode: 'batched', perTurn: 1024, entries: 1_000_000 },
];

export function formatResult(r: BenchResult): string {
  const mode = r.mode === 'sequential' ? 'one at a time' : r.mode === 'pipelined' ? `${r.perTurn} propose() per turn` : `proposeBatch(${r.perTurn})`;
  return `${String(r.entryBytes).padStart(5)} B  ${mode.padEnd(24)} ${Math.round(r.entriesPerSec).toLocaleString('en-US').padStart(11)} entries/s  ${r.mbPerSec.toFixed(1).padStart(7)} MiB/s  (${r.entries.toLocaleString('en-US')} entries in ${r.seconds.toFixed(2)} s)`;
}
