import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { encodeCommand, type Command } from './commands.js';
import type { KvEvent } from './mvcc.js';
import { KvStateMachine } from './state-machine.js';
import { PROGRESS_WATCH_ID, WatchHub, type WatchOut } from './watch.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

function applier(sm: KvStateMachine) {
  let index = 0;
  return (c: Command) => sm.apply({ index: ++index, term: 1, type: 'normal', data: encodeCommand(c) });
}

/** A sink that refuses (is "slow") when told to; responses are kept either way, as gRPC queues them. */
class Sink {
  out: WatchOut[] = [];
  slow = false;
  send(o: WatchOut): boolean {
    this.out.push(o);
    return !this.slow;
  }
}

describe('watch hub', () => {
  it('sends created, history from a past revision, then live events; cancel; progress', () => {
    const sm = new KvStateMachine();
    const apply = applier(sm);
    const hub = new WatchHub(sm);
    apply({ op: 'put', req: { key: enc('a'), value: enc('1') } }); // rev 2
    apply({ op: 'put', req: { key: enc('b'), value: enc('2') } }); // rev 3
    const sink = new Sink();
    const s = hub.open(sink);
    s.create({ key: enc('a'), rangeEnd: enc('c'), startRevision: 2, prevKv: true });
    expect(sink.out[0]).toMatchObject({ watchId: 0, created: true, revision: 3 });
    expect(sink.out[1]!.events!.map((e) => dec(e.kv.key))).toEqual(['a', 'b']);
    apply({ op: 'put', req: { key: enc('a'), value: enc('3') } }); // rev 4
    expect(sink.out[2]).toMatchObject({ watchId: 0, revision: 4 });
    expect(dec(sink.out[2]!.events![0]!.prevKv!.value)).toBe('1');
    s.requestProgress();
    expect(sink.out[3]).toMatchObject({ watchId: PROGRESS_WATCH_ID, revision: 4 });
    s.cancel(0);
    expect(sink.out[4]).toMatchObject({ watchId: 0, canceled: true });
    apply({ op: 'put', req: { key: enc('a'), value: enc('4') } });
    expect(sink.out).toHaveLength(5);
  });

  it('sends periodic progress notifications only to caught-up watchers that asked', () => {
    vi.useFakeTimers();
    try {
      const sm = new KvStateMachine();
      const apply = applier(sm);
      const hub = new WatchHub(sm, { progressIntervalMs: 1000 });
      apply({ op: 'put', req: { key: enc('a'), value: enc('1') } });
      const asked = new Sink();
      const silent = new Sink();
      hub.open(asked).create({ key: enc('a'), progressNotify: true });
      hub.open(silent).create({ key: enc('a') });
      vi.advanceTimersByTime(1000);
      expect(asked.out.at(-1)).toEqual({ watchId: 0, revision: 2, events: [] });
      expect(silent.out).toHaveLength(1);
      // A slow consumer is not told "caught up" while it is not.
      asked.slow = true;
      apply({ op: 'put', req: { key: enc('a'), value: enc('2') } });
      const n = asked.out.length;
      vi.advanceTimersByTime(1000);
      expect(asked.out).toHaveLength(n);
      hub.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('cancels a watcher whose start is compacted, with the compact revision', () => {
    const sm = new KvStateMachine();
    const apply = applier(sm);
    const hub = new WatchHub(sm);
    for (let i = 0; i < 5; i++) apply({ op: 'put', req: { key: enc('k'), value: enc(String(i)) } });
    apply({ op: 'compact', revision: 4 });
    const sink = new Sink();
    hub.open(sink).create({ key: enc('k'), startRevision: 3 });
    expect(sink.out[1]).toMatchObject({ canceled: true, compactRevision: 4 });
  });

  it('property: every watcher gets exactly its events, in order, whole revisions, despite slow consumers, compaction and restores', () => {
    type Op =
      | { t: 'put'; k: number; v: number }
      | { t: 'del'; k: number; range: boolean }
      | { t: 'watch'; k: number; range: boolean; back: number; noPut: boolean; noDelete: boolean }
      | { t: 'slow'; s: number; on: boolean }
      | { t: 'compact'; back: number }
      | { t: 'restore' };
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 8, arbitrary: fc.record({ t: fc.constant('put' as const), k: fc.nat(5), v: fc.nat(99) }) },
      { weight: 2, arbitrary: fc.record({ t: fc.constant('del' as const), k: fc.nat(5), range: fc.boolean() }) },
      { weight: 2, arbitrary: fc.record({ t: fc.constant('watch' as const), k: fc.nat(5), range: fc.boolean(), back: fc.nat(6), noPut: fc.boolean(), noDelete: fc.boolean() }) },
      { weight: 2, arbitrary: fc.record({ t: fc.constant('slow' as const), s: fc.nat(2), on: fc.boolean() }) },
      { weight: 1, arbitrary: fc.record({ t: fc.constant('compact' as const), back: fc.nat(4) }) },
      { weight: 1, arbitrary: fc.record({ t: fc.constant('restore' as const) }) },
    );
    fc.assert(
      fc.property(fc.array(op, { minLength: 10, maxLength: 80, size: 'max' }), (ops) => {
        const sm = new KvStateMachine();
        const apply = applier(sm);
        const hub = new WatchHub(sm, { limits: { catchUpEventsPerResponse: 2 } });
        const all: { rev: number; events: readonly KvEvent[] }[] = [];
        sm.onCommit((events, rev) => all.push({ rev, events }));
        const sinks = [new Sink(), new Sink(), new Sink()];
        const streams = sinks.map((s) => hub.open(s));
        const specs: { stream: number; id: number; lo: string; hi: string | null; start: number; noPut: boolean; noDelete: boolean }[] = [];
        let n = 0;
        for (const o of ops) {
          const key = `k${o.t === 'put' || o.t === 'del' || o.t === 'watch' ? o.k : 0}`;
          if (o.t === 'put') apply({ op: 'put', req: { key: enc(key), value: enc(String(o.v)) } });
          else if (o.t === 'del') apply({ op: 'deleteRange', req: { key: enc(key), rangeEnd: o.range ? enc('k9') : undefined } });
          else if (o.t === 'watch') {
            const s = n++ % 3;
            const start = Math.max(1, sm.store.revision + 1 - o.back);
            const before = sinks[s]!.out.length;
            streams[s]!.create({ key: enc(key), rangeEnd: o.range ? enc('k4') : undefined, startRevision: start, noPut: o.noPut, noDelete: o.noDelete });
            const created = sinks[s]!.out[before]!;
            specs.push({ stream: s, id: created.watchId, lo: key, hi: o.range ? 'k4' : null, start, noPut: o.noPut, noDelete: o.noDelete });
          } else if (o.t === 'slow') {
            sinks[o.s]!.slow = o.on;
            if (!o.on) streams[o.s]!.drained();
          } else if (o.t === 'compact') {
            const rev = sm.store.revision - o.back;
            if (rev > sm.store.compactRevision) apply({ op: 'compact', revision: rev });
          } else {
            sm.restore(sm.snapshot(), sm.appliedIndex);
          }
        }
        for (let i = 0; i < 3; i++) {
          sinks[i]!.slow = false;
          streams[i]!.drained();
        }
        for (const w of specs) {
          const outs = sinks[w.stream]!.out.filter((o) => o.watchId === w.id && !o.created);
          // Watch ids are reused only after a cancel; this property never cancels, so ids are unique per stream.
          const got = outs.flatMap((o) => (o.events ?? []).map((e) => ({ rev: e.kv.modRevision, type: e.type, key: dec(e.kv.key) })));
          const want = all
            .filter((x) => x.rev >= w.start)
            .flatMap((x) =>
              x.events
                .filter((e) => {
                  const k = dec(e.kv.key);
                  const inRange = w.hi === null ? k === w.lo : k >= w.lo && k < w.hi;
                  return inRange && !(e.type === 'put' ? w.noPut : w.noDelete);
                })
                .map((e) => ({ rev: e.kv.modRevision, type: e.type, key: dec(e.kv.key) })),
            );
          const cancel = outs.find((o) => o.canceled);
          if (cancel) {
            // Cancelled for compaction: what was sent is a prefix, and nothing after it survived compaction.
            expect(want.slice(0, got.length)).toEqual(got);
            const next = got.length > 0 ? got[got.length - 1]!.rev + 1 : w.start;
            expect(next).toBeLessThanOrEqual(cancel.compactRevision!);
          } else {
            expect(got).toEqual(want);
          }
          // Atomic: a revision's events are never split over two responses.
          const revsPerResponse = outs.map((o) => new Set((o.events ?? []).map((e) => e.kv.modRevision)));
          for (let i = 1; i < revsPerResponse.length; i++) {
            for (const r of revsPerResponse[i]!) for (let j = 0; j < i; j++) expect(revsPerResponse[j]!.has(r)).toBe(false);
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
