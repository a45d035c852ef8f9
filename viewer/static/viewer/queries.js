/* Viewport queries: only the view's points are fetched (debounced, at most one request in
 * flight); the density grid for the heatmap; the detection layers' toggles. */

import { describeDetail, fetchJSON } from "../common/api.js";
import { loadHumanLayer } from "./corrections.js";
import { requestDraw, wantHeatmap } from "./draw.js";
import { boxArea, contains, viewBox } from "./geometry.js";
import { indexOfId, pointsFromResponse } from "./points.js";
import { showSelection } from "./selection.js";
import { $, S, api, cfg, debug, emptyPoints, reportError } from "./state.js";

const MAX_POINTS = 20000; // per viewport request
const QUERY_DEBOUNCE_MS = 150;
const QUERY_MAX_WAIT_MS = 400; // keep loading during a long continuous pan
const QUERY_MARGIN = 0.25; // fetch this much around the view on each side

let queryTimer = null;
let queryFirstAsked = 0;
let queryInFlight = false;
let queryAgain = false;
let forceNext = false;

export function scheduleQuery(force) {
  if (!S.viewer || !S.info) { return; }
  if (force) { S.pts.box = S.pts.n ? S.pts.box : null; forceNext = true; }
  const now = performance.now();
  if (!queryTimer) { queryFirstAsked = now; }
  clearTimeout(queryTimer);
  const wait = Math.min(QUERY_DEBOUNCE_MS, Math.max(0, QUERY_MAX_WAIT_MS - (now - queryFirstAsked)));
  queryTimer = setTimeout(() => { queryTimer = null; runQuery(); }, force ? 0 : wait);
}

function runQuery() {
  const job = cfg.job;
  if (!job) { return; }
  if (!S.density && S.densityJob !== job) { loadDensity(job); }
  if (queryInFlight) { queryAgain = true; return; }
  const view = viewBox(0);
  const force = forceNext;
  forceNext = false;
  requestDraw();
  if (S.layers.heatmap && S.density && wantHeatmap()) { return; } // heatmap shown: no point query
  if (!S.layers.positive && !S.layers.negative) { return; } // nothing to draw
  const pts = S.pts;
  if (!force && pts.job === job && contains(pts.box, view) &&
      (pts.total <= pts.n || boxArea(view) > 0.3 * boxArea(pts.box))) {
    return; // what is loaded covers the view at the detail the server can give
  }
  const box = viewBox(QUERY_MARGIN);
  if (boxArea(box) <= 0) { return; }
  const url = api.points(job) + "?x0=" + box.x0 + "&y0=" + box.y0 + "&x1=" + box.x1 + "&y1=" + box.y1 +
    "&max=" + MAX_POINTS + "&layers=positive,negative";
  queryInFlight = true;
  debug.queries += 1;
  fetchJSON(url).then((res) => {
    if (!res.ok) {
      reportError("Detections could not be loaded: " + describeDetail(res.data, res.status));
      return;
    }
    if (job !== cfg.job) { return; }
    S.pts = pointsFromResponse(res.data, box, job);
    debug.pointsLoaded = S.pts.n;
    debug.pointsTotalInBox = S.pts.total;
    if (S.selected) { S.selected.index = indexOfId(S.selected.id); }
    requestDraw();
  }).catch((err) => {
    reportError("Detections could not be loaded: " + err);
  }).then(() => {
    queryInFlight = false;
    if (queryAgain) { queryAgain = false; runQuery(); }
  });
}

function densityGridPx() {
  // About 256 cells along the long side (a 100,000 px slide: 391 px cells), 32 px at least.
  const side = Math.max(S.info.width, S.info.height);
  return Math.max(32, Math.min(4096, Math.ceil(side / 256)));
}

function loadDensity(job) {
  if (S.densityLoading) { return; }
  S.densityLoading = true;
  S.densityJob = job;
  fetchJSON(api.density(job, densityGridPx())).then((res) => {
    if (!res.ok) {
      reportError("The density heatmap could not be loaded: " + describeDetail(res.data, res.status));
      return;
    }
    if (job !== cfg.job) { return; }
    const d = res.data;
    S.density = { grid_px: d.grid_px, rows: d.shape[0], cols: d.shape[1], positive: d.positive || [],
                  negative: d.negative || [], max: d.max, images: {} };
    scheduleQuery(true);
  }).catch((err) => {
    reportError("The density heatmap could not be loaded: " + err);
  }).then(() => { S.densityLoading = false; requestDraw(); });
}

/** Counts changed (a correction): the density grid is refetched when next needed. */
export function forgetDensity() {
  if (S.density) { S.density = null; S.densityJob = null; }
}

export function resetDetections(job) {
  cfg.job = job;
  S.pts = emptyPoints();
  S.density = null;
  S.densityJob = null;
  S.selected = null;
  showSelection();
  S.live = { xs: [], ys: [], labels: [] };
  scheduleQuery(true);
  S.hotspots = null;
  loadHumanLayer(); // corrections and regions at one version
}

// ---- layers --------------------------------------------------------------------------------
export function setLayer(name, on) {
  S.layers[name] = on;
  $("layer-" + name).checked = on;
  if (S.density) { S.density.images = {}; }
  scheduleQuery(true);
  requestDraw();
}

export function bindLayerToggles() {
  ["positive", "negative", "heatmap"].forEach((name) => {
    $("layer-" + name).addEventListener("change", (e) => { setLayer(name, e.target.checked); });
  });
}
