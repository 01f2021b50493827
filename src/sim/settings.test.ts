import { describe, expect, it } from 'vitest';
import { BASE_FAULT_CHANCE, BASE_FAULT_KINDS, chooseSetting, FAULT_KINDS, WORKLOAD_FAULT_CHANCE, type FaultKind, type Setting } from './settings.js';
import { stream, streamSeed } from './streams.js';

/** The settings no fault kind adjusts (compaction sets snapshotEvery, joint the voters, divergence the message limits). */
function unadjusted(s: Setting): unknown {
  const { faults: _f, snapshotEvery: _e, voters: _v, learners: _l, maxMsgBytes: _m, inflightMsgsMax: _i, ...rest } = s;
  return rest;
}

describe('random streams per purpose', () => {
  it('a stream is a function of (seed, name); other seeds and names give other streams', () => {
    const draw = (seed: number, name: string): number[] => {
      const r = stream(seed, name);
      return Array.from({ length: 8 }, () => r.next());
    };
    expect(draw(7, 'network')).toEqual(draw(7, 'network'));
    expect(draw(7, 'network')).not.toEqual(draw(8, 'network'));
    expect(draw(7, 'network')).not.toEqual(draw(7, 'disk'));
    const seeds = new Set<number>();
    for (let seed = 0; seed < 1000; seed++) for (const k of FAULT_KINDS) seeds.add(streamSeed(seed, `fault ${k}`));
    expect(seeds.size).toBeGreaterThan(1000 * FAULT_KINDS.length - 5);
  });

  it('each fault kind is in or out by its own stream: adding a kind changes no other kind of any seed', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const faults = chooseSetting({ seed }).faults;
      const drawn = FAULT_KINDS.filter((k) => stream(seed, `choose ${k}`).next() < ((BASE_FAULT_KINDS as readonly FaultKind[]).includes(k) ? BASE_FAULT_CHANCE : WORKLOAD_FAULT_CHANCE));
      // Every drawn kind is in; a seed that drew no base kind has exactly one more (the closest).
      for (const k of drawn) expect(faults, `seed ${seed}`).toContain(k);
      const base = drawn.filter((k) => (BASE_FAULT_KINDS as readonly FaultKind[]).includes(k));
      expect(faults.length, `seed ${seed}`).toBe(drawn.length + (base.length === 0 ? 1 : 0));
    }
  });

  it('the fault kinds a seed runs with do not shift its other settings', () => {
    for (let seed = 1; seed <= 100; seed++) {
      const chosen = chooseSetting({ seed });
      for (const faults of [['crash'], ['partition', 'lossy'], [...FAULT_KINDS]] as FaultKind[][]) {
        expect(unadjusted(chooseSetting({ seed, faults })), `seed ${seed} faults ${faults.join(',')}`).toEqual(unadjusted(chosen));
      }
    }
  });
});
