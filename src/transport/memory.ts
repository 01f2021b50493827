/**
 * An in-process transport for tests and embedding: members registered on one hub exchange
 * messages asynchronously (each send is delivered on a later event-loop turn, never inside the
 * sender's call), with optional link cuts to model partitions. `endpoint` carries Raft's
 * messages as objects; `link` is a server member's whole peer link (PeerLink, as TcpTransport):
 * Raft's messages through the wire encoding, the member channel and the peer set, for the
 * in-process server harness.
 */
import type { Message } from '../raft/messages.js';
import type { NodeId } from '../raft/types.js';
import type { Transport } from '../node/node.js';
import { decodeMessage, encodeMessage } from './codec.js';
import type { PeerAddress, PeerLink } from './tcp.js';

export class MemoryNetwork {
  private readonly receivers = new Map<NodeId, (m: Message) => void>();
  private readonly memberReceivers = new Map<NodeId, (from: NodeId, body: Uint8Array) => void>();
  private readonly cut = new Set<string>();
  /** Messages dropped by cuts or absent receivers. */
  dropped = 0;

  /** A transport for member `id`. */
  endpoint(id: NodeId): Transport {
    return {
      send: (msgs) => {
        for (const m of msgs) this.deliverLater(m);
      },
      listen: (receive) => {
        this.receivers.set(id, receive);
      },
      close: async () => {
        this.receivers.delete(id);
      },
    };
  }

  /**
   * Member `id`'s peer link: sends reach only the peers set on it (setPeer; the address is
   * not used), and a removed peer is not heard any more, as over TCP; a message is encoded and
   * decoded as on the wire, so the receiver never shares the sender's objects.
   */
  link(id: NodeId): PeerLink {
    const peers = new Set<NodeId>();
    const removed = new Set<NodeId>();
    const heard = new Map<NodeId, number>();
    let closed = false;
    const reached = (to: NodeId): boolean => !closed && peers.has(to);
    return {
      send: (msgs) => {
        for (const m of msgs) {
          if (!reached(m.to)) this.dropped++;
          else this.deliverLater(decodeMessage(encodeMessage(m).subarray(4)));
        }
      },
      listen: (receive) => {
        this.receivers.set(id, (m) => {
          if (closed || removed.has(m.from)) return;
          heard.set(m.from, Date.now());
          receive(m);
        });
      },
      sendMember: (to, body) => {
        if (!reached(to) || !this.memberReceivers.has(to)) {
          this.dropped++;
          return false;
        }
        const copy = Uint8Array.from(body);
        setImmediate(() => {
          const r = this.memberReceivers.get(to);
          if (!r || this.cut.has(`${id}>${to}`)) {
            this.dropped++;
            return;
          }
          r(id, copy);
        });
        return true;
      },
      onMember: (receive) => {
        this.memberReceivers.set(id, (from, body) => {
          if (closed || removed.has(from)) return;
          heard.set(from, Date.now());
          receive(from, body);
        });
      },
      setPeer: (peer: NodeId, _addr: PeerAddress) => {
        peers.add(peer);
        removed.delete(peer);
      },
      removePeer: (peer) => {
        if (!peers.delete(peer)) return;
        removed.add(peer);
        heard.delete(peer);
      },
      peerIds: () => [...peers],
      heardFrom: (peer) => heard.get(peer) ?? 0,
      close: async () => {
        closed = true;
        this.receivers.delete(id);
        this.memberReceivers.delete(id);
      },
    };
  }

  private deliverLater(m: Message): void {
    setImmediate(() => {
      const r = this.receivers.get(m.to);
      if (!r || this.cut.has(`${m.from}>${m.to}`)) {
        this.dropped++;
        return;
      }
      r(m);
    });
  }

  /** Cuts both directions between `id` and everyone else. */
  isolate(id: NodeId, all: readonly NodeId[]): void {
    for (const x of all) {
      if (x === id) continue;
      this.cut.add(`${id}>${x}`);
      this.cut.add(`${x}>${id}`);
    }
  }

  heal(): void {
    this.cut.clear();
  }
}
