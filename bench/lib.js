/** Helpers shared by the benchmark scripts. */
import { createServer } from 'node:net';

/** A free TCP port on loopback (the OS picks it; a race with other processes is possible but rare). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
