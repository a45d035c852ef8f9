/* Live progress of a running analysis: the websocket ("live") with a polling fallback and a
 * watchdog that notices a silent live channel; the Start analysis form. */

import { describeDetail, fetchJSON } from "../common/api.js";
import { requestDraw } from "./draw.js";
import { resetDetections } from "./queries.js";
import { clearScores } from "./scores.js";
import { $, S, api, debug, cfg, setText } from "./state.js";

const POLL_MS = 1500;
const WATCHDOG_MS = 3000;
const WATCHDOG_GRACE_MS = 1500;
const WS_CONNECT_TIMEOUT_MS = 4000;
const FINAL = { done: true, failed: true, cancelled: true };
const STATUS_RANK = { queued: 0, running: 1, merging: 2, done: 3, failed: 3, cancelled: 3 };


function stateKey(s) {
  return [s.status, s.tiles_done, s.tiles_total, s.batches_done, s.batches_total].join("/");
}

function stateRank(s) {
  return [STATUS_RANK[s.status] || 0, s.batches_done || 0, s.tiles_done || 0];
}

function newer(a, b) { // a at least as far as b
  if (!b) { return true; }
  var ra = stateRank(a), rb = stateRank(b);
  for (var i = 0; i < ra.length; i++) {
    if (ra[i] !== rb[i]) { return ra[i] > rb[i]; }
  }
  return true;
}

function setPath(path, reason) {
  if (!S.progress) { return; }
  S.progress.path = path;
  debug.progressPath = path;
  debug.progressPathReason = reason || "";
  var badge = $("progress-path");
  badge.textContent = path + (reason ? " · " + reason : "");
  badge.className = "path-badge " + path;
  badge.title = path === "live"
    ? "Progress is pushed over a websocket"
    : "Progress is read from the server every " + POLL_MS / 1000 + " s" + (reason ? " (" + reason + ")" : "");
}

export function trackJob(jobId) {
  stopTracking();
  S.progress = { job: jobId, path: null, ws: null, pollTimer: null, watchdog: null, state: null,
               wsKeys: {}, suspect: null, final: false, pollFailures: 0 };
  $("progress").hidden = false;
  $("start-job").hidden = true;
  setText("job-error", "");
  $("job-error").hidden = true;
  setText("progress-status", "Job " + jobId + ": waiting for progress…");
  $("progress-path").textContent = "connecting…";
  S.live = { xs: [], ys: [], labels: [] };
  openSocket(S.progress);
}

function stopTracking() {
  if (!S.progress) { return; }
  S.progress.final = true;
  clearTimeout(S.progress.pollTimer);
  clearInterval(S.progress.watchdog);
  if (S.progress.ws) { try { S.progress.ws.close(); } catch (e) { /* closed */ } }
}

function openSocket(pr) {
  if (!("WebSocket" in window)) { startPolling(pr, "no websocket support"); return; }
  var ws;
  try {
    ws = new WebSocket(api.ws(pr.job));
  } catch (err) {
    startPolling(pr, "websocket failed");
    return;
  }
  pr.ws = ws;
  var opened = false;
  var connectTimer = setTimeout(function () {
    if (!opened) { pr.ws = null; try { ws.close(); } catch (e) { /* closed */ } startPolling(pr, "websocket timeout"); }
  }, WS_CONNECT_TIMEOUT_MS);
  ws.onopen = function () {
    opened = true;
    clearTimeout(connectTimer);
    if (pr !== S.progress || pr.final) { ws.close(); return; }
    setPath("live");
    // Watchdog: a live channel that stays silent while the job moves (e.g. the embedded
    // in-process channel layer, which workers in other processes cannot reach) is detected
    // and replaced by polling; progress never stalls unnoticed.
    pr.watchdog = setInterval(function () { watchdog(pr); }, WATCHDOG_MS);
    pollOnce(pr); // the state as of now, whether or not the consumer sends it on connect
  };
  ws.onmessage = function (ev) {
    if (pr !== S.progress) { return; }
    var msg;
    try { msg = JSON.parse(ev.data); } catch (e) { return; }
    if (!msg || (msg.type && msg.type !== "progress") || !msg.state) { return; }
    pr.wsKeys[stateKey(msg.state)] = true;
    if (msg.points) { addLivePoints(msg.points); }
    applyState(pr, msg.state, msg.eta_s, "ws");
  };
  ws.onclose = function (ev) {
    clearTimeout(connectTimer);
    if (pr !== S.progress || pr.final || pr.ws !== ws) { return; }
    pr.ws = null;
    clearInterval(pr.watchdog);
    startPolling(pr, opened ? "websocket closed (" + ev.code + ")" : "websocket refused");
  };
}

function watchdog(pr) {
  if (pr !== S.progress || pr.final || pr.path !== "live") { clearInterval(pr.watchdog); return; }
  fetchJSON(api.state(pr.job)).then(function (res) {
    if (pr !== S.progress || pr.final || pr.path !== "live" || !res.ok) { return; }
    var key = stateKey(res.data);
    if (pr.wsKeys[key] || !pr.state || !newer(res.data, pr.state) || stateKey(pr.state) === key) { return; }
    // The server is ahead of what the websocket said. A working channel delivers that state
    // within moments; if it has not after a grace period, the channel is silent.
    setTimeout(function () {
      if (pr !== S.progress || pr.final || pr.path !== "live" || pr.wsKeys[key]) { return; }
      if (pr.state && newer(pr.state, res.data) && stateKey(pr.state) !== key) { return; } // moved on via ws
      clearInterval(pr.watchdog);
      var ws = pr.ws;
      pr.ws = null;
      if (ws) { try { ws.close(); } catch (e) { /* closed */ } }
      startPolling(pr, "live channel silent");
    }, WATCHDOG_GRACE_MS);
  }).catch(function () { /* the next tick tries again */ });
}

function startPolling(pr, reason) {
  if (pr !== S.progress || pr.final) { return; }
  setPath("polling", reason);
  pollOnce(pr, true);
}

function pollOnce(pr, repeat) {
  fetchJSON(api.state(pr.job)).then(function (res) {
    if (pr !== S.progress) { return; }
    if (!res.ok) {
      pr.pollFailures += 1;
      if (repeat) { setPath("polling", "error: " + describeDetail(res.data, res.status)); }
      if (res.status === 403 || res.status === 404) { return; } // no retry: shown
    } else {
      pr.pollFailures = 0;
      if (repeat && S.progress.path === "polling" && /^error/.test(debug.progressPathReason)) { setPath("polling"); }
      applyState(pr, res.data, res.data.eta_s, "poll");
    }
    if (repeat && !pr.final) {
      pr.pollTimer = setTimeout(function () { pollOnce(pr, true); }, POLL_MS * Math.min(6, 1 + pr.pollFailures));
    }
  }).catch(function (err) {
    pr.pollFailures += 1;
    if (repeat) {
      setPath("polling", "error: " + err);
      if (!pr.final) {
        pr.pollTimer = setTimeout(function () { pollOnce(pr, true); }, POLL_MS * Math.min(6, 1 + pr.pollFailures));
      }
    }
  });
}

function addLivePoints(points) {
  var xy = points.xy || [];
  var labels = points.labels || [];
  for (var i = 0; i < xy.length; i++) {
    S.live.xs.push(xy[i][0]);
    S.live.ys.push(xy[i][1]);
    S.live.labels.push(labels[i]);
  }
  requestDraw();
}

function applyState(pr, state, eta, via) {
  if (pr !== S.progress || !state) { return; }
  if (pr.state && !newer(state, pr.state)) { return; } // an older state arriving late
  if (pr.state && stateKey(pr.state) === stateKey(state)) { return; }
  pr.state = state;
  debug.stateHistory.push([state.status, state.tiles_done, state.tiles_total, via]);
  debug.lastState = state;
  debug.progressEvents += 1;
  var total = state.tiles_total || 0;
  var done = state.tiles_done || 0;
  var frac;
  if (state.status === "done") {
    frac = 1;
  } else if (total) {
    frac = done / total;
    if (state.status === "merging") { frac = Math.max(frac, 0.99); }
  } else {
    frac = 0;
  }
  var bar = $("progress-bar");
  bar.style.width = (100 * frac).toFixed(1) + "%";
  bar.className = "progress-bar " + state.status;
  $("progress").setAttribute("data-status", state.status);
  setText("progress-status", "Job " + state.job + ": " + state.status);
  setText("progress-text", total ? done + " / " + total + " tiles" +
    (state.batches_total ? " · " + (state.batches_done || 0) + " / " + state.batches_total + " batches" : "") : "");
  setText("progress-eta", eta !== undefined && eta !== null && !FINAL[state.status]
    ? "· about " + formatDuration(eta) + " left" : "");
  if (FINAL[state.status]) { finish(pr, state); }
}

function formatDuration(s) {
  s = Math.max(0, Math.round(s));
  return s < 90 ? s + " s" : Math.round(s / 60) + " min";
}

function finish(pr, state) {
  pr.final = true;
  clearTimeout(pr.pollTimer);
  clearInterval(pr.watchdog);
  if (pr.ws) { try { pr.ws.close(); } catch (e) { /* closed */ } pr.ws = null; }
  $("start-job").hidden = false;
  if (state.status === "done") {
    setText("job-line", "Job " + state.job + " · done");
    // The job's summary is uncorrected and slide-wide; the scores come from its corrections (carried ones
    // included) and the slide's regions, which resetDetections loads.
    clearScores("Loading the corrected scores…");
    resetDetections(state.job);
  } else {
    var err = $("job-error");
    err.hidden = false;
    err.textContent = "Job " + state.job + " " + state.status + (state.error ? ": " + state.error : ".");
  }
}

export function bindStartJob() {
  $("start-job").addEventListener("submit", function (e) {
    e.preventDefault();
    var button = $("start-job-button");
    button.disabled = true;
    fetchJSON(api.startJob, { body: { slide: cfg.slide, detector: $("detector").value } }).then(function (res) {
      if (res.status !== 201) {
        var err = $("job-error");
        err.hidden = false;
        err.textContent = "The analysis could not be started: " + describeDetail(res.data, res.status);
        return;
      }
      trackJob(res.data.id);
    }).catch(function (err) {
      $("job-error").hidden = false;
      setText("job-error", "The analysis could not be started: " + err);
    }).then(function () { button.disabled = false; });
  });
}
