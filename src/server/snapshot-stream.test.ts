/**
 * Streamed snapshots over real sockets: two peer transports (TcpTransport on loopback) with
 * SnapshotStreamTransport on each, a KvStateMachine on LMDB on each side. The sender streams
 * its store to the receiver, whose state machine installs what the stream handed its "core"
 * (this test plays the core: it restores the snapshot message it is given).
 * - cut and resumed: the connection carrying the chunks is cut mid-stream (a TCP proxy that
 *   drops its connections); the send goes on from the receiver's last chunk, not from zero;
 * - the receiver crashes mid-receive (its transport and staging closed, reopened from disk);
 *   the stream resumes from the partial it kept;
 * - hostile chunks: a bad checksum, an oversized chunk or record, a chunk of an unknown stream
 *   are refused and logged, nothing is installed and no partial is left.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LmdbBackend } from '../kv/backend-lmdb.js';
import { encodeCommand } from '../kv/commands.js';
import { KvStateMachine } from '../kv/state-machine.js';
import type { Logger } from '../raft/config.js';
import type { Message } from '../raft/messages.js';
import { TcpTransport } from '../transport/tcp.js';
import { decodeStreamFrame, encodeChunk, imageDigest, RecordWriter, sha256, SNAPSHOT_CHUNK_BYTES_MAX } from './snapshot-stream-codec.js';
import { SNAPSHOT_INFLIGHT_CHUNKS_MAX, SnapshotStreamTransport, type SnapshotStreamObserver } from './snapshot-stream.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'flotilla-snapstream-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const enc = (s: string) => new TextEncoder().encode(s);

/** A state machine on LMDB holding `keys` keys of `valueBytes` each (some overwritten, some deleted). */
function filledStore(dir: string, keys: number, valueBytes: number): KvStateMachine {
  const sm = new KvStateMachine({}, LmdbBackend.open(join(dir, 'db'), { batchIntervalMs: 0 }));
  const value = new Uint8Array(valueBytes).fill(0x61);
  let index = 0;
  const run = (c: Parameters<typeof encodeCommand>[0]) => sm.apply({ index: ++index, term: 1, type: 'normal', data: encodeCommand(c) });
  for (let i = 0; i < keys; i++) run({ op: 'put', req: { key: enc(`key-${String(i).padStart(6, '0')}`), value: value.map((b, j) => (j === 0 ? i & 255 : b)) } });
  for (let i = 0; i < keys; i += 7) run({ op: 'put', req: { key: enc(`key-${String(i).padStart(6, '0')}`), value: enc(`v2-${i}`) } });
  for (let i = 3; i < keys; i += 11) run({ op: 'deleteRange', req: { key: enc(`key-${String(i).padStart(6, '0')}`) } });
  sm.persistTo(index);
  return sm;
}

function logger(lines: string[]): Logger {
  return { debug: () => {}, info: (m) => lines.push(m), warn: (m) => lines.push(`WARN ${m}`) };
}

/** A TCP proxy to `port` whose connections can be cut (all at once) while it keeps listening. */
async function proxyTo(port: number): Promise<{ port: number; cut(): void; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((a) => {
    const b = connect({ host: '127.0.0.1', port });
    for (const s of [a, b]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        sockets.delete(s);
        a.destroy();
        b.destroy();
      });
    }
    a.pipe(b);
    b.pipe(a);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : 0,
    cut: () => {
      for (const s of sockets) s.destroy();
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

async function until(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Side {
  transport: TcpTransport;
  streams: SnapshotStreamTransport;
  sm: KvStateMachine;
  /** Snapshot messages handed to this side's "core". */
  delivered: Message[];
  log: string[];
}

const LIMITS = { chunkBytes: 16 * 1024, ackTimeoutMs: 1000 };

async function side(o: {
  id: number;
  port?: number;
  peers: Map<number, { host: string; port: number }>;
  dir: string;
  sm: KvStateMachine;
  observer?: SnapshotStreamObserver;
  log?: string[];
}): Promise<Side> {
  const log = o.log ?? [];
  const transport = await TcpTransport.start({ id: o.id, clusterId: 'snap-test', listenPort: o.port ?? 0, peers: o.peers, backoffMs: [10, 100] });
  const streams = new SnapshotStreamTransport(transport, {
    id: o.id,
    openView: (index) => o.sm.snapshotView(index),
    receiveDir: join(o.dir, 'snap-recv'),
    openStaging: (path) => LmdbBackend.open(path, { batchIntervalMs: 0, batchOpsMax: Number.MAX_SAFE_INTEGER }),
    logger: logger(log),
    ...(o.observer ? { observer: o.observer } : {}),
    ...LIMITS,
  });
  o.sm.setStreamedSnapshots((id, index) => streams.takeStreamed(id, index));
  const s: Side = { transport, streams, sm: o.sm, delivered: [], log };
  streams.listen((m) => {
    if (m.type === 'snapshot') s.delivered.push(m);
  });
  streams.onMember(() => {});
  return s;
}

function snapshotMessage(index: number): Message {
  return { type: 'snapshot', from: 1, to: 2, term: 3, snapshot: { meta: { index, term: 1, confState: { voters: [1, 2], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false } }, data: new Uint8Array(0) } };
}

/** Plays the receiver's core: installs the snapshot message it was handed. */
function install(r: Side): void {
  const m = r.delivered.at(-1)!;
  expect(m.type).toBe('snapshot');
  if (m.type !== 'snapshot') return;
  r.sm.restore(m.snapshot.data, m.snapshot.meta.index);
}

describe('streamed snapshots over TCP', () => {
  it('a snapshot send cut mid-stream resumes from the last chunk the receiver holds, and the receiver ends with the sender\'s HashKV', async () => {
    const dirA = tempDir();
    const dirB = tempDir();
    const smA = filledStore(dirA, 1500, 1024);
    const smB = new KvStateMachine({}, LmdbBackend.open(join(dirB, 'db'), { batchIntervalMs: 0 }));
    cleanups.push(async () => {
      await smA.backend.close();
      await smB.backend.close();
    });
    const sent: number[] = [];
    const resumedAt: number[] = [];
    let stored = 0;
    const ended: string[] = [];
    let acked = 0;
    let overWindow = 0;
    const observer: SnapshotStreamObserver = {
      chunkSent: (_to, _id, seq) => {
        sent.push(seq);
        // Flow control: never more than the window ahead of what the receiver acknowledged.
        if (seq >= acked + SNAPSHOT_INFLIGHT_CHUNKS_MAX) overWindow++;
      },
      acked: (_to, _id, next) => (acked = next),
      resumed: (_to, _id, seq) => resumedAt.push(seq),
      chunkStored: () => stored++,
      sendEnded: (_to, _id, how) => ended.push(how),
    };
    // B listens first; A reaches B through a proxy that the test cuts.
    const b = await side({ id: 2, peers: new Map(), dir: dirB, sm: smB, observer });
    const proxy = await proxyTo(b.transport.port);
    cleanups.push(() => proxy.close());
    const a = await side({ id: 1, peers: new Map([[2, { host: '127.0.0.1', port: proxy.port }]]), dir: dirA, sm: smA, observer });
    b.transport.setPeer(1, { host: '127.0.0.1', port: a.transport.port });
    cleanups.push(async () => {
      await a.streams.close();
      await b.streams.close();
    });

    a.streams.send([snapshotMessage(smA.appliedIndex)]);
    await until('some chunks stored', () => stored >= 20);
    proxy.cut();
    const storedAtCut = stored;
    const sentBeforeCut = sent.length;
    const resumesBeforeCut = resumedAt.length;
    await until('the snapshot delivered', () => b.delivered.length > 0);
    await until('the send ended', () => ended.length > 0);
    expect(ended).toEqual(['done']);
    expect(overWindow).toBe(0);

    // Resumed after the cut from the last chunk the receiver acknowledged (its acks trail what it
    // stored by at most the window), never from zero.
    const resumedAfter = resumedAt.slice(resumesBeforeCut);
    const sentAfter = sent.slice(sentBeforeCut);
    expect(resumedAfter.length).toBeGreaterThan(0);
    expect(Math.min(...resumedAfter)).toBeGreaterThanOrEqual(Math.max(1, storedAtCut - SNAPSHOT_INFLIGHT_CHUNKS_MAX));
    expect(sentAfter).not.toContain(0);
    const chunks = Math.max(...sent) + 1;
    expect(chunks).toBeGreaterThan(40);
    // After the cut, only the chunks the receiver did not hold, and those in flight at each rewind, went out.
    expect(sentAfter.length).toBeLessThanOrEqual(chunks - storedAtCut + SNAPSHOT_INFLIGHT_CHUNKS_MAX * (resumedAfter.length + 1));

    install(b);
    expect(smB.store.hashKv()).toEqual(smA.store.hashKv());
    expect(smB.appliedIndex).toBe(smA.appliedIndex);
    // The receive area is cleaned once the image is installed.
    await until('the receive area emptied', () => readdirSync(join(dirB, 'snap-recv')).length === 0);
  }, 60_000);

  it('a receiver that crashes mid-receive keeps its partial and resumes from it after a restart', async () => {
    const dirA = tempDir();
    const dirB = tempDir();
    const smA = filledStore(dirA, 1200, 1024);
    let smB = new KvStateMachine({}, LmdbBackend.open(join(dirB, 'db'), { batchIntervalMs: 0 }));
    const sent: number[] = [];
    const resumedAt: number[] = [];
    let stored = 0;
    const observer: SnapshotStreamObserver = { chunkSent: (_to, _id, seq) => sent.push(seq), resumed: (_to, _id, seq) => resumedAt.push(seq), chunkStored: () => stored++ };
    let b = await side({ id: 2, peers: new Map(), dir: dirB, sm: smB, observer });
    const portB = b.transport.port;
    const a = await side({ id: 1, peers: new Map([[2, { host: '127.0.0.1', port: portB }]]), dir: dirA, sm: smA, observer });
    b.transport.setPeer(1, { host: '127.0.0.1', port: a.transport.port });
    cleanups.push(async () => {
      await a.streams.close();
      await b.streams.close();
      await smA.backend.close();
      await smB.backend.close();
    });

    a.streams.send([snapshotMessage(smA.appliedIndex)]);
    await until('some chunks stored', () => stored >= 15);
    // The receiver dies: its transport and state machine go away; its data dir stays.
    await b.streams.close();
    await (smB.backend as LmdbBackend).abandon();
    const heldAtCrash = stored;
    const resumesBeforeCrash = resumedAt.length;
    const sentBeforeCrash = sent.length;
    const log: string[] = [];
    smB = new KvStateMachine({}, LmdbBackend.open(join(dirB, 'db'), { batchIntervalMs: 0 }));
    b = await side({ id: 2, port: portB, peers: new Map([[1, { host: '127.0.0.1', port: a.transport.port }]]), dir: dirB, sm: smB, observer, log });
    expect(log.some((l) => /kept partial snapshot [0-9a-f]{32} \[index: \d+\] from 1: \d+ chunks/.test(l))).toBe(true);

    await until('the snapshot delivered', () => b.delivered.length > 0);
    const resumedAfter = resumedAt.slice(resumesBeforeCrash);
    expect(resumedAfter.length).toBeGreaterThan(0);
    expect(Math.min(...resumedAfter)).toBeGreaterThanOrEqual(Math.max(1, heldAtCrash - SNAPSHOT_INFLIGHT_CHUNKS_MAX));
    expect(sent.slice(sentBeforeCrash)).not.toContain(0);
    install(b);
    expect(smB.store.hashKv()).toEqual(smA.store.hashKv());
  }, 60_000);

  it('a streamed snapshot persisted but not installed before a crash is installed at restart', async () => {
    const dirA = tempDir();
    const dirB = tempDir();
    const smA = filledStore(dirA, 300, 512);
    let smB = new KvStateMachine({}, LmdbBackend.open(join(dirB, 'db'), { batchIntervalMs: 0 }));
    let b = await side({ id: 2, peers: new Map(), dir: dirB, sm: smB });
    const a = await side({ id: 1, peers: new Map([[2, { host: '127.0.0.1', port: b.transport.port }]]), dir: dirA, sm: smA });
    b.transport.setPeer(1, { host: '127.0.0.1', port: a.transport.port });
    cleanups.push(async () => {
      await a.streams.close();
      await b.streams.close();
      await smA.backend.close();
      await smB.backend.close();
    });
    a.streams.send([snapshotMessage(smA.appliedIndex)]);
    await until('the snapshot delivered', () => b.delivered.length > 0);
    const m = b.delivered[0]!;
    // The core persisted the snapshot message (its image names the stream), then the member died.
    await b.streams.close();
    await (smB.backend as LmdbBackend).abandon();
    smB = new KvStateMachine({}, LmdbBackend.open(join(dirB, 'db'), { batchIntervalMs: 0 }));
    b = await side({ id: 2, peers: new Map(), dir: dirB, sm: smB });
    if (m.type !== 'snapshot') throw new Error('expected a snapshot');
    // What RaftNode.start does with a snapshot ahead of the state machine.
    smB.restore(m.snapshot.data, m.snapshot.meta.index);
    expect(smB.store.hashKv()).toEqual(smA.store.hashKv());
    // Installed once: a second restore of the same image changes nothing.
    smB.restore(m.snapshot.data, m.snapshot.meta.index);
    expect(smB.store.hashKv()).toEqual(smA.store.hashKv());
  }, 60_000);
});

describe('hostile snapshot chunks', () => {
  /** A receiver (id 2) and a raw peer (id 1) that sends crafted stream frames over the member channel. */
  async function receiver(opts: { imageBytesMax?: number; partialAbandonMs?: number } = {}) {
    const dir = tempDir();
    const sm = new KvStateMachine({}, LmdbBackend.open(join(dir, 'db'), { batchIntervalMs: 0 }));
    const log: string[] = [];
    const refused: string[] = [];
    const transport = await TcpTransport.start({ id: 2, clusterId: 'snap-test', peers: new Map(), backoffMs: [10, 100] });
    const streams = new SnapshotStreamTransport(transport, {
      id: 2,
      openView: (index) => sm.snapshotView(index),
      receiveDir: join(dir, 'snap-recv'),
      openStaging: (path) => LmdbBackend.open(path, { batchIntervalMs: 0 }),
      logger: logger(log),
      observer: { refused: (_from, _id, reason) => refused.push(reason) },
      ...(opts.imageBytesMax ? { imageBytesMax: opts.imageBytesMax } : {}),
      ...(opts.partialAbandonMs ? { partialAbandonMs: opts.partialAbandonMs } : {}),
    });
    const delivered: Message[] = [];
    streams.listen((m) => delivered.push(m));
    streams.onMember(() => {});
    const acks: Uint8Array[] = [];
    const peer = await TcpTransport.start({ id: 1, clusterId: 'snap-test', peers: new Map([[2, { host: '127.0.0.1', port: transport.port }]]), backoffMs: [10, 100] });
    transport.setPeer(1, { host: '127.0.0.1', port: peer.port });
    peer.onMember((_from, body) => acks.push(body));
    cleanups.push(async () => {
      await streams.close();
      await peer.close();
      await sm.backend.close();
    });
    const send = async (body: Uint8Array) => {
      await until('the peer connected', () => peer.sendMember(2, body));
    };
    const peer3 = await TcpTransport.start({ id: 3, clusterId: 'snap-test', peers: new Map([[2, { host: '127.0.0.1', port: transport.port }]]), backoffMs: [10, 100] });
    transport.setPeer(3, { host: '127.0.0.1', port: peer3.port });
    cleanups.push(() => peer3.close());
    const sendFrom3 = async (body: Uint8Array) => {
      await until('member 3 connected', () => peer3.sendMember(2, body));
    };
    const hash0 = sm.store.hashKv();
    return {
      dir,
      streams,
      delivered,
      log,
      refused,
      acks,
      send,
      sendFrom3,
      /** Nothing installed, nothing delivered, no partial left. */
      expectNothing: async () => {
        await until('the partial removed', () => !existsSync(join(dir, 'snap-recv')) || readdirSync(join(dir, 'snap-recv')).length === 0);
        expect(delivered).toEqual([]);
        expect(sm.store.hashKv()).toEqual(hash0);
        expect(sm.appliedIndex).toBe(0);
      },
    };
  }

  const ID = 'ab'.repeat(16);
  const META = { index: 5, term: 2, confState: { voters: [1, 2], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false } };
  function payload(records: [string, Uint8Array][]): Uint8Array {
    const w = new RecordWriter();
    for (const [k, v] of records) w.add(Uint8Array.from(Buffer.from(k, 'latin1')), v);
    return w.finish();
  }
  const good = payload([['mapplied', new Uint8Array(8)], ['mrev', new Uint8Array(8)]]);

  it('a chunk whose checksum does not match is refused and logged; nothing is installed', async () => {
    const r = await receiver();
    const bad = sha256(good);
    bad[0]! ^= 1;
    await r.send(encodeChunk({ id: ID, term: 2, index: 5, seq: 0, digest: bad, payload: good, last: { imageDigest: imageDigest([sha256(good)]), imageBytes: good.length, meta: META } }));
    await until('the refusal', () => r.refused.length > 0);
    expect(r.refused[0]).toMatch(/checksum mismatch/);
    expect(r.log.some((l) => l.startsWith(`WARN 2 refused snapshot ${ID} from 1: chunk 0: checksum mismatch`))).toBe(true);
    await r.expectNothing();
  });

  it('oversized chunks and records, and an image over its bound, are refused before they are kept', async () => {
    const r = await receiver({ imageBytesMax: 100 });
    // A chunk header claiming more than SNAPSHOT_CHUNK_BYTES_MAX (refused before the payload is copied).
    const frame = encodeChunk({ id: ID, term: 2, index: 5, seq: 0, digest: sha256(good), payload: good });
    const at = 2 + 16 + 8 + 8 + 4 + 1 + 32;
    new DataView(frame.buffer, frame.byteOffset).setUint32(at, SNAPSHOT_CHUNK_BYTES_MAX + 1, true);
    // The partial of another stream from the same peer is refused with it; here there is none yet.
    await r.send(frame);
    await until('the oversized chunk dropped', () => r.log.some((l) => l.includes(`exceeds the limit of ${SNAPSHOT_CHUNK_BYTES_MAX}`)));
    // A record that claims a value larger than SNAPSHOT_RECORD_BYTES_MAX.
    const rec = new Uint8Array(6 + 4);
    new DataView(rec.buffer).setUint16(0, 4, true);
    new DataView(rec.buffer).setUint32(2, 0xffffffff, true);
    await r.send(encodeChunk({ id: ID, term: 2, index: 5, seq: 0, digest: sha256(rec), payload: rec }));
    await until('the oversized record refused', () => r.refused.some((x) => /SNAPSHOT_RECORD_BYTES_MAX/.test(x)));
    // An image larger than the receiver takes.
    const big = payload([['mbig', new Uint8Array(200)]]);
    await r.send(encodeChunk({ id: 'cd'.repeat(16), term: 2, index: 5, seq: 0, digest: sha256(big), payload: big }));
    await until('the image bound', () => r.refused.some((x) => /SNAPSHOT_IMAGE_BYTES_MAX/.test(x)));
    await r.expectNothing();
  });

  it('two snapshots close together: a stream received whole and handed to the core is still installable after a newer stream begins', async () => {
    const r = await receiver();
    const last = { imageDigest: imageDigest([sha256(good)]), imageBytes: good.length, meta: META };
    await r.send(encodeChunk({ id: ID, term: 2, index: 5, seq: 0, digest: sha256(good), payload: good, last }));
    await until('the snapshot handed to the core', () => r.delivered.length === 1);
    // The next stream's first chunk arrives before the core installs the first (a member that
    // exited on 'no complete received image with that id is kept' before: the store-crash test).
    const NEXT = 'cd'.repeat(16);
    await r.send(encodeChunk({ id: NEXT, term: 2, index: 7, seq: 0, digest: sha256(good), payload: good }));
    await until('the next stream begun', () => r.log.some((l) => l.includes(`receiving snapshot ${NEXT}`)));
    // A repeated chunk of the first stream is answered as done, not asked for from the start.
    await r.send(encodeChunk({ id: ID, term: 2, index: 5, seq: 0, digest: sha256(good), payload: good, last }));
    await until('the first handed again', () => r.delivered.length === 2);
    const staged = r.streams.takeStreamed(ID, 5);
    expect(staged).not.toBeNull();
    await staged!.close();
    expect(existsSync(join(r.dir, 'snap-recv', NEXT, 'manifest.json'))).toBe(true);
    expect(r.refused).toEqual([]);
  });

  it('a partial snapshot that receives nothing for SNAPSHOT_PARTIAL_ABANDON_MS is removed', async () => {
    const r = await receiver({ partialAbandonMs: 300 });
    await r.send(encodeChunk({ id: ID, term: 2, index: 5, seq: 0, digest: sha256(good), payload: good }));
    await until('the partial kept', () => existsSync(join(r.dir, 'snap-recv', ID, 'manifest.json')));
    await until('the partial removed', () => r.log.some((l) => l.includes(`removing partial snapshot ${ID} from 1: nothing received for 300 ms`)));
    await r.expectNothing();
  });

  it('a chunk of a stream the receiver has nothing of is asked for again from chunk 0', async () => {
    const r = await receiver();
    await r.send(encodeChunk({ id: ID, term: 2, index: 5, seq: 3, digest: sha256(good), payload: good }));
    await until('the rewind ack', () => r.acks.length > 0);
    const ack = decodeStreamFrame(r.acks[0]!);
    expect(ack).toMatchObject({ type: 'ack', id: ID, next: 0, status: 'rewind' });
    expect(r.refused).toEqual([]);
    await r.expectNothing();
  });

  it('a chunk of an unknown stream, malformed records and an image whose digest does not match are refused', async () => {
    const r = await receiver();
    // While a stream is being received, chunk 3 of another one.
    await r.send(encodeChunk({ id: 'ef'.repeat(16), term: 2, index: 5, seq: 0, digest: sha256(good), payload: good }));
    await until('the first chunk stored', () => r.log.some((l) => l.includes('receiving snapshot')));
    await r.send(encodeChunk({ id: ID, term: 2, index: 5, seq: 3, digest: sha256(good), payload: good }));
    await until('the unknown stream refused', () => r.refused.some((x) => /unknown snapshot stream \(receiving efef/.test(x)));
    // A chunk of the stream being received from another member.
    await r.sendFrom3(encodeChunk({ id: 'ef'.repeat(16), term: 2, index: 5, seq: 1, digest: sha256(good), payload: good }));
    await until('the other member refused', () => r.refused.some((x) => /the stream comes from member 1/.test(x)));
    // Keys out of order.
    const unordered = payload([['mrev', new Uint8Array(8)], ['mapplied', new Uint8Array(8)]]);
    await r.send(encodeChunk({ id: ID, term: 2, index: 5, seq: 0, digest: sha256(unordered), payload: unordered }));
    await until('unordered keys refused', () => r.refused.some((x) => /keys not ascending/.test(x)));
    // A key of no kind the store has.
    const alien = payload([['zzz', new Uint8Array(1)]]);
    await r.send(encodeChunk({ id: ID, term: 2, index: 5, seq: 0, digest: sha256(alien), payload: alien }));
    await until('an alien key refused', () => r.refused.some((x) => /unknown kind/.test(x)));
    // Every chunk fine, the whole image's digest wrong.
    await r.send(encodeChunk({ id: ID, term: 2, index: 5, seq: 0, digest: sha256(good), payload: good, last: { imageDigest: new Uint8Array(32), imageBytes: good.length, meta: META } }));
    await until('the image digest refused', () => r.refused.some((x) => /image digest does not match/.test(x)));
    expect(r.log.filter((l) => l.startsWith('WARN 2 refused snapshot')).length).toBe(r.refused.length);
    await r.expectNothing();
  });
});
