// #/deployments?sandbox=&repo=&status=&reapply=&limit=: the history,
// filtered. Gateway re-applies (same build, new routes) are marked, and a
// run of them in one sandbox folds under its newest, so route flips do not
// bury the deployments people asked for. The live deployment of each
// (sandbox, service) is marked; a settled one can be rolled back to.
// `limit` is a page; "Show more" follows the API's cursor for another.

import * as api from '../api.js';
import { el, replace, errorBox, loading, place, keyed, setText, setAttr, showMore } from '../dom.js';
import { statusBadge, timeEl, commitEl, deploymentLink, sandboxLink, STATUSES, toDate, duration } from '../format.js';
import { liveBadge, redeployBadge, canRedeploy, rollbackControl } from '../rollback.js';

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
  const step = Number.parseInt(limit.value, 10) || 50;
  const more = showMore({ id: 'deployments-more', step, reload: () => refresh() });
  body.after(more.node);
  const path = `/api/deployments${api.query({
    sandbox: query.sandbox, repo: query.repo, status: query.status, reapply: query.reapply, limit: query.limit,
  })}`;
  // Runs the user unfolded, by their newest deployment's id: kept across polls.
  const unfolded = new Set();
  let shown = [];

  // A row per deployment, kept across polls (see `keyed`): its link, its
  // rollback button and its run's fold toggle stay the same elements, so
  // a click (or an open "roll back?") survives a refresh.
  const makeRow = ({ d }) => {
    const gap = () => document.createTextNode(' ');
    const link = deploymentLink(d.id);
    const reapply = d.reapply ? [gap(), el('span', { class: 'badge plain info', title: 'The same build again: a gateway with new routes, or a service with its new env' }, 're-apply')] : [];
    const redeploy = d.redeploy_of ? [gap(), redeployBadge(d)] : [];
    let run = null;
    const toggle = el('button', { type: 'button', class: 'btn btn-small btn-ghost reapply-toggle' });
    toggle.addEventListener('click', () => {
      if (!run) return;
      if (unfolded.has(run.key)) unfolded.delete(run.key); else unfolded.add(run.key);
      draw(shown);
    });
    const toggleGap = gap();
    const first = el('td', {});
    const commit = el('td', {});
    const state = el('td', {});
    const by = el('td', {});
    const started = el('td', {});
    const tookCell = el('td', { class: 'nowrap muted' });
    const back = rollbackControl({
      onStarted: (created) => navigate(`#/deployments/${encodeURIComponent(created.id)}`),
      onError: (err, at) => replace(message, errorBox(err, `Cannot deploy ${at.repo} ${at.commit} again`)),
    });
    const actions = el('td', { class: 'actions' });
    const tr = el('tr', { dataset: { deployment: d.id } },
      first, el('td', {}, sandboxLink(d.sandbox)), el('td', {}, d.repo), el('td', { class: 'mono' }, d.branch),
      commit, state, by, started, tookCell, actions);
    return {
      node: tr,
      update(item) {
        const now = item.d;
        run = item.head;
        if (run) {
          setText(toggle, unfolded.has(run.key) ? 'fold' : `+${run.count} more`);
          setAttr(toggle, 'aria-expanded', String(unfolded.has(run.key)));
        }
        place(first, link, reapply, redeploy, run ? [toggleGap, toggle] : null);
        setAttr(tr, 'class', item.follower ? `reapply-run${unfolded.has(item.follower) ? '' : ' folded'}` : null);
        replace(commit, commitEl(now.commit));
        setAttr(state, 'title', now.error ?? '');
        replace(state, statusBadge(now.status), liveBadge(now));
        setText(by, now.created_by ?? '');
        replace(started, timeEl(now.created_at));
        setText(tookCell, took(now));
        if (canRedeploy(now)) back.update(now);
        place(actions, canRedeploy(now) ? back.node : null);
      },
    };
  };
  const tbody = el('tbody', {});
  const table = el('table', { class: 'table', id: 'deployments-table' },
    el('thead', {}, el('tr', {}, el('th', {}, 'Deployment'), el('th', {}, 'Sandbox'), el('th', {}, 'Repo'),
      el('th', {}, 'Branch'), el('th', {}, 'Commit'), el('th', {}, 'Status'), el('th', {}, 'By'),
      el('th', {}, 'Started'), el('th', {}, 'Took'), el('th', {}, ''))),
    tbody);
  const empty = el('div', { class: 'empty', id: 'deployments-empty' },
    el('h2', {}, Object.keys(query).length ? 'No deployment matches these filters' : 'No deployments yet'),
    el('p', {}, 'Deploy a branch from a ', el('a', { href: '#/sandboxes' }, 'sandbox'), '.'));
  // Each row with its place in a run: the head of a run of re-applies
  // carries the fold toggle, the rest follow it.
  function draw(list) {
    shown = list;
    if (list.length === 0) {
      place(body, empty);
      return;
    }
    const items = runs(list).flatMap((run) => run.map((d, i) => ({
      d,
      head: i === 0 && run.length > 1 ? { key: d.id, count: run.length - 1 } : null,
      follower: i > 0 ? run[0].id : null,
    })));
    keyed(tbody, items, (item) => item.d.id, makeRow);
    place(body, table);
  }

  let stopped = false;
  let timer = null;
  const refresh = async () => {
    clearTimeout(timer);
    try {
      const { items, more: goesOn } = await api.getAll(path, more.cap);
      if (stopped) return;
      draw(items);
      more.update(goesOn);
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
