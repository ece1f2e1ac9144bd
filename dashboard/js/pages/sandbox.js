// #/sandboxes/{name}: services (and each one's env in this sandbox),
// gateway, routes, deploy form, sleep state and wake, expiry, teardown, the
// sandbox's recent deployments, and the notifications sent for it.

import * as api from '../api.js';
import { el, replace, errorBox, loading, urlLink, confirmButton, copyButton, place, keyed, setText, setAttr, replaceWhenChanged } from '../dom.js';
import { statusBadge, timeEl, commitEl, deploymentLink, SETTLED } from '../format.js';
import { autodeployControl, pushedNote } from '../autodeploy.js';
import { stalenessChecker, routeProber } from './sandbox_checks.js';
import { serviceEnvEditor } from './sandbox_env.js';
import { sleepControl } from './sandbox_sleep.js';
import { resourcesPanel } from './sandbox_resources.js';
import { deliveriesCard } from './sandbox_deliveries.js';
import { liveBadge, redeployBadge, canRedeploy, rollbackControl } from '../rollback.js';

const POLL_MS = 4000;

const ROUTE_LABEL = {
  sandbox: ['→ sandbox', 'route-sandbox', 'a deployment of this sandbox'],
  environment: ['→ baseline', 'route-environment', 'the shared environment (baseline)'],
  manual: ['manual', 'route-manual', 'set by hand'],
};

function routeBadge(source) {
  const [label, cls, title] = ROUTE_LABEL[source] ?? [String(source ?? '?'), '', ''];
  return el('span', { class: `badge plain ${cls}`, title, dataset: { source: String(source ?? '') } }, label);
}

export async function render(view, { params, navigate, isCurrent, me }) {
  const name = params[0];
  const base = `/api/sandboxes/${api.seg(name)}`;
  const message = el('div', { id: 'sandbox-message', 'aria-live': 'polite' });
  const say = (kind, ...text) => replace(message, el('div', { class: `alert alert-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, ...text));
  const sayError = (err, title) => replace(message, errorBox(err, title));

  const headActions = el('div', { class: 'actions' });
  const facts = el('div', { class: 'card-body' }, loading());
  const services = el('div', { class: 'card-body flush' }, loading());
  const routes = el('div', { class: 'card-body flush' }, loading());
  const history = el('div', { class: 'card-body flush' }, loading());
  const deployBody = el('div', { class: 'card-body' }, loading());
  const subtitle = el('div', { class: 'sub' });
  // Loaded after the page (they ask agents): staleness badges, route probe.
  // Staleness reads the remote with the viewer's credential: without one
  // (control plane restarted since login) it would answer 401, so skip it.
  const staleness = stalenessChecker(base, () => { if (!stopped) renderServices(); }, me?.can_deploy !== false);
  const prober = routeProber(base, () => { if (!stopped) renderRoutes(lastRoutes); }, (err, title) => sayError(err, title));
  const sleep = sleepControl(base, {
    onWoken: (woken) => { sandbox = woken; say('ok', 'Awake: its services answer again.'); renderFacts(); refresh(); },
    onError: (err, title) => sayError(err, title),
  });
  const deliveries = deliveriesCard(name);
  const envEditor = serviceEnvEditor(base, {
    onSaved: (text) => { say('ok', text); refresh(); },
    onError: (err, title) => sayError(err, title),
  });

  const resources = resourcesPanel(base, {
    onSaved: (text) => say('ok', text),
    onError: (err, title) => sayError(err, title),
    mayChange: () => Boolean(me && sandbox && me.username === sandbox.owner),
  });

  view.append(
    el('div', { class: 'page-head' },
      el('div', {}, el('div', { class: 'small' }, el('a', { href: '#/sandboxes' }, '← Sandboxes')),
        el('h1', { id: 'sandbox-name' }, name), subtitle),
      headActions),
    message,
    el('div', { class: 'grid-2' },
      el('section', { class: 'card' }, el('div', { class: 'card-head' }, el('h2', {}, 'Sandbox')), facts),
      el('section', { class: 'card', id: 'deploy-card' }, el('div', { class: 'card-head' }, el('h2', {}, 'Deploy a branch')), deployBody)),
    el('section', { class: 'card' },
      el('div', { class: 'card-head' }, el('h2', {}, 'Services'), el('span', { class: 'hint' }, 'What runs in this sandbox')), services),
    envEditor.node,
    resources.node,
    el('section', { class: 'card' },
      el('div', { class: 'card-head' }, el('h2', {}, 'Routes'),
        el('span', { class: 'hint' }, 'Where the sandbox gateway sends each service'), prober.button), routes),
    el('section', { class: 'card' },
      el('div', { class: 'card-head' }, el('h2', {}, 'Recent deployments'),
        el('a', { href: `#/deployments?sandbox=${encodeURIComponent(name)}` }, 'All of them')), history),
    deliveries.node);

  let stopped = false;
  let timer = null;
  let sandbox = null;
  let sandboxApi = true;
  let editingRoute = false;

  const deployOne = async (repo, branch, button, commit) => {
    if (button) button.disabled = true;
    try {
      const created = await api.post(`${base}/deployments`, commit ? { repo, branch, commit } : { repo, branch });
      navigate(`#/deployments/${encodeURIComponent(created.id)}`);
    } catch (err) {
      sayError(err, `Cannot deploy ${repo} ${branch}`);
      if (err.details?.deployment_id) {
        message.firstChild?.append(' ', deploymentLink(err.details.deployment_id, 'See the failed deployment'));
      }
    } finally {
      if (button) button.disabled = false;
    }
  };

  const cancel = async (id, button) => {
    button.disabled = true;
    try {
      await api.post(`/api/deployments/${api.seg(id)}/cancel`);
      say('info', 'Cancel requested. The deployment stops at its next step.');
      refresh();
    } catch (err) {
      sayError(err, 'Cannot cancel');
      button.disabled = false;
    }
  };

  // ---- facts, expiry, pin ----
  // Without its own environment, a sandbox uses its template's.
  let templateEnv;
  const environmentOf = () => {
    const env = sandbox.environment ?? templateEnv;
    if (!env) return el('span', { class: 'muted' }, '—');
    return el('span', {}, el('a', { href: `#/environments/${encodeURIComponent(env)}` }, env),
      sandbox.environment ? null : el('span', { class: 'muted' }, ' (from the template)'));
  };
  const loadTemplateEnv = async () => {
    if (templateEnv !== undefined || !sandbox?.template || sandbox.environment) return;
    templateEnv = null;
    try {
      templateEnv = (await api.get(`/api/templates/${api.seg(sandbox.template)}`))?.environment ?? null;
      if (!stopped) renderFacts();
    } catch {
      // Shown as "—".
    }
  };
  // The page polls: its buttons, links and fields are made once and
  // updated in place (a re-created one loses a click, and a field what
  // is being typed into it). Parts that only show data are drawn again
  // when their data changed.
  const pin = el('button', { type: 'button', class: 'btn btn-small', id: 'pin-toggle' });
  pin.addEventListener('click', () => change({ pinned: !sandbox.pinned }, pin, sandbox.pinned ? 'Unpinned: it expires again.' : 'Pinned: it never expires.'));
  const renew = el('button', { type: 'button', class: 'btn btn-small', id: 'renew' }, 'Renew');
  renew.addEventListener('click', () => change({ renew: true }, renew, 'Renewed.'));
  const ttl = el('input', { type: 'number', min: 1, max: 2160, id: 'ttl-hours', 'aria-label': 'Time to live in hours' });
  let ttlShown = null;
  const ttlForm = el('form', { class: 'row' }, ttl, el('span', { class: 'muted' }, 'hours'),
    el('button', { type: 'submit', class: 'btn btn-small' }, 'Set'));
  ttlForm.addEventListener('submit', (event) => {
    event.preventDefault();
    change({ ttl_hours: Number(ttl.value) }, ttlForm.querySelector('button'), 'Expiry updated.');
  });
  const previewDt = el('dt', {}, 'Link');
  const previewDd = el('dd', { id: 'preview-url' });
  const gatewayDd = el('dd', { id: 'gateway-url' });
  const environmentDd = el('dd', { id: 'sandbox-environment' });
  const createdDd = el('dd', {});
  const expiresWhen = el('span', {});
  const factList = el('dl', { class: 'facts' });
  const factRows = [
    el('dt', {}, 'State'), sleep.node,
    el('dt', {}, 'Gateway'), gatewayDd,
    el('dt', {}, 'Environment'), environmentDd,
    el('dt', {}, 'Created'), createdDd,
    el('dt', {}, 'Expires'), el('dd', { id: 'expiry' }, el('div', { class: 'row' }, expiresWhen, pin, renew)),
    el('dt', {}, 'Time to live'), el('dd', {}, ttlForm)];
  function renderFacts() {
    if (!sandbox) return;
    replaceWhenChanged(subtitle, JSON.stringify([sandbox.owner, sandbox.template]), () => ['Owned by ', el('strong', {}, sandbox.owner ?? '?'),
      sandbox.template ? [' · template ', el('a', { href: `#/templates/${encodeURIComponent(sandbox.template)}` }, sandbox.template)] : null]);
    sleep.update(sandbox);
    setText(pin, sandbox.pinned ? 'Unpin' : 'Pin');
    setAttr(pin, 'aria-pressed', String(Boolean(sandbox.pinned)));
    // What the server says, unless someone is typing a new one.
    const hours = String(sandbox.ttl_hours ?? 24);
    if (hours !== ttlShown && document.activeElement !== ttl) {
      ttl.value = hours;
      ttlShown = hours;
    }
    if (sandbox.preview_url) {
      replaceWhenChanged(previewDd, sandbox.preview_url, () => el('div', { class: 'row' },
        urlLink(sandbox.preview_url), copyButton(sandbox.preview_url)));
    }
    replaceWhenChanged(gatewayDd, sandbox.gateway_url ?? '', () => (sandbox.gateway_url ? urlLink(sandbox.gateway_url) : el('span', { class: 'muted' }, 'not running')));
    replaceWhenChanged(environmentDd, JSON.stringify([sandbox.environment, templateEnv]), environmentOf);
    replace(createdDd, timeEl(sandbox.created_at));
    replace(expiresWhen, sandbox.pinned ? el('span', { class: 'badge plain info' }, 'pinned: never') : timeEl(sandbox.expires_at));
    place(factList, sandbox.preview_url ? [previewDt, previewDd] : null, factRows);
    place(facts, factList);
  }

  async function change(body, button, done) {
    button.disabled = true;
    try {
      sandbox = await api.patch(base, body);
      say('ok', done);
      renderFacts();
      refresh();
    } catch (err) {
      sayError(err, 'Cannot change the sandbox');
    } finally {
      button.disabled = false;
    }
  }

  // ---- services ----
  const makeServiceRow = (first) => {
    const repo = first.repo;
    let current = first;
    const branchCell = el('td', { class: 'mono' });
    const commitCell = el('td', {});
    const statusCell = el('td', {});
    const urlCell = el('td', {});
    const log = el('a', { class: 'btn btn-small' }, 'Log');
    const cancelButton = el('button', { type: 'button', class: 'btn btn-small btn-danger' }, 'Cancel');
    // Disabled once asked for its deployment; a later one may be cancelled.
    let cancelledFor = null;
    cancelButton.addEventListener('click', () => {
      cancelledFor = current.deployment_id;
      cancel(current.deployment_id, cancelButton);
    });
    const deployButton = el('button', { type: 'button', class: 'btn btn-small', dataset: { redeploy: repo } });
    deployButton.addEventListener('click', () => deployOne(repo, current.branch, deployButton));
    const autodeploy = autodeployControl(base, repo, {
      onChanged: (on) => {
        say('ok', on ? `Autodeploy on: a push to ${current.branch} redeploys ${repo}.` : `Autodeploy off: ${repo} is deployed by hand.`);
        refresh();
      },
      onError: (err) => sayError(err, 'Cannot change autodeploy'),
    });
    const envButton = envEditor.button(repo);
    const actions = el('td', { class: 'actions' });
    const tr = el('tr', { dataset: { service: repo } },
      el('td', {}, el('strong', {}, repo)), branchCell, commitCell, statusCell, urlCell,
      el('td', { class: 'autodeploy-cell' }, autodeploy.node), actions);
    return {
      node: tr,
      update(s) {
        current = s;
        replace(branchCell, s.branch ?? '', ' ', staleness.badge(s));
        replace(commitCell, commitEl(s.commit));
        replace(statusCell, s.status ? statusBadge(s.status) : el('span', { class: 'muted' }, 'not deployed'), pushedNote(s) ? [' ', pushedNote(s)] : null);
        replaceWhenChanged(urlCell, s.url ?? '', () => urlLink(s.url));
        autodeploy.update(s);
        if (s.deployment_id) setAttr(log, 'href', `#/deployments/${encodeURIComponent(s.deployment_id)}`);
        const inFlight = Boolean(s.status && !SETTLED.has(s.status) && s.deployment_id);
        if (cancelButton.disabled && cancelledFor !== s.deployment_id) cancelButton.disabled = false;
        if (!inFlight && s.branch) {
          // A service without autodeploy is brought up to its branch's
          // head by hand.
          setText(deployButton, !s.deployment_id ? 'Deploy' : s.autodeploy ? 'Redeploy' : 'Deploy latest');
          setAttr(deployButton, 'title', s.deployment_id ? `Deploy the newest commit of ${s.branch}` : null);
        }
        envEditor.update(s);
        place(actions, envButton, s.deployment_id ? log : null, inFlight ? cancelButton : s.branch ? deployButton : null);
      },
    };
  };
  const servicesBody = el('tbody', {});
  const servicesTable = el('table', { class: 'table', id: 'services-table' },
    el('thead', {}, el('tr', {}, el('th', {}, 'Service'), el('th', {}, 'Branch'), el('th', {}, 'Commit'),
      el('th', {}, 'Status'), el('th', {}, 'URL'), el('th', {}, 'Autodeploy'), el('th', {}, el('span', { class: 'sr-only' }, 'Actions')))),
    servicesBody);
  const noServices = el('div', { class: 'empty' }, el('p', {}, 'Nothing deployed yet. Deploy a branch, or the whole template.'));
  function renderServices() {
    const list = sandbox?.services ?? [];
    envEditor.keep(new Set(list.map((s) => s.repo)));
    if (list.length === 0) {
      place(services, noServices);
      return;
    }
    keyed(servicesBody, list, (s) => s.repo, makeServiceRow);
    place(services, servicesTable);
  }

  // ---- routes ----
  function routeEditor(route, cell) {
    editingRoute = true;
    const input = el('input', { type: 'url', class: 'mono wide', value: route.target ?? '', 'aria-label': `Manual target for ${route.service}`, required: true });
    const form = el('form', { class: 'row' }, input,
      el('button', { type: 'submit', class: 'btn btn-small btn-primary' }, 'Save'),
      el('button', { type: 'button', class: 'btn btn-small', onclick: () => { editingRoute = false; renderRoutes(lastRoutes); } }, 'Cancel'));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      try {
        await api.put(`${base}/routes/${api.seg(route.service)}`, { target: input.value.trim() });
        editingRoute = false;
        say('ok', `${route.service} now routes to ${input.value.trim()} (manual).`);
        refresh();
      } catch (err) {
        sayError(err, 'Cannot set the route');
      }
    });
    replace(cell, form);
    input.focus();
  }

  let lastRoutes = [];
  const makeRouteRow = (first) => {
    const service = first.service;
    let current = first;
    const badgeCell = el('td', {});
    const targetCell = el('td', { class: 'mono target' });
    const envKeyCell = el('td', { class: 'mono muted' });
    const probeCell = el('td', { class: 'probe-cell' });
    const override = el('button', { type: 'button', class: 'btn btn-small' });
    override.addEventListener('click', () => routeEditor(current, targetCell));
    const clear = el('button', { type: 'button', class: 'btn btn-small btn-danger' }, 'Clear');
    clear.addEventListener('click', async () => {
      clear.disabled = true;
      try {
        await api.del(`${base}/routes/${api.seg(service)}`);
        say('ok', `The manual route of ${service} is cleared.`);
        refresh();
      } catch (err) {
        sayError(err, 'Cannot clear the route');
      } finally {
        clear.disabled = false;
      }
    });
    const actions = el('td', { class: 'actions' });
    const tr = el('tr', { dataset: { service } },
      el('td', {}, el('strong', {}, service)), badgeCell, targetCell, envKeyCell, probeCell, actions);
    return {
      node: tr,
      update(r) {
        current = r;
        tr.dataset.source = String(r.source ?? '');
        replace(badgeCell, routeBadge(r.source));
        // Text again, also after the route editor's form stood here.
        const target = r.target ?? '';
        if (targetCell.firstElementChild || targetCell.textContent !== target) targetCell.textContent = target;
        setText(envKeyCell, r.env_key ?? '');
        replace(probeCell, prober.dot(r));
        setText(override, r.source === 'manual' ? 'Change' : 'Set manual');
        place(actions, override, r.source === 'manual' ? clear : null);
      },
    };
  };
  const routesBody = el('tbody', {});
  const routesTable = el('table', { class: 'table', id: 'routes-table' },
    el('thead', {}, el('tr', {}, el('th', {}, 'Service'), el('th', {}, 'Goes to'), el('th', {}, 'Target'),
      el('th', {}, 'Env key'), el('th', {}, 'Check'), el('th', {}, ''))),
    routesBody);
  const noRoutes = el('div', { class: 'empty' }, el('p', {}, 'No routes: the template names no services, or the environment has no URLs for them.'));
  function renderRoutes(list) {
    lastRoutes = list ?? [];
    if (editingRoute) return;
    if (lastRoutes.length === 0) {
      place(routes, noRoutes);
      return;
    }
    keyed(routesBody, lastRoutes, (r) => r.service, makeRouteRow);
    place(routes, routesTable);
  }

  // ---- deploy form ----
  async function renderDeployForm() {
    let repos = null;
    try {
      repos = await api.get('/api/repos');
    } catch (err) {
      if (!api.isMissingApi(err)) replace(deployBody, errorBox(err, 'Cannot list the repos'));
    }
    if (stopped) return;
    const known = new Set((repos ?? []).map((r) => r.name));
    for (const s of sandbox?.services ?? []) known.add(s.repo);
    const repoField = repos && repos.length
      ? el('select', { id: 'deploy-repo', required: true, class: 'wide' }, [...known].sort().map((n) => el('option', { value: n }, n)))
      : el('input', { type: 'text', id: 'deploy-repo', required: true, list: 'deploy-repo-list', placeholder: 'repo name', autocomplete: 'off', class: 'wide' });
    const repoList = el('datalist', { id: 'deploy-repo-list' }, [...known].map((n) => el('option', { value: n })));
    const branchList = el('datalist', { id: 'deploy-branch-list' });
    const branch = el('input', { type: 'text', id: 'deploy-branch', required: true, list: 'deploy-branch-list', placeholder: 'feature/…', autocomplete: 'off', class: 'mono wide' });
    const branchHelp = el('div', { class: 'help', id: 'deploy-branch-help' });
    const submit = el('button', { type: 'submit', class: 'btn btn-primary', id: 'deploy-submit' }, 'Deploy');
    let branchesFor = null;
    const loadBranches = async () => {
      const repo = repoField.value.trim();
      if (!repo || repo === branchesFor) return;
      branchesFor = repo;
      replace(branchHelp, 'Loading branches…');
      try {
        const branches = await api.get(`/api/repos/${api.seg(repo)}/branches`);
        if (repoField.value.trim() !== repo) return;
        replace(branchList, branches.map((b) => el('option', { value: b.name }, `${b.name} · ${String(b.commit ?? '').slice(0, 8)}`)));
        replace(branchHelp, `${branches.length} branch${branches.length === 1 ? '' : 'es'}: type to filter.`);
        const info = repos?.find((r) => r.name === repo);
        if (!branch.value && info?.default_branch) branch.placeholder = info.default_branch;
      } catch (err) {
        replace(branchList);
        replace(branchHelp, api.isMissingApi(err) ? 'Type the branch name.' : `Cannot list branches: ${err.message}`);
      }
    };
    repoField.addEventListener('change', loadBranches);
    // Optional: a commit of the branch instead of its head (the agent
    // refuses one that is not on the branch).
    const commit = el('input', { type: 'text', id: 'deploy-commit', placeholder: 'the branch head', autocomplete: 'off', class: 'mono wide',
      pattern: '[0-9a-f]{40}|[0-9a-f]{64}', title: 'The full commit id (40 hex digits)' });
    const form = el('form', { id: 'deploy-form' },
      el('div', { class: 'field' }, el('label', { for: 'deploy-repo' }, 'Repo'), repoField, repoList),
      el('div', { class: 'field' }, el('label', { for: 'deploy-branch' }, 'Branch'), branch, branchList, branchHelp),
      el('div', { class: 'field' }, el('label', { for: 'deploy-commit' }, 'Commit (optional)'), commit),
      submit);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const repo = repoField.value.trim();
      const br = branch.value.trim();
      if (!repo || !br) {
        say('error', 'Pick a repo and a branch.');
        (repo ? branch : repoField).focus();
        return;
      }
      deployOne(repo, br, submit, commit.value.trim());
    });
    replace(deployBody, form);
    loadBranches();
  }

  // ---- head actions ----
  const all = el('button', { type: 'button', class: 'btn', id: 'deploy-template' }, 'Deploy whole template');
  all.addEventListener('click', async () => {
    all.disabled = true;
    try {
      const result = await api.post(`${base}/deploy`, {});
      const started = result?.deployments ?? [];
      say('ok', `Started ${started.length} deployment${started.length === 1 ? '' : 's'}: `,
        started.map((d, i) => [i ? ', ' : '', deploymentLink(d.id, `${d.repo} ${d.branch}`)]));
      refresh();
    } catch (err) {
      sayError(err, 'Cannot deploy the template');
    } finally {
      all.disabled = false;
    }
  });
  const tearDown = confirmButton({
    label: 'Tear down…',
    question: `Stop everything in ${name} and delete it?`,
    confirmLabel: 'Tear down',
    onConfirm: async () => {
      try {
        await api.del(base);
        navigate('#/sandboxes');
      } catch (err) {
        sayError(err, 'Cannot tear down');
      }
    },
  });
  const testRuns = el('a', { class: 'btn', id: 'sandbox-test-runs', href: `#/sandboxes/${encodeURIComponent(name)}/test-runs` }, 'Test runs');
  function renderHeadActions() {
    place(headActions, sandboxApi && sandbox ? [testRuns, all, tearDown] : null);
  }

  // ---- recent deployments ----
  const makeHistoryRow = (d) => {
    const commitCell = el('td', {});
    const statusCell = el('td', {});
    const startedCell = el('td', {});
    const back = rollbackControl({
      onStarted: (created) => navigate(`#/deployments/${encodeURIComponent(created.id)}`),
      onError: (err, at) => sayError(err, `Cannot deploy ${at.repo} ${at.commit} again`),
    });
    const actions = el('td', { class: 'actions' });
    const tr = el('tr', { dataset: { deployment: d.id } },
      el('td', {}, deploymentLink(d.id), d.redeploy_of ? [' ', redeployBadge(d)] : null),
      el('td', {}, d.repo), el('td', { class: 'mono' }, d.branch),
      commitCell, statusCell, el('td', {}, d.created_by ?? ''), startedCell, actions);
    return {
      node: tr,
      update(now) {
        replace(commitCell, commitEl(now.commit));
        replace(statusCell, statusBadge(now.status), liveBadge(now));
        replace(startedCell, timeEl(now.created_at));
        if (canRedeploy(now)) back.update(now);
        place(actions, canRedeploy(now) ? back.node : null);
      },
    };
  };
  const historyBody = el('tbody', {});
  const historyTable = el('table', { class: 'table', id: 'sandbox-deployments' },
    el('thead', {}, el('tr', {}, el('th', {}, 'Deployment'), el('th', {}, 'Repo'), el('th', {}, 'Branch'),
      el('th', {}, 'Commit'), el('th', {}, 'Status'), el('th', {}, 'By'), el('th', {}, 'Started'), el('th', {}, ''))),
    historyBody);
  const noHistory = el('div', { class: 'empty' }, el('p', {}, 'No deployments in this sandbox yet.'));
  function renderHistory(list) {
    if (!list.length) {
      place(history, noHistory);
      return;
    }
    keyed(historyBody, list, (d) => d.id, makeHistoryRow);
    place(history, historyTable);
  }

  async function refresh() {
    clearTimeout(timer);
    const [sb, rt, hist] = await Promise.allSettled([
      api.get(base),
      api.get(`${base}/routes`),
      api.get(`/api/deployments${api.query({ sandbox: name, limit: 10 })}`),
    ]);
    if (stopped) return;
    if (sb.status === 'fulfilled') {
      sandbox = sb.value;
      sandboxApi = true;
      renderFacts();
      loadTemplateEnv();
      renderServices();
      staleness.update(sandbox.services);
      renderHeadActions();
      resources.refresh();
    } else if (api.isMissingApi(sb.reason)) {
      sandboxApi = false;
      replace(facts, el('div', { class: 'alert alert-info' },
        'This control plane has no sandbox API yet: only deploys and their history are shown.'));
      replace(services, el('div', { class: 'empty' }, el('p', {}, 'See the recent deployments below.')));
    } else if (sb.reason?.status === 404) {
      replace(view, el('div', { class: 'card' }, el('div', { class: 'empty' },
        el('h2', {}, 'No such sandbox'),
        el('p', {}, 'There is no sandbox called ', el('strong', {}, name), '. It may have been torn down. ',
          el('a', { href: '#/sandboxes' }, 'Back to the sandboxes'), '.'))));
      stopped = true;
      return;
    } else {
      replace(facts, errorBox(sb.reason, 'Cannot load the sandbox'));
    }
    if (rt.status === 'fulfilled') renderRoutes(rt.value);
    else if (api.isMissingApi(rt.reason) || !sandboxApi) replace(routes, el('div', { class: 'empty' }, el('p', {}, 'Routes are not available on this control plane.')));
    else if (!editingRoute) replace(routes, el('div', { class: 'card-body' }, errorBox(rt.reason, 'Cannot load the routes')));
    deliveries.refresh();
    if (hist.status === 'fulfilled') renderHistory(hist.value);
    else replace(history, el('div', { class: 'card-body' }, errorBox(hist.reason, 'Cannot load the deployments')));
    if (!stopped) timer = setTimeout(refresh, POLL_MS);
  }

  await refresh();
  if (!isCurrent() || stopped) return () => { stopped = true; clearTimeout(timer); };
  if (me?.can_deploy === false) {
    replace(deployBody, el('div', { class: 'alert alert-warn' }, 'Log in again to deploy: the control plane restarted since you logged in.'));
  } else {
    await renderDeployForm();
  }
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
