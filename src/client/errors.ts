/**
 * The error type of the Flotilla client: every failure carries the gRPC status name and the
 * server's exact message (e.g. `INVALID_ARGUMENT` / `etcdserver: key is not provided`), so callers
 * can match on them the way etcd clients do.
 */
import * as grpc from '@grpc/grpc-js';
import { NOT_SENT_DETAILS } from '../api/proto.js';

/** gRPC status names, as in `grpc.status` (`'OK'`, `'UNAVAILABLE'`, `'NOT_FOUND'`, ...). */
export type StatusName = keyof typeof grpc.status;

/** A failed client operation. `details` is the server's message verbatim. */
export class ClientError extends Error {
  /** The gRPC status name, e.g. `'INVALID_ARGUMENT'`. */
  readonly code: StatusName;
  /** The numeric gRPC status code. */
  readonly status: grpc.status;
  /** The server's (or gRPC's) message, e.g. `etcdserver: key is not provided`. */
  readonly details: string;
  /** The endpoint that answered (or failed), when known. */
  readonly endpoint: string | undefined;

  constructor(status: grpc.status, details: string, endpoint?: string) {
    super(details);
    this.name = 'ClientError';
    this.status = status;
    this.code = (grpc.status[status] ?? 'UNKNOWN') as StatusName;
    this.details = details;
    this.endpoint = endpoint;
  }
}

/**
 * Raised when no connection to an endpoint could be made within the dial timeout: the request
 * was never sent, so retrying it elsewhere is safe even for writes.
 */
export class DialError extends ClientError {
  /**
   * @param tls the reason is a TLS failure (an untrusted or expired certificate, one refused):
   *   trying the same endpoint again will not help.
   */
  constructor(endpoint: string, reason: string, readonly tls = false, details = `cannot connect to ${endpoint}: ${reason}`) {
    super(grpc.status.UNAVAILABLE, details, endpoint);
    this.name = 'DialError';
  }

  /**
   * The failure of a call for which no endpoint could be reached, naming every endpoint tried
   * with its own reason (`cannot connect to a:1: connection failed; b:2: dial timeout (2000 ms)`);
   * the single failure itself when only one endpoint was tried or some failure was not a dial.
   */
  static ofAll(failures: readonly ClientError[]): ClientError {
    if (failures.length < 2 || !failures.every((f) => f instanceof DialError)) return failures.at(-1)!;
    const all = failures as readonly DialError[];
    const lead = 'cannot connect to ';
    const details = lead + all.map((f) => (f.details.startsWith(lead) ? f.details.slice(lead.length) : f.details)).join('; ');
    return new DialError(all[0]!.endpoint ?? '', '', all.every((f) => f.tls), details);
  }
}

/**
 * grpc-js's wording for a call that failed because no connection existed: such a request never
 * left the client. (Anything else UNAVAILABLE, e.g. a dropped connection, may have been applied.)
 */


/** True when the request certainly never reached a server, so any request may be retried. */
export function neverSent(e: ClientError): boolean {
  return e instanceof DialError || (e.status === grpc.status.UNAVAILABLE && NOT_SENT_DETAILS.test(e.details));
}

/** Wraps a grpc-js error (or anything thrown) as a ClientError. */
export function toClientError(e: unknown, endpoint?: string): ClientError {
  if (e instanceof ClientError) return e;
  const se = e as Partial<grpc.ServiceError> | null;
  if (se && typeof se.code === 'number') return new ClientError(se.code, se.details ?? se.message ?? '', endpoint);
  return new ClientError(grpc.status.UNKNOWN, e instanceof Error ? e.message : String(e), endpoint);
}
