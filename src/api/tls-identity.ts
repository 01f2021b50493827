/**
 * Who a client is, as TLS says: with --client-cert-auth every client connection carries a
 * certificate signed by the trusted CA, and its subject's CN is the client's identity (etcd
 * takes it as the user name when auth is enabled and the call has no token).
 *
 * The client port puts the verified CN into each call's metadata under CLIENT_CN_METADATA
 * (gRPC: h2-authority.ts rewrites every header block, dropping any such header the client sent;
 * the JSON gateway: http.ts sets it from the TLS socket), so a handler needs only the call.
 */

/** The metadata key carrying a verified client certificate's CN (a -bin key: the value is the CN's UTF-8 bytes). */
export const CLIENT_CN_METADATA = 'flotilla-tls-client-cn-bin';

/** Just what is read of a gRPC call (grpc-js's ServerUnaryCall, ServerWritableStream, ... and the gateway's calls). */
export interface CallWithMetadata {
  readonly metadata: { get(key: string): (string | Buffer)[] };
}

/**
 * The CN of the verified TLS client certificate of the connection `call` came on; undefined on
 * a plain connection, without client certificate auth, or for a certificate without a CN.
 */
export function clientCertCommonName(call: CallWithMetadata): string | undefined {
  const v = call.metadata.get(CLIENT_CN_METADATA)[0];
  if (v === undefined) return undefined;
  const cn = Buffer.isBuffer(v) ? v.toString('utf8') : v;
  return cn === '' ? undefined : cn;
}
