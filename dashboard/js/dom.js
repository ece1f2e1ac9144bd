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
  const wrap = el('span', { class: 'confirm-wrap' });
  const trigger = el('button', { type: 'button', class: className }, label);
  const yes = el('button', { type: 'button', class: 'btn btn-danger solid btn-small' }, confirmLabel ?? label);
  const no = el('button', { type: 'button', class: 'btn btn-small' }, 'Keep');
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
  return append(wrap, [trigger, box]);
}
