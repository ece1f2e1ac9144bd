// Following a branch, on the sandbox page: a service's "Follow branch"
// toggle (PUT /api/sandboxes/{name}/services/{repo} {follow}) and the note
// a follower shows when a push could not be deployed for it.

import * as api from './api.js';
import { el } from './dom.js';

/**
 * A "Follow branch" checkbox for `service` of the sandbox at `base`
 * (`/api/sandboxes/{name}`). Only a deployed service has a branch to
 * follow. `onChanged(follow)` after the server took it, `onError(err)`
 * otherwise (the box goes back).
 */
export function followToggle(base, service, { onChanged, onError }) {
  const deployed = Boolean(service.deployment_id);
  const box = el('input', {
    type: 'checkbox',
    class: 'follow-toggle',
    checked: Boolean(service.follow),
    disabled: !deployed,
    dataset: { follow: service.repo },
    'aria-label': `Follow the branch of ${service.repo}`,
  });
  box.addEventListener('change', async () => {
    const want = box.checked;
    box.disabled = true;
    try {
      await api.put(`${base}/services/${api.seg(service.repo)}`, { follow: want });
      onChanged(want);
    } catch (err) {
      box.checked = !want;
      onError(err);
    } finally {
      box.disabled = false;
    }
  });
  const title = deployed
    ? `Redeploy ${service.repo} whenever ${service.branch ?? 'its branch'} is pushed to`
    : 'Deploy the service first: it follows the branch of its newest deployment';
  return el('label', { class: 'follow', title }, box, ' Follow branch');
}

/** "behind: deploy by hand" when a followed push was not deployed. */
export function pushedNote(service) {
  const pushed = service.pushed_head;
  if (!pushed) return null;
  const commit = String(pushed.commit ?? '').slice(0, 8);
  return el('span', {
    class: 'badge plain warn pushed-head',
    title: `Pushed ${commit} at ${pushed.at ?? '?'}: no service credential is configured, so it was not deployed`,
  }, String(pushed.note ?? 'behind: deploy by hand'));
}
