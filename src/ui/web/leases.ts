/** The leases page: every lease with its remaining TTL and attached keys (Lease.Leases, then TimeToLive with keys). */
import { byId, h } from './dom.js';
import { call, showBytes } from './gateway.js';

/** Leases shown with their TTL and keys (one TimeToLive call each). */
export const LEASES_SHOWN_MAX = 200;
export const LEASES_POLL_MS = 2_000;

interface TtlResponse {
  ID?: string;
  TTL?: string;
  grantedTTL?: string;
  keys?: string[];
}

export async function refreshLeases(): Promise<void> {
  const box = byId('lease-rows');
  let ids: string[];
  try {
    ids = ((await call<{ leases?: { ID: string }[] }>('lease/leases', {})).leases ?? []).map((l) => l.ID);
  } catch (e) {
    byId('leases-note').textContent = (e as Error).message;
    return;
  }
  const shown = ids.slice(0, LEASES_SHOWN_MAX);
  const rows = await Promise.all(
    shown.map(async (id) => {
      try {
        const t = await call<TtlResponse>('lease/timetolive', { ID: id, keys: true });
        const ttl = Number(t.TTL ?? 0);
        return h(
          'tr',
          { 'data-lease': BigInt(id).toString(16) },
          h('td', {}, BigInt(id).toString(16), h('div', { class: 'dim' }, id)),
          h('td', {}, t.grantedTTL ?? '0', ' s'),
          h('td', { class: ttl < 0 ? 'bad' : '' }, ttl < 0 ? 'expired' : `${ttl} s`),
          h('td', {}, ...(t.keys ?? []).map((k) => h('div', { class: 'mono' }, showBytes(k)))),
        );
      } catch (e) {
        return h('tr', {}, h('td', {}, BigInt(id).toString(16)), h('td', { colspan: 3, class: 'bad' }, (e as Error).message));
      }
    }),
  );
  box.replaceChildren(...rows);
  byId('leases-note').textContent = `${ids.length} leases${ids.length > shown.length ? ` (the first ${shown.length} shown)` : ''}`;
}
