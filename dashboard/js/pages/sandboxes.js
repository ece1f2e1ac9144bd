// #/sandboxes (home): every sandbox with its services' status, and the
// "New sandbox" form.

import * as api from '../api.js';
import { el, replace, errorBox, loading, place, keyed, setText, replaceWhenChanged } from '../dom.js';
import { statusBadge, timeEl, sandboxLink } from '../format.js';

// The most sandboxes the list shows: every one of any real team.
const SANDBOX_CAP = 10000;

const POLL_MS = 5000;

function servicesCell(services) {
  if (!services || services.length === 0) return el('span', { class: 'muted' }, 'none deployed');
  return el('div', { class: 'services-badges' }, services.map((s) =>
    el('span', { class: 'service-chip' }, el('span', { class: 'name' }, s.repo), statusBadge(s.status ?? 'queued'))));
}

// A row per sandbox, kept across polls (see `keyed`): its links stay the
// same elements while someone reaches for them.
function makeRow(first) {
  const owner = el('td', {});
  const template = el('td', {});
  const expires = el('td', {});
  const pinned = el('td', {});
  const servicesTd = el('td', {});
  // A sleeping (or waking) sandbox says so beside its name.
  const sleeping = el('span', { class: 'sandbox-sleep' });
  const node = el('tr', { dataset: { sandbox: first.name } },
    el('td', {}, sandboxLink(first.name), sleeping), owner, template, expires, pinned, servicesTd);
  return {
    node,
    update(s) {
      setText(owner, s.owner ?? '');
      replaceWhenChanged(template, s.template ?? '', () => (s.template
        ? el('a', { href: `#/templates/${encodeURIComponent(s.template)}` }, s.template)
        : el('span', { class: 'muted' }, '—')));
      replace(expires, s.pinned ? el('span', { class: 'muted' }, 'never (pinned)') : timeEl(s.expires_at));
      // Built again only when what they show changed: a poll of a team's
      // hundreds of rows then touches no node of an unchanged row.
      replaceWhenChanged(pinned, Boolean(s.pinned), () => (s.pinned
        ? el('span', { class: 'badge plain info' }, 'pinned') : el('span', { class: 'muted' }, 'no')));
      replaceWhenChanged(servicesTd, (s.services ?? []).map((v) => `${v.repo}:${v.status ?? 'queued'}`).join(' '),
        () => servicesCell(s.services));
      replaceWhenChanged(sleeping, s.state ?? 'awake', () => (s.state && s.state !== 'awake'
        ? [' ', el('span', { class: `badge plain ${s.state === 'asleep' ? 'warn' : 'info'}` }, s.state)]
        : []));
    },
  };
}

function table() {
  const tbody = el('tbody', {});
  const node = el('table', { class: 'table', id: 'sandboxes-table' },
    el('thead', {}, el('tr', {},
      el('th', {}, 'Name'), el('th', {}, 'Owner'), el('th', {}, 'Template'),
      el('th', {}, 'Expires'), el('th', {}, 'Pinned'), el('th', {}, 'Services'))),
    tbody);
  return { node, update: (sandboxes) => keyed(tbody, sandboxes, (s) => s.name, makeRow) };
}

function emptyState(hasTemplates) {
  return el('div', { class: 'empty', id: 'sandboxes-empty' },
    el('h2', {}, 'No sandboxes yet'),
    el('p', {}, 'A sandbox runs your feature branches next to the shared baseline.'),
    el('ol', {},
      el('li', {}, el('a', { href: '#/environments' }, 'Create an environment'), ': the baseline URLs of the services (e.g. USERS_URL).'),
      el('li', {}, el('a', { href: '#/templates' }, 'Create a template'), ': the environment, the gateway and the services with default branches.'),
      el('li', {}, hasTemplates ? 'Create a sandbox from a template with the form on this page, then deploy a branch into it.'
        : 'Create a sandbox from that template here, then deploy a branch into it.')));
}

function newSandboxForm(templates, onCreated) {
  const message = el('div');
  const name = el('input', {
    type: 'text', id: 'new-sandbox-name', required: true, pattern: '[a-z0-9][a-z0-9\\-]{0,62}',
    placeholder: 'e.g. alice-login-fix', autocomplete: 'off',
  });
  const template = el('select', { id: 'new-sandbox-template' },
    el('option', { value: '' }, templates.length ? '— choose a template —' : '— no templates yet —'),
    templates.map((t) => el('option', { value: t.name }, t.name)));
  if (templates.length === 1) template.value = templates[0].name;
  const ttl = el('input', { type: 'number', id: 'new-sandbox-ttl', min: 1, max: 2160, value: '24' });
  const pinned = el('input', { type: 'checkbox', id: 'new-sandbox-pinned' });
  const submit = el('button', { type: 'submit', class: 'btn btn-primary', id: 'new-sandbox-submit' }, 'Create sandbox');
  const form = el('form', { id: 'new-sandbox-form' },
    el('div', { class: 'form-row' },
      el('div', { class: 'field grow' }, el('label', { for: 'new-sandbox-name' }, 'Name'), name),
      el('div', { class: 'field grow' }, el('label', { for: 'new-sandbox-template' }, 'Template'), template),
      el('div', { class: 'field' }, el('label', { for: 'new-sandbox-ttl' }, 'Expires after (hours)'), ttl),
      el('div', { class: 'field' }, el('label', { class: 'check', for: 'new-sandbox-pinned' }, pinned, 'Pinned (never expires)')),
      el('div', { class: 'field' }, submit)),
    el('div', { class: 'help muted small' }, 'Lower-case letters, digits and dashes. Each deploy renews the expiry.'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    replace(message);
    const body = { name: name.value.trim(), pinned: pinned.checked };
    if (template.value) body.template = template.value;
    const hours = Number(ttl.value);
    if (ttl.value && Number.isFinite(hours)) body.ttl_hours = hours;
    if (!body.name) {
      replace(message, el('div', { class: 'alert alert-error' }, 'Give the sandbox a name.'));
      name.focus();
      return;
    }
    submit.disabled = true;
    try {
      const created = await api.post('/api/sandboxes', body);
      onCreated(created?.name ?? body.name);
    } catch (err) {
      replace(message, errorBox(err, 'Cannot create the sandbox'));
    } finally {
      submit.disabled = false;
    }
  });
  return el('div', {}, message, form);
}

export async function render(view, { navigate, isCurrent }) {
  const listBody = el('div', { class: 'card-body flush' }, loading());
  const formBody = el('div', { class: 'card-body' }, loading());
  view.append(
    el('div', { class: 'page-head' },
      el('div', {}, el('h1', {}, 'Sandboxes'),
        el('div', { class: 'sub' }, 'Feature branches running next to the baseline.'))),
    el('section', { class: 'card', 'aria-labelledby': 'new-sandbox-h' },
      el('div', { class: 'card-head' }, el('h2', { id: 'new-sandbox-h' }, 'New sandbox')), formBody),
    el('section', { class: 'card', 'aria-labelledby': 'list-h' },
      el('div', { class: 'card-head' }, el('h2', { id: 'list-h' }, 'All sandboxes'),
        el('span', { class: 'hint' }, 'Refreshes every few seconds')), listBody));

  let templates = [];
  try {
    templates = await api.get('/api/templates');
  } catch (err) {
    if (!api.isMissingApi(err)) replace(formBody, errorBox(err, 'Cannot load the templates'));
  }
  if (!isCurrent()) return undefined;
  replace(formBody, newSandboxForm(templates, (name) => navigate(`#/sandboxes/${encodeURIComponent(name)}`)));

  let timer = null;
  let stopped = false;
  let marked = -1;
  const list = table();
  const empty = emptyState(templates.length > 0);
  const refresh = async () => {
    try {
      // Every sandbox (a team has hundreds: a page holds 500, the cursor
      // gives the rest).
      const { items: sandboxes } = await api.getAll('/api/sandboxes', SANDBOX_CAP);
      if (stopped) return;
      if (sandboxes.length) {
        list.update(sandboxes);
        place(listBody, list.node);
      } else {
        place(listBody, empty);
      }
      // A User Timing mark when the list first shows each new count of
      // rows: what the benches read as the time from opening the page to
      // N rows (exact, unlike polling the DOM from outside).
      if (sandboxes.length !== marked) {
        marked = sandboxes.length;
        performance.mark('sdp:sandboxes-shown', { detail: { rows: marked } });
      }
    } catch (err) {
      if (stopped) return;
      if (api.isMissingApi(err)) {
        replace(listBody, el('div', { class: 'empty' }, el('h2', {}, 'Sandboxes are not available yet'),
          el('p', {}, 'This control plane does not serve /api/sandboxes. You can still deploy with the REST API and follow it under ',
            el('a', { href: '#/deployments' }, 'Deployments'), '.')));
        return;
      }
      replace(listBody, el('div', { class: 'card-body' }, errorBox(err, 'Cannot load the sandboxes')));
    }
    if (!stopped) timer = setTimeout(refresh, POLL_MS);
  };
  await refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
