// The deployment log: line numbers, ANSI colours, follow mode, search.
//
// A build can write 100k lines, so only the rows on screen (and a few
// around them) exist in the DOM: every row has the same height, a spacer
// gives the scroll box the height of all of them, and the rows in view are
// redrawn on scroll or when lines arrive (at most once per frame).

import { el } from './dom.js';
import { parseAnsi, stripAnsi } from './ansi.js';

/** Rows drawn above and below the visible ones, so a scroll shows no gap. */
const OVERSCAN = 30;
/** Fallback row height (px) until one is measured. */
const DEFAULT_ROW_HEIGHT = 19;

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

function renderLineText(target, row, q) {
  row.segments ??= parseAnsi(row.text);
  for (const segment of row.segments) {
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

/** Lower-cased text without escapes, computed once, when first searched. */
function plain(row) {
  row.plain ??= stripAnsi(row.text).toLowerCase();
  return row.plain;
}

export class LogView {
  /**
   * `prefix` goes before every element id, so a page can hold two logs
   * (the runtime log uses `runtime-`); `label` names the box.
   */
  constructor({ prefix = '', label = 'Deployment log', waiting = 'Waiting for output…' } = {}) {
    // Every row: a log line {n, seq, stream, text} or a marker {marker, seq, text}.
    this.rows = [];
    this.lineCount = 0;
    this.query = '';
    this.onlyMatches = false;
    // Indices into rows when "only matching" hides some; null shows all.
    this.shown = null;
    this.follow = true;
    this.scheduled = false;
    this.rowHeight = 0;
    this.spacer = el('div', { class: 'log-spacer' });
    this.slab = el('div', { class: 'log-rows' });
    this.empty = el('div', { class: 'log-empty', id: `${prefix}log-empty` }, waiting);
    this.box = el('div', {
      class: 'log', id: `${prefix}log`, tabindex: '0', role: 'log', 'aria-label': label, 'aria-live': 'off',
      dataset: { lastSeq: '0', lines: '0' },
    }, this.empty, this.spacer, this.slab);
    // Every line as the page holds it (most are not in the DOM): for tests
    // and for the console.
    this.box.logRows = () => this.rows.filter((row) => !row.marker).map((row) => [row.n, row.seq, row.text]);
    this.jump = el('button', { type: 'button', class: 'btn btn-primary btn-small jump', id: `${prefix}jump-latest`, hidden: true }, '↓ Jump to latest');
    this.jump.addEventListener('click', () => {
      this.follow = true;
      this.updateFollow();
      this.schedule();
    });
    this.followState = el('span', { class: 'muted small', id: `${prefix}follow-state` }, 'Following');
    this.matchInfo = el('span', { class: 'muted small', id: `${prefix}match-info`, 'aria-live': 'polite' });
    this.box.addEventListener('scroll', () => {
      const atEnd = this.box.scrollHeight - this.box.scrollTop - this.box.clientHeight < this.height();
      if (atEnd !== this.follow) {
        this.follow = atEnd;
        this.updateFollow();
      }
      this.schedule();
    });
    this.wrap = el('div', { class: 'log-wrap' }, this.box, this.jump);
  }

  updateFollow() {
    this.jump.hidden = this.follow;
    this.followState.textContent = this.follow ? 'Following' : 'Paused (scrolled up)';
  }

  /** Adds the lines of a `log` (one line) or `logs` (a batch) event. */
  addLog(event) {
    const body = event.body;
    const stream = String(body.stream ?? 'stdout');
    const lines = body.type === 'logs' ? (Array.isArray(body.lines) ? body.lines : []) : [body.line];
    // A batch says where it starts; a single line follows the last one.
    let n = body.type === 'logs' && Number.isSafeInteger(body.first_line) ? body.first_line : this.lineCount + 1;
    for (const line of lines) {
      this.push({ n, seq: event.seq, stream, text: String(line ?? '') });
      n += 1;
    }
    this.lineCount = Math.max(this.lineCount, n - 1);
    this.box.dataset.lastSeq = String(event.seq);
  }

  addMarker(event, text) {
    this.push({ marker: true, seq: event.seq, text });
    this.box.dataset.lastSeq = String(event.seq);
  }

  push(row) {
    this.rows.push(row);
    if (this.shown && this.matches(row)) this.shown.push(this.rows.length - 1);
    this.schedule();
  }

  matches(row) {
    return !row.marker && plain(row).includes(this.query);
  }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    const draw = () => {
      if (!this.scheduled) return;
      this.scheduled = false;
      this.draw();
    };
    // rAF folds a burst of events into one draw; a hidden tab has no
    // frames, so a timer backs it up.
    requestAnimationFrame(draw);
    setTimeout(draw, 250);
  }

  height() {
    if (this.rowHeight) return this.rowHeight;
    const probe = el('div', { class: 'log-line' }, el('span', { class: 'ln' }, '0'), el('span', { class: 'txt' }, 'x'));
    this.slab.append(probe);
    const measured = probe.getBoundingClientRect().height;
    probe.remove();
    // Not laid out yet (a hidden page): measure again next time.
    if (measured > 0) this.rowHeight = measured;
    return measured > 0 ? measured : DEFAULT_ROW_HEIGHT;
  }

  /** Draws the rows in view. */
  draw() {
    const count = this.shown ? this.shown.length : this.rows.length;
    const h = this.height();
    if (this.rows.length > 0) this.empty.remove();
    this.spacer.style.height = `${count * h}px`;
    if (this.follow) this.box.scrollTop = this.box.scrollHeight;
    const top = this.box.scrollTop;
    const first = Math.max(0, Math.floor(top / h) - OVERSCAN);
    const last = Math.min(count, Math.ceil((top + this.box.clientHeight) / h) + OVERSCAN);
    const fragment = document.createDocumentFragment();
    for (let i = first; i < last; i += 1) {
      fragment.append(this.renderRow(this.rows[this.shown ? this.shown[i] : i]));
    }
    this.slab.style.transform = `translateY(${first * h}px)`;
    this.slab.replaceChildren(fragment);
    this.box.dataset.lines = String(this.lineCount);
  }

  renderRow(row) {
    if (row.marker) {
      return el('div', { class: 'log-line event', dataset: { seq: String(row.seq) } },
        el('span', { class: 'ln' }, ''), el('span', { class: 'txt' }, row.text));
    }
    const txt = el('span', { class: 'txt' });
    renderLineText(txt, row, this.query);
    return el('div', { class: `log-line stream-${row.stream}`, dataset: { n: String(row.n), seq: String(row.seq) } },
      el('span', { class: 'ln', 'aria-hidden': 'true' }, String(row.n)), txt);
  }

  /** Forgets every line (a runtime log started again). */
  clear() {
    this.rows = [];
    this.lineCount = 0;
    this.shown = this.shown ? [] : null;
    this.box.prepend(this.empty);
    this.schedule();
  }

  setQuery(query, onlyMatches) {
    this.query = query.trim().toLowerCase();
    this.onlyMatches = onlyMatches;
    this.shown = null;
    if (this.query && onlyMatches) {
      this.shown = [];
      this.rows.forEach((row, i) => { if (this.matches(row)) this.shown.push(i); });
    }
    this.updateMatchInfo();
    this.draw();
  }

  updateMatchInfo() {
    if (!this.query) {
      this.matchInfo.textContent = '';
      return;
    }
    let count = 0;
    let firstHit = -1;
    this.rows.forEach((row, i) => {
      if (!this.matches(row)) return;
      count += 1;
      if (firstHit < 0) firstHit = i;
    });
    this.matchInfo.textContent = `${count} matching line${count === 1 ? '' : 's'}`;
    // Scrolled up: show the first hit rather than where the reader was.
    if (firstHit >= 0 && !this.follow && !this.shown) this.box.scrollTop = firstHit * this.height();
  }
}
