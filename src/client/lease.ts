/**
 * Background lease keep-alive over the LeaseKeepAlive bidi stream: one request right away, then
 * one every TTL/3. A failed stream is reopened on the next endpoint. It stops and reports
 * NOT_FOUND when the server answers TTL 0 (the lease is gone), or when no renewal succeeded for a
 * whole TTL (the lease must be assumed expired).
 */
import * as grpc from '@grpc/grpc-js';
import { ClientError } from './errors.js';
import { requireLeader, type Connections } from './connection.js';
import { Resumable } from './resumable.js';
import { big, header, type LeaseKeepAliveResult, type Wire } from './types.js';

/** Never renew more often than this, whatever the TTL. */
const MIN_KEEPALIVE_INTERVAL_MS = 500;

/** The error a keep-alive ends with once its lease no longer exists. */
export function leaseNotFound(endpoint?: string): ClientError {
  return new ClientError(grpc.status.NOT_FOUND, 'etcdserver: requested lease not found', endpoint);
}

/** Options of `leaseKeepAlive`. */
export interface KeepAliveOptions {
  /** Called after each successful renewal. */
  onKeepAlive?: (r: LeaseKeepAliveResult) => void;
  /** Called once when the keep-alive ends because the lease is gone or expired. */
  onError?: (e: ClientError) => void;
}

/** A running keep-alive of one lease. */
export class LeaseKeepAlive extends Resumable {
  /** The TTL (s) the last renewal answered; 0 before the first. */
  ttl = 0;
  /** Date.now() of the last successful renewal (or of the start). */
  private lastOk = Date.now();
  private call: grpc.ClientDuplexStream<Wire, Wire> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(conns: Connections, readonly id: bigint, private readonly o: KeepAliveOptions = {}) {
    super(conns);
    void this.done.then((e) => {
      clearTimeout(this.timer);
      if (e) this.o.onError?.(e);
    });
    this.start();
  }

  /** Stop renewing (the lease itself is left to expire or be revoked). */
  stop(): Promise<void> {
    this.finish(undefined);
    clearTimeout(this.timer);
    this.call?.cancel();
    return this.done.then(() => undefined);
  }

  /** No renewal succeeded for a whole TTL: the lease must be assumed expired. */
  protected override giveUp(): ClientError | undefined {
    return this.ttl > 0 && Date.now() > this.lastOk + this.ttl * 1000 ? leaseNotFound() : undefined;
  }

  protected attempt(endpoint: string): Promise<void> {
    return new Promise((resolve) => {
      const client = this.conns.client(endpoint, 'etcdserverpb.Lease');
      const call = (client.LeaseKeepAlive as unknown as (md: grpc.Metadata) => grpc.ClientDuplexStream<Wire, Wire>).call(client, requireLeader());
      this.call = call;
      // No answer within the request timeout: treat the stream as failed.
      let answerTimer: NodeJS.Timeout | undefined;
      const send = (): void => {
        call.write({ ID: this.id.toString() });
        answerTimer = setTimeout(end, this.conns.requestTimeoutMs);
      };
      const end = (): void => {
        clearTimeout(answerTimer);
        clearTimeout(this.timer);
        call.removeAllListeners('data');
        call.cancel();
        resolve();
      };
      call.on('data', (r: Wire) => {
        clearTimeout(answerTimer);
        if (this.stopped) return end();
        const ttl = Number(big(r.TTL));
        if (ttl <= 0) {
          this.finish(leaseNotFound(endpoint));
          return end();
        }
        this.connected(endpoint);
        this.ttl = ttl;
        this.lastOk = Date.now();
        this.o.onKeepAlive?.({ header: header(r.header), id: big(r.ID), ttl });
        this.timer = setTimeout(send, Math.max(MIN_KEEPALIVE_INTERVAL_MS, (ttl * 1000) / 3));
      });
      call.on('error', end);
      call.on('end', end);
      send();
    });
  }
}
