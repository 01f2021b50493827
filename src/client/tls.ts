/**
 * TLS for the client: etcdctl's --cacert / --cert / --key / --insecure-skip-tls-verify as
 * options, gRPC credentials from them, and a plain-words reason when a connection fails at
 * the TLS layer (grpc-js reports only "connection failed"): `diagnoseTls` makes one TLS
 * connection of its own with the same settings and names what went wrong (the server's
 * certificate not signed by the given CA, expired, or for another host; the server refusing
 * or requiring our certificate; an endpoint that does not speak TLS, or one that does when we
 * do not).
 */
import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

/** A TLS probe (see diagnoseTls) gives up after this long, ms. */
export const TLS_PROBE_TIMEOUT_MS = 2000;

export interface ClientTlsOptions {
  /** PEM of the CA(s) that signed the servers' certificates (etcdctl --cacert); default: Node's bundled public CAs. */
  readonly ca?: Buffer | string;
  /** PEM client certificate, for servers with client certificate auth (etcdctl --cert). */
  readonly cert?: Buffer | string;
  /** Its private key (etcdctl --key). */
  readonly key?: Buffer | string;
  /** Do not verify the server's certificate (etcdctl --insecure-skip-tls-verify): encrypts, authenticates nothing. */
  readonly insecureSkipVerify?: boolean;
}

const buf = (v: Buffer | string | undefined): Buffer | null => (v === undefined ? null : Buffer.isBuffer(v) ? v : Buffer.from(v));

export function channelCredentials(t: ClientTlsOptions | null): grpc.ChannelCredentials {
  if (!t) return grpc.credentials.createInsecure();
  if (Boolean(t.cert) !== Boolean(t.key)) throw new Error(`TLS: ${t.cert ? 'a client certificate needs its key (--key)' : 'a key needs its client certificate (--cert)'}`);
  return grpc.credentials.createSsl(buf(t.ca), buf(t.key), buf(t.cert), t.insecureSkipVerify ? { rejectUnauthorized: false } : {});
}

/** Certificate verification failures that mean "not signed by a CA we trust". */
const UNTRUSTED = new Set(['SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_SIGNATURE_FAILURE']);

/** Our own client certificate's problem, found without a connection (expired, not yet valid). */
function ownCertificateProblem(t: ClientTlsOptions): string | null {
  if (!t.cert) return null;
  try {
    const c = new X509Certificate(buf(t.cert)!);
    const now = Date.now();
    if (Date.parse(c.validTo) < now) return `our client certificate (${c.subject.replace(/\n/g, ', ')}) expired on ${c.validTo}`;
    if (Date.parse(c.validFrom) > now) return `our client certificate (${c.subject.replace(/\n/g, ', ')}) is not valid before ${c.validFrom}`;
  } catch (e) {
    return `our client certificate cannot be read: ${(e as Error).message}`;
  }
  return null;
}

/**
 * Why a connection to `endpoint` (host:port) fails at the TLS layer, in words; null when a TLS
 * connection with these settings works (or the port is closed: the caller's own reason holds).
 * With `t` null: whether the endpoint speaks TLS although we were told to use plain text.
 */
export function diagnoseTls(endpoint: string, t: ClientTlsOptions | null): Promise<string | null> {
  const own = t ? ownCertificateProblem(t) : null;
  if (own) return Promise.resolve(own);
  const i = endpoint.lastIndexOf(':');
  const host = endpoint.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(endpoint.slice(i + 1));
  return new Promise((resolve) => {
    let done = false;
    const finish = (why: string | null): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(why);
    };
    const s = tlsConnect({
      host,
      port,
      ALPNProtocols: ['h2'],
      ...(isIP(host) ? {} : { servername: host }),
      ...(t ? { ca: buf(t.ca) ?? undefined, cert: buf(t.cert) ?? undefined, key: buf(t.key) ?? undefined, rejectUnauthorized: !t.insecureSkipVerify } : { rejectUnauthorized: false }),
    });
    const timer = setTimeout(() => finish(null), TLS_PROBE_TIMEOUT_MS);
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (!t) return finish(null);
      const code = e.code ?? '';
      if (/^(ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT)$/.test(code)) return finish(null);
      if (UNTRUSTED.has(code)) return finish(`the server's certificate is not signed by a trusted CA (${code}): is --cacert the CA that signed it?`);
      if (code === 'CERT_HAS_EXPIRED') return finish("the server's certificate has expired");
      if (code === 'CERT_NOT_YET_VALID') return finish("the server's certificate is not valid yet");
      if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return finish(`the server's certificate is not for ${host}: ${e.message}`);
      if (/wrong version number|packet length too long|unknown protocol/i.test(e.message)) return finish('the endpoint does not speak TLS (use http:// and no TLS flags)');
      if (/CERTIFICATE_REQUIRED|certificate required/i.test(`${code} ${e.message}`)) return finish('the server requires a client certificate (--cert and --key)');
      if (/BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_EXPIRED|bad certificate|unknown ca/i.test(`${code} ${e.message}`)) return finish(`the server refused our client certificate (${e.message})`);
      if (s.authorized || (s as { secureConnecting?: boolean }).secureConnecting === false) return finish(refusedAfterHandshake(t));
      finish(`TLS: ${e.message}`);
    });
    s.on('secureConnect', () => {
      if (!t) return finish('the endpoint speaks TLS: use https:// (and --cacert)');
      // TLS 1.3: the server checks our certificate after our side considers the handshake done;
      // a refusal shows as the connection closing. An HTTP/2 preface gets a SETTINGS frame back otherwise.
      s.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00');
    });
    s.on('data', () => finish(null));
    s.on('close', () => finish(t ? refusedAfterHandshake(t) : null));
  });
}

function refusedAfterHandshake(t: ClientTlsOptions): string {
  return t.cert
    ? 'the server closed the connection after the TLS handshake: it does not accept our client certificate (not signed by a CA it trusts, or revoked)'
    : 'the server closed the connection after the TLS handshake: it requires a client certificate (--cert and --key)';
}
