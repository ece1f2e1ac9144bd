// #/environments and #/environments/{name}: named env vars (the baseline
// URLs of the services and shared settings). Secret-looking values are
// masked until revealed.

import * as api from '../api.js';
import { el, replace, errorBox, loading, confirmButton } from '../dom.js';
import { timeEl, isSecretKey } from '../format.js';

/** A value shown masked (if its key looks secret) with a reveal toggle. */
function maskedValue(key, value) {
  if (!isSecretKey(key)) return el('span', { class: 'v' }, value);
  const text = el('span', { class: 'v masked', dataset: { masked: 'true' } }, '••••••••');
  const toggle = el('button', { type: 'button', class: 'btn btn-ghost btn-small reveal', 'aria-label': `Reveal ${key}` }, 'reveal');
  toggle.addEventListener('click', () => {
    const hidden = text.dataset.masked === 'true';
    text.textContent = hidden ? value : '••••••••';
    text.dataset.masked = hidden ? 'false' : 'true';
    text.classList.toggle('masked', !hidden);
    toggle.textContent = hidden ? 'hide' : 'reveal';
    toggle.setAttribute('aria-label', `${hidden ? 'Hide' : 'Reveal'} ${key}`);
  });
  return el('span', { class: 'row' }, text, toggle);
}

function varChips(vars) {
  const entries = Object.entries(vars ?? {});
  if (!entries.length) return el('span', { class: 'muted' }, 'no variables');
  return el('div', { class: 'chip-list' }, entries.map(([k, v]) =>
    el('span', { class: 'var-chip', dataset: { key: k } }, el('span', { class: 'k' }, k), '=', maskedValue(k, v))));
}

/** The editable key/value table; returns { node, read() }. */
export function varsEditor(vars) {
  const tbody = el('tbody');
  const addRow = (key = '', value = '') => {
    const keyInput = el('input', { type: 'text', class: 'mono key', value: key, placeholder: 'KEY', 'aria-label': 'Variable name', autocomplete: 'off' });
    const secret = isSecretKey(key) && value !== '';
    const valueInput = el('input', {
      type: secret ? 'password' : 'text', class: 'mono value', value, placeholder: 'value',
      'aria-label': 'Variable value', autocomplete: 'off',
    });
    const reveal = el('button', { type: 'button', class: 'btn btn-small reveal', hidden: !secret }, 'reveal');
    reveal.addEventListener('click', () => {
      const masked = valueInput.type === 'password';
      valueInput.type = masked ? 'text' : 'password';
      reveal.textContent = masked ? 'hide' : 'reveal';
    });
    keyInput.addEventListener('input', () => {
      // A key that turns secret masks its value from then on.
      const nowSecret = isSecretKey(keyInput.value);
      reveal.hidden = !nowSecret;
      if (!nowSecret) valueInput.type = 'text';
    });
    const remove = el('button', { type: 'button', class: 'btn btn-small btn-ghost', 'aria-label': 'Remove variable' }, '✕');
    const row = el('tr', {}, el('td', {}, keyInput), el('td', {}, el('div', { class: 'value-cell' }, valueInput, reveal)),
      el('td', { class: 'actions' }, remove));
    remove.addEventListener('click', () => row.remove());
    tbody.append(row);
    return keyInput;
  };
  for (const [k, v] of Object.entries(vars ?? {})) addRow(k, v);
  if (!tbody.children.length) addRow();
  const add = el('button', { type: 'button', class: 'btn btn-small', id: 'add-var' }, '+ Add variable');
  add.addEventListener('click', () => addRow().focus());
  const node = el('div', {},
    el('table', { class: 'table vars-table', id: 'vars-table' },
      el('thead', {}, el('tr', {}, el('th', {}, 'Key'), el('th', {}, 'Value'), el('th', {}, ''))), tbody),
    el('div', { class: 'card-body' }, add,
      el('span', { class: 'muted small' }, '  Values of keys with PASSWORD, SECRET, TOKEN, KEY or CREDENTIAL are masked.')));
  const read = () => {
    const out = {};
    for (const row of tbody.rows) {
      const key = row.querySelector('input.key').value.trim();
      const value = row.querySelector('input.value').value;
      if (!key && !value) continue;
      if (!key) throw new Error('A variable has a value but no name.');
      if (key in out) throw new Error(`${key} is listed twice.`);
      out[key] = value;
    }
    return out;
  };
  return { node, read };
}

function editor(existing, { onSaved, onDeleted, onCancel }) {
  const message = el('div', { 'aria-live': 'polite' });
  const name = el('input', {
    type: 'text', id: 'env-name', value: existing?.name ?? '', required: true, readonly: Boolean(existing),
    placeholder: 'e.g. baseline', autocomplete: 'off',
  });
  const vars = varsEditor(existing?.vars ?? {});
  const save = el('button', { type: 'submit', class: 'btn btn-primary', id: 'env-save' }, existing ? 'Save changes' : 'Create environment');
  const actions = el('div', { class: 'form-actions' }, save,
    el('button', { type: 'button', class: 'btn', onclick: onCancel }, 'Cancel'), el('span', { class: 'spacer' }));
  if (existing) {
    actions.append(confirmButton({
      label: 'Delete…', question: `Delete ${existing.name}?`, confirmLabel: 'Delete',
      onConfirm: async () => {
        try {
          await api.del(`/api/environments/${api.seg(existing.name)}`);
          onDeleted(existing.name);
        } catch (err) {
          replace(message, errorBox(err, err.status === 409 ? 'It is in use' : 'Cannot delete'));
        }
      },
    }));
  }
  const form = el('form', { class: 'card', id: 'env-form' },
    el('div', { class: 'card-head' }, el('h2', {}, existing ? `Edit environment ${existing.name}` : 'New environment')),
    el('div', { class: 'card-body' }, message,
      el('div', { class: 'field' }, el('label', { for: 'env-name' }, 'Name'), name,
        existing ? null : el('div', { class: 'help' }, 'Lower-case letters, digits and dashes.'))),
    vars.node, actions);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    replace(message);
    let body;
    try {
      body = vars.read();
    } catch (err) {
      replace(message, errorBox(err));
      return;
    }
    save.disabled = true;
    try {
      const saved = existing
        ? await api.put(`/api/environments/${api.seg(existing.name)}`, { vars: body })
        : await api.post('/api/environments', { name: name.value.trim(), vars: body });
      onSaved(saved?.name ?? name.value.trim());
    } catch (err) {
      replace(message, errorBox(err, 'Cannot save'));
    } finally {
      save.disabled = false;
    }
  });
  return form;
}

let savedNote = null;

export async function render(view, { params, navigate, isCurrent }) {
  const selected = params[0];
  const slot = el('div');
  const listBody = el('div', { class: 'card-body flush' }, loading());
  const flash = el('div', { 'aria-live': 'polite' });
  const newButton = el('button', { type: 'button', class: 'btn btn-primary', id: 'new-environment' }, 'New environment');
  view.append(
    el('div', { class: 'page-head' },
      el('div', {}, el('h1', {}, 'Environments'),
        el('div', { class: 'sub' }, 'Env vars every sandbox of a template gets: the baseline URL of each service and shared settings.')),
      el('div', { class: 'actions' }, newButton)),
    flash, slot,
    el('section', { class: 'card' }, el('div', { class: 'card-head' }, el('h2', {}, 'All environments')), listBody));

  if (savedNote) {
    replace(flash, el('div', { class: 'alert alert-ok', role: 'status' }, savedNote));
    savedNote = null;
  }
  const close = () => navigate('#/environments');
  newButton.addEventListener('click', () => {
    replace(slot, editor(null, {
      onSaved: (name) => {
        savedNote = `Created ${name}.`;
        navigate(`#/environments/${encodeURIComponent(name)}`);
      },
      onDeleted: close,
      onCancel: () => replace(slot),
    }));
    slot.querySelector('#env-name')?.focus();
  });

  if (selected) {
    replace(slot, loading());
    try {
      const env = await api.get(`/api/environments/${api.seg(selected)}`);
      if (!isCurrent()) return;
      replace(slot, editor(env, {
        onSaved: () => {
          savedNote = `Saved ${selected}.`;
          navigate(`#/environments/${encodeURIComponent(selected)}`);
        },
        onDeleted: close,
        onCancel: close,
      }));
    } catch (err) {
      replace(slot, errorBox(err, `Cannot load ${selected}`));
    }
  }

  try {
    const list = await api.get('/api/environments');
    if (!isCurrent()) return;
    if (!list.length) {
      replace(listBody, el('div', { class: 'empty', id: 'environments-empty' }, el('h2', {}, 'No environments yet'),
        el('p', {}, 'Create one with the URLs of the services on the baseline, e.g. USERS_URL=https://users.baseline.example.')));
      return;
    }
    replace(listBody, el('table', { class: 'table', id: 'environments-table' },
      el('thead', {}, el('tr', {}, el('th', {}, 'Name'), el('th', {}, 'Variables'), el('th', {}, 'Updated'), el('th', {}, ''))),
      el('tbody', {}, list.map((env) => el('tr', { dataset: { environment: env.name } },
        el('td', {}, el('strong', {}, env.name)),
        el('td', {}, varChips(env.vars)),
        el('td', { class: 'nowrap' }, timeEl(env.updated_at)),
        el('td', { class: 'actions' }, el('a', { class: 'btn btn-small', href: `#/environments/${encodeURIComponent(env.name)}` }, 'Edit')))))));
  } catch (err) {
    replace(listBody, api.isMissingApi(err)
      ? el('div', { class: 'empty' }, el('p', {}, 'This control plane has no environments API yet.'))
      : el('div', { class: 'card-body' }, errorBox(err, 'Cannot load the environments')));
  }
}
