// The sandbox page's env editor: a service's own env in this sandbox
// (`/api/sandboxes/{name}/services/{repo}/env`), over the template's env
// for it. Each service row gets an "Env" button; it opens the editor for
// that service in one panel below the services. The panel is built when
// opened and left alone by the page's polls (what is typed stays); only
// the buttons' counts follow the data. Values are shown to the owner and
// admins; others see the keys, read-only.

import * as api from '../api.js';
import { el, replace, errorBox, loading, setText, setAttr } from '../dom.js';

/**
 * `{ node, button(repo), update(service), keep(repos), close() }`: `node`
 * is the panel (hidden while closed); `button(repo)` makes a row's button
 * once, `update(service)` sets its count, `keep` forgets services gone
 * from the page. `onSaved(text)` after a save.
 */
export function serviceEnvEditor(base, { onSaved, onError }) {
  const node = el('section', { class: 'card', id: 'service-env', hidden: true });
  const buttons = new Map();
  let openRepo = null;

  function close() {
    openRepo = null;
    node.hidden = true;
    replace(node);
    for (const [repo, b] of buttons) setAttr(b, 'aria-expanded', String(repo === openRepo));
  }

  function rowOf(tbody, key = '', value = '', readOnly = false) {
    const keyInput = el('input', { type: 'text', class: 'mono key', value: key, placeholder: 'KEY', 'aria-label': 'Variable name', autocomplete: 'off', readonly: readOnly });
    const valueInput = el('input', {
      type: 'text', class: 'mono value', value, placeholder: readOnly ? 'hidden: only the owner sees it' : 'value',
      'aria-label': 'Variable value', autocomplete: 'off', readonly: readOnly,
    });
    const remove = el('button', { type: 'button', class: 'btn btn-small btn-ghost', 'aria-label': 'Remove variable', hidden: readOnly }, '✕');
    const tr = el('tr', {}, el('td', {}, keyInput), el('td', {}, valueInput), el('td', { class: 'actions' }, remove));
    remove.addEventListener('click', () => tr.remove());
    tbody.append(tr);
    return keyInput;
  }

  function read(tbody) {
    const env = {};
    for (const row of tbody.rows) {
      const key = row.querySelector('input.key').value.trim();
      const value = row.querySelector('input.value').value;
      if (!key && !value) continue;
      if (!key) throw new Error('A variable has a value but no name.');
      if (key in env) throw new Error(`${key} is listed twice.`);
      env[key] = value;
    }
    return env;
  }

  function draw(repo, answer) {
    const mayChange = answer.env !== undefined && answer.env !== null;
    const tbody = el('tbody');
    if (mayChange) {
      for (const [k, v] of Object.entries(answer.env)) rowOf(tbody, k, v);
      if (!tbody.rows.length) rowOf(tbody);
    } else {
      for (const k of answer.keys ?? []) rowOf(tbody, k, '', true);
    }
    const fromTemplate = Object.entries(answer.template_env ?? {});
    const add = el('button', { type: 'button', class: 'btn btn-small', id: 'service-env-add' }, '+ Add variable');
    add.addEventListener('click', () => rowOf(tbody).focus());
    const save = el('button', { type: 'submit', class: 'btn btn-small btn-primary', id: 'service-env-save' }, 'Save');
    const shut = el('button', { type: 'button', class: 'btn btn-small' }, 'Close');
    shut.addEventListener('click', close);
    const form = el('form', { id: 'service-env-form', dataset: { service: repo } },
      el('table', { class: 'table vars-table', id: 'service-env-table' },
        el('thead', {}, el('tr', {}, el('th', {}, 'Key'), el('th', {}, 'Value'), el('th', {}, ''))), tbody),
      el('div', { class: 'card-body row' }, mayChange ? [add, save] : null, shut,
        el('span', { class: 'muted small' }, mayChange
          ? '  Over the template’s env; PORT and SDP_* are set by SDP. Saving restarts the running service with it (same build).'
          : '  Only the sandbox’s owner or an admin sees the values and changes them.')));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      save.disabled = true;
      try {
        const saved = await api.put(`${base}/services/${api.seg(repo)}/env`, { env: read(tbody) });
        if (openRepo === repo) draw(repo, saved);
        onSaved(saved.reapplying
          ? `Env of ${repo} saved: the running service restarts with it.`
          : `Env of ${repo} saved: its next deploy uses it.`);
      } catch (err) {
        onError(err, `Cannot save the env of ${repo}`);
      } finally {
        save.disabled = false;
      }
    });
    replace(node,
      el('div', { class: 'card-head' }, el('h2', {}, `Env of ${repo}`),
        el('span', { class: 'hint' }, 'This sandbox’s own variables for the service')),
      fromTemplate.length
        ? el('div', { class: 'card-body small', id: 'service-env-template' }, el('span', { class: 'muted' }, 'From the template: '),
          fromTemplate.map(([k, v], i) => [i ? ', ' : '', el('span', { class: 'mono' }, `${k}=${v}`)]))
        : null,
      form);
  }

  async function open(repo) {
    if (openRepo === repo) {
      close();
      return;
    }
    openRepo = repo;
    for (const [r, b] of buttons) setAttr(b, 'aria-expanded', String(r === openRepo));
    node.hidden = false;
    replace(node, el('div', { class: 'card-body' }, loading()));
    try {
      const answer = await api.get(`${base}/services/${api.seg(repo)}/env`);
      if (openRepo === repo) draw(repo, answer);
    } catch (err) {
      if (openRepo === repo) replace(node, el('div', { class: 'card-body' }, errorBox(err, `Cannot load the env of ${repo}`)));
    }
  }

  function button(repo) {
    const b = el('button', { type: 'button', class: 'btn btn-small', dataset: { env: repo }, 'aria-expanded': 'false', 'aria-controls': 'service-env' });
    b.addEventListener('click', () => open(repo));
    buttons.set(repo, b);
    return b;
  }

  function update(service) {
    const b = buttons.get(service.repo);
    if (!b) return;
    const count = service.env_keys?.length ?? 0;
    setText(b, count ? `Env (${count})` : 'Env');
    setAttr(b, 'title', count ? `Sandbox env: ${service.env_keys.join(', ')}` : 'Set this sandbox’s env for the service');
  }

  /** Drops buttons of services gone from the page. */
  function keep(repos) {
    for (const repo of [...buttons.keys()]) if (!repos.has(repo)) buttons.delete(repo);
    if (openRepo && !repos.has(openRepo)) close();
  }

  return { node, button, update, keep, close };
}
