/**
 * The peer port surface: random bytes, mutated handshakes (refused unless exactly valid), and
 * after a valid handshake only frames the decoder rejects. A well-formed Raft message after a
 * valid handshake would be a Byzantine peer, which Raft does not defend against (TLS between
 * members closes that door), so every post-handshake frame is checked against decodeMessage
 * here and sent only if it is rejected. Well-formed messages are sent only behind a handshake
 * with a wrong cluster id. Frame lengths up to 2^32-1 are declared (the body is never sent in
 * full past a small bound).
 *
 * Check of its own: a complete handshake frame that is not exactly valid must get the
 * connection closed by the member within PEER_REFUSE_TIMEOUT_MS.
 */
import { connect } from 'node:net';
import { rng, type Rng } from '../lib/prng.js';
import type { FaultCluster } from '../faults/cluster.js';
import type { Message } from '../raft/messages.js';
import { clusterIdOf, parseInitialCluster } from '../server/config.js';
import { decodeHandshake, decodeMessage, encodeHandshake, encodeMessage, FRAME_BYTES_MAX, PROTOCOL_VERSION } from '../transport/codec.js';
import type { FuzzInput, Surface } from './harness.js';
import { concat, inputSeed, mutate, randomBytes, type LengthField } from './mutate.js';

/** How long a member may take to close a connection whose handshake is invalid. */
export const PEER_REFUSE_TIMEOUT_MS = 3000;
/** How long other peer connections stay open before the fuzzer closes them. */
export const PEER_OPEN_MS = 100;
/** Largest part of a declared-huge frame body actually sent. */
const PARTIAL_BODY_BYTES_MAX = 64 * 1024;

interface PeerInput extends FuzzInput {
  readonly member: number;
  /** The handshake frame is complete and not exactly valid: the member must close the connection. */
  readonly mustRefuse: boolean;
}

/** Where a frame's u32 length prefix is (for length-field corruption). */
const frameLength = (b: Uint8Array): LengthField[] => (b.length >= 4 ? [{ start: 0, end: 4 }] : []);

function u32le(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0, true);
  return b;
}

function frame(body: Uint8Array): Uint8Array {
  return concat([u32le(body.length), body]);
}

const u64 = (r: Rng): number => (r.chance(0.7) ? r.int(0, 1000) : r.pick([0, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1]));

function randomMessage(r: Rng, from: number, to: number): Message {
  const base = { from, to, term: u64(r) };
  switch (r.int(0, 10)) {
    case 0:
      return { ...base, type: 'append', prevLogIndex: u64(r), prevLogTerm: u64(r), commit: u64(r), entries: Array.from({ length: r.int(0, 4) }, (_, i) => ({ term: u64(r), index: i + 1, type: r.chance(0.9) ? ('normal' as const) : ('conf' as const), data: randomBytes(r, 512) })) };
    case 1:
      return { ...base, type: 'appendResponse', index: u64(r), reject: r.chance(0.5), hintIndex: u64(r), hintTerm: u64(r) };
    case 2:
      return { ...base, type: 'heartbeat', commit: u64(r), round: r.int(0, 2 ** 31) };
    case 3:
      return { ...base, type: 'heartbeatResponse', round: r.int(0, 2 ** 31), needAppend: r.chance(0.5) };
    case 4:
      return { ...base, type: 'vote', preVote: r.chance(0.5), lastLogIndex: u64(r), lastLogTerm: u64(r), transfer: r.chance(0.5) };
    case 5:
      return { ...base, type: 'voteResponse', preVote: r.chance(0.5), reject: r.chance(0.5) };
    case 6:
      return { ...base, type: 'snapshot', snapshot: { meta: { index: u64(r), term: u64(r), confState: { voters: [1, 2, 3], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false } }, data: randomBytes(r, 1024) } };
    case 7:
      return { ...base, type: 'timeoutNow' };
    case 8:
      return { ...base, type: 'readIndex', ctx: String(r.int(0, 1e9)) };
    default:
      return { ...base, type: 'readIndexResponse', ctx: String(r.int(0, 1e9)), index: u64(r), reject: r.chance(0.5) };
  }
}

function rejected(body: Uint8Array): boolean {
  try {
    decodeMessage(body);
    return false;
  } catch {
    return true;
  }
}

export class PeerSurface implements Surface {
  readonly name = 'peer';
  readonly concurrency = 64;
  private readonly clusterId: string;
  private readonly peers: { host: string; port: number; raftId: number }[];

  constructor(
    private readonly cluster: FaultCluster,
    private readonly seed: number,
  ) {
    // The transport's cluster id is `<token>/<cluster id hex>`; the token is on every member's command line.
    const args = cluster.members[0]!.proc!.spawnargs;
    const token = args[args.indexOf('--initial-cluster-token') + 1]!;
    const initial = args[args.indexOf('--initial-cluster') + 1]!;
    const members = parseInitialCluster(initial, token);
    this.clusterId = `${token}/${clusterIdOf(members.map((m) => m.id)).toString(16)}`;
    this.peers = cluster.members.map((m) => {
      const u = new URL(m.peerUrl);
      return { host: u.hostname, port: Number(u.port), raftId: members.find((x) => x.name === m.name)!.raftId };
    });
  }

  private valid(h: { clusterId: string; from: number; to: number; version: number }, to: number): boolean {
    return h.version === PROTOCOL_VERSION && h.clusterId === this.clusterId && h.to === to;
  }

  /** Frames the decoder rejects (filtered), ending sometimes with a declared-huge partial frame. */
  private rejectedFrames(r: Rng, from: number, to: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    const n = r.int(1, 6);
    for (let i = 0; i < n; i++) {
      for (let tries = 0; tries < 20; tries++) {
        const body = r.chance(0.2) ? randomBytes(r, 1024) : mutate(r, encodeMessage(randomMessage(r, from, to)).subarray(4), { maxBytes: 1 << 20 });
        if (body.length > 0 && rejected(body)) {
          out.push(frame(body));
          break;
        }
      }
    }
    if (r.chance(0.3)) {
      // A frame header declaring a length up to 2^32-1, and part of a body.
      const len = r.chance(0.5) ? r.pick([FRAME_BYTES_MAX, FRAME_BYTES_MAX + 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32 - 2]) : r.int(1, 2 ** 32);
      out.push(concat([u32le(len), randomBytes(r, Math.min(len - 1, PARTIAL_BODY_BYTES_MAX))]));
    }
    return out;
  }

  make(index: number): PeerInput {
    const r = rng(inputSeed(this.seed, 3, index));
    const member = r.int(0, this.peers.length);
    const to = this.peers[member]!.raftId;
    const from = r.pick([...this.peers.map((p) => p.raftId).filter((id) => id !== to), 0, 99, 2 ** 32 - 1]);
    const goodHandshake = encodeHandshake({ clusterId: this.clusterId, from, to, version: PROTOCOL_VERSION });
    const x = r.next();
    let parts: Uint8Array[];
    let kind: string;
    let mustRefuse = false;
    if (x < 0.15) {
      kind = 'random';
      parts = [randomBytes(r, 8192)];
      // Random bytes that happen to form a complete frame are a complete (invalid) handshake.
      mustRefuse = completeInvalidHandshake(parts[0]!, (h) => this.valid(h, to));
      if (validHandshakeLength(parts[0]!, (h) => this.valid(h, to)) > 0) parts = [goodHandshake];
    } else if (x < 0.45) {
      kind = 'mutated handshake';
      const hs = mutate(r, goodHandshake, { lengths: frameLength, other: encodeHandshake({ clusterId: 'other', from: to, to: from, version: 2 }) });
      parts = [hs];
      mustRefuse = completeInvalidHandshake(hs, (h) => this.valid(h, to));
      const validLen = validHandshakeLength(hs, (h) => this.valid(h, to));
      // Still exactly valid (e.g. another sender id): what follows must be frames the decoder rejects.
      if (validLen > 0) parts = [hs.subarray(0, validLen), ...this.rejectedFrames(r, from, to)];
    } else if (x < 0.85) {
      kind = 'handshake + rejected frames';
      parts = [goodHandshake, ...this.rejectedFrames(r, from, to)];
    } else {
      kind = r.chance(0.5) ? 'wrong cluster id + forged messages' : 'wrong member id + forged messages';
      const hs = kind.startsWith('wrong cluster')
        ? encodeHandshake({ clusterId: r.chance(0.5) ? `${this.clusterId}x` : r.pick(['', 'faults', this.clusterId.split('/')[0]!]), from, to, version: PROTOCOL_VERSION })
        : encodeHandshake({ clusterId: this.clusterId, from, to: r.pick([0, 4, 99, 2 ** 32 - 1]), version: PROTOCOL_VERSION });
      parts = [hs, ...Array.from({ length: r.int(1, 5) }, () => encodeMessage(randomMessage(r, from, to)))];
      mustRefuse = true;
    }
    return { index, label: `-> ${this.cluster.members[member]!.name} peer port: ${kind}${mustRefuse ? ' (must be refused)' : ''}`, bytes: concat(parts), member, mustRefuse };
  }

  run(input: FuzzInput): Promise<string | null> {
    const x = input as PeerInput;
    const p = this.peers[x.member]!;
    return new Promise((resolve) => {
      const s = connect({ host: p.host, port: p.port });
      s.setNoDelay(true);
      let closedByUs = false;
      const timer = setTimeout(() => {
        closedByUs = true;
        s.destroy();
      }, x.mustRefuse ? PEER_REFUSE_TIMEOUT_MS : PEER_OPEN_MS);
      s.on('error', () => undefined);
      s.on('data', () => undefined);
      s.on('close', () => {
        clearTimeout(timer);
        const k = `${x.mustRefuse ? 'invalid handshake' : 'other'}: ${closedByUs ? 'left open until the fuzzer closed it' : 'closed by the member'}`;
        this.tally.set(k, (this.tally.get(k) ?? 0) + 1);
        resolve(x.mustRefuse && closedByUs ? `the member kept a connection open for ${PEER_REFUSE_TIMEOUT_MS} ms after a handshake that is not exactly valid` : null);
      });
      s.write(x.bytes);
    });
  }

  private readonly tally = new Map<string, number>();

  stats(): string {
    return [...this.tally].sort().map(([k, v]) => `${k} ${v}`).join(', ');
  }

  async close(): Promise<void> {}
}

/** The bytes start with a complete frame whose body is not an exactly valid handshake. */
function completeInvalidHandshake(b: Uint8Array, valid: (h: ReturnType<typeof decodeHandshake>) => boolean): boolean {
  if (b.length < 4) return false;
  const len = new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
  // A zero or oversized length is refused as soon as it is read.
  if (len === 0 || len > FRAME_BYTES_MAX) return true;
  if (b.length < 4 + len) return false;
  try {
    return !valid(decodeHandshake(b.subarray(4, 4 + len)));
  } catch {
    return true;
  }
}

/** The length of the leading frame if it is an exactly valid handshake, else 0. */
function validHandshakeLength(b: Uint8Array, valid: (h: ReturnType<typeof decodeHandshake>) => boolean): number {
  if (b.length < 4) return 0;
  const len = new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
  if (len === 0 || len > FRAME_BYTES_MAX || b.length < 4 + len) return 0;
  try {
    return valid(decodeHandshake(b.subarray(4, 4 + len))) ? 4 + len : 0;
  } catch {
    return 0;
  }
}
