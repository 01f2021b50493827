#!/usr/bin/env node
/**
 * Benchmark: the cost of TLS. Throughput of back-to-back puts (and linearizable gets) by N
 * concurrent gRPC clients (one HTTP/2 connection each, 256-byte values, 1,000 keys) against
 * the leader of a 3-member cluster, without TLS and with TLS everywhere (https:// client URLs
 * with --client-cert-auth, https:// peer URLs with --peer-client-cert-auth; ECDSA P-256
 * certificates made with openssl), for Flotilla and, unless --no-etcd, real etcd. Also the
 * members' CPU time per operation (from /proc), which shows TLS's cost even on a shared machine
 * where throughput is set by contention.
 *
 *   npm run build && node bench/tls.js [--seconds S] [--clients 64] [--ops put,get] [--no-etcd]
 */
import * as grpc from '@grpc/grpc-js';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { clientConstructor } from '../dist/api/proto.js';
import { cpuMs, freePort, sleep } from './lib.js';

const o = new Command()
  .option('--seconds <s>', 'seconds per case', Number, 10)
  .option('--clients <list>', 'concurrent clients per case', '64')
  .option('--ops <list>', 'operations', 'put,get')
  .option('--no-etcd', 'Flotilla only')
  .option('--etcd-bin <path>', 'etcd binary', '/usr/bin/etcd')
  .parse()
  .opts();

const bin = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'flotilla.js');
const KV = clientConstructor('etcdserverpb.KV');
const Maint = clientConstructor('etcdserverpb.Maintenance');
const call = (c, method, req, ms = 30_000) => new Promise((resolve, reject) => c[method](req, { deadline: Date.now() + ms }, (e, r) => (e ? reject(e) : resolve(r))));

function makeCerts(dir) {
  const ossl = (args) => execFileSync('openssl', args, { stdio: 'ignore' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  ossl(['req', '-x509', ...ec, '-keyout', join(dir, 'ca-key.pem'), '-out', join(dir, 'ca.pem'), '-days', '2', '-subj', '/CN=bench-ca']);
  writeFileSync(join(dir, 'ext'), 'extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n');
  for (const name of ['server', 'client']) {
    ossl(['req', '-new', ...ec, '-keyout', join(dir, `${name}-key.pem`), '-out', join(dir, `${name}.csr`), '-subj', `/CN=${name}`]);
    ossl(['x509', '-req', '-in', join(dir, `${name}.csr`), '-CA', join(dir, 'ca.pem'), '-CAkey', join(dir, 'ca-key.pem'), '-CAcreateserial', '-days', '2', '-extfile', join(dir, 'ext'), '-out', join(dir, `${name}.pem`)]);
  }
  return { ca: join(dir, 'ca.pem'), server: join(dir, 'server.pem'), serverKey: join(dir, 'server-key.pem'), client: join(dir, 'client.pem'), clientKey: join(dir, 'client-key.pem') };
}


function credentials(tls, certs) {
  return tls ? grpc.credentials.createSsl(readFileSync(certs.ca), readFileSync(certs.clientKey), readFileSync(certs.client)) : grpc.credentials.createInsecure();
}

async function startCluster(kind, tls, dir, certs) {
  const s = tls ? 'https' : 'http';
  const members = [];
  for (let i = 0; i < 3; i++) members.push({ name: `m${i + 1}`, client: await freePort(), peer: await freePort() });
  const initial = members.map((m) => `${m.name}=${s}://127.0.0.1:${m.peer}`).join(',');
  const tlsArgs = tls
    ? ['--cert-file', certs.server, '--key-file', certs.serverKey, '--trusted-ca-file', certs.ca, '--client-cert-auth',
       '--peer-cert-file', certs.server, '--peer-key-file', certs.serverKey, '--peer-trusted-ca-file', certs.ca, '--peer-client-cert-auth']
    : [];
  for (const m of members) {
    const args = [
      '--name', m.name, '--data-dir', join(dir, `${kind}-${s}`, m.name),
      '--listen-client-urls', `${s}://127.0.0.1:${m.client}`, '--advertise-client-urls', `${s}://127.0.0.1:${m.client}`,
      '--listen-peer-urls', `${s}://127.0.0.1:${m.peer}`, '--initial-advertise-peer-urls', `${s}://127.0.0.1:${m.peer}`,
      '--initial-cluster', initial, '--initial-cluster-token', `bench-${kind}-${s}`, '--initial-cluster-state', 'new', ...tlsArgs,
    ];
    m.proc = kind === 'etcd' ? spawn(o.etcdBin, args, { stdio: 'ignore' }) : spawn(process.execPath, [bin, 'serve', ...args], { stdio: 'ignore' });
  }
  const creds = credentials(tls, certs);
  for (;;) {
    for (const m of members) {
      const c = new Maint(`127.0.0.1:${m.client}`, creds);
      try {
        const st = await call(c, 'Status', {}, 500);
        if (st.leader !== '0' && st.leader === st.header.member_id) {
          const kv = new KV(`127.0.0.1:${m.client}`, creds);
          await call(kv, 'Put', { key: Buffer.from('warm'), value: Buffer.from('1') });
          kv.close();
          return { members, leader: m };
        }
      } catch {
        // not yet
      } finally {
        c.close();
      }
    }
    await sleep(200);
  }
}

async function run(endpoint, creds, clients, seconds, op) {
  const value = Buffer.alloc(256, 7);
  const conns = Array.from({ length: clients }, (_, i) => new KV(endpoint, creds, { 'grpc.channel_id': i }));
  // Connect (and handshake) before the clock starts.
  await Promise.all(conns.map((c) => call(c, 'Range', { key: Buffer.from('warm') }, 60_000).catch(() => undefined)));
  const lat = [];
  let errors = 0;
  const until = performance.now() + seconds * 1000;
  await Promise.all(
    conns.map(async (c, i) => {
      let n = 0;
      while (performance.now() < until) {
        const key = Buffer.from(`bench/${(i * 7919 + n++) % 1000}`);
        const t0 = performance.now();
        try {
          if (op === 'put') await call(c, 'Put', { key, value });
          else await call(c, 'Range', { key });
          lat.push(performance.now() - t0);
        } catch {
          errors++; // e.g. a request timeout on an overloaded machine: counted, not fatal
        }
      }
    }),
  );
  conns.forEach((c) => c.close());
  lat.sort((a, b) => a - b);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
  return { ops: lat.length / seconds, p50: q(0.5), p99: q(0.99), errors };
}

const dir = await mkdtemp(join(tmpdir(), 'flotilla-bench-tls-'));
const certs = makeCerts(dir);
const running = [];
try {
  const results = {};
  const kinds = o.etcd ? ['etcd', 'flotilla'] : ['flotilla'];
  const ops = String(o.ops).split(',');
  const counts = String(o.clients).split(',').map(Number);
  for (const kind of kinds) {
    for (const tls of [false, true]) {
      const c = await startCluster(kind, tls, dir, certs);
      running.push(c);
      const creds = credentials(tls, certs);
      for (const op of ops) {
        for (const n of counts) {
          const cpu0 = c.members.reduce((a, m) => a + cpuMs(m.proc.pid), 0);
          const r = await run(`127.0.0.1:${c.leader.client}`, creds, n, o.seconds, op);
          // Server CPU per operation, all three members: what TLS costs even when the machine is
          // shared and throughput is set by contention.
          r.cpuMsPerOp = (c.members.reduce((a, m) => a + cpuMs(m.proc.pid), 0) - cpu0) / (r.ops * o.seconds);
          results[`${kind} ${tls} ${op} ${n}`] = r;
          console.log(`${kind.padEnd(8)} ${tls ? 'TLS  ' : 'plain'} ${op} ${String(n).padStart(3)} clients: ${r.ops.toFixed(0).padStart(7)} ops/s  p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms  errors ${r.errors}  server CPU ${r.cpuMsPerOp.toFixed(3)} ms/op`);
        }
      }
      for (const m of c.members) m.proc.kill('SIGKILL');
      await sleep(300);
    }
  }
  console.log('\nTLS / plain (ops/s; server CPU per op):');
  for (const kind of kinds) {
    for (const op of ops) {
      for (const n of counts) {
        const t = results[`${kind} true ${op} ${n}`];
        const p = results[`${kind} false ${op} ${n}`];
        console.log(`  ${kind.padEnd(8)} ${op} ${String(n).padStart(3)} clients: ${(t.ops / p.ops).toFixed(2)}; ${(t.cpuMsPerOp / p.cpuMsPerOp).toFixed(2)}`);
      }
    }
  }
} finally {
  for (const c of running) for (const m of c.members) m.proc.kill('SIGKILL');
  await sleep(300);
  await rm(dir, { recursive: true, force: true });
}
