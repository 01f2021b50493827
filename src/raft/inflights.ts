/**
 * The AppendEntries messages in flight to one follower, bounded in count and in bytes.
 * A ring buffer of (last index of the message, payload bytes), freed as acks arrive.
 */
import { assert } from '../lib/assert.js';
import type { Index } from './types.js';

export class Inflights {
  private readonly indexes: Float64Array;
  private readonly sizes: Float64Array;
  private start = 0;
  private countNow = 0;
  private bytesNow = 0;

  constructor(
    readonly msgsMax: number,
    readonly bytesMax: number,
  ) {
    assert(msgsMax > 0, `inflightMsgsMax must be positive, got ${msgsMax}`);
    this.indexes = new Float64Array(msgsMax);
    this.sizes = new Float64Array(msgsMax);
  }

  get count(): number {
    return this.countNow;
  }

  get bytes(): number {
    return this.bytesNow;
  }

  /** Records a message whose last entry is `index`. Indexes must be added in increasing order. */
  add(index: Index, bytes: number): void {
    assert(!this.full(), 'cannot add into a full inflights window');
    if (this.countNow > 0) {
      const last = this.indexes[(this.start + this.countNow - 1) % this.msgsMax]!;
      assert(index > last, `inflights: index ${index} added after ${last}`);
    }
    const slot = (this.start + this.countNow) % this.msgsMax;
    this.indexes[slot] = index;
    this.sizes[slot] = bytes;
    this.countNow++;
    this.bytesNow += bytes;
  }

  /** Frees every message whose last index is <= `index` (they have been acknowledged). */
  freeLE(index: Index): void {
    while (this.countNow > 0 && this.indexes[this.start]! <= index) {
      this.bytesNow -= this.sizes[this.start]!;
      this.start = (this.start + 1) % this.msgsMax;
      this.countNow--;
    }
    if (this.countNow === 0) this.start = 0;
  }

  /** Frees the oldest message (used when a heartbeat answer shows the follower is alive). */
  freeFirstOne(): void {
    if (this.countNow === 0) return;
    this.freeLE(this.indexes[this.start]!);
  }

  full(): boolean {
    return this.countNow === this.msgsMax || (this.bytesMax > 0 && this.bytesNow >= this.bytesMax);
  }

  reset(): void {
    this.start = 0;
    this.countNow = 0;
    this.bytesNow = 0;
  }
}
