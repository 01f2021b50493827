/**
 * The dashboard's entry point (bundled by esbuild into dist/ui/app.js): tabs, the login form
 * when auth is on, and the pages' refresh loops.
 */
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { onCluster, renderCluster, startClusterPolling } from './cluster.js';
import { initCharts, refreshCharts, resizeCharts } from './charts.js';
import { byId } from './dom.js';
import { call, onAuthNeeded, setToken } from './gateway.js';
import { initKeys, onKeys, restartWatch, startKeys } from './keys.js';
import { LEASES_POLL_MS, refreshLeases } from './leases.js';
import { renderLocks } from './locks.js';
import { initSpacetime } from './spacetime.js';

const TABS = ['cluster', 'charts', 'keys', 'leases', 'locks', 'spacetime'] as const;
type Tab = (typeof TABS)[number];
let tab: Tab = 'cluster';

function show(t: Tab): void {
  tab = t;
  for (const x of TABS) {
    byId(`tab-${x}`).hidden = x !== t;
    document.querySelector(`nav button[data-tab="${x}"]`)?.classList.toggle('active', x === t);
  }
  if (t === 'charts') resizeCharts();
  if (t === 'leases') void refreshLeases();
  if (t === 'locks') void renderLocks();
  if (location.hash !== `#${t}`) history.replaceState(null, '', `#${t}`);
}

function initLogin(): void {
  const dialog = byId<HTMLDialogElement>('login');
  onAuthNeeded(() => {
    if (!dialog.open) dialog.showModal();
  });
  byId<HTMLFormElement>('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const name = byId<HTMLInputElement>('login-name').value;
    const password = byId<HTMLInputElement>('login-password').value;
    const msg = byId('login-error');
    msg.textContent = '';
    setToken(null);
    call<{ token?: string }>('auth/authenticate', { name, password }).then(
      (r) => {
        setToken(r.token ?? null);
        dialog.close();
        restartWatch();
      },
      (e: Error) => (msg.textContent = e.message),
    );
  });
  byId('logout').addEventListener('click', () => {
    setToken(null);
    restartWatch();
  });
}

function main(): void {
  for (const b of document.querySelectorAll<HTMLButtonElement>('nav button[data-tab]')) b.addEventListener('click', () => show(b.dataset['tab'] as Tab));
  initLogin();
  initCharts();
  initKeys();
  initSpacetime();
  onCluster((v) => {
    renderCluster(v);
    refreshCharts(v);
  });
  onKeys(() => {
    if (tab === 'locks') void renderLocks();
  });
  startClusterPolling();
  startKeys();
  setInterval(() => {
    if (tab === 'leases') void refreshLeases();
  }, LEASES_POLL_MS);
  const fromHash = location.hash.slice(1) as Tab;
  show(TABS.includes(fromHash) ? fromHash : 'cluster');
}

main();
