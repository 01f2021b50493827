/**
 * Throughput and latency through the network lab's delay proxy (root only): 3 members in their
 * own network namespaces, every peer link through the proxy at 0, 5 and 20 ms one-way delay.
 * Clients talk to the leader directly (their own link is not delayed); each write commits once
 * a majority has it, so it costs one round trip on the peer links (2 x the one-way delay) plus
 * the fsync. One client writing one key at a time is bound by that round trip, not by CPU;
 * 32 concurrent clients share round trips (the leader batches their entries).
 *
 *   npm run bench:netns            # = npm run build && node bench/netns-latency.js
 *   BENCH_SECONDS=10 npm run bench:netns
 */
import { FlotillaClient } from '../dist/client/index.js';
import { labFromEnv, NetnsCluster, runInLab } from '../dist/faults/netns-cluster.js';
import { labUnavailableReason, NetnsLab } from '../dist/faults/netns.js';
import { sleep } from './lib.js';

const DELAYS_MS = [0, 5, 20];
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONCURRENT = 32;

const lab = labFromEnv();
if (!lab) {
  // Outside the lab: make it, run this script inside it, remove it.
  const why = await labUnavailableReason();
  if (why) {
    console.log(`bench/netns-latency.js: skipped: ${why}`);
    process.exit(0);
  }
  process.exitCode = await runInLab(3, [], console.error, new URL(import.meta.url).pathname);
} else {
  const cluster = await NetnsCluster.startIn(NetnsLab.attach(lab), 3, [], { proxy: true, log: (l) => console.log(l) });
  const admin = new FlotillaClient({ endpoints: cluster.endpoints, requestTimeoutMs: 5000 });
  const rows = [];
  try {
    for (const delayMs of DELAYS_MS) {
      await Promise.all(cluster.members.map((_, i) => cluster.links.shape(i, { delayMs, jitterMs: 0, bandwidthBytesPerS: 0 })));
      // The leader's client endpoint (a write sent to a follower would cross one more delayed link).
      let leader = null;
      while (!leader) {
        for (const m of cluster.members) {
          const s = await admin.status(m.client).catch(() => null);
          if (s && s.leader !== 0n && s.leader === s.header.memberId) leader = m;
        }
        if (!leader) await sleep(200);
      }
      for (const clients of [1, CONCURRENT]) {
        const cs = Array.from({ length: clients }, () => new FlotillaClient({ endpoints: [leader.client], requestTimeoutMs: 10_000 }));
        await Promise.all(cs.map((c, i) => c.put(`warm/${i}`, 'x')));
        const lat = [];
        const end = performance.now() + SECONDS * 1000;
        const value = 'v'.repeat(100);
        await Promise.all(
          cs.map(async (c, i) => {
            for (let n = 0; performance.now() < end; n++) {
              const t = performance.now();
              await c.put(`bench/${i}/${n % 100}`, value);
              lat.push(performance.now() - t);
            }
          }),
        );
        await Promise.all(cs.map((c) => c.close()));
        lat.sort((a, b) => a - b);
        const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
        const row = { delayMs, clients, writesPerS: Math.round(lat.length / SECONDS), p50: q(0.5).toFixed(1), p99: q(0.99).toFixed(1) };
        rows.push(row);
        console.log(`one-way delay ${delayMs} ms, ${clients} client(s): ${row.writesPerS} writes/s, p50 ${row.p50} ms, p99 ${row.p99} ms`);
      }
    }
  } finally {
    await admin.close();
    await cluster.stop();
  }
  console.log('\n| one-way delay on peer links | clients | writes/s | p50 ms | p99 ms |\n|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(`| ${r.delayMs} ms | ${r.clients} | ${r.writesPerS} | ${r.p50} | ${r.p99} |`);
}
