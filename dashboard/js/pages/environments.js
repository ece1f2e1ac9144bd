// #/environments and #/environments/{name}: named env vars (the baseline
// URLs of the services and shared settings). Secret variables are
// write-only: the API lists their names (`secret_keys`), never their
// values, so they show as set (•••) and are changed by typing a new value.
// Plain values whose key looks secret are masked until revealed.

import * as api from '../api.js';
import { el, replace, errorBox, loading, confirmButton } from '../dom.js';
import { timeEl, isSecretKey } from '../format.js';
import { webhooksCard } from '../webhooks.js';

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

const SET = '••••••••';

function varChips(vars, secretKeys) {
  const entries = Object.entries(vars ?? {});
  const secrets = secretKeys ?? [];
  if (!entries.length && !secrets.length) return el('span', { class: 'muted' }, 'no variables');
  return el('div', { class: 'chip-list' },
    entries.map(([k, v]) =>
      el('span', { class: 'var-chip', dataset: { key: k } }, el('span', { class: 'k' }, k), '=', maskedValue(k, v))),
    secrets.map((k) =>
      el('span', { class: 'var-chip secret', dataset: { key: k, secret: 'true' }, title: 'Secret: set, never shown' },
        el('span', { class: 'k' }, k), '=', el('span', { class: 'v masked' }, SET), el('span', { class: 'badge' }, 'secret'))));
}

/**
 * The editable key/value table; returns { node, read() }. `read()` gives
 * `{ vars, secrets }`: every plain variable, and the secret changes (a new
 * value, or null for a secret whose row was removed or made plain).
 * A secret that is set shows no value: left empty it is kept.
 */
export function varsEditor(vars, secretKeys = []) {
  const tbody = el('tbody');
  const addRow = (key = '', value = '', { setSecret = false } = {}) => {
    const keyInput = el('input', {
      type: 'text', class: 'mono key', value: key, placeholder: 'KEY', 'aria-label': 'Variable name',
      autocomplete: 'off', readonly: setSecret,
    });
    // A plain value whose key looks secret is masked, not made secret.
    const masked = setSecret || (isSecretKey(key) && value !== '');
    const valueInput = el('input', {
      type: masked ? 'password' : 'text', class: 'mono value', value,
      placeholder: setSecret ? `${SET} set: type to replace` : 'value',
      'aria-label': setSecret ? `New value of secret ${key}` : 'Variable value', autocomplete: 'new-password',
    });
    const reveal = el('button', { type: 'button', class: 'btn btn-small reveal', hidden: !masked || setSecret }, 'reveal');
    reveal.addEventListener('click', () => {
      const hidden = valueInput.type === 'password';
      valueInput.type = hidden ? 'text' : 'password';
      reveal.textContent = hidden ? 'hide' : 'reveal';
    });
    const secretBox = el('input', {
      type: 'checkbox', class: 'secret', checked: setSecret,
      'aria-label': 'Secret: write-only, never shown again',
    });
    let secretTouched = setSecret;
    secretBox.addEventListener('change', () => {
      secretTouched = true;
      if (secretBox.checked) {
        valueInput.type = 'password';
        reveal.hidden = true;
      } else if (!setSecret) {
        reveal.hidden = !isSecretKey(keyInput.value);
      }
    });
    keyInput.addEventListener('input', () => {
      // A new key that looks secret is made a secret, unless chosen otherwise.
      const looksSecret = isSecretKey(keyInput.value);
      if (!secretTouched && !key) secretBox.checked = looksSecret;
      if (secretBox.checked) {
        valueInput.type = 'password';
        reveal.hidden = true;
      } else {
        reveal.hidden = !looksSecret;
        if (!looksSecret) valueInput.type = 'text';
      }
    });
    const remove = el('button', { type: 'button', class: 'btn btn-small btn-ghost', 'aria-label': 'Remove variable' }, '✕');
    const row = el('tr', { dataset: { setSecret: setSecret ? 'true' : 'false' } },
      el('td', {}, keyInput),
      el('td', {}, el('div', { class: 'value-cell' }, valueInput, reveal)),
      el('td', { class: 'secret-cell' }, el('label', { class: 'row small' }, secretBox, 'secret')),
      el('td', { class: 'actions' }, remove));
    remove.addEventListener('click', () => row.remove());
    tbody.append(row);
    return keyInput;
  };
  for (const [k, v] of Object.entries(vars ?? {})) addRow(k, v);
  for (const k of secretKeys ?? []) addRow(k, '', { setSecret: true });
  if (!tbody.children.length) addRow();
  const add = el('button', { type: 'button', class: 'btn btn-small', id: 'add-var' }, '+ Add variable');
  add.addEventListener('click', () => addRow().focus());
  const node = el('div', {},
    el('table', { class: 'table vars-table', id: 'vars-table' },
      el('thead', {}, el('tr', {}, el('th', {}, 'Key'), el('th', {}, 'Value'), el('th', {}, 'Secret'), el('th', {}, ''))), tbody),
    el('div', { class: 'card-body' }, add,
      el('span', { class: 'muted small' },
        '  A secret is given to every service’s container and never shown again, not even to you: leave it empty to keep it. ' +
        'New keys with PASSWORD, SECRET, TOKEN, KEY or CREDENTIAL start as secrets.')));
  const read = () => {
    const plain = {};
    const secrets = {};
    const seen = new Set();
    for (const row of tbody.rows) {
      const key = row.querySelector('input.key').value.trim();
      const value = row.querySelector('input.value').value;
      const wasSet = row.dataset.setSecret === 'true';
      const secret = row.querySelector('input.secret').checked;
      if (!key && !value) continue;
      if (!key) throw new Error('A variable has a value but no name.');
      if (seen.has(key)) throw new Error(`${key} is listed twice.`);
      seen.add(key);
      if (secret) {
        if (value !== '') secrets[key] = value;
        else if (!wasSet) throw new Error(`Secret ${key} needs a value.`);
      } else {
        plain[key] = value;
      }
    }
    // A secret whose row is gone is removed (one made plain is replaced
    // by its plain value).
    for (const key of secretKeys ?? []) {
      if (!seen.has(key)) secrets[key] = null;
    }
    return { vars: plain, secrets };
  };
  return { node, read };
}

function editor(existing, { onSaved, onDeleted, onCancel }) {
  const message = el('div', { 'aria-live': 'polite' });
  const name = el('input', {
    type: 'text', id: 'env-name', value: existing?.name ?? '', required: true, readonly: Boolean(existing),
    placeholder: 'e.g. baseline', autocomplete: 'off',
  });
  const vars = varsEditor(existing?.vars ?? {}, existing?.secret_keys ?? []);
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
        ? await api.put(`/api/environments/${api.seg(existing.name)}`, body)
        : await api.post('/api/environments', {
          name: name.value.trim(),
          vars: body.vars,
          secrets: Object.fromEntries(Object.entries(body.secrets).filter(([, v]) => v !== null)),
        });
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

export async function render(view, { params, navigate, isCurrent, me }) {
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
      }), webhooksCard('environments', env.name, Boolean(me) && env.created_by === me.username));
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
        el('td', {}, varChips(env.vars, env.secret_keys)),
        el('td', { class: 'nowrap' }, timeEl(env.updated_at)),
        el('td', { class: 'actions' }, el('a', { class: 'btn btn-small', href: `#/environments/${encodeURIComponent(env.name)}` }, 'Edit')))))));
  } catch (err) {
    replace(listBody, api.isMissingApi(err)
      ? el('div', { class: 'empty' }, el('p', {}, 'This control plane has no environments API yet.'))
      : el('div', { class: 'card-body' }, errorBox(err, 'Cannot load the environments')));
  }
}
