/* The site's API client, shared by the viewer and the annotation pages (ES module).
 *
 * Roots come from base.html (reverse()d, so they follow the host's prefix when the module is
 * mounted in a host project). Writes carry Django's CSRF token: from the csrftoken cookie, else
 * from a form's csrfmiddlewaretoken input (pages that render {% csrf_token %}).
 */

export const API_ROOT = document.body.dataset.apiRoot;
export const WS_ROOT = document.body.dataset.wsRoot;

export function csrfToken() {
  const parts = document.cookie ? document.cookie.split("; ") : [];
  for (const part of parts) {
    const eq = part.indexOf("=");
    if (part.slice(0, eq) === "csrftoken") { return decodeURIComponent(part.slice(eq + 1)); }
  }
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

/** A websocket URL under the site's websocket root, e.g. wsUrl("jobs/7/"). */
export function wsUrl(path) {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + WS_ROOT + path;
}

/**
 * fetch() with the session cookie, Accept: JSON and, for writes, the CSRF token.
 * `body`: a string (sent as JSON) or a FormData (sent as is). Returns the Response.
 */
export function apiFetch(url, { method, body, keepalive, signal } = {}) {
  const headers = { Accept: "application/json" };
  const init = { credentials: "same-origin", headers, signal, keepalive: !!keepalive };
  if (body !== undefined || (method && method !== "GET")) {
    init.method = method || "POST";
    headers["X-CSRFToken"] = csrfToken();
    if (typeof body === "string") { headers["Content-Type"] = "application/json"; }
    init.body = body;
  }
  return fetch(url, init);
}

/**
 * JSON in, JSON out: resolves to {ok, status, data} (data: the parsed body, or {detail: text}
 * when the body is not JSON). `options.body` is serialised; `options.method` defaults to POST
 * when there is a body.
 */
export function fetchJSON(url, options = {}) {
  const body = options.body === undefined ? undefined : JSON.stringify(options.body);
  return apiFetch(url, { method: options.method, body, signal: options.signal }).then((response) =>
    response.text().then((text) => {
      let data = null;
      try { data = text ? JSON.parse(text) : null; } catch (e) { data = { detail: text.slice(0, 200) }; }
      return { ok: response.ok, status: response.status, data };
    }));
}

/** One line from an error answer: DRF's detail, else every field's messages. */
export function describeDetail(data, status) {
  if (data && typeof data.detail === "string") { return data.detail; }
  if (data && typeof data === "object") {
    const parts = Object.keys(data).map((k) => k + ": " + [].concat(data[k]).join(" "));
    if (parts.length) { return parts.join("; "); }
  }
  return "request failed (HTTP " + status + ")";
}
