// #/audit?user=&sandbox=&action=&since=&until=&page=&cursor=: the audit
// trail, newest first, a page at a time. Admins see every entry, others
// their own actions and their sandboxes' entries (the server decides).
// Pages follow the API's cursor (entries written meanwhile never shift
// them); `page` only numbers them for the reader.

import * as api from '../api.js';
import { el, replace, errorBox, loading } from '../dom.js';
import { timeEl, sandboxLink } from '../format.js';

// The action names of GET /api/audit (docs/AUDIT.md).
export const ACTIONS = [
  'login', 'logout', 'sandbox.create', 'sandbox.update', 'sandbox.delete', 'sandbox.expire',
  'sandbox.probe', 'deploy', 'deploy.template', 'cancel', 'rollback', 'route.set', 'route.reset',
  'follow.set', 'service_env.set', 'environment.create', 'environment.update', 'environment.delete',
  'template.create', 'template.update', 'template.delete', 'push', 'delivery', 'test_run.start',
  'test_run.end', 'resource.reset', 'resource.set', 'resource.remove', 'sandbox.sleep', 'sandbox.wake',
  'test_run.cancel',
];

const OUTCOME_CLASS = { ok: 'ok', denied: 'warn', failed: 'danger' };

// The cursor each page was reached by, per filter set: "Newer" goes back
// along it (a cursor only leads on).
const trails = new Map();

/** A datetime-local value as RFC 3339 (the browser's zone), or ''. */
function toRfc3339(local) {
  if (!local) return '';
  const at = new Date(local);
  return Number.isNaN(at.getTime()) ? '' : at.toISOString();
}

/** RFC 3339 as a datetime-local value, or ''. */
function toLocal(text) {
  if (!text) return '';
  const at = new Date(text);
  if (Number.isNaN(at.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}T${pad(at.getHours())}:${pad(at.getMinutes())}`;
}

export async function render(view, { query, navigate }) {
  const user = el('input', { type: 'text', id: 'audit-user', value: query.user ?? '', placeholder: 'anyone' });
  const sandbox = el('input', { type: 'text', id: 'audit-sandbox', value: query.sandbox ?? '', placeholder: 'any' });
  const action = el('select', { id: 'audit-action' },
    el('option', { value: '' }, 'any'), ACTIONS.map((a) => el('option', { value: a }, a)));
  action.value = ACTIONS.includes(query.action) ? query.action : '';
  const since = el('input', { type: 'datetime-local', id: 'audit-since', value: toLocal(query.since) });
  const until = el('input', { type: 'datetime-local', id: 'audit-until', value: toLocal(query.until) });
  const form = el('form', { class: 'filters', id: 'audit-filters' },
    el('div', { class: 'field' }, el('label', { for: 'audit-user' }, 'User'), user),
    el('div', { class: 'field' }, el('label', { for: 'audit-sandbox' }, 'Sandbox'), sandbox),
    el('div', { class: 'field' }, el('label', { for: 'audit-action' }, 'Action'), action),
    el('div', { class: 'field' }, el('label', { for: 'audit-since' }, 'Since'), since),
    el('div', { class: 'field' }, el('label', { for: 'audit-until' }, 'Until'), until),
    el('button', { type: 'submit', class: 'btn btn-primary' }, 'Apply'),
    el('a', { class: 'btn btn-ghost', href: '#/audit' }, 'Clear'));
  const filters = {
    user: query.user, sandbox: query.sandbox, action: query.action, since: query.since, until: query.until,
    // Entries per page: the server's default unless the address says.
    limit: query.limit,
  };
  const trail = () => {
    const key = JSON.stringify(filters);
    if (!trails.has(key)) trails.set(key, []);
    return trails.get(key);
  };
  const go = (page, cursor) => {
    if (page > 1 && cursor) trail()[page] = cursor;
    navigate(`#/audit${api.query({ ...filters, page: page > 1 ? page : '', cursor: page > 1 ? cursor : '' })}`);
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    Object.assign(filters, {
      user: user.value.trim(), sandbox: sandbox.value.trim(), action: action.value,
      since: toRfc3339(since.value), until: toRfc3339(until.value),
    });
    go(1);
  });
  action.addEventListener('change', () => form.requestSubmit());

  const body = el('div', { class: 'card-body flush' }, loading());
  view.append(
    el('div', { class: 'page-head' }, el('div', {}, el('h1', {}, 'Audit trail'),
      el('div', { class: 'sub' }, 'Every change asked of SDP, newest first: who, what, from where, and how it ended.'))),
    el('section', { class: 'card' }, form, body));

  const cursor = query.cursor || '';
  const page = cursor ? Math.max(2, Number.parseInt(query.page ?? '2', 10) || 2) : 1;
  if (cursor) trail()[page] = cursor;
  let data;
  try {
    data = await api.get(`/api/audit${api.query({ ...filters, cursor })}`);
  } catch (err) {
    replace(body, el('div', { class: 'card-body' }, errorBox(err, 'Cannot load the audit trail')));
    return;
  }
  if (data.entries.length === 0) {
    replace(body, el('div', { class: 'empty', id: 'audit-empty' },
      el('h2', {}, page > 1 ? 'No more entries' : 'No entry matches these filters')));
    return;
  }
  const dash = (value) => value ?? '-';
  const rows = data.entries.map((e) => el('tr', { dataset: { entry: String(e.id) } },
    el('td', { class: 'nowrap' }, timeEl(e.at)),
    el('td', {}, dash(e.actor)),
    el('td', { class: 'mono' }, e.action),
    el('td', { class: 'mono' }, dash(e.target)),
    el('td', {}, e.sandbox ? sandboxLink(e.sandbox) : '-'),
    el('td', { class: 'mono' }, dash(e.address)),
    el('td', {}, el('span', { class: `badge plain ${OUTCOME_CLASS[e.outcome] ?? ''}` }, e.outcome)),
    el('td', { class: 'muted' }, dash(e.message))));
  const newer = el('button', { type: 'button', class: 'btn btn-ghost', id: 'audit-newer', disabled: page <= 1 }, '← Newer');
  const older = el('button', { type: 'button', class: 'btn btn-ghost', id: 'audit-older', disabled: !data.next_cursor }, 'Older →');
  // A page reached by a link alone has no trail back: newer is the first.
  newer.addEventListener('click', () => {
    const back = trail()[page - 1];
    if (page - 1 > 1 && back) go(page - 1, back);
    else go(1);
  });
  older.addEventListener('click', () => go(page + 1, data.next_cursor));
  replace(body,
    el('table', { class: 'table', id: 'audit-table' },
      el('thead', {}, el('tr', {}, ['When', 'Who', 'Action', 'Target', 'Sandbox', 'Address', 'Outcome', 'Message']
        .map((h) => el('th', {}, h)))),
      el('tbody', {}, rows)),
    el('div', { class: 'pager row', id: 'audit-pager' }, newer, el('span', { class: 'muted' }, `page ${page}`), older));
}
