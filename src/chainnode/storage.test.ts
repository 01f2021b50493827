import { describe, expect, it } from 'vitest';
import { MemFs } from '../storage/fs.js';
import { SnapshotStore } from '../storage/snapshots.js';
import { ChainNode } from '../chain/node.js';
import { Wal } from '../storage/wal.js';
import { CHAIN_WAL_RECORD_BYTES, ChainStorage, ChainStorageCorruptionError, epochsFromHardState, type DurableChainState } from './storage.js';
import { CHAIN_KEY_BYTES_MAX, CHAIN_VALUE_BYTES_MAX, type SnapshotImage, type Update } from '../chain/types.js';

const enc = new TextEncoder();
const up = (seq: number, assignEpoch: number, v = `v${seq}`): Update => ({ seq, assignEpoch, op: { type: 'put', key: `k${seq % 3}`, value: enc.encode(v) } });

function ids(s: DurableChainState): string[] {
  const out = s.snapshot ? [`snap ${s.snapshot.seq}@${s.snapshot.assignEpoch}`] : [];
  return [...out, ...s.updates.map((u) => `${u.seq}@${u.assignEpoch}`)];
}

/** Makes every fs operation from the crashAt-th on throw 'crash'; `stopped` says whether one has. */
function crashFrom(fs: MemFs, crashAt: number): { readonly stopped: boolean } {
  const state = { stopped: false };
  fs.beforeOp = (n) => {
    if (n >= crashAt) {
      state.stopped = true;
      throw new Error('crash');
    }
  };
  return state;
}

/**
 * Crashes the storage at every I/O operation in turn while `write` runs, recovers, and checks
 * the recovered history is one of `allowed`, never earlier than `minIndex(token reported durable)`.
 * Returns how many crash points there were.
 */
async function everyCrashPoint(write: (s: ChainStorage) => void, allowed: string[][], minIndex: (durable: number) => number): Promise<number> {
  let points = 0;
  for (let crashAt = 1; ; crashAt++) {
    const fs = new MemFs();
    let durable = 0;
    const crash = crashFrom(fs, crashAt);
    try {
      const { storage } = await ChainStorage.open('/d', (t) => (durable = t), { fs, segmentBytes: 4096 });
      write(storage);
      await storage.flush();
    } catch {
      // the crash
    }
    if (!crash.stopped) return points;
    points++;
    fs.beforeOp = () => {};
    fs.crash((len) => Math.floor(len / 2));
    const back = await ChainStorage.open('/d', () => {}, { fs, segmentBytes: 4096 });
    const got = ids(back.state);
    const at = allowed.findIndex((a) => JSON.stringify(a) === JSON.stringify(got));
    expect(at, `crash at op ${crashAt}: recovered ${got.join(' ')}`).toBeGreaterThanOrEqual(0);
    expect(at, `crash at op ${crashAt}: token ${durable} was reported durable, recovered ${got.join(' ')}`).toBeGreaterThanOrEqual(minIndex(durable));
    await back.storage.close();
  }
}

describe('ChainStorage', () => {
  it('keeps updates and snapshots across a reopen; a ChainNode restores from them', async () => {
    const fs = new MemFs();
    const done: number[] = [];
    const { storage } = await ChainStorage.open('/d', (t) => done.push(t), { fs, segmentBytes: 4096 });
    storage.persist({ type: 'persist', token: 1, updates: [up(1, 1), up(2, 1)] });
    storage.persist({ type: 'persist', token: 2, updates: [up(3, 1)] });
    await storage.flush();
    expect(done.at(-1)).toBe(2);
    await storage.close();
    const again = await ChainStorage.open('/d', () => {}, { fs, segmentBytes: 4096 });
    expect(ids(again.state)).toEqual(['1@1', '2@1', '3@1']);
    const node = new ChainNode({ name: 'n' }, again.state);
    expect(node.lastSeq).toBe(3);
    expect(node.entries().map((e) => [e.key, e.version])).toEqual([['k0', 3], ['k1', 1], ['k2', 2]]);
    const image: SnapshotImage = { seq: 2, assignEpoch: 4, entries: [{ key: 'x', value: enc.encode('y'), version: 2 }] };
    again.storage.persist({ type: 'persistSnapshot', token: 3, image });
    again.storage.persist({ type: 'persist', token: 4, updates: [up(3, 4)] });
    await again.storage.close();
    const third = await ChainStorage.open('/d', () => {}, { fs, segmentBytes: 4096 });
    expect(ids(third.state)).toEqual(['snap 2@4', '3@4']);
    expect(third.state.snapshot!.entries).toEqual(image.entries);
    await third.storage.close();
  });

  it('at every crash point, recovers a history it may have: never less than was reported durable, never a replaced suffix', async () => {
    // History 1..5 @1, then a snapshot at 3@1 replaces it (4@1 and 5@1 must go), then 4@2.
    const steps: { token: number; e: Parameters<ChainStorage['persist']>[0] }[] = [
      { token: 1, e: { type: 'persist', token: 1, updates: [up(1, 1), up(2, 1), up(3, 1)] } },
      { token: 2, e: { type: 'persist', token: 2, updates: [up(4, 1), up(5, 1)] } },
      { token: 3, e: { type: 'persistSnapshot', token: 3, image: { seq: 3, assignEpoch: 1, entries: [{ key: 'k0', value: enc.encode('v3'), version: 3 }] } } },
      { token: 4, e: { type: 'persist', token: 4, updates: [up(4, 2)] } },
    ];
    const allowed = [
      [],
      ['1@1', '2@1', '3@1'],
      ['1@1', '2@1', '3@1', '4@1', '5@1'],
      // The snapshot file written, not yet the end of the valid history: the same history as before.
      ['snap 3@1', '4@1', '5@1'],
      ['snap 3@1'],
      ['snap 3@1', '4@2'],
    ];
    const minByToken = new Map([[0, 0], [1, 1], [2, 2], [3, 4], [4, 5]]);
    const points = await everyCrashPoint((st) => steps.forEach((x) => st.persist(x.e)), allowed, (d) => minByToken.get(d)!);
    expect(points).toBeGreaterThan(10);
  });

  it('compacts: once the WAL grew past the threshold, a snapshot of the committed state releases its old segments', async () => {
    const fs = new MemFs();
    const big = 'x'.repeat(1000);
    const { storage } = await ChainStorage.open('/d', () => {}, { fs, segmentBytes: 4096, compactLogBytesMin: 20_000 });
    const node = new ChainNode({ name: 'n' });
    let seq = 0;
    const write = (n: number): void => {
      for (let i = 0; i < n; i++) storage.persist({ type: 'persist', token: ++seq, updates: [up(seq, 1, big)] });
    };
    write(10);
    await storage.flush();
    expect(storage.compactionDue).toBe(false);
    write(15);
    await storage.flush();
    expect(storage.compactionDue).toBe(true);
    const walFiles = async (): Promise<number> => (await fs.readdir('/d/wal')).filter((f) => f.endsWith('.wal')).length;
    const before = await walFiles();
    // The committed state at 24 of the 25 written (a node's image: here built by hand).
    const entries = [0, 1, 2].map((k) => ({ key: `k${k}`, value: enc.encode(big), version: [24, 22, 23][k]! }));
    storage.compact({ seq: 24, assignEpoch: 1, entries });
    expect(storage.compactionDue).toBe(false);
    await storage.flush();
    expect(storage.compactions).toBe(1);
    expect(await walFiles()).toBeLessThan(before);
    expect(storage.compactionDue).toBe(false);
    write(2);
    await storage.close();
    const back = await ChainStorage.open('/d', () => {}, { fs, segmentBytes: 4096, compactLogBytesMin: 20_000 });
    expect(ids(back.state)).toEqual(['snap 24@1', '25@1', '26@1', '27@1']);
    const restored = new ChainNode({ name: 'n' }, back.state);
    expect(restored.lastSeq).toBe(27);
    expect(restored.ackedSeq).toBe(24);
    // The next compaction waits for as many bytes as the snapshot holds, at least the minimum.
    expect(back.storage.compactionDue).toBe(false);
    await back.storage.close();
    expect(node.committedImage()).toEqual({ seq: 0, assignEpoch: 0, entries: [] });
  });

  it('a compaction interrupted at any point recovers the same history', async () => {
    const steps: Parameters<ChainStorage['persist']>[0][] = [
      { type: 'persist', token: 1, updates: [up(1, 1), up(2, 1), up(3, 1)] },
    ];
    const allowed = [[], ['1@1', '2@1', '3@1'], ['snap 2@1', '3@1'], ['snap 2@1', '3@1', '4@1']];
    const points = await everyCrashPoint(
      (storage) => {
        for (const x of steps) storage.persist(x);
        storage.compact({ seq: 2, assignEpoch: 1, entries: [{ key: 'k1', value: enc.encode('v1'), version: 1 }, { key: 'k2', value: enc.encode('v2'), version: 2 }] });
        storage.persist({ type: 'persist', token: 2, updates: [up(4, 1)] });
      },
      allowed,
      (d) => (d === 2 ? 3 : d === 1 ? 1 : 0),
    );
    expect(points).toBeGreaterThan(8);
  });

  it('refuses a snapshot file whose content is not a chain image (under a valid checksum)', async () => {
    const fs = new MemFs();
    await new SnapshotStore('/d/snap', { fs }).save({ meta: { index: 2, term: 1, confState: { voters: [], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false } }, data: new Uint8Array([255, 255, 255, 255, 1]) });
    await expect(ChainStorage.open('/d', () => {}, { fs, segmentBytes: 4096 })).rejects.toThrow(ChainStorageCorruptionError);
    await new SnapshotStore('/d/snap', { fs }).save({ meta: { index: 3, term: 1, confState: { voters: [], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false } }, data: new Uint8Array([1, 0, 0, 0, 1, 0, 107, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) });
    await expect(ChainStorage.open('/d', () => {}, { fs, segmentBytes: 4096 })).rejects.toThrow(/version 9 outside/);
  });
});

describe('ChainStorage and large values', () => {
  it('writes a batch beyond CHAIN_WAL_RECORD_BYTES in several records, and a value of CHAIN_VALUE_BYTES_MAX with the longest key', async () => {
    const fs = new MemFs();
    const key = 'k'.repeat(CHAIN_KEY_BYTES_MAX);
    const huge: Update = { seq: 1, assignEpoch: 1, op: { type: 'put', key, value: new Uint8Array(CHAIN_VALUE_BYTES_MAX).fill(7) } };
    const mid = (seq: number): Update => ({ seq, assignEpoch: 1, op: { type: 'put', key: `m${seq}`, value: new Uint8Array(CHAIN_WAL_RECORD_BYTES / 2 + 1).fill(seq) } });
    let durable = 0;
    const { storage } = await ChainStorage.open('/d', (t) => (durable = t), { fs, segmentBytes: 4096 });
    storage.persist({ type: 'persist', token: 1, updates: [huge] });
    storage.persist({ type: 'persist', token: 2, updates: [mid(2)] });
    storage.persist({ type: 'persist', token: 3, updates: [mid(3), mid(4)] });
    await storage.flush();
    expect(storage.failure).toBe(null);
    expect(durable).toBe(3);
    await storage.close();
    const back = await ChainStorage.open('/d', () => {}, { fs, segmentBytes: 4096 });
    expect(ids(back.state)).toEqual(['1@1', '2@1', '3@1', '4@1']);
    const v = back.state.updates[0]!.op;
    expect(v.type === 'put' && v.key === key && v.value.length === CHAIN_VALUE_BYTES_MAX && v.value[CHAIN_VALUE_BYTES_MAX - 1] === 7).toBe(true);
    await back.storage.close();
  });
});

describe('ChainStorage registration epochs (caughtUpEpoch, syncedEpoch in the hard state)', () => {
  it('survive a reopen and every later write (updates, a replacing snapshot, a compaction)', async () => {
    const fs = new MemFs();
    const { storage, state } = await ChainStorage.open('/d', () => {}, { fs, segmentBytes: 4096 });
    expect(state.epochs).toEqual({ caughtUpEpoch: null, syncedEpoch: null });
    storage.persist({ type: 'persist', token: 1, updates: [up(1, 1), up(2, 1)] });
    await storage.saveEpochs({ caughtUpEpoch: 5, syncedEpoch: null });
    storage.persist({ type: 'persist', token: 2, updates: [up(3, 1)] });
    await storage.close();
    let back = await ChainStorage.open('/d', () => {}, { fs, segmentBytes: 4096 });
    expect(back.state.epochs).toEqual({ caughtUpEpoch: 5, syncedEpoch: null });
    expect(ids(back.state)).toEqual(['1@1', '2@1', '3@1']);
    back.storage.persist({ type: 'persistSnapshot', token: 3, image: { seq: 2, assignEpoch: 1, entries: [{ key: 'k1', value: enc.encode('v1'), version: 1 }, { key: 'k2', value: enc.encode('v2'), version: 2 }] } });
    back.storage.compact({ seq: 2, assignEpoch: 1, entries: [{ key: 'k1', value: enc.encode('v1'), version: 1 }, { key: 'k2', value: enc.encode('v2'), version: 2 }] });
    await back.storage.close();
    back = await ChainStorage.open('/d', () => {}, { fs, segmentBytes: 4096 });
    // The replacing snapshot ended the history at 2 (update 3 void), the epochs stayed.
    expect(ids(back.state)).toEqual(['snap 2@1']);
    expect(back.state.epochs).toEqual({ caughtUpEpoch: 5, syncedEpoch: null });
    await back.storage.saveEpochs({ caughtUpEpoch: 5, syncedEpoch: 9 });
    await back.storage.close();
    back = await ChainStorage.open('/d', () => {}, { fs, segmentBytes: 4096 });
    expect(back.state.epochs).toEqual({ caughtUpEpoch: 5, syncedEpoch: 9 });
    expect(ids(back.state)).toEqual(['snap 2@1']);
    await back.storage.close();
  });

  it('a crash at any point of saveEpochs recovers the old epochs or the new, the new once it resolved, and the history unchanged', async () => {
    let points = 0;
    for (let crashAt = 1; ; crashAt++) {
      const fs = new MemFs();
      const first = await ChainStorage.open('/d', () => {}, { fs, segmentBytes: 4096 });
      first.storage.persist({ type: 'persist', token: 1, updates: [up(1, 1), up(2, 1)] });
      await first.storage.saveEpochs({ caughtUpEpoch: 3, syncedEpoch: null });
      await first.storage.close();
      let resolved = false;
      const crash = crashFrom(fs, crashAt);
      try {
        const { storage } = await ChainStorage.open('/d', () => {}, { fs, segmentBytes: 4096 });
        await storage.saveEpochs({ caughtUpEpoch: 3, syncedEpoch: 4 });
        resolved = true;
      } catch {
        // the crash
      }
      if (!crash.stopped) break;
      points++;
      fs.beforeOp = () => {};
      fs.crash((len) => Math.floor(len / 2));
      const back = await ChainStorage.open('/d', () => {}, { fs, segmentBytes: 4096 });
      expect(ids(back.state), `crash at op ${crashAt}`).toEqual(['1@1', '2@1']);
      const e = back.state.epochs;
      expect(e.caughtUpEpoch, `crash at op ${crashAt}`).toBe(3);
      expect(resolved ? [4] : [null, 4], `crash at op ${crashAt}: resolved ${resolved}`).toContain(e.syncedEpoch);
      await back.storage.close();
    }
    expect(points).toBeGreaterThan(2);
  });

  it('refuses a hard state whose epochs cannot be (a synced epoch without a caught-up one), with a clear message', async () => {
    expect(epochsFromHardState(0, 0)).toEqual({ caughtUpEpoch: null, syncedEpoch: null });
    expect(epochsFromHardState(7, 0)).toEqual({ caughtUpEpoch: 7, syncedEpoch: null });
    expect(epochsFromHardState(7, 9)).toEqual({ caughtUpEpoch: 7, syncedEpoch: 9 });
    expect(epochsFromHardState(0, 9)).toMatch(/synced epoch \(9\) without a caught-up epoch/);
    expect(epochsFromHardState(-1, 0)).toMatch(/not epochs/);
    expect(epochsFromHardState(2 ** 53, 0)).toMatch(/not epochs/);
    const fs = new MemFs();
    const { wal } = await Wal.open('/d/wal', { fs, segmentBytes: 4096 });
    await wal.append({ hardState: { term: 0, vote: 9, commit: 0 } }, true);
    await wal.close();
    await expect(ChainStorage.open('/d', () => {}, { fs, segmentBytes: 4096 })).rejects.toThrow(ChainStorageCorruptionError);
    await expect(ChainStorage.open('/d', () => {}, { fs, segmentBytes: 4096 })).rejects.toThrow(/the WAL's hard state: a synced epoch \(9\) without a caught-up epoch/);
  });
});
