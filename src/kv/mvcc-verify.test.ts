/**
 * A store streamed by a peer is hostile: its records are checked one by one as they arrive,
 * and against each other when the install opens it (MvccOpenOptions.verify). A store that
 * breaks an invariant across records is refused (SnapshotImageError, nothing installed), never
 * adopted to fail an assertion at a later read. An ordinary open verifies nothing.
 */
import { describe, expect, it } from 'vitest';
import { BACKEND_KEY_BYTES_MAX, MemoryBackend } from './backend.js';
import { metaKey, MvccStore, u64Bytes, u64Of } from './mvcc.js';
import { toLayout1 } from './testing/layout1.js';
import { SnapshotImageError } from './snapshot-image.js';
import { KvStateMachine, streamedImage } from './state-machine.js';

const b = (s: string): Uint8Array => new TextEncoder().encode(s);
const u64 = (n: number | bigint): number[] => {
  const x = new Uint8Array(8);
  new DataView(x.buffer).setBigUint64(0, BigInt(n));
  return [...x];
};
const histKey = (k: string): Uint8Array => Uint8Array.from([0x69, ...b(k)]);
const revKey = (main: number, sub: number): Uint8Array => Uint8Array.from([0x72, ...u64(main), ...u64(sub)]);
const attachKey = (lease: bigint, k: string): Uint8Array => Uint8Array.from([0x61, ...u64(lease), ...b(k)]);
const leaseKey = (id: bigint): Uint8Array => Uint8Array.from([0x6c, ...u64(id)]);

const INDEX = 40;
const STREAM_ID = '0123456789abcdef0123456789abcdef';
/** Keys too long for an index record of their own: they share a bucket. */
const LONG1 = 'x'.repeat(BACKEND_KEY_BYTES_MAX + 10);
const LONG2 = `${LONG1}y`;

/**
 * A valid store, as a peer streams it (recording INDEX as applied): lease 5 holds "a"; "b"
 * put twice; "c" deleted; "d" put after a compaction; two long keys in one bucket. Revisions:
 * a 2, b 3 and 4, c 5, c deleted 6, long keys 7 and 8, compaction at 4, d 9.
 */
function validStore(): { backend: MemoryBackend; store: MvccStore } {
  const backend = new MemoryBackend({ durable: true });
  const store = new MvccStore({}, backend);
  store.grantLease(5n, 60);
  store.put({ key: b('a'), value: b('1'), lease: 5n });
  store.put({ key: b('b'), value: b('1') });
  store.put({ key: b('b'), value: b('2') });
  store.put({ key: b('c'), value: b('1') });
  store.deleteRange({ key: b('c') });
  store.put({ key: b(LONG1), value: b('1') });
  store.put({ key: b(LONG2), value: b('1'), lease: 5n });
  store.compact(4);
  store.put({ key: b('d'), value: b('1') });
  backend.put(metaKey('applied'), u64Bytes(INDEX));
  backend.commit();
  return { backend, store };
}

/** Installs `staged` as a snapshot streamed at INDEX into a fresh member's state machine. */
function install(staged: MemoryBackend): KvStateMachine {
  const sm = new KvStateMachine({}, new MemoryBackend({ durable: true }));
  sm.setStreamedSnapshots((_id, index) => (index === INDEX ? staged : null));
  sm.restore(streamedImage(INDEX, STREAM_ID), INDEX);
  return sm;
}

/** The install refuses `staged` with a SnapshotImageError matching `message`; the member holds nothing of it. */
function expectRefused(staged: MemoryBackend, message: RegExp): void {
  const sm = new KvStateMachine({}, new MemoryBackend({ durable: true }));
  sm.setStreamedSnapshots(() => staged);
  let error: unknown;
  try {
    sm.restore(streamedImage(INDEX, STREAM_ID), INDEX);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(SnapshotImageError);
  expect((error as Error).message).toMatch(/^invalid state machine snapshot image: store: /);
  expect((error as Error).message).toMatch(message);
  expect(sm.lastAppliedIndex()).toBe(0);
  expect(sm.store.revision).toBe(1);
}

describe('MvccStore: a streamed store is verified across its records at install', () => {
  it('a valid store is installed (layout 2, and layout 1 migrated), reads as the peer wrote it', () => {
    for (const layout1 of [false, true]) {
      const { backend, store } = validStore();
      const hash = store.hashKv();
      const lease = store.lease(5n);
      if (layout1) toLayout1(backend);
      const sm = install(backend);
      expect(sm.lastAppliedIndex()).toBe(INDEX);
      expect(sm.store.hashKv()).toEqual(hash);
      expect(sm.store.lease(5n)).toEqual(lease);
      expect(sm.store.keyCount).toBe(6);
    }
  });

  it('refuses a key history naming a revision the store does not hold', () => {
    const { backend } = validStore();
    backend.del(revKey(4, 0));
    expectRefused(backend, /history of key "b": it names revision 4\.0, which the store does not hold/);
  });

  it('refuses a key history naming a revision of another key', () => {
    const { backend } = validStore();
    backend.put(histKey('b'), backend.get(histKey('a'))!);
    expectRefused(backend, /history of key "b": it names revision 2\.0, which is of key "a"/);
  });

  it('refuses a key history whose deletion flag disagrees with the revision record', () => {
    const { backend } = validStore();
    const h = backend.get(histKey('c'))!.slice();
    h[h.length - 1] = 0; // the deletion at 6 as a put
    backend.put(histKey('c'), h);
    expectRefused(backend, /history of key "c": it has revision 6\.0 as a put, which the revision record says is a deletion/);
  });

  it('refuses a key history out of revision order', () => {
    const { backend } = validStore();
    const h = backend.get(histKey('c'))!;
    backend.put(histKey('c'), Uint8Array.from([...h.subarray(16), ...h.subarray(0, 16)]));
    expectRefused(backend, /history of key "c": revision 5\.0 is not after 6\.0/);
  });

  it('refuses a wrong key count', () => {
    const { backend } = validStore();
    backend.put(metaKey('keys'), u64Bytes(u64Of(backend.get(metaKey('keys'))) + 1));
    expectRefused(backend, /the store records 7 keys, its key index holds 6/);
  });

  it('refuses an attachment to a lease the store does not hold', () => {
    const { backend } = validStore();
    backend.put(attachKey(9n, 'b'), new Uint8Array(0));
    expectRefused(backend, /key "b" is attached to lease 9, which the store does not hold/);
  });

  it('refuses an attachment of a key whose latest revision is not a put with that lease', () => {
    const { backend } = validStore();
    backend.put(attachKey(5n, 'b'), new Uint8Array(0));
    expectRefused(backend, /key "b" is attached to lease 5, but its latest revision 4 is a put with lease 0/);
    const deleted = validStore().backend;
    deleted.put(attachKey(5n, 'c'), new Uint8Array(0));
    expectRefused(deleted, /key "c" is attached to lease 5, but the key is not live/);
  });

  it('refuses a key whose latest revision is a put with a lease it is not attached to, or a lease the store does not hold', () => {
    const { backend } = validStore();
    backend.del(attachKey(5n, 'a'));
    expectRefused(backend, /history of key "a": its latest revision 2\.0 is a put with lease 5, but the key is not attached to the lease/);
    const noLease = validStore().backend;
    noLease.del(leaseKey(5n));
    expectRefused(noLease, /history of key "a": its latest revision 2\.0 is a put with lease 5, which the store does not hold/);
  });

  it('refuses a revision record that no key history names', () => {
    const { backend } = validStore();
    backend.put(revKey(4, 7), backend.get(revKey(4, 0))!);
    expectRefused(backend, /revision 4\.7 \(key "b"\) is not in its key's history in the key index/);
    // A revision compaction dropped (from the history), left in the store.
    const compacted = validStore().backend;
    compacted.put(revKey(3, 0), compacted.get(revKey(4, 0))!);
    expectRefused(compacted, /revision 3\.0 \(key "b"\) is not in its key's history/);
  });

  it("refuses a store whose revision is below its highest revision's", () => {
    const { backend } = validStore();
    backend.put(revKey(10, 0), backend.get(revKey(9, 0))!);
    expectRefused(backend, /revision 10\.0 is past the store's revision 9/);
    const lowered = validStore().backend;
    lowered.put(metaKey('rev'), u64Bytes(8));
    expectRefused(lowered, /history of key "d": revision 9\.0 is past the store's revision 8/);
  });

  it('refuses a bucket of the key index holding a key out of order', () => {
    const { backend } = validStore();
    const buckets = [...backend.scan(histKey('x'), histKey('y'))].filter(([k]) => k.length === BACKEND_KEY_BYTES_MAX);
    expect(buckets).toHaveLength(1);
    const [bk, v] = buckets[0]!;
    // The bucket's two entries swapped: count(4), then per key keyLength(4) key valueLength(4) value.
    const d = new DataView(v.buffer, v.byteOffset, v.byteLength);
    const first = 4 + 8 + d.getUint32(4) + d.getUint32(4 + 4 + d.getUint32(4));
    backend.put(bk, Uint8Array.from([...v.subarray(0, 4), ...v.subarray(first), ...v.subarray(4, first)]));
    expectRefused(backend, /a key index bucket whose keys are not in order/);
  });

  it('refuses a store of a layout this build does not read (a newer peer)', () => {
    const { backend } = validStore();
    backend.put(metaKey('layout'), u64Bytes(3));
    expectRefused(backend, /the store's backend has layout 3; this build reads layout 2/);
  });

  it('a layout 1 store (an older peer) is refused as well: an attachment to a lease it does not hold, an index entry naming no revision', () => {
    const { backend } = validStore();
    backend.del(leaseKey(5n));
    toLayout1(backend);
    expectRefused(backend, /is attached to lease 5, which the store does not hold/);
    const missing = validStore().backend;
    toLayout1(missing);
    missing.del(revKey(4, 0));
    expectRefused(missing, /history of key "b": it names revision 4\.0, which the store does not hold/);
  });

  it('verifies once per install; an ordinary open (a restart) reads no record of the key space, even of a broken store', () => {
    const { backend } = validStore();
    let indexScans = 0;
    const scan = backend.scan.bind(backend);
    backend.scan = (start, end) => {
      if (start[0] === 0x69) indexScans++;
      return scan(start, end);
    };
    install(backend);
    expect(indexScans).toBe(1);

    const broken = validStore().backend;
    broken.del(revKey(4, 0));
    broken.put(metaKey('keys'), u64Bytes(99));
    broken.commit();
    const reopened = broken.reopen();
    let scanned = 0;
    let gets = 0;
    const scan2 = reopened.scan.bind(reopened);
    const get = reopened.get.bind(reopened);
    reopened.scan = function* (start, end) {
      for (const e of scan2(start, end)) {
        scanned++;
        yield e;
      }
    };
    reopened.get = (key) => {
      gets++;
      return get(key);
    };
    const opened = new MvccStore({}, reopened);
    expect(scanned).toBe(1); // the lease
    expect(gets).toBeLessThanOrEqual(4); // metadata: rev, compact, layout, keys
    expect(opened.keyCount).toBe(99);
  });
});
