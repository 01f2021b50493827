/**
 * A min-heap of (key, deadline) with an index from key to position, so that adding, moving
 * (renewing) and removing a key are O(log n) and the earliest deadline is O(1) — what etcd's
 * LeaseExpiredNotifier does with container/heap and a map. Each key is in the heap at most once.
 * Pure: no clock; deadlines are whatever numbers the owner uses (milliseconds on its clock).
 */
import { assert } from './assert.js';

interface Item<K> {
  readonly key: K;
  at: number;
}

export class DeadlineHeap<K> {
  private readonly items: Item<K>[] = [];
  private readonly pos = new Map<K, number>();

  get size(): number {
    return this.items.length;
  }

  has(key: K): boolean {
    return this.pos.has(key);
  }

  /** The key's deadline, or undefined when it is not in the heap. */
  deadline(key: K): number | undefined {
    const i = this.pos.get(key);
    return i === undefined ? undefined : this.items[i]!.at;
  }

  /** The earliest item, without removing it. */
  peek(): { readonly key: K; readonly at: number } | undefined {
    return this.items[0];
  }

  /** Adds the key, or moves it to the new deadline when it is already in. */
  set(key: K, at: number): void {
    assert(!Number.isNaN(at), 'a deadline must be a number');
    const i = this.pos.get(key);
    if (i === undefined) {
      this.items.push({ key, at });
      this.pos.set(key, this.items.length - 1);
      this.up(this.items.length - 1);
      return;
    }
    const before = this.items[i]!.at;
    this.items[i]!.at = at;
    if (at < before) this.up(i);
    else this.down(i);
  }

  /** Removes the key; false when it was not in. */
  delete(key: K): boolean {
    const i = this.pos.get(key);
    if (i === undefined) return false;
    this.pos.delete(key);
    const last = this.items.pop()!;
    if (i < this.items.length) {
      this.items[i] = last;
      this.pos.set(last.key, i);
      this.up(i);
      this.down(this.pos.get(last.key)!);
    }
    return true;
  }

  /** Removes and returns the earliest item whose deadline is at or before `now`; undefined when none is due. */
  popDue(now: number): { readonly key: K; readonly at: number } | undefined {
    const top = this.items[0];
    if (top === undefined || top.at > now) return undefined;
    this.delete(top.key);
    return top;
  }

  /** Every item, in no particular order. */
  *entries(): IterableIterator<{ readonly key: K; readonly at: number }> {
    for (const it of this.items) yield { key: it.key, at: it.at };
  }

  clear(): void {
    this.items.length = 0;
    this.pos.clear();
  }

  private swap(i: number, j: number): void {
    const a = this.items[i]!;
    const b = this.items[j]!;
    this.items[i] = b;
    this.items[j] = a;
    this.pos.set(b.key, i);
    this.pos.set(a.key, j);
  }

  private up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.items[parent]!.at <= this.items[i]!.at) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private down(i: number): void {
    const n = this.items.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && this.items[l]!.at < this.items[m]!.at) m = l;
      if (r < n && this.items[r]!.at < this.items[m]!.at) m = r;
      if (m === i) return;
      this.swap(i, m);
      i = m;
    }
  }

  /** Test aid: the heap order and the index agree (O(n)). */
  checkInvariants(): void {
    assert(this.pos.size === this.items.length, `index holds ${this.pos.size} keys, heap ${this.items.length}`);
    for (let i = 0; i < this.items.length; i++) {
      const it = this.items[i]!;
      assert(this.pos.get(it.key) === i, `key at ${i} indexed at ${String(this.pos.get(it.key))}`);
      if (i > 0) assert(this.items[(i - 1) >> 1]!.at <= it.at, `heap order broken at ${i}`);
    }
  }
}
