/** Helpers shared by the benchmark scripts (they run on the build: `npm run build` first). */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort as freePortLocal } from '../dist/lib/proc.js';
export { freePortLocal as freePort };

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** CPU time (user + system) a process has used, ms, from /proc (Linux; clock ticks of 10 ms). */
export function cpuMs(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return NaN;
  }
}


/**
 * Starts a 3-member cluster of separate processes on loopback (free ports, data under
 * dir/kind/mN, default timings, etcd's flags): `command(args)` gives each member's
 * [executable, argv] for its flags. Returns the members ({ name, client, peer, proc }); the
 * caller waits for a leader as it needs.
 */
export async function spawnCluster(kind, dir, command) {
  const members = [];
  for (let i = 0; i < 3; i++) members.push({ name: `m${i + 1}`, client: await freePortLocal(), peer: await freePortLocal() });
  const initial = members.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(',');
  for (const m of members) {
    const args = [
      '--name', m.name, '--data-dir', join(dir, kind, m.name),
      '--listen-client-urls', `http://127.0.0.1:${m.client}`, '--advertise-client-urls', `http://127.0.0.1:${m.client}`,
      '--listen-peer-urls', `http://127.0.0.1:${m.peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${m.peer}`,
      '--initial-cluster', initial, '--initial-cluster-token', `bench-${kind}`, '--initial-cluster-state', 'new',
    ];
    const [exe, argv] = command(args);
    m.proc = spawn(exe, argv, { stdio: 'ignore' });
  }
  return members;
}
