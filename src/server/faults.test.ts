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
import { faultRoute, faultyFs, noFaults } from './faults.js';

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
