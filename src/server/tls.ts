/**
 * A member's TLS material from its settings: the self-signed certificate of --auto-tls /
 * --peer-auto-tls generated first when needed, then the files loaded (and reloaded when they
 * change: src/lib/tls-files.ts). Loading happens before the member starts, so unusable files
 * stop `flotilla serve` with exit code 2 and the reason.
 */
import { TlsFiles, ensureSelfSigned, type TlsLog } from '../lib/tls-files.js';
import type { TlsSettings } from './config.js';

export function loadTls(side: 'client' | 'peer', t: TlsSettings, urls: readonly URL[], log: TlsLog): TlsFiles {
  if (t.autoTls) ensureSelfSigned(t.certFile, t.keyFile, urls.map((u) => u.hostname.replace(/^\[|\]$/g, '')), log);
  return new TlsFiles({ certFile: t.certFile, keyFile: t.keyFile, caFile: t.trustedCaFile, ciphers: t.ciphers }, log, `${side} TLS`);
}
