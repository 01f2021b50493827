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

/**
 * Turns a connection's bytes into its hello (optional) and its messages; any breach of the
 * format or a limit is a FrameError (the caller closes the connection and calls `close()`, which
 * returns a reservation still held).
 */
export class MessageReader {
  private readonly frames: FrameReader;
  private helloPending: boolean;
  private partial: { buf: Uint8Array; filled: number } | null = null;
  /** Messages begun in pieces so far (a new one restarts the caller's timer). */
  begun = 0;

  constructor(
    private readonly budget: AssemblyBudget,
    opts: { hello: boolean },
  ) {
    this.helloPending = opts.hello;
    this.frames = new FrameReader(opts.hello ? CHAIN_HELLO_BYTES_MAX : CHAIN_FRAME_BYTES_MAX);
  }

  /** Whether a message is under way in pieces (its reservation held). */
  get assembling(): boolean {
    return this.partial !== null;
  }

  /** Feeds bytes; returns the hello (first, if expected) and every message now whole. */
  push(chunk: Uint8Array): { hello: Uint8Array | null; messages: Uint8Array[] } {
    let hello: Uint8Array | null = null;
    const messages: Uint8Array[] = [];
    this.frames.feed(chunk);
    for (let f = this.frames.next(); f; f = this.frames.next()) {
      if (this.helloPending) {
        this.helloPending = false;
        this.frames.maxFrame = CHAIN_FRAME_BYTES_MAX;
        hello = f;
        continue;
      }
      const m = this.frame(f);
      if (m) messages.push(m);
    }
    return { hello, messages };
  }

  private frame(f: Uint8Array): Uint8Array | null {
    const kind = f[0];
    if (kind === WHOLE) {
      if (this.partial) throw new FrameError('a whole message inside a message in pieces');
      if (f.length < 2) throw new FrameError('an empty message');
      return f.subarray(1);
    }
    if (kind === FIRST) {
      if (this.partial) throw new FrameError('a message begins inside another');
      if (f.length < 6) throw new FrameError('a short first piece');
      const total = new DataView(f.buffer, f.byteOffset + 1, 4).getUint32(0, true);
      const piece = f.subarray(5);
      if (total <= CHAIN_PIECE_BYTES || total > CHAIN_MESSAGE_BYTES_MAX) throw new FrameError(`a message in pieces of ${total} bytes (${CHAIN_PIECE_BYTES + 1}..${CHAIN_MESSAGE_BYTES_MAX})`);
      if (piece.length === 0 || piece.length >= total) throw new FrameError(`a first piece of ${piece.length} of ${total} bytes`);
      if (!this.budget.take(total)) throw new FrameError(`no room for a message of ${total} bytes (${this.budget.used} of ${this.budget.max} held)`);
      const buf = new Uint8Array(total);
      buf.set(piece, 0);
      this.partial = { buf, filled: piece.length };
      this.begun++;
      return null;
    }
    if (kind === MORE) {
      const p = this.partial;
      if (!p) throw new FrameError('a piece of no message');
      const piece = f.subarray(1);
      if (piece.length === 0 || p.filled + piece.length > p.buf.length) throw new FrameError('a piece beyond the announced size');
      p.buf.set(piece, p.filled);
      p.filled += piece.length;
      if (p.filled < p.buf.length) return null;
      this.partial = null;
      this.budget.give(p.buf.length);
      return p.buf;
    }
    throw new FrameError(`unknown frame kind ${kind}`);
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

/** Writes one message (in pieces if large, without copying it); returns the bytes queued. */
export function writeMessage(socket: Socket, body: Uint8Array): number {
  let n = 0;
  socket.cork();
  for (const part of messageParts(body)) {
    socket.write(part);
    n += part.length;
  }
  socket.uncork();
  return n;
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
