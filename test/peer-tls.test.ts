/**
 * A 3-member Flotilla cluster with peer mutual TLS (https:// peer URLs, --peer-client-cert-auth,
 * --peer-cert-allowed-cn), each member with its own certificate from the cluster's CA:
 * - issue 12's attacks fail: a process with no certificate (plain TCP, or TLS without one), one
 *   with a certificate from another CA, and one with the CA's certificate but another CN connect to a member's peer port and send a valid
 *   member handshake, a forged AppendEntries at the leader's id and term, and forged
 *   timeoutNow messages: every connection is closed, the member logs each refusal, the leader
 *   and term do not change (8 forged timeoutNows made 8 leader changes before);
 * - rotating one member's certificate files while a writer runs loses nothing: the member
 *   serves the new certificate to new peer connections (a restarted peer reconnects through
 *   it), and every acknowledged write is on every member afterwards.
 * (The transport-level test, test/peer-tls-transport.test.ts, shows the same frames are
 * delivered over a connection with a member's certificate: the attack is real.)
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FlotillaClient } from '../src/client/index.js';
import type { Message } from '../src/raft/messages.js';
import { clusterIdOf, parseInitialCluster } from '../src/server/config.js';
import { encodeHandshake, encodeMessage, PROTOCOL_VERSION } from '../src/transport/codec.js';
import { issue, makeCa, type KeyPair } from './support/certs.js';
import { startCluster, which, type Cluster } from './support/cluster.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, f: () => Promise<T | undefined> | T | undefined, ms = 20_000): Promise<T> {
  const start = Date.now();
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe.skipIf(!which('openssl'))('peer mutual TLS: a 3-member cluster', () => {
  let dir: string;
  let ca: KeyPair;
  let otherCa: KeyPair;
  let stranger: KeyPair;
  let intruder: KeyPair;
  let memberCerts: KeyPair[];
  let cluster: Cluster;
  let client: FlotillaClient;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flotilla-peer-mtls-'));
    ca = makeCa(dir, 'ca');
    otherCa = makeCa(dir, 'other-ca');
    stranger = issue(dir, otherCa, 'stranger', { cn: 'member' });
    intruder = issue(dir, ca, 'intruder', { cn: 'intruder' });
    memberCerts = [0, 1, 2].map((i) => issue(dir, ca, `m${i + 1}`, { cn: 'member' }));
    cluster = await startCluster('flotilla', {
      peerTls: true,
      extraArgs: ['--peer-trusted-ca-file', ca.cert, '--peer-client-cert-auth', '--peer-cert-allowed-cn', 'member'],
      memberArgs: (i) => ['--peer-cert-file', memberCerts[i]!.cert, '--peer-key-file', memberCerts[i]!.key],
    });
    client = new FlotillaClient({ endpoints: cluster.endpoints });
  }, 60_000);
  afterAll(async () => {
    await client?.close();
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Leader (raft id: members are numbered by sorted name, m1 = 1) and term as member `i` reports them. */
  async function leaderAndTerm(i: number): Promise<{ leader: bigint; term: bigint }> {
    const s = await client.status(cluster.endpoints[i]!);
    return { leader: s.leader, term: s.raftTerm };
  }

  it('no certificate, another CA\'s, or the CA\'s with another CN: the forged AppendEntries and timeoutNow attacks fail and are logged', async () => {
    const initial = cluster.members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
    const members = parseInitialCluster(initial, cluster.token);
    const clusterId = `${cluster.token}/${clusterIdOf(members.map((m) => m.id)).toString(16)}`;
    const before = await leaderAndTerm(0);
    const leaderRaftId = members.find((m) => m.id === before.leader)!.raftId;
    // Attack a follower, as the issue did: the leader's id, its term.
    const target = members.findIndex((m) => m.raftId !== leaderRaftId);
    const targetId = members[target]!.raftId;
    const port = Number(new URL(cluster.members[target]!.peerUrl).port);
    const term = Number(before.term);
    const frames = Buffer.concat([
      encodeHandshake({ clusterId, from: leaderRaftId, to: targetId, version: PROTOCOL_VERSION }),
      encodeMessage({ type: 'append', from: leaderRaftId, to: targetId, term, prevLogIndex: 0, prevLogTerm: 0, commit: 1_000_000, entries: [{ term, index: 1, type: 'normal', data: new Uint8Array([1, 2, 3]) }] } as Message),
      ...Array.from({ length: 8 }, () => encodeMessage({ type: 'timeoutNow', from: leaderRaftId, to: targetId, term } as Message)),
    ]);
    const attack = (how: 'plain' | 'tls-no-cert' | 'other-ca' | 'wrong-cn'): Promise<boolean> =>
      new Promise((resolve) => {
        const s: Socket = how === 'plain'
          ? netConnect({ host: '127.0.0.1', port })
          : tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...(how === 'tls-no-cert' ? {} : { cert: readFileSync((how === 'other-ca' ? stranger : intruder).cert), key: readFileSync((how === 'other-ca' ? stranger : intruder).key) }) });
        s.on('error', () => {});
        const timer = setTimeout(() => {
          s.destroy();
          resolve(false);
        }, 5000);
        s.once(how === 'plain' ? 'connect' : 'secureConnect', () => s.write(frames));
        s.once('close', () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
    const out = cluster.members[target]!;
    const logged = () => out.output;
    const start = logged().length;
    expect(await attack('plain'), 'plain TCP closed').toBe(true);
    expect(await attack('tls-no-cert'), 'TLS without a certificate closed').toBe(true);
    expect(await attack('other-ca'), 'another CA\'s certificate closed').toBe(true);
    expect(await attack('wrong-cn'), 'the CA\'s certificate with another CN than --peer-cert-allowed-cn closed').toBe(true);
    await until('the refusals in the log', () => {
      const tail = logged().slice(start);
      return /closed a connection from 127\.0\.0\.1:\d+: TLS handshake failed/.test(tail) && /certificate is not trusted \(no certificate\)/.test(tail) && /certificate is not trusted \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/.test(tail) && /CN "intruder" is not the allowed CN "member"/.test(tail);
    });
    // Had any timeoutNow landed, the target would have started an election (a new term).
    await sleep(1000);
    for (let i = 0; i < 3; i++) expect(await leaderAndTerm(i), `member ${i + 1}`).toEqual(before);
    // And the cluster serves, on the attacked member too (a linearizable read there).
    await client.put('after-attack', 'ok');
    const only = new FlotillaClient({ endpoints: [cluster.endpoints[target]!] });
    try {
      expect((await only.get('after-attack')).kvs.map((kv) => kv.valueString())).toEqual(['ok']);
    } finally {
      await only.close();
    }
  });

  it('rotating one member\'s certificate files while a writer runs loses nothing', async () => {
    const acked: string[] = [];
    let writing = true;
    let failures = 0;
    const writer = (async () => {
      for (let i = 0; writing; i++) {
        try {
          await client.put(`w/${String(i).padStart(6, '0')}`, String(i));
          acked.push(`w/${String(i).padStart(6, '0')}`);
        } catch {
          failures++; // not acknowledged: may or may not be there
        }
      }
    })();
    await until('some writes', () => acked.length >= 20);
    // m1's new certificate, written over its files (key, then certificate; each an atomic rename).
    const fresh = issue(dir, ca, 'm1-rotated', { cn: 'member' });
    renameSync(fresh.key, memberCerts[0]!.key);
    renameSync(fresh.cert, memberCerts[0]!.cert);
    const newSerial = new X509Certificate(readFileSync(memberCerts[0]!.cert)).serialNumber;
    // Restart m2: both directions between m1 and m2 are new connections, made with the new certificate.
    cluster.kill(1);
    await cluster.restart(1);
    const m1Port = Number(new URL(cluster.members[0]!.peerUrl).port);
    const served = () =>
      new Promise<string>((resolve) => {
        const s = tlsConnect({ host: '127.0.0.1', port: m1Port, ca: readFileSync(ca.cert), cert: readFileSync(memberCerts[2]!.cert), key: readFileSync(memberCerts[2]!.key) }, () => {
          resolve(s.getPeerCertificate().serialNumber);
          s.destroy();
        });
        s.on('error', () => resolve(''));
      });
    await until('m1 serving its new certificate', async () => (await served()) === newSerial);
    expect(cluster.members[0]!.output).toMatch(/peer TLS: reloaded/);
    const mark = acked.length;
    await until('writes after the rotation', () => acked.length >= mark + 20);
    writing = false;
    await writer;
    // Every acknowledged write is on every member (a linearizable read on each).
    for (let i = 0; i < 3; i++) {
      const only = new FlotillaClient({ endpoints: [cluster.endpoints[i]!] });
      try {
        const keys = new Set((await only.get('w/', { prefix: true })).kvs.map((kv) => kv.keyString()));
        const lost = acked.filter((k) => !keys.has(k));
        expect(lost, `member ${i + 1} (${failures} writes failed, not counted)`).toEqual([]);
      } finally {
        await only.close();
      }
    }
  }, 90_000);

  it('a member added at runtime joins over peer TLS: its join query and its Raft connections present its certificate', async () => {
    memberCerts.push(issue(dir, ca, 'm4', { cn: 'member' }));
    const m = await cluster.prepare('m4');
    for (;;) {
      // etcd's strict reconfiguration refuses changes until the members' peers were up a while.
      const r = await client.memberAdd([m.peerUrl], { isLearner: true }).then(() => 'added', (e: Error) => e.message);
      if (r === 'added') break;
      expect(r).toMatch(/unhealthy cluster/);
      await sleep(500);
    }
    await cluster.join(cluster.members.indexOf(m), cluster.members);
    await client.put('joined-over-tls', 'yes');
    const joined = new FlotillaClient({ endpoints: [m.clientUrl.replace('http://', '')] });
    try {
      await until('the joined member to apply the write', async () => {
        const r = await joined.get('joined-over-tls', { consistency: 'serializable' }).catch(() => undefined);
        return r?.kvs[0]?.value.toString() === 'yes' ? true : undefined;
      });
    } finally {
      await joined.close();
    }
  });
});
