/* Corrections of the detections (reclassify, delete, add): their own layer on the server, saved
 * with the version they were based on (a colleague's save in between is a conflict). */

import { describeDetail, fetchJSON } from "../common/api.js";
import { showCarryOver } from "./carry.js";
import { requestDraw } from "./draw.js";
import { clearHistory, recordEdit } from "./history.js";
import { appendPoint, indexOfId } from "./points.js";
import { forgetDensity, scheduleQuery } from "./queries.js";
import { loadHotspots, loadRegions } from "./regions.js";
import { clearScores, showScores } from "./scores.js";
import { select, selectPointId, showSelection } from "./selection.js";
import { $, NEGATIVE, POSITIVE, S, api, cfg, debug, page, setText } from "./state.js";

export function loadCorrections() {
  const job = cfg.job;
  if (!job) { return Promise.resolve(); }
  return fetchJSON(api.corrections(job)).then((res) => {
    if (!res.ok) {
      // No corrected scores (e.g. 503: the detections cannot be read): nothing stays up in their place.
      const reason = describeDetail(res.data, res.status);
      clearScores("Scores unavailable: " + reason);
      setText("corrections-line", "Corrections unavailable: " + reason);
      return;
    }
    S.corrections.version = debug.correctionsVersion = res.data.version;
    S.corrections.count = (res.data.items || []).length;
    showScores(res.data.scores);
    showCorrectionsLine();
    showCarryOver(res.data.carry_over);
  }).catch((err) => {
    clearScores("Scores unavailable: " + err);
    setText("corrections-line", "Corrections unavailable: " + err);
  });
}

export function showCorrectionsLine() {
  const c = S.corrections;
  setText("corrections-line", (c.count === null ? "" : c.count + " correction(s), ") +
    "version " + c.version + (S.addMode ? " · add mode: click to place a point" : ""));
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
    // again until "Reload corrections" shows it (loadCorrections takes the version with the items).
    showConflict((res.data && res.data.detail) || conflictText);
  } else {
    showConflict(what + " was not saved: " + describeDetail(res.data, res.status));
  }
  return false;
}

/** Save one correction; resolves to the server's item, or null when refused (shown). */
export function postCorrection(body) {
  const job = cfg.job;
  if (!job) { return Promise.resolve(null); }
  body = Object.assign({}, body, { base_version: S.corrections.version });
  hideConflict();
  return fetchJSON(api.corrections(job), { body }).then((res) => {
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

export function showConflict(message) {
  $("conflict").hidden = false;
  setText("conflict-message", message);
}

export function hideConflict() { $("conflict").hidden = true; }

function reloadAfterConflict() {
  hideConflict();
  clearHistory();
  loadCorrections();
  loadRegions();
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
