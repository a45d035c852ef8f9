/* Corrections of the detections (reclassify, delete, add): their own layer on the server, saved
 * with the version they were based on (a colleague's save in between is a conflict), one at a time
 * (unsaved.js: the next takes the version the previous one's answer gave). */

import { describeDetail, fetchJSON } from "../common/api.js";
import { showCarryOver } from "./carry.js";
import { requestDraw } from "./draw.js";
import { clearHistory, recordEdit } from "./history.js";
import { appendPoint, indexOfId } from "./points.js";
import { forgetDensity, scheduleQuery } from "./queries.js";
import { loadHotspots, loadRegions, showRegionsAnswer } from "./regions.js";
import { clearScores, showScores } from "./scores.js";
import { select, selectPointId, showSelection } from "./selection.js";
import { $, LABEL_NAME, NEGATIVE, POSITIVE, S, api, cfg, debug, page, setText } from "./state.js";
import { queueSave, stopAfterConflict } from "./unsaved.js";

const LOAD_ATTEMPTS = 3;

/** The corrections and the regions, read at one version: the page takes that version only when both
 * answers carry it (a save between the two reads would otherwise pair one list with the other's version, and
 * a save on it be accepted against a state this page never showed). They are read again when they differ;
 * should they keep differing, the page takes no version and refuses to save until a reload agrees. */
export function loadHumanLayer(attempts = LOAD_ATTEMPTS) {
  const job = cfg.job;
  if (!job) { return Promise.resolve(); }
  return Promise.all([fetchJSON(api.corrections(job)), fetchJSON(api.regions(job))]).then(([corr, regs]) => {
    if (corr.ok && regs.ok && corr.data.version !== regs.data.version && attempts > 1) {
      return loadHumanLayer(attempts - 1);
    }
    showRegionsAnswer(regs);
    if (!corr.ok) {
      // No corrected scores (e.g. 503: the detections cannot be read): nothing stays up in their place.
      const reason = describeDetail(corr.data, corr.status);
      forgetVersion();
      clearScores("Scores unavailable: " + reason);
      setText("corrections-line", "Corrections unavailable: " + reason);
      return;
    }
    showCorrections(corr.data);
    if (!regs.ok) {
      forgetVersion(); // the regions were not seen: no save may be based on this version
    } else if (corr.data.version !== regs.data.version) {
      forgetVersion();
      showConflict("The slide kept changing while it loaded (corrections at version " + corr.data.version +
        ", regions at " + regs.data.version + "): reload to see one state before saving.");
    } else {
      S.corrections.version = debug.correctionsVersion = corr.data.version;
    }
    showCorrectionsLine();
  }).catch((err) => {
    forgetVersion();
    clearScores("Scores unavailable: " + err);
    setText("corrections-line", "Corrections unavailable: " + err);
  });
}

function showCorrections(data) {
  S.corrections.count = (data.items || []).length;
  showScores(data.scores);
  showCarryOver(data.carry_over);
}

function forgetVersion() { S.corrections.version = debug.correctionsVersion = null; }

/** True (and shown) when this page holds no version to save on: nothing loaded yet, or a load whose two
 * answers did not agree on one (loadHumanLayer). */
export function versionUnknown(what) {
  if (S.corrections.version !== null && S.corrections.version !== undefined) { return false; }
  showConflict(what + " was not saved: this page has not loaded one consistent state of the slide; " +
    "reload corrections first.");
  return true;
}

export function showCorrectionsLine() {
  const c = S.corrections;
  setText("corrections-line", (c.count === null ? "" : c.count + " correction(s), ") +
    (c.version === null ? "no version loaded (saving is off)" : "version " + c.version) +
    (S.addMode ? " · add mode: click to place a point" : ""));
}

/** A new version saved (a correction or a region): scores and everything derived from them follow. */
export function versionSaved(data) {
  S.corrections.version = debug.correctionsVersion = data.version;
  showScores(data.scores);
  showCorrectionsLine();
  S.hotspots = null; // the fields' TPS changed
  if (S.layers.hotspots) { loadHotspots(); }
}

/** A refused save: 409 (someone saved in between) or another error; the conflict box says which. */
export function saveRefused(res, what, conflictText) {
  if (res.status === 409) {
    // Not the server's new version: this page has not seen what changed, so a retry must be refused
    // again until "Reload corrections" shows it (loadHumanLayer takes the version with the items).
    // The saves queued behind this one are based on the same old version: not sent, listed as not saved,
    // under the one message (they were each sent, refused and shown in turn).
    const stopped = stopAfterConflict();
    if (stopped.refused) { listNotSaved(stopped.refused, "refused"); }
    stopped.notSent.forEach((what) => { listNotSaved(what, "not sent"); });
    showConflict((res.data && res.data.detail) || conflictText);
  } else {
    showConflict(what + " was not saved: " + describeDetail(res.data, res.status));
  }
  return false;
}

/** Save one correction, after this page's saves before it; resolves to the server's item, or null when
 * refused or not sent (shown). */
export function postCorrection(body) {
  const job = cfg.job;
  if (!job) { return Promise.resolve(null); }
  return queueSave((signal) => sendNow(job, body, signal), describeCorrection(body), null);
}

/** A correction in words, for the list of edits not saved. */
function describeCorrection(body) {
  const label = LABEL_NAME[body.label] || body.label;
  if (body.op === "delete") { return "the deletion of detection " + body.detection; }
  if (body.op === "reclassify") { return "the reclassification of detection " + body.detection + " as " + label; }
  if (body.op === "add") { return "the " + label + " point added at (" + Math.round(body.x) + ", " + Math.round(body.y) + ")"; }
  if (body.op === "undo") { return "the undo of correction " + body.target; }
  return "a correction";
}

function sendNow(job, body, signal) {
  if (cfg.job !== job) { return Promise.resolve(null); } // another job opened meanwhile: not its version
  if (versionUnknown("The correction")) { return Promise.resolve(null); }
  // The version as of now: the previous save's answer (versionSaved), not the one when the edit was made.
  body = Object.assign({}, body, { base_version: S.corrections.version });
  hideConflict();
  return fetchJSON(api.corrections(job), { body, signal }).then((res) => {
    if (res.status === 201) {
      const item = res.data.item || {};
      S.corrections.count = (S.corrections.count || 0) + 1;
      versionSaved(res.data);
      applyLocally(body, item);
      forgetDensity(); // counts changed: refetch when needed
      scheduleQuery(true);
      if (S.regions.length) { loadRegions(); } // their per-region counts changed too
      return item;
    }
    if (res.status === 400 && body.op === "add" && res.data && res.data.point !== undefined) {
      // A live point is already there (the same cell): nothing was saved; it is selected instead.
      selectPointId(res.data.point);
      setText("tool-status", describeDetail(res.data, res.status));
      return null;
    }
    saveRefused(res, "The correction", "Someone else changed these detections.");
    return null;
  }).catch((err) => { showConflict("The correction was not saved: " + err); return null; });
}

/** A correction made with the tools: saved, then undoable. */
export function sendCorrection(body) {
  return postCorrection(body).then((item) => {
    if (item) { recordEdit({ kind: "correction", body, item }); }
    return !!item;
  });
}

function applyLocally(body, item) {
  const pts = S.pts;
  if (body.op === "undo") { // what comes back is the server's: the next query shows it
    S.selected = null;
    showSelection();
  } else if (body.op === "add") {
    const id = item.point_id || (item.id !== undefined ? "c" + item.id : "new-" + Date.now());
    appendPoint(body.x, body.y, body.label, NaN, id);
    select(pts.n - 1);
  } else {
    const i = indexOfId(body.detection);
    if (i >= 0) {
      if (body.op === "delete") {
        pts.labels[i] = 0; // not drawn; gone from the next query
        S.selected = null;
        showSelection();
      } else {
        pts.labels[i] = body.label;
        pts.corrected[i] = true;
        select(i);
      }
    }
  }
  requestDraw();
}

// Edits refused by a conflict, or not sent because of it, since the last reload: the conflict box lists them
// (the page shows none of them: nothing is applied here before the server accepts it).
const notSaved = [];

function listNotSaved(what, why) {
  const known = notSaved.find((n) => n.what === what); // the same edit tried again: listed once
  if (known) { known.why = why; } else { notSaved.push({ what, why }); }
}

export function showConflict(message) {
  $("conflict").hidden = false;
  setText("conflict-message", message);
  showNotSaved();
}

function showNotSaved() {
  debug.notSaved = notSaved.map((n) => n.what + " (" + n.why + ")");
  $("conflict-not-saved").hidden = !notSaved.length;
  setText("conflict-not-saved-head", "Not saved" + (notSaved.length > 1 ? " (" + notSaved.length + " edits)" : "") +
    "; after reloading, make again what you still want:");
  const list = $("conflict-not-saved-list");
  list.innerHTML = "";
  notSaved.forEach((n) => {
    const li = document.createElement("li");
    li.textContent = n.what + " (" + n.why + ")";
    list.appendChild(li);
  });
}

export function hideConflict() { $("conflict").hidden = true; }

function reloadAfterConflict() {
  notSaved.length = 0;
  showNotSaved();
  hideConflict();
  clearHistory();
  loadHumanLayer();
  scheduleQuery(true);
}

export function reclassify(label) {
  const selected = S.selected;
  if (!selected || selected.id === undefined || selected.id === null) { return; }
  if (selected.label === label) { return; }
  sendCorrection({ op: "reclassify", detection: selected.id, label });
}

export function deleteSelected() {
  const selected = S.selected;
  if (!selected || selected.id === undefined || selected.id === null) { return; }
  sendCorrection({ op: "delete", detection: selected.id });
}

export function setAddMode(on) {
  S.addMode = on;
  $("add-mode").setAttribute("aria-pressed", on ? "true" : "false");
  $("add-mode").classList.toggle("active", on);
  page.classList.toggle("adding", on);
  showCorrectionsLine();
}

export function bindCorrectionTools() {
  $("conflict-reload").addEventListener("click", reloadAfterConflict);
  $("reclass-positive").addEventListener("click", () => { reclassify(POSITIVE); });
  $("reclass-negative").addEventListener("click", () => { reclassify(NEGATIVE); });
  $("delete-detection").addEventListener("click", deleteSelected);
  $("add-mode").addEventListener("click", () => { setAddMode(!S.addMode); });
}
