/**
 * Streamed, resumable snapshots between members (issue 11 item 3). The Raft core stays as it
 * is: a leader's core emits one snapshot message and later sees the follower's answer; a
 * follower's core receives one snapshot message. In between, this layer — a Transport wrapper
 * around the peer transport — moves the state itself, as etcd streams its db file beside
 * raft's message:
 *
 * Sender (the leader's member): a snapshot message for a follower opens a read view of the
 * state machine's backend at the message's index (an LMDB read transaction: consistent,
 * whatever is applied meanwhile) and streams it as chunks of records (SNAPSHOT_CHUNK_BYTES)
 * over the member channel, one chunk per event-loop turn (so the Ready loop and client
 * requests go on between chunks), with at most SNAPSHOT_INFLIGHT_CHUNKS_MAX chunks /
 * SNAPSHOT_INFLIGHT_BYTES_MAX bytes sent and not yet acknowledged. The core re-sends its
 * snapshot message while the stream runs: the running stream is kept, not restarted.
 *
 * Receiver (the follower's member): each chunk is checked (its SHA-256, its size, records
 * well formed and in key order, the stream's identity) and written to a staging backend in
 * `<data-dir>/member/snap-recv/<id>/` in one durable commit, then recorded in that directory's
 * manifest, and only then acknowledged: an ack says "I hold every chunk below `next`".
 * After a dropped connection, or a restart of the receiver (the manifest is read back), the
 * sender goes on from the receiver's `next` — not from zero. When the last chunk arrives and
 * the whole image's digest matches, the core is handed one snapshot message whose data names
 * the stream (StreamedImage); applying it (KvStateMachine.restore) checks the staged store and
 * installs it atomically (Backend.adopt: a rename). Anything wrong in a chunk refuses the
 * stream (logged, the partial removed, the sender told), nothing is installed. A partial that
 * receives nothing for SNAPSHOT_PARTIAL_ABANDON_MS is removed.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Backend, BackendReadView } from '../kv/backend.js';
import { backendEntryProblem } from '../kv/mvcc.js';
import { streamedImage, STREAM_ID_PATTERN } from '../kv/state-machine.js';
import type { Transport } from '../node/node.js';
import type { Logger } from '../raft/config.js';
import { silentLogger } from '../raft/config.js';
import type { Message } from '../raft/messages.js';
import type { Index, NodeId, SnapshotMeta } from '../raft/types.js';
import type { MemberChannel } from '../transport/tcp.js';
import {
  decodeStreamFrame,
  encodeAck,
  encodeChunk,
  imageDigest,
  isStreamFrame,
  readMeta,
  readRecords,
  RecordWriter,
  sha256,
  SNAPSHOT_CHUNK_BYTES,
  SNAPSHOT_IMAGE_BYTES_MAX,
  STREAM_ID_BYTES,
  StreamFrameError,
  type AckFrame,
  type AckStatus,
  type ChunkFrame,
} from './snapshot-stream-codec.js';

/** Chunks sent and not yet acknowledged, per stream (flow control over the peer transport). */
export const SNAPSHOT_INFLIGHT_CHUNKS_MAX = 4;
/** Bytes of chunks sent and not yet acknowledged, per stream (at least one chunk is always allowed). */
export const SNAPSHOT_INFLIGHT_BYTES_MAX = 4 * SNAPSHOT_CHUNK_BYTES;
/** No acknowledgement progress for this long: the chunks in flight are taken as lost and sent again from the receiver's last ack (ms). */
export const SNAPSHOT_ACK_TIMEOUT_MS = 2_000;
/** No acknowledgement progress at all for this long: the stream is abandoned and its read view closed (ms). */
export const SNAPSHOT_SEND_IDLE_MS = 60_000;
/**
 * How long the leader waits for a follower's answer after the stream's last progress (a chunk
 * acknowledged, or the image received whole) before it sends the snapshot again (ms; the core's
 * snapshotRetryTicks, counted from each progress report). Installing a large image takes
 * seconds on a loaded machine; a stream that stalls is the sender's own to handle
 * (SNAPSHOT_ACK_TIMEOUT_MS, SNAPSHOT_SEND_IDLE_MS).
 */
export const SNAPSHOT_ANSWER_WAIT_MS = 10_000;
/** Snapshot streams a member sends at once (one per follower at most); a snapshot message beyond is dropped (the core retries). */
export const SNAPSHOT_SENDS_MAX = 4;
/** A partial snapshot that receives no chunk for this long is removed (ms). */
export const SNAPSHOT_PARTIAL_ABANDON_MS = 10 * 60_000;
/** Reading a chunk from the view yields to the event loop after this long, and goes on at the next turn (ms). */
export const SNAPSHOT_SLICE_MS = 5;
/** A chunk that could not be queued (no connection yet, a full queue) is tried again after this (ms). */
const SNAPSHOT_RETRY_MS = 100;
/** An ack that could not be queued is tried this many times (SNAPSHOT_RETRY_MS apart). */
const ACK_RETRIES = 10;

/** Tests and benchmarks watch the streams through these (must not throw). */
export interface SnapshotStreamObserver {
  /** Chunk `seq` of stream `id` was queued for `to`. */
  chunkSent?(to: NodeId, id: string, seq: number, bytes: number): void;
  /** The receiver of stream `id` acknowledged every chunk below `next`. */
  acked?(to: NodeId, id: string, next: number): void;
  /** The sender goes back to chunk `seq` (the receiver's ack after a loss or a restart). */
  resumed?(to: NodeId, id: string, seq: number): void;
  /** A stream to `to` ended: 'done', 'refused' (by the receiver), 'abandoned' or 'replaced'. */
  sendEnded?(to: NodeId, id: string, how: 'done' | 'refused' | 'abandoned' | 'replaced', bytes: number, ms: number): void;
  /** Chunk `seq` of stream `id` from `from` was stored durably. */
  chunkStored?(from: NodeId, id: string, seq: number): void;
  /** The receiver refused a chunk (and the stream with it). */
  refused?(from: NodeId, id: string, reason: string): void;
  /** A stream was received whole and handed to the core. */
  received?(from: NodeId, id: string, index: Index, bytes: number): void;
}

export interface SnapshotStreamOptions {
  /** This member's Raft id. */
  readonly id: NodeId;
  /** A consistent view of the state at `index` (KvStateMachine.snapshotView). */
  readonly openView: (index: Index) => BackendReadView;
  /** The receive area (`<data-dir>/member/snap-recv`). */
  readonly receiveDir: string;
  /** Opens (creating) a staging backend at `path`, of the kind the state machine's backend adopts. */
  readonly openStaging: (path: string) => Backend;
  readonly logger?: Logger;
  readonly observer?: SnapshotStreamObserver;
  /**
   * A stream to `to` made progress (a chunk acknowledged, or the image received whole): the
   * core's snapshot retry waits from now (RaftNode.snapshotProgress).
   */
  readonly onProgress?: (to: NodeId) => void;
  /** A stream to `to` was refused by the receiver or abandoned: the core may send another at once (RaftNode.snapshotFailed). */
  readonly onFailed?: (to: NodeId) => void;
  /** Limits, for tests (defaults: the constants above). */
  readonly chunkBytes?: number;
  readonly inflightChunksMax?: number;
  readonly inflightBytesMax?: number;
  readonly ackTimeoutMs?: number;
  readonly sendIdleMs?: number;
  readonly partialAbandonMs?: number;
  readonly imageBytesMax?: number;
}

// ---------------------------------------------------------------------------------------------
// Sender
// ---------------------------------------------------------------------------------------------

interface Send {
  readonly id: string;
  readonly to: NodeId;
  /** The leader's term the snapshot message was sent in (the receiver's core checks it). */
  readonly term: number;
  readonly meta: SnapshotMeta;
  readonly view: BackendReadView;
  readonly startedAt: number;
  /** Every chunk below this one is durably held by the receiver. */
  acked: number;
  /** The next chunk to send. */
  next: number;
  /** The key after which each chunk not yet acknowledged starts (chunk 0: from the first key). */
  readonly starts: Map<number, Uint8Array | undefined>;
  /** Bytes of each chunk sent and not acknowledged. */
  readonly inflight: Map<number, number>;
  /** Each chunk's digest, by seq (chunks are the same bytes every time they are produced). */
  readonly digests: Uint8Array[];
  /** Payload bytes of each chunk produced, by seq. */
  readonly sizes: number[];
  /** The last chunk's seq, once the view's end was reached. */
  lastSeq: number | null;
  /** The view's iterator, positioned to produce chunk `iterSeq`, with one entry looked ahead. */
  iter: Iterator<[Uint8Array, Uint8Array]> | null;
  iterSeq: number;
  peeked: IteratorResult<[Uint8Array, Uint8Array]> | null;
  /** The chunk being read from the view (over several event-loop turns when it is slow to read). */
  building: { seq: number; writer: RecordWriter; lastKey: Uint8Array | undefined } | null;
  /** When the receiver last acknowledged progress (the idle limit counts from here). */
  lastAckAt: number;
  /** When the ack timeout counts from: the last progress or the last rewind. */
  waitingSince: number;
  timer: { cancel(): void } | null;
  ended: boolean;
}

// ---------------------------------------------------------------------------------------------
// Receiver
// ---------------------------------------------------------------------------------------------

/** What the receive area's manifest records of a partial snapshot (rewritten after every chunk). */
interface Manifest {
  readonly id: string;
  readonly from: NodeId;
  readonly term: number;
  readonly index: Index;
  /** Hex SHA-256 of each chunk stored, in order. */
  readonly digests: string[];
  bytes: number;
  /** Hex of the last key stored (keys must ascend across the whole image). */
  lastKey: string;
  /** Set once the last chunk arrived and the image digest matched. */
  meta: SnapshotMeta | null;
}

interface Receive {
  manifest: Manifest;
  staging: Backend;
  readonly dir: string;
  lastChunkAt: number;
  /** The `next` a rewind ack was last sent for (one rewind per gap). */
  rewoundAt: number;
}

const MANIFEST = 'manifest.json';

/**
 * The peer transport with snapshots streamed: Raft messages and member frames pass through to
 * `inner`, except snapshot messages (streamed by the sender here) and stream frames (handled
 * here). See the file comment.
 */
export class SnapshotStreamTransport implements Transport, MemberChannel {
  readonly streamsSnapshots = true;
  private readonly log: Logger;
  private readonly sends = new Map<NodeId, Send>();
  private receiving: Receive | null = null;
  /**
   * A stream received whole and handed to the core, not yet taken (takeStreamed) when a newer
   * stream began: kept beside the new one, so the install of the snapshot the core already has
   * still finds its image (two snapshots arriving close together). One is kept: a third stream
   * replaces it.
   */
  private completed: Receive | null = null;
  private raftReceiver: (m: Message) => void = () => {};
  private memberReceiver: (from: NodeId, body: Uint8Array) => void = () => {};
  private closed = false;
  private ackRetry: { cancel(): void } | null = null;
  private readonly abandonTimer: NodeJS.Timeout;
  private readonly chunkBytes: number;
  private readonly inflightChunksMax: number;
  private readonly inflightBytesMax: number;
  private readonly ackTimeoutMs: number;
  private readonly sendIdleMs: number;
  private readonly partialAbandonMs: number;
  private readonly imageBytesMax: number;

  constructor(
    private readonly inner: Transport & MemberChannel,
    private readonly o: SnapshotStreamOptions,
  ) {
    this.log = o.logger ?? silentLogger;
    this.chunkBytes = o.chunkBytes ?? SNAPSHOT_CHUNK_BYTES;
    this.inflightChunksMax = o.inflightChunksMax ?? SNAPSHOT_INFLIGHT_CHUNKS_MAX;
    this.inflightBytesMax = o.inflightBytesMax ?? SNAPSHOT_INFLIGHT_BYTES_MAX;
    this.ackTimeoutMs = o.ackTimeoutMs ?? SNAPSHOT_ACK_TIMEOUT_MS;
    this.sendIdleMs = o.sendIdleMs ?? SNAPSHOT_SEND_IDLE_MS;
    this.partialAbandonMs = o.partialAbandonMs ?? SNAPSHOT_PARTIAL_ABANDON_MS;
    this.imageBytesMax = o.imageBytesMax ?? SNAPSHOT_IMAGE_BYTES_MAX;
    inner.onMember((from, body) => {
      if (!isStreamFrame(body)) return this.memberReceiver(from, body);
      this.onStreamFrame(from, body);
    });
    this.recoverPartial();
    this.abandonTimer = setInterval(() => this.expirePartial(), Math.max(1000, Math.min(60_000, this.partialAbandonMs / 4)));
    this.abandonTimer.unref();
  }

  // --- Transport and MemberChannel ---------------------------------------------------------

  send(messages: readonly Message[]): void {
    if (this.closed) return;
    let rest: Message[] | null = null;
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!;
      if (m.type !== 'snapshot') {
        rest?.push(m);
        continue;
      }
      rest ??= messages.slice(0, i);
      this.startSend(m);
    }
    this.inner.send(rest ?? messages);
  }

  listen(receive: (m: Message) => void): void {
    this.raftReceiver = receive;
    this.inner.listen(receive);
  }

  sendMember(to: NodeId, body: Uint8Array): boolean {
    return this.inner.sendMember(to, body);
  }

  onMember(receive: (from: NodeId, body: Uint8Array) => void): void {
    this.memberReceiver = receive;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.abandonTimer);
    this.ackRetry?.cancel();
    for (const s of [...this.sends.values()]) this.endSend(s, 'abandoned');
    const r = this.receiving;
    const done = this.completed;
    this.receiving = null;
    this.completed = null;
    await this.inner.close();
    // The partial stays on disk for the next start to resume (a complete one kept beside it is
    // removed then: the core asks for a snapshot again after a restart).
    if (r) await r.staging.close();
    if (done) await done.staging.close();
  }

  /** Stops every stream this member sends (it stopped leading: the new leader sends its own). */
  abortSends(): void {
    for (const s of [...this.sends.values()]) this.endSend(s, 'abandoned');
  }

  /** Streams being sent, by follower (tests, metrics). */
  get activeSends(): number {
    return this.sends.size;
  }

  // --- Sending -------------------------------------------------------------------------------

  private startSend(m: Extract<Message, { type: 'snapshot' }>): void {
    const running = this.sends.get(m.to);
    // The core sends its snapshot message again while a stream runs (its retry): keep the stream.
    if (running && running.term === m.term) return;
    if (running) this.endSend(running, 'replaced');
    if (this.sends.size >= SNAPSHOT_SENDS_MAX) {
      this.log.warn(`${this.o.id} not streaming a snapshot to ${m.to}: ${this.sends.size} streams are running (SNAPSHOT_SENDS_MAX)`);
      return;
    }
    const view = this.o.openView(m.snapshot.meta.index);
    const now = performance.now();
    const s: Send = {
      id: randomBytes(STREAM_ID_BYTES).toString('hex'),
      to: m.to,
      term: m.term,
      meta: m.snapshot.meta,
      view,
      startedAt: now,
      acked: 0,
      next: 0,
      starts: new Map([[0, undefined]]),
      inflight: new Map(),
      digests: [],
      sizes: [],
      lastSeq: null,
      iter: null,
      iterSeq: -1,
      peeked: null,
      building: null,
      lastAckAt: now,
      waitingSince: now,
      timer: null,
      ended: false,
    };
    this.sends.set(m.to, s);
    this.log.info(`${this.o.id} streaming snapshot ${s.id} [index: ${s.meta.index}, term: ${s.meta.term}] to ${m.to}`);
    this.schedule(s);
  }

  private endSend(s: Send, how: 'done' | 'refused' | 'abandoned' | 'replaced'): void {
    if (s.ended) return;
    s.ended = true;
    s.timer?.cancel();
    s.view.close();
    if (this.sends.get(s.to) === s) this.sends.delete(s.to);
    const bytes = s.sizes.reduce((a, b) => a + b, 0);
    const ms = performance.now() - s.startedAt;
    this.o.observer?.sendEnded?.(s.to, s.id, how, bytes, ms);
    if (how === 'refused' || how === 'abandoned') this.o.onFailed?.(s.to);
    const what = `${this.o.id} snapshot ${s.id} to ${s.to}`;
    if (how === 'done') this.log.info(`${what}: sent, ${bytes} bytes in ${s.sizes.length} chunks, ${Math.round(ms)} ms (${(bytes / 1e6 / Math.max(ms / 1000, 1e-3)).toFixed(1)} MB/s)`);
    else this.log.warn(`${what}: ${how} after chunk ${s.acked} of ${s.lastSeq === null ? '?' : s.lastSeq + 1}`);
  }

  /** Sends what the window allows, one chunk per event-loop turn; arms the ack timer. */
  private pump(s: Send): void {
    if (s.ended || this.closed) return;
    s.timer?.cancel();
    s.timer = null;
    const now = performance.now();
    if (now - s.lastAckAt > this.sendIdleMs) return this.endSend(s, 'abandoned');
    if (s.next > s.acked && now - s.waitingSince > this.ackTimeoutMs) {
      // Nothing acknowledged for a while: what is in flight is lost (a dropped connection, a
      // restarted receiver). Sent again from the last chunk the receiver holds.
      this.rewind(s, s.acked);
      s.waitingSince = now;
    }
    const inflightBytes = [...s.inflight.values()].reduce((a, b) => a + b, 0);
    const windowOpen = s.inflight.size < this.inflightChunksMax && (s.inflight.size === 0 || inflightBytes < this.inflightBytesMax);
    if (windowOpen && (s.lastSeq === null || s.next <= s.lastSeq)) {
      const frame = this.produce(s, s.next);
      // Not read whole within SNAPSHOT_SLICE_MS: go on at the next turn.
      if (!frame) return this.schedule(s);
      if (!this.inner.sendMember(s.to, frame)) {
        s.timer = after(SNAPSHOT_RETRY_MS, () => this.pump(s));
        return;
      }
      this.o.observer?.chunkSent?.(s.to, s.id, s.next, s.sizes[s.next]!);
      s.inflight.set(s.next, s.sizes[s.next]!);
      s.next++;
      // Yield between chunks: the Ready loop, the peers' messages and clients run in between.
      return this.schedule(s);
    }
    // Window full or everything sent: wait for acks (or time out).
    s.timer = after(Math.max(50, this.ackTimeoutMs / 4), () => this.pump(s));
  }

  private rewind(s: Send, to: number): void {
    if (to >= s.next) return;
    this.o.observer?.resumed?.(s.to, s.id, to);
    this.log.info(`${this.o.id} snapshot ${s.id} to ${s.to}: resuming from chunk ${to}`);
    s.next = to;
    s.building = null;
    for (const seq of [...s.inflight.keys()]) if (seq >= to) s.inflight.delete(seq);
  }

  /**
   * Chunk `seq` as a frame, read from the view — or null when SNAPSHOT_SLICE_MS went by first
   * (the next call goes on where this one stopped). A chunk ends after the record that fills
   * it to chunkBytes, whatever the time: chunks are the same bytes each time they are read
   * (one read transaction), so a chunk sent again matches what the receiver may already hold.
   */
  private produce(s: Send, seq: number): Uint8Array | null {
    if (s.building?.seq !== seq || s.iterSeq !== seq || !s.iter) {
      s.iter = s.view.entries(s.starts.get(seq));
      s.peeked = s.iter.next();
      s.iterSeq = seq;
      s.building = { seq, writer: new RecordWriter(), lastKey: undefined };
    }
    const b = s.building;
    const w = b.writer;
    const until = performance.now() + SNAPSHOT_SLICE_MS;
    let n = 0;
    while (!s.peeked!.done && w.bytes < this.chunkBytes) {
      const [k, v] = s.peeked!.value;
      w.add(k, v);
      b.lastKey = k;
      s.peeked = s.iter.next();
      // The clock is read every 64 records only.
      if ((++n & 63) === 0 && performance.now() > until) return null;
    }
    s.building = null;
    const lastKey = b.lastKey;
    const payload = w.finish();
    const digest = sha256(payload);
    s.digests[seq] = digest;
    s.sizes[seq] = payload.length;
    s.iterSeq = seq + 1;
    const isLast = s.peeked!.done === true;
    if (isLast) s.lastSeq = seq;
    else s.starts.set(seq + 1, lastKey ? Uint8Array.from(lastKey) : s.starts.get(seq));
    const base = { id: s.id, term: s.term, index: s.meta.index, seq, digest, payload };
    if (!isLast) return encodeChunk(base);
    const imageBytes = s.sizes.reduce((a, b) => a + b, 0);
    return encodeChunk({ ...base, last: { imageDigest: imageDigest(s.digests), imageBytes, meta: s.meta } });
  }

  private onAck(from: NodeId, a: AckFrame): void {
    const s = this.sends.get(from);
    if (!s || s.id !== a.id) return;
    if (a.status === 'refused') {
      this.log.warn(`${this.o.id} snapshot ${s.id} to ${from} refused by the receiver: ${a.reason}`);
      return this.endSend(s, 'refused');
    }
    if (a.status === 'done') {
      this.o.onProgress?.(from);
      return this.endSend(s, 'done');
    }
    if (a.status === 'rewind' && a.next === 0 && s.acked > 0) {
      // The receiver lost what it had acknowledged (its receive area): only a start over is possible.
      s.acked = 0;
      s.inflight.clear();
    }
    // `next` can only be a chunk we produced (or the one after the last).
    const limit = s.lastSeq === null ? s.next : s.lastSeq + 1;
    if (a.next > limit) return;
    if (a.next > s.acked) {
      for (let seq = s.acked; seq < a.next; seq++) {
        s.inflight.delete(seq);
        if (seq > 0) s.starts.delete(seq);
      }
      s.acked = a.next;
      s.lastAckAt = s.waitingSince = performance.now();
      this.o.observer?.acked?.(from, s.id, s.acked);
      this.o.onProgress?.(from);
      if (s.next < s.acked) s.next = s.acked;
    }
    if (a.status === 'rewind') this.rewind(s, a.next);
    this.schedule(s);
  }

  /** Pumps `s` on the next event-loop turn (never more than one chunk per turn). */
  private schedule(s: Send): void {
    if (s.ended) return;
    s.timer?.cancel();
    const i = setImmediate(() => this.pump(s));
    s.timer = { cancel: () => clearImmediate(i) };
  }

  // --- Receiving -----------------------------------------------------------------------------

  private onStreamFrame(from: NodeId, body: Uint8Array): void {
    if (this.closed) return;
    let f;
    try {
      f = decodeStreamFrame(body);
    } catch (e) {
      // An undecodable frame names no stream we can trust: refuse what we are receiving from that member.
      const why = e instanceof StreamFrameError ? e.message : String(e);
      const r = this.receiving;
      if (r && r.manifest.from === from) this.refuse(from, r.manifest.id, `undecodable chunk: ${why}`);
      else this.log.warn(`${this.o.id} dropped a snapshot stream frame from ${from}: ${why}`);
      return;
    }
    if (f.type === 'ack') return this.onAck(from, f);
    this.onChunk(from, f);
  }

  /**
   * Acknowledges to the sender. Our connection to it may not be up yet (a restarted member's
   * first ack): the latest ack is tried again a few times before the sender's ack timeout.
   */
  private ack(to: NodeId, id: string, next: number, status: AckStatus, reason = ''): void {
    this.ackRetry?.cancel();
    this.ackRetry = null;
    const body = encodeAck({ id, next, status, reason });
    let tries = 0;
    const attempt = (): void => {
      this.ackRetry = null;
      if (this.closed || this.inner.sendMember(to, body) || ++tries >= ACK_RETRIES) return;
      this.ackRetry = after(SNAPSHOT_RETRY_MS, attempt);
    };
    attempt();
  }

  /** Refuses stream `id` from `from`: logged, its partial (if it is ours) removed, the sender told. */
  private refuse(from: NodeId, id: string, reason: string): void {
    this.log.warn(`${this.o.id} refused snapshot ${id} from ${from}: ${reason}`);
    this.o.observer?.refused?.(from, id, reason);
    if (this.receiving?.manifest.id === id && this.receiving.manifest.from === from) this.dropPartial();
    this.ack(from, id, 0, 'refused', reason);
  }

  private onChunk(from: NodeId, c: ChunkFrame): void {
    const done = this.completed;
    if (done && done.manifest.id === c.id && done.manifest.from === from) return this.complete(done);
    let r = this.receiving;
    if (!r || r.manifest.id !== c.id) {
      if (c.seq !== 0 && r) return this.refuse(from, c.id, `a chunk of an unknown snapshot stream (receiving ${r.manifest.id})`);
      if (c.seq !== 0) {
        // Nothing kept of it (its first chunk was lost, or our receive area was): from the start.
        this.log.info(`${this.o.id} has nothing of snapshot ${c.id} from ${from}: asking for it from chunk 0`);
        return this.ack(from, c.id, 0, 'rewind');
      }
      if (c.index < 1 || c.term < 1) return this.refuse(from, c.id, 'a stream at index or term 0');
      // A new stream (a new leader, or the old one started over) replaces a partial.
      if (r?.manifest.meta) {
        // Whole and handed to the core, perhaps being installed: kept until taken or replaced.
        if (this.completed) this.dropStaged(this.completed, `snapshot ${r.manifest.id} completed after it`);
        this.completed = r;
        this.receiving = null;
      } else if (r) {
        this.log.info(`${this.o.id} dropping partial snapshot ${r.manifest.id} from ${r.manifest.from}: snapshot ${c.id} from ${from} replaces it`);
        this.dropPartial();
      }
      r = this.startPartial(from, c);
      if (!r) return;
    }
    const m = r.manifest;
    if (m.from !== from) return this.refuse(from, c.id, `the stream comes from member ${m.from}`);
    if (m.term !== c.term || m.index !== c.index) return this.refuse(from, c.id, `a chunk at [index: ${c.index}, term: ${c.term}] in a stream at [index: ${m.index}, term: ${m.term}]`);
    const next = m.digests.length;
    r.lastChunkAt = Date.now();
    if (m.meta) return this.complete(r);
    if (c.seq < next) return this.ack(from, m.id, next, 'receiving');
    if (c.seq > next) {
      // A gap: chunks were lost (a dropped connection). One rewind per gap.
      if (r.rewoundAt !== next) {
        r.rewoundAt = next;
        this.ack(from, m.id, next, 'rewind');
      }
      return;
    }
    const digest = sha256(c.payload);
    if (!Buffer.from(digest).equals(Buffer.from(c.digest))) return this.refuse(from, m.id, `chunk ${c.seq}: checksum mismatch (SHA-256 of the payload differs from the chunk's)`);
    if (m.bytes + c.payload.length > this.imageBytesMax) return this.refuse(from, m.id, `the image exceeds ${this.imageBytesMax} bytes (SNAPSHOT_IMAGE_BYTES_MAX)`);
    let lastKey = m.lastKey === '' ? null : Buffer.from(m.lastKey, 'hex');
    try {
      // Every record is checked before any of the chunk is written.
      const records: [Uint8Array, Uint8Array][] = [];
      for (const [k, v] of readRecords(c.payload)) {
        if (lastKey && Buffer.compare(Buffer.from(k.buffer, k.byteOffset, k.byteLength), lastKey) <= 0) throw new StreamFrameError(`chunk ${c.seq}: keys not ascending`);
        const problem = backendEntryProblem(k, v);
        if (problem) throw new StreamFrameError(`chunk ${c.seq}: ${problem}`);
        lastKey = Buffer.from(k);
        records.push([k, v]);
      }
      for (const [k, v] of records) r.staging.put(k, v);
      // Durable before it is acknowledged: the chunk, then the manifest that lists it.
      r.staging.commit();
    } catch (e) {
      if (e instanceof StreamFrameError) return this.refuse(from, m.id, e.message);
      throw e;
    }
    if (c.last) {
      const digests = [...m.digests.map((d) => Buffer.from(d, 'hex')), digest];
      if (!Buffer.from(imageDigest(digests)).equals(Buffer.from(c.last.imageDigest))) return this.refuse(from, m.id, 'the image digest does not match its chunks');
      if (c.last.imageBytes !== m.bytes + c.payload.length) return this.refuse(from, m.id, `the image is ${m.bytes + c.payload.length} bytes, its last chunk says ${c.last.imageBytes}`);
      if (c.last.meta.index !== m.index) return this.refuse(from, m.id, 'the metadata names another index');
    }
    m.digests.push(Buffer.from(digest).toString('hex'));
    m.bytes += c.payload.length;
    if (lastKey) m.lastKey = lastKey.toString('hex');
    if (c.last) m.meta = c.last.meta;
    writeManifest(r.dir, m);
    this.o.observer?.chunkStored?.(from, m.id, c.seq);
    if (m.meta) return this.complete(r);
    this.ack(from, m.id, m.digests.length, 'receiving');
  }

  /** The whole image is here: the sender is told, the core gets the snapshot message (again, if asked again). */
  private complete(r: Receive): void {
    const m = r.manifest;
    this.ack(m.from, m.id, m.digests.length, 'done');
    this.log.info(`${this.o.id} received snapshot ${m.id} [index: ${m.index}, term: ${m.meta!.term}] from ${m.from}: ${m.bytes} bytes in ${m.digests.length} chunks`);
    this.o.observer?.received?.(m.from, m.id, m.index, m.bytes);
    this.raftReceiver({ type: 'snapshot', from: m.from, to: this.o.id, term: m.term, snapshot: { meta: m.meta!, data: streamedImage(m.index, m.id) } });
  }

  private startPartial(from: NodeId, c: ChunkFrame): Receive | null {
    const dir = join(this.o.receiveDir, c.id);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const manifest: Manifest = { id: c.id, from, term: c.term, index: c.index, digests: [], bytes: 0, lastKey: '', meta: null };
    writeManifest(dir, manifest);
    const staging = this.o.openStaging(join(dir, 'db'));
    this.receiving = { manifest, staging, dir, lastChunkAt: Date.now(), rewoundAt: -1 };
    this.log.info(`${this.o.id} receiving snapshot ${c.id} [index: ${c.index}] from ${from}`);
    return this.receiving;
  }

  /** Removes the partial being received (its files once its staging backend is closed). */
  private dropPartial(): void {
    const r = this.receiving;
    if (!r) return;
    this.receiving = null;
    rmSync(join(r.dir, MANIFEST), { force: true });
    void r.staging.close().finally(() => rmSync(r.dir, { recursive: true, force: true }));
  }

  /** Removes a complete stream that was never taken (a newer one completed after it). */
  private dropStaged(r: Receive, why: string): void {
    if (this.completed === r) this.completed = null;
    this.log.info(`${this.o.id} dropping received snapshot ${r.manifest.id} from ${r.manifest.from}, never installed: ${why}`);
    rmSync(join(r.dir, MANIFEST), { force: true });
    void r.staging.close().finally(() => rmSync(r.dir, { recursive: true, force: true }));
  }

  private expirePartial(): void {
    const r = this.receiving;
    if (r && Date.now() - r.lastChunkAt > this.partialAbandonMs) {
      this.log.info(`${this.o.id} removing partial snapshot ${r.manifest.id} from ${r.manifest.from}: nothing received for ${this.partialAbandonMs} ms`);
      this.dropPartial();
    }
  }

  /**
   * At start: the partial a previous run was receiving (its manifest and staging backend), to
   * resume; anything else in the receive area (a refused or replaced stream, a manifest that
   * does not read back) is removed.
   */
  private recoverPartial(): void {
    mkdirSync(this.o.receiveDir, { recursive: true });
    for (const name of readdirSync(this.o.receiveDir)) {
      const dir = join(this.o.receiveDir, name);
      const m = STREAM_ID_PATTERN.test(name) && !this.receiving ? readManifest(dir, name) : null;
      if (!m || !existsSync(join(dir, 'db'))) {
        rmSync(dir, { recursive: true, force: true });
        continue;
      }
      const staging = this.o.openStaging(join(dir, 'db'));
      this.receiving = { manifest: m, staging, dir, lastChunkAt: Date.now(), rewoundAt: -1 };
      this.log.info(`${this.o.id} kept partial snapshot ${m.id} [index: ${m.index}] from ${m.from}: ${m.digests.length} chunks, ${m.bytes} bytes${m.meta ? ' (complete)' : ''}`);
    }
  }

  /**
   * The staging backend of the complete stream `id` at `index`, for KvStateMachine.restore to
   * install (KvStateMachine.setStreamedSnapshots); null if there is none. The receive area is
   * cleaned up right after (the staged database was renamed into place, or was refused).
   */
  takeStreamed(id: string, index: Index): Backend | null {
    const matches = (x: Receive | null): x is Receive => x !== null && x.manifest.id === id && x.manifest.index === index && x.manifest.meta !== null;
    let r: Receive;
    if (matches(this.completed)) {
      r = this.completed;
      this.completed = null;
    } else if (matches(this.receiving)) {
      r = this.receiving;
      this.receiving = null;
      // A complete one kept from before is older than the one installed: no longer needed.
      if (this.completed) this.dropStaged(this.completed, `snapshot ${id} installed after it`);
    } else return null;
    setImmediate(() => {
      rmSync(join(r.dir, MANIFEST), { force: true });
      void r.staging.close().catch(() => {}).finally(() => rmSync(r.dir, { recursive: true, force: true }));
    });
    return r.staging;
  }
}

function after(ms: number, fn: () => void): { cancel(): void } {
  const t = setTimeout(fn, ms);
  return { cancel: () => clearTimeout(t) };
}

function writeManifest(dir: string, m: Manifest): void {
  const tmp = join(dir, `${MANIFEST}.tmp`);
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, JSON.stringify(m));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  // No directory sync: a rename lost in a crash leaves the previous manifest, which lists fewer
  // chunks; those after it are sent and written again (the same records: harmless).
  renameSync(tmp, join(dir, MANIFEST));
}

/** A manifest this member wrote (read back with checks all the same: a file can hold anything); null if unreadable. */
function readManifest(dir: string, id: string): Manifest | null {
  try {
    const o = JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8')) as Record<string, unknown>;
    const int = (v: unknown, min: number): number => {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw new Error('bad number');
      return v;
    };
    if (o.id !== id) return null;
    const digests = o.digests;
    if (!Array.isArray(digests) || !digests.every((d) => typeof d === 'string' && /^[0-9a-f]{64}$/.test(d))) return null;
    if (typeof o.lastKey !== 'string' || !/^([0-9a-f]{2})*$/.test(o.lastKey)) return null;
    const meta = o.meta === null ? null : readMeta(JSON.stringify(o.meta));
    return { id, from: int(o.from, 1), term: int(o.term, 1), index: int(o.index, 1), digests: digests as string[], bytes: int(o.bytes, 0), lastKey: o.lastKey, meta };
  } catch {
    return null;
  }
}
