/**
 * What the client commands print, as etcdctl 3.4 prints it (etcdctl's printer_simple.go,
 * printer_json.go and printer_table.go): `-w simple` lines, etcd's JSON (etcd's field names,
 * bytes base64, 64-bit integers as bare numbers, default values omitted; Go's omitempty) and
 * `-w table`. Lease ids are hex, as etcdctl prints them. Pure formatting: no client, no I/O
 * beyond writing lines to stdout.
 */
import type { DeleteResult, KeyValue, Permission, PutResult, RangeResult, ResponseHeader, TxnResult } from '../client/index.js';
import { prefixEnd } from '../client/requests.js';

export const out = (line: string): void => void process.stdout.write(`${line}\n`);
/** A lease id as etcdctl prints it (%016x). */
export const leaseHex = (id: bigint): string => id.toString(16).padStart(16, '0');

/** JSON as Go's encoder writes etcd's messages: bigints as bare numbers, bytes as base64. */
export function goJson(v: unknown): string {
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
export function oe<T>(v: T): T | undefined {
  if (v === 0n || v === 0 || v === false || v === '' || (Buffer.isBuffer(v) && v.length === 0) || (Array.isArray(v) && v.length === 0)) return undefined;
  return v;
}

export const headerJson = (h: ResponseHeader) => ({ cluster_id: oe(h.clusterId), member_id: oe(h.memberId), revision: oe(h.revision), raft_term: oe(h.raftTerm) });
export const kvJson = (kv: KeyValue) => ({ key: oe(kv.key), create_revision: oe(kv.createRevision), mod_revision: oe(kv.modRevision), version: oe(kv.version), value: oe(kv.value), lease: oe(kv.lease) });
export const rangeJson = (r: RangeResult) => ({ header: headerJson(r.header), kvs: oe(r.kvs.map(kvJson)), more: oe(r.more), count: oe(r.count) });
export const putJson = (r: PutResult) => ({ header: headerJson(r.header), prev_kv: r.prevKv && kvJson(r.prevKv) });
export const deleteJson = (r: DeleteResult) => ({ header: headerJson(r.header), deleted: oe(r.deleted), prev_kvs: oe(r.prevKvs.map(kvJson)) });
export function txnJson(r: TxnResult): unknown {
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
export const flatHeader = (h: ResponseHeader) => ({ cluster_id: h.clusterId, member_id: h.memberId, revision: h.revision, raft_term: h.raftTerm });

export function printKvs(kvs: KeyValue[], keysOnly = false): void {
  for (const kv of kvs) {
    out(kv.keyString());
    out(keysOnly ? '' : kv.valueString());
  }
}

export function printPut(r: PutResult): void {
  out('OK');
  if (r.prevKv) printKvs([r.prevKv]);
}

export function printDelete(r: DeleteResult): void {
  out(String(r.deleted));
  printKvs(r.prevKvs);
}

export function printTxn(r: TxnResult): void {
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
export function humanBytes(n: bigint): string {
  const s = Number(n);
  if (s < 10) return `${s} B`;
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'];
  const e = Math.floor(Math.log(s) / Math.log(1000));
  const val = Math.floor((s / 1000 ** e) * 10 + 0.5) / 10;
  return `${val < 10 ? val.toFixed(1) : val.toFixed(0)} ${units[e]}`;
}

/** A duration as Go's time.Duration prints it (e.g. `1.70228ms`). */
export function goDuration(ms: number): string {
  const trim = (s: string): string => s.replace(/\.?0+$/, '');
  if (ms < 1) return `${trim((ms * 1000).toFixed(3))}µs`;
  if (ms < 1000) return `${trim(ms.toFixed(6))}ms`;
  return `${trim((ms / 1000).toFixed(9))}s`;
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

/** etcdctl's simplePrinter.RoleGet. */
export function printRole(role: string, perms: Permission[]): void {
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
