// #/deployments?sandbox=&repo=&status=&limit=: the history, filtered.

import * as api from '../api.js';
import { el, replace, errorBox, loading } from '../dom.js';
import { statusBadge, timeEl, commitEl, deploymentLink, sandboxLink, STATUSES, toDate, duration } from '../format.js';

const POLL_MS = 5000;

function took(d) {
  const start = toDate(d.created_at);
  const end = toDate(d.finished_at);
  return start && end ? duration(end - start) : '';
}

export async function render(view, { query, navigate }) {
  const sandbox = el('input', { type: 'text', id: 'filter-sandbox', value: query.sandbox ?? '', placeholder: 'any' });
  const repo = el('input', { type: 'text', id: 'filter-repo', value: query.repo ?? '', placeholder: 'any' });
  const status = el('select', { id: 'filter-status' },
    el('option', { value: '' }, 'any'), STATUSES.map((s) => el('option', { value: s }, s)));
  status.value = query.status ?? '';
  const limit = el('select', { id: 'filter-limit' }, ['20', '50', '100', '200', '500'].map((n) => el('option', { value: n }, n)));
  limit.value = ['20', '50', '100', '200', '500'].includes(query.limit) ? query.limit : '50';
  const form = el('form', { class: 'filters', id: 'filters' },
    el('div', { class: 'field' }, el('label', { for: 'filter-sandbox' }, 'Sandbox'), sandbox),
    el('div', { class: 'field' }, el('label', { for: 'filter-repo' }, 'Repo'), repo),
    el('div', { class: 'field' }, el('label', { for: 'filter-status' }, 'Status'), status),
    el('div', { class: 'field' }, el('label', { for: 'filter-limit' }, 'Show'), limit),
    el('button', { type: 'submit', class: 'btn btn-primary' }, 'Apply'),
    el('a', { class: 'btn btn-ghost', href: '#/deployments' }, 'Clear'));
  const apply = () => navigate(`#/deployments${api.query({
    sandbox: sandbox.value.trim(), repo: repo.value.trim(), status: status.value, limit: limit.value === '50' ? '' : limit.value,
  })}`);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    apply();
  });
  status.addEventListener('change', apply);
  limit.addEventListener('change', apply);

  const body = el('div', { class: 'card-body flush' }, loading());
  view.append(
    el('div', { class: 'page-head' }, el('div', {}, el('h1', {}, 'Deployments'),
      el('div', { class: 'sub' }, 'Every deployment, newest first.'))),
    el('section', { class: 'card' }, form, body));

  const path = `/api/deployments${api.query({ sandbox: query.sandbox, repo: query.repo, status: query.status, limit: query.limit })}`;
  let stopped = false;
  let timer = null;
  const refresh = async () => {
    try {
      const list = await api.get(path);
      if (stopped) return;
      if (list.length === 0) {
        replace(body, el('div', { class: 'empty', id: 'deployments-empty' },
          el('h2', {}, Object.keys(query).length ? 'No deployment matches these filters' : 'No deployments yet'),
          el('p', {}, 'Deploy a branch from a ', el('a', { href: '#/sandboxes' }, 'sandbox'), '.')));
      } else {
        replace(body, el('table', { class: 'table', id: 'deployments-table' },
          el('thead', {}, el('tr', {}, el('th', {}, 'Deployment'), el('th', {}, 'Sandbox'), el('th', {}, 'Repo'),
            el('th', {}, 'Branch'), el('th', {}, 'Commit'), el('th', {}, 'Status'), el('th', {}, 'By'),
            el('th', {}, 'Started'), el('th', {}, 'Took'))),
          el('tbody', {}, list.map((d) => el('tr', { dataset: { deployment: d.id } },
            el('td', {}, deploymentLink(d.id)),
            el('td', {}, sandboxLink(d.sandbox)),
            el('td', {}, d.repo),
            el('td', { class: 'mono' }, d.branch),
            el('td', {}, commitEl(d.commit)),
            el('td', { title: d.error ?? '' }, statusBadge(d.status)),
            el('td', {}, d.created_by ?? ''),
            el('td', {}, timeEl(d.created_at)),
            el('td', { class: 'nowrap muted' }, took(d)))))));
      }
    } catch (err) {
      if (stopped) return;
      replace(body, el('div', { class: 'card-body' }, errorBox(err, 'Cannot load the deployments')));
    }
    if (!stopped) timer = setTimeout(refresh, POLL_MS);
  };
  await refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
