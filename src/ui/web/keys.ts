/**
 * The key browser: every key (without values) listed once through the gateway's range, then
 * kept current by one watch over the whole key space from the listing's revision; shown as a
 * prefix tree split on '/'. A selected key shows its value and its revision history (ranges at
 * older revisions, back to the key's creation or the compaction). Locks and elections are
 * found in the same listing (locks.ts).
 */
import { byId, h } from './dom.js';
import { b64, call, fromB64, GatewayError, asText, hex, showBytes, stream } from './gateway.js';

/** Keys listed (a bigger key space is cut, and the page says so). */
export const KEYS_LIST_MAX = 10_000;
/** Older versions of a key fetched for its history. */
export const HISTORY_MAX = 20;
/** After a watch ends or fails, it is opened again this much later. */
export const WATCH_RETRY_MS = 1_000;
/** Value bytes shown (the rest is counted, not shown). */
export const VALUE_SHOWN_MAX = 64 * 1024;

/** A key as the gateway returns it (etcd's JSON: base64 bytes, int64 as strings, defaults omitted). */
export interface Kv {
  key: string;
  create_revision?: string;
  mod_revision?: string;
  version?: string;
  value?: string;
  lease?: string;
}

interface RangeResponse {
  header?: { revision?: string };
  kvs?: Kv[];
  more?: boolean;
  count?: string;
}

const ALL = b64('\0');
/** base64 key -> its metadata (no value). */
export const keys = new Map<string, Kv>();
let listRevision = 0;
let truncated = false;
let selected: string | null = null;
let filter = '';
const listeners: (() => void)[] = [];
let renderTimer: ReturnType<typeof setTimeout> | null = null;
let watchAbort: AbortController | null = null;
let statusNote = '';

export function onKeys(f: () => void): void {
  listeners.push(f);
}

function changed(): void {
  if (renderTimer) return;
  renderTimer = setTimeout(() => {
    renderTimer = null;
    renderTree();
    for (const f of listeners) f();
  }, 100);
}

const meta = (kv: Kv): Kv => ({ key: kv.key, create_revision: kv.create_revision, mod_revision: kv.mod_revision, version: kv.version, lease: kv.lease });

async function list(): Promise<void> {
  const r = await call<RangeResponse>('kv/range', { key: ALL, range_end: ALL, keys_only: true, limit: KEYS_LIST_MAX });
  keys.clear();
  for (const kv of r.kvs ?? []) keys.set(kv.key, meta(kv));
  truncated = r.more === true;
  listRevision = Number(r.header?.revision ?? 0);
  changed();
}

/** Lists the keys and follows them with a watch, again and again while the page is open. */
export function startKeys(): void {
  const run = async (): Promise<void> => {
    for (;;) {
      try {
        await list();
        statusNote = `live (watching from revision ${listRevision + 1})`;
        renderStatus();
        watchAbort = new AbortController();
        await stream(
          'watch',
          { create_request: { key: ALL, range_end: ALL, start_revision: String(listRevision + 1) } },
          (res) => {
            if (res['compact_revision'] && res['compact_revision'] !== '0') throw new GatewayError(200, 'compacted');
            const events = (res['events'] ?? []) as { type?: string; kv: Kv }[];
            for (const ev of events) {
              if (ev.type === 'DELETE') keys.delete(ev.kv.key);
              else if (truncated && !keys.has(ev.kv.key) && keys.size >= KEYS_LIST_MAX) continue;
              else keys.set(ev.kv.key, meta(ev.kv));
              if (ev.kv.key === selected) void showKey(selected);
            }
            if (events.length > 0) changed();
          },
          watchAbort.signal,
        );
        statusNote = 'the watch ended; listing again';
      } catch (e) {
        statusNote = `not live: ${(e as Error).message}`;
      }
      renderStatus();
      await new Promise((r) => setTimeout(r, WATCH_RETRY_MS));
    }
  };
  void run();
}

/** Stops the watch (after a login, to start again with the token). */
export function restartWatch(): void {
  watchAbort?.abort();
}

function renderStatus(): void {
  byId('keys-status').textContent = `${keys.size} keys${truncated ? ` (only the first ${KEYS_LIST_MAX})` : ''}; ${statusNote}`;
}

interface Dir {
  dirs: Map<string, Dir>;
  leaves: { name: string; key: string; text: string }[];
}

function renderTree(): void {
  renderStatus();
  const root: Dir = { dirs: new Map(), leaves: [] };
  const sorted = [...keys.keys()].map((k) => ({ k, text: showBytes(k) })).sort((a, b) => (a.text < b.text ? -1 : a.text > b.text ? 1 : 0));
  for (const { k, text } of sorted) {
    if (filter && !text.startsWith(filter)) continue;
    const parts = text.split('/');
    let d = root;
    for (const p of parts.slice(0, -1)) {
      const name = `${p}/`;
      let next = d.dirs.get(name);
      if (!next) d.dirs.set(name, (next = { dirs: new Map(), leaves: [] }));
      d = next;
    }
    d.leaves.push({ name: parts[parts.length - 1] || '(empty)', key: k, text });
  }
  const draw = (d: Dir): HTMLElement =>
    h(
      'ul',
      {},
      ...[...d.dirs.entries()].map(([name, sub]) => h('li', {}, h('details', { open: true }, h('summary', {}, name), draw(sub)))),
      ...d.leaves.map((l) => h('li', {}, h('a', { href: '#keys', class: l.key === selected ? 'key selected' : 'key', 'data-key': l.text, 'data-b64': l.key }, l.name))),
    );
  byId('key-tree').replaceChildren(draw(root));
}

function valueView(v: string | undefined): HTMLElement {
  const b = fromB64(v);
  const shown = b.subarray(0, VALUE_SHOWN_MAX);
  const text = asText(shown);
  const more = b.length > shown.length ? ` … (${b.length - shown.length} more bytes)` : '';
  return text !== null ? h('pre', { class: 'value' }, text + more) : h('pre', { class: 'value binary' }, hex(shown) + more);
}

async function showKey(k: string): Promise<void> {
  const box = byId('key-detail');
  let cur: Kv | undefined;
  try {
    cur = (await call<RangeResponse>('kv/range', { key: k })).kvs?.[0];
  } catch (e) {
    box.replaceChildren(h('p', { class: 'bad' }, (e as Error).message));
    return;
  }
  if (selected !== k) return;
  if (!cur) {
    box.replaceChildren(h('h3', {}, showBytes(k)), h('p', { class: 'dim' }, 'deleted'));
    return;
  }
  const history: HTMLElement[] = [];
  let rev = Number(cur.mod_revision ?? 0) - 1;
  let note = '';
  for (let i = 0; i < HISTORY_MAX && rev > 0; i++) {
    let old: Kv | undefined;
    try {
      old = (await call<RangeResponse>('kv/range', { key: k, revision: String(rev) })).kvs?.[0];
    } catch (e) {
      note = (e as Error).message;
      break;
    }
    if (!old) {
      note = `no earlier version (created at revision ${cur.create_revision})`;
      break;
    }
    history.push(h('tr', {}, h('td', {}, old.mod_revision ?? ''), h('td', {}, old.version ?? ''), h('td', {}, valueView(old.value))));
    rev = Number(old.mod_revision ?? 0) - 1;
  }
  if (selected !== k) return;
  box.replaceChildren(
    h('h3', { id: 'key-name' }, showBytes(k)),
    h('table', { class: 'kv-meta' }, h('tr', {}, h('th', {}, 'created at'), h('td', {}, cur.create_revision ?? ''), h('th', {}, 'modified at'), h('td', { id: 'key-mod' }, cur.mod_revision ?? ''), h('th', {}, 'version'), h('td', {}, cur.version ?? ''), h('th', {}, 'lease'), h('td', {}, cur.lease ? BigInt(cur.lease).toString(16) : 'none'))),
    h('div', { id: 'key-value' }, valueView(cur.value)),
    h('h4', {}, 'Earlier versions'),
    history.length ? h('table', { class: 'history' }, h('tr', {}, h('th', {}, 'revision'), h('th', {}, 'version'), h('th', {}, 'value')), ...history) : h('p', { class: 'dim' }, 'none'),
    ...(note ? [h('p', { class: 'dim' }, note)] : []),
  );
}

export function initKeys(): void {
  byId('key-tree').addEventListener('click', (ev) => {
    const a = (ev.target as HTMLElement).closest('a.key');
    if (!a) return;
    ev.preventDefault();
    selected = a.getAttribute('data-b64');
    renderTree();
    if (selected) void showKey(selected);
  });
  byId<HTMLInputElement>('key-filter').addEventListener('input', (ev) => {
    filter = (ev.target as HTMLInputElement).value;
    renderTree();
  });
}
