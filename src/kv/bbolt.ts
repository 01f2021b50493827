/**
 * bbolt database files (etcd's backend, and so etcd's snapshot format): a reader that treats
 * the file as hostile and a streaming writer. Our own code from bbolt's documented layout
 * (go.etcd.io/bbolt, file format version 2, little-endian as on every platform etcd ships):
 *
 *   page     = id:u64 | flags:u16 | count:u16 | overflow:u32 | data     (header 16 bytes)
 *              a page spans (overflow + 1) × pageSize bytes at offset id × pageSize
 *   flags    = branch 0x01, leaf 0x02, meta 0x04, freelist 0x10
 *   meta     = magic:u32 (0xED0CDAED) | version:u32 (2) | pageSize:u32 | flags:u32 |
 *              root bucket {root:u64, sequence:u64} | freelist:u64 | pgid (high water):u64 |
 *              txid:u64 | checksum:u64 (FNV-1a 64 of the 56 bytes before it)
 *              pages 0 and 1 both hold one; the valid one with the larger txid is current
 *   leaf     = count × {flags:u32 (bucket 0x01) | pos:u32 | ksize:u32 | vsize:u32}, then keys
 *              and values; pos is counted from the element's own offset
 *   branch   = count × {pos:u32 | ksize:u32 | pgid:u64}, then keys (a child's first key)
 *   freelist = count ids:u64 (sorted); count 0xFFFF: the first u64 is the real count
 *   bucket   = a leaf value with flag 0x01: {root:u64 | sequence:u64}; root 0 = an inline
 *              bucket, whose leaf page (header included) follows in the value
 *
 * The reader never trusts a number: every page id is checked against the high water mark and
 * the file, every element against its page, every page is visited at most once (a second
 * reference, hence any cycle, is refused), trees and bucket nesting are bounded in depth, keys
 * must ascend, and no allocation is larger than a page span (BOLT_PAGE_SPAN_BYTES_MAX). Any
 * violation is a BoltFormatError ("snapshot file is not a bbolt database: ...").
 *
 * Pure: no file system here (a ByteSource is given); nothing imported from the store.
 */
import { compareBytes } from '../lib/bytes.js';

export const BOLT_MAGIC = 0xed0cdaed;
export const BOLT_VERSION = 2;
export const BOLT_PAGE_HEADER_BYTES = 16;
const ELEMENT_BYTES = 16;
const BUCKET_HEADER_BYTES = 16;
const META_BYTES = 64;
const META_CHECKSUMMED_BYTES = 56;
const FLAG_BRANCH = 0x01;
const FLAG_LEAF = 0x02;
const FLAG_META = 0x04;
const FLAG_FREELIST = 0x10;
const ELEMENT_BUCKET = 0x01;
const NO_FREELIST = 0xffffffffffffffffn;

/** Page sizes accepted (bbolt uses the OS page size, 4096 on the platforms etcd ships). */
export const BOLT_PAGE_SIZE_MIN = 512;
export const BOLT_PAGE_SIZE_MAX = 65_536;
/** The page size the writer uses (etcd's on amd64 and arm64). */
export const BOLT_PAGE_SIZE_DEFAULT = 4096;
/** Largest file the reader opens (etcd's largest backend quota is 8 GiB). */
export const BOLT_FILE_BYTES_MAX = 16 * 1024 ** 3;
/** Largest page span (a page and its overflow) read at once: bounds any one allocation. */
export const BOLT_PAGE_SPAN_BYTES_MAX = 256 * 1024 ** 2;
/** Levels of branch pages in one bucket's tree (a 16 GiB file of 4 KiB pages needs fewer than 10). */
export const BOLT_TREE_DEPTH_MAX = 32;
/** Buckets nested in buckets (etcd uses one level below the root). */
export const BOLT_BUCKET_DEPTH_MAX = 16;

export class BoltFormatError extends Error {
  override name = 'BoltFormatError';
  constructor(why: string) {
    super(`snapshot file is not a bbolt database: ${why}`);
  }
}

const fail = (why: string): never => {
  throw new BoltFormatError(why);
};

/** Random-access bytes: a file or a buffer. `read` returns exactly `length` bytes. */
export interface ByteSource {
  readonly size: number;
  read(offset: number, length: number): Uint8Array;
}

export function bufferSource(b: Uint8Array): ByteSource {
  return {
    size: b.length,
    read: (offset, length) => {
      if (offset < 0 || length < 0 || offset + length > b.length) fail(`read of ${length} bytes at ${offset} past the end (${b.length})`);
      return b.subarray(offset, offset + length);
    },
  };
}

// ---------------------------------------------------------------------------------------
// FNV-1a 64 (the meta checksum)
// ---------------------------------------------------------------------------------------

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const U64 = (1n << 64n) - 1n;

export function fnv1a64(b: Uint8Array): bigint {
  // Two 32-bit halves would be faster; the meta is 56 bytes, so bigint is fine.
  let h = FNV_OFFSET;
  for (const x of b) h = ((h ^ BigInt(x)) * FNV_PRIME) & U64;
  return h;
}

// ---------------------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------------------

export interface BoltMeta {
  readonly pageSize: number;
  readonly flags: number;
  readonly root: number;
  readonly sequence: bigint;
  /** null: no freelist persisted (bbolt's NoFreelistSync). */
  readonly freelist: number | null;
  /** The high water mark: pages [0, pgid) are the database. */
  readonly pgid: number;
  readonly txid: bigint;
}

export interface BoltOpenOptions {
  readonly pageSpanBytesMax?: number;
  readonly fileBytesMax?: number;
}

interface PageView {
  readonly id: number;
  readonly flags: number;
  readonly count: number;
  /** The whole span, header included. */
  readonly bytes: Uint8Array;
  readonly dv: DataView;
}

/** One entry of a bucket: a value, or (bucket true) a nested bucket, whose value is its header. */
export interface BoltEntry {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
  readonly bucket: boolean;
}

const u64num = (dv: DataView, off: number, what: string): number => {
  const v = dv.getBigUint64(off, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`${what} ${v} is out of range`);
  return Number(v);
};

function readMeta(b: Uint8Array, at: number): BoltMeta | string {
  if (b.length < BOLT_PAGE_HEADER_BYTES + META_BYTES) return 'too short for a meta page';
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const m = BOLT_PAGE_HEADER_BYTES;
  if (dv.getUint16(8, true) !== FLAG_META) return `page ${at} is not a meta page (flags 0x${dv.getUint16(8, true).toString(16)})`;
  if (dv.getUint32(m, true) !== BOLT_MAGIC) return `meta page ${at}: bad magic 0x${dv.getUint32(m, true).toString(16)}`;
  if (dv.getUint32(m + 4, true) !== BOLT_VERSION) return `meta page ${at}: unsupported version ${dv.getUint32(m + 4, true)}`;
  const sum = fnv1a64(b.subarray(m, m + META_CHECKSUMMED_BYTES));
  if (dv.getBigUint64(m + META_CHECKSUMMED_BYTES, true) !== sum) return `meta page ${at}: checksum mismatch`;
  const pageSize = dv.getUint32(m + 8, true);
  if (pageSize < BOLT_PAGE_SIZE_MIN || pageSize > BOLT_PAGE_SIZE_MAX || (pageSize & (pageSize - 1)) !== 0) return `meta page ${at}: page size ${pageSize} not a power of two in [${BOLT_PAGE_SIZE_MIN}, ${BOLT_PAGE_SIZE_MAX}]`;
  const big = (off: number) => dv.getBigUint64(m + off, true);
  const pgid = big(40);
  const root = big(16);
  const freelist = big(32);
  const safe = BigInt(Number.MAX_SAFE_INTEGER);
  if (pgid > safe) return `meta page ${at}: high water mark ${pgid} out of range`;
  if (pgid < 3n) return `meta page ${at}: high water mark ${pgid} leaves no room for a root page`;
  if (root < 2n || root >= pgid) return `meta page ${at}: root page ${root} outside [2, ${pgid})`;
  if (freelist !== NO_FREELIST && (freelist < 2n || freelist >= pgid)) return `meta page ${at}: freelist page ${freelist} outside [2, ${pgid})`;
  return {
    pageSize,
    flags: dv.getUint32(m + 12, true),
    root: Number(root),
    sequence: big(24),
    freelist: freelist === NO_FREELIST ? null : Number(freelist),
    pgid: Number(pgid),
    txid: big(48),
  };
}

/**
 * An open bbolt file. Reading walks pages on demand; `check()` walks everything once and
 * refuses what bbolt's own `tx.Check` would (and more): pages referenced twice, freed pages
 * in use, pages neither in use nor free, keys out of order.
 */
export class BoltReader {
  readonly meta: BoltMeta;
  private readonly src: ByteSource;
  private readonly spanMax: number;

  private constructor(src: ByteSource, meta: BoltMeta, spanMax: number) {
    this.src = src;
    this.meta = meta;
    this.spanMax = spanMax;
  }

  static open(src: ByteSource, opts: BoltOpenOptions = {}): BoltReader {
    const fileMax = opts.fileBytesMax ?? BOLT_FILE_BYTES_MAX;
    if (src.size > fileMax) fail(`${src.size} bytes is over the ${fileMax} bytes accepted (BOLT_FILE_BYTES_MAX)`);
    const metaLen = BOLT_PAGE_HEADER_BYTES + META_BYTES;
    if (src.size < metaLen) fail(`${src.size} bytes is too short for a meta page`);
    const head0 = src.read(0, metaLen);
    const m0 = readMeta(head0, 0);
    // Page 1 is one page in: its size is page 0's when page 0 is valid. Otherwise (bbolt falls
    // back to the OS page size) we try the size page 0 names, if plausible, then 4096.
    const named = new DataView(head0.buffer, head0.byteOffset, head0.byteLength).getUint32(BOLT_PAGE_HEADER_BYTES + 8, true);
    const plausible = named >= BOLT_PAGE_SIZE_MIN && named <= BOLT_PAGE_SIZE_MAX && (named & (named - 1)) === 0;
    const sizes = typeof m0 !== 'string' ? [m0.pageSize] : [...new Set([...(plausible ? [named] : []), BOLT_PAGE_SIZE_DEFAULT])];
    let m1: BoltMeta | string | null = null;
    for (const size1 of sizes) {
      const m = src.size >= size1 + metaLen ? readMeta(src.read(size1, metaLen), 1) : 'file ends before meta page 1';
      // The first candidate's complaint is the one reported.
      if (typeof m !== 'string' || m1 === null) m1 = m;
      if (typeof m !== 'string') break;
    }
    m1 ??= 'file ends before meta page 1';
    let meta: BoltMeta;
    if (typeof m0 !== 'string' && typeof m1 !== 'string') meta = m1.txid > m0.txid ? m1 : m0;
    else if (typeof m0 !== 'string') meta = m0;
    else if (typeof m1 !== 'string') meta = m1;
    else return fail(`no valid meta page (${m0}; ${m1})`);
    if (meta.pgid * meta.pageSize > src.size) fail(`the file has ${src.size} bytes, its meta page says ${meta.pgid} pages of ${meta.pageSize}`);
    return new BoltReader(src, meta, opts.pageSpanBytesMax ?? BOLT_PAGE_SPAN_BYTES_MAX);
  }

  /** pgid × pageSize: the database's size (etcd's "total size"). */
  get size(): number {
    return this.meta.pgid * this.meta.pageSize;
  }

  private page(id: number): PageView {
    const { pageSize, pgid } = this.meta;
    if (!Number.isSafeInteger(id) || id < 2 || id >= pgid) fail(`page id ${id} outside [2, ${pgid})`);
    const head = this.src.read(id * pageSize, BOLT_PAGE_HEADER_BYTES);
    const hv = new DataView(head.buffer, head.byteOffset, head.byteLength);
    const selfId = hv.getBigUint64(0, true);
    if (selfId !== BigInt(id)) fail(`page ${id} says it is page ${selfId}`);
    const overflow = hv.getUint32(12, true);
    if (id + overflow + 1 > pgid) fail(`page ${id} with ${overflow} overflow pages runs past the high water mark ${pgid}`);
    const span = (overflow + 1) * pageSize;
    if (span > this.spanMax) fail(`page ${id} spans ${span} bytes, over the ${this.spanMax} accepted (BOLT_PAGE_SPAN_BYTES_MAX)`);
    const bytes = this.src.read(id * pageSize, span);
    return { id, flags: hv.getUint16(8, true), count: hv.getUint16(10, true), bytes, dv: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
  }

  /** The page ids a page occupies, marked in `seen`; a page met twice is refused. */
  private mark(seen: Uint8Array | null, p: PageView): void {
    if (!seen) return;
    const span = p.bytes.length / this.meta.pageSize;
    for (let i = 0; i < span; i++) {
      const id = p.id + i;
      if (seen[id]) fail(`page ${id} is referenced twice`);
      seen[id] = 1;
    }
  }

  /** Free page ids (sorted as stored), or null when the file persists no freelist. */
  freePages(): number[] | null {
    if (this.meta.freelist === null) return null;
    const p = this.page(this.meta.freelist);
    if (p.flags !== FLAG_FREELIST) fail(`freelist page ${p.id} has flags 0x${p.flags.toString(16)}`);
    let count = p.count;
    let at = BOLT_PAGE_HEADER_BYTES;
    if (count === 0xffff) {
      if (p.bytes.length < at + 8) fail(`freelist page ${p.id} too short for its count`);
      count = u64num(p.dv, at, `freelist page ${p.id} count`);
      at += 8;
    }
    if (count > this.meta.pgid) fail(`freelist page ${p.id} claims ${count} free pages, the file has ${this.meta.pgid}`);
    if (count > (p.bytes.length - at) / 8) fail(`freelist page ${p.id} claims ${count} ids, its span holds ${Math.floor((p.bytes.length - at) / 8)}`);
    const ids: number[] = [];
    for (let i = 0; i < count; i++) {
      const id = u64num(p.dv, at + i * 8, `freelist page ${p.id} id`);
      if (id < 2 || id >= this.meta.pgid) fail(`freelist page ${p.id} frees page ${id}, outside [2, ${this.meta.pgid})`);
      ids.push(id);
    }
    return ids;
  }

  /** The root bucket's entries (etcd's bucket names), in order. */
  rootEntries(): BoltEntry[] {
    const out: BoltEntry[] = [];
    this.walk({ root: this.meta.root, inline: null }, 0, null, (e) => {
      out.push(e);
    });
    return out;
  }

  /**
   * Calls `fn` for each entry of the bucket named `path` (from the root), in key order. A
   * missing bucket: `fn` is never called and false is returned.
   */
  forEach(path: readonly Uint8Array[], fn: (e: BoltEntry) => void): boolean {
    let b: BucketRef = { root: this.meta.root, inline: null };
    for (let depth = 0; depth < path.length; depth++) {
      if (depth >= BOLT_BUCKET_DEPTH_MAX) fail(`buckets nested deeper than ${BOLT_BUCKET_DEPTH_MAX} (BOLT_BUCKET_DEPTH_MAX)`);
      const name = path[depth]!;
      let found: BucketRef | null = null;
      let isValue = false;
      this.walk(b, depth, null, (e) => {
        if (compareBytes(e.key, name) !== 0) return;
        if (e.bucket) found = this.bucketRef(e.value, e.key);
        else isValue = true;
      });
      if (isValue || !found) return false;
      b = found;
    }
    this.walk(b, path.length, null, fn);
    return true;
  }

  private bucketRef(v: Uint8Array, key: Uint8Array): BucketRef {
    if (v.length < BUCKET_HEADER_BYTES) fail(`bucket ${preview(key)}: value of ${v.length} bytes is shorter than a bucket header`);
    const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
    const root = dv.getBigUint64(0, true);
    if (root === 0n) {
      const inline = v.subarray(BUCKET_HEADER_BYTES);
      if (inline.length < BOLT_PAGE_HEADER_BYTES) fail(`inline bucket ${preview(key)}: ${inline.length} bytes is shorter than a page header`);
      return { root: 0, inline };
    }
    if (root >= BigInt(this.meta.pgid) || root < 2n) fail(`bucket ${preview(key)}: root page ${root} outside [2, ${this.meta.pgid})`);
    return { root: Number(root), inline: null };
  }

  /**
   * Every entry of a bucket in order, through its tree: iterative (an explicit stack), each
   * page marked in `seen` when given, depth bounded, keys strictly ascending.
   */
  private walk(b: BucketRef, bucketDepth: number, seen: Uint8Array | null, fn: (e: BoltEntry) => void): void {
    if (bucketDepth > BOLT_BUCKET_DEPTH_MAX) fail(`buckets nested deeper than ${BOLT_BUCKET_DEPTH_MAX} (BOLT_BUCKET_DEPTH_MAX)`);
    let prev: Uint8Array | null = null;
    const visitLeaf = (p: { id: number; count: number; bytes: Uint8Array; dv: DataView }, where: string) => {
      if (p.count > (p.bytes.length - BOLT_PAGE_HEADER_BYTES) / ELEMENT_BYTES) fail(`${where}: ${p.count} elements do not fit in ${p.bytes.length} bytes`);
      for (let i = 0; i < p.count; i++) {
        const e = BOLT_PAGE_HEADER_BYTES + i * ELEMENT_BYTES;
        const flags = p.dv.getUint32(e, true);
        const pos = p.dv.getUint32(e + 4, true);
        const ksize = p.dv.getUint32(e + 8, true);
        const vsize = p.dv.getUint32(e + 12, true);
        const k0 = e + pos;
        if (k0 + ksize + vsize > p.bytes.length) fail(`${where}: element ${i} (key ${ksize} bytes, value ${vsize} at ${pos}) runs past the page's ${p.bytes.length} bytes`);
        if ((flags & ~ELEMENT_BUCKET) !== 0) fail(`${where}: element ${i} has unknown flags 0x${flags.toString(16)}`);
        const key = p.bytes.subarray(k0, k0 + ksize);
        if (prev !== null && compareBytes(prev, key) >= 0) fail(`${where}: keys out of order at element ${i}`);
        prev = key;
        fn({ key, value: p.bytes.subarray(k0 + ksize, k0 + ksize + vsize), bucket: (flags & ELEMENT_BUCKET) !== 0 });
      }
    };
    if (b.inline) {
      const dv = new DataView(b.inline.buffer, b.inline.byteOffset, b.inline.byteLength);
      const flags = dv.getUint16(8, true);
      if (flags !== FLAG_LEAF) fail(`an inline bucket's page has flags 0x${flags.toString(16)}, not a leaf`);
      visitLeaf({ id: 0, count: dv.getUint16(10, true), bytes: b.inline, dv }, 'inline bucket');
      return;
    }
    // Depth-first, children in order: a stack of (page, next child index).
    const stack: { p: PageView; next: number }[] = [];
    const enter = (id: number) => {
      if (stack.length >= BOLT_TREE_DEPTH_MAX) fail(`a bucket's tree is deeper than ${BOLT_TREE_DEPTH_MAX} (BOLT_TREE_DEPTH_MAX) at page ${id}`);
      const p = this.page(id);
      this.mark(seen, p);
      if (p.flags === FLAG_LEAF) {
        visitLeaf(p, `leaf page ${id}`);
        return;
      }
      if (p.flags !== FLAG_BRANCH) fail(`page ${id} in a bucket's tree has flags 0x${p.flags.toString(16)} (neither branch nor leaf)`);
      if (p.count === 0) fail(`branch page ${id} has no elements`);
      if (p.count > (p.bytes.length - BOLT_PAGE_HEADER_BYTES) / ELEMENT_BYTES) fail(`branch page ${id}: ${p.count} elements do not fit`);
      stack.push({ p, next: 0 });
    };
    enter(b.root);
    // Without `seen` (plain reads), a cycle would loop: count pages against the file's.
    let budget = this.meta.pgid;
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      if (top.next >= top.p.count) {
        stack.pop();
        continue;
      }
      const e = BOLT_PAGE_HEADER_BYTES + top.next * ELEMENT_BYTES;
      top.next++;
      const pos = top.p.dv.getUint32(e, true);
      const ksize = top.p.dv.getUint32(e + 4, true);
      if (e + pos + ksize > top.p.bytes.length) fail(`branch page ${top.p.id}: element ${top.next - 1} key runs past the page`);
      const child = u64num(top.p.dv, e + 8, `branch page ${top.p.id} child`);
      if (--budget < 0) fail(`bucket tree visits more pages than the file has (a cycle through page ${child})`);
      enter(child);
    }
  }

  /**
   * Walks the whole database once, as bbolt's tx.Check does: every page below the high water
   * mark is a meta page, the freelist, in exactly one bucket tree, or free — never two of
   * these; keys ascend in every bucket. Returns the number of pages in use.
   */
  check(): number {
    const { pgid } = this.meta;
    const seen = new Uint8Array(pgid);
    seen[0] = 1;
    seen[1] = 1;
    const freed = this.freePages();
    if (this.meta.freelist !== null) this.mark(seen, this.page(this.meta.freelist));
    const free = new Uint8Array(pgid);
    for (const id of freed ?? []) {
      if (free[id]) fail(`page ${id} is freed twice`);
      free[id] = 1;
    }
    const pending: { ref: BucketRef; depth: number }[] = [{ ref: { root: this.meta.root, inline: null }, depth: 0 }];
    while (pending.length > 0) {
      const { ref, depth } = pending.pop()!;
      this.walk(ref, depth, seen, (e) => {
        if (e.bucket) pending.push({ ref: this.bucketRef(e.value, e.key), depth: depth + 1 });
      });
    }
    let used = 0;
    for (let id = 0; id < pgid; id++) {
      if (seen[id] && free[id] && id > 1) fail(`page ${id} is both in use and free`);
      if (seen[id]) used++;
      else if (freed !== null && !free[id]) fail(`page ${id} is neither in use nor free`);
    }
    return used;
  }
}

interface BucketRef {
  readonly root: number;
  readonly inline: Uint8Array | null;
}

function preview(b: Uint8Array): string {
  const s = Buffer.from(b.subarray(0, 40)).toString('latin1');
  return JSON.stringify(/^[\x20-\x7e]*$/.test(s) ? s : Buffer.from(b.subarray(0, 20)).toString('hex')) + (b.length > 40 ? '...' : '');
}

// ---------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------

/** One bucket below the root: its name and its entries, sorted by key, keys unique. */
export interface BoltBucketSource {
  readonly name: Uint8Array;
  /** Called twice (layout, then bytes): must give the same entries both times. */
  entries(): Iterable<readonly [Uint8Array, Uint8Array]>;
}

export interface BoltWriteOptions {
  readonly pageSize?: number;
  /** The transaction id written in the meta pages (page 1 gets txid - 1, as bbolt's WriteTo). */
  readonly txid?: bigint;
}

type Item = readonly [Uint8Array, Uint8Array, number];

/** Items packed into leaf pages: as many as fit in one page, or one alone on an overflowing page. */
function* leafGroups(items: Iterable<Item>, pageSize: number): Generator<Item[]> {
  let group: Item[] = [];
  let bytes = BOLT_PAGE_HEADER_BYTES;
  for (const it of items) {
    const need = ELEMENT_BYTES + it[0].length + it[1].length;
    if (group.length > 0 && bytes + need > pageSize) {
      yield group;
      group = [];
      bytes = BOLT_PAGE_HEADER_BYTES;
    }
    group.push(it);
    bytes += need;
  }
  if (group.length > 0) yield group;
}

const groupBytes = (g: readonly Item[]): number => g.reduce((n, [k, v]) => n + ELEMENT_BYTES + k.length + v.length, BOLT_PAGE_HEADER_BYTES);
const spanPages = (bytes: number, pageSize: number): number => Math.max(1, Math.ceil(bytes / pageSize));

function leafPage(id: number, g: readonly Item[], pageSize: number, inline = false): Uint8Array {
  const size = groupBytes(g);
  const out = new Uint8Array(inline ? size : spanPages(size, pageSize) * pageSize);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt(id), true);
  dv.setUint16(8, FLAG_LEAF, true);
  dv.setUint16(10, g.length, true);
  dv.setUint32(12, inline ? 0 : spanPages(size, pageSize) - 1, true);
  let data = BOLT_PAGE_HEADER_BYTES + g.length * ELEMENT_BYTES;
  g.forEach(([k, v, flags], i) => {
    const e = BOLT_PAGE_HEADER_BYTES + i * ELEMENT_BYTES;
    dv.setUint32(e, flags, true);
    dv.setUint32(e + 4, data - e, true);
    dv.setUint32(e + 8, k.length, true);
    dv.setUint32(e + 12, v.length, true);
    out.set(k, data);
    out.set(v, data + k.length);
    data += k.length + v.length;
  });
  return out;
}

interface Child {
  readonly key: Uint8Array;
  readonly id: number;
}

/** Branch levels over `children` (ids assigned from `next`), bottom-up; the last level has one page. */
function branchLevels(children: Child[], pageSize: number, next: () => number): { pages: { id: number; kids: Child[] }[]; root: number } {
  const pages: { id: number; kids: Child[] }[] = [];
  let level = children;
  while (level.length > 1) {
    const up: Child[] = [];
    let group: Child[] = [];
    let bytes = BOLT_PAGE_HEADER_BYTES;
    const flush = () => {
      const id = next();
      pages.push({ id, kids: group });
      up.push({ key: group[0]!.key, id });
      // Overflow pages of a branch whose keys exceed a page are counted by `next` callers.
      const extra = spanPages(bytes, pageSize) - 1;
      for (let i = 0; i < extra; i++) next();
      group = [];
      bytes = BOLT_PAGE_HEADER_BYTES;
    };
    for (const c of level) {
      const need = ELEMENT_BYTES + c.key.length;
      // At least two children per branch page, so each level shrinks.
      if (group.length >= 2 && bytes + need > pageSize) flush();
      group.push(c);
      bytes += need;
    }
    flush();
    level = up;
  }
  return { pages, root: level[0]!.id };
}

function branchPage(id: number, kids: readonly Child[], pageSize: number): Uint8Array {
  const size = kids.reduce((n, c) => n + ELEMENT_BYTES + c.key.length, BOLT_PAGE_HEADER_BYTES);
  const span = spanPages(size, pageSize);
  const out = new Uint8Array(span * pageSize);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt(id), true);
  dv.setUint16(8, FLAG_BRANCH, true);
  dv.setUint16(10, kids.length, true);
  dv.setUint32(12, span - 1, true);
  let data = BOLT_PAGE_HEADER_BYTES + kids.length * ELEMENT_BYTES;
  kids.forEach((c, i) => {
    const e = BOLT_PAGE_HEADER_BYTES + i * ELEMENT_BYTES;
    dv.setUint32(e, data - e, true);
    dv.setUint32(e + 4, c.key.length, true);
    dv.setBigUint64(e + 8, BigInt(c.id), true);
    out.set(c.key, data);
    data += c.key.length;
  });
  return out;
}

/**
 * One bucket's branch pages, made as its leaf pages stream by: a branch page is laid out as
 * soon as it is full (grouped as branchLevels groups children: at least two per page) and
 * placed among the leaves — just after the leaf whose arrival showed it full — so each level
 * holds only the page it is filling: the memory of a tree's layout does not grow with the
 * bucket. Page ids come from `alloc` (a span of pages; the caller allocates each leaf's before
 * adding it); the pages each call completes are returned in id order.
 */
class BranchTree {
  private readonly levels: { kids: Child[]; bytes: number; received: number }[] = [];
  private made: { id: number; kids: Child[] }[] = [];

  constructor(
    private readonly pageSize: number,
    private readonly alloc: (span: number) => number,
  ) {}

  /** The next leaf page (its first key and id); the branch pages this completes. */
  addLeaf(firstKey: Uint8Array, id: number): { id: number; kids: Child[] }[] {
    this.push(0, { key: firstKey.slice(), id });
    return this.take();
  }

  /** After the last leaf: the root's id and the branch pages still to complete. */
  finish(): { root: number; pages: { id: number; kids: Child[] }[] } {
    for (let k = 0; ; k++) {
      const l = this.levels[k]!;
      // A level of one child has no page above it: that child is the root.
      if (l.received === 1) return { root: l.kids[0]!.id, pages: this.take() };
      this.flush(k);
    }
  }

  private push(level: number, c: Child): void {
    const l = (this.levels[level] ??= { kids: [], bytes: BOLT_PAGE_HEADER_BYTES, received: 0 });
    const need = ELEMENT_BYTES + c.key.length;
    if (l.kids.length >= 2 && l.bytes + need > this.pageSize) this.flush(level);
    l.kids.push(c);
    l.bytes += need;
    l.received++;
  }

  private flush(level: number): void {
    const l = this.levels[level]!;
    const id = this.alloc(spanPages(l.bytes, this.pageSize));
    this.made.push({ id, kids: l.kids });
    const first = l.kids[0]!.key;
    l.kids = [];
    l.bytes = BOLT_PAGE_HEADER_BYTES;
    this.push(level + 1, { key: first, id });
  }

  private take(): { id: number; kids: Child[] }[] {
    const out = this.made;
    if (out.length > 0) this.made = [];
    return out;
  }
}

function metaPage(id: number, pageSize: number, root: number, pgid: number, txid: bigint): Uint8Array {
  const out = new Uint8Array(pageSize);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt(id), true);
  dv.setUint16(8, FLAG_META, true);
  const m = BOLT_PAGE_HEADER_BYTES;
  dv.setUint32(m, BOLT_MAGIC, true);
  dv.setUint32(m + 4, BOLT_VERSION, true);
  dv.setUint32(m + 8, pageSize, true);
  dv.setBigUint64(m + 16, BigInt(root), true);
  dv.setBigUint64(m + 32, 2n, true); // the freelist: page 2
  dv.setBigUint64(m + 40, BigInt(pgid), true);
  dv.setBigUint64(m + 48, txid, true);
  dv.setBigUint64(m + META_CHECKSUMMED_BYTES, fnv1a64(out.subarray(m, m + META_CHECKSUMMED_BYTES)), true);
  return out;
}

const asItems = function* (src: BoltBucketSource): Generator<Item> {
  let prev: Uint8Array | null = null;
  for (const [k, v] of src.entries()) {
    if (prev !== null && compareBytes(prev, k) >= 0) throw new Error(`bucket ${preview(src.name)}: keys not sorted or not unique`);
    prev = k;
    yield [k, v, 0];
  }
};

/**
 * A bbolt file holding `buckets` below the root bucket, as a sequence of page-sized chunks in
 * file order. Two passes over each bucket's entries: the first lays the pages out (only the
 * branch pages being filled are kept: BranchTree), the second makes the bytes, one page at a
 * time, laying them out again the same way.
 * Small buckets (one leaf of at most a quarter page, as bbolt decides) are stored inline in
 * the root bucket's page. No page is ever free: the freelist (page 2) is empty.
 */
export function writeBolt(buckets: readonly BoltBucketSource[], opts: BoltWriteOptions = {}): BoltFile {
  const steps = layOutBolt(buckets, opts);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** A bbolt file being written: its size, known before the first page, and its pages in file order. */
export interface BoltFile {
  readonly size: number;
  readonly pages: Generator<Uint8Array>;
}

/**
 * writeBolt's first pass a step at a time, for a caller that must not hold the event loop for
 * the whole of a large bucket's layout: each step lays out one leaf page's entries (or one
 * bucket's branch pages); the generator returns the file once the layout is done.
 */
export function* layOutBolt(buckets: readonly BoltBucketSource[], opts: BoltWriteOptions = {}): Generator<void, BoltFile> {
  const pageSize = opts.pageSize ?? BOLT_PAGE_SIZE_DEFAULT;
  if (pageSize < BOLT_PAGE_SIZE_MIN || pageSize > BOLT_PAGE_SIZE_MAX || (pageSize & (pageSize - 1)) !== 0) throw new RangeError(`page size ${pageSize}`);
  const txid = opts.txid ?? 2n;
  const sorted = [...buckets].sort((a, b) => compareBytes(a.name, b.name));
  for (let i = 1; i < sorted.length; i++) if (compareBytes(sorted[i - 1]!.name, sorted[i]!.name) === 0) throw new Error(`bucket ${preview(sorted[i]!.name)} twice`);
  // Layout: per bucket, its root page and where its pages end (or its items, inline); the
  // pages themselves are laid out again, the same way, as they are made.
  type Plan = { inline: Item[] | null; root: number; end: number };
  const plans: Plan[] = [];
  let nextId = 3;
  const alloc = (span: number): number => {
    const id = nextId;
    nextId += span;
    return id;
  };
  for (const b of sorted) {
    const start = nextId;
    const tree = new BranchTree(pageSize, alloc);
    let only: Item[] | null = null;
    let count = 0;
    for (const g of leafGroups(asItems(b), pageSize)) {
      count++;
      only = count === 1 ? g : null;
      tree.addLeaf(g[0]![0], alloc(spanPages(groupBytes(g), pageSize)));
      yield;
    }
    if (count === 0 || (only !== null && groupBytes(only) <= pageSize / 4)) {
      nextId = start;
      plans.push({ inline: only ?? [], root: 0, end: start });
      continue;
    }
    plans.push({ inline: null, root: tree.finish().root, end: nextId });
    yield;
  }
  const rootItems: Item[] = sorted.map((b, i) => {
    const p = plans[i]!;
    const inline = p.inline ? leafPage(0, p.inline, pageSize, true) : new Uint8Array(0);
    const v = new Uint8Array(BUCKET_HEADER_BYTES + inline.length);
    new DataView(v.buffer).setBigUint64(0, BigInt(p.root), true);
    v.set(inline, BUCKET_HEADER_BYTES);
    return [b.name, v, ELEMENT_BUCKET];
  });
  const rootGroups = [...leafGroups(rootItems, pageSize)];
  if (rootGroups.length === 0) rootGroups.push([]);
  const rootLeaves = rootGroups.map((g) => ({ id: alloc(spanPages(groupBytes(g), pageSize)), g }));
  const rootTree = branchLevels(rootLeaves.map((l) => ({ key: l.g[0]?.[0] ?? new Uint8Array(0), id: l.id })), pageSize, () => alloc(1));
  const pgid = nextId;
  return { size: pgid * pageSize, pages: emitPages() };

  // Bytes, in page id order.
  function* emitPages(): Generator<Uint8Array> {
    yield metaPage(0, pageSize, rootTree.root, pgid, txid);
    yield metaPage(1, pageSize, rootTree.root, pgid, txid - 1n);
    const freelist = new Uint8Array(pageSize);
    new DataView(freelist.buffer).setBigUint64(0, 2n, true);
    new DataView(freelist.buffer).setUint16(8, FLAG_FREELIST, true);
    yield freelist;
    let expect = 3;
    const check = (id: number, bytes: Uint8Array) => {
      if (id !== expect) throw new Error(`bbolt writer: page ${id} written where ${expect} was due`);
      expect += bytes.length / pageSize;
      return bytes;
    };
    for (let i = 0; i < sorted.length; i++) {
      const p = plans[i]!;
      if (p.inline) continue;
      const changed = () => new Error(`bucket ${preview(sorted[i]!.name)}: entries changed between the two passes`);
      let id = expect;
      const tree = new BranchTree(pageSize, (span) => {
        const at = id;
        id += span;
        return at;
      });
      for (const g of leafGroups(asItems(sorted[i]!), pageSize)) {
        // As the layout: the leaf's id first, then the branch pages its arrival completes.
        const leafId = id;
        id += spanPages(groupBytes(g), pageSize);
        // More pages than laid out: refused before one is made (the file's size was announced).
        if (id > p.end) throw changed();
        const branches = tree.addLeaf(g[0]![0], leafId);
        yield check(leafId, leafPage(leafId, g, pageSize));
        for (const b of branches) yield check(b.id, branchPage(b.id, b.kids, pageSize));
      }
      const { root, pages } = tree.finish();
      for (const b of pages) yield check(b.id, branchPage(b.id, b.kids, pageSize));
      if (root !== p.root || expect !== p.end) throw changed();
    }
    for (const l of rootLeaves) yield check(l.id, leafPage(l.id, l.g, pageSize));
    for (const b of rootTree.pages) yield check(b.id, branchPage(b.id, b.kids, pageSize));
    if (expect !== pgid) throw new Error(`bbolt writer: ${expect} pages written, ${pgid} laid out`);
  }
}
