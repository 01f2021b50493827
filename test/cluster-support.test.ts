/**
 * The test harness's startCluster: a member whose probed port another process took before it
 * could bind it (EADDRINUSE, exit code 2) makes startCluster start again on new ports, instead of
 * failing the test that asked for a cluster (seen under a parallel suite).
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
