/** Helpers shared by the benchmark scripts (they run on the build: `npm run build` first). */
import { readFileSync } from 'node:fs';
export { freePort } from '../dist/lib/proc.js';

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

