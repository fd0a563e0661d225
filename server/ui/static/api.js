// The JSON API, with the operator's token. The token lives in this tab's
// sessionStorage (gone when the tab closes) and travels only in the
// Authorization header: never a cookie, never a URL.

const TOKEN_KEY = "rota.token";

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
  session.me = null;
}

// What the page learned about the server and the token (app.js fills it).
export const session = { auth: true, me: null };

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === null || v === undefined || v === "") continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else q.append(k, v);
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

// Segments of a path: ids are plain, but a name from a job is not.
export function seg(value) {
  return encodeURIComponent(String(value));
}

// api("GET", "/api/runs", {query: {...}}) -> the decoded answer (null for 204).
// `raw: true` answers the Response itself (to read headers).
export async function api(method, path, opts = {}) {
  const headers = { Accept: "application/json" };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  let body;
  if (opts.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(opts.body);
  }
  let resp;
  try {
    resp = await fetch(path + query(opts.query), { method, headers, body, cache: "no-store", credentials: "omit" });
  } catch (err) {
    throw new ApiError(0, "network", `the server did not answer (${err.message})`);
  }
  if (resp.status === 401 && t) window.dispatchEvent(new CustomEvent("rota:unauthenticated"));
  if (!resp.ok) {
    let detail = { code: "http_error", message: `${resp.status} ${resp.statusText}`, details: null };
    try {
      const parsed = await resp.json();
      if (parsed && parsed.error) detail = parsed.error;
    } catch (_) { /* not JSON */ }
    throw new ApiError(resp.status, detail.code, detail.message, detail.details);
  }
  if (opts.raw) return resp;
  if (resp.status === 204) return null;
  return resp.json();
}

// Whether the token may do what a route of `scope` needs (submit, admin, ...).
export function can(scope) {
  if (!session.auth) return true;
  return Boolean(session.me && session.me.scopes.includes(scope));
}
