#!/usr/bin/env node
/**
 * Benchmark: many leases granted and left to expire on a 3-member cluster (issue 13).
 *
 *   node bench/leases.js [--leases 100000] [--ttl 30] [--in-flight 256] [--put-batch 1] [--align] [--dir DIR]
 *   node bench/leases.js --in-process [--leases 100000] [--ttl 60] [--in-flight 1024] [--grant-rate N] [--align]
 *
 * Starts three `flotilla serve` processes on free loopback ports. Grants --leases leases of
 * --ttl seconds through the leader (--in-flight requests at a time), each with one key
 * attached, and never renews them. A watch on a follower sees each key's DELETE: the revoke
 * applied. The leader starts counting a lease's TTL when it applies the grant, which the client
 * sees only between sending the grant and its acknowledgement; so the expiry latency (deadline
 * to revoke applied) lies between DELETE seen - (acknowledged + TTL) and DELETE seen - (sent +
 * TTL): both are printed, and the grants' round trip (how far apart they are). With --align, each lease's TTL is
 * chosen so that they all expire in the same second (a mass expiry: the revoke rate limit,
 * 1,000/s, then decides the latency). With --put-batch N the keys are put N at a time, in one
 * txn (at most --max-txn-ops, 128), so that the grants, not the puts, are most of the log: a
 * lease that expired before its key was put is left out of the count (reported). Prints
 * progress every 10,000 grants, latency p50/p99/max and each member's CPU time (utime + stime
 * from /proc) over the run.
 *
 * --in-process: one member (EtcdMember: WAL on disk, Raft, the state machine, the lessor) in
 * this process, commands proposed to it directly (no gRPC, no replication), so that the
 * lessor's own work is what is left to see. Latency is measured where the lessor counts:
 * from its deadline (the grant applied + TTL, on the same clock) to the revoke applied; CPU is
 * this process's while only expiries run (the grants are done before the first deadline
 * unless the TTL is too short for that).
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { FlotillaClient, Op } from '../dist/client/index.js';
import { freePort, sleep } from './lib.js';

const o = new Command()
  .option('--leases <n>', 'leases granted', Number, 100_000)
  .option('--ttl <s>', 'lease TTL in seconds', Number, 30)
  .option('--in-flight <n>', 'grant+put requests in flight', Number, 256)
  .option('--put-batch <n>', 'cluster mode: keys put this many at a time in one txn (max 128)', Number, 1)
  .option('--align', 'choose TTLs so that every lease expires in the same second (a mass expiry)', false)
  .option('--dir <dir>', 'where the members keep their data', tmpdir())
  .option('--in-process', 'one member in this process, commands proposed directly (the lessor alone)', false)
  .option('--grant-rate <n>', 'in-process: grants per second at most (default: as fast as they commit)', Number, 0)
  .parse()
  .opts();

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))].toFixed(0);

if (o.inProcess) {
  await inProcess();
  process.exit(0);
}

async function inProcess() {
  const { EtcdMember } = await import('../dist/server/member.js');
  const { resolveConfig } = await import('../dist/server/config.js');
  const { silentLogger } = await import('../dist/raft/config.js');
  const dataDir = await mkdtemp(join(o.dir, 'flotilla-leases-'));
  const peer = `http://127.0.0.1:${await freePort()}`;
  const config = resolveConfig({
    name: 'm1', dataDir, listenClientUrls: `http://127.0.0.1:${await freePort()}`, listenPeerUrls: peer, initialAdvertisePeerUrls: peer, initialCluster: `m1=${peer}`, requestTimeout: 30_000,
  });
  const m = await EtcdMember.start(config, silentLogger);
  try {
    while (!m.lessor.isPrimary) await sleep(20);
    const n = o.leases;
    const ttlDefault = o.ttl === 30 ? 60 : o.ttl;
    const deadline = new Map();
    const lat = [];
    let allRevoked;
    const done = new Promise((r) => (allRevoked = r));
    // Registered after the lessor's listener: the same apply, the same clock (performance.now).
    m.sm.onLease((c) => {
      if (c.kind === 'granted') deadline.set(c.id, performance.now() + c.ttl * 1000);
      else {
        const d = deadline.get(c.id);
        if (d !== undefined) {
          lat.push(performance.now() - d);
          deadline.delete(c.id);
          if (lat.length === n) allRevoked();
        }
      }
    });
    const cpuStart = process.cpuUsage();
    const t0 = performance.now();
    const alignAt = t0 + (n / 2000 + ttlDefault) * 1000;
    let next = 0;
    let failures = 0;
    const worker = async () => {
      while (next < n) {
        const i = next++;
        if (o.grantRate > 0) await sleep(t0 + (i / o.grantRate) * 1000 - performance.now());
        for (;;) {
          try {
            const id = m.newLeaseId();
            const ttl = o.align ? Math.max(ttlDefault, Math.ceil((alignAt - performance.now()) / 1000)) : ttlDefault;
            await m.propose({ op: 'leaseGrant', id, ttl });
            await m.propose({ op: 'put', req: { key: Buffer.from(`bl/${i}`), value: Buffer.from('x'), lease: id } });
            break;
          } catch (e) {
            // A timed-out grant may still apply: its lease expires too and counts (n is met sooner).
            if (failures++ < 3) console.log(`retrying after: ${e?.message ?? e}`);
          }
        }
      }
    };
    await Promise.all(Array.from({ length: o.inFlight === 256 ? 1024 : o.inFlight }, worker));
    const granted = performance.now();
    const firstDue = Math.min(...deadline.values());
    console.log(`granted ${n} leases with a key each in ${((granted - t0) / 1000).toFixed(1)} s (${Math.round(n / ((granted - t0) / 1000))}/s); first deadline ${((firstDue - granted) / 1000).toFixed(1)} s after the last grant; ${failures} retried`);
    const rss0 = process.memoryUsage().rss;
    const cpu0 = process.cpuUsage();
    const wall0 = performance.now();
    await done;
    const cpu = process.cpuUsage(cpu0);
    const cpuAll = process.cpuUsage(cpuStart);
    const wall = performance.now() - wall0;
    lat.sort((a, b) => a - b);
    console.log(`${lat.length}/${n} revoked; expiry latency (lessor deadline -> revoke applied, ms): min ${lat[0].toFixed(1)}, p50 ${pct(lat, 0.5)}, p99 ${pct(lat, 0.99)}, max ${lat[lat.length - 1].toFixed(0)}`);
    console.log(`expiry phase: ${(wall / 1000).toFixed(1)} s wall, CPU ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s (user ${(cpu.user / 1e6).toFixed(1)}, system ${(cpu.system / 1e6).toFixed(1)}), RSS ${Math.round(rss0 / 2 ** 20)} MiB at its start; whole run ${((performance.now() - t0) / 1000).toFixed(1)} s, CPU ${((cpuAll.user + cpuAll.system) / 1e6).toFixed(1)} s`);
  } finally {
    await m.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

const bin = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'flotilla.js');
const dir = await mkdtemp(join(o.dir, 'flotilla-leases-'));
const members = [];
for (let i = 0; i < 3; i++) members.push({ name: `m${i + 1}`, client: await freePort(), peer: await freePort(), proc: null });
const cluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(',');
for (const m of members) {
  m.proc = spawn(process.execPath, [
    bin, 'serve', '--name', m.name, '--data-dir', join(dir, m.name),
    '--listen-client-urls', `http://127.0.0.1:${m.client}`, '--advertise-client-urls', `http://127.0.0.1:${m.client}`,
    '--listen-peer-urls', `http://127.0.0.1:${m.peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${m.peer}`,
    '--initial-cluster', cluster, '--initial-cluster-token', 'leases-bench',
  ], { stdio: 'ignore' });
}
const endpoint = (m) => `127.0.0.1:${m.client}`;

/** CPU seconds (user + system) of a process so far. */
function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

const admin = new FlotillaClient({ endpoints: members.map(endpoint) });
try {
  let li = -1;
  for (let tries = 0; li < 0 && tries < 300; tries++) {
    for (let i = 0; i < 3; i++) {
      const s = await admin.status(endpoint(members[i])).catch(() => null);
      if (s && s.leader !== 0n && s.leader === s.header.memberId) li = i;
    }
    if (li < 0) await sleep(100);
  }
  if (li < 0) throw new Error('no leader');
  const leader = new FlotillaClient({ endpoints: [endpoint(members[li])], requestTimeoutMs: 30_000 });
  const follower = new FlotillaClient({ endpoints: [endpoint(members[(li + 1) % 3])] });
  await leader.put('warm', '1');

  const n = o.leases;
  const expected = new Float64Array(n); // when each lease is due, counted from the grant's acknowledgement (ms, performance.now)
  const sentDue = new Float64Array(n); // the same, counted from when the grant was sent (the earliest it can be due)
  const seen = new Float64Array(n);
  let deleted = 0;
  let allDeleted;
  const done = new Promise((r) => (allDeleted = r));
  const w = follower.watch('bl/', { prefix: true, filters: ['NOPUT'] }, (evs) => {
    const now = performance.now();
    for (const e of evs) {
      const i = Number(e.kv.key.toString().slice(3));
      if (seen[i] === 0) {
        seen[i] = now;
        if (++deleted + expiredUnput === n) allDeleted();
      }
    }
  });
  await w.ready;

  const cpu0 = members.map((m) => cpuSeconds(m.proc.pid));
  const t0 = performance.now();
  // --align: every lease due at the same moment, after the grants (estimated at 1,000 grants/s).
  const alignAt = t0 + (n / 1000 + o.ttl) * 1000;
  let next = 0;
  let failures = 0;
  let grantedCount = 0;
  /** Leases whose key could not be put (expired first): not waited for. */
  let expiredUnput = 0;
  /** Granted leases whose key waits for a batch: [index, lease id]. */
  let pending = [];
  const putOne = async (i, id) => {
    for (let tries = 0; ; tries++) {
      try {
        await leader.put(`bl/${i}`, 'x', { lease: id });
        return;
      } catch (e) {
        if (/lease not found/.test(e?.message ?? '')) {
          expiredUnput++;
          if (deleted + expiredUnput === n) allDeleted();
          return;
        }
        if (failures++ < 3) console.log(`retrying after: ${e?.message ?? e}`);
        await sleep(50);
      }
    }
  };
  const flushPuts = async (batch) => {
    if (batch.length === 0) return;
    try {
      const r = await leader.txn({ success: batch.map(([i, id]) => Op.put(`bl/${i}`, 'x', { lease: id })) });
      if (!r.succeeded) throw new Error('txn without compares not succeeded');
    } catch {
      // One key's lease gone (or a timeout): each key on its own.
      await Promise.all(batch.map(([i, id]) => putOne(i, id)));
    }
  };
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      for (;;) {
        try {
          const ttl = o.align ? Math.max(o.ttl, Math.ceil((alignAt - performance.now()) / 1000)) : o.ttl;
          const sent = performance.now();
          const g = await leader.leaseGrant(ttl);
          expected[i] = performance.now() + g.ttl * 1000;
          sentDue[i] = sent + g.ttl * 1000;
          if (++grantedCount % 10_000 === 0) {
            console.log(`  ${grantedCount} granted at ${((performance.now() - t0) / 1000).toFixed(0)} s, ${deleted} revokes seen; CPU ${members.map((m) => `${m.name} ${(cpuSeconds(m.proc.pid) - cpu0[members.indexOf(m)]).toFixed(0)} s`).join(', ')}`);
          }
          if (o.putBatch <= 1) await leader.put(`bl/${i}`, 'x', { lease: g.id });
          else {
            pending.push([i, g.id]);
            if (pending.length >= o.putBatch || next >= n) {
              const batch = pending;
              pending = [];
              await flushPuts(batch);
            }
          }
          break;
        } catch (e) {
          if (failures++ < 3) console.log(`retrying after: ${e?.message ?? e}`);
          await sleep(50);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: o.inFlight }, worker));
  await flushPuts(pending.splice(0));
  const granted = performance.now();
  const cpuGranted = members.map((m) => cpuSeconds(m.proc.pid));
  console.log(`granted ${n} leases with a key each in ${((granted - t0) / 1000).toFixed(1)} s (${Math.round(n / ((granted - t0) / 1000))}/s; ${failures} retried)`);
  const lastDue = Math.max(...expected);
  const timeout = setTimeout(() => allDeleted(), Math.max(0, lastDue - performance.now()) + 300_000);
  await done;
  clearTimeout(timeout);
  const end = performance.now();
  const cpu1 = members.map((m) => cpuSeconds(m.proc.pid));
  w.cancel();

  const lat = [];
  const latSent = [];
  const rtt = [];
  for (let i = 0; i < n; i++) {
    if (seen[i] === 0) continue;
    lat.push(seen[i] - expected[i]);
    latSent.push(seen[i] - sentDue[i]);
    rtt.push(expected[i] - sentDue[i]);
  }
  for (const a of [lat, latSent, rtt]) a.sort((x, y) => x - y);
  const q = (p) => pct(lat, p);
  console.log(`grant round trip (sent -> acknowledged, ms): p50 ${pct(rtt, 0.5)}, p99 ${pct(rtt, 0.99)}, max ${rtt[rtt.length - 1].toFixed(0)}`);
  console.log(`expiry latency counted from the grant's send (an upper bound, ms): min ${latSent[0].toFixed(0)}, p50 ${pct(latSent, 0.5)}, p99 ${pct(latSent, 0.99)}, max ${latSent[latSent.length - 1].toFixed(0)}`);
  if (expiredUnput > 0) console.log(`${expiredUnput} leases expired before their key was put (not counted)`);
  console.log(`${lat.length}/${n} revokes seen; expiry latency counted from the grant's acknowledgement (a lower bound, ms): min ${lat[0].toFixed(0)}, p50 ${q(0.5)}, p99 ${q(0.99)}, max ${lat[lat.length - 1].toFixed(0)}`);
  console.log(`last revoke ${((end - lastDue) / 1000).toFixed(1)} s after the last deadline; run ${((end - t0) / 1000).toFixed(1)} s`);
  // Who leads now (a leader change under load moves the leader's work; the grants' endpoint then forwards).
  let liEnd = -1;
  for (let i = 0; i < 3; i++) {
    const s = await admin.status(endpoint(members[i])).catch(() => null);
    if (s && s.leader !== 0n && s.leader === s.header.memberId) liEnd = i;
  }
  const role = (i) => [i === li && 'leader at the start, the grants\' endpoint', i === liEnd && 'leader at the end', i === (li + 1) % 3 && 'watched'].filter(Boolean).join('; ');
  members.forEach((m, i) =>
    console.log(`${m.name} (${role(i) || 'follower'}): CPU ${(cpu1[i] - cpu0[i]).toFixed(1)} s over the run (${(cpuGranted[i] - cpu0[i]).toFixed(1)} s while granting, ${(cpu1[i] - cpuGranted[i]).toFixed(1)} s after)`),
  );
  await leader.close();
  await follower.close();
} finally {
  await admin.close();
  for (const m of members) m.proc?.kill('SIGKILL');
  await sleep(200);
  await rm(dir, { recursive: true, force: true });
}
