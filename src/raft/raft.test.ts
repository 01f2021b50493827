import { describe, expect, it } from 'vitest';
import { Cluster, dec, emptyConfState, enc } from './testing/cluster.js';

function threeNodes(): Cluster {
  const c = new Cluster({ seed: 7 });
  c.add([1, 2, 3], emptyConfState([1, 2, 3]));
  return c;
}

describe('RaftCore basics', () => {
  it('elects a leader and replicates a write to every member', () => {
    const c = threeNodes();
    c.core(1).campaign();
    c.stabilize();
    expect(c.leader()).toBe(1);
    const r = c.core(1).propose(enc('hello'));
    expect(r.ok).toBe(true);
    c.stabilize();
    c.tickAll(1);
    c.stabilize();
    for (const id of [1, 2, 3]) {
      const data = c.get(id).applied.filter((e) => e.data.length > 0).map((e) => dec(e.data));
      expect(data).toEqual(['hello']);
    }
  });

  it('elects a leader by timeout alone', () => {
    const c = threeNodes();
    for (let i = 0; i < 50 && c.leader() === 0; i++) {
      c.tickAll(1);
      c.stabilize();
    }
    expect(c.leader()).not.toBe(0);
  });

  it('refuses proposals on a follower with the leader as a hint', () => {
    const c = threeNodes();
    c.core(1).campaign();
    c.stabilize();
    const r = c.core(2).propose(enc('x'));
    expect(r).toMatchObject({ ok: false, reason: 'notLeader', leaderHint: 1 });
  });

  it('single member commits on its own', () => {
    const c = new Cluster();
    c.add([1], emptyConfState([1]));
    c.core(1).campaign();
    c.stabilize();
    expect(c.leader()).toBe(1);
    c.core(1).propose(enc('a'));
    c.stabilize();
    expect(c.get(1).applied.map((e) => dec(e.data))).toEqual(['', 'a']);
  });

  it('serves a ReadIndex read after a heartbeat round', () => {
    const c = threeNodes();
    c.core(1).campaign();
    c.stabilize();
    c.core(1).propose(enc('v'));
    c.stabilize();
    expect(c.core(1).readIndex('r1').ok).toBe(true);
    expect(c.core(2).readIndex('r2').ok).toBe(true);
    c.stabilize();
    expect(c.get(1).readStates).toEqual([{ index: 2, ctx: 'r1' }]);
    expect(c.get(2).readStates).toEqual([{ index: 2, ctx: 'r2' }]);
  });
});

describe('a follower caught up by snapshot under a steady write load', () => {
  /** 1 leads; 3 was cut off while the log was compacted past it: it is sent a snapshot (undelivered here). */
  function laggingFollower(): Cluster {
    const c = new Cluster({ seed: 11, config: { snapshotRetryTicks: 5 } });
    c.add([1, 2, 3], emptyConfState([1, 2, 3]));
    c.drop = (m) => m.to === 3 || m.from === 3;
    c.core(1).campaign();
    c.stabilize();
    for (let i = 0; i < 10; i++) c.core(1).propose(enc(`a${i}`));
    c.stabilize();
    c.core(1).takeSnapshot(enc('image'), 0);
    // 3 hears a heartbeat and answers; the append after it finds the log compacted: snapshot
    // state (the snapshot itself is lost).
    c.drop = (m) => m.type === 'snapshot';
    c.tick(1);
    c.stabilize();
    return c;
  }

  it('keeps the entries after the snapshot being sent when it compacts again', () => {
    const c = laggingFollower();
    c.drop = (m) => m.to === 3 || m.from === 3;
    const pr = c.core(1).status().progress!.get(3)!;
    expect(pr.state).toBe('snapshot');
    const sentAt = c.core(1).status().firstIndex - 1;
    for (let i = 0; i < 10; i++) c.core(1).propose(enc(`c${i}`));
    c.stabilize();
    // A new snapshot with nothing retained: the log still starts right after the one in flight.
    c.core(1).takeSnapshot(enc('image 2'), 0);
    expect(c.core(1).status().firstIndex).toBe(sentAt + 1);
  });

  it('waits snapshotRetryTicks from the stream\'s last progress before sending another', () => {
    const c = laggingFollower();
    c.drop = (m) => m.to === 3 || m.from === 3;
    for (let i = 0; i < 12; i++) {
      c.core(1).snapshotProgress(3);
      c.tick(1);
      c.stabilize();
      expect(c.core(1).status().progress!.get(3)!.state, `tick ${i}`).toBe('snapshot');
    }
    // No progress: retried after snapshotRetryTicks.
    c.tick(1, 5);
    expect(c.core(1).status().progress!.get(3)!.state).toBe('probe');
  });
});
