/**
 * TLS on the chain port, with mutual authentication by certificate. A node runs with
 * --cert-file/--key-file/--trusted-ca-file (the files reloaded when they change, as a member's:
 * src/lib/tls-files.ts) and then:
 * - accepts only connections whose client certificate the CA signed, within
 *   TLS_HANDSHAKE_TIMEOUT_MS;
 * - a node's certificate names it: its CN is the node's name. A connection that says it is peer
 *   N (its hello) must present a certificate with CN N, so one node cannot speak for another
 *   (and the core hears peers only from the chain's configured members);
 * - dialing a node (a peer or a ChainClient) checks that the certificate presented has the CN of
 *   the node it meant to reach, instead of the host name: the control cluster says which node
 *   lives at which address, the certificate proves it.
 * Clients present any certificate the CA signed.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, createServer as tlsCreateServer, type PeerCertificate, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { createServer as netCreateServer, type Server } from 'node:net';
import { TLS_HANDSHAKE_TIMEOUT_MS, TlsFiles, commonNameOf, type TlsLog } from '../lib/tls-files.js';
import type { ClientTlsOptions } from '../client/tls.js';

export interface ChainTlsFileNames {
  readonly certFile: string;
  readonly keyFile: string;
  readonly trustedCaFile: string;
}

/** What a node (or a client) dials with: its own certificate and the CA (files or PEM). */
export type DialTls = { readonly files: TlsFiles } | { readonly pem: ClientTlsOptions };

export function loadChainTls(names: ChainTlsFileNames, log: TlsLog): TlsFiles {
  return new TlsFiles({ certFile: names.certFile, keyFile: names.keyFile, caFile: names.trustedCaFile }, log, 'chain TLS');
}

/**
 * The node's listening server: plain TCP, or TLS requiring a client certificate signed by the CA
 * (the certificate files looked at again for every new connection).
 */
export function chainServer(tls: TlsFiles | null, accept: (s: Socket) => void): Server | TlsServer {
  if (!tls) return netCreateServer(accept);
  let generation = tls.current().generation;
  const opts = () => ({ ...tls.current().options, requestCert: true, rejectUnauthorized: true });
  const server = tlsCreateServer({ ...opts(), handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS }, accept);
  server.on('tlsClientError', () => {}); // a failed handshake closes that connection only
  server.on('connection', () => {
    const m = tls.current();
    if (m.generation !== generation) {
      generation = m.generation;
      server.setSecureContext(opts());
    }
  });
  return server;
}

/** The CN of the certificate the other side of `s` presented (TLS), or null on plain TCP. */
export function peerCommonName(s: Socket): string | null | undefined {
  if (!('getPeerCertificate' in s)) return null;
  return commonNameOf((s as TLSSocket).getPeerCertificate());
}

/** Dials `host:port`, expecting node `name` there (with TLS: its certificate's CN). */
export function dialNode(host: string, port: number, name: string, tls: DialTls | null): Socket {
  if (!tls) return netConnect(port, host);
  const o = 'files' in tls ? tls.files.current().options : pemOptions(tls.pem);
  return tlsConnect({
    host,
    port,
    ...o,
    ...('pem' in tls && tls.pem.insecureSkipVerify ? { rejectUnauthorized: false } : {}),
    checkServerIdentity: (_host: string, cert: PeerCertificate) => {
      const cn = commonNameOf(cert);
      return cn === name ? undefined : new Error(`the chain node at ${host}:${port} presented a certificate for ${JSON.stringify(cn ?? '')}, not ${JSON.stringify(name)}`);
    },
  });
}

function pemOptions(t: ClientTlsOptions): { ca?: Buffer | string; cert?: Buffer | string; key?: Buffer | string } {
  return { ...(t.ca !== undefined ? { ca: t.ca } : {}), ...(t.cert !== undefined ? { cert: t.cert } : {}), ...(t.key !== undefined ? { key: t.key } : {}) };
}
