import { describe, expect, it } from 'vitest';
import { ChainNode, type ChainEffect } from './node.js';
import type { PeerMessage } from './messages.js';
import { nextConfig, type Registration } from './master.js';
import { CHAIN_KEY_BYTES_MAX, CHAIN_PENDING_READS_MAX, CHAIN_RESEND_BACKOFF_MAX, type ChainConfig, type ClientOp, type ClientReply, type ReadMode } from './types.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A chain in memory: FIFO delivery, disks that persist at once unless `slowDisk`, hand-driven. */
class Harness {
  nodes = new Map<string, ChainNode>();
  queue: PeerMessage[] = [];
  replies = new Map<number, ClientReply>();
  unpersisted = new Map<string, number[]>();
  slowDisk = new Set<string>();
  drop: (m: PeerMessage) => boolean = () => false;
  sent: PeerMessage[] = [];
  reports: ChainEffect[] = [];
  private reqId = 0;
  config: ChainConfig = { epoch: 1, members: [], joining: null };

  constructor(
    names: string[],
    readonly reads: ReadMode = 'tail',
    make: (name: string) => ChainNode = (name) => new ChainNode({ name, reads }),
  ) {
    for (const n of names) {
      const node = make(n);
      node.setReadLease(1_000_000);
      this.nodes.set(n, node);
    }
  }

  node(n: string): ChainNode {
    return this.nodes.get(n)!;
  }

  configure(members: string[], joining: string | null = null, to?: string[]): void {
    this.config = { epoch: this.config.epoch + 1, members, joining };
    for (const n of to ?? this.nodes.keys()) this.node(n).setConfig(this.config);
    this.flushAll();
  }

  flush(name: string): void {
    const node = this.node(name);
    for (const e of node.takeEffects()) {
      if (e.type === 'send') {
        this.sent.push(e.msg);
        if (!this.drop(e.msg)) this.queue.push(e.msg);
      } else if (e.type === 'reply') this.replies.set(e.id, e.reply);
      else if (e.type === 'persist' || e.type === 'persistSnapshot') {
        if (this.slowDisk.has(name)) this.unpersisted.set(name, [...(this.unpersisted.get(name) ?? []), e.token]);
        else {
          node.persisted(e.token);
          this.flush(name);
        }
      } else this.reports.push(e);
    }
  }

  flushAll(): void {
    for (const n of this.nodes.keys()) this.flush(n);
  }

  /** Delivers until nothing is in flight (ticking when idle, `ticks` times at most). */
  stabilize(ticks = 20): void {
    for (let t = 0; t <= ticks; t++) {
      while (this.queue.length > 0) {
        const m = this.queue.shift()!;
        const to = this.nodes.get(m.to);
        if (!to) continue;
        to.step(m);
        this.flush(m.to);
      }
      if (t < ticks) for (const [n, node] of this.nodes) {
        node.tick();
        this.flush(n);
      }
    }
  }

  send(at: string, op: ClientOp, epoch = this.config.epoch): number {
    const id = ++this.reqId;
    this.node(at).request({ client: 'c', id, epoch, op });
    this.flush(at);
    return id;
  }

  put(key: string, value: string): number {
    return this.send(this.config.members[0]!, { type: 'put', key, value: enc.encode(value) });
  }

  get(at: string, key: string): ClientReply {
    const id = this.send(at, { type: 'get', key });
    this.stabilize(0);
    return this.replies.get(id)!;
  }
}

function value(r: ClientReply | undefined): string | null | undefined {
  if (!r || r.ok !== true || r.result.type !== 'get') return undefined;
  return r.result.value === null ? null : dec.decode(r.result.value);
}

function chain3(reads: ReadMode = 'tail', make?: (name: string) => ChainNode): Harness {
  const h = new Harness(['a', 'b', 'c', 'd'], reads, make);
  h.configure(['a', 'b', 'c']);
  h.stabilize();
  return h;
}

describe('ChainNode', () => {
  it('writes at the head, answers once the tail has it, reads at the tail', () => {
    const h = chain3();
    const id = h.put('k', 'v1');
    expect(h.replies.get(id)).toBeUndefined();
    h.stabilize();
    expect(h.replies.get(id)).toEqual({ ok: true, result: { type: 'put', version: 1 } });
    expect(value(h.get('c', 'k'))).toBe('v1');
    expect(h.get('a', 'k')).toMatchObject({ ok: false, reason: 'not-tail' });
    expect(h.replies.get(h.send('b', { type: 'put', key: 'k', value: enc.encode('x') }))).toMatchObject({ ok: false, reason: 'not-head' });
    for (const n of ['a', 'b', 'c']) expect(h.node(n).lastSeq).toBe(1);
  });

  it('compare-and-swap on the version, delete', () => {
    const h = chain3();
    h.put('k', 'v1');
    h.stabilize();
    const bad = h.send('a', { type: 'cas', key: 'k', expectedVersion: 7, value: enc.encode('v2') });
    const good = h.send('a', { type: 'cas', key: 'k', expectedVersion: 1, value: enc.encode('v3') });
    const del = h.send('a', { type: 'delete', key: 'k' });
    const absent = h.send('a', { type: 'cas', key: 'k', expectedVersion: 0, value: enc.encode('v5') });
    h.stabilize();
    expect(h.replies.get(bad)).toEqual({ ok: true, result: { type: 'cas', swapped: false, version: 1 } });
    expect(h.replies.get(good)).toEqual({ ok: true, result: { type: 'cas', swapped: true, version: 3 } });
    expect(h.replies.get(del)).toEqual({ ok: true, result: { type: 'delete', deleted: true } });
    expect(h.replies.get(absent)).toEqual({ ok: true, result: { type: 'cas', swapped: true, version: 5 } });
    expect(h.get('c', 'k')).toMatchObject({ ok: true, result: { version: 5 } });
  });

  it('refuses requests of another epoch, bad keys and values', () => {
    const h = chain3();
    expect(h.replies.get(h.send('a', { type: 'put', key: 'k', value: enc.encode('v') }, 1))).toMatchObject({ ok: false, reason: 'epoch', epoch: 2 });
    expect(h.replies.get(h.send('a', { type: 'put', key: '', value: enc.encode('v') }))).toMatchObject({ ok: false, reason: 'invalid' });
    expect(h.replies.get(h.send('a', { type: 'put', key: 'k'.repeat(CHAIN_KEY_BYTES_MAX + 1), value: enc.encode('v') }))).toMatchObject({ ok: false, reason: 'invalid' });
    expect(h.replies.get(h.send('a', { type: 'cas', key: 'k', expectedVersion: -1, value: enc.encode('v') }))).toMatchObject({ ok: false, reason: 'invalid' });
  });

  it('forwards and acknowledges only what is durable', () => {
    const h = chain3();
    h.slowDisk.add('b');
    const id = h.put('k', 'v1');
    h.stabilize();
    expect(h.node('b').lastSeq).toBe(1);
    expect(h.node('c').lastSeq).toBe(0); // b has not forwarded what it has not persisted
    expect(h.replies.get(id)).toBeUndefined();
    h.slowDisk.clear();
    for (const t of h.unpersisted.get('b')!) h.node('b').persisted(t);
    h.flush('b');
    h.stabilize();
    expect(h.replies.get(id)).toMatchObject({ ok: true });
  });

  it('resends to a successor that does not acknowledge, each time waiting twice as long (CHAIN_RESEND_BACKOFF_MAX)', () => {
    const h = chain3();
    h.slowDisk.add('b'); // b receives but never acknowledges
    h.sent = [];
    const id = h.put('k', 'v1');
    const ticks = 5 * (2 ** (CHAIN_RESEND_BACKOFF_MAX + 3));
    h.stabilize(ticks);
    const at: number[] = [];
    let sends = 0;
    for (const m of h.sent) if (m.type === 'update' && m.from === 'a') sends++;
    // resendTicks 5: the first send, then resends after 5, 10, 20, ... up to 5 * 2^max ticks apart.
    let t = 0;
    for (let k = 0; t <= ticks; k++) {
      t += 5 * 2 ** Math.min(k, CHAIN_RESEND_BACKOFF_MAX);
      if (t <= ticks) at.push(t);
    }
    expect(sends).toBe(1 + at.length);
    expect(sends).toBeLessThan(ticks / 5 / 4);
    // Progress resets the wait: once b's disk catches up the write completes.
    h.slowDisk.clear();
    for (const tok of h.unpersisted.get('b')!) h.node('b').persisted(tok);
    h.flush('b');
    h.stabilize();
    expect(h.replies.get(id)).toMatchObject({ ok: true });
  });

  it('middle failure: the predecessor resends what the new successor lacks', () => {
    const h = chain3();
    h.drop = (m) => m.from === 'b' && m.to === 'c'; // b never passes anything on: then it fails
    const ids = [h.put('k', 'v1'), h.put('k', 'v2')];
    h.stabilize();
    expect(h.node('c').lastSeq).toBe(0);
    h.drop = () => false;
    h.configure(['a', 'c']);
    h.stabilize();
    expect(h.node('c').lastSeq).toBe(2);
    for (const id of ids) expect(h.replies.get(id)).toMatchObject({ ok: true });
    expect(value(h.get('c', 'k'))).toBe('v2');
  });

  it('head failure: the successor is head and continues the sequence', () => {
    const h = chain3();
    h.put('k', 'v1');
    h.stabilize();
    h.configure(['b', 'c']);
    h.stabilize();
    const id = h.put('k', 'v2');
    h.stabilize();
    expect(h.replies.get(id)).toEqual({ ok: true, result: { type: 'put', version: 2 } });
  });

  it('a write in flight when the head stops being head has an unknown outcome', () => {
    const h = chain3();
    h.drop = (m) => m.type === 'ack';
    const id = h.put('k', 'v1');
    h.stabilize(0);
    h.configure(['b', 'c']);
    expect(h.replies.get(id)).toMatchObject({ ok: null, reason: 'unknown' });
  });

  it('tail failure: the predecessor is tail; its durable history is committed', () => {
    const h = chain3();
    h.drop = (m) => m.from === 'c';
    const id = h.put('k', 'v1');
    h.stabilize();
    expect(h.replies.get(id)).toBeUndefined();
    h.drop = () => false;
    h.configure(['a', 'b']);
    h.stabilize();
    expect(h.replies.get(id)).toMatchObject({ ok: true });
    expect(value(h.get('b', 'k'))).toBe('v1');
  });

  it('a joiner is brought up to date from the tail, then appended, and serves once synced', () => {
    const h = chain3();
    for (let i = 0; i < 5; i++) h.put(`k${i}`, `v${i}`);
    h.stabilize();
    h.configure(['a', 'b', 'c'], 'd');
    h.stabilize();
    // The tail keeps no committed updates, so the joiner's empty history gets the committed state.
    expect(h.sent.some((m) => m.type === 'snapshotChunk' && m.to === 'd')).toBe(true);
    expect(h.node('d').lastSeq).toBe(5);
    expect(h.reports).toContainEqual({ type: 'caughtUp', epoch: 3 });
    expect(h.get('d', 'k1')).toMatchObject({ ok: false, reason: 'not-tail' });
    // More writes while it is joining reach it too.
    h.put('k1', 'w1');
    h.stabilize();
    expect(h.node('d').lastSeq).toBe(6);
    h.configure(['a', 'b', 'c', 'd']);
    h.stabilize();
    expect(value(h.get('d', 'k1'))).toBe('w1');
    expect(h.get('c', 'k1')).toMatchObject({ ok: false, reason: 'not-tail' });
  });

  it('the tail keeps at most logRetainMax committed updates for a lagging joiner; beyond, the joiner gets a snapshot', () => {
    const retain = 8;
    const h = new Harness(['a', 'b', 'c', 'd'], 'tail', (name) => new ChainNode({ name, logRetainMax: retain }));
    h.configure(['a', 'b', 'c']);
    h.stabilize();
    h.put('k0', 'v0');
    h.stabilize();
    // d joins, catches up, then hears nothing from the tail while 3 * retain writes commit.
    h.configure(['a', 'b', 'c'], 'd');
    h.stabilize();
    expect(h.node('d').lastSeq).toBe(1);
    h.drop = (m) => m.to === 'd' || m.from === 'd';
    for (let i = 0; i < 3 * retain; i++) h.put(`k${i % 5}`, `w${i}`);
    h.stabilize();
    const tail = h.node('c');
    expect(tail.ackedSeq).toBe(1 + 3 * retain);
    // The tail holds no update older than retain behind its committed point.
    expect(tail.updateAt(tail.ackedSeq - retain)).toBeUndefined();
    expect(tail.updateAt(tail.ackedSeq - retain + 1)).toBeDefined();
    h.drop = () => false;
    h.sent = [];
    // The next resend comes within the longest backoff.
    h.stabilize(5 * 2 ** CHAIN_RESEND_BACKOFF_MAX + 10);
    expect(h.sent.some((m) => m.type === 'snapshotChunk' && m.to === 'd')).toBe(true);
    expect(h.node('d').lastSeq).toBe(tail.lastSeq);
    expect(h.node('d').entries()).toEqual(tail.entries());
  });

  it('compaction: committedImage is the committed state; a node restarted from it and the updates after it continues, and catches up a joiner', () => {
    const h = chain3();
    h.put('k', 'v1');
    h.put('j', 'w1');
    h.stabilize();
    // The head holds an update the tail has not acknowledged (its successor hears nothing).
    h.drop = (m) => m.from === 'a';
    h.put('k', 'v2');
    h.stabilize();
    const a = h.node('a');
    expect([a.lastSeq, a.durableSeq, a.ackedSeq]).toEqual([3, 3, 2]);
    const img = a.committedImage()!;
    // Only what is committed: k is still v1 in it, and the image says so (seq 2, not 3).
    expect(img.seq).toBe(2);
    expect(img.entries.map((e) => [e.key, dec.decode(e.value), e.version]).sort()).toEqual([['j', 'w1', 2], ['k', 'v1', 1]]);
    // A restart from the compacted disk: the image, then the updates after it.
    const restart = (n: ChainNode, image = n.committedImage()!): ChainNode => {
      const updates = [];
      for (let q = image.seq + 1; q <= n.durableSeq; q++) updates.push(n.updateAt(q)!);
      const r = new ChainNode({ name: n.name }, { snapshot: image, updates });
      r.setReadLease(1_000_000);
      h.nodes.set(n.name, r);
      return r;
    };
    const a2 = restart(a, img);
    expect([a2.lastSeq, a2.durableSeq, a2.ackedSeq]).toEqual([3, 3, 2]);
    expect(a2.entries()).toEqual(a.entries());
    // Back in the chain (a new epoch): the update after the image reaches the tail.
    h.drop = () => false;
    h.configure(['a', 'b', 'c']);
    h.stabilize();
    expect(value(h.get('c', 'k'))).toBe('v2');
    // The tail compacts and restarts; a joiner behind its compacted point gets the state from it.
    const c2 = restart(h.node('c'));
    expect(c2.updateAt(3)).toBeUndefined();
    h.configure(['a', 'b', 'c'], 'd');
    h.stabilize();
    expect(h.sent.some((m) => m.type === 'snapshotChunk' && m.from === 'c' && m.to === 'd')).toBe(true);
    h.configure(['a', 'b', 'c', 'd']);
    h.stabilize();
    expect(h.node('d').entries()).toEqual(a2.entries());
    expect(value(h.get('d', 'k'))).toBe('v2');
    expect(value(h.get('d', 'j'))).toBe('w1');
  });

  it('a joiner whose history diverged gets a snapshot of the committed state', () => {
    const h = chain3();
    h.put('k', 'v1');
    h.stabilize();
    // a, the head, assigns two more updates nobody receives, then is replaced.
    h.drop = (m) => m.from === 'a';
    h.put('k', 'lost1');
    h.put('j', 'lost2');
    h.stabilize();
    h.drop = () => false;
    h.configure(['b', 'c'], null, ['b', 'c']);
    h.put('k', 'v2');
    h.stabilize();
    expect(h.node('a').lastSeq).toBe(3);
    h.configure(['b', 'c'], 'a');
    h.stabilize();
    expect(h.sent.some((m) => m.type === 'snapshotChunk' && m.to === 'a')).toBe(true);
    expect(h.node('a').entries().map((e) => [e.key, dec.decode(e.value), e.version])).toEqual([['k', 'v2', 2]]);
    h.configure(['b', 'c', 'a']);
    h.stabilize();
    expect(value(h.get('a', 'k'))).toBe('v2');
    expect(value(h.get('a', 'j'))).toBe(null);
  });

  it('fencing: a message of another epoch is dropped', () => {
    const h = chain3();
    h.configure(['a', 'b', 'c'], null, ['b', 'c']); // a is still in epoch 2
    h.put('k', 'v1');
    h.stabilize();
    expect(h.node('b').lastSeq).toBe(0);
    expect(h.reports).toContainEqual({ type: 'newerEpoch', epoch: 3 });
  });

  it('reads need a valid lease and, for a new tail, the sync of the epoch', () => {
    const h = chain3();
    h.node('c').setReadLease(0);
    expect(h.get('c', 'k')).toMatchObject({ ok: false, reason: 'no-lease' });
    h.node('c').setReadLease(1_000_000, 99);
    expect(h.get('c', 'k')).toMatchObject({ ok: false, reason: 'no-lease' });
    h.node('c').setReadLease(1_000_000, 2);
    expect(value(h.get('c', 'k'))).toBe(null);
    h.configure(['a', 'b', 'c', 'd'], null, ['d']); // d is tail, c has not heard: no sync for d
    expect(h.get('d', 'k')).toMatchObject({ ok: false, reason: 'not-synced' });
  });

  it('CRAQ: a clean key is read at any member, a dirty one after asking the tail', () => {
    const h = chain3('craq');
    h.put('k', 'v1');
    h.stabilize();
    expect(value(h.get('a', 'k'))).toBe('v1');
    expect(h.sent.some((m) => m.type === 'versionQuery')).toBe(false);
    h.drop = (m) => m.from === 'b' && m.type === 'update';
    h.put('k', 'v2');
    h.stabilize(0);
    // a holds v2 (dirty), the tail only v1: a answers v1 after asking.
    expect(value(h.get('a', 'k'))).toBe('v1');
    expect(h.sent.some((m) => m.type === 'versionQuery' && m.from === 'a')).toBe(true);
  });

  it('bounds what is in flight to the successor by count and bytes, and the head by count', () => {
    const h = new Harness(['a', 'b'], 'tail', (name) => new ChainNode({ name, sendWindowBytes: 15, inflightUpdatesMax: 3 }));
    h.configure(['a', 'b']);
    h.stabilize();
    h.drop = (m) => m.type === 'ack';
    const ids = [1, 2, 3, 4].map((i) => h.put(`k${i}`, '0123456789'));
    expect(h.replies.get(ids[3]!)).toMatchObject({ ok: false, reason: 'busy' });
    h.stabilize(0);
    expect(h.sent.filter((m) => m.type === 'update').length).toBe(2); // 10 + 10 bytes reach 15: the third waits
    h.drop = () => false;
    h.stabilize();
    expect(ids.slice(0, 3).map((id) => h.replies.get(id)?.ok)).toEqual([true, true, true]);
  });

  it('bounds the value bytes in flight at the head', () => {
    const h = new Harness(['a', 'b'], 'tail', (name) => new ChainNode({ name, inflightBytesMax: 15 }));
    h.configure(['a', 'b']);
    h.stabilize();
    const first = h.put('k', '0123456789');
    const second = h.put('k', '0123456789');
    expect(h.replies.get(second)).toMatchObject({ ok: false, reason: 'busy' });
    h.stabilize();
    expect(h.replies.get(first)).toMatchObject({ ok: true });
    expect(h.replies.get(h.put('k', '0123456789'))).toBeUndefined(); // room again
  });

  it('sends a snapshot in chunks of at most snapshotChunkBytesMax; a lost chunk means asking again', () => {
    const h = new Harness(['a', 'b', 'c'], 'tail', (name) => new ChainNode({ name, snapshotChunkBytesMax: 8 }));
    h.configure(['a', 'b']);
    h.stabilize();
    for (const k of ['k1', 'k2', 'k3', 'k4']) h.put(k, 'vvv');
    h.stabilize();
    h.configure(['a', 'b'], 'c');
    h.stabilize();
    const chunks = h.sent.filter((m) => m.type === 'snapshotChunk');
    expect(chunks.length).toBeGreaterThanOrEqual(4);
    expect(chunks.every((m) => m.type === 'snapshotChunk' && m.entries.length === 1)).toBe(true);
    expect(h.node('c').entries().map((e) => e.key)).toEqual(['k1', 'k2', 'k3', 'k4']);
    const reversed = new Harness(['a', 'b', 'c'], 'tail', (name) => new ChainNode({ name, snapshotChunkBytesMax: 8 }));
    reversed.configure(['a', 'b']);
    reversed.stabilize();
    for (const k of ['k1', 'k2', 'k3', 'k4']) reversed.put(k, 'vvv');
    reversed.stabilize();
    reversed.drop = (m) => m.type === 'snapshotChunk' && m.index === 0;
    reversed.configure(['a', 'b'], 'c');
    reversed.stabilize(20);
    expect(reversed.sent.some((m) => m.type === 'snapshotChunk' && m.index > 0)).toBe(true);
    expect(reversed.node('c').entries()).toEqual([]); // one chunk missing: nothing installed
    reversed.drop = () => false;
    reversed.stabilize(); // the joiner asks again; the whole snapshot comes again
    expect(reversed.node('c').entries().map((e) => e.key)).toEqual(['k1', 'k2', 'k3', 'k4']);
  });

  it('streams a snapshot snapshotInflightChunks chunks beyond the receiver\'s snapshotAck; a repeated syncReq goes on with it; a receiver that lost its chunks gets them again', () => {
    const make = (name: string) => new ChainNode({ name, snapshotChunkBytesMax: 8, snapshotInflightChunks: 2 });
    const keys = Array.from({ length: 10 }, (_, i) => `k${i}`);
    const h = new Harness(['a', 'b', 'c'], 'tail', make);
    h.configure(['a', 'b']);
    h.stabilize();
    for (const k of keys) h.put(k, 'vvv');
    h.stabilize();
    // Acknowledgements lost: never more than two chunks out, however often the joiner asks again.
    h.drop = (m) => m.type === 'snapshotAck';
    h.configure(['a', 'b'], 'c');
    h.stabilize(30);
    const chunks = () => h.sent.filter((m): m is Extract<PeerMessage, { type: 'snapshotChunk' }> => m.type === 'snapshotChunk');
    expect(h.sent.filter((m) => m.type === 'syncReq' && m.from === 'c').length).toBeGreaterThan(3);
    expect(chunks().length).toBeGreaterThan(2); // resent after no progress
    expect(chunks().every((m) => m.index < 2 && m.count === 10)).toBe(true);
    expect(h.node('c').entries()).toEqual([]);
    // Acknowledged: the rest follows, each chunk once.
    h.sent = [];
    h.drop = () => false;
    h.stabilize();
    expect(h.node('c').entries().map((e) => e.key)).toEqual([...keys].sort());
    expect(chunks().map((m) => m.index).sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);

    // A receiver that restarts mid-snapshot (its chunks gone) says so; the sender goes back.
    const r = new Harness(['a', 'b', 'c'], 'tail', make);
    r.configure(['a', 'b']);
    r.stabilize();
    for (const k of keys) r.put(k, 'vvv');
    r.stabilize();
    r.drop = (m) => m.type === 'snapshotChunk' && m.index >= 4;
    r.configure(['a', 'b'], 'c');
    r.stabilize(10);
    expect(r.sent.filter((m) => m.type === 'snapshotAck').map((m) => (m.type === 'snapshotAck' ? m.have : -1))).toEqual([1, 2, 3, 4]);
    const fresh = make('c');
    fresh.setReadLease(1_000_000);
    r.nodes.set('c', fresh);
    fresh.setConfig(r.config);
    r.drop = () => false;
    r.stabilize(60);
    expect(fresh.entries().map((e) => e.key)).toEqual([...keys].sort());
  });

  it('bounds the CRAQ reads waiting for the tail (CHAIN_PENDING_READS_MAX)', () => {
    const h = chain3('craq');
    h.drop = (m) => m.type === 'update' && m.from === 'b';
    h.put('k', 'v1');
    h.stabilize(0);
    h.drop = (m) => m.type === 'versionQuery' || (m.type === 'update' && m.from === 'b');
    const ids = Array.from({ length: CHAIN_PENDING_READS_MAX + 1 }, () => h.send('a', { type: 'get', key: 'k' }));
    expect(h.replies.get(ids[CHAIN_PENDING_READS_MAX - 1]!)).toBeUndefined();
    expect(h.replies.get(ids[CHAIN_PENDING_READS_MAX]!)).toMatchObject({ ok: false, reason: 'busy' });
  });

  it('hostile messages are ignored: absurd counts, sequence numbers and senders', () => {
    const h = chain3();
    h.put('k', 'v1');
    h.stabilize();
    const b = h.node('b');
    const before = b.entries();
    const base = { epoch: 2, to: 'b' };
    b.step({ ...base, type: 'update', from: 'c', seq: 2, assignEpoch: 2, prevAssignEpoch: 2, op: { type: 'put', key: 'k', value: enc.encode('x') } });
    b.step({ ...base, type: 'update', from: 'a', seq: 1e300, assignEpoch: 2, prevAssignEpoch: 2, op: { type: 'put', key: 'k', value: enc.encode('x') } });
    b.step({ ...base, type: 'snapshotChunk', from: 'a', seq: 5, assignEpoch: 2, forSeq: -1, forAssignEpoch: 0, index: 0, count: 1e12, entries: [] });
    b.step({ ...base, type: 'snapshotChunk', from: 'a', seq: 5, assignEpoch: 2, forSeq: -1, forAssignEpoch: 0, index: 0, count: 1, entries: [{ key: 'z', value: enc.encode('x'), version: 9 }] });
    b.step({ ...base, type: 'ack', from: 'c', received: 1e9, receivedAssignEpoch: 2, committed: 1e9 });
    expect(b.entries()).toEqual(before);
    expect(b.lastSeq).toBe(1);
    expect(b.ackedSeq).toBe(1);
  });
});

describe('nextConfig (the master)', () => {
  const reg = (name: string, o: Partial<Registration> = {}): Registration => ({ name, createRevision: 1, caughtUpEpoch: null, syncedEpoch: null, ...o });
  const opts = { membersMax: 3, bootstrapMembers: 1 };
  const cfg = (members: string[], joining: string | null = null, epoch = 10): ChainConfig => ({ epoch, members, joining });

  it('removes a member whose registration is gone, head, middle or tail', () => {
    expect(nextConfig(cfg(['a', 'b', 'c']), [reg('b'), reg('c')], opts)).toEqual({ members: ['b', 'c'], joining: null });
    expect(nextConfig(cfg(['a', 'b', 'c']), [reg('a'), reg('c')], opts)).toEqual({ members: ['a', 'c'], joining: null });
    expect(nextConfig(cfg(['a', 'b', 'c']), [reg('a'), reg('b')], opts)).toEqual({ members: ['a', 'b'], joining: null });
  });

  it('never removes the last member holding everything committed', () => {
    expect(nextConfig(cfg(['a', 'b']), [], opts)).toBeNull();
    // d was appended (caught up in epoch 8) and has not synced as a member yet: not alone.
    expect(nextConfig(cfg(['a', 'd']), [reg('d', { caughtUpEpoch: 8 })], opts)).toBeNull();
    expect(nextConfig(cfg(['a', 'd']), [reg('d', { caughtUpEpoch: 8, syncedEpoch: 9 })], opts)).toEqual({ members: ['d'], joining: null });
  });

  it('brings in one joiner at a time and appends it once caught up in this epoch', () => {
    expect(nextConfig(cfg(['a', 'b']), [reg('a'), reg('b'), reg('d'), reg('c')], opts)).toEqual({ members: ['a', 'b'], joining: 'c' });
    expect(nextConfig(cfg(['a', 'b'], 'c'), [reg('a'), reg('b'), reg('c', { caughtUpEpoch: 9 })], opts)).toBeNull();
    expect(nextConfig(cfg(['a', 'b'], 'c'), [reg('a'), reg('b'), reg('c', { caughtUpEpoch: 10 })], opts)).toEqual({ members: ['a', 'b', 'c'], joining: null });
    // Not while a member is removed in the same step: the joiner must catch up with the new tail.
    expect(nextConfig(cfg(['a', 'b'], 'c'), [reg('a'), reg('c', { caughtUpEpoch: 10 })], opts)).toEqual({ members: ['a'], joining: 'c' });
    expect(nextConfig(cfg(['a', 'b', 'c']), [reg('a'), reg('b'), reg('c'), reg('d')], opts)).toBeNull(); // full
  });

  it('a new epoch for a member that registered anew (its lease had lapsed)', () => {
    expect(nextConfig(cfg(['a', 'b']), [reg('a'), reg('b', { createRevision: 11 })], opts)).toEqual({ members: ['a', 'b'], joining: null });
    expect(nextConfig(cfg(['a', 'b']), [reg('a'), reg('b', { createRevision: 9 })], opts)).toBeNull();
  });

  it('bootstraps from the registered nodes', () => {
    expect(nextConfig(null, [reg('b'), reg('a')], { membersMax: 3, bootstrapMembers: 2 })).toEqual({ members: ['a', 'b'], joining: null });
    expect(nextConfig(null, [reg('b')], { membersMax: 3, bootstrapMembers: 2 })).toBeNull();
  });
});
