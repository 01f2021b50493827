/**
 * Test certificates made with the `openssl` command in a temp dir: a CA, certificates it signs
 * (server: SAN 127.0.0.1 and localhost; client; peer: both usages), a second CA with its own
 * client certificate (to be refused), and an expired one.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface KeyPair {
  readonly cert: string;
  readonly key: string;
}

const openssl = (args: string[]): void => void execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });

/** A self-signed CA (EC P-256: quick to make). */
export function makeCa(dir: string, name: string): KeyPair {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}-key.pem`);
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return { cert, key };
}

let serial = 1;

/**
 * A certificate signed by `ca`. `expired`: valid only in 2020 (made with `openssl ca`, which
 * takes explicit dates).
 */
export function issue(dir: string, ca: KeyPair, name: string, o: { cn: string; sans?: string[]; expired?: boolean }): KeyPair {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}-key.pem`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  const sans = o.sans ?? ['IP:127.0.0.1', 'DNS:localhost'];
  writeFileSync(ext, `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n${sans.length ? `subjectAltName=${sans.join(',')}\n` : ''}`);
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${o.cn}`]);
  if (o.expired) {
    const conf = join(dir, `${name}-ca.cnf`);
    const db = join(dir, `${name}-index.txt`);
    writeFileSync(db, '');
    writeFileSync(
      conf,
      `[ca]\ndefault_ca=c\n[c]\ndatabase=${db}\nnew_certs_dir=${dir}\nserial=${join(dir, `${name}-serial`)}\ndefault_md=sha256\npolicy=p\ncopy_extensions=none\nunique_subject=no\n[p]\ncommonName=supplied\n[x]\n${`basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n`}`,
    );
    writeFileSync(join(dir, `${name}-serial`), `${(1000 + serial++).toString(16).padStart(4, '0')}\n`);
    openssl(['ca', '-batch', '-config', conf, '-cert', ca.cert, '-keyfile', ca.key, '-in', csr, '-out', cert, '-startdate', '20200101000000Z', '-enddate', '20200102000000Z', '-extensions', 'x', '-notext']);
  } else {
    openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', String(Date.now() * 100 + serial++), '-days', '2', '-sha256', '-extfile', ext, '-out', cert]);
  }
  return { cert, key };
}

export interface TestCerts {
  readonly ca: KeyPair;
  /** SAN 127.0.0.1, localhost; CN "flotilla-server" (used for client ports and peers alike). */
  readonly server: KeyPair;
  /** CN "alice". */
  readonly client: KeyPair;
  /** A second CA, and a client certificate it signed (CN "mallory"). */
  readonly otherCa: KeyPair;
  readonly otherClient: KeyPair;
  /** Signed by `ca`, valid only in 2020. */
  readonly expiredClient: KeyPair;
}

export function makeTestCerts(dir: string): TestCerts {
  const ca = makeCa(dir, 'ca');
  const otherCa = makeCa(dir, 'other-ca');
  return {
    ca,
    server: issue(dir, ca, 'server', { cn: 'flotilla-server' }),
    client: issue(dir, ca, 'client', { cn: 'alice', sans: [] }),
    otherCa,
    otherClient: issue(dir, otherCa, 'other-client', { cn: 'mallory', sans: [] }),
    expiredClient: issue(dir, ca, 'expired-client', { cn: 'old', sans: [], expired: true }),
  };
}
