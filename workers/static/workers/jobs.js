/* The Analysis page's live job progress: the viewer's transport (websocket /ws/jobs/<id>/, "live",
 * with the polling fallback /api/viewer/jobs/<id>/state/), for every unfinished job row. A poll runs
 * beside a live socket as a watchdog: a silent channel (the embedded in-process layer cannot carry
 * worker events) is noticed and replaced by polling. A job that ends reloads the page, which then
 * shows its counts, TPS and buttons as rendered by the server. A 403 or 404 from the state endpoint ends
 * the following of that job (its row says why) instead of asking again every few seconds.
 * window.pdl1Jobs exposes the path, the states seen and the jobs stopped, for tests. */
(function () {
  "use strict";
  var POLL_MS = 1500;
  var WATCHDOG_MS = 3000;
  var WS_CONNECT_TIMEOUT_MS = 4000;
  var FINAL = { done: true, failed: true, cancelled: true };
  var RANK = { queued: 0, running: 1, merging: 2, done: 3, failed: 3, cancelled: 3 };
  var LABEL = { queued: "Queued", running: "Running", merging: "Merging", done: "Done", failed: "Failed",
                cancelled: "Cancelled" };
  // Answers that asking again will not change: polling on would ask every few seconds for as long as the
  // page stays open. The job's row says why its progress stopped.
  var GONE = { 403: "this page may no longer follow the job (403); log in again or reload the page",
               404: "the job is no longer there (404); reload the page" };
  var previous = null;
  try { previous = JSON.parse(sessionStorage.getItem("pdl1Jobs") || "null"); sessionStorage.removeItem("pdl1Jobs"); }
  catch (e) { /* storage off */ }
  var debug = (window.pdl1Jobs = { path: null, reason: "", states: [], tracked: 0, stopped: [], previous: previous });
  var badge = document.getElementById("jobs-progress-path");

  function setPath(path, reason) {
    if (debug.path === "polling" && path === "live") { return; } // one job fell back: the page polls
    debug.path = path;
    debug.reason = reason || "";
    if (badge) {
      badge.textContent = path + (reason ? " · " + reason : "");
      badge.className = "path-badge " + path;
    }
  }

  // Roots from base.html (reverse()d, so under the host's prefix when the module is mounted in one).
  var API = document.body.dataset.apiRoot;
  var WS = document.body.dataset.wsRoot;
  function stateUrl(job) { return API + "viewer/jobs/" + job + "/state/"; }
  function wsUrl(job) {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + WS + "jobs/" + job + "/";
  }

  function rank(s) { return [RANK[s.status] || 0, s.batches_done || 0, s.tiles_done || 0]; }
  function ahead(a, b) { // a strictly further than b
    if (!b) { return true; }
    var ra = rank(a), rb = rank(b);
    for (var i = 0; i < ra.length; i++) { if (ra[i] !== rb[i]) { return ra[i] > rb[i]; } }
    return false;
  }

  function cell(row, name) { return row.querySelector("." + name); }

  function apply(t, state, via) {
    if (!state || t.final || t.stopped || !ahead(state, t.state)) { return false; }
    t.state = state;
    debug.states.push([state.job, state.status, state.tiles_done, state.tiles_total, via]);
    cell(t.row, "job-status").textContent = (LABEL[state.status] || state.status) +
      (state.error ? ": " + state.error : "");
    cell(t.row, "job-tiles").textContent = (state.tiles_done || 0) + " / " + (state.tiles_total || 0);
    var bar = cell(t.row, "job-bar");
    if (bar) {
      bar.max = Math.max(state.tiles_total || 0, 1);
      bar.value = state.status === "done" ? bar.max : (state.tiles_done || 0);
    }
    t.row.setAttribute("data-status", state.status);
    if (FINAL[state.status]) {
      t.final = true;
      clearTimeout(t.timer);
      if (t.ws) { try { t.ws.close(); } catch (e) { /* closed */ } }
      // What this page saw, for the reloaded page's tests (window.pdl1Jobs.previous).
      try { sessionStorage.setItem("pdl1Jobs", JSON.stringify({ path: debug.path, reason: debug.reason,
                                                                states: debug.states })); } catch (e) { /* storage off */ }
      setTimeout(function () { location.reload(); }, 300);
    }
    return true;
  }

  /** No more polling (nor socket) for this job: the server said it will not answer (GONE). */
  function stop(t, status) {
    t.stopped = true;
    clearTimeout(t.timer);
    if (t.ws) { var ws = t.ws; t.ws = null; try { ws.close(); } catch (e) { /* closed */ } }
    debug.stopped.push([t.job, status]);
    var note = document.createElement("span");
    note.className = "flag job-progress-stopped";
    note.textContent = "Progress not followed: " + GONE[status];
    var where = cell(t.row, "job-status");
    where.appendChild(document.createTextNode(" · "));
    where.appendChild(note);
    t.row.setAttribute("data-progress", "stopped");
    if (badge && debug.stopped.length === debug.tracked) {
      badge.textContent = "stopped · " + GONE[status];
      badge.className = "path-badge";
    }
  }

  function poll(t, every) {
    fetch(stateUrl(t.job), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (res) {
        if (GONE[res.status]) { stop(t, res.status); return null; }
        return res.ok ? res.json() : null;
      })
      .then(function (state) {
        var moved = apply(t, state, "poll");
        if (moved && debug.path === "live" && t.ws && t.state.status !== "queued") {
          // The server moved on and the socket had not said so: give it a watchdog round (a worker's event
          // reaches the socket after its commit, through Redis; on a busy machine that took over 1.5 s),
          // then poll. The socket counts as having said so when its latest state is as far as the poll's,
          // even though that state was no news then (the poll had shown it first).
          var seen = t.state;
          setTimeout(function () {
            if (!t.final && t.ws && ahead(seen, t.wsLast)) { fallBack(t, "live channel silent"); }
          }, WATCHDOG_MS);
        }
      })
      .catch(function () { /* the next round tries again */ })
      .then(function () {
        if (!t.final && !t.stopped) { t.timer = setTimeout(function () { poll(t, every); }, t.ws ? WATCHDOG_MS : every); }
      });
  }

  function fallBack(t, reason) {
    if (t.final || t.stopped) { return; }
    if (t.ws) { var ws = t.ws; t.ws = null; try { ws.close(); } catch (e) { /* closed */ } }
    setPath("polling", reason);
    clearTimeout(t.timer);
    poll(t, POLL_MS);
  }

  function track(row) {
    var t = { job: Number(row.getAttribute("data-job")), row: row, ws: null, timer: null, final: false, stopped: false,
              state: null, wsLast: null };
    debug.tracked += 1;
    if (!("WebSocket" in window)) { fallBack(t, "no websocket support"); return; }
    var ws, opened = false;
    try { ws = new WebSocket(wsUrl(t.job)); } catch (e) { fallBack(t, "websocket failed"); return; }
    t.ws = ws;
    var connectTimer = setTimeout(function () { if (!opened) { fallBack(t, "websocket timeout"); } },
                                  WS_CONNECT_TIMEOUT_MS);
    ws.onopen = function () {
      opened = true;
      clearTimeout(connectTimer);
      if (t.ws !== ws) { return; }
      setPath("live");
      poll(t, POLL_MS); // the state as of now, then the watchdog's slower rounds
    };
    ws.onmessage = function (ev) {
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (msg && (!msg.type || msg.type === "progress") && msg.state) {
        if (ahead(msg.state, t.wsLast)) { t.wsLast = msg.state; }
        apply(t, msg.state, "ws");
      }
    };
    ws.onclose = function (ev) {
      clearTimeout(connectTimer);
      if (t.ws === ws && !t.final) { fallBack(t, opened ? "websocket closed (" + ev.code + ")" : "websocket refused"); }
    };
  }

  var rows = document.querySelectorAll("tr[data-job][data-final='0']");
  for (var i = 0; i < rows.length; i++) { track(rows[i]); }
})();
