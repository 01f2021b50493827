/**
 * An in-process transport for tests and embedding: members registered on one hub exchange
 * messages asynchronously (each send is delivered on a later event-loop turn, never inside the
 * sender's call), with optional link cuts to model partitions.
 */
import type { Message } from '../raft/messages.js';
import type { NodeId } from '../raft/types.js';
import type { Transport } from '../node/node.js';

export class MemoryNetwork {
  private readonly receivers = new Map<NodeId, (m: Message) => void>();
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
