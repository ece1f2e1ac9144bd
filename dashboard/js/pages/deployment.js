// #/deployments/{id}: phase stepper with timings, the live log (line
// numbers, ANSI colours, follow mode, search, download), stream status,
// and the result.

import * as api from '../api.js';
import { el, replace, errorBox, loading, urlLink } from '../dom.js';
import { statusBadge, duration, commitEl, toDate, SETTLED, sandboxLink, timeEl } from '../format.js';
import { DeploymentStream } from '../stream.js';
import { parseAnsi, stripAnsi } from '../ansi.js';

const STEPS = ['queued', 'fetching', 'building', 'starting'];
const CONN = {
  connecting: ['Connecting…', 'info'],
  live: ['Live', 'ok'],
  reconnecting: ['Reconnecting…', 'warn'],
  ended: ['Complete', 'plain'],
  denied: ['Session expired: log in again', 'danger'],
  closed: ['Closed', 'plain'],
};

/** Renders `text` into `parent`, wrapping case-insensitive hits of `q` in <mark>. */
function highlight(parent, text, q) {
  if (!q) {
    parent.append(text);
    return;
  }
  const lower = text.toLowerCase();
  let from = 0;
  for (let at = lower.indexOf(q, from); at !== -1; at = lower.indexOf(q, from)) {
    if (at > from) parent.append(text.slice(from, at));
    parent.append(el('mark', {}, text.slice(at, at + q.length)));
    from = at + q.length;
  }
  if (from < text.length) parent.append(text.slice(from));
}

function renderLineText(target, line, q) {
  target.replaceChildren();
  for (const segment of line.segments) {
    if (segment.classes.length === 0 && !segment.fg && !segment.bg) {
      highlight(target, segment.text, q);
      continue;
    }
    const span = el('span', { class: segment.classes.join(' ') || null });
    // CSSOM (allowed by the CSP), only for 256-colour and true-colour codes.
    if (segment.fg) span.style.color = segment.fg;
    if (segment.bg) span.style.backgroundColor = segment.bg;
    highlight(span, segment.text, q);
    target.append(span);
  }
}

class LogView {
  constructor() {
    this.lines = [];
    this.pending = [];
    this.query = '';
    this.onlyMatches = false;
    this.follow = true;
    this.scheduled = false;
    this.box = el('div', {
      class: 'log', id: 'log', tabindex: '0', role: 'log', 'aria-label': 'Deployment log', 'aria-live': 'off',
      dataset: { lastSeq: '0', lines: '0' },
    }, el('div', { class: 'log-empty', id: 'log-empty' }, 'Waiting for output…'));
    this.jump = el('button', { type: 'button', class: 'btn btn-primary btn-small jump', id: 'jump-latest', hidden: true }, '↓ Jump to latest');
    this.jump.addEventListener('click', () => {
      this.follow = true;
      this.scrollToEnd();
      this.updateFollow();
    });
    this.followState = el('span', { class: 'muted small', id: 'follow-state' }, 'Following');
    this.matchInfo = el('span', { class: 'muted small', id: 'match-info', 'aria-live': 'polite' });
    this.box.addEventListener('scroll', () => {
      const atEnd = this.box.scrollHeight - this.box.scrollTop - this.box.clientHeight < 8;
      if (atEnd !== this.follow) {
        this.follow = atEnd;
        this.updateFollow();
      }
    });
    this.wrap = el('div', { class: 'log-wrap' }, this.box, this.jump);
  }

  updateFollow() {
    this.jump.hidden = this.follow;
    this.followState.textContent = this.follow ? 'Following' : 'Paused (scrolled up)';
  }

  scrollToEnd() {
    this.box.scrollTop = this.box.scrollHeight;
  }

  addLog(event) {
    const text = String(event.body.line ?? '');
    const line = {
      n: this.lines.length + 1, seq: event.seq, stream: String(event.body.stream ?? 'stdout'),
      text, plain: stripAnsi(text).toLowerCase(), segments: parseAnsi(text), row: null,
    };
    this.lines.push(line);
    this.pending.push(line);
    this.box.dataset.lastSeq = String(event.seq);
    this.schedule();
  }

  addMarker(event, text) {
    this.pending.push({ marker: true, seq: event.seq, text });
    this.box.dataset.lastSeq = String(event.seq);
    this.schedule();
  }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    const flush = () => {
      this.scheduled = false;
      this.flush();
    };
    // rAF batches a burst of lines into one layout; a hidden tab has no
    // frames, so a timer backs it up.
    requestAnimationFrame(flush);
    setTimeout(() => { if (this.scheduled) flush(); }, 250);
  }

  flush() {
    if (this.pending.length === 0) return;
    const fragment = document.createDocumentFragment();
    for (const line of this.pending) {
      if (line.marker) {
        fragment.append(el('div', { class: 'log-line event', dataset: { seq: String(line.seq) } },
          el('span', { class: 'ln' }, ''), el('span', { class: 'txt' }, line.text)));
        continue;
      }
      const txt = el('span', { class: 'txt' });
      renderLineText(txt, line, this.query);
      line.row = el('div', {
        class: `log-line stream-${line.stream}`, dataset: { n: String(line.n), seq: String(line.seq) },
      }, el('span', { class: 'ln', 'aria-hidden': 'true' }, String(line.n)), txt);
      if (this.query && this.onlyMatches && !line.plain.includes(this.query)) line.row.classList.add('filtered-out');
      fragment.append(line.row);
    }
    this.pending = [];
    document.getElementById('log-empty')?.remove();
    this.box.append(fragment);
    this.box.dataset.lines = String(this.lines.length);
    if (this.query) this.updateMatchInfo();
    if (this.follow) this.scrollToEnd();
  }

  setQuery(query, onlyMatches) {
    const q = query.trim().toLowerCase();
    const rerender = q !== this.query;
    this.query = q;
    this.onlyMatches = onlyMatches;
    for (const line of this.lines) {
      if (!line.row) continue;
      const hit = q !== '' && line.plain.includes(q);
      if (rerender && (hit || line.row.querySelector('mark'))) renderLineText(line.row.lastChild, line, q);
      line.row.classList.toggle('filtered-out', q !== '' && onlyMatches && !hit);
    }
    for (const marker of this.box.querySelectorAll('.log-line.event')) {
      marker.classList.toggle('filtered-out', q !== '' && onlyMatches);
    }
    this.updateMatchInfo();
    if (this.follow) this.scrollToEnd();
  }

  updateMatchInfo() {
    if (!this.query) {
      this.matchInfo.textContent = '';
      return;
    }
    const count = this.lines.reduce((n, line) => n + (line.plain.includes(this.query) ? 1 : 0), 0);
    this.matchInfo.textContent = `${count} matching line${count === 1 ? '' : 's'}`;
    const first = this.lines.find((line) => line.row && line.plain.includes(this.query));
    if (first && !this.follow) first.row.scrollIntoView({ block: 'center' });
  }
}

export async function render(view, { params, navigate, isCurrent }) {
  const id = params[0];
  view.append(loading('Loading the deployment…'));
  let deployment;
  try {
    deployment = await api.get(`/api/deployments/${api.seg(id)}`);
  } catch (err) {
    if (!isCurrent()) return undefined;
    replace(view, err.status === 404
      ? el('div', { class: 'card' }, el('div', { class: 'empty' }, el('h2', {}, 'No such deployment'),
        el('p', {}, 'There is no deployment ', el('code', {}, id), '. ', el('a', { href: '#/deployments' }, 'See the history'), '.')))
      : errorBox(err, 'Cannot load the deployment'));
    return undefined;
  }
  if (!isCurrent()) return undefined;

  // ---- state ----
  const phaseAt = new Map();
  for (const p of deployment.phases ?? []) {
    if (!phaseAt.has(p.phase)) phaseAt.set(p.phase, toDate(p.at));
  }
  let status = deployment.status;
  let result = null;

  // ---- layout ----
  const badge = el('span', { id: 'deployment-status' });
  const headActions = el('div', { class: 'actions' });
  const message = el('div', { 'aria-live': 'polite' });
  const stepper = el('ol', { class: 'stepper', id: 'stepper', 'aria-label': 'Progress' });
  const resultBox = el('div', { id: 'result' });
  const facts = el('ul', { class: 'meta', id: 'deployment-facts' });
  const log = new LogView();
  const conn = el('span', { class: 'badge conn info', id: 'stream-state', dataset: { state: 'connecting' } }, 'Connecting…');
  const search = el('input', { type: 'search', id: 'log-search', placeholder: 'Search the log', 'aria-label': 'Search the log' });
  const only = el('input', { type: 'checkbox', id: 'log-only-matches' });
  let searchTimer = null;
  const applySearch = () => log.setQuery(search.value, only.checked);
  search.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(applySearch, 120);
  });
  search.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') {
      event.preventDefault();
      applySearch();
    }
  });
  only.addEventListener('change', applySearch);
  search.addEventListener('change', applySearch);
  search.addEventListener('search', applySearch);

  replace(view,
    el('div', { class: 'page-head' },
      el('div', {},
        el('div', { class: 'small' }, el('a', { href: `#/deployments?sandbox=${encodeURIComponent(deployment.sandbox)}` }, '← Deployments')),
        el('h1', {}, el('span', { id: 'deployment-repo' }, deployment.repo), ' ',
          el('span', { class: 'muted' }, '·'), ' ', el('span', { class: 'mono', id: 'deployment-branch' }, deployment.branch), ' ', badge),
        el('div', { class: 'sub' }, 'in sandbox ', sandboxLink(deployment.sandbox), ' · ',
          el('code', { id: 'deployment-id' }, deployment.id))),
      headActions),
    message,
    facts,
    el('section', { class: 'card' }, stepper),
    resultBox,
    el('section', { class: 'card', 'aria-labelledby': 'log-h' },
      el('div', { class: 'card-head' }, el('h2', { id: 'log-h' }, 'Log'),
        el('div', { class: 'row' }, conn,
          el('a', { class: 'btn btn-small', id: 'log-download', href: `/api/deployments/${encodeURIComponent(id)}/logs`, download: `${id}.log` }, 'Download log'))),
      el('div', { class: 'log-toolbar' }, search,
        el('label', { class: 'check', for: 'log-only-matches' }, only, 'Only matching lines'),
        log.matchInfo, el('span', { class: 'spacer' }), log.followState),
      log.wrap));

  // ---- renderers ----
  function renderStepper() {
    const now = Date.now();
    const settled = SETTLED.has(status);
    const reached = STEPS.filter((s) => phaseAt.has(s));
    const lastReached = reached[reached.length - 1];
    const finalAt = phaseAt.get(status) ?? (result ? toDate(result.ts) : null) ?? toDate(deployment.finished_at);
    const items = STEPS.map((step, i) => {
      const at = phaseAt.get(step);
      const nextAt = STEPS.slice(i + 1).map((s) => phaseAt.get(s)).find(Boolean) ?? (settled ? finalAt : null);
      let cls = 'pending';
      let time = '';
      if (at) {
        if (nextAt) {
          cls = 'done';
          time = duration(nextAt - at);
        } else if (settled) {
          cls = status === 'running' ? 'done' : 'bad';
          time = finalAt ? duration(finalAt - at) : '';
        } else {
          cls = 'current';
          time = duration(now - at);
        }
        if (settled && status !== 'running' && step === lastReached && status !== 'stopped') cls = 'bad';
      }
      return el('li', { class: cls, dataset: { step } }, el('span', { class: 'step-name' }, step), el('span', { class: 'step-time' }, time));
    });
    const start = phaseAt.get('queued') ?? toDate(deployment.created_at);
    const finalName = settled ? status : 'running';
    const finalCls = !settled ? 'pending' : status === 'running' || status === 'stopped' ? 'ok' : 'bad';
    items.push(el('li', { class: finalCls, dataset: { step: 'result' } },
      el('span', { class: 'step-name' }, finalName),
      el('span', { class: 'step-time' }, settled && start && finalAt ? `total ${duration(finalAt - start)}` : '')));
    replace(stepper, items);
    replace(badge, statusBadge(status));
  }

  function renderFacts() {
    const fact = (key, value, attrs = {}) => el('li', {}, el('span', { class: 'k' }, key), el('span', { class: 'v', ...attrs }, value));
    replace(facts,
      fact('Commit', commitEl(result?.commit ?? deployment.commit)),
      fact('Agent', deployment.agent_id ?? '—', { class: 'v mono' }),
      fact('Kind', deployment.kind ?? '—'),
      fact('By', deployment.created_by ?? '—'),
      fact('Created', timeEl(deployment.created_at)),
      fact('URL', urlLink(result?.url ?? deployment.url), { id: 'deployment-url' }));
  }

  function renderResult() {
    if (!SETTLED.has(status)) {
      resultBox.replaceChildren();
      return;
    }
    const url = result?.url ?? deployment.url;
    const error = result?.error ?? deployment.error;
    const tail = result?.log_tail ?? [];
    let box;
    if (status === 'running') {
      box = el('div', { class: 'alert alert-ok', id: 'result-box', dataset: { status } },
        el('div', { class: 'result-line' }, el('span', { class: 'title' }, 'Running'),
          url ? el('span', {}, 'reachable at ', urlLink(url)) : 'The service is up.'));
    } else if (status === 'failed') {
      box = el('div', { class: 'alert alert-error', id: 'result-box', dataset: { status } },
        el('span', { class: 'title' }, 'Failed'), error ?? 'The deployment failed.',
        tail.length ? [el('div', { class: 'small' }, 'Last lines of the container log:'),
          el('pre', { class: 'log-tail', id: 'log-tail' }, tail.join('\n'))] : null);
    } else {
      box = el('div', { class: 'alert alert-warn', id: 'result-box', dataset: { status } },
        el('span', { class: 'title' }, status === 'cancelled' ? 'Cancelled' : 'Stopped'), error ?? '');
    }
    replace(resultBox, box);
  }

  function renderActions() {
    headActions.replaceChildren();
    if (!SETTLED.has(status)) {
      const cancel = el('button', { type: 'button', class: 'btn btn-danger', id: 'cancel-deployment' }, 'Cancel deployment');
      cancel.addEventListener('click', async () => {
        cancel.disabled = true;
        try {
          await api.post(`/api/deployments/${api.seg(id)}/cancel`);
          replace(message, el('div', { class: 'alert alert-info' }, 'Cancel requested: it stops at its next step.'));
        } catch (err) {
          replace(message, errorBox(err, 'Cannot cancel'));
          cancel.disabled = false;
        }
      });
      headActions.append(cancel);
    } else {
      const again = el('button', { type: 'button', class: 'btn', id: 'redeploy' }, 'Redeploy');
      again.addEventListener('click', async () => {
        again.disabled = true;
        try {
          const created = await api.post(`/api/sandboxes/${api.seg(deployment.sandbox)}/deployments`,
            { repo: deployment.repo, branch: deployment.branch });
          navigate(`#/deployments/${encodeURIComponent(created.id)}`);
        } catch (err) {
          replace(message, errorBox(err, 'Cannot redeploy'));
          again.disabled = false;
        }
      });
      headActions.append(again);
    }
  }

  function renderAll() {
    renderStepper();
    renderResult();
    renderFacts();
    renderActions();
  }
  renderAll();

  // ---- live ----
  const onEvent = (event) => {
    const body = event.body ?? {};
    if (body.type === 'log') {
      log.addLog(event);
    } else if (body.type === 'phase') {
      const at = toDate(event.ts);
      if (!phaseAt.has(body.phase) && at) phaseAt.set(body.phase, at);
      if (body.commit) deployment.commit = body.commit;
      if (!SETTLED.has(status)) status = body.phase;
      log.addMarker(event, `── ${body.phase}${body.commit ? ` ${String(body.commit).slice(0, 8)}` : ''}`);
      renderStepper();
      renderFacts();
      renderActions();
    } else if (body.type === 'result') {
      result = { ...body, ts: event.ts };
      status = body.status;
      const at = toDate(event.ts);
      if (!phaseAt.has(body.status) && at) phaseAt.set(body.status, at);
      log.addMarker(event, `── ${body.status}${body.error ? `: ${body.error}` : ''}`);
      renderAll();
    }
  };
  const onState = (state, detail) => {
    const [label, kind] = CONN[state] ?? [state, 'plain'];
    conn.className = `badge conn ${kind}`;
    conn.dataset.state = state;
    conn.textContent = detail && state === 'reconnecting' ? `${label} (${detail})` : label;
    if (state === 'ended') {
      // The row has the final timings (finished_at, commit, error).
      api.get(`/api/deployments/${api.seg(id)}`).then((fresh) => {
        if (!isCurrent()) return;
        deployment = fresh;
        if (!result) status = fresh.status;
        renderAll();
      }).catch(() => {});
    }
  };
  const stream = new DeploymentStream(id, { onEvent, onState }).start();
  const clock = setInterval(() => {
    if (!SETTLED.has(status)) renderStepper();
  }, 1000);

  return () => {
    stream.close();
    clearInterval(clock);
    clearTimeout(searchTimer);
  };
}

