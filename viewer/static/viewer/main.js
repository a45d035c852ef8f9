/* PD-L1 slide viewer (viewer/templates/viewer/slide_viewer.html): OpenSeadragon + one canvas
 * overlay for detections, heatmap, corrections, regions and live job progress.
 *
 * ES modules, no bundler: this entry starts OpenSeadragon and wires the modules beside it
 * (state, geometry, points, queries, draw, scores, selection, corrections, carry, regions, progress,
 * scalebar, ruler, history, keys, unsaved); the API client and OpenSeadragon defaults are the site's shared ones
 * (static/common), also used by the annotation pages.
 *
 * Overlays stay fluid with millions of detections: only the viewport's points are fetched
 * (debounced, at most one request in flight), kept in typed arrays, and drawn on a single
 * canvas on animation frames through one image->screen affine transform (rotation included).
 *
 * window.pdl1Viewer exposes state for tests and benchmarks (drawnCounts, progressPath, ...).
 */

import { describeDetail, fetchJSON } from "../common/api.js";
import { createViewer, preferredDrawer } from "../common/osd.js";
import { bindCarryNotice } from "./carry.js";
import { bindCorrectionTools, loadHumanLayer, postCorrection } from "./corrections.js";
import { requestDraw } from "./draw.js";
import { bindHistory, setHistoryHandlers } from "./history.js";
import { bindKeys } from "./keys.js";
import { pointsNearCentre } from "./points.js";
import { bindStartJob, trackJob } from "./progress.js";
import { bindLayerToggles, scheduleQuery } from "./queries.js";
import { bindRegionTools, finishRegion, onEditDoubleClick, onEditDrag, onEditPress, onEditRelease, postRegion,
         removeRegion } from "./regions.js";
import { bindRuler } from "./ruler.js";
import { bindMagnificationButtons, goToMagnification, updateScalebar } from "./scalebar.js";
import { clearScores } from "./scores.js";
import { onCanvasClick } from "./selection.js";
import { $, S, api, cfg, debug, reportError } from "./state.js";

export function rotate(degrees) {
  if (!S.viewer) { return; }
  S.viewer.viewport.setRotation((S.viewer.viewport.getRotation() + degrees + 360) % 360);
}

function startViewer() {
  const viewer = createViewer({
    imagesUrl: cfg.osdImages,
    tileSources: S.info.dzi_url,
    state: debug,
    onError: reportError,
    // The overlay follows rotation: it draws through affine() and every click, drag and press reads its
    // position through viewerElementToImageCoordinates (geometry.js), both rotated by OpenSeadragon itself.
    allowRotation: true,
    options: {
      drawer: preferredDrawer(),
      showRotationControl: true,
      showFullPageControl: true,
      maxZoomPixelRatio: S.info.max_zoom_ratio || 1.1,
      minZoomImageRatio: 0.8,
      animationTime: 0.6,
      blendTime: 0.1,
      immediateRender: false,
      gestureSettingsMouse: { clickToZoom: false, dblClickToZoom: true },
      navigationControlAnchor: OpenSeadragon.ControlAnchor.BOTTOM_LEFT, // the top left holds the tools
    },
  });
  S.viewer = viewer;
  debug.drawer = viewer.drawer && viewer.drawer.getType ? viewer.drawer.getType() : null;
  viewer.addHandler("tile-load-failed", (e) => {
    debug.tileErrors += 1;
    if (debug.tileErrors === 1) { reportError("Some tiles failed to load: " + (e.message || "unknown error")); }
  });
  viewer.addHandler("open", () => {
    setupOverlay();
    debug.ready = true;
    requestDraw();
    scheduleQuery(true);
    updateScalebar();
  });
  ["animation", "update-viewport", "rotate", "flip", "resize", "full-page", "full-screen"].forEach((name) => {
    viewer.addHandler(name, () => { requestDraw(); });
  });
  viewer.addHandler("resize", () => { resizeOverlay(); });
  viewer.addHandler("viewport-change", () => { scheduleQuery(false); });
  viewer.addHandler("animation-finish", () => { scheduleQuery(false); });
  viewer.addHandler("canvas-click", onCanvasClick);
  viewer.addHandler("canvas-press", onEditPress);
  viewer.addHandler("canvas-drag", onEditDrag);
  viewer.addHandler("canvas-release", onEditRelease);
  viewer.addHandler("canvas-double-click", (e) => {
    if (onEditDoubleClick(e)) { return; }
    if (!S.drawing) { return; }
    e.preventDefaultAction = true; // no zoom: the double-click closes the region
    finishRegion();
  });

  viewer.addControl($("scalebar"), { anchor: OpenSeadragon.ControlAnchor.BOTTOM_LEFT });
  viewer.addControl(document.querySelector(".viewer-toolbar"), { anchor: OpenSeadragon.ControlAnchor.TOP_RIGHT });
  // The tools stay over the slide (also in full screen) and never fade: on a 900-px screen they are in view.
  viewer.addControl($("viewer-tools"), { anchor: OpenSeadragon.ControlAnchor.TOP_LEFT, autoFade: false });
  $("rotate-left").addEventListener("click", () => { rotate(-90); });
  $("rotate-right").addEventListener("click", () => { rotate(90); });
  $("fullscreen").addEventListener("click", () => { viewer.setFullScreen(!viewer.isFullPage()); });
}

function setupOverlay() {
  const overlay = S.overlay = document.createElement("canvas");
  overlay.className = "pdl1-overlay";
  S.viewer.canvas.appendChild(overlay);
  S.ctx = overlay.getContext("2d");
  resizeOverlay();
  window.addEventListener("resize", resizeOverlay);
}

function resizeOverlay() {
  const overlay = S.overlay;
  if (!overlay) { return; }
  S.dpr = window.devicePixelRatio || 1;
  const w = S.viewer.canvas.clientWidth;
  const h = S.viewer.canvas.clientHeight;
  if (overlay.width !== Math.round(w * S.dpr) || overlay.height !== Math.round(h * S.dpr)) {
    overlay.width = Math.round(w * S.dpr);
    overlay.height = Math.round(h * S.dpr);
  }
  requestDraw();
}

function start() {
  if (typeof OpenSeadragon === "undefined") { return; }
  fetchJSON(api.info(cfg.slide)).then((res) => {
    if (!res.ok) {
      reportError("The slide cannot be displayed: " + describeDetail(res.data, res.status));
      return;
    }
    S.info = debug.info = res.data;
    startViewer();
  }).catch((err) => { reportError("The slide information could not be loaded: " + err); });

  bindLayerToggles();
  // "—" until the server's corrected scores arrive (loadHumanLayer): never the uncorrected summary.
  clearScores(cfg.job ? "Loading the corrected scores…" : "");
  bindCorrectionTools();
  bindRegionTools();
  bindHistory();
  setHistoryHandlers({ correction: postCorrection, addRegion: (region) => postRegion(region),
                       deleteRegion: removeRegion, replaceRegion: (id, region) => postRegion(region, id) });
  bindRuler();
  bindMagnificationButtons();
  bindKeys();
  bindStartJob();
  bindCarryNotice();
  if (cfg.job) { loadHumanLayer(); } // corrections and regions at one version
  if (cfg.runningJob) { trackJob(cfg.runningJob); }
  debug.trackJob = trackJob;
  debug.pointsNearCentre = pointsNearCentre;
  debug.requestDraw = requestDraw;
  debug.goToMagnification = goToMagnification;
  debug.points = () => Array.from({ length: S.pts.n }, (_, i) => ({ // the loaded points (for tests)
    x: S.pts.xs[i], y: S.pts.ys[i], label: S.pts.labels[i], id: S.pts.ids[i], corrected: !!S.pts.corrected[i] }));
}

start();
