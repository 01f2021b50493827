#!/usr/bin/env node
/**
 * Benchmark: a 3-member cluster filled through the etcd API, Flotilla and etcd 3.4 side by side
 * (issue 11, "Done when").
 *
 *   node bench/scale.js [--system flotilla|etcd|both] [--keys 1000000] [--clients 64]
 *                       [--value-bytes 1024] [--chunk 100000] [--overwrite 0.2]
 *                       [--etcd /usr/bin/etcd] [--quota-backend-bytes 8589934592] [--prof DIR]
 *
 * For each system: a fresh 3-member cluster (separate processes, loopback, real disks in a temp
 * dir, default settings but the quota), then
 * 1. fill: `--keys` distinct keys (`k/00000000` ...) with values of `--value-bytes` (random
 *    bytes, a different value per put) from `--clients` concurrent gRPC clients (one HTTP/2
 *    connection each, this project's generated client, the same for both systems) against the
 *    leader found at start; then overwrite `--overwrite` of them (every fifth key for 0.2).
 *    Per `--chunk` puts: throughput, p99 and max latency (every attempt, failed ones included),
 *    errors (failed attempts; a failed put is retried up to PUT_ATTEMPTS_MAX times), leader
 *    changes so far (etcd_server_leader_changes_seen_total from each member's /metrics, the
 *    most any member saw since the cluster was ready).
 * 2. at the end of the writes: RSS per member (/proc), data directory bytes per member (blocks
 *    allocated, as du), and the store's size as the member reports it (Status.dbSize).
 * 3. restart: SIGTERM all members, wait for them to exit, start all, and time from the start
 *    until a linearizable read succeeds.
 * 4. catch-up: a fourth member added as a learner (MemberAdd isLearner), started with
 *    --initial-cluster-state existing; timed from its start until its applied index and revision
 *    reach the leader's (the cluster is idle). Bytes/s = the leader's Status.dbSize / time.
 *    Flotilla always brings a new member up by snapshot (an add makes every member release its
 *    log); etcd only when its log was compacted past what the learner needs (--snapshot-count
 *    100,000 in 3.4): the table says which one happened (etcd's log line about the received
 *    snapshot).
 *
 * Robustness: every wait has a bound (the constants below); every child process is SIGKILLed
 * and the temp dir removed on any exit, an exception or ctrl-c. Members' output goes to log
 * files in the temp dir; the last lines are printed when something fails (`--keep-logs DIR`
 * keeps them all). `--prof DIR` runs the
 * Flotilla members under `node --cpu-prof` (profiles written when they stop: at the restart and
 * at the end).
 */
import * as grpc from '@grpc/grpc-js';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, openSync, readFileSync, readdirSync, lstatSync, rmSync, mkdirSync, mkdtempSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { tmpdir, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { clientConstructor } from '../dist/api/proto.js';
import { freePort, sleep } from './lib.js';

/** A put's deadline: a put slower than this counts as an error (and is retried). */
const PUT_DEADLINE_MS = 30_000;
/** Attempts per put before the benchmark gives up on the run. */
const PUT_ATTEMPTS_MAX = 5;
/** Pause before a failed put is tried again. */
const PUT_RETRY_PAUSE_MS = 100;
/** A fresh cluster must elect a leader that commits within this. */
const CLUSTER_READY_TIMEOUT_MS = 60_000;
/** A member has this long to exit after SIGTERM before it is SIGKILLed (and the table says so). */
const MEMBER_EXIT_TIMEOUT_MS = 60_000;
/** The restarted cluster must answer a linearizable read within this. */
const RESTART_HEALTHY_TIMEOUT_MS = 300_000;
/** MemberAdd is retried (a cluster refuses while a peer was not heard from lately) within this. */
const MEMBER_ADD_TIMEOUT_MS = 60_000;
/** The learner must catch up within this, plus a second per CATCHUP_BYTES_PER_S_MIN of store. */
const CATCHUP_TIMEOUT_MS = 120_000;
const CATCHUP_BYTES_PER_S_MIN = 1_000_000;
/** A metrics scrape or a status call during the run: a member too busy to answer is skipped. */
const PROBE_TIMEOUT_MS = 3_000;
/** How often the learner's status is polled. */
const CATCHUP_POLL_MS = 200;

const o = new Command()
  .option('--system <s>', 'flotilla, etcd or both (etcd first)', 'both')
  .option('--keys <n>', 'distinct keys written', Number, 1_000_000)
  .option('--clients <n>', 'concurrent clients', Number, 64)
  .option('--value-bytes <n>', 'bytes per value', Number, 1024)
  .option('--chunk <n>', 'puts per reported row', Number, 100_000)
  .option('--overwrite <fraction>', 'fraction of the keys overwritten after the fill', Number, 0.2)
  .option('--etcd <path>', 'etcd binary', '/usr/bin/etcd')
  .option('--quota-backend-bytes <n>', 'passed to both (etcd and Flotilla default to 2 GiB, which 1M keys of 1 KiB exceed)', Number, 8 * 1024 ** 3)
  .option('--prof <dir>', 'Flotilla members run with node --cpu-prof, profiles written to DIR')
  .option('--keep-logs <dir>', "copy the members' logs to DIR (as <system>-<member>.log) before the temp dir is removed")
  .parse()
  .opts();

const systems = o.system === 'both' ? ['etcd', 'flotilla'] : [o.system];
for (const s of systems) if (s !== 'etcd' && s !== 'flotilla') throw new Error(`--system: flotilla, etcd or both, not ${o.system}`);
for (const k of ['keys', 'clients', 'valueBytes', 'chunk']) {
  if (!Number.isInteger(o[k]) || o[k] < 1) throw new Error(`--${k}: a positive integer, not ${o[k]}`);
}
if (!(o.overwrite >= 0 && o.overwrite <= 1)) throw new Error(`--overwrite: a fraction from 0 to 1, not ${o.overwrite}`);
if (systems.includes('etcd') && !existsSync(o.etcd)) throw new Error(`--etcd: no etcd binary at ${o.etcd} (Debian: apt-get install etcd-server), or run --system flotilla`);

const bin = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'flotilla.js');
const KV = clientConstructor('etcdserverpb.KV');
const Maint = clientConstructor('etcdserverpb.Maintenance');
const Cluster = clientConstructor('etcdserverpb.Cluster');
const rpc = (c, method, req, ms) => new Promise((resolve, reject) => c[method](req, { deadline: Date.now() + ms }, (e, r) => (e ? reject(e) : resolve(r))));
const insecure = grpc.credentials.createInsecure();

// --- Cleanup: every child and the temp dir, whatever ends this process. ---
const children = new Set();
const dir = mkdtempSync(join(tmpdir(), 'flotilla-scale-'));
let cleaned = false;
function cleanup() {
  if (cleaned) return;
  cleaned = true;
  for (const p of children) {
    try {
      p.kill('SIGKILL');
    } catch {
      // gone
    }
  }
  rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    console.error(`\n${sig}: stopping the members and removing ${dir}`);
    process.exit(130);
  });
}

// --- Members ---
function memberArgs(sys, m, initial, state) {
  const url = (p) => `http://127.0.0.1:${p}`;
  return [
    '--name', m.name, '--data-dir', m.dataDir,
    '--listen-client-urls', url(m.client), '--advertise-client-urls', url(m.client),
    '--listen-peer-urls', url(m.peer), '--initial-advertise-peer-urls', url(m.peer),
    '--initial-cluster', initial, '--initial-cluster-token', `bench-scale-${sys}`, '--initial-cluster-state', state,
    '--quota-backend-bytes', String(o.quotaBackendBytes),
  ];
}

function launch(sys, m) {
  const log = openSync(m.log, 'a');
  const prof = sys === 'flotilla' && o.prof ? ['--cpu-prof', '--cpu-prof-dir', o.prof, '--cpu-prof-name', `${m.name}-${Date.now()}.cpuprofile`] : [];
  const p = sys === 'etcd' ? spawn(o.etcd, m.args, { stdio: ['ignore', log, log] }) : spawn(process.execPath, [...prof, bin, 'serve', ...m.args], { stdio: ['ignore', log, log] });
  closeSync(log);
  children.add(p);
  p.on('error', (e) => console.error(`${sys} ${m.name}: ${e.message}`)); // it also exits: the waits time out and say so
  m.exited = new Promise((res) => p.once('exit', (code, signal) => {
    children.delete(p);
    res({ code, signal });
  }));
  m.proc = p;
}

/** SIGTERM, then SIGKILL after MEMBER_EXIT_TIMEOUT_MS; resolves with whether it was killed. */
async function stop(m) {
  if (!children.has(m.proc)) return false;
  m.proc.kill('SIGTERM');
  let timer;
  const killed = await Promise.race([m.exited.then(() => false), new Promise((res) => (timer = setTimeout(() => res(true), MEMBER_EXIT_TIMEOUT_MS)))]);
  clearTimeout(timer);
  if (killed) {
    m.proc.kill('SIGKILL');
    await m.exited;
  }
  return killed;
}

function logTail(m, lines = 15) {
  try {
    return readFileSync(m.log, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

async function status(m, ms = PROBE_TIMEOUT_MS) {
  const c = new Maint(`127.0.0.1:${m.client}`, insecure);
  try {
    return await rpc(c, 'Status', {}, ms);
  } finally {
    c.close();
  }
}

/** The member that says it is the leader, within `ms`; throws with the members' logs otherwise. */
async function findLeader(members, ms, what) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    for (const m of members) {
      const s = await status(m, 1000).catch(() => null);
      if (s && s.leader !== '0' && s.leader === s.header.member_id) return m;
    }
    await sleep(200);
  }
  throw new Error(`${what}: no leader within ${ms} ms\n${members.map((m) => `--- ${m.name}\n${logTail(m)}`).join('\n')}`);
}

function metric(m, name) {
  return new Promise((resolve) => {
    const req = httpGet({ host: '127.0.0.1', port: m.client, path: '/metrics', timeout: PROBE_TIMEOUT_MS }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        const line = body.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
        resolve(line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : null);
      });
      res.on('error', () => resolve(null));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

/**
 * Resident memory of a process, bytes: all of it, and the anonymous part (heap, stacks: what
 * the process allocated). The rest is file pages mapped into it — both etcd's bbolt and
 * Flotilla's LMDB map their database file, and the pages read or written count as resident
 * though the kernel can drop them at will.
 */
function rss(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(s)?.[1] ?? NaN) * 1024;
    return { total: kb('VmRSS'), anon: kb('RssAnon') };
  } catch {
    return { total: NaN, anon: NaN };
  }
}

/** Bytes allocated on disk under `path` (as du: blocks, not apparent sizes). */
function duBytes(path) {
  let sum = 0;
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return 0;
  }
  sum += st.blocks * 512;
  if (st.isDirectory()) for (const e of readdirSync(path)) sum += duBytes(join(path, e));
  return sum;
}

// --- Load ---
const keyOf = (i) => Buffer.from(`k/${String(i).padStart(8, '0')}`);
const VALUE_POOL = randomBytes(o.valueBytes + 4096);
/** A different value per put: a window of the random pool, its first bytes the put's number. */
function valueOf(n) {
  const off = (n * 7919) % 4096;
  const v = Buffer.from(VALUE_POOL.subarray(off, off + o.valueBytes));
  v.write(n.toString(36), 0, 'latin1');
  return v;
}

/** The puts [from, to) of `keys` (the index of the key of put n) from the clients; per-attempt latencies. */
async function putRange(conns, keyIndex, from, to) {
  const lat = [];
  let errors = 0;
  let next = from;
  let fatal = null;
  const t0 = performance.now();
  await Promise.all(
    conns.map(async (c) => {
      while (next < to && !fatal) {
        const n = next++;
        const req = { key: keyOf(keyIndex(n)), value: valueOf(n) };
        for (let attempt = 1; ; attempt++) {
          const a = performance.now();
          try {
            await rpc(c, 'Put', req, PUT_DEADLINE_MS);
            lat.push(performance.now() - a);
            break;
          } catch (e) {
            lat.push(performance.now() - a);
            errors++;
            if (attempt >= PUT_ATTEMPTS_MAX) {
              fatal = new Error(`put ${n} failed ${attempt} times, the last: ${e.message}`);
              return;
            }
            await sleep(PUT_RETRY_PAUSE_MS);
          }
        }
      }
    }),
  );
  if (fatal) throw fatal;
  const secs = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  return { ops: (to - from) / secs, p99: lat[Math.min(lat.length - 1, Math.floor(0.99 * lat.length))], max: lat.at(-1), errors };
}

async function leaderChanges(members, base) {
  let most = 0;
  for (const m of members) {
    const v = await metric(m, 'etcd_server_leader_changes_seen_total');
    if (v !== null) m.lastLeaderChanges = v;
    most = Math.max(most, (m.lastLeaderChanges ?? 0) - (base.get(m) ?? 0));
  }
  return most;
}

async function readOk(m) {
  const c = new KV(`127.0.0.1:${m.client}`, insecure);
  try {
    await rpc(c, 'Range', { key: keyOf(0), serializable: false }, 2000);
    return true;
  } catch {
    return false;
  } finally {
    c.close();
  }
}

async function runSystem(sys) {
  const base = join(dir, sys);
  mkdirSync(base);
  const members = [];
  for (let i = 1; i <= 3; i++) members.push({ name: `m${i}`, client: await freePort(), peer: await freePort() });
  const initial = members.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(',');
  for (const m of members) {
    m.dataDir = join(base, m.name);
    m.log = join(base, `${m.name}.log`);
    m.args = memberArgs(sys, m, initial, 'new');
    launch(sys, m);
  }
  const out = { sys, rows: [], members: [] };
  try {
    let leader = await findLeader(members, CLUSTER_READY_TIMEOUT_MS, `${sys}: start`);
    // A first put that commits, then the leader-change counters' starting point.
    {
      const kv = new KV(`127.0.0.1:${leader.client}`, insecure);
      await rpc(kv, 'Put', { key: Buffer.from('warm'), value: Buffer.from('1') }, 10_000);
      kv.close();
    }
    const lcBase = new Map();
    for (const m of members) lcBase.set(m, (await metric(m, 'etcd_server_leader_changes_seen_total')) ?? 0);
    console.log(`${sys}: leader ${leader.name}, filling ${o.keys.toLocaleString('en')} keys of ${o.valueBytes} bytes at ${o.clients} clients`);

    const ep = `127.0.0.1:${leader.client}`;
    const conns = Array.from({ length: o.clients }, (_, i) => new KV(ep, insecure, { 'grpc.channel_id': i }));
    const overwrites = Math.floor(o.keys * o.overwrite);
    const stride = overwrites > 0 ? Math.max(1, Math.floor(o.keys / overwrites)) : 1;
    const phases = [
      { label: 'keys', total: o.keys, keyIndex: (n) => n },
      { label: 'overwrites', total: overwrites, keyIndex: (n) => (n * stride) % o.keys },
    ];
    try {
      for (const ph of phases) {
        for (let from = 0; from < ph.total; from += o.chunk) {
          const to = Math.min(ph.total, from + o.chunk);
          const r = await putRange(conns, ph.keyIndex, from, to);
          r.label = `${ph.label} ${from.toLocaleString('en')} to ${to.toLocaleString('en')}`;
          r.leaderChanges = await leaderChanges(members, lcBase);
          r.load = loadavg()[0];
          out.rows.push(r);
          console.log(
            `${sys}: ${r.label.padEnd(34)} ${r.ops.toFixed(0).padStart(6)} ops/s  p99 ${fmtMs(r.p99).padStart(8)}  max ${fmtMs(r.max).padStart(8)}  ` +
              `errors ${r.errors}  leader changes ${r.leaderChanges}  (load ${r.load.toFixed(1)})`,
          );
        }
      }
    } finally {
      conns.forEach((c) => c.close());
    }

    await sleep(1000); // the backends' batch commits (100 ms) land before the sizes are read
    for (const m of members) {
      const s = await status(m).catch(() => null);
      out.members.push({ name: m.name, rss: rss(m.proc.pid), du: duBytes(m.dataDir), dbSize: s ? Number(s.dbSize) : NaN });
    }
    console.log(`${sys}: ${out.members.map((x) => `${x.name} RSS ${mib(x.rss.total)} (anonymous ${mib(x.rss.anon)}), data dir ${mib(x.du)}, dbSize ${mib(x.dbSize)}`).join('; ')}`);

    // Restart the whole cluster.
    const tStop = performance.now();
    const killed = (await Promise.all(members.map(stop))).filter(Boolean).length;
    out.stopSecs = (performance.now() - tStop) / 1000;
    out.stopKilled = killed;
    const tStart = performance.now();
    for (const m of members) launch(sys, m);
    let healthy = null;
    for (const deadline = Date.now() + RESTART_HEALTHY_TIMEOUT_MS; !healthy && Date.now() < deadline; ) {
      for (const m of members) {
        if (await readOk(m)) {
          healthy = m;
          break;
        }
      }
      if (!healthy) await sleep(100);
    }
    if (!healthy) throw new Error(`${sys}: no linearizable read within ${RESTART_HEALTHY_TIMEOUT_MS} ms of the restart\n${members.map((m) => `--- ${m.name}\n${logTail(m)}`).join('\n')}`);
    out.restartSecs = (performance.now() - tStart) / 1000;
    console.log(`${sys}: stopped in ${out.stopSecs.toFixed(1)} s${killed ? ` (${killed} SIGKILLed)` : ''}, restart to a linearizable read ${out.restartSecs.toFixed(1)} s`);

    // A learner catches up.
    leader = await findLeader(members, CLUSTER_READY_TIMEOUT_MS, `${sys}: after the restart`);
    const m4 = { name: 'm4', client: await freePort(), peer: await freePort() };
    m4.dataDir = join(base, m4.name);
    m4.log = join(base, `${m4.name}.log`);
    const cl = new Cluster(`127.0.0.1:${leader.client}`, insecure);
    let added = null;
    let lastErr = null;
    for (const deadline = Date.now() + MEMBER_ADD_TIMEOUT_MS; !added && Date.now() < deadline; ) {
      added = await rpc(cl, 'MemberAdd', { peerURLs: [`http://127.0.0.1:${m4.peer}`], isLearner: true }, 10_000).catch((e) => {
        lastErr = e;
        return null;
      });
      if (!added) await sleep(500);
    }
    cl.close();
    if (!added) throw new Error(`${sys}: member add --learner refused for ${MEMBER_ADD_TIMEOUT_MS} ms: ${lastErr?.message}`);
    const target = await status(leader);
    out.catchupBytes = Number(target.dbSize);
    m4.args = memberArgs(sys, m4, `${initial},m4=http://127.0.0.1:${m4.peer}`, 'existing');
    const tJoin = performance.now();
    launch(sys, m4);
    members.push(m4);
    const limit = CATCHUP_TIMEOUT_MS + (out.catchupBytes / CATCHUP_BYTES_PER_S_MIN) * 1000;
    let caught = false;
    for (const deadline = Date.now() + limit; !caught && Date.now() < deadline; ) {
      const s = await status(m4, 1000).catch(() => null);
      if (s && BigInt(s.raftAppliedIndex) >= BigInt(target.raftAppliedIndex) && BigInt(s.header.revision) >= BigInt(target.header.revision)) caught = true;
      else await sleep(CATCHUP_POLL_MS);
    }
    if (!caught) throw new Error(`${sys}: the learner did not catch up within ${limit.toFixed(0)} ms\n--- m4\n${logTail(m4)}`);
    out.catchupSecs = (performance.now() - tJoin) / 1000;
    const log = readFileSync(m4.log, 'utf8');
    out.catchupBy = sys === 'flotilla' ? 'snapshot' : /received and saved database snapshot|applying incoming snapshot|applying snapshot at/i.test(log) ? 'snapshot' : 'log';
    console.log(`${sys}: learner caught up (${out.catchupBy}) in ${out.catchupSecs.toFixed(1)} s, ${mb(out.catchupBytes)} store: ${(out.catchupBytes / 1e6 / out.catchupSecs).toFixed(1)} MB/s`);
  } catch (e) {
    e.message += `\n(member logs in ${base} are removed at exit)`;
    throw e;
  } finally {
    await Promise.all(members.map(stop));
    if (o.keepLogs) {
      mkdirSync(o.keepLogs, { recursive: true });
      for (const m of members) if (existsSync(m.log)) copyFileSync(m.log, join(o.keepLogs, `${sys}-${m.name}.log`));
    }
  }
  return out;
}

const fmtMs = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${ms.toFixed(0)} ms`);
const mib = (b) => (Number.isFinite(b) ? (b >= 1024 ** 3 ? `${(b / 1024 ** 3).toFixed(2)} GiB` : `${(b / 1024 ** 2).toFixed(0)} MiB`) : '?');
const mb = (b) => `${(b / 1e6).toFixed(0)} MB`;
const num = (x) => Math.round(x).toLocaleString('en');

function table(results) {
  const head = results.map((r) => (r.sys === 'etcd' ? 'etcd 3.4' : 'Flotilla'));
  const lines = [];
  lines.push(`| ${o.valueBytes} B values, ${o.clients} clients | ${head.map((h) => `${h} ops/s, p99, max`).join(' | ')} | ${head.map((h) => `${h} errors, leader changes so far`).join(' | ')} |`);
  lines.push(`|---|${results.map(() => '---|').join('')}${results.map(() => '---|').join('')}`);
  for (let i = 0; i < results[0].rows.length; i++) {
    const cells = results.map((r) => r.rows[i]);
    lines.push(`| ${cells[0].label} | ${cells.map((c) => `${num(c.ops)}, ${fmtMs(c.p99)}, ${fmtMs(c.max)}`).join(' | ')} | ${cells.map((c) => `${c.errors}, ${c.leaderChanges}`).join(' | ')} |`);
  }
  const pad = results.map(() => '').join(' | ');
  const row = (label, f) => lines.push(`| ${label} | ${results.map(f).join(' | ')} | ${pad} |`);
  row('RSS per member at the end (anonymous: heap)', (r) => r.members.map((m) => `${mib(m.rss.total)} (${mib(m.rss.anon)})`).join(' / '));
  row('data dir per member (du)', (r) => r.members.map((m) => mib(m.du)).join(' / '));
  row('store size (Status.dbSize)', (r) => r.members.map((m) => mib(m.dbSize)).join(' / '));
  row('whole cluster: SIGTERM to all exited', (r) => `${r.stopSecs.toFixed(1)} s${r.stopKilled ? ` (${r.stopKilled} SIGKILLed)` : ''}`);
  row('whole cluster: start to a linearizable read', (r) => `${r.restartSecs.toFixed(1)} s`);
  row('learner catch-up (leader dbSize / time)', (r) => `${r.catchupSecs.toFixed(1)} s by ${r.catchupBy}, ${(r.catchupBytes / 1e6 / r.catchupSecs).toFixed(1)} MB/s`);
  return lines.join('\n');
}

const startedLoad = loadavg();
const results = [];
try {
  for (const sys of systems) results.push(await runSystem(sys));
  const load = loadavg();
  console.log(`\nload average at the start ${startedLoad.map((x) => x.toFixed(2)).join(' ')}, at the end ${load.map((x) => x.toFixed(2)).join(' ')}\n`);
  console.log(table(results));
} catch (e) {
  console.error(`bench/scale: ${e.stack ?? e}`);
  process.exitCode = 1;
} finally {
  cleanup();
}
