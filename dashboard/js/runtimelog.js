// The runtime log of a running deployment: its container's own output,
// read from GET /api/deployments/{id}/runtime-logs (chunked text/plain)
// with fetch and a ReadableStream reader, shown in a LogView (ANSI
// colours, line numbers). "Follow" keeps the response open; the search
// box is sent as `q` and filtered by the agent. Stopping aborts the fetch,
// which ends the stream on the agent.

import { el } from './dom.js';
import { LogView } from './logview.js';

const TAIL = 1000;
const STATES = {
  idle: ['Not started', 'plain'],
  connecting: ['Connecting…', 'info'],
  live: ['Live', 'ok'],
  ended: ['Ended', 'plain'],
  error: ['Error', 'danger'],
};

export class RuntimeLog {
  constructor(id) {
    this.id = id;
    this.controller = null;
    this.log = new LogView({ prefix: 'runtime-', label: 'Runtime log', waiting: 'No output yet.' });
    this.state = el('span', { class: 'badge conn plain', id: 'runtime-state', dataset: { state: 'idle' } }, 'Not started');
    this.follow = el('input', { type: 'checkbox', id: 'runtime-follow', checked: true });
    this.search = el('input', {
      type: 'search', id: 'runtime-search', placeholder: 'Only lines with… (Enter)', 'aria-label': 'Filter the runtime log',
    });
    this.error = el('div', { id: 'runtime-error', 'aria-live': 'polite' });
    this.follow.addEventListener('change', () => this.start());
    this.search.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') {
        event.preventDefault();
        this.start();
      }
    });
    this.search.addEventListener('search', () => this.start());
    this.panel = el('div', { id: 'runtime-panel' },
      el('div', { class: 'log-toolbar' }, this.search,
        el('label', { class: 'check', for: 'runtime-follow' }, this.follow, 'Follow'),
        el('span', { class: 'spacer' }), this.state, this.log.followState),
      this.error,
      this.log.wrap);
  }

  setState(state, detail) {
    const [label, kind] = STATES[state] ?? [state, 'plain'];
    this.state.className = `badge conn ${kind}`;
    this.state.dataset.state = state;
    this.state.textContent = detail ? `${label}: ${detail}` : label;
  }

  /** (Re)starts the stream with the current follow and search settings. */
  start() {
    this.stop();
    this.log.clear();
    this.error.replaceChildren();
    const controller = new AbortController();
    this.controller = controller;
    const params = new URLSearchParams({ tail: String(TAIL), follow: String(this.follow.checked) });
    const q = this.search.value;
    if (q) params.set('q', q);
    this.setState('connecting');
    this.read(`/api/deployments/${encodeURIComponent(this.id)}/runtime-logs?${params}`, controller)
      .catch((err) => {
        if (controller.signal.aborted) return;
        this.setState('error');
        this.error.replaceChildren(el('div', { class: 'alert alert-error' }, String(err.message ?? err)));
      });
  }

  async read(url, controller) {
    const response = await fetch(url, { credentials: 'same-origin', signal: controller.signal });
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try {
        const data = await response.json();
        if (data?.error?.message) message = String(data.error.message);
      } catch {
        // Not the error shape: keep the status line.
      }
      throw new Error(message);
    }
    this.setState('live');
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let partial = '';
    let n = 0;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      partial += decoder.decode(value, { stream: true });
      const lines = partial.split('\n');
      partial = lines.pop();
      if (lines.length > 0) {
        this.log.addLog({ seq: 0, body: { type: 'logs', stream: 'stdout', first_line: n + 1, lines } });
        n += lines.length;
      }
    }
    if (partial) this.log.addLog({ seq: 0, body: { type: 'logs', stream: 'stdout', first_line: n + 1, lines: [partial] } });
    if (this.controller === controller) this.setState('ended');
  }

  /** Aborts the fetch: the control plane tells the agent to stop. */
  stop() {
    if (this.controller) {
      this.controller.abort();
      this.controller = null;
    }
  }
}
