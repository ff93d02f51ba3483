// Every request the UI makes goes through here: the datacenter (?dc=), the token
// (X-Consul-Token, from localStorage only), errors with the agent's own message, and
// blocking queries (?index=&wait=) for live updates.

const TOKEN_KEY = "gitkv-ui:token";
const WAIT = "60s";
const listeners = new Set();
let currentDc = "";
let connection = { ok: true, retryIn: 0 };
let defaultPolicy = "";

export class APIError extends Error {
  constructor(status, message, path) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.path = path;
  }
}

export function setDc(dc) { currentDc = dc || ""; }
export function dc() { return currentDc; }

export function token() {
  try { return localStorage.getItem(TOKEN_KEY) || ""; } catch { return ""; }
}
export function setToken(value) {
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
}

// The agent's ACL default policy, as it sends it on every answer ("allow" with ACLs off).
export function aclDefaultPolicy() { return defaultPolicy; }

// Subscribe to connection changes: fn({ok, retryIn}).
export function onConnection(fn) { listeners.add(fn); fn(connection); return () => listeners.delete(fn); }
function setConnection(ok, retryIn = 0) {
  if (connection.ok === ok && connection.retryIn === retryIn) return;
  connection = { ok, retryIn };
  for (const fn of listeners) fn(connection);
}

// "/v1/kv/" + segments, each segment encoded on its own: names are data, not URL syntax.
export function encodePath(name) {
  return String(name).split("/").map(encodeURIComponent).join("/");
}

export function url(path, params = {}) {
  const q = new URLSearchParams();
  if (currentDc && !path.startsWith("/v1/agent/")) q.set("dc", currentDc);
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === false) continue;
    q.set(k, v === true ? "" : String(v));
  }
  // Flags such as ?keys and ?recurse are sent bare, as Consul's own clients do.
  const qs = q.toString().replace(/=(&|$)/g, "$1");
  return qs ? `${path}?${qs}` : path;
}

async function send(method, path, { params, body, signal } = {}) {
  const headers = {};
  const t = token();
  if (t) headers["X-Consul-Token"] = t;
  let payload = body;
  if (body !== undefined && typeof body !== "string" && !(body instanceof Uint8Array)) {
    payload = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  let resp;
  try {
    resp = await fetch(url(path, params), { method, headers, body: payload, signal, cache: "no-store" });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    setConnection(false);
    throw new APIError(0, "The agent cannot be reached", path);
  }
  setConnection(true);
  const policy = resp.headers.get("X-Consul-Default-ACL-Policy");
  if (policy) defaultPolicy = policy;
  return resp;
}

async function failure(resp, path) {
  let text = "";
  try { text = (await resp.text()).trim(); } catch { /* the body is optional */ }
  return new APIError(resp.status, text || resp.statusText, path);
}

// One request; JSON answers decoded, 404 -> null when `missingOk`.
export async function request(method, path, opts = {}) {
  const resp = await send(method, path, opts);
  if (resp.status === 404 && opts.missingOk) return null;
  if (!resp.ok) throw await failure(resp, path);
  const type = resp.headers.get("Content-Type") || "";
  if (type.includes("json")) return resp.json();
  return resp.text();
}
export const get = (path, opts) => request("GET", path, opts);
export const put = (path, body, opts = {}) => request("PUT", path, { ...opts, body });
export const post = (path, body, opts = {}) => request("POST", path, { ...opts, body });
export const del = (path, opts) => request("DELETE", path, opts);

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal?.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
});

// A live view of one endpoint through blocking queries: onData(body or null, index,
// filtered: the token's ACLs hid some results) is
// called now and whenever the endpoint's X-Consul-Index moves. Network failures back off
// (1 s, 2 s, 4 s ... 15 s) and show the "disconnected, retrying" state; an HTTP error goes to
// onError and is retried with a backoff too. Returns stop().
export function watch(path, params, onData, onError, { missingOk = true } = {}) {
  const ctl = new AbortController();
  const { signal } = ctl;
  (async () => {
    let index = 0;
    let failures = 0;
    let errors = 0;
    while (!signal.aborted) {
      const started = Date.now();
      let resp;
      try {
        resp = await send("GET", path, { params: { ...params, index: index || undefined, wait: index ? WAIT : undefined }, signal });
      } catch (err) {
        if (signal.aborted) return;
        failures += 1;
        const delay = Math.min(15000, 1000 * 2 ** (failures - 1));
        setConnection(false, Math.round(delay / 1000));
        await sleep(delay, signal);
        continue;
      }
      failures = 0;
      const next = Number(resp.headers.get("X-Consul-Index") || 0);
      try {
        if (resp.ok || (resp.status === 404 && missingOk)) {
          errors = 0;
          const body = resp.status === 404 ? null : await resp.json();
          if (signal.aborted) return;
          const filtered = resp.headers.get("X-Consul-Results-Filtered-By-ACLs") === "true";
          if (!index || next !== index) onData(body, next, filtered);
        } else {
          const err = await failure(resp, path);
          if (signal.aborted) return;
          onError?.(err);
          // An error answer (a 403, an agent shutting down) is retried too, backing off
          // from 2 s to 30 s: a permission or a restart may change.
          errors += 1;
          await sleep(Math.min(30000, 2000 * 2 ** (errors - 1)), signal);
          index = 0;
          continue;
        }
      } catch (err) {
        if (signal.aborted || err.name === "AbortError") return;
        onError?.(err);
      }
      // An index that goes backwards (restore, new leader's view) starts over, as Consul
      // advises; an answer that came back at once with no change waits a little, so a
      // misbehaving endpoint is never hammered.
      const prev = index;
      index = next < index ? 0 : next;
      if (!next || (next === prev && Date.now() - started < 50)) await sleep(1000, signal);
    }
  })();
  return () => ctl.abort();
}

// Values in KV are base64 bytes; the UI edits them as UTF-8 text when they are text.
export function decodeValue(b64) {
  const bytes = Uint8Array.from(atob(b64 || ""), (c) => c.charCodeAt(0));
  try {
    return { text: new TextDecoder("utf-8", { fatal: true }).decode(bytes), bytes };
  } catch {
    return { text: null, bytes };
  }
}
export const encodeValue = (text) => new TextEncoder().encode(text);

// A 403 explained in words an operator can act on.
export function explain(err) {
  if (!(err instanceof APIError)) return String(err?.message || err);
  if (err.status === 403) {
    const who = token() ? "The token you are logged in with" : "No token is set, so the anonymous token";
    return `${who} may not do this (${err.message}). Log in with a token whose policy grants it.`;
  }
  if (err.status === 0) return "The agent cannot be reached; retrying.";
  return `${err.status}: ${err.message}`;
}

// What the token may do: POST /v1/internal/acl/authorize (as Consul's UI asks it), cached per
// token and datacenter. With ACLs off everything is allowed.
let aclOn = false;
const permCache = new Map();
export function setAclEnabled(on) { aclOn = on; permCache.clear(); }
export async function can(resource, access, segment = "") {
  if (!aclOn) return true;
  const key = `${token()}|${currentDc}|${resource}|${segment}|${access}`;
  if (!permCache.has(key)) {
    permCache.set(key, post("/v1/internal/acl/authorize", [{ Resource: resource, Segment: segment || undefined, Access: access }])
      .then((r) => Boolean(r?.[0]?.Allow))
      // 401: that datacenter runs without ACLs, so nothing is refused there.
      .catch((err) => err.status === 401));
  }
  return permCache.get(key);
}
