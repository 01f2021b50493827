/**
 * Key ranges as etcd names them: a key alone, [key, rangeEnd), or everything from a key
 * (rangeEnd "\0"). Pure; used by the server (lock and election prefixes), the client and the
 * simulator's real store.
 */

/**
 * The end of the range of keys starting with `prefix` (etcd's GetPrefixRangeEnd): the prefix
 * with its trailing 0xff bytes dropped and its last byte incremented; "\0" (every key from the
 * prefix on) when no such key exists. A new array; `prefix` is not changed.
 */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  const end = Uint8Array.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return new Uint8Array([0]);
}
