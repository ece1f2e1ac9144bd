// The "Notifications" card of the sandbox page: the build statuses
// (Bitbucket) and outgoing webhooks sent for this sandbox, newest first,
// each with its last outcome (delivered, pending with the attempts so far,
// failed with why). Polled with the page.

import * as api from '../api.js';
import { el, replace, place, keyed, errorBox, showMore } from '../dom.js';
import { timeEl, commitEl, deploymentLink } from '../format.js';

const OUTCOME_CLASS = {
  delivered: 'status-running',
  pending: 'status-building',
  failed: 'status-failed',
  superseded: 'status-cancelled',
};

function outcomeBadge(d) {
  const cls = OUTCOME_CLASS[d.outcome] ?? '';
  const label = d.outcome === 'pending' && d.attempts > 0 ? `retrying (${d.attempts})` : d.outcome;
  return el('span', { class: `badge ${cls}`, dataset: { outcome: d.outcome } }, label);
}

function lastText(d) {
  if (d.last_error) return d.last_error;
  if (d.last_status) return String(d.last_status);
  return '';
}

/** The card; `refresh()` reloads it (the page calls it on each poll). */
export function deliveriesCard(sandbox) {
  const body = el('div', { class: 'card-body flush' });
  const node = el('section', { class: 'card', id: 'deliveries-card' },
    el('div', { class: 'card-head' }, el('h2', {}, 'Notifications'),
      el('span', { class: 'hint' }, 'Build statuses in Bitbucket and webhooks, with their last outcome')),
    body);
  const rows = el('tbody', {});
  const table = el('table', { class: 'table', id: 'deliveries' },
    el('thead', {}, el('tr', {}, el('th', {}, 'Service'), el('th', {}, 'Event'), el('th', {}, 'Target'),
      el('th', {}, 'Commit'), el('th', {}, 'Outcome'), el('th', {}, 'Attempts'), el('th', {}, 'Last answer'), el('th', {}, 'At'))),
    rows);
  const empty = el('div', { class: 'empty' }, el('p', {}, 'Nothing sent yet.'));
  const makeRow = (first) => {
    const cells = Array.from({ length: 8 }, () => el('td', {}));
    const tr = el('tr', { dataset: { delivery: String(first.id) } }, ...cells);
    return {
      node: tr,
      update(d) {
        replace(cells[0], el('strong', {}, d.repo), d.deployment_id ? [' ', deploymentLink(d.deployment_id, '↗')] : null);
        replace(cells[1], `${d.event} · ${d.state}`);
        replace(cells[2], el('span', { class: 'mono' }, d.target));
        replace(cells[3], commitEl(d.commit));
        replace(cells[4], outcomeBadge(d));
        replace(cells[5], String(d.attempts));
        replace(cells[6], el('span', { class: 'muted' }, lastText(d)));
        replace(cells[7], timeEl(d.updated_at));
      },
    };
  };
  const more = showMore({ id: 'deliveries-more', step: 20, reload: () => refresh() });
  body.after(more.node);
  async function refresh() {
    try {
      const { items: list, more: goesOn } = await api.getAll(`/api/deliveries${api.query({ sandbox, limit: 20 })}`, more.cap);
      more.update(goesOn);
      if (!list.length) {
        place(body, empty);
        return;
      }
      keyed(rows, list, (d) => String(d.id), makeRow);
      place(body, table);
    } catch (err) {
      if (api.isMissingApi(err)) node.hidden = true;
      else replace(body, el('div', { class: 'card-body' }, errorBox(err, 'Cannot load the notifications')));
    }
  }
  return { node, refresh };
}
