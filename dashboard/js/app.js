// The dashboard shell: hash router, session check, nav bar. Each page is a
// module under pages/ exporting `render(view, ctx)`, which may return a
// cleanup function (run when the page is left).

import * as api from './api.js';
import { el, replace, errorBox } from './dom.js';

const routes = [
  [/^\/login$/, 'login', () => import('./pages/login.js')],
  [/^\/sandboxes$/, 'sandboxes', () => import('./pages/sandboxes.js')],
  [/^\/sandboxes\/([^/]+)$/, 'sandboxes', () => import('./pages/sandbox.js')],
  [/^\/sandboxes\/([^/]+)\/test-runs$/, 'sandboxes', () => import('./pages/test_runs.js')],
  [/^\/test-runs\/([^/]+)$/, 'sandboxes', () => import('./pages/test_runs.js')],
  [/^\/deployments$/, 'deployments', () => import('./pages/deployments.js')],
  [/^\/deployments\/([^/]+)$/, 'deployments', () => import('./pages/deployment.js')],
  [/^\/templates$/, 'templates', () => import('./pages/templates.js')],
  [/^\/templates\/([^/]+)$/, 'templates', () => import('./pages/templates.js')],
  [/^\/environments$/, 'environments', () => import('./pages/environments.js')],
  [/^\/environments\/([^/]+)$/, 'environments', () => import('./pages/environments.js')],
  [/^\/agents$/, 'agents', () => import('./pages/agents.js')],
  [/^\/audit$/, 'audit', () => import('./pages/audit.js')],
];

const view = document.getElementById('view');
const topbar = document.getElementById('topbar');
const banner = document.getElementById('banner');
let cleanup = null;
let me = null;
let flash = null;
let generation = 0;

/** Parses "#/path?x=1" into { path, query }. */
export function parseHash(hash = location.hash) {
  const raw = hash.replace(/^#/, '') || '/sandboxes';
  const [path, search = ''] = raw.split('?');
  return { path: path || '/sandboxes', query: Object.fromEntries(new URLSearchParams(search)) };
}

export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

/** A message shown once on the next page (e.g. why you were logged out). */
export function setFlash(message, kind = 'info') {
  flash = { message, kind };
}

export function takeFlash() {
  const f = flash;
  flash = null;
  return f;
}

// Whether this browser logged in and has not logged out: without it, a
// visit goes straight to the login page instead of asking /api/me for a
// 401 (which the console would show as an error). The session cookie
// itself is HttpOnly.
const SIGNED_IN = 'sdp.signedIn';

function signedIn() {
  try { return localStorage.getItem(SIGNED_IN) === '1'; } catch { return true; }
}

function markSignedIn(yes) {
  try {
    if (yes) localStorage.setItem(SIGNED_IN, '1');
    else localStorage.removeItem(SIGNED_IN);
  } catch {
    // Storage off: every visit asks /api/me.
  }
}

function toLogin(reason) {
  markSignedIn(false);
  const { path } = parseHash();
  if (path === '/login') return;
  me = null;
  if (reason) setFlash(reason, 'warn');
  const next = location.hash && !location.hash.startsWith('#/login') ? location.hash : '';
  navigate(`#/login${next ? `?next=${encodeURIComponent(next)}` : ''}`);
}

api.setUnauthorizedHandler((err) => {
  toLogin(err.code === 'credential_expired' ? err.message : 'Your session ended: log in again.');
});

export function setUser(user) {
  me = user;
  markSignedIn(Boolean(user));
  renderChrome();
}

export function currentUser() {
  return me;
}

function renderChrome() {
  topbar.hidden = !me;
  document.getElementById('username').textContent = me ? me.username : '';
  if (me && me.can_deploy === false) {
    banner.hidden = false;
    replace(banner, 'The control plane restarted since you logged in: you can look around, but ',
      el('a', { href: '#/login' }, 'log in again'), ' to deploy.');
  } else {
    banner.hidden = true;
  }
}

async function route() {
  const gen = ++generation;
  const { path, query } = parseHash();
  if (typeof cleanup === 'function') {
    try { cleanup(); } catch (err) { console.error(err); }
  }
  cleanup = null;
  const match = routes.find(([pattern]) => pattern.test(path));
  if (!match) {
    replace(view, el('div', { class: 'card' }, el('div', { class: 'empty' },
      el('h2', {}, 'Page not found'),
      el('p', {}, 'There is nothing at ', el('code', {}, path), '. ',
        el('a', { href: '#/sandboxes' }, 'Go to the sandboxes'), '.'))));
    return;
  }
  const [pattern, section, load] = match;
  const params = pattern.exec(path).slice(1).map(decodeURIComponent);

  if (section !== 'login' && !me) {
    if (!signedIn()) {
      toLogin();
      return;
    }
    try {
      me = await api.get('/api/me');
    } catch (err) {
      if (gen !== generation) return;
      if (err.status === 401) return; // the 401 handler went to the login page
      renderChrome();
      replace(view, errorBox(err, 'Cannot load the dashboard'));
      return;
    }
    if (gen !== generation) return;
  }
  renderChrome();
  for (const link of document.querySelectorAll('.mainnav a')) {
    link.classList.toggle('active', link.dataset.section === section);
    if (link.dataset.section === section) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }

  let page;
  try {
    page = await load();
  } catch (err) {
    replace(view, errorBox(err, 'Cannot load this page'));
    return;
  }
  if (gen !== generation) return;
  view.replaceChildren();
  const ctx = { params, query, path, me, navigate, isCurrent: () => gen === generation };
  try {
    cleanup = await page.render(view, ctx);
  } catch (err) {
    console.error(err);
    if (gen === generation) replace(view, errorBox(err, 'This page failed'));
  }
  if (gen !== generation && typeof cleanup === 'function') cleanup();
}

document.getElementById('logout').addEventListener('click', async () => {
  try {
    await api.post('/api/logout');
  } catch {
    // Logged out either way.
  }
  me = null;
  markSignedIn(false);
  setFlash('You are logged out.', 'ok');
  renderChrome();
  navigate('#/login');
});

window.addEventListener('hashchange', route);
if (!location.hash) history.replaceState(null, '', '#/sandboxes');
route();
