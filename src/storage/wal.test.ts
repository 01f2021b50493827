import fc from 'fast-check';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Entry } from '../raft/types.js';
import { Wal, WalCorruptionError } from './wal.js';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'flotilla-wal-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const ent = (index: number, term: number, text = `e${index}.${term}`): Entry => ({ index, term, type: 'normal', data: new TextEncoder().encode(text) });
const SEG = 4096;
const segFiles = (d: string): string[] => readdirSync(d).filter((f) => f.endsWith('.wal')).sort();

describe('WAL', () => {
  it('recovers what was appended: entries, hard state, overwritten suffixes', async () => {
    const d = tmp();
    const { wal } = await Wal.open(d, { segmentBytes: SEG });
    await wal.append({ entries: [ent(1, 1), ent(2, 1), ent(3, 1)], hardState: { term: 1, vote: 2, commit: 1 } }, true);
    // A new leader overwrites 3 and appends 4: the last writer wins.
    await wal.append({ entries: [ent(3, 2), ent(4, 2)], hardState: { term: 2, vote: 3, commit: 2 } }, true);
    await wal.close();
    const { wal: again, state } = await Wal.open(d, { segmentBytes: SEG });
    await again.close();
    expect(state.hardState).toEqual({ term: 2, vote: 3, commit: 2 });
    expect(state.entries.map((e) => `${e.index}/${e.term}`)).toEqual(['1/1', '2/1', '3/2', '4/2']);
    expect(new TextDecoder().decode(state.entries[3]!.data)).toBe('e4.2');
  });

  it('cuts a torn tail of the last segment and keeps working', async () => {
    const d = tmp();
    const { wal } = await Wal.open(d, { segmentBytes: SEG });
    await wal.append({ entries: [ent(1, 1), ent(2, 1)] }, true);
    await wal.append({ entries: [ent(3, 1, 'x'.repeat(200))] }, true);
    await wal.close();
    // Tear the last record: zero its second half, as a crash mid-write leaves it.
    const f = join(d, segFiles(d).at(-1)!);
    const b = readFileSync(f);
    let end = b.length;
    while (end > 0 && b[end - 1] === 0) end--;
    b.fill(0, end - 100, end);
    writeFileSync(f, b);
    const r1 = await Wal.open(d, { segmentBytes: SEG });
    expect(r1.state.entries.map((e) => e.index)).toEqual([1, 2]);
    await r1.wal.append({ entries: [ent(3, 2)] }, true);
    await r1.wal.close();
    const r2 = await Wal.open(d, { segmentBytes: SEG });
    expect(r2.state.entries.map((e) => `${e.index}/${e.term}`)).toEqual(['1/1', '2/1', '3/2']);
    await r2.wal.close();
  });

  it('refuses to start on a flipped bit before the tail, naming the file and offset', async () => {
    const d = tmp();
    const { wal } = await Wal.open(d, { segmentBytes: SEG });
    for (let i = 1; i <= 5; i++) await wal.append({ entries: [ent(i, 1)] }, true);
    await wal.close();
    const name = segFiles(d)[0]!;
    const f = join(d, name);
    const b = readFileSync(f);
    const text = b.toString('latin1');
    const at = text.indexOf('e2.1');
    b[at]! ^= 0x04;
    writeFileSync(f, b);
    const err = await Wal.open(d, { segmentBytes: SEG }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WalCorruptionError);
    expect((err as WalCorruptionError).file).toContain(name);
    expect((err as Error).message).toMatch(/at offset \d+: checksum mismatch/);
    expect((err as WalCorruptionError).offset).toBeGreaterThan(0);
    expect((err as WalCorruptionError).offset).toBeLessThan(at);
  });

  it('rolls over to new segments and deletes those wholly below a snapshot', async () => {
    const d = tmp();
    const { wal } = await Wal.open(d, { segmentBytes: SEG });
    for (let i = 1; i <= 100; i++) await wal.append({ entries: [ent(i, 1, 'y'.repeat(100))], hardState: { term: 1, vote: 1, commit: i } }, false);
    await wal.close();
    expect(segFiles(d).length).toBeGreaterThan(2);
    for (const f of segFiles(d)) expect(statSync(join(d, f)).size).toBeGreaterThanOrEqual(SEG);
    const r1 = await Wal.open(d, { segmentBytes: SEG });
    expect(r1.state.entries.length).toBe(100);
    const before = segFiles(d).length;
    await r1.wal.markSnapshot(90, 1);
    expect(segFiles(d).length).toBeLessThan(before);
    await r1.wal.append({ entries: [ent(101, 2)], hardState: { term: 2, vote: 0, commit: 100 } }, true);
    await r1.wal.close();
    const r2 = await Wal.open(d, { segmentBytes: SEG });
    expect(r2.state.snapshot).toEqual({ index: 90, term: 1 });
    expect(r2.state.entries.map((e) => e.index)).toEqual([91, 92, 93, 94, 95, 96, 97, 98, 99, 100, 101]);
    expect(r2.state.hardState).toEqual({ term: 2, vote: 0, commit: 100 });
    await r2.wal.close();
  });

  it('replays any sequence of appends, overwrites and snapshots like a plain model', async () => {
    type Op = { kind: 'append'; back: number; n: number; bump: boolean } | { kind: 'snap'; back: number } | { kind: 'reopen' };
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      { weight: 5, arbitrary: fc.record({ kind: fc.constant('append' as const), back: fc.integer({ min: 0, max: 3 }), n: fc.integer({ min: 1, max: 6 }), bump: fc.boolean() }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('snap' as const), back: fc.integer({ min: 0, max: 5 }) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('reopen' as const) }) },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { maxLength: 30 }), async (ops) => {
        const d = tmp();
        let { wal } = await Wal.open(d, { segmentBytes: SEG });
        let snap = { index: 0, term: 0 };
        let log: Entry[] = [];
        let term = 1;
        const last = (): number => (log.length ? log[log.length - 1]!.index : snap.index);
        for (const op of ops) {
          if (op.kind === 'append') {
            if (op.bump) term++;
            const first = Math.max(snap.index + 1, last() + 1 - op.back);
            const ents = Array.from({ length: op.n }, (_, i) => ent(first + i, term, `v${first + i}.${term}.${'z'.repeat((first * 7) % 300)}`));
            await wal.append({ entries: ents, hardState: { term, vote: 1, commit: snap.index } }, false);
            log = [...log.filter((e) => e.index < first), ...ents];
          } else if (op.kind === 'snap') {
            const idx = Math.max(snap.index, last() - op.back);
            if (idx <= snap.index) continue;
            const t = log.find((e) => e.index === idx)!.term;
            await wal.markSnapshot(idx, t);
            snap = { index: idx, term: t };
            log = log.filter((e) => e.index > idx);
          } else {
            await wal.close();
            const r = await Wal.open(d, { segmentBytes: SEG });
            wal = r.wal;
            expect(r.state.snapshot).toEqual(snap);
            expect(r.state.entries.map((e) => `${e.index}/${e.term}`)).toEqual(log.map((e) => `${e.index}/${e.term}`));
          }
        }
        await wal.close();
        const r = await Wal.open(d, { segmentBytes: SEG });
        expect(r.state.snapshot).toEqual(snap);
        expect(r.state.entries.map((e) => `${e.index}/${e.term}`)).toEqual(log.map((e) => `${e.index}/${e.term}`));
        for (let i = 0; i < log.length; i++) expect(r.state.entries[i]!.data).toEqual(log[i]!.data);
        await r.wal.close();
      }),
      { numRuns: 60 },
    );
  });
});
