#!/usr/bin/env node
/**
 * Benchmark: WAL appends with group commit, beside the raw fdatasync rate of the same disk.
 *
 *   node bench/wal-throughput.js [--dir DIR] [--seconds S] [--entry-bytes B]
 *
 * First the disk's own rate: write B bytes at the end of a preallocated file, fdatasync, repeat.
 * Then the WAL (src/storage/wal.ts) appending batches of 1, 16 and 256 entries of B bytes, each
 * append made durable by one fdatasync — what a Raft member does for one Ready. The ratio of
 * WAL appends per second to raw fdatasyncs per second shows what the WAL costs beyond the sync
 * itself; entries per second shows what group commit buys.
 */
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { Wal } from '../dist/storage/wal.js';

const o = new Command()
  .option('--dir <dir>', 'directory on the disk to measure (a temp dir is made inside it)', tmpdir())
  .option('--seconds <s>', 'seconds per case', Number, 3)
  .option('--entry-bytes <b>', 'bytes of payload per entry', Number, 256)
  .parse()
  .opts();

const root = await mkdtemp(join(o.dir, 'flotilla-walbench-'));
const payload = new Uint8Array(o.entryBytes).fill(0x61);

async function rawFdatasync() {
  const fh = await open(join(root, 'raw'), 'w+');
  await fh.truncate(64 << 20);
  await fh.datasync();
  let pos = 0;
  let n = 0;
  const t0 = performance.now();
  const end = t0 + o.seconds * 1000;
  while (performance.now() < end) {
    await fh.write(payload, 0, payload.length, pos);
    await fh.datasync();
    pos += payload.length;
    n++;
  }
  const secs = (performance.now() - t0) / 1000;
  await fh.close();
  return { syncs: n, secs, perSec: n / secs };
}

async function walCase(batch) {
  const dir = join(root, `wal-${batch}`);
  const { wal } = await Wal.open(dir);
  let index = 1;
  let appends = 0;
  let bytes = 0;
  const t0 = performance.now();
  const end = t0 + o.seconds * 1000;
  while (performance.now() < end) {
    const entries = [];
    for (let i = 0; i < batch; i++) entries.push({ index: index++, term: 1, type: 'normal', data: payload });
    await wal.append({ hardState: { term: 1, vote: 1, commit: index - 1 }, entries }, true);
    appends++;
    bytes += batch * payload.length;
  }
  const secs = (performance.now() - t0) / 1000;
  await wal.close();
  return { batch, appends, secs, appendsPerSec: appends / secs, entriesPerSec: (appends * batch) / secs, mbPerSec: bytes / secs / (1 << 20), segments: wal.segmentCount };
}

try {
  const raw = await rawFdatasync();
  console.log(`raw: write ${o.entryBytes} B + fdatasync: ${raw.perSec.toFixed(0)} syncs/s (${raw.syncs} in ${raw.secs.toFixed(1)} s) in ${o.dir}`);
  console.log('batch  appends/s  entries/s   MB/s   appends/s ÷ raw syncs/s');
  for (const batch of [1, 16, 256]) {
    const r = await walCase(batch);
    console.log(
      `${String(batch).padStart(5)}  ${r.appendsPerSec.toFixed(0).padStart(9)}  ${r.entriesPerSec.toFixed(0).padStart(9)}  ${r.mbPerSec.toFixed(2).padStart(6)}   ${(r.appendsPerSec / raw.perSec).toFixed(2)}`,
    );
  }
} finally {
  await rm(root, { recursive: true, force: true });
}
