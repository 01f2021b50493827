import { describe, expect, it } from 'vitest';
import { MemFs } from '../storage/fs.js';
import { SnapshotStore } from '../storage/snapshots.js';
import { ChainNode } from '../chain/node.js';
import { ChainStorage, ChainStorageCorruptionError, type DurableChainState } from './storage.js';
import type { SnapshotImage, Update } from '../chain/types.js';

const enc = new TextEncoder();
const up = (seq: number, assignEpoch: number, v = `v${seq}`): Update => ({ seq, assignEpoch, op: { type: 'put', key: `k${seq % 3}`, value: enc.encode(v) } });

function ids(s: DurableChainState): string[] {
  const out = s.snapshot ? [`snap ${s.snapshot.seq}@${s.snapshot.assignEpoch}`] : [];
  return [...out, ...s.updates.map((u) => `${u.seq}@${u.assignEpoch}`)];
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
    let points = 0;
    for (let crashAt = 1; ; crashAt++) {
      const fs = new MemFs();
      let durable = 0;
      let stopped = false;
      fs.beforeOp = (n) => {
        if (n >= crashAt) {
          stopped = true;
          throw new Error('crash');
        }
      };
      let opened: Awaited<ReturnType<typeof ChainStorage.open>> | null = null;
      try {
        opened = await ChainStorage.open('/d', (t) => (durable = t), { fs, segmentBytes: 4096 });
        for (const s of steps) opened.storage.persist(s.e);
        await opened.storage.flush();
      } catch {
        // the crash
      }
      if (!stopped) break;
      points++;
      fs.beforeOp = () => {};
      fs.crash((len) => Math.floor(len / 2));
      const back = await ChainStorage.open('/d', () => {}, { fs, segmentBytes: 4096 });
      const got = ids(back.state);
      const at = allowed.findIndex((a) => JSON.stringify(a) === JSON.stringify(got));
      expect(at, `crash at op ${crashAt}: recovered ${got.join(' ')}`).toBeGreaterThanOrEqual(0);
      expect(at, `crash at op ${crashAt}: token ${durable} was reported durable, recovered ${got.join(' ')}`).toBeGreaterThanOrEqual(minByToken.get(durable)!);
      await back.storage.close();
    }
    expect(points).toBeGreaterThan(10);
  });

  it('refuses a snapshot file whose content is not a chain image (under a valid checksum)', async () => {
    const fs = new MemFs();
    await new SnapshotStore('/d/snap', { fs }).save({ meta: { index: 2, term: 1, confState: { voters: [], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false } }, data: new Uint8Array([255, 255, 255, 255, 1]) });
    await expect(ChainStorage.open('/d', () => {}, { fs, segmentBytes: 4096 })).rejects.toThrow(ChainStorageCorruptionError);
    await new SnapshotStore('/d/snap', { fs }).save({ meta: { index: 3, term: 1, confState: { voters: [], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false } }, data: new Uint8Array([1, 0, 0, 0, 1, 0, 107, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) });
    await expect(ChainStorage.open('/d', () => {}, { fs, segmentBytes: 4096 })).rejects.toThrow(/version 9 outside/);
  });
});
