// #/deployments/{id}: phase stepper with timings, the live log (line
// numbers, ANSI colours, follow mode, search, download; see logview.js),
// stream status, the result; whether it is live, and a rollback to its
// commit once it settled; a "Runtime log" tab beside the build log (the
// running container's output; see runtimelog.js).

import * as api from '../api.js';
import { el, replace, errorBox, loading, urlLink, place, replaceWhenChanged } from '../dom.js';
import { statusBadge, duration, commitEl, toDate, SETTLED, sandboxLink, timeEl } from '../format.js';
import { DeploymentStream } from '../stream.js';
import { LogView } from '../logview.js';
import { RuntimeLog } from '../runtimelog.js';
import { liveBadge, redeployBadge, canRedeploy, rollbackControl } from '../rollback.js';

const STEPS = ['queued', 'fetching', 'building', 'starting'];
const CONN = {
  connecting: ['Connecting…', 'info'],
  live: ['Live', 'ok'],
  reconnecting: ['Reconnecting…', 'warn'],
  ended: ['Complete', 'plain'],
  denied: ['Session expired: log in again', 'danger'],
  closed: ['Closed', 'plain'],
};

export async function render(view, { params, navigate, isCurrent }) {
  const id = params[0];
  view.append(loading('Loading the deployment…'));
  let deployment;
  try {
    deployment = await api.get(`/api/deployments/${api.seg(id)}`);
  } catch (err) {
    if (!isCurrent()) return undefined;
    replace(view, err.status === 404
      ? el('div', { class: 'card' }, el('div', { class: 'empty' }, el('h2', {}, 'No such deployment'),
        el('p', {}, 'There is no deployment ', el('code', {}, id), '. ', el('a', { href: '#/deployments' }, 'See the history'), '.')))
      : errorBox(err, 'Cannot load the deployment'));
    return undefined;
  }
  if (!isCurrent()) return undefined;

  // ---- state ----
  const phaseAt = new Map();
  for (const p of deployment.phases ?? []) {
    if (!phaseAt.has(p.phase)) phaseAt.set(p.phase, toDate(p.at));
  }
  let status = deployment.status;
  let result = null;

  // ---- layout ----
  const badge = el('span', { id: 'deployment-status' });
  const live = el('span', { id: 'deployment-live' });
  const headActions = el('div', { class: 'actions' });
  const message = el('div', { 'aria-live': 'polite' });
  const stepper = el('ol', { class: 'stepper', id: 'stepper', 'aria-label': 'Progress' });
  const resultBox = el('div', { id: 'result' });
  const facts = el('ul', { class: 'meta', id: 'deployment-facts' });
  const log = new LogView();
  const conn = el('span', { class: 'badge conn info', id: 'stream-state', dataset: { state: 'connecting' } }, 'Connecting…');
  const search = el('input', { type: 'search', id: 'log-search', placeholder: 'Search the log', 'aria-label': 'Search the log' });
  const only = el('input', { type: 'checkbox', id: 'log-only-matches' });
  let searchTimer = null;
  const applySearch = () => log.setQuery(search.value, only.checked);
  search.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(applySearch, 120);
  });
  search.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') {
      event.preventDefault();
      applySearch();
    }
  });
  only.addEventListener('change', applySearch);
  search.addEventListener('change', applySearch);
  search.addEventListener('search', applySearch);

  // ---- tabs: build log | runtime log ----
  const runtime = new RuntimeLog(id);
  const runtimeNote = el('p', { class: 'muted', id: 'runtime-unavailable' });
  const runtimeBox = el('div', { id: 'runtime-tab-panel', role: 'tabpanel', hidden: true }, runtimeNote, runtime.panel);
  const buildTab = el('button', { type: 'button', class: 'tab active', id: 'tab-build-log', role: 'tab', 'aria-selected': 'true' }, 'Build log');
  const runtimeTab = el('button', { type: 'button', class: 'tab', id: 'tab-runtime-log', role: 'tab', 'aria-selected': 'false' }, 'Runtime log');
  const buildBox = el('div', { id: 'build-tab-panel', role: 'tabpanel' });
  function showTab(which) {
    buildTab.classList.toggle('active', which === 'build');
    runtimeTab.classList.toggle('active', which === 'runtime');
    buildTab.setAttribute('aria-selected', String(which === 'build'));
    runtimeTab.setAttribute('aria-selected', String(which === 'runtime'));
    buildBox.hidden = which !== 'build';
    view.querySelector('#build-log-actions').hidden = which !== 'build';
    runtimeBox.hidden = which !== 'runtime';
    if (which === 'runtime') {
      // Only a running deployment has a container to read (anything else
      // answers 409, which the browser would log as an error).
      const live = status === 'running';
      runtimeNote.textContent = live ? '' : `The deployment is ${status}: runtime logs are there while it runs.`;
      runtimeNote.hidden = live;
      runtime.panel.hidden = !live;
      if (live) runtime.start();
    } else {
      runtime.stop();
    }
  }
  buildTab.addEventListener('click', () => showTab('build'));
  runtimeTab.addEventListener('click', () => showTab('runtime'));

  replace(view,
    el('div', { class: 'page-head' },
      el('div', {},
        el('div', { class: 'small' }, el('a', { href: `#/deployments?sandbox=${encodeURIComponent(deployment.sandbox)}` }, '← Deployments')),
        el('h1', {}, el('span', { id: 'deployment-repo' }, deployment.repo), ' ',
          el('span', { class: 'muted' }, '·'), ' ', el('span', { class: 'mono', id: 'deployment-branch' }, deployment.branch), ' ', badge, live),
        el('div', { class: 'sub' }, 'in sandbox ', sandboxLink(deployment.sandbox), ' · ',
          el('code', { id: 'deployment-id' }, deployment.id))),
      headActions),
    message,
    facts,
    el('section', { class: 'card' }, stepper),
    resultBox,
    el('section', { class: 'card', 'aria-labelledby': 'log-h' },
      el('div', { class: 'card-head' }, el('h2', { id: 'log-h' }, 'Log'),
        el('div', { class: 'tabs', role: 'tablist' }, buildTab, runtimeTab),
        el('div', { class: 'row', id: 'build-log-actions' }, conn,
          el('a', { class: 'btn btn-small', id: 'log-download', href: `/api/deployments/${encodeURIComponent(id)}/logs`, download: `${id}.log` }, 'Download log'))),
      buildBox,
      runtimeBox));
  buildBox.append(
    el('div', { class: 'log-toolbar' }, search,
      el('label', { class: 'check', for: 'log-only-matches' }, only, 'Only matching lines'),
      log.matchInfo, el('span', { class: 'spacer' }), log.followState),
    log.wrap);

  // ---- renderers ----
  function renderStepper() {
    const now = Date.now();
    const settled = SETTLED.has(status);
    const reached = STEPS.filter((s) => phaseAt.has(s));
    const lastReached = reached[reached.length - 1];
    const finalAt = phaseAt.get(status) ?? (result ? toDate(result.ts) : null) ?? toDate(deployment.finished_at);
    const items = STEPS.map((step, i) => {
      const at = phaseAt.get(step);
      const nextAt = STEPS.slice(i + 1).map((s) => phaseAt.get(s)).find(Boolean) ?? (settled ? finalAt : null);
      let cls = 'pending';
      let time = '';
      if (at) {
        if (nextAt) {
          cls = 'done';
          time = duration(nextAt - at);
        } else if (settled) {
          cls = status === 'running' ? 'done' : 'bad';
          time = finalAt ? duration(finalAt - at) : '';
        } else {
          cls = 'current';
          time = duration(now - at);
        }
        if (settled && status !== 'running' && step === lastReached && status !== 'stopped') cls = 'bad';
      }
      return el('li', { class: cls, dataset: { step } }, el('span', { class: 'step-name' }, step), el('span', { class: 'step-time' }, time));
    });
    const start = phaseAt.get('queued') ?? toDate(deployment.created_at);
    const finalName = settled ? status : 'running';
    const finalCls = !settled ? 'pending' : status === 'running' || status === 'stopped' ? 'ok' : 'bad';
    items.push(el('li', { class: finalCls, dataset: { step: 'result' } },
      el('span', { class: 'step-name' }, finalName),
      el('span', { class: 'step-time' }, settled && start && finalAt ? `total ${duration(finalAt - start)}` : '')));
    replace(stepper, items);
    replace(badge, statusBadge(status));
    replace(live, liveBadge({ live: deployment.live && status === 'running' }));
  }

  // The facts and the result box hold links: they are drawn again only
  // when what they show changed (a replay of the stream changes nothing).
  function renderFacts() {
    const fact = (key, value, attrs = {}) => el('li', {}, el('span', { class: 'k' }, key), el('span', { class: 'v', ...attrs }, value));
    const commit = result?.commit ?? deployment.commit;
    const url = result?.url ?? deployment.url;
    const shown = [commit, url, deployment.redeploy_of, deployment.agent_id, deployment.kind, deployment.created_by, deployment.created_at];
    replaceWhenChanged(facts, JSON.stringify(shown), () => [
      fact('Commit', commitEl(commit)),
      deployment.redeploy_of ? fact('Redeploys', redeployBadge(deployment), { id: 'deployment-redeploy-of' }) : null,
      fact('Agent', deployment.agent_id ?? '—', { class: 'v mono' }),
      fact('Kind', deployment.kind ?? '—'),
      fact('By', deployment.created_by ?? '—'),
      fact('Created', timeEl(deployment.created_at)),
      fact('URL', urlLink(url), { id: 'deployment-url' })]);
  }

  function renderResult() {
    if (!SETTLED.has(status)) {
      replaceWhenChanged(resultBox, '', () => []);
      return;
    }
    const url = result?.url ?? deployment.url;
    const error = result?.error ?? deployment.error;
    const tail = result?.log_tail ?? [];
    replaceWhenChanged(resultBox, JSON.stringify([status, url, error, tail]), () => resultAlert(url, error, tail));
  }

  function resultAlert(url, error, tail) {
    if (status === 'running') {
      return el('div', { class: 'alert alert-ok', id: 'result-box', dataset: { status } },
        el('div', { class: 'result-line' }, el('span', { class: 'title' }, 'Running'),
          url ? el('span', {}, 'reachable at ', urlLink(url)) : 'The service is up.'));
    }
    if (status === 'failed') {
      return el('div', { class: 'alert alert-error', id: 'result-box', dataset: { status } },
        el('span', { class: 'title' }, 'Failed'), error ?? 'The deployment failed.',
        tail.length ? [el('div', { class: 'small' }, 'Last lines of the container log:'),
          el('pre', { class: 'log-tail', id: 'log-tail' }, tail.join('\n'))] : null);
    }
    return el('div', { class: 'alert alert-warn', id: 'result-box', dataset: { status } },
      el('span', { class: 'title' }, status === 'cancelled' ? 'Cancelled' : 'Stopped'), error ?? '');
  }

  // The head's buttons are made once; each render shows the ones that
  // apply and updates them in place. A settled page is drawn again by the
  // stream's replay, its result and the final row: a button re-created
  // each time lost clicks that landed between two of them.
  const cancel = el('button', { type: 'button', class: 'btn btn-danger', id: 'cancel-deployment' }, 'Cancel deployment');
  cancel.addEventListener('click', async () => {
    cancel.disabled = true;
    try {
      await api.post(`/api/deployments/${api.seg(id)}/cancel`);
      replace(message, el('div', { class: 'alert alert-info' }, 'Cancel requested: it stops at its next step.'));
    } catch (err) {
      replace(message, errorBox(err, 'Cannot cancel'));
      cancel.disabled = false;
    }
  });
  const again = el('button', { type: 'button', class: 'btn', id: 'redeploy', title: 'Deploy the branch as it is now' }, 'Redeploy branch');
  again.addEventListener('click', async () => {
    again.disabled = true;
    try {
      const created = await api.post(`/api/sandboxes/${api.seg(deployment.sandbox)}/deployments`,
        { repo: deployment.repo, branch: deployment.branch });
      navigate(`#/deployments/${encodeURIComponent(created.id)}`);
    } catch (err) {
      replace(message, errorBox(err, 'Cannot redeploy'));
      again.disabled = false;
    }
  });
  const back = rollbackControl({
    onStarted: (created) => navigate(`#/deployments/${encodeURIComponent(created.id)}`),
    onError: (err) => replace(message, errorBox(err, 'Cannot deploy this commit again')),
    small: false,
  });
  back.node.id = 'rollback';

  function renderActions() {
    if (!SETTLED.has(status)) {
      place(headActions, cancel);
      return;
    }
    const commit = result?.commit ?? deployment.commit;
    const settled = { ...deployment, status, commit, live: deployment.live && status === 'running' };
    const offer = canRedeploy(settled);
    if (offer) back.update(settled);
    place(headActions, again, offer ? back.node : null);
  }

  function renderAll() {
    renderStepper();
    renderResult();
    renderFacts();
    renderActions();
  }
  renderAll();

  // ---- live ----
  const onEvent = (event) => {
    const body = event.body ?? {};
    if (body.type === 'log' || body.type === 'logs') {
      log.addLog(event);
    } else if (body.type === 'phase') {
      const at = toDate(event.ts);
      if (!phaseAt.has(body.phase) && at) phaseAt.set(body.phase, at);
      if (body.commit) deployment.commit = body.commit;
      if (!SETTLED.has(status)) status = body.phase;
      log.addMarker(event, `── ${body.phase}${body.commit ? ` ${String(body.commit).slice(0, 8)}` : ''}`);
      renderStepper();
      renderFacts();
      renderActions();
    } else if (body.type === 'result') {
      result = { ...body, ts: event.ts };
      status = body.status;
      // Persisted before it was sent: the newest running one is live.
      deployment.live = body.status === 'running';
      const at = toDate(event.ts);
      if (!phaseAt.has(body.status) && at) phaseAt.set(body.status, at);
      log.addMarker(event, `── ${body.status}${body.error ? `: ${body.error}` : ''}`);
      renderAll();
    }
  };
  const onState = (state, detail) => {
    const [label, kind] = CONN[state] ?? [state, 'plain'];
    conn.className = `badge conn ${kind}`;
    conn.dataset.state = state;
    conn.textContent = detail && state === 'reconnecting' ? `${label} (${detail})` : label;
    if (state === 'ended') {
      // The row has the final timings (finished_at, commit, error).
      api.get(`/api/deployments/${api.seg(id)}`).then((fresh) => {
        if (!isCurrent()) return;
        deployment = fresh;
        if (!result) status = fresh.status;
        renderAll();
      }).catch(() => {});
    }
  };
  const stream = new DeploymentStream(id, { onEvent, onState }).start();
  const clock = setInterval(() => {
    if (!SETTLED.has(status)) renderStepper();
  }, 1000);

  return () => {
    stream.close();
    runtime.stop();
    clearInterval(clock);
    clearTimeout(searchTimer);
  };
}

