// #/agents: the agents, online or not, what they run and what they lack.

import * as api from '../api.js';
import { el, replace, errorBox, loading } from '../dom.js';
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

export async function render(view) {
  const body = el('div', { class: 'card-body flush' }, loading());
  view.append(
    el('div', { class: 'page-head' }, el('div', {}, el('h1', {}, 'Agents'),
      el('div', { class: 'sub' }, 'The Docker hosts that build and run deployments. They heartbeat every few seconds.'))),
    el('section', { class: 'card' }, body));
  let stopped = false;
  let timer = null;
  const refresh = async () => {
    try {
      const agents = await api.get('/api/agents');
      if (stopped) return;
      if (agents.length === 0) {
        replace(body, el('div', { class: 'empty', id: 'agents-empty' }, el('h2', {}, 'No agent has reported yet'),
          el('p', {}, 'Start an agent (sdp-agent-micro) on a Docker host, pointed at the same NATS server. It shows up here within seconds.')));
      } else {
        agents.sort((a, b) => Number(b.online) - Number(a.online) || String(a.id).localeCompare(String(b.id)));
        replace(body, el('table', { class: 'table', id: 'agents-table' },
          el('thead', {}, el('tr', {}, el('th', {}, 'Agent'), el('th', {}, 'State'), el('th', {}, 'Kind'),
            el('th', {}, 'Host'), el('th', {}, 'Version'), el('th', {}, 'Running'), el('th', {}, 'Capacity'),
            el('th', {}, 'Build cache'), el('th', {}, 'Last seen'), el('th', {}, 'Warnings'))),
          el('tbody', {}, agents.map((a) => el('tr', { dataset: { agent: a.id } },
            el('td', { class: 'mono' }, a.id),
            el('td', {}, a.online ? el('span', { class: 'badge ok' }, 'online') : el('span', { class: 'badge danger' }, 'offline')),
            el('td', {}, a.kind ?? ''),
            el('td', { class: 'mono' }, a.host ?? ''),
            el('td', { class: 'mono' }, a.version ?? ''),
            el('td', {}, (a.running ?? []).length
              ? el('div', { class: 'chip-list' }, a.running.map((id, i) => [i ? ' ' : '', deploymentLink(id)]))
              : el('span', { class: 'muted' }, 'idle')),
            el('td', {}, String(a.capacity ?? '—')),
            el('td', { class: 'build-cache' }, buildCache(a.build_cache)),
            el('td', {}, timeEl(a.last_seen)),
            el('td', {}, (a.missing_images ?? []).length
              ? el('div', { class: 'badge warn', title: 'Load it on the host with docker load' },
                `missing image${a.missing_images.length === 1 ? '' : 's'}: ${a.missing_images.join(', ')}`)
              : el('span', { class: 'muted' }, '—')))))));
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
