// The REST client: same-origin cookie session, JSON both ways, and the
// API's error shape {"error": {"code", "message"}} turned into ApiError.

export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfter = null;
  }
}

let onUnauthorized = () => {};

/** Called with the ApiError when a request answers 401 (not login's). */
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

export async function request(method, path, body) {
  return (await exchange(method, path, body)).data;
}

// The answer's JSON and its headers; an error answer throws ApiError.
async function exchange(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'network', 'Cannot reach the control plane. Check that it runs and try again.');
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const shaped = data && typeof data === 'object' && data.error && typeof data.error === 'object';
    const err = new ApiError(
      response.status,
      shaped ? String(data.error.code ?? '') : `http_${response.status}`,
      shaped && data.error.message
        ? String(data.error.message)
        : `${response.status} ${response.statusText || 'error'}`,
      shaped ? data.error : {},
    );
    const retry = response.headers.get('retry-after');
    if (retry) err.retryAfter = retry;
    if (response.status === 401 && path !== '/api/login') onUnauthorized(err);
    throw err;
  }
  return { data, headers: response.headers };
}

export const get = (path) => request('GET', path);
export const post = (path, body) => request('POST', path, body ?? {});
export const put = (path, body) => request('PUT', path, body);
export const patch = (path, body) => request('PATCH', path, body);
export const del = (path) => request('DELETE', path);

/**
 * One page of a paged list (docs/ARCHITECTURE.md, "Paging"): its items and
 * the next page's cursor from X-Next-Cursor (null on the last page).
 */
export async function getPage(path) {
  const { data, headers } = await exchange('GET', path);
  return { items: data ?? [], next: headers.get('x-next-cursor') };
}

/** `path` with `cursor` set (and any earlier one replaced). */
function withCursor(path, cursor) {
  const [base, search = ''] = path.split('?');
  const params = new URLSearchParams(search);
  params.set('cursor', cursor);
  return `${base}?${params}`;
}

/**
 * Up to `cap` items of a paged list, following its cursors; `more` is true
 * when the list goes on past them.
 */
export async function getAll(path, cap) {
  let items = [];
  let page = await getPage(path);
  for (;;) {
    items = items.concat(page.items);
    if (items.length >= cap) return { items: items.slice(0, cap), more: items.length > cap || !!page.next };
    if (!page.next || page.items.length === 0) return { items, more: false };
    page = await getPage(withCursor(path, page.next));
  }
}

/** A path segment, escaped (names are validated server-side, but still). */
export const seg = (value) => encodeURIComponent(String(value));

/** A query string from an object, skipping empty values ("" if none). */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

/** True when the server has no such API path yet (an older control plane). */
export function isMissingApi(err) {
  return err instanceof ApiError && err.status === 404 && /API path/i.test(err.message);
}
