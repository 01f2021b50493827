/**
 * The test harness's startCluster and the fault harness's FaultCluster.start (`flotilla fuzz`,
 * `flotilla faults`, the member-exit tests): a member whose probed port another process took
 * before it could bind it (EADDRINUSE, exit code 2) makes the start begin again on new ports,
 * instead of failing the run that asked for a cluster (seen under a parallel suite, and once in
 * `flotilla fuzz` beside the soak).
 */
import { createServer } from 'node:net';
import { expect, it, vi } from 'vitest';

const probes = vi.hoisted(() => ({ taken: 0, n: 0 }));
vi.mock('../src/lib/proc.js', async (orig) => {
  const real = await orig<typeof import('../src/lib/proc.js')>();
  // The first port of the first probe is one a listener here holds.
  return {
    ...real,
    freePorts: async (n: number) => {
      const ports = await real.freePorts(n);
      if (probes.n++ === 0 && probes.taken) ports[0] = probes.taken;
      return ports;
    },
  };
});

it('startCluster starts again on new ports when a member finds its port taken', async () => {
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
  probes.n = 0;
  probes.taken = (blocker.address() as { port: number }).port;
  const { startCluster } = await import('./support/cluster.js');
  const c = await startCluster('flotilla');
  try {
    // Two rounds of probes: the second cluster is the one that started.
    expect(probes.n).toBe(2);
    expect(c.members.map((m) => m.clientUrl).join()).not.toContain(`:${probes.taken}`);
  } finally {
    await c.stop();
    blocker.close();
  }
}, 120_000);

it('FaultCluster.start starts again on new ports when a member finds its port taken', async () => {
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
  probes.n = 0;
  probes.taken = (blocker.address() as { port: number }).port;
  const { FaultCluster } = await import('../src/faults/cluster.js');
  const c = await FaultCluster.start(3);
  try {
    // Two rounds of probes: the second cluster is the one that started.
    expect(probes.n).toBe(2);
    expect(c.endpoints.join()).not.toContain(`:${probes.taken}`);
  } finally {
    await c.stop();
    blocker.close();
  }
}, 120_000);
