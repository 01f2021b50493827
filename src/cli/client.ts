/**
 * The client commands of `flotilla` (put, get, del, txn, watch, lease, lock, elect, member,
 * endpoint) on FlotillaClient, with etcdctl 3.4's output: `-w simple` (default) prints what
 * etcdctl prints, `-w json` prints etcd's JSON (etcd's field names, bytes base64, 64-bit integers
 * as bare numbers, default values omitted). Lease ids are hex, as etcdctl prints them.
 *
 * Failures print `Error: <message>` on stderr, nothing on stdout, and exit 1. This module only
 * registers commands: the caller builds the program and parses argv.
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import {
  ClientError,
  FlotillaClient,
  type ClientTlsOptions,
  prefixEnd,
  type Permission,
  type Compare,
  type CompareTarget,
  type DeleteResult,
  type GetOptions,
  type KeyValue,
  type MemberListResult,
  type PutResult,
  type RangeResult,
  type ResponseHeader,
  type SortTarget,
  type TxnOp,
  type TxnResult,
  type WatchEvent,
} from '../client/index.js';

/** Endpoints used without --endpoints or FLOTILLA_ENDPOINTS (the three members `flotilla start` runs). */
export const DEFAULT_ENDPOINTS = '127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379';
/** TTL (s) of the session lease of `lock` and `elect` (etcdctl's --ttl default). */
const CLI_SESSION_TTL = 10;

interface Common {
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
function credentialsOf(o: Common): { user: string; password: string } | undefined {
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
function sessionFileOf(o: Common): string | undefined {
  return o.sessionFile ?? (process.env.FLOTILLA_SESSION_FILE || undefined);
}

function readSession(file: string): bigint {
  try {
    const t = readFileSync(file, 'utf8').trim();
    return /^\d+$/.test(t) ? BigInt(t) : 0n;
  } catch {
    return 0n;
  }
}

/** A failure in the command's own input (bad flag value, malformed txn line). */
class UsageError extends Error {}

// ---- output helpers ----

const out = (line: string): void => void process.stdout.write(`${line}\n`);
/** A lease id as etcdctl prints it (%016x). */
const leaseHex = (id: bigint): string => id.toString(16).padStart(16, '0');

/** JSON as Go's encoder writes etcd's messages: bigints as bare numbers, bytes as base64. */
function goJson(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'bigint') return v.toString();
  if (Buffer.isBuffer(v)) return JSON.stringify(v.toString('base64'));
  if (Array.isArray(v)) return `[${v.map(goJson).join(',')}]`;
  if (typeof v === 'object') {
    const fields = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
    return `{${fields.map(([k, x]) => `${JSON.stringify(k)}:${goJson(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** Go's `omitempty`: undefined for zero values, so goJson leaves the field out. */
function oe<T>(v: T): T | undefined {
  if (v === 0n || v === 0 || v === false || v === '' || (Buffer.isBuffer(v) && v.length === 0) || (Array.isArray(v) && v.length === 0)) return undefined;
  return v;
}

const headerJson = (h: ResponseHeader) => ({ cluster_id: oe(h.clusterId), member_id: oe(h.memberId), revision: oe(h.revision), raft_term: oe(h.raftTerm) });
const kvJson = (kv: KeyValue) => ({ key: oe(kv.key), create_revision: oe(kv.createRevision), mod_revision: oe(kv.modRevision), version: oe(kv.version), value: oe(kv.value), lease: oe(kv.lease) });
const rangeJson = (r: RangeResult) => ({ header: headerJson(r.header), kvs: oe(r.kvs.map(kvJson)), more: oe(r.more), count: oe(r.count) });
const putJson = (r: PutResult) => ({ header: headerJson(r.header), prev_kv: r.prevKv && kvJson(r.prevKv) });
const deleteJson = (r: DeleteResult) => ({ header: headerJson(r.header), deleted: oe(r.deleted), prev_kvs: oe(r.prevKvs.map(kvJson)) });
function txnJson(r: TxnResult): unknown {
  const responses = r.responses.map((x) => {
    switch (x.type) {
      case 'range':
        return { Response: { ResponseRange: rangeJson(x.range) } };
      case 'put':
        return { Response: { ResponsePut: putJson(x.put) } };
      case 'delete':
        return { Response: { ResponseDeleteRange: deleteJson(x.delete) } };
      default:
        return { Response: { ResponseTxn: txnJson(x.txn) } };
    }
  });
  return { header: headerJson(r.header), succeeded: oe(r.succeeded), responses: oe(responses) };
}
/** etcdctl's lease JSON: the header's fields inline. */
const flatHeader = (h: ResponseHeader) => ({ cluster_id: h.clusterId, member_id: h.memberId, revision: h.revision, raft_term: h.raftTerm });

function printKvs(kvs: KeyValue[], keysOnly = false): void {
  for (const kv of kvs) {
    out(kv.keyString());
    out(keysOnly ? '' : kv.valueString());
  }
}

function printPut(r: PutResult): void {
  out('OK');
  if (r.prevKv) printKvs([r.prevKv]);
}

function printDelete(r: DeleteResult): void {
  out(String(r.deleted));
  printKvs(r.prevKvs);
}

function printTxn(r: TxnResult): void {
  out(r.succeeded ? 'SUCCESS' : 'FAILURE');
  for (const x of r.responses) {
    out('');
    if (x.type === 'range') printKvs(x.range.kvs);
    else if (x.type === 'put') printPut(x.put);
    else if (x.type === 'delete') printDelete(x.delete);
    else printTxn(x.txn);
  }
}

/** Go's humanize.Bytes (SI units), as etcdctl prints DB sizes. */
function humanBytes(n: bigint): string {
  const s = Number(n);
  if (s < 10) return `${s} B`;
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'];
  const e = Math.floor(Math.log(s) / Math.log(1000));
  const val = Math.floor((s / 1000 ** e) * 10 + 0.5) / 10;
  return `${val < 10 ? val.toFixed(1) : val.toFixed(0)} ${units[e]}`;
}

/** A duration as Go's time.Duration prints it (e.g. `1.70228ms`). */
function goDuration(ms: number): string {
  const trim = (s: string): string => s.replace(/\.?0+$/, '');
  if (ms < 1) return `${trim((ms * 1000).toFixed(3))}µs`;
  if (ms < 1000) return `${trim(ms.toFixed(6))}ms`;
  return `${trim((ms / 1000).toFixed(9))}s`;
}

// ---- argument parsers ----

function nonNegative(name: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`${name} must be a non-negative integer, got "${v}"`);
    return Number(v);
  };
}

function parseLeaseId(v: string): bigint {
  if (!/^[0-9a-fA-F]{1,16}$/.test(v)) throw new UsageError(`bad lease ID "${v}", expecting ID in hex`);
  return BigInt(`0x${v}`);
}

const SORT_TARGETS: Record<string, SortTarget> = { KEY: 'KEY', VERSION: 'VERSION', CREATE: 'CREATE', MODIFY: 'MOD', VALUE: 'VALUE' };

// ---- command plumbing ----

function endpointsOf(o: Common): string[] {
  return (o.endpoints ?? process.env.FLOTILLA_ENDPOINTS ?? DEFAULT_ENDPOINTS).split(',').map((s) => s.trim()).filter(Boolean);
}

/**
 * TLS from --cacert/--cert/--key/--insecure-skip-tls-verify (or FLOTILLA_CACERT, ...), as
 * etcdctl: any of them, or an https:// endpoint, turns TLS on; none of them means plain text.
 */
function tlsOf(o: Common): ClientTlsOptions | undefined {
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

/** Adds --endpoints, the TLS flags and -w to a command. */
function common(c: Command, formats: readonly string[] = ['simple', 'json']): Command {
  return c
    .option('--endpoints <list>', `comma-separated host:port of the members (env FLOTILLA_ENDPOINTS; default ${DEFAULT_ENDPOINTS})`)
    .option('--cacert <file>', 'verify the servers\' certificates with this CA bundle, and use TLS (env FLOTILLA_CACERT)')
    .option('--cert <file>', 'TLS client certificate, for servers with client certificate auth (env FLOTILLA_CERT)')
    .option('--key <file>', 'its private key (env FLOTILLA_KEY)')
    .option('--insecure-skip-tls-verify', 'use TLS without verifying the server\'s certificate (env FLOTILLA_INSECURE_SKIP_TLS_VERIFY=true)')
    .option('--session-file <path>', 'keep the highest revision seen here, for --consistency session across commands (env FLOTILLA_SESSION_FILE)')
    .option('--user <name[:password]>', 'authenticate as this user when the cluster has auth on (env FLOTILLA_USER)')
    .option('--password <password>', 'the password of --user (env FLOTILLA_PASSWORD)')
    .addOption(new Option('-w, --write-out <format>', 'output format').choices(formats).default('simple'));
}

/**
 * A table as etcdctl's `-w table` prints it (olekukonko/tablewriter with right-aligned cells):
 * `+---+` rules, headers upper-cased and centred, one space of padding.
 */
export function goTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const width = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const rule = `+${width.map((w) => '-'.repeat(w + 2)).join('+')}+`;
  const centre = (s: string, w: number): string => {
    const gap = w - s.length;
    return ' '.repeat(Math.floor(gap / 2)) + s + ' '.repeat(gap - Math.floor(gap / 2));
  };
  const line = (cells: readonly string[], fmt: (s: string, w: number) => string): string => `| ${cells.map((c, i) => fmt(c, width[i]!)).join(' | ')} |`;
  return [rule, line(headers.map((h) => h.toUpperCase()), centre), rule, ...rows.map((r) => line(r, (c, w) => c.padStart(w))), rule].join('\n');
}

function fail(e: unknown): void {
  const msg = e instanceof ClientError ? e.details : e instanceof Error ? e.message : String(e);
  process.stderr.write(`Error: ${msg}\n`);
  process.exitCode = 1;
}

/**
 * Runs a command body with a client. The body returns its output as a function, run only on
 * success (so a failure prints nothing on stdout), or 'hold' when it keeps running (watch, lock,
 * ...) and closes the client itself.
 */
async function run(o: Common, body: (c: FlotillaClient, json: boolean) => Promise<(() => void) | 'hold'>): Promise<void> {
  let c: FlotillaClient;
  try {
    const tls = tlsOf(o);
    // grpc-js sets the TLS server name to an IP endpoint, which Node (DEP0123) warns about on
    // stderr once per process; the certificate is still checked against the IP. Quiet for the CLI.
    if (tls || endpointsOf(o).some((e) => e.startsWith('https://'))) process.noDeprecation = true;
    const auth = credentialsOf(o);
    c = new FlotillaClient({ endpoints: endpointsOf(o), ...(tls ? { tls } : {}), ...(auth ? { auth } : {}) });
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
function holdSession(c: FlotillaClient, id: bigint): () => Promise<void> {
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
function onInterrupt(cleanup: () => Promise<void>, code = 0): void {
  const handler = (): void => {
    void cleanup()
      .catch(() => undefined)
      .finally(() => process.exit(code));
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
}

// ---- txn input (etcdctl's format) ----

/** Splits a line into words; "double quoted" words may contain spaces and Go/JSON escapes. */
function words(line: string): string[] {
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  const res: string[] = [];
  for (let m = re.exec(line); m; m = re.exec(line)) res.push(m[1] !== undefined ? unquote(m[1]) : m[2]!);
  return res;
}

function unquote(s: string): string {
  try {
    return JSON.parse(`"${s}"`) as string;
  } catch {
    throw new UsageError(`bad quoted string "${s}"`);
  }
}

const COMPARE_TARGETS: Record<string, CompareTarget> = { c: 'CREATE', create: 'CREATE', m: 'MOD', mod: 'MOD', val: 'VALUE', value: 'VALUE', ver: 'VERSION', version: 'VERSION', lease: 'LEASE' };
const COMPARE_OPS = { '=': 'EQUAL', '!=': 'NOT_EQUAL', '<': 'LESS', '>': 'GREATER' } as const;

/** `<target>("<key>") <op> "<value>"`, e.g. `mod("k") > "0"`. Lease values are hex. */
export function parseCompare(line: string): Compare {
  const m = /^\s*(\w+)\("((?:[^"\\]|\\.)*)"\)\s*(!=|=|<|>)\s*"((?:[^"\\]|\\.)*)"\s*$/.exec(line);
  const target = m && COMPARE_TARGETS[m[1]!];
  if (!m || !target) throw new UsageError(`malformed comparison: ${line}`);
  const key = unquote(m[2]!);
  const raw = unquote(m[4]!);
  let value: string | bigint = raw;
  if (target === 'LEASE') value = parseLeaseId(raw);
  else if (target !== 'VALUE') {
    if (!/^-?\d+$/.test(raw)) throw new UsageError(`malformed comparison: ${line} (expected an integer)`);
    value = BigInt(raw);
  }
  return { key, target, result: COMPARE_OPS[m[3] as keyof typeof COMPARE_OPS], value };
}

/** `put <key> <value> [--lease=<hex>] [--prev-kv]...`, `get <key> [end] [flags]`, `del <key> [end] [flags]`. */
export function parseOp(line: string): TxnOp {
  const [verb, ...rest] = words(line);
  const flags = new Map<string, string>();
  const args: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const w = rest[i]!;
    const f = /^--?([\w-]+)(?:=(.*))?$/.exec(w);
    if (!f) args.push(w);
    else if (f[2] !== undefined) flags.set(f[1]!, f[2]);
    else if (['lease', 'rev', 'limit', 'sort-by', 'order', 'consistency'].includes(f[1]!)) flags.set(f[1]!, rest[++i] ?? '');
    else flags.set(f[1]!, 'true');
  }
  const bool = (k: string): boolean => flags.get(k) === 'true';
  const known = (allowed: string[]): void => {
    for (const k of flags.keys()) if (!allowed.includes(k)) throw new UsageError(`unknown flag --${k} in "${line}"`);
  };
  const key = args[0];
  if (key === undefined) throw new UsageError(`missing key in "${line}"`);
  switch (verb) {
    case 'put': {
      known(['lease', 'prev-kv', 'ignore-value', 'ignore-lease']);
      if (args.length !== 2 && !(args.length === 1 && bool('ignore-value'))) throw new UsageError(`put needs <key> <value>: "${line}"`);
      const lease = flags.get('lease');
      return { put: { key, value: args[1] ?? '', ...(lease ? { lease: parseLeaseId(lease) } : {}), prevKv: bool('prev-kv'), ignoreValue: bool('ignore-value'), ignoreLease: bool('ignore-lease') } };
    }
    case 'get': {
      known(['prefix', 'from-key', 'rev', 'limit', 'sort-by', 'order', 'keys-only', 'count-only', 'consistency']);
      const g: GetOptions = { prefix: bool('prefix'), fromKey: bool('from-key'), keysOnly: bool('keys-only'), countOnly: bool('count-only') };
      if (args[1] !== undefined) g.rangeEnd = args[1];
      if (flags.has('rev')) g.revision = nonNegative('--rev')(flags.get('rev')!);
      if (flags.has('limit')) g.limit = nonNegative('--limit')(flags.get('limit')!);
      if (flags.has('sort-by') || flags.has('order')) Object.assign(g, sortOptions(flags.get('sort-by'), flags.get('order')));
      return { get: { key, ...g } };
    }
    case 'del':
    case 'delete': {
      known(['prefix', 'from-key', 'prev-kv']);
      return { delete: { key, prefix: bool('prefix'), fromKey: bool('from-key'), prevKv: bool('prev-kv'), ...(args[1] !== undefined ? { rangeEnd: args[1] } : {}) } };
    }
    default:
      throw new UsageError(`malformed operation: ${line} (expected put, get or del)`);
  }
}

/** Parses etcdctl's non-interactive txn input: compares, a blank line, success ops, a blank line, failure ops. */
export function parseTxn(text: string): { compare: Compare[]; success: TxnOp[]; failure: TxnOp[] } {
  const sections: string[][] = [[], [], []];
  let s = 0;
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === '') {
      if (++s > 2) break;
      continue;
    }
    sections[s]!.push(line);
  }
  return { compare: sections[0]!.map(parseCompare), success: sections[1]!.map(parseOp), failure: sections[2]!.map(parseOp) };
}

function sortOptions(sortBy: string | undefined, order: string | undefined): Pick<GetOptions, 'sortTarget' | 'sortOrder'> {
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

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

// ---- the commands ----

/** Adds the client commands to `program` (which the caller parses). */
export function registerClientCommands(program: Command): void {
  common(program.command('put').description('put a key').argument('<key>').argument('<value>'))
    .option('--lease <id>', 'attach the key to this lease (hex id)')
    .option('--prev-kv', 'print the previous key-value')
    .action((key: string, value: string, o: Common & { lease?: string; prevKv?: boolean }) =>
      run(o, async (c, json) => {
        const r = await c.put(key, value, { ...(o.lease !== undefined ? { lease: parseLeaseId(o.lease) } : {}), prevKv: Boolean(o.prevKv) });
        return () => (json ? out(goJson(putJson(r))) : printPut(r));
      }),
    );

  common(program.command('get').description('get a key or a range of keys').argument('<key>').argument('[rangeEnd]'))
    .option('--prefix', 'get keys with this prefix')
    .option('--from-key', 'get keys >= key')
    .option('--rev <n>', 'read at this revision', nonNegative('--rev'))
    .option('--limit <n>', 'at most this many keys', nonNegative('--limit'))
    .option('--keys-only', 'keys only')
    .option('--count-only', 'print only the number of keys')
    .option('--sort-by <target>', 'KEY, VERSION, CREATE, MODIFY or VALUE')
    .option('--order <order>', 'ASCEND or DESCEND')
    .addOption(
      new Option('--consistency <level>', 'l: linearizable (ReadIndex); s: serializable (this member\'s state, may be stale); session: this member\'s state once it has applied everything this session saw (needs --session-file)')
        .choices(['l', 's', 'session'])
        .default('l'),
    )
    .action((key: string, rangeEnd: string | undefined, o: Common & { prefix?: boolean; fromKey?: boolean; rev?: number; limit?: number; keysOnly?: boolean; countOnly?: boolean; sortBy?: string; order?: string; consistency: string }) =>
      run(o, async (c, json) => {
        if (rangeEnd !== undefined && (o.prefix || o.fromKey)) throw new UsageError('too many arguments: a range end cannot be combined with --prefix or --from-key');
        if (o.consistency === 'session' && !sessionFileOf(o)) throw new UsageError('--consistency session needs --session-file (or FLOTILLA_SESSION_FILE): where commands share the revisions they saw');
        const r = await c.get(key, {
          prefix: Boolean(o.prefix),
          fromKey: Boolean(o.fromKey),
          ...(rangeEnd !== undefined ? { rangeEnd } : {}),
          revision: o.rev ?? 0,
          limit: o.limit ?? 0,
          keysOnly: Boolean(o.keysOnly),
          countOnly: Boolean(o.countOnly),
          consistency: o.consistency === 'l' ? 'linearizable' : o.consistency === 's' ? 'serializable' : 'session',
          ...sortOptions(o.sortBy, o.order),
        });
        return () => {
          if (json) out(goJson(rangeJson(r)));
          else if (o.countOnly) out(String(r.count));
          else printKvs(r.kvs, o.keysOnly);
        };
      }),
    );

  common(program.command('del').description('delete a key or a range of keys').argument('<key>').argument('[rangeEnd]'))
    .option('--prefix', 'delete keys with this prefix')
    .option('--from-key', 'delete keys >= key')
    .option('--prev-kv', 'print the deleted key-values')
    .action((key: string, rangeEnd: string | undefined, o: Common & { prefix?: boolean; fromKey?: boolean; prevKv?: boolean }) =>
      run(o, async (c, json) => {
        if (rangeEnd !== undefined && (o.prefix || o.fromKey)) throw new UsageError('too many arguments: a range end cannot be combined with --prefix or --from-key');
        const r = await c.delete(key, { prefix: Boolean(o.prefix), fromKey: Boolean(o.fromKey), prevKv: Boolean(o.prevKv), ...(rangeEnd !== undefined ? { rangeEnd } : {}) });
        return () => (json ? out(goJson(deleteJson(r))) : printDelete(r));
      }),
    );

  common(program.command('txn').description('run a transaction read from stdin (etcdctl format: compares, blank line, success ops, blank line, failure ops)')).action((o: Common) =>
    run(o, async (c, json) => {
      const r = await c.txn(parseTxn(await readStdin()));
      return () => (json ? out(goJson(txnJson(r))) : printTxn(r));
    }),
  );

  common(program.command('watch').description('print the events on a key or range until interrupted').argument('<key>').argument('[rangeEnd]'))
    .option('--prefix', 'watch keys with this prefix')
    .option('--rev <n>', 'start at this revision', nonNegative('--rev'))
    .option('--prev-kv', 'print each event\'s previous key-value')
    .action((key: string, rangeEnd: string | undefined, o: Common & { prefix?: boolean; rev?: number; prevKv?: boolean }) =>
      run(o, async (c, json) => {
        const w = c.watch(key, {
          prefix: Boolean(o.prefix),
          ...(rangeEnd !== undefined ? { rangeEnd } : {}),
          startRevision: o.rev ?? 0,
          prevKv: Boolean(o.prevKv),
        }, (events: WatchEvent[], h: ResponseHeader) => {
          if (json) {
            const evs = events.map((e) => ({ type: e.type === 'DELETE' ? 1 : undefined, kv: kvJson(e.kv), prev_kv: e.prevKv && kvJson(e.prevKv) }));
            out(goJson({ Header: headerJson(h), Events: evs, CompactRevision: 0, Canceled: false, Created: false }));
            return;
          }
          for (const e of events) {
            out(e.type);
            if (e.prevKv) printKvs([e.prevKv]);
            printKvs([e.kv]);
          }
        });
        onInterrupt(() => c.close());
        void w.done.then((e) => {
          if (e) fail(e);
          void c.close();
        });
        return 'hold';
      }),
    );

  registerLease(program);
  registerAuth(program);
  registerLock(program);
  registerElect(program);
  registerCluster(program);
}

function registerLease(program: Command): void {
  const lease = program.command('lease').description('lease commands: grant, revoke, timetolive, list, keep-alive');

  common(lease.command('grant').description('grant a lease').argument('<ttl>', 'seconds', nonNegative('<ttl>'))).action((ttl: number, o: Common) =>
    run(o, async (c, json) => {
      const r = await c.leaseGrant(ttl);
      return () => out(json ? goJson({ ...flatHeader(r.header), ID: r.id, TTL: BigInt(r.ttl), Error: '' }) : `lease ${leaseHex(r.id)} granted with TTL(${r.ttl}s)`);
    }),
  );

  common(lease.command('revoke').description('revoke a lease (deleting its keys)').argument('<id>', 'lease id (hex)')).action((id: string, o: Common) =>
    run(o, async (c, json) => {
      const lid = parseLeaseId(id);
      const h = await c.leaseRevoke(lid);
      return () => out(json ? goJson({ header: headerJson(h) }) : `lease ${leaseHex(lid)} revoked`);
    }),
  );

  common(lease.command('timetolive').description('show a lease\'s remaining TTL').argument('<id>', 'lease id (hex)'))
    .option('--keys', 'also list the attached keys')
    .action((id: string, o: Common & { keys?: boolean }) =>
      run(o, async (c, json) => {
        const r = await c.leaseTimeToLive(parseLeaseId(id), { keys: Boolean(o.keys) });
        return () => {
          if (json) return out(goJson({ ...flatHeader(r.header), id: r.id, ttl: BigInt(r.ttl), 'granted-ttl': BigInt(r.grantedTtl), keys: r.keys.length ? r.keys : null }));
          if (r.ttl === -1) return out(`lease ${leaseHex(r.id)} already expired`);
          const keys = o.keys ? `, attached keys([${r.keys.map((k) => k.toString('utf8')).join(' ')}])` : '';
          out(`lease ${leaseHex(r.id)} granted with TTL(${r.grantedTtl}s), remaining(${r.ttl}s)${keys}`);
        };
      }),
    );

  common(lease.command('list').description('list all leases')).action((o: Common) =>
    run(o, async (c, json) => {
      const r = await c.leaseLeases();
      return () => {
        if (json) return out(goJson({ ...flatHeader(r.header), leases: r.leases.map((id) => ({ id })) }));
        out(`found ${r.leases.length} leases`);
        for (const id of r.leases) out(leaseHex(id));
      };
    }),
  );

  common(lease.command('keep-alive').description('keep a lease alive until interrupted').argument('<id>', 'lease id (hex)'))
    .option('--once', 'renew once and exit')
    .action((id: string, o: Common & { once?: boolean }) =>
      run(o, async (c, json) => {
        const lid = parseLeaseId(id);
        const show = (r: { header: ResponseHeader; id: bigint; ttl: number }): void =>
          out(json ? goJson({ ...flatHeader(r.header), ID: r.id, TTL: BigInt(r.ttl) }) : `lease ${leaseHex(r.id)} keepalived with TTL(${r.ttl})`);
        if (o.once) {
          const r = await c.leaseKeepAliveOnce(lid);
          if (r.ttl <= 0) throw new Error('etcdserver: requested lease not found');
          return () => show(r);
        }
        const ka = c.leaseKeepAlive(lid, { onKeepAlive: show });
        onInterrupt(() => c.close());
        void ka.done.then((e) => {
          if (e && !json) out(`lease ${leaseHex(lid)} expired or revoked.`);
          void c.close();
        });
        return 'hold';
      }),
    );
}

function registerLock(program: Command): void {
  common(program.command('lock').description('acquire a lock; hold it until interrupted, or run a command while holding it').argument('<name>').argument('[command...]'))
    .option('--ttl <s>', 'TTL of the lock\'s session lease', nonNegative('--ttl'), CLI_SESSION_TTL)
    .action((name: string, command: string[], o: Common & { ttl: number }) =>
      run(o, async (c) => {
        const { id } = await c.leaseGrant(o.ttl);
        const endSession = holdSession(c, id);
        const release = async (): Promise<void> => {
          await endSession();
          await c.close();
        };
        onInterrupt(release);
        let lock;
        try {
          lock = await c.lock(name, { lease: id });
        } catch (e) {
          await endSession();
          throw e;
        }
        if (command.length === 0) {
          out(lock.key.toString('utf8'));
          return 'hold';
        }
        const child = spawn(command[0]!, command.slice(1), {
          stdio: 'inherit',
          env: { ...process.env, ETCD_LOCK_KEY: lock.key.toString('utf8'), ETCD_LOCK_REV: lock.revision.toString() },
        });
        child.on('error', (e) => {
          fail(e);
          void release();
        });
        child.on('exit', (code, signal) => {
          process.exitCode = code ?? (signal ? 1 : 0);
          void c.unlock(lock.key).catch(() => undefined).then(release);
        });
        return 'hold';
      }),
    );
}

function registerElect(program: Command): void {
  common(program.command('elect').description('campaign with a proposal and hold leadership until interrupted; without a proposal, print each leader').argument('<name>').argument('[proposal]'))
    .option('-l, --listen', 'observe the election (the default without a proposal)')
    .option('--ttl <s>', 'TTL of the campaign\'s session lease', nonNegative('--ttl'), CLI_SESSION_TTL)
    .action((name: string, proposal: string | undefined, o: Common & { listen?: boolean; ttl: number }) =>
      run(o, async (c) => {
        if (proposal === undefined || o.listen) {
          const ob = c.observe(name, (kv) => printKvs([kv]));
          onInterrupt(() => c.close());
          void ob.done.then(() => c.close());
          return 'hold';
        }
        const { id } = await c.leaseGrant(o.ttl);
        const endSession = holdSession(c, id);
        let leader: Awaited<ReturnType<FlotillaClient['campaign']>> | undefined;
        onInterrupt(async () => {
          if (leader) await c.resign(leader).catch(() => undefined);
          await endSession();
          await c.close();
        });
        try {
          leader = await c.campaign(name, proposal, { lease: id });
        } catch (e) {
          await endSession();
          throw e;
        }
        out(leader.key.toString('utf8'));
        out(proposal);
        return 'hold';
      }),
    );
}

function registerCluster(program: Command): void {
  const member = program.command('member').description('membership commands: add, remove, update, promote, list');
  // etcdctl's member id argument: hex.
  const memberIdArg = (s: string): bigint => {
    if (!/^[0-9a-fA-F]{1,16}$/.test(s)) throw new Error(`bad member ID arg (strconv.ParseUint: parsing ${JSON.stringify(s)}: invalid syntax), expecting ID in Hex`);
    return BigInt(`0x${s}`);
  };
  const hex16 = (id: bigint): string => id.toString(16).padStart(16, ' ');
  const listJson = (r: MemberListResult): object => ({
    header: headerJson(r.header),
    members: r.members.map((m) => ({ ID: m.id, name: oe(m.name), peerURLs: oe(m.peerURLs), clientURLs: oe(m.clientURLs), isLearner: oe(m.isLearner) })),
  });
  const peerUrlList = (s: string | undefined, what: string): string[] => {
    const list = (s ?? '').split(',').map((x) => x.trim()).filter(Boolean);
    if (list.length === 0) throw new Error(what);
    return list;
  };

  common(member.command('add').argument('<name>', 'the new member\'s name').description('add a member (then start it with the settings printed)'))
    .option('--peer-urls <urls>', 'comma-separated peer URLs of the new member')
    .option('--learner', 'add it as a learner (a non-voting member that can be promoted once it has caught up)')
    .action((name: string, o: Common & { peerUrls?: string; learner?: boolean }) =>
      run(o, async (c, json) => {
        const urls = peerUrlList(o.peerUrls, 'member peer urls not provided');
        const r = await c.memberAdd(urls, { isLearner: o.learner === true });
        return () => {
          if (json) return out(goJson({ ...listJson(r), member: { ID: r.member.id, peerURLs: oe(r.member.peerURLs), isLearner: oe(r.member.isLearner) } }));
          // etcdctl's words and the settings the new member needs.
          out(`Member ${hex16(r.member.id)} added to cluster ${hex16(r.header.clusterId)}`);
          const conf = r.members.flatMap((m) => m.peerURLs.map((u) => `${m.id === r.member.id ? name : m.name}=${u}`));
          out('');
          out(`ETCD_NAME=${JSON.stringify(name)}`);
          out(`ETCD_INITIAL_CLUSTER=${JSON.stringify(conf.join(','))}`);
          out(`ETCD_INITIAL_ADVERTISE_PEER_URLS=${JSON.stringify(urls.join(','))}`);
          out('ETCD_INITIAL_CLUSTER_STATE="existing"');
        };
      }),
    );
  common(member.command('remove').argument('<memberID>', 'the member\'s id (hex)').description('remove a member')).action((id: string, o: Common) =>
    run(o, async (c, json) => {
      const r = await c.memberRemove(memberIdArg(id));
      return () => (json ? out(goJson(listJson(r))) : out(`Member ${hex16(BigInt(`0x${id}`))} removed from cluster ${hex16(r.header.clusterId)}`));
    }),
  );
  common(member.command('update').argument('<memberID>', 'the member\'s id (hex)').description('change a member\'s peer URLs'))
    .option('--peer-urls <urls>', 'comma-separated new peer URLs')
    .action((id: string, o: Common & { peerUrls?: string }) =>
      run(o, async (c, json) => {
        const r = await c.memberUpdate(memberIdArg(id), peerUrlList(o.peerUrls, 'member peer urls not provided'));
        return () => (json ? out(goJson(listJson(r))) : out(`Member ${hex16(BigInt(`0x${id}`))} updated in cluster ${hex16(r.header.clusterId)}`));
      }),
    );
  common(member.command('promote').argument('<memberID>', 'the learner\'s id (hex)').description('make a learner a voting member')).action((id: string, o: Common) =>
    run(o, async (c, json) => {
      const r = await c.memberPromote(memberIdArg(id));
      return () => (json ? out(goJson(listJson(r))) : out(`Member ${hex16(BigInt(`0x${id}`))} promoted in cluster ${hex16(r.header.clusterId)}`));
    }),
  );
  common(member.command('list').description('list the cluster\'s members')).action((o: Common) =>
    run(o, async (c, json) => {
      const r = await c.memberList();
      return () => {
        if (json) return out(goJson(listJson(r)));
        for (const m of r.members) out(`${m.id.toString(16)}, ${m.name ? 'started' : 'unstarted'}, ${m.name}, ${m.peerURLs.join(',')}, ${m.clientURLs.join(',')}, ${m.isLearner}`);
      };
    }),
  );

  const endpoint = program.command('endpoint').description('endpoint commands: status, health');
  const targets = async (c: FlotillaClient, cluster: boolean | undefined): Promise<string[]> =>
    cluster ? (await c.memberList()).members.flatMap((m) => m.clientURLs) : c.endpoints;

  common(endpoint.command('status').description('status of each endpoint'), ['simple', 'json', 'table'])
    .option('--cluster', 'all members\' client URLs (from member list) instead of --endpoints')
    .action((o: Common & { cluster?: boolean }) =>
      run(o, async (c, json) => {
        const eps = await targets(c, o.cluster);
        const all = await Promise.all(eps.map(async (ep) => ({ ep, r: await c.status(ep) })));
        return () => {
          if (json) {
            const st = all.map(({ ep, r }) => ({
              Endpoint: ep,
              Status: {
                header: headerJson(r.header), version: oe(r.version), dbSize: oe(r.dbSize), leader: oe(r.leader), raftIndex: oe(r.raftIndex), raftTerm: oe(r.raftTerm), raftAppliedIndex: oe(r.raftAppliedIndex), errors: oe(r.errors), dbSizeInUse: oe(r.dbSizeInUse), isLearner: oe(r.isLearner),
                // Flotilla's disk self-diagnosis (absent from etcd's answers): both, or neither.
                ...(r.fdatasyncP99Ms > 0 ? { fdatasyncP99Ms: r.fdatasyncP99Ms, slowFdatasyncs: r.slowFdatasyncs } : {}),
              },
            }));
            return out(goJson(st));
          }
          if (o.writeOut === 'table') {
            const head = ['endpoint', 'ID', 'version', 'db size', 'is leader', 'is learner', 'raft term', 'raft index', 'raft applied index', 'errors'];
            return out(goTable(head, all.map(({ ep, r }) => [ep, r.header.memberId.toString(16), r.version, humanBytes(r.dbSize), String(r.leader === r.header.memberId), String(r.isLearner), String(r.raftTerm), String(r.raftIndex), String(r.raftAppliedIndex), r.errors.join(', ')])));
          }
          for (const { ep, r } of all) {
            out(`${ep}, ${r.header.memberId.toString(16)}, ${r.version}, ${humanBytes(r.dbSize)}, ${r.leader === r.header.memberId}, ${r.isLearner}, ${r.raftTerm}, ${r.raftIndex}, ${r.raftAppliedIndex}, ${r.errors.join(', ')}`);
          }
        };
      }),
    );

  common(endpoint.command('health').description('whether each endpoint serves a linearizable read'), ['simple', 'json', 'table'])
    .option('--cluster', 'all members\' client URLs (from member list) instead of --endpoints')
    .action((o: Common & { cluster?: boolean }) =>
      run(o, async (c, json) => {
        const eps = await targets(c, o.cluster);
        const all = await Promise.all(eps.map((ep) => c.health(ep)));
        return () => {
          if (o.writeOut === 'table') out(goTable(['endpoint', 'health', 'took', 'error'], all.map((h, i) => [eps[i]!, String(h.health), goDuration(h.tookMs), h.error ?? ''])));
          all.forEach((h, i) => {
            if (json || o.writeOut === 'table') return;
            if (h.health) out(`${eps[i]} is healthy: successfully committed proposal: took = ${goDuration(h.tookMs)}`);
            else process.stderr.write(`${eps[i]} is unhealthy: failed to commit proposal: ${h.error}\n`);
          });
          if (json) out(goJson(all.map((h, i) => ({ endpoint: eps[i], health: h.health, took: goDuration(h.tookMs), error: h.error }))));
          if (all.some((h) => !h.health)) fail(new Error('unhealthy cluster'));
        };
      }),
    );
}

// ---- auth: user, role, auth (etcdctl's texts) ----

/** A password from the first line of stdin (etcdctl's --interactive=false). */
async function passwordFromStdin(): Promise<string> {
  const line = (await readStdin()).split('\n')[0]!.replace(/\r$/, '');
  if (line === '') throw new UsageError('empty password');
  return line;
}

/** etcdctl's permRange: the key and range end of --prefix / --from-key / [endkey]. */
function permRange(key: string, end: string | undefined, o: { prefix?: boolean; fromKey?: boolean }): { key: Buffer; rangeEnd: Buffer } {
  if (o.prefix && o.fromKey) throw new UsageError('--from-key and --prefix flags are mutually exclusive');
  if (key === '') return { key: Buffer.from([0]), rangeEnd: o.prefix || o.fromKey ? Buffer.from([0]) : Buffer.alloc(0) };
  if (end !== undefined) {
    if (o.prefix) throw new UsageError('unexpected endkey argument with --prefix flag');
    if (o.fromKey) throw new UsageError('unexpected endkey argument with --from-key flag');
    return { key: Buffer.from(key), rangeEnd: Buffer.from(end) };
  }
  const k = Buffer.from(key);
  return { key: k, rangeEnd: o.prefix ? prefixEnd(k) : o.fromKey ? Buffer.from([0]) : Buffer.alloc(0) };
}

/** etcdctl's simplePrinter.RoleGet. */
function printRole(role: string, perms: Permission[]): void {
  out(`Role ${role}`);
  const line = (p: Permission): string => {
    if (p.rangeEnd.length === 0) return `\t${p.key.toString()}`;
    const k = p.key.toString();
    const e = p.rangeEnd.toString();
    let s = e !== '\0' ? `\t[${k}, ${e})` : `\t[${k}, <open ended>`;
    if (prefixEnd(p.key).toString() === e) s += ` (prefix ${k})`;
    return s;
  };
  out('KV Read:');
  for (const p of perms) if (p.permType === 'READ' || p.permType === 'READWRITE') out(line(p));
  out('KV Write:');
  for (const p of perms) if (p.permType === 'WRITE' || p.permType === 'READWRITE') out(line(p));
}

function registerAuth(program: Command): void {
  const user = program.command('user').description('user commands: add, get, list, delete, passwd, grant-role, revoke-role');
  common(user.command('add').description('add a user').argument('<name>', 'user name, or user:password'))
    .option('--interactive <bool>', 'false: read the password from stdin', 'true')
    .option('--new-user-password <password>', 'the password')
    .option('--no-password', 'a user without password (a client certificate\'s CN authenticates it)')
    .action((arg: string, o: Common & { interactive: string; newUserPassword?: string }) =>
      run(o, async (c) => {
        // commander's --no-password sets `password: false` (and --password <p> a string).
        const noPassword = (o.password as unknown) === false;
        let name = arg;
        let password = o.newUserPassword;
        const i = arg.indexOf(':');
        if (!noPassword && password === undefined && i >= 0) {
          name = arg.slice(0, i);
          password = arg.slice(i + 1);
        }
        if (name === '') throw new UsageError('empty user name is not allowed');
        if (!noPassword && password === undefined) password = await passwordFromStdin();
        await c.userAdd(name, password ?? '', { noPassword });
        return () => out(`User ${name} created`);
      }),
    );
  common(user.command('get').description('a user\'s roles').argument('<name>'))
    .option('--detail', 'show the permissions of the roles')
    .action((name: string, o: Common & { detail?: boolean }) =>
      run(o, async (c) => {
        const roles = await c.userGet(name);
        const detail = o.detail ? await Promise.all(roles.map((r) => c.roleGet(r))) : [];
        return () => {
          out(`User: ${name}`);
          if (o.detail) {
            roles.forEach((r, i) => {
              out('');
              printRole(r, detail[i]!);
            });
          } else out(`Roles:${roles.map((r) => ` ${r}`).join('')}`);
        };
      }),
    );
  common(user.command('list').description('list the users')).action((o: Common) =>
    run(o, async (c) => {
      const users = await c.userList();
      return () => users.forEach((u) => out(u));
    }),
  );
  common(user.command('delete').description('delete a user').argument('<name>')).action((name: string, o: Common) =>
    run(o, async (c) => {
      await c.userDelete(name);
      return () => out(`User ${name} deleted`);
    }),
  );
  common(user.command('passwd').description('change a user\'s password (read from stdin)').argument('<name>'))
    .option('--interactive <bool>', 'false: read the password from stdin', 'true')
    .action((name: string, o: Common) =>
      run(o, async (c) => {
        await c.userChangePassword(name, await passwordFromStdin());
        return () => out('Password updated');
      }),
    );
  common(user.command('grant-role').description('grant a role to a user').argument('<name>').argument('<role>')).action((name: string, role: string, o: Common) =>
    run(o, async (c) => {
      await c.userGrantRole(name, role);
      return () => out(`Role ${role} is granted to user ${name}`);
    }),
  );
  common(user.command('revoke-role').description('revoke a role from a user').argument('<name>').argument('<role>')).action((name: string, role: string, o: Common) =>
    run(o, async (c) => {
      await c.userRevokeRole(name, role);
      return () => out(`Role ${role} is revoked from user ${name}`);
    }),
  );

  const role = program.command('role').description('role commands: add, get, list, delete, grant-permission, revoke-permission');
  common(role.command('add').description('add a role').argument('<name>')).action((name: string, o: Common) =>
    run(o, async (c) => {
      await c.roleAdd(name);
      return () => out(`Role ${name} created`);
    }),
  );
  common(role.command('get').description('a role\'s permissions').argument('<name>')).action((name: string, o: Common) =>
    run(o, async (c) => {
      const perms = await c.roleGet(name);
      return () => printRole(name, perms);
    }),
  );
  common(role.command('list').description('list the roles')).action((o: Common) =>
    run(o, async (c) => {
      const roles = await c.roleList();
      return () => roles.forEach((r) => out(r));
    }),
  );
  common(role.command('delete').description('delete a role').argument('<name>')).action((name: string, o: Common) =>
    run(o, async (c) => {
      await c.roleDelete(name);
      return () => out(`Role ${name} deleted`);
    }),
  );
  common(role.command('grant-permission').description('grant a permission (read, write or readwrite) on a key, [key, endkey), a prefix or everything from a key').argument('<role>').argument('<type>').argument('<key>').argument('[endkey]'))
    .option('--prefix', 'a prefix permission')
    .option('--from-key', 'every key from <key> on (byte order)')
    .action((name: string, type: string, key: string, end: string | undefined, o: Common & { prefix?: boolean; fromKey?: boolean }) =>
      run(o, async (c) => {
        const permType = type.toUpperCase();
        if (permType !== 'READ' && permType !== 'WRITE' && permType !== 'READWRITE') throw new UsageError(`invalid permission type ${type}`);
        const r = permRange(key, end, o);
        await c.roleGrantPermission(name, permType, r.key, r.rangeEnd);
        return () => out(`Role ${name} updated`);
      }),
    );
  common(role.command('revoke-permission').description('revoke a permission on a key, a range, a prefix or from a key').argument('<role>').argument('<key>').argument('[endkey]'))
    .option('--prefix', 'a prefix permission')
    .option('--from-key', 'every key from <key> on (byte order)')
    .action((name: string, key: string, end: string | undefined, o: Common & { prefix?: boolean; fromKey?: boolean }) =>
      run(o, async (c) => {
        const r = permRange(key, end, o);
        await c.roleRevokePermission(name, r.key, r.rangeEnd);
        const k = r.key.toString();
        const e = r.rangeEnd.toString();
        return () => out(r.rangeEnd.length === 0 ? `Permission of key ${k} is revoked from role ${name}` : e !== '\0' ? `Permission of range [${k}, ${e}) is revoked from role ${name}` : `Permission of range [${k}, <open ended> is revoked from role ${name}`);
      }),
    );

  const auth = program.command('auth').description('auth commands: enable, disable, status');
  common(auth.command('enable').description('enable authentication (the root user must exist; it is given the root role as etcdctl does)')).action((o: Common) =>
    run(o, async (c) => {
      try {
        await c.authEnable();
      } catch (e) {
        // etcdctl grants root the root role and tries again.
        if (!(e instanceof ClientError) || e.details !== 'etcdserver: root user does not have root role') throw e;
        await c.userGrantRole('root', 'root');
        await c.authEnable();
      }
      return () => out('Authentication Enabled');
    }),
  );
  common(auth.command('disable').description('disable authentication')).action((o: Common) =>
    run(o, async (c) => {
      await c.authDisable();
      return () => out('Authentication Disabled');
    }),
  );
  common(auth.command('status').description('whether authentication is on, and the auth revision (etcdctl 3.5\'s output)')).action((o: Common) =>
    run(o, async (c, json) => {
      const s = await c.authStatus();
      return () => (json ? out(goJson({ enabled: oe(s.enabled), authRevision: oe(s.authRevision) })) : (out(`Authentication Status: ${s.enabled}`), out(`AuthRevision: ${s.authRevision}`)));
    }),
  );
}
