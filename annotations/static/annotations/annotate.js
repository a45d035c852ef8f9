/* Point annotation of one field (annotations/templates/annotations/session.html).
 *
 * OpenSeadragon on the pseudonymous DZI, zoomed to the field (drawn as a rectangle); points on
 * ONE canvas overlay, in platform coordinates (pixel i's centre at i, as the server stores them).
 * Click: place a point with the current label; drag a point: move it;
 * Delete or right-click: remove the nearest point; 1/2/...: label; Ctrl+Z / Ctrl+Y: undo/redo.
 * Autosave (debounced) through PUT /api/annotation/sessions/{id}/points/ with the version the
 * points are based on; a 409 whose saved set is not one this page sent (saved elsewhere since)
 * stops autosaving and offers a reload.
 * Per-click handling time (performance.now()) goes to window.pdl1Annotate.clickTimes.
 * ES module: the API client, OpenSeadragon set-up and canvas overlay are the shared ones (static/common).
 */
import { apiFetch } from "../common/api.js";
import { fieldOverlay } from "../common/field_overlay.js";
import { createViewer, fitImageRect } from "../common/osd.js";

var cfg = JSON.parse(document.getElementById("annotate-config").textContent);
var page = document.getElementById("annotate-page");
var $ = function (id) { return document.getElementById(id); };
var SAVE_DELAY_MS = 800;
// Browsers refuse a keepalive request whose body (with the others in flight) passes 64 KiB, about 1,470 points:
// fetch fails with a TypeError. Under this margin a save may ask to outlive the page.
var KEEPALIVE_MAX_BYTES = 60 * 1024;
var HIT_PX = 8;        // press within this many screen px of a point grabs it
var REMOVE_PX = 30;    // Delete / right-click removes the nearest point within this
var RADIUS_PX = 5;     // drawn point radius
var fx = cfg.field[0], fy = cfg.field[1], fw = cfg.field[2], fh = cfg.field[3];

var colours = {};
cfg.labels.forEach(function (l) { colours[l.name] = l.colour; });

var state = window.pdl1Annotate = {
  ready: false, points: [], version: null, label: cfg.labels[0].name, editable: cfg.editable,
  status: cfg.status, counts: {}, undoStack: [], redoStack: [], dirty: false, saving: false,
  saves: 0, saveTimes: [], conflict: null, error: null, clickTimes: [], clickLatencies: [], saveState: "loading",
  viewer: null, tilesLoaded: 0,
};

// --- counts ----------------------------------------------------------------------------------

function recount() {
  var c = {};
  cfg.labels.forEach(function (l) { c[l.name] = 0; });
  for (var i = 0; i < state.points.length; i++) { c[state.points[i].label] = (c[state.points[i].label] || 0) + 1; }
  state.counts = c;
  showCounts();
}

function bump(label, delta) {
  state.counts[label] = (state.counts[label] || 0) + delta;
  showCounts();
}

function showCounts() {
  var total = 0;
  document.querySelectorAll("[data-count]").forEach(function (el) {
    var n = state.counts[el.getAttribute("data-count")] || 0;
    el.textContent = n;
  });
  for (var k in state.counts) { total += state.counts[k]; }
  $("count-total").textContent = total;
}

function setLabel(name) {
  if (!(name in colours)) { return; }
  state.label = name;
  document.querySelectorAll(".label-btn").forEach(function (b) {
    b.classList.toggle("active", b.getAttribute("data-label") === name);
    b.setAttribute("aria-checked", b.getAttribute("data-label") === name ? "true" : "false");
  });
}

// --- viewer and overlay ----------------------------------------------------------------------

var viewer, fo, ctx;  // fo: the shared canvas overlay (field_overlay.js)

function updateTransform() { fo.update(); }
function toScreen(x, y) { return fo.toScreen(x, y); }
function toImage(px, py) { return fo.toImage(px, py); }
function requestDraw() { fo.request(); }

function drawPoint(p) {
  var s = toScreen(p.x, p.y);
  ctx.beginPath();
  ctx.arc(s.x, s.y, RADIUS_PX, 0, 2 * Math.PI);
  ctx.fillStyle = colours[p.label] || "#888888";
  ctx.fill();
  ctx.lineWidth = 1;
  ctx.strokeStyle = "#000000";
  ctx.stroke();
}

function drawAll() {  // called by fo.paint() with the transform updated and the canvas cleared
  ctx.lineWidth = 2;
  ctx.setLineDash([6, 4]);
  ctx.strokeStyle = "#00e5ff";
  fo.regionPath(ctx, cfg.field);
  ctx.stroke();
  ctx.setLineDash([]);
  for (var i = 0; i < state.points.length; i++) { drawPoint(state.points[i]); }
}

function nearest(px, py, maxPx) {
  var best = -1, bestD = maxPx * maxPx;
  for (var i = 0; i < state.points.length; i++) {
    var s = toScreen(state.points[i].x, state.points[i].y), dx = s.x - px, dy = s.y - py, d = dx * dx + dy * dy;
    if (d <= bestD) { bestD = d; best = i; }
  }
  return best;
}

// Platform coordinates throughout (pixel i's centre at i; field_overlay.js converts at its boundary): the field
// holds pixels fx..fx+fw-1, whose outer edges lie at fx - 0.5 and fx + fw - 0.5, as services.check_points has it.
function inField(x, y) { return x >= fx - 0.5 && x < fx + fw - 0.5 && y >= fy - 0.5 && y < fy + fh - 0.5; }

function clampToField(p) {
  return { x: Math.min(Math.max(p.x, fx - 0.5), fx + fw - 0.51), y: Math.min(Math.max(p.y, fy - 0.5), fy + fh - 0.51) };
}

function round1(v) { return Math.round(v * 10) / 10; }

// --- edits (all undoable) ------------------------------------------------------------------------

function apply(op, reverse) {
  var kind = op.kind;
  if (reverse) { kind = kind === "add" ? "remove" : kind === "remove" ? "add" : "move"; }
  if (kind === "add") {
    state.points.splice(Math.min(op.index, state.points.length), 0, op.point);
    bump(op.point.label, 1);
  } else if (kind === "remove") {
    var i = state.points.indexOf(op.point);
    if (i >= 0) { state.points.splice(i, 1); bump(op.point.label, -1); }
  } else {
    var to = reverse ? op.from : op.to;
    op.point.x = to.x; op.point.y = to.y;
  }
}

function record(op) {
  state.undoStack.push(op);
  state.redoStack.length = 0;
  changed();
}

function undo() {
  if (!state.editable || !state.undoStack.length) { return; }
  var op = state.undoStack.pop();
  apply(op, true);
  state.redoStack.push(op);
  requestDraw();
  changed();
}

function redo() {
  if (!state.editable || !state.redoStack.length) { return; }
  var op = state.redoStack.pop();
  apply(op, false);
  state.undoStack.push(op);
  requestDraw();
  changed();
}

// A point closer than cfg.min_point_px (level-0 px) to another is the same nucleus twice: the server refuses
// the whole set, so it is not placed (zoomed in, a second click can miss the first point's marker) nor
// dragged there. `moving`: the point being dragged, not compared with itself.
function tooClose(x, y, moving) {
  var lim2 = cfg.min_point_px * cfg.min_point_px;
  for (var i = 0; i < state.points.length; i++) {
    if (state.points[i] === moving) { continue; }
    var dx = state.points[i].x - x, dy = state.points[i].y - y;
    if (dx * dx + dy * dy < lim2) { return true; }
  }
  return false;
}

function tooCloseText() { return "A point is already within " + cfg.min_point_words + ": one point per nucleus."; }

function addAt(px, py) {
  var im = toImage(px, py);
  if (!inField(im.x, im.y)) { flash("Outside the field: points go inside the dashed rectangle."); return; }
  if (tooClose(round1(im.x), round1(im.y))) { flash(tooCloseText()); return; }
  var op = { kind: "add", point: { x: round1(im.x), y: round1(im.y), label: state.label }, index: state.points.length };
  apply(op, false);
  drawPoint(op.point);  // incremental: the full redraw happens only when the view changes
  record(op);
}

function removeNear(px, py) {
  var i = nearest(px, py, REMOVE_PX);
  if (i < 0) { return false; }
  var op = { kind: "remove", point: state.points[i], index: i };
  apply(op, false);
  requestDraw();
  record(op);
  return true;
}

// --- mouse and keys -------------------------------------------------------------------------------

var drag = null, lastMouse = null;

function onPress(e) {
  if (!state.editable) { return; }
  updateTransform();
  var i = nearest(e.position.x, e.position.y, HIT_PX);
  drag = i < 0 ? null : { point: state.points[i], from: { x: state.points[i].x, y: state.points[i].y }, moved: false };
}

// Dragged onto another point, the set would be refused by the server, this save and every later one until the
// pair was found: the point stops where it was last allowed (as a click there places none) and the page says why.
function onDrag(e) {
  if (!drag) { return; }
  e.preventDefaultAction = true;  // move the point, not the slide
  var im = clampToField(toImage(e.position.x, e.position.y)), x = round1(im.x), y = round1(im.y);
  if (tooClose(x, y, drag.point)) { drag.refused = true; flash(tooCloseText()); return; }
  drag.point.x = x; drag.point.y = y;
  drag.moved = true;
  requestDraw();
}

function onRelease() {
  if (drag && drag.moved) {
    record({ kind: "move", point: drag.point, from: drag.from, to: { x: drag.point.x, y: drag.point.y } });
    if (drag.refused) { flash(tooCloseText()); }  // record() showed "Unsaved changes" over it
  }
}

function onClick(e) {
  var t0 = performance.now();
  var d = drag;
  drag = null;
  if (!state.editable || !e.quick || (d && d.moved)) { return; }
  e.preventDefaultAction = true;
  if (d) { return; }  // a click on an existing point does not stack another one on it
  addAt(e.position.x, e.position.y);
  var t1 = performance.now();
  state.clickTimes.push(t1 - t0);
  // From the browser's pointer event to the point drawn (includes OpenSeadragon's gesture handling).
  if (e.originalEvent && e.originalEvent.timeStamp) { state.clickLatencies.push(t1 - e.originalEvent.timeStamp); }
}

function onNonPrimary(e) {
  if (!state.editable || e.button !== 2) { return; }
  updateTransform();
  removeNear(e.position.x, e.position.y);
}

function onKey(e) {
  var tag = (e.target && e.target.tagName) || "";
  if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") { return; }
  var key = e.key;
  if ((e.ctrlKey || e.metaKey) && (key === "z" || key === "Z")) {
    e.preventDefault(); e.stopPropagation();
    if (e.shiftKey) { redo(); } else { undo(); }
  } else if ((e.ctrlKey || e.metaKey) && (key === "y" || key === "Y")) {
    e.preventDefault(); e.stopPropagation();
    redo();
  } else if (!e.ctrlKey && !e.metaKey && !e.altKey && /^[1-9]$/.test(key) && cfg.labels[+key - 1]) {
    e.preventDefault(); e.stopPropagation();
    setLabel(cfg.labels[+key - 1].name);
  } else if ((key === "Delete" || key === "Backspace") && state.editable && lastMouse) {
    e.preventDefault(); e.stopPropagation();
    updateTransform();
    removeNear(lastMouse.x, lastMouse.y);
  }
}

// --- saving -------------------------------------------------------------------------------------

var saveTimer = null, flashTimer = null;

function setSaveState(s, text) {
  state.saveState = s;
  var el = $("save-state");
  el.textContent = text;
  el.classList.toggle("error", s === "error" || s === "conflict");
}

function flash(text) {
  var el = $("save-state"), before = state.saveState;
  el.textContent = text;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(function () { if (state.saveState === before) { showSaveState(); } }, 2500);
}

function showSaveState() {
  if (state.conflict) { return; }
  if (state.saving) { setSaveState("saving", "Saving…"); }
  else if (state.dirty) { setSaveState("pending", "Unsaved changes…"); }
  else if (!cfg.own) { setSaveState("saved", "Read-only (version " + state.version + ")"); }
  else { setSaveState("saved", "All changes saved (version " + state.version + ")"); }
}

function changed() {
  state.dirty = true;
  showSaveState();
  clearTimeout(saveTimer);
  saveTimer = setTimeout(save, SAVE_DELAY_MS);
}

function payload() {
  return JSON.stringify({
    version: state.version,
    points: state.points.map(function (p) { return { x: p.x, y: p.y, label: p.label }; }),
  });
}

function api(url, method, body, keepalive) {
  return apiFetch(url, { method: method, body: body, keepalive: keepalive });
}

function fitsKeepalive(body) { return new Blob([body]).size < KEEPALIVE_MAX_BYTES; }

// A point set as one comparable string, order aside (the server keeps the order, but only the set matters).
function setKey(points) {
  return points.map(function (p) { return p.x + "," + p.y + "," + p.label; }).sort().join(";");
}

// The sets this page sent on its current version. A save whose answer was lost may have been applied: the
// saved set then is one of these (at most one was applied: each was sent on the same version). Adopting a
// match loses nothing, even were it another tab's save of exactly the same points.
var sent = { version: null, keys: [] };

function remember(version, points) {
  if (sent.version !== version) { sent = { version: version, keys: [] }; }
  var key = setKey(points);
  if (sent.keys.indexOf(key) < 0) { sent.keys.push(key); }
  if (sent.keys.length > 50) { sent.keys.shift(); }
}

function saved(body) {
  state.version = body.version;
  state.status = body.status;
  state.error = null;
  $("annotate-error").hidden = true;
  showStatus();
}

// After a lost answer (network error) or a 409, the saved set decides. One this page sent: it was applied,
// its version is adopted and what was edited since is sent on it. Another set on this page's version: the
// lost save never arrived and is sent again. Any other set: another tab or person saved, a real conflict.
function reconcile(refusal) {
  return apiFetch(cfg.points).then(function (r) {
    if (!r.ok) { throw new Error("HTTP " + r.status); }
    return r.json();
  }).then(function (body) {
    var key = setKey(body.points);
    if (sent.version === state.version && sent.keys.indexOf(key) >= 0) {
      saved(body);
      state.dirty = setKey(state.points) !== key;
    } else if (!refusal && body.version === state.version) {
      state.dirty = true;
    } else {
      conflict(refusal || { current_version: body.version, sent_version: state.version });
    }
  }, function (err) {  // still offline: a later try asks again
    state.dirty = true;
    showError("Could not save (network): " + err.message);
  });
}

// `keepalive` (true only when the page is hidden): the request may outlive the page, if its body is small enough.
function save(keepalive) {
  clearTimeout(saveTimer);
  if (!state.dirty || state.conflict || !state.editable) { return Promise.resolve(); }
  if (state.saving) { saveTimer = setTimeout(save, SAVE_DELAY_MS); return state.saving; }
  state.dirty = false;
  var t0 = performance.now();
  remember(state.version, state.points);
  var body = payload();
  state.saving = api(cfg.points, "PUT", body, keepalive === true && fitsKeepalive(body)).then(function (r) {
    return r.json().catch(function () { return {}; }).then(function (body) {
      if (r.ok) {
        saved(body);
        state.saves += 1;
        state.saveTimes.push(performance.now() - t0);
      } else if (r.status === 409 && body.current_version !== undefined) {
        return reconcile(body);
      } else {
        state.dirty = true;
        state.error = body.detail || ("HTTP " + r.status);
        showError("Could not save: " + state.error);
      }
    });
  }).catch(function (err) {
    state.dirty = true;
    showError("Could not save (network): " + err);
    return reconcile(null);
  }).then(function () {
    state.saving = false;
    if (state.conflict || state.error) { return; }  // an error waits for the next edit to retry
    showSaveState();
    if (state.dirty) { saveTimer = setTimeout(save, SAVE_DELAY_MS); }
  });
  showSaveState();
  return state.saving;
}

function showError(text) {
  setSaveState("error", "Not saved");
  var el = $("annotate-error");
  el.textContent = text;
  el.hidden = false;
}

function conflict(body) {
  state.conflict = body;
  state.dirty = true;
  setSaveState("conflict", "Not saved: conflict");
  $("conflict-text").textContent = "These points were changed elsewhere (another tab or person saved version " +
    body.current_version + " after your version " + body.sent_version + "). Nothing was overwritten and your " +
    "latest changes here are NOT saved. Reload the saved version and redo them.";
  $("conflict").hidden = false;
}

// Submit refused as stale: what this page shows is not what is saved, so nothing was submitted. Editing and
// submitting stop (as after a save conflict) until the page is reloaded with the saved version.
function submitConflict(body) {
  state.conflict = body;
  setSaveState("conflict", "Not submitted: conflict");
  $("conflict-text").textContent = "These points were changed elsewhere (another tab or person saved version " +
    body.current_version + " after the version " + body.sent_version + " shown here). Nothing was submitted. " +
    "Reload the saved version, check it and submit again.";
  $("conflict").hidden = false;
}

function showStatus() {
  var names = { assigned: "Assigned", in_progress: "In progress", submitted: "Submitted", accepted: "Accepted",
                returned: "Returned for changes" };
  $("annotate-status").textContent = names[state.status] || state.status;
  $("annotate-status").setAttribute("data-status", state.status);
  // Only the session's own annotator edits; a reviewer's view of someone else's session is read-only.
  state.editable = cfg.own && ["assigned", "in_progress", "returned"].indexOf(state.status) >= 0;
  $("submit").disabled = !state.editable;
  $("undo").disabled = $("redo").disabled = !state.editable;
  if ($("import")) { $("import").disabled = !state.editable; }
}

// Submitting hands the session to the reviewer and locks it: the annotator is asked first.
function confirmSubmit() {
  var n = state.points.length;
  return window.confirm("Submit this session for review with " + n + " point" + (n === 1 ? "" : "s") + "?\n\n" +
                        "You cannot change it afterwards unless the reviewer returns it to you.");
}

function submit() {
  if (!state.editable || state.conflict) { return; }
  if (!confirmSubmit()) { return; }
  $("submit").disabled = true;
  var flush = state.saving ? state.saving.then(save) : save();
  flush.then(function () {
    if (state.conflict || state.dirty) { $("submit").disabled = false; return; }
    // The version shown here: if another tab saved since, the server answers 409 and submits nothing, rather
    // than submitting points this page never showed.
    return api(cfg.submit, "POST", JSON.stringify({ version: state.version })).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (r.ok) {
          state.status = body.status || "submitted";
          showStatus();
          setSaveState("submitted", "Submitted for review (" + state.points.length + " points)");
        } else if (r.status === 409 && body.current_version !== undefined) {
          submitConflict(body);
        } else {
          $("submit").disabled = false;
          showError("Could not submit: " + (body.detail || ("HTTP " + r.status)));
        }
      });
    });
  });
}

// --- import a file (replaces the points; the server validates it all-or-nothing) ----------------

function importFile() {
  var input = $("import-file"), file = input.files && input.files[0];
  if (!file || !state.editable || state.conflict) { if (!file) { flash("Choose a GeoJSON or CSV file first."); } return; }
  var fmt = /\.csv$/i.test(file.name) ? "csv" : "geojson";
  $("import").disabled = true;
  var flush = state.saving ? state.saving.then(save) : save();  // import on top of the saved version
  flush.then(function () {
    if (state.conflict || state.dirty) { return; }
    var body = new FormData();
    body.append("file", file);
    body.append("fmt", fmt);
    body.append("version", state.version);
    return apiFetch(cfg["import"], { method: "POST", body: body })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (reply) {
          if (r.ok) {
            input.value = "";
            $("annotate-error").hidden = true;
            return load().then(function () {
              state.imports = (state.imports || 0) + 1;
              setSaveState("saved", "Imported " + state.points.length + " points from " + file.name +
                           " (version " + state.version + "); undo starts from here");
            });
          }
          if (r.status === 409 && reply.current_version !== undefined) { conflict(reply); return; }
          var problems = (reply.problems || []).slice(0, 20).join("; ");
          showError("Not imported (nothing changed): " + (reply.detail || ("HTTP " + r.status)) +
                    (problems && (reply.detail || "").indexOf(problems) < 0 ? ": " + problems : ""));
        });
      });
  }).catch(function (err) {
    showError("Could not import (network): " + err);
  }).then(function () { $("import").disabled = !state.editable; });
}

function load() {
  return apiFetch(cfg.points)
    .then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.json();
    }).then(function (body) {
      state.version = body.version;
      state.status = body.status;
      state.points = body.points.map(function (p) { return { x: p.x, y: p.y, label: p.label }; });
      state.undoStack.length = state.redoStack.length = 0;
      state.dirty = false;
      recount();
      showStatus();
      showSaveState();
      requestDraw();
    });
}

// --- start ---------------------------------------------------------------------------------------

function start() {
  viewer = createViewer({
    imagesUrl: page.getAttribute("data-osd-images"), tileSources: cfg.dzi, state: state,
    onError: showError, options: { maxZoomPixelRatio: 4, minZoomImageRatio: 0.5 },
  });
  fo = fieldOverlay(viewer, drawAll);
  ctx = fo.ctx;
  viewer.addHandler("open", function () {
    fitImageRect(viewer, fx, fy, fw, fh, 0.08);
    fo.attach();
    load().then(function () { state.ready = true; }).catch(function (err) {
      showError("Could not load the points: " + err.message);
    });
  });
  viewer.addHandler("canvas-press", onPress);
  viewer.addHandler("canvas-drag", onDrag);
  viewer.addHandler("canvas-release", onRelease);
  viewer.addHandler("canvas-click", onClick);
  viewer.addHandler("canvas-nonprimary-press", onNonPrimary);
  $("osd").addEventListener("contextmenu", function (e) { e.preventDefault(); });
  $("osd").addEventListener("mousemove", function (e) {
    var r = viewer.canvas.getBoundingClientRect();
    lastMouse = { x: e.clientX - r.left, y: e.clientY - r.top };
  });
  document.addEventListener("keydown", onKey, true);
  document.querySelectorAll(".label-btn").forEach(function (b) {
    b.addEventListener("click", function () { setLabel(b.getAttribute("data-label")); });
  });
  $("undo").addEventListener("click", undo);
  $("redo").addEventListener("click", redo);
  $("submit").addEventListener("click", submit);
  if ($("import")) { $("import").addEventListener("click", importFile); }
  $("conflict-reload").addEventListener("click", function () { window.location.reload(); });
  // Leaving with unsaved edits: the browser asks first (the real safeguard: a large set cannot be sent as the
  // page goes). Hidden (another tab, minimised, or the first step of closing) the page saves at once: a hidden
  // page's timers may run late or never. What is still unsaved on pagehide goes as keepalive if it is small
  // enough, on the version a save in flight will make (version + 1): if that save failed, the server answers
  // 409 and overwrites nothing.
  window.addEventListener("beforeunload", function (e) {
    if ((state.dirty || state.saving) && !state.conflict && state.editable) {
      e.preventDefault();
      e.returnValue = "";
    }
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState !== "hidden") { return; }
    if (state.saving) { state.saving.then(function () { return save(true); }); } else { save(true); }
  });
  window.addEventListener("pagehide", function () {
    if (!state.dirty || state.conflict || !state.editable || state.version === null) { return; }
    var body = JSON.parse(payload());
    if (state.saving) { body.version = state.version + 1; }
    body = JSON.stringify(body);
    if (fitsKeepalive(body)) { api(cfg.points, "PUT", body, true).catch(function () {}); }  // nobody is left to tell
  });
  setLabel(state.label);
  recount();
  showStatus();
}

state.toScreen = function (x, y) { return fo.pagePoint(x, y); };  // page coordinates (for tests)
state.save = save;
state.undo = undo;
state.redo = redo;

start();
