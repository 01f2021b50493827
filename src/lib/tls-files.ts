/**
 * Certificates and keys from files, reloaded when the files change: a member's TLS material
 * (client port and peer port) and the client's. Each new connection asks `current()`, which
 * looks at the files' mtime, size and inode at most every TLS_FILES_CHECK_INTERVAL_MS and
 * reads them again when any changed, so replacing the files rotates the certificate for every
 * later connection without a restart (open connections keep theirs, as in etcd). A change that
 * does not load (a half-written file, a key that does not match the certificate) is logged and
 * the previous material kept; it is tried again when the files change once more.
 *
 * Also here: the self-signed certificate of --auto-tls / --peer-auto-tls, made by the
 * `openssl` command (Node has no X.509 generator).
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { createSecureContext, type PeerCertificate, type SecureContext, type SecureContextOptions } from 'node:tls';

/** A TLS handshake (client port and peer port) must complete within, ms; the connection is closed otherwise. */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;
/** The certificate files are looked at (stat) at most this often, ms: a rotated certificate is used by connections made this long after. */
export const TLS_FILES_CHECK_INTERVAL_MS = 1000;
/** Largest certificate, key or CA file read, bytes (a PEM bundle of many CAs is well under). */
export const TLS_FILE_BYTES_MAX = 1024 * 1024;
/** Validity of an --auto-tls certificate, days (etcd's is one year). */
export const AUTO_TLS_VALID_DAYS = 365;

export interface TlsFileNames {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile?: string | null;
  /** OpenSSL cipher list for TLS 1.2 (null: Node's default). */
  readonly ciphers?: string | null;
}

export interface TlsLog {
  info(msg: string): void;
  warn(msg: string): void;
}

export interface TlsMaterial {
  /** The options for tls.Server#setSecureContext / tls.connect. */
  readonly options: SecureContextOptions;
  readonly context: SecureContext;
  /** Bumped at each reload: a server compares it to know when to call setSecureContext. */
  readonly generation: number;
}

function readBounded(file: string): Buffer {
  const st = statSync(file);
  if (st.size > TLS_FILE_BYTES_MAX) throw new Error(`${file} is ${st.size} bytes, more than ${TLS_FILE_BYTES_MAX}`);
  return readFileSync(file);
}

/** "serial 1A2B, CN x, valid until ..." for log lines. */
export function describeCertificate(pem: Buffer): string {
  try {
    const c = new X509Certificate(pem);
    return `serial ${c.serialNumber}, ${c.subject.replace(/\n/g, ', ')}, valid until ${c.validTo}`;
  } catch (e) {
    return `unreadable certificate (${(e as Error).message})`;
  }
}

/** The CN of a verified peer certificate (undefined without one). */
export function commonNameOf(cert: PeerCertificate | Record<string, never> | undefined | null): string | undefined {
  const cn = cert && 'subject' in cert ? cert.subject?.CN : undefined;
  // A subject with several CNs comes as an array; etcd (Go) takes the first.
  return Array.isArray(cn) ? (cn[0] as string | undefined) : cn || undefined;
}

/** A set of certificate files, reloaded when they change (see the file comment). */
export class TlsFiles {
  private material: TlsMaterial;
  private signature: string;
  private checkedAtMs = 0;
  /** The signature of files that failed to load: not tried again until they change. */
  private failedSignature = '';

  constructor(
    readonly names: TlsFileNames,
    private readonly log: TlsLog,
    private readonly what: string,
    private readonly now: () => number = Date.now,
  ) {
    this.signature = this.stat();
    // The first load throws: a member does not start with unusable TLS files.
    this.material = this.load(0);
    this.log.info(`${what}: using ${names.certFile} (${describeCertificate(this.material.options.cert as Buffer)})`);
  }

  private files(): string[] {
    return [this.names.certFile, this.names.keyFile, ...(this.names.caFile ? [this.names.caFile] : [])];
  }

  private stat(): string {
    return this.files()
      .map((f) => {
        try {
          const st = statSync(f);
          return `${st.mtimeMs}:${st.size}:${st.ino}`;
        } catch {
          return 'missing';
        }
      })
      .join('|');
  }

  private load(generation: number): TlsMaterial {
    const options: SecureContextOptions = {
      cert: readBounded(this.names.certFile),
      key: readBounded(this.names.keyFile),
      ...(this.names.caFile ? { ca: readBounded(this.names.caFile) } : {}),
      ...(this.names.ciphers ? { ciphers: this.names.ciphers } : {}),
    };
    // Throws for a key that does not match the certificate, or unparsable PEM.
    const context = createSecureContext(options);
    return { options, context, generation };
  }

  /** The material for a new connection (reloaded first if the files changed). */
  current(): TlsMaterial {
    const t = this.now();
    if (t - this.checkedAtMs < TLS_FILES_CHECK_INTERVAL_MS) return this.material;
    this.checkedAtMs = t;
    const sig = this.stat();
    if (sig === this.signature || sig === this.failedSignature) return this.material;
    try {
      this.material = this.load(this.material.generation + 1);
      this.signature = sig;
      this.failedSignature = '';
      this.log.info(`${this.what}: reloaded ${this.names.certFile} (${describeCertificate(this.material.options.cert as Buffer)})`);
    } catch (e) {
      this.failedSignature = sig;
      this.log.warn(`${this.what}: the changed certificate files do not load (${(e as Error).message}); keeping the previous certificate`);
    }
    return this.material;
  }
}

/**
 * --auto-tls: a self-signed certificate and key (ECDSA P-256, etcd's choice) for `hosts` (IP
 * addresses and DNS names, as SANs), generated with the `openssl` command when the files are
 * absent; kept across restarts, as etcd keeps <data-dir>/fixtures.
 */
export function ensureSelfSigned(certFile: string, keyFile: string, hosts: readonly string[], log: TlsLog): void {
  if (existsSync(certFile) && existsSync(keyFile)) return;
  mkdirSync(dirname(certFile), { recursive: true, mode: 0o700 });
  mkdirSync(dirname(keyFile), { recursive: true, mode: 0o700 });
  const san = [...new Set(hosts)].map((h) => (/^[\d.]+$|:/.test(h) ? `IP:${h.replace(/^\[|\]$/g, '')}` : `DNS:${h}`)).join(',');
  try {
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', String(AUTO_TLS_VALID_DAYS), '-subj', '/O=flotilla auto TLS', ...(san ? ['-addext', `subjectAltName=${san}`] : []), '-addext', 'extendedKeyUsage=serverAuth,clientAuth'],
      { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 },
    );
  } catch (e) {
    const err = e as { code?: string; stderr?: Buffer; message: string };
    if (err.code === 'ENOENT') throw new Error('auto TLS needs the openssl command, which is not installed (or give --cert-file and --key-file)');
    throw new Error(`auto TLS: openssl failed: ${err.stderr?.toString().trim() || err.message}`);
  }
  chmodSync(keyFile, 0o600);
  log.info(`auto TLS: generated a self-signed certificate ${certFile} for ${san || 'no host'}`);
}
