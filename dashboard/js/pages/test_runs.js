// Test runs. #/sandboxes/{name}/test-runs: the sandbox's runs, newest
// first (status, branch, commit, exit code, JUnit counts, what started
// it), a "Run tests" button (the template's `tests`), and each run's log
// one click away. #/test-runs/{id}: one run: its outcome, the failed
// tests, and its log, live while it runs (a run's events are a
// deployment's: the same WebSocket and log viewer), and a Cancel button
// while it has not ended (POST /api/test-runs/{id}/cancel).

import * as api from '../api.js';
import { el, replace, errorBox, loading, keyed, place, showMore } from '../dom.js';
import { timeEl, commitEl, sandboxLink } from '../format.js';
import { DeploymentStream } from '../stream.js';
import { LogView } from '../logview.js';

const POLL_MS = 3000;
const SETTLED = new Set(['passed', 'failed', 'cancelled']);

function runBadge(status) {
  const cls = { passed: 'ok', failed: 'danger', cancelled: 'plain' }[status] ?? 'info';
  return el('span', { class: `badge ${cls}`, dataset: { status: String(status ?? '') } }, String(status ?? 'unknown'));
}

function counts(run) {
  const j = run.junit;
  if (!j) return el('span', { class: 'muted' }, '—');
  const failed = j.failures + j.errors;
  return el('span', { class: failed ? 'probe-error' : null, dataset: { tests: String(j.tests), failed: String(failed) } },
    `${j.tests - failed - j.skipped}/${j.tests} passed${failed ? `, ${failed} failed` : ''}${j.skipped ? `, ${j.skipped} skipped` : ''}`);
}

// Runs per page of the history ("Show more" follows the cursor).
const RUNS_PAGE = 50;

const runHref = (id) => `#/test-runs/${encodeURIComponent(id)}`;

export async function render(view, ctx) {
  if (ctx.path.startsWith('/test-runs/')) return renderRun(view, ctx);
  return renderHistory(view, ctx);
}

async function renderHistory(view, { params, isCurrent }) {
  const name = params[0];
  const base = `/api/sandboxes/${api.seg(name)}/test-runs`;
  const message = el('div', { id: 'test-runs-message', 'aria-live': 'polite' });
  const body = el('div', { class: 'card-body flush' }, loading());
  const start = el('button', { type: 'button', class: 'btn btn-primary', id: 'run-tests' }, 'Run tests');
  start.addEventListener('click', async () => {
    start.disabled = true;
    try {
      const run = await api.post(base, {});
      replace(message, el('div', { class: 'alert alert-ok', role: 'status' }, 'Started ',
        el('a', { href: runHref(run.id), class: 'mono' }, run.id.slice(0, 12)), '.'));
      await refresh();
    } catch (err) {
      replace(message, errorBox(err, 'Cannot start the tests'));
    } finally {
      start.disabled = false;
    }
  });
  view.append(
    el('div', { class: 'page-head' },
      el('div', {}, el('div', { class: 'small' }, el('a', { href: `#/sandboxes/${encodeURIComponent(name)}` }, `← ${name}`)),
        el('h1', {}, 'Test runs'),
        el('div', { class: 'sub' }, 'Tests run against sandbox ', sandboxLink(name), ', newest first.')),
      el('div', { class: 'actions' }, start)),
    message,
    el('section', { class: 'card' }, body));
  const more = showMore({ id: 'test-runs-more', step: RUNS_PAGE, reload: () => refresh() });
  body.after(more.node);

  const table = el('table', { class: 'table', id: 'test-runs' },
    el('thead', {}, el('tr', {}, ['Status', 'Tests', 'Branch', 'Commit', 'Exit', 'Results', 'Trigger', 'Started', ''].map((h) => el('th', {}, h)))));
  const rows = el('tbody', {});
  table.append(rows);
  const makeRow = (first) => {
    const node = el('tr', { dataset: { run: first.id } });
    return { node, update: (run) => fill(node, run) };
  };
  const fill = (row, run) => {
    const log = el('a', { href: runHref(run.id), class: 'btn btn-small run-log', dataset: { run: run.id } },
      run.status === 'failed' ? 'Log (failed)' : 'Log');
    row.dataset.status = run.status;
    row.replaceChildren(
      el('td', {}, runBadge(run.status)),
      el('td', {}, run.repo),
      el('td', { class: 'mono' }, run.branch),
      el('td', {}, commitEl(run.commit)),
      el('td', { class: 'mono' }, run.exit_code ?? '—'),
      el('td', {}, counts(run)),
      el('td', { class: 'muted small' }, run.trigger === 'after_deploy' ? 'after deploy' : `by ${run.created_by}`),
      el('td', {}, timeEl(run.created_at)),
      el('td', { class: 'actions' }, log));
  };

  let timer = null;
  let stopped = false;
  async function refresh() {
    let runs;
    try {
      const page = await api.getAll(`${base}?limit=${RUNS_PAGE}`, more.cap);
      runs = page.items;
      more.update(page.more);
    } catch (err) {
      if (isCurrent()) replace(body, errorBox(err, 'Cannot load the test runs'));
      return;
    }
    if (stopped || !isCurrent()) return;
    if (runs.length === 0) {
      replace(body, el('div', { class: 'empty', id: 'test-runs-empty' }, el('p', {}, 'No test runs yet.')));
      return;
    }
    keyed(rows, runs, (run) => run.id, makeRow);
    if (body.firstChild !== table) replace(body, table);
  }
  const poll = async () => {
    await refresh();
    if (!stopped) timer = setTimeout(poll, POLL_MS);
  };
  poll();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

async function renderRun(view, { params, isCurrent }) {
  const id = params[0];
  view.append(loading('Loading the test run…'));
  let run;
  try {
    run = await api.get(`/api/test-runs/${api.seg(id)}`);
  } catch (err) {
    if (isCurrent()) replace(view, errorBox(err, err.status === 404 ? 'No such test run' : 'Cannot load the test run'));
    return undefined;
  }
  if (!isCurrent()) return undefined;
  const badge = el('span', { id: 'test-run-status' });
  const message = el('div', { id: 'test-run-message', 'aria-live': 'polite' });
  const headActions = el('div', { class: 'actions' });
  // Made once and shown while the run has not ended: a button made again
  // on each render would lose a click that landed between two of them.
  const cancel = el('button', { type: 'button', class: 'btn btn-danger', id: 'cancel-test-run' }, 'Cancel');
  cancel.addEventListener('click', async () => {
    cancel.disabled = true;
    try {
      await api.post(`/api/test-runs/${api.seg(id)}/cancel`, {});
      replace(message, el('div', { class: 'alert alert-info', role: 'status' }, 'Cancel requested: the tests stop and their container goes.'));
    } catch (err) {
      replace(message, errorBox(err, 'Cannot cancel the test run'));
      cancel.disabled = false;
    }
  });
  const facts = el('ul', { class: 'meta', id: 'test-run-facts' });
  const failedBox = el('div', { id: 'test-run-failed' });
  const log = new LogView({ label: 'Test run log' });
  replace(view,
    el('div', { class: 'page-head' },
      el('div', {},
        el('div', { class: 'small' }, el('a', { href: `#/sandboxes/${encodeURIComponent(run.sandbox)}/test-runs` }, '← Test runs')),
        el('h1', {}, run.repo, ' ', el('span', { class: 'muted' }, '·'), ' ', el('span', { class: 'mono' }, run.branch), ' ', badge),
        el('div', { class: 'sub' }, 'against sandbox ', sandboxLink(run.sandbox), ' · ', el('code', { id: 'test-run-id' }, run.id))),
      headActions),
    message,
    facts,
    failedBox,
    el('section', { class: 'card', 'aria-labelledby': 'log-h' },
      el('div', { class: 'card-head' }, el('h2', { id: 'log-h' }, 'Log'),
        el('a', { class: 'btn btn-small', id: 'log-download', href: `/api/deployments/${encodeURIComponent(id)}/logs`, download: `${id}.log` }, 'Download log')),
      log.wrap));

  function show() {
    place(badge, runBadge(run.status));
    if (SETTLED.has(run.status)) headActions.replaceChildren();
    else place(headActions, cancel);
    replace(facts,
      el('li', {}, 'Commit ', commitEl(run.commit)),
      el('li', {}, 'Command ', el('code', {}, (run.command ?? []).join(' '))),
      el('li', { id: 'test-run-exit' }, 'Exit code ', el('strong', {}, String(run.exit_code ?? '—'))),
      el('li', {}, 'Results ', counts(run)),
      el('li', {}, run.trigger === 'after_deploy' ? 'Started after a deploy' : `Started by ${run.created_by}`, ' ', timeEl(run.created_at)));
    const failed = run.junit?.failed ?? [];
    if (run.status === 'failed') {
      replace(failedBox, el('div', { class: 'alert alert-error', role: 'alert' },
        el('strong', {}, run.error ?? 'The tests failed'),
        failed.length ? el('ul', { id: 'failed-tests' }, failed.map((name) => el('li', { class: 'mono' }, name))) : null));
    } else if (run.status === 'cancelled') {
      replace(failedBox, el('div', { class: 'alert alert-warn', role: 'status', id: 'test-run-cancelled' },
        el('strong', {}, run.error ?? 'Cancelled')));
    } else {
      failedBox.replaceChildren();
    }
  }
  show();

  const stream = new DeploymentStream(id, {
    onEvent: (event) => {
      const type = event.body?.type;
      if (type === 'log' || type === 'logs') log.addLog(event);
      if (type === 'result') {
        // The run's row is written with the result: read it again.
        api.get(`/api/test-runs/${api.seg(id)}`).then((fresh) => {
          run = fresh;
          if (isCurrent()) show();
        }).catch(() => {});
      }
    },
  }).start();
  return () => stream.close();
}
