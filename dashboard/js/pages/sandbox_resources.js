// The sandbox page's resources card: the databases its template or the
// sandbox itself declares (`/api/sandboxes/{name}/resources`), each with
// its state, the size of its data (kept current by the control plane's
// poll), the variable the services get and its URL (the password only
// for the owner and admins: `***` for anyone else), a Reset button (data
// dropped, seeded anew; the URL stays), and for the owner a Remove button
// on the sandbox's own and a form to add one (`PUT`/`DELETE
// …/resources/{resource}`). Hidden while the sandbox has none and the
// viewer may not add one. The table is drawn again only when the data
// changed, so a click on its way is not lost to a poll.

import * as api from '../api.js';
import { el, replaceWhenChanged, copyButton, confirmButton } from '../dom.js';

const STATE_CLASS = { ready: 'status-running', starting: 'status-starting', failed: 'status-failed', pending: 'status-queued' };
const ENGINES = ['postgres', 'mariadb', 'redis'];

function size(bytes) {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let value = Number(bytes ?? 0);
  let unit = 0;
  while (value >= 1024 && unit + 1 < units.length) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 || value >= 100 ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`;
}

/**
 * `{ node, refresh() }`: `node` is the card, `refresh()` loads the
 * resources again (call it with the page's polls). `onSaved(text)` after
 * a reset, an add or a removal, `onError(err, title)` when one fails;
 * `mayChange()`: whether the viewer owns the sandbox (add and remove).
 */
export function resourcesPanel(base, { onSaved, onError, mayChange = () => false }) {
  const body = el('div', { class: 'card-body flush' });
  const addName = el('input', { type: 'text', id: 'resource-name', placeholder: 'cache', size: 12 });
  const addEngine = el('select', { id: 'resource-engine' }, ENGINES.map((e) => el('option', { value: e }, e)));
  const addVar = el('input', { type: 'text', id: 'resource-env-var', placeholder: 'REDIS_URL', size: 16 });
  const addButton = el('button', { type: 'submit', class: 'btn btn-small', id: 'resource-add' }, 'Add');
  const addForm = el('form', { class: 'card-body row', id: 'resource-add-form', hidden: true },
    el('label', { for: 'resource-name' }, 'Name'), addName,
    el('label', { for: 'resource-engine' }, 'Engine'), addEngine,
    el('label', { for: 'resource-env-var' }, 'Variable'), addVar,
    addButton,
    el('span', { class: 'muted small' }, 'Made at the next deploy; its URL goes to the services in the variable.'));
  const node = el('section', { class: 'card', id: 'resources', hidden: true },
    el('div', { class: 'card-head' }, el('h2', {}, 'Resources'),
      el('span', { class: 'hint' }, 'Databases of this sandbox: their data stays across deploys')),
    body, addForm);
  let resetting = null;

  addForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const name = addName.value.trim();
    addButton.disabled = true;
    try {
      draw(await api.put(`${base}/resources/${api.seg(name)}`,
        { engine: addEngine.value, env_var: addVar.value.trim() }));
      addName.value = '';
      addVar.value = '';
      onSaved(`${name} added: it is made at the next deploy.`);
    } catch (err) {
      onError(err, `Cannot add ${name || 'the resource'}`);
    } finally {
      addButton.disabled = false;
    }
  });

  async function remove(name) {
    try {
      draw(await api.del(`${base}/resources/${api.seg(name)}`));
      onSaved(`${name} removed with its data; its variable goes at the next deploy.`);
    } catch (err) {
      onError(err, `Cannot remove ${name}`);
    }
  }

  async function reset(name) {
    resetting = name;
    draw(lastList);
    try {
      await api.post(`${base}/resources/${api.seg(name)}/reset`);
      onSaved(`${name} was reset and seeded anew.`);
    } catch (err) {
      onError(err, `Cannot reset ${name}`);
    } finally {
      resetting = null;
      refresh();
    }
  }

  function row(r) {
    const state = resetting === r.name ? 'starting' : r.state;
    const url = r.url ?? '';
    const hidden = url.includes(':***@');
    return el('tr', { dataset: { resource: r.name } },
      el('td', {}, el('strong', {}, r.name)),
      el('td', {}, r.engine),
      el('td', {}, el('span', { class: `badge ${STATE_CLASS[state] ?? ''}`, dataset: { state } }, state),
        r.error && state === 'failed' ? el('div', { class: 'small muted' }, r.error) : null),
      el('td', { class: 'mono', dataset: { size: String(r.size_bytes ?? 0) },
        title: r.size_at ? `measured ${r.size_at}` : 'measured when last made ready' }, size(r.size_bytes)),
      el('td', { class: 'mono' }, r.env_var),
      el('td', { class: 'mono resource-url' }, url || '—'),
      el('td', { class: 'actions' },
        url && !hidden ? copyButton(url) : null,
        hidden || r.state === 'pending' ? null : confirmButton({
          label: 'Reset',
          question: `Drop the data of ${r.name} and seed it anew? `,
          confirmLabel: 'Reset',
          className: 'btn btn-small btn-danger reset-resource',
          onConfirm: () => reset(r.name),
        }),
        r.origin === 'sandbox' && mayChange() ? confirmButton({
          label: 'Remove',
          question: `Remove ${r.name} and its data? `,
          confirmLabel: 'Remove',
          className: 'btn btn-small btn-danger remove-resource',
          onConfirm: () => remove(r.name),
        }) : null));
  }

  let lastList = [];
  function draw(list) {
    lastList = list;
    const owner = mayChange();
    node.hidden = list.length === 0 && !owner;
    addForm.hidden = !owner;
    replaceWhenChanged(body, JSON.stringify([list, resetting, owner]), () =>
      el('table', { class: 'table', id: 'resources-table' },
        el('thead', {}, el('tr', {}, ...['Name', 'Engine', 'State', 'Size', 'Variable', 'URL', ''].map((h) => el('th', {}, h)))),
        el('tbody', {}, list.map(row))));
  }

  async function refresh() {
    try {
      draw(await api.get(`${base}/resources`));
    } catch (err) {
      // An older control plane has no resources: nothing to show.
      if (!api.isMissingApi(err)) onError(err, 'Cannot load the resources');
    }
  }

  return { node, refresh };
}
