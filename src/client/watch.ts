/**
 * A resumable watch. Each watch runs on its own bidi stream. The watcher remembers the next
 * revision it has to deliver; when the stream fails it reopens the watch on the next endpoint
 * from that revision, and drops anything below it, so every event is delivered exactly once and
 * in order across failovers. If the history it needs has been compacted meanwhile the watch ends
 * with an OUT_OF_RANGE error, as etcd's does.
 */
import * as grpc from '@grpc/grpc-js';
import { ClientError } from './errors.js';
import { requireLeader, type Connections } from './connection.js';
import { rangeOf, type RangeSelector } from './requests.js';
import { Resumable } from './resumable.js';
import { big, header, watchEvent, type Bytes, type ResponseHeader, type WatchEvent, type Wire } from './types.js';

/** Options of `watch`. */
export interface WatchOptions extends RangeSelector {
  /** First revision to deliver (default: changes after the watch is created). */
  startRevision?: number | bigint;
  /** Include each event's previous pair. */
  prevKv?: boolean;
  /** Leave out PUT or DELETE events. */
  filters?: Array<'NOPUT' | 'NODELETE'>;
  /** Ask the server for periodic progress notifications while idle (they advance the resume point). */
  progressNotify?: boolean;
  /** Called once if the watch ends for good (compacted history, server-side cancel, callback error). */
  onError?: (e: ClientError) => void;
}

/** Receives the events of one revision range, in order; `header` is the response's header. */
export type WatchCallback = (events: WatchEvent[], header: ResponseHeader) => void;

/** A running watch. */
export class Watcher extends Resumable {
  /** Resolves once the watch is first established (rejects if it ends before). */
  readonly ready: Promise<void>;
  /** The compact revision when the watch ended because its history was compacted. */
  compactRevision: bigint | undefined;
  private nextRev: bigint;
  private call: grpc.ClientDuplexStream<Wire, Wire> | undefined;
  private readyResolve!: () => void;
  private readyReject!: (e: ClientError) => void;
  private readonly request: Wire;

  constructor(conns: Connections, key: Bytes, private readonly o: WatchOptions, private readonly onEvents: WatchCallback) {
    super(conns);
    this.nextRev = big(o.startRevision);
    this.request = { ...rangeOf(key, o), progress_notify: Boolean(o.progressNotify), filters: o.filters ?? [], prev_kv: Boolean(o.prevKv) };
    this.ready = new Promise((res, rej) => ((this.readyResolve = res), (this.readyReject = rej)));
    this.ready.catch(() => undefined); // reported through done/onError too
    void this.done.then((e) => {
      if (e) {
        this.readyReject(e);
        this.o.onError?.(e);
      }
    });
    this.start();
  }

  /** The next revision the watch will deliver (0n until known). */
  get nextRevision(): bigint {
    return this.nextRev;
  }

  /** Stop watching. */
  cancel(): Promise<void> {
    this.finish(undefined);
    this.readyReject(new ClientError(grpc.status.CANCELLED, 'watch canceled'));
    this.call?.cancel();
    return this.done.then(() => undefined);
  }

  protected attempt(endpoint: string): Promise<void> {
    return new Promise((resolve) => {
      const client = this.conns.client(endpoint, 'etcdserverpb.Watch');
      const call = (client.Watch as unknown as (md: grpc.Metadata) => grpc.ClientDuplexStream<Wire, Wire>).call(client, requireLeader());
      this.call = call;
      const end = (): void => {
        call.removeAllListeners('data');
        call.cancel();
        resolve();
      };
      call.on('data', (r: Wire) => this.onResponse(endpoint, r, end));
      call.on('error', end);
      call.on('end', end);
      call.write({ create_request: { ...this.request, start_revision: this.nextRev.toString() } });
    });
  }

  private onResponse(endpoint: string, r: Wire, end: () => void): void {
    if (this.stopped) return end();
    const h = header(r.header);
    if (r.created) {
      if (this.nextRev === 0n) this.nextRev = h.revision + 1n;
      this.connected(endpoint);
      this.readyResolve();
    }
    if (r.canceled) {
      const compactRev = big(r.compact_revision);
      if (compactRev > 0n) {
        this.compactRevision = compactRev;
        this.finish(new ClientError(grpc.status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted', endpoint));
      } else {
        this.finish(new ClientError(grpc.status.CANCELLED, String(r.cancel_reason || 'watch canceled by the server'), endpoint));
      }
      return end();
    }
    const events = ((r.events ?? []) as Wire[]).map(watchEvent).filter((e) => e.kv.modRevision >= this.nextRev);
    if (events.length > 0) {
      this.nextRev = events[events.length - 1]!.kv.modRevision + 1n;
      try {
        this.onEvents(events, h);
      } catch (e) {
        this.finish(new ClientError(grpc.status.CANCELLED, `watch callback failed: ${(e as Error).message}`));
        return end();
      }
    } else if (!r.created && ((r.events ?? []) as unknown[]).length === 0 && h.revision >= this.nextRev) {
      // A progress notification: everything up to its revision has been delivered.
      this.nextRev = h.revision + 1n;
    }
  }
}
