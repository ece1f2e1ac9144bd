// The sandbox page's sleep state: a badge (awake, asleep, waking) with the
// last activity, and a "Wake" button while it sleeps (POST …/wake answers
// once its services are healthy). Made once; `update(sandbox)` after each
// load of the sandbox changes it in place.

import * as api from '../api.js';
import { el, setText, setAttr, place } from '../dom.js';
import { timeEl } from '../format.js';

const BADGE = {
  awake: ['badge ok', 'awake'],
  asleep: ['badge warn', 'asleep'],
  waking: ['badge info', 'waking…'],
};

export function sleepControl(base, { onWoken, onError }) {
  const badge = el('span', { id: 'sandbox-state' });
  const activity = el('span', { class: 'muted small', id: 'sandbox-activity' });
  const wake = el('button', { type: 'button', class: 'btn btn-small btn-primary', id: 'wake-sandbox' }, 'Wake');
  const row = el('div', { class: 'row' });
  let waking = false;
  let lastActivity = null;

  wake.addEventListener('click', async () => {
    waking = true;
    wake.disabled = true;
    show('waking');
    try {
      const woken = await api.post(`${base}/wake`);
      onWoken(woken);
    } catch (err) {
      onError(err, 'Cannot wake the sandbox');
    } finally {
      waking = false;
      wake.disabled = false;
    }
  });

  function show(state) {
    const [cls, text] = BADGE[state] ?? BADGE.awake;
    setAttr(badge, 'class', cls);
    setAttr(badge, 'data-state', state);
    setText(badge, text);
    const asleep = state !== 'awake';
    place(row, badge, lastActivity ? activity : null, asleep ? wake : null);
  }

  return {
    node: el('dd', { id: 'sandbox-sleep' }, row),
    update(sandbox) {
      if (sandbox.last_activity_at !== lastActivity) {
        lastActivity = sandbox.last_activity_at ?? null;
        activity.replaceChildren(...(lastActivity ? ['last activity ', timeEl(lastActivity)] : []));
      }
      show(waking ? 'waking' : (sandbox.state ?? 'awake'));
    },
  };
}
