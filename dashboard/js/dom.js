// DOM building without HTML parsing: every string becomes a text node or
// an attribute value, never markup.

/**
 * el('a', {href: '#/x', class: 'btn', onclick: fn}, 'text', childNode, [more])
 * Attributes: `class`, `dataset` (object), `on<event>` (function), `value`,
 * `checked`, `disabled`, booleans (true → present), everything else via
 * setAttribute. null/undefined/false attributes and children are skipped.
 */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2), value);
    } else if (key === 'value') node.value = value;
    else if (key === 'checked') node.checked = Boolean(value);
    else if (key === 'href') node.setAttribute('href', safeHref(value) ?? '#');
    else if (value === true) node.setAttribute(key, '');
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

/** Appends children (strings, numbers, nodes, arrays; null skipped). */
export function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }
  return node;
}

/** Replaces a node's children. */
export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

/**
 * A link target that cannot run script: in-app hashes, same-origin paths
 * and http(s) URLs pass; anything else (javascript:, data:) gives null.
 */
export function safeHref(value) {
  const text = String(value ?? '');
  if (text.startsWith('#') || (text.startsWith('/') && !text.startsWith('//'))) return text;
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch {
    return null;
  }
}

/** An external link if the URL is http(s), else the URL as plain text. */
export function urlLink(url, label) {
  if (!url) return el('span', { class: 'muted' }, '—');
  const href = safeHref(url);
  if (!href || href.startsWith('#') || href.startsWith('/')) return el('span', { class: 'mono' }, url);
  return el('a', { href, target: '_blank', rel: 'noopener noreferrer', class: 'mono' }, label ?? url);
}

/**
 * A button that copies `text` to the clipboard and says so. The Clipboard
 * API needs a secure context; elsewhere a hidden field and execCommand do.
 */
export function copyButton(text, label = 'Copy') {
  const button = el('button', { type: 'button', class: 'btn btn-small', title: `Copy ${text}` }, label);
  button.addEventListener('click', async () => {
    let copied = false;
    try {
      await navigator.clipboard.writeText(text);
      copied = true;
    } catch {
      const field = el('textarea', { readonly: true, class: 'offscreen' }, text);
      document.body.append(field);
      field.select();
      copied = document.execCommand('copy');
      field.remove();
    }
    button.textContent = copied ? 'Copied' : 'Copy failed';
    setTimeout(() => { button.textContent = label; }, 1500);
  });
  return button;
}

/** An error box for a thrown error (ApiError or other). */
export function errorBox(err, title) {
  return el('div', { class: 'alert alert-error', role: 'alert' },
    title ? el('span', { class: 'title' }, title) : null,
    err?.message ?? String(err));
}

export function loading(text = 'Loading…') {
  return el('p', { class: 'muted loading' }, text);
}

/**
 * A button that asks for confirmation inline (no native dialog):
 * the first click shows "question [confirm] [keep]".
 */
export function confirmButton({ label, question, confirmLabel, onConfirm, className = 'btn btn-danger' }) {
  const control = confirmControl({ onConfirm, className });
  control.update({ label, question, confirmLabel });
  return control.node;
}

/**
 * confirmButton as a part a page keeps across refreshes: `update` changes
 * only the texts, so an open question (and a click on its way) survives.
 * `onConfirm` is called at click time: it reads the page's current data.
 */
export function confirmControl({ onConfirm, className = 'btn btn-danger' }) {
  const wrap = el('span', { class: 'confirm-wrap' });
  const trigger = el('button', { type: 'button', class: className });
  const yes = el('button', { type: 'button', class: 'btn btn-danger solid btn-small' });
  const no = el('button', { type: 'button', class: 'btn btn-small' }, 'Keep');
  const question = document.createTextNode('');
  const box = el('span', { class: 'confirm', hidden: true, role: 'group' }, question, yes, no);
  trigger.addEventListener('click', () => {
    trigger.hidden = true;
    box.hidden = false;
    yes.focus();
  });
  no.addEventListener('click', () => {
    box.hidden = true;
    trigger.hidden = false;
    trigger.focus();
  });
  yes.addEventListener('click', async () => {
    yes.disabled = true;
    no.disabled = true;
    try {
      await onConfirm();
    } finally {
      yes.disabled = false;
      no.disabled = false;
      box.hidden = true;
      trigger.hidden = false;
    }
  });
  append(wrap, [trigger, box]);
  return {
    node: wrap,
    update({ label, question: text, confirmLabel }) {
      setText(trigger, label);
      setText(yes, confirmLabel ?? label);
      if (question.data !== text) question.data = text;
    },
  };
}

// ---- updating in place ----
// Pages that refresh (polls, WebSocket events) keep their controls:
// a button, link or field is made once and later only its text, state or
// attributes change. A re-created control loses a person's click (and a
// focused field what they typed), and a test's reference to it goes stale.

/** Sets a node's text if it differs (a text-only element). */
export function setText(node, text) {
  const value = String(text ?? '');
  if (node.textContent !== value) node.textContent = value;
  return node;
}

/** Sets or removes an attribute if it differs (null/undefined/false removes). */
export function setAttr(node, name, value) {
  if (value === null || value === undefined || value === false) {
    if (node.hasAttribute(name)) node.removeAttribute(name);
  } else {
    const text = value === true ? '' : String(value);
    if (node.getAttribute(name) !== text) node.setAttribute(name, text);
  }
  return node;
}

/**
 * Makes `parent`'s children exactly `nodes` (null/false skipped), in
 * order, moving only the ones out of place: a node that stays is the
 * same node.
 */
export function place(parent, ...nodes) {
  const wanted = nodes.flat(Infinity).filter((n) => n instanceof Node);
  wanted.forEach((node, i) => {
    const at = parent.childNodes[i] ?? null;
    if (at !== node) parent.insertBefore(node, at);
  });
  while (parent.childNodes.length > wanted.length) parent.lastChild.remove();
  return parent;
}

const keyedParts = new WeakMap();

/**
 * One child of `container` per item, in order, keyed by `keyOf(item)`:
 * the element made for a key on an earlier pass is kept and updated.
 * `make(item)` returns `{ node, update(item) }`; `update` runs on every
 * pass, the first too. Parts of keys that went away are dropped.
 */
export function keyed(container, items, keyOf, make) {
  const before = keyedParts.get(container) ?? new Map();
  const now = new Map();
  for (const item of items) {
    const key = keyOf(item);
    if (now.has(key)) continue; // one row per key
    const part = before.get(key) ?? make(item);
    part.update(item);
    now.set(key, part);
  }
  keyedParts.set(container, now);
  return place(container, [...now.values()].map((p) => p.node));
}

const shownKeys = new WeakMap();

/**
 * Replaces `node`'s children with `build()` only when `key` changed since
 * the last call on it: content that did not change (its links and
 * buttons) stays the same elements.
 */
export function replaceWhenChanged(node, key, build) {
  if (shownKeys.get(node) === key) return node;
  shownKeys.set(node, key);
  return replace(node, build());
}

/**
 * A "Show more" button under a polled, paged list: `cap` (how many items
 * the list fetches, following cursors) starts at `step` and grows by it on
 * each click, which then calls `reload`. `update(more)` shows the button
 * while the list goes on.
 */
export function showMore({ id, step, reload }) {
  const control = { cap: step };
  const button = el('button', { type: 'button', class: 'btn btn-ghost', id }, 'Show more');
  const node = el('div', { class: 'pager row', hidden: true }, button);
  button.addEventListener('click', async () => {
    control.cap += step;
    button.disabled = true;
    try {
      await reload();
    } finally {
      button.disabled = false;
    }
  });
  control.node = node;
  control.update = (more) => {
    node.hidden = !more;
  };
  return control;
}
