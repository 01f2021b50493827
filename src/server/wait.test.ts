import { describe, expect, it } from 'vitest';
import { Deadline, retryForLeader, waitUntil, withDeadline } from './wait.js';

const never = new Promise<never>(() => undefined);

describe('retryForLeader', () => {
  it('answers with the first attempt that answers', async () => {
    let tries = 0;
    const r = await retryForLeader({ deadline: Deadline.in(60_000), stopped: () => false, hasLeader: () => true }, async () => (++tries === 3 ? 'done' : null));
    expect(r).toBe('done');
    expect(tries).toBe(3);
  });

  it('at the deadline: no leader when none is known, else timed out', async () => {
    const past = Deadline.in(0);
    await expect(retryForLeader({ deadline: past, stopped: () => false, hasLeader: () => false }, async () => null)).rejects.toThrow('etcdserver: no leader');
    await expect(retryForLeader({ deadline: past, stopped: () => false, hasLeader: () => true }, async () => null)).rejects.toThrow('etcdserver: request timed out');
  });

  it('a stopped member makes no attempt', async () => {
    let tries = 0;
    await expect(retryForLeader({ deadline: Deadline.in(60_000), stopped: () => true, hasLeader: () => true }, async () => ++tries)).rejects.toThrow('etcdserver: server stopped');
    expect(tries).toBe(0);
  });

  it('an attempt that throws ends the wait with its error', async () => {
    await expect(retryForLeader({ deadline: Deadline.in(60_000), stopped: () => false, hasLeader: () => true }, () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
  });
});

describe('waitUntil and withDeadline', () => {
  it('waitUntil returns once the condition holds, throws at the deadline or when stopped', async () => {
    let n = 0;
    await waitUntil(() => ++n >= 3, { deadline: Deadline.in(60_000), pollMs: 1 });
    expect(n).toBe(3);
    await expect(waitUntil(() => false, { deadline: Deadline.in(0), pollMs: 1 })).rejects.toThrow('etcdserver: request timed out');
    await expect(waitUntil(() => false, { deadline: Deadline.in(60_000), pollMs: 1, stopped: () => true })).rejects.toThrow('etcdserver: server stopped');
  });

  it('withDeadline: the promise, or timed out (or the given error) once the deadline passes', async () => {
    await expect(withDeadline(Promise.resolve(7), Deadline.in(60_000))).resolves.toBe(7);
    await expect(withDeadline(never, Deadline.in(1))).rejects.toThrow('etcdserver: request timed out');
    await expect(withDeadline(never, Deadline.in(1), () => new Error('health check timed out'))).rejects.toThrow('health check timed out');
  });

  it('Deadline.within takes the earlier of the two', () => {
    const d = Deadline.in(60_000);
    expect(d.within(10).at).toBeLessThan(d.at);
    expect(d.within(120_000).at).toBe(d.at);
  });
});
