import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ConfState, Entry, Snapshot } from '../raft/types.js';
import { MemFs, SYNC_WRITE_BYTES_MAX, realFs } from './fs.js';
import { DiskStorage, MemoryStorage, type Storage } from './storage.js';

const conf: ConfState = { voters: [1, 2, 3], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false };
const ent = (index: number, term: number): Entry => ({ index, term, type: 'normal', data: new TextEncoder().encode(`${index}.${term}`) });
const snap = (index: number, term: number, text: string): Snapshot => ({ meta: { index, term, confState: conf }, data: new TextEncoder().encode(text) });

const root = mkdtempSync(join(tmpdir(), 'flotilla-storage-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

interface Kind {
  name: string;
  /** A fresh store, and a way to get the state a restart would see. */
  make(): Promise<{ store: Storage; restart(): Promise<Storage> }>;
}

const kinds: Kind[] = [
  {
    name: 'MemoryStorage',
    async make() {
      const store = new MemoryStorage(conf);
      return { store, restart: async () => store };
    },
  },
  {
    name: 'DiskStorage (real files)',
    async make() {
      const dir = join(root, `d${n++}`);
      let store: Storage = await DiskStorage.open(dir, conf, { segmentBytes: 4096 });
      return {
        store,
        async restart() {
          await store.close();
          store = await DiskStorage.open(dir, conf, { segmentBytes: 4096 });
          return store;
        },
      };
    },
  },
  {
    name: 'DiskStorage (in-memory file system)',
    async make() {
      const fs = new MemFs();
      let store: Storage = await DiskStorage.open('/data', conf, { fs, segmentBytes: 4096 });
      return {
        store,
        async restart() {
          await store.close();
          fs.crash();
          store = await DiskStorage.open('/data', conf, { fs, segmentBytes: 4096 });
          return store;
        },
      };
    },
  },
];

for (const k of kinds) {
  describe(`storage conformance: ${k.name}`, () => {
    it('starts empty with the bootstrap configuration', async () => {
      const { store } = await k.make();
      const s = await store.load();
      expect(s.hardState).toEqual({ term: 0, vote: 0, commit: 0 });
      expect(s.snapshot.meta).toEqual({ index: 0, term: 0, confState: conf });
      expect(s.entries).toEqual([]);
      await store.close();
    });

    it('keeps entries and hard state across a restart; a later append overwrites a suffix', async () => {
      const { store, restart } = await k.make();
      await store.save({ entries: [ent(1, 1), ent(2, 1), ent(3, 1)], hardState: { term: 1, vote: 1, commit: 2 } }, true);
      await store.save({ entries: [ent(3, 2), ent(4, 2)], hardState: { term: 2, vote: 3, commit: 3 } }, true);
      const again = await restart();
      const s = await again.load();
      expect(s.hardState).toEqual({ term: 2, vote: 3, commit: 3 });
      expect(s.entries.map((e) => `${e.index}/${e.term}`)).toEqual(['1/1', '2/1', '3/2', '4/2']);
      expect(new TextDecoder().decode(s.entries[2]!.data)).toBe('3.2');
      await again.close();
    });

    it('a snapshot releases the log below it; the log after it is kept', async () => {
      const { store, restart } = await k.make();
      await store.save({ entries: [1, 2, 3, 4, 5].map((i) => ent(i, 1)), hardState: { term: 1, vote: 1, commit: 5 } }, true);
      await store.saveSnapshot(snap(3, 1, 'state@3'));
      const again = await restart();
      const s = await again.load();
      expect(s.snapshot.meta.index).toBe(3);
      expect(new TextDecoder().decode(s.snapshot.data)).toBe('state@3');
      expect(s.entries.map((e) => e.index)).toEqual([4, 5]);
      expect(s.applied).toBe(3);
      await again.close();
    });

    it("a leader's snapshot replaces a log that does not continue it", async () => {
      const { store, restart } = await k.make();
      await store.save({ entries: [ent(1, 1), ent(2, 1)], hardState: { term: 1, vote: 1, commit: 1 } }, true);
      await store.save({ snapshot: snap(10, 3, 'from leader'), entries: [], hardState: { term: 3, vote: 0, commit: 10 } }, true);
      await store.save({ entries: [ent(11, 3)], hardState: { term: 3, vote: 0, commit: 10 } }, true);
      const again = await restart();
      const s = await again.load();
      expect(s.snapshot.meta).toMatchObject({ index: 10, term: 3 });
      expect(s.entries.map((e) => `${e.index}/${e.term}`)).toEqual(['11/3']);
      expect(s.hardState).toEqual({ term: 3, vote: 0, commit: 10 });
      await again.close();
    });
  });
}

describe('DiskStorage across crashes', () => {
  it('a crash keeps what was saved with sync and may lose what was not', async () => {
    const fs = new MemFs();
    const store = await DiskStorage.open('/data', conf, { fs, segmentBytes: 4096 });
    await store.save({ entries: [ent(1, 1), ent(2, 1)], hardState: { term: 1, vote: 1, commit: 1 } }, true);
    await store.save({ entries: [ent(3, 1)], hardState: { term: 1, vote: 1, commit: 2 } }, false);
    fs.crash();
    const again = await DiskStorage.open('/data', conf, { fs, segmentBytes: 4096 });
    const s = await again.load();
    expect(s.entries.map((e) => e.index)).toEqual([1, 2]);
    expect(s.hardState.commit).toBe(1);
    await again.close();
  });
});

describe('the real file system', () => {
  it('writes at any position, below and above SYNC_WRITE_BYTES_MAX (synchronous and thread-pool writes), and reports a failure as the system error', async () => {
    const path = join(root, `fs-${n++}`);
    const fh = await realFs.open(path, true);
    const small = new Uint8Array(SYNC_WRITE_BYTES_MAX).fill(1);
    const large = new Uint8Array(SYNC_WRITE_BYTES_MAX + 1).fill(2);
    await fh.write(small, 0);
    await fh.write(large, small.length);
    await fh.write(new Uint8Array([3, 4]), 10); // overwrites in place
    await fh.datasync();
    await fh.close();
    const back = readFileSync(path);
    expect(back.length).toBe(small.length + large.length);
    expect([...back.subarray(8, 14)]).toEqual([1, 1, 3, 4, 1, 1]);
    expect(back.subarray(small.length).every((b) => b === 2)).toBe(true);
    expect(back.subarray(12, small.length).every((b) => b === 1)).toBe(true);
    // A closed handle: the synchronous path fails as the thread-pool one does, with the code.
    await expect(fh.write(new Uint8Array([1]), 0)).rejects.toMatchObject({ code: 'EBADF' });
  });
});
