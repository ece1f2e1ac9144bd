// The sandbox page's resources card: the databases its template declares
// (`/api/sandboxes/{name}/resources`), each with its state, the size of
// its data, the variable the services get and its URL (the password only
// for the owner and admins: `***` for anyone else), and a Reset button
// (data dropped, seeded anew; the URL stays). Hidden while the sandbox
// has none. The table is drawn again only when the data changed, so a
// click on its way is not lost to a poll.

import * as api from '../api.js';
import { el, replaceWhenChanged, copyButton, confirmButton } from '../dom.js';

const STATE_CLASS = { ready: 'status-running', starting: 'status-starting', failed: 'status-failed' };

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
 * a reset, `onError(err, title)` when one fails.
 */
export function resourcesPanel(base, { onSaved, onError }) {
  const body = el('div', { class: 'card-body flush' });
  const node = el('section', { class: 'card', id: 'resources', hidden: true },
    el('div', { class: 'card-head' }, el('h2', {}, 'Resources'),
      el('span', { class: 'hint' }, 'Databases of this sandbox: their data stays across deploys')),
    body);
  let resetting = null;

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
      el('td', { class: 'mono', dataset: { size: String(r.size_bytes ?? 0) } }, size(r.size_bytes)),
      el('td', { class: 'mono' }, r.env_var),
      el('td', { class: 'mono resource-url' }, url || '—'),
      el('td', { class: 'actions' },
        url && !hidden ? copyButton(url) : null,
        hidden ? null : confirmButton({
          label: 'Reset',
          question: `Drop the data of ${r.name} and seed it anew? `,
          confirmLabel: 'Reset',
          className: 'btn btn-small btn-danger reset-resource',
          onConfirm: () => reset(r.name),
        })));
  }

  let lastList = [];
  function draw(list) {
    lastList = list;
    node.hidden = list.length === 0;
    replaceWhenChanged(body, JSON.stringify([list, resetting]), () =>
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
