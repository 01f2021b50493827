/**
 * Follows an election's leader over the Election.Observe server stream, reopening it on the
 * next endpoint when it fails. A reopened stream starts with the current leader again; a leader
 * already delivered (same key and modification revision) is not delivered twice.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Connections } from './connection.js';
import { Resumable } from './resumable.js';
import { KeyValue, header, type ResponseHeader, type Wire } from './types.js';

/** Receives each new leader (or new value proclaimed by the leader). */
export type ObserveCallback = (leader: KeyValue, header: ResponseHeader) => void;

/** A running observation of one election. */
export class Observer extends Resumable {
  private call: grpc.ClientReadableStream<Wire> | undefined;
  private last: KeyValue | undefined;

  constructor(conns: Connections, private readonly name: Buffer, private readonly onLeader: ObserveCallback) {
    super(conns);
    this.start();
  }

  /** Stop observing. */
  cancel(): Promise<void> {
    this.finish(undefined);
    this.call?.cancel();
    return this.done.then(() => undefined);
  }

  protected attempt(endpoint: string): Promise<void> {
    return new Promise((resolve) => {
      const client = this.conns.client(endpoint, 'v3electionpb.Election');
      const call = (client.Observe as unknown as (r: Wire) => grpc.ClientReadableStream<Wire>).call(client, { name: this.name });
      this.call = call;
      const end = (): void => {
        call.removeAllListeners('data');
        call.cancel();
        resolve();
      };
      call.on('data', (r: Wire) => {
        if (this.stopped) return end();
        this.connected(endpoint);
        if (!r.kv) return;
        const kv = KeyValue.fromWire(r.kv);
        if (this.last && this.last.key.equals(kv.key) && this.last.modRevision === kv.modRevision) return;
        this.last = kv;
        this.onLeader(kv, header(r.header));
      });
      call.on('error', end);
      call.on('end', end);
    });
  }
}
