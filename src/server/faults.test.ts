/**
 * The test-only disk faults: faultyFs makes writes and/or syncs fail as a full or broken disk
 * does, and the storage layers name the operation that failed (StorageIoError). The route
 * refuses what it does not know.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { ConfState } from '../raft/types.js';
import { StorageIoError } from '../storage/fs.js';
import { DiskStorage } from '../storage/storage.js';
import { CLOCK_OFFSET_MS_MAX, CLOCK_RATE_MAX, CLOCK_RATE_MIN, faultRoute, faultyClock, faultyFs, noFaults } from './faults.js';

const conf: ConfState = { voters: [1], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false };
const root = mkdtempSync(join(tmpdir(), 'flotilla-faultyfs-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const entry = (index: number) => ({ index, term: 1, type: 'normal' as const, data: new Uint8Array([index]) });

describe('faultyFs', () => {
  it('ENOSPC on writes: the WAL append fails naming the WAL write; clearing the fault lets writes through', async () => {
    const faults = noFaults();
    const s = await DiskStorage.open(join(root, `w${n++}`), conf, { fs: faultyFs(faults) });
    await s.save({ entries: [entry(1)] }, true);
    faults.diskError = 'ENOSPC';
    faults.diskErrorOn = 'write';
    const e = await s.save({ entries: [entry(2)] }, true).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(StorageIoError);
    expect((e as StorageIoError).code).toBe('ENOSPC');
    expect((e as Error).message).toMatch(/^WAL write failed: ENOSPC: no space left on device, write '.*\.wal' \(injected\)$/);
    faults.diskError = null;
    await s.save({ entries: [entry(2)] }, true);
    await s.close();
  });

  it('EIO on fsync only: an unsynced append passes, a synced one fails naming the WAL fsync', async () => {
    const faults = noFaults();
    const s = await DiskStorage.open(join(root, `w${n++}`), conf, { fs: faultyFs(faults) });
    faults.diskError = 'EIO';
    faults.diskErrorOn = 'fsync';
    await s.save({ entries: [entry(1)] }, false);
    await expect(s.save({ entries: [entry(2)] }, true)).rejects.toThrow(/^WAL fsync failed: EIO: i\/o error, fdatasync/);
    await expect(s.close()).rejects.toThrow(/^WAL close failed: EIO/);
  });

  it('a snapshot that cannot be written fails naming the snapshot write', async () => {
    const faults = noFaults();
    const s = await DiskStorage.open(join(root, `w${n++}`), conf, { fs: faultyFs(faults) });
    await s.save({ entries: [entry(1), entry(2)] }, true);
    faults.diskError = 'ENOSPC';
    const e = await s.saveSnapshot({ meta: { index: 2, term: 1, confState: conf }, data: new Uint8Array(8) }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(StorageIoError);
    expect((e as Error).message).toMatch(/^snapshot write in .*snap failed: ENOSPC: no space left on device, open '.*\.snap\.tmp' \(injected\)$/);
    faults.diskError = null;
    await s.close();
  });
});

describe('POST /debug/faults: disk errors', () => {
  let server: Server | null = null;
  afterEach(async () => {
    await new Promise((r) => server?.close(r));
    server = null;
  });

  it('sets, shows and clears diskError; refuses unknown codes and operations', async () => {
    const faults = noFaults();
    const route = faultRoute(faults, [{ name: 'm1', peerUrls: ['http://127.0.0.1:1'], id: 1n, raftId: 1 }]);
    server = createServer((req, res) => void route(req, res));
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const post = (body: unknown) => fetch(`http://127.0.0.1:${port}/debug/faults`, { method: 'POST', body: JSON.stringify(body) });
    let r = await post({ diskError: 'EIO', diskErrorOn: 'fsync' });
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ diskError: 'EIO', diskErrorOn: 'fsync' });
    expect(faults.diskError).toBe('EIO');
    r = await post({ diskError: 'EROFS' });
    expect(r.status).toBe(400);
    expect(await r.text()).toContain('diskError must be one of ENOSPC, EIO or null');
    r = await post({ diskErrorOn: 'read' });
    expect(r.status).toBe(400);
    expect(faults.diskError).toBe('EIO');
    r = await post({ diskError: null });
    expect(r.status).toBe(200);
    expect(faults.diskError).toBeNull();
  });
});

describe('clock faults', () => {
  /** A clock whose real time the test moves, with timers recorded. */
  const manual = () => {
    let t = 1000;
    const timers: number[] = [];
    return {
      advance: (ms: number) => (t += ms),
      timers,
      clock: { now: () => t, setTimer: (ms: number) => (timers.push(ms), { cancel: () => undefined }) },
    };
  };

  it('faultyClock: an offset jumps, a rate runs from the moment it is set without a jump, timers scale', () => {
    const faults = noFaults();
    const m = manual();
    const c = faultyClock(faults, m.clock);
    const t0 = c.now();
    m.advance(100);
    expect(c.now() - t0).toBe(100);
    faults.clockOffsetMs = 5000;
    expect(c.now() - t0).toBe(5100);
    faults.clockOffsetMs = 0;
    faults.clockRate = 2;
    const t1 = c.now();
    expect(t1 - t0).toBe(100);
    m.advance(100);
    expect(c.now() - t1).toBe(200);
    c.setTimer(1000, () => undefined);
    expect(m.timers.at(-1)).toBe(500);
    faults.clockRate = 0.5;
    const t2 = c.now();
    expect(t2 - t1).toBe(200);
    m.advance(100);
    expect(c.now() - t2).toBe(50);
  });

  it('POST /debug/faults sets the clock within CLOCK_OFFSET_MS_MAX and CLOCK_RATE_MIN..MAX and refuses the rest', async () => {
    const faults = noFaults();
    const route = faultRoute(faults, [{ name: 'm1', peerUrls: ['http://127.0.0.1:1'], id: 1n, raftId: 1 }]);
    const server = createServer((req, res) => void route(req, res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as { port: number }).port;
      const post = (body: unknown) => fetch(`http://127.0.0.1:${port}/debug/faults`, { method: 'POST', body: JSON.stringify(body) });
      let r = await post({ clockOffsetMs: -1500, clockRate: 1.5 });
      expect(r.status).toBe(200);
      expect(await r.json()).toMatchObject({ clockOffsetMs: -1500, clockRate: 1.5 });
      for (const bad of [{ clockOffsetMs: CLOCK_OFFSET_MS_MAX + 1 }, { clockOffsetMs: '5' }, { clockRate: CLOCK_RATE_MIN / 2 }, { clockRate: CLOCK_RATE_MAX * 2 }, { clockRate: null }]) {
        r = await post(bad);
        expect(r.status, JSON.stringify(bad)).toBe(400);
      }
      expect(faults.clockOffsetMs).toBe(-1500);
      expect(faults.clockRate).toBe(1.5);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
