// Streamed snapshot catch-up (issue 11 item 3): a store of --mb MiB (values of --value-bytes)
// on LMDB is streamed by a sender (this process: TcpTransport + SnapshotStreamTransport, as a
// leader's member) to a receiver in a child process (the same, as a follower's member) over
// loopback TCP; the receiver installs the image (KvStateMachine.restore of the snapshot message
// the stream hands its core) and reports its HashKV, which must equal the sender's.
//
// Measured: the send (first chunk to the receiver's "done"), the install, MB/s of the whole
// catch-up, and the sender's event loop while it streams: perf_hooks.monitorEventLoopDelay
// (max, p99) and the longest gap between ticks of a 1 ms interval timer.
//
//   npm run bench:snapshot                       # = node bench/snapshot-stream.js --mb 256
//   node bench/snapshot-stream.js --mb 64 --value-bytes 1024
import { fork } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { LmdbBackend } from '../dist/kv/backend-lmdb.js';
import { encodeCommand } from '../dist/kv/commands.js';
import { KvStateMachine } from '../dist/kv/state-machine.js';
import { SnapshotStreamTransport } from '../dist/server/snapshot-stream.js';
import { TcpTransport } from '../dist/transport/tcp.js';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const CONF = { voters: [1, 2], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false };
const quiet = { debug() {}, info: (m) => process.env.BENCH_VERBOSE && console.error(`${(performance.now() | 0)} ${m}`), warn: (m) => console.error(m) };

function side(id, dir, sm, peers, observer = {}) {
  return TcpTransport.start({ id, clusterId: 'bench', peers, backoffMs: [10, 100] }).then((transport) => {
    const streams = new SnapshotStreamTransport(transport, {
      id,
      openView: (index) => sm.snapshotView(index),
      receiveDir: join(dir, 'snap-recv'),
      openStaging: (path) => LmdbBackend.open(path, { batchIntervalMs: 0, batchOpsMax: Number.MAX_SAFE_INTEGER }),
      logger: quiet,
      observer,
    });
    sm.setStreamedSnapshots((sid, index) => streams.takeStreamed(sid, index));
    streams.onMember(() => {});
    return { transport, streams };
  });
}

if (process.argv[2] === 'receiver') {
  // The follower's member: installs the snapshot its stream delivers, reports its HashKV.
  const dir = process.argv[3];
  const sm = new KvStateMachine({}, LmdbBackend.open(join(dir, 'db'), { batchIntervalMs: 0 }));
  const v = process.env.BENCH_VERBOSE ? (m) => console.error(`${performance.now() | 0} ${m}`) : () => {};
  const { transport, streams } = await side(2, dir, sm, new Map(), { chunkStored: (_f, _id, seq) => v(`stored ${seq}`) });
  streams.listen((m) => {
    if (m.type !== 'snapshot') return;
    const t0 = performance.now();
    sm.restore(m.snapshot.data, m.snapshot.meta.index);
    const installMs = performance.now() - t0;
    process.send({ type: 'installed', at: Date.now(), installMs, hash: sm.store.hashKv(), dbBytes: sm.backend.dbSizeBytes() });
  });
  process.send({ type: 'ready', port: transport.port });
  process.on('message', async (msg) => {
    if (msg.type === 'peer') {
      transport.setPeer(1, { host: '127.0.0.1', port: msg.port });
      process.send({ type: 'peered' });
    }
    if (msg.type === 'exit') {
      await streams.close();
      await sm.backend.close();
      process.exit(0);
    }
  });
} else {
  const mb = Number(arg('mb', '256'));
  const valueBytes = Number(arg('value-bytes', '4096'));
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-bench-snap-'));
  try {
    mkdir(join(dir, 'a'));
    const sm = new KvStateMachine({}, LmdbBackend.open(join(dir, 'a', 'db'), { batchIntervalMs: 0 }));
    const keys = Math.ceil((mb * 1024 * 1024) / valueBytes);
    const t0 = performance.now();
    const value = new Uint8Array(valueBytes);
    for (let i = 0; i < keys; i++) {
      for (let j = 0; j < 8; j++) value[j] = (i >> (j * 4)) & 255;
      sm.apply({ index: i + 1, term: 1, type: 'normal', data: encodeCommand({ op: 'put', req: { key: new TextEncoder().encode(`key/${String(i).padStart(8, '0')}`), value } }) });
    }
    sm.persistTo(keys);
    const fillS = (performance.now() - t0) / 1000;
    const storeBytes = sm.backend.dbSizeBytes();
    console.log(`store: ${keys} keys of ${valueBytes} B, LMDB file ${(storeBytes / 2 ** 20).toFixed(0)} MiB (filled in ${fillS.toFixed(1)} s)`);

    const child = fork(new URL(import.meta.url).pathname, ['receiver', join(dir, 'b')], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    mkdir(join(dir, 'b'));
    const fromChild = (type) => new Promise((resolve) => child.on('message', (m) => m.type === type && resolve(m)));
    const ready = await fromChild('ready');
    let ended;
    const done = new Promise((resolve) => (ended = resolve));
    const sender = await side(1, join(dir, 'a'), sm, new Map([[2, { host: '127.0.0.1', port: ready.port }]]), { sendEnded: (_to, _id, how, bytes, ms) => ended({ how, bytes, ms }), ...(process.env.BENCH_VERBOSE ? { chunkSent: (_to, _id, seq) => console.error(`${performance.now() | 0} sent ${seq}`) } : {}) });
    const peered = fromChild('peered');
    child.send({ type: 'peer', port: sender.transport.port });
    await peered;

    // The fill's garbage is collected before the send is measured (run with --expose-gc).
    globalThis.gc?.();
    const h = monitorEventLoopDelay({ resolution: 10 });
    // Wall-clock gaps include time the OS did not run this process (a loaded machine); the CPU
    // time this process used within a gap is what our own code held the event loop for.
    let lastTick = performance.now();
    let lastCpu = process.cpuUsage();
    let maxGapMs = 0;
    let maxGapCpuMs = 0;
    const ticker = setInterval(() => {
      const now = performance.now();
      const cpu = process.cpuUsage(lastCpu);
      maxGapMs = Math.max(maxGapMs, now - lastTick);
      maxGapCpuMs = Math.max(maxGapCpuMs, (cpu.user + cpu.system) / 1000);
      lastTick = now;
      lastCpu = process.cpuUsage();
    }, 1);
    const installed = fromChild('installed');
    h.enable();
    const start = Date.now();
    lastTick = performance.now();
    lastCpu = process.cpuUsage();
    sender.streams.send([{ type: 'snapshot', from: 1, to: 2, term: 1, snapshot: { meta: { index: keys, term: 1, confState: CONF }, data: new Uint8Array(0) } }]);
    const { how, bytes: sentBytes, ms: sendMs } = await done;
    h.disable();
    clearInterval(ticker);
    const inst = await installed;
    const totalS = (inst.at - start) / 1000;
    const hashOk = JSON.stringify(inst.hash) === JSON.stringify(sm.store.hashKv());
    console.log(`send: ${how}, ${(sentBytes / 2 ** 20).toFixed(0)} MiB image in ${(sendMs / 1000).toFixed(2)} s = ${(sentBytes / 1e6 / (sendMs / 1000)).toFixed(1)} MB/s`);
    console.log(`install on the receiver: ${inst.installMs.toFixed(0)} ms; catch-up (send + install): ${totalS.toFixed(2)} s = ${(sentBytes / 1e6 / totalS).toFixed(1)} MB/s; HashKV equal: ${hashOk}`);
    console.log(`sender event loop while streaming: monitorEventLoopDelay max ${(h.max / 1e6).toFixed(1)} ms, p99 ${(h.percentile(99) / 1e6).toFixed(1)} ms; longest gap of a 1 ms timer ${maxGapMs.toFixed(1)} ms; most CPU time used between two ticks ${maxGapCpuMs.toFixed(1)} ms (load average ${loadavg().map((x) => x.toFixed(1)).join(' ')})`);
    child.send({ type: 'exit' });
    await new Promise((r) => child.on('exit', r));
    await sender.streams.close();
    await sm.backend.close();
    if (!hashOk) process.exitCode = 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function mkdir(d) {
  rmSync(d, { recursive: true, force: true });
  mkdirSync(d, { recursive: true });
}
