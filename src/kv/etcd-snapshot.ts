/**
 * etcd's snapshot format: a bbolt file (bbolt.ts) with etcd 3.4's backend schema, followed
 * by the SHA-256 of the file (what etcd's Maintenance.Snapshot sends and etcdctl checks):
 *
 *   key      revision (main:u64 BE | '_' | sub:u64 BE [| 't' for a deletion]) -> mvccpb.KeyValue
 *   lease    id:u64 BE -> leasepb.Lease {ID, TTL}
 *   meta     consistent_index -> u64 BE; scheduledCompactRev, finishedCompactRev -> revision
 *   members  id (hex) -> JSON {id, peerURLs, name, clientURLs}; members_removed
 *   cluster  clusterVersion -> "3.4.0"
 *   alarm, auth, authRoles, authUsers
 *
 * Neither way goes through the store's internals. `etcdSnapshot` turns what
 * MvccStore.snapshotSource reads from a backend read view (the revisions in revision order,
 * the leases, the compact revision) into the file's pages, as they are asked for: no image of
 * the store is built, the memory it takes does not grow with the store (issue 11).
 * `etcdSnapshotSource` hands a file's key, lease and meta buckets, entry by entry as the pages
 * are read, to MvccStore.importRevisions, which writes the store into a backend and checks it
 * as it goes (`snapshot restore`); `importEtcdSnapshot` turns them into the store's image
 * (MvccStore.restore, the format documented there) instead, which the store checks whole.
 * `snapshotStatus` computes what `etcdctl snapshot status` prints.
 */
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { BoltFormatError, BoltReader, layOutBolt, type BoltBucketSource, type BoltEntry, type ByteSource } from './bbolt.js';
import type { AlarmMember } from './commands.js';
import type { StoreImportSource, StoreRevision, StoreSnapshotSource } from './mvcc.js';

const enc = new TextEncoder();
const name = (s: string): Uint8Array => enc.encode(s);
export const BUCKET = {
  alarm: name('alarm'),
  auth: name('auth'),
  authRoles: name('authRoles'),
  authUsers: name('authUsers'),
  cluster: name('cluster'),
  key: name('key'),
  lease: name('lease'),
  members: name('members'),
  membersRemoved: name('members_removed'),
  meta: name('meta'),
} as const;
const META_CONSISTENT_INDEX = 'consistent_index';
const META_SCHEDULED_COMPACT = 'scheduledCompactRev';
const META_FINISHED_COMPACT = 'finishedCompactRev';
/** The cluster version a Flotilla snapshot claims (the etcd API it speaks). */
export const SNAPSHOT_CLUSTER_VERSION = '3.4.0';
export const SHA256_BYTES = 32;

/** The file is a bbolt database, but not one whose contents Flotilla can take. */
export class EtcdSnapshotError extends Error {
  override name = 'EtcdSnapshotError';
}
const bad = (why: string): never => {
  throw new EtcdSnapshotError(`snapshot file holds no key space Flotilla can restore: ${why}`);
};

// ---------------------------------------------------------------------------------------
// CRC-32C (Castagnoli): etcdctl snapshot status's hash
// ---------------------------------------------------------------------------------------

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** Continues a CRC-32C over `b` (start with 0). */
export function crc32c(b: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < b.length; i++) c = CRC32C_TABLE[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

// ---------------------------------------------------------------------------------------
// Revisions and the two protobuf messages
// ---------------------------------------------------------------------------------------

export function revisionKey(main: number, sub: number, tombstone = false): Uint8Array {
  const b = new Uint8Array(tombstone ? 18 : 17);
  const dv = new DataView(b.buffer);
  dv.setBigUint64(0, BigInt(main), false);
  b[8] = 0x5f; // '_'
  dv.setBigUint64(9, BigInt(sub), false);
  if (tombstone) b[17] = 0x74; // 't'
  return b;
}

function parseRevisionKey(k: Uint8Array, where: string): { main: number; sub: number; tombstone: boolean } {
  if ((k.length !== 17 && k.length !== 18) || k[8] !== 0x5f || (k.length === 18 && k[17] !== 0x74)) bad(`${where}: ${k.length}-byte key is not a revision`);
  const dv = new DataView(k.buffer, k.byteOffset, k.byteLength);
  const main = dv.getBigUint64(0, false);
  const sub = dv.getBigUint64(9, false);
  if (main > BigInt(Number.MAX_SAFE_INTEGER) || sub > BigInt(Number.MAX_SAFE_INTEGER)) bad(`${where}: revision ${main}.${sub} out of range`);
  return { main: Number(main), sub: Number(sub), tombstone: k.length === 18 };
}

function varint(out: number[], v: bigint | number): void {
  if (typeof v === 'number' && v >= 0 && v <= Number.MAX_SAFE_INTEGER) {
    // The common case (revisions, sizes) without bigint arithmetic.
    let x = v;
    while (x >= 0x80) {
      out.push((x % 0x80) | 0x80);
      x = Math.floor(x / 0x80);
    }
    out.push(x);
    return;
  }
  let x = BigInt.asUintN(64, BigInt(v));
  while (x >= 0x80n) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
}

/** A protobuf message of int64 (varint) and bytes fields, zero values left out (as gogoproto does). */
function encodeMessage(fields: readonly (readonly [number, bigint | number | Uint8Array])[]): Uint8Array {
  const head: number[] = [];
  const parts: Uint8Array[] = [];
  let total = 0;
  const flush = () => {
    if (head.length === 0) return;
    const b = Uint8Array.from(head);
    parts.push(b);
    total += b.length;
    head.length = 0;
  };
  for (const [no, v] of fields) {
    if (v instanceof Uint8Array) {
      if (v.length === 0) continue;
      varint(head, (no << 3) | 2);
      varint(head, v.length);
      flush();
      parts.push(v);
      total += v.length;
    } else {
      if (v === 0 || v === 0n) continue;
      varint(head, no << 3);
      varint(head, v);
    }
  }
  flush();
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The fields of a message: varints as bigint (int64), length-delimited as bytes; unknown fields skipped. */
function decodeMessage(b: Uint8Array, where: string): Map<number, bigint | Uint8Array> {
  const out = new Map<number, bigint | Uint8Array>();
  let i = 0;
  const readVarint = (): bigint => {
    // Up to 7 bytes (49 bits) in a number; longer ones (negative int64s, huge values) as bigint.
    let n = 0;
    let mul = 1;
    for (let j = 0; j < 7 && i < b.length; j++) {
      const c = b[i++]!;
      n += (c & 0x7f) * mul;
      if ((c & 0x80) === 0) return BigInt(n);
      mul *= 0x80;
    }
    let x = BigInt(n);
    for (let shift = 49n; shift < 70n; shift += 7n) {
      if (i >= b.length) bad(`${where}: truncated varint`);
      const c = b[i++]!;
      x |= BigInt(c & 0x7f) << shift;
      if ((c & 0x80) === 0) return BigInt.asIntN(64, x);
    }
    return bad(`${where}: varint longer than 10 bytes`);
  };
  while (i < b.length) {
    const tag = readVarint();
    const no = Number(BigInt.asUintN(64, tag) >> 3n);
    const wire = Number(tag & 7n);
    if (no < 1) bad(`${where}: field number ${no}`);
    if (wire === 0) out.set(no, readVarint());
    else if (wire === 2) {
      const len = readVarint();
      if (len < 0n || len > BigInt(b.length - i)) bad(`${where}: field ${no} of ${len} bytes runs past the message`);
      out.set(no, b.subarray(i, i + Number(len)));
      i += Number(len);
    } else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else bad(`${where}: wire type ${wire}`);
    if (i > b.length) bad(`${where}: field ${no} runs past the message`);
  }
  return out;
}

const intField = (m: Map<number, bigint | Uint8Array>, no: number, where: string, min: bigint, max: bigint): bigint => {
  const v = m.get(no) ?? 0n;
  if (typeof v !== 'bigint') return bad(`${where}: field ${no} is not an integer`);
  if (v < min || v > max) bad(`${where}: field ${no} = ${v} out of range [${min}, ${max}]`);
  return v;
};
const bytesField = (m: Map<number, bigint | Uint8Array>, no: number, where: string): Uint8Array => {
  const v = m.get(no) ?? new Uint8Array(0);
  if (!(v instanceof Uint8Array)) return bad(`${where}: field ${no} is not bytes`);
  return v;
};

// ---------------------------------------------------------------------------------------
// The store's image (MvccStore.snapshot(): see MvccStore.restore for its invariants)
// ---------------------------------------------------------------------------------------

type ImageRev = [number, number, number, number, string, string] | [number, number];
interface StoreImage {
  v: 1;
  rev: number;
  compactRev: number;
  keys: [string, ImageRev[]][];
  leases: [string, number, string[]][];
}

const b64 = (u: Uint8Array): string => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('base64');
const unb64 = (s: string): Uint8Array => {
  const b = Buffer.from(s, 'base64');
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
};

export interface SnapshotMember {
  readonly id: bigint;
  readonly name: string;
  readonly peerUrls: readonly string[];
  readonly clientUrls: readonly string[];
  readonly isLearner: boolean;
}

export interface EtcdSnapshotInput {
  /**
   * The store to save: MvccStore.snapshotSource of a backend read view. Its revisions are read
   * twice (the file's layout, then its pages), as the stream drains.
   */
  readonly store: StoreSnapshotSource;
  readonly members: readonly SnapshotMember[];
  /** The Raft index the store reflects (etcd's consistent_index). */
  readonly consistentIndex: number;
  /** The alarm bucket's entries, when the member keeps alarms (key and value as etcd writes them). */
  readonly alarms?: readonly (readonly [Uint8Array, Uint8Array])[];
}

const u64be = (n: bigint | number): Uint8Array => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, BigInt(n)), false);
  return b;
};

/** Unsigned decimal JSON number of a uint64 (JSON.stringify cannot write one above 2^53). */
const memberJson = (m: SnapshotMember): string =>
  `{"id":${m.id.toString()},"peerURLs":${JSON.stringify(m.peerUrls)}${m.isLearner ? ',"isLearner":true' : ''}${m.name ? `,"name":${JSON.stringify(m.name)}` : ''}${m.clientUrls.length ? `,"clientURLs":${JSON.stringify(m.clientUrls)}` : ''}}`;

/**
 * The snapshot of a store as etcd would stream it: the bbolt file's pages, then its SHA-256.
 * `size` is known before the first byte (the layout is computed first); the pages are made
 * one at a time as `chunks` is read.
 */
export function etcdSnapshot(input: EtcdSnapshotInput): EtcdSnapshotFile {
  const steps = etcdSnapshotSteps(input);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

export interface EtcdSnapshotFile {
  /** Bytes of the file and its SHA-256. */
  readonly size: number;
  readonly chunks: Generator<Uint8Array>;
}

/**
 * etcdSnapshot a step at a time: each step lays out a page or so of the file (bbolt's
 * layOutBolt, one pass over the store's revisions); the generator returns the file, whose
 * pages are then made as `chunks` is read. A server sending the file takes these steps in
 * time slices, so that not even the layout of a large store holds its event loop.
 */
export function* etcdSnapshotSteps(input: EtcdSnapshotInput): Generator<void, EtcdSnapshotFile> {
  const store = input.store;
  // The key bucket is the store's revisions in revision order: a revision's key sorts as
  // (main, sub) big-endian, and a deletion's 't' only lengthens its own key.
  const keyBucket: BoltBucketSource = {
    name: BUCKET.key,
    *entries() {
      for (const r of store.revisions()) {
        if (r.kv === null) yield [revisionKey(r.main, r.sub, true), encodeMessage([[1, r.key]])];
        else yield [revisionKey(r.main, r.sub), encodeMessage([[1, r.key], [2, r.kv.createRevision], [3, r.main], [4, r.kv.version], [5, r.kv.value], [6, r.kv.lease]])];
      }
    },
  };
  const leaseBucket: BoltBucketSource = {
    name: BUCKET.lease,
    *entries() {
      for (const l of store.leases()) yield [u64be(l.id), encodeMessage([[1, l.id], [2, l.ttl]])];
    },
  };
  const compactRev = store.compactRevision;
  const meta: [Uint8Array, Uint8Array][] = [[name(META_CONSISTENT_INDEX), u64be(input.consistentIndex)]];
  if (compactRev > 0) {
    meta.push([name(META_FINISHED_COMPACT), revisionKey(compactRev, 0)]);
    meta.push([name(META_SCHEDULED_COMPACT), revisionKey(compactRev, 0)]);
  }
  meta.sort((a, b) => Buffer.compare(a[0], b[0]));
  const members = input.members.map((m) => [name(m.id.toString(16)), name(memberJson(m))] as const).sort((a, b) => Buffer.compare(a[0], b[0]));
  const fixed = (n: Uint8Array, entries: readonly (readonly [Uint8Array, Uint8Array])[]): BoltBucketSource => ({ name: n, entries: () => entries });
  const alarms = [...(input.alarms ?? [])].sort((a, b) => Buffer.compare(a[0], b[0]));
  const { size, pages } = yield* layOutBolt([
    fixed(BUCKET.alarm, alarms),
    fixed(BUCKET.auth, []),
    fixed(BUCKET.authRoles, []),
    fixed(BUCKET.authUsers, []),
    fixed(BUCKET.cluster, [[name('clusterVersion'), name(SNAPSHOT_CLUSTER_VERSION)]]),
    keyBucket,
    leaseBucket,
    fixed(BUCKET.members, members),
    fixed(BUCKET.membersRemoved, []),
    fixed(BUCKET.meta, meta),
  ]);
  function* chunks(): Generator<Uint8Array> {
    const h = createHash('sha256');
    for (const p of pages) {
      h.update(p);
      yield p;
    }
    yield new Uint8Array(h.digest());
  }
  return { size: size + SHA256_BYTES, chunks: chunks() };
}

// ---------------------------------------------------------------------------------------
// Reading: status and import
// ---------------------------------------------------------------------------------------

export interface SnapshotStatus {
  readonly hash: number;
  readonly revision: number;
  readonly totalKey: number;
  readonly totalSize: number;
}

/**
 * What `etcdctl snapshot status` computes (etcd 3.4 snapshot.Status): after the integrity
 * check, a CRC-32C over each root bucket's name and each of its keys and values in order;
 * the revision of the key bucket's last key; the number of entries in all buckets; the
 * database's size.
 */
export function snapshotStatus(r: BoltReader): SnapshotStatus {
  r.check();
  let hash = 0;
  let revision = 0;
  let totalKey = 0;
  for (const b of r.rootEntries()) {
    if (!b.bucket) throw new BoltFormatError(`cannot get hash of bucket ${Buffer.from(b.key).toString('latin1')}`);
    hash = crc32c(b.key, hash);
    const isKey = Buffer.compare(b.key, BUCKET.key) === 0;
    r.forEach([b.key], (e) => {
      hash = crc32c(e.value, crc32c(e.key, hash));
      if (isKey) revision = parseRevisionKey(e.key, 'key bucket').main;
      totalKey++;
    });
  }
  return { hash, revision, totalKey, totalSize: r.size };
}

/** humanize.Bytes as etcdctl prints sizes: SI units, one decimal below 10. */
export function humanBytes(n: number): string {
  if (n < 10) return `${n} B`;
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'];
  const e = Math.floor(Math.log(n) / Math.log(1000));
  const val = Math.floor((n / 1000 ** e) * 10 + 0.5) / 10;
  if (val < 10) return `${val.toFixed(1)} ${units[e]}`;
  // Go's %.0f rounds an exact half to even (20.5 -> "20"); toFixed would round it up.
  const whole = val - Math.floor(val) === 0.5 ? 2 * Math.round(val / 2) : Math.round(val);
  return `${whole} ${units[e]}`;
}

export function formatStatus(s: SnapshotStatus, format: 'simple' | 'json' | 'table'): string {
  const hex = s.hash.toString(16);
  if (format === 'json') return JSON.stringify({ hash: s.hash, revision: s.revision, totalKey: s.totalKey, totalSize: s.totalSize });
  if (format === 'simple') return `${hex}, ${s.revision}, ${s.totalKey}, ${humanBytes(s.totalSize)}`;
  const head = ['HASH', 'REVISION', 'TOTAL KEYS', 'TOTAL SIZE'];
  const row = [hex, String(s.revision), String(s.totalKey), humanBytes(s.totalSize)];
  const w = head.map((x, i) => Math.max(x.length, row[i]!.length));
  const line = `+${w.map((n) => '-'.repeat(n + 2)).join('+')}+`;
  const center = (x: string, n: number) => {
    const left = Math.floor((n - x.length) / 2);
    return ' '.repeat(left) + x + ' '.repeat(n - x.length - left);
  };
  return [line, `| ${head.map((x, i) => center(x, w[i]!)).join(' | ')} |`, line, `| ${row.map((x, i) => (i === 0 ? x.padEnd(w[i]!) : x.padStart(w[i]!))).join(' | ')} |`, line].join('\n');
}

export interface ImportedStore {
  /** An image for MvccStore.restore (not yet checked by the store). */
  readonly storeImage: Uint8Array;
  readonly revision: number;
  readonly compactRevision: number;
  readonly keys: number;
  readonly leases: number;
  readonly consistentIndex: number;
}

const LEASE_ID_MAX = (1n << 63n) - 1n;

/** The meta bucket: the compaction it records (the greater of scheduled and finished) and the consistent index. */
function readMetaBucket(r: BoltReader): { compactRev: number; consistentIndex: number } {
  const metaVals = new Map<string, Uint8Array>();
  if (!r.forEach([BUCKET.meta], (e) => metaVals.set(Buffer.from(e.key).toString('latin1'), e.value))) bad('no meta bucket');
  const compactOf = (k: string): number => {
    const v = metaVals.get(k);
    if (!v) return 0;
    const rv = parseRevisionKey(v, `meta ${k}`);
    if (rv.tombstone) bad(`meta ${k}: a deletion mark`);
    return rv.main;
  };
  const compactRev = Math.max(compactOf(META_FINISHED_COMPACT), compactOf(META_SCHEDULED_COMPACT));
  const ci = metaVals.get(META_CONSISTENT_INDEX);
  if (ci && ci.length !== 8) bad(`meta consistent_index has ${ci.length} bytes`);
  const consistentIndex = ci ? Number(BigInt.asUintN(53, new DataView(ci.buffer, ci.byteOffset, 8).getBigUint64(0, false))) : 0;
  return { compactRev, consistentIndex };
}

/** One entry of the key bucket as a revision (its bytes views of the page: copy what is kept). */
function keyBucketEntry(e: BoltEntry): StoreRevision {
  if (e.bucket) bad('a bucket inside the key bucket');
  const rv = parseRevisionKey(e.key, 'key bucket');
  const where = `key bucket, revision ${rv.main}.${rv.sub}`;
  const m = decodeMessage(e.value, where);
  const key = bytesField(m, 1, where);
  if (key.length === 0) bad(`${where}: empty key`);
  if (rv.tombstone) return { main: rv.main, sub: rv.sub, key, kv: null };
  const maxRev = BigInt(Number.MAX_SAFE_INTEGER);
  const createRevision = Number(intField(m, 2, where, 0n, maxRev));
  const mod = Number(intField(m, 3, where, 0n, maxRev));
  if (mod !== rv.main) bad(`${where}: mod_revision ${mod} is not the entry's revision`);
  const version = Number(intField(m, 4, where, 0n, maxRev));
  const lease = intField(m, 6, where, 0n, LEASE_ID_MAX);
  return { main: rv.main, sub: rv.sub, key, kv: { key, createRevision, modRevision: mod, version, value: bytesField(m, 5, where), lease } };
}

/** One entry of the lease bucket. */
function leaseBucketEntry(e: BoltEntry): { id: bigint; ttl: number } {
  const where = `lease bucket, key ${Buffer.from(e.key).toString('hex')}`;
  if (e.bucket || e.key.length !== 8) bad(`${where}: not a lease id`);
  const m = decodeMessage(e.value, where);
  const id = intField(m, 1, where, 1n, LEASE_ID_MAX);
  if (id !== new DataView(e.key.buffer, e.key.byteOffset, 8).getBigUint64(0, false)) bad(`${where}: holds lease ${id}`);
  const ttl = Number(intField(m, 2, where, 0n, BigInt(Number.MAX_SAFE_INTEGER)));
  return { id, ttl };
}

/**
 * The key space of an etcd 3.4 backend (a bbolt file, its integrity checked first) as
 * MvccStore.importRevisions reads it: the compaction recorded in meta, then at each call the
 * lease bucket's leases and the key bucket's revisions, parsed and range-checked entry by
 * entry as the reader walks the pages (bbolt keys in order: the key bucket is in revision
 * order). Nothing of the file is held but the page being read. What the entries say about
 * each other (order, versions, leases) the store checks as it writes them. Members, alarms
 * and auth are not taken: a restored cluster's membership comes from the restore's flags,
 * as with etcdctl.
 */
export function etcdSnapshotSource(r: BoltReader): { source: StoreImportSource; consistentIndex: number } {
  r.check();
  const { compactRev, consistentIndex } = readMetaBucket(r);
  const source: StoreImportSource = {
    compactRevision: compactRev,
    leases(fn) {
      r.forEach([BUCKET.lease], (e) => fn(leaseBucketEntry(e)));
    },
    revisions(fn) {
      if (!r.forEach([BUCKET.key], (e) => fn(keyBucketEntry(e)))) bad('no key bucket');
    },
  };
  return { source, consistentIndex };
}

/**
 * The key space of an etcd 3.4 backend as one image of the store (MvccStore.restore, which
 * checks it whole): the file's revisions gathered per key in memory, the compaction recorded
 * in meta applied (revisions at or below it keep only each key's last version, as etcd's
 * compaction leaves them — an interrupted compaction is finished here, as etcd finishes it on
 * start), its leases. The image path: it holds the whole store, several times over, so
 * `snapshot restore` streams instead (etcdSnapshotSource, MvccStore.importRevisions); kept
 * for tools and tests, which check the two give the same store.
 */
export function importEtcdSnapshot(r: BoltReader): ImportedStore {
  r.check();
  const { compactRev, consistentIndex } = readMetaBucket(r);

  const histories = new Map<string, { key: Uint8Array; revs: ImageRev[] }>();
  let lastMain = 0;
  const sink = (e: BoltEntry) => {
    const rv = keyBucketEntry(e);
    const k = Buffer.from(rv.key).toString('latin1');
    let h = histories.get(k);
    if (!h) {
      h = { key: rv.key.slice(), revs: [] };
      histories.set(k, h);
    }
    if (rv.kv === null) h.revs.push([rv.main, rv.sub]);
    else h.revs.push([rv.main, rv.sub, rv.kv.createRevision, rv.kv.version, b64(rv.kv.value), rv.kv.lease.toString()]);
    lastMain = rv.main;
  };
  if (!r.forEach([BUCKET.key], sink)) bad('no key bucket');

  // Compaction: at or below compactRev, each key keeps only its last version, and only a put.
  const keys: [string, ImageRev[]][] = [];
  const liveLease = new Map<string, string[]>();
  for (const h of [...histories.values()].sort((a, b) => Buffer.compare(a.key, b.key))) {
    let first = 0;
    for (let i = 0; i < h.revs.length; i++) if (h.revs[i]![0] <= compactRev) first = i;
    let revs = h.revs.slice(h.revs[0]![0] <= compactRev ? first : 0);
    if (revs.length > 0 && revs[0]![0] <= compactRev && revs[0]!.length === 2) revs = revs.slice(1);
    if (revs.length === 0) continue;
    const last = revs[revs.length - 1]!;
    if (last.length === 6 && last[5] !== '0') {
      const list = liveLease.get(last[5]) ?? [];
      list.push(b64(h.key));
      liveLease.set(last[5], list);
    }
    keys.push([b64(h.key), revs]);
  }

  const leases: [string, number, string[]][] = [];
  r.forEach([BUCKET.lease], (e) => {
    const { id, ttl } = leaseBucketEntry(e);
    leases.push([id.toString(), ttl, (liveLease.get(id.toString()) ?? []).sort((a, b) => Buffer.compare(unb64(a), unb64(b)))]);
    liveLease.delete(id.toString());
  });
  leases.sort((a, b) => (BigInt(a[0]) < BigInt(b[0]) ? -1 : 1));
  for (const [id, ks] of liveLease) bad(`${ks.length} live keys are attached to lease ${id}, which the lease bucket does not hold`);

  const rev = Math.max(lastMain, compactRev, 1);
  const image: StoreImage = { v: 1, rev, compactRev, keys, leases };
  return { storeImage: enc.encode(JSON.stringify(image)), revision: rev, compactRevision: compactRev, keys: keys.length, leases: leases.length, consistentIndex };
}

// ---------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------

export class SnapshotFileError extends Error {
  override name = 'SnapshotFileError';
}

/** A file read page by page (no whole-file buffer). */
export function fileSource(fd: number, size: number): ByteSource {
  return {
    size,
    read(offset, length) {
      if (offset < 0 || length < 0 || offset + length > size) throw new BoltFormatError(`read of ${length} bytes at ${offset} past the end (${size})`);
      const b = Buffer.alloc(length);
      let got = 0;
      while (got < length) {
        const n = readSync(fd, b, got, length - got, offset + got);
        if (n === 0) throw new BoltFormatError(`file ended at ${offset + got} (truncated while read?)`);
        got += n;
      }
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    },
  };
}

/**
 * Opens a snapshot file as etcdctl snapshot restore does: a file whose size is 32 past a
 * multiple of 512 ends with the SHA-256 of what precedes it, which must match; a file
 * without one is refused unless `skipHashCheck` (a backend file copied from a data dir).
 * `fn` gets the database (snapshotStatus and importEtcdSnapshot check its integrity first);
 * the file is closed after.
 */
export function withSnapshotFile<T>(path: string, opts: { skipHashCheck?: boolean }, fn: (r: BoltReader, hashed: boolean) => T): T {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new SnapshotFileError(`cannot open ${path}: ${(e as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new SnapshotFileError(`${path} is not a file`);
    const size = st.size;
    const hashed = size % 512 === SHA256_BYTES;
    if (!hashed && !opts.skipHashCheck) throw new SnapshotFileError('snapshot missing hash but --skip-hash-check=false');
    let dbSize = size;
    if (hashed) dbSize = size - SHA256_BYTES;
    if (hashed && !opts.skipHashCheck) {
      const src = fileSource(fd, size);
      const h = createHash('sha256');
      const step = 1 << 20;
      for (let at = 0; at < dbSize; at += step) h.update(src.read(at, Math.min(step, dbSize - at)));
      const want = Buffer.from(src.read(dbSize, SHA256_BYTES)).toString('hex');
      const got = h.digest('hex');
      if (want !== got) throw new SnapshotFileError(`snapshot file is corrupt: expected sha256 ${want}, got ${got}`);
    }
    return fn(BoltReader.open(fileSource(fd, dbSize)), hashed);
  } finally {
    closeSync(fd);
  }
}

/**
 * An active alarm as etcd's alarm bucket holds it: the key is the etcdserverpb.AlarmMember
 * message (memberID = 1, alarm = 2: NOSPACE 1, CORRUPT 2), the value empty (etcd's alarm store).
 */
export function etcdAlarmEntry(a: AlarmMember): readonly [Uint8Array, Uint8Array] {
  const type = a.alarm === 'NOSPACE' ? 1n : 2n;
  const key: number[] = [0x08];
  varint(key, a.memberId);
  key.push(0x10);
  varint(key, type);
  return [Uint8Array.from(key), new Uint8Array(0)];
}
