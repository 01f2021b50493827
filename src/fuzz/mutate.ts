/**
 * Seeded byte-level mutators shared by every fuzz surface: bit flips, byte insertion and
 * deletion, truncation, boundary integers written over fixed-width and varint fields,
 * length-field corruption (protobuf length prefixes found by a wire scan), splicing two valid
 * inputs, repeating a chunk (huge repeated fields), and plain random bytes. Pure functions of
 * the Rng: the same seed gives the same inputs.
 */
import type { Rng } from '../lib/prng.js';

/** Largest input a mutation grows to (a little over the server's 2 MiB request limit, so the limit itself is exercised). */
export const MUTATED_BYTES_MAX = 3 * 1024 * 1024;

/** Mixes a seed, a surface number and an input index into the seed of that input's Rng. */
export function inputSeed(seed: number, surface: number, index: number): number {
  let h = (seed ^ Math.imul(surface + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (index >>> 0), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13) ^ Math.floor(index / 2 ** 32), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** Random bytes: mostly short, sometimes long. */
export function randomBytes(r: Rng, maxLen = 4096): Uint8Array {
  const len = r.chance(0.8) ? r.int(0, 64) : r.int(0, maxLen + 1);
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) out[i] = r.int(0, 256);
  return out;
}

/** Integers at the edges of every width, as unsigned 64-bit values. */
export const BOUNDARY_U64: readonly bigint[] = [
  0n, 1n, 2n, 0x7fn, 0x80n, 0xffn, 0x100n, 0x7fffn, 0x8000n, 0xffffn, 0x10000n,
  0x7fffffffn, 0x80000000n, 0xffffffffn, 0x100000000n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n,
  0x7fffffffffffffffn, 0x8000000000000000n, 0xffffffffffffffffn, 0xfffffffffffffffen,
];

export function boundaryU64(r: Rng): bigint {
  return r.pick(BOUNDARY_U64);
}

/** A protobuf varint of `v` (unsigned 64-bit). */
export function varint(v: bigint): Uint8Array {
  const out: number[] = [];
  let x = BigInt.asUintN(64, v);
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x !== 0n) b |= 0x80;
    out.push(b);
  } while (x !== 0n);
  return Uint8Array.from(out);
}

/** Odd varints: overlong (11 bytes), unterminated, a 10-byte maximum. */
function weirdVarint(r: Rng): Uint8Array {
  switch (r.int(0, 4)) {
    case 0:
      return Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    case 1:
      return Uint8Array.from([0x80, 0x80, 0x80]);
    case 2:
      return Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    default:
      return varint(boundaryU64(r));
  }
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** `chunk` repeated `times` times (by doubling copies: fast for millions of tiny chunks). */
export function repeatBytes(chunk: Uint8Array, times: number): Uint8Array {
  const out = new Uint8Array(chunk.length * times);
  if (out.length === 0) return out;
  out.set(chunk, 0);
  let filled = chunk.length;
  while (filled < out.length) {
    const n = Math.min(filled, out.length - filled);
    out.copyWithin(filled, 0, n);
    filled += n;
  }
  return out;
}

/** Where a protobuf length prefix sits: [start, end) of the varint. */
export interface LengthField {
  readonly start: number;
  readonly end: number;
}

/**
 * Scans protobuf wire format (recursing into length-delimited fields that parse as messages)
 * and returns where the length prefixes are. Stops at the first thing that is not valid wire
 * format; bounded by the input (each step consumes at least one byte) and by `depthMax`.
 */
export function protoLengthFields(b: Uint8Array, from = 0, to = b.length, depthMax = 64, out: LengthField[] = []): LengthField[] {
  let p = from;
  const readVarint = (): number | null => {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (p >= to) return null;
      const x = b[p++]!;
      v += (x & 0x7f) * mul;
      mul *= 128;
      if ((x & 0x80) === 0) return v;
    }
    return null;
  };
  while (p < to) {
    const tag = readVarint();
    if (tag === null || tag < 8) return out;
    switch (tag & 7) {
      case 0:
        if (readVarint() === null) return out;
        break;
      case 1:
        p += 8;
        break;
      case 5:
        p += 4;
        break;
      case 2: {
        const start = p;
        const len = readVarint();
        if (len === null || p + len > to) return out;
        out.push({ start, end: p });
        if (depthMax > 0) protoLengthFields(b, p, p + len, depthMax - 1, out);
        p += len;
        break;
      }
      default:
        return out;
    }
  }
  return out;
}

export type MutationKind = 'bitflip' | 'insert' | 'delete' | 'truncate' | 'boundary' | 'varint' | 'length' | 'splice' | 'repeat' | 'swap';

/** Length fields of the input's format: protobuf (found by scanning) or fixed u32 offsets. */
export type LengthFinder = (b: Uint8Array) => readonly LengthField[];

export interface MutateOptions {
  /** Another valid input to splice with. */
  readonly other?: Uint8Array;
  /** Where the input's length fields are (default: a protobuf scan). */
  readonly lengths?: LengthFinder;
  /** Cap on the result's size. */
  readonly maxBytes?: number;
}

/** One to four mutations of `input` (never modified in place). */
export function mutate(r: Rng, input: Uint8Array, o: MutateOptions = {}): Uint8Array {
  let b: Uint8Array = input.slice();
  const n = r.int(1, 5);
  const maxBytes = o.maxBytes ?? MUTATED_BYTES_MAX;
  for (let i = 0; i < n; i++) b = mutateOnce(r, b, o);
  return b.length > maxBytes ? b.subarray(0, maxBytes) : b;
}

function mutateOnce(r: Rng, b: Uint8Array, o: MutateOptions): Uint8Array {
  const kinds: MutationKind[] = ['bitflip', 'insert', 'delete', 'truncate', 'boundary', 'varint', 'length', 'splice', 'repeat', 'swap'];
  const kind = r.pick(kinds);
  const at = (extra = 0) => r.int(0, b.length + extra);
  switch (kind) {
    case 'bitflip': {
      if (b.length === 0) return b;
      const k = r.int(1, 9);
      for (let i = 0; i < k; i++) {
        const p = at();
        b[p] = b[p]! ^ (1 << r.int(0, 8));
      }
      return b;
    }
    case 'insert': {
      const p = at(1);
      return concat([b.subarray(0, p), randomBytes(r, 256), b.subarray(p)]);
    }
    case 'delete': {
      if (b.length === 0) return b;
      const p = at();
      const len = r.int(1, Math.min(b.length - p, 64) + 1);
      return concat([b.subarray(0, p), b.subarray(p + len)]);
    }
    case 'truncate':
      return b.subarray(0, at(1));
    case 'boundary': {
      // A boundary integer over 1, 2, 4 or 8 bytes, little- or big-endian.
      const width = r.pick([1, 2, 4, 8]);
      if (b.length < width) return b;
      const p = r.int(0, b.length - width + 1);
      const v = boundaryU64(r);
      const le = r.chance(0.5);
      for (let i = 0; i < width; i++) b[le ? p + i : p + width - 1 - i] = Number((v >> BigInt(8 * i)) & 0xffn);
      return b;
    }
    case 'varint': {
      const p = at(1);
      const q = Math.min(b.length, p + r.int(0, 3));
      return concat([b.subarray(0, p), weirdVarint(r), b.subarray(q)]);
    }
    case 'length': {
      const fields = (o.lengths ?? protoLengthFields)(b);
      if (fields.length === 0) {
        const p = at(1);
        return concat([b.subarray(0, p), weirdVarint(r), b.subarray(p)]);
      }
      const f = r.pick(fields);
      const old = b.subarray(f.start, f.end);
      let repl: Uint8Array;
      if (o.lengths) {
        // Fixed-width fields (u32 little-endian): a boundary value or off by one.
        repl = new Uint8Array(old.length);
        const cur = new DataView(old.buffer, old.byteOffset, old.length);
        const v = old.length === 4 ? (r.chance(0.5) ? Number(boundaryU64(r) & 0xffffffffn) : (cur.getUint32(0, true) + r.pick([-1, 1, 2 ** 31])) >>> 0) : r.int(0, 256);
        const dv = new DataView(repl.buffer);
        if (repl.length === 4) dv.setUint32(0, v >>> 0, true);
        else repl.fill(v & 0xff);
      } else {
        repl = r.chance(0.5) ? varint(boundaryU64(r)) : weirdVarint(r);
      }
      return concat([b.subarray(0, f.start), repl, b.subarray(f.end)]);
    }
    case 'splice': {
      const other = o.other ?? randomBytes(r, 256);
      return concat([b.subarray(0, at(1)), other.subarray(r.int(0, other.length + 1))]);
    }
    case 'repeat': {
      if (b.length === 0) return b;
      const p = at();
      const len = r.int(1, Math.min(b.length - p, 256) + 1);
      const chunk = b.subarray(p, p + len);
      const times = r.chance(0.8) ? r.int(2, 64) : r.int(64, Math.max(65, Math.floor((o.maxBytes ?? MUTATED_BYTES_MAX) / len)));
      return concat([b.subarray(0, p), repeatBytes(chunk, times), b.subarray(p + len)]);
    }
    case 'swap': {
      if (b.length < 2) return b;
      const p = at();
      const q = at();
      const t = b[p]!;
      b[p] = b[q]!;
      b[q] = t;
      return b;
    }
  }
}

/** Hex of the first `maxBytes` bytes, for failure reports. */
export function hexPreview(b: Uint8Array, maxBytes = 256): string {
  const h = Buffer.from(b.buffer, b.byteOffset, Math.min(b.length, maxBytes)).toString('hex');
  return b.length > maxBytes ? `${h}... (${b.length} bytes)` : `${h} (${b.length} bytes)`;
}
