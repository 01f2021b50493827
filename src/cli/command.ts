/**
 * The plumbing shared by the client commands (etcdctl's global flags and its command runner):
 * --endpoints, the TLS flags, --user/--password, --session-file and -w; one client per command;
 * failures as `Error: <message>` on stderr, nothing on stdout, exit 1. The client library
 * (gRPC, the .proto files) is loaded only when a command runs, so registering the commands costs
 * nothing at start.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { ClientTlsOptions, FlotillaClient, GetOptions, SortTarget } from '../client/index.js';
import { leaseHex } from './printers.js';

/** Exit code of a command line that is not understood: an unknown flag, a bad flag value, a
 * missing or extra argument, a malformed txn line (a request that failed exits 1). */
export const EXIT_USAGE = 2;

/** Endpoints used without --endpoints or FLOTILLA_ENDPOINTS (the three members `flotilla start` runs). */
export const DEFAULT_ENDPOINTS = '127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379';
/** TTL (s) of the session lease of `lock` and `elect` (etcdctl's --ttl default). */
export const CLI_SESSION_TTL = 10;

export interface Common {
  endpoints?: string;
  cacert?: string;
  cert?: string;
  key?: string;
  insecureSkipTlsVerify?: boolean;
  writeOut: string;
  sessionFile?: string;
  /** `name` or `name:password` (etcdctl's --user; env FLOTILLA_USER). */
  user?: string;
  /** etcdctl's --password (env FLOTILLA_PASSWORD). */
  password?: string;
}

/** The credentials of --user / --password (or FLOTILLA_USER / FLOTILLA_PASSWORD), as etcdctl reads them. */
export function credentialsOf(o: Common): { user: string; password: string } | undefined {
  const u = o.user ?? (process.env.FLOTILLA_USER || undefined);
  if (u === undefined) return undefined;
  const given = o.password ?? (process.env.FLOTILLA_PASSWORD || undefined);
  if (given !== undefined) return { user: u, password: given };
  const i = u.indexOf(':');
  if (i < 0) throw new UsageError(`--user ${u} has no password: give --user name:password, --password, or FLOTILLA_PASSWORD`);
  return { user: u.slice(0, i), password: u.slice(i + 1) };
}

/**
 * The session file (`--session-file` or FLOTILLA_SESSION_FILE): the highest revision any
 * command of this session has seen, so `get --consistency session` in a later command reads
 * at least what earlier ones wrote (read-your-writes across processes).
 */
export function sessionFileOf(o: Common): string | undefined {
  return o.sessionFile ?? (process.env.FLOTILLA_SESSION_FILE || undefined);
}

export function readSession(file: string): bigint {
  try {
    const t = readFileSync(file, 'utf8').trim();
    return /^\d+$/.test(t) ? BigInt(t) : 0n;
  } catch {
    return 0n;
  }
}

/** A failure in the command's own input (bad flag value, malformed txn line). */
export class UsageError extends Error {}

// ---- argument parsers ----

export function nonNegative(name: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`${name} must be a non-negative integer, got "${v}"`);
    return Number(v);
  };
}

export function parseLeaseId(v: string): bigint {
  if (!/^[0-9a-fA-F]{1,16}$/.test(v)) throw new UsageError(`bad lease ID "${v}", expecting ID in hex`);
  return BigInt(`0x${v}`);
}

export const SORT_TARGETS: Record<string, SortTarget> = { KEY: 'KEY', VERSION: 'VERSION', CREATE: 'CREATE', MODIFY: 'MOD', VALUE: 'VALUE' };

// ---- command plumbing ----

export function endpointsOf(o: Common): string[] {
  return (o.endpoints ?? process.env.FLOTILLA_ENDPOINTS ?? DEFAULT_ENDPOINTS).split(',').map((s) => s.trim()).filter(Boolean);
}

/**
 * TLS from --cacert/--cert/--key/--insecure-skip-tls-verify (or FLOTILLA_CACERT, ...), as
 * etcdctl: any of them, or an https:// endpoint, turns TLS on; none of them means plain text.
 */
export function tlsOf(o: Common): ClientTlsOptions | undefined {
  const env = (k: string): string | undefined => process.env[k] || undefined;
  const cacert = o.cacert ?? env('FLOTILLA_CACERT');
  const cert = o.cert ?? env('FLOTILLA_CERT');
  const key = o.key ?? env('FLOTILLA_KEY');
  const skip = o.insecureSkipTlsVerify ?? env('FLOTILLA_INSECURE_SKIP_TLS_VERIFY') === 'true';
  if (!cacert && !cert && !key && !skip) return undefined;
  const read = (flag: string, f: string | undefined): Buffer | undefined => {
    if (f === undefined) return undefined;
    try {
      return readFileSync(f);
    } catch (e) {
      throw new UsageError(`${flag}: cannot read ${f}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  return { ca: read('--cacert', cacert), cert: read('--cert', cert), key: read('--key', key), insecureSkipVerify: skip };
}

/** Adds --endpoints, the TLS flags, --user/--password, --session-file and -w to a command. */
export function common(c: Command, formats: readonly string[] = ['simple', 'json']): Command {
  return credentialFlags(
    c
      .option('--endpoints <list>', `comma-separated host:port of the members (env FLOTILLA_ENDPOINTS; default ${DEFAULT_ENDPOINTS})`)
      .option('--session-file <path>', 'keep the highest revision seen here, for --consistency session across commands (env FLOTILLA_SESSION_FILE)'),
  ).addOption(new Option('-w, --write-out <format>', 'output format').choices(formats).default('simple'));
}

/**
 * etcdctl's TLS and auth flags (--cacert, --cert, --key, --insecure-skip-tls-verify, --user,
 * --password): every command that talks to the cluster as a client has them, the client
 * commands (common) and the chain processes to their control cluster (chain.ts). Read them with
 * tlsOf and credentialsOf.
 */
export function credentialFlags(c: Command): Command {
  return c
    .option('--cacert <file>', 'verify the servers\' certificates with this CA bundle, and use TLS (env FLOTILLA_CACERT)')
    .option('--cert <file>', 'TLS client certificate, for servers with client certificate auth (env FLOTILLA_CERT)')
    .option('--key <file>', 'its private key (env FLOTILLA_KEY)')
    .option('--insecure-skip-tls-verify', 'use TLS without verifying the server\'s certificate (env FLOTILLA_INSECURE_SKIP_TLS_VERIFY=true)')
    .option('--user <name[:password]>', 'authenticate as this user when the cluster has auth on (env FLOTILLA_USER)')
    .option('--password <password>', 'the password of --user (env FLOTILLA_PASSWORD)');
}

/** The client library, loaded when the first command runs: registering the commands (and
 * `flotilla --help`, and the server commands) never loads gRPC or the .proto files. */
let clientLib: typeof import('../client/index.js') | undefined;

async function loadClient(): Promise<typeof import('../client/index.js')> {
  clientLib ??= await import('../client/index.js');
  return clientLib;
}

/** Whether `e` is the client library's ClientError (none can exist before the library is loaded). */
export function isClientError(e: unknown): e is import('../client/index.js').ClientError {
  return clientLib !== undefined && e instanceof clientLib.ClientError;
}

export function fail(e: unknown): void {
  const msg = isClientError(e) ? e.details : e instanceof Error ? e.message : String(e);
  process.stderr.write(`Error: ${msg}\n`);
  process.exitCode = e instanceof UsageError ? EXIT_USAGE : 1;
}

/**
 * Runs a command body with a client. The body returns its output as a function, run only on
 * success (so a failure prints nothing on stdout), or 'hold' when it keeps running (watch, lock,
 * ...) and closes the client itself.
 */
export async function run(o: Common, body: (c: FlotillaClient, json: boolean) => Promise<(() => void) | 'hold'>): Promise<void> {
  let c: FlotillaClient;
  try {
    const { FlotillaClient: Client } = await loadClient();
    const tls = tlsOf(o);
    // grpc-js sets the TLS server name to an IP endpoint, which Node (DEP0123) warns about on
    // stderr once per process; the certificate is still checked against the IP. Quiet for the CLI.
    if (tls || endpointsOf(o).some((e) => e.startsWith('https://'))) process.noDeprecation = true;
    const auth = credentialsOf(o);
    c = new Client({ endpoints: endpointsOf(o), ...(tls ? { tls } : {}), ...(auth ? { auth } : {}) });
  } catch (e) {
    return fail(e);
  }
  const session = sessionFileOf(o);
  if (session) c.seen(readSession(session));
  try {
    const print = await body(c, o.writeOut === 'json');
    if (session && c.sessionRevision > readSession(session)) writeFileSync(session, `${c.sessionRevision}\n`);
    if (print === 'hold') return;
    print();
  } catch (e) {
    fail(e);
  }
  await c.close();
}

/**
 * Keeps a session lease alive; if it is lost anyway, the lock or leadership is gone: fail and
 * exit. The returned function stops the keep-alive and revokes the lease (ending the session).
 */
export function holdSession(c: FlotillaClient, id: bigint): () => Promise<void> {
  const ka = c.leaseKeepAlive(id);
  void ka.done.then((e) => {
    if (!e) return;
    fail(new Error(`session lease ${leaseHex(id)} lost: ${e.details}`));
    process.exit(1);
  });
  return async () => {
    await ka.stop();
    await c.leaseRevoke(id).catch(() => undefined);
  };
}

/** Runs `cleanup` then exits on SIGINT/SIGTERM (for the commands that hold until Ctrl-C). */
export function onInterrupt(cleanup: () => Promise<void>, code = 0): void {
  const handler = (): void => {
    void cleanup()
      .catch(() => undefined)
      .finally(() => process.exit(code));
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
}

export function sortOptions(sortBy: string | undefined, order: string | undefined): Pick<GetOptions, 'sortTarget' | 'sortOrder'> {
  const r: Pick<GetOptions, 'sortTarget' | 'sortOrder'> = {};
  if (sortBy !== undefined) {
    const t = SORT_TARGETS[sortBy.toUpperCase()];
    if (!t) throw new UsageError(`bad sort target "${sortBy}" (KEY, VERSION, CREATE, MODIFY or VALUE)`);
    r.sortTarget = t;
    r.sortOrder = 'ASCEND';
  }
  if (order !== undefined) {
    const u = order.toUpperCase();
    if (u !== 'ASCEND' && u !== 'DESCEND') throw new UsageError(`bad sort order "${order}" (ASCEND or DESCEND)`);
    r.sortOrder = u;
  }
  return r;
}

export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
