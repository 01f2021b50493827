/**
 * Locks and elections, found in the key listing: the etcd recipes (and etcdctl lock / elect)
 * put one key per contender, `<name>/<lease id in hex>`, attached to that lease. The holder is
 * the contender with the lowest create revision, and that revision is its fencing token (what
 * FlotillaClient.lock returns as `fencingToken`, an election's `rev`).
 */
import { byId, h } from './dom.js';
import { call, fromB64, asText, showBytes } from './gateway.js';
import { keys, type Kv } from './keys.js';

/** Lock and election names shown. */
export const LOCKS_SHOWN_MAX = 200;

interface Contender {
  readonly key: string;
  readonly name: string;
  readonly createRevision: number;
  readonly lease: string;
}

/** The contenders of each lock or election name in the key listing (pure; exported for tests). */
export function findLocks(kvs: Iterable<Kv>): Map<string, Contender[]> {
  const out = new Map<string, Contender[]>();
  for (const kv of kvs) {
    if (!kv.lease || kv.lease === '0') continue;
    const text = asText(fromB64(kv.key));
    if (text === null) continue;
    const slash = text.lastIndexOf('/');
    if (slash <= 0) continue;
    const suffix = text.slice(slash + 1);
    let leaseHex: string;
    try {
      leaseHex = BigInt(kv.lease).toString(16);
    } catch {
      continue;
    }
    if (suffix !== leaseHex) continue;
    const name = text.slice(0, slash);
    const c: Contender = { key: kv.key, name, createRevision: Number(kv.create_revision ?? 0), lease: leaseHex };
    const list = out.get(name);
    if (list) list.push(c);
    else out.set(name, [c]);
  }
  for (const l of out.values()) l.sort((a, b) => a.createRevision - b.createRevision);
  return out;
}

export async function renderLocks(): Promise<void> {
  const groups = [...findLocks(keys.values()).entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).slice(0, LOCKS_SHOWN_MAX);
  const rows = await Promise.all(
    groups.map(async ([name, cs]) => {
      const holder = cs[0]!;
      let value = '';
      try {
        const kv = (await call<{ kvs?: Kv[] }>('kv/range', { key: holder.key })).kvs?.[0];
        value = kv?.value ? showBytes(kv.value) : '';
      } catch {
        value = '?';
      }
      return h(
        'tr',
        { 'data-lock': name },
        h('td', { class: 'mono' }, name),
        h('td', { class: 'holder mono' }, showBytes(holder.key)),
        h('td', { class: 'token' }, holder.createRevision),
        h('td', {}, holder.lease),
        h('td', { class: 'mono' }, value ? `election: ${value}` : 'lock'),
        h('td', {}, cs.length - 1),
      );
    }),
  );
  byId('lock-rows').replaceChildren(...rows);
  byId('locks-note').textContent = groups.length ? '' : 'No lock or election is held (keys <name>/<lease id in hex> attached to that lease).';
}
