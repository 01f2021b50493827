/**
 * The chain's framing on TCP. A connection starts with one hello frame ([u32 length][hello], at
 * most CHAIN_HELLO_BYTES_MAX); after it every frame is [u32 length][kind][...] of at most
 * CHAIN_FRAME_BYTES_MAX, and a message (a peer message, a client request or reply: up to
 * CHAIN_MESSAGE_BYTES_MAX, a 64 MiB value and its envelope) travels in one or more frames:
 *
 *   kind 0 | message                   a whole message (small ones)
 *   kind 1 | u32 total | first piece   a message of `total` bytes begins
 *   kind 2 | piece                     the next piece of it (the last one completes it)
 *
 * So a large value streams in pieces of CHAIN_PIECE_BYTES, and what a receiver holds for
 * messages not yet whole is bounded: a message announces its size before its bytes, the receiver
 * reserves it from its process's AssemblyBudget (CHAIN_ASSEMBLY_BYTES_MAX across all
 * connections) or closes the connection, and the message must complete within
 * CHAIN_ASSEMBLY_TIMEOUT_MS (a sender that trickles bytes holds its reservation no longer).
 */
import type { Socket } from 'node:net';
import { ByteReader, ByteWriter } from '../lib/bytes.js';
import { FrameError, FrameReader } from '../transport/codec.js';
import { CHAIN_MESSAGE_BYTES_MAX, CHAIN_NAME_BYTES_MAX, ChainCodecError } from '../chain/codec.js';

/** The first frame of a connection (who it is) is at most this long. */
export const CHAIN_HELLO_BYTES_MAX = 1024;
/** Bytes of a message carried by one frame. */
export const CHAIN_PIECE_BYTES = 1024 * 1024;
/** Largest frame after the hello: one piece and its header. */
export const CHAIN_FRAME_BYTES_MAX = CHAIN_PIECE_BYTES + 16;
/** Bytes one process holds at most for messages still arriving in pieces (all connections). */
export const CHAIN_ASSEMBLY_BYTES_MAX = 512 * 1024 * 1024;
/** A message sent in pieces must be whole within this time of its first piece. */
export const CHAIN_ASSEMBLY_TIMEOUT_MS = 60_000;
/** A connection on which nothing was sent or received for this long is closed. */
export const CHAIN_IDLE_TIMEOUT_MS = 120_000;

const WHOLE = 0;
const FIRST = 1;
const MORE = 2;

/**
 * The frames that carry `body`, as the bytes to write in order: a frame's header, then its piece
 * (a view of `body`, not a copy), and so on. One frame for a small message, pieces for a large one.
 */
export function messageParts(body: Uint8Array): Uint8Array[] {
  if (body.length === 0 || body.length > CHAIN_MESSAGE_BYTES_MAX) throw new FrameError(`a message of ${body.length} bytes (1..${CHAIN_MESSAGE_BYTES_MAX})`);
  if (body.length <= CHAIN_PIECE_BYTES) return [frameHead(WHOLE, null, body.length), body];
  const out: Uint8Array[] = [];
  for (let at = 0; at < body.length; at += CHAIN_PIECE_BYTES) {
    const piece = body.subarray(at, at + CHAIN_PIECE_BYTES);
    out.push(at === 0 ? frameHead(FIRST, body.length, piece.length) : frameHead(MORE, null, piece.length), piece);
  }
  return out;
}

function frameHead(kind: number, total: number | null, pieceBytes: number): Buffer {
  const head = total === null ? 1 : 5;
  const b = Buffer.allocUnsafe(4 + head);
  b.writeUInt32LE(head + pieceBytes, 0);
  b[4] = kind;
  if (total !== null) b.writeUInt32LE(total, 5);
  return b;
}

/** What all of one process's connections hold for messages still arriving in pieces. */
export class AssemblyBudget {
  used = 0;
  constructor(readonly max = CHAIN_ASSEMBLY_BYTES_MAX) {}
  take(n: number): boolean {
    if (this.used + n > this.max) return false;
    this.used += n;
    return true;
  }
  give(n: number): void {
    this.used -= n;
  }
}

/** What one frame after the hello carries: a whole message, or a piece of one in pieces. */
export type MessagePart =
  | { readonly type: 'whole'; readonly body: Uint8Array }
  /** The first piece of a message of `total` bytes. */
  | { readonly type: 'first'; readonly total: number; readonly piece: Uint8Array }
  /** The next piece; `last`: it completes the message. */
  | { readonly type: 'more'; readonly piece: Uint8Array; readonly last: boolean };

/**
 * The frames of a connection (after its hello) as message parts, every rule of the format
 * checked: a message in pieces announces 1 MiB + 1 .. CHAIN_MESSAGE_BYTES_MAX bytes, its pieces
 * are non-empty and never go beyond it, and no message begins inside another. MessageReader
 * assembles the parts; a streaming reader (ChainClient.getStream) hands the pieces on as they come.
 */
export class PartReader {
  private readonly frames: FrameReader;
  private helloPending: boolean;
  /** The message under way in pieces: its size and the bytes of it seen so far. */
  private underway: { total: number; seen: number } | null = null;

  constructor(opts: { hello: boolean }) {
    this.helloPending = opts.hello;
    this.frames = new FrameReader(opts.hello ? CHAIN_HELLO_BYTES_MAX : CHAIN_FRAME_BYTES_MAX);
  }

  /** Whether a message is under way in pieces. */
  get inPieces(): boolean {
    return this.underway !== null;
  }

  /** Feeds bytes; returns the hello (first, if expected) and the parts now whole. */
  push(chunk: Uint8Array): { hello: Uint8Array | null; parts: MessagePart[] } {
    let hello: Uint8Array | null = null;
    const parts: MessagePart[] = [];
    this.frames.feed(chunk);
    for (let f = this.frames.next(); f; f = this.frames.next()) {
      if (this.helloPending) {
        this.helloPending = false;
        this.frames.maxFrame = CHAIN_FRAME_BYTES_MAX;
        hello = f;
        continue;
      }
      parts.push(this.part(f));
    }
    return { hello, parts };
  }

  private part(f: Uint8Array): MessagePart {
    const kind = f[0];
    if (kind === WHOLE) {
      if (this.underway) throw new FrameError('a whole message inside a message in pieces');
      if (f.length < 2) throw new FrameError('an empty message');
      return { type: 'whole', body: f.subarray(1) };
    }
    if (kind === FIRST) {
      if (this.underway) throw new FrameError('a message begins inside another');
      if (f.length < 6) throw new FrameError('a short first piece');
      const total = new DataView(f.buffer, f.byteOffset + 1, 4).getUint32(0, true);
      const piece = f.subarray(5);
      if (total <= CHAIN_PIECE_BYTES || total > CHAIN_MESSAGE_BYTES_MAX) throw new FrameError(`a message in pieces of ${total} bytes (${CHAIN_PIECE_BYTES + 1}..${CHAIN_MESSAGE_BYTES_MAX})`);
      if (piece.length === 0 || piece.length >= total) throw new FrameError(`a first piece of ${piece.length} of ${total} bytes`);
      this.underway = { total, seen: piece.length };
      return { type: 'first', total, piece };
    }
    if (kind === MORE) {
      const u = this.underway;
      if (!u) throw new FrameError('a piece of no message');
      const piece = f.subarray(1);
      if (piece.length === 0 || u.seen + piece.length > u.total) throw new FrameError('a piece beyond the announced size');
      u.seen += piece.length;
      const last = u.seen === u.total;
      if (last) this.underway = null;
      return { type: 'more', piece, last };
    }
    throw new FrameError(`unknown frame kind ${kind}`);
  }
}

/**
 * Turns a connection's bytes into its hello (optional) and its messages; any breach of the
 * format or a limit is a FrameError (the caller closes the connection and calls `close()`, which
 * returns a reservation still held).
 */
export class MessageReader {
  private readonly parts: PartReader;
  private partial: { buf: Uint8Array; filled: number } | null = null;
  /** Messages begun in pieces so far (a new one restarts the caller's timer). */
  begun = 0;

  constructor(
    private readonly budget: AssemblyBudget,
    opts: { hello: boolean },
  ) {
    this.parts = new PartReader(opts);
  }

  /** Whether a message is under way in pieces (its reservation held). */
  get assembling(): boolean {
    return this.partial !== null;
  }

  /** Feeds bytes; returns the hello (first, if expected) and every message now whole. */
  push(chunk: Uint8Array): { hello: Uint8Array | null; messages: Uint8Array[] } {
    const { hello, parts } = this.parts.push(chunk);
    const messages: Uint8Array[] = [];
    for (const p of parts) {
      const m = this.part(p);
      if (m) messages.push(m);
    }
    return { hello, messages };
  }

  private part(p: MessagePart): Uint8Array | null {
    if (p.type === 'whole') return p.body;
    if (p.type === 'first') {
      if (!this.budget.take(p.total)) throw new FrameError(`no room for a message of ${p.total} bytes (${this.budget.used} of ${this.budget.max} held)`);
      const buf = new Uint8Array(p.total);
      buf.set(p.piece, 0);
      this.partial = { buf, filled: p.piece.length };
      this.begun++;
      return null;
    }
    const m = this.partial!;
    m.buf.set(p.piece, m.filled);
    m.filled += p.piece.length;
    if (!p.last) return null;
    this.partial = null;
    this.budget.give(m.buf.length);
    return m.buf;
  }

  /** Returns a reservation still held (the connection closed mid-message). */
  close(): void {
    if (this.partial) this.budget.give(this.partial.buf.length);
    this.partial = null;
  }
}

/**
 * Reads a socket's hello and messages (MessageReader), closing it on any breach, on a message in
 * pieces not whole within CHAIN_ASSEMBLY_TIMEOUT_MS, and (with `idleMs`) when idle that long. A
 * handler that throws closes the connection too.
 */
export function readMessages(
  socket: Socket,
  budget: AssemblyBudget,
  opts: { hello: boolean; idleMs?: number; assemblyTimeoutMs?: number },
  handle: (body: Uint8Array, isHello: boolean) => void,
): void {
  const reader = new MessageReader(budget, { hello: opts.hello });
  let assemblyTimer: NodeJS.Timeout | null = null;
  let timedFor = 0;
  const stopTimer = (): void => {
    if (assemblyTimer) clearTimeout(assemblyTimer);
    assemblyTimer = null;
  };
  if (opts.idleMs !== undefined) socket.setTimeout(opts.idleMs, () => socket.destroy());
  socket.on('close', () => {
    stopTimer();
    reader.close();
  });
  socket.on('data', (chunk: Buffer) => {
    try {
      const { hello, messages } = reader.push(chunk);
      if (hello) handle(hello, true);
      for (const m of messages) handle(m, false);
      if (!reader.assembling) stopTimer();
      else if (timedFor !== reader.begun) {
        // The message now under way (the one before it may have completed in the same chunk).
        stopTimer();
        timedFor = reader.begun;
        assemblyTimer = setTimeout(() => socket.destroy(), opts.assemblyTimeoutMs ?? CHAIN_ASSEMBLY_TIMEOUT_MS);
      }
    } catch {
      socket.destroy();
    }
  });
}

/** The connection closed while writeMessageFrom was writing (the caller matches on the class, never on the text). */
export class ConnectionClosedError extends Error {
  override name = 'ConnectionClosedError';
  constructor() {
    super('connection closed');
  }
}

/**
 * Writes one message whose first `head.length` bytes are `head` and whose other `bodyBytes`
 * come from `body` as it yields them, in pieces of at most CHAIN_PIECE_BYTES, waiting for the
 * socket to drain whenever it asks to: the sender holds a piece or so of the message, not all
 * of it (ChainClient.putStream: a 64 MiB value from a file). Throws if `body` yields more or
 * fewer bytes than announced; the message is then incomplete, and the caller must close the
 * socket (the receiver drops what it began).
 */
export async function writeMessageFrom(socket: Socket, head: Uint8Array, body: AsyncIterable<Uint8Array>, bodyBytes: number): Promise<void> {
  const total = head.length + bodyBytes;
  if (head.length === 0 || total > CHAIN_MESSAGE_BYTES_MAX) throw new FrameError(`a message of ${total} bytes (1..${CHAIN_MESSAGE_BYTES_MAX})`);
  let seen = 0;
  const tooMany = (): FrameError => new FrameError(`the value has more than the ${bodyBytes} bytes announced`);
  if (total <= CHAIN_PIECE_BYTES) {
    // Small: one whole frame (a message in pieces must be larger than one piece).
    const all = new Uint8Array(total);
    all.set(head, 0);
    for await (const c of body) {
      if (seen + c.length > bodyBytes) throw tooMany();
      all.set(c, head.length + seen);
      seen += c.length;
    }
    if (seen !== bodyBytes) throw new FrameError(`the value ended after ${seen} of the ${bodyBytes} bytes announced`);
    writeMessage(socket, all);
    return;
  }
  const write = async (parts: Uint8Array[]): Promise<void> => {
    if (socket.destroyed) throw new ConnectionClosedError();
    let ok = true;
    for (const p of parts) ok = socket.write(p);
    if (ok) return;
    await new Promise<void>((resolve, reject) => {
      const done = (e?: Error): void => {
        socket.off('drain', onDrain);
        socket.off('close', onClose);
        if (e) reject(e);
        else resolve();
      };
      const onDrain = (): void => done();
      const onClose = (): void => done(new ConnectionClosedError());
      socket.on('drain', onDrain);
      socket.on('close', onClose);
    });
  };
  await write([frameHead(FIRST, total, head.length), head]);
  for await (const c of body) {
    if (seen + c.length > bodyBytes) throw tooMany();
    for (let at = 0; at < c.length; at += CHAIN_PIECE_BYTES) {
      const piece = c.subarray(at, at + CHAIN_PIECE_BYTES);
      await write([frameHead(MORE, null, piece.length), piece]);
    }
    seen += c.length;
  }
  if (seen !== bodyBytes) throw new FrameError(`the value ended after ${seen} of the ${bodyBytes} bytes announced`);
}

/**
 * Writes one message made of `head` and then `tail` without copying either when it goes in
 * pieces: the head is a first piece of its own, the tail's pieces are views of it (a node
 * answering a read of a 64 MiB value). Returns the bytes queued.
 */
export function writeMessageOf(socket: Socket, head: Uint8Array, tail: Uint8Array): number {
  if (head.length === 0) throw new FrameError('a message with an empty head');
  return writeMessageParts(socket, [head, tail]);
}

/**
 * Writes one message made of `parts` in order, without copying them when it goes in pieces
 * (messageFramesOf). Returns the bytes queued.
 */
export function writeMessageParts(socket: Socket, parts: readonly Uint8Array[]): number {
  return writeFrames(socket, messageFramesOf(parts));
}

/**
 * The bytes that carry one message made of `parts` in order, frame headers included (what a
 * sender queues: a bound on a queue counts these): each part's pieces (at most CHAIN_PIECE_BYTES,
 * empty parts skipped) are views of it. A small message (at most one piece) is joined into one
 * whole frame.
 */
export function messageFramesOf(parts: readonly Uint8Array[]): Uint8Array[] {
  let total = 0;
  for (const p of parts) total += p.length;
  if (total === 0 || total > CHAIN_MESSAGE_BYTES_MAX) throw new FrameError(`a message of ${total} bytes (1..${CHAIN_MESSAGE_BYTES_MAX})`);
  if (total <= CHAIN_PIECE_BYTES) {
    const all = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.length;
    }
    return messageParts(all);
  }
  // The first piece is at most CHAIN_PIECE_BYTES < total: a message in pieces, as the reader requires.
  const frames: Uint8Array[] = [];
  for (const p of parts) {
    for (let at = 0; at < p.length; at += CHAIN_PIECE_BYTES) {
      const piece = p.subarray(at, at + CHAIN_PIECE_BYTES);
      frames.push(frames.length === 0 ? frameHead(FIRST, total, piece.length) : frameHead(MORE, null, piece.length), piece);
    }
  }
  return frames;
}

/** Writes frames (messageParts, messageFramesOf) at once; returns the bytes queued. */
export function writeFrames(socket: Socket, frames: readonly Uint8Array[]): number {
  let n = 0;
  socket.cork();
  for (const f of frames) {
    socket.write(f);
    n += f.length;
  }
  socket.uncork();
  return n;
}

/** Writes one message (in pieces if large, without copying it); returns the bytes queued. */
export function writeMessage(socket: Socket, body: Uint8Array): number {
  return writeFrames(socket, messageParts(body));
}

// ---- the hello -----------------------------------------------------------------------------

export type Role = 'peer' | 'client';

export function encodeHello(role: Role, chain: string, name: string): Uint8Array {
  const w = new ByteWriter(32);
  w.u8(role === 'peer' ? 1 : 2);
  w.str(chain);
  w.str(name);
  return w.written();
}

export function decodeHello(b: Uint8Array): { role: Role; chain: string; name: string } {
  const r = new ByteReader(b, (m) => new ChainCodecError(`hello: ${m}`));
  const tag = r.u8();
  if (tag !== 1 && tag !== 2) throw new ChainCodecError(`hello: unknown role ${tag}`);
  const chain = r.str();
  const name = r.str();
  r.end();
  if (name.length === 0 || name.length > CHAIN_NAME_BYTES_MAX) throw new ChainCodecError('hello: bad name');
  return { role: tag === 1 ? 'peer' : 'client', chain, name };
}

/** The hello frame: [u32 length][hello]. */
export function helloFrame(role: Role, chain: string, name: string): Buffer {
  const body = encodeHello(role, chain, name);
  const b = Buffer.allocUnsafe(4 + body.length);
  b.writeUInt32LE(body.length, 0);
  b.set(body, 4);
  return b;
}
