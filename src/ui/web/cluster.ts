/**
 * The cluster page: every member's status (GET /ui/api/status on each member's client URL;
 * the others answer this page's origin through CORS), polled every CLUSTER_POLL_MS, and the
 * model the charts and the live trace share (which members there are, where they answer).
 */
import type { UiStatus } from '../api.js';
import { ago, byId, bytes, h } from './dom.js';
import { memberStatus } from './gateway.js';

export const CLUSTER_POLL_MS = 1_000;

export interface MemberView {
  readonly id: string;
  readonly name: string;
  /** '' for the member that served the page, else the origin of its first client URL. */
  readonly base: string;
  readonly status: UiStatus | null;
  readonly error: string | null;
}

export interface ClusterView {
  /** The serving member's status (null until it answered). */
  readonly self: UiStatus | null;
  readonly selfError: string | null;
  readonly members: readonly MemberView[];
}

const listeners: ((v: ClusterView) => void)[] = [];
let current: ClusterView = { self: null, selfError: null, members: [] };

export function onCluster(f: (v: ClusterView) => void): void {
  listeners.push(f);
}

export function clusterView(): ClusterView {
  return current;
}

function baseOf(urls: readonly string[]): string {
  for (const u of urls) {
    try {
      return new URL(u).origin;
    } catch {
      // next
    }
  }
  return '';
}

async function poll(): Promise<void> {
  let self: UiStatus | null = null;
  let selfError: string | null = null;
  try {
    self = await memberStatus('');
  } catch (e) {
    selfError = (e as Error).message;
  }
  // The member list: the serving member's table, or the last one known when it does not answer.
  const table = self?.members ?? current.members.map((m) => ({ id: m.id, name: m.name, clientUrls: m.base ? [m.base] : [], peerUrls: [], isLearner: false }));
  const members = await Promise.all(
    table.map(async (m): Promise<MemberView> => {
      if (self && m.id === self.id) return { id: m.id, name: m.name, base: '', status: self, error: null };
      const base = baseOf(m.clientUrls);
      if (!base) return { id: m.id, name: m.name, base, status: null, error: 'no client URL published' };
      if (base === location.origin) {
        // The serving member, when it does not answer.
        return { id: m.id, name: m.name, base: '', status: self, error: selfError };
      }
      try {
        return { id: m.id, name: m.name, base, status: await memberStatus(base), error: null };
      } catch (e) {
        return { id: m.id, name: m.name, base, status: null, error: (e as Error).message };
      }
    }),
  );
  current = { self, selfError, members };
  for (const f of listeners) f(current);
}

export function startClusterPolling(): void {
  const loop = async (): Promise<void> => {
    const started = Date.now();
    await poll().catch(() => undefined);
    setTimeout(() => void loop(), Math.max(0, CLUSTER_POLL_MS - (Date.now() - started)));
  };
  void loop();
}

export function renderCluster(v: ClusterView): void {
  const self = v.self;
  const banner = byId('cluster-banner');
  const leader = self && self.leader ? v.members.find((m) => m.id === self.leader) : undefined;
  banner.replaceChildren(
    self
      ? h('span', {}, 'Served by ', h('b', {}, self.name || self.id), ` (member ${self.id}), cluster ${self.clusterId}. `, leader ? h('span', { id: 'leader', 'data-leader': leader.name }, 'Leader: ', h('b', {}, leader.name || leader.id), ` (term ${self.term})`) : h('span', { id: 'leader', 'data-leader': '', class: 'bad' }, 'No leader known'))
      : h('span', { class: 'bad' }, `This member does not answer: ${v.selfError ?? '…'}`),
  );
  const leaderStatus = v.members.find((m) => m.status?.role === 'leader' && m.id === m.status.id)?.status ?? null;
  const rows = v.members.map((m) => {
    const s = m.status;
    const peer = self?.peers.find((p) => p.id === m.id);
    const lp = leaderStatus?.peers.find((p) => p.id === m.id);
    const lag = !leaderStatus ? '?' : leaderStatus.id === m.id ? '0' : lp?.lag !== undefined ? String(lp.lag) : '?';
    const role = s ? (s.isLearner ? `learner (${s.role})` : s.role) : 'unreachable';
    const contact = self && m.id === self.id ? 'this member' : peer ? (peer.lastContactMs ? ago(self!.now - peer.lastContactMs) : 'never') : '—';
    const alarms = self ? self.alarms.filter((a) => a.memberId === m.id).map((a) => a.alarm).join(', ') : '';
    return h(
      'tr',
      { 'data-member': m.name || m.id, 'data-role': s ? s.role : 'unreachable', class: s?.role === 'leader' ? 'leader' : s ? '' : 'down' },
      h('td', {}, h('b', {}, m.name || '(unstarted)'), h('div', { class: 'dim' }, m.id)),
      h('td', { class: 'role' }, role),
      h('td', {}, s ? s.term : '—'),
      h('td', {}, s ? s.commitIndex : '—'),
      h('td', {}, s ? s.appliedIndex : '—'),
      h('td', {}, lag),
      h('td', {}, contact),
      h('td', { class: s?.disk && !s.disk.good ? 'bad' : '' }, s?.disk ? s.disk.verdict + (s.disk.slowFdatasyncs ? ` (${s.disk.slowFdatasyncs} slow since start)` : '') : '—'),
      h('td', { class: alarms ? 'bad' : '' }, alarms || 'none'),
      h('td', { class: 'dim' }, s ? `rev ${s.revision}, ${s.keys} keys, ${bytes(s.dbSizeBytes)}` : m.error ?? ''),
    );
  });
  byId('cluster-rows').replaceChildren(...rows);
}
