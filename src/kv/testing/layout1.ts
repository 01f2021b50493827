/**
 * Test support: rewrites a store's backend into layout 1, as builds before the key index moved
 * into the backend wrote it — a 'k' index entry per revision (flags, lease, key), and no 'i'
 * histories, 'a' lease attachments, 'keys' count or 'layout' record — so tests can open, migrate
 * and verify stores of the old layout.
 */
import type { MemoryBackend } from '../backend.js';
import { metaKey } from '../mvcc.js';

export function toLayout1(backend: MemoryBackend): void {
  for (const [k, v] of [...backend.scan(Uint8Array.of(0))]) {
    if (k[0] === 0x69 || k[0] === 0x61 || k[0] === 0x6b) backend.del(k); // 'k': layout 2's guard against layout 1 builds
    if (k[0] !== 0x72) continue;
    const len = new DataView(v.buffer, v.byteOffset, v.byteLength).getUint32(25);
    const idx = new Uint8Array(9 + len);
    idx[0] = v[0]!;
    idx.set(v.subarray(17, 25), 1);
    idx.set(v.subarray(29, 29 + len), 9);
    const ik = k.slice();
    ik[0] = 0x6b;
    backend.put(ik, idx);
  }
  backend.del(metaKey('keys'));
  backend.del(metaKey('layout'));
  backend.commit();
}
