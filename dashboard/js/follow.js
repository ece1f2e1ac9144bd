// Following a branch, on the sandbox page: a service's "Follow branch"
// toggle (PUT /api/sandboxes/{name}/services/{repo} {follow}) and the note
// a follower shows when a push could not be deployed for it.

import * as api from './api.js';
import { el } from './dom.js';

/**
 * A "Follow branch" checkbox for the service `repo` of the sandbox at
 * `base` (`/api/sandboxes/{name}`), kept across refreshes: `update(service)`
 * sets its state from the newest row (not while a change is on its way).
 * Only a deployed service has a branch to follow. `onChanged(follow)`
 * after the server took it, `onError(err)` otherwise (the box goes back).
 */
export function followControl(base, repo, { onChanged, onError }) {
  let busy = false;
  let deployed = false;
  const box = el('input', {
    type: 'checkbox',
    class: 'follow-toggle',
    dataset: { follow: repo },
    'aria-label': `Follow the branch of ${repo}`,
  });
  box.addEventListener('change', async () => {
    const want = box.checked;
    busy = true;
    box.disabled = true;
    try {
      await api.put(`${base}/services/${api.seg(repo)}`, { follow: want });
      onChanged(want);
    } catch (err) {
      box.checked = !want;
      onError(err);
    } finally {
      busy = false;
      box.disabled = !deployed;
    }
  });
  const label = el('label', { class: 'follow' }, box, ' Follow branch');
  return {
    node: label,
    update(service) {
      deployed = Boolean(service.deployment_id);
      label.title = deployed
        ? `Redeploy ${repo} whenever ${service.branch ?? 'its branch'} is pushed to`
        : 'Deploy the service first: it follows the branch of its newest deployment';
      if (busy) return;
      box.checked = Boolean(service.follow);
      box.disabled = !deployed;
    },
  };
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
