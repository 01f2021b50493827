import { describe, expect, it } from 'vitest';
import { ConfigError, resolveConfig } from './config.js';
import { Cluster, emptyConfState, enc } from './testing/cluster.js';

const E = 10; // election ticks
const DRIFT = 2; // the default margin: ceil(E / 5)

/** Three members with lease reads; 1 leads, has committed an entry of its term, and holds a lease. */
function leasedCluster(): Cluster {
  const c = new Cluster({ seed: 3, electionTicks: E, heartbeatTicks: 1, config: { readOnly: 'lease' } });
  c.add([1, 2, 3], emptyConfState([1, 2, 3]));
  // Members that just started ignore votes for an election timeout (see the restart test).
  c.tick(2, E);
  c.tick(3, E);
  c.stabilize();
  expect(c.core(2).currentTerm + c.core(3).currentTerm, 'nobody campaigned yet (fixed seed)').toBe(0);
  c.core(1).campaign();
  c.stabilize();
  expect(c.leader()).toBe(1);
  c.core(1).propose(enc('v'));
  c.stabilize();
  // One heartbeat round acknowledged by a quorum starts the lease.
  c.tick(1);
  c.stabilize();
  return c;
}

/** Asks the leader for a read and reports whether it answered without sending anything. */
function answeredAtOnce(c: Cluster, ctx: string): boolean {
  const before = c.get(1).readStates.length;
  const queued = c.queue.length;
  expect(c.core(1).readIndex(ctx).ok).toBe(true);
  c.processReady(1);
  const answered = c.get(1).readStates.length > before;
  if (answered) expect(c.queue.length, 'a lease read sends no heartbeat round').toBe(queued);
  return answered;
}

describe('lease reads', () => {
  it('the leader answers at once while a quorum acknowledged a heartbeat within the lease', () => {
    const c = leasedCluster();
    expect(answeredAtOnce(c, 'r1')).toBe(true);
    expect(c.get(1).readStates.at(-1)).toEqual({ index: 2, ctx: 'r1' });
  });

  it('the lease runs out electionTicks - leaseDriftTicks after the last acknowledged round was sent', () => {
    const c = leasedCluster();
    // From now on nothing reaches the leader's peers.
    c.drop = () => true;
    // The acknowledged round was sent on the leader's latest tick; E - DRIFT - 1 ticks later it
    // still holds the lease, one more and it does not.
    c.tick(1, E - DRIFT - 1);
    c.stabilize();
    expect(answeredAtOnce(c, 'last')).toBe(true);
    c.tick(1);
    c.stabilize();
    expect(c.core(1).currentRole).toBe('leader');
    expect(answeredAtOnce(c, 'late')).toBe(false);
    // Without the lease the read waits for a heartbeat round, which never comes back.
    c.stabilize();
    expect(c.get(1).readStates.map((r) => r.ctx)).not.toContain('late');
  });

  it('a new acknowledged round extends the lease', () => {
    const c = leasedCluster();
    for (let i = 0; i < 3 * E; i++) {
      c.tick(1);
      c.stabilize();
    }
    expect(answeredAtOnce(c, 'still')).toBe(true);
  });

  it('no lease reads once a leadership transfer has started in this term', () => {
    const c = leasedCluster();
    c.drop = (m) => m.to === 2; // the transfer cannot complete
    expect(c.core(1).transferLeader(2).ok).toBe(true);
    c.stabilize();
    expect(answeredAtOnce(c, 'during transfer')).toBe(false);
  });

  it('a member that just restarted ignores votes for an election timeout (it may have extended a lease before it crashed)', () => {
    const c = leasedCluster();
    c.restart(3);
    c.drop = (m) => m.from === 1 || m.to === 1; // the leader is cut off: 2 campaigns
    c.core(2).campaign();
    c.stabilize();
    expect(c.core(2).currentRole).not.toBe('leader');
    expect(c.core(3).currentTerm).toBe(c.core(1).currentTerm);
    // After an election timeout of its own clock, 3 votes again.
    c.tick(3, E);
    c.tick(2, E);
    c.stabilize();
    c.core(2).campaign();
    c.stabilize();
    expect(c.core(2).currentRole).toBe('leader');
  });

  it('without lease reads a restarted member votes at once', () => {
    const c = new Cluster({ seed: 3, electionTicks: E, heartbeatTicks: 1 });
    c.add([1, 2, 3], emptyConfState([1, 2, 3]));
    c.core(1).campaign();
    c.stabilize();
    c.restart(3);
    c.drop = (m) => m.from === 1 || m.to === 1;
    c.tick(2, E);
    c.core(2).campaign();
    c.stabilize();
    expect(c.core(2).currentRole).toBe('leader');
  });

  it('is refused without check-quorum, and the drift margin is bounded', () => {
    const base = { id: 1, electionTicks: E, heartbeatTicks: 1, rng: { next: () => 0.5 } } as never as Parameters<typeof resolveConfig>[0];
    expect(() => resolveConfig({ ...base, readOnly: 'lease', checkQuorum: false })).toThrow(ConfigError);
    expect(() => resolveConfig({ ...base, readOnly: 'lease', leaseDriftTicks: E })).toThrow(/leaseDriftTicks/);
    expect(() => resolveConfig({ ...base, readOnly: 'lease', leaseDriftTicks: -1 })).toThrow(/leaseDriftTicks/);
    expect(resolveConfig({ ...base, readOnly: 'lease' }).leaseDriftTicks).toBe(DRIFT);
  });
});
