/**
 * A chain node's registration epochs (caughtUpEpoch, syncedEpoch: src/chain/master.ts
 * holdsCommitted) survive a restart of the node from its data directory, in process: one
 * in-process control cluster member, the nodes here, the master's rounds called by the test (so
 * every configuration is the test's doing, no race with a master's timer).
 *
 * The bug: a joiner appended as the tail after catching up (caughtUpEpoch e) does not hold what
 * the old tail committed after e until it syncs with its predecessor as a member; the master must
 * not leave it as the only survivor. A restart used to register both epochs as null — "holds
 * everything committed" — and the master dropped the dead predecessor, leaving the restarted node
 * alone without the writes acknowledged after it caught up.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FlotillaClient } from '../src/client/client.js';
import { holdsCommitted } from '../src/chain/master.js';
import { ChainClient } from '../src/chainnode/client.js';
import { readChain } from '../src/chainnode/control.js';
import { ChainMaster } from '../src/chainnode/master-process.js';
import { ChainNodeProcess } from '../src/chainnode/node-process.js';
import { chainTestEnv, leaseOf, until } from './support/chain.js';

const { dir, cleanup, controlCluster } = chainTestEnv('flotilla-chain-epochs-');

describe('chain node registration epochs across a restart', () => {
  it('a joiner that caught up, was appended as the tail and restarted before syncing still registers its caught-up epoch; the master does not leave it as the only survivor', async () => {
    const cluster = await controlCluster();
    const ctl = new FlotillaClient({ endpoints: cluster.endpoints });
    cleanup.push(() => ctl.close());
    // Not started: the test calls its rounds.
    const master = new ChainMaster({ chain: 'e', control: cluster.endpoints, name: 'm', membersMax: 2, bootstrapMembers: 1 });
    cleanup.push(() => master.stop());
    const opts = { chain: 'e', listen: '127.0.0.1:0', control: cluster.endpoints, tickMs: 20, pollMs: 200, leaseTtlSec: 5 };
    const start = async (name: string): Promise<ChainNodeProcess> => {
      const n = await ChainNodeProcess.start({ ...opts, name, dataDir: join(dir, name) });
      cleanup.push(() => n.stop());
      return n;
    };
    const view = (): Promise<Awaited<ReturnType<typeof readChain>>> => readChain(ctl, 'e');
    const client = new ChainClient({ chain: 'e', control: cluster.endpoints, timeoutMs: 20_000 });
    cleanup.push(() => client.close());

    const n1 = await start('n1');
    await until('n1 registered', async () => (await view()).nodes.has('n1'));
    await master.round();
    expect((await view()).config?.members).toEqual(['n1']);
    await until('a write at n1', () => client.put('k', 'v1'));

    // n2 joins and catches up with the tail n1 in epoch e.
    const n2 = await start('n2');
    await until('n2 registered', async () => (await view()).nodes.has('n2'));
    const e = await master.round();
    expect(e).not.toBeNull();
    expect((await view()).config?.joining).toBe('n2');
    await until('n2 reporting it caught up in epoch e', async () => (await view()).nodes.get('n2')?.registration.caughtUpEpoch === e);

    // n1 stops before n2 becomes a member: n2, appended as the tail, cannot sync with it.
    await n1.stop();
    await until('n1\'s registration gone', async () => !(await view()).nodes.has('n1'));
    await master.round();
    expect((await view()).config).toMatchObject({ members: ['n1', 'n2'], joining: null });
    const before = (await view()).nodes.get('n2')!.registration;
    expect(before).toMatchObject({ caughtUpEpoch: e, syncedEpoch: null });
    expect(holdsCommitted(before)).toBe(false);
    // The master keeps n1 (the only one known to hold everything committed) and waits.
    await master.round();
    expect((await view()).config?.members).toEqual(['n1', 'n2']);

    // n2 restarts from its data directory.
    await n2.stop();
    const n2b = await start('n2');
    const after = await until('n2 registered again under its new lease', async () => {
      const v = await view();
      const mine = v.nodes.get('n2');
      return mine !== undefined && mine.lease === leaseOf(n2b) ? mine.registration : null;
    });
    expect(after).toMatchObject({ caughtUpEpoch: e, syncedEpoch: null });
    expect(holdsCommitted(after)).toBe(false);
    // The master gives the re-registered member a new epoch, but keeps n1: not [n2] alone.
    const e3 = await master.round();
    expect(e3).not.toBeNull();
    expect(e3!).toBeGreaterThan(after.createRevision);
    expect((await view()).config?.members).toEqual(['n1', 'n2']);

    // n1 back: n2 syncs with it as a member and now holds everything committed; the chain serves.
    await start('n1');
    await until('n2 synced after catching up', async () => {
      await master.round();
      const r = (await view()).nodes.get('n2')?.registration;
      return r !== undefined && holdsCommitted(r) && r.syncedEpoch !== null;
    });
    await until('a write through n1 -> n2', () => client.put('k', 'v2'));
    expect(new TextDecoder().decode((await client.get('k')).value!)).toBe('v2');
  }, 120_000);
});
