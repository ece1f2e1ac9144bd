// Autodeploy, on the sandbox page: a service's "Autodeploy on push" toggle
// (PUT /api/sandboxes/{name}/services/{repo} {autodeploy}) and the note a
// service with autodeploy on shows when a push could not be deployed for
// it.

import * as api from './api.js';
import { el } from './dom.js';

/**
 * An "Autodeploy on push" checkbox for the service `repo` of the sandbox at
 * `base` (`/api/sandboxes/{name}`), kept across refreshes: `update(service)`
 * sets its state from the newest row (not while a change is on its way).
 * Only a deployed service has a branch to watch. `onChanged(on)` after the
 * server took it, `onError(err)` otherwise (the box goes back).
 */
export function autodeployControl(base, repo, { onChanged, onError }) {
  let busy = false;
  let deployed = false;
  const box = el('input', {
    type: 'checkbox',
    class: 'autodeploy-toggle',
    // `data-follow`, autodeploy's first name, stays: the browser tests
    // find the box by it.
    dataset: { follow: repo },
    'aria-label': `Autodeploy ${repo} on a push to its branch`,
  });
  box.addEventListener('change', async () => {
    const want = box.checked;
    busy = true;
    box.disabled = true;
    try {
      await api.put(`${base}/services/${api.seg(repo)}`, { autodeploy: want });
      onChanged(want);
    } catch (err) {
      box.checked = !want;
      onError(err);
    } finally {
      busy = false;
      box.disabled = !deployed;
    }
  });
  const label = el('label', { class: 'autodeploy' }, box, ' Autodeploy on push');
  return {
    node: label,
    update(service) {
      deployed = Boolean(service.deployment_id);
      label.title = deployed
        ? `Redeploy ${repo} whenever ${service.branch ?? 'its branch'} is pushed to`
        : 'Deploy the service first: a push to the branch of its newest deployment redeploys it';
      if (busy) return;
      box.checked = Boolean(service.autodeploy);
      box.disabled = !deployed;
    },
  };
}

/** "behind: deploy by hand" when a push to an autodeploy service was not deployed. */
export function pushedNote(service) {
  const pushed = service.pushed_head;
  if (!pushed) return null;
  const commit = String(pushed.commit ?? '').slice(0, 8);
  return el('span', {
    class: 'badge plain warn pushed-head',
    title: `Pushed ${commit} at ${pushed.at ?? '?'}: no service credential is configured, so it was not deployed`,
  }, String(pushed.note ?? 'behind: deploy by hand'));
}
