/**
 * A chain node's registration key (/flotilla/chains/NAME/nodes/NODE) must stay under the lease of
 * the node's current run (src/chainnode/node-process.ts), in process: the control cluster is one
 * in-process member, the master and the nodes run here too.
 *
 * The bug (found by the chain simulator, src/sim/chain-sim.ts): a delayed put of the node's
 * previous run (restarted under the same name) carries that run's lease and moves the key under
 * it; when that lease expires the key vanishes, the master drops the node, and the node — its own
 * lease kept alive — never registered again. The test plays the previous run: it puts the key
 * under a lease of its own, then revokes that lease (its expiry); or it deletes the key outright.
 * Each time the node must notice, register again under a lease of its own, and the master add it
 * back as a member. And the re-registration's bound: two processes misconfigured with one name
 * fight over the key, each at most once per pollMs (not as fast as the control cluster answers).
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FlotillaClient } from '../src/client/client.js';
import { ChainClient } from '../src/chainnode/client.js';
import { nodesPrefix } from '../src/chainnode/control.js';
import { ChainMaster } from '../src/chainnode/master-process.js';
import { ChainNodeProcess } from '../src/chainnode/node-process.js';
import { chainTestEnv, leaseOf, until } from './support/chain.js';

const { dir, cleanup, controlCluster } = chainTestEnv('flotilla-chain-registration-');

describe('chain node registration', () => {
  it('a registration key taken over by another lease (a previous run\'s delayed put) and then gone: the node registers again and the master adds it back', async () => {
    const cluster = await controlCluster();
    const master = new ChainMaster({ chain: 'r', control: cluster.endpoints, name: 'm', intervalMs: 100, membersMax: 2, bootstrapMembers: 2 });
    master.start();
    cleanup.push(() => master.stop());
    const lines: string[] = [];
    const opts = { chain: 'r', listen: '127.0.0.1:0', control: cluster.endpoints, tickMs: 20, pollMs: 200, leaseTtlSec: 5, log: (l: string) => lines.push(l) };
    const n1 = await ChainNodeProcess.start({ ...opts, name: 'n1', dataDir: join(dir, 'r1') });
    cleanup.push(() => n1.stop());
    const n2 = await ChainNodeProcess.start({ ...opts, name: 'n2', dataDir: join(dir, 'r2') });
    cleanup.push(() => n2.stop());
    const ctl = new FlotillaClient({ endpoints: cluster.endpoints });
    cleanup.push(() => ctl.close());
    const client = new ChainClient({ chain: 'r', control: cluster.endpoints, timeoutMs: 20_000 });
    cleanup.push(() => client.close());
    const key = nodesPrefix('r') + 'n2';

    /** n2's key under n2's own (current) lease, and n2 a member again (not a joiner). */
    const settled = async (what: string): Promise<void> => {
      await until(what, async () => {
        const kv = (await ctl.get(key)).kvs[0];
        const v = await client.status();
        return kv !== undefined && kv.lease !== 0n && kv.lease === leaseOf(n2) && v.config?.members.join(',') === 'n1,n2' && v.config.joining === null;
      });
    };
    await settled('a chain n1 -> n2');
    let round = 0;
    const writeAndRead = async (): Promise<void> => {
      round++;
      await until(`write ${round} through both nodes`, () => client.put('k', `v${round}`));
      expect(new TextDecoder().decode((await client.get('k')).value!)).toBe(`v${round}`);
    };
    await writeAndRead();

    // 1. The previous run's delayed put: the key under that run's lease (its value too), which
    //    then expires (revoked here: the same for the key).
    const stale = await ctl.leaseGrant(60);
    await ctl.put(key, JSON.stringify({ address: n2.address, caughtUpEpoch: null, syncedEpoch: null }), { lease: stale.id });
    await ctl.leaseRevoke(stale.id);
    await settled('n2 registered again under its own lease and a member again');
    expect(leaseOf(n2)).not.toBe(stale.id);
    // The stale lease is gone and the key is not under it: it stays.
    expect((await ctl.get(key)).kvs[0]!.lease).toBe(leaseOf(n2));
    await writeAndRead();

    // 2. The same, the stale lease living on a while (the node sees the key under it first).
    const stale2 = await ctl.leaseGrant(60);
    await ctl.put(key, JSON.stringify({ address: n2.address, caughtUpEpoch: 1, syncedEpoch: null }), { lease: stale2.id });
    await until('n2 taking its key back', async () => (await ctl.get(key)).kvs[0]?.lease === leaseOf(n2));
    await ctl.leaseRevoke(stale2.id);
    await settled('n2 still registered after the stale lease is gone');
    // Its value is the node's own again (not the previous run's caughtUpEpoch).
    const mine = (n2 as unknown as { registrationValue(): string }).registrationValue();
    await until('n2\'s own value in its key', async () => (await ctl.get(key)).kvs[0]?.value.toString() === mine);
    await writeAndRead();

    // 3. The key deleted outright (no lease at all).
    await ctl.delete(key);
    await settled('n2 registered again after its key was deleted');
    await writeAndRead();

    expect(lines.some((l) => l.includes('node n2') && l.includes('registering again'))).toBe(true);
  }, 120_000);

  it('two processes misconfigured with one name take the key from each other at most once per pollMs each', async () => {
    const POLL_MS = 200;
    const cluster = await controlCluster();
    const at: number[][] = [[], []];
    const start = (i: number): Promise<ChainNodeProcess> =>
      ChainNodeProcess.start({
        chain: 'd', name: 'twin', dataDir: join(dir, `d${i}`), listen: '127.0.0.1:0', control: cluster.endpoints, tickMs: 20, pollMs: POLL_MS,
        log: (l) => {
          if (l.includes('registering again')) at[i]!.push(performance.now());
        },
      });
    const a = await start(0);
    cleanup.push(() => a.stop());
    const b = await start(1);
    cleanup.push(() => b.stop());
    // They do fight over the key (each sees it under the other's lease)...
    await until('three re-registrations of each', () => at[0]!.length >= 3 && at[1]!.length >= 3);
    // ...but not faster than one re-registration per pollMs each.
    for (const times of at) for (let j = 1; j < times.length; j++) expect(times[j]! - times[j - 1]!).toBeGreaterThanOrEqual(POLL_MS - 1);
  }, 60_000);
});
