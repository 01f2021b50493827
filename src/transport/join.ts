/**
 * The join query on the peer port: a member started with --initial-cluster-state existing and
 * no data knows only the peer URLs of --initial-cluster and the cluster token; it asks a
 * member there for the cluster as it is now (ids, Raft ids, peer URLs), finds itself in it by
 * its peer URLs, and then waits for the leader to contact it (etcd's joining member asks the
 * same of its peers' /members endpoint). The query is answered before any handshake, only
 * when it names the cluster's token; the answer is opaque here (the server builds and reads
 * it) and then the connection is closed.
 *
 *   query  = kind 33 | magic "FLOT" | version:u8 | token (u16 length + UTF-8)
 *   answer = kind 34 | opaque bytes (at most JOIN_ANSWER_BYTES_MAX)
 */
import { connect, isIP } from 'node:net';
import { connect as tlsConnect, type SecureContext } from 'node:tls';
import { FrameReader, HANDSHAKE_FRAME_BYTES_MAX, PROTOCOL_VERSION } from './codec.js';

export const JOIN_QUERY_KIND = 33;
export const JOIN_ANSWER_KIND = 34;
const MAGIC = 0x464c4f54;
/** Largest join answer accepted (the member table of a cluster is far smaller). */
export const JOIN_ANSWER_BYTES_MAX = 1 << 20;
/** A join query unanswered this long fails (ms). */
export const JOIN_QUERY_TIMEOUT_MS = 5_000;

function frame(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length, true);
  out.set(body, 4);
  return out;
}

export function encodeJoinQuery(token: string): Uint8Array {
  const t = new TextEncoder().encode(token);
  const body = new Uint8Array(8 + t.length);
  const v = new DataView(body.buffer);
  v.setUint8(0, JOIN_QUERY_KIND);
  v.setUint32(1, MAGIC, true);
  v.setUint8(5, PROTOCOL_VERSION);
  v.setUint16(6, t.length, true);
  body.set(t, 8);
  return frame(body);
}

/** The token of a join query body; null when the body is not one (then it may be a handshake). */
export function decodeJoinQuery(body: Uint8Array): string | null {
  if (body.length < 8 || body[0] !== JOIN_QUERY_KIND) return null;
  const v = new DataView(body.buffer, body.byteOffset, body.byteLength);
  if (v.getUint32(1, true) !== MAGIC || v.getUint8(5) !== PROTOCOL_VERSION) return null;
  const n = v.getUint16(6, true);
  if (body.length !== 8 + n) return null;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(body.subarray(8));
  } catch {
    return null;
  }
}

export function encodeJoinAnswer(answer: Uint8Array): Uint8Array {
  const body = new Uint8Array(1 + answer.length);
  body[0] = JOIN_ANSWER_KIND;
  body.set(answer, 1);
  return frame(body);
}

/**
 * Asks the member at host:port for the cluster; resolves with its answer, or null (refused,
 * closed, malformed, or no answer within the timeout).
 */
/** How to reach a member whose peer URL is https:// (this member's peer certificate, as its Raft connections use). */
export interface JoinTls {
  readonly secureContext: SecureContext;
  /** Verify the member's certificate (false with --peer-auto-tls, as the Raft connections). */
  readonly rejectUnauthorized: boolean;
}

export function queryJoin(host: string, port: number, token: string, timeoutMs = JOIN_QUERY_TIMEOUT_MS, tls?: JoinTls): Promise<Uint8Array | null> {
  const query = encodeJoinQuery(token);
  if (query.length - 4 > HANDSHAKE_FRAME_BYTES_MAX) return Promise.resolve(null);
  return new Promise((resolve) => {
    const s = tls
      ? tlsConnect({ host, port, secureContext: tls.secureContext, rejectUnauthorized: tls.rejectUnauthorized, ...(isIP(host) ? {} : { servername: host }) })
      : connect({ host, port });
    const reader = new FrameReader(JOIN_ANSWER_BYTES_MAX + 1);
    let done = false;
    const finish = (r: Uint8Array | null): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish(null), timeoutMs);
    s.once(tls ? 'secureConnect' : 'connect', () => s.write(query));
    s.on('data', (chunk: Buffer) => {
      try {
        reader.feed(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        const body = reader.next();
        if (body) finish(body[0] === JOIN_ANSWER_KIND ? body.slice(1) : null);
      } catch {
        finish(null);
      }
    });
    s.on('error', () => finish(null));
    s.once('close', () => finish(null));
  });
}
