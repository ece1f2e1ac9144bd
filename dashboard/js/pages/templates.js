// #/templates and #/templates/{name}: blueprints of sandboxes — an
// environment, a gateway (repo, branch) and services with default branches.

import * as api from '../api.js';
import { el, replace, errorBox, loading, confirmButton } from '../dom.js';
import { webhooksCard } from '../webhooks.js';

let savedNote = null;

function repoBranchText(rb) {
  return rb ? `${rb.repo} @ ${rb.branch}` : '—';
}

function editor(existing, { environments, repos, onSaved, onDeleted, onCancel }) {
  const message = el('div', { 'aria-live': 'polite' });
  const repoList = el('datalist', { id: 'template-repo-list' }, repos.map((r) => el('option', { value: r.name }, r.kind ?? '')));
  const defaultBranch = (repo) => repos.find((r) => r.name === repo)?.default_branch ?? '';
  const name = el('input', {
    type: 'text', id: 'template-name', value: existing?.name ?? '', required: true, readonly: Boolean(existing),
    placeholder: 'e.g. checkout-team', autocomplete: 'off',
  });
  const environment = el('select', { id: 'template-environment' },
    el('option', { value: '' }, '— none —'), environments.map((e) => el('option', { value: e.name }, e.name)));
  environment.value = existing?.environment ?? (environments.length === 1 ? environments[0].name : '');
  const gatewayRepo = el('input', { type: 'text', id: 'template-gateway-repo', class: 'mono', list: 'template-repo-list', value: existing?.gateway?.repo ?? '', placeholder: 'none (no gateway)', autocomplete: 'off' });
  const gatewayBranch = el('input', { type: 'text', id: 'template-gateway-branch', class: 'mono', value: existing?.gateway?.branch ?? '', placeholder: 'main', autocomplete: 'off' });
  // The repo's default branch is the placeholder, used when left empty.
  const suggest = (repoInput, branchInput) => {
    branchInput.placeholder = defaultBranch(repoInput.value.trim()) || 'main';
  };
  gatewayRepo.addEventListener('input', () => suggest(gatewayRepo, gatewayBranch));
  suggest(gatewayRepo, gatewayBranch);

  const tbody = el('tbody');
  const addService = (service = { repo: '', branch: '' }) => {
    const repo = el('input', { type: 'text', class: 'mono svc-repo', list: 'template-repo-list', value: service.repo, placeholder: 'repo', 'aria-label': 'Service repo', autocomplete: 'off' });
    const branch = el('input', { type: 'text', class: 'mono svc-branch', value: service.branch, placeholder: 'main', 'aria-label': 'Default branch', autocomplete: 'off' });
    repo.addEventListener('input', () => suggest(repo, branch));
    suggest(repo, branch);
    const remove = el('button', { type: 'button', class: 'btn btn-small btn-ghost', 'aria-label': 'Remove service' }, '✕');
    const row = el('tr', {}, el('td', {}, repo), el('td', {}, branch), el('td', { class: 'actions' }, remove));
    // Overrides of sdp.toml are kept as they are (edited through the API).
    row.overrides = service.overrides;
    remove.addEventListener('click', () => row.remove());
    tbody.append(row);
    return repo;
  };
  for (const s of existing?.services ?? []) addService(s);
  if (!tbody.children.length) addService();
  const add = el('button', { type: 'button', class: 'btn btn-small', id: 'add-service' }, '+ Add service');
  add.addEventListener('click', () => addService().focus());

  const save = el('button', { type: 'submit', class: 'btn btn-primary', id: 'template-save' }, existing ? 'Save changes' : 'Create template');
  const actions = el('div', { class: 'form-actions' }, save,
    el('button', { type: 'button', class: 'btn', onclick: onCancel }, 'Cancel'), el('span', { class: 'spacer' }));
  if (existing) {
    actions.append(confirmButton({
      label: 'Delete…', question: `Delete ${existing.name}?`, confirmLabel: 'Delete',
      onConfirm: async () => {
        try {
          await api.del(`/api/templates/${api.seg(existing.name)}`);
          onDeleted(existing.name);
        } catch (err) {
          replace(message, errorBox(err, err.status === 409 ? 'It is in use' : 'Cannot delete'));
        }
      },
    }));
  }

  const form = el('form', { class: 'card', id: 'template-form' },
    el('div', { class: 'card-head' }, el('h2', {}, existing ? `Edit template ${existing.name}` : 'New template')),
    el('div', { class: 'card-body' }, message, repoList,
      el('div', { class: 'form-row' },
        el('div', { class: 'field grow' }, el('label', { for: 'template-name' }, 'Name'), name),
        el('div', { class: 'field grow' }, el('label', { for: 'template-environment' }, 'Environment'), environment)),
      el('div', { class: 'form-row' },
        el('div', { class: 'field grow' }, el('label', { for: 'template-gateway-repo' }, 'Gateway repo'), gatewayRepo),
        el('div', { class: 'field grow' }, el('label', { for: 'template-gateway-branch' }, 'Gateway branch'), gatewayBranch)),
      el('div', { class: 'help muted small' }, 'The gateway sends requests for services deployed in the sandbox to them, and everything else to the baseline. Leave the repo empty for no gateway; an empty branch means the repo\'s default branch.')),
    el('table', { class: 'table vars-table', id: 'template-services' },
      el('thead', {}, el('tr', {}, el('th', {}, 'Service repo'), el('th', {}, 'Default branch'), el('th', {}, ''))), tbody),
    el('div', { class: 'card-body' }, add),
    actions);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    replace(message);
    const services = [];
    for (const row of tbody.rows) {
      const repo = row.querySelector('.svc-repo').value.trim();
      const branchInput = row.querySelector('.svc-branch');
      if (!repo && !branchInput.value.trim()) continue;
      const branch = branchInput.value.trim() || branchInput.placeholder;
      if (!repo) {
        replace(message, el('div', { class: 'alert alert-error' }, 'Each service needs a repo.'));
        return;
      }
      services.push(row.overrides ? { repo, branch, overrides: row.overrides } : { repo, branch });
    }
    const gRepo = gatewayRepo.value.trim();
    const gBranch = gatewayBranch.value.trim() || gatewayBranch.placeholder;
    if (!gRepo && gatewayBranch.value.trim()) {
      replace(message, el('div', { class: 'alert alert-error' }, 'The gateway branch needs a gateway repo.'));
      return;
    }
    const body = {
      environment: environment.value || null,
      gateway: gRepo ? { repo: gRepo, branch: gBranch } : null,
      services,
    };
    save.disabled = true;
    try {
      const saved = existing
        ? await api.put(`/api/templates/${api.seg(existing.name)}`, body)
        : await api.post('/api/templates', { name: name.value.trim(), ...body });
      onSaved(saved?.name ?? name.value.trim(), Boolean(existing));
    } catch (err) {
      replace(message, errorBox(err, 'Cannot save'));
    } finally {
      save.disabled = false;
    }
  });
  return form;
}

export async function render(view, { params, navigate, isCurrent, me }) {
  const selected = params[0];
  const flash = el('div', { 'aria-live': 'polite' });
  const slot = el('div');
  const listBody = el('div', { class: 'card-body flush' }, loading());
  const newButton = el('button', { type: 'button', class: 'btn btn-primary', id: 'new-template' }, 'New template');
  view.append(
    el('div', { class: 'page-head' },
      el('div', {}, el('h1', {}, 'Templates'),
        el('div', { class: 'sub' }, 'Blueprints for sandboxes: an environment, a gateway and the services with their default branches.')),
      el('div', { class: 'actions' }, newButton)),
    flash, slot,
    el('section', { class: 'card' }, el('div', { class: 'card-head' }, el('h2', {}, 'All templates')), listBody));
  if (savedNote) {
    replace(flash, el('div', { class: 'alert alert-ok', role: 'status' }, savedNote));
    savedNote = null;
  }

  const [envs, repos] = await Promise.allSettled([api.get('/api/environments'), api.get('/api/repos')]);
  if (!isCurrent()) return;
  const options = {
    environments: envs.status === 'fulfilled' ? envs.value : [],
    repos: repos.status === 'fulfilled' ? repos.value : [],
    onDeleted: (name) => {
      savedNote = `Deleted ${name}.`;
      navigate('#/templates');
    },
    onSaved: (name, edited) => {
      savedNote = `${edited ? 'Saved' : 'Created'} ${name}.`;
      navigate(`#/templates/${encodeURIComponent(name)}`);
    },
  };
  newButton.addEventListener('click', () => {
    replace(slot, editor(null, { ...options, onCancel: () => replace(slot) }));
    slot.querySelector('#template-name')?.focus();
  });

  if (selected) {
    try {
      const template = await api.get(`/api/templates/${api.seg(selected)}`);
      if (!isCurrent()) return;
      replace(slot, editor(template, { ...options, onCancel: () => navigate('#/templates') }),
        webhooksCard('templates', template.name, Boolean(me) && template.created_by === me.username));
    } catch (err) {
      replace(slot, errorBox(err, `Cannot load ${selected}`));
    }
  }

  try {
    const list = await api.get('/api/templates');
    if (!isCurrent()) return;
    if (!list.length) {
      replace(listBody, el('div', { class: 'empty', id: 'templates-empty' }, el('h2', {}, 'No templates yet'),
        el('p', {}, 'A template names an environment, the gateway and the services a sandbox starts with. ',
          options.environments.length ? 'Create one with "New template".' : [el('a', { href: '#/environments' }, 'Create an environment'), ' first.'])));
      return;
    }
    replace(listBody, el('table', { class: 'table', id: 'templates-table' },
      el('thead', {}, el('tr', {}, el('th', {}, 'Name'), el('th', {}, 'Environment'), el('th', {}, 'Gateway'),
        el('th', {}, 'Services'), el('th', {}, ''))),
      el('tbody', {}, list.map((t) => el('tr', { dataset: { template: t.name } },
        el('td', {}, el('strong', {}, t.name)),
        el('td', {}, t.environment ? el('a', { href: `#/environments/${encodeURIComponent(t.environment)}` }, t.environment) : el('span', { class: 'muted' }, '—')),
        el('td', { class: 'mono' }, repoBranchText(t.gateway)),
        el('td', {}, (t.services ?? []).length
          ? el('div', { class: 'chip-list' }, t.services.map((s) => el('span', { class: 'var-chip' }, el('span', { class: 'k' }, s.repo), ' @ ', s.branch)))
          : el('span', { class: 'muted' }, 'none')),
        el('td', { class: 'actions' }, el('a', { class: 'btn btn-small', href: `#/templates/${encodeURIComponent(t.name)}` }, 'Edit')))))));
  } catch (err) {
    replace(listBody, api.isMissingApi(err)
      ? el('div', { class: 'empty' }, el('p', {}, 'This control plane has no templates API yet.'))
      : el('div', { class: 'card-body' }, errorBox(err, 'Cannot load the templates')));
  }
}
