import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodeSnapshot, encodeSnapshot, SnapshotCorruptionError, SnapshotStore } from './snapshots.js';

const CONF = { voters: [1, 2, 3], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false };

/** A snapshot file with these metadata bytes and a valid checksum (as a bug, or a hand, could write). */
function fileWithMeta(meta: string | Uint8Array, data = new Uint8Array([1, 2, 3])): Uint8Array {
  const m = typeof meta === 'string' ? new TextEncoder().encode(meta) : meta;
  const out = new Uint8Array(16 + m.length + data.length);
  out.set(encodeSnapshot({ meta: { index: 0, term: 0, confState: CONF }, data: new Uint8Array(0) }).subarray(0, 8));
  const v = new DataView(out.buffer);
  v.setUint32(12, m.length, true);
  out.set(m, 16);
  out.set(data, 16 + m.length);
  v.setUint32(8, crc32(out.subarray(12)), true);
  return out;
}

describe('decodeSnapshot', () => {
  it('round-trips what encodeSnapshot wrote', () => {
    const s = { meta: { index: 7, term: 2, confState: CONF }, data: new Uint8Array([9, 8]) };
    expect(decodeSnapshot(encodeSnapshot(s), 'f')).toEqual(s);
    expect(decodeSnapshot(fileWithMeta(JSON.stringify(s.meta), s.data), 'f')).toEqual(s);
  });

  // Found by `flotilla fuzz --surface snapshot`: garbage metadata under a valid checksum threw a
  // bare SyntaxError (or came back as metadata of the wrong shape).
  it.each([
    ['not JSON', '{"index":3,"term'],
    ['invalid UTF-8', new Uint8Array([0x22, 0xff, 0xfe, 0x22])],
    ['not an object', '[1,2]'],
    ['null', 'null'],
    ['index missing', JSON.stringify({ term: 1, confState: CONF })],
    ['negative term', JSON.stringify({ index: 1, term: -1, confState: CONF })],
    ['fractional index', JSON.stringify({ index: 1.5, term: 1, confState: CONF })],
    ['index past 2^53', '{"index":1e400,"term":1,"confState":{}}'],
    ['confState missing', JSON.stringify({ index: 1, term: 1 })],
    ['voters not ids', JSON.stringify({ index: 1, term: 1, confState: { ...CONF, voters: ['a'] } })],
    ['learners missing', JSON.stringify({ index: 1, term: 1, confState: { ...CONF, learners: undefined } })],
    ['autoLeave not boolean', JSON.stringify({ index: 1, term: 1, confState: { ...CONF, autoLeave: 'yes' } })],
  ])('refuses metadata that is %s with a SnapshotCorruptionError naming the file', (_what, meta) => {
    const b = fileWithMeta(meta);
    expect(() => decodeSnapshot(b, '/d/x.snap')).toThrow(SnapshotCorruptionError);
    expect(() => decodeSnapshot(b, '/d/x.snap')).toThrow(/\/d\/x\.snap: metadata/);
  });
});

describe('SnapshotStore.saveParts', () => {
  it('writes the file save writes for the parts\' concatenation (empty parts skipped)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flotilla-snap-parts-'));
    try {
      const meta = { index: 9, term: 3, confState: CONF };
      const parts = [new Uint8Array([1, 2]), new Uint8Array(0), new Uint8Array(70_000).fill(5), new Uint8Array([7])];
      const whole = new SnapshotStore(join(dir, 'whole'));
      await whole.save({ meta, data: Buffer.concat(parts) });
      const inParts = new SnapshotStore(join(dir, 'parts'));
      await inParts.saveParts(meta, parts);
      const file = (d: string): Buffer => readFileSync(join(dir, d, readdirSync(join(dir, d))[0]!));
      expect(Buffer.compare(file('parts'), file('whole'))).toBe(0);
      expect(await inParts.loadNewest()).toEqual({ meta, data: new Uint8Array(Buffer.concat(parts)) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
