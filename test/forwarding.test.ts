/**
 * A follower's client port serves writes, leases, locks and elections by forwarding to the leader
 * over the peer transport (src/server/peer-calls.ts) and waiting for its own apply; nothing that
 * only members may call is on the client port; the leader refuses a forwarded publish of another
 * member's attributes; a follower cut off from the leader forwards nothing. Real member
 * processes (test/support/cluster.ts).
 */
import * as grpc from '@grpc/grpc-js';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientError, Cmp, FlotillaClient, Op } from '../src/client/index.js';
import { encodeRequest, type Command } from '../src/kv/commands.js';
import { encodePeerCall } from '../src/server/peer-calls.js';
import { encodeHandshake, encodeMemberFrame, PROTOCOL_VERSION } from '../src/transport/codec.js';
import { startCluster, type Cluster } from './support/cluster.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => Promise<boolean> | boolean, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** "ok" or the error's details. */
const outcome = (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'ok',
    (e: unknown) => (e instanceof ClientError ? e.details : String(e)),
  );

/** --max-request-bytes' default. */
const MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;

describe('writes through a follower, over the peer transport', () => {
  let cluster: Cluster;
  let leader = -1;
  let follower = -1;
  const clients: FlotillaClient[] = [];
  const client = (i: number): FlotillaClient => {
    const c = new FlotillaClient({ endpoints: [cluster.endpoints[i]!], requestTimeoutMs: 10_000 });
    clients.push(c);
    return c;
  };
  let viaFollower: FlotillaClient;
  let viaLeader: FlotillaClient;

  beforeAll(async () => {
    cluster = await startCluster('flotilla', { extraArgs: ['--unsafe-fault-injection'] });
    const admin = new FlotillaClient({ endpoints: cluster.endpoints });
    clients.push(admin);
    await until(async () => {
      for (let i = 0; i < cluster.endpoints.length; i++) {
        const s = await admin.status(cluster.endpoints[i]!);
        if (s.leader !== 0n && s.leader === s.header.memberId) leader = i;
      }
      return leader >= 0;
    }, 'a leader');
    follower = (leader + 1) % cluster.endpoints.length;
    viaFollower = client(follower);
    viaLeader = client(leader);
  }, 60_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await cluster?.stop();
  });

  /** The member at `i` still leads (a re-election would make a follower test pass on the leader). */
  const stillLeads = async (i: number): Promise<void> => {
    const s = await viaLeader.status(cluster.endpoints[i]!);
    expect(s.leader, 'the leader did not change during the test').toBe(s.header.memberId);
  };

  it('puts, deletes and txns', async () => {
    const p = await viaFollower.put('fw/a', 'one');
    expect((await viaLeader.get('fw/a')).kvs[0]?.valueString()).toBe('one');
    // The follower answers with the revision of its own apply: its own store has the write.
    expect((await viaFollower.get('fw/a', { serializable: true })).header.revision).toBeGreaterThanOrEqual(p.header.revision);
    const prev = await viaFollower.put('fw/a', 'two', { prevKv: true });
    expect(prev.prevKv?.valueString()).toBe('one');
    const t = await viaFollower.txn({ compare: [Cmp.value('fw/a', '=', 'two')], success: [Op.put('fw/b', 'b'), Op.get('fw/a')], failure: [] });
    expect(t.succeeded).toBe(true);
    const f = await viaFollower.txn({ compare: [Cmp.value('fw/a', '=', 'nope')], success: [Op.put('fw/c', 'c')], failure: [Op.get('fw/b')] });
    expect(f.succeeded).toBe(false);
    const d = await viaFollower.delete('fw/', { prefix: true });
    expect(d.deleted).toBe(2n);
    expect((await viaLeader.get('fw/', { prefix: true })).kvs).toEqual([]);
    // A refusal every member applied comes back as etcd's error.
    expect(await outcome(viaFollower.txn({ success: [Op.put('fw/d', '1'), Op.put('fw/d', '2')] }))).toBe('etcdserver: duplicate key given in txn request');
    await stillLeads(leader);
  });

  it('lease grant, keep-alive and time-to-live', async () => {
    const g = await viaFollower.leaseGrant(2);
    await viaFollower.put('fw/leased', 'x', { lease: g.id });
    // Kept alive through the follower for several TTLs: the leader's lessor hears every renewal.
    const until3Ttl = Date.now() + 6000;
    while (Date.now() < until3Ttl) {
      const ka = await viaFollower.leaseKeepAliveOnce(g.id);
      expect(ka.ttl).toBe(2);
      await sleep(500);
    }
    const ttl = await viaFollower.leaseTimeToLive(g.id, { keys: true });
    expect(ttl.ttl).toBeGreaterThan(0);
    expect(ttl.keys.map((k) => k.toString())).toEqual(['fw/leased']);
    // Left alone, it expires (the leader revokes it) and the follower's time-to-live says so.
    await until(async () => (await viaFollower.leaseTimeToLive(g.id)).ttl === -1, 'the lease to expire');
    expect((await viaLeader.get('fw/leased')).kvs).toEqual([]);
    expect((await viaFollower.leaseKeepAliveOnce(g.id)).ttl).toBe(0);
    await stillLeads(leader);
  }, 30_000);

  it('lock and election', async () => {
    const lock = await viaFollower.lock('fw-lock');
    expect(lock.fencingToken).toBeGreaterThan(0n);
    await viaFollower.unlock(lock.key);
    const l = await viaFollower.campaign('fw-elect', 'a');
    await viaFollower.proclaim(l, 'b');
    expect((await viaLeader.leader('fw-elect'))?.valueString()).toBe('b');
    await viaFollower.resign(l);
    expect(await viaLeader.leader('fw-elect')).toBeUndefined();
    await stillLeads(leader);
  }, 30_000);

  it('a value up to the request limit through a follower as through the leader (1,572,764 bytes included)', async () => {
    const value = Buffer.alloc(1_572_764, 7);
    const big = await outcome(viaFollower.put('fw/big', value));
    expect(big).toBe(await outcome(viaLeader.put('fw/big', value)));
    // The encoded request of that put fits the limit unless the log encoding inflates values.
    const cmd: Command = { op: 'put', req: { key: Buffer.from('fw/big'), value } };
    if (encodeRequest({ id: (1n << 64n) - 1n, command: cmd }).length <= MAX_REQUEST_BYTES) expect(big).toBe('ok');
    // The largest value the leader takes (binary search), and the follower takes it too, and not one byte more
    // (the same key throughout: the limit is on the encoded request, key included).
    let lo = 1 << 20;
    let hi = MAX_REQUEST_BYTES;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if ((await outcome(viaLeader.put('fw/edge', Buffer.alloc(mid, 1)))) === 'ok') lo = mid;
      else hi = mid - 1;
    }
    expect(await outcome(viaFollower.put('fw/edge', Buffer.alloc(lo, 2)))).toBe('ok');
    expect((await viaLeader.get('fw/edge')).kvs[0]?.value.length).toBe(lo);
    expect(await outcome(viaFollower.put('fw/edge', Buffer.alloc(lo + 1, 3)))).toBe('etcdserver: request is too large');
    console.log(`largest value accepted: ${lo} bytes (leader and follower); 1,572,764 bytes: ${big}`);
    await stillLeads(leader);
  }, 60_000);

  it('flotillapb.Internal/Propose is not on the client port: UNIMPLEMENTED, nothing changes', async () => {
    const before = await viaLeader.hashKv(cluster.endpoints[leader]!);
    for (const i of [leader, follower]) {
      const raw = new grpc.Client(cluster.endpoints[i]!, grpc.credentials.createInsecure());
      const body = Buffer.from(JSON.stringify({ op: 'put', req: {} }));
      const err = await new Promise<grpc.ServiceError | null>((resolve) =>
        raw.makeUnaryRequest(
          '/flotillapb.Internal/Propose',
          (b: Buffer) => b,
          (b: Buffer) => b,
          // ProposeRequest { bytes command = 1 }
          Buffer.concat([Buffer.from([0x0a, body.length]), body]),
          (e) => resolve(e),
        ),
      );
      raw.close();
      expect(err?.code, `member ${i}`).toBe(grpc.status.UNIMPLEMENTED);
    }
    const after = await viaLeader.hashKv(cluster.endpoints[leader]!);
    expect(after.header.revision).toBe(before.header.revision);
    expect(after.hash).toBe(before.hash);
  });

  it("the leader refuses a forwarded publish of another member's attributes", async () => {
    const members = (await viaLeader.memberList()).members;
    const byName = (i: number) => members.find((m) => m.name === cluster.members[i]!.name)!;
    const leaderMember = byName(leader);
    const followerMember = byName(follower);
    const status = await viaLeader.status(cluster.endpoints[leader]!);
    // Pose as the follower (all a peer can prove until TLS is the handshake's member id).
    const from = follower + 1;
    const to = leader + 1;
    const hello = encodeHandshake({ clusterId: `${cluster.token}/${status.header.clusterId.toString(16)}`, from, to, version: PROTOCOL_VERSION });
    let seq = 1n;
    const forward = (command: Command): Uint8Array =>
      encodeMemberFrame(from, to, encodePeerCall({ type: 'forward', callId: Number(seq), request: encodeRequest({ id: (BigInt(from) << 48n) | seq++, command }) }));
    const peerPort = Number(new URL(cluster.members[leader]!.peerUrl).port);
    /** Sends the frames on one new connection (the real follower's reconnect soon replaces it) and waits until `done`. */
    const deliver = async (frames: Uint8Array[], done: () => Promise<boolean>, what: string): Promise<void> => {
      await until(async () => {
        await new Promise<void>((resolve) => {
          const s = connect({ host: '127.0.0.1', port: peerPort }, () => s.end(Buffer.concat([hello, ...frames])));
          s.on('close', () => resolve());
          s.on('error', () => resolve());
        });
        for (let i = 0; i < 20; i++) {
          if (await done()) return true;
          await sleep(50);
        }
        return false;
      }, what);
    };
    const urlsOf = async (id: bigint) => (await viaLeader.memberList()).members.find((m) => m.id === id)?.clientURLs;

    // Control: the follower's own attributes, forwarded on this channel, are taken.
    const ownAttrs = { id: followerMember.id, name: followerMember.name, clientUrls: ['http://127.0.0.1:9'] };
    await deliver([forward({ op: 'publish', member: ownAttrs })], async () => (await urlsOf(followerMember.id))?.[0] === 'http://127.0.0.1:9', 'the own publish');

    // The attack: the leader's client URL replaced. Then a put on the same connection: once it
    // is stored, the publish before it was handled.
    const forged = { id: leaderMember.id, name: leaderMember.name, clientUrls: ['http://127.0.0.1:9'] };
    let n = 0;
    await deliver(
      [forward({ op: 'publish', member: forged }), forward({ op: 'put', req: { key: Buffer.from(`fw/after-publish-${++n}`), value: Buffer.from('x') } })],
      async () => (await viaLeader.get(`fw/after-publish-${n}`)).kvs.length === 1,
      'the put after the forged publish',
    );
    expect(await urlsOf(leaderMember.id)).toEqual(leaderMember.clientURLs);

    // Put the follower's real attributes back.
    const real = { id: followerMember.id, name: followerMember.name, clientUrls: followerMember.clientURLs };
    await deliver([forward({ op: 'publish', member: real })], async () => (await urlsOf(followerMember.id))?.[0] === followerMember.clientURLs[0], 'the restored publish');
    // And writes through the follower still work (it reconnected to the leader).
    await viaFollower.put('fw/after', 'ok');
  }, 60_000);

  it('a follower cut off from the leader cannot forward: its write fails and is not stored', async () => {
    const faults = (i: number, body: object) => fetch(`${cluster.members[i]!.clientUrl}/debug/faults`, { method: 'POST', body: JSON.stringify(body) }).then((r) => expect(r.status).toBe(200));
    const leaderName = cluster.members[leader]!.name;
    await faults(follower, { dropTo: [leaderName], dropFrom: [leaderName] });
    try {
      expect(await outcome(viaFollower.put('fw/cut', 'x'))).toMatch(/^etcdserver: (request timed out|no leader)$/);
    } finally {
      await faults(follower, { dropTo: [], dropFrom: [] });
    }
    expect((await viaLeader.get('fw/cut')).kvs).toEqual([]);
    await until(async () => (await outcome(viaFollower.put('fw/healed', 'y'))) === 'ok', 'forwarding after the cut heals');
    await stillLeads(leader);
  }, 30_000);

  it('a follower killed and restarted still forwards', async () => {
    cluster.kill(follower);
    await viaLeader.put('fw/while-down', '1');
    await cluster.restart(follower);
    const again = client(follower);
    await again.put('fw/restarted', 'yes');
    expect((await viaLeader.get('fw/restarted')).kvs[0]?.valueString()).toBe('yes');
    await stillLeads(leader);
  }, 60_000);

  // Last: it kills the leader.
  it('a write sent to a follower just after the leader died waits for the next leader and succeeds', async () => {
    // Gone for good before the write is sent: a leader killed but not yet reaped (slow under load)
    // still holds its connections, so a forward could reach its socket and vanish with it; the
    // follower could not tell that from a forward that entered the log, and rightly waits for
    // its apply until the request times out.
    const dead = cluster.members[leader]!.proc!;
    const exited = new Promise<void>((resolve) => dead.once('exit', () => resolve()));
    cluster.kill(leader);
    await exited;
    // The follower still names the dead leader for up to an election timeout; its forward cannot
    // leave (no connection), so it is retried, not left to time out as if it might have entered the log.
    const t0 = Date.now();
    expect(await outcome(viaFollower.put('fw/after-leader-died', 'z'))).toBe('ok');
    console.log(`a write sent as the leader died: acknowledged after ${Date.now() - t0} ms`);
    const other = client(3 - leader - follower);
    expect((await other.get('fw/after-leader-died')).kvs[0]?.valueString()).toBe('z');
  }, 30_000);
});
