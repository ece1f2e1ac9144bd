// The outgoing webhooks of a template or an environment, as a card below
// its editor (`GET|PUT /api/{templates,environments}/{name}/notify`): each
// URL with the events it takes (none ticked: all). The owner's creator and
// admins see full URLs and save them; everyone else sees their origins
// only (a webhook URL's path is its secret) and the card is read-only.

import * as api from './api.js';
import { el, replace, errorBox, loading } from './dom.js';

const EVENTS = ['deployment.started', 'deployment.running', 'deployment.failed', 'test_run.ended'];

/**
 * The card for `kind` ('templates' or 'environments') named `name`;
 * `editable`: whether the session may change the owner.
 */
export function webhooksCard(kind, name, editable) {
  const path = `/api/${kind}/${api.seg(name)}/notify`;
  const message = el('div', { 'aria-live': 'polite' });
  const tbody = el('tbody');
  const addRow = (target = { url: '', events: [] }) => {
    const url = el('input', {
      type: 'url', class: 'mono hook-url', value: target.url, placeholder: 'https://hooks.slack.com/services/…',
      'aria-label': 'Webhook URL', autocomplete: 'off', readonly: !editable,
    });
    const boxes = EVENTS.map((event) => el('label', { class: 'row small' },
      el('input', {
        type: 'checkbox', class: 'hook-event', value: event,
        checked: (target.events ?? []).includes(event), disabled: !editable,
      }), event));
    const remove = el('button', { type: 'button', class: 'btn btn-small btn-ghost', 'aria-label': 'Remove webhook', hidden: !editable }, '✕');
    const row = el('tr', {}, el('td', {}, url), el('td', {}, el('div', { class: 'chip-list' }, boxes)),
      el('td', { class: 'actions' }, remove));
    remove.addEventListener('click', () => row.remove());
    tbody.append(row);
    return url;
  };
  const read = () => {
    const targets = [];
    for (const row of tbody.rows) {
      const url = row.querySelector('input.hook-url').value.trim();
      if (!url) continue;
      const events = [...row.querySelectorAll('input.hook-event:checked')].map((box) => box.value);
      targets.push(events.length ? { url, events } : { url });
    }
    return { targets };
  };
  const add = el('button', { type: 'button', class: 'btn btn-small', id: 'add-webhook', hidden: !editable }, '+ Add webhook');
  add.addEventListener('click', () => addRow().focus());
  const save = el('button', { type: 'button', class: 'btn btn-primary', id: 'webhooks-save', hidden: !editable }, 'Save webhooks');
  save.addEventListener('click', async () => {
    replace(message);
    save.disabled = true;
    try {
      const saved = await api.put(path, read());
      replace(message, el('div', { class: 'alert alert-ok', role: 'status' },
        `Saved ${saved.targets.length} webhook${saved.targets.length === 1 ? '' : 's'}.`));
    } catch (err) {
      replace(message, errorBox(err, 'Cannot save the webhooks'));
    } finally {
      save.disabled = false;
    }
  });
  const body = el('div', { class: 'card-body flush' }, loading());
  const owner = kind === 'templates' ? 'made from this template' : 'that runs with this environment';
  const card = el('section', { class: 'card', id: 'webhooks' },
    el('div', { class: 'card-head' }, el('h2', {}, 'Notifications: webhooks'),
      el('span', { class: 'hint' }, `Every sandbox ${owner} posts its deployments and test runs here`)),
    el('div', { class: 'card-body' }, message,
      el('div', { class: 'help muted small' },
        'https only, to a host on the Internet (private, loopback and link-local addresses are refused). ' +
        'No event ticked: all of them. A URL set on both the template and the environment is sent to once.' +
        (editable ? '' : ' Only the creator and admins see full URLs and change them.'))),
    body);
  api.get(path).then(({ targets }) => {
    for (const target of targets) addRow(target);
    if (!tbody.children.length && editable) addRow();
    replace(body,
      el('table', { class: 'table vars-table', id: 'webhooks-table' },
        el('thead', {}, el('tr', {}, el('th', {}, 'URL'), el('th', {}, 'Events'), el('th', {}, ''))), tbody),
      el('div', { class: 'card-body form-actions' }, add, save));
  }).catch((err) => replace(body, el('div', { class: 'card-body' }, errorBox(err, 'Cannot load the webhooks'))));
  return card;
}
