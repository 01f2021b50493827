/**
 * etcdctl's transaction input (txn_command.go): compares, a blank line, success operations, a
 * blank line, failure operations, one per line, read from stdin by `flotilla txn`.
 */
import type { Compare, CompareTarget, GetOptions, TxnOp } from '../client/index.js';
import { nonNegative, parseLeaseId, sortOptions, UsageError } from './command.js';

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
