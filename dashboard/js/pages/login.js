// #/login: username and password, checked by an agent against the probe repo.

import * as api from '../api.js';
import { el, replace } from '../dom.js';
import { setUser, takeFlash, navigate } from '../app.js';

function explain(err) {
  if (err.status === 401) {
    return ['Wrong username or password.', 'Use your Bitbucket (git) credential: the same one you use to clone.'];
  }
  if (err.status === 503 && err.code === 'no_agent') {
    return ['No agent is online to check your credential.',
      'Logins are checked by an agent. Start one (or ask whoever runs SDP), then try again.'];
  }
  if (err.status === 429) {
    const wait = Number(err.retryAfter);
    const when = Number.isFinite(wait) && wait > 0 ? `in ${wait} seconds` : 'in a minute';
    return ['Too many login attempts.', `Wait and try again ${when}.`];
  }
  if (err.status === 503 && err.code === 'not_configured') {
    return ['Login is not configured on this control plane.', err.message];
  }
  return ['Cannot log in.', err.message];
}

export async function render(view, { query }) {
  const flash = takeFlash();
  const message = el('div', { class: 'alert-slot', 'aria-live': 'polite' });
  if (flash) {
    message.append(el('div', { class: `alert alert-${flash.kind}` }, flash.message));
  }
  const username = el('input', {
    type: 'text', id: 'login-username', name: 'username', autocomplete: 'username',
    required: true, class: 'wide', autofocus: true,
  });
  const password = el('input', {
    type: 'password', id: 'login-password', name: 'password', autocomplete: 'current-password',
    required: true, class: 'wide',
  });
  const submit = el('button', { type: 'submit', class: 'btn btn-primary', id: 'login-submit' }, 'Log in');
  const form = el('form', { id: 'login-form', novalidate: true },
    el('div', { class: 'field' }, el('label', { for: 'login-username' }, 'Username'), username),
    el('div', { class: 'field' }, el('label', { for: 'login-password' }, 'Password'), password,
      el('div', { class: 'help' }, 'Your Bitbucket git credential. It is checked by an agent and kept in memory only for your session.')),
    submit);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!username.value.trim() || !password.value) {
      replace(message, el('div', { class: 'alert alert-error', role: 'alert' }, 'Enter your username and password.'));
      (username.value.trim() ? password : username).focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Checking your credential…';
    replace(message);
    try {
      await api.post('/api/login', { username: username.value.trim(), password: password.value });
      const me = await api.get('/api/me');
      setUser(me);
      const next = query.next && query.next.startsWith('#/') && !query.next.startsWith('#/login') ? query.next : '#/sandboxes';
      navigate(next);
    } catch (err) {
      const [title, detail] = explain(err);
      replace(message, el('div', { class: 'alert alert-error', role: 'alert', id: 'login-error', dataset: { code: err.code ?? '' } },
        el('span', { class: 'title' }, title), detail));
      password.value = '';
      password.focus();
    } finally {
      submit.disabled = false;
      submit.textContent = 'Log in';
    }
  });

  view.append(el('div', { class: 'login-wrap' },
    el('div', { class: 'card login-card' }, el('div', { class: 'card-body' },
      el('h1', {}, 'Sign in to SDP'),
      el('p', { class: 'sub' }, 'Sandbox Deployment Platform'),
      message, form))));
  username.focus();
}
