// #/deployments?sandbox=&repo=&status=&reapply=&limit=: the history,
// filtered. Gateway re-applies (same build, new routes) are marked, and a
// run of them in one sandbox folds under its newest, so route flips do not
// bury the deployments people asked for. The live deployment of each
// (sandbox, service) is marked; a settled one can be rolled back to.

import * as api from '../api.js';
import { el, replace, errorBox, loading } from '../dom.js';
import { statusBadge, timeEl, commitEl, deploymentLink, sandboxLink, STATUSES, toDate, duration } from '../format.js';
import { liveBadge, redeployBadge, canRedeploy, rollbackButton, confirming } from '../rollback.js';

const POLL_MS = 5000;

/** The list in runs: a deployment alone, or consecutive re-applies of one sandbox. */
function runs(list) {
  const out = [];
  for (const d of list) {
    const last = out[out.length - 1];
    if (d.reapply && last && last[0].reapply && last[0].sandbox === d.sandbox) last.push(d);
    else out.push([d]);
  }
  return out;
}

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
  const hideReapplies = el('input', { type: 'checkbox', id: 'filter-hide-reapplies' });
  hideReapplies.checked = query.reapply === 'false';
  const form = el('form', { class: 'filters', id: 'filters' },
    el('div', { class: 'field' }, el('label', { for: 'filter-sandbox' }, 'Sandbox'), sandbox),
    el('div', { class: 'field' }, el('label', { for: 'filter-repo' }, 'Repo'), repo),
    el('div', { class: 'field' }, el('label', { for: 'filter-status' }, 'Status'), status),
    el('div', { class: 'field' }, el('label', { for: 'filter-limit' }, 'Show'), limit),
    el('div', { class: 'field' }, el('label', { for: 'filter-hide-reapplies' }, 'Re-applies'),
      el('label', { class: 'row small' }, hideReapplies, 'hide')),
    el('button', { type: 'submit', class: 'btn btn-primary' }, 'Apply'),
    el('a', { class: 'btn btn-ghost', href: '#/deployments' }, 'Clear'));
  const apply = () => navigate(`#/deployments${api.query({
    sandbox: sandbox.value.trim(), repo: repo.value.trim(), status: status.value,
    reapply: hideReapplies.checked ? 'false' : '', limit: limit.value === '50' ? '' : limit.value,
  })}`);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    apply();
  });
  status.addEventListener('change', apply);
  limit.addEventListener('change', apply);
  hideReapplies.addEventListener('change', apply);

  const body = el('div', { class: 'card-body flush' }, loading());
  const message = el('div', { 'aria-live': 'polite', id: 'deployments-message' });
  view.append(
    el('div', { class: 'page-head' }, el('div', {}, el('h1', {}, 'Deployments'),
      el('div', { class: 'sub' }, 'Every deployment, newest first.'))),
    message,
    el('section', { class: 'card' }, form, body));
  const rollback = (d) => (canRedeploy(d) ? rollbackButton(d, {
    onStarted: (created) => navigate(`#/deployments/${encodeURIComponent(created.id)}`),
    onError: (err) => replace(message, errorBox(err, `Cannot deploy ${d.repo} ${d.commit} again`)),
  }) : null);

  const path = `/api/deployments${api.query({
    sandbox: query.sandbox, repo: query.repo, status: query.status, reapply: query.reapply, limit: query.limit,
  })}`;
  // Runs the user unfolded, by their newest deployment's id: kept across polls.
  const unfolded = new Set();
  const row = (d, attrs = {}) => el('tr', { dataset: { deployment: d.id }, ...attrs },
    el('td', {}, deploymentLink(d.id), d.reapply ? [' ', el('span', { class: 'badge plain info', title: 'The gateway again with the same build and new routes' }, 're-apply')] : null,
      d.redeploy_of ? [' ', redeployBadge(d)] : null),
    el('td', {}, sandboxLink(d.sandbox)),
    el('td', {}, d.repo),
    el('td', { class: 'mono' }, d.branch),
    el('td', {}, commitEl(d.commit)),
    el('td', { title: d.error ?? '' }, statusBadge(d.status), liveBadge(d)),
    el('td', {}, d.created_by ?? ''),
    el('td', {}, timeEl(d.created_at)),
    el('td', { class: 'nowrap muted' }, took(d)),
    el('td', { class: 'actions' }, rollback(d)));
  const runRows = (run) => {
    if (run.length === 1) return [row(run[0])];
    const key = run[0].id;
    const open = unfolded.has(key);
    const toggle = el('button', { type: 'button', class: 'btn btn-small btn-ghost reapply-toggle', 'aria-expanded': String(open) },
      open ? 'fold' : `+${run.length - 1} more`);
    const rest = run.slice(1).map((d) => row(d, { class: open ? 'reapply-run' : 'reapply-run folded' }));
    toggle.addEventListener('click', () => {
      const nowOpen = !unfolded.has(key);
      if (nowOpen) unfolded.add(key); else unfolded.delete(key);
      for (const r of rest) r.classList.toggle('folded', !nowOpen);
      toggle.textContent = nowOpen ? 'fold' : `+${run.length - 1} more`;
      toggle.setAttribute('aria-expanded', String(nowOpen));
    });
    const head = row(run[0]);
    head.querySelector('td').append(' ', toggle);
    return [head, ...rest];
  };
  let stopped = false;
  let timer = null;
  const refresh = async () => {
    try {
      const list = await api.get(path);
      if (stopped) return;
      if (confirming(body)) {
        // Someone is answering "roll back?": keep the rows under them.
      } else if (list.length === 0) {
        replace(body, el('div', { class: 'empty', id: 'deployments-empty' },
          el('h2', {}, Object.keys(query).length ? 'No deployment matches these filters' : 'No deployments yet'),
          el('p', {}, 'Deploy a branch from a ', el('a', { href: '#/sandboxes' }, 'sandbox'), '.')));
      } else {
        replace(body, el('table', { class: 'table', id: 'deployments-table' },
          el('thead', {}, el('tr', {}, el('th', {}, 'Deployment'), el('th', {}, 'Sandbox'), el('th', {}, 'Repo'),
            el('th', {}, 'Branch'), el('th', {}, 'Commit'), el('th', {}, 'Status'), el('th', {}, 'By'),
            el('th', {}, 'Started'), el('th', {}, 'Took'), el('th', {}, ''))),
          el('tbody', {}, runs(list).flatMap(runRows))));
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
