// Redeploying a past deployment's commit (a rollback), shared by the
// history, the sandbox page and the deployment page: the "live" and
// "rollback" badges, and a button that asks before it deploys.

import * as api from './api.js';
import { el, confirmControl } from './dom.js';
import { shortCommit, deploymentLink } from './format.js';

/** "live": this deployment's container serves its (sandbox, service) now. */
export function liveBadge(d) {
  return d?.live ? el('span', { class: 'badge live plain', title: 'Its container serves this service now' }, 'live') : null;
}

/** "rollback of …" for a redeploy of an older deployment's commit. */
export function redeployBadge(d) {
  if (!d?.redeploy_of) return null;
  return el('span', { class: 'badge plain info redeploy-of', title: `Deploys the commit of ${d.redeploy_of} again` },
    'rollback of ', deploymentLink(d.redeploy_of, String(d.redeploy_of).slice(0, 8)));
}

/**
 * Whether to offer deploying `d` again: it ran (running or stopped since)
 * and recorded its commit. The API also takes a failed one that got as
 * far as its fetch; the UI offers only what once worked.
 */
const RAN = new Set(['running', 'stopped']);
export const canRedeploy = (d) => Boolean(d?.commit) && RAN.has(d.status);

/**
 * A "Roll back" button (or "Redeploy this commit" for the live one) that
 * confirms inline, then POSTs /api/deployments/{id}/redeploy and hands the
 * new deployment to `onStarted`; errors go to `onError(err, d)`. `small`
 * for table rows. A part kept across refreshes: `update(d)` with the
 * deployment's newest row changes only its texts, so an open question
 * survives a poll.
 */
export function rollbackControl({ onStarted, onError, small = true }) {
  let current = null;
  const control = confirmControl({
    className: small ? 'btn btn-small rollback' : 'btn rollback',
    onConfirm: async () => {
      const d = current;
      try {
        onStarted(await api.post(`/api/deployments/${api.seg(d.id)}/redeploy`));
      } catch (err) {
        onError(err, d);
      }
    },
  });
  return {
    node: control.node,
    update(d) {
      current = d;
      const label = d.live ? 'Redeploy this commit' : 'Roll back';
      control.update({
        label,
        question: `Deploy ${shortCommit(d.commit)} of ${d.branch} into ${d.sandbox} again? `,
        confirmLabel: label,
      });
    },
  };
}
