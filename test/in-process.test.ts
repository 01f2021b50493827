/**
 * The in-process server harness (support/in-process.ts): three server members in this process
 * over one MemoryNetwork, a MemFs and memory backends. Writes replicate, reads are
 * linearizable on every member, the peer URLs are never listened on (no peer port), and a
 * member cut off by the network loses its place: the other two elect a leader and go on.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlotillaClient } from '../src/client/index.js';
import { startInProcessCluster, type InProcessCluster } from './support/in-process.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resolves true when something accepts a TCP connection at host:port. */
const listening = (hostPort: string): Promise<boolean> =>
  new Promise((resolve) => {
    const [host, port] = hostPort.split(':');
    const s = connect({ host: host!, port: Number(port) });
    s.on('connect', () => (s.destroy(), resolve(true)));
    s.on('error', () => resolve(false));
  });

describe('the in-process server harness', () => {
  let cluster: InProcessCluster;
  const clients: FlotillaClient[] = [];
  const client = (endpoints: string[]): FlotillaClient => {
    const c = new FlotillaClient({ endpoints });
    clients.push(c);
    return c;
  };
  beforeAll(async () => {
    cluster = await startInProcessCluster();
  }, 60_000);
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await cluster?.stop();
  });

  it('replicates a write to every member, over no peer port', async () => {
    await client([cluster.endpoints[0]!]).put('greeting', 'hello');
    for (const e of cluster.endpoints) expect((await client([e]).get('greeting')).kvs.map((kv) => kv.value.toString())).toEqual(['hello']);
    for (const m of cluster.members) expect(await listening(m.peerUrl.replace('http://', ''))).toBe(false);
  });

  it('a member cut off by the network: the other two elect a leader and serve writes', async () => {
    const leaderIndex = (): number => cluster.members.findIndex((m) => m.server.member.node.leader !== 0 && m.server.member.node.leader === m.server.member.raftId);
    for (const deadline = Date.now() + 20_000; leaderIndex() < 0; await sleep(50)) if (Date.now() > deadline) throw new Error('no leader');
    const cut = leaderIndex();
    const raftIds = cluster.members.map((m) => m.server.member.raftId);
    cluster.network.isolate(raftIds[cut]!, raftIds);
    const rest = cluster.endpoints.filter((_, i) => i !== cut);
    const others = cluster.members.filter((_, i) => i !== cut);
    const newLeader = () => others.find((m) => m.server.member.node.leader === m.server.member.raftId);
    for (const deadline = Date.now() + 30_000; !newLeader(); await sleep(50)) if (Date.now() > deadline) throw new Error(`no new leader\n${others.map((m) => m.output.slice(-2000)).join('\n')}`);
    await client(rest).put('after-cut', 'yes');
    expect((await client([rest[1]!]).get('after-cut')).kvs.map((kv) => kv.value.toString())).toEqual(['yes']);
    cluster.network.heal();
  }, 60_000);
});
