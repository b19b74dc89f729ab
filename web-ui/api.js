// Fetch wrapper for the xaso JSON API (same origin, cookie session).

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;        // HTTP status, 0 for a network failure
    this.code = code;            // e.g. "permission_denied"
    this.retryAfter = retryAfter; // seconds, from Retry-After (429)
  }
}

let unauthenticatedHandler = null;

/** Called when a request (other than login) answers 401: the session is gone. */
export function onUnauthenticated(fn) {
  unauthenticatedHandler = fn;
}

export async function request(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'network', e.message);
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = (data && data.error) || {};
    const retry = res.headers.get('Retry-After');
    const error = new ApiError(
      res.status,
      err.code || `http_${res.status}`,
      err.message || text || res.statusText,
      retry ? Number(retry) : null,
    );
    const sessionCall = path === '/api/login' || path.startsWith('/api/me');
    if (res.status === 401 && !sessionCall && unauthenticatedHandler) {
      unauthenticatedHandler(error);
    }
    throw error;
  }
  return data;
}

export const api = {
  get: (path) => request('GET', path),
  post: (path, body = {}) => request('POST', path, body),
  put: (path, body) => request('PUT', path, body),
  patch: (path, body) => request('PATCH', path, body),
  del: (path) => request('DELETE', path),
};
