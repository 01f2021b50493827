import { describe, expect, it } from 'vitest';
import { rng } from '../lib/prng.js';
import type { Entry, HardState } from '../raft/types.js';
import { MemFs } from './fs.js';
import { Wal, WalCorruptionError } from './wal.js';

/**
 * Crash-point tests: the WAL runs a random workload on a file system that stops the "process"
 * at a chosen operation, then loses every write not yet fsynced (optionally tearing the last
 * one). Recovery must give the state after some prefix of the operations that includes every
 * operation whose fsync completed: nothing acknowledged is lost, nothing is invented.
 */
class Crash extends Error {}

type Op = { kind: 'append'; entries: Entry[]; hardState: HardState; sync: boolean } | { kind: 'snap'; index: number; term: number };

interface Model {
  snap: { index: number; term: number };
  log: Entry[];
  hs: HardState;
}

const key = (m: { snapshot?: { index: number; term: number }; snap?: { index: number; term: number }; entries?: Entry[]; log?: Entry[]; hardState?: HardState; hs?: HardState }): string =>
  JSON.stringify([m.snapshot ?? m.snap, (m.entries ?? m.log ?? []).map((e) => `${e.index}/${e.term}/${e.data.length}`), m.hardState ?? m.hs]);

function workload(seed: number): Op[] {
  const r = rng(seed);
  const ops: Op[] = [];
  const m: Model = { snap: { index: 0, term: 0 }, log: [], hs: { term: 0, vote: 0, commit: 0 } };
  let term = 1;
  for (let i = 0; i < 40; i++) {
    const last = m.log.length ? m.log[m.log.length - 1]!.index : m.snap.index;
    if (r.chance(0.12) && last > m.snap.index) {
      const index = r.int(m.snap.index + 1, last + 1);
      const t = m.log.find((e) => e.index === index)!.term;
      ops.push({ kind: 'snap', index, term: t });
      m.log = m.log.filter((e) => e.index > index);
      m.snap = { index, term: t };
      continue;
    }
    if (r.chance(0.2)) term++;
    const first = Math.max(m.snap.index + 1, last + 1 - (r.chance(0.3) ? r.int(0, 3) : 0));
    const entries = Array.from({ length: r.int(1, 5) }, (_, k) => ({ index: first + k, term, type: 'normal' as const, data: new Uint8Array(r.int(0, 400)).fill(first + k) }));
    const hs = { term, vote: r.int(0, 4), commit: m.snap.index };
    ops.push({ kind: 'append', entries, hardState: hs, sync: r.chance(0.8) });
    m.log = [...m.log.filter((e) => e.index < first), ...entries];
    m.hs = hs;
  }
  return ops;
}

function states(ops: Op[]): string[] {
  const m: Model = { snap: { index: 0, term: 0 }, log: [], hs: { term: 0, vote: 0, commit: 0 } };
  const out = [key(m)];
  for (const op of ops) {
    if (op.kind === 'snap') {
      m.log = m.log.filter((e) => e.index > op.index);
      m.snap = { index: op.index, term: op.term };
    } else {
      const first = op.entries[0]!.index;
      m.log = [...m.log.filter((e) => e.index < first), ...op.entries];
      m.hs = op.hardState;
    }
    out.push(key(m));
  }
  return out;
}

async function run(fs: MemFs, ops: Op[], crashAt: number): Promise<{ started: number; durable: number }> {
  let started = 0;
  let durable = 0;
  fs.ops = 0;
  fs.beforeOp = (n) => {
    if (n === crashAt) throw new Crash();
  };
  try {
    const { wal } = await Wal.open('/wal', { fs, segmentBytes: 4096 });
    for (const op of ops) {
      started++;
      if (op.kind === 'snap') await wal.markSnapshot(op.index, op.term);
      else await wal.append({ entries: op.entries, hardState: op.hardState }, op.sync);
      // Everything up to a completed fsync is durable (one file, writes in order).
      if (op.kind === 'snap' || op.sync) durable = started;
    }
    await wal.close();
    durable = started;
  } catch (e) {
    if (!(e instanceof Crash)) throw e;
  } finally {
    fs.beforeOp = () => {};
  }
  return { started, durable };
}

describe('WAL crash points', () => {
  it('keeps every fsynced operation and invents nothing, whatever the crash point', async () => {
    let crashes = 0;
    for (let seed = 1; seed <= 150; seed++) {
      const ops = workload(seed);
      const expected = states(ops);
      // Count the operations a full run takes, then crash at points across that range.
      const probe = new MemFs();
      await run(probe, ops, -1);
      const total = probe.ops;
      const r = rng(seed * 7919);
      for (let k = 0; k < 8; k++) {
        const fs = new MemFs();
        const at = r.int(1, total + 1);
        const { started, durable } = await run(fs, ops, at);
        fs.crash(r.chance(0.5) ? (len) => r.int(0, len) : undefined);
        crashes++;
        let opened;
        try {
          opened = await Wal.open('/wal', { fs, segmentBytes: 4096 });
        } catch (e) {
          throw new Error(`seed ${seed} crash at op ${at}/${total} (started ${started}, durable ${durable}): ${(e as Error).message}\n${ops.map((o, i) => `${i + 1}: ${o.kind === 'snap' ? `snap ${o.index}/${o.term}` : `append ${o.entries[0]!.index}..${o.entries.at(-1)!.index} t${o.entries[0]!.term} sync=${o.sync}`}`).join('\n')}\nfiles: ${fs.list().join(' ')}`);
        }
        const { wal, state } = opened;
        await wal.close();
        const got = key(state);
        const allowed = expected.slice(durable, started + 1);
        if (!allowed.includes(got)) {
          throw new Error(`seed ${seed} crash at op ${at}/${total} (started ${started}, durable ${durable}):\n got ${got}\n${allowed.map((a) => `allowed ${a}`).join('\n')}\n${ops.slice(0, started).map((o, i) => `${i + 1}: ${o.kind === 'snap' ? `snap ${o.index}/${o.term}` : `append ${o.entries[0]!.index}..${o.entries.at(-1)!.index} t${o.entries[0]!.term} sync=${o.sync}`}`).join('\n')}`);
        }
      }
    }
    expect(crashes).toBe(1200);
  });

  it('reports a flipped bit in an old record, with the file and the offset', async () => {
    const fs = new MemFs();
    const { wal } = await Wal.open('/wal', { fs, segmentBytes: 4096 });
    for (let i = 1; i <= 30; i++) await wal.append({ entries: [{ index: i, term: 1, type: 'normal', data: new Uint8Array(150).fill(i) }] }, true);
    await wal.close();
    const first = fs.list()[0]!;
    fs.flipBit(first, 700, 3);
    await expect(Wal.open('/wal', { fs, segmentBytes: 4096 })).rejects.toThrow(WalCorruptionError);
    await expect(Wal.open('/wal', { fs, segmentBytes: 4096 })).rejects.toThrow(new RegExp(`${first}.* at offset \\d+: checksum mismatch`));
  });
});
