/* The viewer's shared state (one object, S), its page configuration (cfg), its API URLs and the
 * debug / test surface (window.pdl1Viewer). Every other viewer module imports these. */

import { API_ROOT, wsUrl } from "../common/api.js";

export const page = document.getElementById("pdl1-viewer-page");

export function $(id) { return document.getElementById(id); }

export function setText(id, text) {
  const el = $(id);
  if (el) { el.textContent = text; }
}

export function formatNumber(n) {
  return n === null || n === undefined ? "—" : Number(n).toLocaleString("en-GB");
}

// Label codes, names and colours: analysis/labels.py, rendered into the page ({% label_vocabulary %}).
const vocabulary = JSON.parse($("label-vocabulary").textContent);
export const POSITIVE = vocabulary.codes.positive;
export const NEGATIVE = vocabulary.codes.negative;
export const LABEL_NAME = {};
export const COLORS = {};
Object.keys(vocabulary.names).forEach((code) => {
  LABEL_NAME[code] = vocabulary.names[code];
  COLORS[code] = vocabulary.rgb[code];
  // The legend swatches (viewer.css: .swatch.positive/.negative) read these variables.
  document.documentElement.style.setProperty("--label-" + vocabulary.names[code], "rgb(" + vocabulary.rgb[code].join(", ") + ")");
});

export const cfg = {
  slide: Number(page.dataset.slide),
  job: page.dataset.job ? Number(page.dataset.job) : null,
  runningJob: page.dataset.runningJob ? Number(page.dataset.runningJob) : null,
  assayClone: page.dataset.assayClone || null,
  osdImages: page.dataset.osdImages,
  associatedUrl: page.dataset.associatedUrl || null,
};

const jobs = API_ROOT + "viewer/jobs/";
export const api = {
  info: () => page.dataset.infoUrl,
  points: (job) => jobs + job + "/points/",
  point: (job, id) => jobs + job + "/points/" + encodeURIComponent(id) + "/",
  density: (job, gridPx) => jobs + job + "/density/?grid_px=" + gridPx,
  state: (job) => jobs + job + "/state/",
  corrections: (job) => jobs + job + "/corrections/",
  regions: (job) => jobs + job + "/regions/",
  region: (job, id, version) => jobs + job + "/regions/" + id + "/?base_version=" + version,
  hotspots: (job) => jobs + job + "/hotspots/",
  startJob: API_ROOT + "jobs/",
  ws: (job) => wsUrl("jobs/" + job + "/"),
};

export function emptyPoints() {
  return { n: 0, xs: new Float32Array(0), ys: new Float32Array(0), labels: new Int8Array(0),
           scores: new Float32Array(0), ids: [], corrected: [], box: null, total: 0, job: null };
}

// Mutable state shared by the modules (one object, so that a module's reassignment is seen by all).
export const S = {
  viewer: null,
  info: null,
  overlay: null,
  ctx: null,
  dpr: window.devicePixelRatio || 1,
  pts: emptyPoints(), // the points held for the current view
  live: { xs: [], ys: [], labels: [] }, // detections of a running job, from progress events
  layers: { positive: true, negative: true, heatmap: true, hotspots: false },
  density: null, // {grid_px, rows, cols, positive, negative, max, images: {}}
  densityJob: null,
  densityLoading: false,
  selected: null, // {index, id, x, y, label, score, corrected}
  addMode: false,
  regions: [],
  drawing: null, // {kind, vertices: [[x, y], ...]} while drawing a region
  editing: null, // {region, vertices, dragging} while moving a region's vertices
  hotspots: null,
  hotspotsLoading: false,
  corrections: { version: null, count: null },
  ruler: null, // {on, a: [x, y] | null, b: [x, y] | null}
  progress: null,
};

// ---- debug / test surface -------------------------------------------------------------------
export const debug = (window.pdl1Viewer = {
  ready: false,
  viewer: null,
  info: null,
  tilesLoaded: 0,
  tileErrors: 0,
  frames: 0,
  mode: "none", // "points" | "heatmap" | "none"
  drawnCounts: { positive: 0, negative: 0, live: 0, heatmapCells: 0 },
  queries: 0,
  pointsLoaded: 0,
  pointsTotalInBox: 0,
  progressPath: null, // "live" | "polling"
  progressPathReason: "",
  progressEvents: 0,
  stateHistory: [], // [status, tiles_done, tiles_total, "ws" | "poll"]
  lastState: null,
  correctionsVersion: null,
  regions: [], // active drawn regions {id, kind, include, vertices}
  drawing: null, // the region being drawn: {kind, vertices}
  hotspots: null, // the last /hotspots/ reply
  selected: null,
  unloadGuard: false, // leaving the page asks first (unsaved.js); hasUnsavedWork() says why
  errors: [],
  drawStats: { count: 0, totalMs: 0, maxMs: 0 }, // time spent drawing the overlay
});

export function reportError(message) {
  debug.errors.push(message);
  const el = $("viewer-error");
  el.textContent = message;
  el.hidden = false;
}
