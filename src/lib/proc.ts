/** Small process and socket helpers shared by the fault harness, the tests and the benchmarks. */
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

/** A free TCP port on loopback (the OS picks it; another process could take it before use, rarely). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

/** SIGKILLs the process (if it still runs) and resolves once it has exited. */
export function killAndWait(p: ChildProcess | null): Promise<void> {
  return new Promise((resolve) => {
    if (!p || p.exitCode !== null || p.signalCode !== null) return resolve();
    p.once('exit', () => resolve());
    p.kill('SIGKILL');
  });
}
