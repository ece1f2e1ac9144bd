// Small formatting helpers shared by the pages.

import { el } from './dom.js';

export const STATUSES = ['queued', 'fetching', 'building', 'starting', 'running', 'failed', 'cancelled', 'stopped'];
export const SETTLED = new Set(['running', 'failed', 'cancelled', 'stopped']);

export function statusBadge(status) {
  const name = STATUSES.includes(status) ? status : 'unknown';
  return el('span', { class: `badge status-${name}`, dataset: { status: String(status ?? '') } },
    String(status ?? 'unknown'));
}

export function toDate(value) {
  if (value === null || value === undefined || value === '') return null;
  const date = typeof value === 'number' ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** "in 3 h", "5 min ago", "just now". */
export function relative(value, now = Date.now()) {
  const date = toDate(value);
  if (!date) return '—';
  const diff = date.getTime() - now;
  const abs = Math.abs(diff);
  let text;
  if (abs < 45_000) return diff >= 0 ? 'in a moment' : 'just now';
  if (abs < 3_600_000) text = `${Math.round(abs / 60_000)} min`;
  else if (abs < 48 * 3_600_000) text = `${Math.round(abs / 3_600_000)} h`;
  else text = `${Math.round(abs / 86_400_000)} d`;
  return diff >= 0 ? `in ${text}` : `${text} ago`;
}

/** A <time> element: relative text, absolute time in the tooltip. */
export function timeEl(value) {
  const date = toDate(value);
  if (!date) return el('span', { class: 'muted' }, '—');
  return el('time', { datetime: date.toISOString(), title: date.toLocaleString() }, relative(date));
}

/** "850 ms", "12.4 s", "3 m 05 s". */
export function duration(ms) {
  if (!Number.isFinite(ms) || ms < 0) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const m = Math.floor(ms / 60_000);
  const s = Math.round((ms % 60_000) / 1000);
  return `${m} m ${String(s).padStart(2, '0')} s`;
}

export const shortCommit = (commit) => (commit ? String(commit).slice(0, 8) : '');

export function commitEl(commit) {
  return commit ? el('code', { title: String(commit) }, shortCommit(commit)) : el('span', { class: 'muted' }, '—');
}

/** Keys whose values are secrets: shown masked until revealed. */
export const isSecretKey = (key) => /PASSWORD|SECRET|TOKEN|KEY|CREDENTIAL/i.test(String(key));

export function deploymentLink(id, text) {
  return el('a', { href: `#/deployments/${encodeURIComponent(id)}`, class: 'mono' }, text ?? String(id).slice(0, 12));
}

export function sandboxLink(name) {
  return el('a', { href: `#/sandboxes/${encodeURIComponent(name)}` }, String(name));
}
