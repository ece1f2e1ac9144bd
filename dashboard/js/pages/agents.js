// #/agents: the agents, online or not, what they run and what they lack.

import * as api from '../api.js';
import { el, replace, errorBox, loading, place, keyed, setText, replaceWhenChanged } from '../dom.js';
import { timeEl, deploymentLink } from '../format.js';

const POLL_MS = 4000;

// The agent's build-cache warm-up: `warming`, `paused`, `warm`, `failed: …`,
// or null when its kind warms nothing.
function buildCache(state) {
  if (!state) return el('span', { class: 'muted' }, '—');
  if (state === 'warm') return el('span', { class: 'badge ok' }, 'warm');
  if (state === 'warming') return el('span', { class: 'badge warn', title: 'Compiling the standard library; deploys run meanwhile' }, 'warming');
  if (state === 'paused') return el('span', { class: 'badge info', title: 'A deployment is building; the warm-up resumes after it' }, 'paused');
  return el('span', { class: 'badge danger', title: state }, 'failed');
}

// A row per agent, kept across polls (see `keyed`): the links to what it
// runs stay the same elements while that does not change.
function makeRow(first) {
  const cells = Array.from({ length: 10 }, () => el('td', {}));
  const [state, kind, host, version, running, capacity, cache, toolchains, seen, warnings] = cells;
  host.className = 'mono';
  version.className = 'mono';
  cache.className = 'build-cache';
  toolchains.className = 'toolchains mono';
  const node = el('tr', { dataset: { agent: first.id } }, el('td', { class: 'mono' }, first.id), cells);
  return {
    node,
    update(a) {
      replace(state, a.online ? el('span', { class: 'badge ok' }, 'online') : el('span', { class: 'badge danger' }, 'offline'));
      setText(kind, a.kind ?? '');
      setText(host, a.host ?? '');
      setText(version, a.version ?? '');
      const ids = a.running ?? [];
      replaceWhenChanged(running, ids.join(' '), () => (ids.length
        ? el('div', { class: 'chip-list' }, ids.map((id, i) => [i ? ' ' : '', deploymentLink(id)]))
        : el('span', { class: 'muted' }, 'idle')));
      setText(capacity, String(a.capacity ?? '—'));
      replace(cache, buildCache(a.build_cache));
      const found = a.toolchains ?? [];
      replaceWhenChanged(toolchains, found.join(', '), () => (found.length
        ? el('div', { class: 'chip-list' }, found.map((t, i) => [i ? ' ' : '', el('span', { class: 'badge info' }, t)]))
        : el('span', { class: 'muted' }, '—')));
      replace(seen, timeEl(a.last_seen));
      const missing = a.missing_images ?? [];
      replace(warnings, missing.length
        ? el('div', { class: 'badge warn', title: 'Load it on the host with docker load' },
          `missing image${missing.length === 1 ? '' : 's'}: ${missing.join(', ')}`)
        : el('span', { class: 'muted' }, '—'));
    },
  };
}

export async function render(view) {
  const body = el('div', { class: 'card-body flush' }, loading());
  view.append(
    el('div', { class: 'page-head' }, el('div', {}, el('h1', {}, 'Agents'),
      el('div', { class: 'sub' }, 'The Docker hosts that build and run deployments. They heartbeat every few seconds.'))),
    el('section', { class: 'card' }, body));
  const rows = el('tbody', {});
  const table = el('table', { class: 'table', id: 'agents-table' },
    el('thead', {}, el('tr', {}, el('th', {}, 'Agent'), el('th', {}, 'State'), el('th', {}, 'Kind'),
      el('th', {}, 'Host'), el('th', {}, 'Version'), el('th', {}, 'Running'), el('th', {}, 'Capacity'),
      el('th', {}, 'Build cache'), el('th', { title: 'Each build uses the oldest one its go.mod allows' }, 'Toolchains'), el('th', {}, 'Last seen'), el('th', {}, 'Warnings'))),
    rows);
  const empty = el('div', { class: 'empty', id: 'agents-empty' }, el('h2', {}, 'No agent has reported yet'),
    el('p', {}, 'Start an agent (sdp-agent-micro) on a Docker host, pointed at the same NATS server. It shows up here within seconds.'));
  let stopped = false;
  let timer = null;
  const refresh = async () => {
    try {
      const agents = await api.get('/api/agents');
      if (stopped) return;
      if (agents.length === 0) {
        place(body, empty);
      } else {
        agents.sort((a, b) => Number(b.online) - Number(a.online) || String(a.id).localeCompare(String(b.id)));
        keyed(rows, agents, (a) => a.id, makeRow);
        place(body, table);
      }
    } catch (err) {
      if (stopped) return;
      replace(body, el('div', { class: 'card-body' }, errorBox(err, 'Cannot load the agents')));
    }
    if (!stopped) timer = setTimeout(refresh, POLL_MS);
  };
  await refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
