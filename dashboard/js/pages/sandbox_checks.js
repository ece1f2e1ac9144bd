// Checks of the sandbox page that ask the agents, so they load after the
// page and never block it: the staleness of each running service (a badge
// by its branch) and the route probe ("Check routes", a dot per route).
// Both keep their last answer; the page asks for badges and dots on each
// redraw.

import * as api from '../api.js';
import { el } from '../dom.js';

/** Re-check staleness this often while the page is open (a push shows). */
const STALENESS_MS = 60000;

/**
 * Staleness of the running services. `update(services)` after each load of
 * the sandbox: it asks again when the running deployments changed or the
 * last answer is old, then calls `onChange`. `badge(service)` gives the
 * badge of one row (or null).
 */
export function stalenessChecker(base, onChange, enabled = true) {
  let key = null;
  let at = 0;
  let inFlight = false;
  let byDeployment = new Map();
  let failure = null;

  async function load(wanted) {
    inFlight = true;
    try {
      const answer = await api.get(`${base}/staleness`);
      byDeployment = new Map((answer?.services ?? []).map((s) => [s.deployment_id, s]));
      failure = null;
    } catch (err) {
      failure = err?.message ?? String(err);
    } finally {
      inFlight = false;
      key = wanted;
      at = Date.now();
    }
    onChange();
  }

  return {
    update(services) {
      const running = (services ?? []).filter((s) => s.status === 'running' && s.deployment_id);
      const wanted = running.map((s) => s.deployment_id).sort().join(',');
      if (!enabled || inFlight || !wanted) return;
      if (wanted !== key || Date.now() - at > STALENESS_MS) load(wanted);
    },
    badge(service) {
      if (!enabled || service.status !== 'running' || !service.deployment_id) return null;
      const known = byDeployment.get(service.deployment_id);
      if (!known) {
        if (failure) return el('span', { class: 'badge plain stale-unknown', title: failure, dataset: { staleness: 'error' } }, 'branch ?');
        return el('span', { class: 'badge plain stale-unknown', dataset: { staleness: 'checking' } }, 'checking…');
      }
      const head = known.head ? `head ${String(known.head).slice(0, 8)}` : '';
      const title = [head, known.reason].filter(Boolean).join(' · ');
      if (known.state === 'up_to_date') {
        return el('span', { class: 'badge plain stale-ok', title: title || null, dataset: { staleness: 'up_to_date' } }, 'up to date');
      }
      if (known.state === 'behind') {
        const label = Number.isInteger(known.behind) && known.behind > 0 ? `behind by ${known.behind}` : 'branch moved';
        return el('span', { class: 'badge plain stale-behind', title: title || null, dataset: { staleness: 'behind' } }, label);
      }
      return el('span', { class: 'badge plain stale-unknown', title: title || null, dataset: { staleness: 'unknown' } }, 'branch ?');
    },
  };
}

/**
 * The route probe. `button` is the "Check routes" button; `dot(route)`
 * gives the cell content of one route (empty until a probe ran, and for a
 * route whose target changed since).
 */
export function routeProber(base, onChange, onError) {
  let byService = new Map();
  const button = el('button', { type: 'button', class: 'btn btn-small', id: 'check-routes' }, 'Check routes');
  button.addEventListener('click', async () => {
    button.disabled = true;
    button.textContent = 'Checking…';
    try {
      const report = await api.post(`${base}/probe`);
      byService = new Map((report?.routes ?? []).map((r) => [r.service, r]));
      onChange();
    } catch (err) {
      onError(err, 'Cannot check the routes');
    } finally {
      button.disabled = false;
      button.textContent = 'Check routes';
    }
  });
  return {
    button,
    dot(route) {
      const check = byService.get(route.service);
      if (!check || check.target !== route.target) return null;
      const ok = check.ok === true;
      const detail = ok
        ? `HTTP ${check.status ?? '?'}${Number.isInteger(check.latency_ms) ? ` · ${check.latency_ms} ms` : ''}`
        : `${check.hop ?? 'broken'}: ${check.error ?? ''}`;
      return el('span', { class: 'probe', dataset: { probe: ok ? 'ok' : 'broken', hop: check.hop ?? '' } },
        el('span', { class: `probe-dot ${ok ? 'probe-ok' : 'probe-broken'}`, role: 'img', 'aria-label': ok ? 'reachable' : 'broken' }),
        el('span', { class: ok ? 'muted' : 'probe-error' }, detail));
    },
  };
}
