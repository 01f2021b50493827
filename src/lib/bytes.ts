/**
 * Little-endian binary encoding shared by the WAL records and the wire format: a growable
 * writer and a bounds-checked reader. u64 values travel as two u32 halves and stay below 2^53
 * (JavaScript numbers). Byte strings are u32 length + bytes; strings are u16 length + UTF-8.
 * The reader never trusts its input: every read is bounds-checked and failures are raised
 * through the caller's error factory (RangeError by default, FrameError on the wire).
 */

export class ByteWriter {
  buf: Uint8Array;
  private view: DataView;
  pos: number;

  /** `reserve` bytes at the start are left for a header the caller fills in later. */
  constructor(size = 64, reserve = 0) {
    this.buf = new Uint8Array(Math.max(size, reserve));
    this.view = new DataView(this.buf.buffer);
    this.pos = reserve;
  }

  private need(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.pos + n));
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): void {
    this.need(1);
    this.view.setUint8(this.pos++, v);
  }

  u16(v: number): void {
    this.need(2);
    this.view.setUint16(this.pos, v, true);
    this.pos += 2;
  }

  u32(v: number): void {
    this.need(4);
    this.view.setUint32(this.pos, v, true);
    this.pos += 4;
  }

  u64(v: number): void {
    this.need(8);
    this.view.setUint32(this.pos, v % 0x100000000, true);
    this.view.setUint32(this.pos + 4, Math.floor(v / 0x100000000), true);
    this.pos += 8;
  }

  bool(v: boolean): void {
    this.u8(v ? 1 : 0);
  }

  /** A 64-bit unsigned integer as a bigint (0 .. 2^64-1; outside that is a caller's bug). */
  bigU64(v: bigint): void {
    if (v < 0n || v > 0xffffffffffffffffn) throw new RangeError(`${v} is not a u64`);
    this.need(8);
    this.view.setBigUint64(this.pos, v, true);
    this.pos += 8;
  }

  /** A 64-bit signed integer as a bigint (-2^63 .. 2^63-1). */
  bigI64(v: bigint): void {
    if (v < -0x8000000000000000n || v > 0x7fffffffffffffffn) throw new RangeError(`${v} is not an i64`);
    this.need(8);
    this.view.setBigInt64(this.pos, v, true);
    this.pos += 8;
  }

  /** u32 length, then the bytes. */
  bytes(b: Uint8Array): void {
    this.u32(b.length);
    this.need(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** u16 length, then UTF-8. */
  str(s: string): void {
    const b = new TextEncoder().encode(s);
    if (b.length > 0xffff) throw new RangeError(`string of ${b.length} bytes is too long to encode`);
    this.u16(b.length);
    this.need(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** Overwrites a u32 already written (a length header). */
  setU32(at: number, v: number): void {
    this.view.setUint32(at, v, true);
  }

  /** What was written (a view: valid until the next write). */
  written(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }
}

export class ByteReader {
  pos = 0;
  private readonly view: DataView;

  constructor(
    private readonly b: Uint8Array,
    private readonly fail: (message: string) => Error = (m) => new RangeError(m),
  ) {
    this.view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  private need(n: number): void {
    if (this.pos + n > this.b.length) throw this.fail(`input ends early (need ${n} bytes at ${this.pos} of ${this.b.length})`);
  }

  u8(): number {
    this.need(1);
    return this.view.getUint8(this.pos++);
  }

  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  u64(): number {
    this.need(8);
    const lo = this.view.getUint32(this.pos, true);
    const hi = this.view.getUint32(this.pos + 4, true);
    this.pos += 8;
    if (hi >= 0x200000) throw this.fail('integer beyond 2^53');
    return hi * 0x100000000 + lo;
  }

  bigU64(): bigint {
    this.need(8);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }

  bigI64(): bigint {
    this.need(8);
    const v = this.view.getBigInt64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** Bytes not read yet (a bound for counts read from the input). */
  get remaining(): number {
    return this.b.length - this.pos;
  }

  bool(): boolean {
    const v = this.u8();
    if (v > 1) throw this.fail(`bad boolean ${v}`);
    return v === 1;
  }

  /** u32 length, then the bytes (a copy). */
  bytes(): Uint8Array {
    return this.bytesView().slice();
  }

  /** u32 length, then the bytes as a view of the input (no copy: the caller owns the input and keeps it unchanged). */
  bytesView(): Uint8Array {
    const n = this.u32();
    this.need(n);
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  str(): string {
    const n = this.u16();
    this.need(n);
    let s: string;
    try {
      s = new TextDecoder('utf-8', { fatal: true }).decode(this.b.subarray(this.pos, this.pos + n));
    } catch {
      throw this.fail('string is not valid UTF-8');
    }
    this.pos += n;
    return s;
  }

  /** Fails unless every byte was read. */
  end(): void {
    if (this.pos !== this.b.length) throw this.fail(`${this.b.length - this.pos} unexpected trailing bytes`);
  }
}

/** A log entry on disk and on the wire: index:u64 term:u64 type:u8 (0 normal, 1 conf) data:bytes. */
export interface EncodedEntry {
  readonly index: number;
  readonly term: number;
  readonly type: 'normal' | 'conf';
  readonly data: Uint8Array;
}

export function writeEntry(w: ByteWriter, e: EncodedEntry): void {
  w.u64(e.index);
  w.u64(e.term);
  w.u8(e.type === 'conf' ? 1 : 0);
  w.bytes(e.data);
}

export function readEntry(r: ByteReader, fail: (message: string) => Error = (m) => new RangeError(m)): EncodedEntry {
  const index = r.u64();
  const term = r.u64();
  const t = r.u8();
  if (t > 1) throw fail(`bad entry type ${t}`);
  return { index, term, type: t === 1 ? 'conf' : 'normal', data: r.bytes() };
}

/** Orders byte strings as etcd orders keys: bytewise, a prefix before its extensions. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}
